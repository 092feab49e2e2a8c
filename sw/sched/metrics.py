"""What a scheduling run is judged by: per-tenant throughput, latency and share, and fairness.

Two sources feed one :class:`Metrics`:

* the scheduler (:mod:`siov.sw.sched.scheduler`): each tenant's engine
  cycles, from the cycles field of its completion records (its *share*),
  the switches, its own MMIO, the slice overruns and the cost model's error;
* the workload: each descriptor's latency from its submission to the
  completion its guest saw, and the bytes it moved (:meth:`Metrics.done`).

Jain's index (Jain, Chiu and Hawe, DEC-TR-301, 1984) of ``x_1..x_n`` is
``(sum x)^2 / (n * sum x^2)``: 1 when all are equal, ``1/n`` when one takes
everything. Here ``x_i`` is tenant ``i``'s share divided by its weight.
"""

import collections

import numpy as np

__all__ = ["Metrics", "MmioMeter", "jain", "percentile"]


def jain(values):
    """Jain's fairness index of ``values`` (1.0 for an empty or all-zero list)."""
    x = np.asarray(list(values), dtype=float)
    if not len(x) or not (x ** 2).sum():
        return 1.0
    return float(x.sum() ** 2 / (len(x) * (x ** 2).sum()))


def percentile(values, q):
    """The ``q``-th percentile of ``values`` (None for an empty list)."""
    values = list(values)
    return float(np.percentile(values, q)) if values else None


class MmioMeter:
    """What the scheduler's own register accesses cost: their count and the device cycles they
    took, in all and by purpose.

    The scheduler and its scanner share one meter, so the overhead the issue's goal bounds (the
    scheduler's device cycles against the run's) is counted once, whoever made the access.

    Attributes
    ----------
    accesses, cycles : int
        MMIO accesses made through the meter, and the device cycles they took.
    by : Counter
        Those cycles by purpose (``"tail"``, ``"head"``, ``"bitmap"``, ``"mask"``, ``"arbiter"``,
        ``"counters"``).
    """

    def __init__(self, bus):
        self.bus = bus
        self.accesses = self.cycles = 0
        self.by = collections.Counter()

    async def __call__(self, what, accesses, coro):
        """Await ``coro``, which makes ``accesses`` MMIO accesses for purpose ``what``, and count
        them with the device cycles it took (counted even if it raises)."""
        start = self.bus.now()
        try:
            return await coro
        finally:
            took = self.bus.now() - start
            self.accesses += accesses
            self.cycles += took
            self.by[what] += took


class Metrics:
    """Per-tenant counts of a run.

    Attributes
    ----------
    engine_cycles : Counter
        Tenant -> cycles its descriptors took, from their completion records.
    descriptors : Counter
        Tenant -> descriptors completed, as the scheduler saw them.
    latency : dict
        Tenant -> list of latencies (cycles from submission to completion) the workload saw.
    bytes : Counter
        Tenant -> bytes its completed descriptors moved, as the workload counted them.
    window : dict
        Tenant -> ``[first submission, last completion]`` cycle, as the workload reported them.
    charges : list
        ``(cycle, tenant, cycles)`` of each completion the scheduler charged.
    """

    def __init__(self):
        self.engine_cycles = collections.Counter()
        self.descriptors = collections.Counter()
        self.latency = collections.defaultdict(list)
        self.bytes = collections.Counter()
        self.window = {}
        self.charges = []

    def charge(self, tenant, cycles, at=None):
        """The scheduler saw, at device cycle ``at``, a descriptor of ``tenant`` complete after
        ``cycles``."""
        self.engine_cycles[tenant] += cycles
        self.descriptors[tenant] += 1
        if at is not None:
            self.charges.append((at, tenant, cycles))

    def done(self, tenant, submitted, completed, nbytes=0):
        """The workload saw a descriptor of ``tenant`` submitted at cycle ``submitted`` complete
        at cycle ``completed``, having moved ``nbytes``."""
        self.latency[tenant].append(completed - submitted)
        self.bytes[tenant] += nbytes
        first, last = self.window.get(tenant, (submitted, completed))
        self.window[tenant] = [min(first, submitted), max(last, completed)]

    def shares(self, tenants=None, window=None):
        """Tenant -> fraction of all engine cycles its descriptors took (those seen completing
        inside ``window``, a ``(first, last)`` cycle pair, if given)."""
        tenants = sorted(self.engine_cycles) if tenants is None else tenants
        cycles = self.engine_cycles
        if window is not None:
            cycles = collections.Counter()
            for at, t, c in self.charges:
                if window[0] <= at <= window[1]:
                    cycles[t] += c
        total = sum(cycles[t] for t in tenants)
        return {t: cycles[t] / total if total else 0.0 for t in tenants}

    def fairness(self, weights, window=None):
        """``(jain, {tenant: share / entitled share})`` over the tenants of ``weights``
        (tenant -> weight): the entitled share is the weight over the sum of weights."""
        shares = self.shares(sorted(weights), window)
        total = sum(weights.values())
        ratio = {t: shares[t] / (weights[t] / total) for t in weights}
        return jain(ratio.values()), ratio

    def tenant(self, name, run_cycles=None):
        """Throughput (bytes per cycle over the tenant's own window, or over ``run_cycles``),
        p50/p99 latency and engine cycles of tenant ``name``."""
        lat = self.latency.get(name, [])
        first, last = self.window.get(name, (0, 0))
        span = run_cycles or max(last - first, 1)
        return {"descriptors": len(lat) or self.descriptors[name], "bytes": self.bytes[name],
                "bytes_per_cycle": round(self.bytes[name] / span, 3),
                "p50": percentile(lat, 50), "p99": percentile(lat, 99),
                "engine_cycles": self.engine_cycles[name]}
