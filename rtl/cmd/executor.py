"""An engine's executor: runs one DSA descriptor at a time, from checks to completion.

Ref: Linux include/uapi/linux/idxd.h for the formats (see :mod:`.dsa`, which
states the supported subset, the check order and the alignment rule); the
behaviour is that of the reference model :class:`siov.sw.model.engine.Engine`,
which the system testbench uses as its scoreboard.

The dispatcher (:mod:`.dispatch`) hands over a descriptor (``start``) with
its ADI, the ADI's PASID and whether a failing WAIT check times out. The
executor then:

* **checks**: refuse it if its PASID is not the ADI's (ERROR code 3: no
  memory access, no record, no interrupt); check opcode, flags, interrupt
  handle, size and alignment in the model's order;
* **moves data** piece by piece, each piece within one 4 KiB page of source
  and destination. A piece translates its pages through the tracker (source
  first, then destination, and the destination only if the source was
  allowed, so that the dirty log and the fault queue match the model), then
  moves its data: reader -> aligner -> FIFO -> writer. The FIFO holds a whole
  piece, so a MEMMOVE whose destination starts inside the source's piece is
  stored and forwarded (read fully, then written), and any other piece
  streams with reads and writes overlapped. An overlapping MEMMOVE with the
  destination above the source runs its pieces in descending order. When a
  piece has been moved (every R and B response in), a non-OKAY response to
  one of its reads or writes ends the descriptor with ``Status.HW_ERROR``
  (0x20, ``DSA_COMP_HW_ERR1``): ``bytes_completed`` counts the pieces before
  it, ``result`` is the MEMMOVE direction as for a page fault. The movers
  finish a piece whatever its responses, so the FIFO is empty and nothing
  waits on a response that will not come;
* **semaphores**: SIGNAL writes its 8-byte value as a one-word MEMFILL. WAIT
  reads its 8-byte word through the reader, aligner and FIFO and compares it
  under the mask. Satisfied, timed out or failed, the WAIT is decided: the
  executor reports ``done.consume`` (the dispatcher consumes it) and
  completes it. Otherwise it reports ``done.retry`` and ends with no record
  and no interrupt; the descriptor stays at its ring's head;
* **completes**: write the 32-byte completion record (with CRAV, if RCR is
  set or the status is not success; its page is translated like any write;
  a non-OKAY BRESP to it makes the outcome ``HW_ERROR``, as a fault on its
  page makes it ``PAGE_FAULT``), then send the interrupt message {PASID,
  handle} towards the interrupt remapper if RCI is set and the handle is
  valid. The record's ``cycles`` field (byte 20) holds the cycles from the
  hand-over (``start``) to the RECORD state, where the record is composed:
  it cannot count its own write. ``finish.cycles`` (ENG.LAST_CYCLES) runs
  on to FINISH, so it adds the record's translation and write, and the IRQ
  and FINISH states (``rtl/regs.rdl`` ENG.LAST_CYCLES has the figures).
  The record also holds the cycle of the hand-over, ``now`` then (byte 24:
  the Device's cycle counter, low word), and the executor's engine (byte 28),
  so that software can draw each engine's timeline from its records alone.

Device addresses at or above 2**44 (a page number that does not fit the
tracker's 32-bit page) fault without a tracker request.

The executor is a composition of parts, each with its own unit test, and a
sequencer (:meth:`Executor._sequence`) that steps them:

* :class:`~.pieces.PieceWalker`: the page-bounded pieces and their geometry;
* :class:`~.compare.Comparator`: COMPARE's first difference;
* :class:`~.wsource.WriteSourceSelect`: the writer's data (FIFO, pattern or record);
* :class:`~.xlate.TrackerClient`: one translation through the DMA tracker
  (the prefetch's too);
* the movers (:mod:`.mover`), the data FIFO and its register stage, and the
  interrupt message's register stage (:class:`~siov.rtl.stream.PipeStage`).
"""


