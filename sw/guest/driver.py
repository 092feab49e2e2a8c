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

**Errors.** Everything this driver refuses raises a
:class:`GuestDriverError`:

* :class:`DescriptorError` (:class:`PageFaultError`): a descriptor completed
  with an error status; the record is attached;
* :class:`DmaMapError`: a DMA map or unmap refused, whoever refused it: an
  address range outside the guest's memory, the hypervisor's map hypercall,
  or the device (a page not mapped, on unmap);
* :class:`QueueError` (:class:`QueueFull`): a queue used in a state that
  does not allow it (not open, its ADI not ENABLED, a ticket from before a
  reset), configured badly, or a wait that timed out.

What the virtual device itself refuses (a register it does not have) is the
hypervisor layer's :class:`~siov.sw.hv.errors.VirtualMmioError`.

The driver speaks to the virtual device in the VDCM's own names
(:mod:`siov.sw.hv.vdcm`: the BAR 0 offsets, :class:`~siov.sw.hv.vdcm.QueueControl`)
and decodes the queue status with the register map's
:class:`~siov.rtl.regmap.AdiState` and :class:`~siov.rtl.regmap.AdiError`.

Ref: Intel DSA completion status codes (Linux include/uapi/linux/idxd.h);
``rtl/regs.rdl`` GUEST_STATUS results and CMD.ADI_STATUS; PCI capability
list and MSI-X Message Control (Linux include/uapi/linux/pci_regs.h).
"""

from ...rtl.cmd.dsa import COMPLETION_BYTES, DESC_BYTES, Flag, Status
from ...rtl.dma.defs import PAGE_SHIFT, GuestResult
from ...rtl.regmap import AdiError, AdiState
from ..model.dsa import CompletionRecord, Descriptor
from ..model.irq import msi_address
from ..hv import config_space as pci
from ..hv import vdcm as bar
from ..hv.errors import GuestAddressError, HypercallError
from ..bus import BusLock
from ..hv.vdcm import QueueControl
from .ring import Ring, RingFull

__all__ = ["FrontendDriver", "Queue", "GuestDriverError", "DescriptorError", "PageFaultError", "DmaMapError",
           "QueueError", "QueueFull", "Completion", "STATUS_ERRORS", "WAIT_ON"]

PAGE = 1 << PAGE_SHIFT
#: DSA_COMP_STATUS_WRITE: bit 7 of the status byte says a page fault was on a write.
STATUS_WRITE = 0x80
#: What :meth:`Queue.wait` can wait for.
WAIT_ON = ("record", "interrupt")


class GuestDriverError(Exception):
    """Base of every error the guest driver raises."""


#: With a watched record, the longest a wait goes without checking the queue's epoch and its timeout.
WATCH_RECHECK = 1000


class DescriptorError(GuestDriverError):
    """A descriptor completed with an error status."""

    def __init__(self, message, record):
        super().__init__(message)
        self.record = record


class PageFaultError(DescriptorError):
    """The device could not translate an address of the descriptor."""


class DmaMapError(GuestDriverError):
    """A DMA map or unmap refused: outside the guest's memory, by the hypervisor, or by the device."""


class QueueError(GuestDriverError):
    """A queue used in a state that does not allow it, configured badly, or a wait that timed out."""


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


class _QueuePortal:
    """Queue ``index``'s doorbell page in the virtual device's BAR 0 (the fast path)."""

    def __init__(self, vdev, index):
        self.vdev, self.base = vdev, bar.PORTAL * index

    async def write_tail(self, tail):
        await self.vdev.mmio_write(self.base + bar.PAGE_TAIL, tail)

    async def read_head(self):
        return await self.vdev.mmio_read(self.base + bar.PAGE_HEAD)

    async def read_state(self):
        return await self.vdev.mmio_read(self.base + bar.PAGE_STATE)


