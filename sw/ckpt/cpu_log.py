"""Guest pages the guest's own CPU wrote, found by comparing page hashes.

The device's dirty log (the DMA tracker's, harvested in the VFIO format) sees
only what the device writes. What the guest's vCPUs write a real VMM learns
from its own dirty log (KVM's); this stack's guests write host memory
directly, so the checkpointer compares each page's hash with the one it had
at the last call, as gMig's hash-based tracking does. It reads host memory,
which takes no device time, and costs host time in proportion to the guest's
size.
"""

import hashlib

from ...rtl.dma.defs import PAGE_SHIFT

__all__ = ["PageHashLog"]

PAGE = 1 << PAGE_SHIFT


class PageHashLog:
    """The pages of ``memory`` (a :class:`~siov.sw.hv.guest_memory.GuestMemory`) that changed
    since the last call; awaited as ``await log()``, the shape
    :attr:`~siov.sw.hv.migration.DeviceMigration.cpu_dirty` takes. The first call (or
    :meth:`start`) takes the baseline and names no page."""

    def __init__(self, memory):
        self.memory = memory
        self._hashes = None

    async def _hash_all(self):
        data = await self.memory.read(0, self.memory.pages * PAGE)
        return [hashlib.blake2b(data[p * PAGE:(p + 1) * PAGE], digest_size=16).digest()
                for p in range(self.memory.pages)]

    async def start(self):
        """Take the baseline: every page as it is now."""
        self._hashes = await self._hash_all()

    async def __call__(self):
        now = await self._hash_all()
        if self._hashes is None:
            self._hashes = now
            return set()
        changed = {p for p, (a, b) in enumerate(zip(self._hashes, now)) if a != b}
        self._hashes = now
        return changed
