"""Descriptor engine: prefetch, cost estimate, arbitration and execution of DSA descriptors.

Ref: Linux include/uapi/linux/idxd.h for the formats (see :mod:`.dsa`, which
states the supported subset, the check order and the alignment rule); the
behaviour is that of the reference model :class:`siov.sw.model.engine.Engine`,
which the system testbench uses as its scoreboard.

One sequencer owns the AXI4 master and the DMA tracker's request port and does
one thing at a time:

* **prefetch**: while an ADI is pending and its slot is empty, read its head
  descriptor (ring base + 64 x head, a device address translated by the DMA
  tracker under the ADI's PASID) into its slot in block RAM and estimate its
  cost (:mod:`.cost`). A blocked fetch, or one whose read gets a non-OKAY
  RRESP, puts the ADI into ERROR (code 4, as the model's ``fetch``);
* **dispatch**: the arbiter (:mod:`.arbiter`) sees ``req = slot filled &
  pending`` and the slots' costs while the sequencer is idle and no slot of a
  pending ADI is empty (fetches go first, so the arbiter always chooses among
  every ADI with work); the sequencer takes its grant through a registered
  ready, consumes the ADI's head (the ADI block
  advances HEAD) and marks the ADI busy until the descriptor completes. The
  arbiter's requests are held low while the sequencer is busy, so each
  decision is made with every slot current (2 cycles after the sequencer
  becomes idle);
* **execute**: load the descriptor from the slot; refuse it if its PASID is
  not the ADI's (ERROR code 3: no memory access, no record, no interrupt);
  check opcode, flags, interrupt handle, size and alignment in the model's
  order; run the operation piece by piece, each piece within one 4 KiB page of
  source and destination. A piece translates its pages through the tracker
  (source first, then destination, and the destination only if the source was
  allowed, so that the dirty log and the fault queue match the model), then
  moves its data: reader -> aligner -> FIFO -> writer. The FIFO holds a whole
  piece, so a MEMMOVE whose destination starts inside the source's piece is
  stored and forwarded (read fully, then written), and any other piece streams
  with reads and writes overlapped. An overlapping MEMMOVE with the
  destination above the source runs its pieces in descending order. When a
  piece has been moved (every R and B response in), a non-OKAY response to
  one of its reads or writes ends the descriptor with ``Status.HW_ERROR``
  (0x20, ``DSA_COMP_HW_ERR1``): ``bytes_completed`` counts the pieces before
  it, ``result`` is the MEMMOVE direction as for a page fault. The movers
  finish a piece whatever its responses, so the FIFO is empty and nothing
  waits on a response that will not come;
* **complete**: write the 32-byte completion record (with CRAV, if RCR is set
  or the status is not success; its page is translated like any write; a
  non-OKAY BRESP to it makes the outcome ``HW_ERROR``, as a fault on its page
  makes it ``PAGE_FAULT``), then
  send the interrupt message {PASID, handle} to the interrupt remapper if RCI
  is set and the handle is valid. The record's ``cycles`` field (byte 20) and
  ``ENG.LAST_CYCLES`` hold the cycles from grant to record.

Descriptors execute one at a time, in grant order, so FENCE and DRAIN
ordering holds by construction. Device addresses at or above 2**44 (a page
number that does not fit the tracker's 32-bit page) fault without a tracker
request.
"""

import functools
import operator

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .. import regmap
from ..axi4 import Axi4Signature, join_axi4
from ..csr.bank import RegisterBank
from ..csr.bus import CsrSignature
from ..dma.defs import PAGE_SHIFT, PASID_BITS, TRANSLATABLE_BITS
from ..dma.tracker import OUT_LAYOUT, REQ_LAYOUT
from ..irq.remapper import HANDLE_WIDTH, MessageLayout
from ..params import DeviceParams, require_params
from .adi import ADI_FAULT_LAYOUT, CONSUME_LAYOUT, RING_LAYOUT, AdiError
from .arbiter import QosArbiter
from .cost import COST_WIDTH, CostEstimator
from .dsa import (CR_ALIGN, DESC_BYTES, FILL_ALIGN, MAX_XFER, RESERVED_FLAGS, CompletionLayout,
                  SIZED_OPCODES, DescriptorLayout, Flag, Opcode, Status)
from .mover import COUNT_BITS, WORD_BITS, Aligner, AxiReader, AxiWriter, PipeStage

