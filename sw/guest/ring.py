"""A descriptor ring in guest memory and its doorbell: the fast path of submission.

As in a Linux driver's queue (corundum's mqnic.py is the shape): descriptors
are written into the ring in host memory at the producer index, and the new
producer index is written to the ADI's doorbell (its page's TAIL word). The
memory writes are the host's own and take no device time; the doorbell is one
MMIO write.

The ring arithmetic (producer index, free entries, one entry always empty)
is here and only here. Where the descriptors are written and where the
doorbell is rung are the ring's two seams:

* a host program drives an ADI directly: ``Ring(bus, adi, guest_addr,
  host_addr, size)`` writes host memory and rings the ADI's page
  (:class:`AdiPortal`);
* the guest driver's queue (:class:`~siov.sw.guest.driver.Queue`) goes through
  its tenant's guest memory and its virtual device's BAR 0
  (:meth:`Ring.through`), so every access is checked and counted as the
  guest's.

Ref: ``rtl/regs.rdl`` ADI_PAGES (TAIL, HEAD, STATE words of each ADI's page);
Intel DSA descriptor layout (Linux ``include/uapi/linux/idxd.h``).
"""

from ...rtl.cmd.dsa import DESC_BYTES
from ..model.adi import PAGE_HEAD, PAGE_STATE, PAGE_TAIL, page_address
from ..model.dsa import Descriptor

__all__ = ["Ring", "RingFull", "AdiPortal"]


class RingFull(RuntimeError):
    """More descriptors posted than the ring has free entries."""


class AdiPortal:
    """ADI ``adi``'s doorbell page on ``bus``: TAIL (the doorbell), HEAD and STATE."""

    def __init__(self, bus, adi):
        self.bus, self.adi = bus, adi

    async def write_tail(self, tail):
        """Ring the doorbell: the new producer index."""
        await self.bus.write(page_address(self.adi, PAGE_TAIL), tail)

    async def read_head(self):
        """The device's consumer index."""
        return await self.bus.read(page_address(self.adi, PAGE_HEAD))

    async def read_state(self):
        """The ADI's state (:class:`~siov.rtl.regmap.AdiState` encoding)."""
        return await self.bus.read(page_address(self.adi, PAGE_STATE))


class _HostMemory:
    """Host memory by host physical address, as a ring's store."""

    def __init__(self, bus):
        self.bus = bus

    async def write(self, addr, data):
        await self.bus.mem_write(addr, data)


class Ring:
    """ADI ``adi``'s ring: ``size`` entries at guest address ``guest_addr``, host address ``host_addr``.

    The producer index (``tail``) is the driver's; the consumer index is the
    device's and is read from the portal's HEAD word.

    Attributes
    ----------
    portal
        Where the doorbell, HEAD and STATE are (``write_tail``, ``read_head``, ``read_state``).
    name : str
        What error messages call the ring.
    """

    def __init__(self, bus, adi, guest_addr, host_addr, size):
        self._setup(guest_addr, size, _HostMemory(bus), host_addr, AdiPortal(bus, adi), f"ADI {adi}")
        self.bus, self.adi, self.host_addr = bus, adi, host_addr

    @classmethod
    def through(cls, memory, guest_addr, size, portal, name):
        """A ring whose descriptors go through ``memory`` (``async write(addr, data)`` at
        ``guest_addr``, checked by it) and whose doorbell and HEAD are ``portal``'s."""
        ring = cls.__new__(cls)
        ring._setup(guest_addr, size, memory, guest_addr, portal, name)
        return ring

    def _setup(self, guest_addr, size, store, store_addr, portal, name):
        if size < 2 or size & (size - 1):
            raise ValueError(f"Ring size must be a power of two of at least 2, not {size}")
        self.guest_addr, self.size = guest_addr, size
        self.portal, self.name = portal, name
        self._store, self._store_addr = store, store_addr
        self.tail = 0
        self.head = 0       # last consumer index read from the device

    def free(self):
        """Entries that may be posted without overtaking the device (one stays empty)."""
        return self.size - 1 - (self.tail - self.head) % self.size

    async def read_head(self):
        """Read the device's consumer index (and keep it for :meth:`free`)."""
        self.head = await self.portal.read_head()
        return self.head

    def reset(self):
        """Both indices back to 0, as an ENABLE sets them in the ADI."""
        self.tail = self.head = 0

    async def post(self, descriptors, doorbell=True):
        """Write ``descriptors`` (Descriptor or 64 raw bytes each) at the tail; ring the doorbell once.

        Raises :class:`RingFull` (nothing written) if they do not fit.
        """
        raws = [d.pack() if isinstance(d, Descriptor) else bytes(d) for d in descriptors]
        for raw in raws:
            if len(raw) != DESC_BYTES:
                raise ValueError(f"a descriptor is {DESC_BYTES} bytes, not {len(raw)}")
        if len(raws) > self.free():
            await self.read_head()
            if len(raws) > self.free():
                raise RingFull(f"{self.name}: {len(raws)} descriptors, {self.free()} entries free")
        tail = self.tail
        for raw in raws:
            await self._store.write(self._store_addr + tail * DESC_BYTES, raw)
            tail = (tail + 1) % self.size
        self.tail = tail
        if doorbell:
            await self.ring_doorbell()

    async def ring_doorbell(self, tail=None):
        """Write the producer index (or ``tail``) to the doorbell."""
        await self.portal.write_tail(self.tail if tail is None else tail)
