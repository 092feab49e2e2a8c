"""Benchmark of ``siov run`` (make bench BENCH=cli): what a new user waits for.

* the built-in scenario on the model backend (four VMs, two containers,
  300,000 device cycles): wall time of the whole command, and device cycles
  simulated per second;
* the short built-in scenario on the rtl backend: the Device build on its
  own line (timed from a cold build folder), then the run with the build
  cached.

Writes build/bench/cli.json.
"""

import json
import pathlib
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
SIOV = [sys.executable, "-m", "siov.sw.cli"]


def timed(args):
    t0 = time.perf_counter()
    proc = subprocess.run(SIOV + args, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return time.perf_counter() - t0


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    model_out = OUT / "cli-model"
    wall = timed(["run", "--out", str(model_out)])
    cycles = json.loads((model_out / "results.json").read_text())["device"]["cycles"]
    from siov.rtl.params import DeviceParams
    from siov.tb.regressions import device_build
    build_dir = ROOT / "build" / "sim" / f"{device_build(DeviceParams()).build}-cli-bench"
    # A cold build, in a folder of its own so that the shared one is left as it is.
    from siov.tb.runner import run_cocotb
    reg = device_build(DeviceParams(), "siov.tb.host.test_host")
    shutil.rmtree(build_dir, ignore_errors=True)
    t0 = time.perf_counter()      # the cold build, and one short program run on it
    run_cocotb(component=reg.factory(), top=reg.top, test_module=reg.test_module, build_name=build_dir.name,
               public=reg.public, extra_env={**reg.env, "SIOV_PROGRAM": "siov.sw.programs.probe:probe",
                                             "SIOV_RESULT": str(OUT / "cli.probe.json")})
    build_s = time.perf_counter() - t0
    shutil.rmtree(build_dir, ignore_errors=True)
    timed(["run", "--backend", "rtl", "--out", str(OUT / "cli-rtl-warm")])      # the shared build exists now
    rtl_wall = timed(["run", "--backend", "rtl", "--out", str(OUT / "cli-rtl")])
    rtl_cycles = json.loads((OUT / "cli-rtl" / "results.json").read_text())["device"]["cycles"]
    result = {"title": "siov run (wall-clock seconds on this machine)",
              "model_default_scenario": {"wall_s": round(wall, 1), "device_cycles": cycles,
                                         "device_cycles_per_s": round(cycles / wall), "goal_s": 30},
              "rtl_short_scenario": {"device_build_s_cold": round(build_s, 1), "run_wall_s_build_cached": round(rtl_wall, 1),
                                     "device_cycles": rtl_cycles, "device_cycles_per_s": round(rtl_cycles / rtl_wall)}}
    (OUT / "cli.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
