"""The scheduler's policies on the model backend, and the bad inputs of issue 27 section 5.

* ``auto`` gangs a VM whose rings depend on each other (a WAIT that a SIGNAL
  of its other ring satisfies), logs the VM, the rings and the semaphore,
  and returns to per-ring when the dependency is resolved; a WAIT on
  another VM's semaphore address never gangs; a WAIT nobody signals times
  out on the device, and the scheduler returns to per-ring;
* ``gang`` rotates slices among VMs in proportion to their weights;
* ``qos`` protects a small tenant from copies dearer than a quantum, runs
  those every few slices, and reports one that can never fit;
* whatever the policy, the data results (memory, records, interrupts,
  faults, dirty logs) are the same, and they do not depend on the timing
  model; a flooding and a hostile guest leave the others' results correct.
"""

import pytest

from siov.rtl import regmap
from siov.rtl.cmd.dsa import Opcode, Status
from siov.sw.diff import compare, run as run_diff
from siov.sw.hv.hypervisor import Hypervisor
from siov.sw.model.dsa import Descriptor
from siov.sw.platform import run_program
from siov.sw.platform.timing import Coefficients, TimingModel
from siov.sw.sched.costmodel import CostModel
from siov.sw.sched.metrics import Metrics, jain
from siov.sw.sched.scheduler import POLICIES, Scheduler
from siov.sw.sched.workloads import FULL, Bench, client, ClientSpec, dependent, flood

from hv_support import PAGE, run

PROGRAM = "siov.sw.sched.programs:scheduled"


def _bench(policy, body, wait_timeout=1 << 20, **options):
    """Run ``body(b, sched)`` under a started scheduler; return (its result, the scheduler)."""
    async def main(bus, seed):
        hv = Hypervisor(bus)
        await hv.start()
        await hv.pf.set_wait(recheck_cycles=31, timeout_cycles=wait_timeout)
        b = Bench(hv, Metrics(), seed)
        sched = Scheduler(hv, policy=policy, metrics=b.metrics, **options)
        out = await body(b, sched)
        await sched.stop()
        await b.watcher.stop()
        return out, sched
    return run_program(main)


def test_policies_are_chosen_by_name_and_bad_settings_are_refused():
    async def prog(bus, hv):
        with pytest.raises(ValueError, match="Unknown scheduling policy 'fair'; choose one of per-ring, gang, auto, qos"):
            Scheduler(hv, policy="fair")
        with pytest.raises(ValueError, match="tick must be a positive number of cycles, not 0"):
            Scheduler(hv, tick=0)
        with pytest.raises(ValueError, match="the weight of vm0 must be a positive number"):
            Scheduler(hv, weights={"vm0": -1})
        with pytest.raises(ValueError, match="does not fit ENG.ARB_SLICE"):
            Scheduler(hv, slice_cycles=1 << 24)
    run(prog)
    assert POLICIES == ("per-ring", "gang", "auto", "qos")


def _pairs_and_flood(b, sched, pairs=8):
    async def body():
        pc, fl = await b.vm("pc"), await b.vm("flood")
        await sched.start()
        lat = []
        tasks = [b.bus.spawn(dependent(b, pc, pairs=pairs, check=True, latencies=lat)),
                 b.bus.spawn(flood(b, fl, count=12))]
        for t in tasks:
            await t
        records = [await b.bus.mem_read(a, 32) for a in b.records["pc"]]
        return lat, records
    return body()


def test_per_ring_leaves_the_mask_open():
    async def body(b, sched):
        lat, records = await _pairs_and_flood(b, sched)
        assert await b.bus.read(regmap.ENG_ELIGIBLE_CUR_LO) == 0xFFFF_FFFF
        return records
    records, sched = _bench("per-ring", body)
    assert all(r[0] == Status.SUCCESS and r[1] == 0 for r in records)      # every COMPARE equal
    assert sched.switches == [] and sched.mmio_by_purpose().get("mask", 0) == 0


