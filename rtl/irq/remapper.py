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
* effect (cycle t+2): the checks (fault, pending or deliver) on the
  registered entry, and their effect: push to the 4-deep ``irq_out`` queue,
  or set the pending bit (registered first, set one cycle later), or a fault
  record (registered first, queued or counted as lost one cycle later);
* ``dma_out`` valid from cycle t+2, ``irq_out`` from cycle t+3.

The message is *decided* in cycle t+1 in the sense of the register map: it
uses the entry as the IMS writes committed up to cycle t left it, and the
probe reports its decision in cycle t+2. Neither stage after acceptance ever
stalls: a message is accepted only when the output queues have room for it
and for the messages in flight (an interrupt in the effect stage counts as a
delivery). So the outcome of a race with an IMS write depends only on the
order of the acceptance and the write's commit cycle (the cycle of its bus
response).

Because no stage stalls, a *drain* (``DRAIN_CMD``, ``DRAIN_STATUS``) is a
count, not a search: a fixed number of cycles after it starts, every message
accepted before has had its effect, except the interrupts still in the
``irq_out`` queue, which leave in order; the drain waits for those.

The IMS table has a single block RAM port shared by the pipeline and the
register window, with one 36-bit lane per IMS word (the word and a flag
decoded when it is written, so that "present" needs no comparison). A window
access reads the row (no message is accepted in that cycle) and, for a write,
writes the lane one cycle before its commit (only a message for the same
entry, which reads the old row, or a DMA message is accepted in that cycle);
a CTRL read takes no message two cycles before its commit. Counters, the
overflow flag, pending-bit updates, replay pushes and the registers the bank
reads are all fed from flip-flops, one cycle after their events, to keep the
checks' logic off every other path.
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
from ..counter import saturating_inc
from ..faultq import FaultQueue
from ..dma.defs import PASID_BITS
from ..ecp5 import DP16KD_DEPTH, dp16kd
from ..regmap import IrqFaultReason
from ..stream import ShiftQueue

__all__ = [
    "HANDLE_WIDTH", "CSR_ADDR_WIDTH", "IRQ_DEPTH", "DMA_DEPTH", "Decision",
    "MessageLayout", "IrqLayout", "FaultLayout", "ProbeLayout",
    "InterruptRemapper",
]

HANDLE_WIDTH = 16
#: Byte address width of the IRU's CSR window (64 KiB).
CSR_ADDR_WIDTH = 16
#: Depth of the irq_out queue: room for the two messages in the decide and
#: effect stages plus one per cycle of consumer latency, so 1 message/cycle holds.
IRQ_DEPTH = 4
#: Depth of the dma_out queue (DMA messages are pushed from the read stage).
DMA_DEPTH = 3
#: Cycles after a drain's START by which every message accepted until then has had its
#: effect (a fault record reaches the registers the bank reads 5 cycles after acceptance).
_DRAIN_SETTLE = 6


class Decision(enum.IntEnum):
    """What the decide stage did with a message."""
    DMA = 0
    DELIVER = 1
    PEND = 2
    FAULT = 3


#: An upstream message from an ADI.
MessageLayout = data.StructLayout({
    "is_irq": 1,
    "pasid": PASID_BITS,
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
    "pasid": PASID_BITS,
})

#: A fault record, as queued.
FaultLayout = data.StructLayout({
    "reason": 8,
    "pasid": PASID_BITS,
    "handle": HANDLE_WIDTH,
})

#: Observation points for testbenches and formal harnesses (not used by the design).
ProbeLayout = data.StructLayout({
    "dec_valid": 1,             # a decision is reported this cycle (the effect stage; it was
                                # taken in the previous cycle, against the IMS as it stood then)
    "dec_kind": 2,              # Decision
    "dec_replay": 1,            # ... and it is a replay of a pending interrupt
    "dec_reason": 8,            # IrqFaultReason when dec_kind is FAULT
    "dec_handle": HANDLE_WIDTH,
    "dec_pasid": PASID_BITS,
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
    "eff_dma": 1,               # pushed into the dma_out queue (the cycle before the report)
    "eff_pend": 1,              # set a pending bit
    "eff_fault": 1,             # pushed into the fault queue (the cycle after the report)
    "eff_lost": 1,              # not queued (queue full, or its source at its quota), idem
    "irq_level": 3,             # irq_out queue occupancy
    "dma_level": 3,             # dma_out queue occupancy
    "irq_full": 1,
    "dma_full": 1,
})


