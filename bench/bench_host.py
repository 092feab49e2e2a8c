"""Benchmark of the host runtime: the two backends against each other (make bench BENCH=host).

Measures, on the 4-tenant differential program (siov.sw.programs.four_tenants):

* speed: wall-clock time of the same program on the model backend and on
  the rtl backend (simulation only, the Device build being cached), their
  ratio, and device cycles simulated per second on each;
* timing fidelity: each descriptor's cycles (grant to completion, the
  completion record's ``cycles``) on the model against the RTL, for the
  MEMMOVE, MEMFILL and COMPARE descriptors; the timing model is fitted on
  seeds 1-4 (``--fit`` prints the coefficients for sw/platform/timing.py)
  and the error is measured on seeds 5-8, which the fit never saw;
* memory: peak RSS of a model-backend program that touches 4096 pages of the
  largest build (64 domains of 65536 pages), against the same program
  touching 64 pages, in fresh processes.

Writes build/bench/host.json.
"""

import functools
import json
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
PARTS = OUT / "host-parts"
PROGRAM = "siov.sw.programs.four_tenants:four_tenants"
FIT_SEEDS, TEST_SEEDS = (1, 2, 3, 4), (5, 6, 7, 8)
DATA_KINDS = ("MEMMOVE", "MEMMOVE_DOWN", "MEMFILL", "COMPARE")


@functools.lru_cache(maxsize=None)
def _device_fingerprint():
    from siov.rtl.generate import convert_top
    from siov.rtl.synth import verilog_fingerprint
    return verilog_fingerprint(convert_top("siov_device"))


def rtl_record(seed):
    """The program's record on the rtl backend (cached in build/bench/host-parts under the
    fingerprint of the Device's Verilog, so a changed Device is run again)."""
    from siov.sw.diff import run
    from siov.tb.host.run import last_run
    path = PARTS / f"rtl-{_device_fingerprint()}-s{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    rec = run(PROGRAM, "rtl", seed=seed)
    data = {"record": rec, "run": dict(last_run)}
    path.write_text(json.dumps(data))
    return data


def model_run(seed, timing=None):
    """``(record, executed, wall seconds)`` of the program on the model backend."""
    from siov.sw.diff import run
    buses = []
    t0 = time.perf_counter()
    rec = run(PROGRAM, "model", seed=seed, timing=timing, bus_hook=buses.append)
    return rec, buses[0].executed, time.perf_counter() - t0


def samples(seed):
    """``[(kind, feature vector, rtl cycles, opcode name)]`` for every record of ``seed``."""
    from siov.sw.platform.timing import features
    rtl = rtl_record(seed)["record"]
    _, executed, _ = model_run(seed)
    out = []
    for name, pairs in rtl["timing"]["cycles"].items():
        for host, cycles, _start in pairs:
            if host not in executed:
                continue
            desc, outcome, _ = executed[host]
            kind, pieces, rb, wb, record = features(desc, outcome)
            out.append((kind, (1.0, pieces, rb, wb), cycles, outcome.status.name))
    return out


def fit(all_samples):
    """Least-squares coefficients per kind (the record term folded into the base:
    every sample here writes its record)."""
    from siov.sw.platform.timing import Coefficients
    coeffs = {}
    for kind in sorted({s[0] for s in all_samples}):
        rows = [s for s in all_samples if s[0] == kind]
        x = np.array([s[1] for s in rows])
        y = np.array([s[2] for s in rows], dtype=float)
        used = [j for j in range(x.shape[1]) if np.any(x[:, j] != x[0, j]) or j == 0]
        sol, *_ = np.linalg.lstsq(x[:, used], y, rcond=None)
        full = [0.0] * 4
        for j, v in zip(used, sol):
            full[j] = round(float(v), 3)
        coeffs[kind] = Coefficients(base=full[0], per_piece=full[1], per_read_beat=full[2], per_write_beat=full[3])
    return coeffs