def test_auto_gangs_a_vm_whose_rings_depend_on_each_other_and_returns_to_per_ring():
    async def body(b, sched):
        return await _pairs_and_flood(b, sched)
    (lat, records), sched = _bench("auto", body)
    assert all(r[0] == Status.SUCCESS and r[1] == 0 for r in records)
    gang, back = sched.switches[0], sched.switches[1]
    pc = sched.rings_of()["pc"]
    assert gang.tenant == "pc" and gang.mode == "gang" and "dependency" in gang.reason
    assert set(gang.adis) == {r.adi for r in pc} and gang.sem is not None
    assert back.tenant == "pc" and back.mode == "per-ring" and back.reason == "resolved"
    assert {s.tenant for s in sched.switches} == {"pc"}           # the flood has no dependency
    rep = sched.report()
    assert rep["switch_reasons"]["gang: dependency"] >= 1 and rep["tenants"]["pc"]["descriptors"] == 8 * 5


def test_auto_pair_latency_against_per_ring():
    """Ganging the dependent VM shortens its pairs against a flood."""
    lat = {}
    for policy in ("per-ring", "auto"):
        (lat[policy], _), _ = _bench(policy, lambda b, s: _pairs_and_flood(b, s, pairs=10))
    mean = {p: sum(v) / len(v) for p, v in lat.items()}
    assert mean["auto"] < 0.6 * mean["per-ring"], mean


def test_a_forged_wait_on_another_vms_semaphore_never_gangs_and_times_out():
    rec = run_diff(PROGRAM, "model", seed=2)
    switches = rec["timing"]["schedule"]["switches"]
    assert switches and {s["tenant"] for s in switches} == {"pc"}
    (forged,) = rec["tenants"]["bad"]["records"]
    assert int(forged[:2], 16) == Status.WAIT_TIMEOUT
    assert all(int(r[:2], 16) == Status.SUCCESS for r in rec["tenants"]["pc"]["records"])
    assert all(int(r[:2], 16) == Status.SUCCESS for r in rec["tenants"]["flood"]["records"])


def test_a_wait_never_signalled_times_out_and_the_scheduler_returns_to_per_ring():
    """Ring A WAITs on a semaphore that ring B SIGNALs, but B's SIGNAL sits behind a WAIT nobody
    signals: the scheduler gangs the VM, gives up after ``dep_timeout`` (reason: timeout), and the
    device completes B's WAIT with WAIT_TIMEOUT, after which the SIGNAL frees A. A WAIT that no
    SIGNAL matches never gangs."""
    async def body(b, sched):
        vm, other = await b.vm("vm"), await b.vm("lonely")
        await sched.start()
        sem = await b.buffer(vm, 1)
        await vm.driver.memory.write(sem, bytes(PAGE))
        a, bq = vm.queues
        done = []
        await b.submit(vm, bq, [Descriptor(opcode=Opcode.WAIT, sem_addr=sem + 8, sem_value=1, sem_mask=FULL),
                                Descriptor(opcode=Opcode.SIGNAL, sem_addr=sem, sem_value=1)],
                       on_done=lambda k, c, raw: done.append(("B%d" % k, raw[0])))
        await b.bus.wait_cycles(5000)                 # A's WAIT starts later, so it outlives B's
        await b.submit(vm, a, [Descriptor(opcode=Opcode.WAIT, sem_addr=sem, sem_value=1, sem_mask=FULL)],
                       on_done=lambda k, c, raw: done.append(("A", raw[0])))
        lone = await b.buffer(other, 1)
        await b.submit(other, other.queues[0], [Descriptor(opcode=Opcode.WAIT, sem_addr=lone, sem_value=5,
                                                           sem_mask=FULL)],
                       on_done=lambda k, c, raw: done.append(("lonely", raw[0])))
        while len(done) < 4:
            await b.bus.wait_cycles(500)
        return dict(done)
    done, sched = _bench("auto", body, wait_timeout=12_000, dep_timeout=4000)
    assert done == {"B0": Status.WAIT_TIMEOUT, "B1": Status.SUCCESS, "A": Status.SUCCESS,
                    "lonely": Status.WAIT_TIMEOUT}
    modes = [(s.tenant, s.mode, s.reason.split(":")[0]) for s in sched.switches]
    assert modes == [("vm", "gang", "dependency"), ("vm", "per-ring", "timeout")], sched.switches
    assert sched.switches[0].sem is not None


