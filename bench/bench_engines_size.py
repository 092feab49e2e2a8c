"""Size and fmax of the Device with 1, 2 and 4 engines (ECP5, nextpnr; make bench BENCH=engines_size).

Each build is the Device with ``DeviceParams(num_engines=n)`` and every other
parameter at its default, synthesized by ``siov.rtl.synth`` as top
``siov_device_e<n>`` (yosys ``synth_ecp5``, nextpnr-ecp5 out-of-context, one
seed): on the ECP5-25F, or on the 85F when nextpnr cannot place it on the
25F. The builds run one after the other (each takes about 20 minutes of one
core); a result already made from the same Verilog is reused.

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


def critical_path(log_text):
    """``(source cell, sink cell, delay ns)`` of the first critical path in a
    nextpnr log (its "Critical path report" section), or None."""
    lines = log_text.splitlines()
    start = next((i for i, line in enumerate(lines) if "Critical path report for clock" in line), None)
    if start is None:
        return None
    source = sink = None
    delay = None
    for line in lines[start + 1:]:
        m = re.search(r"\sSource\s+(\S+)", line)
        if m and source is None:
            source = m.group(1)
        m = re.search(r"\sSink\s+(\S+)", line)
        if m and source is not None:
            sink = m.group(1)
        m = re.search(r"([\d.]+) ns logic, ([\d.]+) ns routing", line)
        if m:
            delay = round(float(m.group(1)) + float(m.group(2)), 2)
            break
    return (source, sink, delay) if source and sink else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1, help="nextpnr seeds 1..N per build (default 1)")
    args = ap.parse_args(argv)
    from siov.rtl.device import Device
    from siov.rtl.params import DeviceParams
    from siov.rtl.synth import PARTS, SYNTH_DIR, synthesize

    rows, fits, paths = [], [], {}
    for n in ENGINES:
        name = f"siov_device_e{n}"
        r = synthesize(name, Device(DeviceParams(num_engines=n)), seeds=args.seeds, reuse=True)
        rows.append({"engines": n, "part": r["device"], "lut4": r["lut4"], "ff": r["ff"],
                     "bram": r["bram"], "fmax_mhz": r["fmax_mhz"]})
        fits.append(f"{n}: {'fit the 25F' if r['device'] == PARTS['25k'] else 'did not fit the 25F, placed on the ' + r['device'][-3:]}")
        log = SYNTH_DIR / name / "nextpnr.log"
        if log.exists():
            paths[n] = critical_path(log.read_text(errors="replace"))
    notes = [f"Device at default parameters but num_engines; yosys synth_ecp5, nextpnr-ecp5 out-of-context, "
             f"seed{'s 1..' + str(args.seeds) if args.seeds > 1 else ' 1'}, target 200 MHz "
             f"(siov.rtl.synth; build/synth/siov_device_e<n>/). LUT4 = TRELLIS_COMB, FF = TRELLIS_FF, "
             f"BRAM = DP16KD. Builds: {'; '.join(fits)}."]
    if paths.get(2):
        src, dst, delay = paths[2]
        notes.append(f"Critical path of the 2-engine build ({delay} ns): from {src} to {dst}.")
    data = {"title": "Device size and fmax against num_engines (ECP5, nextpnr)", "rows": rows,
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