from amaranth.lib import enum
import functools
import operator
import types

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..axi4 import Axi4ReadSignature, Axi4WriteSignature
from ..dma.defs import PASID_BITS
from ..dma.tracker import OUT_LAYOUT, REQ_LAYOUT
from ..irq.remapper import HANDLE_WIDTH, MessageLayout
from ..params import DeviceParams, require_params
from .adi import ADI_FAULT_LAYOUT, AdiError
from .dispatch import DONE_LAYOUT, START_LAYOUT
from .dsa import (CR_ALIGN, DESC_BYTES, FILL_ALIGN, MAX_XFER, RESERVED_FLAGS, SEM_ALIGN, CompletionLayout,
                  SIZED_OPCODES, DescriptorLayout, Flag, Opcode, Status)
from ..stream import PipeStage
from .compare import Comparator
from .mover import WORD_BITS, Aligner, AxiReader, AxiWriter
from .pieces import PieceWalker
from .wsource import RECORD_WORDS, WriteSource, WriteSourceSelect
from .xlate import TrackerClient

__all__ = ["Executor", "FIFO_WORDS", "FINISH_LAYOUT"]

#: Data FIFO: one whole piece (4096 bytes at any lane offset is 513 words).
FIFO_WORDS = 1024
_DESC_WORDS = DESC_BYTES // 8
_CR_LOW = exact_log2(CR_ALIGN)        # address bits that must be 0 in a completion address
_FILL_LOW = exact_log2(FILL_ALIGN)    # ... and in a MEMFILL destination
_SEM_LOW = exact_log2(SEM_ALIGN)      # ... and in a semaphore address


class _Then(enum.Enum, shape=2):
    """What follows a translation."""
    SRC = 0     # a piece's source: its destination next
    DST = 1     # a piece's destination (or SIGNAL's word): its movers
    CR = 2      # the completion record's page: its write
    SEM = 3     # WAIT's semaphore: its read


#: A finished descriptor, for the counters: its status, whether it counts as
#: completed (not a WAIT retry), and its cycles.
FINISH_LAYOUT = data.StructLayout({"status": 7, "cycles": 32})


