"""Reference model of the interrupt remapping unit (IRU), at transaction level.

Same semantics as :mod:`siov.rtl.irq.remapper` and the ``IRQ`` section of
``rtl/regs.rdl``, without cycles: a message is processed with
:meth:`IrqModel.process`, an IMS or register access with :meth:`IrqModel.read`
and :meth:`IrqModel.write` (absolute addresses, as on the device bus), and an
unmasked pending interrupt with :meth:`IrqModel.replay`. The caller orders
these calls as the hardware orders the events (a message is decided the cycle
after its acceptance; an IMS read committing in that cycle comes before the
decision, an IMS write after it); the
pyuvm scoreboard does so from the probe, the model bus backend by calling
:meth:`drain_replays` after each write.

Ref: idxd IMS entry layout, x86 MSI address/data, PCI MSI-X PBA, Intel VT-d
interrupt-remapping fault reasons. The entry's CTRL fields and the fault
reasons are declared in ``rtl/regs.rdl`` (``IRQ.IMS.ENTRY``, ``IrqFaultReason``);
the names below are short aliases of those.
"""

import collections
from dataclasses import dataclass

from ...rtl import regmap
from ...rtl.csr.bus import Resp
from ...rtl.dma.defs import PASID_BITS
from ...rtl.regmap import IrqFaultReason
from ...rtl.csr.regdefs import window_contents
from ...rtl.faultq import LOST_WIDTH, default_quota
from .csr import strobe_mask

__all__ = ["Message", "Outcome", "IrqModel", "ReplayQueueFull",
           "FAULT_HANDLE_BEYOND_TABLE", "FAULT_ENTRY_NOT_PRESENT", "FAULT_PASID_MISMATCH",
           "msi_address", "ims_ctrl"]

FAULT_HANDLE_BEYOND_TABLE = IrqFaultReason.HANDLE_BEYOND_TABLE
FAULT_ENTRY_NOT_PRESENT = IrqFaultReason.ENTRY_NOT_PRESENT
FAULT_PASID_MISMATCH = IrqFaultReason.PASID_MISMATCH

CTRL_MASK = regmap.IRQ_IMS_ENTRY_MASK_MASK
CTRL_PENDING = regmap.IRQ_IMS_ENTRY_PENDING_MASK
CTRL_PASID_EN = regmap.IRQ_IMS_ENTRY_PASID_EN_MASK
CTRL_PASID_LSB = regmap.IRQ_IMS_ENTRY_PASID_LSB
CTRL_WORD = regmap.IRQ_IMS_ENTRY_MASK_WORD
PASID_MASK = (1 << PASID_BITS) - 1
HANDLE_MASK = (1 << 16) - 1
COUNTER_MAX = (1 << 32) - 1


def msi_address(dest):
    """x86 MSI address_lo for destination ID ``dest`` (physical, no redirection hint)."""
    return 0xFEE00000 | (dest & 0xFF) << 12


def ims_ctrl(*, mask=False, pasid=None):
    """IMS ctrl word: mask bit, and PASID_EN with the PASID unless ``pasid`` is None."""
    v = CTRL_MASK if mask else 0
    if pasid is not None:
        v |= CTRL_PASID_EN | (pasid & PASID_MASK) << CTRL_PASID_LSB
    return v


@dataclass(frozen=True)
class Message:
    """An upstream message: interrupt (``is_irq``) or DMA."""
    is_irq: bool
    pasid: int
    handle: int
    addr: int = 0
    data: int = 0


@dataclass(frozen=True)
class Outcome:
    """What the unit did with a message or a replay.

    ``kind`` is ``"dma"``, ``"deliver"``, ``"pend"`` or ``"fault"``; ``dest`` and
    ``vector`` are set for a delivery, ``reason`` for a fault; ``pasid`` is the
    message's PASID (the entry's for a replay).
    """
    kind: str
    handle: int
    pasid: int
    dest: int = 0
    vector: int = 0
    reason: int = 0
    replay: bool = False
    message: "Message | None" = None


class ReplayQueueFull(RuntimeError):
    """An unmask found the replay queue full: the hardware holds that write."""