def test_gang_slices_follow_the_weights():
    async def body(b, sched):
        vms = [await b.vm("light", queues=1), await b.vm("heavy", queues=1)]
        await sched.start()
        start = b.bus.now()
        tasks = [b.bus.spawn(client(b, vm, ClientSpec(vm.name, 2048, 24), 60_000)) for vm in vms]
        for t in tasks:
            await t
        return start, start + 60_000                 # while both are saturated
    window, sched = _bench("gang", body, weights={"light": 1, "heavy": 3}, slice_cycles=2000)
    rep = sched.report(window)
    shares = {t: rep["tenants"][t]["share"] for t in ("light", "heavy")}
    assert shares["heavy"] == pytest.approx(0.75, abs=0.04), shares      # one slice in 30 either way
    assert [s.tenant for s in sched.switches if s.mode == "gang"][:8].count("heavy") >= 5


def test_qos_protects_a_small_tenant_and_reports_a_copy_that_can_never_fit():
    async def body(b, sched):
        await sched.start()                           # its placement rule: both rings on engine 0
        big, small = await b.vm("big", queues=1, pages=200), await b.vm("small", queues=1)
        tasks = [b.bus.spawn(client(b, big, ClientSpec("big", 48 * 1024, 4), 100_000)),
                 b.bus.spawn(client(b, small, ClientSpec("small", 512, 1, think=300), 100_000))]
        for t in tasks:
            await t
        huge = await b.buffer(big, 128)
        (t,) = await b.submit(big, big.queues[0], [Descriptor(opcode=Opcode.MEMMOVE, src_addr=huge,
                                                              dst_addr=huge + 64 * PAGE, xfer_size=64 * PAGE)])
        while not (await big.tenant.memory.read(t.record_addr, 1))[0]:
            await b.bus.wait_cycles(1000)
        return b.metrics
    p50 = {}
    for policy in ("per-ring", "qos"):
        metrics, sched = _bench(policy, body, slice_cycles=2000, placement=lambda count, load: [0] * count)
        p50[policy] = metrics.tenant("small")["p50"]
        big = metrics.tenant("big")["descriptors"]
        assert big >= 6, big                          # the big copies run, every few slices
    assert p50["qos"] < 0.5 * p50["per-ring"], p50
    assert sched.never_fits and sched.never_fits[0][0] == "big"


