"""Benchmark of the GPU scheduler (make bench BENCH=sched) on the model backend, and on the rtl backend for one study.

Writes build/bench/sched.json (several tables under one heading) for
docs/PERFORMANCE.md:

* producer/consumer VMs against a flooding VM at 2 and 4 engines, per policy, and at 2 engines on the rtl backend
  (and the fixed slices of bench_engines, for reference), with the goals of
  ``auto`` checked against both static policies;
* the four client workloads of the Linux DRM "fair" scheduler series under
  every policy, every client on engine 0;
* fairness: four tenants that saturate both engines, equal weights and
  weights 1:2:3:4, over 100 slices;
* QoS: copies dearer than a quantum against a small interactive tenant;
* isolation under load: an interactive tenant's p99 alone and against a flood;
* the scanner: recall of the pages the device wrote and false rejections.

Every run is host code on the model backend: the workloads submit through
their guests' drivers and time completions from their records
(:mod:`siov.sw.sched.workloads`); the scheduler's own MMIO is measured in
device cycles (``overhead``: its share of the run).
"""

import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"

from siov.rtl.cmd.dsa import Opcode, Status                             # noqa: E402
from siov.rtl.params import DeviceParams                                 # noqa: E402
from siov.sw.hv.hypervisor import Hypervisor                             # noqa: E402
from siov.sw.hv.vdcm import TenantPlacement                              # noqa: E402
from siov.sw.model.dsa import Descriptor                                 # noqa: E402
from siov.sw.platform import run_program                                 # noqa: E402
from siov.sw.sched.metrics import Metrics, jain                          # noqa: E402
from siov.sw.sched.programs import FIXED_SLICES                          # noqa: E402
from siov.sw.sched.scanner import CommandScanner, Verdict                 # noqa: E402
from siov.sw.sched.scheduler import POLICIES, Scheduler                  # noqa: E402
from siov.sw.sched.workloads import (DRM_CLIENTS, PAGE, Bench, ClientSpec, client, dependent,  # noqa: E402
                                     flood)

SLICE = 2000
TICK = 8192
TITLE = "GPU scheduler (model backend; producer/consumer on the rtl backend too)"
PAIRS_AGAINST_FLOOD = "siov.sw.sched.programs:pairs_against_flood"


def ON_ENGINE_0(count, load):
    """A placement rule: every queue on engine 0."""
    return [0] * count


AUDIT = {"run": 0, "failed": 0, "false rejection": 0, "missed fault": 0}


def _run(body, policy, engines=2, placement=None, report_window=False, **options):
    """Run ``body(b, sched)`` on the model backend; ``(its result, the scheduler's report)``
    (with ``report_window``, shares over the cycle window the body returns)."""
    window = report_window
    async def main(bus, seed):
        hv = Hypervisor(bus, placement=placement)
        await hv.start()
        await hv.pf.set_wait(recheck_cycles=31, timeout_cycles=50_000_000)
        b = Bench(hv, Metrics(), seed)
        sched = None
        if policy in POLICIES:
            sched = Scheduler(hv, policy=policy, metrics=b.metrics, tick=options.pop("tick", TICK),
                              slice_cycles=options.pop("slice_cycles", SLICE), **options)
        out = await body(b, sched)
        report = {}
        if sched is not None:
            await sched.stop()
            report = sched.report(out if window else None)
            for k, v in sched.audit.items():
                AUDIT[k] += v
        await b.watcher.stop()
        return out, report
    return run_program(main, params=DeviceParams(num_engines=engines))


def _pct(x):
    return None if x is None else round(100 * x, 2)


# -- producer/consumer against a flood -----------------------------------------------------------

def _dependency_run(policy, engines, backend="model", **overrides):
    """One run of :func:`~siov.sw.sched.programs.pairs_against_flood` on ``backend``."""
    arg = {"policy": policy, "pairs": 12, "size": 512, "flood": 24, "tick": TICK, "slice_cycles": SLICE,
           **overrides}
    t0 = time.monotonic()
    out = run_program(PAIRS_AGAINST_FLOOD, backend, params=DeviceParams(num_engines=engines), arg=arg,
                      **({"quiet": True} if backend == "rtl" else {}))
    for k, v in out.pop("audit", {}).items():
        AUDIT[k] += v
    return out, time.monotonic() - t0


