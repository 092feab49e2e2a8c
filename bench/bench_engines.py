"""Benchmark of the engines (make bench BENCH=engines): throughput against the engine count,
and a producer/consumer workload under per-ring and gang scheduling.

Runs the pyuvm tests of tb/system/bench_engines.py on Verilator builds of the
Device with 1, 2 and 4 engines (each test checks its run against the
reference model as the regression does) and writes build/bench/engines.json
and build/bench/engines_dependency.json for docs/PERFORMANCE.md.
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"

NOTES_SCALING = (
    "8 ADIs bound to the engines in turn, 12 descriptors each, every descriptor with a completion record; "
    "cycles from the first doorbell to the Device reporting idle (polled every 50 cycles). MEMMOVE sources "
    "and destinations are 64-byte aligned. One shared prefetch reads every descriptor (a tracker check and "
    "an 8-beat burst) and all engines share one 64-bit AXI4 port: see the text for where each limits.")
NOTES_DEP = (
    "Two VMs, each a producer ring (MEMFILL 512 B, SIGNAL) and a consumer ring (WAIT, MEMMOVE 512 B) on "
    "different engines, 12 pairs each; a third VM floods both engines with 24 MEMMOVEs of 4 KiB per ring. "
    "Consumers are posted first. WAIT re-check every 32 cycles. Gang: a test sequence gives each VM every "
    "engine for 2000-cycle slices in turn. Pair latency: from the producer's MEMFILL taken to the "
    "consumer's MEMMOVE completed. Engine cycles on unsatisfied WAITs: ENG.WAIT_CYCLES.")


def main(engines=(1, 2, 4)):
    """Run the benches at each engine count in ``engines``."""
    from dataclasses import replace

    from siov.rtl.params import DeviceParams
    from siov.tb.regressions import device_build
    parts = OUT / "engines-parts"
    parts.mkdir(parents=True, exist_ok=True)
    scaling, dependency = [], []
    for n in engines:
        reg = device_build(DeviceParams(num_engines=n), "siov.tb.system.bench_engines")
        reg = replace(reg, env={**reg.env, "SIOV_RESULTS": str(parts)})
        tests = ["EngineScalingBench"] + (["DependencyRingBench", "DependencyGangBench"] if n > 1 else [])
        res = reg.run(testcase=tests)
        if res.failed:
            print(f"bench failed at {n} engines, see {res.results_xml}", file=sys.stderr)
            return 1
        scaling += json.loads((parts / f"engines_scaling_e{n}.json").read_text())
        for tag in ("ring", "gang"):
            f = parts / f"engines_dependency_{tag}_e{n}.json"
            if n > 1:
                dependency.append(json.loads(f.read_text()))
    (OUT / "engines.json").write_text(json.dumps(
        {"title": "Engines: throughput against the number of engines (Verilator)", "rows": scaling,
         "notes": NOTES_SCALING}, indent=1))
    (OUT / "engines_dependency.json").write_text(json.dumps(
        {"title": "Engines: producer/consumer rings against a flooding VM, per-ring and gang scheduling",
         "rows": dependency, "notes": NOTES_DEP}, indent=1))
    for r in scaling + dependency:
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main(tuple(int(a) for a in sys.argv[1:]) or (1, 2, 4)))