class Queue:
    """One submission queue of the virtual device: a :class:`~siov.sw.guest.ring.Ring` in guest
    memory, rung through the device's BAR 0, and a page of completion records.

    Attributes
    ----------
    ring : Ring or None
        The ring while the queue is open (its ``guest_addr``, ``size``, ``tail``).
    records : int
        Guest address of the completion records.
    epoch : int
        Bumped when the ring is reset after an error: older tickets will never complete.

    Posting (:meth:`submit`, :meth:`post_raw`) and the commands that reset the
    ring's pointers (:meth:`enable`, :meth:`recover`) hold the queue's lock: each
    is several bus accesses, and a post that interleaved with a recovery (its
    state check before the ENABLE, its doorbell after it, with the driver's tail
    from before the ring was reset) would leave the device's tail and the
    driver's apart, so that nothing posted after it ever ran.
    """

    def __init__(self, driver, index):
        self.driver, self.index = driver, index
        self.ring = None
        self.records = None
        self.slot = 0
        self.epoch = 0
        self.opened = False
        self._lock = BusLock(driver.bus)

    @property
    def size(self):
        """Entries of the ring (0 while the queue is closed)."""
        return self.ring.size if self.ring else 0

    @property
    def tail(self):
        """The producer index: where the next descriptor goes."""
        return self.ring.tail if self.ring else 0

    def _reg(self, reg):
        return self.driver.vdev.ctrl + bar.queue_register(self.index, reg)

    async def open(self, size):
        """Allocate a ring of ``size`` descriptors and a page of completion records."""
        d = self.driver
        if self.opened:
            raise QueueError(f"queue {self.index} is already open")
        if not d.ring_min <= size <= d.ring_max or size & (size - 1):
            raise QueueError(f"a ring of {size} entries: the device takes a power of two "
                             f"from {d.ring_min} to {d.ring_max}")
        ring_addr = d.memory.alloc(size * DESC_BYTES)
        self.ring = Ring.through(d.memory, ring_addr, size, _QueuePortal(d.vdev, self.index), f"queue {self.index}")
        self.records = d.memory.alloc(self._records_bytes())
        await d.memory.write(self.records, bytes(self._records_bytes()))
        await d.dma_map(ring_addr, size * DESC_BYTES)
        await d.dma_map(self.records, self._records_bytes())
        await d.vdev.mmio_write(self._reg(bar.RING_LO), ring_addr & 0xFFFF_FFFF)
        await d.vdev.mmio_write(self._reg(bar.RING_HI), ring_addr >> 32)
        await d.vdev.mmio_write(self._reg(bar.RING_SIZE), size)
        self.slot = 0
        self.opened = True

    async def _control(self, ctrl):
        await self.driver.vdev.mmio_write(self._reg(bar.QUEUE_CTRL), ctrl)

    async def enable(self):
        """Enable the queue (its ring starts empty); :class:`QueueError` if the device refused."""
        async with self._lock:
            await self._enable()

    async def _enable(self):
        self._check_open()
        await self._control(QueueControl.ENABLE)
        state, error = await self.status()
        if state is not AdiState.ENABLED:
            raise QueueError(f"queue {self.index} did not enable: {_describe(state, error)}")
        self.ring.reset()

    async def status(self):
        """``(state, error code)`` of the queue's ADI, as :class:`AdiState` and :class:`AdiError`
        (a trapped read)."""
        v = await self.driver.vdev.mmio_read(self._reg(bar.QUEUE_STATUS))
        return AdiState(v & 3), AdiError(v >> 4 & 0xF)

    async def engine(self):
        """The device engine that runs this queue's descriptors (a trapped read)."""
        return await self.driver.vdev.mmio_read(self._reg(bar.QUEUE_ENGINE))

    async def drain(self, timeout_cycles=1_000_000):
        """Stop taking new work and wait until everything posted has completed."""
        self._check_open()
        await self._control(QueueControl.DRAIN)
        waited = 0
        while (await self.status())[0] is AdiState.DRAINING:
            if waited > timeout_cycles:
                raise QueueError(f"queue {self.index} did not drain in {timeout_cycles} cycles")
            await self.driver.bus.wait_cycles(50)
            waited += 50

    async def reset_error(self):
        """Take the queue's ADI out of ERROR (to DISABLED; :meth:`recover` also enables it)."""
        await self._control(QueueControl.RESET_ERROR)

    async def close(self):
        """Abort what is left, unmap and free the ring and records.

        The abort completes only once no descriptor of the queue is in flight
        (the VDCM's queue control, as a DSA's Abort WQ): a descriptor already
        running finishes first, so its completion record cannot land in pages
        the guest gives to something else after the close.
        """
        self._check_open()
        d = self.driver
        await self._control(QueueControl.ABORT)
        await d.dma_unmap(self.ring.guest_addr, self.size * DESC_BYTES)
        await d.dma_unmap(self.records, self._records_bytes())
        d.memory.free(self.ring.guest_addr)
        d.memory.free(self.records)
        self.ring = None
        self.opened = False

    def _records_bytes(self):
        """One completion record per ring entry, in whole pages."""
        return max(PAGE, -(-self.size * COMPLETION_BYTES // PAGE) * PAGE)

    async def head(self):
        """The device's consumer index (a fast-path read of the portal)."""
        self._check_open()
        return await self.ring.read_head()

    async def free(self):
        """Entries that can be posted now (one always stays empty)."""
        await self.head()
        return self.ring.free()

    async def recover(self):
        """After an error: reset it and enable the queue again, with empty ring pointers."""
        async with self._lock:
            await self.reset_error()
            self.epoch += 1
            await self._enable()

    async def post_raw(self, desc):
        """Post ``desc`` exactly as given, PASID and all, and ring the doorbell: what a
        misbehaving guest can do to its own ring. Nothing is checked, not even the queue's
        state. Returns nothing to wait on."""
        self._check_open()
        async with self._lock:
            await self.ring.post([desc])

    def _check_epoch(self, ticket):
        if ticket.epoch != self.epoch:
            raise QueueError(f"queue {self.index} was reset after an error: the descriptor will not complete")

    def _check_open(self):
        if not self.opened:
            raise QueueError(f"queue {self.index} is not open")

    async def _check_enabled(self):
        """:class:`QueueError` unless the ADI is ENABLED: in any other state the device drops
        the doorbell (rtl/regs.rdl ADI_PAGES), so the work would silently never run. The state
        is a fast-path read; the error code, only read when there is one, a trapped read."""
        state = AdiState(await self.ring.portal.read_state() & 3)
        if state is AdiState.ENABLED:
            return
        error = (await self.status())[1] if state is AdiState.ERROR else AdiError.NONE
        hint = " (recover() resets it)" if state is AdiState.ERROR else " (enable() it first)"
        raise QueueError(f"queue {self.index} is {_describe(state, error)}: the device would drop the "
                         f"doorbell, so nothing was posted{hint}")

    async def submit(self, descriptors, interrupt=False):
        """Post ``descriptors`` (each gets a completion record; with ``interrupt``, an
        interrupt on this queue's vector) and ring the doorbell once. Returns a
        :class:`Completion` per descriptor.

        Raises :class:`QueueError` (nothing posted) if the queue is not open or
        its ADI is not ENABLED (the error names the state and error code), and
        :class:`QueueFull` if the ring has too few free entries.
        """
        self._check_open()
        descriptors = list(descriptors)
        if len(descriptors) >= self.size:
            raise QueueError(f"{len(descriptors)} descriptors do not fit a ring of {self.size}")
        async with self._lock:
            return await self._submit(descriptors, interrupt)

    async def _submit(self, descriptors, interrupt):
        await self._check_enabled()
        prepared = [self._prepare(desc, k, interrupt) for k, desc in enumerate(descriptors)]
        try:
            await self.ring.post([desc for desc, _ in prepared], doorbell=False)
        except RingFull as e:
            raise QueueFull(f"queue {self.index}: {len(descriptors)} descriptors, {self.ring.free()} "
                            f"entries free") from e
        for _, ticket in prepared:
            await self.driver.memory.write(ticket.record_addr, bytes(COMPLETION_BYTES))
        self.slot += len(prepared)
        await self.ring.ring_doorbell()
        return [ticket for _, ticket in prepared]

    def _prepare(self, desc, k, interrupt):
        """A copy of ``desc`` under the guest's PASID with the ``k``-th next completion record (and
        this queue's interrupt), and its ticket."""
        d = self.driver
        desc = Descriptor.unpack(desc.pack())
        desc.pasid = d.pasid
        addr = self.records + COMPLETION_BYTES * ((self.slot + k) % self.size)
        desc.flags |= Flag.CRAV | Flag.RCR
        desc.completion_addr = addr
        vector = None
        if interrupt:
            desc.flags |= Flag.RCI
            desc.int_handle = d.handles[self.index % len(d.handles)]
            vector = d.vectors[self.index % len(d.vectors)]
        return desc, Completion(self, addr, vector)

    async def wait(self, ticket, timeout_cycles=1_000_000, poll_cycles=20, on=None):
        """The completion record of ``ticket``; raises the error its status names.

        ``on`` says what to wait for:

        * ``"interrupt"`` (the default for a ticket that asked for one): the
          queue's vector in the tenant's virtual interrupt controller, then
          the record. An interrupt that cannot be delivered (its IMS entry
          masked, say) makes this time out although the record is written;
          and since the queue's tickets share its vector, each wait takes one
          occurrence of it, whichever descriptor raised it;
        * ``"record"`` (the default otherwise): poll the completion record
          every ``poll_cycles``; an interrupt the descriptor raises stays
          pending in the controller.

        Raises :class:`QueueError` after ``timeout_cycles`` (naming the queue's
        state if it is not ENABLED), or if the queue was reset after an error
        since the ticket was issued.
        """
        on = on or ("interrupt" if ticket.vector is not None else "record")
        if on not in WAIT_ON:
            raise ValueError(f"wait(on={on!r}): wait on one of {', '.join(WAIT_ON)}")
        if on == "interrupt" and ticket.vector is None:
            raise QueueError(f"queue {self.index}: the descriptor asked for no interrupt; wait on its record")
        waited = 0
        if on == "interrupt":
            waited = await self._wait_interrupt(ticket, timeout_cycles)
        raw = await self._wait_record(ticket, timeout_cycles, poll_cycles, waited)
        rec = CompletionRecord.unpack(raw)
        status = Status(rec.status)
        if status is not Status.SUCCESS:
            raise STATUS_ERRORS[status](f"queue {self.index}: {_message(status, rec, self.driver)}", rec)
        return rec

    async def _wait_interrupt(self, ticket, timeout_cycles):
        """Until the ticket's vector is raised; the cycles waited."""
        waited = 0
        while True:
            self._check_epoch(ticket)
            if await self.driver.tenant.vic.wait(ticket.vector, min(1000, timeout_cycles - waited)):
                return waited
            waited += 1000
            if waited >= timeout_cycles:
                raise QueueError(f"queue {self.index}: no interrupt on vector {ticket.vector:#x} in "
                                 f"{timeout_cycles} cycles{await self._state_note()}")

    async def _wait_record(self, ticket, timeout_cycles, poll_cycles, waited):
        """Until the ticket's record holds a status; its bytes.

        On a backend that offers ``Bus.watch`` (the model), the wait wakes when
        the Device writes the record instead of reading it every
        ``poll_cycles``: a completion costs one wake-up, not one per poll. The
        watch is taken before the record is read, so a write that lands in
        between is not missed, and it is taken again after a write that left no
        status. The queue's epoch and the timeout are still checked at least
        every :data:`WATCH_RECHECK` cycles.
        """
        d = self.driver
        watch = getattr(d.bus, "watch", None)
        host = d.memory.host(ticket.record_addr, COMPLETION_BYTES)
        ev = None
        try:
            while True:
                if watch is not None and ev is None:
                    ev = watch(host, COMPLETION_BYTES)
                raw = await d.memory.read(ticket.record_addr, COMPLETION_BYTES)
                if raw[0]:
                    return raw
                self._check_epoch(ticket)
                if waited >= timeout_cycles:
                    raise QueueError(f"queue {self.index}: no completion in {timeout_cycles} cycles"
                                     f"{await self._state_note()}")
                if ev is None:
                    await d.bus.wait_cycles(poll_cycles)
                    waited += poll_cycles
                    continue
                start = d.bus.now()
                if await d.bus.wait_event(ev, min(WATCH_RECHECK, timeout_cycles - waited)):
                    ev = None                   # a watch ends when it fires
                waited += d.bus.now() - start
        finally:
            if ev is not None:
                d.bus.unwatch(ev)

    async def _state_note(self):
        """Why a wait may have failed, if the queue's state says: '' while it is ENABLED."""
        state, error = await self.status()
        return "" if state is AdiState.ENABLED else f" (the queue is {_describe(state, error)})"


def _describe(state, error):
    """``"ERROR (error code 1, TAIL_BEYOND_RING)"``: a queue's state in the register map's names."""
    if state is AdiState.ERROR:
        return f"{state.name} (error code {int(error)}, {error.name})"
    return state.name


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

    async def _read(self, reg):
        """A (trapped) read of control register ``reg``."""
        return await self.vdev.mmio_read(self.vdev.ctrl + reg)

    async def open(self):
        """Enable the device, read its capabilities, set up its MSI-X vectors and make its queue
        objects.

        As a Linux driver's probe does, through the configuration-space trap:
        pci_enable_device and pci_set_master (Memory Space and Bus Master
        Enable: until then BAR 0 does not decode and the device does no DMA),
        then pci_alloc_irq_vectors for MSI-X (:meth:`_enable_msix`).
        """
        cmd = self.vdev.config_read(pci.PCI_COMMAND, 2)
        await self.vdev.config_write(pci.PCI_COMMAND, cmd | pci.PCI_COMMAND_MEMORY | pci.PCI_COMMAND_MASTER, 2)
        caps = await self._read(bar.CAPS)
        self.num_queues = caps & 0xFF
        self.ring_max, self.ring_min = 1 << (caps >> 8 & 0xFF), 1 << (caps >> 16 & 0xFF)
        self.max_xfer = await self._read(bar.MAX_XFER_REG)
        align = await self._read(bar.ALIGN)
        self.cr_align, self.fill_align = align & 0xFF, align >> 8 & 0xFF
        nvec = await self._read(bar.NUM_VECTORS)
        msix_vectors = self._msix_table_size()
        if nvec != msix_vectors:
            raise GuestDriverError(f"device reports {nvec} vectors, its MSI-X capability {msix_vectors}")
        self.handles = []
        for k in range(nvec):
            await self.vdev.mmio_write(self.vdev.ctrl + bar.INT_HANDLE_SEL, k)
            self.handles.append(await self._read(bar.INT_HANDLE))
        self.vectors = list(self.vdev.vectors)
        await self._enable_msix()
        self.queues = [Queue(self, i) for i in range(self.num_queues)]
        return self

    async def _enable_msix(self):
        """MSI-X as Linux's msix_capability_init sets it up: MSI-X Enable with the Function Mask
        set; each table entry (found through the capability's Table Offset/BIR) given an x86
        MSI address and its vector in Message Data, and unmasked; then the Function Mask
        cleared (PCIe 6.0 7.7.2)."""
        ctrl = self._msix_cap + pci.PCI_MSIX_FLAGS
        table = self.vdev.config_read(self._msix_cap + pci.PCI_MSIX_TABLE, 4)
        if table & pci.PCI_MSIX_TABLE_BIR:
            raise GuestDriverError(f"the MSI-X table is in BAR{table & pci.PCI_MSIX_TABLE_BIR}, not BAR0")
        table &= pci.PCI_MSIX_TABLE_OFFSET
        await self.vdev.config_write(ctrl, pci.PCI_MSIX_FLAGS_ENABLE | pci.PCI_MSIX_FLAGS_MASKALL, 2)
        for k, vector in enumerate(self.vectors):
            entry = table + k * pci.PCI_MSIX_ENTRY_SIZE
            await self.vdev.mmio_write(entry + pci.PCI_MSIX_ENTRY_LOWER_ADDR, msi_address(0))
            await self.vdev.mmio_write(entry + pci.PCI_MSIX_ENTRY_UPPER_ADDR, 0)
            await self.vdev.mmio_write(entry + pci.PCI_MSIX_ENTRY_DATA, vector)
            await self.vdev.mmio_write(entry + pci.PCI_MSIX_ENTRY_VECTOR_CTRL, 0)
        await self.vdev.config_write(ctrl, pci.PCI_MSIX_FLAGS_ENABLE, 2)

    def _msix_table_size(self):
        """MSI-X Table Size read from the configuration space, walking its capability list (as
        a Linux driver's pci_find_capability does; every read is a trap)."""
        cfg = self.vdev.config_read
        if cfg(pci.PCI_STATUS, 2) & pci.PCI_STATUS_CAP_LIST:
            offset, seen = cfg(pci.PCI_CAPABILITY_LIST, 1) & ~3, set()
            while offset and offset not in seen:
                seen.add(offset)
                if cfg(offset + pci.PCI_CAP_LIST_ID, 1) == pci.PCI_CAP_ID_MSIX:
                    self._msix_cap = offset
                    return (cfg(offset + pci.PCI_MSIX_FLAGS, 2) & pci.PCI_MSIX_FLAGS_QSIZE) + 1
                offset = cfg(offset + pci.PCI_CAP_LIST_NEXT, 1) & ~3
        raise GuestDriverError("the device has no MSI-X capability")

    async def dma_map(self, addr, nbytes):
        """Make ``nbytes`` of guest memory at ``addr`` reachable by the device.

        Raises :class:`DmaMapError` if any of it is outside the guest's
        memory (nothing is mapped then), if the hypervisor refuses to pin a
        page, or if the device refuses the map.
        """
        for page in self._pages(addr, nbytes, "map"):
            self.stats["maps"] += 1
            res = await self.vdev.guest_map(page)
            if res is GuestResult.NOT_PINNED:
                self.stats["map_hypercalls"] += 1
                try:
                    await self.vdev.hypercall_map(page)
                except HypercallError as e:
                    raise DmaMapError(f"map of guest page {page:#x}: the hypervisor refused to pin it: {e}") from e
                res = await self.vdev.guest_map(page)
            if res is not GuestResult.OK:
                raise DmaMapError(f"map of guest page {page:#x}: the device answered {res.name}")

    async def dma_unmap(self, addr, nbytes):
        """Tell the device that ``nbytes`` at ``addr`` are no longer for DMA (fast path only).

        Raises :class:`DmaMapError` if any of it is outside the guest's memory
        (nothing is unmapped then) or a page was not mapped.
        """
        for page in self._pages(addr, nbytes, "unmap"):
            self.stats["unmaps"] += 1
            res = await self.vdev.guest_map(page, unmap=True)
            if res is not GuestResult.OK:
                raise DmaMapError(f"unmap of guest page {page:#x}: the device answered {res.name}"
                                  + (" (it was not mapped)" if res is GuestResult.NOT_MAPPED else ""))

    def _pages(self, addr, nbytes, what):
        try:
            return self.memory.pages_of(addr, nbytes)
        except GuestAddressError as e:
            raise DmaMapError(f"{what} of {nbytes:#x} bytes at guest address {addr:#x}: {e}") from e
