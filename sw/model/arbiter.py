"""Cycle-accurate reference model of :class:`siov.rtl.cmd.arbiter.QosArbiter`.

The arbiter's behaviour is defined cycle by cycle (when a grant appears and
which ADI it names), so the scoreboard compares every cycle against this
model. It is also the scheduler's simulation of the hardware arbiter when
sw/sched runs on the ``model`` backend.
"""

from dataclasses import dataclass, field

__all__ = ["Policy", "ArbiterConfig", "ArbiterModel", "ArbiterPolicyModel", "SliceBudgets"]

from ...rtl.cmd.arbiter import Policy


@dataclass
class ArbiterConfig:
    policy: int = Policy.RR
    weight: list = field(default_factory=list)
    quantum: list = field(default_factory=list)
    slice_cycles: int = 0


class _EngineGrant:
    """One engine's part of the arbiter: its two registered stages, rotation, WRR credit and grant."""

    def __init__(self, num_adis):
        self.last = num_adis - 1
        self.credit = 0  # WRR: further grants `last` may take in a row
        self.settle = False
        self.valid = False
        self.adi = 0
        self.eligible_q = [False] * num_adis   # stage-1 registers
        self.stay_q = False


class ArbiterModel:
    """State and next-state function of the arbiter.

    Call :meth:`outputs` for the registered outputs of the current cycle, then
    :meth:`clock` with that cycle's inputs to advance one clock edge. With
    ``num_engines`` above 1, :meth:`grant` gives each engine's grant and
    :meth:`clock_engines` advances with every engine's requests and ready;
    the budgets (and the slice timer) are per ADI, shared by the engines.
    """

    def __init__(self, num_adis, cost_width=24, num_engines=1):
        self.n = num_adis
        self.cost_mask = (1 << cost_width) - 1
        self.budget = [0] * num_adis
        self.fresh = [True] * num_adis
        self.timer = 0
        self.reload = 0          # registered slice_cycles - 1 (one cycle behind the CSR)
        self.engines = [_EngineGrant(num_adis) for _ in range(num_engines)]

    def outputs(self):
        """``(grant_valid, adi, budgets)`` of engine 0 as the hardware shows them this cycle."""
        g = self.engines[0]
        return g.valid, g.adi, list(self.budget)

    def grant(self, e):
        """``(grant_valid, adi)`` of engine ``e`` this cycle."""
        g = self.engines[e]
        return g.valid, g.adi

    def _pick(self, g, eligible):
        after = [i for i in range(g.last + 1, self.n) if eligible[i]]
        if after:
            return after[0], True
        first = [i for i in range(self.n) if eligible[i]]
        return (first[0], True) if first else (0, False)

    def clock(self, req, cost, ready, cfg):
        """Advance one cycle (one engine). ``req`` is a list of bools, ``cost`` a list of ints."""
        return self.clock_engines([req], cost, [ready], cfg)[0]

    def clock_engines(self, reqs, cost, readys, cfg):
        """Advance one cycle: ``reqs[e]`` and ``readys[e]`` are engine e's requests and grant
        ready. Returns each engine's take."""
        n = self.n
        weight = cfg.weight or [0] * n
        quantum = cfg.quantum or [0] * n
        refill = self.timer == 0
        fits = [cost[i] <= self.budget[i] or self.fresh[i] for i in range(n)]
        takes, charged = [], set()
        for g, req, ready in zip(self.engines, reqs, readys):
            take = g.valid and ready
            eligible = [req[i] and (fits[i] if cfg.policy == Policy.QOS else True) for i in range(n)]
            stay = cfg.policy == Policy.WRR and req[g.last] and g.credit != 0
            pick, found = self._pick(g, g.eligible_q)
            choice = g.last if g.stay_q else pick
            valid, adi, settle = g.valid, g.adi, g.settle
            last, credit = g.last, g.credit
            if take:
                valid, settle, last = False, True, g.adi
                charged.add(g.adi)
                if g.adi == g.last:
                    credit = max(g.credit - 1, 0)
                else:
                    credit = max(weight[g.adi] - 1, 0)
            elif not g.valid and not g.settle and (found or g.stay_q):
                valid, adi = True, choice
            if g.settle:
                settle = False
            g.valid, g.adi, g.settle, g.last, g.credit = valid, adi, settle, last, credit
            g.eligible_q, g.stay_q = eligible, stay
            takes.append(take)
        budget, fresh = list(self.budget), list(self.fresh)
        for i in range(n):
            if refill:
                budget[i], fresh[i] = quantum[i] & self.cost_mask, True
            elif i in charged:
                fresh[i] = False
                budget[i] = 0 if cost[i] >= self.budget[i] else self.budget[i] - cost[i]
        self.timer = self.reload if refill else (self.timer - 1) & 0xFFFFFF
        self.reload = cfg.slice_cycles - 1 if cfg.slice_cycles else 0
        self.budget, self.fresh = budget, fresh
        return takes


