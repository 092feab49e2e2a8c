"""Seeds of a cocotb regression test on the workers: ``siov sweep --regression EngineRandomTest --seeds 1-100``.

Any test of :mod:`siov.tb.regressions`' test modules (a pyuvm test class or
a cocotb test function) runs once per seed, as cocotb's random seed, each
seed in its own folder ``OUT/runs/<test>/seed-N/``, on the regression's one
build (the first run builds it, under the build folder's lock; every other
run finds it current). When the test module has a coverage test that runs
last and saves the coverage (``ZzzCoverageTest``, ``test_zzz_coverage``),
it runs after the test in each seed, so that the seed's coverage is saved;
its verdict on one seed alone is not the test's and is left out.

The output folder gets:

* ``junit.xml``: one ``<testsuite>`` per seed, with the test's
  ``<testcase>`` renamed ``<test>[seed=N]``;
* ``coverage.json``: per coverage group, each bin's hits summed over the
  seeds and the number of seeds that hit it; bins no seed hit are listed;
* ``regression.json``: per seed whether it passed, and for each failed
  seed the command that runs it alone again with a waveform.
"""

import json
import pathlib
import shlex
import time
import xml.etree.ElementTree as ET

from .spec import SweepError
from .work import RegressionRun, execute_regression

__all__ = ["plan_regression", "run_regression", "merge_junit", "merge_coverage"]


def plan_regression(test, seeds, out="build/sweep", waves=False):
    """The runs of ``test`` over ``seeds``; :class:`~siov.sw.sweep.spec.SweepError` for a test no
    regression defines."""
    from ...tb.regressions import find_test
    try:
        find_test(test)
    except LookupError as e:
        raise SweepError(f"--regression {test}: {e}") from None
    if not seeds:
        raise SweepError("--seeds: no seeds")
    out = pathlib.Path(out)
    return [RegressionRun(test=test, seed=s, run_dir=str(out / "runs" / test / f"seed-{s}"), waves=waves)
            for s in seeds]


def merge_junit(results):
    """One JUnit document (text) of every seed's results (``execute_regression``'s dicts)."""
    suites = ET.Element("testsuites", name="siov sweep")
    total = failed = 0
    for r in sorted(results, key=lambda r: r["seed"]):
        cases = [ET.fromstring(c) for c in r["junit"]]
        bad = sum(c.find("failure") is not None or c.find("error") is not None for c in cases)
        if not cases:                                   # the simulator stopped before the test reported
            case = ET.Element("testcase", name=r["test"], classname=r["test"])
            ET.SubElement(case, "error", message=r.get("error") or "no result from the simulator")
            cases, bad = [case], 1
        suite = ET.SubElement(suites, "testsuite", name=f"{r['test']}[seed={r['seed']}]",
                              tests=str(len(cases)), failures=str(bad))
        for c in cases:
            c.set("name", f"{c.get('name')}[seed={r['seed']}]")
            suite.append(c)
        total += len(cases)
        failed += bad
    suites.set("tests", str(total))
    suites.set("failures", str(failed))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def merge_coverage(results):
    """``{group: {"bins": {bin: {"hits", "seeds"}}, "missed": [...]}}`` over every seed's coverage."""
    groups = {}
    for r in results:
        for group, hits in r["coverage"].items():
            g = groups.setdefault(group, {})
            for b, n in hits.items():
                cell = g.setdefault(b, {"hits": 0, "seeds": 0})
                cell["hits"] += n
                cell["seeds"] += n > 0
    return {group: {"bins": dict(sorted(bins.items())),
                    "missed": sorted(b for b, c in bins.items() if c["hits"] == 0)}
            for group, bins in sorted(groups.items())}


def _reproduce(test, seed):
    return shlex.join(["siov", "sweep", "--regression", test, "--seeds", str(seed), "--cluster", "serial",
                       "--waves", "--out", f"build/sweep-{test}-seed-{seed}"])


def run_regression(runs, client=None, *, out="build/sweep", console=None, on_result=None):
    """Run every seed of ``runs`` (:func:`plan_regression`) on ``client`` or here, then write
    ``junit.xml``, ``coverage.json`` and ``regression.json`` in ``out``; returns the summary dict."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    start = time.perf_counter()
    progress = None
    if console is not None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        progress = Progress(TextColumn(f"[bold]{runs[0].test}[/bold] seeds"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=console)
        bar = progress.add_task("seeds", total=len(runs))

    def record(job, r, error):
        if r is None:
            r = {"test": job.test, "seed": job.seed, "passed": False, "junit": [], "coverage": {}, "error": error,
                 "log": None, "waves": None}
        results.append(r)
        if progress is not None:
            progress.advance(bar)
        if on_result is not None:
            on_result(job, r, error)

    if progress is not None:
        progress.start()
    try:
        if client is None:
            for job in runs:
                try:
                    record(job, execute_regression(job), None)
                except Exception as e:
                    record(job, None, f"{type(e).__name__}: {e}")
        else:
            from distributed import as_completed
            futures = {client.submit(execute_regression, job, key=f"siov-regression-{job.test}-{job.seed}-"
                                     f"{time.time_ns()}", pure=False): job for job in runs}
            try:
                for fut in as_completed(list(futures)):
                    try:
                        record(futures[fut], fut.result(), None)
                    except Exception as e:
                        record(futures[fut], None, f"{type(e).__name__}: {e}")
            finally:
                for fut in futures:
                    fut.cancel()
    finally:
        if progress is not None:
            progress.stop()
    results.sort(key=lambda r: r["seed"])
    (out / "junit.xml").write_text(merge_junit(results))
    coverage = merge_coverage(results)
    (out / "coverage.json").write_text(json.dumps(coverage, indent=1) + "\n")
    summary = {"test": runs[0].test, "seeds": [r["seed"] for r in results],
               "passed": sum(r["passed"] for r in results), "failed": sum(not r["passed"] for r in results),
               "seed_results": [{"seed": r["seed"], "passed": r["passed"], "log": r["log"], "waves": r["waves"],
                                 **({} if r["passed"] else {"error": r.get("error"),
                                                            "reproduce_waves": _reproduce(r["test"], r["seed"])})}
                                for r in results],
               "coverage_missed": {g: c["missed"] for g, c in coverage.items()},
               "wall_s": round(time.perf_counter() - start, 3)}
    (out / "regression.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
