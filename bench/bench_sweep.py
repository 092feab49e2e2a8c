"""Benchmark of ``siov sweep`` on Dask (make bench BENCH=sweep): speed-up, per-task overhead, worker loss.

* **Speed-up**: a 100-point model sweep (the built-in scenario at 100,000
  cycles, vm0's and vm1's weights each over 1-10, one seed) on a
  LocalCluster of 2 workers, against the same sweep run serially in this
  process; the outputs (sweep.json, runs.json, summary.md) must be the same
  bytes. Wall time with and without the cluster's start.
* **Per-task overhead** of the Dask path: 1,000 no-op tasks on the same
  cluster (the scheduler's round trip), and a sweep of 200 runs of a host
  program that does nothing, serially and on Dask (the sweep's own cost
  per run: the run's folder, the cache, the result's way back).
* **Worker loss**: the same sweep with one worker killed (SIGKILL) once a
  quarter of the runs are done: runs computed again, and the wall time
  lost against the sweep without a loss.

Imports are done before any phase, here and on the workers (a sweep pays
them once, about a second). Each phase records the machine's load average (1 minute) before it starts:
the machine has 2 cores, and what else runs on it moves every figure here
(Linux's autogroup shares the CPU between sessions before processes, so
other busy sessions take the second core from the sweep's workers).

Writes build/bench/sweep.json.
"""

import json
import os
import pathlib
import shutil
import signal
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
WORK = OUT / "sweep-work"
SETS = ["tenants.vm0.weight=1-10", "tenants.vm1.weight=1-10"]
CYCLES = 100_000


async def nothing(bus, seed, arg):
    """A host program that does nothing: what is left is the sweep's own cost per run."""
    return {"seed": seed}


def _noop(i):
    return i


def _warm():
    """Import what a run and the outputs need, so that no phase pays for a first import."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    import siov.sw.platform.model  # noqa: F401
    import siov.sw.programs.scenario  # noqa: F401
    return True


def _cpu():
    """CPU seconds this process has used (user and system)."""
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _load():
    return round(os.getloadavg()[0], 2)


def _scenario():
    from siov.sw.scenario import DEFAULT
    return DEFAULT.replace("cycles = 300000", f"cycles = {CYCLES}")


def _plan(name, sets=SETS, seeds=(1,), program=None):
    from siov.sw.sweep import parse_set, plan
    shutil.rmtree(WORK / name, ignore_errors=True)
    kw = {"program": program} if program else {}
    return plan(_scenario(), [parse_set(s) for s in sets], list(seeds), source="<built-in scenario, 100k cycles>",
                out=WORK / name / "out", cache=WORK / name / "cache", **kw)


def _outputs_cpu(outcome):
    """CPU seconds of writing a sweep's outputs (tables, JSON, plots) once more from its runs."""
    from siov.sw.sweep.driver import write_outputs
    sweep = _plan("outputs")
    by_id = {p.id: p.index for p in sweep.points}
    results = {(by_id[r["point"]], r["seed"]): r["result"] for r in json.loads(outcome.files["runs"].read_text())}
    c0 = _cpu()
    write_outputs(sweep, results, {})
    return _cpu() - c0


def speedup(client, cluster_start_s):
    from siov.sw.sweep import run_sweep
    # Planned outside the timing: a plan may convert the Device for its fingerprint when rtl/ changed.
    serial_plan, dask_plan = _plan("serial"), _plan("dask")
    load_serial = _load()
    t0, c0 = time.perf_counter(), _cpu()
    serial = run_sweep(serial_plan)
    serial_s, serial_cpu = time.perf_counter() - t0, _cpu() - c0
    load_dask = _load()
    w0 = client.run(_cpu)
    t0, c0 = time.perf_counter(), _cpu()
    dask = run_sweep(dask_plan, client)
    dask_s, client_cpu = time.perf_counter() - t0, _cpu() - c0
    w1 = client.run(_cpu)
    worker_cpu = [w1[w] - w0[w] for w in w0 if w in w1]
    outputs_cpu = _outputs_cpu(dask)
    # Two free cores: the workers' and the client's CPU during the runs shared by both, then the outputs.
    estimate = serial_cpu / ((sum(worker_cpu) + client_cpu - outputs_cpu) / 2 + outputs_cpu)
    same = all(serial.files[k].read_bytes() == dask.files[k].read_bytes() for k in ("sweep", "runs", "summary"))
    assert serial.computed == dask.computed == 100 and not serial.failed and not dask.failed
    return {"runs": 100, "serial_s": round(serial_s, 1), "dask_s": round(dask_s, 1),
            "cluster_start_s": round(cluster_start_s, 1), "speedup": round(serial_s / dask_s, 2),
            "speedup_with_cluster_start": round(serial_s / (dask_s + cluster_start_s), 2),
            "run_wall_s_mean_serial": round(serial.wall_s / 100, 3), "byte_identical": same,
            "cpu_s_serial": round(serial_cpu, 1), "cpu_s_dask_workers": " / ".join(f"{c:.1f}" for c in worker_cpu),
            "cpu_s_dask_client": round(client_cpu, 1),
            "cpu_s_outputs": round(outputs_cpu, 1), "speedup_estimate_two_free_cores": round(estimate, 2),
            "load_before_serial": load_serial, "load_before_dask": load_dask}, dask_s


