"""The VDCM: virtual devices composed from ADIs, and the emulation of their slow path.

Scalable IOV splits a virtual device's accesses in two. The fast path, an
ADI's portal (its doorbell page), is passed through to the hardware; every
other access traps to the hypervisor, which emulates it here: the control
registers, interrupt-handle requests and the PCI configuration space.

Virtual BAR 0 of a device with ``n`` ADIs (offsets in bytes):

====================  =====  ===============================================
``0x1000 * i + 0x0``  fast   queue ``i``'s TAIL doorbell (write)
``0x1000 * i + 0x4``  fast   queue ``i``'s HEAD (read)
``0x1000 * i + 0x8``  fast   queue ``i``'s state (read; :class:`~siov.rtl.regmap.AdiState`)
``CTRL + 0x000``      trap   CAPS: bits 7:0 queues, 15:8 log2 largest ring,
                             23:16 log2 smallest ring
``CTRL + 0x004``      trap   MAX_XFER: largest transfer in bytes (the device's)
``CTRL + 0x008``      trap   NUM_VECTORS: interrupt vectors (MSI-X table size)
``CTRL + 0x00C``      trap   ALIGN: bits 7:0 completion-record alignment,
                             15:8 MEMFILL destination alignment (bytes)
``CTRL + 0x010``      trap   INT_HANDLE_SEL: vector index whose handle to read
``CTRL + 0x014``      trap   INT_HANDLE: the IMS handle for that vector (read)
``CTRL + Q + 0x00``   trap   queue ``i``: ring base, guest address, low word
``CTRL + Q + 0x04``   trap   ring base, high word
``CTRL + Q + 0x08``   trap   ring size in entries: a power of two from
                             :data:`RING_MIN` to :data:`RING_MAX`
``CTRL + Q + 0x0C``   trap   control (write; :class:`QueueControl`): 1 enable,
                             2 drain, 4 abort, 8 reset error; reads 0. An
                             abort completes once no descriptor of the
                             queue is in flight any more
``CTRL + Q + 0x10``   trap   status (read): state in bits 1:0
                             (:class:`~siov.rtl.regmap.AdiState`), error code
                             in 7:4 (:class:`~siov.rtl.regmap.AdiError`)
``CTRL + Q + 0x14``   trap   engine (read): the device engine that runs the
                             queue's descriptors, chosen by the VDCM's
                             placement rule when the device was composed
====================  =====  ===============================================

where ``CTRL = 0x1000 * n`` and ``Q = 0x100 + 0x20 * i``. A bad access (an
unknown offset, a write to a read-only register, a ring size the device
refuses, an unknown control bit) raises :class:`VirtualMmioError` and
changes nothing. The guest driver (:mod:`siov.sw.guest.driver`) uses these
names, so both ends of the interface share one definition.

After the control block, BAR 0 holds the MSI-X table (16 bytes a vector, at
``config.msix_table_offset``) and the PBA (``config.msix_pba_offset``, read
only, from the IMS entries' PENDING bits), where the MSI-X capability says.

**The trap boundary.** Every BAR 0 access is 32 bits: a guest's offset is
unsigned and DWORD aligned, its data unsigned and 32 bits wide; a
configuration access is 1, 2 or 4 bytes inside the 4 KiB space, its data of
that width. An access outside that, and any BAR 0 access while Memory Space
Enable is clear, is what PCIe calls an Unsupported Request (PCIe 6.0 2.3.1;
VFIO's region accesses are bounded the same way): a read returns all ones,
a write is dropped, and :attr:`VirtualDevice.unsupported` counts it; it
never reaches another queue, register or tenant. A non-integer offset or
value is the caller's bug (``TypeError``).

**The configuration space's controls** (PCIe 6.0 7.5.1.1.3 Command,
7.5.3.4 Device Control, 6.6.2 FLR, 7.7.2 MSI-X):

* *Memory Space Enable* clear (as after reset): BAR 0 does not decode, as
  above; doorbells included.
* *Bus Master Enable* clear (as after reset): the function's ADIs are held
  out of the engines' eligibility mask (:meth:`PfDriver.hold`), so none of
  their descriptors is dispatched: no data, no record, no interrupt; the
  prefetch may still read each one's head descriptor. Its vectors are
  masked. The write returns once no descriptor of the function is executing
  (:meth:`PfDriver.quiesce`). Setting it again releases both.
* *Function Level Reset* (Device Control bit 15, advertised in Device
  Capabilities): the configuration space and the MSI-X table go back to
  reset; the function's queues are aborted (posted descriptors dropped),
  the write returns once the descriptor being executed has finished, the
  interrupts left pending are dropped, queues in ERROR are reset, and the
  staged ring registers and INT_HANDLE_SEL are forgotten. Nothing posted
  before the FLR completes after it.
* *MSI-X Enable* (0 after reset), the *Function Mask* and each vector's
  *Mask Bit*: a vector whose message the function may not send (any of
  them, or Bus Master Enable clear) has its IMS entry masked. The hardware
  then keeps the interrupt pending (the PBA shows it) and delivers it once
  every control allows it, as PCIe requires of a masked vector; this device
  does the same while MSI-X is disabled. A vector raises Message Data bits
  7:0 of its entry; the destination stays the tenant's, whatever Message
  Address holds, so a guest cannot aim an interrupt at another tenant.

**Engine placement.** Each ADI's ring is bound to one of the device's
engines when the queue is enabled. Which one is a rule of the VDCM's
(:attr:`Vdcm.placement`), called once per virtual device as it is composed;
the default, :class:`SpreadPlacement`, spreads one tenant's queues over the
engines and fills the least loaded first; :class:`TenantPlacement` places
named tenants where a scenario says and the others by another rule. A rule is
told the tenant, so it can place per tenant. The scheduler may replace the
rule.

The VDCM is given what it uses, explicitly: the device's one
:class:`~siov.sw.hv.pf.PfDriver`, its capabilities, and the hypervisor's two
hypercalls; it does not reach back into the hypervisor.
"""

