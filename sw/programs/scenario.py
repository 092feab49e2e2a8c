"""Running a scenario (:mod:`siov.sw.scenario`) through the host stack: the program behind ``siov run``.

Tenants are made by the hypervisor: a VM gets a virtual device of its ADIs
and runs the frontend driver on it, a container opens its device node. Each
workload is a task that posts batches of descriptors to its queue and waits
for each completion, until the run's length in device cycles; each injected
fault is a task that misbehaves at its cycle:

* ``flood``: post as fast as possible without waiting: the ring fills and
  the driver is refused with :class:`~siov.sw.guest.driver.QueueFull`;
* ``foreign_map``: map hypercalls for pages the tenant does not own
  (refused by the hypervisor);
* ``forged_pasid``: a descriptor carrying another tenant's PASID, written
  straight into the ring: the device refuses it and puts the ADI in error;
  the driver resets the error and goes on.

These four make the device itself fault; the fault record goes to the
tenant, and the descriptor's record says how far it got:

* ``unmap_in_flight``: a 16 KiB copy, then at once a fast-path unmap of the
  last page it writes, while it runs: a write page fault on that page;
* ``outside_window``: a fill of the page just past the tenant's memory;
* ``forged_handle``: a descriptor asking for its completion interrupt
  through another tenant's IMS handle: the interrupt remapper's PASID
  check faults it (the descriptor itself completes);
* ``use_after_unpin``: a page mapped, then unpinned by an unmap hypercall,
  then filled by a descriptor as if it were still mapped.

A ``dependent`` workload is a producer ring (queue 0) and a consumer ring
(queue 1) of one VM joined by semaphores. Each chain posts on the consumer,
for ``depth`` pairs, a WAIT on semaphore ``j`` and a copy of buffer ``P_j``,
then on the producer a fill of ``P_j`` and the SIGNAL of semaphore ``j``
(the chain's number, so each chain waits for its own signals), and waits for
all of them. A pair's latency is device time, from its records: from the
fill's hand-over to its engine to the end of the copy.

With a ``[checkpoint]``, the checkpointer runs beside the workloads from the
start of the timeline to its end (:func:`siov.sw.ckpt.scenario.drive`, over
the scenario's VMs): HA epochs every ``interval`` cycles with, at
``failover``, the last committed epoch restored onto a stand-in virtual
device and checked against the primary; or a live migration of each VM onto
a stand-in. Its result (checkpoints, pages copied, downtime, the failover's
check, the stop/copy/resume spans, cycles on the run's timeline) is under
``checkpoint``; what depends on timing is listed in :data:`CHECKPOINT_TIMING`.

With a ``[scheduler]``, the GPU scheduler (:class:`~siov.sw.sched.scheduler.Scheduler`)
runs beside the tenants, from before the first workload to after the last,
and programs the arbiters and the eligibility mask; its switches (with the
VM, the rings and the semaphore that caused them), the gang slices they make
and its metrics are in the result under ``scheduler``, all timing dependent.
A per-tenant ``engines`` list places that tenant's queues
(:class:`~siov.sw.hv.vdcm.TenantPlacement`).

The result has, per tenant, what depends only on what happened (faults,
refused calls, hypercalls, traps) and what depends on timing (descriptors
completed, bytes, latency, interrupts), and is made of plain, sorted data so
that one file and seed give the same bytes every time on the model backend.

Each completion carries what its record says of the engine that ran it:
``engine`` (byte 28) and ``started``, the record's ``start_cycle`` (the low
word of the Device's cycle counter at the hand-over to the executor) placed
on the run's timeline. The counter is read once when the run starts, to
align it with the host's clock (``bus.now()``; on the rtl backend the
counter starts at the end of reset, and a register read samples it a few
cycles before it answers, so that alignment is good to those cycles), and a
start is unwrapped against the time the host saw the completion, so runs
longer than 2**32 cycles are placed right too.
"""

import collections
import random