def _dependency_row(engines, policy, out, backend):
    return {"backend": backend, "engines": engines, "policy": policy,
            **{k: v for k, v in out.items() if k not in ("switches", "overhead")},
            "switches": out.get("switches", "-"), "overhead %": _pct(out["overhead"]) if "overhead" in out else "-"}


def dependency(rtl=True):
    """The producer/consumer study at 2 and 4 engines on the model backend, and at 2 engines on
    the rtl backend (the Device's default build) when ``rtl``."""
    rows = []
    runs = [("model", engines) for engines in (2, 4)] + ([("rtl", 2)] if rtl else [])
    for backend, engines in runs:
        for policy in POLICIES + (FIXED_SLICES,):
            out, wall = _dependency_run(policy, engines, backend)
            rows.append(_dependency_row(engines, policy, out, backend))
            print(f"{wall:.0f} s", rows[-1], flush=True)
    goals = []
    for backend, engines in runs:
        r = {row["policy"]: row for row in rows if (row["backend"], row["engines"]) == (backend, engines)}
        a, g, p = r["auto"], r["gang"], r["per-ring"]
        lat = a["pair latency mean"] / g["pair latency mean"]
        thr = a["flood bytes/cycle"] / p["flood bytes/cycle"]
        idle = a["idle, ineligible"] / max(g["idle, ineligible"], 1)
        idle_fixed = a["idle, ineligible"] / max(r["fixed slices"]["idle, ineligible"], 1)
        goals.append({"backend": backend, "engines": engines,
                      "pair latency auto/gang (goal <= 1.2)": round(lat, 3),
                      "flood throughput auto/per-ring (goal >= 0.9)": round(thr, 3),
                      "idle-ineligible auto/gang (goal <= 0.10)": round(idle, 3),
                      "idle-ineligible auto/fixed slices": round(idle_fixed, 3),
                      "met": "all" if lat <= 1.2 and thr >= 0.9 and idle <= 0.1 else
                             ", ".join(n for n, ok in (("latency", lat <= 1.2), ("throughput", thr >= 0.9),
                                                       ("idle", idle <= 0.1)) if ok) + " only"})
    return rows, goals


# -- the DRM fair scheduler's client workloads ---------------------------------------------------

def _clients_body(specs, duration):
    async def body(b, sched):
        if sched is not None:
            await sched.start()
        vms = [await b.vm(s.name, queues=1, pages=40) for s in specs]
        tasks = [b.bus.spawn(client(b, vm, s, duration)) for vm, s in zip(vms, specs)]
        for t in tasks:
            await t
        return {s.name: b.metrics.tenant(s.name, duration) for s in specs}
    return body


def drm():
    rows = []
    for workload, specs in DRM_CLIENTS.items():
        weights = {s.name: s.weight for s in specs}
        for policy in POLICIES:
            out, rep = _run(_clients_body(specs, 200_000), policy, placement=ON_ENGINE_0, weights=weights)
            shares = {t: rep["tenants"].get(t, {}).get("share", 0.0) for t in weights}
            total = sum(weights.values())
            j = jain(shares[t] / (weights[t] / total) for t in weights)
            for s in specs:
                o = out[s.name]
                rows.append({"workload": workload, "policy": policy, "client": s.name, "weight": s.weight,
                             "descriptors": o["descriptors"], "bytes/cycle": o["bytes_per_cycle"],
                             "p50": o["p50"], "p99": round(o["p99"]) if o["p99"] is not None else None,
                             "share": round(shares[s.name], 3), "Jain": round(j, 3),
                             "overhead %": _pct(rep["overhead"])})
            print(rows[-2:], flush=True)
    return rows


# -- fairness over 100 slices --------------------------------------------------------------------

def _saturate_body(names, duration):
    async def body(b, sched):
        vms = [await b.vm(n, queues=2, pages=40) for n in names]
        await sched.start()
        start = b.bus.now()
        tasks = [b.bus.spawn(client(b, vm, ClientSpec(vm.name, 2048, 16), duration, queue=k))
                 for vm in vms for k in (0, 1)]
        for t in tasks:
            await t
        return start, start + duration
    return body