import collections
import enum
import inspect
import logging

from ...rtl import regmap
from ...rtl.dma.defs import PASID_BITS, GuestResult
from ..model.adi import PAGE_HEAD, PAGE_STATE, PAGE_TAIL, page_address
from . import config_space as pci
from .config_space import VirtualConfigSpace
from .errors import AdiInUse, NoCapacity, VirtualMmioError
from .migration import DeviceMigration
from .traps import TrapBudget

__all__ = ["Vdcm", "VirtualDevice", "VirtualMmioError", "AdiInUse", "QueueControl", "SpreadPlacement", "TenantPlacement", "place",
           "RING_MIN", "RING_MAX", "PORTAL", "PAGE_TAIL", "PAGE_HEAD", "PAGE_STATE", "CAPS", "MAX_XFER_REG",
           "NUM_VECTORS", "ALIGN", "INT_HANDLE_SEL", "INT_HANDLE", "NO_HANDLE", "QUEUE_BASE", "QUEUE_STRIDE",
           "RING_LO", "RING_HI", "RING_SIZE", "QUEUE_CTRL", "QUEUE_STATUS", "QUEUE_ENGINE", "queue_register"]

PORTAL = 0x1000
CAPS, MAX_XFER_REG, NUM_VECTORS, ALIGN, INT_HANDLE_SEL, INT_HANDLE = 0x000, 0x004, 0x008, 0x00C, 0x010, 0x014
QUEUE_BASE, QUEUE_STRIDE = 0x100, 0x20
RING_LO, RING_HI, RING_SIZE, QUEUE_CTRL, QUEUE_STATUS, QUEUE_ENGINE = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14
_QUEUE_REGS = (RING_LO, RING_HI, RING_SIZE, QUEUE_CTRL, QUEUE_STATUS, QUEUE_ENGINE)
_READ_ONLY_QUEUE_REGS = (QUEUE_STATUS, QUEUE_ENGINE)
#: Ring sizes the ADI block accepts (rtl/regs.rdl CMD.RING_SIZE: a power of two in 2..4096).
RING_MIN, RING_MAX = 2, 4096
NO_HANDLE = 0xFFFF_FFFF
#: What a read answered as an Unsupported Request returns (PCIe: the completer's all ones).
ALL_ONES = 0xFFFF_FFFF
VECTOR_BASE = 0x40
#: Width of the page number of a guest map (rtl/regs.rdl DMA.GUEST: PAGE in bits 19:0).
GUEST_PAGE_BITS = 20


class QueueControl(enum.IntFlag):
    """The bits of a virtual queue's control register (``CTRL + Q + 0x0C``).

    Each is one ADI command of the device (``rtl/regs.rdl`` CMD.ADI_CMD); the
    VDCM turns them into that command, and the guest driver writes them.
    """
    ENABLE = 1
    DRAIN = 2
    ABORT = 4
    RESET_ERROR = 8

    @property
    def adi_command(self):
        """The CMD.ADI_CMD mask these bits stand for."""
        return sum(_ADI_COMMANDS[bit] for bit in QueueControl if bit in self)


