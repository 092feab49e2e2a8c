"""HA checkpoint epochs of one protected VM, with Remus' output commit.

Ref: US20170329623A1 (HA GPU computing with VM checkpointing: scan, align,
drain, snapshot, fail over); Remus (NSDI'08) for output commit.

Each :meth:`HaCheckpointer.checkpoint`:

1. **scan** the VM's rings (:class:`~siov.sw.sched.scanner.CommandScanner`):
   the pages its queued descriptors are predicted to write, and the predicted
   completion cycle of each (a ring runs in order, so each completes after the
   ones before it);
2. the caller picks the checkpoint time with :func:`aligned_time`: the first
   predicted completion at or after the time it wanted, so the stop does not
   wait through a long descriptor;
3. **stop** the VM's device (its VFIO state to STOP: its ADIs out of the
   eligibility mask, its vectors masked, the descriptors in flight finished,
   the interrupt remapper drained);
4. **snapshot**: the pages its dirty log names (read with NO_CLEAR), the pages
   its guest CPU wrote (:class:`~siov.sw.ckpt.cpu_log.PageHashLog`) and the
   predicted pages; the device state (the device's migration codec); the
   virtual interrupt controller;
5. **commit**: the image is sealed into the chain (:mod:`siov.sw.ckpt.storage`);
   only then is the dirty log cleared (the device is stopped, so no write
   falls between the read and the clear), and the outputs of the epoch are
   released;
6. **resume** (RUNNING).

**Output commit.** What the VM makes visible outside (its results, the
interrupts host observers see) is handed to :meth:`HaCheckpointer.output`
and released by the commit of the epoch it was produced in, never before. A
failover to the last committed checkpoint therefore never contradicts a
released output.
"""

import json
import logging

from ...rtl.dma.defs import PAGE_SHIFT
from ..hv.migration import MigrationState, dirty_pages
from .cpu_log import PageHashLog
from .storage import ChainWriter

__all__ = ["HaCheckpointer", "EpochReport", "aligned_time", "predicted_completions"]

PAGE = 1 << PAGE_SHIFT


def predicted_completions(pending, now):
    """Predicted completion cycles of ``pending`` scanned descriptors (per ring in order, each
    after the ones before it in its ring), from device cycle ``now``."""
    out, ring_end = [], {}
    for d in pending:
        end = max(ring_end.get(d.adi, now), now) + d.cycles
        ring_end[d.adi] = end
        out.append(end)
    return sorted(out)


def aligned_time(wanted, completions, slack):
    """The checkpoint time: the first predicted completion in ``wanted .. wanted + slack``, or
    ``wanted`` when none falls there (nothing pending, or a descriptor longer than the slack)."""
    for c in completions:
        if wanted <= c <= wanted + slack:
            return c
    return wanted


class EpochReport:
    """One committed epoch: its number, the cycles of its stop and resume, the pages copied
    (and how many only because they were predicted), and the image's size in bytes."""

    def __init__(self, epoch, stopped, resumed, pages, predicted_only, nbytes):
        self.epoch, self.stopped, self.resumed = epoch, stopped, resumed
        self.pages, self.predicted_only, self.nbytes = pages, predicted_only, nbytes

    @property
    def downtime(self):
        """Device cycles from the stop to the resume."""
        return self.resumed - self.stopped

    def __repr__(self):
        return (f"EpochReport(epoch={self.epoch}, pages={self.pages}, predicted_only={self.predicted_only}, "
                f"downtime={self.downtime})")


class HaCheckpointer:
    """Checkpoints of the VM that owns virtual device ``vdev``, into a chain of images.

    Parameters
    ----------
    vdev : VirtualDevice
        Its device; its migration codec saves the device state.
    scanner : CommandScanner, optional
        For the predicted pages and completions (none: no prediction).
    meta : dict
        The identity the images carry (Device parameters, fingerprint); the tenant's name is added.

    Attributes
    ----------
    writer : ChainWriter
        The committed images (``writer.blobs``): what a secondary restores.
    epochs : list of EpochReport
    released : list
        Outputs released, in order, each ``(epoch, value)``.
    """

    def __init__(self, vdev, scanner=None, meta=None):
        self.vdev, self.scanner = vdev, scanner
        self.tenant = vdev.tenant
        self.writer = ChainWriter(dict(meta or {}, tenant=self.tenant.name))
        self.cpu_log = PageHashLog(self.tenant.memory)
        self.epochs, self.released = [], []
        self._held = []
        self._irqs_released = 0
        self.log = logging.getLogger("siov.ckpt.epoch")

    @property
    def epoch(self):
        """The epoch running now: the number the next commit will carry."""
        return len(self.writer.blobs)

    def output(self, value):
        """``value`` leaves the VM once the current epoch commits (Remus' output commit)."""
        self._held.append((self.epoch, value))

    async def predict(self):
        """``(pages, completions)``: guest pages the VM's queued descriptors are predicted to
        write, and their predicted completion cycles."""
        if self.scanner is None:
            return set(), []
        await self.scanner.scan(self.vdev.adis)
        pending = [d for a in self.vdev.adis for d in self.scanner.pending(a)]
        pages = set().union(*(d.writes for d in pending)) if pending else set()
        return {p for p in pages if p < self.tenant.pages}, predicted_completions(pending, self.vdev.bus.now())

    async def checkpoint(self):
        """Stop, snapshot, commit, resume; the :class:`EpochReport`. The first is the base image
        (every page); later ones hold the pages written since the last commit and the predicted.

        If one of the VM's queues is in ERROR the checkpoint is taken as it is: the ADI state
        is part of the device state, and the secondary restores the queue in ERROR, as the
        guest driver would find it on the primary.
        """
        m, t, pf, bus = self.vdev.migration, self.tenant, self.vdev.vdcm.pf, self.vdev.bus
        predicted, _ = await self.predict()
        stopped = bus.now()
        await m.set_state(MigrationState.STOP)
        base = not self.writer.blobs
        if base:
            await self.cpu_log.start()
            pages = set(range(t.pages))
            extra = set()
        else:
            written = dirty_pages(await pf.harvest(t.domain, t.pages, no_clear=True), t.pages)
            written |= await self.cpu_log()
            pages = written | predicted
            extra = predicted - written
        image = {p: await t.memory.read(p * PAGE, PAGE) for p in sorted(pages)}
        sections = {"device": await m.codec.save(self.vdev),
                    "vic": json.dumps({"log": t.vic.log, "pending": dict(t.vic.pending)}).encode()}
        blob = self.writer.add(image, sections)          # the commit
        await pf.harvest(t.domain, t.pages)              # cleared only now; the device is stopped
        epoch = self.epoch - 1
        self._release(epoch)
        await m.set_state(MigrationState.RUNNING)
        report = EpochReport(epoch, stopped, bus.now(), len(pages), len(extra), len(blob))
        self.epochs.append(report)
        self.log.info("%s: %r", t.name, report)
        return report

    def _release(self, epoch):
        keep = []
        for e, v in self._held:
            (self.released if e <= epoch else keep).append((e, v))
        self._held = keep
