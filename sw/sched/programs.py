"""Host programs that run the scheduler, for the differential harness (:mod:`siov.sw.diff`).

:func:`scheduled` runs three VMs under a policy of the scheduler:

* ``pc``: a producer ring and a consumer ring joined by SIGNAL and WAIT, each
  copy checked by a COMPARE after it (equal only if its WAIT held it back);
* ``flood``: both its rings full of 4 KiB copies;
* ``bad``: a hostile guest. Its first queue posts garbage: five descriptors of
  random bytes under its own PASID (they reach the engine's checks), then one
  under a random PASID (refused: the ADI goes to ERROR). Its second posts a
  WAIT on the guest address of ``pc``'s semaphore; that address is a page of
  its own memory, which nobody signals, so it completes with WAIT_TIMEOUT.

What the program returns is the :class:`~siov.sw.diff.Recorder`'s record:
memory, completion records, interrupts, faults and dirty logs per tenant,
identical whatever the timing; the scheduler's decisions (its switches and
report) depend on timing and go under ``"timing"``.

:func:`pairs_against_flood` is the producer/consumer study of issue 27's
bench (bench/bench_sched.py): two VMs of dependent rings against a VM that
floods its rings, under one policy, on either backend; it returns the
figures the bench tabulates.
"""

from ...rtl import regmap
from ...rtl.cmd.dsa import DESC_BYTES, Opcode
from ...rtl.dma.defs import PAGE_SHIFT
from ..diff import Recorder
from ..hv.hypervisor import Hypervisor
from ..model.dsa import Descriptor
from .metrics import Metrics
from .scheduler import POLICIES, Scheduler
from .workloads import FULL, Bench, dependent, flood

__all__ = ["scheduled", "pairs_against_flood", "WAIT_TIMEOUT", "FIXED_SLICES"]

PAGE = 1 << PAGE_SHIFT
#: The device's WAIT timeout in this program, in cycles.
WAIT_TIMEOUT = 20_000


async def _hostile(b, bad, victim_sem):
    """Garbage on ``bad``'s first queue, a forged WAIT on its second; returns once both are done."""
    garbage, forged = bad.queues
    await bad.driver.dma_map(victim_sem - victim_sem % PAGE, PAGE)      # its own page at that address
    for k in range(6):
        raw = bytearray(b.rng(bad).randbytes(DESC_BYTES))
        if k < 5:
            raw[0:4] = (bad.tenant.pasid | (int.from_bytes(raw[0:4], "little") & ~0xFFFFF)).to_bytes(4, "little")
        await garbage.post_raw(bytes(raw))
    (ticket,) = await b.submit(bad, forged, [Descriptor(opcode=Opcode.WAIT, sem_addr=victim_sem, sem_value=1,
                                                        sem_mask=FULL)])
    while not (await bad.tenant.memory.read(ticket.record_addr, 1))[0]:
        await b.bus.wait_cycles(500)


async def _idle(hv):
    """Until no engine runs anything and no ring has work that can still run."""
    while await hv.pf.engine_busy():
        await hv.bus.wait_cycles(200)
    await hv.bus.wait_cycles(200)


async def scheduled(bus, seed, policy="auto"):
    """Three VMs (dependent rings, a flood, a hostile guest) under scheduling policy ``policy``;
    returns the Recorder's record with the scheduler's decisions under ``"timing"``."""
    hv = Hypervisor(bus)
    await hv.start()
    await hv.pf.set_wait(recheck_cycles=31, timeout_cycles=WAIT_TIMEOUT)
    rec = Recorder(hv, timing_counters=("dma_allowed",))
    metrics = Metrics()
    b = Bench(hv, metrics, seed, recorder=rec)
    pc, fl, bad = await b.vm("pc", pages=32), await b.vm("flood", pages=32), await b.vm("bad", pages=32)
    sched = Scheduler(hv, policy=policy, tick=4096, metrics=metrics)
    await sched.start()
    size = b.rng("size").choice([256, 512, 1000])
    sem = []
    tasks = [bus.spawn(dependent(b, pc, pairs=6, size=size, check=True, sem_out=sem)),
             bus.spawn(flood(b, fl, count=8))]
    while not sem:
        await bus.wait_cycles(50)
    tasks.append(bus.spawn(_hostile(b, bad, sem[0])))
    for t in tasks:
        await t
    await _idle(hv)
    await sched.stop()
    await b.watcher.stop()
    for vm in (pc, fl, bad):
        await rec.harvest(vm.name)
    out = await rec.finish()
    report = sched.report()
    out["timing"]["schedule"] = {"switches": [s.as_dict() for s in sched.switches],
                                 "policy": policy, "ticks": report["ticks"],
                                 "mmio_cycles": report["mmio_cycles"]}
    out["timing"]["engines_busy_at_end"] = await bus.read(regmap.ENG_ENG_STATUS)
    return out