def overhead(client):
    from distributed import as_completed

    from siov.sw.sweep import run_sweep
    load = _load()
    n = 1000
    t0 = time.perf_counter()
    futures = [client.submit(_noop, i, pure=False) for i in range(n)]
    for f in as_completed(futures):
        f.result()
    raw = (time.perf_counter() - t0) / n
    del futures
    seeds = range(1, 201)
    plans = [_plan(f"noop-{name}", sets=[], seeds=seeds, program="bench_sweep:nothing") for name in ("serial", "dask")]
    t0 = time.perf_counter()
    run_sweep(plans[0])
    serial = (time.perf_counter() - t0) / 200
    t0 = time.perf_counter()
    run_sweep(plans[1], client)
    dask = (time.perf_counter() - t0) / 200
    return {"noop_tasks": n, "dask_task_ms": round(raw * 1000, 2), "dask_tasks_per_s": round(1 / raw),
            "sweep_run_ms_serial": round(serial * 1000, 1), "sweep_run_ms_dask": round(dask * 1000, 1),
            "load_before": load}


def worker_loss(client, no_loss_s):
    from siov.sw.sweep import run_sweep
    done, killed = [], []
    sweep = _plan("loss")
    load = _load()
    by_key = {f"siov-run-{r.key}": r for r in sweep.runs}

    def kill(run, outcome, error):
        done.append(run)
        if len(done) == 25 and not killed:       # the worker furthest into its run
            started = {addr: max((json.loads(m.read_text())["started"] for k in keys if k in by_key
                                  for m in pathlib.Path(by_key[k].run_dir).glob("attempt-*.json")),
                                 default=time.time())
                       for addr, keys in client.processing().items() if keys}
            addr = min(started, key=started.get)
            pid = client.run(os.getpid, workers=[addr])[addr]
            os.kill(pid, signal.SIGKILL)
            killed.append(time.time() - started[addr])

    t0 = time.perf_counter()
    out = run_sweep(sweep, client, on_result=kill)
    wall = time.perf_counter() - t0
    assert killed and out.computed == 100 and not out.failed
    client.wait_for_workers(2, timeout=300)
    pid = next(iter(client.run(os.getpid).values()))     # a worker's restart, timed on an idle cluster
    t0 = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    while len(client.scheduler_info()["workers"]) == 2 and time.perf_counter() - t0 < 30:
        time.sleep(0.05)
    client.wait_for_workers(2, timeout=300)
    restart_s = time.perf_counter() - t0
    return {"runs": 100, "killed_after_runs": 25, "wall_s": round(wall, 1), "wall_s_without_loss": round(no_loss_s, 1),
            "time_lost_s": round(wall - no_loss_s, 1), "runs_recomputed": out.recomputed,
            "work_lost_s": round(killed[0], 2), "worker_restart_s": round(restart_s, 1),
            "every_run_once": len(json.loads(out.files["runs"].read_text())) == 100, "load_before": load}


def main():
    from siov.sw.sweep.cluster import open_client
    OUT.mkdir(parents=True, exist_ok=True)
    _warm()
    t0 = time.perf_counter()
    with open_client("local:2") as client:
        client.wait_for_workers(2, timeout=120)
        start_s = time.perf_counter() - t0
        client.run(_warm)
        sp, dask_s = speedup(client, start_s)
        ov = overhead(client)
        loss = worker_loss(client, dask_s)
    shutil.rmtree(WORK, ignore_errors=True)
    rows = [{"measure": k, "value": v} for k, v in sp.items()]
    notes = (f"{os.cpu_count()} cores; LocalCluster of 2 single-threaded worker processes; 1-minute load average "
             "before each phase in the table. Linux shares the CPU between sessions first (autogroup), so while "
             "other sessions keep the cores busy the sweep's two workers together get what one process would: "
             "the speed-up means something only on a quiet machine (load below 1 before both phases). "
             "CPU seconds depend on it much less: speedup_estimate_two_free_cores is the serial sweep's CPU "
             "time over the Dask sweep's as two free cores would run it (the workers' and the client's CPU "
             "during the runs shared by both cores, then the outputs, which the client writes alone). "
             "Goal: speed-up >= 1.8 with byte-identical outputs.")
    result = {"title": "siov sweep on Dask (LocalCluster, 2 workers)", "tables": [
        {"title": "100-point model sweep: serial against Dask", "rows": rows, "notes": notes},
        {"title": "Per-task overhead of the Dask path", "rows": [{"measure": k, "value": v} for k, v in ov.items()],
         "notes": "dask_task_ms: wall per no-op task over 1,000 (both workers); sweep_run_ms: wall per run of a "
                  "program that does nothing over 200 runs (model backend set-up, the run's folder, the cache, "
                  "the result's way back)."},
        {"title": "Worker loss in the 100-point sweep", "rows": [{"measure": k, "value": v}
                                                                for k, v in loss.items()],
         "notes": "One worker killed with SIGKILL after 25 runs (the one furthest into its run); its nanny "
                  "starts a new one. runs_recomputed: runs with a second attempt. work_lost_s: how long the "
                  "killed attempt had run. worker_restart_s: from a kill to the new worker's arrival, timed "
                  "apart on an idle cluster; the sweep runs on one worker meanwhile. time_lost_s: the wall time "
                  "against the same sweep without the loss (under load, noise of the same size)."}]}
    (OUT / "sweep.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
