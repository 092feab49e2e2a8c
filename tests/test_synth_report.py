"""docs/PERFORMANCE.md marks each synthesis result by whether it was made from
the Verilog the tree generates now (rtl/synth.py records a fingerprint of
the Verilog with each result; bench/run.py compares it)."""

import importlib.util
import os
import pathlib
import subprocess
import sys

from siov.rtl.generate import convert_top
from siov.rtl.synth import verilog_fingerprint

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _bench_run():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fingerprint_is_stable_and_tells_texts_apart():
    text = convert_top("siov_arbiter")
    assert verilog_fingerprint(text) == verilog_fingerprint(convert_top("siov_arbiter"))
    assert verilog_fingerprint(text) != verilog_fingerprint(text + "\n")


def test_report_marks_results_of_other_verilog_stale():
    run = _bench_run()
    now = verilog_fingerprint(convert_top("siov_arbiter"))
    base = {"top": "siov_arbiter", "lut4": 1, "ff": 1, "bram": 0, "fmax_mhz": 100.0}
    synth = [dict(base, verilog=now), dict(base, verilog="0" * 12), dict(base)]
    run.mark_stale(synth)
    assert [r["source"] for r in synth] == ["current", "STALE", "STALE"]
    doc = run.render({}, synth)
    assert doc.count("| current |") == 1 and doc.count("| STALE |") == 2


def test_report_keeps_the_rows_of_tops_not_rerun():
    """Re-running one top (make synth TOPS=x) keeps the other tops' last figures in the
    table, marked STALE (the document keeps no fingerprint to tell), and replaces its own."""
    run = _bench_run()
    base = {"top": "siov_arbiter", "lut4": 1, "ff": 1, "bram": 0, "fmax_mhz": 100.0, "source": "current"}
    before = run.render({}, [base, dict(base, top="siov_irq", lut4=7, fmax_mhz=150.0)])
    after = run.render({}, [dict(base, lut4=2)], before)
    rows = [line for line in after.splitlines() if line.startswith("| siov_")]
    assert rows[0].startswith("| siov_arbiter | 2 |") and "| current |" in rows[0]
    assert rows[1].startswith("| siov_irq | 7 |") and "| STALE |" in rows[1] and "150.0" in rows[1]
    assert len(rows) == 2 and after.count("## Synthesis") == 1


def test_generated_verilog_does_not_depend_on_the_hash_seed():
    """The Device's Verilog (every block) is the same text whatever Python's
    string hash seed: a set iterated while building hardware once made it
    differ from run to run (and every synthesis result look stale)."""
    code = ("from siov.rtl.generate import convert_top; from siov.rtl.synth import verilog_fingerprint; "
            "print(verilog_fingerprint(convert_top('siov_device')))")
    prints = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
              for seed in ("1", "2", "3")}
    assert len(prints) == 1, prints


def test_synthesize_reuses_a_result_of_the_same_verilog_only(tmp_path, monkeypatch):
    """synthesize(reuse=True) returns a stored result made from the same Verilog with
    the same target, seeds and options, and runs the tools otherwise (here the tools
    are replaced by a stand-in that records the call)."""
    import json

    import siov.rtl.synth as synth

    monkeypatch.setattr(synth, "SYNTH_DIR", tmp_path)
    ran = []

    def fake_yosys(top, vfile, extra="", *, log=print):
        ran.append(top)
        raise RuntimeError("tools called")

    monkeypatch.setattr(synth, "synth_ecp5", fake_yosys)
    now = verilog_fingerprint(convert_top("siov_arbiter"))
    stored = {"top": "siov_arbiter", "lut4": 1, "ff": 2, "bram": 0, "fmax_mhz": 150.0,
              "fmax_by_seed": {"1": 150.0, "2": 151.0, "3": 149.0}, "target_mhz": 200,
              "synth_options": synth.synth_options("siov_arbiter"), "verilog": now}
    (tmp_path / "siov_arbiter.json").write_text(json.dumps(stored))
    logs = []
    assert synth.synthesize("siov_arbiter", seeds=3, reuse=True, log=logs.append) == stored
    assert not ran and "reused" in logs[0]
    # Another seed count, another target, another Verilog, or no reuse asked: the tools run.
    for kwargs, result in (({"seeds": 2, "reuse": True}, stored), ({"seeds": 3, "reuse": True, "freq_mhz": 150}, stored),
                           ({"seeds": 3, "reuse": True}, dict(stored, verilog="0" * 12)), ({"seeds": 3}, stored)):
        (tmp_path / "siov_arbiter.json").write_text(json.dumps(result))
        ran.clear()
        try:
            synth.synthesize("siov_arbiter", log=logs.append, **kwargs)
        except RuntimeError:
            pass
        assert ran == ["siov_arbiter"], kwargs


def test_synthesize_places_on_the_85k_what_does_not_fit_the_25k(tmp_path, monkeypatch):
    """When nextpnr cannot place the design on the 25k (its log says so), the
    netlist is placed again on the 85k and the result records that part; any
    other nextpnr failure is an error (stand-ins for yosys and nextpnr)."""
    import json
    import types

    import siov.rtl.synth as synth
    from siov.rtl.generate import TOPS

    _arbiter = TOPS["siov_arbiter"]
    monkeypatch.setattr(synth, "SYNTH_DIR", tmp_path)
    monkeypatch.setattr(synth, "synth_ecp5", lambda top, vfile, extra="", *, log=print: synth.synth_options(top))
    parts = []

    def fake_place(out, netlist, freq_mhz, seed, part="25k", error="ERROR: Unable to place cell 'x', "
                   "no BELs remaining to implement cell type 'TRELLIS_COMB'"):
        parts.append(part)
        log_name, report_name = synth._output_names(seed)
        if part == "25k":
            (out / log_name).write_text(f"Info: Device utilisation:\n{error}\n")
            return types.SimpleNamespace(wait=lambda: 1)
        (out / log_name).write_text("Info: done\n")
        (out / report_name).write_text(json.dumps({"fmax": {"clk": {"achieved": 80.0}},
                                                   "utilization": {"TRELLIS_COMB": {"used": 30000}}}))
        return types.SimpleNamespace(wait=lambda: 0)

    monkeypatch.setattr(synth, "_place", fake_place)
    r = synth.synthesize("siov_arbiter_big", _arbiter(), log=lambda *_: None)
    assert parts == ["25k", "85k"] and r["device"] == "LFE5U-85F" and r["lut4"] == 30000
    assert (tmp_path / "siov_arbiter_big" / "nextpnr_25k.log").exists()
    assert json.loads((tmp_path / "siov_arbiter_big.json").read_text())["device"] == "LFE5U-85F"
    # The 85k result is what a 25k request reuses; another failure is not retried.
    assert synth.synthesize("siov_arbiter_big", _arbiter(), reuse=True, log=lambda *_: None) == r
    assert parts == ["25k", "85k"]
    parts.clear()
    monkeypatch.setattr(synth, "_place", lambda *a, **k: fake_place(*a, **k, error="ERROR: routing failed"))
    try:
        synth.synthesize("siov_arbiter_big", _arbiter(), log=lambda *_: None)
    except RuntimeError as e:
        assert "nextpnr failed" in str(e)
    else:
        raise AssertionError("a nextpnr failure other than the design's size was retried")
    assert parts == ["25k"]
