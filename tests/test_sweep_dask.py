"""siov sweep on a LocalCluster of two worker processes: results, a lost worker, a run that kills workers.

* A sweep on the cluster writes the same bytes (sweep.json, runs.json) as
  the same sweep run serially in this process.
* A worker killed in the middle of a sweep: the sweep completes, its run is
  done again elsewhere, and every point and seed appears exactly once.
* A run that kills every worker that takes it fails alone, as Dask's
  KilledWorker, named with its seed and the command that repeats it; every
  other run of the sweep finishes.

The cluster allows one failure per run (``--allowed-failures 1``), so the
crashing run is given up after it has killed two workers.
"""

import json
import os
import signal
import time

import pytest

from siov.sw.sweep import parse_seeds, parse_set, plan, run_sweep
from siov.sw.sweep.cluster import open_client
from siov.sw.sweep.work import attempts

from sweep_support import TINY

@pytest.fixture(scope="module")
def client():
    with open_client("local:2", allowed_failures=1) as c:
        c.wait_for_workers(2, timeout=120)
        yield c


def _plan(tmp_path, name, program="siov.sw.programs.scenario:run_scenario", seeds="1-4",
          sets=("arbiter.policy=rr,wrr",)):
    return plan(TINY, [parse_set(s) for s in sets], parse_seeds(seeds), source="tiny.toml", out=tmp_path / name,
                cache=tmp_path / f"{name}-cache", program=program)


def _once_each(out, sweep):
    runs = [(r["point"], r["seed"]) for r in json.loads(out.files["runs"].read_text())]
    assert sorted(runs) == sorted((sweep.points[r.point].id, r.seed) for r in sweep.runs)
    assert len(set(runs)) == len(runs)


def test_sweep_on_a_local_cluster_matches_the_serial_sweep_byte_for_byte(client, tmp_path):
    dask_sweep = _plan(tmp_path, "dask")
    out = run_sweep(dask_sweep, client)
    assert (out.computed, out.failed) == (8, 0)
    serial = run_sweep(_plan(tmp_path, "serial"))
    for name in ("sweep", "runs", "summary"):
        assert out.files[name].read_bytes() == serial.files[name].read_bytes(), name
    _once_each(out, dask_sweep)


def test_a_worker_killed_mid_sweep_loses_nothing(client, tmp_path):
    sweep = _plan(tmp_path, "lost", program="sweep_support:slow_scenario")
    by_key = {f"siov-run-{r.key}": r for r in sweep.runs}
    killed = []

    def kill_one(run, outcome, error):
        if killed:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:          # a worker whose run has started
            for addr, keys in client.processing().items():
                started = [k for k in keys if k in by_key and attempts(by_key[k].run_dir) > 0]
                if started:
                    pid = client.run(os.getpid, workers=[addr])[addr]
                    os.kill(pid, signal.SIGKILL)
                    killed.append((addr, started[0]))
                    return
            time.sleep(0.05)

    out = run_sweep(sweep, client, on_result=kill_one)
    assert killed, "no worker was running a run"
    assert (out.computed, out.failed) == (8, 0)
    assert out.recomputed >= 1
    assert attempts(by_key[killed[0][1]].run_dir) == 2
    _once_each(out, sweep)
    for p in out.doc["points"]:
        assert sorted(p["runs"], key=int) == ["1", "2", "3", "4"] and p["failed"] == []


def test_a_run_that_kills_its_workers_fails_alone_as_killed_worker(client, tmp_path):
    sweep = _plan(tmp_path, "crash", program="sweep_support:crash_on_seed", seeds="1-4", sets=())
    out = run_sweep(sweep, client)
    assert (out.computed, out.failed) == (3, 1)
    (point,) = out.doc["points"]
    assert sorted(point["runs"], key=int) == ["1", "3", "4"]
    (failed,) = point["failed"]
    assert failed["seed"] == 2
    assert failed["error"].startswith("KilledWorker: this run killed the worker running it 2 times")
    assert "allowed-failures is 1" in failed["error"]
    assert "--seed 2 --waves" in failed["reproduce_waves"]
    assert attempts(sweep.runs[1].run_dir) == 2


def test_points_that_make_the_same_scenario_share_one_run(client, tmp_path):
    sweep = _plan(tmp_path, "same", seeds="1", sets=("tenants.0.weight=1,2", "tenants.vm0.weight=1"))
    assert len({r.key for r in sweep.runs}) == 1 and len(sweep.runs) == 2
    out = run_sweep(sweep, client)
    assert out.failed == 0 and [len(p["runs"]) for p in out.doc["points"]] == [1, 1]
