"""The units of work of a sweep, run on whichever process gets them (a Dask worker, or the sweep's own).

* :class:`Run`: one run of a scenario's point with one seed on one backend
  (:func:`execute`); it returns the results dict of ``siov run``, less the
  per-descriptor ``completions`` of each tenant (the one part that grows
  with the run's length), so results stay a few kilobytes;
* :class:`Build`: the Verilator build of one Device parameter set
  (:func:`build`), done once before the rtl runs that need it;
* :class:`RegressionRun`: one seed of a cocotb regression test from
  :mod:`siov.tb.regressions` (:func:`execute_regression`).

Every run has its own folder (``Run.run_dir``), and each attempt at it (a
Dask worker lost mid-run means another attempt) writes only under its own
``attempt-*`` name there, so no two processes write one file. The rtl
backend's simulator runs in a folder of its own per attempt too.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import socket
import time

__all__ = ["Run", "Build", "RegressionRun", "execute", "build", "execute_regression", "small",
           "PROGRAM", "attempts"]

#: The host program of ``siov run``.
PROGRAM = "siov.sw.programs.scenario:run_scenario"


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a sweep: point ``point`` of the sweep's scenario with ``seed`` on ``backend``.

    Attributes
    ----------
    point : int
        Index of its parameter point.
    seed : int
        Overrides the scenario's seed.
    backend : str
        ``model`` or ``rtl``.
    scenario : str
        The point's scenario text.
    source : str
        The point's scenario file.
    params : dict
        The Device's parameters (``DeviceParams`` fields).
    key : str
        Its cache key (:func:`siov.sw.sweep.cache.run_key`).
    run_dir : str
        Its own folder.
    program : str
        The host program, ``module:function`` (``siov run``'s by default).
    waves : bool
        rtl backend: dump a waveform.
    """
    point: int
    seed: int
    backend: str
    scenario: str
    source: str
    params: dict
    key: str
    run_dir: str
    program: str = PROGRAM
    waves: bool = False


@dataclasses.dataclass(frozen=True)
class Build:
    """The Verilator build of the Device with ``params`` (``waves``: the traced build)."""
    params: dict
    waves: bool = False


@dataclasses.dataclass(frozen=True)
class RegressionRun:
    """Seed ``seed`` of cocotb test ``test`` (a name in :mod:`siov.tb.regressions`' test modules),
    run in ``run_dir``; ``waves`` dumps a waveform."""
    test: str
    seed: int
    run_dir: str
    waves: bool = False


def small(result):
    """``result`` (a ``run_scenario`` result) less each tenant's ``completions`` list."""
    out = dict(result)
    out["tenants"] = {name: {k: v for k, v in t.items() if k != "completions"}
                      for name, t in result["tenants"].items()}
    return out


def _attempt(run_dir):
    """Start an attempt in ``run_dir``: its own name, and a marker file that counts it."""
    name = f"attempt-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
    folder = pathlib.Path(run_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                                         "started": time.time()}))
    except OSError:          # a worker that cannot reach the sweep's folder still runs the model
        pass
    return folder, name


def attempts(run_dir, since=0):
    """How many attempts were started in ``run_dir`` at or after ``since`` (``time.time_ns()``);
    more than one for a run means a worker was lost while it ran."""
    return sum(int(p.stem.rsplit("-", 1)[-1]) >= since for p in pathlib.Path(run_dir).glob("attempt-*.json"))


def execute(run):
    """Run ``run`` here; returns ``{"result": ..., "wall_s": ..., "worker": ...}``.

    The result is the program's (:func:`small` of it when it is a scenario's result);
    a run that fails raises, and the sweep records the error under the run's point and seed.
    """
    from ...rtl.params import DeviceParams
    folder, name = _attempt(run.run_dir)
    arg = {"scenario": run.scenario, "source": run.source, "seed": run.seed}
    params = DeviceParams(**run.params)
    t0 = time.perf_counter()
    if run.backend == "model":
        from ..platform import run_program
        result = run_program(run.program, "model", seed=run.seed, params=params, arg=arg)
    elif run.backend == "rtl":
        result = _execute_rtl(run, params, arg, folder / name)
    else:
        raise ValueError(f"Unknown backend {run.backend!r}")
    if isinstance(result, dict) and isinstance(result.get("tenants"), dict):
        result = small(result)
    return {"result": result, "wall_s": time.perf_counter() - t0, "worker": f"{socket.gethostname()}:{os.getpid()}"}


def _execute_rtl(run, params, arg, folder):
    """The program on the Verilated Device, as :func:`siov.tb.host.run.run_on_rtl` runs it, but
    with every file of the attempt in ``folder`` and the simulator's own folder named for it."""
    from ...tb.regressions import device_build
    from ...tb.runner import run_cocotb
    reg = device_build(params)
    folder.mkdir(parents=True, exist_ok=True)
    result_file, arg_file = folder / "result.json", folder / "arg.json"
    arg_file.write_text(json.dumps(arg))
    env = dict(reg.env, SIOV_PROGRAM=run.program, SIOV_SEED=str(run.seed), SIOV_RESULT=str(result_file),
               SIOV_PROGRAM_ARG=str(arg_file))
    build_name, run_name = reg.build + ("-waves" if run.waves else ""), f"sweep-{folder.name}"
    res = run_cocotb(component=reg.factory(), top=reg.top, test_module="siov.tb.host.test_host",
                     build_name=build_name, run_name=run_name, public=reg.public, extra_env=env, waves=run.waves,
                     quick_build=reg.quick_build, test_log=folder / "sim.log")
    _collect(res, folder, build_name, run_name, "all")
    if res.failed or not result_file.exists():
        raise RuntimeError(f"the host program failed on the rtl backend (seed {run.seed}); see {folder / 'sim.log'}")
    return json.loads(result_file.read_text())["result"]


