"""The checkpointer beside a scenario run: HA epochs with a failover check, or a live migration.

Ref: US20170329623A1 (scan, align, stop, snapshot, fail over); Remus (NSDI'08);
``include/uapi/linux/vfio.h`` (VFIO_MIG_GET_PRECOPY_INFO's ``initial_bytes`` and
``dirty_bytes``); ``docs/checkpoint.md``.

:func:`drive` is a task a scenario run spawns next to its own workload tasks,
on the same bus and hypervisor, once its tenants exist and its timeline has
started (``start``). It returns when the run is over (``done()``), or, for a
migration, when the migration is done, with a small JSON-able dict (below).

**One Device.** A scenario runs on one Device, and the guests' drivers stay
bound to their own virtual devices and memory. So the secondary of a failover
and the destination of a migration are *stand-ins* on the same Device: a tenant
``<vm>.standby`` of as many pages, with a virtual device of as many ADIs and
vectors on other ADI, IMS-handle and domain indexes. The state is restored
onto it through the VFIO states (RESUMING, the stream, STOP) and checked
there, and the stand-in is then destroyed without running: its restored
state names the source's host window and PASID (the PASID is the guest's,
written in the descriptors in its memory; the window is the source's host
memory), which on one Device still belong to the running source. The
primary keeps running after its "failure", and a migrated VM's source
resumes after its stop-and-copy, so the scenario's own workload runs to its
end. What a secondary on a fresh Device does from a chain (and that it ends
equal to an uninterrupted run) is :mod:`siov.sw.ckpt.failover`'s, tested in
``tests/test_failover*.py``.

**Checked against.** A failover's golden is the primary itself: the
digests of each VM's guest memory read whole when the restored epoch was
snapshot (:meth:`~siov.sw.ckpt.epoch.HaCheckpointer.golden`, not the
chain's pages), the device state that epoch saved, and the interrupts host
observers had seen. A migration's golden is the source's memory when its
last pages were read, and the device state it sent. The stand-in must hold
the same pages, a device state equal to the saved one with its ADIs,
handles and domain moved (:func:`compare_device_states`, the stand-in's
state saved again) and, for a failover, the seen interrupts in its vIC log.

**vCPUs.** A scenario's workloads are not paused by default (``vcpus`` is
:class:`~siov.sw.ckpt.epoch.NoPause`); the checkpointer reads each VM's
device state before its memory and its memory in one read, so a guest CPU
write cannot fall between them (see :mod:`siov.sw.ckpt.epoch`). A run that
can pause its guests passes an object with ``async pause()`` and
``async resume()`` (:class:`~siov.sw.ckpt.failover.Vcpus` is one).
"""

import inspect
import json
import logging

from ..hv import devstate
from ..hv.hypervisor import TenantKind
from ..hv.migration import DevstateCodec, MigrationState, encode_records
from ..sched.scanner import CommandScanner
from .cpu_log import PageHashLog
from .epoch import CheckpointRefused, HaCheckpointer, aligned_time, device_identity, page_digests
from .migrate import PAGE, live_migrate
from .storage import load_chain

__all__ = ["drive", "compare_device_states", "COPY_CYCLES_PER_PAGE", "SLACK_FRACTION", "MAX_ITERATIONS",
           "THRESHOLD_PAGES"]

log = logging.getLogger("siov.ckpt.scenario")

#: Device cycles one 4 KiB page's copy keeps a VM stopped: a 10 Gbit/s link to the backup at
#: the Device's 90.7 MHz (bench/bench_ckpt.py's COPY_CYCLES).
COPY_CYCLES_PER_PAGE = 297
#: An HA epoch waits for a predicted completion up to this fraction of the interval.
SLACK_FRACTION = 0.25
#: Pre-copy iterations of a migration before it stops and copies anyway.
MAX_ITERATIONS = 8
#: A migration's pre-copy ends once the dirty bytes are at most this many pages.
THRESHOLD_PAGES = 8


async def _ask(done):
    r = done()
    return await r if inspect.isawaitable(r) else bool(r)


