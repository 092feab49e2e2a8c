"""The ``siov sweep`` command line (registered by :mod:`siov.sw.cli`)."""

import pathlib
import sys

import click

__all__ = ["sweep"]

_WHERE = ("Where runs go: --cluster local (default: a LocalCluster, one worker process per core), local:N, "
          "or serial (this process, no Dask); --scheduler tcp://HOST:8786 (a running Dask scheduler); "
          "or --jobqueue slurm|lsf|sge|pbs with -o KEY=VALUE options of dask-jobqueue and --jobs N.")


@click.command("sweep", epilog=_WHERE)
@click.argument("scenario", required=False, type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option("--seeds", required=True, metavar="SEEDS", help="seeds to run: 1-200, or 1,5,9-12")
@click.option("--set", "sets", multiple=True, metavar="KEY=V1,V2",
              help="sweep a scenario key (dotted path: arbiter.policy, scheduler.policy, device.num_engines, "
                   "tenants.0.weight, tenants.vm1.weight, tenants.*.quantum) over values (A-B[:STEP]: a range); "
                   "several are crossed")
@click.option("--backend", type=click.Choice(["model", "rtl"]), default="model", show_default=True)
@click.option("--cluster", default=None, metavar="local[:N]|serial", help="a LocalCluster of N workers (default: "
              "one per core), or serial")
@click.option("--scheduler", default=None, metavar="ADDRESS", help="a running Dask scheduler (tcp://HOST:8786)")
@click.option("--jobqueue", type=click.Choice(["slurm", "lsf", "sge", "pbs"]), default=None,
              help="start Dask workers as batch jobs through dask-jobqueue")
@click.option("-o", "--jobqueue-option", "jq_options", multiple=True, metavar="KEY=VALUE",
              help="an option of the dask-jobqueue cluster (cores=32, memory=64GiB, queue=sim, account=hw, "
                   "walltime=04:00:00, job_extra_directives='[\"--exclusive\"]')")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="--jobqueue: how many jobs to submit")
@click.option("--allowed-failures", type=click.IntRange(min=0), default=None,
              help="workers a run may kill before it fails with KilledWorker (Dask's default: 3)")
@click.option("--regression", metavar="TEST", default=None,
              help="run cocotb test TEST of tb/regressions.py over the seeds instead of a scenario")
@click.option("--out", type=click.Path(file_okay=False, path_type=pathlib.Path), default=pathlib.Path("build/sweep"),
              show_default=True, help="folder for sweep.json, the tables, the plots and the runs' folders")
@click.option("--cache", type=click.Path(file_okay=False, path_type=pathlib.Path),
              default=pathlib.Path("build/sweep-cache"), show_default=True, help="the result cache (shared by sweeps)")
@click.option("--waves", is_flag=True, help="dump a waveform of every run (rtl backend, --regression)")
@click.option("--dry-run", is_flag=True, help="check the sweep, list its points and runs (and the job script of "
              "--jobqueue), and stop")
def sweep(scenario, seeds, sets, backend, cluster, scheduler, jobqueue, jq_options, jobs, allowed_failures, regression,
          out, cache, waves, dry_run):
    """Run SCENARIO (default: the built-in one of siov run) over seeds and parameter points, on Dask.

    siov sweep my.toml --seeds 1-200 --set arbiter.policy=rr,wrr,qos --set device.num_engines=2,4

    prints a table per point (mean, 95% CI, p50, p99 of throughput, engine
    utilisation and each tenant's latency) and writes OUT/sweep.json,
    OUT/summary.md and OUT/plots/*.png. Results are cached: the same command
    again computes only what is missing, and a stopped sweep resumes.
    """
    from rich.console import Console
    from rich.markup import escape

    from .spec import SweepError, parse_seeds, parse_set, parse_values
    console = Console()

    def fail(message, code=2):
        console.print(f"[red]{escape(message)}[/red]", soft_wrap=True)
        sys.exit(code)

    where = [x for x in (cluster and "--cluster", scheduler and "--scheduler", jobqueue and "--jobqueue") if x]
    if len(where) > 1:
        fail(f"{' and '.join(where)}: choose one place for the runs")
    try:
        seed_list = parse_seeds(seeds)
        options = {}
        for item in jq_options:
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise SweepError(f"-o {item!r}: expected KEY=VALUE")
            values = parse_values(f"-o {key}", value)
            options[key.strip()] = values[0] if len(values) == 1 else values
        if jq_options and not jobqueue:
            raise SweepError("-o/--jobqueue-option needs --jobqueue")
        place = dict(cluster=cluster or "local", scheduler=scheduler, jobqueue=jobqueue, options=options, jobs=jobs,
                     allowed_failures=allowed_failures)
        from .cluster import parse_cluster
        if cluster:
            parse_cluster(cluster)
        if regression and (scenario or sets or backend != "model"):
            raise SweepError("--regression runs a cocotb test: it takes no SCENARIO, --set or --backend")
        parsed = [parse_set(s) for s in sets]
        if regression:
            from .regress import plan_regression
            runs = plan_regression(regression, seed_list, out=out, waves=waves)
    except (SweepError, ValueError) as e:
        fail(str(e))
    if regression:
        _regression(console, runs, out, dry_run, place)
    else:
        _scenario_sweep(console, fail, scenario, parsed, seed_list, backend, out, cache, waves, dry_run, place)


