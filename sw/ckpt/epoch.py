"""HA checkpoint epochs of a group of protected VMs, with Remus' output commit.

Ref: US20170329623A1 (HA GPU computing with VM checkpointing: scan, align,
drain, snapshot, fail over); Remus (NSDI'08) for output commit.

**Which VMs.** A :class:`HaCheckpointer` protects a group of VMs (by default,
in the programs of :mod:`siov.sw.ckpt.failover`, every tenant of the Device)
and checkpoints them together: one stop, one epoch number, one commit. A
failure of the primary Device takes all of its tenants with it, so each one
needs a checkpoint to fail over to; stopping them together costs one
downtime per epoch instead of one per VM, and a group commit means the
secondary never mixes epochs. Each VM keeps its own chain of images
(:mod:`siov.sw.ckpt.storage`, identity = the Device's parameters and Verilog
fingerprint and the tenant), so a VM's chain restores on its own, onto any
compatible Device.

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
4. **snapshot**: the device state (the device's migration codec) and the
   dirty log (read with NO_CLEAR) first, then, with no device access in
   between, the pages its guest CPU wrote
   (:class:`~siov.sw.ckpt.cpu_log.PageHashLog`) and one read of its memory,
   from which the image takes the logged and the predicted pages; the
   virtual interrupt controller. A vCPU that is not paused (a scenario's
   workload) therefore cannot write between the memory an image holds and
   the ring pointers its device state names. The digests of the whole
   memory at that point are kept (:meth:`HaCheckpointer.golden`) to check a
   restore against;
5. **commit**: every VM's image is sealed into its chain (:mod:`siov.sw.ckpt.storage`),
   then the group's epoch number advances (:attr:`HaCheckpointer.committed`:
   the chains a secondary reads stop there, so a failure between two seals
   falls back to the previous epoch); only then is the dirty log cleared (the device is stopped, so no write
   falls between the read and the clear), and the outputs of the epoch are
   released;
6. **resume** (RUNNING).

**Output commit.** What a VM makes visible outside (its results, the
interrupts host observers see) is handed to :meth:`HaCheckpointer.output`
and released by the commit of the epoch it was produced in, never before;
the interrupts a host observer sees are each tenant's interrupt log up to
the last commit (:meth:`HaCheckpointer.visible_interrupts`). A failover to
the last committed checkpoint therefore never contradicts a released output.
Inside the VM the device writes its records at once; a failover rolls them
back with the memory.

**Timed epochs.** :func:`run_epochs` checkpoints every ``interval`` device
cycles, each at the first predicted completion within ``slack`` of its
time (:func:`aligned_time`).

**Guest CPUs.** A checkpoint pauses the VMs' vCPUs between two of their steps
(``vcpus``: an object with ``async pause()`` and ``resume()``), as a VMM pauses
its vCPUs; the guest's own state is then all in its memory.

**Copy cost.** The host copies the snapshot's pages while the VMs are stopped;
``copy_cycles_per_page`` device cycles pass per page (a link to the backup
of a given bandwidth, at the Device's clock), so a checkpoint's downtime
grows with what it copies, as a real one does.
"""

import hashlib
import json
import logging
from dataclasses import dataclass, field

from ...rtl.dma.defs import PAGE_SHIFT
from ..hv.migration import MigrationState, dirty_pages
from .cpu_log import PageHashLog
from .storage import ChainWriter

__all__ = ["HaCheckpointer", "EpochReport", "Span", "aligned_time", "predicted_completions", "run_epochs",
           "device_identity", "NoPause", "CheckpointRefused", "page_digests", "hold_until_idle"]

PAGE = 1 << PAGE_SHIFT


def page_digests(mem):
    """A short digest of each 4 KiB page of ``mem`` (bytes of whole pages), in page order."""
    return [hashlib.blake2b(mem[p:p + PAGE], digest_size=12).hexdigest() for p in range(0, len(mem), PAGE)]


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


@dataclass
class Span:
    """One phase of a checkpoint in device cycles: ``name`` (``"stop"``, ``"copy"``, ``"resume"``),
    its ``epoch``, ``start`` and ``end``; the trace shows them as spans."""
    name: str
    epoch: int
    start: int
    end: int


