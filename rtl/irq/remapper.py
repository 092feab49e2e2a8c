"""Interrupt remapping unit (IRU): IMS table lookup, PASID check, pending bits, fault queue.

Ref: Intel Scalable IOV spec (IMS), Linux ``drivers/dma/idxd`` IMS entry layout
(address_lo, address_hi, data, ctrl: ctrl bit 0 mask, bit 3 PASID enable,
bits 31:12 PASID), x86 MSI address/data format (destination ID in address
bits 19:12 under 0xFEE, vector in data bits 7:0), PCI MSI-X pending bit
array semantics, and Intel VT-d interrupt-remapping fault reasons (0x21, 0x22,
0x26). The register map and the ordering rules are in ``rtl/regs.rdl``
(``IRQ``), documented in ``docs/registers.md``.

Pipeline, one message per cycle:

* accept (cycle t): a replay of an unmasked pending interrupt, if any, else a
  message from ``msg_in``; the IMS entry is read from block RAM with a read
  port transparent to the IMS write port;
* decide (cycle t+1): DMA pass-through (pushed to the 3-deep ``dma_out``
  queue now), or the checks against the entry: fault, pending or deliver;
  the decision is registered;
* effect (cycle t+2): push to the 4-deep ``irq_out`` queue, set the pending
  bit (or replay, if an IMS write of cycle t+1 unmasked the entry), or push
  to the fault queue (or count an overflow);
* ``dma_out`` valid from cycle t+2, ``irq_out`` from cycle t+3.

Neither the decide nor the effect stage ever stalls: a message is accepted
only when the output queues have room for it and for the messages in those
stages. So every message is decided exactly one cycle after its acceptance,
whatever the back-pressure, and the outcome of a race with an IMS write
depends only on the order of the acceptance and the write's commit cycle
(the cycle of its bus response). The effect stage keeps the block RAM's
output off the queue and pending-bit logic, for clock speed.
"""

import enum

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .. import regmap
from ..csr.bank import RegisterBank
from ..csr.bus import CsrSignature, Resp

__all__ = [
    "PASID_WIDTH", "HANDLE_WIDTH", "CSR_ADDR_WIDTH", "IRQ_DEPTH", "DMA_DEPTH", "FaultReason", "Decision",
    "MessageLayout", "IrqLayout", "FaultLayout", "ProbeLayout",
    "InterruptRemapper",
]

PASID_WIDTH = 20
HANDLE_WIDTH = 16
#: Byte address width of the IRU's CSR window (64 KiB).
CSR_ADDR_WIDTH = 16
#: Depth of the irq_out queue: room for the two messages in the decide and
#: effect stages plus one per cycle of consumer latency, so 1 message/cycle holds.
IRQ_DEPTH = 4
#: Depth of the dma_out queue (DMA messages are pushed from the decide stage).
DMA_DEPTH = 3


class FaultReason(enum.IntEnum):
    """Interrupt-remapping fault reasons (Intel VT-d, table of fault reasons)."""
    HANDLE_BEYOND_TABLE = 0x21
    ENTRY_NOT_PRESENT = 0x22
    PASID_MISMATCH = 0x26


class Decision(enum.IntEnum):
    """What the decide stage did with a message."""
    DMA = 0
    DELIVER = 1
    PEND = 2
    FAULT = 3


#: An upstream message from an ADI.
MessageLayout = data.StructLayout({
    "is_irq": 1,
    "pasid": PASID_WIDTH,
    "handle": HANDLE_WIDTH,
    "addr": 64,
    "data": 32,
})

#: A remapped interrupt. ``dest`` and ``vector`` are the interrupt; ``handle``
#: and ``pasid`` name its source (for tracing and isolation checks).
IrqLayout = data.StructLayout({
    "dest": 8,
    "vector": 8,
    "handle": HANDLE_WIDTH,
    "pasid": PASID_WIDTH,
})

#: A fault record, as queued.
FaultLayout = data.StructLayout({
    "reason": 8,
    "pasid": PASID_WIDTH,
    "handle": HANDLE_WIDTH,
})