_ADI_COMMANDS = {QueueControl.ENABLE: regmap.CMD_ADI_CMD_ENABLE_MASK,
                 QueueControl.DRAIN: regmap.CMD_ADI_CMD_DRAIN_MASK,
                 QueueControl.ABORT: regmap.CMD_ADI_CMD_ABORT_MASK,
                 QueueControl.RESET_ERROR: regmap.CMD_ADI_CMD_RESET_ERROR_MASK}


def queue_register(queue, reg):
    """Offset from ``CTRL`` of register ``reg`` (``RING_LO`` .. ``QUEUE_ENGINE``) of queue ``queue``."""
    return QUEUE_BASE + QUEUE_STRIDE * queue + reg


class SpreadPlacement:
    """The default engine-placement rule: spread one device's queues over the engines, least
    loaded first.

    Queue ``k`` of a new device goes to the engine that holds the fewest of
    this device's queues so far, then the fewest ADIs of any device, then the
    lowest index. On an idle device this is round robin by queue index, so a
    VM's rings run side by side (per-ring scheduling); among tenants it fills
    the least loaded engine first.

    A rule is any callable ``rule(count, load, tenant) -> engines``: ``count``
    queues of one new device of ``tenant`` (a :class:`~siov.sw.hv.tenant.Tenant`),
    ``load[e]`` the ADIs already bound to engine ``e``; it returns one engine
    index per queue. A rule that takes only ``(count, load)`` is called so, and
    places every tenant alike (:func:`place`).
    """

    def __call__(self, count, load, tenant=None):
        load, mine, engines = list(load), [0] * len(load), []
        for _ in range(count):
            e = min(range(len(load)), key=lambda e: (mine[e], load[e], e))
            mine[e] += 1
            load[e] += 1
            engines.append(e)
        return engines


class TenantPlacement:
    """A placement rule per tenant: queue ``k`` of tenant ``name`` goes to engine
    ``engines[name][k % len(engines[name])]``; a tenant not named is placed by ``default``
    (:class:`SpreadPlacement` unless given).

    This is how a scenario's per-tenant ``engines`` reach the VDCM: a producer and a consumer
    ring can be put on one engine or on two, and a flooding tenant kept off an engine.
    """

    def __init__(self, engines, default=None):
        self.engines = {name: list(e) for name, e in engines.items()}
        for name, e in self.engines.items():
            if not e or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in e):
                raise ValueError(f"the engines of {name} must be a non-empty list of engine indices, not {e!r}")
        self.default = default or SpreadPlacement()

    def __call__(self, count, load, tenant=None):
        mine = self.engines.get(getattr(tenant, "name", None))
        if mine is None:
            return place(self.default, count, load, tenant)
        return [mine[k % len(mine)] for k in range(count)]

    def __repr__(self):
        return f"TenantPlacement({self.engines!r})"


def place(rule, count, load, tenant):
    """Call placement ``rule`` for ``count`` queues of ``tenant``: as ``rule(count, load, tenant)``,
    or as ``rule(count, load)`` if it takes only two arguments (a rule blind to tenants)."""
    try:
        inspect.signature(rule).bind(count, load, tenant)
    except TypeError:
        return rule(count, load)
    except ValueError:               # a callable without a signature Python can read
        pass
    return rule(count, load, tenant)


