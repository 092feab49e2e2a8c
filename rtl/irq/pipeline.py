"""The interrupt remapper's message pipeline: accept, read, effect; one message per cycle.

Ref: x86 MSI address/data format (destination ID in address bits 19:12
under 0xFEE, vector in data bits 7:0), PCI MSI-X pending bit semantics,
Intel VT-d interrupt-remapping fault reasons (``IrqFaultReason`` in
``rtl/regs.rdl``). The stages (rtl/irq/remapper.py has the whole story):

* accept (cycle t): a replay of an unmasked pending interrupt, if any, else
  a message from ``msg_in``; its IMS entry's row is addressed
  (:class:`~.ims.ImsTable`);
* read (t+1): the row comes out of the block RAM into its register; a DMA
  message is pushed to the ``dma_out`` queue;
* effect (t+2): the checks on the registered row (handle in the table,
  entry present, PASID), and their effect: push to the ``irq_out`` queue,
  or a pending bit (``pend``), or a fault (``fault``, with its record).

A message is accepted only when the output queues have room for it and for
the messages in flight (an interrupt in the effect stage counts as a
delivery), so no stage after acceptance stalls; with ``pipelined=False``
one message at a time is in flight. While the IMS window uses the table's
port (``port_csr``) the pipeline takes no replay, and only a DMA message or
one for the window's entry (``window_index``), which reads the row before
the window's write; with ``port_excl`` it takes nothing.
"""

from amaranth.hdl import Mux, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .. import regmap
from ..dma.defs import PASID_BITS
from ..regmap import IrqFaultReason
from .ims import LANE, ROW
from .layouts import HANDLE_WIDTH, Decision, FaultLayout, IrqLayout, MessageLayout

__all__ = ["RemapPipeline", "IRQ_DEPTH", "DMA_DEPTH"]

#: Depth of the irq_out queue: room for the two messages in the decide and
#: effect stages plus one per cycle of consumer latency, so 1 message/cycle holds.
IRQ_DEPTH = 4
#: Depth of the dma_out queue (DMA messages are pushed from the read stage).
DMA_DEPTH = 3
#: The IMS entry's CTRL word and its fields (``IRQ.IMS.ENTRY`` in regs.rdl).
CTRL_WORD = regmap.IRQ_IMS_ENTRY_MASK_WORD
MASK = regmap.IRQ_IMS_ENTRY_MASK_LSB
PENDING = regmap.IRQ_IMS_ENTRY_PENDING_LSB
PASID_EN = regmap.IRQ_IMS_ENTRY_PASID_EN_LSB
PASID = slice(regmap.IRQ_IMS_ENTRY_PASID_LSB, regmap.IRQ_IMS_ENTRY_PASID_LSB + regmap.IRQ_IMS_ENTRY_PASID_WIDTH)


#: What the effect stage decided, for the probe and the counters.
DecisionLayout = data.StructLayout({
    "valid": 1,                 # a decision is reported (the effect stage)
    "kind": Decision,
    "replay": 1,                # ... of a replay of a pending interrupt
    "reason": 8,                # IrqFaultReason (meaningful for FAULT)
    "handle": HANDLE_WIDTH,
    "pasid": PASID_BITS,        # the message's, or the entry's for a replay
})


