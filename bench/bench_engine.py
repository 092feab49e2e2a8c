"""Benchmark of the command engine inside the Device on Verilator (make bench).

Runs the system regression's measuring tests alone: MEMMOVE of 4 KiB
(aligned, lane-shifted, and a stream of 16) against the 64-bit AXI data
width, and the QoS/WRR share and overrun measurements under saturation.
Each test checks its results against the reference model as in ``make test``;
here their measurements are collected into ``build/bench/engine.json`` and
``build/bench/engine_qos.json``.
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"


def main():
    from siov.tb.regressions import REGRESSIONS
    from siov.tb.runner import run_cocotb
    OUT.mkdir(parents=True, exist_ok=True)
    parts = OUT / "engine-parts"
    parts.mkdir(exist_ok=True)
    reg = next(r for r in REGRESSIONS.values() if r.name.startswith("system-"))
    res = run_cocotb(component=reg.factory(), top=reg.top, test_module=reg.test_module,
                     build_name=reg.name, public=reg.public,
                     testcase=["MemmoveThroughputTest", "QosSliceTest", "WeightedShareTest"],
                     extra_env={**reg.env, "SIOV_RESULTS": str(parts)})
    if res.failed:
        print(f"bench failed, see {res.results_xml}", file=sys.stderr)
        return 1
    memmove = json.loads((parts / "engine_memmove.json").read_text())
    (OUT / "engine.json").write_text(json.dumps(memmove, indent=1))
    rows = []
    for policy in ("qos", "wrr"):
        q = json.loads((parts / f"qos_system_{policy}.json").read_text())
        n = len(q["target_share"])
        for a in range(n):
            a = str(a)
            rows.append({"policy": q["policy"], "adi": a, "quantum": q["quanta"][int(a)],
                         "weight": q["weights"][int(a)], "target share": round(q["target_share"][a], 3),
                         "cost share": round(q["cost_share"][a], 3),
                         "dispatch share": round(q["dispatch_share"][a], 3),
                         "largest overrun (cost)": q["largest_overrun"][a] if q["policy"] == "QOS" else "-"})
    qos = {"title": "Engine arbitration in the Device (saturated tenants; Verilator)", "rows": rows,
           "notes": ("QOS: slice of 3000 cycles, cost = 40 + size/8, MEMFILL of 64..512 bytes; share is of "
                     "the estimated cost dispatched in full slices; overrun = cost dispatched to an ADI in one "
                     "slice beyond its quantum (design bound: less than one descriptor, max cost 104). "
                     "WRR: share of dispatches against the weights.")}
    (OUT / "engine_qos.json").write_text(json.dumps(qos, indent=1))
    for r in memmove["rows"] + rows:
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