def _check_int(v, what):
    """A trap entry point takes integers, as the bus does: anything else is a caller's bug."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"the {what} of a guest access is an integer, not {v!r}")


class VirtualDevice:
    """One virtual device: ``adis`` (physical indices) of tenant ``tenant``, with ``handles``
    (IMS entries) for its interrupt vectors; made by :meth:`Vdcm.create`.

    Attributes
    ----------
    adis, handles, vectors : list of int
        Its ADIs (queue ``i`` is ADI ``adis[i]``), IMS handles and the guest vectors they raise.
    engines : list of int
        The engine of each queue (queue ``i`` runs on ``engines[i]``), as the placement rule chose.
    config : VirtualConfigSpace
        Its PCI configuration space (read and written through :meth:`config_read` and
        :meth:`config_write`, which count as traps).
    traps, fast_path : int
        Accesses emulated by the hypervisor, and accesses passed to the hardware.
    unsupported : collections.Counter
        Accesses answered as PCIe answers an Unsupported Request (a read gets
        all ones, a write is dropped), by entry point: ``"mmio_read"``,
        ``"mmio_write"``, ``"config_read"``, ``"config_write"``. See the
        module docstring for which accesses those are.
    """

    def __init__(self, vdcm, tenant, adis, handles, config, engines):
        self.vdcm, self.tenant = vdcm, tenant
        self.adis, self.handles, self.config = list(adis), list(handles), config
        self.engines = list(engines)
        self.vectors = [VECTOR_BASE + k for k in range(len(handles))]
        self.traps = self.fast_path = 0
        self.unsupported = collections.Counter()
        self._staged = [{RING_LO: 0, RING_HI: 0, RING_SIZE: 0} for _ in adis]
        self._handle_sel = 0
        #: (masked, vector) each IMS entry holds, as :meth:`Vdcm.create` programs it.
        self._ims = [(False, v) for v in self.vectors]
        self.released = False
        self.bus = vdcm.pf.bus
        #: Its VFIO migration state (:mod:`siov.sw.hv.migration`).
        self.migration = DeviceMigration(self)

    async def power_on(self):
        """Make the device follow its configuration space at reset: Bus Master Enable and MSI-X
        Enable are clear, so its ADIs are held out of the eligibility mask and its IMS entries
        are masked (:meth:`Vdcm.create` calls it)."""
        await self.vdcm.pf.hold(self, self.adis)
        await self._sync_interrupts()

    @property
    def ctrl(self):
        """BAR 0 offset of the control block (``CTRL``): after the queues' doorbell pages."""
        return PORTAL * len(self.adis)

    def _trap(self):
        """The enclosed control work, on this tenant's budget of trapped work
        (:class:`~siov.sw.hv.traps.TrapBudget`): it waits for the next window if the budget is spent."""
        return self.vdcm.traps.charge(self.tenant)

    def _alive(self):
        if self.released:
            raise VirtualMmioError(f"virtual device of {self.tenant.name} has been released")

    # -- fast path -------------------------------------------------------------------------

    def _portal(self, offset):
        q, off = divmod(offset, PORTAL)
        if q < len(self.adis) and off in (PAGE_TAIL, PAGE_HEAD, PAGE_STATE):
            return self.adis[q], off
        return None

    def _claims(self, kind, offset, value=0):
        """Whether BAR 0 claims a 32-bit access at ``offset`` (writing ``value``); if not, the
        access is an Unsupported Request: counted, and not passed on."""
        _check_int(offset, "offset")
        _check_int(value, "value")
        if (self.config.memory_enabled and 0 <= offset < self.config.bar0_size and offset % 4 == 0
                and 0 <= value <= ALL_ONES):
            return True
        self.unsupported[kind] += 1
        self.traps += 1
        return False

    async def mmio_write(self, offset, value):
        """A guest 32-bit write of ``value`` to BAR 0 at ``offset``; dropped as an Unsupported
        Request if BAR 0 does not claim it (see the module docstring)."""
        self._alive()
        if not self._claims("mmio_write", offset, value):
            return
        portal = self._portal(offset)
        if portal is not None:
            adi, off = portal
            if off != PAGE_TAIL:
                raise VirtualMmioError(f"{self.tenant.name}: BAR0 {offset:#x} is read-only")
            self.fast_path += 1
            await self.bus.write(page_address(adi, off), value)
            return
        self.traps += 1
        async with self._trap():
            if offset >= self.config.msix_table_offset:
                await self._msix_write(offset, value)
                return
            await self._emulate_write(offset - self.ctrl, value)

    async def mmio_read(self, offset):
        """A guest 32-bit read of BAR 0 at ``offset``; all ones as an Unsupported Request if
        BAR 0 does not claim it (see the module docstring)."""
        self._alive()
        if not self._claims("mmio_read", offset):
            return ALL_ONES
        portal = self._portal(offset)
        if portal is not None:
            self.fast_path += 1
            return await self.bus.read(page_address(*portal))
        self.traps += 1
        async with self._trap():
            if offset >= self.config.msix_table_offset:
                return await self._msix_read(offset)
            return await self._emulate_read(offset - self.ctrl)

    async def guest_map(self, page, unmap=False):
        """The frontend driver's fast-path map (or unmap) of a guest page: the device's
        GUEST window, with this device's first ADI as the requester; the
        :class:`~siov.rtl.dma.defs.GuestResult`.

        The device's GUEST registers sit in its privileged window today
        (``rtl/regs.rdl`` DMA.GUEST; they are to move into the ADI pages), so
        the VDCM writes them on the guest's behalf without emulating anything:
        it counts as fast path. Passing through, it notes the device cycle of
        each accepted unmap on the tenant (:meth:`Tenant.note_unmap`): the
        device does not timestamp unmap requests, and this is the one place the
        hypervisor sees one happen, so lazy unpinning ages pages from it
        (:mod:`siov.sw.hv.unpin`).
        """
        self._alive()
        if isinstance(page, bool) or not isinstance(page, int) or not 0 <= page < 1 << GUEST_PAGE_BITS:
            raise VirtualMmioError(f"{self.tenant.name}: guest {'un' if unmap else ''}map of page {page!r}: a page "
                                   f"number is an integer in 0..{(1 << GUEST_PAGE_BITS) - 1}")
        self.fast_path += 1
        async with self._trap():
            result = await self.vdcm.pf.guest_map(self.adis[0], page, unmap)
        if result is GuestResult.OK and unmap:
            self.tenant.note_unmap(page, self.bus.now())
        elif result is GuestResult.OK:
            self.tenant.note_map(page)
        return result

    # -- hypercalls ------------------------------------------------------------------------

    async def hypercall_map(self, gfn, count=1):
        """Map hypercall: pin guest pages ``gfn .. gfn+count-1``; :class:`HypercallError` if refused."""
        self._alive()
        async with self._trap():
            await self.vdcm.hc_map(self.tenant, gfn, count)

    async def hypercall_unmap(self, gfn, count=1):
        """Unmap hypercall: unpin guest pages at once; :class:`HypercallError` if refused."""
        self._alive()
        async with self._trap():
            await self.vdcm.hc_unmap(self.tenant, gfn, count)

    # -- configuration space ---------------------------------------------------------------

    def _config_claims(self, kind, offset, size, value=0):
        """Whether a configuration access of ``size`` bytes at ``offset`` (writing ``value``)
        lies in the 4 KiB space; if not, it is counted and not passed on."""
        for what, v in (("offset", offset), ("size", size), ("value", value)):
            _check_int(v, what)
        if size in (1, 2, 4) and 0 <= offset <= pci.CONFIG_SPACE_SIZE - size and 0 <= value < 1 << 8 * size:
            return True
        self.unsupported[kind] += 1
        return False

    def config_read(self, offset, size=4):
        """A guest read of ``size`` (1, 2 or 4) bytes of its configuration space at ``offset``
        (a trap: the space is emulated). Outside the space, all ones of the access's width.

        A read has no effect on the device, so it needs no bus and is not awaited.
        """
        self._alive()
        self.traps += 1
        if not self._config_claims("config_read", offset, size):
            return (1 << 8 * size) - 1 if size in (1, 2, 4) else ALL_ONES
        return self.config.read(offset, size)

    async def config_write(self, offset, value, size=4):
        """A guest write of ``value`` (``size`` bytes) to its configuration space at ``offset``,
        and what it does to the device (see the module docstring: Memory Space Enable, Bus
        Master Enable, FLR, MSI-X Enable and Function Mask).

        Dropped, and counted, outside the space or wider than the access;
        :class:`~siov.sw.hv.config_space.ReadOnlyConfigWrite` (changing
        nothing) when it reaches only read-only bits.
        """
        self._alive()
        self.traps += 1
        if not self._config_claims("config_write", offset, size, value):
            return
        master = self.config.bus_master
        result = self.config.write(offset, size, value)
        async with self._trap():
            if result.flr:
                await self._function_level_reset()
            elif self.config.bus_master != master:
                await self._bus_master(self.config.bus_master)
            elif "MSI-X Message Control" in result.changed:
                await self._sync_interrupts()

    # -- what the configuration space's controls do ------------------------------------------

    def _vector_masked(self, k):
        """Whether vector ``k`` may not send its message: Bus Master Enable clear (an MSI-X
        message is a memory write), MSI-X disabled, the Function Mask, its own Mask Bit, or a
        stopped migration state (:mod:`siov.sw.hv.migration`)."""
        c = self.config
        return self.migration.holds_interrupts or not c.bus_master or not c.msix_enabled or c.msix_function_masked or c.msix_table.masked(k)

    async def _sync_interrupts(self, vectors=None):
        """Bring the IMS entries of ``vectors`` (default all) in line with the controls: masked
        as :meth:`_vector_masked` says, raising the vector of Message Data bits 7:0."""
        pf, t = self.vdcm.pf, self.tenant
        for k in range(len(self.handles)) if vectors is None else vectors:
            want = (self._vector_masked(k), self.config.msix_table.message(k)[1] & 0xFF)
            have = self._ims[k]
            if want[1] != have[1]:
                await pf.set_ims(self.handles[k], t.pasid, dest=t.dest, vector=want[1], mask=want[0])
            elif want[0] != have[0]:
                await pf.mask_ims(self.handles[k], t.pasid, want[0])
            self._ims[k] = want
        self.migration.deliver_held()        # a restored interrupt held for a vector now unmasked

    async def _bus_master(self, on):
        """Bus Master Enable changed. Cleared: the ADIs leave the eligibility mask, the vectors
        are masked, and the write completes once no descriptor of the function is executing,
        so the function does no DMA afterwards. Set: both come back."""
        pf = self.vdcm.pf
        await pf.hold(self, () if on else self.adis)
        await self._sync_interrupts()
        if not on:
            await pf.quiesce(self.adis)

    async def _function_level_reset(self):
        """Function Level Reset (PCIe 6.0 6.6.2), after the configuration space (and its MSI-X
        table) went back to reset: hold and mask as Bus Master Enable clear does, abort every
        queue (its posted descriptors are dropped), wait until the descriptor being executed
        has finished, drop the interrupts left pending, take the queues out of ERROR, and
        forget the staged registers. Nothing posted before the FLR completes after it."""
        pf = self.vdcm.pf
        await pf.hold(self, self.adis)
        await self._sync_interrupts()
        for a in self.adis:
            await pf.adi_command(a, QueueControl.ABORT.adi_command)
        await pf.quiesce(self.adis)
        for h in self.handles:
            await pf.discard_ims_pending(h, self.tenant.pasid)
        for a in self.adis:
            await pf.adi_command(a, QueueControl.RESET_ERROR.adi_command)
        self._staged = [{RING_LO: 0, RING_HI: 0, RING_SIZE: 0} for _ in self.adis]
        self._handle_sel = 0

    # -- MSI-X table and PBA in BAR 0 -----------------------------------------------------------

    def _pba_words(self):
        """DWORDs of the PBA: one bit a vector, in whole QWORDs (PCIe 6.0 7.7.2.10)."""
        return -(-len(self.handles) // 64) * 2

    async def _msix_read(self, offset):
        c = self.config
        if offset < c.msix_table_offset + c.msix_table.size:
            return c.msix_table.read(offset - c.msix_table_offset)
        w = (offset - c.msix_pba_offset) // 4
        if 0 <= w < self._pba_words():
            bits = 0
            for k in range(32 * w, min(32 * w + 32, len(self.handles))):
                bits |= await self.vdcm.pf.ims_pending(self.handles[k]) << (k - 32 * w)
            return bits
        raise VirtualMmioError(f"{self.tenant.name}: no register at BAR0 {offset:#x}")

    async def _msix_write(self, offset, value):
        c = self.config
        if offset < c.msix_table_offset + c.msix_table.size:
            await self._sync_interrupts([c.msix_table.write(offset - c.msix_table_offset, value)])
            return
        if 0 <= (offset - c.msix_pba_offset) // 4 < self._pba_words():
            raise VirtualMmioError(f"{self.tenant.name}: BAR0 {offset:#x} (MSI-X PBA) is read-only")
        raise VirtualMmioError(f"{self.tenant.name}: no register at BAR0 {offset:#x}")

    # -- slow path ---------------------------------------------------------------------------

    def _queue(self, off):
        q, reg = divmod(off - QUEUE_BASE, QUEUE_STRIDE)
        if off < QUEUE_BASE or q >= len(self.adis) or reg not in _QUEUE_REGS:
            raise VirtualMmioError(f"{self.tenant.name}: no register at BAR0 {self.ctrl + off:#x}")
        return q, reg

    async def _emulate_read(self, off):
        if off == CAPS:
            return len(self.adis) | (RING_MAX.bit_length() - 1) << 8 | (RING_MIN.bit_length() - 1) << 16
        caps = self.vdcm.caps
        if off == MAX_XFER_REG:
            return caps.max_xfer
        if off == ALIGN:
            return caps.cr_align | caps.fill_align << 8
        if off == NUM_VECTORS:
            return len(self.handles)
        if off == INT_HANDLE_SEL:
            return self._handle_sel
        if off == INT_HANDLE:
            return self.handles[self._handle_sel] if self._handle_sel < len(self.handles) else NO_HANDLE
        q, reg = self._queue(off)
        if reg == QUEUE_STATUS:
            state, error = await self.vdcm.pf.adi_state(self.adis[q])
            return state | error << 4
        if reg == QUEUE_ENGINE:
            return self.engines[q]
        if reg == QUEUE_CTRL:
            return 0
        return self._staged[q][reg]

    async def _emulate_write(self, off, value):
        if off == INT_HANDLE_SEL:
            self._handle_sel = value
            return
        if off in (CAPS, MAX_XFER_REG, NUM_VECTORS, ALIGN, INT_HANDLE):
            raise VirtualMmioError(f"{self.tenant.name}: BAR0 {self.ctrl + off:#x} is read-only")
        q, reg = self._queue(off)
        if reg in _READ_ONLY_QUEUE_REGS:
            name = "status" if reg == QUEUE_STATUS else "engine"
            raise VirtualMmioError(f"{self.tenant.name}: queue {q} {name} is read-only")
        if reg == RING_SIZE:
            self._check_ring_size(q, value)
        if reg != QUEUE_CTRL:
            self._staged[q][reg] = value & 0xFFFF_FFFF
            return
        await self._control(q, value)

    def _check_ring_size(self, q, size):
        """Refuse a ring size the device would refuse at ENABLE, at the write itself."""
        if not RING_MIN <= size <= RING_MAX or size & (size - 1):
            raise VirtualMmioError(f"{self.tenant.name}: queue {q} ring of {size} entries; the device "
                                   f"takes a power of two from {RING_MIN} to {RING_MAX}")

    async def _control(self, q, value):
        """A write of :class:`QueueControl` bits: ENABLE configures and enables the ADI with the
        staged ring on the queue's engine; the other bits are ADI commands."""
        if value & ~sum(QueueControl):
            raise VirtualMmioError(f"{self.tenant.name}: queue {q} control {value:#x} has unknown bits")
        ctrl = QueueControl(value)
        if QueueControl.ENABLE in ctrl:
            st = self._staged[q]
            size = st[RING_SIZE]
            self._check_ring_size(q, size)         # still 0 when no size was written
            base = st[RING_HI] << 32 | st[RING_LO]
            if base % 64 or not self.tenant.memory.contains(base, size * 64):
                raise VirtualMmioError(f"{self.tenant.name}: queue {q} ring at {base:#x} is not 64-byte "
                                       f"aligned inside guest memory")
            await self.vdcm.pf.enable_adi(self.adis[q], base, size, self.tenant.pasid, self.tenant.domain,
                                          engine=self.engines[q])
            ctrl &= ~QueueControl.ENABLE
        if ctrl:
            await self.vdcm.pf.adi_command(self.adis[q], ctrl.adi_command)
        if QueueControl.ABORT in ctrl and QueueControl.RESET_ERROR not in ctrl:
            # As a DSA's Abort WQ command: the write completes once the queue's last
            # descriptor has finished, so the guest may reuse its ring and records.
            await self.vdcm.pf.quiesce_adis([self.adis[q]])


class Vdcm:
    """Composes and releases virtual devices: the one owner of the device's ADIs and IMS handles.

    The hypervisor makes its device's VDCM in :meth:`~siov.sw.hv.hypervisor.Hypervisor.start`
    (``hv.vdcm``); a second VDCM of the same device is refused with
    :class:`~siov.sw.hv.errors.DeviceOwned`, since two would hand out the same
    ADIs and handles.

    Parameters
    ----------
    pf : PfDriver
        The device's driver; the VDCM claims the role ``"vdcm"`` on it.
    caps : DeviceCaps
        What the device reported (ADIs, IMS entries, engines, limits).
    hc_map, hc_unmap : async callable ``(tenant, gfn, count)``
        The hypervisor's map and unmap hypercalls, which a virtual device forwards.
    placement : callable, optional
        The engine-placement rule (default :class:`SpreadPlacement`).

    Attributes
    ----------
    placement : callable ``(count, load, tenant) -> engines``
        Replaceable; it applies to devices composed afterwards (see :class:`SpreadPlacement`).
    adi_owner, handle_owner : dict
        ADI index, IMS handle -> the :class:`VirtualDevice` holding it.
    """

    def __init__(self, pf, caps, hc_map, hc_unmap, placement=None, traps=None):
        pf.claim("vdcm", self)
        self.pf, self.caps = pf, caps
        self.traps = traps or TrapBudget(pf.bus)
        self.hc_map, self.hc_unmap = hc_map, hc_unmap
        self.placement = placement or SpreadPlacement()
        self.adi_owner = {}
        self.handle_owner = {}
        self.log = logging.getLogger("siov.hv.vdcm")

    def devices_of(self, tenant):
        """The live virtual devices of ``tenant``."""
        return {d for d in set(self.adi_owner.values()) | set(self.handle_owner.values()) if d.tenant is tenant}

    def engine_load(self):
        """ADIs of live virtual devices bound to each engine, by engine index."""
        load = [0] * self.caps.num_engines
        for vdev in set(self.adi_owner.values()):
            for e in vdev.engines:
                load[e] += 1
        return load

    def _free_adis(self, n, wanted):
        caps = self.caps
        if wanted is not None:
            for a in wanted:
                if not 0 <= a < caps.num_adis:
                    raise ValueError(f"ADI {a} does not exist (the device has {caps.num_adis})")
                if a in self.adi_owner:
                    raise AdiInUse(f"ADI {a} is assigned to {self.adi_owner[a].tenant.name}")
            return list(wanted)
        free = [a for a in range(caps.num_adis) if a not in self.adi_owner]
        if len(free) < n:
            raise NoCapacity(f"{n} ADIs asked for, {len(free)} free")
        return free[:n]

    def _place(self, count, tenant):
        engines = list(place(self.placement, count, self.engine_load(), tenant))
        if len(engines) != count or not all(isinstance(e, int) and 0 <= e < self.caps.num_engines
                                            for e in engines):
            raise ValueError(f"placement rule {self.placement!r} gave {engines} for {count} queues; it must give "
                             f"one engine in 0..{self.caps.num_engines - 1} per queue")
        return engines

    async def create(self, tenant, adis=1, vectors=None, adi_indices=None):
        """A virtual device of ``adis`` ADIs (or exactly ``adi_indices``) and ``vectors``
        interrupt vectors (default: one per ADI) for ``tenant``, its queues placed on engines
        by :attr:`placement`."""
        chosen = self._free_adis(adis if adi_indices is None else len(adi_indices), adi_indices)
        nvec = len(chosen) if vectors is None else vectors
        free_handles = [h for h in range(self.caps.ims_entries) if h not in self.handle_owner]
        if len(free_handles) < nvec:
            raise NoCapacity(f"{nvec} interrupt handles asked for, {len(free_handles)} free")
        handles = free_handles[:nvec]
        config = VirtualConfigSpace(mmio_size=PORTAL * (len(chosen) + 1), msix_vectors=nvec,
                                    pasid_width=PASID_BITS)
        vdev = VirtualDevice(self, tenant, chosen, handles, config, self._place(len(chosen), tenant))
        for a in chosen:
            await self.pf.bind_adi(a, tenant.pasid, tenant.domain)
            self.adi_owner[a] = vdev
        for k, h in enumerate(handles):
            await self.pf.set_ims(h, tenant.pasid, dest=tenant.dest, vector=vdev.vectors[k])
            self.handle_owner[h] = vdev
        await vdev.power_on()
        self.log.info("virtual device for %s: ADIs %s on engines %s, IMS handles %s", tenant.name, chosen,
                      vdev.engines, handles)
        return vdev

    async def release(self, vdev):
        """Stop and unassign everything ``vdev`` holds; the hardware is left as it was before.

        Its ADIs are held out of the eligibility mask and aborted (their
        posted descriptors are dropped; ``rtl/regs.rdl`` CMD.ADI_CMD.ABORT),
        and nothing is released before the device is done with them
        (:meth:`~siov.sw.hv.pf.PfDriver.quiesce_adis`: a descriptor already
        running finishes, and its interrupt is delivered or faulted). Then
        each ADI is taken out of ERROR and unbound from the tracker's ADI
        table; each IMS entry is cleared, which also drops an interrupt it
        held pending (IRQ.IMS: a PASID change clears PENDING without delivery).
        """
        if vdev.released:
            return
        await self.pf.hold(vdev, vdev.adis)
        for a in vdev.adis:
            await self.pf.adi_command(a, QueueControl.ABORT.adi_command)
        await self.pf.quiesce_adis(vdev.adis)
        for a in vdev.adis:
            await self.pf.adi_command(a, QueueControl.RESET_ERROR.adi_command)
            await self.pf.bind_adi(a, 0, 0, valid=False)
            del self.adi_owner[a]
        for h in vdev.handles:
            await self.pf.clear_ims(h)
            del self.handle_owner[h]
        await self.pf.hold(vdev, ())
        vdev.released = True
