"""Runs the cocotb regression of the register fabric on Verilator."""

import json

import pytest

from siov.rtl.device import Device
from siov.rtl.params import DeviceParams
from siov.tb.runner import run_cocotb

PARAM_SETS = [DeviceParams(), DeviceParams(num_adis=64, ims_entries=2048, num_domains=64, pages_per_domain=65536)]


@pytest.mark.sim
@pytest.mark.parametrize("params", PARAM_SETS, ids=lambda p: p.tag)
def test_csr(params):
    res = run_cocotb(
        component=Device(params), top="siov_device", test_module="siov.tb.csr.test_csr",
        build_name=f"csr-{params.tag}", public=["cycles"],
        extra_env={"SIOV_PARAMS": json.dumps(params.__dict__)},
    )
    assert res.tests > 0
    assert res.failed == 0, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
