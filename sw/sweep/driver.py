"""The sweep itself: plan the runs, take what the cache has, run the rest, and write what came out.

:func:`plan` checks the whole specification and makes the list of
:class:`~siov.sw.sweep.work.Run`; :func:`run_sweep` runs those the cache
does not hold, serially or on a Dask client, stores each result as it
arrives, and then writes the sweep's output folder:

* ``sweep.json``: the specification, and per point its values, its
  scenario file, its Device, the headline metrics of every seed, their
  statistics, and the failed seeds with the command that reproduces each;
* ``runs.json``: every run's results dict (``siov run``'s, less the
  per-descriptor completions), by point and seed;
* ``summary.md``: the table of each point; ``plots/*.png``: the distributions;
* ``points/pNNN.toml``: each point's scenario file;
* ``runs/pNNN/seed-N/``: each run's own folder (attempt markers, and the
  simulator's files on the rtl backend);
* ``timing.json``: wall times (``wall_s`` of the runs, ``outputs_s`` of
  writing the rest), how many runs were computed, cached, failed and
  recomputed after a lost worker, and the Device builds.

Everything but ``timing.json`` depends only on the specification and the
results, never on where or in which order runs ran: a sweep on a cluster
writes the same bytes as the same sweep run serially.
"""

import dataclasses
import json
import os
import pathlib
import shlex
import time

from . import stats
from .cache import ResultCache, run_key, software_fingerprint
from .spec import expand, scenario_digest
from .work import PROGRAM, Build, Run, attempts, build, execute

__all__ = ["Sweep", "Outcome", "SweepInterrupted", "plan", "run_sweep", "write_outputs", "reproduce_command"]


class SweepInterrupted(KeyboardInterrupt):
    """The sweep was stopped before every run finished; what finished is in the cache."""

    def __init__(self, done, total):
        super().__init__(f"{done} of {total} runs finished and cached; run the same command again to resume")
        self.done, self.total = done, total


@dataclasses.dataclass
class Sweep:
    """A planned sweep (:func:`plan`): its points, seeds and runs, and where results go."""
    source: str
    text: str
    sets: list
    seeds: list
    backend: str
    points: list
    runs: list
    out: pathlib.Path
    cache: ResultCache
    program: str = PROGRAM
    fingerprints: dict = dataclasses.field(default_factory=dict)
    keys: dict = dataclasses.field(default_factory=dict)
    software: str = ""

    def missing(self):
        """The runs whose results the cache does not hold."""
        return [r for r in self.runs if r.key not in self.cache]


@dataclasses.dataclass
class Outcome:
    """What :func:`run_sweep` did: the sweep document, the counts, and the files written."""
    doc: dict
    computed: int
    cached: int
    failed: int
    recomputed: int
    wall_s: float
    files: dict
    warnings: list = dataclasses.field(default_factory=list)


def plan(text, sets, seeds, *, source="<scenario>", backend="model", out="build/sweep", cache=None,
         program=PROGRAM, waves=False):
    """Check a sweep and list its runs; :class:`~siov.sw.sweep.spec.SweepError` before anything runs.

    ``text`` is the scenario (read from ``source``), ``sets`` the ``--set``
    options as ``[(key, values), ...]``, ``seeds`` the seeds. Results are
    cached in ``cache`` (default ``build/sweep-cache``, shared by every
    sweep of this checkout); each point's scenario file is written to
    ``out/points`` at once, so that a failure can be reproduced from it.
    """
    from ..results import device_fingerprint
    from .spec import SweepError
    if backend not in ("model", "rtl"):
        raise SweepError(f"--backend {backend!r}: choose model or rtl")
    if not seeds:
        raise SweepError("--seeds: no seeds")
    if waves and backend != "rtl":
        raise SweepError("--waves needs --backend rtl")
    points = expand(text, sets, source)
    out = pathlib.Path(out)
    cache = ResultCache(cache or "build/sweep-cache")
    software = software_fingerprint(backend, program)
    sweep = Sweep(source=source, text=text, sets=list(sets), seeds=list(seeds), backend=backend, points=points,
                  runs=[], out=out, cache=cache, program=program, software=software)
    (out / "points").mkdir(parents=True, exist_ok=True)
    for p in points:
        params = p.scenario.device.params()
        if params not in sweep.fingerprints:
            sweep.fingerprints[params] = device_fingerprint(params)
        _write_if_changed(out / "points" / f"{p.id}.toml", _point_header(sweep, p) + p.text)
    for seed in seeds:                       # seed-major: a sweep stopped early has every point
        for p in points:
            params = p.scenario.device.params()
            parts = {"scenario": scenario_digest(p.scenario), "seed": seed, "backend": backend,
                     "verilog": sweep.fingerprints[params], "software": software}
            key = run_key(**parts)
            sweep.keys[key] = dict(parts, program=program, point=p.values)
            sweep.runs.append(Run(point=p.index, seed=seed, backend=backend, scenario=p.text,
                                  source=str(out / "points" / f"{p.id}.toml"), params=dict(vars(params)), key=key,
                                  run_dir=str(out / "runs" / p.id / f"seed-{seed}"), program=program, waves=waves))
    return sweep