#: IMS table row: four lanes of 36 bits (a 32-bit word, a decoded flag, zeros).
_LANE = 36
_ROW = 4 * _LANE
#: The IMS entry's CTRL word and its fields (``IRQ.IMS.ENTRY`` in regs.rdl).
_CTRL_WORD = regmap.IRQ_IMS_ENTRY_MASK_WORD
_MASK = regmap.IRQ_IMS_ENTRY_MASK_LSB
_PENDING = regmap.IRQ_IMS_ENTRY_PENDING_LSB
_PASID_EN = regmap.IRQ_IMS_ENTRY_PASID_EN_LSB
_PASID = slice(regmap.IRQ_IMS_ENTRY_PASID_LSB, regmap.IRQ_IMS_ENTRY_PASID_LSB + regmap.IRQ_IMS_ENTRY_PASID_WIDTH)
#: Cycles of an IMS window access, counted from its stb (see InterruptRemapper.elaborate).
_P_WAIT, _P_READ, _P_ROW, _P_OLD, _P_NEW, _P_CTRL, _P_WRITE, _P_COMMIT = range(8)


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
        A fault's source is its PASID's low ``fault_source_bits`` bits, 0 to 7
        (default 3: eight sources). The fault queue is a
        :class:`~siov.rtl.faultq.FaultQueue`.
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
        (``siov_irq_ecp5``; see :mod:`siov.rtl.ecp5`). Same behaviour, cycle
        for cycle; at most 1024 entries.

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
            lost_addr_width=max(2, (regmap.EXTERNALS["IRQ.FAULT_LOST"].size - 1).bit_length()))
        self.fault_quota = self._fault_queue.quota
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

    def invariants(self):
        """Relations between the fault queue's flags and counts that hold in every reachable
        state (for formal harnesses: induction must not start where they disagree)."""
        return self._fault_queue.invariants()

    def fault_observe(self):
        """The fault queue's observation points (:meth:`~siov.rtl.faultq.FaultQueue.observe`)."""
        return self._fault_queue.observe()

    def elaborate(self, platform):
        m = Module()
        n, ib = self.entries, self.idx_bits

        # ---- registers -------------------------------------------------------
        m.submodules.regs = regs = RegisterBank.for_window("IRQ", addr_width=CSR_ADDR_WIDTH,
                                                           base=regmap.IRQ_BASE, pipelined=True)
        wiring.connect(m, wiring.flipped(self.csr), regs.csr)
        ims_bus = regs.ext_irq_ims

        # ---- storage ---------------------------------------------------------
        # One row per entry, four 36-bit lanes (IMS word w in lane w): the 32-bit
        # word, then a flag decoded when the word is written (lane 0: ADDR_LO
        # bits 31:20 are 0xFEE; lane 1: ADDR_HI is not zero), then zeros. The
        # row is split into 18-bit memories that share one address for reads
        # and writes, so that each maps to one ECP5 DP16KD port whose
        # read-before-write mode is native: no logic sits between the block
        # RAM's output and the register that takes it.
        port_addr = Signal(ib)
        port_lane_en = Signal(4)
        port_wdata = Signal(_LANE)
        # ``raw``: the row read in the previous cycle, registered straight off
        # the block RAM (for the pipeline every cycle, and for the IMS window
        # in cycle 3 of an access). With ``primitive="ecp5"`` that register is
        # the DP16KD's own output register.
        raw = Signal(_ROW)
        row = []
        peek_row = []
        for j in range(_ROW // 18):
            lane = 18 * j // _LANE
            wdata = port_wdata[(18 * j) % _LANE:][:18]
            if self.primitive == "ecp5":
                m.submodules[f"ims{j}"] = dp16kd(f"ims{j}", a=dict(
                    addr=port_addr, we=port_lane_en[lane], wdata=wdata, rdata=raw[18 * j:][:18],
                    regmode="OUTREG", writemode="READBEFOREWRITE"))
                continue
            mem = Memory(shape=18, depth=n, init=[])
            m.submodules[f"ims{j}"] = mem
            w = mem.write_port()
            r = mem.read_port()
            m.d.comb += [w.addr.eq(port_addr), r.addr.eq(port_addr), w.data.eq(wdata), w.en.eq(port_lane_en[lane])]
            row.append(r.data)
            if hasattr(self, "peek_addr"):
                pr = mem.read_port(domain="comb")
                m.d.comb += pr.addr.eq(self.peek_addr)
                peek_row.append(pr.data)
        if row:
            m.d.sync += raw.eq(Cat(*row))
        if hasattr(self, "peek_addr"):
            pr = Cat(*peek_row)
            m.d.comb += [self.peek_data.eq(Cat(*(pr[_LANE * w:][:32] for w in range(4)))),
                         self.peek_flags.eq(Cat(pr[32], pr[_LANE + 32]))]
        pending = Signal(n)

        m.submodules.replay_q = replay_q = ShiftQueue(ib, self.replay_depth)
        m.submodules.irq_q = irq_q = SyncFIFO(width=IrqLayout.size, depth=IRQ_DEPTH)
        m.submodules.dma_q = dma_q = SyncFIFO(width=MessageLayout.size, depth=DMA_DEPTH)
        m.submodules.fault_q = fault_q = self._fault_queue

        # ---- accept stage (cycle t) --------------------------------------------
        port_csr = Signal()                   # the IMS window uses the table's port this cycle ...
        port_excl = Signal()                  # ... and the pipeline takes no message at all
        s1_valid = Signal()
        s1_replay = Signal()
        s1_msg = Signal(MessageLayout)
        s1_to_irq = s1_valid & (s1_msg.is_irq | s1_replay)
        s1_to_dma = s1_valid & ~s1_msg.is_irq & ~s1_replay
        s2_valid = Signal()                   # effect stage: an interrupt (or replay) to decide
        can_accept = Signal()
        if self.pipelined:
            # An interrupt in the effect stage is counted as if it delivered.
            m.d.comb += can_accept.eq((irq_q.level + s1_to_irq + s2_valid < IRQ_DEPTH) &
                                      (dma_q.level + s1_to_dma < DMA_DEPTH) & ~port_excl)
        else:
            m.d.comb += can_accept.eq(~s1_valid & ~s2_valid & (irq_q.level == 0) & (dma_q.level == 0) &
                                      ~port_excl)
        replay_take = Signal()
        accept = Signal()
        q_idx = Signal(ib)                    # IMS window: entry of the access
        # While the window writes an entry (read-before-write on the same
        # port), the only message taken is one for that entry, or a DMA one:
        # it reads the entry as it was.
        pl = self.msg_in.payload
        same_entry = ~pl.is_irq | (pl.handle[:ib] == q_idx)
        m.d.comb += [
            replay_take.eq(can_accept & replay_q.r_rdy & ~port_csr),
            replay_q.r_en.eq(replay_take),
            self.msg_in.ready.eq(can_accept & ~replay_q.r_rdy & (~port_csr | same_entry)),
            accept.eq(self.msg_in.valid & self.msg_in.ready),
        ]
        replay_msg = Signal(MessageLayout)
        next_msg = Signal(MessageLayout)
        m.d.comb += [
            replay_msg.is_irq.eq(1), replay_msg.handle.eq(replay_q.r_data),
            next_msg.eq(Mux(replay_q.r_rdy, replay_msg, self.msg_in.payload)),
            # The entry is read at the end of the acceptance cycle.
            port_addr.eq(Mux(port_csr, q_idx, next_msg.handle[:ib])),
        ]
        m.d.sync += [s1_valid.eq(accept | replay_take), s1_replay.eq(replay_take), s1_msg.eq(next_msg)]

        # ---- read stage (cycle t+1): the row comes out of the block RAM ----------
        is_irq = s1_msg.is_irq | s1_replay
        dec_dma = s1_valid & ~is_irq
        m.d.comb += [dma_q.w_en.eq(dec_dma), dma_q.w_data.eq(s1_msg)]
        s2_dma = Signal()                     # a DMA message was pushed in the previous cycle
        s2_replay = Signal()
        s2_in_range = Signal()
        s2_handle = Signal(HANDLE_WIDTH)
        s2_msg_pasid = Signal(PASID_BITS)
        m.d.sync += [
            s2_valid.eq(s1_valid & is_irq), s2_dma.eq(dec_dma), s2_replay.eq(s1_replay),
            s2_in_range.eq(s1_msg.handle[ib:] == 0 if ib < HANDLE_WIDTH else 1),
            s2_handle.eq(s1_msg.handle), s2_msg_pasid.eq(s1_msg.pasid),
        ]

        # ---- effect stage (cycle t+2): checks, and their effect ------------------
        addr_lo, fee = raw[0:32], raw[32]
        hi_nonzero = raw[_LANE + 32]
        edata = raw[2 * _LANE:][:32]
        ctrl = raw[_CTRL_WORD * _LANE:][:32]
        e_mask, e_pasid_en, e_pasid = ctrl[_MASK], ctrl[_PASID_EN], ctrl[_PASID]
        s2_idx = s2_handle[:ib]
        present = fee & ~hi_nonzero
        pasid_ok = s2_replay | ~e_pasid_en | (e_pasid == s2_msg_pasid)
        ok = s2_in_range & present & pasid_ok
        s2_deliver = s2_valid & ok & ~e_mask
        s2_pend = s2_valid & ok & e_mask
        s2_fault = s2_valid & ~ok
        reason = Signal(8)
        with m.If(~s2_in_range):
            m.d.comb += reason.eq(IrqFaultReason.HANDLE_BEYOND_TABLE)
        with m.Elif(~present):
            m.d.comb += reason.eq(IrqFaultReason.ENTRY_NOT_PRESENT)
        with m.Else():
            m.d.comb += reason.eq(IrqFaultReason.PASID_MISMATCH)
        kind = Signal(Decision)
        m.d.comb += kind.eq(Mux(s2_dma, Decision.DMA, Mux(s2_deliver, Decision.DELIVER,
                                                      Mux(s2_pend, Decision.PEND, Decision.FAULT))))
        s2_irq = Signal(IrqLayout)            # the interrupt, or the fault's PASID and handle
        m.d.comb += [
            s2_irq.dest.eq(addr_lo[12:20]), s2_irq.vector.eq(edata[0:8]), s2_irq.handle.eq(s2_handle),
            s2_irq.pasid.eq(Mux(s2_replay, e_pasid, s2_msg_pasid)),
            irq_q.w_en.eq(s2_deliver), irq_q.w_data.eq(s2_irq),
        ]
        # A fault is queued (or counted as lost) one cycle after its effect
        # stage: the queue registers the record first. Its source (the quota
        # it is held to) is its PASID's low bits.
        fault_rec = Signal(FaultLayout)
        m.d.comb += [
            fault_rec.reason.eq(reason), fault_rec.pasid.eq(s2_irq.pasid), fault_rec.handle.eq(s2_handle),
            fault_q.push.valid.eq(s2_fault), fault_q.push.payload.record.eq(fault_rec),
            fault_q.push.payload.source.eq(s2_irq.pasid[:self.fault_source_bits]),
            fault_q.clear_overflow.eq(regs.port("IRQ.FAULT_CTRL.CLEAR_OVERFLOW")),
        ]
        wiring.connect(m, regs.ext_irq_fault_lost, fault_q.lost)

        # Output queues -> streams.
        m.d.comb += [
            self.irq_out.valid.eq(irq_q.r_rdy), self.irq_out.payload.eq(irq_q.r_data),
            irq_q.r_en.eq(self.irq_out.ready),
            self.dma_out.valid.eq(dma_q.r_rdy), self.dma_out.payload.eq(dma_q.r_data),
            dma_q.r_en.eq(self.dma_out.ready),
        ]

        # ---- IMS window (CSR side) --------------------------------------------
        # An access (the request is held on the bus until ack), from its stb:
        #   0 (_P_WAIT)   a CTRL write waits here while the replay queue may be
        #                 full (counting the replays the last commit may still
        #                 push); from there on the access never waits;
        #   1 (_P_READ)   the row is read (the pipeline takes no message: the
        #                 table has one port);
        #   2 (_P_ROW)    the row comes out of the block RAM into ``raw``;
        #   3 (_P_OLD)    the addressed word is taken from ``raw``;
        #   4 (_P_NEW)    the new word is computed;
        #   5 (_P_CTRL)   and what a CTRL write does to PENDING;
        #   6 (_P_WRITE)  a write is written into the table (the only message
        #                 taken is one for the same entry: it reads the old one);
        #   7 (_P_COMMIT) the access commits (ack).
        # A message is read at the end of its acceptance cycle, so writing the
        # table one cycle before the commit gives the ordering of the register
        # map: a message accepted in the commit cycle or later sees the new
        # entry, an earlier one the old entry. A read returns the state at the
        # start of its commit cycle; a write takes effect at its end: if the
        # interrupt decided in the effect stage of that cycle makes the entry
        # pending and the write unmasks it, the replay is queued all the same.
        q_word = ims_bus.addr[2:4]
        q_in_range = ims_bus.addr[4 + ib:] == 0 if 4 + ib < 15 else Const(1)
        m.d.comb += q_idx.eq(ims_bus.addr[4:4 + ib])
        is_ctrl = q_word == _CTRL_WORD
        busy = Signal()
        phase = Signal(range(_P_COMMIT + 1))
        at = lambda p: busy & (phase == p)
        old_word = Signal(32)
        with m.If(at(_P_OLD)):
            m.d.sync += old_word.eq(raw.word_select(q_word, _LANE)[:32])
        bytemask = Cat(*(b.replicate(8) for b in ims_bus.wstrb))
        new_word = Signal(32)
        m.d.comb += new_word.eq(((old_word & ~bytemask) | (ims_bus.wdata & bytemask)) &
                                Mux(is_ctrl, Const(0xFFFF_FFFF ^ (1 << _PENDING), 32), Const(0xFFFF_FFFF, 32)))
        n_word = Signal(32)
        n_flag = Signal()
        n_write = Signal()                    # a write inside the table
        n_owner = Signal()                    # ... that changes PASID_EN or PASID (if CTRL)
        n_unmask = Signal()                   # ... of CTRL that leaves MASK clear, same owner
        n_clear = Signal()                    # ... of CTRL that clears PENDING
        with m.If(at(_P_NEW)):
            m.d.sync += [
                n_word.eq(new_word),
                n_flag.eq(Mux(q_word == 0, new_word[20:32] == 0xFEE,
                              Mux(q_word == 1, new_word.any(), 0))),
                n_write.eq(ims_bus.we & q_in_range),
                n_owner.eq((old_word[_PASID_EN] != new_word[_PASID_EN]) | (old_word[_PASID] != new_word[_PASID])),
            ]
        with m.If(at(_P_CTRL)):
            m.d.sync += [
                n_unmask.eq(n_write & is_ctrl & ~n_word[_MASK] & ~n_owner),
                n_clear.eq(n_write & is_ctrl & (~n_word[_MASK] | n_owner)),
            ]
        # An unmask pushes at most one replay, one to three cycles after its
        # commit (below); no other access commits meanwhile. So room now,
        # counting the pushes still to come from the last commit, is room at
        # this access's push.
        replay_1 = Signal()
        replay_2 = Signal()
        push = Signal()
        last_unmask = Signal()                # the write of the previous cycle unmasked ...
        owed = push + replay_1 + replay_2 + last_unmask
        wait = ims_bus.we & q_in_range & is_ctrl & (replay_q.level + owed >= self.replay_depth)
        start = Mux(ims_bus.stb, 1, at(_P_WAIT)) & ~wait
        commit = Signal()
        m.d.comb += commit.eq(at(_P_COMMIT))
        # The pipeline takes no message while the port reads, nor two cycles
        # before the commit of a CTRL read (see below), and only one for the
        # same entry while it writes.
        ctrl_read = ~ims_bus.we & q_in_range & is_ctrl
        excl = start | (at(_P_COMMIT - 3) & ctrl_read)
        m.d.sync += [port_csr.eq(excl | (at(_P_WRITE - 1) & n_write)), port_excl.eq(excl)]
        with m.If(ims_bus.stb):
            m.d.sync += [busy.eq(1), phase.eq(Mux(wait, _P_WAIT, _P_READ))]
        with m.Elif(commit):
            m.d.sync += busy.eq(0)
        with m.Elif(busy & ((phase != _P_WAIT) | ~wait)):
            m.d.sync += phase.eq(phase + 1)
        do_write = at(_P_WRITE) & n_write
        m.d.comb += [
            port_wdata.eq(Cat(n_word, n_flag)),
            port_lane_en.eq(Mux(do_write, Const(1, 4) << q_word, 0)),
        ]

        # A pending interrupt sets its bit one cycle after its effect stage
        # (registered first). PENDING of the addressed entry at the start of
        # the commit cycle: the bit three cycles earlier (read in two steps),
        # plus the interrupts of the three effect stages since (only a commit
        # clears). The pipeline takes no message two cycles before a CTRL read
        # commits, so no interrupt is in the effect stage then.
        last_clear = Signal()                 # the write of the previous cycle cleared PENDING
        last_idx = Signal(ib)
        s2_cleared = last_clear & (last_idx == s2_idx)
        s2_sets = s2_pend & ~s2_cleared
        s2_hit = s2_sets & (s2_idx == q_idx)
        lo = min(4, ib)
        pend_grp = Signal(n >> lo)            # bit q_idx[:lo] of each group of 2**lo bits
        m.d.sync += [pend_grp[g].eq(pending[g << lo:(g + 1) << lo].bit_select(q_idx[:lo], 1))
                     for g in range(n >> lo)]
        pend_q = Signal()
        set_q = Signal(3)                     # s2_hit of the last three cycles
        m.d.sync += [pend_q.eq(pend_grp.bit_select(q_idx[lo:], 1)), set_q.eq(Cat(s2_hit, set_q[:2]))]
        pend_start = pend_q | set_q.any()
        unmask = commit & n_unmask
        pend_clear = commit & n_clear
        # An unmask queues one replay if the entry is pending: set before the
        # commit cycle (queued now), set by the interrupt in the effect stage
        # of the commit cycle (queued in the next cycle), or set by the one in
        # the effect stage of the next cycle, which had read the entry before
        # the write (queued two cycles after the commit). The two later cases
        # are registered first, so that no check feeds the queue directly.
        replay_now = unmask & pend_start
        last_replayed = Signal()              # ... and queued (or will queue) a replay
        m.d.sync += [
            replay_1.eq(unmask & ~pend_start & s2_hit),
            replay_2.eq(s2_pend & s2_cleared & last_unmask & ~last_replayed),
            last_clear.eq(pend_clear), last_unmask.eq(unmask), last_idx.eq(q_idx),
            last_replayed.eq(unmask & (pend_start | s2_hit)),
        ]
        replay_idx = Signal(ib)               # entry of the last commit, for replay_1 and replay_2
        with m.If(commit):
            m.d.sync += replay_idx.eq(q_idx)
        m.d.comb += [
            ims_bus.ack.eq(commit),
            ims_bus.resp.eq(Mux(q_in_range, Resp.OKAY, Resp.DECERR)),
            ims_bus.rdata.eq(Mux(commit & ~ims_bus.we & q_in_range,
                                 old_word | Mux(is_ctrl, pend_start << _PENDING, 0), 0)),
        ]
        # At most one of the three per unmask, and commits are at least eight
        # cycles apart. The push itself is registered.
        push_idx = Signal(ib)
        m.d.sync += [push.eq(replay_now | replay_1 | replay_2), push_idx.eq(Mux(commit, q_idx, replay_idx))]
        m.d.comb += [replay_q.w_en.eq(push), replay_q.w_data.eq(push_idx)]
        # Unmasking or a new owner clears the pending bit (one cycle after the
        # commit, registered first), over a set by an interrupt of an earlier
        # effect stage (registered in set_ev) or of the commit cycle's (dropped
        # here). The next one cannot set it (s2_cleared).
        set_ev = Signal()
        set_idx = Signal(ib)
        clr_ev = Signal()
        clr_idx = Signal(ib)
        m.d.sync += [set_ev.eq(s2_sets & ~(pend_clear & (s2_idx == q_idx))), set_idx.eq(s2_idx),
                     clr_ev.eq(pend_clear), clr_idx.eq(q_idx)]
        set_mask = Signal(n)
        clr_mask = Signal(n)
        m.d.comb += [
            set_mask.eq(Mux(set_ev, Const(1, n) << set_idx, 0)),
            clr_mask.eq(Mux(clr_ev, Const(1, n) << clr_idx, 0)),
        ]
        m.d.sync += pending.eq((pending | set_mask) & ~clr_mask)

        # ---- fault queue and counters over CSR ---------------------------------
        # The register bank reads flip-flops only: the queue's head record and
        # level are registered (one cycle behind the queue).
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
        # Counter events are registered, then counted (a clear in the event's
        # own cycle still wins): a counter lags its event by one cycle.
        clear_cnt = regs.port("IRQ.CNT_CTRL.CLEAR")
        for name, event in (("CNT_DELIVERED", self.irq_out.valid & self.irq_out.ready),
                            ("CNT_PENDED", s2_pend), ("CNT_FAULTED", s2_fault),
                            ("CNT_DMA", dec_dma)):
            ev = Signal(name=f"{name.lower()}_ev")
            m.d.sync += ev.eq(event & ~clear_cnt)
            cnt = Signal(32, name=name.lower())
            saturating_inc(m, cnt, ev, clear_cnt)
            m.d.comb += regs.port(f"IRQ.{name}.COUNT").eq(cnt)

        # ---- drain (DRAIN_CMD / DRAIN_STATUS) ------------------------------------------
        # A message accepted in the cycle of the START pulse or before has had every
        # effect but a delivery's last step by _DRAIN_SETTLE cycles later: its fault
        # record queued (and the registered head and level the bank reads updated) or
        # counted, its pending bit set, or its interrupt in the irq_out queue. The
        # drain then waits for the interrupts the queue holds at that moment: they
        # leave in order. A replay queued (or about to be) holds the settling time.
        drain_wait = Signal(range(_DRAIN_SETTLE + 1))
        drain_left = Signal(range(IRQ_DEPTH + 1))
        irq_pop = self.irq_out.valid & self.irq_out.ready
        with m.If(regs.port("IRQ.DRAIN_CMD.START") | ((drain_wait != 0) & (replay_q.r_rdy | push))):
            m.d.sync += drain_wait.eq(_DRAIN_SETTLE)
        with m.Elif(drain_wait != 0):
            m.d.sync += drain_wait.eq(drain_wait - 1)
            with m.If(drain_wait == 1):
                m.d.sync += drain_left.eq(irq_q.level - irq_pop)
        with m.Elif((drain_left != 0) & irq_pop):
            m.d.sync += drain_left.eq(drain_left - 1)
        m.d.comb += regs.port("IRQ.DRAIN_STATUS.BUSY").eq((drain_wait != 0) | (drain_left != 0))

        # ---- probe ---------------------------------------------------------------
        p = self.probe
        m.d.comb += [
            p.dec_valid.eq(s2_valid | s2_dma), p.dec_kind.eq(kind), p.dec_replay.eq(s2_replay),
            p.dec_reason.eq(Mux(s2_fault, reason, 0)), p.dec_handle.eq(s2_handle),
            p.dec_pasid.eq(s2_irq.pasid), p.replay_take.eq(replay_take),
            p.ims_busy.eq(busy), p.ims_ack.eq(ims_bus.ack), p.ims_we.eq(ims_bus.we), p.ims_addr.eq(ims_bus.addr),
            p.ims_wdata.eq(ims_bus.wdata), p.ims_wstrb.eq(ims_bus.wstrb),
            p.ims_rdata.eq(ims_bus.rdata), p.ims_resp.eq(ims_bus.resp),
            p.eff_irq.eq(irq_q.w_en), p.eff_dma.eq(dma_q.w_en), p.eff_pend.eq(s2_pend),
            p.eff_fault.eq(fault_q.taken), p.eff_lost.eq(fault_q.dropped),
            p.irq_level.eq(irq_q.level), p.dma_level.eq(dma_q.level),
            p.irq_full.eq(~irq_q.w_rdy), p.dma_full.eq(~dma_q.w_rdy),
        ]
        return m
