"""Runs every cocotb regression of tb/regressions.py on Verilator, one pytest test per build.

The interrupt unit's builds run from tests/test_sim_irq.py instead, which
crosses them with seeds. Soaks and the points of parameter sweeps (odd sizes)
are marked ``slow``: ``make sim`` and ``make soak`` run them, ``make test``
runs the default and the largest builds.
"""

import pytest

from siov.tb.regressions import REGRESSIONS

BUILDS = [pytest.param(name, marks=[pytest.mark.slow] if reg.sweep else [])
          for name, reg in REGRESSIONS.items() if not name.startswith("irq-")]


@pytest.mark.sim
@pytest.mark.parametrize("name", BUILDS)
def test_regression(name):
    res = REGRESSIONS[name].run()
    assert res.tests > 0
    assert res.failed == 0, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
