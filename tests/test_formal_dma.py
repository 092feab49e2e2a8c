"""k-induction proofs of the DMA tracker's safety properties (tb/dma/formal.py)."""

import pytest

from siov.tb.dma.formal import PROOFS, run


#: The isolation proof takes 6 to 8 minutes of one CPU (k-induction at depth 12 over the
#: tracker's tables), a quarter of ``make test``'s work: it runs in ``make formal`` and
#: ``make soak``, which CI does not; the tracker's other proofs run in ``make test``.
_SLOW = {"dma_isolation"}


@pytest.mark.formal
@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in _SLOW else [])
                                  for n in PROOFS])
def test_proof(name):
    res = run(name)
    assert res.passed, res.summary()

