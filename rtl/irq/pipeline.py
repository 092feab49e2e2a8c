"""The interrupt remapper's message pipeline: accept, read, check, decide, effect; one message per cycle.

Ref: x86 MSI address/data format (destination ID in address bits 19:12
under 0xFEE, vector in data bits 7:0), PCI MSI-X pending bit semantics,
Intel VT-d interrupt-remapping fault reasons (``IrqFaultReason`` in
``rtl/regs.rdl``). The stages (rtl/irq/remapper.py has the whole story):

* accept (cycle t): a replay of an unmasked pending interrupt, if any, else
  a message from ``msg_in``; its IMS entry's row is addressed
  (:class:`~.ims.ImsTable`);
* read (t+1): the row comes out of the block RAM into its register; a DMA
  message is pushed to the ``dma_out`` queue;
* check (t+2): the registered row's fields are checked one by one (entry
  present, masked, PASID check enabled, the PASID two bits at a time), into
  registers: the block RAM's output feeds one level of logic only;
* decide (t+3): the checks are combined (handle in the table, entry present,
  PASID) into the decision, registered;
* effect (t+4): the registered decision's effect: the interrupt leaves on
  ``irq_out`` (past the queue when the queue is empty and ``irq_out`` ready,
  else into it), or a pending bit (``pend``), or a fault (``fault``, with its
  record).

The decision is registered before any of its effects, so no check drives the
queue, the pending bits or the fault queue in its own cycle; the bypass keeps
an interrupt's latency at :data:`LATENCY` cycles (acceptance to ``irq_out``)
while ``irq_out`` keeps up.

A message is accepted only when the output queues have room for it and for
the messages in flight (an interrupt in the effect stage counts as a
delivery), so no stage after acceptance stalls; with ``pipelined=False``
one message at a time is in flight. While the IMS window uses the table's
port (``port_csr``) the pipeline takes no replay, and only a DMA message or
one for the window's entry (``window_index``), which reads the row before
the window's write; with ``port_excl`` it takes nothing.
"""

from amaranth.hdl import Cat, Mux, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .. import regmap
from ..dma.defs import PASID_BITS
from ..regmap import IrqFaultReason
from .ims import LANE, ROW
from .layouts import HANDLE_WIDTH, Decision, FaultLayout, IrqLayout, MessageLayout

__all__ = ["RemapPipeline", "IRQ_DEPTH", "DMA_DEPTH", "EFFECT_DELAY", "LATENCY"]

#: Cycles from a message's decision (the cycle after its acceptance, in the
#: sense of the register map) to its effect stage: check, decide, effect.
EFFECT_DELAY = 3
#: Cycles from a message's acceptance to its interrupt on ``irq_out``, when
#: the queue is empty and ``irq_out`` ready (the bypass).
LATENCY = 1 + EFFECT_DELAY
#: Depth of the irq_out queue: room for the four messages in the read, check,
#: decide and effect stages plus one, so that 1 message/cycle holds while
#: ``irq_out`` is ready (the queue then stays empty, every interrupt bypasses it).
IRQ_DEPTH = 5
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

#: A message between the read and the effect stage: what every stage carries.
_StageLayout = data.StructLayout({
    "irq": 1,                   # an interrupt (or replay) to decide
    "dma": 1,                   # a DMA message (already pushed; reported in the effect stage)
    "replay": 1,
    "in_range": 1,              # the handle is inside the table
    "out": IrqLayout,           # handle and PASID; destination and vector from the check stage on
})

#: The check stage's results, one level of logic off the row.
_ChecksLayout = data.StructLayout({
    "present": 1,               # ADDR_LO is 0xFEE..., ADDR_HI is zero
    "mask": 1,
    "any_pasid": 1,             # a replay, or PASID_EN clear: no PASID check
    "pasid_eq": PASID_BITS // 2,    # the message's PASID against the entry's, two bits each
})


