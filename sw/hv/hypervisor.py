"""The hypervisor: tenants (VMs and containers), hypercalls, lazy unpin, faults and interrupts.

Each tenant gets a DMA domain whose window of host memory is its guest
memory (:class:`~siov.sw.hv.guest_memory.GuestMemory`), a PASID, and an x86
destination ID for its virtual interrupt controller. On top of that:

* **hypercalls** (:meth:`Hypervisor.hc_map`, :meth:`Hypervisor.hc_unmap`):
  the guest's frontend driver asks for pages to be pinned only when the
  device refuses a fast-path map because they are not; every argument is
  checked, and a refused call changes nothing;
* **lazy unpin** (:meth:`Hypervisor.lazy_unpin`): the unmap-requested
  bitmap is read and the pages a :mod:`~siov.sw.hv.unpin` policy picks are
  reclaimed;
* **faults** (:meth:`Hypervisor.poll_faults`): both fault queues are
  drained, and each record goes to the tenant whose PASID it names, or to
  :attr:`Hypervisor.unattributed` (and the log) when it names nobody's;
* **interrupts**: every ``irq_out`` message is raised in the virtual
  interrupt controller of the tenant that owns its destination.

Virtual devices are the VDCM's (:mod:`siov.sw.hv.vdcm`).
"""

import enum
import logging
from dataclasses import dataclass, field

from ...rtl.dma.defs import PAGE_SHIFT, PASID_BITS, WORD_PAGES, Bitmap
from .guest_memory import DOMAIN_SPAN, HOST_BASE, GuestMemory
from .pf import PfDriver
from .unpin import NeverUnpin
from .vic import VirtualInterruptController

__all__ = ["Hypervisor", "Tenant", "TenantKind", "HypercallError", "NoCapacity"]

PAGE = 1 << PAGE_SHIFT


class HypercallError(ValueError):
    """A hypercall with bad arguments; nothing was changed."""


class NoCapacity(RuntimeError):
    """The device has no free domain, ADI or interrupt handle left."""


class TenantKind(enum.Enum):
    VM = "vm"
    CONTAINER = "container"


@dataclass(eq=False)
class Tenant:
    """A VM or container as the hypervisor knows it."""
    name: str
    kind: TenantKind
    domain: int
    pasid: int
    dest: int
    memory: GuestMemory
    vic: VirtualInterruptController
    faults: list = field(default_factory=list)
    hypercalls: dict = field(default_factory=lambda: {"map": 0, "unmap": 0, "refused": 0})
    unpinned: int = 0
    unmap_seen: dict = field(default_factory=dict)       # page -> cycle its unmap request was first seen

    @property
    def pages(self):
        return self.memory.pages


