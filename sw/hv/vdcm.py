"""The VDCM: virtual devices composed from ADIs, and the emulation of their slow path.

Scalable IOV splits a virtual device's accesses in two. The fast path, an
ADI's portal (its doorbell page), is passed through to the hardware; every
other access traps to the hypervisor, which emulates it here: the control
registers, interrupt-handle requests and the PCI configuration space.

Virtual BAR 0 of a device with ``n`` ADIs (offsets in bytes):

====================  =====  ===============================================
``0x1000 * i + 0x0``  fast   queue ``i``'s TAIL doorbell (write)
``0x1000 * i + 0x4``  fast   queue ``i``'s HEAD (read)
``0x1000 * i + 0x8``  fast   queue ``i``'s state (read)
``CTRL + 0x000``      trap   CAPS: bits 7:0 queues, 15:8 log2 largest ring,
                             23:16 log2 smallest ring
``CTRL + 0x004``      trap   MAX_XFER: largest transfer in bytes (the device's)
``CTRL + 0x00C``      trap   ALIGN: bits 7:0 completion-record alignment,
                             15:8 MEMFILL destination alignment (bytes)
``CTRL + 0x008``      trap   NUM_VECTORS: interrupt vectors (MSI-X table size)
``CTRL + 0x010``      trap   INT_HANDLE_SEL: vector index whose handle to read
``CTRL + 0x014``      trap   INT_HANDLE: the IMS handle for that vector (read)
``CTRL + Q + 0x00``   trap   queue ``i``: ring base, guest address, low word
``CTRL + Q + 0x04``   trap   ring base, high word
``CTRL + Q + 0x08``   trap   ring size in entries
``CTRL + Q + 0x0C``   trap   control: 1 enable, 2 drain, 4 abort, 8 reset error
``CTRL + Q + 0x10``   trap   status: state in bits 1:0, error code in 7:4
====================  =====  ===============================================

where ``CTRL = 0x1000 * n`` and ``Q = 0x100 + 0x20 * i``. A bad access (an
unknown offset, a write to a read-only register, a ring size the device
refuses) raises :class:`VirtualMmioError` and changes nothing.
"""

import logging

from ...rtl import regmap
from ...rtl.dma.defs import PASID_BITS
from ..model.adi import PAGE_HEAD, PAGE_STATE, PAGE_TAIL, page_address

__all__ = ["Vdcm", "VirtualDevice", "VirtualMmioError", "AdiInUse", "RING_MIN", "RING_MAX"]

PORTAL = 0x1000
CAPS, MAX_XFER_REG, NUM_VECTORS, ALIGN, INT_HANDLE_SEL, INT_HANDLE = 0x000, 0x004, 0x008, 0x00C, 0x010, 0x014
QUEUE_BASE, QUEUE_STRIDE = 0x100, 0x20
RING_LO, RING_HI, RING_SIZE, QUEUE_CTRL, QUEUE_STATUS = 0x00, 0x04, 0x08, 0x0C, 0x10
#: Ring sizes the ADI block accepts (rtl/regs.rdl CMD.RING_SIZE: a power of two in 2..4096).
RING_MIN, RING_MAX = 2, 4096
_CTRL_BITS = {1: regmap.CMD_ADI_CMD_ENABLE_MASK, 2: regmap.CMD_ADI_CMD_DRAIN_MASK,
              4: regmap.CMD_ADI_CMD_ABORT_MASK, 8: regmap.CMD_ADI_CMD_RESET_ERROR_MASK}
NO_HANDLE = 0xFFFF_FFFF
VECTOR_BASE = 0x40


class VirtualMmioError(RuntimeError):
    """A guest access to its virtual device that the device model refuses; nothing changed."""


class AdiInUse(RuntimeError):
    """An ADI asked for is assigned to another virtual device."""