def test_the_cost_model_learns_a_line_per_opcode_and_reports_its_error():
    m = CostModel(min_samples=3)
    for size in (64, 512, 4096, 100, 2000, 8000):
        m.add("MEMMOVE", size, 1 + size // 4096, 10 + size / 8 + 45 * (1 + size // 4096))
    assert m.predict("MEMMOVE", 1024, 1) == pytest.approx(10 + 128 + 45)
    assert m.predict("NOOP", 0, 0) is None
    assert m.error(95) < 1e-6 and len(m.errors) == 3
    a, b = m.hardware()
    assert 0 <= a < 1 << 24 and 0 <= b < 1 << 16
    assert jain([1, 1, 1]) == 1.0 and jain([1, 0]) == 0.5


def _slow_timing():
    base = TimingModel()
    coeffs = {k: Coefficients(c.base * 3 + 7, c.per_piece * 3, c.per_read_beat * 3, c.per_write_beat * 3,
                              c.record * 3) for k, c in base.coefficients.items()}
    return TimingModel(coeffs, mmio_read=19, mmio_write=13)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_data_results_depend_neither_on_the_policy_nor_on_the_timing(seed):
    records = {p: run_diff(PROGRAM, "model", seed=seed, arg=p) for p in POLICIES}
    for p in POLICIES[1:]:
        assert compare(records["per-ring"], records[p]) == [], p
    slow = run_diff(PROGRAM, "model", seed=seed, arg="auto", timing=_slow_timing())
    assert compare(records["auto"], slow) == []
    assert records["auto"]["timing"] != slow["timing"]


@pytest.mark.sim
def test_a_scheduled_program_gives_the_same_data_results_on_the_rtl():
    model = run_diff(PROGRAM, "model", seed=1)
    rtl = run_diff(PROGRAM, "rtl", seed=1)
    assert compare(model, rtl) == []
    assert rtl["timing"]["schedule"]["switches"], "the scheduler ganged the dependent VM on the RTL too"


def test_a_placement_rule_is_told_the_tenant():
    """The VDCM tells its placement rule which tenant a device is for: TenantPlacement puts a
    named tenant's queues where it says (queue k on engines[k % len]) and the others by the
    default rule; a rule of (count, load) alone still places every tenant alike."""
    from siov.sw.hv.tenant import TenantKind
    from siov.sw.hv.vdcm import SpreadPlacement, TenantPlacement, place

    async def prog(bus, hv):
        hv.vdcm.placement = TenantPlacement({"pc": [1, 0], "solo": [1]})
        placed = {}
        for name, adis in (("pc", 2), ("solo", 3), ("other", 2)):
            t = await hv.create_tenant(name, TenantKind.VM, 16)
            placed[name] = (await hv.vdcm.create(t, adis=adis)).engines
        return placed
    assert run(prog) == {"pc": [1, 0], "solo": [1, 1, 1], "other": [0, 1]}
    assert place(lambda count, load: [0] * count, 2, [0, 0], object()) == [0, 0]
    assert place(SpreadPlacement(), 2, [3, 0], None) == [1, 0]
    with pytest.raises(ValueError, match=r"the engines of x must be a non-empty list of engine indices, not \[\]"):
        TenantPlacement({"x": []})


def test_the_scanner_sees_the_same_descriptor_posted_again_a_lap_later():
    """A guest that repeats one descriptor writes the same bytes in a slot each lap; between two
    scans the scanner still tells that it posted (its driver zeroed the record the descriptor
    asks for) and that the device ran it (the record written), so gang sees an interactive
    tenant's new request without waiting for a tick's TAIL read."""
    from siov.sw.sched.scanner import CommandScanner

    async def main(bus, seed):
        hv = Hypervisor(bus)
        await hv.start()
        b = Bench(hv, Metrics(), seed)
        vm = await b.vm("g", queues=1, ring=8)
        q = vm.queues[0]
        sc = CommandScanner(hv)
        buf = await b.buffer(vm, 2)
        copy = Descriptor(opcode=Opcode.MEMMOVE, src_addr=buf, dst_addr=buf + PAGE, xfer_size=64)
        seen = []
        await sc.scan()
        for k in range(q.size + 5):
            if k == q.size:
                await sc.scan()                       # every slot read, holding the same bytes
            await hv.pf.set_eligible([])              # the engines held off: posted, not run
            (t,) = await b.submit(vm, q, [copy])
            await sc.poll()
            ring = sc.rings[vm.driver.vdev.adis[0]]
            posted = ring.busy
            await hv.pf.set_eligible(range(hv.caps.num_adis))
            while not (await vm.tenant.memory.read(t.record_addr, 1))[0]:
                await bus.wait_cycles(50)
            await sc.poll()
            seen.append((posted, ring.busy))
        await b.watcher.stop()
        return seen[q.size:]
    assert run_program(main) == [(True, False)] * 5
