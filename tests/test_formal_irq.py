"""k-induction proofs of the interrupt remapping unit (tb/irq/formal.py)."""

import gc
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable

from siov.tb.formal import prove
from siov.tb.irq.formal import DEPTH, PROPERTIES, IrqHarness


@pytest.mark.formal
@pytest.mark.parametrize("prop", PROPERTIES)
def test_irq_formal(prop):
    res = prove(IrqHarness(prop), f"irq_{prop}", depth=DEPTH[prop], timeout_s=600)
    assert res.passed, res.summary()


def test_harness_rejects_unknown_property():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=r"^Property must be one of isolation, outcome, not 'x'$"):
            IrqHarness("x")
        gc.collect()