async def drive(hv, vdevs, mode, interval, *, failover=None, start=None, done=None, vcpus=None,
                copy_cycles_per_page=COPY_CYCLES_PER_PAGE, slack=None, threshold_pages=THRESHOLD_PAGES,
                max_iterations=MAX_ITERATIONS, fingerprint=None):
    """Run the checkpointer over the VMs of a scenario run; the dict described below.

    Parameters
    ----------
    hv : Hypervisor
        The run's started hypervisor (its bus is the run's).
    vdevs : list of VirtualDevice
        The virtual devices of the VMs to protect or migrate (the scenario's VMs; not
        containers), their queues open and enabled.
    mode : str
        ``"ha"``: a base checkpoint at once, then an epoch every ``interval`` device cycles,
        each at the first predicted completion within ``slack`` (default a quarter of the
        interval), until ``done()``; with ``failover``, the primary is deemed to fail at that
        cycle: no checkpoint after it, and the last epoch committed by then is restored onto a
        stand-in and checked (module docstring). ``"migrate"``: the VMs one after another are
        live-migrated onto a stand-in, pre-copy iterations ``interval`` cycles apart (the first
        after ``interval``), until the dirty bytes are at most ``threshold_pages`` pages or
        after ``max_iterations``, or at once when ``done()``; then stop-and-copy, restore and
        check; the source then resumes.
    interval : int
        Device cycles between two checkpoints or two pre-copy iterations.
    failover : int, optional
        ``ha`` only: the failure's cycle, counted from ``start``.
    start : int, optional
        The bus cycle the run's timeline starts at (default: now); every cycle in the result
        is counted from it, as a scenario result's are.
    done : callable, optional
        ``done()`` (or ``await done()``) is true once the run is over (default: never, so
        ``ha`` needs it).
    vcpus : object, optional
        ``async pause()`` and ``async resume()`` of the guests (default: not paused).
    copy_cycles_per_page : int
        Device cycles the copy of one page keeps the VMs stopped (default a 10 Gbit/s link).
    fingerprint : str, optional
        The Device's Verilog fingerprint (default: computed from its parameters).

    Returns
    -------
    dict
        ``mode``, ``interval``, ``vms`` (names), and:

        * ``checkpoints``: per epoch ``{"epoch", "cycle"`` (stop requested), ``"pages"``
          (copied), ``"predicted_pages"`` (predicted to be written), ``"predicted_only"``
          (copied only because predicted), ``"downtime"`` (cycles stop to resume),
          ``"cut"`` (ADIs with a descriptor in flight at the stop)``}``; empty for migrate;
        * ``totals``: ``{"checkpoints", "pages", "predicted_pages", "downtime", "max_downtime",
          "bytes"}`` (migrate: pages sent, the VMs' downtimes summed and the longest, stream
          bytes);
        * ``failover``: None, or ``{"cycle", "restored_epoch"`` (None: nothing committed),
          ``"equal"``, ``"checked_against"`` (text), ``"vms": {name: {"pages_differing",
          "device_differences", "interrupts_seen", "interrupts_restored", "equal"}}}``;
        * ``migration``: None, or per VM ``{"iterations": [{"initial_bytes", "dirty_bytes",
          "pages_sent"}], "stop_copy_pages", "total_pages", "downtime", "converged",
          "equal", "checked_against", "pages_differing", "device_differences"}``;
        * ``spans``: ``[{"name"`` (stop, copy, resume), ``"epoch"`` (migrate: the VM's
          name), ``"start", "end"}]`` in device cycles, for the trace.

    Raises
    ------
    ValueError
        A mode other than ``ha`` and ``migrate``, no VM, or a failover under ``migrate``.
    """
    bus = hv.pf.bus
    vdevs = list(vdevs)
    if mode not in ("ha", "migrate"):
        raise ValueError(f"checkpoint mode {mode!r}: ha or migrate")
    if not vdevs:
        raise ValueError("the checkpointer protects VMs; none was given")
    if failover is not None and mode != "ha":
        raise ValueError("a failover cycle is for mode 'ha'")
    start = bus.now() if start is None else start
    done = done or (lambda: False)
    codec = DevstateCodec(fingerprint)
    for v in vdevs:
        v.migration.codec = codec
    out = {"mode": mode, "interval": interval, "vms": [v.tenant.name for v in vdevs], "checkpoints": [],
           "failover": None, "migration": None, "spans": []}
    if mode == "ha":
        await _ha(hv, vdevs, interval, failover, start, done, vcpus, copy_cycles_per_page,
                  interval * SLACK_FRACTION if slack is None else slack, fingerprint, out)
    else:
        await _migrate(hv, vdevs, interval, start, done, threshold_pages, max_iterations, codec, out)
    return out