class Hypervisor:
    """Owns the device (through :class:`~siov.sw.hv.pf.PfDriver`) and its tenants.

    Parameters
    ----------
    bus : Bus
    unpin_policy : NeverUnpin, ThresholdUnpin or LruUnpin
    host_base : int
        Host address of domain 0's window; domain ``d``'s starts ``d * domain_span`` above.
    domain_span : int
        Bytes of host memory set aside per domain (the largest guest).
    """

    def __init__(self, bus, unpin_policy=None, host_base=HOST_BASE, domain_span=DOMAIN_SPAN):
        self.bus = bus
        self.pf = PfDriver(bus)
        self.unpin_policy = unpin_policy or NeverUnpin()
        self.host_base, self.domain_span = host_base, domain_span
        self.tenants = {}
        self.unattributed = []
        self.log = logging.getLogger("siov.hv")
        self.caps = None
        self._by_dest, self._by_pasid = {}, {}
        self._next_pasid = 0x100
        self.stray_interrupts = []
        self.lost_faults = 0

    async def start(self):
        """Identify the device and start routing its interrupts."""
        self.caps = await self.pf.identify()
        self.bus.on_irq(self._route_irq)
        from .vdcm import Vdcm
        self.vdcm = Vdcm(self)
        return self.caps

    # -- tenants -----------------------------------------------------------------------

    async def create_tenant(self, name, kind=TenantKind.VM, pages=64):
        """A new VM or container with ``pages`` pages of guest memory in a domain of its own."""
        if name in self.tenants:
            raise ValueError(f"A tenant named {name!r} exists already")
        max_pages = min(self.caps.pages_per_domain, self.domain_span // PAGE)
        if not 1 <= pages <= max_pages:
            raise ValueError(f"A tenant has 1 to {max_pages} pages, not {pages}")
        used = {t.domain for t in self.tenants.values()}
        dom = next((d for d in range(self.caps.num_domains) if d not in used), None)
        if dom is None:
            raise NoCapacity(f"all {self.caps.num_domains} DMA domains are in use")
        pasid, dest = self._next_pasid, 1 + dom
        self._next_pasid = (self._next_pasid + 0x31) % (1 << PASID_BITS) or 0x100
        base = self.host_base + dom * self.domain_span
        await self.pf.set_domain(dom, base, pages)
        t = Tenant(name, TenantKind(kind), dom, pasid, dest, GuestMemory(self.bus, base, pages),
                   VirtualInterruptController(self.bus))
        self.tenants[name] = t
        self._by_dest[dest], self._by_pasid[pasid] = t, t
        self.log.info("%s %s: domain %d, PASID %#x, %d pages at %#x", t.kind.value, name, dom, pasid, pages, base)
        return t

    async def destroy_tenant(self, t):
        """Release the tenant's virtual devices, unpin all its pages, close its window."""
        for vdev in list(self.vdcm.devices_of(t)):
            await self.vdcm.release(vdev)
        await self.pf.unpin(t.domain, 0, t.pages)
        await self.pf.set_domain(t.domain, 0, 0)
        del self.tenants[t.name], self._by_dest[t.dest], self._by_pasid[t.pasid]

    # -- hypercalls --------------------------------------------------------------------

    def _check_range(self, t, gfn, count, what):
        if not isinstance(gfn, int) or not isinstance(count, int):
            raise HypercallError(f"{what} from {t.name}: page and count must be integers")
        if count <= 0:
            raise HypercallError(f"{what} from {t.name}: count must be positive, not {count}")
        if gfn < 0 or gfn + count > t.pages or gfn + count < gfn:
            raise HypercallError(f"{what} from {t.name}: pages {gfn:#x}..{gfn + count - 1:#x} are not all "
                                 f"inside its {t.pages} pages of guest memory")

    async def hc_map(self, t, gfn, count=1):
        """Map hypercall: pin guest pages ``gfn .. gfn+count-1`` of tenant ``t``."""
        await self._hypercall(t, "map", gfn, count, self.pf.pin)

    async def hc_unmap(self, t, gfn, count=1):
        """Unmap hypercall: unpin (and unmap) pages at once, without waiting for the lazy unpin."""
        await self._hypercall(t, "unmap", gfn, count, self.pf.unpin)

    async def _hypercall(self, t, kind, gfn, count, range_op):
        t.hypercalls[kind] += 1
        try:
            self._check_range(t, gfn, count, f"{kind} hypercall")
        except HypercallError:
            t.hypercalls["refused"] += 1
            raise
        if not await range_op(t.domain, gfn, count):
            raise HypercallError(f"{kind} hypercall from {t.name}: the device refused pages {gfn:#x}+{count}")

    # -- lazy unpin ------------------------------------------------------------------------

    async def _bitmap_pages(self, bitmap, t):
        words = await self.pf.read_bitmap(bitmap, t.domain, -(-t.pages // WORD_PAGES))
        return {w * WORD_PAGES + b for w, v in enumerate(words) for b in range(WORD_PAGES)
                if v >> b & 1 and w * WORD_PAGES + b < t.pages}

    async def pinned_pages(self, t):
        return await self._bitmap_pages(Bitmap.PINNED, t)

    async def lazy_unpin(self, t):
        """Reclaim the unmap-requested pages of ``t`` that the policy picks; their count."""
        now = self.bus.now()
        requested = await self._bitmap_pages(Bitmap.UNMAP, t)
        t.unmap_seen = {p: t.unmap_seen.get(p, now) for p in requested}
        pinned = await self.pinned_pages(t)
        chosen = sorted(self.unpin_policy.select(pinned, requested, now, t.unmap_seen))
        for start, count in _runs(chosen):
            await self.pf.reclaim(t.domain, start, count)
        for p in chosen:
            t.unmap_seen.pop(p, None)
        t.unpinned += len(chosen)
        return len(chosen)

    # -- faults and interrupts ---------------------------------------------------------

    async def poll_faults(self):
        """Drain both fault queues and hand each fault to its tenant; the records drained."""
        dma, dma_ovf = await self.pf.pop_dma_faults(clear_overflow=True)
        irq, irq_ovf = await self.pf.pop_irq_faults(clear_overflow=True)
        for f in dma + irq:
            t = self._by_pasid.get(f.pasid)
            if t is None:
                self.unattributed.append(f)
                self.log.warning("fault naming no tenant's PASID: %s", f)
            else:
                t.faults.append(f)
        self.lost_faults += dma_ovf + irq_ovf
        if dma_ovf or irq_ovf:
            self.log.warning("fault queues overflowed: %d DMA, %d interrupt faults lost", dma_ovf, irq_ovf)
        return dma + irq

    def _route_irq(self, irq):
        t = self._by_dest.get(irq.dest)
        if t is None:
            self.stray_interrupts.append(irq)
            self.log.warning("interrupt for destination %d, which no tenant owns", irq.dest)
            return
        t.vic.raise_vector(irq.vector, irq.cycle)


def _runs(pages):
    """Sorted page numbers as ``(start, count)`` runs."""
    runs = []
    for p in pages:
        if runs and runs[-1][0] + runs[-1][1] == p:
            runs[-1][1] += 1
        else:
            runs.append([p, 1])
    return [tuple(r) for r in runs]