__all__ = ["Engine", "CSR_ADDR_WIDTH", "FIFO_WORDS"]

CSR_ADDR_WIDTH = exact_log2(regmap.ENG_SIZE)
#: Data FIFO: one whole piece (4096 bytes at any lane offset is 513 words).
FIFO_WORDS = 1024
_DESC_WORDS = DESC_BYTES // 8
_CR_LOW = exact_log2(CR_ALIGN)        # address bits that must be 0 in a completion address
_FILL_LOW = exact_log2(FILL_ALIGN)    # ... and in a MEMFILL destination
_CR_WORDS = 4


def _strobes(lane_first, length):
    """(first-word strobes, last-word strobes) for ``length`` bytes starting in ``lane_first``."""
    last_lane = (lane_first + length - 1)[:3]
    return (Const(0xFF, 8) << lane_first)[:8], (Const(0xFF, 8) >> (~last_lane)[:3])[:8]


class Engine(wiring.Component):
    """The command engine with its arbiter, slots and the ``ENG`` register window.

    Attributes
    ----------
    csr : In(CsrSignature(CSR_ADDR_WIDTH))
        The ``ENG`` window.
    mem : Out(Axi4Signature(64, 64, 1))
        DMA to host memory.
    ring : In(ArrayLayout(RING_LAYOUT, num_adis))
    pending : In(num_adis)
    consume : Out(stream.Signature(CONSUME_LAYOUT))
    busy : Out(num_adis)
    adi_fault : Out(stream.Signature(ADI_FAULT_LAYOUT))
        Towards the ADI block (always ready there).
    dma_req : Out(stream.Signature(REQ_LAYOUT))
    dma_resp : In(stream.Signature(OUT_LAYOUT))
        The tracker's answer to every request, in order.
    irq : Out(stream.Signature(MessageLayout))
        Completion interrupts towards the interrupt remapper.
    slice_end : Out(1)
        The arbiter's QoS slice boundary (budgets refill), for observation.
    """

    def __init__(self, params=DeviceParams()):
        self.params = require_params(params, "Engine")
        n = params.num_adis
        super().__init__({
            "csr": In(CsrSignature(CSR_ADDR_WIDTH)),
            "mem": Out(Axi4Signature(64, 64, 1)),
            "ring": In(data.ArrayLayout(RING_LAYOUT, n)),
            "pending": In(n),
            "consume": Out(stream.Signature(CONSUME_LAYOUT)),
            "busy": Out(n),
            "adi_fault": Out(stream.Signature(ADI_FAULT_LAYOUT)),
            "dma_req": Out(stream.Signature(REQ_LAYOUT)),
            "dma_resp": In(stream.Signature(OUT_LAYOUT)),
            "irq": Out(stream.Signature(MessageLayout)),
            "slice_end": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        n = p.num_adis

        # ---- registers ---------------------------------------------------------
        m.submodules.regs = regs = RegisterBank.for_window("ENG", addr_width=CSR_ADDR_WIDTH,
                                                          base=regmap.ENG_BASE, pipelined=True)
        wiring.connect(m, wiring.flipped(self.csr), regs.csr)
        r = regs.port

        weight = [Signal(8, name=f"weight{i}", init=1) for i in range(n)]
        quantum = [Signal(COST_WIDTH, name=f"quantum{i}") for i in range(n)]
        sel = r("ENG.ARB_SEL.INDEX")
        for i in range(n):
            with m.If(r("ENG.ARB_CMD.WRITE") & (sel == i)):
                m.d.sync += [weight[i].eq(r("ENG.ARB_WEIGHT.WEIGHT")),
                             quantum[i].eq(r("ENG.ARB_QUANTUM.QUANTUM"))]

        # ---- arbiter and slots ---------------------------------------------------
        m.submodules.arbiter = arb = QosArbiter(n, cost_width=COST_WIDTH)
        slot_valid = Signal(n)
        cost = [Signal(COST_WIDTH, name=f"cost{i}") for i in range(n)]
        # The arbiter decides only while the sequencer waits for a grant with
        # every pending ADI's slot filled: a decision then sees every ADI with
        # work, current costs, and (WRR) the last winner's next descriptor.
        deciding = Signal()
        m.d.comb += [
            arb.req.eq(Mux(deciding, slot_valid & self.pending, 0)),
            arb.policy.eq(r("ENG.ARB_CTRL.POLICY")),
            arb.slice_cycles.eq(r("ENG.ARB_SLICE.CYCLES")),
            self.slice_end.eq(arb.slice_end),
        ]
        for i in range(n):
            m.d.comb += [arb.cost[i].eq(cost[i]), arb.weight[i].eq(weight[i]),
                         arb.quantum[i].eq(quantum[i])]
        m.d.comb += r("ENG.ARB_BUDGET.BUDGET").eq(
            Mux(sel < n, Array(arb.budget[i] for i in range(n))[sel], 0))

        slot_addr_bits = exact_log2(_DESC_WORDS) + max(1, (n - 1).bit_length())
        m.submodules.slots = slots = Memory(shape=WORD_BITS, depth=1 << slot_addr_bits, init=[])
        slot_wr = slots.write_port()
        slot_rd = slots.read_port()
        # The slot word leaves the block RAM into a register (an ECP5 block
        # RAM's clock-to-out without its output register is about 5.8 ns).
        slot_q = Signal(WORD_BITS, name="slot_q")
        m.d.sync += slot_q.eq(slot_rd.data)

        m.submodules.cost = est = CostEstimator()
        m.d.comb += [est.a.eq(r("ENG.COST_A.A")), est.b.eq(r("ENG.COST_B.B"))]

        # ---- data path -------------------------------------------------------------
        m.submodules.reader = rd = AxiReader()
        m.submodules.writer = wr = AxiWriter()
        m.submodules.aligner = al = Aligner()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=WORD_BITS, depth=FIFO_WORDS)
        join_axi4(m, wiring.flipped(self.mem), rd.bus, wr.bus)
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
        wsrc = Signal(2)
        rec_word = Signal(2)
        record = Signal(CompletionLayout)
        desc = Signal(DescriptorLayout)
        desc_bits = desc.as_value()
        with m.Switch(wsrc):
            with m.Case(SRC_FIFO):
                m.d.comb += [wr.data.valid.eq(fifo_rdy), wr.data.payload.eq(fifo_data)]
            with m.Case(SRC_PATTERN):
                m.d.comb += [wr.data.valid.eq(1), wr.data.payload.eq(desc.src_addr)]
            with m.Case(SRC_RECORD):
                m.d.comb += [wr.data.valid.eq(1),
                             wr.data.payload.eq(record.as_value().word_select(rec_word, WORD_BITS))]
        with m.If(wr.data.valid & wr.data.ready & (wsrc == SRC_RECORD)):
            m.d.sync += rec_word.eq(rec_word + 1)

        fifo_pop_fetch = Signal()
        m.d.comb += fifo_pop.eq(Mux(route_compare, cmp_fire,
                                    fifo_pop_fetch | ((wsrc == SRC_FIFO) & wr.data.ready)))

        # ---- sequencer state ----------------------------------------------------------
        cur = Signal(range(max(n, 2)))            # ADI being fetched or executed
        ring = self.ring[cur]
        word = Signal(range(_DESC_WORDS + 2))
        stale = Signal()                          # the fetched ADI stopped being pending
        cycles = Signal(32)
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
        done_count = Signal(32)
        failed_count = Signal(32)
        refused_count = Signal(32)
        last_cycles = Signal(32)
        last_status = Signal(7)

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
        sized, known = Signal(name="sized"), Signal(name="known")
        # (Sized: dsa.SIZED_OPCODES; known: every Opcode, the unsized ones
        # ORed ahead of the sized.)
        dec = {op: opcode == op.value for op in Opcode}
        sized_now = functools.reduce(operator.or_, (dec[op] for op in SIZED_OPCODES))
        unsized_now = functools.reduce(operator.or_, (dec[op] for op in Opcode if op not in SIZED_OPCODES))
        m.d.sync += [is_move.eq(dec[Opcode.MEMMOVE]), is_fill.eq(dec[Opcode.MEMFILL]),
                     is_cmp.eq(dec[Opcode.COMPARE]), sized.eq(sized_now),
                     known.eq(unsized_now | sized_now)]
        bad_flags = Signal(24)
        m.d.comb += bad_flags.eq((flags & RESERVED_FLAGS)
                                 | Mux((flags & Flag.RCR.value).any() & ~(flags & Flag.CRAV.value).any(),
                                       Flag.RCR.value, 0))
        rci = (flags & Flag.RCI.value).any()
        crav = (flags & Flag.CRAV.value).any()
        rcr = (flags & Flag.RCR.value).any()
        handle_ok = desc.int_handle < p.ims_entries

        m.d.comb += self.busy.eq(Mux(busy_adi, (Const(1, n) << cur)[:n], 0))
        with m.If(busy_adi):
            m.d.sync += cycles.eq(cycles + 1)

        # Slots of ADIs that stopped being pending are dropped; a finished
        # prefetch fills its slot one cycle after the cost arrives.
        fill = Signal()
        fill_cost = Signal(COST_WIDTH)
        fill_onehot = Signal(n)
        m.d.sync += [slot_valid.eq((slot_valid | Mux(fill, fill_onehot, 0)) & self.pending), fill.eq(0)]
        for i in range(n):
            with m.If(fill & fill_onehot[i]):
                m.d.sync += cost[i].eq(fill_cost)
        need_fetch = Signal(n)
        m.d.comb += need_fetch.eq(self.pending & ~slot_valid)
        fetch_pick = Signal(range(max(n, 2)))
        for i in reversed(range(n)):
            with m.If(need_fetch[i]):
                m.d.comb += fetch_pick.eq(i)
        with m.If(~self.pending.bit_select(cur, 1)):
            m.d.sync += stale.eq(1)

        f_base = Signal(58)
        f_head = Signal(12)
        # The ring slot's address, registered every cycle (FETCH_ADDR waits
        # for it): its adder does not feed the translation address's mux.
        ring_addr = Signal(64)
        m.d.sync += ring_addr.eq((f_base + f_head) << 6)

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
        X_SRC, X_DST, X_CR, X_FETCH = 0, 1, 2, 3
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
        rd_fetch, rd_cmp = Signal(name="rd_fetch"), Signal(name="rd_cmp")   # else: a piece's source
        al_fetch = Signal(name="al_fetch")                                   # else: a piece
        wr_record = Signal(name="wr_record")                                 # else: a piece
        m.d.sync += [rd_go.eq(0), al_go.eq(0), wr_go.eq(0)]
        rd_busy, al_busy, wr_busy = rd.busy | rd_go, al.busy | al_go, wr.busy | wr_go

        def issue(*movers, fetch=False, cmp=False, record=False):
            stmts = []
            if "rd" in movers:
                stmts += [rd_go.eq(1), rd_fetch.eq(fetch), rd_cmp.eq(cmp)]
            if "al" in movers:
                stmts += [al_go.eq(1), al_fetch.eq(fetch)]
            if "wr" in movers:
                stmts += [wr_go.eq(1), wr_record.eq(record)]
            m.d.sync += stmts

        m.d.comb += [
            rd.cmd.valid.eq(rd_go), al.cmd.valid.eq(al_go), wr.cmd.valid.eq(wr_go),
            # a piece's source, a ring's descriptor (8 words), or COMPARE's source 2
            rd.cmd.payload.addr.eq(Mux(rd_cmp, h_dst, h_src)),
            rd.cmd.payload.words.eq(Mux(rd_fetch, _DESC_WORDS, Mux(rd_cmp, words_d, words_s))),
            al.cmd.payload.lane_in.eq(Mux(al_fetch, 0, lane_s)),
            al.cmd.payload.lane_out.eq(Mux(al_fetch, 0, lane_d)),
            al.cmd.payload.words_in.eq(Mux(al_fetch, _DESC_WORDS, words_s)),
            al.cmd.payload.words_out.eq(Mux(al_fetch, _DESC_WORDS, words_d)),
            # a piece's destination or the completion record (4 whole words)
            wr.cmd.payload.addr.eq(h_dst),
            wr.cmd.payload.words.eq(Mux(wr_record, _CR_WORDS, words_d)),
            wr.cmd.payload.first_strb.eq(Mux(wr_record, 0xFF, first_strb)),
            wr.cmd.payload.last_strb.eq(Mux(wr_record, 0xFF, last_strb)),
        ]

        with m.If(self.consume.valid):       # always ready in the ADI block
            m.d.sync += self.consume.valid.eq(0)
        with m.If(self.adi_fault.valid):     # likewise, and registered like consume
            m.d.sync += self.adi_fault.valid.eq(0)

        def fetch_fault():
            # The ring read was blocked or answered with an error: ADI ERROR code 4.
            m.d.sync += [self.adi_fault.valid.eq(1), self.adi_fault.payload.adi.eq(cur),
                         self.adi_fault.payload.code.eq(AdiError.FETCH_FAULT)]
            with m.If(~refused_count.all()):
                m.d.sync += refused_count.eq(refused_count + 1)
            m.next = "SETTLE"

        # The grant is taken through a registered ready: the sequencer was
        # deciding (IDLE, no slot to fetch) in the previous cycle. A grant
        # is only made while it decides, and the arbiter drops its valid at
        # the take, so valid & ready only holds in IDLE. (A ready from the
        # state in the same cycle reached the arbiter's budget enables
        # through seven LUTs.)
        grant_ready = Signal(name="grant_ready")
        m.d.sync += grant_ready.eq(deciding)
        m.d.comb += arb.grant.ready.eq(grant_ready)

        def start_move():
            # The piece's last translation is in: issue its movers (their
            # commands are valid in the next cycle, with h_dst).
            with m.If(is_fill):
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

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                m.d.comb += deciding.eq(~need_fetch.any())
                # Fetch first: every pending ADI has its head descriptor in its
                # slot before the arbiter decides, so it always chooses among
                # all ADIs with work (grants never starve a fetch). A grant
                # made before an ADI became pending is still taken first.
                # The granted ADI's first slot word is read ahead, so the load
                # starts a cycle earlier.
                m.d.comb += slot_rd.addr.eq(Cat(Const(0, 3), arb.grant.payload.adi))
                with m.If(arb.grant.valid & grant_ready):
                    g = arb.grant.payload.adi
                    m.d.sync += cur.eq(g)
                    with m.If((slot_valid & self.pending).bit_select(g, 1)):
                        # The consume beat leaves from a register (the ADI block
                        # advances HEAD a cycle later, long before the next fetch).
                        m.d.sync += [self.consume.valid.eq(1), self.consume.payload.adi.eq(g)]
                        m.d.sync += [slot_valid.bit_select(g, 1).eq(0), busy_adi.eq(1), cycles.eq(0),
                                     word.eq(1)]
                        m.next = "LOAD_WORD"
                with m.Elif(need_fetch.any()):
                    m.d.sync += [cur.eq(fetch_pick), stale.eq(0)]
                    m.next = "FETCH"

            # ---- prefetch ---------------------------------------------------------------
            with m.State("FETCH"):
                m.d.sync += [f_base.eq(ring.base), f_head.eq(ring.head), desc.pasid.eq(ring.pasid)]
                m.next = "FETCH_ADDR"
            with m.State("FETCH_ADDR"):
                m.next = "FETCH_XADDR"
            with m.State("FETCH_XADDR"):
                m.d.sync += [x_addr.eq(ring_addr), x_write.eq(0), xlate_then.eq(X_FETCH)]
                m.next = "XLATE"
            with m.State("FETCH_READ"):
                issue("rd", "al", fetch=True)
                m.d.sync += word.eq(0)
                m.next = "FETCH_STORE"
            with m.State("FETCH_STORE"):
                m.d.comb += [fifo_pop_fetch.eq(fifo_rdy),
                             slot_wr.en.eq(fifo_rdy),
                             slot_wr.addr.eq(Cat(word[:3], cur)),
                             slot_wr.data.eq(fifo_data)]
                with m.If(fifo_rdy):
                    m.d.sync += word.eq(word + 1)
                    with m.If(word == 0):
                        m.d.sync += desc.opcode.as_value().eq(fifo_data[56:64])
                    with m.If(word == 4):
                        m.d.sync += desc.xfer_size.eq(fifo_data[:32])
                    with m.If(word == _DESC_WORDS - 1):
                        # The last word has passed the aligner and the FIFO, so
                        # every R beat of the fetch has been seen: `rd.error` is final.
                        with m.If(rd.error):
                            m.next = "FETCH_ERROR"
                        with m.Else():
                            m.next = "FETCH_COST"
            with m.State("FETCH_ERROR"):
                fetch_fault()
            with m.State("FETCH_COST"):
                m.d.comb += [est.start.eq(1), est.opcode.eq(desc.opcode.as_value()), est.size.eq(desc.xfer_size)]
                m.next = "FETCH_COST_WAIT"
            with m.State("FETCH_COST_WAIT"):
                with m.If(est.done):
                    m.d.sync += [fill.eq(~stale & self.pending.bit_select(cur, 1)), fill_cost.eq(est.cost),
                                 fill_onehot.eq((Const(1, n) << cur)[:n])]
                    m.next = "FETCH_FILL"
            with m.State("SETTLE"):
                # The registered ADI fault beat lands this cycle: only then may
                # IDLE look at `pending` again (no fetch for an ADI going ERROR).
                m.next = "IDLE"
            with m.State("FETCH_FILL"):
                # The slot is filled from registers: the per-ADI write enables
                # decode a registered one-hot, not the FSM state and index (timing).
                m.next = "IDLE"

            # ---- load and check ---------------------------------------------------------
            with m.State("LOAD_WORD"):
                # Word k is addressed with `word` = k (word 0 in IDLE, with the
                # grant) and stored from the output register two cycles later.
                m.d.comb += slot_rd.addr.eq(Cat(word[:3], cur))
                with m.If(word != 1):
                    m.d.sync += desc_bits.word_select((word - 2)[:3], WORD_BITS).eq(slot_q)
                m.d.sync += word.eq(word + 1)
                with m.If(word == _DESC_WORDS + 1):
                    m.next = "PREPARE"
            with m.State("PREPARE"):
                m.d.sync += [src_end.eq(desc.src_addr + desc.xfer_size),
                             dst_end.eq(desc.dst_addr + desc.xfer_size),
                             gap.eq(desc.dst_addr - desc.src_addr),
                             adi_pasid.eq(ring.pasid)]
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
                with m.Elif((crav & (desc.completion_addr[:_CR_LOW] != 0)) | (is_fill & (desc.dst_addr[:_FILL_LOW] != 0))):
                    m.d.sync += status.eq(Status.ADDR_ALIGN)
                    m.next = "RECORD"
                with m.Elif(sized):
                    m.next = "ORIENT"
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
                with m.If(~refused_count.all()):
                    m.d.sync += refused_count.eq(refused_count + 1)
                m.d.sync += busy_adi.eq(0)
                m.next = "SETTLE"

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
                            with m.Case(X_FETCH):
                                m.d.sync += h_src.eq(xhost)
                                m.next = "FETCH_READ"
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
                    with m.Case(X_FETCH):
                        fetch_fault()
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
                    with m.If(wr.error | (rd.error & ~is_fill)):
                        m.d.sync += [status.eq(Status.HW_ERROR), result.eq(is_move & down)]
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

            # ---- completion ----------------------------------------------------------------------
            with m.State("RECORD"):
                m.d.sync += [
                    record.status.eq(status), record.status_write.eq(fault_write),
                    record.result.eq(result), record.fault_info.eq(0), record.rsvd.eq(0),
                    record.bytes_completed.eq(Mux((status == Status.PAGE_FAULT) | (status == Status.HW_ERROR),
                                                  done,
                                                  Mux(status == Status.SUCCESS,
                                                      Mux(sized, Mux(result.any() & is_cmp, done,
                                                                     desc.xfer_size), 0), 0))),
                    record.fault_addr.eq(fault_addr), record.invalid_flags.eq(invalid),
                    record.rsvd2.eq(0), record.cycles.eq(cycles), record.rsvd3.eq(0),
                    last_cycles.eq(cycles),
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
                        m.next = "FINISH"
                with m.Else():
                    m.next = "FINISH"
            with m.State("FINISH"):
                m.d.sync += [busy_adi.eq(0), last_status.eq(status.as_value())]
                with m.If(~done_count.all()):
                    m.d.sync += done_count.eq(done_count + 1)
                with m.If((status != Status.SUCCESS) & ~failed_count.all()):
                    m.d.sync += failed_count.eq(failed_count + 1)
                m.next = "IDLE"

        m.d.comb += [
            r("ENG.ENG_STATUS.BUSY").eq(busy_adi),
            r("ENG.ENG_STATUS.ADI").eq(cur),
            r("ENG.ENG_STATUS.LAST_STATUS").eq(last_status),
            r("ENG.DESC_DONE.COUNT").eq(done_count),
            r("ENG.DESC_FAILED.COUNT").eq(failed_count),
            r("ENG.DESC_REFUSED.COUNT").eq(refused_count),
            r("ENG.LAST_CYCLES.CYCLES").eq(last_cycles),
        ]
        return m
