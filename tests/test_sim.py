"""Runs every cocotb regression of tb/regressions.py on Verilator, one pytest test per build.

The interrupt unit's builds run from tests/test_sim_irq.py instead, which
crosses them with seeds. Soaks and the points of parameter sweeps (odd sizes)
are marked ``slow``: ``make sim`` and ``make soak`` run them, ``make test``
runs the default and the largest builds.

Each runs with the seed ``SIOV_SEED`` names: 1 by default, so that a failure
in CI is reproduced by the same command; ``SIOV_SEED=random`` lets cocotb seed
from the clock (``SIOV_SEED=random make sim``), and ``siov sweep --regression
TEST --seeds 1-200`` runs a test over many seeds.
"""

import os

import pytest

from siov.tb.regressions import REGRESSIONS

BUILDS = [pytest.param(name, marks=[pytest.mark.slow] if reg.sweep else [])
          for name, reg in REGRESSIONS.items() if not name.startswith("irq-")]


def _seed():
    text = os.environ.get("SIOV_SEED", "1")
    return None if text == "random" else int(text)


@pytest.mark.sim
@pytest.mark.parametrize("name", BUILDS)
def test_regression(name):
    res = REGRESSIONS[name].run(seed=_seed())
    assert res.tests > 0
    assert res.failed == 0, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"
