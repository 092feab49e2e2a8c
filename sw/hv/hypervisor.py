"""The hypervisor: tenants (VMs and containers), hypercalls, lazy unpin, faults and interrupts.

The :class:`Hypervisor` owns the device. It holds the device's one
:class:`~siov.sw.hv.pf.PfDriver` (and so the one lock of its shared
registers), and makes in :meth:`Hypervisor.start` the one
:class:`~siov.sw.hv.vdcm.Vdcm` and the one
:class:`~siov.sw.hv.containers.ContainerHost`. Each of them claims its role
on the driver, so a second hypervisor, VDCM or container host of the same
device is refused (:class:`~siov.sw.hv.errors.DeviceOwned`) instead of
handing out ADIs, handles or device nodes that are already someone's. Host
programs reach them as :attr:`Hypervisor.pf`, :attr:`Hypervisor.vdcm` and
:attr:`Hypervisor.containers`.

Each tenant gets a DMA domain whose window of host memory is its guest
memory (:class:`~siov.sw.hv.guest_memory.GuestMemory`), a PASID, and an x86
destination ID for its virtual interrupt controller. On top of that:

* **hypercalls** (:meth:`Hypervisor.hc_map`, :meth:`Hypervisor.hc_unmap`):
  the guest's frontend driver asks for pages to be pinned only when the
  device refuses a fast-path map because they are not; every argument is
  checked, and a refused call changes nothing and is counted as refused;
* **lazy unpin** (:meth:`Hypervisor.lazy_unpin`): the unmap-requested
  bitmap is read and the pages a :mod:`~siov.sw.hv.unpin` policy picks are
  reclaimed;
* **faults** (:meth:`Hypervisor.poll_faults`): the one reader of the fault
  queues. Both are drained, and each record goes to the tenant whose PASID
  it names (:attr:`Tenant.faults`), or to :attr:`Hypervisor.unattributed`
  (and the log) when it names nobody's. Whoever wants faults (a program's
  record, a test) reads these lists; draining the queues elsewhere would
  take records from the tenants they belong to;
* **interrupts**: every ``irq_out`` message is raised in the virtual
  interrupt controller of the tenant that owns its destination.

**A domain passes from tenant to tenant clean.** :meth:`Hypervisor.destroy_tenant`
quiesces before it releases anything: it stops the tenant (its device nodes,
its ADIs out of the eligibility mask and aborted), waits until no
descriptor of its is in flight and the interrupt remapper has drained, routes
its last faults to it, scrubs its domain (unpinned, dirty log cleared) and
only then releases its virtual devices (ADIs unbound, IMS entries cleared,
pending interrupts with them), its window, PASID and domain. So a
descriptor still running when the tenant is destroyed finishes inside the
tenant's own window, and nothing of it reaches the next owner of the domain,
the ADIs or the handles. :meth:`Hypervisor.create_tenant` zeroes a window
before it opens it to the device, so a tenant never reads an earlier
owner's bytes. Zeroing goes through the host's own writes to host memory,
which take no device time; a teardown costs device time for the rest of the
descriptors in flight and its register work (a few hundred MMIO accesses:
the ADI commands, the IMS entries, the unpin of the domain, nine cycles per
32 pages, and one read per 32 pages of its dirty log).
"""

import logging

from ...rtl import regmap
from ...rtl.dma.defs import PAGE_SHIFT, PASID_BITS, WORD_PAGES, Bitmap
from .containers import ContainerHost
from .errors import HypercallError, HypervisorError, NoCapacity
from .guest_memory import DOMAIN_SPAN, HOST_BASE, GuestMemory
from .pf import PfDriver
from .tenant import Tenant, TenantKind
from .traps import TrapBudget
from .unpin import NeverUnpin
from .vdcm import Vdcm
from .vic import VirtualInterruptController

__all__ = ["Hypervisor", "Tenant", "TenantKind", "HypervisorError", "HypercallError", "NoCapacity"]

