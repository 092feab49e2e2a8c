"""cocotb regression of the QoS arbiter: every cycle compared with the model.

Stimulus: per-ADI descriptor queues with random arrivals and costs
(tb/cmd/stimulus.py), random back-pressure on the grant stream, each policy,
random weights, quanta and slice lengths, and policy changes on the fly.
The scoreboard checks grant valid, ADI, cost and every ADI's budget against
:class:`siov.sw.model.arbiter.ArbiterModel` on every cycle.

With ``SIOV_NUM_ENGINES`` above 1, every ADI is bound to one engine (its
requests go to that engine's grant), the binding is drawn again at each
configuration change while descriptors are queued, and each engine's grant
stream has its own back-pressure: the budgets the engines share and each
engine's grants are checked on every cycle. A grant whose ADI was rebound
and whose queue another engine emptied is dropped, as the dispatcher drops it.
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from siov.sw.model.arbiter import ArbiterConfig, ArbiterModel, Policy
from siov.tb.cmd.stimulus import AdiQueues
from siov.tb.coverage import Coverage
from siov.tb.layouts import pack_array, unpack_array

N = int(os.environ.get("SIOV_NUM_ADIS", "8"))
E = int(os.environ.get("SIOV_NUM_ENGINES", "1"))
COST_WIDTH = 24

COVERAGE = Coverage("arbiter", [
    "policy_rr", "policy_wrr", "policy_qos", "grant_backpressure", "wrr_stay",
    "qos_blocked", "qos_oversize", "slice_refill", "policy_switch_with_pending",
] + [f"granted_adi{i}" for i in range(N)] + [f"engine{e}_granted" for e in range(E)]
  + (["rebound_with_budget_spent", "same_cycle_takes"] if E > 1 else []))


class TB:
    def __init__(self, dut, seed):
        self.dut = dut
        self.rng = random.Random(seed)
        self.model = ArbiterModel(N, COST_WIDTH, E)
        self.cfg = ArbiterConfig(Policy.RR, [1] * N, [0] * N, 0)
        self.bind = [i % E for i in range(N)]
        self.idx_bits = max(1, (N - 1).bit_length())
        Clock(dut.clk, 10, unit="ns").start()

    def apply_cfg(self):
        d = self.dut
        d.policy.value = int(self.cfg.policy)
        d.weight.value = pack_array(self.cfg.weight, 8)
        d.quantum.value = pack_array(self.cfg.quantum, COST_WIDTH)
        d.slice_cycles.value = self.cfg.slice_cycles

    async def reset(self):
        d = self.dut
        d.req.value = 0
        d.cost.value = 0
        for e in range(E):
            getattr(d, f"grant{e}__ready").value = 0
        self.apply_cfg()
        d.rst.value = 1
        await ClockCycles(d.clk, 3)
        await FallingEdge(d.clk)
        d.rst.value = 0
        self.model = ArbiterModel(N, COST_WIDTH, E)
        # The next rising edge runs with these idle inputs; the model takes it too.
        self.model.clock_engines([[False] * N] * E, [0] * N, [False] * E, self.cfg)

    def rebind(self):
        """Bind every ADI to an engine drawn at random; returns whether any moved."""
        old, self.bind = self.bind, [self.rng.randrange(E) for _ in range(N)]
        return old != self.bind

    async def run(self, queues, cycles, ready_p, new_cfg=None):
        """Drive ``cycles`` cycles; ``new_cfg`` takes effect at the first edge."""
        d = self.dut
        prev_adi = [None] * E
        for cycle in range(cycles):
            await FallingEdge(d.clk)
            grants = [self.model.grant(e) for e in range(E)]
            for e, (valid, adi) in enumerate(grants):
                got_valid = int(getattr(d, f"grant{e}__valid").value)
                assert got_valid == valid, f"engine {e}: grant valid {got_valid}, model {valid}"
                if valid:
                    got_adi = int(getattr(d, f"grant{e}__payload").value)
                    assert got_adi == adi, f"engine {e}: grant ADI {got_adi}, model ADI {adi}"
            budget = self.model.outputs()[2]
            got_budget = unpack_array(int(d.budget.value), COST_WIDTH, N)
            assert got_budget == budget, f"budgets {got_budget}, model {budget}"
            if int(d.slice_end.value) and self.cfg.policy == Policy.QOS:
                COVERAGE.sample("slice_refill")

            if cycle == 0 and new_cfg is not None:
                self.cfg = new_cfg
                self.apply_cfg()
                COVERAGE.sample("policy_switch_with_pending", any(queues.req()))
                if E > 1 and self.rebind():
                    COVERAGE.sample("rebound_with_budget_spent", any(
                        not f for f, r in zip(self.model.fresh, queues.req()) if r))
            queues.arrive()
            req, costs = queues.req(), queues.cost()
            reqs = [[r and self.bind[i] == e for i, r in enumerate(req)] for e in range(E)]
            readys = [self.rng.random() < ready_p for _ in range(E)]
            d.req.value = pack_array([pack_array([int(r) for r in rq], 1) for rq in reqs], N)
            d.cost.value = pack_array(costs, COST_WIDTH)
            for e in range(E):
                getattr(d, f"grant{e}__ready").value = int(readys[e])
            COVERAGE.sample("grant_backpressure", any(v and not r for (v, _), r in zip(grants, readys)))
            engine0 = self.model.engines[0]
            if self.cfg.policy == Policy.QOS and any(reqs[0]) and not grants[0][0] and not engine0.settle:
                COVERAGE.sample("qos_blocked", not any(engine0.eligible_q))
            takes = self.model.clock_engines(reqs, costs, readys, self.cfg)
            if E > 1:
                COVERAGE.sample("same_cycle_takes", sum(takes) > 1)
            for e, ((_, adi), take) in enumerate(zip(grants, takes)):
                if not take:
                    continue
                if not queues.queues[adi]:
                    # Granted to two engines across a rebind: the other took its descriptor.
                    assert E > 1, f"grant to ADI {adi}, which has no descriptor"
                    continue
                cost = queues.pop(adi)
                COVERAGE.sample(f"granted_adi{adi}")
                COVERAGE.sample(f"engine{e}_granted")
                if self.cfg.policy == Policy.WRR and adi == prev_adi[e] and sum(reqs[e]) > 1:
                    COVERAGE.sample("wrr_stay")
                if self.cfg.policy == Policy.QOS and cost > self.cfg.quantum[adi]:
                    COVERAGE.sample("qos_oversize")
                prev_adi[e] = adi


def random_cfg(rng, policy):
    return ArbiterConfig(
        policy,
        weight=[rng.randint(0, 4) for _ in range(N)],
        quantum=[rng.randint(1, 200) for _ in range(N)],
        slice_cycles=rng.randint(20, 300),
    )


@cocotb.test()
@cocotb.parametrize(policy=[Policy.RR, Policy.WRR, Policy.QOS])
async def test_policy_random(dut, policy):
    """Random traffic under one policy, several configurations, every cycle checked."""
    tb = TB(dut, cocotb.RANDOM_SEED + int(policy))
    for round_ in range(3):
        tb.cfg = random_cfg(tb.rng, policy)
        if E > 1:
            tb.rebind()
        await tb.reset()
        COVERAGE.sample({Policy.RR: "policy_rr", Policy.WRR: "policy_wrr", Policy.QOS: "policy_qos"}[policy])
        active = tb.rng.sample(range(N), tb.rng.randint(1, N)) if round_ else list(range(N))
        queues = AdiQueues(N, tb.rng, arrival=tb.rng.choice([0.05, 0.3, 0.9]),
                           cost_range=(1, 250), active=active)
        await tb.run(queues, 1500, ready_p=tb.rng.choice([1.0, 0.6, 0.2]))


@cocotb.test()
async def test_policy_switch(dut):
    """Changing policy and quanta while descriptors are queued: still cycle-exact."""
    tb = TB(dut, cocotb.RANDOM_SEED + 7)
    await tb.reset()
    queues = AdiQueues(N, tb.rng, arrival=0.5, cost_range=(1, 100))
    for _ in range(12):
        cfg = random_cfg(tb.rng, tb.rng.choice(list(Policy)))
        await tb.run(queues, 200, ready_p=0.7, new_cfg=cfg)


@cocotb.test()
async def test_zzz_coverage(dut):
    """Runs last: every coverage bin was hit."""
    dut._log.info("\n" + COVERAGE.report())
    COVERAGE.save(os.path.join(os.environ.get("SIOV_COVERAGE_DIR", "."), "arbiter.json"))
    COVERAGE.check()
