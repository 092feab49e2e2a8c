"""Live migration of a virtual device and its guest memory, through the VDCM's VFIO states.

Ref: Linux ``include/uapi/linux/vfio.h`` (the saving group, VFIO_MIG_GET_PRECOPY_INFO);
the pre-copy scheme of QEMU's RAM migration (iterate on the dirty log, then
stop and copy what is left).

1. The source goes to PRE_COPY; the destination, stopped, to RESUMING.
2. Each iteration asks :meth:`~siov.sw.hv.migration.DeviceMigration.precopy_info`
   (``initial_bytes``, ``dirty_bytes``, recorded per iteration) and sends what
   the source's stream has: the guest window first, then the pages written
   since they were sent (the device's dirty log, and the guest's own writes
   from ``cpu_dirty``).
3. Once nothing initial is left and ``dirty_bytes`` is at most ``threshold``
   bytes, or after ``max_iterations``, the source goes to STOP_COPY: the
   device stops (no DMA, no interrupt), the rest and the device state are
   sent, the destination goes to RUNNING. Downtime is the device cycles from
   the stop to the destination's resume.
"""

import inspect
import logging
from dataclasses import dataclass, field

from ...rtl.dma.defs import PAGE_SHIFT
from ..hv.migration import MigrationState, decode_records
from .epoch import page_digests

__all__ = ["MigrationReport", "live_migrate"]

log = logging.getLogger("siov.ckpt.migrate")
PAGE = 1 << PAGE_SHIFT


@dataclass
class MigrationReport:
    """What a live migration did: per pre-copy iteration ``(initial_bytes, dirty_bytes)`` before
    it and the pages it sent; the pages and bytes the stop-and-copy sent; the downtime in device
    cycles; and whether it converged (``dirty_bytes`` under the threshold before the cap).
    ``golden`` holds the digests of the source's guest memory at the stop-and-copy
    (:func:`~siov.sw.ckpt.epoch.page_digests`, read whole from the source when its last pages
    were read) and ``device_state`` the state it sent: what the destination must hold."""
    iterations: list = field(default_factory=list)
    pages_sent: list = field(default_factory=list)
    stop_copy_pages: int = 0
    stream_bytes: int = 0
    downtime_cycles: int = 0
    converged: bool = False
    stopped: int = 0
    quiet: int = 0
    copied: int = 0
    resumed: int = 0
    golden: list = field(default_factory=list)
    device_state: bytes = b""

    @property
    def spans(self):
        """``(name, start, end)`` in device cycles of the stop (STOP_COPY requested to the source
        stopped and its state saved), the copy (the rest of the stream sent and restored) and the
        resume (the destination's RUNNING arc; empty when it was left stopped)."""
        return [("stop", self.stopped, self.quiet), ("copy", self.quiet, self.copied),
                ("resume", self.copied, self.resumed)]

    @property
    def total_pages(self):
        """Every page sent, pre-copy and stop-and-copy."""
        return sum(self.pages_sent) + self.stop_copy_pages


async def _true(r):
    return await r if inspect.isawaitable(r) else bool(r)


async def live_migrate(src, dst, threshold=0, max_iterations=8, between=0, resume=True, until=None):
    """Migrate virtual device ``src`` (and its tenant's memory) onto ``dst``; a
    :class:`MigrationReport`.

    ``threshold`` is the ``dirty_bytes`` at or under which pre-copy stops; ``max_iterations``
    caps the iterations; ``between`` device cycles pass between two (the guest runs meanwhile).
    ``dst`` belongs to a tenant with as many pages as ``src``'s. The source is left in STOP.
    ``resume=False`` leaves the destination in STOP once the state is restored (the downtime
    then ends there): for a destination that is to be checked, not run. ``until``, a callable (its
    result awaited if it is awaitable), ends pre-copy early when it returns true (the stop-and-copy follows at once).
    """
    if dst.tenant.pages != src.tenant.pages:
        raise ValueError(f"the destination has {dst.tenant.pages} pages, the source {src.tenant.pages}")
    bus = src.bus
    m, d = src.migration, dst.migration
    report = MigrationReport()
    await d.set_state(MigrationState.RESUMING)
    await m.set_state(MigrationState.PRE_COPY)
    while True:
        info = await m.precopy_info()
        report.iterations.append((info.initial_bytes, info.dirty_bytes))
        if not info.initial_bytes and info.dirty_bytes <= threshold:
            report.converged = True
            break
        if len(report.pages_sent) >= max_iterations or until is not None and await _true(until()):
            break
        chunk = await m.read_data()
        report.pages_sent.append(len(decode_records(chunk)[0]))
        report.stream_bytes += len(chunk)
        d.write_data(chunk)
        if between:
            await bus.wait_cycles(between)
    report.stopped = bus.now()
    await m.set_state(MigrationState.STOP_COPY)
    report.quiet = bus.now()
    final = await m.read_data()
    # Nothing awaits the device between the last pages read and this: the source's memory
    # as the stream left it.
    report.golden = page_digests(await src.tenant.memory.read(0, src.tenant.pages * PAGE))
    pages, report.device_state = decode_records(final)
    report.stop_copy_pages = len(pages)
    report.stream_bytes += len(final)
    d.write_data(final)
    await d.set_state(MigrationState.STOP)          # decodes, checks and restores
    report.copied = bus.now()
    if resume:
        await d.set_state(MigrationState.RUNNING)
    report.resumed = bus.now()
    report.downtime_cycles = report.resumed - report.stopped
    await m.set_state(MigrationState.STOP)
    log.info("%s -> %s: %d iterations %s, %d pages after the stop, downtime %d cycles", src.tenant.name,
             dst.tenant.name, len(report.pages_sent), report.iterations, report.stop_copy_pages,
             report.downtime_cycles)
    return report
