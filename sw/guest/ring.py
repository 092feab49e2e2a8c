"""A descriptor ring in guest memory and its doorbell: the fast path of submission.

As in a Linux driver's queue (corundum's mqnic.py is the shape): descriptors
are written into the ring in host memory at the producer index, and the new
producer index is written to the ADI's doorbell (its page's TAIL word). The
memory writes are the host's own and take no device time; the doorbell is one
MMIO write.

Ref: ``rtl/regs.rdl`` ADI_PAGES (TAIL, HEAD, STATE words of each ADI's page);
Intel DSA descriptor layout (Linux ``include/uapi/linux/idxd.h``).
"""

from ...rtl.cmd.dsa import DESC_BYTES
from ..model.adi import PAGE_HEAD, page_address
from ..model.dsa import Descriptor

__all__ = ["Ring", "RingFull"]


class RingFull(RuntimeError):
    """More descriptors posted than the ring has free entries."""


class Ring:
    """ADI ``adi``'s ring: ``size`` entries at guest address ``guest_addr``, host address ``host_addr``.

    The producer index (``tail``) is the driver's; the consumer index is the
    device's and is read from the ADI page's HEAD word.
    """

    def __init__(self, bus, adi, guest_addr, host_addr, size):
        if size < 2 or size & (size - 1):
            raise ValueError(f"Ring size must be a power of two of at least 2, not {size}")
        self.bus, self.adi = bus, adi
        self.guest_addr, self.host_addr, self.size = guest_addr, host_addr, size
        self.tail = 0
        self.head = 0       # last consumer index read from the device

    def free(self):
        """Entries that may be posted without overtaking the device (one stays empty)."""
        return self.size - 1 - (self.tail - self.head) % self.size

    async def read_head(self):
        self.head = await self.bus.read(page_address(self.adi, PAGE_HEAD))
        return self.head

    async def post(self, descriptors, doorbell=True):
        """Write ``descriptors`` (Descriptor or 64 raw bytes each) at the tail; ring the doorbell once.

        Raises :class:`RingFull` (nothing written) if they do not fit.
        """
        descriptors = list(descriptors)
        if len(descriptors) > self.free():
            await self.read_head()
            if len(descriptors) > self.free():
                raise RingFull(f"ADI {self.adi}: {len(descriptors)} descriptors, {self.free()} entries free")
        tail = self.tail
        for d in descriptors:
            raw = d.pack() if isinstance(d, Descriptor) else bytes(d)
            if len(raw) != DESC_BYTES:
                raise ValueError(f"a descriptor is {DESC_BYTES} bytes, not {len(raw)}")
            await self.bus.mem_write(self.host_addr + tail * DESC_BYTES, raw)
            tail = (tail + 1) % self.size
        self.tail = tail
        if doorbell:
            await self.ring_doorbell()

    async def ring_doorbell(self, tail=None):
        """Write the producer index (or ``tail``) to the ADI's doorbell."""
        await self.bus.write(page_address(self.adi), self.tail if tail is None else tail)