class Executor(wiring.Component):
    """One engine's execution unit.

    Parameters
    ----------
    params : DeviceParams
    engine : int
        The engine's index (0 to ``params.num_engines - 1``), written into
        every completion record.

    Attributes
    ----------
    start : In(stream.Signature(START_LAYOUT))
        The next descriptor; taken when idle. ``ready`` is a register (no path from the state).
    done : Out(stream.Signature(DONE_LAYOUT))
        WAIT decided (``consume``) or to be re-checked (``retry``); held until taken.
    rd_bus : Out(Axi4ReadSignature()), wr_bus : Out(Axi4WriteSignature())
        DMA to host memory.
    adi_fault : Out(stream.Signature(ADI_FAULT_LAYOUT))
        DESC_PASID refusals, held until taken.
    dma_req : Out(stream.Signature(REQ_LAYOUT))
    dma_resp : In(stream.Signature(OUT_LAYOUT))
    irq : Out(stream.Signature(MessageLayout))
    idle : Out(1)
        Can take a descriptor.
    busy_adi : Out(num_adis)
        The ADI whose descriptor executes, and the ADI whose completion
        interrupt message waits in the output register (after the descriptor
        finished, until ``irq`` hands it on): those of its descriptors in flight.
    irq_adi : Out(6)
        The ADI of the message on ``irq``.
    finished : Out(1), finish : Out(FINISH_LAYOUT)
        A descriptor completed this cycle, with its status and cycles.
    refused : Out(1)
        A descriptor was refused this cycle (DESC_PASID).
    retried : Out(1)
        A WAIT was left for a re-check this cycle; ``finish.cycles`` holds its cycles.
    now : In(32)
        The low word of the Device's cycle counter (GLOBAL.CYCLE_LO); its value
        in the cycle of the hand-over is the record's ``start_cycle``.

    Raises
    ------
    ValueError
        If ``engine`` is not an integer from 0 to ``params.num_engines - 1``.
    """

    def __init__(self, params=DeviceParams(), engine=0):
        self.params = require_params(params, "Executor")
        if not isinstance(engine, int) or not 0 <= engine < params.num_engines:
            raise ValueError(f"Engine index must be an integer from 0 to {params.num_engines - 1}, "
                             f"not {engine!r}")
        self.engine = engine
        n = params.num_adis
        super().__init__({
            "now": In(32),
            "start": In(stream.Signature(START_LAYOUT)),
            "done": Out(stream.Signature(DONE_LAYOUT)),
            "rd_bus": Out(Axi4ReadSignature()),
            "wr_bus": Out(Axi4WriteSignature()),
            "adi_fault": Out(stream.Signature(ADI_FAULT_LAYOUT)),
            "dma_req": Out(stream.Signature(REQ_LAYOUT)),
            "dma_resp": In(stream.Signature(OUT_LAYOUT)),
            "irq": Out(stream.Signature(MessageLayout)),
            "idle": Out(1),
            "busy_adi": Out(n),
            "irq_adi": Out(6),
            "finished": Out(1),
            "finish": Out(FINISH_LAYOUT),
            "refused": Out(1),
            "retried": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # ---- parts ---------------------------------------------------------------------
        m.submodules.reader = rd = AxiReader()
        m.submodules.writer = wr = AxiWriter()
        m.submodules.aligner = al = Aligner()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=WORD_BITS, depth=FIFO_WORDS)
        m.submodules.fifo_head = head = PipeStage(WORD_BITS)
        m.submodules.walker = walk = PieceWalker()
        m.submodules.comparator = cmp = Comparator()
        m.submodules.wsource = wsel = WriteSourceSelect()
        m.submodules.xlate = xc = TrackerClient()
        # The completion interrupt message enters a register stage in state IRQ
        # (the remapper sees a registered valid and payload).
        m.submodules.irq_stage = irq_stage = PipeStage(MessageLayout.size)
        wiring.connect(m, rd.bus, wiring.flipped(self.rd_bus))
        wiring.connect(m, wr.bus, wiring.flipped(self.wr_bus))
        wiring.connect(m, xc.req, wiring.flipped(self.dma_req))
        wiring.connect(m, wiring.flipped(self.dma_resp), xc.resp)
        wiring.connect(m, wsel.out, wr.data)

        # ---- data path: reader -> aligner -> FIFO -> head -> writer or comparator ----------
        m.d.comb += [fifo.w_en.eq(al.out.valid), fifo.w_data.eq(al.out.payload),
                     al.out.ready.eq(fifo.w_rdy)]
        # The FIFO's block RAM output goes straight into a register stage;
        # everything downstream reads `head` (valid/ready/data) instead.
        m.d.comb += [head.inp.valid.eq(fifo.r_rdy), head.inp.payload.eq(fifo.r_data),
                     fifo.r_en.eq(head.inp.ready)]
        route_compare = Signal()        # reader -> comparator instead of the aligner
        fifo_pop_sem = Signal()         # WAIT: its word leaves the FIFO
        with m.If(route_compare):
            m.d.comb += [cmp.fire.eq(rd.data.valid & head.out.valid), rd.data.ready.eq(head.out.valid),
                         cmp.a.eq(head.out.payload), cmp.b.eq(rd.data.payload),
                         head.out.ready.eq(cmp.fire)]
        with m.Else():
            wiring.connect(m, rd.data, al.inp)
            m.d.comb += head.out.ready.eq(fifo_pop_sem | wsel.fifo.ready)
        m.d.comb += [wsel.fifo.valid.eq(head.out.valid), wsel.fifo.payload.eq(head.out.payload)]

        # ---- the descriptor and its decodes --------------------------------------------------
        desc = Signal(DescriptorLayout)
        opcode = desc.opcode.as_value()
        flags = desc.flags
        # The opcode's decodes, registered every cycle: the opcode is loaded
        # (LOAD_WORD) at least six cycles before the first state that reads
        # them (CHECK), and holds for the whole descriptor. (Sized:
        # dsa.SIZED_OPCODES; known: every Opcode, the unsized ones ORed ahead.)
        d = types.SimpleNamespace(**{name: Signal(name=name) for name in
                                     ("is_move", "is_fill", "is_cmp", "is_wait", "is_signal", "sized", "known")})
        dec = {op: opcode == op.value for op in Opcode}
        sized_now = functools.reduce(operator.or_, (dec[op] for op in SIZED_OPCODES))
        unsized_now = functools.reduce(operator.or_, (dec[op] for op in Opcode if op not in SIZED_OPCODES))
        m.d.sync += [d.is_move.eq(dec[Opcode.MEMMOVE]), d.is_fill.eq(dec[Opcode.MEMFILL]),
                     d.is_cmp.eq(dec[Opcode.COMPARE]), d.is_wait.eq(dec[Opcode.WAIT]),
                     d.is_signal.eq(dec[Opcode.SIGNAL]), d.sized.eq(sized_now),
                     d.known.eq(unsized_now | sized_now)]
        d.bad_flags = Signal(24)
        m.d.comb += d.bad_flags.eq((flags & RESERVED_FLAGS)
                                   | Mux((flags & Flag.RCR.value).any() & ~(flags & Flag.CRAV.value).any(),
                                         Flag.RCR.value, 0))
        d.rci = (flags & Flag.RCI.value).any()
        d.crav = (flags & Flag.CRAV.value).any()
        d.rcr = (flags & Flag.RCR.value).any()
        d.handle_ok = desc.int_handle < self.params.ims_entries

        # ---- the parts' inputs that follow the descriptor and the piece ---------------------------
        lane_s, lane_d = walk.p_src[:3], walk.p_dst[:3]
        m.d.comb += [
            walk.src.eq(desc.src_addr), walk.dst.eq(desc.dst_addr), walk.size.eq(desc.xfer_size),
            walk.move.eq(d.is_move), walk.fill.eq(d.is_fill),
            cmp.first_strb.eq(walk.first_strb), cmp.last_strb.eq(walk.last_strb), cmp.last_k.eq(walk.last_k),
            cmp.p_lo.eq(walk.p_lo), cmp.lane.eq(lane_d), walk.stop_at.eq(cmp.at),
            wsel.pattern.eq(Mux(d.is_signal, desc.sem_value, desc.src_addr)),
            xc.pasid.eq(desc.pasid),
        ]
        msg_rest = MessageLayout.size - 1 - PASID_BITS - HANDLE_WIDTH     # addr and data: zero
        m.d.comb += [irq_stage.inp.payload.eq(Cat(Const(1, 1), desc.pasid, desc.int_handle, Const(0, msg_rest))),
                     self.irq.valid.eq(irq_stage.out.valid),
                     self.irq.payload.as_value().eq(irq_stage.out.payload),
                     irq_stage.out.ready.eq(self.irq.ready)]

        # The movers' commands leave from registers: a state sets a mover's
        # `go` (and what its command is for), and the command is valid in
        # the next cycle, when the mover is idle and takes it. (A valid from
        # the state and its conditions in the same cycle reached the movers'
        # command registers' enables through six LUTs.) Until then the
        # mover counts as busy.
        h_src, h_dst = Signal(64, name="h_src"), Signal(64, name="h_dst")    # host addresses, translated
        go = types.SimpleNamespace(**{name: Signal(name=name) for name in
                                      ("rd_go", "al_go", "wr_go", "rd_sem", "rd_cmp", "al_sem", "wr_record")})
        m.d.sync += [go.rd_go.eq(0), go.al_go.eq(0), go.wr_go.eq(0)]
        m.d.comb += [
            rd.cmd.valid.eq(go.rd_go), al.cmd.valid.eq(go.al_go), wr.cmd.valid.eq(go.wr_go),
            # a piece's source, a WAIT's semaphore (1 word), or COMPARE's source 2
            rd.cmd.payload.addr.eq(Mux(go.rd_cmp, h_dst, h_src)),
            rd.cmd.payload.words.eq(Mux(go.rd_sem, 1, Mux(go.rd_cmp, walk.words_d, walk.words_s))),
            al.cmd.payload.lane_in.eq(Mux(go.al_sem, 0, lane_s)),
            al.cmd.payload.lane_out.eq(Mux(go.al_sem, 0, lane_d)),
            al.cmd.payload.words_in.eq(Mux(go.al_sem, 1, walk.words_s)),
            al.cmd.payload.words_out.eq(Mux(go.al_sem, 1, walk.words_d)),
            # a piece's destination or the completion record (4 whole words)
            wr.cmd.payload.addr.eq(h_dst),
            wr.cmd.payload.words.eq(Mux(go.wr_record, RECORD_WORDS, walk.words_d)),
            wr.cmd.payload.first_strb.eq(Mux(go.wr_record, 0xFF, walk.first_strb)),
            wr.cmd.payload.last_strb.eq(Mux(go.wr_record, 0xFF, walk.last_strb)),
        ]
        parts = types.SimpleNamespace(rd=rd, wr=wr, al=al, walk=walk, cmp=cmp, wsel=wsel, xc=xc,
                                      irq_stage=irq_stage, head=head, go=go, h_src=h_src, h_dst=h_dst,
                                      route_compare=route_compare,
                                      fifo_pop_sem=fifo_pop_sem)
        self._sequence(m, desc, d, parts)
        return m

    def _sequence(self, m, desc, d, parts):
        """The sequencer: the descriptor's states, from the hand-over to FINISH."""
        n = self.params.num_adis
        rd, wr, al, walk, cmp, wsel, xc, go = (parts.rd, parts.wr, parts.al, parts.walk, parts.cmp,
                                                parts.wsel, parts.xc, parts.go)
        cur = Signal(range(max(n, 2)))            # ADI being executed
        timed_out = Signal()                      # a failing WAIT check times out
        cycles = Signal(32)
        start_cycle = Signal(32)                  # the cycle counter at the hand-over
        status = Signal(Status)
        invalid = Signal(24)
        result = Signal(8)
        fault_addr = Signal(64)
        fault_write = Signal()
        cmp_src_err = Signal()                    # COMPARE: the piece's source-1 read saw an error
        busy_adi = Signal()
        adi_pasid = Signal(PASID_BITS)            # the executing ADI's PASID, latched
        h_src, h_dst = parts.h_src, parts.h_dst
        wsrc = Signal(WriteSource)
        then = Signal(_Then)
        record = Signal(CompletionLayout)
        irq_adi = Signal(range(max(n, 2)))       # the ADI of the message in irq_stage
        rd_busy, al_busy, wr_busy = rd.busy | go.rd_go, al.busy | go.al_go, wr.busy | go.wr_go
        m.d.comb += [wsel.sel.eq(wsrc), wsel.record.eq(record),
                     self.busy_adi.eq(Mux(busy_adi, (Const(1, n) << cur)[:n], 0)
                                      | Mux(self.irq.valid, (Const(1, n) << irq_adi)[:n], 0)),
                     self.irq_adi.eq(irq_adi),
                     self.finish.status.eq(status), self.finish.cycles.eq(cycles)]
        m.d.sync += cycles.eq(cycles + busy_adi)
        with m.If(self.adi_fault.valid & self.adi_fault.ready):
            m.d.sync += self.adi_fault.valid.eq(0)
        with m.If(self.done.valid & self.done.ready):
            m.d.sync += self.done.valid.eq(0)

        def issue(*movers, sem=False, cmp=False, record=False):
            if "rd" in movers:
                m.d.sync += [go.rd_go.eq(1), go.rd_sem.eq(sem), go.rd_cmp.eq(cmp)]
            if "al" in movers:
                m.d.sync += [go.al_go.eq(1), go.al_sem.eq(sem)]
            if "wr" in movers:
                m.d.sync += [go.wr_go.eq(1), go.wr_record.eq(record)]

        def report(consume=False, retry=False):
            m.d.sync += [self.done.valid.eq(1), self.done.payload.adi.eq(cur),
                         self.done.payload.consume.eq(consume), self.done.payload.retry.eq(retry)]

        def translate(addr, write, then_):
            m.d.comb += [xc.start.eq(1), xc.addr.eq(addr), xc.write.eq(write)]
            m.d.sync += then.eq(then_)
            m.next = "XLATE"

        def start_move():
            # The piece's last translation is in: issue its movers (their
            # commands are valid in the next cycle, with h_dst).
            with m.If(d.is_fill | d.is_signal):
                m.d.sync += wsrc.eq(WriteSource.PATTERN)
                issue("wr")
                m.next = "MOVE_WAIT"
            with m.Elif(d.is_cmp):
                # Phase 1: source 1 into the FIFO, aligned to source 2's lanes.
                issue("rd", "al")
                m.next = "CMP_FILL"
            with m.Else():
                m.d.sync += wsrc.eq(WriteSource.FIFO)
                with m.If(walk.overlap):
                    issue("rd", "al")
                    m.next = "MOVE_STORE"
                with m.Else():
                    issue("rd", "al", "wr")
                    m.next = "MOVE_WAIT"

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(~self.done.valid)      # start.ready: registered, as IDLE lasts to a take
                m.d.sync += self.start.ready.eq(~self.done.valid & ~(self.start.valid & self.start.ready))
                with m.If(self.start.valid & self.start.ready):
                    st = self.start.payload
                    m.d.sync += [cur.eq(st.adi), adi_pasid.eq(st.pasid), timed_out.eq(st.timed_out),
                                 desc.eq(st.desc), busy_adi.eq(1), cycles.eq(0),
                                 start_cycle.eq(self.now)]
                    m.next = "PREPARE"
            with m.State("PREPARE"):
                m.d.comb += walk.prepare.eq(1)
                m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += [walk.begin.eq(1), cmp.clear.eq(1)]
                m.d.sync += [status.eq(Status.SUCCESS), invalid.eq(0), result.eq(0), fault_addr.eq(0),
                             fault_write.eq(0)]
                self._checks(m, desc, d, adi_pasid, status, invalid, walk, translate)
            with m.State("ORIENT"):
                # The first piece's pointers; its PIECE test is known (the size is not zero).
                m.d.comb += walk.orient.eq(1)
                m.next = "PIECE_LEN"
            with m.State("REFUSE"):
                m.d.sync += [self.adi_fault.valid.eq(1), self.adi_fault.payload.adi.eq(cur),
                             self.adi_fault.payload.code.eq(AdiError.DESC_PASID), busy_adi.eq(0)]
                m.d.comb += self.refused.eq(1)
                with m.If(d.is_wait):
                    report(consume=True)
                m.next = "SETTLE"
            with m.State("SETTLE"):
                # Until the fault beat has been taken (the ADI block acts on it
                # then, and `pending` falls in the next cycle): no descriptor of
                # an ADI going ERROR is taken in between.
                with m.If(~self.adi_fault.valid):
                    m.next = "IDLE"

            # ---- pieces ---------------------------------------------------------------------
            with m.State("PIECE"):
                with m.If(cmp.found):
                    m.d.comb += walk.stop.eq(1)
                    m.d.sync += result.eq(1)
                    m.next = "RECORD"
                with m.Elif(walk.last):
                    with m.If(d.is_move):
                        m.d.sync += result.eq(walk.down)
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
                    translate(walk.p_dst, 1, _Then.DST)
                with m.Else():
                    translate(walk.p_src, 0, _Then.SRC)

            # ---- translation through the DMA tracker ---------------------------------------
            with m.State("XLATE"):
                with m.If(xc.done & xc.fault):
                    m.next = "XLATE_FAULT"
                with m.Elif(xc.done):
                    with m.Switch(then):
                        with m.Case(_Then.SEM):
                            m.d.sync += h_src.eq(xc.host)
                            m.next = "SEM_READ"
                        with m.Case(_Then.SRC):
                            m.d.sync += h_src.eq(xc.host)
                            translate(walk.p_dst, d.is_move, _Then.DST)
                        with m.Case(_Then.DST):
                            m.d.sync += h_dst.eq(xc.host)
                            start_move()
                        with m.Case(_Then.CR):
                            # The record's page is translated: write its four words.
                            m.d.sync += [h_dst.eq(xc.host), wsrc.eq(WriteSource.RECORD)]
                            m.d.comb += wsel.restart.eq(1)
                            issue("wr", record=True)
                            m.next = "RECORD_WAIT"
            with m.State("XLATE_FAULT"):
                m.d.sync += status.eq(Status.PAGE_FAULT)
                with m.If(then == _Then.CR):
                    m.d.sync += [fault_write.eq(1), fault_addr.eq(desc.completion_addr)]
                    m.next = "IRQ"
                with m.Else():
                    m.d.sync += [fault_write.eq(xc.x_write), fault_addr.eq(xc.x_addr),
                                 result.eq(d.is_move & walk.down)]
                    m.next = "RECORD"

            # ---- data movement ---------------------------------------------------------------
            with m.State("MOVE_STORE"):
                with m.If(~rd_busy & ~al_busy):
                    issue("wr")
                    m.next = "MOVE_WAIT"
            with m.State("MOVE_WAIT"):
                with m.If(~rd_busy & ~al_busy & ~wr_busy):
                    # The piece is fully read and written: an error response on
                    # either side ends the descriptor (MEMFILL issued no read,
                    # so the reader's flag may be left from an earlier command).
                    with m.If(wr.error | (rd.error & ~d.is_fill & ~d.is_signal)):
                        m.d.sync += [status.eq(Status.HW_ERROR), result.eq(d.is_move & walk.down)]
                        m.next = "RECORD"
                    with m.Elif(d.is_signal):
                        m.next = "RECORD"
                    with m.Else():
                        m.next = "ADVANCE"
            with m.State("ADVANCE"):
                m.d.comb += walk.advance.eq(1)
                m.next = "PIECE"
            with m.State("CMP_FILL"):
                with m.If(~rd_busy & ~al_busy):
                    # Source 2's read clears the reader's error flag: keep source 1's.
                    m.d.comb += cmp.restart.eq(1)
                    m.d.sync += [parts.route_compare.eq(1), cmp_src_err.eq(rd.error)]
                    m.next = "CMP_READ"
            with m.State("CMP_READ"):
                issue("rd", cmp=True)
                m.next = "CMP_WAIT"
            with m.State("CMP_WAIT"):
                with m.If(~rd_busy):
                    m.next = "CMP_SETTLE"
            with m.State("CMP_SETTLE"):
                # One more cycle: the registered comparison of the last word lands.
                m.d.sync += parts.route_compare.eq(0)
                with m.If(cmp_src_err | rd.error):
                    # Both sources were read whole (the FIFO is empty again); an
                    # error outranks any difference found in the piece.
                    m.d.sync += status.eq(Status.HW_ERROR)
                    m.next = "RECORD"
                with m.Elif(cmp.pending | cmp.found):
                    m.next = "PIECE"
                with m.Else():
                    m.next = "ADVANCE"

            # ---- WAIT ------------------------------------------------------------------------------
            with m.State("SEM_READ"):
                with m.If(~rd_busy & ~al_busy):
                    issue("rd", "al", sem=True)
                    m.next = "SEM_CHECK"
            with m.State("SEM_CHECK"):
                # The word has passed the aligner and the FIFO, so its R beat
                # has been seen: `rd.error` is final.
                head = parts.head.out
                with m.If(head.valid):
                    m.d.comb += parts.fifo_pop_sem.eq(1)
                    with m.If(rd.error):
                        m.d.sync += status.eq(Status.HW_ERROR)
                        m.next = "RECORD"
                    with m.Elif((head.payload & desc.sem_mask) == desc.sem_value):
                        m.next = "RECORD"
                    with m.Elif(timed_out):
                        m.d.sync += status.eq(Status.WAIT_TIMEOUT)
                        m.next = "RECORD"
                    with m.Else():
                        m.next = "SEM_RETRY"
            with m.State("SEM_RETRY"):
                # Not satisfied: no record, no interrupt; the descriptor stays
                # at its ring's head and the ADI waits for a re-check tick.
                report(retry=True)
                m.d.comb += self.retried.eq(1)
                m.d.sync += busy_adi.eq(0)
                m.next = "IDLE"

            # ---- completion ----------------------------------------------------------------------
            with m.State("RECORD"):
                with m.If(d.is_wait):
                    report(consume=True)
                m.d.sync += self._compose(record, desc, d, status, result, fault_addr, fault_write, invalid,
                                          walk.done, cycles, start_cycle)
                with m.If(d.crav & (desc.completion_addr[:_CR_LOW] == 0) & (d.rcr | (status != Status.SUCCESS))):
                    translate(desc.completion_addr, 1, _Then.CR)
                with m.Else():
                    m.next = "IRQ"
            with m.State("RECORD_WAIT"):
                with m.If(~wr_busy):
                    m.d.sync += wsrc.eq(WriteSource.FIFO)
                    with m.If(wr.error):
                        # The record did not reach memory: the descriptor's outcome
                        # is the error (ENG.LAST_STATUS, DESC_FAILED), as for a
                        # record whose page faults.
                        m.d.sync += status.eq(Status.HW_ERROR)
                    m.next = "IRQ"
            with m.State("IRQ"):
                with m.If(d.rci & d.handle_ok):
                    m.d.comb += parts.irq_stage.inp.valid.eq(1)
                    with m.If(parts.irq_stage.inp.ready):
                        m.d.sync += irq_adi.eq(cur)
                        m.next = "FINISH"
                with m.Else():
                    m.next = "FINISH"
            with m.State("FINISH"):
                m.d.sync += busy_adi.eq(0)
                m.d.comb += self.finished.eq(1)
                m.next = "IDLE"

    @staticmethod
    def _checks(m, desc, d, adi_pasid, status, invalid, walk, translate):
        """State CHECK: the descriptor's checks in the model's order (:mod:`.dsa`), and
        the state each outcome leads to."""
        with m.If(desc.pasid != adi_pasid):
            m.next = "REFUSE"
        with m.Elif(~d.known):
            m.d.sync += status.eq(Status.BAD_OPCODE)
            m.next = "RECORD"
        with m.Elif(d.bad_flags != 0):
            m.d.sync += [status.eq(Status.INVALID_FLAGS), invalid.eq(d.bad_flags)]
            m.next = "RECORD"
        with m.Elif(d.rci & ~d.handle_ok):
            m.d.sync += status.eq(Status.INVALID_INT_HANDLE)
            m.next = "RECORD"
        with m.Elif(d.sized & ((desc.xfer_size == 0) | (desc.xfer_size > MAX_XFER))):
            m.d.sync += status.eq(Status.XFER_SIZE)
            m.next = "RECORD"
        with m.Elif((d.crav & (desc.completion_addr[:_CR_LOW] != 0))
                    | (d.is_fill & (desc.dst_addr[:_FILL_LOW] != 0))
                    | (d.is_wait & (desc.src_addr[:_SEM_LOW] != 0))
                    | (d.is_signal & (desc.dst_addr[:_SEM_LOW] != 0))):
            m.d.sync += status.eq(Status.ADDR_ALIGN)
            m.next = "RECORD"
        with m.Elif(d.sized):
            m.next = "ORIENT"
        with m.Elif(d.is_wait):
            translate(desc.src_addr, 0, _Then.SEM)
        with m.Elif(d.is_signal):
            # One whole word (the address is aligned): as a one-word MEMFILL.
            m.d.comb += walk.one_word.eq(1)
            translate(desc.dst_addr, 1, _Then.DST)
        with m.Else():
            m.next = "RECORD"

    def _compose(self, record, desc, d, status, result, fault_addr, fault_write, invalid, done, cycles,
                 start_cycle):
        """State RECORD: the completion record's fields (``struct dsa_completion_record``)."""
        partial = (status == Status.PAGE_FAULT) | (status == Status.HW_ERROR)
        whole = Mux(d.sized, Mux(result.any() & d.is_cmp, done, desc.xfer_size), 0)
        return [
            record.status.eq(status), record.status_write.eq(fault_write),
            record.result.eq(result), record.fault_info.eq(0), record.rsvd.eq(0),
            record.bytes_completed.eq(Mux(partial, done, Mux(status == Status.SUCCESS, whole, 0))),
            record.fault_addr.eq(fault_addr), record.invalid_flags.eq(invalid),
            record.rsvd2.eq(0), record.cycles.eq(cycles),
            record.start_cycle.eq(start_cycle), record.engine.eq(self.engine), record.rsvd3.eq(0),
        ]