def _point_header(sweep, p):
    return (f"# siov sweep: point {p.id} of {sweep.source}" + (f" with {p.label}" if p.values else "") + "\n")


def _write_if_changed(path, text):
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _shown(path):
    """``path`` relative to the working folder when it is below it, else absolute."""
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else str(pathlib.Path(path).resolve())


def reproduce_command(sweep, run, waves=True):
    """The ``siov run`` command that repeats ``run`` alone: on the rtl backend with a waveform
    (``waves``), or on the sweep's own backend without one."""
    from ..cli import CYCLES_PER_S, LONG_RUN_S
    point = sweep.points[run.point]
    backend = "rtl" if waves else sweep.backend
    cmd = ["siov", "run", _shown(run.source), "--backend", backend, "--seed", str(run.seed)]
    cmd += ["--waves"] if waves else []
    cmd += ["--out", _shown(pathlib.Path(run.run_dir) / ("rerun-waves" if waves else "rerun"))]
    if point.scenario.cycles / CYCLES_PER_S[backend] > LONG_RUN_S:
        cmd.append("--yes")
    return shlex.join(cmd)


def _run_serial(sweep, todo, record, builds, built):
    for b in builds:
        try:
            built.append(build(b))
        except Exception as e:                     # every run on that Device fails with it, named
            for r in [r for r in todo if r.params == b.params]:
                record(r, None, f"building the Device {b.params} failed: {e}")
            todo = [r for r in todo if r.params != b.params]
    for r in todo:
        try:
            record(r, execute(r), None)
        except Exception as e:
            record(r, None, f"{type(e).__name__}: {e}")


def _execute_after(run, _built):
    """:func:`execute`, once the Device's build (``_built``) is done."""
    return execute(run)


def _run_dask(sweep, todo, record, builds, client, done_builds):
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    try:
        from distributed import KilledWorker
    except ImportError:                            # older distributed
        from distributed.scheduler import KilledWorker
    try:                                           # a scheduler started elsewhere may not import siov
        allowed = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
    except Exception:
        import dask
        allowed = dask.config.get("distributed.scheduler.allowed-failures")
    built = {}
    for b in builds:
        built[json.dumps(b.params, sort_keys=True)] = client.submit(build, b, key=f"siov-build-{_digest(b)}",
                                                                   pure=False)
    same = {}                       # two points may make the same scenario: one task, every run recorded
    for r in todo:
        same.setdefault(r.key, []).append(r)
    futures = {}
    for key, runs in same.items():
        r = runs[0]
        dep = built.get(json.dumps(r.params, sort_keys=True))
        if dep is None:
            fut = client.submit(execute, r, key=f"siov-run-{key}", pure=False)
        else:
            fut = client.submit(_execute_after, r, dep, key=f"siov-run-{key}", pure=False)
        futures[fut] = runs
    try:
        for fut in as_completed(list(futures)):
            runs = futures.pop(fut)
            outcome, error = None, None
            try:
                outcome = fut.result()
                # Released at once: a result a lost worker still held would be computed again.
                fut.release()
            except KilledWorker:
                error = (f"KilledWorker: this run killed the worker running it {allowed + 1} times "
                         f"(distributed.scheduler.allowed-failures is {allowed}): it crashes its process "
                         f"(a crash in the simulator, os._exit, running out of memory)")
            except FutureCancelledError as e:
                error = f"cancelled: {e}"
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
            for r in runs:
                record(r, outcome, error)
    finally:
        for fut in futures:
            fut.cancel()
        for fut in built.values():
            if fut.status == "finished":
                try:
                    done_builds.append(fut.result(timeout=30))
                except Exception:               # its worker is gone: the builds list is for information
                    pass
            fut.cancel()


