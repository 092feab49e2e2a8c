"""The ``siov`` command: run a multi-tenant scenario, show the register map, make Verilog, synthesize.

``siov run`` runs a scenario file (or the built-in one) through the
hypervisor, the guest drivers and the container nodes on the model or the
rtl backend, shows its progress in device time, prints a report and writes
report.html, results.json, trace.json (Perfetto), throughput.png and latency.png.
``siov run --policies per-ring,gang,auto`` runs the same scenario and seed
under each scheduling policy, writes each run's files in a folder named
after its policy, and prints and plots (policies.png) them side by side.
``siov regs`` prints the register map from the generated tables;
``siov verilog`` and ``siov synth`` do what ``make verilog`` and ``make
synth`` do.
"""

import pathlib
import sys
import time

import click

__all__ = ["main"]

#: Device cycles per second of wall time, measured on the default scenario (docs/PERFORMANCE.md),
#: for the estimate ``siov run`` prints up front; a run is refused without ``--yes`` past LONG_RUN_S.
CYCLES_PER_S = {"model": 150_000, "rtl": 20_000}
LONG_RUN_S = 600


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="siov", prog_name="siov")
def main():
    """siov: a scalable-IOV accelerator and its virtualization stack, simulated."""


@main.command()
@click.argument("scenario", required=False, type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option("--backend", type=click.Choice(["model", "rtl"]), default="model", show_default=True,
              help="the Python model of the Device, or the Verilated RTL")
@click.option("--seed", type=int, default=None, help="overrides the scenario's seed")
@click.option("--out", type=click.Path(file_okay=False, path_type=pathlib.Path), default=pathlib.Path("build/run"),
              show_default=True, help="folder for results.json, trace.json and the plots")
@click.option("--policies", default=None, metavar="P1,P2,...",
              help="run the scenario under each of these scheduling policies (per-ring, gang, auto, qos), "
                   "one folder of OUT each, and compare them side by side")
@click.option("--waves", is_flag=True, help="rtl backend: dump a waveform and print its path")
@click.option("--yes", is_flag=True, help=f"run even if the estimated wall time exceeds {LONG_RUN_S // 60} minutes")
def run(scenario, backend, seed, out, policies, waves, yes):
    """Run SCENARIO (TOML; default: a built-in one, five VMs and two containers under the GPU
    scheduler on the model backend, a short one of two VMs and a container on the rtl backend)."""
    from rich.console import Console
    from rich.markup import escape

    from .report import print_policies, write_policy_plots
    from .scenario import DEFAULT, DEFAULT_SHORT, ScenarioError, load, parse, with_policy

    console = Console()
    builtin = DEFAULT if backend == "model" else DEFAULT_SHORT
    try:
        sc = load(scenario) if scenario else parse(builtin, "<built-in scenario>")
        names = [x.strip() for x in policies.split(",") if x.strip()] if policies is not None else [None]
        if policies is not None and (not names or len(set(names)) != len(names)):
            raise ScenarioError(f"--policies takes distinct policy names separated by commas, not {policies!r}")
        runs = [(name, sc if name is None else with_policy(sc, name)) for name in names]
    except ScenarioError as e:
        console.print(f"[red]scenario error[/red]\n{escape(str(e))}", soft_wrap=True)
        sys.exit(2)
    text = scenario.read_text() if scenario else builtin
    source = str(scenario or "<built-in scenario>")
    if waves and backend != "rtl":
        console.print("[red]--waves needs --backend rtl[/red]")
        sys.exit(2)
    eta = len(runs) * sc.cycles / CYCLES_PER_S[backend]
    if eta > LONG_RUN_S and not yes:
        console.print(f"[red]{len(runs)} x {sc.cycles:,} device cycles would take about {_duration(eta)} on the "
                      f"{backend} backend[/red] (at ~{CYCLES_PER_S[backend]:,} cycles/s); pass --yes to run it "
                      f"anyway, or shorten `cycles`")
        sys.exit(2)
    if eta > 10:
        console.print(f"estimated wall time: about {_duration(eta)} ({len(runs)} x {sc.cycles:,} device cycles)")
    docs = {}
    for name, run_sc in runs:
        folder = out if name is None else out / name
        if name is not None:
            console.rule(f"policy {name}")
        doc = _run_one(console, run_sc, text, source, backend, seed, name, folder, waves)
        docs[name] = doc
        if doc["partial"]:
            break
    if policies is not None:
        console.rule("side by side")
        print_policies(docs, console)
        console.print(f"wrote {write_policy_plots(docs, out)}; each policy's run in {out}/<policy>/",
                      highlight=False)
    last = docs[list(docs)[-1]]
    if last["partial"]:
        console.print(f"[red]interrupted[/red]: partial results, {last['device']['cycles']:,} of "
                      f"{sc.cycles:,} device cycles", highlight=False)
        sys.exit(130)


def _run_one(console, sc, text, source, backend, seed, policy, out, waves):
    """Run scenario ``sc`` (``text`` from ``source``; under scheduling ``policy`` if not None),
    write its results, trace, plots and report in ``out``, print the report; its document."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .platform import run_program
    from .report import print_report, write_html, write_plots, write_trace
    from .results import document, write

    arg = {"scenario": text, "source": source, "seed": seed, "policy": policy}
    start = time.perf_counter()
    if backend == "model":
        console.print(f"model: {sc.cycles:,} device cycles; Ctrl-C stops the run and writes what it has, "
                      f"marked partial", highlight=False)
        with Progress(TextColumn("[bold]model[/bold]"), BarColumn(), TextColumn("{task.completed:,.0f} / "
                      "{task.total:,.0f} cycles"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=console) as progress, _StopOnInterrupt(console) as stop:
            task = progress.add_task("run", total=sc.cycles)
            arg["_progress"] = lambda done, total: progress.update(task, completed=done)
            arg["_stop"] = stop
            result = run_program("siov.sw.programs.scenario:run_scenario", "model", seed=seed or 0,
                                 params=sc.device.params(), arg=arg)
            progress.update(task, completed=result["device"]["cycles"] if result["partial"] else sc.cycles)
        wall = time.perf_counter() - start
        rate = (f"{result['device']['cycles'] / wall:,.0f} device cycles per second of wall time "
                f"({wall:.1f} s)")
    else:
        from ..tb.host.run import last_run, logs
        build_log, run_logs = logs(sc.device.params(), waves)
        try:
            with console.status("[bold]rtl[/bold]: starting") as status:
                with _tail_logs(status, build_log, run_logs):
                    result = run_program("siov.sw.programs.scenario:run_scenario", "rtl", seed=seed or 0,
                                         params=sc.device.params(), arg=arg, waves=waves, quiet=True)
        except KeyboardInterrupt:
            console.print("[red]interrupted[/red]: the simulator stops with the command, so the rtl backend "
                          "has no partial results to write (the model backend has)")
            sys.exit(130)
        sim = max(last_run["sim_s"], 1e-9)
        rate = (f"{last_run['cycles'] / sim:,.0f} device cycles per second of simulation ({sim:.1f} s); "
                f"{last_run['total_s'] - sim:.1f} s more to build or check the Device and start the simulator")
        if waves:
            console.print(f"waveform: {last_run['waves']}", soft_wrap=True, highlight=False)
    doc = document(result, sc=sc, text=text, source=source, backend=backend, policy=policy)
    out.mkdir(parents=True, exist_ok=True)
    write(doc, out / "results.json")
    write_trace(doc, out / "trace.json")
    write_plots(doc, out)
    write_html(doc, out, rate)
    print_report(doc, console, rate)
    console.print(f"wrote {out / 'report.html'}, {out / 'results.json'}, {out / 'trace.json'} (open in "
                  f"ui.perfetto.dev), {out / 'throughput.png'}, {out / 'latency.png'}", highlight=False)
    return doc


class _StopOnInterrupt:
    """While the model runs, the first Ctrl-C asks the run to stop (calling the object says
    whether it was asked) and the second one aborts as usual."""

    def __init__(self, console):
        self.console, self.asked, self.previous = console, False, None

    def __call__(self):
        return self.asked

    def _handler(self, signum, frame):
        import signal
        self.asked = True
        signal.signal(signal.SIGINT, self.previous)
        self.console.print("stopping: the results so far will be written, marked partial (Ctrl-C again to abort)")

    def __enter__(self):
        import signal
        self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        import signal
        signal.signal(signal.SIGINT, self.previous)


def _duration(seconds):
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.0f} {unit}"
    return f"{seconds:.0f} s"


@main.command()
@click.option("--example", is_flag=True, required=True,
              help="print the built-in scenario with every key commented, as a starting file")
def scenario(example):
    """Print a scenario file to start from: siov scenario --example > my.toml"""
    from .scenario import example_text
    click.echo(example_text(), nl=False)


class _tail_logs:
    """Show the newest line of the Verilator build log, then of the simulation's log, in a
    rich status line, twice a second, while the rtl backend runs in its own process."""

    def __init__(self, status, build_log, run_dir):
        import threading
        self.status, self.build_log, self.run_dir = status, build_log, run_dir
        self.start = time.time()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _newest(self):
        cands = [self.build_log] + sorted(self.run_dir.glob("*.log"))
        fresh = [p for p in cands if p.exists() and p.stat().st_mtime >= self.start]
        return max(fresh, key=lambda p: p.stat().st_mtime, default=None)

    def _run(self):
        while not self.stop.wait(0.5):
            path = self._newest()
            if path is None:
                continue
            lines = path.read_text(errors="replace").strip().splitlines()
            what = "building the Device" if path == self.build_log else "simulating"
            if lines:
                self.status.update(f"[bold]rtl[/bold] {what}: {lines[-1].strip()[:90]}")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


@main.command()
@click.argument("name", required=False)
def regs(name):
    """Print the register map, or register NAME (such as DMA.FAULT_REC0) with its fields."""
    from rich.console import Console
    from rich.table import Table

    from ..rtl import regmap
    console = Console()
    if name is None:
        table = Table(title="siov register map (rtl/regs.rdl)")
        for col in ("address", "register", "access", "fields"):
            table.add_column(col)
        for path, r in sorted(regmap.REGISTERS.items(), key=lambda kv: kv[1].offset):
            table.add_row(f"{r.offset:#07x}", path, "rw" if r.sw_writable else "r",
                          " ".join(f.name for f in r.fields))
        for path, e in sorted(regmap.EXTERNALS.items(), key=lambda kv: kv[1].offset):
            table.add_row(f"{e.offset:#07x}", path, "window", f"{e.size:#x} bytes")
        console.print(table)
        return
    r = regmap.REGISTERS.get(name.upper())
    if r is None:
        close = [p for p in regmap.REGISTERS if name.upper().split(".")[-1] in p]
        console.print(f"[red]no register {name!r}[/red]" + (f"; did you mean {', '.join(close[:5])}?" if close else ""))
        sys.exit(2)
    table = Table(title=f"{r.path} at {r.offset:#07x}")
    for col in ("bits", "field", "sw", "reset", "description"):
        table.add_column(col)
    for f in sorted(r.fields, key=lambda f: -f.lsb):
        bits = f"{f.lsb + f.width - 1}:{f.lsb}" if f.width > 1 else str(f.lsb)
        table.add_row(bits, f.name, f.sw, "-" if f.reset is None else f"{f.reset:#x}", getattr(f, "desc", "") or "")
    console.print(table)


@main.command()
@click.option("--out", default="build/verilog", show_default=True, help="output folder")
@click.argument("tops", nargs=-1)
def verilog(out, tops):
    """Write the Verilog of TOPS (default: every top) and lint it with verilator --lint-only -Wall."""
    import os
    import subprocess

    from ..rtl.ecp5 import SIM_MODEL
    from ..rtl.generate import TOPS, write_all
    from ..tb.runner import WAIVERS, setup_verilator_env
    unknown = [t for t in tops if t not in TOPS]
    if unknown:
        click.echo(f"no top {', '.join(unknown)}; the tops are: {', '.join(TOPS)}", err=True)
        sys.exit(2)
    env = dict(os.environ)
    setup_verilator_env(env)
    failed = 0
    for v in write_all(out, list(tops) or None):       # lint what was written now, nothing stale
        click.echo(f"wrote {v}")
        models = [str(SIM_MODEL)] if "DP16KD" in v.read_text() else []
        proc = subprocess.run(["verilator", "--lint-only", "-Wall", str(WAIVERS), *models, str(v),
                               "--top-module", v.stem], capture_output=True, text=True, env=env)
        ok = proc.returncode == 0 and "%Warning" not in proc.stderr
        failed += not ok
        click.echo(f"lint {v.stem}: {'clean' if ok else 'FAILED'}")
        if not ok:
            click.echo(proc.stderr[-4000:])
    sys.exit(1 if failed else 0)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def synth(args):
    """yosys synth_ecp5 + nextpnr-ecp5 per top, as make synth (siov synth --seeds 3 siov_engine)."""
    from ..rtl.synth import main as synth_main
    sys.exit(synth_main(list(args)))


def _register_sweep():
    """``siov sweep``: seed and parameter sweeps, and regression seeds, on Dask (sw/sweep/command.py)."""
    from .sweep.command import sweep
    main.add_command(sweep)


_register_sweep()


if __name__ == "__main__":
    main()
