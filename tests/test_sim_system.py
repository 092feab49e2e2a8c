"""Runs the system regression of the integrated Device on Verilator."""

import pytest

from siov.tb.regressions import REGRESSIONS


@pytest.mark.sim
@pytest.mark.parametrize("name", [n for n in REGRESSIONS if n.startswith("system-")])
def test_system(name):
    res = REGRESSIONS[name].run()
    assert res.tests > 0
    assert res.failed == 0, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
