"""Arbiter that picks which ADI's next descriptor each engine runs.

One arbiter serves every engine: each engine has its own grant, rotation and
WRR credit over the ADIs bound to it, while the per-ADI state (QoS budgets,
and the weights and quanta it reads) exists once, since an ADI is bound to
one engine at a time and only that engine's grants charge it.

Three policies, selected at run time over CSR (see ``CMD.ARB_CTRL`` in
``rtl/regs.rdl``):

* ``RR``   round robin over the ADIs that have a descriptor ready;
* ``WRR``  weighted round robin: the granted ADI keeps the grant for up to
  ``weight[i]`` consecutive descriptors (weight 0 counts as 1). The credit
  is loaded from ``weight`` when the grant moves to a new ADI, so a weight
  changed over CSR takes effect at that ADI's next turn;
* ``QOS``  best-effort time slices: each ADI has a ``quantum`` of cost per
  slice of ``slice_cycles`` cycles. Its head descriptor is dispatched only if
  its estimated cost fits the ADI's remaining budget; all budgets refill at
  the slice end. A descriptor dearer than the whole quantum is dispatched
  when the ADI's budget is still full (first dispatch in its slice), so no
  ADI with a nonzero quantum starves and the overrun of a slice is bounded
  by one descriptor per ADI.

Timing: two registered stages, so the arbiter closes timing with 64 ADIs.
Stage 1 registers which ADIs are eligible (request, and in ``QOS`` a cost
that fits) and whether ``WRR`` keeps the grant; stage 2 picks one with a
rotating priority and registers the grant. A request raised in cycle t is
granted in cycle t+2 at the latest when no other ADI of its engine competes. After a grant
is taken, one cycle passes before the next decision, so that stage 1 sees
the charged budget and the requester's updated ``req``: at most one grant
every three cycles per engine (measured in bench/bench_arbiter.py), above the engine's
rate, since the shortest descriptor (NOOP) still fetches and writes back. Ties rotate from the ADI after the last one granted, in every policy.

The cost model (a + b x transfer size) lives in the front end; the arbiter
receives the estimated cost of each ADI's head descriptor, which must stay
stable while the request is up. Budgets are charged with the granted ADI's
``cost`` input when the grant is taken.
"""

import enum

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Policy", "QosArbiter"]


class Policy(enum.IntEnum):
    RR = 0
    WRR = 1
    QOS = 2