def _digest(obj):
    import hashlib
    return hashlib.sha256(json.dumps(dataclasses.asdict(obj), sort_keys=True).encode()).hexdigest()[:16]


def run_sweep(sweep, client=None, *, console=None, on_result=None):
    """Run the runs of ``sweep`` that the cache lacks, on ``client`` (Dask) or here, one at a time.

    Each result is cached as it arrives; ``on_result(run, outcome, error)``
    is called after each (for tests and tools). With a ``console`` (rich), a
    progress bar per point, and the tables at the end. Ctrl-C stops the
    sweep with :class:`SweepInterrupted` (the cache keeps what finished).
    Returns an :class:`Outcome`.
    """
    start, start_ns = time.perf_counter(), time.time_ns()
    results, failures, walls, built = {}, {}, [], []
    for r in sweep.runs:
        got = sweep.cache.get(r.key)
        if got is not None:
            results[(r.point, r.seed)] = got
    todo = [r for r in sweep.runs if (r.point, r.seed) not in results]
    cached = len(sweep.runs) - len(todo)
    builds = []
    if sweep.backend == "rtl":
        builds = list({json.dumps(r.params, sort_keys=True): Build(r.params, r.waves) for r in todo}.values())
    progress = _Progress(sweep, console, results)

    def record(run, outcome, error):
        if outcome is not None:
            sweep.cache.put(run.key, outcome["result"], sweep.keys[run.key])
            results[(run.point, run.seed)] = outcome["result"]
            walls.append(outcome["wall_s"])
        else:
            failures[(run.point, run.seed)] = error
        progress.advance(run)
        if on_result is not None:
            on_result(run, outcome, error)

    try:
        with progress:
            if client is None:
                _run_serial(sweep, todo, record, builds, built)
            else:
                _run_dask(sweep, todo, record, builds, client, built)
    except KeyboardInterrupt:
        raise SweepInterrupted(len(results), len(sweep.runs)) from None
    wall = time.perf_counter() - start
    recomputed = sum(max(0, attempts(r.run_dir, since=start_ns) - 1) for r in todo)
    warnings = _sources_changed(sweep)
    if warnings:                   # what ran may mix two versions: keep none of it for the next sweep
        for r in todo:
            sweep.cache.path(r.key).unlink(missing_ok=True)
    t_out = time.perf_counter()
    doc, files = write_outputs(sweep, results, failures)
    outputs_s = time.perf_counter() - t_out
    timing = {"wall_s": round(wall, 3), "outputs_s": round(outputs_s, 3), "runs": len(sweep.runs),
              "computed": len(todo) - len(failures),
              "cached": cached, "failed": len(failures), "recomputed_after_lost_worker": recomputed,
              "run_wall_s_mean": round(sum(walls) / len(walls), 4) if walls else None,
              "run_wall_s_total": round(sum(walls), 3), "executor": "serial" if client is None else "dask",
              "workers": None if client is None else len(client.scheduler_info().get("workers", {})),
              "builds": built, "warnings": warnings}
    (sweep.out / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    files["timing"] = sweep.out / "timing.json"
    if console is not None:
        stats.print_table(doc, console)
    return Outcome(doc=doc, computed=len(todo) - len(failures), cached=cached, failed=len(failures),
                   recomputed=recomputed, wall_s=wall, files=files, warnings=warnings)


def _sources_changed(sweep):
    """What changed under the sweep while it ran (the host software, a Device's Verilog), as messages."""
    from ..results import device_fingerprint
    out = []
    if software_fingerprint(sweep.backend, sweep.program) != sweep.software:
        out.append("the host software changed while the sweep ran")
    for params, fingerprint in sweep.fingerprints.items():
        if device_fingerprint(params) != fingerprint:
            out.append(f"the Verilog of the Device with {params} changed while the sweep ran")
    return [m + ": its runs may mix two versions, and none of them was kept in the cache" for m in out]


class _Progress:
    """A rich progress bar per point (up to 12; past that, one for the whole sweep)."""

    def __init__(self, sweep, console, results):
        self.sweep, self.console = sweep, console
        self.bars = None
        if console is None:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=console)
        per_point = len(sweep.points) <= 12
        self.bars = {}
        self.all = self.progress.add_task(f"[bold]{len(sweep.points)} points[/bold]", total=len(sweep.runs),
                                          completed=len(results))
        if per_point and len(sweep.points) > 1:
            for p in sweep.points:
                done = sum((p.index, s) in results for s in sweep.seeds)
                self.bars[p.index] = self.progress.add_task(f"  {p.id} {p.label}"[:60], total=len(sweep.seeds),
                                                            completed=done)

    def advance(self, run):
        if self.bars is None:
            return
        self.progress.advance(self.all)
        if run.point in self.bars:
            self.progress.advance(self.bars[run.point])

    def __enter__(self):
        if self.bars is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bars is not None:
            self.progress.__exit__(*exc)


