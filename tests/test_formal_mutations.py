"""Mutation checks of the DMA tracker's and the interrupt remapper's proofs: each fails on a broken design.

A proof that cannot fail proves nothing. Each case runs one proof's harness
(tb/dma/formal.py ``PROOFS``, tb/irq/formal.py ``PROPERTIES``) on the design
with one signal stuck (:class:`siov.tb.formal.Mutation`, yosys ``mutate``),
as a BMC from reset at a depth just past the first cycle the broken signal
can show, and expects a counterexample: a real run from reset, not an
unreachable induction state (SymbiYosys reports FAIL only from the base
case). ``test_unmutated_harness_passes`` runs the same settings without the
mutation, so a mutant's failure is the mutation's doing.

Each mutant breaks the one thing its property guards and is reachable
within a few cycles of reset (the harnesses leave every input free but the
design starts empty: a failure that needs the tables or the bitmaps written
over the register bus first is 20 to 30 cycles deep, out of reach of a
BMC in the time of ``make test``):

* ``dma_isolation``: the request pipeline's allow decision stuck at "let
  through": a request bound to no domain goes out with ``fault`` = 0;
* ``dma_dirty_sticky``: the same, seen from the dirty bitmap: a write let
  through leaves no dirty bit;
* ``dma_fault_quota``: the quota verdict stuck at "below quota" (a source
  holds more than its quota) or at "at quota" (a source below its quota
  loses a fault to a queue with room), and the lost-fault event stuck off
  (a fault not queued is not counted);
* ``irq_isolation``: the check stage's "entry present" flag stuck on: an
  interrupt is delivered through an entry software never wrote (no MSI
  address);
* ``irq_outcome``: the accept stage's room check stuck at "room": a DMA
  message is pushed into a full ``dma_out`` queue and lost.

``dma_mapped_pinned`` has no mutant here: the mapped bitmap changes only by
a guest map or a range operation over the register bus, at least 14 cycles
from reset even with the guest path's ADI check broken as well, and the
tracker's BMC takes over 30 s per step there. The mutants of the mapped
bit, the window compare, the PASID CAM, the pinned test and the interrupt
remapper's PASID and mask checks are likewise 20 to 30 cycles deep. (A
mask ignored by the remapper would be the isolation property's to catch:
``outcome`` only relates each decision to its effects, which follow the
decision either way.)
"""

import re
from dataclasses import dataclass
from typing import Callable

import pytest

from siov.rtl.irq.layouts import Decision
from siov.tb.cmd.formal import trace_values
from siov.tb.dma.formal import PROOFS
from siov.tb.formal import Mutation, prove
from siov.tb.irq.formal import IrqHarness


@dataclass(frozen=True)
class Mutant:
    """A proof, the mutation it must catch, the BMC depth that reaches it from
    reset, and what its counterexample shows: ``shows`` takes the per-step
    values of the ``witness`` signals (:func:`~siov.tb.cmd.formal.trace_values`)."""
    proof: str          # a name of tb/dma/formal.py PROOFS, or "irq_<property>"
    label: str
    mutation: Mutation
    depth: int
    witness: tuple
    shows: Callable

    def harness(self):
        if self.proof.startswith("irq_"):
            return IrqHarness(self.proof[len("irq_"):]), {}
        h = PROOFS[self.proof]()
        return h, {"ports": h.ports(), "unroll": h.unroll}


def _steps(v):
    return range(len(next(iter(v.values()))))


