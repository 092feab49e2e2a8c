"""Descriptor traffic for arbiter tests: per-ADI queues with random costs.

An ADI's request stays up while its queue holds a descriptor, and the cost it
presents is its head descriptor's, exactly as the front end drives the
arbiter. Shared by the model's own tests and the cocotb testbench.
"""

import random

__all__ = ["AdiQueues", "run_model"]


class AdiQueues:
    """``n`` descriptor queues fed at random with costs in ``cost_range``."""

    def __init__(self, n, rng, *, arrival=0.3, cost_range=(1, 64), depth=8, active=None):
        self.n, self.rng, self.arrival, self.cost_range, self.depth = n, rng, arrival, cost_range, depth
        self.active = list(range(n)) if active is None else list(active)
        self.queues = [[] for _ in range(n)]

    def arrive(self):
        for i in self.active:
            if len(self.queues[i]) < self.depth and self.rng.random() < self.arrival:
                self.queues[i].append(self.rng.randint(*self.cost_range))

    def req(self):
        return [bool(q) for q in self.queues]

    def cost(self):
        return [q[0] if q else 0 for q in self.queues]

    def pop(self, adi):
        assert self.queues[adi], f"grant to ADI {adi}, which has no descriptor"
        return self.queues[adi].pop(0)


def run_model(model, queues, cfg, cycles, *, ready_p=1.0, rng=None):
    """Run ``model`` on ``queues`` for ``cycles``; return the list of (cycle, adi, cost) grants."""
    rng = rng or random.Random(0)
    grants = []
    for t in range(cycles):
        queues.arrive()
        valid, adi, _ = model.outputs()
        ready = rng.random() < ready_p
        req, costs = queues.req(), queues.cost()
        if model.clock(req, costs, ready, cfg):
            grants.append((t, adi, queues.pop(adi)))
    return grants