#: The reference "policy" of :func:`pairs_against_flood`: bench_engines' test sequence, each VM
#: in turn every engine for a slice, whether it has work or not (the gang issue 27 measured).
FIXED_SLICES = "fixed slices"


async def _fixed_slices(b, vms, done, slice_cycles):
    """Each VM of ``vms`` in turn gets every engine for ``slice_cycles``, until ``done``."""
    while not done:
        for vm in vms:
            await b.hv.pf.set_eligible(list(vm.driver.vdev.adis))
            await b.bus.wait_cycles(slice_cycles)
            if done:
                break
    await b.hv.pf.set_eligible(range(b.hv.caps.num_adis))


async def pairs_against_flood(bus, seed, arg):
    """Two VMs of producer and consumer rings (``arg["pairs"]`` pairs of ``arg["size"]`` bytes
    each) against a VM flooding both its rings with ``arg["flood"]`` copies of 4 KiB each, under
    ``arg["policy"]`` (one of :data:`~siov.sw.sched.scheduler.POLICIES`, or :data:`FIXED_SLICES`)
    with ``arg["tick"]`` and ``arg["slice_cycles"]``.

    Returns the cycles from the first submission to the last completion, the pairs' mean and
    largest latency, the flood's bytes per cycle (from its first hand-over to its last
    completion), the engines' idle cycles with ineligible work and waiting on a WAIT (ENG
    counters), and, under a scheduler, its report's ``switches``, ``overhead`` and ``audit``.
    """
    policy = arg["policy"]
    if policy not in POLICIES + (FIXED_SLICES,):
        raise ValueError(f"unknown policy {policy!r}")
    hv = Hypervisor(bus)
    await hv.start()
    await hv.pf.set_wait(recheck_cycles=31, timeout_cycles=50_000_000)
    b = Bench(hv, Metrics(), seed)
    sched = None
    if policy in POLICIES:
        sched = Scheduler(hv, policy=policy, metrics=b.metrics, tick=arg["tick"], slice_cycles=arg["slice_cycles"])
    vms = [await b.vm(f"vm{i}") for i in range(2)]
    fl = await b.vm("flood")
    if sched is not None:
        await sched.start()
    done = []
    slicer = (bus.spawn(_fixed_slices(b, vms + [fl], done, arg["slice_cycles"])) if policy == FIXED_SLICES
              else None)
    idle0 = [await bus.read(regmap.ENG_IDLE_INELIGIBLE), await bus.read(regmap.ENG_IDLE_WAITING)]
    lat, span = [], [None, None]
    start = bus.now()
    tasks = [bus.spawn(dependent(b, vm, pairs=arg["pairs"], size=arg["size"], latencies=lat)) for vm in vms]
    tasks.append(bus.spawn(flood(b, fl, count=arg["flood"], span=span)))
    for t in tasks:
        await t
    end = bus.now()
    done.append(True)
    if slicer is not None:
        await slicer
    idle = [await bus.read(regmap.ENG_IDLE_INELIGIBLE) - idle0[0], await bus.read(regmap.ENG_IDLE_WAITING) - idle0[1]]
    out = {"cycles": end - start, "pair latency mean": round(sum(lat) / len(lat)), "pair latency max": max(lat),
           "flood bytes/cycle": round(arg["flood"] * len(fl.queues) * PAGE / (span[1] - span[0]), 3),
           "idle, ineligible": idle[0], "idle, waiting": idle[1]}
    if sched is not None:
        await sched.stop()
        rep = sched.report()
        out.update({"switches": rep["switches"], "overhead": rep["overhead"], "audit": dict(sched.audit)})
    await b.watcher.stop()
    return out
