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
"""


import functools
import operator

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..axi4 import Axi4ReadSignature, Axi4WriteSignature
from ..dma.defs import PAGE_SHIFT, PASID_BITS, TRANSLATABLE_BITS
from ..dma.tracker import OUT_LAYOUT, REQ_LAYOUT
from ..irq.remapper import HANDLE_WIDTH, MessageLayout
from ..params import DeviceParams, require_params
from .adi import ADI_FAULT_LAYOUT, AdiError
from .dispatch import DONE_LAYOUT, START_LAYOUT
from .dsa import (CR_ALIGN, DESC_BYTES, FILL_ALIGN, MAX_XFER, RESERVED_FLAGS, SEM_ALIGN, CompletionLayout,
                  SIZED_OPCODES, DescriptorLayout, Flag, Opcode, Status)
from ..stream import PipeStage
from .mover import COUNT_BITS, WORD_BITS, Aligner, AxiReader, AxiWriter

__all__ = ["Executor", "FIFO_WORDS", "FINISH_LAYOUT"]

#: Data FIFO: one whole piece (4096 bytes at any lane offset is 513 words).
FIFO_WORDS = 1024
_DESC_WORDS = DESC_BYTES // 8
_CR_LOW = exact_log2(CR_ALIGN)        # address bits that must be 0 in a completion address
_FILL_LOW = exact_log2(FILL_ALIGN)    # ... and in a MEMFILL destination
_SEM_LOW = exact_log2(SEM_ALIGN)      # ... and in a semaphore address
_CR_WORDS = 4


def _strobes(lane_first, length):
    """(first-word strobes, last-word strobes) for ``length`` bytes starting in ``lane_first``."""
    last_lane = (lane_first + length - 1)[:3]
    return (Const(0xFF, 8) << lane_first)[:8], (Const(0xFF, 8) >> (~last_lane)[:3])[:8]


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
        The next descriptor; taken when idle.
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
        p = self.params
        n = p.num_adis

        # ---- data path -------------------------------------------------------------
        m.submodules.reader = rd = AxiReader()
        m.submodules.writer = wr = AxiWriter()
        m.submodules.aligner = al = Aligner()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=WORD_BITS, depth=FIFO_WORDS)
        wiring.connect(m, rd.bus, wiring.flipped(self.rd_bus))
        wiring.connect(m, wr.bus, wiring.flipped(self.wr_bus))
        m.d.comb += [fifo.w_en.eq(al.out.valid), fifo.w_data.eq(al.out.payload),
                     al.out.ready.eq(fifo.w_rdy)]
        # The FIFO's block RAM output goes straight into a register stage;
        # everything downstream reads `head` (valid/ready/data) instead.
        m.submodules.fifo_head = head = PipeStage(WORD_BITS)
        fifo_pop = Signal()
        m.d.comb += [head.inp.valid.eq(fifo.r_rdy), head.inp.payload.eq(fifo.r_data),
                     fifo.r_en.eq(head.inp.ready), head.out.ready.eq(fifo_pop)]
        fifo_rdy = head.out.valid
        fifo_data = head.out.payload

        route_compare = Signal()        # reader -> comparator instead of the aligner
        cmp_a = Signal(WORD_BITS)
        cmp_b = Signal(WORD_BITS)
        cmp_fire = Signal()
        with m.If(route_compare):
            m.d.comb += [cmp_fire.eq(rd.data.valid & fifo_rdy),
                         rd.data.ready.eq(fifo_rdy), cmp_a.eq(fifo_data),
                         cmp_b.eq(rd.data.payload)]
        with m.Else():
            wiring.connect(m, rd.data, al.inp)

        SRC_FIFO, SRC_PATTERN, SRC_RECORD = 0, 1, 2
        pattern = Signal(WORD_BITS)     # MEMFILL's pattern or SIGNAL's value
        wsrc = Signal(2)
        rec_word = Signal(2)
        record = Signal(CompletionLayout)
        desc = Signal(DescriptorLayout)
        desc_bits = desc.as_value()
        with m.Switch(wsrc):
            with m.Case(SRC_FIFO):
                m.d.comb += [wr.data.valid.eq(fifo_rdy), wr.data.payload.eq(fifo_data)]
            with m.Case(SRC_PATTERN):
                # MEMFILL's pattern, or SIGNAL's value (one word)
                m.d.comb += [wr.data.valid.eq(1), wr.data.payload.eq(pattern)]
            with m.Case(SRC_RECORD):
                m.d.comb += [wr.data.valid.eq(1),
                             wr.data.payload.eq(record.as_value().word_select(rec_word, WORD_BITS))]
        with m.If(wr.data.valid & wr.data.ready & (wsrc == SRC_RECORD)):
            m.d.sync += rec_word.eq(rec_word + 1)

        fifo_pop_sem = Signal()                   # WAIT: its word leaves the FIFO
        m.d.comb += fifo_pop.eq(Mux(route_compare, cmp_fire,
                                    fifo_pop_sem | ((wsrc == SRC_FIFO) & wr.data.ready)))

        # ---- sequencer state ----------------------------------------------------------
        cur = Signal(range(max(n, 2)))            # ADI being executed
        timed_out = Signal()                      # a failing WAIT check times out
        cycles = Signal(32)
        start_cycle = Signal(32)                  # the cycle counter at the hand-over
        status = Signal(Status)
        invalid = Signal(24)
        result = Signal(8)
        fault_addr = Signal(64)
        fault_write = Signal()
        done = Signal(32)                         # bytes completed
        down = Signal()                           # descending MEMMOVE
        diff_found = Signal()
        diff_at = Signal(32)
        cmp_src_err = Signal()                    # COMPARE: the piece's source-1 read saw an error
        busy_adi = Signal()

        # Piece registers.
        p_src = Signal(64)
        p_dst = Signal(64)
        p_len = Signal(13)
        p_lo = Signal(32)
        adi_pasid = Signal(PASID_BITS)            # the executing ADI's PASID, latched
        h_src = Signal(64)                        # host addresses after translation
        h_dst = Signal(64)
        x_addr = Signal(64)                       # address being translated
        x_write = Signal()

        opcode = desc.opcode.as_value()
        flags = desc.flags
        # The opcode's decodes, registered every cycle: the opcode is loaded
        # (LOAD_WORD) at least six cycles before the first state that reads
        # them (CHECK), and holds for the whole descriptor.
        is_move, is_fill, is_cmp = Signal(name="is_move"), Signal(name="is_fill"), Signal(name="is_cmp")
        is_wait, is_signal = Signal(name="is_wait"), Signal(name="is_signal")
        sized, known = Signal(name="sized"), Signal(name="known")
        # (Sized: dsa.SIZED_OPCODES; known: every Opcode, the unsized ones
        # ORed ahead of the sized.)
        dec = {op: opcode == op.value for op in Opcode}
        sized_now = functools.reduce(operator.or_, (dec[op] for op in SIZED_OPCODES))
        unsized_now = functools.reduce(operator.or_, (dec[op] for op in Opcode if op not in SIZED_OPCODES))
        m.d.sync += [is_move.eq(dec[Opcode.MEMMOVE]), is_fill.eq(dec[Opcode.MEMFILL]),
                     is_cmp.eq(dec[Opcode.COMPARE]), is_wait.eq(dec[Opcode.WAIT]),
                     is_signal.eq(dec[Opcode.SIGNAL]), sized.eq(sized_now),
                     known.eq(unsized_now | sized_now)]
        m.d.comb += pattern.eq(Mux(is_signal, desc.sem_value, desc.src_addr))
        bad_flags = Signal(24)
        m.d.comb += bad_flags.eq((flags & RESERVED_FLAGS)
                                 | Mux((flags & Flag.RCR.value).any() & ~(flags & Flag.CRAV.value).any(),
                                       Flag.RCR.value, 0))
        rci = (flags & Flag.RCI.value).any()
        crav = (flags & Flag.CRAV.value).any()
        rcr = (flags & Flag.RCR.value).any()
        handle_ok = desc.int_handle < p.ims_entries

        irq_adi = Signal(range(max(n, 2)))       # the ADI of the message in irq_stage
        m.d.comb += self.busy_adi.eq(Mux(busy_adi, (Const(1, n) << cur)[:n], 0)
                                     | Mux(self.irq.valid, (Const(1, n) << irq_adi)[:n], 0))
        m.d.comb += self.irq_adi.eq(irq_adi)
        with m.If(busy_adi):
            m.d.sync += cycles.eq(cycles + 1)

        # Tracker port: one request, then one response (always taken).
        m.d.comb += [self.dma_req.payload.pasid.eq(desc.pasid),
                     self.dma_req.payload.page.eq(x_addr[PAGE_SHIFT:TRANSLATABLE_BITS]),
                     self.dma_req.payload.write.eq(x_write),
                     self.dma_resp.ready.eq(1)]
        resp = self.dma_resp.payload

        # Piece geometry from running pointers, so that no 64-bit adder sits in
        # front of a comparison: `at_src`/`at_dst` are the next piece's start
        # (ascending) or end, exclusive (descending); `rem` the bytes left.
        at_src = Signal(64)
        at_dst = Signal(64)
        rem = Signal(32)
        src_end = Signal(64)                      # src + size, for the overlap test
        dst_end = Signal(64)                      # dst + size
        gap = Signal(64)                          # dst - src
        # Bytes to the page boundary on each side, registered every cycle (valid
        # one cycle after the pointers move, which is when PIECE_LEN uses them).
        len_src = Signal(13)
        len_dst = Signal(13)
        def to_page_end(at):
            return Mux(down, Mux(at[:12] == 0, 4096, at[:12]), 4096 - at[:12])
        m.d.sync += [len_src.eq(to_page_end(at_src)), len_dst.eq(to_page_end(at_dst))]
        plen = Signal(13)
        lim = Signal(13)
        m.d.comb += lim.eq(Mux(is_fill | (len_dst < len_src), len_dst, len_src))
        m.d.comb += plen.eq(Mux((rem[13:] == 0) & (rem[:13] < lim), rem, lim))

        # Word counts and strobes of the piece, registered in PIECE_XLATE (after
        # p_src/p_dst/p_len are), so no adder feeds the movers or the comparator.
        lane_s, lane_d = p_src[:3], p_dst[:3]
        words_s = Signal(COUNT_BITS)
        words_d = Signal(COUNT_BITS)
        last_k = Signal(COUNT_BITS)
        first_strb = Signal(8)
        last_strb = Signal(8)
        fs, ls = _strobes(lane_d, p_len)
        overlap_in_piece = Signal()
        piece_words = [words_s.eq((lane_s + p_len + 7) >> 3), words_d.eq((lane_d + p_len + 7) >> 3),
                       last_k.eq(((lane_d + p_len + 7) >> 3) - 1), first_strb.eq(fs), last_strb.eq(ls),
                       # the destination starts inside the piece's source: store, then forward
                       overlap_in_piece.eq(down & (gap[13:] == 0) & (gap[:13] < p_len))]

        # Comparator: masks of the bytes that belong to the piece.
        cmp_k = Signal(COUNT_BITS)
        lane_mask = Signal(8)
        m.d.comb += lane_mask.eq(Mux(cmp_k == 0, first_strb, 0xFF)
                                 & Mux(cmp_k == last_k, last_strb, 0xFF))
        neq = Signal(8)
        for b in range(8):
            m.d.comb += neq[b].eq((cmp_a[8 * b:8 * b + 8] != cmp_b[8 * b:8 * b + 8]) & lane_mask[b])
        first_neq = Signal(3)
        for b in reversed(range(8)):
            with m.If(neq[b]):
                m.d.comb += first_neq.eq(b)
        # Registered: which lanes differed in word cmp_k; the offset is formed a cycle later.
        neq_q = Signal(8)
        first_q = Signal(3)
        k_q = Signal(COUNT_BITS)
        m.d.sync += neq_q.eq(0)
        with m.If(cmp_fire):
            m.d.sync += [cmp_k.eq(cmp_k + 1), neq_q.eq(neq), first_q.eq(first_neq), k_q.eq(cmp_k)]
        with m.If(neq_q.any() & ~diff_found):
            m.d.sync += [diff_found.eq(1),
                         diff_at.eq(p_lo + (k_q << 3) + first_q - lane_d)]

        xlate_then = Signal(3)
        X_SRC, X_DST, X_CR, X_SEM = 0, 1, 2, 3
        xhost = Signal(64)
        m.d.comb += xhost.eq(resp.addr | x_addr[:12])

        # The completion interrupt message enters a register stage in state IRQ
        # (the remapper sees a registered valid and payload).
        m.submodules.irq_stage = irq_stage = PipeStage(MessageLayout.size)
        msg_rest = MessageLayout.size - 1 - PASID_BITS - HANDLE_WIDTH     # addr and data: zero
        m.d.comb += [irq_stage.inp.payload.eq(
            Cat(Const(1, 1), desc.pasid, desc.int_handle, Const(0, msg_rest))),
            self.irq.valid.eq(irq_stage.out.valid), self.irq.payload.as_value().eq(irq_stage.out.payload),
            irq_stage.out.ready.eq(self.irq.ready)]

        # The movers' commands leave from registers: a state sets a mover's
        # `go` (and what its command is for), and the command is valid in
        # the next cycle, when the mover is idle and takes it. (A valid from
        # the state and its conditions in the same cycle reached the movers'
        # command registers' enables through six LUTs.) Until then the
        # mover counts as busy.
        rd_go, al_go, wr_go = Signal(name="rd_go"), Signal(name="al_go"), Signal(name="wr_go")
        rd_sem, rd_cmp = Signal(name="rd_sem"), Signal(name="rd_cmp")       # else: a piece's source
        al_sem = Signal(name="al_sem")                                       # else: a piece
        wr_record = Signal(name="wr_record")                                 # else: a piece
        m.d.sync += [rd_go.eq(0), al_go.eq(0), wr_go.eq(0)]
        rd_busy, al_busy, wr_busy = rd.busy | rd_go, al.busy | al_go, wr.busy | wr_go

        def issue(*movers, sem=False, cmp=False, record=False):
            stmts = []
            if "rd" in movers:
                stmts += [rd_go.eq(1), rd_sem.eq(sem), rd_cmp.eq(cmp)]
            if "al" in movers:
                stmts += [al_go.eq(1), al_sem.eq(sem)]
            if "wr" in movers:
                stmts += [wr_go.eq(1), wr_record.eq(record)]
            m.d.sync += stmts

        m.d.comb += [
            rd.cmd.valid.eq(rd_go), al.cmd.valid.eq(al_go), wr.cmd.valid.eq(wr_go),
            # a piece's source, a WAIT's semaphore (1 word), or COMPARE's source 2
            rd.cmd.payload.addr.eq(Mux(rd_cmp, h_dst, h_src)),
            rd.cmd.payload.words.eq(Mux(rd_sem, 1, Mux(rd_cmp, words_d, words_s))),
            al.cmd.payload.lane_in.eq(Mux(al_sem, 0, lane_s)),
            al.cmd.payload.lane_out.eq(Mux(al_sem, 0, lane_d)),
            al.cmd.payload.words_in.eq(Mux(al_sem, 1, words_s)),
            al.cmd.payload.words_out.eq(Mux(al_sem, 1, words_d)),
            # a piece's destination or the completion record (4 whole words)
            wr.cmd.payload.addr.eq(h_dst),
            wr.cmd.payload.words.eq(Mux(wr_record, _CR_WORDS, words_d)),
            wr.cmd.payload.first_strb.eq(Mux(wr_record, 0xFF, first_strb)),
            wr.cmd.payload.last_strb.eq(Mux(wr_record, 0xFF, last_strb)),
        ]

        with m.If(self.adi_fault.valid & self.adi_fault.ready):
            m.d.sync += self.adi_fault.valid.eq(0)
        with m.If(self.done.valid & self.done.ready):
            m.d.sync += self.done.valid.eq(0)

        def report(consume=False, retry=False):
            m.d.sync += [self.done.valid.eq(1), self.done.payload.adi.eq(cur),
                         self.done.payload.consume.eq(consume), self.done.payload.retry.eq(retry)]

        def start_move():
            # The piece's last translation is in: issue its movers (their
            # commands are valid in the next cycle, with h_dst).
            with m.If(is_fill | is_signal):
                m.d.sync += wsrc.eq(SRC_PATTERN)
                issue("wr")
                m.next = "MOVE_WAIT"
            with m.Elif(is_cmp):
                # Phase 1: source 1 into the FIFO, aligned to source 2's lanes.
                issue("rd", "al")
                m.next = "CMP_FILL"
            with m.Else():
                m.d.sync += wsrc.eq(SRC_FIFO)
                with m.If(overlap_in_piece):
                    issue("rd", "al")
                    m.next = "MOVE_STORE"
                with m.Else():
                    issue("rd", "al", "wr")
                    m.next = "MOVE_WAIT"

        def start_record_write():
            # The record's page is translated: write its four words.
            m.d.sync += [wsrc.eq(SRC_RECORD), rec_word.eq(0)]
            issue("wr", record=True)
            m.next = "RECORD_WAIT"

        m.d.comb += [self.finish.status.eq(status), self.finish.cycles.eq(cycles)]

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                m.d.comb += [self.idle.eq(~self.done.valid), self.start.ready.eq(~self.done.valid)]
                with m.If(self.start.valid & ~self.done.valid):
                    st = self.start.payload
                    m.d.sync += [cur.eq(st.adi), adi_pasid.eq(st.pasid), timed_out.eq(st.timed_out),
                                 desc.eq(st.desc), busy_adi.eq(1), cycles.eq(0),
                                 start_cycle.eq(self.now)]
                    m.next = "PREPARE"

            with m.State("PREPARE"):
                m.d.sync += [src_end.eq(desc.src_addr + desc.xfer_size),
                             dst_end.eq(desc.dst_addr + desc.xfer_size),
                             gap.eq(desc.dst_addr - desc.src_addr)]
                m.next = "CHECK"
            with m.State("CHECK"):
                is_down = is_move & (desc.src_addr < desc.dst_addr) & (desc.dst_addr < src_end)
                m.d.sync += [status.eq(Status.SUCCESS), invalid.eq(0), result.eq(0), fault_addr.eq(0),
                             fault_write.eq(0), done.eq(0), diff_found.eq(0), down.eq(is_down),
                             rem.eq(desc.xfer_size)]
                with m.If(desc.pasid != adi_pasid):
                    m.next = "REFUSE"
                with m.Elif(~known):
                    m.d.sync += status.eq(Status.BAD_OPCODE)
                    m.next = "RECORD"
                with m.Elif(bad_flags != 0):
                    m.d.sync += [status.eq(Status.INVALID_FLAGS), invalid.eq(bad_flags)]
                    m.next = "RECORD"
                with m.Elif(rci & ~handle_ok):
                    m.d.sync += status.eq(Status.INVALID_INT_HANDLE)
                    m.next = "RECORD"
                with m.Elif(sized & ((desc.xfer_size == 0) | (desc.xfer_size > MAX_XFER))):
                    m.d.sync += status.eq(Status.XFER_SIZE)
                    m.next = "RECORD"
                with m.Elif((crav & (desc.completion_addr[:_CR_LOW] != 0))
                            | (is_fill & (desc.dst_addr[:_FILL_LOW] != 0))
                            | (is_wait & (desc.src_addr[:_SEM_LOW] != 0))
                            | (is_signal & (desc.dst_addr[:_SEM_LOW] != 0))):
                    m.d.sync += status.eq(Status.ADDR_ALIGN)
                    m.next = "RECORD"
                with m.Elif(sized):
                    m.next = "ORIENT"
                with m.Elif(is_wait):
                    m.d.sync += [x_addr.eq(desc.src_addr), x_write.eq(0), xlate_then.eq(X_SEM)]
                    m.next = "XLATE"
                with m.Elif(is_signal):
                    # One whole word (the address is aligned): as a one-word MEMFILL.
                    m.d.sync += [x_addr.eq(desc.dst_addr), x_write.eq(1), xlate_then.eq(X_DST),
                                 words_d.eq(1), first_strb.eq(0xFF), last_strb.eq(0xFF)]
                    m.next = "XLATE"
                with m.Else():
                    m.next = "RECORD"
            with m.State("ORIENT"):
                # The first piece's end (descending) or start, from the
                # direction registered in CHECK (its compares and these muxes
                # in one cycle were too long), and its bytes to the page
                # boundaries alongside, so the first piece goes straight to
                # PIECE_LEN (its PIECE test is known: rem is the nonzero size).
                first_src = Mux(down, src_end, desc.src_addr)
                first_dst = Mux(down, dst_end, desc.dst_addr)
                m.d.sync += [at_src.eq(first_src), at_dst.eq(first_dst),
                             len_src.eq(to_page_end(first_src)), len_dst.eq(to_page_end(first_dst))]
                m.next = "PIECE_LEN"
            with m.State("REFUSE"):
                m.d.sync += [self.adi_fault.valid.eq(1), self.adi_fault.payload.adi.eq(cur),
                             self.adi_fault.payload.code.eq(AdiError.DESC_PASID)]
                m.d.comb += self.refused.eq(1)
                with m.If(is_wait):
                    report(consume=True)
                m.d.sync += busy_adi.eq(0)
                m.next = "SETTLE"
            with m.State("SETTLE"):
                # Until the fault beat has been taken (the ADI block acts on it
                # then, and `pending` falls in the next cycle): no descriptor of
                # an ADI going ERROR is taken in between.
                with m.If(~self.adi_fault.valid):
                    m.next = "IDLE"

            # ---- pieces -------------------------------------------------------------------
            with m.State("PIECE"):
                with m.If(diff_found | (rem == 0)):
                    with m.If(diff_found):
                        m.d.sync += [result.eq(1), done.eq(diff_at)]
                    with m.Elif(is_move):
                        m.d.sync += result.eq(down)
                    m.next = "RECORD"
                with m.Else():
                    m.next = "PIECE_LEN"
            with m.State("PIECE_LEN"):
                m.d.sync += [p_len.eq(plen), p_lo.eq(done)]
                m.next = "PIECE_ADDR"
            with m.State("PIECE_ADDR"):
                m.d.sync += [p_src.eq(Mux(down, at_src - p_len, at_src)),
                             p_dst.eq(Mux(down, at_dst - p_len, at_dst))]
                m.next = "PIECE_XLATE"
            with m.State("PIECE_XLATE"):
                m.d.sync += piece_words
                with m.If(is_fill):
                    m.d.sync += [x_addr.eq(p_dst), x_write.eq(1), xlate_then.eq(X_DST)]
                with m.Else():
                    m.d.sync += [x_addr.eq(p_src), x_write.eq(0), xlate_then.eq(X_SRC)]
                m.next = "XLATE"

            # ---- translation through the DMA tracker ---------------------------------------
            with m.State("XLATE"):
                with m.If(x_addr[TRANSLATABLE_BITS:] != 0):
                    m.next = "XLATE_FAULT"
                with m.Else():
                    m.d.comb += self.dma_req.valid.eq(1)
                    with m.If(self.dma_req.ready):
                        m.next = "XLATE_WAIT"
            with m.State("XLATE_WAIT"):
                with m.If(self.dma_resp.valid):
                    with m.If(resp.fault):
                        m.next = "XLATE_FAULT"
                    with m.Else():
                        with m.Switch(xlate_then):
                            with m.Case(X_SEM):
                                m.d.sync += h_src.eq(xhost)
                                m.next = "SEM_READ"
                            with m.Case(X_SRC):
                                m.d.sync += [h_src.eq(xhost), x_addr.eq(p_dst), x_write.eq(is_move),
                                             xlate_then.eq(X_DST)]
                                m.next = "XLATE"
                            with m.Case(X_DST):
                                m.d.sync += h_dst.eq(xhost)
                                start_move()
                            with m.Case(X_CR):
                                m.d.sync += h_dst.eq(xhost)
                                start_record_write()
            with m.State("XLATE_FAULT"):
                with m.Switch(xlate_then):
                    with m.Case(X_CR):
                        m.d.sync += [status.eq(Status.PAGE_FAULT), fault_write.eq(1),
                                     fault_addr.eq(desc.completion_addr)]
                        m.next = "IRQ"
                    with m.Default():
                        m.d.sync += [status.eq(Status.PAGE_FAULT), fault_write.eq(x_write),
                                     fault_addr.eq(x_addr), result.eq(is_move & down)]
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
                    with m.If(wr.error | (rd.error & ~is_fill & ~is_signal)):
                        m.d.sync += [status.eq(Status.HW_ERROR), result.eq(is_move & down)]
                        m.next = "RECORD"
                    with m.Elif(is_signal):
                        m.next = "RECORD"
                    with m.Else():
                        m.next = "ADVANCE"
            with m.State("ADVANCE"):
                m.d.sync += [done.eq(done + p_len), rem.eq(rem - p_len),
                             at_src.eq(Mux(down, p_src, p_src + p_len)),
                             at_dst.eq(Mux(down, p_dst, p_dst + p_len))]
                m.next = "PIECE"
            with m.State("CMP_FILL"):
                with m.If(~rd_busy & ~al_busy):
                    # Source 2's read clears the reader's error flag: keep source 1's.
                    m.d.sync += [route_compare.eq(1), cmp_k.eq(0), cmp_src_err.eq(rd.error)]
                    m.next = "CMP_READ"
            with m.State("CMP_READ"):
                issue("rd", cmp=True)
                m.next = "CMP_WAIT"
            with m.State("CMP_WAIT"):
                with m.If(~rd_busy):
                    m.next = "CMP_SETTLE"
            with m.State("CMP_SETTLE"):
                # One more cycle: the registered comparison of the last word lands.
                m.d.sync += route_compare.eq(0)
                with m.If(cmp_src_err | rd.error):
                    # Both sources were read whole (the FIFO is empty again); an
                    # error outranks any difference found in the piece.
                    m.d.sync += status.eq(Status.HW_ERROR)
                    m.next = "RECORD"
                with m.Elif(neq_q.any() | diff_found):
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
                with m.If(fifo_rdy):
                    m.d.comb += fifo_pop_sem.eq(1)
                    with m.If(rd.error):
                        m.d.sync += status.eq(Status.HW_ERROR)
                        m.next = "RECORD"
                    with m.Elif((fifo_data & desc.sem_mask) == desc.sem_value):
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
                with m.If(is_wait):
                    report(consume=True)
                m.d.sync += [
                    record.status.eq(status), record.status_write.eq(fault_write),
                    record.result.eq(result), record.fault_info.eq(0), record.rsvd.eq(0),
                    record.bytes_completed.eq(Mux((status == Status.PAGE_FAULT) | (status == Status.HW_ERROR),
                                                  done,
                                                  Mux(status == Status.SUCCESS,
                                                      Mux(sized, Mux(result.any() & is_cmp, done,
                                                                     desc.xfer_size), 0), 0))),
                    record.fault_addr.eq(fault_addr), record.invalid_flags.eq(invalid),
                    record.rsvd2.eq(0), record.cycles.eq(cycles),
                    record.start_cycle.eq(start_cycle), record.engine.eq(self.engine), record.rsvd3.eq(0),
                ]
                with m.If(crav & (desc.completion_addr[:_CR_LOW] == 0) & (rcr | (status != Status.SUCCESS))):
                    m.d.sync += [x_addr.eq(desc.completion_addr), x_write.eq(1), xlate_then.eq(X_CR)]
                    m.next = "XLATE"
                with m.Else():
                    m.next = "IRQ"
            with m.State("RECORD_WAIT"):
                with m.If(~wr_busy):
                    m.d.sync += wsrc.eq(SRC_FIFO)
                    with m.If(wr.error):
                        # The record did not reach memory: the descriptor's outcome
                        # is the error (ENG.LAST_STATUS, DESC_FAILED), as for a
                        # record whose page faults.
                        m.d.sync += status.eq(Status.HW_ERROR)
                    m.next = "IRQ"
            with m.State("IRQ"):
                with m.If(rci & handle_ok):
                    m.d.comb += irq_stage.inp.valid.eq(1)
                    with m.If(irq_stage.inp.ready):
                        m.d.sync += irq_adi.eq(cur)
                        m.next = "FINISH"
                with m.Else():
                    m.next = "FINISH"
            with m.State("FINISH"):
                m.d.sync += busy_adi.eq(0)
                m.d.comb += self.finished.eq(1)
                m.next = "IDLE"

        return m
