"""The executor's sequencer: the state machine that steps the executor's parts, one descriptor at a time.

Ref: Linux include/uapi/linux/idxd.h (``struct dsa_hw_desc``, ``struct
dsa_completion_record``); the checks' order and the alignment rule are those
stated in :mod:`.dsa`, and every state's outcome is that of the reference
model :class:`siov.sw.model.engine.Engine` (the system testbench's
scoreboard). What the executor does is described in :mod:`.executor`; this
module says in which states.

The states, in groups (one method each)::

    hand-over    IDLE -> PREPARE -> CHECK -> ORIENT (sized) | XLATE (WAIT, SIGNAL)
                 | RECORD (a failed check, an unsized no-op) | REFUSE -> SETTLE -> IDLE
    pieces       PIECE -> PIECE_LEN -> PIECE_ADDR -> PIECE_XLATE -> XLATE; PIECE -> RECORD
                 after the last piece or COMPARE's first difference
    translation  XLATE -> (its next step, by ``then``) | XLATE_FAULT -> RECORD or IRQ
    movement     MOVE_STORE (stored and forwarded) -> MOVE_WAIT -> ADVANCE -> PIECE  (:mod:`.move_states`)
    comparison   CMP_FILL -> CMP_READ -> CMP_WAIT -> CMP_SETTLE -> PIECE or ADVANCE  (:mod:`.move_states`)
    semaphore    SEM_READ -> SEM_CHECK -> RECORD | SEM_RETRY -> IDLE
    completion   RECORD -> XLATE (the record's page) -> RECORD_WAIT -> IRQ -> FINISH -> IDLE

A translation (XLATE) is shared by every page the descriptor touches; the
register ``then`` says what follows it: a piece's destination after its
source, the movers after the destination, the record's write, or WAIT's read.

The parts are stepped from registers: the piece walker by one-cycle strobes
(:mod:`.pieces` gives their order), the movers by commands that leave from
registers a cycle after a state issues them (:class:`~.move_states.MoveStates`,
which also holds the data states).
"""

from amaranth.lib import enum

from amaranth.hdl import Const, Mux, Signal
from amaranth.utils import exact_log2

from ..dma.defs import PASID_BITS
from .adi import AdiError
from .checks import Verdict
from .dsa import CR_ALIGN, CompletionLayout, Status
from .move_states import MoveStates
from .wsource import WriteSource

__all__ = ["Sequencer"]

_CR_LOW = exact_log2(CR_ALIGN)        # address bits that must be 0 in a completion address


class _Then(enum.Enum, shape=2):
    """What follows a translation."""
    SRC = 0     # a piece's source: its destination next
    DST = 1     # a piece's destination (or SIGNAL's word): its movers
    CR = 2      # the completion record's page: its write
    SEM = 3     # WAIT's semaphore: its read


