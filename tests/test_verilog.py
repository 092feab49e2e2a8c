"""Every synthesizable top converts to Verilog that passes `verilator --lint-only -Wall`
(with the documented waivers in rtl/siov.vlt) and that yosys synthesizes for ECP5."""

import os
import subprocess

import pytest

from siov.rtl.ecp5 import SIM_MODEL
from siov.rtl.generate import TOPS, write_all
from siov.tb.runner import WAIVERS, setup_verilator_env


@pytest.fixture(scope="module")
def verilog_files(tmp_path_factory):
    """Each pytest worker writes its own copy, so parallel workers never read a half-written file."""
    return {p.stem: p for p in write_all(tmp_path_factory.mktemp("verilog"))}


@pytest.mark.parametrize("top", list(TOPS))
def test_lint_clean(top, verilog_files):
    env = dict(os.environ)
    setup_verilator_env(env)
    # A top built from ECP5 primitives is linted with their behavioural model.
    models = [str(SIM_MODEL)] if "DP16KD" in verilog_files[top].read_text() else []
    proc = subprocess.run(["verilator", "--lint-only", "-Wall", str(WAIVERS), *models, str(verilog_files[top]),
                           "--top-module", top], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr[-4000:]


#: Tops whose logic ``make test`` synthesizes inside ``siov_device`` already
#: (the engine, the ADI block, the interrupt unit and the arbiter with inferred
#: block RAM, and the tracker, which ``siov_dma_ecp5`` also covers with DP16KD
#: instances): their own runs are in ``make soak`` and in every ``make synth``.
#: ``siov_dma`` with its ``-dff`` is two minutes of ABC9 alone.
#: The whole Device (two engines by default) is three minutes of yosys: it runs
#: in ``make soak``, ``make synth`` and ``make bench`` (bench_engines_size.py
#: synthesizes and places it at 1, 2 and 4 engines); ``make test`` lints it.
_SLOW_SYNTH = {"siov_dma", "siov_engine", "siov_adi", "siov_irq", "siov_arbiter", "siov_device"}


@pytest.mark.parametrize("top", [pytest.param(t, marks=[pytest.mark.slow] if t in _SLOW_SYNTH else [])
                                 for t in TOPS])
def test_yosys_synthesizes(top, verilog_files):
    """With the top's own options, or the documented fallback (rtl/synth.py)."""
    from siov.rtl.synth import synth_ecp5
    synth_ecp5(top, verilog_files[top], "; stat", log=lambda msg: None)
