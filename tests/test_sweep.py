"""siov sweep without a cluster: the specification, the cache, the statistics, the outputs, the command line.

A bad specification is refused naming its key before anything runs; a
sweep's results are cached so that the same sweep again computes nothing
and a stopped one resumes; the tables, sweep.json and plots come out; a
failing seed is named with the ``siov run`` command that repeats it; the
``--jobqueue`` option builds the dask-jobqueue cluster whose job script a
farm would run; regression seeds merge into one JUnit file and one
coverage.
"""

import json
import math
import tomllib

import pytest
from click.testing import CliRunner

from siov.sw.cli import main
from siov.sw.scenario import DEFAULT, parse
from siov.sw.sweep import SweepError, SweepInterrupted, parse_seeds, parse_set, plan, run_sweep
from siov.sw.sweep.regress import merge_coverage, merge_junit
from siov.sw.sweep.spec import dump_toml, expand
from siov.sw.sweep.stats import headline, summarize, t_quantile
from sweep_support import TINY


@pytest.mark.parametrize("text, seeds", [("1-3", [1, 2, 3]), ("7", [7]), ("1,5,9-10", [1, 5, 9, 10]),
                                         ("3,1-3", [1, 2, 3])])
def test_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [("5-1", "the range 5-1 is empty"), ("a", "'a' is not a seed"),
                                           ("1,,2", "'' is not a seed")])
def test_bad_seeds(text, message):
    with pytest.raises(SweepError, match=message):
        parse_seeds(text)


def test_set_values_are_toml_strings_or_ranges():
    assert parse_set("arbiter.policy=rr,wrr") == ("arbiter.policy", ["rr", "wrr"])
    assert parse_set("cycles=1000-3000:1000") == ("cycles", [1000, 2000, 3000])
    assert parse_set("tenants.0.workloads.0.size=[64, 128],[1,2]") == ("tenants.0.workloads.0.size",
                                                                        [[64, 128], [1, 2]])
    assert parse_set("tenants.*.workloads.*.interrupt=true,false")[1] == [True, False]
    assert parse_set('tenants.0.name="2-4"')[1] == ["2-4"]
    assert parse_set("cycles=1000-3000:1000,2000")[1] == [1000, 2000, 3000]


@pytest.mark.parametrize("option, message", [
    ("arbiter.polcy=rr", r"--set arbiter.polcy: unknown key 'polcy' in \[arbiter\]"),
    ("bogus=1", r"--set bogus: unknown key 'bogus' in the top level"),
    ("tenants.0.wieght=2", r"--set tenants.0.wieght: unknown key 'wieght' in \[tenants\]"),
    ("tenants.9.weight=2", r"--set tenants.9.weight: the scenario has 2 tenants"),
    ("tenants.vm7.weight=2", r"--set tenants.vm7.weight: no element of tenants is named 'vm7' \(names: vm0, ctr0\)"),
    ("arbiter.policy=rr,lottery", r"--set arbiter.policy=lottery: arbiter.policy: Input should be"),
    ("cycles=", r"--set cycles: no values"),
    ("cycles=9000-1000", r"--set cycles: the range 9000-1000 is empty"),
    ("cycles=10", r"--set cycles=10: cycles: Input should be greater than or equal to 1000"),
    ("tenants.0.weight=0", r"--set tenants.0.weight=0: tenants.0.weight: tenant vm0: weight 0 under weighted"),
    ("device.num_engines=2,9", r"--set device.num_engines=9: device: Number of engines must be between 1 and 4"),
    ("arbiter=1", r"--set arbiter: arbiter is a table; name one of its keys, such as arbiter.policy"),
    ("cycles.x=1", r"--set cycles.x: cycles is a value, not a table"),
    ("faults.0.at=10", r"--set faults.0.at: the scenario has 0 faults"),
])
def test_bad_set_names_the_key_before_anything_runs(option, message):
    with pytest.raises(SweepError, match=message):
        expand(TINY, [parse_set(option)])


def test_a_combination_the_schema_refuses_names_its_point():
    with pytest.raises(SweepError, match=r"point arbiter.policy=wrr tenants.ctr0.weight=0: .*weight 0"):
        expand(TINY.replace('"wrr"', '"rr"'), [parse_set("arbiter.policy=rr,wrr"),
                                               parse_set("tenants.ctr0.weight=0,1")])