class Sequencer:
    """The executor's state machine (FSM ``seq``), added to the executor's module.

    Not a component of its own: its registers drive the executor's ports and
    its parts' strobes directly, so the executor's hierarchy is that of its
    parts.

    Parameters
    ----------
    m : Module
        The executor's module.
    unit : Executor
        Its ports (``start``, ``done``, ``adi_fault``, ``irq``, ``idle``,
        ``busy_adi``, ``irq_adi``, ``finished``, ``finish``, ``refused``,
        ``retried``, ``now``), ``params`` and ``engine``.
    desc : Signal(DescriptorLayout)
        The descriptor register, loaded at the hand-over.
    d : SimpleNamespace
        The descriptor's decodes (``is_move``, ``is_fill``, ``is_cmp``,
        ``is_wait``, ``is_signal``, ``sized``, ``known``, ``bad_flags``,
        ``rci``, ``crav``, ``rcr``, ``handle_ok``).
    parts : SimpleNamespace
        The executor's parts: the movers ``rd``, ``al``, ``wr``, the data
        FIFO's register stage ``head``, ``walk``, ``cmp``, ``wsel``, ``xc``,
        ``irq_stage``, the descriptor's ``checks``, and the data path's
        controls ``route_compare`` and ``fifo_pop_sem``.
    """

    def __init__(self, m, unit, desc, d, parts):
        self.m, self.unit, self.desc, self.d, self.parts = m, unit, desc, d, parts
        n = unit.params.num_adis
        self.move = MoveStates(self)     # the movers' commands and the data states
        # The descriptor's state, from the hand-over to FINISH.
        self.cur = Signal(range(max(n, 2)))            # ADI being executed
        self.timed_out = Signal()                      # a failing WAIT check times out
        self.cycles = Signal(32)
        self.start_cycle = Signal(32)                  # the cycle counter at the hand-over
        self.status = Signal(Status)
        self.invalid = Signal(24)
        self.result = Signal(8)
        self.fault_addr = Signal(64)
        self.fault_write = Signal()
        self.busy_adi = Signal()
        self.adi_pasid = Signal(PASID_BITS)            # the executing ADI's PASID, latched
        self.wsrc = Signal(WriteSource)
        self.then = Signal(_Then)
        self.record = Signal(CompletionLayout)
        self.irq_adi = Signal(range(max(n, 2)))       # the ADI of the message in irq_stage

    def build(self):
        """Add the movers' commands, the ports' drivers and the state machine to the module."""
        self.move.commands()
        self._outputs()
        with self.m.FSM(name="seq"):
            self._hand_over()
            self._pieces()
            self._translation()
            self.move.states()
            self._semaphore()
            self._completion()

    # ---- drivers outside the states --------------------------------------------------------------

    def _outputs(self):
        """The write source, the ports that follow the registers, the cycle count, and the taken beats."""
        m, u, n = self.m, self.unit, self.unit.params.num_adis
        m.d.comb += [self.parts.wsel.sel.eq(self.wsrc), self.parts.wsel.record.eq(self.record),
                     u.busy_adi.eq(Mux(self.busy_adi, (Const(1, n) << self.cur)[:n], 0)
                                   | Mux(u.irq.valid, (Const(1, n) << self.irq_adi)[:n], 0)),
                     u.irq_adi.eq(self.irq_adi),
                     u.finish.status.eq(self.status), u.finish.cycles.eq(self.cycles)]
        m.d.sync += self.cycles.eq(self.cycles + self.busy_adi)
        with m.If(u.adi_fault.valid & u.adi_fault.ready):
            m.d.sync += u.adi_fault.valid.eq(0)
        with m.If(u.done.valid & u.done.ready):
            m.d.sync += u.done.valid.eq(0)

    # ---- actions shared by states ----------------------------------------------------------------

    def _report(self, consume=False, retry=False):
        """Tell the dispatcher that the WAIT is decided (``consume``) or to be re-checked (``retry``)."""
        done = self.unit.done
        self.m.d.sync += [done.valid.eq(1), done.payload.adi.eq(self.cur),
                          done.payload.consume.eq(consume), done.payload.retry.eq(retry)]

    def _translate(self, addr, write, then):
        """Start the translation of ``addr``'s page, with ``then`` to follow it (state XLATE)."""
        m, xc = self.m, self.parts.xc
        m.d.comb += [xc.start.eq(1), xc.addr.eq(addr), xc.write.eq(write)]
        m.d.sync += self.then.eq(then)
        m.next = "XLATE"

    # ---- the states --------------------------------------------------------------------------------

    def _hand_over(self):
        """IDLE to CHECK: take a descriptor and check it; REFUSE and SETTLE: a DESC_PASID refusal."""
        m, u, d, walk, cmp = self.m, self.unit, self.d, self.parts.walk, self.parts.cmp
        with m.State("IDLE"):
            m.d.comb += u.idle.eq(~u.done.valid)      # start.ready: registered, as IDLE lasts to a take
            m.d.sync += u.start.ready.eq(~u.done.valid & ~(u.start.valid & u.start.ready))
            with m.If(u.start.valid & u.start.ready):
                st = u.start.payload
                m.d.sync += [self.cur.eq(st.adi), self.adi_pasid.eq(st.pasid), self.timed_out.eq(st.timed_out),
                             self.desc.eq(st.desc), self.busy_adi.eq(1), self.cycles.eq(0),
                             self.start_cycle.eq(u.now)]
                m.next = "PREPARE"
        with m.State("PREPARE"):
            m.d.comb += walk.prepare.eq(1)
            m.next = "CHECK"
        with m.State("CHECK"):
            m.d.comb += [walk.begin.eq(1), cmp.clear.eq(1)]
            m.d.sync += [self.status.eq(Status.SUCCESS), self.invalid.eq(0), self.result.eq(0),
                         self.fault_addr.eq(0), self.fault_write.eq(0)]
            self._checks()
        with m.State("ORIENT"):
            # The first piece's pointers; its PIECE test is known (the size is not zero).
            m.d.comb += walk.orient.eq(1)
            m.next = "PIECE_LEN"
        with m.State("REFUSE"):
            m.d.sync += [u.adi_fault.valid.eq(1), u.adi_fault.payload.adi.eq(self.cur),
                         u.adi_fault.payload.code.eq(AdiError.DESC_PASID), self.busy_adi.eq(0)]
            m.d.comb += u.refused.eq(1)
            with m.If(d.is_wait):
                self._report(consume=True)
            m.next = "SETTLE"
        with m.State("SETTLE"):
            # Until the fault beat has been taken (the ADI block acts on it
            # then, and `pending` falls in the next cycle): no descriptor of
            # an ADI going ERROR is taken in between.
            with m.If(~u.adi_fault.valid):
                m.next = "IDLE"

    def _checks(self):
        """State CHECK: the state the checks' registered verdict (:class:`~.checks.DescriptorChecks`,
        made in PREPARE) leads to, and the status of a failed check."""
        m, desc, d, status = self.m, self.desc, self.d, self.status
        failed = {Verdict.BAD_OPCODE: Status.BAD_OPCODE, Verdict.BAD_HANDLE: Status.INVALID_INT_HANDLE,
                  Verdict.XFER_SIZE: Status.XFER_SIZE, Verdict.ADDR_ALIGN: Status.ADDR_ALIGN}
        with m.Switch(self.parts.checks.verdict):
            with m.Case(Verdict.REFUSE):
                m.next = "REFUSE"
            for verdict, code in failed.items():
                with m.Case(verdict):
                    m.d.sync += status.eq(code)
                    m.next = "RECORD"
            with m.Case(Verdict.INVALID_FLAGS):
                m.d.sync += [status.eq(Status.INVALID_FLAGS), self.invalid.eq(d.bad_flags)]
                m.next = "RECORD"
            with m.Case(Verdict.SIZED):
                m.next = "ORIENT"
            with m.Case(Verdict.WAIT):
                self._translate(desc.src_addr, 0, _Then.SEM)
            with m.Case(Verdict.SIGNAL):
                # One whole word (the address is aligned): as a one-word MEMFILL.
                m.d.comb += self.parts.walk.one_word.eq(1)
                self._translate(desc.dst_addr, 1, _Then.DST)
            with m.Default():
                m.next = "RECORD"

    def _pieces(self):
        """PIECE to PIECE_XLATE: the next piece, or the record after the last one (or COMPARE's
        first difference); the piece's geometry, then its first page's translation."""
        m, d, walk = self.m, self.d, self.parts.walk
        with m.State("PIECE"):
            with m.If(self.parts.cmp.found):
                m.d.comb += walk.stop.eq(1)
                m.d.sync += self.result.eq(1)
                m.next = "RECORD"
            with m.Elif(walk.last):
                with m.If(d.is_move):
                    m.d.sync += self.result.eq(walk.down)
                m.next = "RECORD"
            with m.Else():
                m.next = "PIECE_LEN"
        with m.State("PIECE_LEN"):
            m.d.comb += walk.measure.eq(1)
            m.next = "PIECE_ADDR"
        with m.State("PIECE_ADDR"):
            m.d.comb += walk.place.eq(1)
            m.next = "PIECE_XLATE"
        with m.State("PIECE_XLATE"):
            m.d.comb += walk.shape.eq(1)
            with m.If(d.is_fill):
                self._translate(walk.p_dst, 1, _Then.DST)
            with m.Else():
                self._translate(walk.p_src, 0, _Then.SRC)

    def _translation(self):
        """XLATE: one page through the DMA tracker, then what ``then`` says; XLATE_FAULT: its fault."""
        m, d, desc, walk, xc = self.m, self.d, self.desc, self.parts.walk, self.parts.xc
        with m.State("XLATE"):
            with m.If(xc.done & xc.fault):
                m.next = "XLATE_FAULT"
            with m.Elif(xc.done):
                with m.Switch(self.then):
                    with m.Case(_Then.SEM):
                        m.d.sync += self.move.h_src.eq(xc.host)
                        m.next = "SEM_READ"
                    with m.Case(_Then.SRC):
                        m.d.sync += self.move.h_src.eq(xc.host)
                        self._translate(walk.p_dst, d.is_move, _Then.DST)
                    with m.Case(_Then.DST):
                        m.d.sync += self.move.h_dst.eq(xc.host)
                        self.move.start()
                    with m.Case(_Then.CR):
                        # The record's page is translated: write its four words.
                        m.d.sync += [self.move.h_dst.eq(xc.host), self.wsrc.eq(WriteSource.RECORD)]
                        m.d.comb += self.parts.wsel.restart.eq(1)
                        self.move.issue("wr", record=True)
                        m.next = "RECORD_WAIT"
        with m.State("XLATE_FAULT"):
            m.d.sync += self.status.eq(Status.PAGE_FAULT)
            with m.If(self.then == _Then.CR):
                m.d.sync += [self.fault_write.eq(1), self.fault_addr.eq(desc.completion_addr)]
                m.next = "IRQ"
            with m.Else():
                m.d.sync += [self.fault_write.eq(xc.x_write), self.fault_addr.eq(xc.x_addr),
                             self.result.eq(d.is_move & walk.down)]
                m.next = "RECORD"

    def _semaphore(self):
        """SEM_READ to SEM_RETRY: WAIT's word read and compared under its mask; decided, or left
        for a re-check."""
        m, u, desc, p = self.m, self.unit, self.desc, self.parts
        with m.State("SEM_READ"):
            with m.If(~self.move.rd_busy & ~self.move.al_busy):
                self.move.issue("rd", "al", sem=True)
                m.next = "SEM_CHECK"
        with m.State("SEM_CHECK"):
            # The word has passed the aligner and the FIFO, so its R beat
            # has been seen: `rd.error` is final.
            head = p.head.out
            with m.If(head.valid):
                m.d.comb += p.fifo_pop_sem.eq(1)
                with m.If(p.rd.error):
                    m.d.sync += self.status.eq(Status.HW_ERROR)
                    m.next = "RECORD"
                with m.Elif((head.payload & desc.sem_mask) == desc.sem_value):
                    m.next = "RECORD"
                with m.Elif(self.timed_out):
                    m.d.sync += self.status.eq(Status.WAIT_TIMEOUT)
                    m.next = "RECORD"
                with m.Else():
                    m.next = "SEM_RETRY"
        with m.State("SEM_RETRY"):
            # Not satisfied: no record, no interrupt; the descriptor stays
            # at its ring's head and the ADI waits for a re-check tick.
            self._report(retry=True)
            m.d.comb += u.retried.eq(1)
            m.d.sync += self.busy_adi.eq(0)
            m.next = "IDLE"

    def _completion(self):
        """RECORD to FINISH: the completion record composed, its page translated and written, the
        interrupt message handed on, the descriptor finished."""
        m, u, d, desc, p = self.m, self.unit, self.d, self.desc, self.parts
        with m.State("RECORD"):
            with m.If(d.is_wait):
                self._report(consume=True)
            m.d.sync += self._compose()
            with m.If(d.crav & (desc.completion_addr[:_CR_LOW] == 0) & (d.rcr | (self.status != Status.SUCCESS))):
                self._translate(desc.completion_addr, 1, _Then.CR)
            with m.Else():
                m.next = "IRQ"
        with m.State("RECORD_WAIT"):
            with m.If(~self.move.wr_busy):
                m.d.sync += self.wsrc.eq(WriteSource.FIFO)
                with m.If(p.wr.error):
                    # The record did not reach memory: the descriptor's outcome
                    # is the error (ENG.LAST_STATUS, DESC_FAILED), as for a
                    # record whose page faults.
                    m.d.sync += self.status.eq(Status.HW_ERROR)
                m.next = "IRQ"
        with m.State("IRQ"):
            with m.If(d.rci & d.handle_ok):
                m.d.comb += p.irq_stage.inp.valid.eq(1)
                with m.If(p.irq_stage.inp.ready):
                    m.d.sync += self.irq_adi.eq(self.cur)
                    m.next = "FINISH"
            with m.Else():
                m.next = "FINISH"
        with m.State("FINISH"):
            m.d.sync += self.busy_adi.eq(0)
            m.d.comb += u.finished.eq(1)
            m.next = "IDLE"

    def _compose(self):
        """State RECORD: the completion record's fields (``struct dsa_completion_record``)."""
        record, desc, d, status, result = self.record, self.desc, self.d, self.status, self.result
        done = self.parts.walk.done
        partial = (status == Status.PAGE_FAULT) | (status == Status.HW_ERROR)
        whole = Mux(d.sized, Mux(result.any() & d.is_cmp, done, desc.xfer_size), 0)
        return [
            record.status.eq(status), record.status_write.eq(self.fault_write),
            record.result.eq(result), record.fault_info.eq(0), record.rsvd.eq(0),
            record.bytes_completed.eq(Mux(partial, done, Mux(status == Status.SUCCESS, whole, 0))),
            record.fault_addr.eq(self.fault_addr), record.invalid_flags.eq(self.invalid),
            record.rsvd2.eq(0), record.cycles.eq(self.cycles),
            record.start_cycle.eq(self.start_cycle), record.engine.eq(self.unit.engine), record.rsvd3.eq(0),
        ]
