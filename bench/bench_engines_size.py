"""Size and fmax of the Device with 1, 2 and 4 engines (ECP5, nextpnr; make bench BENCH=engines_size).

Each build is the Device with ``DeviceParams(num_engines=n)`` and every other
parameter at its default, synthesized by ``siov.rtl.synth`` as top
``siov_device_e<n>`` (yosys ``synth_ecp5``, nextpnr-ecp5 out-of-context, one
seed): on the ECP5-25F, or on the 85F when nextpnr cannot place it on the
25F. The builds run one after the other (each takes 20 to 50 minutes of one
core); a result already made from the same Verilog is reused. ``--stored``
writes the table from the results in ``build/synth`` without building,
naming in the notes any made from Verilog other than the tree's now.

Writes ``build/bench/engines_size.json`` and prints a table.
"""

import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench" / "engines_size.json"
ENGINES = (1, 2, 4)
TITLE = "Engines: size and clock of the Device at 1, 2 and 4 engines (ECP5)"

#: What the 2-engine build's critical path means, read in the RTL, by the
#: fingerprint of the Verilog it was placed from (a build of other Verilog
#: gets no reading until its path is read again). This one was checked on the
#: flattened netlist (yosys proc; flatten): the only combinational path from
#: exec1's FSM state to exec0's state enable goes through the tracker port.
READINGS = {
    "a21117f79bd1":
        "the DMA tracker's shared check port (TrackerPortArbiter, rtl/cmd/ports.py) is combinational, so "
        "one executor's state (its request's valid) decides through the round robin and the tracker's ready "
        "whether another executor's request is taken, which enables that executor's state change in the same "
        "cycle; registering the arbiter's output would cut the path",
}


def _where(pin):
    """``(module path, signal)`` of a nextpnr cell pin such as
    ``engine.prefetch.reader.expect_TRELLIS_FF_Q_3.Q``: the hierarchy of the
    flattened netlist's cell name, and the signal yosys named the cell after."""
    cell = pin.rsplit(".", 1)[0]
    module, _, leaf = cell.rpartition(".")
    signal = re.split(r"_(?:TRELLIS|LUT4|CCU2C|PFUMX|L6MUX|DP16KD|MULT18)", leaf)[0]
    return module or "top level", signal


def critical_path(log_text):
    """The first critical path of a nextpnr log (its "Critical path report"
    section) as a dict: source and sink pins, their (module, signal), the
    modules it passes through in order, logic and routing ns; or None."""
    lines = log_text.splitlines()
    start = next((i for i, line in enumerate(lines) if "Critical path report for clock" in line), None)
    if start is None:
        return None
    pins = []
    for line in lines[start + 1:]:
        m = re.search(r"\s(Source|Sink)\s+(\S+)", line)
        if m:
            pins.append(m.group(2))
        m = re.search(r"([\d.]+) ns logic, ([\d.]+) ns routing", line)
        if m:
            modules = []
            for pin in pins:
                if _where(pin)[0] not in modules:
                    modules.append(_where(pin)[0])
            return {"source": pins[0], "sink": pins[-1], "from": _where(pins[0]), "to": _where(pins[-1]),
                    "through": modules, "logic_ns": float(m.group(1)), "routing_ns": float(m.group(2))}
    return None


def _fit(result, log_25k, parts):
    """Whether a build fit the 25F, and if not, what it needed of it (from the
    log of the failed 25F placement) and where it was placed instead."""
    if result["device"] == parts["25k"]:
        return "fit the 25F"
    need = ""
    if log_25k.exists():
        m = re.search(r"TRELLIS_COMB:\s+(\d+)/\s*(\d+)\s+(\d+)%", log_25k.read_text(errors="replace"))
        if m:
            need = f" ({m.group(1)} of its {m.group(2)} LUT4 cells, {m.group(3)}%)"
    return f"did not fit the 25F{need} and was placed on the {result['device']}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1, help="nextpnr seeds 1..N per build (default 1)")
    ap.add_argument("--stored", action="store_true",
                    help="no builds: the results in build/synth as they are, stale ones named in the notes")
    args = ap.parse_args(argv)
    from siov.rtl.device import Device
    from siov.rtl.generate import convert_top
    from siov.rtl.params import DeviceParams
    from siov.rtl.synth import PARTS, SYNTH_DIR, synthesize, verilog_fingerprint

    rows, fits, paths, stale, results = [], [], {}, [], []
    for n in ENGINES:
        name = f"siov_device_e{n}"
        if args.stored:
            r = json.loads((SYNTH_DIR / f"{name}.json").read_text())
            if r["verilog"] != verilog_fingerprint(convert_top(name, Device(DeviceParams(num_engines=n)))):
                stale.append(str(n))
        else:
            r = synthesize(name, Device(DeviceParams(num_engines=n)), seeds=args.seeds, reuse=True)
        results.append(r)
        rows.append({"engines": n, "part": r["device"], "lut4": r["lut4"], "ff": r["ff"],
                     "bram": r["bram"], "fmax_mhz": r["fmax_mhz"], "verilog": r["verilog"],
                     "build_s": round(r["seconds"])})
        fits.append(f"{n} engine{'s' * (n > 1)} {_fit(r, SYNTH_DIR / name / 'nextpnr_25k.log', PARTS)}")
        log = SYNTH_DIR / name / "nextpnr.log"
        if log.exists():
            paths[n] = critical_path(log.read_text(errors="replace"))
            if paths[n]:
                paths[n]["verilog"] = r["verilog"]
    seeds = max(len(r["fmax_by_seed"]) for r in results)
    notes = [f"Device at default parameters but num_engines; yosys synth_ecp5, nextpnr-ecp5 out-of-context, "
             f"seed{'s 1..' + str(seeds) + ' (fmax: median)' if seeds > 1 else ' 1'}, "
             f"target {results[0]['target_mhz']} MHz "
             f"(siov.rtl.synth; build/synth/siov_device_e<n>/). LUT4 = TRELLIS_COMB, FF = TRELLIS_FF, "
             f"BRAM = DP16KD; verilog: the fingerprint of the Verilog built; build_s: wall seconds of yosys "
             f"and nextpnr (every part tried) on the machine that ran them. Builds: {'; '.join(fits)}."]
    path = paths.get(2)
    if path:
        notes.append(
            f"What limits fmax: the 2-engine build's critical path ({path['logic_ns'] + path['routing_ns']:.2f} ns, "
            f"{path['routing_ns']:.2f} of them routing) runs from {path['from'][1]} in {path['from'][0]} "
            f"(`{path['source']}`) to {path['to'][1]} in {path['to'][0]} (`{path['sink']}`), "
            f"through {', '.join(path['through'])} (as yosys named the cells)"
            + (f": {READINGS[path['verilog']]}" if path["verilog"] in READINGS else "") + ".")
    if stale:
        notes.append(f"STALE: the build{'s' * (len(stale) > 1)} with {', '.join(stale)} engines "
                     f"{'were' if len(stale) > 1 else 'was'} made from an earlier version of the RTL than the "
                     f"tree's now (make bench BENCH=engines_size rebuilds {'them' if len(stale) > 1 else 'it'}).")
    data = {"title": TITLE, "rows": rows,
            "notes": " ".join(notes)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1))
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    print(data["notes"])
    print(f"\nresults: {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
