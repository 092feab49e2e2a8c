"""Runs the cocotb regressions of the register fabric on Verilator."""

import pytest

from siov.tb.regressions import REGRESSIONS

CSR = [name for name in REGRESSIONS if name.startswith("csr-")]


@pytest.mark.sim
@pytest.mark.parametrize("name", CSR)
def test_csr(name):
    res = REGRESSIONS[name].run()
    assert res.tests > 0
    assert res.failed == 0, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