class VirtualDevice:
    """One virtual device: ``adis`` (physical indices) of tenant ``tenant``, with ``handles``
    (IMS entries) for its interrupt vectors.

    Attributes
    ----------
    traps, fast_path : int
        Accesses emulated by the hypervisor, and accesses passed to the hardware.
    """

    def __init__(self, vdcm, tenant, adis, handles, config):
        self.vdcm, self.tenant = vdcm, tenant
        self.adis, self.handles, self.config = list(adis), list(handles), config
        self.vectors = [VECTOR_BASE + k for k in range(len(handles))]
        self.traps = self.fast_path = 0
        self._staged = [{RING_LO: 0, RING_HI: 0, RING_SIZE: 0} for _ in adis]
        self._handle_sel = 0
        self.released = False
        self.bus = vdcm.hv.bus

    @property
    def ctrl(self):
        return PORTAL * len(self.adis)

    def _alive(self):
        if self.released:
            raise VirtualMmioError(f"virtual device of {self.tenant.name} has been released")

    # -- fast path -------------------------------------------------------------------------

    def _portal(self, offset):
        q, off = divmod(offset, PORTAL)
        if q < len(self.adis) and off in (PAGE_TAIL, PAGE_HEAD, PAGE_STATE):
            return self.adis[q], off
        return None

    async def mmio_write(self, offset, value):
        """A guest write to BAR 0 at ``offset``."""
        self._alive()
        portal = self._portal(offset)
        if portal is not None:
            adi, off = portal
            if off != PAGE_TAIL:
                raise VirtualMmioError(f"{self.tenant.name}: BAR0 {offset:#x} is read-only")
            self.fast_path += 1
            await self.bus.write(page_address(adi, off), value)
            return
        self.traps += 1
        await self._emulate_write(offset - self.ctrl, value)

    async def mmio_read(self, offset):
        """A guest read of BAR 0 at ``offset``."""
        self._alive()
        portal = self._portal(offset)
        if portal is not None:
            self.fast_path += 1
            return await self.bus.read(page_address(*portal))
        self.traps += 1
        return await self._emulate_read(offset - self.ctrl)

    async def guest_map(self, page, unmap=False):
        """The frontend driver's fast-path map (or unmap) of a guest page: the device's
        GUEST window, with this device's first ADI as the requester."""
        self._alive()
        self.fast_path += 1
        return await self.vdcm.hv.pf.guest_map(self.adis[0], page, unmap)

    # -- hypercalls ------------------------------------------------------------------------

    async def hypercall_map(self, gfn, count=1):
        self._alive()
        await self.vdcm.hv.hc_map(self.tenant, gfn, count)

    async def hypercall_unmap(self, gfn, count=1):
        self._alive()
        await self.vdcm.hv.hc_unmap(self.tenant, gfn, count)

    # -- configuration space ---------------------------------------------------------------

    def config_read(self, offset, size=4):
        self._alive()
        self.traps += 1
        return self.config.read(offset, size)

    def config_write(self, offset, value, size=4):
        self._alive()
        self.traps += 1
        self.config.write(offset, size, value)

    # -- slow path ---------------------------------------------------------------------------

    def _queue(self, off):
        q, reg = divmod(off - QUEUE_BASE, QUEUE_STRIDE)
        if off < QUEUE_BASE or q >= len(self.adis) or reg not in (RING_LO, RING_HI, RING_SIZE, QUEUE_CTRL,
                                                                  QUEUE_STATUS):
            raise VirtualMmioError(f"{self.tenant.name}: no register at BAR0 {self.ctrl + off:#x}")
        return q, reg

    async def _emulate_read(self, off):
        if off == CAPS:
            return len(self.adis) | (RING_MAX.bit_length() - 1) << 8 | (RING_MIN.bit_length() - 1) << 16
        caps = self.vdcm.hv.caps
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
            state, error = await self.vdcm.hv.pf.adi_state(self.adis[q])
            return state | error << 4
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
        if reg == QUEUE_STATUS:
            raise VirtualMmioError(f"{self.tenant.name}: queue {q} status is read-only")
        if reg != QUEUE_CTRL:
            self._staged[q][reg] = value & 0xFFFF_FFFF
            return
        mask = 0
        for bit, cmd in _CTRL_BITS.items():
            if value & bit:
                mask |= cmd
        if value & ~sum(_CTRL_BITS):
            raise VirtualMmioError(f"{self.tenant.name}: queue {q} control {value:#x} has unknown bits")
        st = self._staged[q]
        if mask & regmap.CMD_ADI_CMD_ENABLE_MASK:
            size = st[RING_SIZE]
            if not RING_MIN <= size <= RING_MAX or size & (size - 1):
                raise VirtualMmioError(f"{self.tenant.name}: queue {q} ring of {size} entries; the device "
                                       f"takes a power of two from {RING_MIN} to {RING_MAX}")
            base = st[RING_HI] << 32 | st[RING_LO]
            if base % 64 or not self.tenant.memory.contains(base, size * 64):
                raise VirtualMmioError(f"{self.tenant.name}: queue {q} ring at {base:#x} is not 64-byte "
                                       f"aligned inside guest memory")
            await self.vdcm.hv.pf.enable_adi(self.adis[q], base, size, self.tenant.pasid, self.tenant.domain)
            mask &= ~regmap.CMD_ADI_CMD_ENABLE_MASK
        if mask:
            await self.vdcm.hv.pf.adi_command(self.adis[q], mask)


