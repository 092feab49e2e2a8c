"""The guest's frontend driver of a siov virtual device, the Python twin of a Linux driver.

Shaped like corundum's mqnic.py: the driver object opens the device and
reads what it offers (queues, ring sizes, largest transfer, interrupt
vectors) from its registers and configuration space rather than assuming
it; :class:`Queue` objects have async ``open``, ``enable``, ``drain`` and
``close``; rings and completion records come from the guest's memory
allocator; submitting is writing descriptors and then the producer index to
the doorbell, the fast path.

DMA mapping follows coIOMMU: :meth:`FrontendDriver.dma_map` asks the device
first (the fast-path guest map); only if the device refuses because a page
is not pinned does it make the map hypercall, and then maps again.
:meth:`FrontendDriver.dma_unmap` is the fast path alone: the hypervisor
unpins lazily.

Every completion status becomes an exception that says what happened
(:class:`DescriptorError` and its subclasses).

Ref: Intel DSA completion status codes (Linux include/uapi/linux/idxd.h);
``rtl/regs.rdl`` GUEST_STATUS results.
"""

from ...rtl.cmd.dsa import COMPLETION_BYTES, DESC_BYTES, Flag, Status
from ...rtl.dma.defs import PAGE_SHIFT, GuestResult
from ..model.dsa import CompletionRecord, Descriptor
from ..hv import vdcm as bar

__all__ = ["FrontendDriver", "Queue", "DescriptorError", "PageFaultError", "DmaMapError",
           "QueueError", "QueueFull", "Completion", "STATUS_ERRORS"]

PAGE = 1 << PAGE_SHIFT
#: DSA_COMP_STATUS_WRITE: bit 7 of the status byte says a page fault was on a write.
STATUS_WRITE = 0x80


class DescriptorError(RuntimeError):
    """A descriptor completed with an error status."""

    def __init__(self, message, record):
        super().__init__(message)
        self.record = record


class PageFaultError(DescriptorError):
    """The device could not translate an address of the descriptor."""


class DmaMapError(RuntimeError):
    """The device or the hypervisor refused a DMA map or unmap."""


class QueueError(RuntimeError):
    """A queue used in a state that does not allow it, or configured badly."""


class QueueFull(QueueError):
    """More descriptors than the ring has free entries; nothing was posted."""


def _message(status, rec, driver):
    """What ``status`` means for the descriptor whose record is ``rec``, in words.

    Every member of :class:`~siov.rtl.cmd.dsa.Status` has its own entry (a
    test checks it), so no status reaches the guest as a bare number.
    Ref: ``enum dsa_completion_status`` (idxd.h); WAIT_TIMEOUT is the
    project's, ``rtl/regs.rdl`` ENG.WAIT_TIMEOUT.
    """
    if status is Status.PAGE_FAULT:
        side = "write" if rec.status_write else "read"
        return (f"page fault on a {side} at device address {rec.fault_addr:#x} "
                f"after {rec.bytes_completed} bytes")
    return {
        Status.NONE: "the completion record holds no status (0x00): the device did not report an outcome",
        Status.SUCCESS: f"completed successfully ({rec.bytes_completed} bytes)",
        Status.BAD_OPCODE: "the device does not implement the descriptor's opcode",
        Status.INVALID_FLAGS: f"invalid or reserved flags {rec.invalid_flags:#x}",
        Status.XFER_SIZE: f"transfer size is zero or larger than the device's largest transfer "
                          f"({driver.max_xfer} bytes)",
        Status.ADDR_ALIGN: f"an address is not aligned as the device requires (completion record: "
                           f"{driver.cr_align} bytes; memory fill destination: {driver.fill_align} bytes)",
        Status.INVALID_INT_HANDLE: "the interrupt handle is beyond the device's interrupt message store",
        Status.HW_ERROR: f"host memory answered a bus error after {rec.bytes_completed} bytes",
        Status.WAIT_TIMEOUT: "the WAIT's condition (memory & mask) == value did not hold within the "
                             "device's WAIT timeout (ENG.WAIT_TIMEOUT cycles after its first check): "
                             "nothing signalled the semaphore in time",
    }[status]


#: Status -> exception class for the statuses that are errors.
STATUS_ERRORS = {s: (PageFaultError if s is Status.PAGE_FAULT else DescriptorError)
                 for s in Status if s is not Status.SUCCESS}


class Completion:
    """A submitted descriptor: where its record lands, and its interrupt vector if it asked for one."""

    def __init__(self, queue, record_addr, vector):
        self.queue, self.record_addr, self.vector = queue, record_addr, vector
        self.epoch = queue.epoch


