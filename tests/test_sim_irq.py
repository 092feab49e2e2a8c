"""Runs the pyuvm regression of the interrupt remapping unit on Verilator.

Builds (tb/regressions.py): ``irq-e256`` (default), ``irq-e2048`` (largest
table), ``irq-e256-seq`` (the one-message-at-a-time variant), ``irq-e256-ecp5``
(the IMS table as ECP5 DP16KD primitives, on their behavioural model). One pytest test
per build, so that parallel workers (``make sim -n 2``) never share a build
folder. The isolation run sends ``SIOV_IRQ_MESSAGES`` adversarial messages
(default 100 000, about 6 s of simulation); the soak sends a million.
``make test`` runs the default build and the ECP5 one; the largest table and
the one-message-at-a-time variant run in ``make sim`` and ``make soak``.
"""

import pytest

from siov.tb.regressions import REGRESSIONS

SEEDS = [1, 2, 3]


def _run(build, runs):
    """Run ``(testcase, seed)`` pairs on one build; report every failure."""
    failures = []
    for testcase, seed in runs:
        res = REGRESSIONS[build].run(testcase=testcase, seed=seed)
        if res.tests == 0 or res.failed:
            failures.append(f"{testcase} seed {seed}: {res.failed} of {res.tests} failed; see {res.results_xml}")
    assert not failures, "; ".join(failures)


@pytest.mark.sim
def test_irq_default():
    """Constrained-random over three seeds, then 100k-message isolation, 256 entries."""
    _run("irq-e256", [("IrqRandomTest", s) for s in SEEDS] + [("IrqIsolationTest", 7)])


@pytest.mark.sim
@pytest.mark.slow
def test_irq_2048_entries():
    _run("irq-e2048", [("IrqRandomTest", 4)])


@pytest.mark.sim
@pytest.mark.slow
def test_irq_not_pipelined():
    _run("irq-e256-seq", [("IrqRandomTest", 5)])


@pytest.mark.sim
def test_irq_ecp5_primitive():
    """The IMS table built from DP16KD instances with their output register behaves alike."""
    _run("irq-e256-ecp5", [("IrqRandomTest", 6)])


@pytest.mark.sim
@pytest.mark.slow
def test_irq_isolation_soak(monkeypatch):
    monkeypatch.setenv("SIOV_IRQ_MESSAGES", "1000000")
    _run("irq-e256", [("IrqIsolationTest", 11)])