def fairness():
    rows = []
    names = ["t1", "t2", "t3", "t4"]
    for label, weights in (("equal", {n: 1 for n in names}), ("1:2:3:4", {n: i + 1 for i, n in enumerate(names)})):
        for policy in POLICIES:
            window, rep = _run(_saturate_body(names, 100 * SLICE), policy, weights=weights, report_window=True)
            total = sum(weights.values())
            entitled = {t: weights[t] / total for t in names}
            share = {t: rep["tenants"][t]["share"] for t in names}
            rows.append({"weights": label, "policy": policy, "slices": 100,
                         **{f"share {t}": share[t] for t in names},
                         "entitled": " / ".join(f"{entitled[t]:.3f}" for t in names),
                         "Jain (goal >= 0.99)": rep["jain"],
                         "worst |share - entitled|, points (goal <= 2)": round(
                             100 * max(abs(share[t] - entitled[t]) for t in names), 2),
                         "worst relative, %": round(100 * max(abs(share[t] / entitled[t] - 1) for t in names), 1),
                         "overhead %": _pct(rep["overhead"])})
            print(rows[-1], flush=True)
    return rows


# -- QoS: copies dearer than a quantum ------------------------------------------------------------

def _qos_body(duration):
    async def body(b, sched):
        await sched.start()
        big, small = await b.vm("big", queues=1, pages=200), await b.vm("small", queues=1)
        tasks = [b.bus.spawn(client(b, big, ClientSpec("big", 48 * 1024, 4), duration)),
                 b.bus.spawn(client(b, small, ClientSpec("small", 512, 1, think=300), duration))]
        for t in tasks:
            await t
        src = await b.buffer(big, 32)
        (t,) = await b.submit(big, big.queues[0], [Descriptor(opcode=Opcode.MEMMOVE, src_addr=src,
                                                              dst_addr=src + 16 * PAGE, xfer_size=16 * PAGE)])
        while not (await big.tenant.memory.read(t.record_addr, 1))[0]:
            await b.bus.wait_cycles(1000)
        return {n: b.metrics.tenant(n, duration) for n in ("big", "small")}
    return body


def qos():
    rows = []
    for policy in POLICIES:
        out, rep = _run(_qos_body(200_000), policy, placement=ON_ENGINE_0)
        rows.append({"policy": policy, "small p50": out["small"]["p50"], "small p99": round(out["small"]["p99"]),
                     "big copies": out["big"]["descriptors"], "big bytes/cycle": out["big"]["bytes_per_cycle"],
                     "overrun p95, % of slice": _pct(rep["overrun_p95"]),
                     "overrun max, % of slice": _pct(rep["overrun_max"]),
                     "cost error p50 %": _pct(rep["cost_error_p50"]), "cost error p95 %": _pct(rep["cost_error_p95"]),
                     "never fits": len(rep["never_fits"]), "overhead %": _pct(rep["overhead"])})
        print(rows[-1], flush=True)
    return rows


# -- isolation under load ------------------------------------------------------------------------

def _isolation_body(with_flood, duration):
    async def body(b, sched):
        await sched.start()
        vm = await b.vm("interactive", queues=1)
        tasks = [b.bus.spawn(client(b, vm, ClientSpec("interactive", 2048, 1, think=1000), duration))]
        if with_flood:
            fl = await b.vm("flood", queues=2)
            tasks += [b.bus.spawn(client(b, fl, ClientSpec("flood", PAGE, 16), duration, queue=k)) for k in (0, 1)]
        for t in tasks:
            await t
        return b.metrics.tenant("interactive")
    return body


#: The isolation study's placements: the VDCM's default rule (SpreadPlacement) puts the
#: interactive queue on an engine the flood also uses; the other gives each tenant an engine.
PLACEMENTS = {"shared engine (VDCM default)": None,
              "separate engines": TenantPlacement({"interactive": [0], "flood": [1]})}


def isolation():
    rows = []
    for placement, rule in PLACEMENTS.items():
        for policy in POLICIES:
            solo, _ = _run(_isolation_body(False, 150_000), policy, placement=rule)
            loaded, rep = _run(_isolation_body(True, 150_000), policy, placement=rule)
            rows.append({"placement": placement, "policy": policy, "p50 alone": solo["p50"],
                         "p99 alone": round(solo["p99"]), "p50 with flood": loaded["p50"],
                         "p99 with flood": round(loaded["p99"]),
                         "p99 ratio (goal <= 2)": round(loaded["p99"] / solo["p99"], 2),
                         "flood bytes/cycle": rep["tenants"]["flood"]["bytes_per_cycle"] if "flood" in rep["tenants"]
                         else None, "overhead %": _pct(rep["overhead"])})
            print(rows[-1], flush=True)
    return rows