class RemapPipeline(wiring.Component):
    """Accept, read, check, decide and effect stages with the ``irq_out`` and ``dma_out`` queues.

    Attributes
    ----------
    msg_in : In(stream.Signature(MessageLayout))
        Upstream messages.
    irq_out : Out(stream.Signature(IrqLayout)), dma_out : Out(stream.Signature(MessageLayout))
        Remapped interrupts; DMA messages, unchanged.
    replay : In(stream.Signature(idx_bits))
        Entries of unmasked pending interrupts to replay (taken before ``msg_in``). One
        waits in a register (``replay_held``) until it is taken (``replay_take``), so
        that taking it reaches no further back than that register.
    replay_take, replay_held : Out(1)
        A replay is accepted; one waits to be.
    port_csr, port_excl : In(1), window_index : In(idx_bits)
        The IMS window's use of the table's port this cycle, and its entry.
    table_addr : Out(idx_bits), raw : In(144)
        The table's port (:class:`~.ims.ImsTable`): the row addressed, and the row two cycles later.
    decision : Out(DecisionLayout)
        The effect stage's decision (for the probe: the effects use the registered flags).
    pend : Out(1), fault : Out(1), index : Out(idx_bits), record : Out(FaultLayout)
        The effect stage makes entry ``index`` pending, or raises a fault with this record.
    index_next : Out(idx_bits)
        ``index`` of the next cycle (the decide stage's).
    dma_push : Out(1), irq_push : Out(1)
        A DMA message is pushed (the read stage); an interrupt is delivered (the effect stage:
        on ``irq_out`` past the queue, or into it).
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
            "replay": In(stream.Signature(ib)), "replay_take": Out(1), "replay_held": Out(1),
            "port_csr": In(1), "port_excl": In(1), "window_index": In(ib),
            "table_addr": Out(ib), "raw": In(ROW),
            "decision": Out(DecisionLayout),
            "pend": Out(1), "fault": Out(1), "index": Out(ib), "index_next": Out(ib), "record": Out(FaultLayout),
            "dma_push": Out(1), "irq_push": Out(1), "irq_level": Out(3), "dma_level": Out(3), "irq_full": Out(1), "dma_full": Out(1),
        })
        # Room left in the irq_out queue: its depth less its level and the
        # interrupts in the check to effect stages (a register, so that
        # acceptance adds none of them up, and fed by none of the acceptance
        # logic); and that sum, for invariants().
        self._irq_room = Signal(range(IRQ_DEPTH + 1), init=IRQ_DEPTH)
        self._irq_used = Signal(range(2 * IRQ_DEPTH))

    def invariants(self):
        """The irq_out queue's room register agrees with the queue and the stages
        (for formal harnesses: induction must not start where they disagree)."""
        return [self._irq_room + self._irq_used == IRQ_DEPTH]

    def elaborate(self, platform):
        m = Module()
        ib = self.idx_bits
        m.submodules.irq_q = irq_q = SyncFIFO(width=IrqLayout.size, depth=IRQ_DEPTH)
        m.submodules.dma_q = dma_q = SyncFIFO(width=MessageLayout.size, depth=DMA_DEPTH)
        s2, s3, s4 = Signal(_StageLayout), Signal(_StageLayout), Signal(_StageLayout)
        # ---- accept stage (cycle t) ----
        s1_to_irq, s1_to_dma, s1_replay = Signal(), Signal(), Signal()   # the read stage: where it goes
        s1_msg = Signal(MessageLayout)
        can_accept = Signal()
        if self.pipelined:
            # Room for it and the interrupt in the read stage; one in the effect
            # stage is counted as if it delivered.
            m.d.comb += can_accept.eq((self._irq_room > s1_to_irq) & (dma_q.level + s1_to_dma < DMA_DEPTH) &
                                      ~self.port_excl)
        else:
            m.d.comb += can_accept.eq(~s1_to_irq & ~s1_to_dma & ~(s2.irq | s3.irq | s4.irq) & (irq_q.level == 0) &
                                      (dma_q.level == 0) & ~self.port_excl)
        replay_take, accept = self.replay_take, Signal()
        pl, held, held_idx = self.msg_in.payload, self.replay_held, Signal(ib)
        same_entry = ~pl.is_irq | (pl.handle[:ib] == self.window_index)
        m.d.comb += [
            replay_take.eq(can_accept & held & ~self.port_csr),
            self.replay.ready.eq(~held),
            self.msg_in.ready.eq(can_accept & ~held & (~self.port_csr | same_entry)),
            accept.eq(self.msg_in.valid & self.msg_in.ready),
        ]
        with m.If(self.replay.valid & ~held):
            m.d.sync += [held.eq(1), held_idx.eq(self.replay.payload)]
        with m.Elif(replay_take):
            m.d.sync += held.eq(0)
        replay_msg, next_msg = Signal(MessageLayout), Signal(MessageLayout)
        m.d.comb += [
            replay_msg.is_irq.eq(1), replay_msg.handle.eq(held_idx),
            next_msg.eq(Mux(held, replay_msg, self.msg_in.payload)),
            # The entry is read at the end of the acceptance cycle.
            self.table_addr.eq(Mux(self.port_csr, self.window_index, next_msg.handle[:ib])),
        ]
        m.d.sync += [s1_to_irq.eq((accept & pl.is_irq) | replay_take), s1_to_dma.eq(accept & ~pl.is_irq),
                     s1_replay.eq(replay_take), s1_msg.eq(next_msg)]
        # ---- read stage (cycle t+1): the row comes out of the block RAM ----
        m.d.comb += [self.dma_push.eq(s1_to_dma), dma_q.w_en.eq(s1_to_dma), dma_q.w_data.eq(s1_msg)]
        m.d.sync += [
            s2.irq.eq(s1_to_irq), s2.dma.eq(s1_to_dma), s2.replay.eq(s1_replay),
            s2.in_range.eq(s1_msg.handle[ib:] == 0 if ib < HANDLE_WIDTH else 1),
            s2.out.handle.eq(s1_msg.handle), s2.out.pasid.eq(s1_msg.pasid),
        ]
        checks = self._check(m, s2, s3)
        flags = self._decide(m, s3, checks, s4)
        self._effect(m, s4, irq_q, flags)
        # The room: taken by an interrupt leaving the read stage, given back by one
        # leaving on irq_out or by a decision other than a delivery.
        given = (self.irq_out.valid & self.irq_out.ready) + (flags[1] | flags[2])
        m.d.sync += self._irq_room.eq(self._irq_room + given - s1_to_irq)
        m.d.comb += self._irq_used.eq(irq_q.level + s2.irq + s3.irq + s4.irq)
        m.d.comb += [
            self.dma_out.valid.eq(dma_q.r_rdy), self.dma_out.payload.eq(dma_q.r_data), dma_q.r_en.eq(self.dma_out.ready),
            self.irq_level.eq(irq_q.level), self.dma_level.eq(dma_q.level),
            self.irq_full.eq(~irq_q.w_rdy), self.dma_full.eq(~dma_q.w_rdy),
        ]
        return m

    def _check(self, m, s2, s3):
        """Check stage (cycle t+2): the row's fields into registers, one level of logic each."""
        raw = self.raw
        addr_lo, fee, hi_nonzero = raw[0:32], raw[32], raw[LANE + 32]
        edata = raw[2 * LANE:][:32]
        ctrl = raw[CTRL_WORD * LANE:][:32]
        e_pasid, msg_pasid = ctrl[PASID], s2.out.pasid
        checks = Signal(_ChecksLayout)
        m.d.sync += [
            s3.eq(s2),
            s3.out.dest.eq(addr_lo[12:20]), s3.out.vector.eq(edata[0:8]),
            s3.out.pasid.eq(Mux(s2.replay, e_pasid, msg_pasid)),
            checks.present.eq(fee & ~hi_nonzero), checks.mask.eq(ctrl[MASK]),
            checks.any_pasid.eq(s2.replay | ~ctrl[PASID_EN]),
            checks.pasid_eq.eq(Cat(*(e_pasid[i:i + 2] == msg_pasid[i:i + 2] for i in range(0, PASID_BITS, 2)))),
        ]
        return checks

    def _decide(self, m, s3, checks, s4):
        """Decide stage (cycle t+3): the checks combined into the decision, registered as
        one flag per outcome; returns ``(deliver, pend, fault, reason)``."""
        ok = s3.in_range & checks.present & (checks.any_pasid | checks.pasid_eq.all())
        reason = Signal(8)
        with m.If(~s3.in_range):
            m.d.comb += reason.eq(IrqFaultReason.HANDLE_BEYOND_TABLE)
        with m.Elif(~checks.present):
            m.d.comb += reason.eq(IrqFaultReason.ENTRY_NOT_PRESENT)
        with m.Else():
            m.d.comb += reason.eq(IrqFaultReason.PASID_MISMATCH)
        flags = deliver, pend, fault, reason_q = Signal(), Signal(), Signal(), Signal(8)
        m.d.comb += self.index_next.eq(s3.out.handle[:self.idx_bits])
        m.d.sync += [
            s4.eq(s3), deliver.eq(s3.irq & ok & ~checks.mask), pend.eq(s3.irq & ok & checks.mask),
            fault.eq(s3.irq & ~ok), reason_q.eq(reason),
        ]
        return flags

    def _effect(self, m, s4, irq_q, flags):
        """Effect stage (cycle t+4): the registered decision's effect, ``irq_out`` past an empty queue."""
        deliver, pend, fault, reason = flags
        bypass = deliver & ~irq_q.r_rdy & self.irq_out.ready
        d = self.decision
        m.d.comb += [
            d.valid.eq(s4.irq | s4.dma), d.replay.eq(s4.replay), d.reason.eq(Mux(fault, reason, 0)),
            d.handle.eq(s4.out.handle), d.pasid.eq(s4.out.pasid),
            d.kind.eq(Mux(s4.dma, Decision.DMA, Mux(deliver, Decision.DELIVER, Mux(pend, Decision.PEND, Decision.FAULT)))),
            self.pend.eq(pend), self.fault.eq(fault), self.index.eq(s4.out.handle[:self.idx_bits]),
            self.record.reason.eq(reason), self.record.pasid.eq(s4.out.pasid), self.record.handle.eq(s4.out.handle),
            self.irq_push.eq(deliver), irq_q.w_en.eq(deliver & ~bypass), irq_q.w_data.eq(s4.out),
            self.irq_out.valid.eq(irq_q.r_rdy | deliver),
            self.irq_out.payload.eq(Mux(irq_q.r_rdy, irq_q.r_data, s4.out)),
            irq_q.r_en.eq(self.irq_out.ready),
        ]