@dataclass
class EpochReport:
    """One committed epoch: its number; the cycles of its stop request, of the VMs stopped, of
    the copy's end and of the resume; the pages copied (and how many only because they were
    predicted) and the image bytes, over the group; per tenant the pages copied; ``cut``, the
    ADIs with a descriptor in flight at the stop request; ``held``, the device cycles the VMs'
    ADIs were held out of dispatch before it (:func:`run_epochs` ``prehold``; the vCPUs ran)."""
    epoch: int
    stopped: int
    resumed: int
    pages: int
    predicted_only: int
    nbytes: int
    quiet: int = 0
    copied: int = 0
    per_tenant: dict = field(default_factory=dict)
    cut: int = 0
    held: int = 0

    @property
    def downtime(self):
        """Device cycles from the stop request to the resume."""
        return self.resumed - self.stopped

    @property
    def spans(self):
        """The stop, copy and resume :class:`Span` of this epoch."""
        return [Span("stop", self.epoch, self.stopped, self.quiet), Span("copy", self.epoch, self.quiet, self.copied),
                Span("resume", self.epoch, self.copied, self.resumed)]


class CheckpointRefused(Exception):
    """A checkpoint that could not be taken; the VMs were left running as they were and the
    chain is unchanged (see :meth:`HaCheckpointer.checkpoint`)."""


class NoPause:
    """The vCPUs of VMs whose guest runs no code during a checkpoint (nothing to pause)."""

    async def pause(self):
        """Nothing to pause."""

    async def resume(self):
        """Nothing to resume."""


async def device_identity(pf, fingerprint=None):
    """What a checkpoint image says it was taken of: the Device's parameters (read from its
    capability registers) and Verilog fingerprint (:func:`siov.sw.results.device_fingerprint`
    when not given). A chain restores only onto a Device of the same identity."""
    caps = await pf.identify()
    params = {"num_adis": caps.num_adis, "ims_entries": caps.ims_entries, "num_domains": caps.num_domains,
              "pages_per_domain": caps.pages_per_domain, "num_engines": caps.num_engines}
    if fingerprint is None:
        from ...rtl.params import DeviceParams
        from ..results import device_fingerprint
        fingerprint = device_fingerprint(DeviceParams(**params))
    return {"params": params, "fingerprint": fingerprint}