class Queue:
    """One submission queue of the virtual device: a ring in guest memory and its doorbell."""

    def __init__(self, driver, index):
        self.driver, self.index = driver, index
        self.size = 0
        self.ring = self.records = None
        self.tail = 0
        self.slot = 0
        self.last_head = 0
        self.epoch = 0           # bumped when the ring is reset: older tickets will never complete
        self.opened = False

    def _reg(self, reg):
        return self.driver.vdev.ctrl + bar.QUEUE_BASE + bar.QUEUE_STRIDE * self.index + reg

    async def open(self, size):
        """Allocate a ring of ``size`` descriptors and a page of completion records."""
        d = self.driver
        if self.opened:
            raise QueueError(f"queue {self.index} is already open")
        if not d.ring_min <= size <= d.ring_max or size & (size - 1):
            raise QueueError(f"a ring of {size} entries: the device takes a power of two "
                             f"from {d.ring_min} to {d.ring_max}")
        self.size = size
        self.ring = d.memory.alloc(size * DESC_BYTES)
        self.records = d.memory.alloc(self._records_bytes())
        await d.memory.write(self.records, bytes(self._records_bytes()))
        await d.dma_map(self.ring, size * DESC_BYTES)
        await d.dma_map(self.records, self._records_bytes())
        await d.vdev.mmio_write(self._reg(bar.RING_LO), self.ring & 0xFFFF_FFFF)
        await d.vdev.mmio_write(self._reg(bar.RING_HI), self.ring >> 32)
        await d.vdev.mmio_write(self._reg(bar.RING_SIZE), size)
        self.tail = self.slot = self.last_head = 0
        self.opened = True

    async def enable(self):
        self._check_open()
        await self.driver.vdev.mmio_write(self._reg(bar.QUEUE_CTRL), 1)
        state, error = await self.status()
        if state != 1:
            raise QueueError(f"queue {self.index} did not enable: state {state}, error {error}")

    async def status(self):
        """``(state, error code)`` of the queue's ADI."""
        v = await self.driver.vdev.mmio_read(self._reg(bar.QUEUE_STATUS))
        return v & 3, v >> 4 & 0xF

    async def drain(self, timeout_cycles=1_000_000):
        """Stop taking new work and wait until everything posted has completed."""
        self._check_open()
        await self.driver.vdev.mmio_write(self._reg(bar.QUEUE_CTRL), 2)
        waited = 0
        while (await self.status())[0] == 2:
            if waited > timeout_cycles:
                raise QueueError(f"queue {self.index} did not drain in {timeout_cycles} cycles")
            await self.driver.bus.wait_cycles(50)
            waited += 50

    async def reset_error(self):
        await self.driver.vdev.mmio_write(self._reg(bar.QUEUE_CTRL), 8)

    async def close(self):
        """Abort what is left, unmap and free the ring and records."""
        self._check_open()
        d = self.driver
        await d.vdev.mmio_write(self._reg(bar.QUEUE_CTRL), 4)
        await d.dma_unmap(self.ring, self.size * DESC_BYTES)
        await d.dma_unmap(self.records, self._records_bytes())
        d.memory.free(self.ring)
        d.memory.free(self.records)
        self.opened = False

    def _records_bytes(self):
        """One completion record per ring entry, in whole pages."""
        return max(PAGE, -(-self.size * COMPLETION_BYTES // PAGE) * PAGE)

    async def head(self):
        """The device's consumer index (a fast-path read of the portal)."""
        return await self.driver.vdev.mmio_read(bar.PORTAL * self.index + bar.PAGE_HEAD)

    async def free(self):
        """Entries that can be posted now (one always stays empty)."""
        return self.size - 1 - (self.tail - await self.head()) % self.size

    async def recover(self):
        """After an error: reset it and enable the queue again, with empty ring pointers."""
        await self.reset_error()
        await self.enable()
        self.tail = self.last_head = 0
        self.epoch += 1

    async def post_raw(self, desc):
        """Post ``desc`` exactly as given, PASID and all, and ring the doorbell: what a
        misbehaving guest can do to its own ring. Returns nothing to wait on."""
        self._check_open()
        await self.driver.memory.write(self.ring + self.tail * DESC_BYTES, desc.pack())
        self.tail = (self.tail + 1) % self.size
        await self.driver.vdev.mmio_write(bar.PORTAL * self.index, self.tail)

    def _check_epoch(self, ticket):
        if ticket.epoch != self.epoch:
            raise QueueError(f"queue {self.index} was reset after an error: the descriptor will not complete")

    def _check_open(self):
        if not self.opened:
            raise QueueError(f"queue {self.index} is not open")

    async def submit(self, descriptors, interrupt=False):
        """Post ``descriptors`` (each gets a completion record; with ``interrupt``, an
        interrupt on this queue's vector) and ring the doorbell once. Returns a
        :class:`Completion` per descriptor."""
        self._check_open()
        d = self.driver
        descriptors = list(descriptors)
        if len(descriptors) >= self.size:
            raise QueueError(f"{len(descriptors)} descriptors do not fit a ring of {self.size}")
        if len(descriptors) > self.size - 1 - (self.tail - self.last_head) % self.size:
            self.last_head = await self.head()
            free = self.size - 1 - (self.tail - self.last_head) % self.size
            if len(descriptors) > free:
                raise QueueFull(f"queue {self.index}: {len(descriptors)} descriptors, {free} entries free")
        tickets = []
        tail = self.tail
        for desc in descriptors:
            desc = Descriptor.unpack(desc.pack())
            desc.pasid = d.pasid
            addr = self.records + COMPLETION_BYTES * (self.slot % self.size)
            self.slot += 1
            await d.memory.write(addr, bytes(COMPLETION_BYTES))
            desc.flags |= Flag.CRAV | Flag.RCR
            desc.completion_addr = addr
            vector = None
            if interrupt:
                desc.flags |= Flag.RCI
                desc.int_handle = d.handles[self.index % len(d.handles)]
                vector = d.vectors[self.index % len(d.vectors)]
            await d.memory.write(self.ring + tail * DESC_BYTES, desc.pack())
            tail = (tail + 1) % self.size
            tickets.append(Completion(self, addr, vector))
        self.tail = tail
        await d.vdev.mmio_write(bar.PORTAL * self.index, tail)
        return tickets

    async def wait(self, ticket, timeout_cycles=1_000_000, poll_cycles=20):
        """The completion record of ``ticket``; raises the error its status names."""
        d = self.driver
        waited = 0
        while ticket.vector is not None:
            self._check_epoch(ticket)
            if await d.tenant.vic.wait(ticket.vector, min(1000, timeout_cycles - waited)):
                break
            waited += 1000
            if waited >= timeout_cycles:
                raise QueueError(f"no interrupt on vector {ticket.vector:#x} in {timeout_cycles} cycles")
        while True:
            raw = await d.memory.read(ticket.record_addr, COMPLETION_BYTES)
            if raw[0]:
                break
            self._check_epoch(ticket)
            if waited >= timeout_cycles:
                raise QueueError(f"queue {self.index}: no completion in {timeout_cycles} cycles")
            await d.bus.wait_cycles(poll_cycles)
            waited += poll_cycles
        rec = CompletionRecord.unpack(raw)
        status = Status(rec.status)
        if status is not Status.SUCCESS:
            raise STATUS_ERRORS[status](f"queue {self.index}: {_message(status, rec, d)}", rec)
        return rec


class FrontendDriver:
    """The driver of one virtual device in its guest.

    Parameters
    ----------
    vdev : VirtualDevice
        The device as the guest sees it (BAR 0, configuration space, hypercalls).
    """

    def __init__(self, vdev):
        self.vdev = vdev
        self.tenant = vdev.tenant
        self.memory = vdev.tenant.memory
        self.bus = vdev.bus
        self.pasid = vdev.tenant.pasid
        self.queues = []
        self.stats = {"maps": 0, "map_hypercalls": 0, "unmaps": 0}

    async def open(self):
        """Read the device's capabilities and make its queue objects."""
        caps = await self.vdev.mmio_read(self.vdev.ctrl + bar.CAPS)
        self.num_queues = caps & 0xFF
        self.ring_max, self.ring_min = 1 << (caps >> 8 & 0xFF), 1 << (caps >> 16 & 0xFF)
        self.max_xfer = await self.vdev.mmio_read(self.vdev.ctrl + bar.MAX_XFER_REG)
        align = await self.vdev.mmio_read(self.vdev.ctrl + bar.ALIGN)
        self.cr_align, self.fill_align = align & 0xFF, align >> 8 & 0xFF
        nvec = await self.vdev.mmio_read(self.vdev.ctrl + bar.NUM_VECTORS)
        if nvec != self.vdev.config.msix_table_size:
            raise RuntimeError(f"device reports {nvec} vectors, its MSI-X capability "
                               f"{self.vdev.config.msix_table_size}")
        self.handles = []
        for k in range(nvec):
            await self.vdev.mmio_write(self.vdev.ctrl + bar.INT_HANDLE_SEL, k)
            self.handles.append(await self.vdev.mmio_read(self.vdev.ctrl + bar.INT_HANDLE))
        self.vectors = list(self.vdev.vectors)
        self.queues = [Queue(self, i) for i in range(self.num_queues)]
        return self

    async def dma_map(self, addr, nbytes):
        """Make ``nbytes`` of guest memory at ``addr`` reachable by the device."""
        for page in self.memory.pages_of(addr, nbytes):
            self.stats["maps"] += 1
            res = await self.vdev.guest_map(page)
            if res is GuestResult.NOT_PINNED:
                self.stats["map_hypercalls"] += 1
                await self.vdev.hypercall_map(page)
                res = await self.vdev.guest_map(page)
            if res is not GuestResult.OK:
                raise DmaMapError(f"map of guest page {page:#x}: the device answered {res.name}")

    async def dma_unmap(self, addr, nbytes):
        """Tell the device that ``nbytes`` at ``addr`` are no longer for DMA (fast path only)."""
        for page in self.memory.pages_of(addr, nbytes):
            self.stats["unmaps"] += 1
            res = await self.vdev.guest_map(page, unmap=True)
            if res is not GuestResult.OK:
                raise DmaMapError(f"unmap of guest page {page:#x}: the device answered {res.name}"
                                  + (" (it was not mapped)" if res is GuestResult.NOT_MAPPED else ""))
