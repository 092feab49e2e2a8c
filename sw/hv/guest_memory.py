"""A VM's or container's memory: its DMA domain's window of host memory, and an allocator.

Guest physical address ``g`` of a tenant lives at host physical address
``host_base + g``, for ``g`` below ``pages * 4 KiB``; this is the window the
DMA tracker translates for the tenant's domain (DMA.DOM_BASE / DOM_LIMIT),
so the device and the guest see the same bytes at the same guest address.

The allocator hands out page-aligned, page-granular buffers (a guest
driver's DMA-able memory: rings, completion records, data), first fit over
a free list, and takes them back.
"""

from ...rtl.dma.defs import PAGE_SHIFT
from .errors import GuestAddressError, OutOfGuestMemory

__all__ = ["GuestMemory", "OutOfGuestMemory", "GuestAddressError", "HOST_BASE", "DOMAIN_SPAN", "window_base"]

PAGE = 1 << PAGE_SHIFT
#: Host memory layout of the hypervisor, the host programs and the system testbench: domain
#: ``d``'s window starts at ``HOST_BASE + d * DOMAIN_SPAN`` (4 MiB each, below 256 MiB for 64
#: domains, the host memory the rtl backend models).
HOST_BASE = 0x0100_0000
DOMAIN_SPAN = 0x0040_0000


def window_base(dom):
    """Host physical address of guest address 0 of domain ``dom``."""
    return HOST_BASE + dom * DOMAIN_SPAN


#: Bytes the scrub writes at a time (host memory writes; it bounds the buffer, not the cost).
SCRUB_CHUNK = 64 * PAGE


class GuestMemory:
    """``pages`` pages of guest memory at host address ``host_base``, accessed over ``bus``.

    Parameters
    ----------
    bus : Bus
    host_base : int
        Host physical address of guest page 0 (4 KiB aligned).
    pages : int
        Size in pages.
    reserved : int
        Pages at the bottom the allocator never hands out.
    """

    def __init__(self, bus, host_base, pages, reserved=0):
        if host_base % PAGE or pages <= 0:
            raise ValueError(f"Guest memory needs a 4 KiB aligned base and a size, not {host_base:#x}, {pages}")
        self.bus, self.host_base, self.pages = bus, host_base, pages
        self.size = pages * PAGE
        self._free = [(reserved, pages - reserved)] if pages > reserved else []
        self._allocated = {}
        self.released = False

    def contains(self, addr, n=1):
        """Whether ``n`` bytes at guest address ``addr`` are inside the guest's memory."""
        return 0 <= addr and n >= 0 and addr + n <= self.size

    def release(self):
        """The tenant is gone: from now on every access raises :class:`GuestAddressError`, so a
        stale reference cannot reach the window once it belongs to someone else."""
        self.released = True

    async def scrub(self):
        """Zero the whole window.

        The hypervisor does it before it gives a domain's window to a new
        tenant, so no byte of an earlier owner is readable. It goes through
        the host's own access to host memory (:meth:`Bus.mem_write`), which
        takes no device time: it costs host time only, proportional to the
        window's size, and the device sees nothing of it.
        """
        for off in range(0, self.size, SCRUB_CHUNK):
            await self.bus.mem_write(self.host_base + off, bytes(min(SCRUB_CHUNK, self.size - off)))

    def host(self, addr, n=1):
        """Host physical address of guest address ``addr`` (``n`` bytes must fit)."""
        if self.released:
            raise GuestAddressError(f"guest memory at {self.host_base:#x} was released with its tenant")
        if not self.contains(addr, n):
            raise GuestAddressError(f"guest range {addr:#x}+{n:#x} is outside the guest's "
                                    f"{self.size:#x} bytes")
        return self.host_base + addr

    async def read(self, addr, n):
        return await self.bus.mem_read(self.host(addr, n), n)

    async def write(self, addr, data):
        await self.bus.mem_write(self.host(addr, len(data)), bytes(data))

    def alloc(self, nbytes):
        """A guest address of ``nbytes`` (rounded up to whole pages), page aligned."""
        if nbytes <= 0:
            raise ValueError(f"Allocation size must be positive, not {nbytes}")
        need = -(-nbytes // PAGE)
        for i, (first, count) in enumerate(self._free):
            if count >= need:
                self._free[i] = (first + need, count - need)
                if not self._free[i][1]:
                    del self._free[i]
                self._allocated[first] = need
                return first * PAGE
        raise OutOfGuestMemory(f"no {need} free pages in a guest of {self.pages}")

    def free(self, addr):
        """Give back the allocation at guest address ``addr``."""
        first = addr // PAGE
        if addr % PAGE or first not in self._allocated:
            raise GuestAddressError(f"guest address {addr:#x} was not allocated")
        need = self._allocated.pop(first)
        self._free.append((first, need))
        self._free.sort()
        merged = []
        for f, c in self._free:
            if merged and merged[-1][0] + merged[-1][1] == f:
                merged[-1] = (merged[-1][0], merged[-1][1] + c)
            else:
                merged.append((f, c))
        self._free = merged

    def pages_of(self, addr, nbytes):
        """Guest page numbers that ``nbytes`` at ``addr`` touch."""
        self.host(addr, nbytes)
        return range(addr // PAGE, (addr + max(nbytes, 1) - 1) // PAGE + 1)