from ...rtl.cmd.dsa import Flag, Opcode, Status
from ...rtl.dma.defs import PAGE_SHIFT
from ...rtl.regmap import GLOBAL_CYCLE_LO, AdiState, DmaFaultReason, IrqFaultReason
from ..guest.driver import DescriptorError, FrontendDriver, GuestDriverError, QueueError, QueueFull
from ..hv.hypervisor import HypercallError, Hypervisor, TenantKind
from ..hv.pf import DmaFault
from ..hv.unpin import LruUnpin
from ..hv.vdcm import TenantPlacement
from ..model.dsa import Descriptor
from ..scenario import parse, with_policy
from ..sched.scheduler import Scheduler

__all__ = ["run_scenario", "TIMING_DEPENDENT", "CHECKPOINT_TIMING"]

PAGE = 1 << PAGE_SHIFT
RING = 64
POLICY = {"rr": 0, "wrr": 1, "qos": 2}
#: Per-tenant result fields that depend on timing (differ between backends by design).
TIMING_DEPENDENT = ("descriptors", "bytes", "throughput_bytes_per_kcycle", "latency_p50", "latency_p99",
                    "latency_max", "interrupts", "ring_full", "statuses", "completions",
                    # how many of a flood's batches find the ring full depends on how fast the
                    # device empties it between two of the host's submissions
                    "refused.ring_full", "pair_latency")
#: Fields of the checkpointer's result that depend on timing: when each checkpoint falls, so what
#: it copies and how long it stops the VMs, and which epoch a failover restores. Whether the
#: restored state equals the primary's (``failover.equal``) does not.
CHECKPOINT_TIMING = ("checkpoints", "totals", "spans", "failover.restored_epoch", "failover.vms", "migration")
#: Semaphore mask of a dependent workload's WAITs: every bit of the 8 bytes.
FULL = (1 << 64) - 1


def _percentile(xs, p):
    if not xs:
        return 0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class _TenantRun:
    def __init__(self, spec, tenant, vdev, queues, driver):
        self.spec, self.tenant, self.vdev, self.queues, self.driver = spec, tenant, vdev, queues, driver
        self.latencies = []
        self.completions = []          # one dict per descriptor waited for, as in the result
        self.statuses = collections.Counter()
        self.refused = collections.Counter()
        self.ring_full = 0
        self.injected = []             # each fault injected: kind, cycle, what came of it
        self.clock = 0                 # bus.now() - the Device's cycle counter (_device_clock)
        self.pairs = []                # a dependent workload's pair latencies, device cycles


class _Deadline:
    """The cycle the run ends at: moved to now when the run is stopped early (``stop``), which
    also wakes the injected faults still waiting for their cycle, so that they never start."""

    def __init__(self, bus, end):
        self.end, self.stopped, self.event = end, False, bus.event()

    def stop(self, now):
        self.end, self.stopped = min(self.end, now), True
        self.event.set()