def _collect(res, folder, build_name, run_name, cases):
    """Move a cocotb run's results XML and waveform into ``folder``, and remove the simulator's
    own run folder (it holds nothing else a sweep keeps)."""
    from ...tb.runner import BUILD
    if res.results_xml.exists():
        shutil.move(str(res.results_xml), folder / "results.xml")
    if res.waves is not None and res.waves.exists():
        shutil.move(str(res.waves), folder / res.waves.name)
    shutil.rmtree(BUILD / "sim" / build_name / f"run-{run_name}-{cases}", ignore_errors=True)


async def _nothing(bus, seed):
    """A host program that does nothing: a build's check that the simulator starts."""
    return {}


def build(job):
    """Build the Device of ``job`` (:class:`Build`) unless its build is current, and start it once;
    returns ``{"params", "built", "build_s", "total_s"}``, ``built`` telling whether Verilator ran."""
    from ...rtl.params import DeviceParams
    from ...tb.regressions import device_build
    from ...tb.runner import BUILD, run_cocotb
    reg = device_build(DeviceParams(**job.params))
    build_name = reg.build + ("-waves" if job.waves else "")
    stamp = BUILD / "sim" / build_name / "build.stamp"
    before = stamp.stat().st_mtime_ns if stamp.exists() else None
    tag = f"sweep-build-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
    folder = BUILD / "sweep-builds" / tag
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(reg.env, SIOV_PROGRAM=f"{__name__}:_nothing", SIOV_RESULT=str(folder / "result.json"))
    t0 = time.perf_counter()
    res = run_cocotb(component=reg.factory(), top=reg.top, test_module="siov.tb.host.test_host",
                     build_name=build_name, run_name=tag, public=reg.public, extra_env=env, waves=job.waves,
                     quick_build=reg.quick_build, test_log=folder / "sim.log")
    _collect(res, folder, build_name, tag, "all")
    if res.failed:
        raise RuntimeError(f"the Device with {job.params} was built but did not start; see {folder / 'sim.log'}")
    shutil.rmtree(folder, ignore_errors=True)
    after = stamp.stat().st_mtime_ns if stamp.exists() else None
    return {"params": job.params, "built": after != before, "build_s": res.phases.get("build", 0.0),
            "total_s": time.perf_counter() - t0}


def _coverage_test(test_module):
    """The test of ``test_module`` that saves its coverage when it runs last, or None."""
    import importlib.util
    text = pathlib.Path(importlib.util.find_spec(test_module).origin).read_text()
    for name in ("ZzzCoverageTest", "test_zzz_coverage"):
        if f"class {name}(" in text or f"async def {name}(" in text:
            return name
    return None


def execute_regression(job):
    """Run one seed of a regression test (:class:`RegressionRun`) in its own folder.

    Returns ``{"test", "seed", "passed", "junit", "coverage", "log", "waves"}``:
    ``junit`` the test's ``<testcase>`` elements (XML text) less the coverage
    test, ``coverage`` ``{group: {bin: hits}}`` from the coverage files the
    run wrote.
    """
    from ...tb.regressions import find_test
    from ...tb.runner import run_cocotb
    import xml.etree.ElementTree as ET
    reg = find_test(job.test)
    folder, name = _attempt(job.run_dir)
    folder = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    cov_test = _coverage_test(reg.test_module)
    cases = [job.test] + ([cov_test] if cov_test else [])
    env = dict(reg.env, SIOV_RESULTS=str(folder), SIOV_COVERAGE_DIR=str(folder), SIOV_SEED=str(job.seed))
    t0 = time.perf_counter()
    build_name = (reg.build or reg.name) + ("-waves" if job.waves else "")
    run_name = f"sweep-{job.test}-s{job.seed}-{name}"
    res = run_cocotb(component=reg.factory(), top=reg.top, test_module=reg.test_module,
                     build_name=build_name, run_name=run_name, testcase=cases, public=reg.public,
                     seed=job.seed, extra_env=env, extra_sources=reg.sources, waves=job.waves,
                     quick_build=reg.quick_build, test_log=folder / "sim.log")
    _collect(res, folder, build_name, run_name, "+".join(cases))
    waves = folder / res.waves.name if res.waves is not None else None
    junit, passed = [], True
    xml = folder / "results.xml"
    for case in (ET.parse(xml).iter("testcase") if xml.exists() else ()):
        if cov_test and case.get("name", "").endswith(cov_test):
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            passed = False
        junit.append(ET.tostring(case, encoding="unicode"))
    if not junit:
        passed = False
    coverage = {}
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(doc, dict) and "group" in doc and "hits" in doc:
            coverage[doc["group"]] = doc["hits"]
    return {"test": job.test, "seed": job.seed, "passed": passed, "junit": junit, "coverage": coverage,
            "error": None if passed else f"the test failed; see {folder / 'sim.log'}",
            "log": str(folder / "sim.log"), "waves": str(waves) if waves else None,
            "wall_s": time.perf_counter() - t0}
