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
sequencer that steps them:

* :class:`~.sequencer.Sequencer`: the state machine, from the hand-over to
  the completion, with :class:`~.move_states.MoveStates`: its states that
  move or compare a piece, and the movers' commands, issued from registers;
* :class:`~.pieces.PieceWalker`: the page-bounded pieces and their geometry;
* :class:`~.checks.DescriptorChecks`: the descriptor's checks, registered in
  the cycle between the hand-over and the state that acts on them;
* :class:`~.compare.Comparator`: COMPARE's first difference;
* :class:`~.wsource.WriteSourceSelect`: the writer's data (FIFO, pattern or record);
* :class:`~.xlate.TrackerClient`: one translation through the DMA tracker
  (the prefetch's too);
* the movers (:mod:`.mover`), the data FIFO and its register stage, and the
  interrupt message's register stage (:class:`~siov.rtl.stream.PipeStage`).
"""


import functools
import operator
import types

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..axi4 import Axi4ReadSignature, Axi4WriteSignature
from ..dma.defs import PASID_BITS
from ..dma.tracker import OUT_LAYOUT, REQ_LAYOUT
from ..irq.remapper import HANDLE_WIDTH, MessageLayout
from ..params import DeviceParams, require_params
from .adi import ADI_FAULT_LAYOUT
from .dispatch import DONE_LAYOUT, START_LAYOUT
from .checks import DescriptorChecks, bad_flags
from .dsa import SIZED_OPCODES, DescriptorLayout, Flag, Opcode
from ..stream import PipeStage
from .compare import Comparator
from .mover import WORD_BITS, Aligner, AxiReader, AxiWriter
from .pieces import PieceWalker
from .sequencer import Sequencer
from .wsource import WriteSourceSelect
from .xlate import TrackerClient

__all__ = ["Executor", "FIFO_WORDS", "FINISH_LAYOUT"]

#: Data FIFO: one whole piece (4096 bytes at any lane offset is 513 words).
FIFO_WORDS = 1024


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
    dma_resp : In(stream.Signature(OUT_LAYOUT, always_ready=True))
        The tracker's answers: every one is taken in the cycle it arrives (its tracker client).
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
            "dma_resp": In(stream.Signature(OUT_LAYOUT, always_ready=True)),
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
        m.d.comb += d.bad_flags.eq(bad_flags(flags))
        d.rci = (flags & Flag.RCI.value).any()
        d.crav = (flags & Flag.CRAV.value).any()
        d.rcr = (flags & Flag.RCR.value).any()
        d.handle_ok = desc.int_handle < self.params.ims_entries

        # ---- the parts' inputs that follow the descriptor and the piece ---------------------------
        lane_d = walk.p_dst[:3]
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

        # The checks, registered in PREPARE from the descriptor and its ADI's PASID
        # that the hand-over loads.
        m.submodules.checks = checks = DescriptorChecks(self.params.ims_entries)
        parts = types.SimpleNamespace(rd=rd, wr=wr, al=al, walk=walk, cmp=cmp, wsel=wsel, xc=xc,
                                      irq_stage=irq_stage, head=head, route_compare=route_compare,
                                      fifo_pop_sem=fifo_pop_sem, checks=checks)
        seq = Sequencer(m, self, desc, d, parts)
        m.d.comb += [checks.desc.eq(desc), checks.adi_pasid.eq(seq.adi_pasid)]
        seq.build()
        return m
