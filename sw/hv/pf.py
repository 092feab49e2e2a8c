"""The host's driver of the physical device: every privileged register sequence, once.

The hypervisor composes virtual devices out of these steps; the system and
DMA testbenches call the same steps to set the Device up, so a sequence is
written here and nowhere else. There is one driver per device (per
:class:`~siov.sw.bus.Bus` object): :meth:`PfDriver.of` gives it, and its
lock is then the one lock of the device's shared select and status
registers. Every method awaits only the
:class:`~siov.sw.bus.Bus`, so it runs on the ``model`` and the ``rtl``
backend alike. Addresses and fields come from :mod:`siov.rtl.regmap`
(generated from ``rtl/regs.rdl``).

Ref: ``rtl/regs.rdl`` (DMA, IRQ, CMD and ENG sections) for every register
used here; the idxd IMS entry layout and x86 MSI address/data for
:meth:`PfDriver.set_ims`.
"""

import functools
import logging
import weakref
from dataclasses import dataclass

from ...rtl import regmap
from ...rtl.dma.defs import GUEST_MAP, GUEST_UNMAP, PAGE_SHIFT, GuestResult, RangeOp, guest_word
from ..bus import BusLock
from ..csr import Csr
from ..model.adi import PAGE_HEAD, PAGE_TAIL, page_address
from ..model.irq import CTRL_PENDING, ims_ctrl, msi_address
from .errors import DeviceOwned, DeviceTimeout

__all__ = ["PfDriver", "DeviceCaps", "DmaFault", "IrqFault", "RingConfig", "DeviceTimeout", "DeviceOwned", "COUNTERS"]

#: Event counters whose values follow from what the device did, not from when.
COUNTERS = {
    "desc_done": regmap.ENG_DESC_DONE, "desc_failed": regmap.ENG_DESC_FAILED,
    "desc_refused": regmap.ENG_DESC_REFUSED, "dma_allowed": regmap.DMA_CNT_ALLOWED,
    "dma_blocked": regmap.DMA_CNT_BLOCKED, "dma_dirtied": regmap.DMA_CNT_DIRTIED,
    "irq_delivered": regmap.IRQ_CNT_DELIVERED, "irq_pended": regmap.IRQ_CNT_PENDED,
    "irq_faulted": regmap.IRQ_CNT_FAULTED, "dropped_doorbells": regmap.CMD_DROPPED_DOORBELLS,
}


#: The longest pause between two polls of :meth:`PfDriver.quiesce_adis` (cycles).
QUIESCE_POLL_MAX = 1024


def _get(word, name):
    """Field ``name`` (``"DMA_FAULT_REC0_PASID"``) of register value ``word``."""
    return (word & getattr(regmap, name + "_MASK")) >> getattr(regmap, name + "_LSB")


def _put(name, value):
    """``value`` placed in field ``name``, checked against its width."""
    width = getattr(regmap, name + "_WIDTH")
    if not 0 <= value < 1 << width:
        raise ValueError(f"{name} is {width} bits wide; {value:#x} does not fit")
    return value << getattr(regmap, name + "_LSB")


def _atomic(method):
    """Run ``method`` with the driver's lock held: its register sequence goes through select
    or status registers that every caller shares, so two tasks must not interleave there."""
    @functools.wraps(method)
    async def locked(self, *args, **kwargs):
        async with self._lock:
            return await method(self, *args, **kwargs)
    return locked


@dataclass(frozen=True)
class DeviceCaps:
    """What the device reports about itself (GLOBAL.CAP0, CAP1 and GENCAP): sizes, the largest
    transfer in bytes, and the alignment of completion records and MEMFILL destinations; and
    (DMA.FAULT_CAP, IRQ.FAULT_CAP) the records each fault queue holds, how many one source may
    hold (a DMA domain; for interrupts, the PASIDs whose low ``irq_fault_source_bits`` bits agree)."""
    num_adis: int
    ims_entries: int
    num_engines: int
    num_domains: int
    pages_per_domain: int
    max_xfer: int
    cr_align: int
    fill_align: int
    dma_fault_depth: int
    dma_fault_quota: int
    irq_fault_depth: int
    irq_fault_quota: int
    irq_fault_source_bits: int


