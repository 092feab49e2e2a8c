"""Interrupt remapping unit (IRU): IMS table lookup, PASID check, pending bits, fault queue.

Ref: Intel Scalable IOV spec (IMS), Linux ``drivers/dma/idxd`` IMS entry layout
(address_lo, address_hi, data, ctrl), x86 MSI address/data format (destination
ID in address bits 19:12 under 0xFEE, vector in data bits 7:0), PCI MSI-X
pending bit array semantics, and Intel VT-d interrupt-remapping fault reasons.
The register map, the IMS entry's fields (``IRQ.IMS.ENTRY``), the fault
reasons (``IrqFaultReason``) and the ordering rules are in ``rtl/regs.rdl``
(``IRQ``), documented in ``docs/registers.md``.

Pipeline, one message per cycle:

* accept (cycle t): a replay of an unmasked pending interrupt, if any, else a
  message from ``msg_in``; its IMS entry is read from block RAM at the end of
  the cycle;
* read (cycle t+1): the entry comes out of the block RAM straight into a
  register (nothing else in that path: the ECP5 DP16KD's clock-to-out without
  its output register, about 5.7 ns, is most of a cycle); a DMA message is
  pushed to the 3-deep ``dma_out`` queue;
* check (t+2), decide (t+3): the entry's fields checked one by one into
  registers, then combined (fault, pending or deliver) into the decision's;
* effect (cycle t+4): the interrupt on ``irq_out`` (past the 5-deep queue
  while it is empty and ``irq_out`` ready, else into it), or the pending bit
  (registered first, set one cycle later), or a fault record (queued or
  counted as lost two cycles later: the fault queue's two stages);
* ``dma_out`` valid from cycle t+2, ``irq_out`` from cycle t+4.

The message is *decided* in cycle t+1 in the sense of the register map: it
uses the entry as the IMS writes committed up to cycle t left it, and the
probe reports its decision in cycle t+4. No stage after acceptance ever
stalls: a message is accepted only when the output queues have room for it
and for the messages in flight (an interrupt in the effect stage counts as a
delivery). So the outcome of a race with an IMS write depends only on the
order of the acceptance and the write's commit cycle (the cycle of its bus
response).

Because no stage stalls, a *drain* (``DRAIN_CMD``, ``DRAIN_STATUS``) is a
count: a fixed number of cycles after it starts, every message accepted
before has had its effect but the interrupts in the ``irq_out`` queue, which
leave in order; the drain waits for those.

The IMS table has a single block RAM port shared by the pipeline and the
register window, with one 36-bit lane per IMS word (the word and a flag
decoded when it is written, so that "present" needs no comparison). A window
access reads the row (no message is accepted in that cycle) and, for a write,
writes the lane one cycle before its commit (only a message for the same
entry, which reads the old row, or a DMA message is accepted in that cycle);
a CTRL read takes none in the three cycles before the one before its commit
(their pending bits would come too late for it). Counters, the overflow
flag, pending bits, replay pushes and the registers the bank reads are fed
from flip-flops, after the registered decision, to keep the checks' logic
off every other path.

The remapper is a composition of parts, each with its own unit test against
a Python model (tests/test_irq_parts.py): the IMS table
(:class:`~.ims.ImsTable`), the message pipeline with its output queues
(:class:`~.pipeline.RemapPipeline`), the IMS window with the pending bits
and the replays (:class:`~.window.ImsWindow`), the replay queue
(:class:`~siov.rtl.stream.ShiftQueue`), the fault queue
(:class:`~siov.rtl.faultq.FaultQueue`, shared with the DMA tracker) and the
drain's fence (:class:`~.drain.DrainFence`). What
testbenches and formal harnesses observe is :attr:`InterruptRemapper.probe`,
the peek port, :meth:`~InterruptRemapper.fault_observe` and
:meth:`~InterruptRemapper.invariants`.
"""

from amaranth.hdl import Mux, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .. import regmap
from ..csr.bank import RegisterBank
from ..csr.bus import CsrSignature
from ..counter import saturating_inc
from ..ecp5 import DP16KD_DEPTH
from ..faultq import FaultQueue
from ..stream import ShiftQueue
from .drain import DrainFence
from .ims import ImsTable
from .layouts import HANDLE_WIDTH, Decision, FaultLayout, IrqLayout, MessageLayout, ProbeLayout
from .pipeline import DMA_DEPTH, IRQ_DEPTH, RemapPipeline
from .window import ImsWindow