def _where(place):
    if place["scheduler"]:
        return f"the Dask scheduler at {place['scheduler']}"
    if place["jobqueue"]:
        return f"{place['jobqueue']} jobs ({place['jobs']})"
    from .cluster import parse_cluster
    kind, n = parse_cluster(place["cluster"])
    if kind == "serial":
        return "this process"
    import os
    return f"a LocalCluster of {n or os.cpu_count()} workers"


def _dry_run(console, place):
    if place["jobqueue"]:
        from .cluster import jobqueue_cluster
        cluster = jobqueue_cluster(place["jobqueue"], place["options"], place["allowed_failures"])
        try:
            console.print(f"job script ({place['jobs']} job(s) would be submitted):", highlight=False)
            console.print(cluster.job_script(), highlight=False, markup=False, soft_wrap=True)
        finally:
            cluster.close()


def _scenario_sweep(console, fail, scenario, sets, seeds, backend, out, cache, waves, dry_run, place):
    from rich.markup import escape

    from ..scenario import DEFAULT, DEFAULT_SHORT
    from .cluster import open_client
    from .driver import SweepInterrupted, plan, run_sweep
    from .spec import SweepError
    text = scenario.read_text() if scenario else (DEFAULT if backend == "model" else DEFAULT_SHORT)
    source = str(scenario or "<built-in scenario>")
    try:
        sw = plan(text, sets, seeds, source=source, backend=backend, out=out, cache=cache, waves=waves)
    except SweepError as e:
        fail(str(e))
    todo = sw.missing()
    console.print(f"{len(sw.points)} point(s) x {len(seeds)} seed(s) = {len(sw.runs)} runs on the {backend} "
                  f"backend; {len(sw.runs) - len(todo)} cached, {len(todo)} to run on {_where(place)}",
                  highlight=False)
    if dry_run:
        for p in sw.points:
            console.print(f"  {p.id}  {escape(p.label)}  ({out / 'points' / (p.id + '.toml')})", highlight=False)
        _dry_run(console, place)
        return
    try:
        if todo:
            with open_client(**place) as client:
                outcome = run_sweep(sw, client, console=console)
        else:
            outcome = run_sweep(sw, None, console=console)
    except SweepInterrupted as e:
        console.print(f"[yellow]stopped: {e}[/yellow]")
        sys.exit(130)
    for p in outcome.doc["points"]:
        for f in p["failed"]:
            console.print(f"[red]{p['id']} ({escape(p['label'])}) seed {f['seed']} failed:[/red] "
                          f"{escape(f['error'])}", soft_wrap=True)
            console.print(f"  reproduce: {escape(f['reproduce'])}", soft_wrap=True, highlight=False)
            console.print(f"  with a waveform: {escape(f['reproduce_waves'])}", soft_wrap=True, highlight=False)
    for w in outcome.warnings:
        console.print(f"[yellow]{escape(w)}[/yellow]", soft_wrap=True)
    files = outcome.files
    console.print(f"{outcome.computed} run(s) computed, {outcome.cached} cached, {outcome.failed} failed"
                  + (f", {outcome.recomputed} recomputed after a lost worker" if outcome.recomputed else "")
                  + f" in {outcome.wall_s:.1f} s", highlight=False)
    console.print(f"wrote {files['sweep']}, {files['summary']}, {files['runs']} and {len(files['plots'])} plots in "
                  f"{out / 'plots'}", highlight=False, soft_wrap=True)
    if outcome.failed:
        sys.exit(1)


def _regression(console, runs, out, dry_run, place):
    from rich.markup import escape

    from .cluster import open_client
    from .regress import run_regression
    console.print(f"{runs[0].test}: {len(runs)} seed(s) on {_where(place)}", highlight=False)
    if dry_run:
        _dry_run(console, place)
        return
    with open_client(**place) as client:
        summary = run_regression(runs, client, out=out, console=console)
    for r in summary["seed_results"]:
        if not r["passed"]:
            console.print(f"[red]seed {r['seed']} failed:[/red] {escape(str(r.get('error')))}", soft_wrap=True)
            console.print(f"  with a waveform: {escape(r['reproduce_waves'])}", soft_wrap=True, highlight=False)
    if not summary["coverage_missed"]:
        console.print("coverage: the test's module saves none (a coverage test that runs last and saves it, as "
                      "tb/system's ZzzCoverageTest does, makes it count here)", highlight=False, soft_wrap=True)
    for group, missed in summary["coverage_missed"].items():
        console.print(f"coverage {group}: " + (f"{len(missed)} bin(s) no seed hit: {', '.join(missed)}" if missed
                                               else "every bin hit by some seed"), highlight=False, soft_wrap=True)
    console.print(f"{summary['passed']} passed, {summary['failed']} failed; wrote {out / 'junit.xml'}, "
                  f"{out / 'coverage.json'}, {out / 'regression.json'}", highlight=False, soft_wrap=True)
    if summary["failed"]:
        sys.exit(1)