class HaCheckpointer:
    """Checkpoints of the VMs that own virtual devices ``vdevs`` (one, or a list), each into a
    chain of images, committed together.

    Parameters
    ----------
    vdevs : VirtualDevice or list of VirtualDevice
        Their migration codecs save the device state.
    scanner : CommandScanner, optional
        For the predicted pages and completions (none: no prediction).
    meta : dict, optional
        The identity the images carry (:func:`device_identity`: the Device's parameters and
        fingerprint); each tenant's name is added. None: read from the Device at the first
        checkpoint.
    vcpus : object, optional
        ``async pause()`` and ``resume()`` of the guests' vCPUs (default :class:`NoPause`).
    copy_cycles_per_page : int
        Device cycles the copy of one page keeps the VMs stopped.
    predict : bool
        Whether the predicted pages are copied (False: the dirty log and the CPU's pages only).
    full_copy : bool
        Copy every page at every checkpoint (the baseline incremental checkpoints are
        measured against).

    Attributes
    ----------
    writers : dict
        Tenant name -> :class:`~siov.sw.ckpt.storage.ChainWriter` (its ``blobs``).
    committed : int
        The last epoch committed for the whole group (-1: none).
    epochs : list of EpochReport
    released : list
        Outputs released, in order, each ``(epoch, value)``.
    """

    def __init__(self, vdevs, scanner=None, meta=None, vcpus=None, copy_cycles_per_page=0, predict=True,
                 full_copy=False):
        self.vdevs = list(vdevs) if isinstance(vdevs, (list, tuple)) else [vdevs]
        if not self.vdevs:
            raise ValueError("a checkpointer protects at least one virtual device")
        self.scanner, self.vcpus = scanner, vcpus or NoPause()
        self.copy_cycles_per_page, self.use_prediction = copy_cycles_per_page, predict
        self.full_copy = full_copy
        self.bus = self.vdevs[0].bus
        self.pf = self.vdevs[0].vdcm.pf
        self.meta = None if meta is None else dict(meta)
        self.writers = {}
        self.cpu_logs = {v.tenant.name: PageHashLog(v.tenant.memory) for v in self.vdevs}
        self.committed = -1
        self.epochs, self.released = [], []
        self.predicted, self.written = {}, {}        # tenant -> pages predicted / found written, per epoch
        self._visible = {v.tenant.name: 0 for v in self.vdevs}
        self._held = []
        self._digests = {}                            # tenant -> epoch -> page digests at its snapshot
        self.log = logging.getLogger("siov.ckpt.epoch")

    # -- one VM (the first): what the single-VM callers use --------------------------------------

    @property
    def vdev(self):
        """The first protected virtual device."""
        return self.vdevs[0]

    @property
    def tenant(self):
        """The first protected tenant."""
        return self.vdevs[0].tenant

    @property
    def writer(self):
        """The first protected tenant's chain writer."""
        return self.writers[self.tenant.name]

    # -- epochs and outputs ------------------------------------------------------------------------

    @property
    def epoch(self):
        """The epoch running now: the number the next commit will carry."""
        return self.committed + 1

    def output(self, value):
        """``value`` leaves the VMs once the current epoch commits (Remus' output commit)."""
        self._held.append((self.epoch, value))

    def visible_interrupts(self, tenant):
        """The interrupts of ``tenant`` (a name) a host observer has seen: its virtual interrupt
        controller's log up to the last commit."""
        v = next(v for v in self.vdevs if v.tenant.name == tenant)
        return list(v.tenant.vic.log[:self._visible[tenant]])

    def golden(self, tenant, epoch):
        """The digests (:func:`page_digests`) of ``tenant``'s guest memory as it was when epoch
        ``epoch`` was snapshot (read whole from the primary, not from its image): what a chain
        restored up to that epoch must reproduce. The last few epochs are kept."""
        return self._digests[tenant][epoch]

    def chains(self):
        """Tenant name -> the images of its chain up to the last group commit: what a
        secondary restores."""
        return {name: list(w.blobs[:self.committed + 1]) for name, w in self.writers.items()}

    # -- prediction --------------------------------------------------------------------------------

    async def predict(self):
        """``(pages, completions)``: per tenant name the guest pages its queued descriptors are
        predicted to write, and the predicted completion cycles of all of them."""
        pages = {v.tenant.name: set() for v in self.vdevs}
        if self.scanner is None:
            return pages, []
        adis = [a for v in self.vdevs for a in v.adis]
        await self.scanner.scan(adis)
        pending = [d for a in adis for d in self.scanner.pending(a)]
        owner = {a: v.tenant for v in self.vdevs for a in v.adis}
        for d in pending:
            t = owner[d.adi]
            pages[t.name] |= {p for p in d.writes if p < t.pages}
        return pages, predicted_completions(pending, self.bus.now())

    async def _in_flight(self):
        """How many protected ADIs have a descriptor in flight (CMD.ADI_STATUS.INFLIGHT)."""
        from ...rtl import regmap
        n = 0
        async with self.pf.exclusive():
            for v in self.vdevs:
                for a in v.adis:
                    await self.bus.write(regmap.CMD_ADI_SEL, a)
                    n += bool(await self.bus.read(regmap.CMD_ADI_STATUS) & regmap.CMD_ADI_STATUS_INFLIGHT_MASK)
        return n

    async def _check(self):
        """:class:`CheckpointRefused` if a protected ADI is in ERROR (nothing changed yet)."""
        from ...rtl.regmap import AdiError, AdiState
        for v in self.vdevs:
            for a in v.adis:
                state, code = await self.pf.adi_state(a)
                if state == AdiState.ERROR:
                    raise CheckpointRefused(
                        f"{v.tenant.name}: ADI {a} is in ERROR ({AdiError(code).name}); its error code cannot be "
                        f"restored, so no checkpoint is taken until the guest resets it (RESET_ERROR). The "
                        f"last committed checkpoint (epoch {self.committed}) stays the one to fail over to")

    async def checkpoint(self):
        """Stop, snapshot, commit, resume; the :class:`EpochReport`. The first is the base image
        of each VM (every page); later ones hold the pages written since the last commit and the
        predicted ones.

        A checkpoint requested while one of the protected queues is in ERROR is refused with
        :class:`CheckpointRefused` before anything is stopped: the device state could not be
        restored faithfully (``devstate`` refuses to save an ADI in ERROR), so the VMs keep
        running, the chains stay as they were, and outputs stay held until a later commit.
        """
        bus = self.bus
        await self._check()
        if self.meta is None:
            self.meta = await device_identity(self.pf)
        for v in self.vdevs:
            if v.tenant.name not in self.writers:
                self.writers[v.tenant.name] = ChainWriter(dict(self.meta, tenant=v.tenant.name))
        predicted, _ = await self.predict()
        cut = await self._in_flight()
        stopped = bus.now()
        await self.vcpus.pause()
        for v in self.vdevs:
            await v.migration.set_state(MigrationState.STOP)
        quiet = bus.now()
        base = self.committed < 0
        images, total, extra, per, states, dirty = {}, 0, 0, {}, {}, {}
        # Everything that takes device time first: the dirty logs (NO_CLEAR) and the device
        # states. Then, for each VM without awaiting the device in between, the guest CPU's
        # pages and one read of its memory: a vCPU that is not paused cannot slip a write in
        # between what the images hold and what the device state refers to.
        for v in self.vdevs:
            t = v.tenant
            if not (base or self.full_copy):
                dirty[t.name] = dirty_pages(await self.pf.harvest(t.domain, t.pages, no_clear=True), t.pages)
            states[t.name] = await v.migration.codec.save(v)
        for v in self.vdevs:
            t, log = v.tenant, self.cpu_logs[v.tenant.name]
            if base or self.full_copy:
                await log.start()
                pages, more = set(range(t.pages)), set()
            else:
                written = dirty[t.name] | await log()
                guess = predicted[t.name] if self.use_prediction else set()
                pages, more = written | guess, guess - written
                self.predicted.setdefault(t.name, []).append(set(predicted[t.name]))
                self.written.setdefault(t.name, []).append(written)
            mem = await t.memory.read(0, t.pages * PAGE)
            image = {p: mem[p * PAGE:(p + 1) * PAGE] for p in sorted(pages)}
            self._digests.setdefault(t.name, {})[self.committed + 1] = page_digests(mem)
            sections = {"device": states[t.name],
                        "vic": json.dumps({"log": t.vic.log, "pending": dict(t.vic.pending)}).encode()}
            images[t.name] = (image, sections, len(t.vic.log))
            total += len(pages)
            extra += len(more)
            per[t.name] = len(pages)
        if self.copy_cycles_per_page:
            await bus.wait_cycles(total * self.copy_cycles_per_page)
        nbytes = sum(len(self.writers[name].add(image, sections)) for name, (image, sections, _) in images.items())
        # The group's commit and the release of its outputs are one step (nothing awaited in
        # between): a primary that dies after it has released what the committed state holds.
        self.committed += 1
        epoch = self.committed
        for d in self._digests.values():
            for old in [e for e in d if e < epoch - 2]:
                del d[old]
        for name, (_, _, n) in images.items():
            self._visible[name] = n
        self._release(epoch)
        for v in self.vdevs:
            await self.pf.harvest(v.tenant.domain, v.tenant.pages)   # cleared only now; stopped
        copied = bus.now()
        for v in self.vdevs:
            await v.migration.set_state(MigrationState.RUNNING)
        await self.vcpus.resume()
        report = EpochReport(epoch, stopped, bus.now(), total, extra, nbytes, quiet, copied, per, cut)
        self.epochs.append(report)
        self.log.info("%r", report)
        return report

    def _release(self, epoch):
        keep = []
        for e, v in self._held:
            (self.released if e <= epoch else keep).append((e, v))
        self._held = keep