def fidelity():
    from siov.sw.platform.timing import TimingModel
    model = TimingModel()
    errors = []
    for seed in TEST_SEEDS:
        for kind, f, rtl, status in samples(seed):
            if kind not in DATA_KINDS:
                continue
            c = model.coefficients[kind]
            pred = max(1, round(c.base + c.per_piece * f[1] + c.per_read_beat * f[2] + c.per_write_beat * f[3]
                                + c.record))
            errors.append((abs(pred - rtl) / rtl, kind, status, pred, rtl, f))
    errors.sort(key=lambda e: e[0])
    worst = errors[-1]
    return {
        "descriptors": len(errors),
        "mean_abs_error_pct": round(100 * statistics.mean(e[0] for e in errors), 2),
        "median_abs_error_pct": round(100 * statistics.median(e[0] for e in errors), 2),
        "largest_error_pct": round(100 * worst[0], 1),
        "largest_error_case": f"{worst[1]} {worst[2]}: model {worst[3]}, rtl {worst[4]} cycles "
                              f"({worst[5][1]} pieces, {worst[5][2]} read beats, {worst[5][3]} write beats)",
        "by_kind_mae_pct": {k: round(100 * statistics.mean(e[0] for e in errors if e[1] == k), 2)
                            for k in DATA_KINDS if any(e[1] == k for e in errors)},
    }


def speed(seed=1):
    rtl = rtl_record(seed)
    model_wall = min(model_run(seed)[2] for _ in range(3))     # warm: imports and caches done
    rtl_sim = rtl["run"]["sim_s"]
    return {
        "program": "four_tenants, seed 1",
        "model_wall_s": round(model_wall, 3),
        "rtl_sim_wall_s": round(rtl_sim, 2),
        "rtl_total_wall_s_with_cached_build": round(rtl["run"]["total_s"], 1),
        "model_speedup_x": round(rtl_sim / model_wall, 1),
        "rtl_device_cycles": rtl["run"]["cycles"],
        "rtl_cycles_per_s": round(rtl["run"]["cycles"] / rtl_sim),
    }


_RSS_CHILD = """
import sys
from siov.rtl.params import DeviceParams
from siov.sw.platform import run_program
pages = int(sys.argv[1])
async def touch(bus, seed):
    for p in range(pages):
        dom, page = divmod(p, 64)
        await bus.mem_write((dom * 65536 + page * 97) << 12, bytes([p & 0xFF]) * 4096)
    return bus.now()
run_program(touch, params=DeviceParams(num_adis=64, ims_entries=2048, num_domains=64, pages_per_domain=65536))
# VmHWM, not ru_maxrss: the latter carries the parent's peak across fork and exec.
print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")))   # KiB
"""


def memory():
    rss = {}
    for pages in (64, 4096, 16384):
        out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(pages)], capture_output=True, text=True,
                             check=True, cwd=ROOT)
        rss[pages] = int(out.stdout.split()[-1]) / 1024
    return {"build": "64 ADIs, 2048 IMS entries, 64 domains x 65536 pages (16 GiB of guest address space)",
            **{f"peak_rss_mib_{p}_pages": round(v, 1) for p, v in rss.items()},
            "mib_per_1000_pages_touched": round((rss[16384] - rss[64]) / (16384 - 64) * 1000, 2),
            "note": "4 KiB of host memory is 3.9 MiB per 1000 pages; the rest of the RSS is the "
                    "interpreter, the libraries and the DMA tracker model's bitmaps (4 x 64 x 65536 bits as bytes)"}


def main(argv):
    PARTS.mkdir(parents=True, exist_ok=True)
    if "--fit" in argv:
        coeffs = fit([s for seed in FIT_SEEDS for s in samples(seed)])
        for k, c in coeffs.items():
            print(f"    {k!r}: {c},")
        return 0
    result = {"title": "Host runtime: model backend against rtl backend",
              "speed": speed(), "timing_fidelity": fidelity(), "memory": memory()}
    model_rec, _, _ = model_run(1)
    result["speed"]["model_device_cycles"] = model_rec["timing"]["end"]
    (OUT / "host.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