class SliceBudgets:
    """The QoS budgets of every ADI in the current slice, and which are still full.

    One set for all engines, as the RTL arbiter keeps them: an ADI is bound
    to one engine at a time and only its grants charge it, so a rebound ADI
    keeps what it has spent in the slice."""

    def __init__(self, num_adis, cost_width=24):
        self.n = num_adis
        self.cost_mask = (1 << cost_width) - 1
        self.budget = [0] * num_adis
        self.fresh = [True] * num_adis

    def refill(self, cfg):
        """A slice boundary: every budget back to its quantum, and fresh."""
        self.budget = [q & self.cost_mask for q in (cfg.quantum or [0] * self.n)]
        self.fresh = [True] * self.n

    def fits(self, adi, cost):
        """Whether a descriptor of ``cost`` may be granted to ``adi`` now."""
        return cost <= self.budget[adi] or self.fresh[adi]

    def charge(self, adi, cost):
        """``adi``'s grant is taken: its cost leaves the budget (saturating at 0)."""
        self.budget[adi] = max(self.budget[adi] - cost, 0)
        self.fresh[adi] = False


class ArbiterPolicyModel:
    """The arbiter at transaction level: which requesting ADI is granted next.

    The same rules as :class:`ArbiterModel` (and the RTL's
    :class:`~siov.rtl.cmd.arbiter.QosArbiter`), without its cycles, for the
    model backend, whose dispatcher (:mod:`siov.sw.platform.dispatch`) asks
    only when the RTL's would decide:

    * round robin: the first requester after the last granted one;
    * weighted round robin: the last granted ADI keeps the grant while it
      requests and has credit left (``weight - 1`` further grants; a weight
      of 0 counts as 1), else round robin;
    * QoS: a requester is eligible if its cost fits its remaining budget or
      its budget is still full for this slice (``fresh``); the grant charges
      its cost (saturating at 0). Budgets refill to the quantum at every
      slice boundary, which the caller marks with :meth:`refill`, when the
      RTL's slice timer reaches zero.

    One engine's grants: the engines' models share one :class:`SliceBudgets`
    (``budgets``), as the RTL's engines share the arbiter's budgets.
    """

    def __init__(self, num_adis, cost_width=24, budgets=None):
        self.n = num_adis
        self.last = num_adis - 1
        self.credit = 0
        self.budgets = SliceBudgets(num_adis, cost_width) if budgets is None else budgets

    def refill(self, cfg):
        """A slice boundary: every budget back to its quantum, and fresh."""
        self.budgets.refill(cfg)

    def eligible(self, pending, cost, cfg):
        """The ADIs of bit mask ``pending`` that may be granted now (QoS: those whose cost fits)."""
        if cfg.policy != Policy.QOS:
            return pending
        fits = self.budgets.fits
        return sum(1 << i for i in range(self.n) if pending >> i & 1 and fits(i, cost.get(i, 0)))

    def pick(self, pending, cost, cfg):
        """Grant one of the ADIs set in bit mask ``pending``; None if none is eligible.

        ``cost`` maps each pending ADI to its estimated cost; the grant is charged.
        """
        policy = cfg.policy if cfg.policy in (Policy.RR, Policy.WRR, Policy.QOS) else Policy.RR
        eligible = self.eligible(pending, cost, cfg)
        if policy == Policy.WRR and pending >> self.last & 1 and self.credit:
            adi = self.last
        else:
            order = list(range(self.last + 1, self.n)) + list(range(self.last + 1))
            adi = next((i for i in order if eligible >> i & 1), None)
            if adi is None:
                return None
        self.charge(adi, cost.get(adi, 0), cfg)
        return adi

    def charge(self, adi, cost, cfg):
        """The grant of ``adi`` is taken: the WRR credit, the rotation and the budget follow it
        (the RTL charges budgets under every policy; only QoS reads them)."""
        weight = cfg.weight[adi] if cfg.weight else 1
        self.credit = max(self.credit - 1, 0) if adi == self.last else max(weight - 1, 0)
        self.budgets.charge(adi, cost)
        self.last = adi
