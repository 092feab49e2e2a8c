"""Lazy-unpin policies: when the hypervisor unpins pages a guest has unmapped.

A guest's unmap is fast path only: the device clears the page's mapped bit
and sets its unmap-requested bit (coIOMMU's DMA bitmap). The pages stay
pinned until the hypervisor reclaims them (the tracker's RECLAIM range
operation, which unpins only pages still unmap-requested and not mapped
again). When to reclaim is a policy, as in coIOMMU (ATC'20) and crosvm's
coiommu unpin worker:

* :class:`NeverUnpin`: pages stay pinned until the tenant goes;
* :class:`ThresholdUnpin`: reclaim every unmap-requested page once the
  tenant has more than ``max_pinned`` pages pinned;
* :class:`LruUnpin`: reclaim a page once its unmap request is at least
  ``age_cycles`` of device time old (a page mapped again in between loses
  its request and is kept: recently used pages stay pinned).

**Where a request's age comes from.** The device keeps one unmap-requested
bit per page and no time, so the hypervisor can know when a request was
made only if it sees it made. It does today: the device's guest-map
registers are in its privileged window, so a guest's fast-path map or unmap
passes through the VDCM (:meth:`~siov.sw.hv.vdcm.VirtualDevice.guest_map`),
which notes the device cycle of every accepted unmap on the tenant
(:meth:`~siov.sw.hv.tenant.Tenant.note_unmap`) and forgets it when the page
is mapped again. The age is counted from that cycle. A request the VDCM did
not pass (a host program's own :meth:`PfDriver.guest_map`, or, once the
guest-map registers move into the ADI pages as ``rtl/regs.rdl`` plans, every
request) is aged from the first :meth:`Hypervisor.lazy_unpin` that finds it
in the bitmap: a late estimate by at most the time between two calls, which
then keeps pages pinned longer, never shorter, than the policy asks.

A policy sees the tenant's pinned and unmap-requested pages, the device
time and the cycle each request was made (``requested_at``), and returns the
pages to reclaim. Reclaiming is always safe: the tracker's RECLAIM skips a
page the guest mapped again meanwhile.
"""

__all__ = ["NeverUnpin", "ThresholdUnpin", "LruUnpin", "POLICIES"]


class NeverUnpin:
    """Pages stay pinned until the tenant goes."""
    name = "never"

    def select(self, pinned, requested, now, requested_at):
        """Nothing."""
        return set()


class ThresholdUnpin:
    """Reclaim every unmap-requested page once more than ``max_pinned`` pages are pinned."""
    name = "threshold"

    def __init__(self, max_pinned):
        if max_pinned < 0:
            raise ValueError(f"Threshold must not be negative, not {max_pinned}")
        self.max_pinned = max_pinned

    def select(self, pinned, requested, now, requested_at):
        """All requested pages, if the tenant holds more than ``max_pinned`` pinned."""
        return set(requested) if len(pinned) > self.max_pinned else set()


class LruUnpin:
    """Reclaim a page once its unmap request is ``age_cycles`` old (see the module for the age)."""
    name = "lru"

    def __init__(self, age_cycles):
        if age_cycles < 0:
            raise ValueError(f"Age must not be negative, not {age_cycles}")
        self.age_cycles = age_cycles

    def select(self, pinned, requested, now, requested_at):
        """The requested pages whose request is at least ``age_cycles`` old at ``now``."""
        return {p for p in requested if now - requested_at.get(p, now) >= self.age_cycles}


POLICIES = {"never": NeverUnpin, "threshold": ThresholdUnpin, "lru": LruUnpin}