async def run_scenario(bus, seed, arg):
    """Run the scenario TOML ``arg["scenario"]``; ``seed`` overrides its own if ``arg["seed"]`` is None.

    ``arg["policy"]``, if given, runs the scenario under that scheduling policy
    (:func:`~siov.sw.scenario.with_policy`: ``siov run --policies``).

    On the model backend ``arg`` may also hold callables: ``_progress(done, total)`` is told
    the cycles run, and ``_stop()`` is asked, at the same ticks, whether to stop now: the run
    then ends as it would at its length (every workload finishes the batch it is waiting for)
    and its result says ``"partial": True``.
    """
    sc = parse(arg["scenario"], arg.get("source", "<scenario>"))
    if arg.get("policy"):
        sc = with_policy(sc, arg["policy"])
    seed = sc.seed if arg.get("seed") is None else seed
    progress, stop = arg.get("_progress"), arg.get("_stop")
    placed = {t.name: t.engines for t in sc.tenants if t.engines}
    hv = Hypervisor(bus, unpin_policy=LruUnpin(sc.cycles // 10),
                    placement=TenantPlacement(placed) if placed else None)
    await hv.start()
    runs = []
    for spec in sc.tenants:
        if spec.kind == "vm":
            t = await hv.create_tenant(spec.name, TenantKind.VM, spec.pages)
            vdev = await hv.vdcm.create(t, adis=spec.adis)
            drv = await FrontendDriver(vdev).open()
            for q in drv.queues:
                await q.open(RING)
                await q.enable()
            runs.append(_TenantRun(spec, t, vdev, drv.queues, drv))
        else:
            node = await hv.containers.add_container(spec.name, spec.pages, ring_size=RING)
            handle = await hv.containers.open(node.path, node.tenant)
            runs.append(_TenantRun(spec, node.tenant, node.vdev, [handle.queue], handle.driver))
    sched = None
    if sc.scheduler is not None:
        sched = Scheduler(hv, policy=sc.scheduler.policy, tick=sc.scheduler.tick,
                          slice_cycles=sc.scheduler.slice_cycles, weights={r.spec.name: r.spec.weight for r in runs})
        await sched.start()
    else:
        weights, quanta = [1] * hv.caps.num_adis, [0] * hv.caps.num_adis
        for r in runs:
            for a in r.vdev.adis:
                weights[a], quanta[a] = r.spec.weight, r.spec.quantum
        await hv.pf.set_arbiter(POLICY[sc.arbiter.policy], sc.arbiter.slice_cycles, sc.arbiter.cost_a,
                                sc.arbiter.cost_b, weights, quanta)
    clock = await _device_clock(bus)
    for r in runs:
        r.clock = clock
    start = bus.now()
    deadline = _Deadline(bus, start + sc.cycles)
    tasks = []
    for r in runs:
        for k, w in enumerate(r.spec.workloads):
            rng = random.Random(f"{seed}/{r.spec.name}/{k}/{w.seed}")
            if w.kind == "dependent":
                tasks.append(bus.spawn(_dependent(bus, r, w, rng, deadline)))
            else:
                tasks.append(bus.spawn(_workload(bus, r, r.queues[k % len(r.queues)], w, rng, deadline)))
    ckpt = None
    if sc.checkpoint is not None:
        from ..ckpt.scenario import drive
        c = sc.checkpoint
        ckpt = bus.spawn(drive(hv, [r.vdev for r in runs if r.spec.kind == "vm"], c.mode, c.interval,
                               failover=c.failover, start=start, done=lambda: bus.now() >= deadline.end))
    for f in sc.faults:
        r = next(x for x in runs if x.spec.name == f.tenant)
        victim = next((x for x in runs if x is not r), r)
        tasks.append(bus.spawn(_fault(bus, hv, r, victim, f, start + f.at, deadline)))
    # The hypervisor's housekeeping: faults routed, pages lazily unpinned, progress shown.
    while bus.now() < deadline.end:
        await bus.wait_cycles(min(5000, deadline.end - bus.now()))
        await hv.poll_faults()
        for r in runs:
            await hv.lazy_unpin(r.tenant)
        if progress:
            progress(bus.now() - start, sc.cycles)
        if stop and stop():
            deadline.stop(bus.now())
    for t in tasks:
        await t
    checkpoint = None if ckpt is None else await ckpt
    if sched is not None:
        await sched.stop()
    await bus.wait_cycles(200)
    await hv.poll_faults()
    result = await _result(bus, hv, sc, seed, runs, start)
    result["scheduler"] = None if sched is None else _schedule(sched, sc.scheduler, start)
    result["checkpoint"] = None if checkpoint is None else dict(checkpoint, failover_at=sc.checkpoint.failover)
    result["partial"] = deadline.stopped
    return result


def _schedule(sched, cfg, start):
    """What the scheduler decided and measured, on the run's timeline (cycles from ``start``)."""
    rep = sched.report()
    keep = ("ticks", "switch_reasons", "jain", "idle_ineligible", "idle_waiting", "mmio_accesses", "mmio_cycles",
            "overhead", "mmio_by", "cost_error_p95", "overrun_p95")
    return {"policy": cfg.policy, "tick": cfg.tick, "slice_cycles": cfg.slice_cycles,
            "switches": [dict(s.as_dict(), cycle=s.cycle - start) for s in sched.switches],
            "slices": [dict(x, start=x["start"] - start, end=x["end"] - start) for x in sched.gang_slices()],
            "never_fits": [{"tenant": t, "adi": a, "predicted_cycles": c} for t, a, c in sched.never_fits],
            "metrics": {k: rep[k] for k in keep}}


async def _device_clock(bus):
    """``bus.now()`` less the Device's cycle counter (GLOBAL.CYCLE_LO, unwrapped), as of now."""
    lo = await bus.read(GLOBAL_CYCLE_LO)
    return (bus.now() - lo) % (1 << 32)


def _started(rec, now, clock):
    """The bus cycle at which the descriptor of record ``rec``, seen complete at bus cycle
    ``now``, was handed to its engine: its ``start_cycle`` unwrapped against ``now``."""
    return now - ((now - clock - rec.start_cycle) % (1 << 32))


def _descriptor(rng, w, src, dst, span):
    size = rng.randint(*w.size)
    if w.kind == "copy":
        return Descriptor(opcode=Opcode.MEMMOVE, src_addr=src + rng.randrange(0, span - size + 1),
                          dst_addr=dst + rng.randrange(0, span - size + 1), xfer_size=size), size
    if w.kind == "fill":
        return Descriptor(opcode=Opcode.MEMFILL, dst_addr=dst + 8 * rng.randrange(0, (span - size) // 8 + 1),
                          xfer_size=size, src_addr=rng.getrandbits(64)), size
    return Descriptor(opcode=Opcode.COMPARE, src_addr=src, dst_addr=dst, xfer_size=size), size


async def _workload(bus, r, queue, w, rng, deadline):
    d = r.driver
    span = -(-w.size[1] // PAGE) * PAGE
    src, dst = d.memory.alloc(span), d.memory.alloc(span)
    await d.memory.write(src, rng.randbytes(span))
    await d.dma_map(src, span)
    await d.dma_map(dst, span)
    while bus.now() < deadline.end:
        batch = [_descriptor(rng, w, src, dst, span) for _ in range(w.batch)]
        t0 = bus.now()
        try:
            tickets = await queue.submit([b for b, _ in batch], interrupt=w.interrupt)
        except QueueFull:
            r.ring_full += 1
            await bus.wait_cycles(200)
            continue
        except QueueError:              # the queue is in error (a forged descriptor) until recovered
            r.statuses["refused_in_error"] += 1
            await bus.wait_cycles(200)
            continue
        for tk, (_, size) in zip(tickets, batch):
            try:
                rec = await queue.wait(tk, poll_cycles=10)
                status = Status.SUCCESS
            except DescriptorError as e:
                rec, status = e.record, Status(e.record.status)
            except QueueError:          # the queue was put in error (a forged descriptor)
                r.statuses["lost"] += 1
                continue
            r.statuses[status.name] += 1
            now = bus.now()
            r.latencies.append(now - t0)
            r.completions.append({"submitted": t0, "started": _started(rec, now, r.clock), "completed": now,
                                  "cycles": rec.cycles, "bytes": size if status is Status.SUCCESS else 0,
                                  "engine": rec.engine, "status": status.name})
        if w.interval:
            await bus.wait_cycles(w.interval)


async def _dependent(bus, r, w, rng, deadline):
    """Chains of ``w.depth`` SIGNAL-WAIT pairs between ``r``'s queues 0 (producer) and 1
    (consumer), until the run's end (see the module's docstring)."""
    d = r.driver
    prod, cons = r.queues[0], r.queues[1]
    stride = -(-w.size[1] // 8) * 8
    span = -(-w.depth * stride // PAGE) * PAGE
    src, dst, sem = d.memory.alloc(span), d.memory.alloc(span), d.memory.alloc(PAGE)
    await d.memory.write(sem, bytes(PAGE))
    for addr, n in ((src, span), (dst, span), (sem, PAGE)):
        await d.dma_map(addr, n)
    chain = 0
    while bus.now() < deadline.end:
        chain += 1
        sizes = [rng.randint(*w.size) for _ in range(w.depth)]
        consume, produce = [], []
        for j, size in enumerate(sizes):
            consume += [Descriptor(opcode=Opcode.WAIT, sem_addr=sem + 8 * j, sem_value=chain, sem_mask=FULL),
                        Descriptor(opcode=Opcode.MEMMOVE, src_addr=src + j * stride, dst_addr=dst + j * stride,
                                   xfer_size=size)]
            produce += [Descriptor(opcode=Opcode.MEMFILL, dst_addr=src + j * stride, xfer_size=size,
                                   src_addr=rng.getrandbits(64)),
                        Descriptor(opcode=Opcode.SIGNAL, sem_addr=sem + 8 * j, sem_value=chain)]
        t0 = bus.now()
        try:
            posted = [(cons, await cons.submit(consume, interrupt=w.interrupt), consume)]
        except QueueFull:
            r.ring_full += 1
            await bus.wait_cycles(200)
            continue
        except QueueError:
            r.statuses["refused_in_error"] += 1
            await bus.wait_cycles(200)
            continue
        while len(posted) == 1:             # the consumer's WAITs are posted: the producer waits for room
            try:
                posted.append((prod, await prod.submit(produce, interrupt=w.interrupt), produce))
            except QueueFull:
                r.ring_full += 1
                await bus.wait_cycles(200)
            except QueueError:
                r.statuses["refused_in_error"] += 1
                break
        ends = {}
        for queue, tickets, batch in posted:
            for k, (tk, desc) in enumerate(zip(tickets, batch)):
                try:
                    rec = await queue.wait(tk, poll_cycles=10)
                    status = Status.SUCCESS
                except DescriptorError as e:
                    rec, status = e.record, Status(e.record.status)
                except QueueError:
                    r.statuses["lost"] += 1
                    continue
                r.statuses[status.name] += 1
                now = bus.now()
                started = _started(rec, now, r.clock)
                moved = desc.xfer_size if status is Status.SUCCESS and desc.opcode in (Opcode.MEMMOVE,
                                                                                          Opcode.MEMFILL) else 0
                r.latencies.append(now - t0)
                r.completions.append({"submitted": t0, "started": started, "completed": now, "cycles": rec.cycles,
                                      "bytes": moved, "engine": rec.engine, "status": status.name})
                if status is Status.SUCCESS:
                    ends[(queue is cons, k)] = (started, started + rec.cycles)
        for j in range(w.depth):
            fill, move = ends.get((False, 2 * j)), ends.get((True, 2 * j + 1))
            if fill is not None and move is not None:
                r.pairs.append(move[1] - fill[0])
        if w.interval:
            await bus.wait_cycles(w.interval)


#: Device cycles past the run's end that the forged-PASID fault waits for the device to reach
#: its descriptor (the ring ahead of it drains once the workloads stop posting).
GRACE = 100_000


async def _fault(bus, hv, r, victim, f, at, deadline):
    if at >= deadline.end:
        return
    if at > bus.now() and await bus.wait_event(deadline.event, at - bus.now()):
        return                          # the run was stopped before the fault's cycle
    queue = r.queues[0]
    if f.kind == "flood":
        full = 0
        for _ in range(4 * RING):
            try:
                await queue.submit([Descriptor(opcode=Opcode.NOOP)] * 8)
            except QueueFull:
                full += 1
        r.ring_full += full
        r.refused["ring_full"] += full
        outcome = (f"{4 * RING} batches of 8 NOOPs posted without waiting; those the full ring refused "
                   f"are under refused")
    elif f.kind == "foreign_map":
        refused = 0
        for gfn in (r.tenant.pages, r.tenant.pages + 7, -1, (1 << 63)):
            try:
                await r.vdev.hypercall_map(gfn, 4)
            except HypercallError:
                refused += 1
        r.refused["foreign_map"] += refused
        outcome = f"{refused} of 4 map hypercalls refused"
    elif f.kind == "forged_pasid":
        outcome = await _forged_pasid(bus, r, queue, victim, deadline)
    else:
        outcome = await _device_fault(bus, hv, r, queue, victim, f.kind)
    r.injected.append({"kind": f.kind, "at": f.at, "outcome": outcome})


async def _forged_pasid(bus, r, queue, victim, run):
    """Post a descriptor under ``victim``'s PASID; the device consumes it (HEAD passes its
    slot), refuses it and puts the ADI in ERROR. HEAD is a fast-path read, so how long
    this takes changes no count of traps; the state and error code are read once, after."""
    slot = queue.ring.tail
    await queue.post_raw(Descriptor(opcode=Opcode.NOOP, pasid=victim.tenant.pasid))
    while bus.now() < run.end + GRACE:
        head, tail = await queue.head(), queue.ring.tail
        if 1 <= (head - slot) % queue.size <= (tail - slot) % queue.size:
            break
        await bus.wait_cycles(50)
    state, error = await queue.status()
    if state is not AdiState.ERROR:
        return f"not refused: the queue is {state.name}"
    r.refused[f"adi_error.{error.name}"] += 1
    await queue.recover()
    return f"refused by the device: ADI error {error.name}"


#: Bytes of the copy whose last page ``unmap_in_flight`` unmaps while it runs.
IN_FLIGHT_BYTES = 4 * PAGE


async def _device_fault(bus, hv, r, queue, victim, kind):
    """Make the device fault as ``kind`` says (see the module's docstring); what came of it."""
    d = r.driver
    before = len(r.tenant.faults)
    try:
        if kind == "unmap_in_flight":
            src, dst = d.memory.alloc(IN_FLIGHT_BYTES), d.memory.alloc(IN_FLIGHT_BYTES)
            await d.dma_map(src, IN_FLIGHT_BYTES)
            await d.dma_map(dst, IN_FLIGHT_BYTES)
            [ticket] = await queue.submit([Descriptor(opcode=Opcode.MEMMOVE, src_addr=src, dst_addr=dst,
                                                      xfer_size=IN_FLIGHT_BYTES)])
            await d.dma_unmap(dst + IN_FLIGHT_BYTES - PAGE, PAGE)
        elif kind == "outside_window":
            [ticket] = await queue.submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=r.tenant.pages * PAGE,
                                                      xfer_size=64)])
        elif kind == "forged_handle":
            buf = d.memory.alloc(PAGE)
            await d.dma_map(buf, PAGE)
            [ticket] = await queue.submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=buf, xfer_size=64,
                                                      flags=Flag.RCI, int_handle=victim.vdev.handles[0])])
        else:   # use_after_unpin
            buf = d.memory.alloc(PAGE)
            await d.dma_map(buf, PAGE)
            await r.vdev.hypercall_unmap(buf >> PAGE_SHIFT)
            [ticket] = await queue.submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=buf, xfer_size=64)])
        try:
            rec = await queue.wait(ticket, on="record")
        except DescriptorError as e:
            rec = e.record
    except (GuestDriverError, HypercallError) as e:
        return f"not injected: {e}"
    status = Status(rec.status & 0x7F)
    ended = f"descriptor {status.name}" + (f" after {rec.bytes_completed:,} bytes" if status is Status.PAGE_FAULT
                                           else "")
    await bus.wait_cycles(100)          # the fault record, queued with the completion, is drained now
    await hv.poll_faults()
    faults = [_fault_record(x) for x in r.tenant.faults[before:]]
    return ended + "; " + ("device faults: " + ", ".join(f"{x['unit'].upper()} {x['reason']}" for x in faults)
                           if faults else "no device fault")