MUTANTS = [
    # A request is let through (an output beat pushed with allow) that no valid ADI entry bound
    # (the harness's own CAM, 9 stages behind).
    Mutant("dma_isolation", "allow_stuck", Mutation("top.dut.pipeline", "allow", "const1"), 12,
           ("out_push", "dut.pipeline.allow", "exp_hit_d9"),
           lambda v: any(v["out_push"][t] and v["dut.pipeline.allow"][t] and not v["exp_hit_d9"][t]
                         for t in _steps(v))),
    # A write to the symbolic page let through, and its dirty bit still clear.
    Mutant("dma_dirty_sticky", "allow_stuck", Mutation("top.dut.pipeline", "allow", "const1"), 12,
           ("wrote", "now"), lambda v: any(v["wrote"][t] and not v["now"][t] for t in _steps(v))),
    # A record taken from a source at its quota.
    Mutant("dma_fault_quota", "verdict_never_over", Mutation("top.dut", "over_quota_q", "const0"), 8,
           ("p_valid", "p_onehot", "at_quota", "dut.taken"),
           lambda v: any(v["p_valid"][t] and v["p_onehot"][t] & v["at_quota"][t] and v["dut.taken"][t]
                         for t in _steps(v))),
    # A record of a source below its quota not taken, the queue not full.
    Mutant("dma_fault_quota", "verdict_always_over", Mutation("top.dut", "over_quota_q", "const1"), 8,
           ("p_valid", "p_onehot", "at_quota", "level", "dut.dropped"),
           lambda v: any(v["p_valid"][t] and not v["p_onehot"][t] & v["at_quota"][t] and v["level"][t] < 4 and
                         v["dut.dropped"][t] for t in _steps(v))),
    # A fault dropped, and two cycles later neither the overflow flag nor the count has it.
    Mutant("dma_fault_quota", "loss_not_counted", Mutation("top.dut", "ovf_evt", "const0"), 8,
           ("dut.dropped", "dut.overflow", "dut.ovf_count"),
           lambda v: any(v["dut.dropped"][t] and not v["dut.overflow"][t + 2] and not v["dut.ovf_count"][t + 2]
                         for t in _steps(v) if t + 2 in _steps(v))),
    # An interrupt delivered through entry `sel` while software's copy of the entry was all zeros
    # (the decision's view, EFFECT_DELAY cycles back).
    Mutant("irq_isolation", "present_stuck", Mutation("top.dut.pipeline", "checks", "const1", bit=0), 8,
           ("probe.eff_irq", "probe.dec_kind", "h3_handle", "sel", "shadow_q2"),
           lambda v: any(v["probe.eff_irq"][t] and v["probe.dec_kind"][t] == Decision.DELIVER and
                         v["h3_handle"][t] == v["sel"][t] and v["shadow_q2"][t] == 0 for t in _steps(v))),
    # A DMA message pushed into the full dma_out queue.
    Mutant("irq_outcome", "room_ignored", Mutation("top.dut.pipeline", "can_accept", "const1"), 8,
           ("probe.eff_dma", "probe.dma_full"),
           lambda v: any(v["probe.eff_dma"][t] and v["probe.dma_full"][t] for t in _steps(v))),
]


def _bmc(harness, name, depth, kwargs, mutations=()):
    return prove(harness, name, depth=depth, mode="bmc", timeout_s=300, mutations=mutations, **kwargs)


@pytest.mark.formal
@pytest.mark.parametrize("mutant", MUTANTS, ids=[f"{m.proof}-{m.label}" for m in MUTANTS])
def test_mutant_is_caught(mutant):
    harness, kwargs = mutant.harness()
    res = _bmc(harness, f"mutant_{mutant.proof}_{mutant.label}", mutant.depth, kwargs, [mutant.mutation])
    assert res.status == "FAIL", res.summary() + "\n" + res.log[-2000:]
    assert res.trace is not None and res.trace.exists(), res.summary()
    # The counterexample is a run from reset, shorter than the bound ...
    steps = [int(s) for s in re.findall(r"failed assertion \S+ at\s+step (\d+)", res.log)]
    assert steps and max(steps) < mutant.depth, res.log[-2000:]
    # ... and in it the broken design does what the property forbids.
    values = trace_values(res.trace, list(mutant.witness))
    assert mutant.shows(values), values


@pytest.mark.formal
def test_unmutated_harness_passes():
    """The fault-quota harness, with no mutation, passes the same BMC its mutants fail."""
    depths = {m.depth for m in MUTANTS if m.proof == "dma_fault_quota"}
    assert len(depths) == 1
    depth = depths.pop()
    h = PROOFS["dma_fault_quota"]()
    res = _bmc(h, "mutant_dma_fault_quota_none", depth, {"ports": h.ports(), "unroll": h.unroll})
    assert res.status == "PASS", res.summary() + "\n" + res.log[-2000:]


def test_mutation_rejects_unknown_mode():
    with pytest.raises(ValueError, match=r"^Mutation mode must be one of inv, const0, const1, cnot0, cnot1, "
                                         r"not 'stuck'$"):
        Mutation("top", "x", "stuck")


@pytest.mark.formal
def test_mutation_of_unknown_signal_is_an_error():
    """A mutation names a signal that has a driver in the design, or the proof does not run."""
    h = PROOFS["dma_fault_quota"]()
    with pytest.raises(ValueError, match=r"^Mutation top\.dut\.no_such_signal\[0\]:inv has 0 driver candidates"):
        _bmc(h, "mutant_dma_fault_quota_unknown", 2, {"ports": h.ports()},
             [Mutation("top.dut", "no_such_signal", "inv")])