class Vdcm:
    """Composes and releases virtual devices; owns the ADI and IMS-handle assignment."""

    def __init__(self, hv):
        self.hv = hv
        self.adi_owner = {}
        self.handle_owner = {}
        self.log = logging.getLogger("siov.hv.vdcm")

    def devices_of(self, tenant):
        return {d for d in set(self.adi_owner.values()) | set(self.handle_owner.values()) if d.tenant is tenant}

    def _free_adis(self, n, wanted):
        caps = self.hv.caps
        if wanted is not None:
            for a in wanted:
                if not 0 <= a < caps.num_adis:
                    raise ValueError(f"ADI {a} does not exist (the device has {caps.num_adis})")
                if a in self.adi_owner:
                    raise AdiInUse(f"ADI {a} is assigned to {self.adi_owner[a].tenant.name}")
            return list(wanted)
        free = [a for a in range(caps.num_adis) if a not in self.adi_owner]
        if len(free) < n:
            from .hypervisor import NoCapacity
            raise NoCapacity(f"{n} ADIs asked for, {len(free)} free")
        return free[:n]

    async def create(self, tenant, adis=1, vectors=None, adi_indices=None):
        """A virtual device of ``adis`` ADIs (or exactly ``adi_indices``) and ``vectors``
        interrupt vectors (default: one per ADI) for ``tenant``."""
        from .config_space import VirtualConfigSpace
        from .hypervisor import NoCapacity
        chosen = self._free_adis(adis if adi_indices is None else len(adi_indices), adi_indices)
        nvec = len(chosen) if vectors is None else vectors
        free_handles = [h for h in range(self.hv.caps.ims_entries) if h not in self.handle_owner]
        if len(free_handles) < nvec:
            raise NoCapacity(f"{nvec} interrupt handles asked for, {len(free_handles)} free")
        handles = free_handles[:nvec]
        config = VirtualConfigSpace(mmio_size=PORTAL * (len(chosen) + 1), msix_vectors=nvec,
                                    pasid_width=PASID_BITS)
        vdev = VirtualDevice(self, tenant, chosen, handles, config)
        pf = self.hv.pf
        for a in chosen:
            await pf.bind_adi(a, tenant.pasid, tenant.domain)
            self.adi_owner[a] = vdev
        for k, h in enumerate(handles):
            await pf.set_ims(h, tenant.pasid, dest=tenant.dest, vector=vdev.vectors[k])
            self.handle_owner[h] = vdev
        self.log.info("virtual device for %s: ADIs %s, IMS handles %s", tenant.name, chosen, handles)
        return vdev

    async def release(self, vdev):
        """Stop and unassign everything ``vdev`` holds; the hardware is left as it was before."""
        if vdev.released:
            return
        pf = self.hv.pf
        for a in vdev.adis:
            await pf.adi_command(a, regmap.CMD_ADI_CMD_ABORT_MASK)
            await pf.adi_command(a, regmap.CMD_ADI_CMD_RESET_ERROR_MASK)
            await pf.bind_adi(a, 0, 0, valid=False)
            del self.adi_owner[a]
        for h in vdev.handles:
            await pf.clear_ims(h)
            del self.handle_owner[h]
        vdev.released = True