def write_outputs(sweep, results, failures):
    """Write the output folder of a sweep (see the module's docstring) from ``results`` and
    ``failures`` (``{(point, seed): result or error}``); returns ``(sweep document, {name: path})``."""
    out = sweep.out
    runs_by = {(r.point, r.seed): r for r in sweep.runs}
    points = []
    for p in sweep.points:
        params = p.scenario.device.params()
        runs = {}
        for s in sweep.seeds:
            if (p.index, s) in results:
                runs[str(s)] = stats.headline(results[(p.index, s)])
        metrics = list(dict.fromkeys(m for r in runs.values() for m in r))
        failed = [{"seed": s, "error": failures[(p.index, s)],
                   "reproduce": reproduce_command(sweep, runs_by[(p.index, s)], waves=False),
                   "reproduce_waves": reproduce_command(sweep, runs_by[(p.index, s)])}
                  for s in sweep.seeds if (p.index, s) in failures]
        points.append({"id": p.id, "label": p.label, "set": p.values, "scenario_file": f"points/{p.id}.toml",
                       "device": {"params": dict(vars(params)), "verilog_fingerprint": sweep.fingerprints[params]},
                       "stats": {m: stats.summarize([r[m] for r in runs.values() if m in r]) for m in metrics},
                       "runs": runs, "failed": failed})
    doc = {"schema": "siov-sweep/1", "scenario": {"source": str(sweep.source), "text": sweep.text},
           "backend": sweep.backend, "program": sweep.program, "seeds": sweep.seeds,
           "set": {k: v for k, v in sweep.sets}, "units": stats.UNITS, "points": points,
           "runs": len(sweep.runs), "failed": sum(len(p["failed"]) for p in points)}
    files = {"sweep": out / "sweep.json", "runs": out / "runs.json", "summary": out / "summary.md"}
    files["sweep"].write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    every = [{"point": p.id, "seed": s, "result": results[(p.index, s)]}
             for p in sweep.points for s in sweep.seeds if (p.index, s) in results]
    files["runs"].write_text(json.dumps(every, sort_keys=True) + "\n")
    files["summary"].write_text(stats.markdown(doc) + "\n")
    files["plots"] = stats.write_plots(doc, out / "plots")
    return doc, files