__all__ = [
    "HANDLE_WIDTH", "CSR_ADDR_WIDTH", "IRQ_DEPTH", "DMA_DEPTH", "Decision",
    "MessageLayout", "IrqLayout", "FaultLayout", "ProbeLayout",
    "InterruptRemapper",
]

#: Byte address width of the IRU's CSR window (64 KiB).
CSR_ADDR_WIDTH = 16


class InterruptRemapper(wiring.Component):
    """Interrupt remapping unit.

    Parameters
    ----------
    entries : int
        IMS table size, a power of two from 16 to 2048 (default 256).
    fault_depth : int
        Fault queue depth, 2 to 255 (default 16).
    fault_quota : int or None
        Records one source may hold in the fault queue at once, 1..``fault_depth``
        (default :func:`~siov.rtl.faultq.default_quota`, a quarter of the depth).
    fault_source_bits : int
        A fault's source (its quota's, in the :class:`~siov.rtl.faultq.FaultQueue`)
        is its PASID's low ``fault_source_bits`` bits, 0 to 7 (default 3).
    pipelined : bool
        ``True`` (default): one message per cycle. ``False``: one message in
        flight at a time (the reference point for the benchmark).
    replay_depth : int
        Depth of the queue of unmasked pending interrupts waiting to replay.
    peek : bool
        Adds an asynchronous read port of the IMS table (``peek_addr``,
        ``peek_data``, and ``peek_flags``: the decoded "ADDR_LO is 0xFEE..."
        and "ADDR_HI is not zero" flags stored with words 0 and 1) for formal
        harnesses. Off in every synthesized top.
    primitive : None or "ecp5"
        How the IMS table is built: an inferred memory followed by a register
        (default: simulation, formal, lint, and ``make synth``'s ``siov_irq``),
        or ECP5 DP16KD instances whose output register is that register
        (``siov_irq_ecp5``; :mod:`siov.rtl.ecp5`): cycle for cycle alike; at most 1024 entries.

    Attributes
    ----------
    csr : In(CsrSignature(16))
        Register bus, local addresses of the 64 KiB ``IRQ`` window.
    msg_in : In(stream.Signature(MessageLayout))
        Upstream messages from the ADIs. ``ready`` is low while the IMS
        window reads the table; while it writes an entry, ``ready`` depends
        on the payload (high only for a DMA message or one for that entry).
    irq_out : Out(stream.Signature(IrqLayout))
        Remapped interrupts.
    dma_out : Out(stream.Signature(MessageLayout))
        DMA messages, unchanged.
    probe : Signal(ProbeLayout)
        Observation points, driven by the design, for testbenches.

    Raises
    ------
    TypeError, ValueError
        On a bad parameter.
    """

    def __init__(self, *, entries=256, fault_depth=16, fault_quota=None, fault_source_bits=3, pipelined=True,
                 replay_depth=4, peek=False, primitive=None):
        if not isinstance(entries, int) or isinstance(entries, bool):
            raise TypeError(f"Number of IMS entries must be an integer, not {entries!r}")
        if not 16 <= entries <= 2048 or entries & (entries - 1):
            raise ValueError(f"Number of IMS entries must be a power of two between 16 and 2048, "
                             f"not {entries}")
        if not isinstance(fault_depth, int) or not 2 <= fault_depth <= 255:
            raise ValueError(f"Fault queue depth must be an integer between 2 and 255, not {fault_depth!r}")
        if not isinstance(fault_source_bits, int) or not 0 <= fault_source_bits <= 7:
            raise ValueError(f"Fault source bits must be an integer between 0 and 7, not {fault_source_bits!r}")
        if not isinstance(replay_depth, int) or not 1 <= replay_depth <= 64:
            raise ValueError(f"Replay queue depth must be an integer between 1 and 64, not {replay_depth!r}")
        if primitive not in (None, "ecp5"):
            raise ValueError(f"Block RAM primitive must be None or 'ecp5', not {primitive!r}")
        if primitive == "ecp5" and (entries > DP16KD_DEPTH or peek):
            raise ValueError(f"The ECP5 IMS table holds at most {DP16KD_DEPTH} entries and has no "
                             f"peek port (entries={entries}, peek={peek})")
        self.primitive = primitive
        self.entries = entries
        self.fault_depth = fault_depth
        self.fault_source_bits = fault_source_bits
        self._fault_queue = FaultQueue(
            width=FaultLayout.size, depth=fault_depth, sources=1 << fault_source_bits, quota=fault_quota,
            lost_addr_width=max(2, (regmap.EXTERNALS["IRQ.FAULT_LOST"].size - 1).bit_length()), stages=2)
        self.fault_quota, self.fault_stages = self._fault_queue.quota, self._fault_queue.stages
        self.pipelined = bool(pipelined)
        self.replay_depth = replay_depth
        self.idx_bits = (entries - 1).bit_length()
        members = {
            "csr": In(CsrSignature(CSR_ADDR_WIDTH)),
            "msg_in": In(stream.Signature(MessageLayout)),
            "irq_out": Out(stream.Signature(IrqLayout)),
            "dma_out": Out(stream.Signature(MessageLayout)),
        }
        if peek:
            members["peek_addr"] = In(self.idx_bits)
            members["peek_data"] = Out(128)
            members["peek_flags"] = Out(2)
        super().__init__(members)
        self.probe = Signal(ProbeLayout)
        # The parts (made here so that a harness can observe them before elaboration).
        self.table = ImsTable(entries, peek=peek, primitive=primitive)
        self.pipeline = RemapPipeline(entries, pipelined=self.pipelined)
        self.window = ImsWindow(entries, replay_depth=replay_depth)

    def invariants(self):
        """Relations between the fault queue's (and the pipeline's) counts that hold in every
        reachable state (for formal harnesses: induction must not start where they disagree)."""
        return self._fault_queue.invariants() + self.pipeline.invariants()

    def fault_observe(self):
        """The fault queue's observation points (:meth:`~siov.rtl.faultq.FaultQueue.observe`)."""
        return self._fault_queue.observe()

    def elaborate(self, platform):
        m = Module()
        m.submodules.regs = regs = RegisterBank.for_window("IRQ", addr_width=CSR_ADDR_WIDTH,
                                                           base=regmap.IRQ_BASE, pipelined=True)
        wiring.connect(m, wiring.flipped(self.csr), regs.csr)
        m.submodules.table = table = self.table
        m.submodules.pipeline = pipe = self.pipeline
        m.submodules.window = win = self.window
        m.submodules.replay_q = replay_q = ShiftQueue(self.idx_bits, self.replay_depth)
        m.submodules.fault_q = fault_q = self._fault_queue
        if hasattr(self, "peek_addr"):
            m.d.comb += [table.peek_addr.eq(self.peek_addr), self.peek_data.eq(table.peek_data),
                         self.peek_flags.eq(table.peek_flags)]
        # The table's one port: the pipeline's address, or the window's, and the window's write.
        wiring.connect(m, regs.ext_irq_ims, win.bus)
        m.d.comb += [table.addr.eq(pipe.table_addr), table.lane_en.eq(win.lane_en), table.wdata.eq(win.wdata),
                     pipe.raw.eq(table.raw), win.raw.eq(table.raw),
                     pipe.port_csr.eq(win.port_csr), pipe.port_excl.eq(win.port_excl),
                     pipe.window_index.eq(win.index),
                     win.pend.eq(pipe.pend), win.pend_index.eq(pipe.index), win.pend_index_next.eq(pipe.index_next),
                     win.replay_level.eq(replay_q.level),
                     replay_q.w_en.eq(win.push), replay_q.w_data.eq(win.push_index),
                     pipe.replay.valid.eq(replay_q.r_rdy), pipe.replay.payload.eq(replay_q.r_data),
                     replay_q.r_en.eq(pipe.replay.ready)]
        wiring.connect(m, wiring.flipped(self.msg_in), pipe.msg_in)
        wiring.connect(m, pipe.irq_out, wiring.flipped(self.irq_out))
        wiring.connect(m, pipe.dma_out, wiring.flipped(self.dma_out))
        # A fault is queued (or counted as lost) two cycles after its effect
        # stage: the queue registers the record, then judges it against the
        # quota of its source (its PASID's low bits) made a cycle ahead.
        m.d.comb += [
            fault_q.push.valid.eq(pipe.fault), fault_q.push.payload.record.eq(pipe.record),
            fault_q.push.payload.source.eq(pipe.record.pasid[:self.fault_source_bits]),
            fault_q.clear_overflow.eq(regs.port("IRQ.FAULT_CTRL.CLEAR_OVERFLOW")),
        ]
        wiring.connect(m, regs.ext_irq_fault_lost, fault_q.lost)
        self._registers(m, regs, fault_q)
        irq_pop = self.irq_out.valid & self.irq_out.ready
        # Counter events are registered, then counted (a clear in the event's
        # own cycle still wins): a counter lags its event by one cycle.
        clear_cnt = regs.port("IRQ.CNT_CTRL.CLEAR")
        for name, event in (("CNT_DELIVERED", irq_pop), ("CNT_PENDED", pipe.pend), ("CNT_FAULTED", pipe.fault),
                            ("CNT_DMA", pipe.dma_push)):
            ev = Signal(name=f"{name.lower()}_ev")
            m.d.sync += ev.eq(event & ~clear_cnt)
            cnt = Signal(32, name=name.lower())
            saturating_inc(m, cnt, ev, clear_cnt)
            m.d.comb += regs.port(f"IRQ.{name}.COUNT").eq(cnt)

        # ---- drain (DRAIN_CMD / DRAIN_STATUS): a count, as no stage stalls ----------
        m.submodules.drain = drain = DrainFence(depth=IRQ_DEPTH)
        m.d.comb += [
            drain.start.eq(regs.port("IRQ.DRAIN_CMD.START")), drain.replays.eq(replay_q.r_rdy | pipe.replay_held | win.push),
            drain.irq_level.eq(pipe.irq_level), drain.irq_ready.eq(self.irq_out.ready),
            regs.port("IRQ.DRAIN_STATUS.BUSY").eq(drain.busy),
        ]

        # ---- probe ---------------------------------------------------------------
        p, d, ims_bus = self.probe, pipe.decision, regs.ext_irq_ims
        m.d.comb += [
            p.dec_valid.eq(d.valid), p.dec_kind.eq(d.kind), p.dec_replay.eq(d.replay),
            p.dec_reason.eq(d.reason), p.dec_handle.eq(d.handle),
            p.dec_pasid.eq(d.pasid), p.replay_take.eq(pipe.replay_take),
            p.ims_busy.eq(win.busy), p.ims_ack.eq(ims_bus.ack), p.ims_we.eq(ims_bus.we), p.ims_addr.eq(ims_bus.addr),
            p.ims_wdata.eq(ims_bus.wdata), p.ims_wstrb.eq(ims_bus.wstrb),
            p.ims_rdata.eq(ims_bus.rdata), p.ims_resp.eq(ims_bus.resp),
            p.eff_irq.eq(pipe.irq_push), p.eff_dma.eq(pipe.dma_push), p.eff_pend.eq(pipe.pend),
            p.eff_fault.eq(fault_q.taken), p.eff_lost.eq(fault_q.dropped),
            p.irq_level.eq(pipe.irq_level), p.dma_level.eq(pipe.dma_level),
            p.irq_full.eq(pipe.irq_full), p.dma_full.eq(pipe.dma_full),
        ]
        return m

    def _registers(self, m, regs, fault_q):
        """The fault queue's registers. The register bank reads flip-flops only: the
        queue's head record and level are registered (one cycle behind the queue)."""
        head = Signal(FaultLayout)
        head_valid = Signal()
        fault_count = Signal.like(fault_q.level)
        m.d.sync += [
            head.eq(Mux(fault_q.head.valid, fault_q.head.payload.record, 0)), head_valid.eq(fault_q.head.valid),
            fault_count.eq(fault_q.level),
        ]
        m.d.comb += [
            fault_q.head.ready.eq(regs.port("IRQ.FAULT_CTRL.POP")),
            regs.port("IRQ.FAULT_CAP.DEPTH").eq(self.fault_depth),
            regs.port("IRQ.FAULT_CAP.QUOTA").eq(self.fault_quota),
            regs.port("IRQ.FAULT_CAP.SOURCE_BITS").eq(self.fault_source_bits),
            regs.port("IRQ.FAULT_STATUS.COUNT").eq(fault_count),
            regs.port("IRQ.FAULT_STATUS.OVERFLOW").eq(fault_q.overflow),
            regs.port("IRQ.FAULT_REC0.REASON").eq(head.reason),
            regs.port("IRQ.FAULT_REC0.VALID").eq(head_valid),
            regs.port("IRQ.FAULT_REC0.PASID").eq(head.pasid),
            regs.port("IRQ.FAULT_REC1.HANDLE").eq(head.handle),
            regs.port("IRQ.FAULT_OVF_COUNT.COUNT").eq(fault_q.ovf_count),
        ]