async def hold_until_idle(ck, limit):
    """Hold ``ck``'s VMs' ADIs out of the eligibility mask (:meth:`~siov.sw.hv.pf.PfDriver.hold`)
    until none has a descriptor in flight, at most ``limit`` device cycles: the engine finishes
    the descriptor it runs and takes no new one of these VMs, while their vCPUs run on. Returns
    the cycles waited; the caller releases the hold (``pf.hold(ck, ())``) after the checkpoint."""
    bus = ck.bus
    t0 = bus.now()
    await ck.pf.hold(ck, [a for v in ck.vdevs for a in v.adis])
    while await ck._in_flight() and bus.now() - t0 < limit:
        await bus.wait_cycles(20)
    return bus.now() - t0


async def run_epochs(ck, interval, slack, done, on_epoch=None, prehold=0):
    """Checkpoint ``ck``'s VMs every ``interval`` device cycles until ``await done()`` is true.

    Each epoch's time is the first predicted completion within ``slack`` cycles after the
    wanted one (:func:`aligned_time`: the scanner is read when the wanted time comes); the
    next is wanted ``interval`` cycles after it. ``on_epoch(report)`` is called after each.
    A checkpoint refused (:class:`CheckpointRefused`, a queue in ERROR) is logged and tried
    again at the next time. ``prehold`` (device cycles, 0: off): at the checkpoint time the
    VMs' ADIs are first held out of dispatch until nothing of theirs is in flight, at most that
    long (:func:`hold_until_idle`), so the stop does not cut a descriptor and the vCPUs are
    paused only for the copy. Returns the reports.
    """
    bus = ck.bus
    wanted = bus.now() + interval
    while not await done():
        if bus.now() < wanted:
            await bus.wait_cycles(wanted - bus.now())
            continue
        at = wanted
        if slack:
            _, completions = await ck.predict()
            at = aligned_time(max(wanted, bus.now()), completions, slack)
            if at > bus.now():
                await bus.wait_cycles(at - bus.now())
        held = await hold_until_idle(ck, prehold) if prehold else 0
        try:
            report = await ck.checkpoint()
        except CheckpointRefused as e:
            ck.log.warning("%s", e)
            if prehold:
                await ck.pf.hold(ck, ())
        else:
            report.held = held
            if prehold:
                await ck.pf.hold(ck, ())
            if on_epoch is not None:
                on_epoch(report)
        wanted = max(at, bus.now()) + interval
    return ck.epochs
