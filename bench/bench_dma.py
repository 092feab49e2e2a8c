"""DMA tracker benchmark: checks per clock, same-word hazard, harvest rate, fmax.

Runs tb/dma/bench.py on the ``siov_dma`` top (Verilator, default parameters),
then synthesizes ``siov_dma`` (rtl/synth.py) unless ``--no-synth``: as built
by default (inferred block RAMs) and with the ECP5 DP16KD primitive and its
output register (``primitive="ecp5"``, top ``siov_dma_ecp5``; its simulation
uses the behavioural model tb/models/dp16kd.v). A synthesis result already
made from the same Verilog (``make synth``) is reused.
Writes ``build/bench/dma.json`` and prints a table.
"""

import argparse
import json
import sys

from siov.rtl.dma.top import DmaTop
from siov.rtl.params import DeviceParams
from siov.tb.runner import BUILD, run_cocotb

OUT = BUILD / "bench" / "dma.json"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-synth", action="store_true", help="skip synthesis (no fmax)")
    ap.add_argument("-n", type=int, default=4000, help="requests in the throughput run")
    args = ap.parse_args(argv)
    params = DeviceParams()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    raw = OUT.with_suffix(".sim.json")
    raw.unlink(missing_ok=True)
    res = run_cocotb(component=DmaTop(params), top="siov_dma", test_module="siov.tb.dma.bench",
                     build_name=f"dma-bench-{params.tag}", public=["tap_harvest"],
                     extra_env={"SIOV_PARAMS": json.dumps(params.__dict__),
                                "SIOV_BENCH_OUT": str(raw), "SIOV_BENCH_N": str(args.n)})
    if res.failed:
        print(f"bench failed: see {res.results_xml}", file=sys.stderr)
        return 1
    data = {"params": params.__dict__, **json.loads(raw.read_text())}
    if not args.no_synth:
        try:
            from siov.rtl.synth import synthesize
        except ImportError:
            data["synth"] = None
        else:
            data["synth"] = synthesize("siov_dma", seeds=3, reuse=True)
            data["synth_ecp5"] = synthesize("siov_dma_ecp5", seeds=3, reuse=True)
    OUT.write_text(json.dumps(data, indent=1))
    t, s, h = data["throughput"], data["same_word"], data["harvest"]
    rows = [
        ("checks per clock, all allowed", f"{t['checks_per_clock']}", f"{t['requests']} requests in {t['cycles']} cycles"),
        ("checks per clock, 1/4 blocked", f"{t['mixed_checks_per_clock']}", f"{t['mixed_cycles']} cycles"),
        ("checks per clock, harvest non-stop", f"{t['harvesting_checks_per_clock']}",
         f"{t['harvest_reads']} harvest reads take one slot each"),
        ("same-word back-to-back: stalls", f"{s['stall_cycles']}", f"{s['writes']} writes in {s['cycles']} cycles"),
        ("same-word back-to-back: bits lost", f"{s['bits_lost']}", "of 32"),
        ("pages per harvest bus read", f"{h['pages_per_read']}", f"{h['bus_reads']} reads, {h['cycles_per_read']} cycles/read"),
        ("harvest pages per clock", f"{h['pages_per_cycle']}", "AXI4-Lite, one read in flight"),
    ]
    syn = data.get("synth")
    if syn:
        for label, r in (("fmax (ECP5-25F, nextpnr)", syn), ("fmax, DP16KD with OUTREG", data["synth_ecp5"])):
            seeds = " / ".join(f"{v}" for v in r.get("fmax_by_seed", {}).values())
            rows.append((label, f"{r['fmax_mhz']} MHz",
                         f"median of seeds {seeds}; {r['lut4']} LUT4, {r['ff']} FF, {r['bram']} DP16KD"))
    else:
        rows.append(("fmax", "not measured", "--no-synth or rtl/synth.py missing"))
    w = max(len(r[0]) for r in rows)
    print(f"{'metric':<{w}}  {'value':>12}  note")
    for name, value, note in rows:
        print(f"{name:<{w}}  {value:>12}  {note}")
    print(f"wrote {OUT.relative_to(BUILD.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