#: Observation points for testbenches and formal harnesses (not used by the design).
ProbeLayout = data.StructLayout({
    "dec_valid": 1,             # a message is decided this cycle
    "dec_kind": 2,              # Decision
    "dec_replay": 1,            # ... and it is a replay of a pending interrupt
    "dec_reason": 8,            # FaultReason when dec_kind is FAULT
    "dec_handle": HANDLE_WIDTH,
    "dec_pasid": PASID_WIDTH,
    "replay_take": 1,           # a replay is accepted this cycle
    "ims_busy": 1,              # an IMS access is between stb and ack
    "ims_ack": 1,               # an IMS access commits this cycle
    "ims_we": 1,
    "ims_addr": 15,             # byte address inside the IMS window
    "ims_wdata": 32,
    "ims_wstrb": 4,
    "ims_rdata": 32,
    "ims_resp": 2,
    "eff_irq": 1,               # pushed into the irq_out queue
    "eff_dma": 1,               # pushed into the dma_out queue
    "eff_pend": 1,              # set a pending bit
    "eff_fault": 1,             # pushed into the fault queue
    "eff_lost": 1,              # counted as an overflow (queue full)
    "irq_level": 3,             # irq_out queue occupancy
    "dma_level": 3,             # dma_out queue occupancy
    "irq_full": 1,
    "dma_full": 1,
})


def _saturating_inc(m, counter, when, clear):
    with m.If(clear):
        m.d.sync += counter.eq(0)
    with m.Elif(when & ~counter.all()):
        m.d.sync += counter.eq(counter + 1)


