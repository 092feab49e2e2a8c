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

import logging
from dataclasses import dataclass, field

from ..hv.migration import MigrationState, decode_records

__all__ = ["MigrationReport", "live_migrate"]

log = logging.getLogger("siov.ckpt.migrate")


@dataclass
class MigrationReport:
    """What a live migration did: per pre-copy iteration ``(initial_bytes, dirty_bytes)`` before
    it and the pages it sent; the pages and bytes the stop-and-copy sent; the downtime in device
    cycles; and whether it converged (``dirty_bytes`` under the threshold before the cap)."""
    iterations: list = field(default_factory=list)
    pages_sent: list = field(default_factory=list)
    stop_copy_pages: int = 0
    stream_bytes: int = 0
    downtime_cycles: int = 0
    converged: bool = False

    @property
    def total_pages(self):
        """Every page sent, pre-copy and stop-and-copy."""
        return sum(self.pages_sent) + self.stop_copy_pages


async def live_migrate(src, dst, threshold=0, max_iterations=8, between=0):
    """Migrate virtual device ``src`` (and its tenant's memory) onto ``dst``; a
    :class:`MigrationReport`.

    ``threshold`` is the ``dirty_bytes`` at or under which pre-copy stops; ``max_iterations``
    caps the iterations; ``between`` device cycles pass between two (the guest runs meanwhile).
    ``dst`` belongs to a tenant with as many pages as ``src``'s. The source is left in STOP.
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
        if len(report.pages_sent) >= max_iterations:
            break
        chunk = await m.read_data()
        report.pages_sent.append(len(decode_records(chunk)[0]))
        report.stream_bytes += len(chunk)
        d.write_data(chunk)
        if between:
            await bus.wait_cycles(between)
    stopped = bus.now()
    await m.set_state(MigrationState.STOP_COPY)
    final = await m.read_data()
    report.stop_copy_pages = len(decode_records(final)[0])
    report.stream_bytes += len(final)
    d.write_data(final)
    await d.set_state(MigrationState.RUNNING)
    report.downtime_cycles = bus.now() - stopped
    await m.set_state(MigrationState.STOP)
    log.info("%s -> %s: %d iterations %s, %d pages after the stop, downtime %d cycles", src.tenant.name,
             dst.tenant.name, len(report.pages_sent), report.iterations, report.stop_copy_pages,
             report.downtime_cycles)
    return report