class RemapPipeline(wiring.Component):
    """Accept, read and effect stages with the ``irq_out`` and ``dma_out`` queues.

    Attributes
    ----------
    msg_in : In(stream.Signature(MessageLayout))
        Upstream messages.
    irq_out : Out(stream.Signature(IrqLayout)), dma_out : Out(stream.Signature(MessageLayout))
        Remapped interrupts; DMA messages, unchanged.
    replay : In(stream.Signature(idx_bits))
        Entries of unmasked pending interrupts to replay (taken before ``msg_in``).
    port_csr, port_excl : In(1), window_index : In(idx_bits)
        The IMS window's use of the table's port this cycle, and its entry.
    table_addr : Out(idx_bits), raw : In(144)
        The table's port (:class:`~.ims.ImsTable`): the row addressed, and the row two cycles later.
    decision : Out(DecisionLayout)
        The effect stage's decision.
    pend : Out(1), fault : Out(1), index : Out(idx_bits), record : Out(FaultLayout)
        The effect stage makes entry ``index`` pending, or raises a fault with this record.
    dma_push : Out(1), irq_push : Out(1)
        A DMA message is pushed (the read stage); an interrupt is (the effect stage).
    irq_level, dma_level : Out(3); irq_full, dma_full : Out(1)
        The queues' occupancies and full flags.
    """

    def __init__(self, entries, *, pipelined=True):
        self.entries = entries
        self.pipelined = pipelined
        self.idx_bits = ib = (entries - 1).bit_length()
        super().__init__({
            "msg_in": In(stream.Signature(MessageLayout)),
            "irq_out": Out(stream.Signature(IrqLayout)), "dma_out": Out(stream.Signature(MessageLayout)),
            "replay": In(stream.Signature(ib)),
            "port_csr": In(1), "port_excl": In(1), "window_index": In(ib),
            "table_addr": Out(ib), "raw": In(ROW),
            "decision": Out(DecisionLayout),
            "pend": Out(1), "fault": Out(1), "index": Out(ib), "record": Out(FaultLayout),
            "dma_push": Out(1), "irq_push": Out(1), "irq_level": Out(3), "dma_level": Out(3), "irq_full": Out(1), "dma_full": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        ib = self.idx_bits
        m.submodules.irq_q = irq_q = SyncFIFO(width=IrqLayout.size, depth=IRQ_DEPTH)
        m.submodules.dma_q = dma_q = SyncFIFO(width=MessageLayout.size, depth=DMA_DEPTH)
        # ---- accept stage (cycle t) ----
        s1_valid, s1_replay = Signal(), Signal()
        s1_msg = Signal(MessageLayout)
        s1_to_irq = s1_valid & (s1_msg.is_irq | s1_replay)
        s1_to_dma = s1_valid & ~s1_msg.is_irq & ~s1_replay
        s2_valid = Signal()                   # effect stage: an interrupt (or replay) to decide
        can_accept = Signal()
        if self.pipelined:
            # An interrupt in the effect stage is counted as if it delivered.
            m.d.comb += can_accept.eq((irq_q.level + s1_to_irq + s2_valid < IRQ_DEPTH) &
                                      (dma_q.level + s1_to_dma < DMA_DEPTH) & ~self.port_excl)
        else:
            m.d.comb += can_accept.eq(~s1_valid & ~s2_valid & (irq_q.level == 0) & (dma_q.level == 0) &
                                      ~self.port_excl)
        replay_take, accept = Signal(), Signal()
        pl, rq = self.msg_in.payload, self.replay
        same_entry = ~pl.is_irq | (pl.handle[:ib] == self.window_index)
        m.d.comb += [
            replay_take.eq(can_accept & rq.valid & ~self.port_csr),
            rq.ready.eq(replay_take),
            self.msg_in.ready.eq(can_accept & ~rq.valid & (~self.port_csr | same_entry)),
            accept.eq(self.msg_in.valid & self.msg_in.ready),
        ]
        replay_msg, next_msg = Signal(MessageLayout), Signal(MessageLayout)
        m.d.comb += [
            replay_msg.is_irq.eq(1), replay_msg.handle.eq(rq.payload),
            next_msg.eq(Mux(rq.valid, replay_msg, self.msg_in.payload)),
            # The entry is read at the end of the acceptance cycle.
            self.table_addr.eq(Mux(self.port_csr, self.window_index, next_msg.handle[:ib])),
        ]
        m.d.sync += [s1_valid.eq(accept | replay_take), s1_replay.eq(replay_take), s1_msg.eq(next_msg)]
        # ---- read stage (cycle t+1): the row comes out of the block RAM ----
        is_irq = s1_msg.is_irq | s1_replay
        m.d.comb += [self.dma_push.eq(s1_valid & ~is_irq), dma_q.w_en.eq(self.dma_push), dma_q.w_data.eq(s1_msg)]
        s2_dma, s2_replay, s2_in_range = Signal(), Signal(), Signal()
        s2_handle = Signal(HANDLE_WIDTH)
        s2_msg_pasid = Signal(PASID_BITS)
        m.d.sync += [
            s2_valid.eq(s1_valid & is_irq), s2_dma.eq(self.dma_push), s2_replay.eq(s1_replay),
            s2_in_range.eq(s1_msg.handle[ib:] == 0 if ib < HANDLE_WIDTH else 1),
            s2_handle.eq(s1_msg.handle), s2_msg_pasid.eq(s1_msg.pasid),
        ]
        # ---- effect stage (cycle t+2): checks, and their effect ----
        raw = self.raw
        addr_lo, fee, hi_nonzero = raw[0:32], raw[32], raw[LANE + 32]
        edata = raw[2 * LANE:][:32]
        ctrl = raw[CTRL_WORD * LANE:][:32]
        e_mask, e_pasid_en, e_pasid = ctrl[MASK], ctrl[PASID_EN], ctrl[PASID]
        present = fee & ~hi_nonzero
        pasid_ok = s2_replay | ~e_pasid_en | (e_pasid == s2_msg_pasid)
        ok = s2_in_range & present & pasid_ok
        s2_deliver = s2_valid & ok & ~e_mask
        m.d.comb += [self.pend.eq(s2_valid & ok & e_mask), self.fault.eq(s2_valid & ~ok), self.index.eq(s2_handle[:ib])]
        reason = Signal(8)
        with m.If(~s2_in_range):
            m.d.comb += reason.eq(IrqFaultReason.HANDLE_BEYOND_TABLE)
        with m.Elif(~present):
            m.d.comb += reason.eq(IrqFaultReason.ENTRY_NOT_PRESENT)
        with m.Else():
            m.d.comb += reason.eq(IrqFaultReason.PASID_MISMATCH)
        s2_irq = Signal(IrqLayout)            # the interrupt, or the fault's PASID and handle
        m.d.comb += [
            s2_irq.dest.eq(addr_lo[12:20]), s2_irq.vector.eq(edata[0:8]), s2_irq.handle.eq(s2_handle),
            s2_irq.pasid.eq(Mux(s2_replay, e_pasid, s2_msg_pasid)),
            self.irq_push.eq(s2_deliver), irq_q.w_en.eq(s2_deliver), irq_q.w_data.eq(s2_irq),
            self.record.reason.eq(reason), self.record.pasid.eq(s2_irq.pasid), self.record.handle.eq(s2_handle),
        ]
        d = self.decision
        m.d.comb += [
            d.valid.eq(s2_valid | s2_dma), d.replay.eq(s2_replay), d.reason.eq(Mux(self.fault, reason, 0)),
            d.handle.eq(s2_handle), d.pasid.eq(s2_irq.pasid),
            d.kind.eq(Mux(s2_dma, Decision.DMA, Mux(s2_deliver, Decision.DELIVER,
                                                    Mux(self.pend, Decision.PEND, Decision.FAULT)))),
        ]
        # Output queues -> streams.
        m.d.comb += [
            self.irq_out.valid.eq(irq_q.r_rdy), self.irq_out.payload.eq(irq_q.r_data), irq_q.r_en.eq(self.irq_out.ready),
            self.dma_out.valid.eq(dma_q.r_rdy), self.dma_out.payload.eq(dma_q.r_data), dma_q.r_en.eq(self.dma_out.ready),
            self.irq_level.eq(irq_q.level), self.dma_level.eq(dma_q.level),
            self.irq_full.eq(~irq_q.w_rdy), self.dma_full.eq(~dma_q.w_rdy),
        ]
        return m