@dataclass(frozen=True)
class RingConfig:
    """What :meth:`PfDriver.enable_adi` programmed into an ADI: its ring's guest address and size
    in entries, the PASID and domain its descriptors run under, and its engine."""
    ring: int
    size: int
    pasid: int
    dom: int
    engine: int


@dataclass(frozen=True)
class DmaFault:
    """One DMA fault record: reason (VT-d or project code), requester PASID, guest page, write."""
    reason: int
    pasid: int
    page: int
    write: bool


@dataclass(frozen=True)
class IrqFault:
    """One interrupt-remapping fault record: reason, message PASID, handle."""
    reason: int
    pasid: int
    handle: int


#: The live driver of each bus, by ``id(bus)`` (a driver holds its bus, so the id stays its own).
_DRIVERS = weakref.WeakValueDictionary()


def _adi_mask(adis):
    mask = 0
    for a in adis:
        mask |= 1 << a
    return mask


class PfDriver:
    """Privileged access to one device over ``bus``: the device's one driver.

    Two drivers of one device would each have a lock that excludes nothing
    of the other's, and interleave on the shared select and status registers.
    So there is one per bus: get it with :meth:`PfDriver.of`; the constructor
    refuses a second driver for a bus that has one. (Two bus objects in front
    of the same hardware, as a testbench's checked and raw ports, are two
    buses.) The owners of the device's resources (hypervisor, VDCM, container
    host) each :meth:`claim` their role on it, so none can be made twice.

    Parameters
    ----------
    bus : Bus
    poll_cycles : int
        Cycles between two polls of a status register.
    timeout_cycles : int
        How long a poll waits before :class:`DeviceTimeout`.

    Raises
    ------
    DeviceOwned
        ``bus`` already has a driver.
    """

    def __init__(self, bus, poll_cycles=20, timeout_cycles=1_000_000):
        if _DRIVERS.get(id(bus)) is not None:
            raise DeviceOwned(f"this bus already has its driver; use PfDriver.of(bus) (or the hypervisor's "
                              f"hv.pf) instead of making a second one with a lock of its own")
        _DRIVERS[id(bus)] = self
        self.bus = bus
        self.poll_cycles, self.timeout_cycles = poll_cycles, timeout_cycles
        self.log = logging.getLogger("siov.hv.pf")
        self._lock = BusLock(bus)
        self._roles = {}
        #: ADIs the caller of set_eligible wants eligible (the hardware's reset value: all).
        self._eligible = (1 << 64) - 1
        #: Owner -> ADIs it keeps out of the eligibility mask (see :meth:`hold`).
        self._holds = {}
        #: ADI -> the engine enable_adi bound it to.
        self._engine_of = {}
        #: ADI -> the RingConfig enable_adi programmed.
        self._ring_of = {}

    @classmethod
    def of(cls, bus, **options):
        """The driver of the device behind ``bus``, made with ``options`` on first use.

        Options given again must match the driver's (``poll_cycles``,
        ``timeout_cycles``); otherwise :class:`ValueError`.
        """
        drv = _DRIVERS.get(id(bus))
        if drv is None:
            return cls(bus, **options)
        differ = {k: v for k, v in options.items() if getattr(drv, k) != v}
        if differ:
            raise ValueError(f"the bus's driver exists with other options than {differ}")
        return drv

    def claim(self, role, owner):
        """Make ``owner`` the one ``role`` of this device (``"hypervisor"``, ``"vdcm"``,
        ``"containers"``); :class:`DeviceOwned` if another object holds the role."""
        held = self._roles.get(role)
        if held is not None and held is not owner:
            raise DeviceOwned(f"the device already has its {role} ({type(held).__name__}); reach it through "
                              f"the hypervisor instead of making a second one")
        self._roles[role] = owner

    async def _poll(self, addr, done, what):
        waited = 0
        while True:
            value = await self.bus.read(addr)
            if done(value):
                return value
            if waited >= self.timeout_cycles:
                raise DeviceTimeout(f"{what} not done after {waited} cycles")
            await self.bus.wait_cycles(self.poll_cycles)
            waited += self.poll_cycles

    # -- identity -------------------------------------------------------------------

    @_atomic
    async def identify(self):
        """Check the magic ID; return the :class:`DeviceCaps`."""
        return DeviceCaps(**await Csr(self.bus).identify())

    # -- DMA tracker -----------------------------------------------------------------

    @_atomic
    async def set_domain(self, dom, base, pages):
        """Domain ``dom``'s window: guest page 0 at host byte address ``base``, ``pages`` pages."""
        if base % (1 << PAGE_SHIFT):
            raise ValueError(f"domain base {base:#x} is not 4 KiB aligned")
        await self.bus.write(regmap.DMA_DOM_SEL, _put("DMA_DOM_SEL_INDEX", dom))
        await self.bus.write(regmap.DMA_DOM_BASE_LO, base & regmap.DMA_DOM_BASE_LO_ADDR_MASK)
        await self.bus.write(regmap.DMA_DOM_BASE_HI, base >> 32)
        await self.bus.write(regmap.DMA_DOM_LIMIT, pages)
        await self.bus.write(regmap.DMA_DOM_CMD, regmap.DMA_DOM_CMD_WRITE_MASK)

    @_atomic
    async def bind_adi(self, index, pasid, dom, valid=True):
        """ADI-table entry ``index``: requests with ``pasid`` belong to domain ``dom``."""
        await self.bus.write(regmap.DMA_ADI_SEL, index)
        await self.bus.write(regmap.DMA_ADI_ENTRY, _put("DMA_ADI_ENTRY_PASID", pasid)
                             | _put("DMA_ADI_ENTRY_DOMAIN", dom) | _put("DMA_ADI_ENTRY_VALID", int(valid)))
        await self.bus.write(regmap.DMA_ADI_CMD, regmap.DMA_ADI_CMD_WRITE_MASK)

    async def wait_dma_idle(self):
        """Until the tracker's range operation is done; True if it was refused (STATUS.ERR)."""
        async with self._lock:
            return await self._wait_dma_idle()

    async def _wait_dma_idle(self):
        st = await self._poll(regmap.DMA_STATUS, lambda v: not v & regmap.DMA_STATUS_BUSY_MASK,
                              "DMA range operation")
        return bool(st & regmap.DMA_STATUS_ERR_MASK)

    @_atomic
    async def range_op(self, code, dom, start, count):
        """Run privileged range operation ``code`` (:class:`RangeOp`); False if the tracker refused it."""
        await self.bus.write(regmap.DMA_OP_START, start)
        await self.bus.write(regmap.DMA_OP_COUNT, count)
        await self.bus.write(regmap.DMA_OP, _put("DMA_OP_GO", 1) | _put("DMA_OP_DOMAIN", dom)
                             | _put("DMA_OP_CODE", RangeOp(code)))
        return not await self._wait_dma_idle()

    async def pin(self, dom, start, count):
        """Pin pages ``start .. start+count-1`` of ``dom``; False if the tracker refused."""
        return await self.range_op(RangeOp.PIN, dom, start, count)


    async def unpin(self, dom, start, count):
        """Forced unpin: clear pinned, mapped and unmap-requested; False if the tracker refused."""
        return await self.range_op(RangeOp.UNPIN, dom, start, count)

    async def reclaim(self, dom, start, count):
        """Lazy unpin: pages with their unmap requested and no longer mapped."""
        return await self.range_op(RangeOp.RECLAIM, dom, start, count)

    @_atomic
    async def guest_map(self, adi, page, unmap=False):
        """The guest's fast-path map (or unmap) of ``page`` for ADI ``adi``; the :class:`GuestResult`."""
        await self.bus.write(regmap.DMA_GUEST_BASE + (GUEST_UNMAP if unmap else GUEST_MAP), guest_word(adi, page))
        return GuestResult(_get(await self.bus.read(regmap.DMA_GUEST_STATUS), "DMA_GUEST_STATUS_RESULT"))

    @_atomic
    async def read_bitmap(self, bitmap, dom, words):
        """``words`` 32-bit words of bitmap ``bitmap`` (:class:`~siov.rtl.dma.defs.Bitmap`) of ``dom``."""
        await self.bus.write(regmap.DMA_BMAP_SEL, _put("DMA_BMAP_SEL_BITMAP", bitmap) | _put("DMA_BMAP_SEL_DOMAIN", dom))
        return [await self.bus.read(regmap.DMA_BMAP_BASE + 4 * w) for w in range(words)]

    @_atomic
    async def harvest(self, dom, pages, no_clear=False):
        """Dirty log of pages ``0..pages-1`` of ``dom`` in the VFIO bitmap format (bytes)."""
        await self.bus.write(regmap.DMA_HARVEST_CTRL, _put("DMA_HARVEST_CTRL_DOMAIN", dom)
                             | _put("DMA_HARVEST_CTRL_NO_CLEAR", int(no_clear)))
        words = (pages + 31) // 32
        out = bytearray()
        for w in range(words):
            out += (await self.bus.read(regmap.DMA_HARVEST_BASE + 4 * w)).to_bytes(4, "little")
        out += bytes(-len(out) % 8)       # whole u64 words, as VFIO hands them out
        return bytes(out)

    @_atomic
    async def pop_dma_faults(self, clear_overflow=False):
        """Every record in the DMA fault queue, oldest first, and how many faults were lost
        to a full queue (since the last clear)."""
        return await self._pop_faults("DMA", clear_overflow, lambda rec0, rec1: DmaFault(
            _get(rec0, "DMA_FAULT_REC0_REASON"), _get(rec0, "DMA_FAULT_REC0_PASID"), rec1,
            bool(rec0 & regmap.DMA_FAULT_REC0_WRITE_MASK)))

    @_atomic
    async def dma_lost_faults(self):
        """The DMA faults that were not queued since the last call, by whose they were
        (DMA.FAULT_LOST, read and cleared): ``{domain: count}`` for each domain that lost
        any, and ``{None: count}`` for faults whose PASID is bound to no domain.

        A fault is not queued when its domain already holds ``DeviceCaps.dma_fault_quota``
        records, or when the queue is full; :meth:`pop_dma_faults`'s lost count is the same
        faults in total. Each is reported once: the read clears it, and a fault lost while
        it reads is in the next call's count.
        """
        domains = _get(await self.bus.read(regmap.GLOBAL_CAP1), "GLOBAL_CAP1_NUM_DOMAINS")
        lost = {}
        for source in range(domains + 1):
            n = await self.bus.read(regmap.DMA_FAULT_LOST_BASE + 4 * source)
            if n:
                lost[source if source < domains else None] = n
        return lost

    @_atomic
    async def irq_lost_faults(self):
        """The interrupt faults that were not queued since the last call, by source
        (IRQ.FAULT_LOST, read and cleared): ``{source: count}`` for each source that lost
        any, a source being the low ``DeviceCaps.irq_fault_source_bits`` bits of the PASID
        that sent the faulting message (its sender's own: a forged handle is charged to the
        forger). A fault is not queued when its source already holds
        ``DeviceCaps.irq_fault_quota`` records, or when the queue is full;
        :meth:`pop_irq_faults`'s lost count is the same faults in total.
        """
        bits = _get(await self.bus.read(regmap.IRQ_FAULT_CAP), "IRQ_FAULT_CAP_SOURCE_BITS")
        lost = {}
        for source in range(1 << bits):
            n = await self.bus.read(regmap.IRQ_FAULT_LOST_BASE + 4 * source)
            if n:
                lost[source] = n
        return lost

    async def _pop_faults(self, block, clear, record):
        """Pop block ``block``'s fault queue (``"DMA"`` or ``"IRQ"``: the same register
        layout) into ``record(rec0, rec1)`` objects; then its lost-fault count."""
        reg = {name: getattr(regmap, f"{block}_FAULT_{name}") for name in ("REC0", "REC1", "CTRL", "OVF_COUNT")}
        faults = []
        while True:
            rec0 = await self.bus.read(reg["REC0"])
            if not rec0 & getattr(regmap, f"{block}_FAULT_REC0_VALID_MASK"):
                break
            faults.append(record(rec0, await self.bus.read(reg["REC1"])))
            await self.bus.write(reg["CTRL"], getattr(regmap, f"{block}_FAULT_CTRL_POP_MASK"))
        lost = await self.bus.read(reg["OVF_COUNT"])
        if lost and clear:        # so that each loss is reported once
            await self.bus.write(reg["CTRL"], getattr(regmap, f"{block}_FAULT_CTRL_CLEAR_OVERFLOW_MASK"))
        return faults, lost

    # -- interrupt remapping ---------------------------------------------------------

    @_atomic
    async def set_ims(self, handle, pasid, dest, vector, mask=False):
        """IMS entry ``handle``: deliver to x86 destination ``dest`` with ``vector``, only for ``pasid``."""
        base = regmap.IRQ_IMS_BASE + 16 * handle
        for off, v in ((0, msi_address(dest)), (4, 0), (8, vector & 0xFF), (12, ims_ctrl(mask=mask, pasid=pasid))):
            await self.bus.write(base + off, v)

    @_atomic
    async def mask_ims(self, handle, pasid, mask):
        """Set or clear the mask of IMS entry ``handle`` (an unmask delivers a pending interrupt)."""
        await self.bus.write(regmap.IRQ_IMS_BASE + 16 * handle + 12, ims_ctrl(mask=mask, pasid=pasid))

    @_atomic
    async def clear_ims(self, handle):
        """Make IMS entry ``handle`` not present."""
        for off in (12, 8, 4, 0):
            await self.bus.write(regmap.IRQ_IMS_BASE + 16 * handle + off, 0)

    @_atomic
    async def ims_pending(self, handle):
        """Whether IMS entry ``handle`` holds an interrupt pending (its PENDING bit: the entry's
        MSI-X PBA bit, ``rtl/regs.rdl`` IRQ.IMS)."""
        return bool(await self.bus.read(regmap.IRQ_IMS_BASE + 16 * handle + 12) & CTRL_PENDING)

    @_atomic
    async def discard_ims_pending(self, handle, pasid):
        """Mask IMS entry ``handle`` and drop the interrupt it holds pending, undelivered.

        A CTRL write that changes PASID_EN clears PENDING without delivery
        (``rtl/regs.rdl`` IRQ.IMS), so the entry is written once without its
        PASID and once with ``pasid`` again, masked both times.
        """
        ctrl = regmap.IRQ_IMS_BASE + 16 * handle + 12
        await self.bus.write(ctrl, ims_ctrl(mask=True))
        await self.bus.write(ctrl, ims_ctrl(mask=True, pasid=pasid))

    @_atomic
    async def pop_irq_faults(self, clear_overflow=False):
        """Every record in the interrupt fault queue, oldest first, and how many faults were
        lost to a full queue (since the last clear)."""
        return await self._pop_faults("IRQ", clear_overflow, lambda rec0, rec1: IrqFault(
            _get(rec0, "IRQ_FAULT_REC0_REASON"), _get(rec0, "IRQ_FAULT_REC0_PASID"),
            _get(rec1, "IRQ_FAULT_REC1_HANDLE")))

    # -- ADIs ------------------------------------------------------------------------

    @_atomic
    async def enable_adi(self, adi, ring, size, pasid, dom, engine=0):
        """Configure ADI ``adi``'s ring (guest address ``ring``, ``size`` entries, bound to
        ``engine``) and enable it.

        Returns ``(state, error_code)`` afterwards.
        """
        await self.bus.write(regmap.CMD_ADI_SEL, adi)
        await self.bus.write(regmap.CMD_RING_BASE_LO, ring & regmap.CMD_RING_BASE_LO_ADDR_MASK)
        await self.bus.write(regmap.CMD_RING_BASE_HI, ring >> 32)
        await self.bus.write(regmap.CMD_RING_SIZE, size & regmap.CMD_RING_SIZE_ENTRIES_MASK)
        await self.bus.write(regmap.CMD_ADI_CFG, _put("CMD_ADI_CFG_PASID", pasid) | _put("CMD_ADI_CFG_DOMAIN", dom)
                             | _put("CMD_ADI_CFG_ENGINE", engine))
        self._engine_of[adi] = engine
        self._ring_of[adi] = RingConfig(ring, size, pasid, dom, engine)
        return await self._adi_command(adi, regmap.CMD_ADI_CMD_ENABLE_MASK)

    def ring_config(self, adi):
        """The :class:`RingConfig` that :meth:`enable_adi` last programmed into ``adi``, or None.

        The ring registers of the CMD window are staged (``rtl/regs.rdl``
        CMD.RING_BASE_*: ENABLE copies them into the ADI), so they show the
        last value written, not the ADI's; the driver keeps what it wrote.
        """
        return self._ring_of.get(adi)

    def adopt_ring(self, adi, ring, size, pasid, dom, engine):
        """Record that ADI ``adi`` holds the ring given (a restore put it there with its own
        register sequence, :mod:`siov.sw.hv.devstate`), as :meth:`enable_adi` records what
        it programs, so that :meth:`ring_config` answers for it."""
        self._engine_of[adi] = engine
        self._ring_of[adi] = RingConfig(ring, size, pasid, dom, engine)

    def exclusive(self):
        """The driver's lock, as an async context manager, for a register sequence of the
        caller's own through the shared select and status registers (a save or restore of
        device state, :mod:`siov.sw.hv.devstate`). Inside it, call no method of this
        driver that takes the lock itself."""
        return self._lock

    @_atomic
    async def ring_pointers(self, adi):
        """``(head, tail)`` of ADI ``adi``'s ring (CMD.ADI_PTRS): entries HEAD .. TAIL - 1, modulo
        the ring size, are posted and not yet handed to an engine (a WAIT whose condition has
        not held yet stays at HEAD until it is decided)."""
        await self.bus.write(regmap.CMD_ADI_SEL, adi)
        ptrs = await self.bus.read(regmap.CMD_ADI_PTRS)
        return _get(ptrs, "CMD_ADI_PTRS_HEAD"), _get(ptrs, "CMD_ADI_PTRS_TAIL")

    @_atomic
    async def adi_command(self, adi, mask):
        """Write ADI_CMD ``mask`` (ENABLE/DRAIN/ABORT/RESET_ERROR) to ``adi``; ``(state, error_code)`` after."""
        return await self._adi_command(adi, mask)

    async def _adi_command(self, adi, mask):
        await self.bus.write(regmap.CMD_ADI_SEL, adi)
        await self.bus.write(regmap.CMD_ADI_CMD, mask)
        return await self._adi_state(adi, select=False)

    @_atomic
    async def adi_state(self, adi, select=True):
        """``(state, error_code)`` of ADI ``adi``."""
        return await self._adi_state(adi, select)

    async def _adi_state(self, adi, select=True):
        if select:
            await self.bus.write(regmap.CMD_ADI_SEL, adi)
        st = await self.bus.read(regmap.CMD_ADI_STATUS)
        return _get(st, "CMD_ADI_STATUS_STATE"), _get(st, "CMD_ADI_STATUS_ERROR_CODE")

    async def ring_tail(self, adi):
        """ADI ``adi``'s TAIL, the producer index its last doorbell wrote: one read of its page
        (``rtl/regs.rdl`` ADI_PAGES offset 0x0), no select register, so no lock."""
        return await self.bus.read(page_address(adi, PAGE_TAIL))

    async def ring_head(self, adi):
        """ADI ``adi``'s HEAD, the next slot the engines take: one read of its page (offset 0x4)."""
        return await self.bus.read(page_address(adi, PAGE_HEAD))

    # -- engine and arbiter ----------------------------------------------------------

    @_atomic
    async def set_arbiter(self, policy, slice_cycles=0, cost_a=0, cost_b=0, weights=None, quanta=None):
        """Arbiter policy, slice, cost model and per-ADI weights and quanta (lists by ADI)."""
        await self.bus.write(regmap.ENG_ARB_CTRL, _put("ENG_ARB_CTRL_POLICY", policy))
        await self.bus.write(regmap.ENG_ARB_SLICE, slice_cycles)
        await self.bus.write(regmap.ENG_COST_A, cost_a)
        await self.bus.write(regmap.ENG_COST_B, cost_b)
        n = len(weights or quanta or [])
        for i in range(n):
            await self.bus.write(regmap.ENG_ARB_SEL, i)
            await self.bus.write(regmap.ENG_ARB_WEIGHT, (weights or [1] * n)[i])
            await self.bus.write(regmap.ENG_ARB_QUANTUM, (quanta or [0] * n)[i])
            await self.bus.write(regmap.ENG_ARB_CMD, regmap.ENG_ARB_CMD_WRITE_MASK)

    @_atomic
    async def set_eligible(self, adis):
        """Make exactly the ADIs in ``adis`` eligible for dispatch, in one commit (gang scheduling:
        one VM's rings get every engine; all ADIs restore per-ring scheduling), less those that
        a :meth:`hold` keeps out."""
        self._eligible = _adi_mask(adis)
        await self._commit_eligible()

    @_atomic
    async def hold(self, owner, adis):
        """Keep ``adis`` out of the eligibility mask for ``owner``, whatever :meth:`set_eligible`
        asks, until ``owner`` holds other ADIs or none (``adis`` empty).

        The VDCM holds the ADIs of a function whose Bus Master Enable is
        clear: none of their descriptors is dispatched, so they move no data,
        write no record and raise no interrupt (``rtl/regs.rdl``
        ENG.ELIGIBLE_*: no ADI outside the mask is dispatched). The prefetch
        may still read each one's head descriptor from its ring.
        """
        mask = _adi_mask(adis)
        if mask:
            self._holds[owner] = mask
        else:
            self._holds.pop(owner, None)
        await self._commit_eligible()

    def held(self):
        """The ADIs some :meth:`hold` keeps out of the mask, as a bit mask."""
        held = 0
        for mask in self._holds.values():
            held |= mask
        return held

    async def _commit_eligible(self):
        mask = self._eligible & ~self.held()
        await self.bus.write(regmap.ENG_ELIGIBLE_LO, mask & 0xFFFF_FFFF)
        await self.bus.write(regmap.ENG_ELIGIBLE_HI, mask >> 32)
        await self.bus.write(regmap.ENG_ELIGIBLE_CMD, regmap.ENG_ELIGIBLE_CMD_COMMIT_MASK)

    async def quiesce(self, adis):
        """:meth:`quiesce_adis` (the name the VDCM's configuration-space controls call)."""
        await self.quiesce_adis(adis)

    def _dispatchable(self, adi):
        """Whether the eligibility mask this driver commits lets ``adi`` be dispatched."""
        return bool((self._eligible & ~self.held()) >> adi & 1)

    async def quiesce_adis(self, adis):
        """Return once nothing of ``adis`` is left in the device: no descriptor of theirs in
        flight, and no interrupt message of theirs that can still be delivered.

        The caller first makes them undispatchable: ABORT (their posted
        descriptors are dropped) or :meth:`hold` (kept out of the eligibility
        mask). Then, in order:

        1. each ADI's CMD.ADI_STATUS.INFLIGHT is polled until it reads 0: the
           descriptor its engine had taken has finished, its data and its
           completion record are in memory (or its faults in the DMA fault
           queue), and its completion interrupt message has reached the
           interrupt remapper;
        2. a drain of the interrupt remapper (IRQ.DRAIN_CMD, polled in
           DRAIN_STATUS): every message it had accepted is delivered, pending
           in its IMS entry, or faulted, its record in the interrupt fault queue.

        After it, every fault the ADIs caused is in a fault queue (or counted
        lost) for :meth:`~siov.sw.hv.hypervisor.Hypervisor.poll_faults`, their
        IMS entries can be cleared without an interrupt on its way to the old
        destination, and their pages reused. Each poll holds the driver's lock
        only for its own select and read, so other control work goes on
        meanwhile. The polls start ``poll_cycles`` apart and back off to
        :data:`QUIESCE_POLL_MAX` cycles: a wait for a 1 MiB copy takes about a
        hundred polls of two accesses per ADI, and ends at most that many
        cycles after the copy did. The drain is about ten cycles more.

        Raises
        ------
        ValueError
            An ADI is ENABLED or DRAINING and eligible: it could be dispatched
            again, so "nothing in flight" would not last.
        DeviceTimeout
            Still in flight after ``timeout_cycles``.
        """
        left, waited, pause = list(adis), 0, self.poll_cycles
        while left:
            async with self._lock:
                still = []
                for a in left:
                    await self.bus.write(regmap.CMD_ADI_SEL, a)
                    st = await self.bus.read(regmap.CMD_ADI_STATUS)
                    state = regmap.AdiState(_get(st, "CMD_ADI_STATUS_STATE"))
                    if state in (regmap.AdiState.ENABLED, regmap.AdiState.DRAINING) and self._dispatchable(a):
                        raise ValueError(f"ADI {a} is {state.name} and eligible: abort it or hold it before "
                                         f"waiting for it to quiesce")
                    if _get(st, "CMD_ADI_STATUS_INFLIGHT"):
                        still.append(a)
            left = still
            if left:
                if waited >= self.timeout_cycles:
                    raise DeviceTimeout(f"ADIs {left} still have a descriptor in flight after {waited} cycles")
                await self.bus.wait_cycles(pause)
                waited += pause
                pause = min(2 * pause, QUIESCE_POLL_MAX)
        async with self._lock:
            await self.bus.write(regmap.IRQ_DRAIN_CMD, regmap.IRQ_DRAIN_CMD_START_MASK)
        while True:
            async with self._lock:
                busy = await self.bus.read(regmap.IRQ_DRAIN_STATUS) & regmap.IRQ_DRAIN_STATUS_BUSY_MASK
            if not busy:
                return
            if waited >= self.timeout_cycles:
                raise DeviceTimeout(f"the interrupt remapper did not drain in {waited} cycles (is irq_out "
                                    f"taken?)")
            await self.bus.wait_cycles(self.poll_cycles)
            waited += self.poll_cycles

    @_atomic
    async def set_wait(self, recheck_cycles=None, timeout_cycles=None):
        """WAIT re-check period and timeout, in cycles (None leaves a setting as it is)."""
        if recheck_cycles is not None:
            await self.bus.write(regmap.ENG_WAIT_RECHECK, recheck_cycles)
        if timeout_cycles is not None:
            await self.bus.write(regmap.ENG_WAIT_TIMEOUT, timeout_cycles)

    async def engine_busy(self):
        """Whether some engine is executing a descriptor (ENG.ENG_STATUS.BUSY)."""
        return bool(await self.bus.read(regmap.ENG_ENG_STATUS) & regmap.ENG_ENG_STATUS_BUSY_MASK)

    async def counters(self):
        """The event counters of :data:`COUNTERS`, by name."""
        return {name: await self.bus.read(addr) for name, addr in COUNTERS.items()}
