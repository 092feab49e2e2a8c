"""Runs the cocotb + pyuvm regression of the DMA tracker on Verilator."""

import json

import pytest

from siov.rtl.dma.top import DmaTop
from siov.rtl.params import DeviceParams
from siov.tb.runner import run_cocotb

#: The default build, and a small odd one (3 domains: not a power of two).
PARAM_SETS = [DeviceParams(), DeviceParams(num_adis=12, num_domains=3, pages_per_domain=256)]


def _run(params, scale, build_suffix=""):
    res = run_cocotb(
        component=DmaTop(params), top="siov_dma", test_module="siov.tb.dma.test_dma",
        build_name=f"dma-{params.tag}{build_suffix}", public=["tap_harvest"],
        extra_env={"SIOV_PARAMS": json.dumps(params.__dict__), "SIOV_DMA_SCALE": str(scale)},
    )
    assert res.tests > 0
    assert res.failed == 0, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


@pytest.mark.sim
@pytest.mark.parametrize("params", PARAM_SETS, ids=lambda p: p.tag)
def test_dma(params):
    _run(params, 1)


@pytest.mark.sim
@pytest.mark.slow
def test_dma_soak():
    _run(DeviceParams(), 10)