# -- the scanner -----------------------------------------------------------------------------------

def _scanner_body():
    """Every kind of descriptor the bench posts, and a hostile corpus, each batch scanned with
    the engines held off, then run: the dirty log against the predicted pages."""
    import random
    rng = random.Random(5)

    async def body(b, sched):
        hv = b.hv
        vm = await b.vm("guest", queues=2, pages=64, ring=256)
        sc = CommandScanner(hv)
        buf = await b.buffer(vm, 24)
        stats = {"descriptors": 0, "pages written": 0, "pages predicted": 0, "recalled": 0}
        for batch in range(12):
            work = []
            for k in range(40):
                op = rng.choice([Opcode.MEMMOVE, Opcode.MEMFILL, Opcode.COMPARE, Opcode.NOOP, Opcode.SIGNAL,
                                 Opcode.WAIT, 0x99])
                size = rng.choice([64, 512, 2048, PAGE, 3 * PAGE, 0])
                lo = rng.randrange(0, 30 * PAGE, 8)          # pages 24..29 are not mapped
                d = Descriptor(opcode=op, xfer_size=size, src_addr=buf + lo % (20 * PAGE),
                               dst_addr=buf + lo, sem_value=0, sem_mask=0)
                work.append(d)
            await hv.pf.set_eligible([])
            for q in vm.queues:
                await q.submit(work[:20] if q.index == 0 else work[20:])
            new, _ = await sc.scan()
            await hv.pf.set_eligible(range(hv.caps.num_adis))
            await b.bus.wait_cycles(120_000)
            dirty = await hv.pf.harvest(vm.tenant.domain, vm.tenant.pages)
            written = {p for p in range(vm.tenant.pages) if dirty[p // 8] >> p % 8 & 1}
            predicted = set().union(*(d.writes for d in new))
            stats["descriptors"] += len(new)
            stats["pages written"] += len(written)
            stats["pages predicted"] += len(predicted)
            stats["recalled"] += len(written & predicted)
            for d in new:
                raw = await vm.tenant.memory.read(d.record_addr, 32) if d.record_addr is not None else None
                if raw is not None:
                    ok = raw[0] & 0x7F == Status.SUCCESS
                    key = ("run" if ok and d.verdict is Verdict.RUN else "failed" if not ok and d.verdict
                           is not Verdict.RUN else "false rejection" if ok else "missed fault")
                    stats[key] = stats.get(key, 0) + 1
        return stats
    return body


def scanner():
    out, _ = _run(_scanner_body(), None)
    return [{"corpus": "bench opcodes, sizes, mapped and unmapped pages (480 descriptors)",
             "recall %": round(100 * out["recalled"] / max(out["pages written"], 1), 2),
             "pages written": out["pages written"], "pages predicted": out["pages predicted"],
             "predicted run, ran": out.get("run", 0), "predicted to fail, failed": out.get("failed", 0),
             "false rejections": out.get("false rejection", 0), "missed faults": out.get("missed fault", 0)},
            {"corpus": "every scheduled run above (records checked as they completed)",
             "recall %": "-", "pages written": "-", "pages predicted": "-",
             "predicted run, ran": AUDIT["run"], "predicted to fail, failed": AUDIT["failed"],
             "false rejections": AUDIT["false rejection"], "missed faults": AUDIT["missed fault"]}]


NOTES = {
    "goals": (
        "Measured on the model backend (sw/platform: the Device in Python, timing fitted on the RTL), and the "
        "producer/consumer study at 2 engines on the rtl backend too (the Verilated Device). The scanner's "
        "hypothesis corpus (tests/test_sched_scanner.py) never makes it raise. The data results of a "
        "scheduled program are identical on the RTL (tests/test_sched.py, sim); the scheduler's decisions "
        "there are timing and are not compared."),
    "dependency": (
        "Two VMs, each a producer ring (MEMFILL 512 B, SIGNAL) and a consumer ring (WAIT, MEMMOVE 512 B), 12 "
        "pairs each, consumers posted first; a third VM floods both its rings with 24 MEMMOVEs of 4 KiB each "
        "(bench_engines' workload, queues placed by the VDCM's SpreadPlacement). WAIT "
        "re-check every 32 cycles. Pair latency: from the producer's fill handed to its engine to the "
        "consumer's copy completed, as the guest sees the records (polled every 8 cycles). Scheduler tick "
        f"{TICK} cycles, slice {SLICE}. 'fixed slices' is bench_engines' test sequence (each VM every engine "
        "for a slice in turn, whether it has work or not), for reference: it is the gang the issue measured. "
        "The same host program (sw/sched/programs.py: pairs_against_flood) runs on both backends; the rtl rows "
        "are the full study on the Verilated Device's default build (2 engines; a 4-engine Device is a build "
        "of its own, not made here), 2-3 s of wall time each. The data results agree across backends; the "
        "timing does not: the RTL's pair latencies are 0.4-0.6 of the model's under every policy (the model's "
        "timing is fitted on single descriptors; where a pair's chain of WAIT, hand-over and copy loses the "
        "time is not analysed here)."),
    "auto": (
        "gang is the policy `gang` above (GVT-g's slices, which end early when the VM has no work); "
        "'fixed slices' is the gang the issue measured (80k idle-ineligible cycles on the RTL)."),
    "drm": (
        "The client workloads of the DRM 'fair' scheduler series (drm_sched kunit tests), as MEMMOVE clients "
        "on one engine (placement rule: every queue on engine 0), 200k cycles: deep queues keep 16 copies of 2 "
        "KiB in flight; heavy: 4 of 16 KiB; interactive: one 1 KiB copy then 2000 cycles of thought; "
        "oversubscriber: 48 of 4 KiB; low-priority hog (weight 1): 8 of 16 KiB; heavy-interactive (weight 4): 2 "
        "of 4 KiB then 500 cycles. share: of the engine cycles the records show; Jain over share / weight."),
    "fairness": (
        "Four tenants, each two queues (one per engine) kept 16 copies of 2 KiB deep, for 100 slices of "
        f"{SLICE} cycles. share: of the engine cycles the completion records show, for the descriptors "
        "that completed while all four were saturated (the drain after it is equal work for all). 'Within 2% "
        "of the weights' is read as within 2 percentage points of the entitled share; the relative error is "
        "shown beside it."),
    "qos": (
        "A big tenant keeps 4 copies of 48 KiB in flight (about 7.5k cycles each against a quantum of 1k: half "
        "of a 2k slice on the engine it shares) beside a small interactive tenant (one 512 B copy, then 300 "
        "cycles), both on engine 0, 200k cycles; then one 64 KiB copy that no budget of 8 slices covers. "
        "Overrun: per tenant and slice, the cycles charged beyond what its budget held at the slice's start. "
        "Cost error: the online model's prediction of each record's cycles, made before the record arrived."),
    "isolation": (
        "An interactive tenant (one 2 KiB copy, then 1000 cycles) alone, then beside a tenant that keeps 16 "
        "copies of 4 KiB in flight on each of its two queues, 150k cycles, model backend. Placement 'shared "
        "engine' is the VDCM's default rule (SpreadPlacement), which puts the interactive queue on an engine "
        "the flood also uses; 'separate engines' gives the interactive tenant engine 0 and both flood queues "
        "engine 1 (TenantPlacement)."),
    "scanner": (
        "Batches of 40 descriptors (MEMMOVE, MEMFILL, COMPARE, NOOP, SIGNAL, WAIT on a zero semaphore that "
        "holds, an opcode the engine lacks; sizes 0 to 12 KiB; addresses over mapped and unmapped pages) "
        "scanned with the engines held off, then run; recall: pages in the dirty log that the scanner "
        "predicted written."),
}


#: Why a policy misses the isolation goal, as measured (bench notes).
ISOLATION_SHORTFALL = {
    "gang": (
        "a gang gives one tenant every engine, whatever the placement: a request that arrives while the flood "
        "holds them waits for the flood's slice to end, and then for the flood's copy already running on its "
        "engine (the mask stops hand-overs, not a running descriptor: a 4 KiB copy is about 1,260 cycles at the "
        "flood's 3.25 B/cycle per engine), against a p99 alone of 393; on the shared engine, with slices of 500 and 250 cycles the "
        "p99 stays 1,561 and 1,569 (p50 481 and 457) at 4.3% and 3.9% scheduler cost, so the running copy, "
        "not the slice, is what limits it. The 21.9x measured before came from the scanner: once the "
        "interactive ring wrapped, its repeated descriptor (the same bytes in the slot each lap) was seen "
        "only at the next tick's TAIL read (8,192 cycles); it now reads the record the driver zeroes"),
    "qos": (
        "qos admits tenants (most owed first, until their quanta cover half the engines' slice) across "
        "all engines, whatever the placement: on separate engines the interactive tenant is held out of "
        "the mask while the flood is admitted, though its own engine is idle (p99 alone 993 against 393 "
        "under per-ring); a slice of 500 cycles instead of 2,000 gives 1.65x at 3.1% scheduler cost; "
        "admission per engine would remove it, not done"),
}


def goals(tables):
    """One row per goal of the issue, measured, with whether it is met and, if not, why."""
    t = {tab["title"]: tab["rows"] for tab in tables}
    rows = []
    for g in t["auto against both static policies"]:
        def idle_of(policy, g=g):
            return next(f"{r['idle, ineligible']:,}" for r in t["Producer/consumer against a flood, per policy"]
                        if (r["backend"], r["engines"], r["policy"]) == (g["backend"], g["engines"], policy))
        lat, thr, idle = (g["pair latency auto/gang (goal <= 1.2)"], g["flood throughput auto/per-ring (goal >= 0.9)"],
                          g["idle-ineligible auto/gang (goal <= 0.10)"])
        why = "" if idle <= 0.1 else (
            f"idle-ineligible is {idle:.2f} of gang's (GVT-g slices that end when the VM has no work left) and "
            f"{g['idle-ineligible auto/fixed slices']:.3f} of the fixed slices the issue measured: while a VM is "
            "ganged, its engines sit idle between its short descriptors (a WAIT or SIGNAL finishes before the "
            "prefetch has its next descriptor) with the flood ready and masked"
            + (", about 20 cycles for each of the 96 descriptors of the two dependent VMs; tried: ganging only the "
               "engines of the rings with a SIGNAL pending (the waiting ring's engine left open) cut it from 1,871 "
               "to 1,626 cycles only, and raised the pair latency from 1,138 to 3,462 cycles (1.27x gang's), so it "
               "was not kept" if g["backend"] == "model" else
               f"; on the RTL, auto's {idle_of('auto')} idle-ineligible cycles are set against gang's "
               f"{idle_of('gang')} (the model's gang: 4,894), so the ratio stays above 0.1 though auto's count is "
               "the smaller one on this backend"))
        rows.append({"goal": f"auto beats both static policies at {g['engines']} engines ({g['backend']})",
                     "measured": f"latency {lat} of gang's, flood {thr} of per-ring's, idle-ineligible {idle} of "
                                 f"gang's", "met": "yes" if lat <= 1.2 and thr >= 0.9 and idle <= 0.1 else "no", "why not, or a caveat": why})
    fair = t["Fairness over 100 slices"]
    jain_min = min(r["Jain (goal >= 0.99)"] for r in fair if r["weights"] == "equal")
    rows.append({"goal": "equal weights: Jain >= 0.99 over 100 slices", "measured": f"lowest {jain_min} (every policy)",
                 "met": "yes" if jain_min >= 0.99 else "no", "why not, or a caveat": ""})
    dev = max(r["worst |share - entitled|, points (goal <= 2)"] for r in fair if r["weights"] != "equal")
    rel = max(r["worst relative, %"] for r in fair if r["weights"] != "equal")
    rows.append({"goal": "weights 1:2:3:4: shares within 2% of the weights", "measured":
                 f"worst {dev} points ({rel}% relative)",
                 "met": "yes" if dev <= 2 else "no", "why not, or a caveat": "" if rel <= 2 else
                 "read as 2 points; relative, gang is off by up to one 2000-cycle slice of the lightest tenant's "
                 "about 20 in the window"})
    q = {r["policy"]: r for r in t["QoS: copies dearer than a quantum"]}["qos"]
    rows.append({"goal": "QoS: slice overrun <= 5% of the slice", "measured":
                 f"p95 {q['overrun p95, % of slice']}%, max {q['overrun max, % of slice']}% (the copy that can never fit)",
                 "met": "yes" if (q["overrun p95, % of slice"] or 0) <= 5 else "no", "why not, or a caveat": ""})
    rows.append({"goal": "QoS: cost-prediction error <= 10% at p95", "measured": f"p95 {q['cost error p95 %']}%",
                 "met": "yes" if (q["cost error p95 %"] or 0) <= 10 else "no", "why not, or a caveat":
                 "met trivially on the model backend, whose record cycles are the fitted timing model's, linear in "
                 "the same features; the RTL's differ from that model by up to 6.1% (bench_host), not measured here"})
    for r in t["Isolation under load"]:
        ok = r["p99 ratio (goal <= 2)"] <= 2
        rows.append({"goal": f"isolation, {r['policy']}, {r['placement']}: interactive p99 with a flood <= 2x alone",
                     "measured": f"{r['p99 ratio (goal <= 2)']}x", "met": "yes" if ok else "no",
                     "why not, or a caveat": "" if ok else ISOLATION_SHORTFALL.get(r["policy"], "")})
    worst, rtl = {}, {}
    for tab in tables:
        for r in tab["rows"]:
            o = r.get("overhead %")
            if r.get("backend", "model") != "model":
                if isinstance(o, (int, float)):
                    rtl[r["policy"]] = o
                continue
            if isinstance(o, (int, float)):
                worst[r["policy"]] = max(worst.get(r["policy"], 0), o)
    for policy, o in sorted(worst.items()):
        rows.append({"goal": f"overhead, {policy}: scheduler's device cycles < 1% of the run",
                     "measured": f"worst {o}%", "met": "yes" if o < 1 else "no", "why not, or a caveat": "" if o < 1 else {
                         "gang": "a mask commit (3 writes, 21 cycles) per 2000-cycle slice is 1.05% alone",
                         "qos": "a mask commit per slice and a scan of each ring whose head is unknown",
                     }.get(policy, "fixed costs of a short run (each tenant's MAPPED bitmap, each ring's first "
                                   "HEAD, the arbiter, the idle counters: about 200 cycles, 0.6% of a 32k-cycle "
                                   "run), auto's mask commits (3 writes, 21 cycles, at each gang and back) and TAIL "
                                   "reads (a tick reads only the rings whose slot at TAIL changed, and all of them "
                                   "one tick in four); under 1% in the 200k-cycle runs")})
    if rtl:
        rows.append({"goal": "overhead on the rtl backend (producer/consumer, 2 engines): < 1% of the run",
                     "measured": ", ".join(f"{p} {o}%" for p, o in rtl.items()),
                     "met": "yes" if max(rtl.values()) < 1 else "no", "why not, or a caveat":
                     "the same 32k-cycle run as the model's rows, whose own costs are higher on the RTL; the "
                     "split of the difference (MMIO latency per access, or more accesses) is not analysed here"})
    s = t["The command scanner"]
    rows.append({"goal": "scanner: 100% recall of the pages written", "measured": f"{s[0]['recall %']}%",
                 "met": "yes" if s[0]["recall %"] == 100 else "no", "why not, or a caveat": ""})
    fr = s[0]["false rejections"] + s[1]["false rejections"]
    rows.append({"goal": "scanner: 0 false rejections", "measured": f"{fr} of {s[0]['predicted to fail, failed']} "
                 f"predicted failures in the corpus, and of {s[1]['predicted run, ran']} scheduled descriptors",
                 "met": "yes" if fr == 0 else "no", "why not, or a caveat": ""})
    return rows


def main():
    t0 = time.monotonic()
    dep, against = dependency()
    tables = [
        {"title": "Producer/consumer against a flood, per policy", "rows": dep, "notes": NOTES["dependency"]},
        {"title": "auto against both static policies", "rows": against, "notes": NOTES["auto"]},
        {"title": "The DRM fair scheduler's client workloads", "rows": drm(), "notes": NOTES["drm"]},
        {"title": "Fairness over 100 slices", "rows": fairness(), "notes": NOTES["fairness"]},
        {"title": "QoS: copies dearer than a quantum", "rows": qos(), "notes": NOTES["qos"]},
        {"title": "Isolation under load", "rows": isolation(), "notes": NOTES["isolation"]},
        {"title": "The command scanner", "rows": scanner(), "notes": NOTES["scanner"]},
    ]
    tables.append({"title": "Goals", "rows": goals(tables), "notes": NOTES["goals"]})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sched.json").write_text(json.dumps({"title": TITLE, "tables": tables},
                                               indent=1))
    print(f"wrote {OUT / 'sched.json'} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