def test_points_cross_the_sets_and_apply_every_selector():
    points = expand(TINY, [parse_set("arbiter.policy=rr,qos"), parse_set("tenants.*.quantum=100,200,300"),
                           parse_set("device.num_engines=1")])
    assert len(points) == 6
    assert points[0].label == "arbiter.policy=rr tenants.*.quantum=100 device.num_engines=1"
    assert [p.id for p in points] == [f"p00{i}" for i in range(6)]
    last = points[-1].scenario
    assert last.arbiter.policy == "qos" and {t.quantum for t in last.tenants} == {300}
    assert last.device.num_engines == 1
    by_name = expand(TINY, [parse_set("tenants.ctr0.weight=5")])[0].scenario
    assert [t.weight for t in by_name.tenants] == [2, 5]


def test_toml_writer_round_trips():
    data = tomllib.loads(DEFAULT)
    assert tomllib.loads(dump_toml(data)) == data
    assert parse(dump_toml(data)) == parse(DEFAULT)


def test_statistics():
    assert abs(t_quantile(40) - 2.0211) < 1e-3 and abs(t_quantile(120) - 1.9799) < 1e-3
    s = summarize([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert (s["n"], s["mean"], s["p50"], s["min"], s["max"]) == (10, 5.5, 5.5, 1, 10)
    assert s["p99"] == pytest.approx(9.91)
    half = 2.262 * math.sqrt(sum((x - 5.5) ** 2 for x in range(1, 11)) / 9) / math.sqrt(10)
    assert s["ci95"] == pytest.approx([5.5 - half, 5.5 + half], abs=1e-4)
    assert summarize([4])["ci95"] is None and summarize([]) is None


def _sweep(tmp_path, seeds="1-3", sets=("arbiter.policy=rr,wrr",), name="out", **kw):
    return plan(TINY, [parse_set(s) for s in sets], parse_seeds(seeds), source="tiny.toml",
                out=tmp_path / name, cache=tmp_path / "cache", **kw)


def test_serial_sweep_writes_tables_plots_and_caches(tmp_path):
    sw = _sweep(tmp_path)
    out = run_sweep(sw)
    assert (out.computed, out.cached, out.failed) == (6, 0, 0)
    doc = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [p["label"] for p in doc["points"]] == ["arbiter.policy=rr", "arbiter.policy=wrr"]
    point = doc["points"][0]
    assert sorted(point["runs"]) == ["1", "2", "3"]
    for metric in ("throughput", "utilisation", "engine0.utilisation", "vm0.latency_p50", "vm0.latency_p99",
                   "ctr0.latency_p99", "ctr0.throughput"):
        assert set(point["stats"][metric]) == {"n", "mean", "p50", "p99", "min", "max", "std", "ci95"}
    assert point["device"]["verilog_fingerprint"]
    assert parse((tmp_path / "out" / point["scenario_file"]).read_text()).arbiter.policy == "rr"
    runs = json.loads((tmp_path / "out" / "runs.json").read_text())
    assert len(runs) == 6 and "completions" not in runs[0]["result"]["tenants"]["vm0"]
    assert headline(runs[0]["result"]) == point["runs"]["1"]
    assert {p.name for p in out.files["plots"]} >= {"throughput.png", "utilisation.png", "latency_p50.png",
                                                    "latency_p99.png"}
    assert "## p001: arbiter.policy=wrr" in (tmp_path / "out" / "summary.md").read_text()
    again = run_sweep(sw)                                    # everything from the cache, the same bytes
    assert (again.computed, again.cached) == (0, 6)
    assert json.loads((tmp_path / "out" / "sweep.json").read_text()) == doc


def test_an_interrupted_sweep_resumes_with_what_is_missing(tmp_path):
    sw = _sweep(tmp_path, seeds="1-4")
    seen = []

    def stop(run, outcome, error):
        seen.append(run)
        if len(seen) == 3:
            raise KeyboardInterrupt
    with pytest.raises(SweepInterrupted, match="3 of 8 runs finished and cached"):
        run_sweep(sw, on_result=stop)
    assert len(sw.missing()) == 5
    out = run_sweep(sw)
    assert (out.computed, out.cached) == (5, 3)
    wider = _sweep(tmp_path, seeds="1-5", name="wider")             # a wider sweep reuses every run
    assert len(wider.missing()) == 2


def test_the_cache_key_is_the_scenario_not_its_spelling(tmp_path):
    a = _sweep(tmp_path, sets=("arbiter.policy=wrr",))
    b = plan(TINY, [], [1, 2, 3], out=tmp_path / "b", cache=tmp_path / "cache")  # the file already says wrr
    assert [r.key for r in a.runs] == [r.key for r in b.runs]
    c = _sweep(tmp_path, sets=("arbiter.policy=rr",), name="c")
    assert not {r.key for r in a.runs} & {r.key for r in c.runs}


def test_a_failing_seed_is_named_with_the_command_that_repeats_it(tmp_path):
    sw = _sweep(tmp_path, program="sweep_support:crash_on_seed_raising")
    out = run_sweep(sw)
    assert out.failed == 2 and out.computed == 4
    doc = out.doc
    failed = doc["points"][1]["failed"][0]
    assert failed["seed"] == 2 and "RuntimeError: seed 2 fails" in failed["error"]
    assert failed["reproduce_waves"] == (f"siov run {tmp_path}/out/points/p001.toml --backend rtl --seed 2 --waves "
                                         f"--out {tmp_path}/out/runs/p001/seed-2/rerun-waves")
    assert failed["reproduce"].startswith(f"siov run {tmp_path}/out/points/p001.toml --backend model --seed 2 ")
    assert "2" not in doc["points"][1]["runs"]
    assert len(sw.missing()) == 2                              # a failure is not cached: the next sweep retries it


def test_command_line_refuses_a_bad_key_and_runs_a_sweep(tmp_path):
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY)
    runner = CliRunner()
    bad = runner.invoke(main, ["sweep", str(scenario), "--seeds", "1-2", "--set", "arbiter.polcy=rr",
                               "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "--set arbiter.polcy: unknown key 'polcy'" in bad.output
    assert not (tmp_path / "c").exists()
    both = runner.invoke(main, ["sweep", str(scenario), "--seeds", "1", "--cluster", "serial", "--scheduler",
                                "tcp://127.0.0.1:1"])
    assert both.exit_code == 2 and "choose one place" in both.output
    ok = runner.invoke(main, ["sweep", str(scenario), "--seeds", "1-2", "--set", "arbiter.policy=rr,qos",
                              "--cluster", "serial", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")],
                       terminal_width=100)
    assert ok.exit_code == 0, ok.output
    assert "p001: arbiter.policy=qos" in ok.output and "95% CI of mean" in ok.output
    assert "4 run(s) computed, 0 cached, 0 failed" in ok.output
    assert (tmp_path / "o" / "plots" / "throughput.png").exists()


def test_jobqueue_builds_the_slurm_job_script():
    from siov.sw.sweep.cluster import jobqueue_cluster
    cluster = jobqueue_cluster("slurm", {"cores": 8, "memory": "16GiB", "queue": "sim", "account": "hw",
                                         "walltime": "02:00:00", "job_extra_directives": ["--exclusive"],
                                         "python": "/farm/siov/.venv/bin/python"})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -J siov-sweep", "#SBATCH -p sim", "#SBATCH -A hw", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --mem=16G", "#SBATCH -t 02:00:00", "#SBATCH --exclusive"):
        assert line in script, script
    assert "/farm/siov/.venv/bin/python -m distributed.cli.dask_worker tcp://" in script
    assert "--nthreads 1" in script and "--nworkers 8" in script and "--nanny" in script
    with pytest.raises(ValueError, match="--jobqueue slurm: .*bogus"):
        jobqueue_cluster("slurm", {"bogus": 1})


def test_jobqueue_dry_run_prints_the_job_script(tmp_path):
    result = CliRunner().invoke(main, ["sweep", "--seeds", "1-4", "--set", "scheduler.policy=gang,auto", "--jobqueue",
                                       "slurm", "-o", "cores=4", "-o", "queue=sim", "--jobs", "16", "--dry-run",
                                       "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "2 point(s) x 4 seed(s) = 8 runs" in result.output and "slurm jobs (16)" in result.output
    assert "#SBATCH -p sim" in result.output and "--nworkers 4" in result.output


def test_regression_seeds_merge_into_one_junit_and_one_coverage():
    case = '<testcase name="EngineRandomTest" classname="test_device" time="1.0" />'
    bad = ('<testcase name="EngineRandomTest" classname="test_device" time="1.0">'
           '<failure message="mismatch" /></testcase>')
    results = [{"test": "EngineRandomTest", "seed": 2, "passed": False, "junit": [bad],
                "coverage": {"system": {"a": 0, "b": 3}}},
               {"test": "EngineRandomTest", "seed": 1, "passed": True, "junit": [case],
                "coverage": {"system": {"a": 0, "b": 1, "c": 2}}},
               {"test": "EngineRandomTest", "seed": 3, "passed": False, "junit": [], "coverage": {},
                "error": "KilledWorker"}]
    import xml.etree.ElementTree as ET
    root = ET.fromstring(merge_junit(results))
    assert (root.get("tests"), root.get("failures")) == ("3", "2")
    assert [s.get("name") for s in root] == [f"EngineRandomTest[seed={n}]" for n in (1, 2, 3)]
    assert root[1][0].get("name") == "EngineRandomTest[seed=2]" and root[1][0].find("failure") is not None
    assert root[2][0].find("error").get("message") == "KilledWorker"
    cov = merge_coverage(results)["system"]
    assert cov["missed"] == ["a"]
    assert cov["bins"]["b"] == {"hits": 4, "seeds": 2} and cov["bins"]["c"] == {"hits": 2, "seeds": 1}


def test_an_unknown_regression_test_is_refused():
    result = CliRunner().invoke(main, ["sweep", "--regression", "NoSuchTest", "--seeds", "1-2"])
    assert result.exit_code == 2 and "--regression NoSuchTest: No regression defines a test named" in result.output


def test_siov_run_of_a_point_file_repeats_its_run(tmp_path):
    sw = _sweep(tmp_path, seeds="2")
    out = run_sweep(sw)
    run = sw.runs[1]
    result = CliRunner().invoke(main, ["run", run.source, "--seed", "2", "--out", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    swept = json.loads(out.files["runs"].read_text())[1]["result"]
    assert {name: {k: v for k, v in t.items() if k != "completions"} for name, t in again["tenants"].items()} \
        == swept["tenants"]
    assert again["device"]["engines"] == swept["device"]["engines"]


def test_a_sweep_whose_sources_change_while_it_runs_keeps_nothing(tmp_path, monkeypatch):
    import siov.sw.sweep.driver as driver
    sw = _sweep(tmp_path, seeds="1")
    monkeypatch.setattr(driver, "software_fingerprint", lambda backend, program: "edited")
    out = run_sweep(sw)
    assert out.computed == 2 and out.warnings == [
        "the host software changed while the sweep ran: its runs may mix two versions, and none of them was kept "
        "in the cache"]
    assert len(sw.missing()) == 2


def test_a_scheduler_policy_sweep_of_the_built_in_scenario():
    """``[scheduler]`` is an optional table of the schema: its keys can be swept."""
    points = expand(DEFAULT, [parse_set("scheduler.policy=per-ring,gang,auto")])
    assert [p.scenario.scheduler.policy for p in points] == ["per-ring", "gang", "auto"]
    # A scenario that sets [arbiter] cannot also have a scheduler: refused naming the point.
    with pytest.raises(SweepError, match=r"--set scheduler.policy=gang: arbiter: a \[scheduler\] programs"):
        expand(TINY, [parse_set("scheduler.policy=gang")])


def test_headline_carries_pair_latency_of_a_dependent_workload():
    result = {"device": {"engines": [{"engine": 0, "utilisation": 0.5}]},
              "tenants": {"pc": {"throughput_bytes_per_kcycle": 10.0, "latency_p50": 5, "latency_p99": 9,
                                 "pair_latency": {"mean": 700.5, "p99": 1100, "pairs": 4}},
                          "vm": {"throughput_bytes_per_kcycle": 1.0, "latency_p50": 5, "latency_p99": 9}}}
    out = headline(result)
    assert out["pc.pair_latency_mean"] == 700.5 and out["pc.pair_latency_p99"] == 1100
    assert not any(k.startswith("vm.pair") for k in out)