PAGE = 1 << PAGE_SHIFT
#: The first PASID handed out, and the step between two (odd, so every PASID comes round).
FIRST_PASID, PASID_STEP = 0x100, 0x31


class Hypervisor:
    """Owns the device and its tenants.

    Parameters
    ----------
    bus : Bus
    unpin_policy : NeverUnpin, ThresholdUnpin or LruUnpin
    placement : callable, optional
        The VDCM's engine-placement rule (default
        :class:`~siov.sw.hv.vdcm.SpreadPlacement`).
    trap_budget : TrapBudget, optional
        Each tenant's share of trapped control work (emulated registers,
        hypercalls, mediated guest maps, configuration writes) per window of
        device cycles (default :class:`~siov.sw.hv.traps.TrapBudget`'s: 5,000
        cycles of every 20,000), so that one guest trapping without pause
        cannot take the control path from the others.
    host_base : int
        Host address of domain 0's window; domain ``d``'s starts ``d * domain_span`` above.
    domain_span : int
        Bytes of host memory set aside per domain (the largest guest).

    Attributes
    ----------
    pf : PfDriver
        The device's one driver (:meth:`PfDriver.of`): for what the
        hypervisor does not wrap (the arbiter, the eligibility mask, the
        counters); everything it does goes under the driver's one lock.
    vdcm : Vdcm
        The device's VDCM (after :meth:`start`).
    containers : ContainerHost
        The device's container host (after :meth:`start`).
    caps : DeviceCaps
        What the device reported (after :meth:`start`).
    tenants : dict
        Live tenants by name.
    unattributed : list
        Fault records that named no live tenant's PASID.
    stray_interrupts : list of Interrupt
        Interrupts for a destination no tenant owns.
    lost_faults : int
        Faults the device counted as lost to a full fault queue.

    Raises
    ------
    DeviceOwned
        The device behind ``bus`` already has a hypervisor.
    """

    def __init__(self, bus, unpin_policy=None, placement=None, host_base=HOST_BASE, domain_span=DOMAIN_SPAN,
                 trap_budget=None):
        self.bus = bus
        self.traps = trap_budget or TrapBudget(bus)
        self.pf = PfDriver.of(bus)
        self.pf.claim("hypervisor", self)
        self.unpin_policy = unpin_policy or NeverUnpin()
        self.host_base, self.domain_span = host_base, domain_span
        self.tenants = {}
        self.unattributed = []
        self.log = logging.getLogger("siov.hv")
        self.caps = None
        self._placement = placement
        self._vdcm = self._containers = None
        self._by_dest, self._by_pasid = {}, {}
        self._next_pasid = FIRST_PASID
        self.stray_interrupts = []
        self.lost_faults = 0

    async def start(self):
        """Identify the device, start routing its interrupts, and make its VDCM and container host."""
        if self.caps is None:
            self.caps = await self.pf.identify()
            self.bus.on_irq(self._route_irq)
            self._vdcm = Vdcm(self.pf, self.caps, self.hc_map, self.hc_unmap, self._placement, self.traps)
            self._containers = ContainerHost(self)
        return self.caps

    def _started(self, what):
        if self.caps is None:
            raise HypervisorError(f"the hypervisor has no {what} before `await hv.start()`")

    @property
    def vdcm(self):
        """The device's one :class:`~siov.sw.hv.vdcm.Vdcm` (after :meth:`start`)."""
        self._started("VDCM")
        return self._vdcm

    @property
    def containers(self):
        """The device's one :class:`~siov.sw.hv.containers.ContainerHost` (after :meth:`start`)."""
        self._started("container host")
        return self._containers

    # -- tenants -----------------------------------------------------------------------

    def _new_pasid(self):
        """The next PASID in the sequence that no live tenant holds."""
        while True:
            pasid = self._next_pasid
            self._next_pasid = (pasid + PASID_STEP) % (1 << PASID_BITS) or FIRST_PASID
            if pasid not in self._by_pasid:
                return pasid

    async def create_tenant(self, name, kind=TenantKind.VM, pages=64):
        """A new VM or container with ``pages`` pages of zeroed guest memory in a domain of its own."""
        self._started("tenants")
        if name in self.tenants:
            raise ValueError(f"A tenant named {name!r} exists already")
        max_pages = min(self.caps.pages_per_domain, self.domain_span // PAGE)
        if not 1 <= pages <= max_pages:
            raise ValueError(f"A tenant has 1 to {max_pages} pages, not {pages}")
        used = {t.domain for t in self.tenants.values()}
        dom = next((d for d in range(self.caps.num_domains) if d not in used), None)
        if dom is None:
            raise NoCapacity(f"all {self.caps.num_domains} DMA domains are in use")
        pasid, dest = self._new_pasid(), 1 + dom
        base = self.host_base + dom * self.domain_span
        memory = GuestMemory(self.bus, base, pages)
        await memory.scrub()                          # before the device can reach it
        await self.pf.set_domain(dom, base, pages)
        t = Tenant(name, TenantKind(kind), dom, pasid, dest, memory, VirtualInterruptController(self.bus))
        self.tenants[name] = t
        self._by_dest[dest], self._by_pasid[pasid] = t, t
        self.log.info("%s %s: domain %d, PASID %#x, %d pages at %#x", t.kind.value, name, dom, pasid, pages, base)
        return t

    async def destroy_tenant(self, t):
        """Stop tenant ``t``, wait until nothing of it is left in the device, and release
        everything it held; its domain, PASID, ADIs and IMS handles are then clean for the next.

        In order:

        1. **stop**: its device nodes die; its ADIs leave the eligibility
           mask (:meth:`PfDriver.hold`), so no engine takes another of its
           descriptors, and are aborted (their posted descriptors dropped);
        2. **wait** (:meth:`PfDriver.quiesce_adis`): until no descriptor of
           its ADIs is in flight (a copy already running finishes inside its
           window, which is still open and mapped) and the interrupt remapper
           has drained, so none of its interrupts can still be delivered;
        3. **route its last faults**: both fault queues are drained; every
           record naming its PASID, those its last descriptors raised
           included, goes to ``t.faults``;
        4. **scrub**: every page of its domain is unpinned (pinned, mapped and
           unmap-requested bits) and its window's dirty log read clear (a
           device write can dirty only pages inside the window);
        5. **release**: its virtual devices (ADIs unbound from the tracker and
           given back, IMS entries cleared, and any interrupt they held
           pending with them, handles given back), its window (closed), its
           PASID, destination and domain; its memory refuses further access.

        Nothing is given back before the device is done with it, so a next
        tenant that gets the same domain, ADIs or handles gets nothing of
        this one's. The bytes stay in host memory until the domain is given
        out again, when :meth:`create_tenant` zeroes them before the device
        can reach them. The wait is what the descriptors in flight have left
        to run (up to a 1 MiB copy, about 130,000 cycles); the register work
        is a few hundred MMIO accesses.

        Raises
        ------
        DeviceTimeout
            A descriptor still in flight after the driver's ``timeout_cycles``;
            the tenant is then stopped but not released.
        """
        if self.tenants.get(getattr(t, "name", None)) is not t:
            raise HypervisorError(f"{t!r} is not a live tenant of this hypervisor")
        vdevs = list(self.vdcm.devices_of(t))
        adis = [a for vdev in vdevs for a in vdev.adis]
        self.containers.forget(t)
        await self.pf.hold(t, adis)
        for a in adis:
            await self.pf.adi_command(a, regmap.CMD_ADI_CMD_ABORT_MASK)
        await self.pf.quiesce_adis(adis)
        await self.poll_faults()
        await self.pf.unpin(t.domain, 0, self.caps.pages_per_domain)
        await self.pf.harvest(t.domain, t.pages)
        for vdev in vdevs:
            await self.vdcm.release(vdev)
        await self.pf.hold(t, ())
        await self.pf.set_domain(t.domain, 0, 0)
        t.memory.release()
        t.alive = False
        self.traps.forget(t)
        del self.tenants[t.name], self._by_dest[t.dest], self._by_pasid[t.pasid]
        self.log.info("%s %s destroyed: domain %d released", t.kind.value, t.name, t.domain)

    # -- hypercalls --------------------------------------------------------------------

    def _check_range(self, t, gfn, count, what):
        if self.tenants.get(t.name) is not t:
            raise HypercallError(f"{what} from {t.name}: the tenant was destroyed")
        if any(isinstance(x, bool) or not isinstance(x, int) for x in (gfn, count)):
            raise HypercallError(f"{what} from {t.name}: page and count must be integers, not "
                                 f"{gfn!r} and {count!r}")
        if count <= 0:
            raise HypercallError(f"{what} from {t.name}: count must be positive, not {count}")
        if gfn < 0 or gfn + count > t.pages or gfn + count < gfn:
            raise HypercallError(f"{what} from {t.name}: pages {gfn:#x}..{gfn + count - 1:#x} are not all "
                                 f"inside its {t.pages} pages of guest memory")

    async def hc_map(self, t, gfn, count=1):
        """Map hypercall: pin guest pages ``gfn .. gfn+count-1`` of tenant ``t``.

        Raises :class:`HypercallError`, having changed nothing, for pages
        outside the tenant's memory, a count that is not positive, arguments
        that are not integers, a destroyed tenant, or a range the device
        refuses. A refused call counts in ``t.hypercalls["refused"]``, a
        carried-out one in ``t.hypercalls["map"]``.
        """
        await self._hypercall(t, "map", gfn, count, self.pf.pin)

    async def hc_unmap(self, t, gfn, count=1):
        """Unmap hypercall: unpin (and unmap) pages at once, without waiting for the lazy unpin.

        Checked and counted as :meth:`hc_map` (``t.hypercalls["unmap"]``).
        """
        await self._hypercall(t, "unmap", gfn, count, self.pf.unpin)

    async def _hypercall(self, t, kind, gfn, count, range_op):
        try:
            self._check_range(t, gfn, count, f"{kind} hypercall")
            if not await range_op(t.domain, gfn, count):
                raise HypercallError(f"{kind} hypercall from {t.name}: the device refused pages {gfn:#x}+{count}")
        except HypercallError:
            t.hypercalls["refused"] += 1
            raise
        t.hypercalls[kind] += 1

    # -- lazy unpin ------------------------------------------------------------------------

    async def _bitmap_pages(self, bitmap, t):
        words = await self.pf.read_bitmap(bitmap, t.domain, -(-t.pages // WORD_PAGES))
        return {w * WORD_PAGES + b for w, v in enumerate(words) for b in range(WORD_PAGES)
                if v >> b & 1 and w * WORD_PAGES + b < t.pages}

    async def pinned_pages(self, t):
        """Guest pages of ``t`` pinned now (read from the tracker's PINNED bitmap)."""
        return await self._bitmap_pages(Bitmap.PINNED, t)

    async def lazy_unpin(self, t):
        """Reclaim the unmap-requested pages of ``t`` that the policy picks; their count.

        Each requested page is aged from the cycle its unmap was noted passing
        through the VDCM (:meth:`VirtualDevice.guest_map`), or, for a request
        the VDCM did not see, from this call, the first that finds it in the
        bitmap (:mod:`siov.sw.hv.unpin`).
        """
        now = self.bus.now()
        requested = await self._bitmap_pages(Bitmap.UNMAP, t)
        t.unmap_requested_at = {p: t.unmap_requested_at.get(p, now) for p in requested}
        pinned = await self.pinned_pages(t)
        chosen = sorted(self.unpin_policy.select(pinned, requested, now, t.unmap_requested_at))
        for start, count in _runs(chosen):
            await self.pf.reclaim(t.domain, start, count)
        for p in chosen:
            t.unmap_requested_at.pop(p, None)
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
