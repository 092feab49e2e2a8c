"""Benchmark of arbitration fidelity: the model backend's shares against the RTL's (make bench BENCH=arbitration).

Runs :data:`siov.sw.programs.arbitration.CASES` (equal 256-byte copies under
round robin and WRR 1:3:2; 4-8 KiB against 64-128-byte copies under QoS) on
the 1- and 2-engine Devices, on both backends, and reports each tenant's
share of descriptors and of engine time on engine 0 while every engine was
saturated, the largest relative difference of any share, and whether every
engine granted in the same order. ``tests/test_arbitration.py`` holds the
model to 2%.

Writes build/bench/arbitration.json.
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
PROGRAM = "siov.sw.programs.arbitration:arbitration"


def _shares(policy, engines, backend):
    from siov.rtl.params import DeviceParams
    from siov.sw.platform import run_program
    from siov.sw.programs.arbitration import case_arg, shares
    arg = case_arg(policy, engines)
    result = run_program(PROGRAM, backend, seed=1, arg=arg, params=DeviceParams(num_engines=engines), quiet=True)
    return shares(result, [t["engine"] for t in arg["tenants"]]), len(arg["tenants"]) // engines


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for policy in ("rr", "wrr", "qos"):
        for engines in (1, 2):
            (rtl, k), (model, _) = _shares(policy, engines, "rtl"), _shares(policy, engines, "model")
            pairs = list(zip(model["descriptors"] + model["time"], rtl["descriptors"] + rtl["time"]))
            fmt = lambda xs: " / ".join(f"{x:.3f}" for x in xs[:k])
            rows.append({"policy": policy, "engines": engines,
                         "rtl descriptors": fmt(rtl["descriptors"]), "model descriptors": fmt(model["descriptors"]),
                         "rtl engine time": fmt(rtl["time"]), "model engine time": fmt(model["time"]),
                         "largest difference": f"{100 * max(abs(m - r) / r for m, r in pairs):.1f}%",
                         "same grant order": "yes" if model["order"] == rtl["order"] else "no"})
    result = {"title": "Arbitration: model backend against the RTL", "rows": rows,
              "notes": "Saturated engines (siov.sw.programs.arbitration.CASES, seed 1): each tenant's share of "
                       "engine 0's descriptors and engine time (the records' cycles) until its first tenant ran dry; "
                       "at 2 engines the same tenants again on engine 1. Largest difference: of any share, relative "
                       "to the RTL's (tests/test_arbitration.py requires 2%). Before the model followed the RTL's "
                       "prefetch and decision timing, WRR 1:3:2 gave 0.335 / 0.332 / 0.332 of the descriptors "
                       "(100% off) and QoS gave the small tenant 0.661 of them and 0.112 of the time (RTL: 0.943 "
                       "and 0.526). Under QoS at 2 engines the grant order differs in places: the engines' copies "
                       "slow each other on the shared port, which the model follows on average (within 1% in "
                       "time), not cycle by cycle."}
    (OUT / "arbitration.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
