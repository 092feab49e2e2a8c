"""k-induction proofs of the DMA tracker's safety properties (tb/dma/formal.py)."""

import pytest

from siov.tb.dma.formal import PROOFS, run


@pytest.mark.formal
@pytest.mark.parametrize("name", list(PROOFS))
def test_proof(name):
    res = run(name)
    assert res.passed, res.summary()