def _fault_record(f):
    """A fault record with its reason named from the register map's encodings."""
    if isinstance(f, DmaFault):
        unit, names, where = "dma", DmaFaultReason, {"page": f.page, "write": f.write}
    else:
        unit, names, where = "irq", IrqFaultReason, {"handle": f.handle}
    try:
        reason = names(f.reason).name
    except ValueError:
        reason = f"{f.reason:#04x}"
    return {"unit": unit, "reason": reason, "code": f.reason, "pasid": f.pasid, **where}


async def _result(bus, hv, sc, seed, runs, start):
    cycles = bus.now() - start
    tenants = {}
    busy = [0] * hv.caps.num_engines
    done = [0] * hv.caps.num_engines
    for r in runs:
        lat = r.latencies
        moved = sum(c["bytes"] for c in r.completions)
        for c in r.completions:
            busy[c["engine"]] += c["cycles"]
            done[c["engine"]] += 1
        faults = [_fault_record(f) for f in r.tenant.faults]
        by_reason = collections.Counter(f"{f['unit']}.{f['reason']}" for f in faults)
        tenants[r.spec.name] = {
            "kind": r.spec.kind, "adis": r.vdev.adis, "engines": r.vdev.engines, "pasid": r.tenant.pasid,
            "descriptors": len(r.completions), "bytes": moved,
            "throughput_bytes_per_kcycle": round(1000 * moved / cycles, 1),
            "latency_p50": _percentile(lat, 50), "latency_p99": _percentile(lat, 99),
            "latency_max": max(lat, default=0),
            "interrupts": len(r.tenant.vic.log), "ring_full": r.ring_full,
            "statuses": dict(sorted(r.statuses.items())),
            "map_hypercalls": r.tenant.hypercalls["map"], "refused_hypercalls": r.tenant.hypercalls["refused"],
            "traps": r.vdev.traps, "faults": faults, "faults_by_reason": dict(sorted(by_reason.items())),
            "refused": dict(sorted(r.refused.items())), "injected": r.injected,
            **({"pair_latency": _pair_latency(r.pairs)} if any(w.kind == "dependent" for w in r.spec.workloads)
               else {}),
            "completions": [dict(c, submitted=c["submitted"] - start, started=c["started"] - start,
                                 completed=c["completed"] - start) for c in r.completions],
        }
    return {
        "tenants": tenants,
        "device": {"engines": [{"engine": e, "descriptors": done[e], "busy_cycles": busy[e],
                                "utilisation": round(busy[e] / cycles, 4)} for e in range(hv.caps.num_engines)],
                   "policy": "scheduler" if sc.scheduler is not None else sc.arbiter.policy, "cycles": cycles, "counters": await hv.pf.counters(),
                   "unattributed_faults": len(hv.unattributed), "lost_faults": hv.lost_faults},
        "seed": seed,
        "timing_dependent": [f"tenants.*.{k}" for k in TIMING_DEPENDENT]
                            + ["device.engines.*.descriptors", "device.engines.*.busy_cycles",
                               "device.engines.*.utilisation", "device.cycles", "device.counters",
                               "scheduler.switches", "scheduler.slices", "scheduler.never_fits",
                               "scheduler.metrics"] + [f"checkpoint.{k}" for k in CHECKPOINT_TIMING],
    }


def _pair_latency(pairs):
    """A dependent workload's pair latencies (device cycles) in brief."""
    return {"pairs": len(pairs), "mean": round(sum(pairs) / len(pairs), 1) if pairs else 0,
            "p50": _percentile(pairs, 50), "p99": _percentile(pairs, 99), "max": max(pairs, default=0)}