class IrqModel:
    """Transaction model of the IRU and its register window.

    Parameters
    ----------
    entries : int
        IMS table size (as built).
    fault_depth : int
        Fault queue depth.
    replay_depth : int
        Depth of the replay queue of unmasked pending interrupts.
    fault_quota : int or None
        Records one source may hold in the fault queue (default
        :func:`~siov.rtl.faultq.default_quota`).
    fault_source_bits : int
        A fault's source is its PASID's low ``fault_source_bits`` bits; a fault
        of a source at its quota, or one that finds the queue full, is counted
        in ``ovf_count`` and in ``lost[source]`` (FAULT_LOST, read and cleared).

    Attributes
    ----------
    drains : int
        DRAIN_CMD.START writes so far. The model decides a message at once, so
        a drain waits only for what its user adds after the decision (the model
        backend's delivery latency): that user sets :attr:`drain_busy`, which
        DRAIN_STATUS.BUSY reads.
    """

    def __init__(self, entries=256, fault_depth=16, replay_depth=4, fault_quota=None, fault_source_bits=3):
        self.drains = 0
        self.drain_busy = False
        self.entries = entries
        self.fault_depth = fault_depth
        self.fault_quota = default_quota(fault_depth) if fault_quota is None else fault_quota
        self.fault_source_bits = fault_source_bits
        #: Faults not queued, per source, since each was last read (FAULT_LOST).
        self.lost = [0] * (1 << fault_source_bits)
        self.replay_depth = replay_depth
        self.ims = [[0, 0, 0, 0] for _ in range(entries)]
        self.pending = set()
        self.replays = collections.deque()
        self.faults = collections.deque()
        self.overflow = False
        self.ovf_count = 0
        self.counters = {"CNT_DELIVERED": 0, "CNT_PENDED": 0, "CNT_FAULTED": 0, "CNT_DMA": 0}
        regs, exts = window_contents("IRQ", regmap.REGISTERS.values(), regmap.EXTERNALS.values())
        self._by_word = {r.offset >> 2: r for r in regs}
        self._ims = regmap.EXTERNALS["IRQ.IMS"]
        self._lost_window = regmap.EXTERNALS["IRQ.FAULT_LOST"]

    # -- traffic -------------------------------------------------------------

    @staticmethod
    def present(entry):
        """Whether IMS ``entry`` (its four words) is present: an x86 MSI address, 0xFEE in bits
        31:20 and a zero high word (fault 0x22 otherwise)."""
        addr_lo, addr_hi = entry[0], entry[1]
        return addr_hi == 0 and addr_lo >> 20 == 0xFEE

    def source(self, pasid):
        """The fault-queue source of a fault with ``pasid``: its low ``fault_source_bits`` bits."""
        return pasid & ((1 << self.fault_source_bits) - 1)

    def _count(self, name):
        self.counters[name] = min(self.counters[name] + 1, COUNTER_MAX)

    def _fault(self, reason, pasid, handle, msg, replay=False):
        self._count("CNT_FAULTED")
        source = self.source(pasid)
        held = sum(1 for f in self.faults if self.source(f[1]) == source)
        if held < self.fault_quota and len(self.faults) < self.fault_depth:
            self.faults.append((reason, pasid, handle))
        else:
            self.overflow = True
            self.ovf_count = min(self.ovf_count + 1, COUNTER_MAX)
            self.lost[source] = min(self.lost[source] + 1, (1 << LOST_WIDTH) - 1)
        return Outcome("fault", handle, pasid, reason=reason, replay=replay, message=msg)

    def process(self, msg):
        """Decide ``msg``; return its :class:`Outcome`."""
        if not msg.is_irq:
            self._count("CNT_DMA")
            return Outcome("dma", msg.handle, msg.pasid, message=msg)
        return self._check(msg.handle, msg.pasid, msg, replay=False)

    def _check(self, handle, pasid, msg, replay):
        if handle >= self.entries:
            return self._fault(FAULT_HANDLE_BEYOND_TABLE, pasid, handle, msg, replay)
        entry = self.ims[handle]
        ctrl = entry[CTRL_WORD]
        if replay:
            pasid = ctrl >> CTRL_PASID_LSB
        if not self.present(entry):
            return self._fault(FAULT_ENTRY_NOT_PRESENT, pasid, handle, msg, replay)
        if not replay and ctrl & CTRL_PASID_EN and ctrl >> CTRL_PASID_LSB != pasid:
            return self._fault(FAULT_PASID_MISMATCH, pasid, handle, msg, replay)
        if ctrl & CTRL_MASK:
            self.pending.add(handle)
            self._count("CNT_PENDED")
            return Outcome("pend", handle, pasid, replay=replay, message=msg)
        self._count("CNT_DELIVERED")
        return Outcome("deliver", handle, pasid, dest=entry[0] >> 12 & 0xFF,
                       vector=entry[2] & 0xFF, replay=replay, message=msg)

    def replay(self):
        """Decide the oldest queued replay of an unmasked pending interrupt."""
        handle = self.replays.popleft()
        return self._check(handle, 0, None, replay=True)

    def drain_replays(self):
        """Decide every queued replay; return their outcomes in order."""
        out = []
        while self.replays:
            out.append(self.replay())
        return out

    # -- register window -------------------------------------------------------

    def _ims_slot(self, addr):
        off = addr - self._ims.offset
        if not 0 <= off < self._ims.size:
            return None
        return off >> 4, (off >> 2) & 3

    def read(self, addr):
        """Return ``(resp, value)`` for a read of absolute address ``addr``."""
        slot = self._ims_slot(addr)
        if slot is not None:
            idx, word = slot
            if idx >= self.entries:
                return Resp.DECERR, 0
            v = self.ims[idx][word]
            if word == CTRL_WORD and idx in self.pending:
                v |= CTRL_PENDING
            return Resp.OKAY, v
        off = addr - self._lost_window.offset
        if 0 <= off < self._lost_window.size:
            word = off >> 2
            if word >= len(self.lost):
                return Resp.DECERR, 0
            n, self.lost[word] = self.lost[word], 0
            return Resp.OKAY, n
        reg = self._by_word.get(addr >> 2)
        if reg is None:
            return Resp.DECERR, 0
        return Resp.OKAY, self._reg_value(reg.path)

    def _reg_value(self, path):
        head = self.faults[0] if self.faults else None
        name = path.split(".", 1)[1]
        if name == "FAULT_STATUS":
            return (len(self.faults) << regmap.IRQ_FAULT_STATUS_COUNT_LSB
                    | self.overflow << regmap.IRQ_FAULT_STATUS_OVERFLOW_LSB)
        if name == "FAULT_REC0":
            if head is None:
                return 0
            return (head[0] << regmap.IRQ_FAULT_REC0_REASON_LSB | 1 << regmap.IRQ_FAULT_REC0_VALID_LSB
                    | head[1] << regmap.IRQ_FAULT_REC0_PASID_LSB)
        if name == "FAULT_REC1":
            return 0 if head is None else head[2]
        if name == "FAULT_OVF_COUNT":
            return self.ovf_count
        if name == "FAULT_CAP":
            return (self.fault_depth << regmap.IRQ_FAULT_CAP_DEPTH_LSB | self.fault_quota << regmap.IRQ_FAULT_CAP_QUOTA_LSB
                    | self.fault_source_bits << regmap.IRQ_FAULT_CAP_SOURCE_BITS_LSB)
        if name == "DRAIN_STATUS":
            return int(self.drain_busy) << regmap.IRQ_DRAIN_STATUS_BUSY_LSB
        if name in self.counters:
            return self.counters[name]
        return 0  # write-only (singlepulse) registers read as zero

    def write(self, addr, data, strb=0xF):
        """Apply a write; return the response. An unmask may queue a replay."""
        slot = self._ims_slot(addr)
        if slot is not None:
            idx, word = slot
            if idx >= self.entries:
                return Resp.DECERR
            m = strobe_mask(strb)
            old = self.ims[idx][word]
            new = (old & ~m) | (data & m)
            if word == CTRL_WORD:
                new &= ~CTRL_PENDING
                changed = (old ^ new) & (CTRL_PASID_EN | regmap.IRQ_IMS_ENTRY_PASID_MASK)
                if idx in self.pending:
                    if changed:
                        self.pending.discard(idx)
                    elif not new & CTRL_MASK:
                        if len(self.replays) >= self.replay_depth:
                            raise ReplayQueueFull(f"unmask of entry {idx} with {len(self.replays)} "
                                                  f"replays queued")
                        self.pending.discard(idx)
                        self.replays.append(idx)
            self.ims[idx][word] = new
            return Resp.OKAY
        if 0 <= addr - self._lost_window.offset < self._lost_window.size:
            return Resp.SLVERR
        reg = self._by_word.get(addr >> 2)
        if reg is None:
            return Resp.DECERR
        if not reg.sw_writable:
            return Resp.SLVERR
        value = data & strobe_mask(strb)
        name = reg.path.split(".", 1)[1]
        if name == "FAULT_CTRL":
            if value & regmap.IRQ_FAULT_CTRL_POP_MASK and self.faults:
                self.faults.popleft()
            if value & regmap.IRQ_FAULT_CTRL_CLEAR_OVERFLOW_MASK:
                self.overflow = False
                self.ovf_count = 0
        elif name == "DRAIN_CMD":
            if value & regmap.IRQ_DRAIN_CMD_START_MASK:
                self.drains += 1
        elif name == "CNT_CTRL":
            if value & regmap.IRQ_CNT_CTRL_CLEAR_MASK:
                for k in self.counters:
                    self.counters[k] = 0
        return Resp.OKAY

    # -- convenience for tests and software ------------------------------------

    def set_entry(self, idx, *, dest, vector, pasid=None, mask=False):
        """Program entry ``idx`` through :meth:`write` (four word writes)."""
        base = regmap.IRQ_IMS_BASE + regmap.IRQ_IMS_ENTRY_STRIDE * idx
        self.write(base + 4 * regmap.IRQ_IMS_ENTRY_ADDR_LO_WORD, msi_address(dest))
        self.write(base + 4 * regmap.IRQ_IMS_ENTRY_ADDR_HI_WORD, 0)
        self.write(base + 4 * regmap.IRQ_IMS_ENTRY_DATA_WORD, vector & 0xFF)
        return self.write(base + 4 * CTRL_WORD, ims_ctrl(mask=mask, pasid=pasid))
