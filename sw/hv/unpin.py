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

A policy sees the tenant's pinned and unmap-requested pages and the device
time, and returns the pages to reclaim.
"""

__all__ = ["NeverUnpin", "ThresholdUnpin", "LruUnpin", "POLICIES"]


class NeverUnpin:
    name = "never"

    def select(self, pinned, requested, now, first_seen):
        return set()


class ThresholdUnpin:
    name = "threshold"

    def __init__(self, max_pinned):
        if max_pinned < 0:
            raise ValueError(f"Threshold must not be negative, not {max_pinned}")
        self.max_pinned = max_pinned

    def select(self, pinned, requested, now, first_seen):
        return set(requested) if len(pinned) > self.max_pinned else set()


class LruUnpin:
    name = "lru"

    def __init__(self, age_cycles):
        if age_cycles < 0:
            raise ValueError(f"Age must not be negative, not {age_cycles}")
        self.age_cycles = age_cycles

    def select(self, pinned, requested, now, first_seen):
        return {p for p in requested if now - first_seen.get(p, now) >= self.age_cycles}


POLICIES = {"never": NeverUnpin, "threshold": ThresholdUnpin, "lru": LruUnpin}
