"""The DMA tracker's soak (its regular builds run from tests/test_sim.py)."""

import dataclasses

import pytest

from siov.tb.regressions import REGRESSIONS

DMA = [name for name in REGRESSIONS if name.startswith("dma-")]


def _check(res):
    assert res.tests > 0
    assert res.failed == 0, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


@pytest.mark.sim
@pytest.mark.slow
def test_dma_soak():
    """Ten times the default traffic, on the default build's own soak folder."""
    base = REGRESSIONS[DMA[0]]
    soak = dataclasses.replace(base, name=base.name + "-soak", env={**base.env, "SIOV_DMA_SCALE": "10"})
    _check(soak.run())
