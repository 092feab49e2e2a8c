"""Run a host program on the Verilated Device from plain Python, and get its result back.

The Device is built once per parameter set, in the folder the register and
system regressions share (``build/sim/device-<tag>``), so a host program
after ``make sim`` compiles nothing. The program runs inside cocotb
(:mod:`siov.tb.host.test_host`) in its own run folder per program, seed and
argument (a digest of it), so runs of different seeds or arguments may go on
in parallel: pytest's workers run one program with several arguments at once.
"""

import hashlib
import json
import os
import resource
import time

from ...rtl.params import DeviceParams
from ..regressions import device_build
from ..runner import BUILD

__all__ = ["run_on_rtl", "last_run", "logs"]

#: Wall-clock figures of the last run in this process: ``total_s``, ``sim_s`` (the
#: program), ``cycles``, and the fixed cost in ``phases``: ``elaborate`` (the Amaranth
#: design), ``convert`` (its Verilog), ``build`` (the build or its check), ``start``
#: (simulator process start to the program's first line: libraries, cocotb, imports,
#: reset) and ``stop`` (the program's end to the process's exit); ``sim_cpu_s`` and
#: ``total_cpu_s`` are the CPU seconds of the program and of the whole run (this process's
#: and the simulator's), which a machine busy with other work inflates far less than wall time.
last_run = {}


def _cpu():
    """CPU seconds of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def logs(params=DeviceParams(), waves=False):
    """``(build log, folder of the run logs)`` of a host program's rtl run, for showing progress."""
    reg = device_build(params)
    return BUILD / "sim" / (reg.build + ("-waves" if waves else "")) / "build.log", BUILD / "host"


def run_on_rtl(program, seed=0, params=DeviceParams(), waves=False, arg=None, quiet=False, profile=False,
               memory=None):
    """Run ``program`` (``"module:function"``) on the Verilated Device; return its result.

    With ``quiet``, the simulation's output goes to ``build/host/<run>.log``
    instead of the terminal. With ``profile``, the program's run is profiled
    (cProfile) and ``last_run["profile"]`` names the pstats file. ``memory``
    chooses the host memory (:data:`siov.tb.host.bus.MEMORIES`: ``shared``, the
    default, or cocotbext-axi's ``axiram``).

    Raises RuntimeError with the cocotb log's path if the program failed.
    """
    reg = device_build(params)
    tag = f"host-{program.rsplit(':', 1)[-1]}-s{seed}"
    if arg is not None:
        tag += "-" + hashlib.sha256(json.dumps(arg, sort_keys=True).encode()).hexdigest()[:10]
    result_file = BUILD / "host" / f"{tag}-{params.tag}.json"
    result_file.parent.mkdir(parents=True, exist_ok=True)
    if result_file.exists():
        result_file.unlink()
    env = dict(reg.env, SIOV_PROGRAM=program, SIOV_SEED=str(seed), SIOV_RESULT=str(result_file))
    if arg is not None:
        arg_file = result_file.with_suffix(".arg.json")
        arg_file.write_text(json.dumps(arg))
        env["SIOV_PROGRAM_ARG"] = str(arg_file)
    if profile:
        env["SIOV_PROFILE"] = str(result_file.with_suffix(".pstat"))
    if memory is not None:
        env["SIOV_RTL_MEMORY"] = memory
    start, cpu = time.perf_counter(), _cpu()
    from ..runner import run_cocotb
    component = reg.factory()
    elaborate = time.perf_counter() - start
    res = run_cocotb(component=component, top=reg.top, test_module="siov.tb.host.test_host",
                     build_name=reg.build + ("-waves" if waves else ""), run_name=tag, public=reg.public,
                     extra_env=env, waves=waves, quick_build=reg.quick_build,
                     test_log=result_file.with_suffix(".log") if quiet else None)
    total, cpu = time.perf_counter() - start, _cpu() - cpu
    if res.failed or not result_file.exists():
        raise RuntimeError(f"host program {program} failed on the rtl backend; see {res.results_xml} "
                           f"and the log in {res.results_xml.parent}")
    out = json.loads(result_file.read_text())
    last_run.clear()
    run_s = res.phases["run"]
    started, ended = (out[k] - res.phases["run_started_at"] for k in ("started", "ended"))
    last_run.update(total_s=total, sim_s=out["wall_s"], cycles=out["cycles"], waves=str(res.waves or ""),
                    sim_cpu_s=out["cpu_s"], total_cpu_s=cpu,
                    phases={"elaborate": elaborate, "convert": res.phases["convert"], "build": res.phases["build"],
                            "start": started, "stop": run_s - ended})
    if profile:
        last_run["profile"] = env["SIOV_PROFILE"]
    return out["result"]