class QosArbiter(wiring.Component):
    """Round-robin / weighted / time-slice arbiter over ``num_adis`` requesters, one grant per engine.

    The QoS state (each ADI's budget and whether it is still full, the slice
    timer) is per ADI and exists once: an ADI is bound to one engine at a
    time, so only that engine's grants charge it, and a rebound ADI keeps
    what it has spent in the slice. The rotation, the WRR credit, the two
    registered stages and the grant are per engine: each engine decides over
    its own requests as an arbiter of its own would.

    Parameters
    ----------
    num_adis : int
        Number of requesters, 1..64.
    num_engines : int
        Number of grant streams, 1..4.
    cost_width : int
        Width of costs, quanta and budgets.

    Attributes
    ----------
    req : In(ArrayLayout(num_adis, num_engines))
        ``req[e]`` bit i: ADI i has a descriptor ready for engine e. Must stay
        set until granted. An ADI requested by several engines may be granted
        to each; grants of one ADI taken in the same cycle charge it once.
    cost : In(ArrayLayout(cost_width, num_adis))
        Estimated cost of each ADI's head descriptor.
    grant{e} : Out(stream.Signature(...))
        ``{adi}`` of engine e's dispatched descriptor; taken on valid & ready.
    policy, weight, quantum, slice_cycles : In
        Configuration from CSR.
    budget : Out(ArrayLayout(cost_width, num_adis))
        Remaining budget of each ADI in the current slice (status).
    slice_end : Out(1)
        One-cycle pulse when budgets refill.
    """

    def __init__(self, num_adis, *, num_engines=1, cost_width=24):
        if not isinstance(num_adis, int) or not 1 <= num_adis <= 64:
            raise ValueError(f"Number of ADIs must be an integer between 1 and 64, not {num_adis!r}")
        if not isinstance(num_engines, int) or not 1 <= num_engines <= 4:
            raise ValueError(f"Number of engines must be an integer between 1 and 4, not {num_engines!r}")
        if not isinstance(cost_width, int) or not 4 <= cost_width <= 32:
            raise ValueError(f"Cost width must be an integer between 4 and 32, not {cost_width!r}")
        self.num_adis = num_adis
        self.num_engines = num_engines
        self.cost_width = cost_width
        idx = range(num_adis) if num_adis > 1 else range(2)
        members = {
            "req": In(data.ArrayLayout(num_adis, num_engines)),
            "cost": In(data.ArrayLayout(cost_width, num_adis)),
            "policy": In(2),
            "weight": In(data.ArrayLayout(8, num_adis)),
            "quantum": In(data.ArrayLayout(cost_width, num_adis)),
            "slice_cycles": In(24),
            "budget": Out(data.ArrayLayout(cost_width, num_adis)),
            "slice_end": Out(1),
        }
        for e in range(num_engines):
            members[f"grant{e}"] = Out(stream.Signature(data.StructLayout({"adi": idx})))
        super().__init__(members)

    def grants(self):
        """The grant streams, engine 0 first."""
        return [getattr(self, f"grant{e}") for e in range(self.num_engines)]

    def elaborate(self, platform):
        m = Module()
        n = self.num_adis
        w = self.cost_width

        budget = [Signal(w, name=f"budget{i}") for i in range(n)]
        fresh = Signal(n, init=(1 << n) - 1)
        timer = Signal(24)

        for i in range(n):
            m.d.comb += self.budget[i].eq(budget[i])

        # Slice timer and refill. `at_zero` is registered (the timer is 1 in the
        # cycle before it reaches 0), and the reload value is registered from
        # the CSR, so no 24-bit compare or subtract feeds the refill fan-out.
        refill = Signal()
        at_zero = Signal(init=1)
        reload = Signal(24)
        m.d.sync += reload.eq(Mux(self.slice_cycles == 0, 0, self.slice_cycles - 1))
        m.d.comb += refill.eq(at_zero)
        m.d.comb += self.slice_end.eq(refill)
        with m.If(refill):
            m.d.sync += [timer.eq(reload), at_zero.eq(reload == 0)]
        with m.Else():
            m.d.sync += [timer.eq(timer - 1), at_zero.eq(timer == 1)]

        # What fits each ADI's budget, and the WRR credit each ADI would start
        # with: per ADI, once for every engine.
        fits = Signal(n)
        for i in range(n):
            m.d.comb += fits[i].eq((self.cost[i] <= budget[i]) | fresh[i])
        credit_load = [Signal(8, name=f"credit_load{i}") for i in range(n)]
        for i in range(n):
            m.d.comb += credit_load[i].eq(Mux(self.weight[i] == 0, 0, self.weight[i] - 1))

        takes = [self._engine(m, e, fits, credit_load) for e in range(self.num_engines)]

        # Budgets: charge on take (saturating at zero), refill at slice end.
        for i in range(n):
            charged = Cat(take & (g.payload.adi == i) for take, g in zip(takes, self.grants())).any()
            with m.If(refill):
                m.d.sync += [budget[i].eq(self.quantum[i]), fresh[i].eq(1)]
            with m.Elif(charged):
                m.d.sync += fresh[i].eq(0)
                with m.If(self.cost[i] >= budget[i]):
                    m.d.sync += budget[i].eq(0)
                with m.Else():
                    m.d.sync += budget[i].eq(budget[i] - self.cost[i])
        return m

    def _engine(self, m, e, fits, credit_load):
        """Engine ``e``'s two stages and grant; returns its take."""
        n = self.num_adis
        req, grant = self.req[e], self.grants()[e]
        last = Signal(range(max(n, 2)), init=n - 1, name=f"last{e}")
        credit = Signal(8, name=f"credit{e}")   # WRR: further grants `last` may take in a row
        settle = Signal(name=f"settle{e}")      # one bubble after a take

        # Stage 1: eligibility and the WRR "stay" decision, registered.
        eligible = Signal(n, name=f"eligible{e}")
        with m.If(self.policy == Policy.QOS):
            m.d.comb += eligible.eq(req & fits)
        with m.Else():
            m.d.comb += eligible.eq(req)
        stay = Signal(name=f"stay{e}")
        m.d.comb += stay.eq((self.policy == Policy.WRR) & (credit != 0) & req.bit_select(last, 1))
        eligible_q = Signal(n, name=f"eligible_q{e}")
        stay_q = Signal(name=f"stay_q{e}")
        m.d.sync += [eligible_q.eq(eligible), stay_q.eq(stay)]

        # Stage 2: rotating priority, first eligible index after `last`, wrapping.
        # `after[i]`: i comes after `last` in the rotation; a register kept in
        # step with `last`, so stage 2 has no index compare (timing).
        after = Signal(n, init=0, name=f"after{e}")
        above = Signal(n, name=f"above{e}")
        m.d.comb += above.eq(eligible_q & after)
        pick = Signal(range(max(n, 2)), name=f"pick{e}")
        found = Signal(name=f"found{e}")
        for i in reversed(range(n)):
            with m.If(eligible_q[i]):
                m.d.comb += [pick.eq(i), found.eq(1)]
        for i in reversed(range(n)):
            with m.If(above[i]):
                m.d.comb += pick.eq(i)
        choice = Signal(range(max(n, 2)), name=f"choice{e}")
        m.d.comb += choice.eq(Mux(stay_q, last, pick))

        take = Signal(name=f"take{e}")
        m.d.comb += take.eq(grant.valid & grant.ready)
        # At the take, everything comes from registers (the granted index and
        # `last`); `after` follows the new `last` for stage 2.
        with m.If(take):
            g = grant.payload.adi
            m.d.sync += [grant.valid.eq(0), settle.eq(1), last.eq(g),
                         after.eq(Cat(Const(0, 1), *(g < i for i in range(1, n))) if n > 1 else 0)]
            with m.If(g == last):
                m.d.sync += credit.eq(Mux(credit == 0, 0, credit - 1))
            with m.Else():
                m.d.sync += credit.eq(Array(credit_load)[g])
        with m.Elif(~grant.valid & ~settle & (found | stay_q)):
            m.d.sync += [grant.valid.eq(1), grant.payload.adi.eq(choice)]
        with m.If(settle):
            m.d.sync += settle.eq(0)
        return take