async def _ha(hv, vdevs, interval, failover, start, done, vcpus, copy, slack, fingerprint, out):
    bus = hv.pf.bus
    meta = await device_identity(hv.pf, fingerprint)
    ck = HaCheckpointer(vdevs, scanner=CommandScanner(hv), meta=meta, vcpus=vcpus, copy_cycles_per_page=copy)
    fail_at = None if failover is None else start + failover
    seen = {}                                   # what a failure at fail_at leaves behind

    async def failure():
        if bus.now() < fail_at:
            await bus.wait_cycles(fail_at - bus.now())
        seen.update(epoch=ck.committed, chains=ck.chains(),
                    interrupts={v.tenant.name: [list(e) for e in ck.visible_interrupts(v.tenant.name)]
                                for v in vdevs})
    watcher = None if fail_at is None else bus.spawn(failure())

    def failed():
        return bool(seen)

    async def take():
        try:
            await ck.checkpoint()
        except CheckpointRefused as e:
            log.warning("%s", e)
    if fail_at is None or bus.now() < fail_at:
        await take()                            # the base
    wanted = bus.now() + interval
    while not failed() and not await _ask(done):
        until = wanted if fail_at is None else min(wanted, fail_at)
        if bus.now() < until:
            await bus.wait_cycles(min(until - bus.now(), max(1, interval // 8)))
            continue
        if failed():
            break
        at = wanted
        if slack:
            _, completions = await ck.predict()
            at = aligned_time(max(wanted, bus.now()), completions, slack)
            if fail_at is not None:
                at = min(at, fail_at)
            if at > bus.now():
                await bus.wait_cycles(at - bus.now())
        if failed() or await _ask(done):
            break
        await take()
        wanted = max(at, bus.now()) + interval
    if watcher is not None:
        if not failed() and bus.now() < fail_at:
            watcher.cancel()                    # the run ended before the failure
        else:
            await watcher
    for r in ck.epochs:
        pred = sum(len(p[r.epoch - 1]) for p in ck.predicted.values() if r.epoch and len(p) >= r.epoch)
        out["checkpoints"].append({"epoch": r.epoch, "cycle": r.stopped - start, "pages": r.pages,
                                   "predicted_pages": pred, "predicted_only": r.predicted_only,
                                   "downtime": r.downtime, "cut": r.cut})
        out["spans"] += [{"name": s.name, "epoch": s.epoch, "start": s.start - start, "end": s.end - start}
                         for s in r.spans]
    cps = out["checkpoints"]
    out["totals"] = {"checkpoints": len(cps), "pages": sum(c["pages"] for c in cps),
                     "predicted_pages": sum(c["predicted_pages"] for c in cps),
                     "downtime": sum(c["downtime"] for c in cps),
                     "max_downtime": max((c["downtime"] for c in cps), default=0),
                     "bytes": sum(r.nbytes for r in ck.epochs)}
    if seen:
        out["failover"] = await _failover(hv, vdevs, ck, seen, fail_at - start, fingerprint)


async def _standby(hv, vdev, fingerprint):
    """A stand-in of ``vdev``'s VM on this Device: a tenant of as many pages, a virtual device of
    as many ADIs and vectors on free indexes, its device-state codec set."""
    t = await hv.create_tenant(f"{vdev.tenant.name}.standby", TenantKind.VM, vdev.tenant.pages)
    try:
        dst = await hv.vdcm.create(t, adis=len(vdev.adis), vectors=len(vdev.handles))
    except Exception:
        await hv.destroy_tenant(t)
        raise
    dst.migration.codec = DevstateCodec(fingerprint)
    return t, dst


async def _check_standby(dst, golden, saved):
    """``(pages differing, device-state differences)`` of stand-in ``dst`` (stopped) against the
    golden page digests and the device state ``saved``."""
    t = dst.tenant
    have = page_digests(await t.memory.read(0, t.pages * PAGE))
    pages = [p for p, (a, b) in enumerate(zip(golden, have)) if a != b]
    again = await dst.migration.codec.save(dst)
    return pages, compare_device_states(saved, again)


async def _failover(hv, vdevs, ck, seen, cycle, fingerprint):
    epoch = seen["epoch"]
    what = ("each VM's guest memory read whole on the primary when the restored epoch was snapshot "
            "(page digests), the device state that epoch saved, and the interrupts host observers had "
            "seen by the failure; restored onto a stand-in virtual device on other ADI, IMS-handle and "
            "domain indexes of the same Device, checked in STOP and then destroyed")
    res = {"cycle": cycle, "restored_epoch": None if epoch < 0 else epoch, "equal": False, "checked_against": what,
           "vms": {}}
    if epoch < 0:
        res["checked_against"] = "nothing: no epoch had committed by the failure"
        return res
    for v in vdevs:
        name = v.tenant.name
        snap = load_chain(seen["chains"][name])
        t, dst = await _standby(hv, v, fingerprint)
        try:
            m = dst.migration
            await m.set_state(MigrationState.RESUMING)
            m.write_data(encode_records(sorted(snap.pages.items()), snap.sections["device"]))
            await m.set_state(MigrationState.STOP)
            pages, diffs = await _check_standby(dst, ck.golden(name, epoch), snap.sections["device"])
        finally:
            await hv.destroy_tenant(t)
        restored = json.loads(snap.sections["vic"])["log"]
        shown = seen["interrupts"][name]
        res["vms"][name] = {"pages_differing": pages, "device_differences": diffs,
                            "interrupts_seen": len(shown), "interrupts_restored": len(restored),
                            "equal": not pages and not diffs and restored[:len(shown)] == shown}
    res["equal"] = all(x["equal"] for x in res["vms"].values())
    return res


async def _migrate(hv, vdevs, interval, start, done, threshold_pages, max_iterations, codec, out):
    bus = hv.pf.bus
    what = ("the source's guest memory when its last pages were read (page digests) and the device state it "
            "sent; the destination is a stand-in virtual device on other ADI, IMS-handle and domain indexes "
            "of the same Device, checked once restored (STOP) and then destroyed, and the source resumes")
    await bus.wait_cycles(interval)
    out["migration"] = {}
    for v in vdevs:
        if await _ask(done) and out["migration"]:
            break
        t, dst = await _standby(hv, v, codec.fingerprint)
        cpu = PageHashLog(v.tenant.memory)
        await cpu.start()
        v.migration.cpu_dirty = cpu
        try:
            rep = await live_migrate(v, dst, threshold=threshold_pages * PAGE, max_iterations=max_iterations,
                                     between=interval, resume=False, until=lambda: _ask(done))
            pages, diffs = await _check_standby(dst, rep.golden, rep.device_state)
        finally:
            v.migration.cpu_dirty = None
            await hv.destroy_tenant(t)
            if v.migration.state is not MigrationState.RUNNING:
                await v.migration.set_state(MigrationState.RUNNING)
        name = v.tenant.name
        out["migration"][name] = {
            "iterations": [{"initial_bytes": i, "dirty_bytes": d, "pages_sent": n}
                           for (i, d), n in zip(rep.iterations, rep.pages_sent + [0])],
            "stop_copy_pages": rep.stop_copy_pages, "total_pages": rep.total_pages,
            "downtime": rep.downtime_cycles, "converged": rep.converged, "equal": not pages and not diffs,
            "checked_against": what, "pages_differing": pages, "device_differences": diffs}
        out["spans"] += [{"name": n, "epoch": name, "start": a - start, "end": b - start} for n, a, b in rep.spans]
    mig = out["migration"].values()
    out["totals"] = {"checkpoints": 0, "pages": sum(m["total_pages"] for m in mig), "predicted_pages": 0,
                     "downtime": sum(m["downtime"] for m in mig),
                     "max_downtime": max((m["downtime"] for m in mig), default=0),
                     "bytes": None}


def compare_device_states(saved, restored):
    """Differences between two :class:`~siov.sw.hv.migration.DevstateCodec` states of one
    virtual device, ``restored`` saved again from where ``saved`` was restored: the ADIs,
    IMS entries and domain are matched in the virtual device's order, and every field must be
    equal except the indexes (and the domain the ADIs name, which must be the new one) and an
    IMS entry's PENDING bit (delivered by the host, not restored). A list of strings (empty:
    equal)."""
    (h1, b1), (h2, b2) = DevstateCodec.split(saved), DevstateCodec.split(restored)
    s1, s2 = devstate.decode(b1), devstate.decode(b2)
    diffs = []
    dom = {h1["domain"]: h2["domain"]}
    for k, (a, b) in enumerate(zip(s1.adis, s2.adis)):
        for f in ("state", "head", "tail", "base", "size", "pasid", "engine", "weight", "quantum", "dma_pasid",
                  "dma_valid"):
            if getattr(a, f) != getattr(b, f):
                diffs.append(f"queue {k} {f}: saved {getattr(a, f)}, restored {getattr(b, f)}")
        for f in ("domain", "dma_domain"):
            if dom.get(getattr(a, f), getattr(a, f)) != getattr(b, f):
                diffs.append(f"queue {k} {f}: saved {getattr(a, f)}, restored {getattr(b, f)}")
    pending = devstate.regmap.IRQ_IMS_ENTRY_PENDING_MASK
    for k, (a, b) in enumerate(zip(s1.ims, s2.ims)):
        wa, wb = list(a.words), list(b.words)
        wa[3] &= ~pending
        wb[3] &= ~pending
        if wa != wb:
            diffs.append(f"vector {k} IMS words: saved {wa}, restored {wb}")
    for a, b in zip(s1.domains, s2.domains):
        if (a.base, a.limit, a.runs) != (b.base, b.limit, b.runs):
            diffs.append(f"domain window or pages: saved {a.base:#x}+{a.limit} {a.runs}, "
                         f"restored {b.base:#x}+{b.limit} {b.runs}")
    for what, x, y in (("ADIs", s1.adis, s2.adis), ("IMS entries", s1.ims, s2.ims),
                       ("domains", s1.domains, s2.domains)):
        if len(x) != len(y):
            diffs.append(f"{len(x)} {what} saved, {len(y)} restored")
    return diffs