class InterruptRemapper(wiring.Component):
    """Interrupt remapping unit.

    Parameters
    ----------
    entries : int
        IMS table size, a power of two from 16 to 2048 (default 256).
    fault_depth : int
        Fault queue depth, 2 to 255 (default 16).
    pipelined : bool
        ``True`` (default): one message per cycle. ``False``: one message in
        flight at a time (the reference point for the benchmark).
    replay_depth : int
        Depth of the queue of unmasked pending interrupts waiting to replay.
    peek : bool
        Adds an asynchronous read port of the IMS table (``peek_addr``,
        ``peek_data``) for formal harnesses. Off in every synthesized top.

    Attributes
    ----------
    csr : In(CsrSignature(16))
        Register bus, local addresses of the 64 KiB ``IRQ`` window.
    msg_in : In(stream.Signature(MessageLayout))
        Upstream messages from the ADIs.
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

    def __init__(self, *, entries=256, fault_depth=16, pipelined=True, replay_depth=4, peek=False):
        if not isinstance(entries, int) or isinstance(entries, bool):
            raise TypeError(f"Number of IMS entries must be an integer, not {entries!r}")
        if not 16 <= entries <= 2048 or entries & (entries - 1):
            raise ValueError(f"Number of IMS entries must be a power of two between 16 and 2048, "
                             f"not {entries}")
        if not isinstance(fault_depth, int) or not 2 <= fault_depth <= 255:
            raise ValueError(f"Fault queue depth must be an integer between 2 and 255, not {fault_depth!r}")
        if not isinstance(replay_depth, int) or not 1 <= replay_depth <= 64:
            raise ValueError(f"Replay queue depth must be an integer between 1 and 64, not {replay_depth!r}")
        self.entries = entries
        self.fault_depth = fault_depth
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
        super().__init__(members)
        self.probe = Signal(ProbeLayout)

    def elaborate(self, platform):
        m = Module()
        n, ib = self.entries, self.idx_bits

        # ---- registers -------------------------------------------------------
        m.submodules.regs = regs = RegisterBank.for_window("IRQ", addr_width=CSR_ADDR_WIDTH,
                                                           base=regmap.IRQ_BASE)
        wiring.connect(m, wiring.flipped(self.csr), regs.csr)
        ims_bus = regs.ext_irq_ims

        # ---- storage ---------------------------------------------------------
        # One 128-bit row per entry: address_lo, address_hi, data, ctrl.
        m.submodules.ims = ims = Memory(shape=128, depth=n, init=[])
        wr = ims.write_port(granularity=32)
        rd = ims.read_port(transparent_for=(wr,))   # pipeline: sees a write of the same cycle
        crd = ims.read_port()                       # CSR side
        if hasattr(self, "peek_addr"):
            prd = ims.read_port(domain="comb")
            m.d.comb += [prd.addr.eq(self.peek_addr), self.peek_data.eq(prd.data)]
        pending = Signal(n)

        m.submodules.replay_q = replay_q = SyncFIFO(width=ib, depth=self.replay_depth)
        m.submodules.irq_q = irq_q = SyncFIFO(width=IrqLayout.size, depth=IRQ_DEPTH)
        m.submodules.dma_q = dma_q = SyncFIFO(width=MessageLayout.size, depth=DMA_DEPTH)
        m.submodules.fault_q = fault_q = SyncFIFO(width=FaultLayout.size, depth=self.fault_depth)

        # ---- accept stage ----------------------------------------------------
        s1_valid = Signal()
        s1_replay = Signal()
        s1_msg = Signal(MessageLayout)
        s1_to_irq = s1_valid & (s1_msg.is_irq | s1_replay)
        s1_to_dma = s1_valid & ~s1_msg.is_irq & ~s1_replay
        s2_valid = Signal()                   # effect stage: a decision of the previous cycle
        s2_kind = Signal(Decision)
        can_accept = Signal()
        s2_to_irq = s2_valid & (s2_kind == Decision.DELIVER)
        if self.pipelined:
            m.d.comb += can_accept.eq((irq_q.level + s1_to_irq + s2_to_irq < IRQ_DEPTH) &
                                      (dma_q.level + s1_to_dma < DMA_DEPTH))
        else:
            m.d.comb += can_accept.eq(~s1_valid & ~s2_valid & (irq_q.level == 0) & (dma_q.level == 0))
        replay_take = Signal()
        accept = Signal()
        m.d.comb += [
            replay_take.eq(can_accept & replay_q.r_rdy),
            replay_q.r_en.eq(replay_take),
            self.msg_in.ready.eq(can_accept & ~replay_q.r_rdy),
            accept.eq(self.msg_in.valid & self.msg_in.ready),
            rd.addr.eq(Mux(replay_take, replay_q.r_data, self.msg_in.payload.handle[:ib])),
        ]
        m.d.sync += [s1_valid.eq(accept | replay_take), s1_replay.eq(replay_take)]
        with m.If(accept):
            m.d.sync += s1_msg.eq(self.msg_in.payload)
        with m.Elif(replay_take):
            m.d.sync += [s1_msg.is_irq.eq(1), s1_msg.handle.eq(replay_q.r_data),
                         s1_msg.pasid.eq(0), s1_msg.addr.eq(0), s1_msg.data.eq(0)]

        # ---- decide stage ----------------------------------------------------
        e = rd.data
        addr_lo, addr_hi, edata, ctrl = e[0:32], e[32:64], e[64:96], e[96:128]
        e_mask, e_pasid_en, e_pasid = ctrl[0], ctrl[3], ctrl[12:32]
        s1_idx = s1_msg.handle[:ib]
        in_range = s1_msg.handle[ib:] == 0 if ib < HANDLE_WIDTH else Const(1)
        present = (addr_hi == 0) & (addr_lo[20:32] == 0xFEE)
        pasid_ok = s1_replay | ~e_pasid_en | (e_pasid == s1_msg.pasid)
        is_irq = s1_msg.is_irq | s1_replay
        dec_pasid = Mux(s1_replay, e_pasid, s1_msg.pasid)
        dec_dma = s1_valid & ~is_irq
        dec_fault = s1_valid & is_irq & ~(in_range & present & pasid_ok)
        dec_pend = s1_valid & is_irq & in_range & present & pasid_ok & e_mask
        dec_deliver = s1_valid & is_irq & in_range & present & pasid_ok & ~e_mask
        reason = Signal(8)
        with m.If(~in_range):
            m.d.comb += reason.eq(FaultReason.HANDLE_BEYOND_TABLE)
        with m.Elif(~present):
            m.d.comb += reason.eq(FaultReason.ENTRY_NOT_PRESENT)
        with m.Else():
            m.d.comb += reason.eq(FaultReason.PASID_MISMATCH)

        # The decision is registered; its effects happen in the next cycle.
        kind = Signal(Decision)
        m.d.comb += kind.eq(Mux(dec_dma, Decision.DMA, Mux(dec_deliver, Decision.DELIVER,
                                                        Mux(dec_pend, Decision.PEND, Decision.FAULT))))
        s2_irq = Signal(IrqLayout)            # the interrupt, or the fault's PASID and handle
        s2_reason = Signal(8)
        m.d.sync += [s2_valid.eq(s1_valid & is_irq), s2_kind.eq(kind), s2_reason.eq(reason),
                     s2_irq.dest.eq(addr_lo[12:20]), s2_irq.vector.eq(edata[0:8]),
                     s2_irq.handle.eq(s1_msg.handle), s2_irq.pasid.eq(dec_pasid)]
        s2_idx = s2_irq.handle[:ib]
        s2_pend = s2_valid & (s2_kind == Decision.PEND)
        s2_fault = s2_valid & (s2_kind == Decision.FAULT)
        m.d.comb += [
            irq_q.w_en.eq(s2_valid & (s2_kind == Decision.DELIVER)), irq_q.w_data.eq(s2_irq),
            dma_q.w_en.eq(dec_dma), dma_q.w_data.eq(s1_msg),
        ]
        fault_rec = Signal(FaultLayout)
        m.d.comb += [
            fault_rec.reason.eq(s2_reason), fault_rec.pasid.eq(s2_irq.pasid),
            fault_rec.handle.eq(s2_irq.handle),
            fault_q.w_en.eq(s2_fault), fault_q.w_data.eq(fault_rec),
        ]
        overflow = Signal()
        ovf_count = Signal(32)
        clear_ovf = regs.port("IRQ.FAULT_CTRL.CLEAR_OVERFLOW")
        fault_lost = s2_fault & ~fault_q.w_rdy
        with m.If(clear_ovf):
            m.d.sync += overflow.eq(0)
        with m.Elif(fault_lost):
            m.d.sync += overflow.eq(1)
        _saturating_inc(m, ovf_count, fault_lost, clear_ovf)

        # Output queues -> streams.
        m.d.comb += [
            self.irq_out.valid.eq(irq_q.r_rdy), self.irq_out.payload.eq(irq_q.r_data),
            irq_q.r_en.eq(self.irq_out.ready),
            self.dma_out.valid.eq(dma_q.r_rdy), self.dma_out.payload.eq(dma_q.r_data),
            dma_q.r_en.eq(self.dma_out.ready),
        ]

        # ---- IMS window (CSR side) --------------------------------------------
        # Cycle 0 (stb): the entry is read on the CSR read port; cycle 1: it is
        # registered; cycle 2: the access commits (ack). A CTRL write waits
        # while the replay queue is full. A read returns the state at the start of its commit cycle; a
        # write takes effect at its end, after the decision of that cycle: if
        # that decision made the entry pending and the write unmasks it, the
        # decide side queues the replay (the CSR side sees the older pending bit).
        c_idx = ims_bus.addr[4:4 + ib]
        c_word = ims_bus.addr[2:4]
        c_in_range = ims_bus.addr[4 + ib:] == 0 if 4 + ib < 15 else Const(1)
        busy = Signal()
        fetched = Signal()                    # old_row holds the entry (cycle 2 onwards)
        old_row = Signal(128)
        m.d.comb += crd.addr.eq(c_idx)
        m.d.sync += old_row.eq(crd.data)
        with m.If(ims_bus.stb):
            m.d.sync += busy.eq(1)
        old_word = old_row.word_select(c_word, 32)
        bytemask = Cat(*(b.replicate(8) for b in ims_bus.wstrb))
        new_word = Signal(32)
        is_ctrl = c_word == 3
        m.d.comb += new_word.eq(((old_word & ~bytemask) | (ims_bus.wdata & bytemask)) &
                                Mux(is_ctrl, Const(0xFFFF_FFFD, 32), Const(0xFFFF_FFFF, 32)))
        # A pending decision of the previous cycle (effect stage) counts as pending now,
        # unless the write of the previous cycle cleared that entry's pending bit.
        last_clear = Signal()                 # the write of the previous cycle cleared PENDING
        last_unmask = Signal()                # ... by unmasking
        last_replayed = Signal()              # ... and queued a replay itself
        last_idx = Signal(ib)
        s2_cleared = last_clear & (last_idx == s2_idx)
        s2_sets = s2_pend & ~s2_cleared
        pend_now = pending.bit_select(c_idx, 1) | (s2_sets & (s2_idx == c_idx))
        commit = Signal()
        m.d.comb += commit.eq(busy & fetched & ~(ims_bus.we & c_in_range & is_ctrl & ~replay_q.w_rdy))
        m.d.sync += fetched.eq(busy & ~commit)
        with m.If(commit):
            m.d.sync += busy.eq(0)
        do_write = commit & ims_bus.we & c_in_range
        pasid_changed = (old_word[3] != new_word[3]) | (old_word[12:32] != new_word[12:32])
        unmask = do_write & is_ctrl & ~new_word[0] & ~pasid_changed
        replay_csr = unmask & pend_now
        pend_clear = do_write & is_ctrl & (unmask | pasid_changed)
        m.d.sync += [last_clear.eq(pend_clear), last_unmask.eq(unmask),
                     last_replayed.eq(replay_csr), last_idx.eq(c_idx)]
        # A decision of the write's own cycle pended: replay it now (once).
        replay_s2 = s2_pend & s2_cleared & last_unmask & ~last_replayed
        m.d.comb += [
            ims_bus.ack.eq(commit),
            ims_bus.resp.eq(Mux(c_in_range, Resp.OKAY, Resp.DECERR)),
            ims_bus.rdata.eq(Mux(commit & ~ims_bus.we & c_in_range,
                                 old_word | Mux(is_ctrl, pend_now << 1, 0), 0)),
            wr.addr.eq(c_idx),
            wr.data.eq(new_word.replicate(4)),
            wr.en.eq(Mux(do_write, Const(1, 4) << c_word, 0)),
            replay_q.w_en.eq(replay_csr | replay_s2),
            replay_q.w_data.eq(Mux(replay_csr, c_idx, s2_idx)),
        ]
        # Unmasking or a new owner clears the pending bit (over a set in the same cycle).
        set_mask = Signal(n)
        clr_mask = Signal(n)
        m.d.comb += [
            set_mask.eq(Mux(s2_sets, Const(1, n) << s2_idx, 0)),
            clr_mask.eq(Mux(pend_clear, Const(1, n) << c_idx, 0)),
        ]
        m.d.sync += pending.eq((pending | set_mask) & ~clr_mask)

        # ---- fault queue and counters over CSR ---------------------------------
        head = Signal(FaultLayout)
        m.d.comb += [
            head.eq(fault_q.r_data),
            fault_q.r_en.eq(regs.port("IRQ.FAULT_CTRL.POP")),
            regs.port("IRQ.FAULT_STATUS.COUNT").eq(fault_q.level),
            regs.port("IRQ.FAULT_STATUS.OVERFLOW").eq(overflow),
            regs.port("IRQ.FAULT_REC0.REASON").eq(Mux(fault_q.r_rdy, head.reason, 0)),
            regs.port("IRQ.FAULT_REC0.VALID").eq(fault_q.r_rdy),
            regs.port("IRQ.FAULT_REC0.PASID").eq(Mux(fault_q.r_rdy, head.pasid, 0)),
            regs.port("IRQ.FAULT_REC1.HANDLE").eq(Mux(fault_q.r_rdy, head.handle, 0)),
            regs.port("IRQ.FAULT_OVF_COUNT.COUNT").eq(ovf_count),
        ]
        clear_cnt = regs.port("IRQ.CNT_CTRL.CLEAR")
        for name, event in (("CNT_DELIVERED", self.irq_out.valid & self.irq_out.ready),
                            ("CNT_PENDED", s2_pend), ("CNT_FAULTED", s2_fault),
                            ("CNT_DMA", dec_dma)):
            cnt = Signal(32, name=name.lower())
            _saturating_inc(m, cnt, event, clear_cnt)
            m.d.comb += regs.port(f"IRQ.{name}.COUNT").eq(cnt)

        # ---- probe ---------------------------------------------------------------
        p = self.probe
        m.d.comb += [
            p.dec_valid.eq(s1_valid), p.dec_kind.eq(kind), p.dec_replay.eq(s1_replay),
            p.dec_reason.eq(Mux(dec_fault, reason, 0)), p.dec_handle.eq(s1_msg.handle),
            p.dec_pasid.eq(dec_pasid), p.replay_take.eq(replay_take),
            p.ims_busy.eq(busy), p.ims_ack.eq(ims_bus.ack), p.ims_we.eq(ims_bus.we), p.ims_addr.eq(ims_bus.addr),
            p.ims_wdata.eq(ims_bus.wdata), p.ims_wstrb.eq(ims_bus.wstrb),
            p.ims_rdata.eq(ims_bus.rdata), p.ims_resp.eq(ims_bus.resp),
            p.eff_irq.eq(irq_q.w_en), p.eff_dma.eq(dma_q.w_en), p.eff_pend.eq(s2_pend),
            p.eff_fault.eq(fault_q.w_en & fault_q.w_rdy), p.eff_lost.eq(fault_lost),
            p.irq_level.eq(irq_q.level), p.dma_level.eq(dma_q.level),
            p.irq_full.eq(~irq_q.w_rdy), p.dma_full.eq(~dma_q.w_rdy),
        ]
        return m
