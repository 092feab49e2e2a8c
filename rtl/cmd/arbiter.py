"""Arbiter that picks which ADI's next descriptor the engine runs.

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
granted in cycle t+2 at the latest when no other ADI competes. After a grant
is taken, one cycle passes before the next decision, so that stage 1 sees
the charged budget and the requester's updated ``req``: at most one grant
every three cycles (measured in bench/bench_arbiter.py), above the engine's
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
    """Round-robin / weighted / time-slice arbiter over ``num_adis`` requesters.

    Parameters
    ----------
    num_adis : int
        Number of requesters, 1..64.
    cost_width : int
        Width of costs, quanta and budgets.

    Attributes
    ----------
    req : In(num_adis)
        Bit i: ADI i has a descriptor ready. Must stay set until granted.
    cost : In(ArrayLayout(cost_width, num_adis))
        Estimated cost of each ADI's head descriptor.
    grant : Out(stream.Signature(...))
        ``{adi}`` of the dispatched descriptor; taken on valid & ready.
    policy, weight, quantum, slice_cycles : In
        Configuration from CSR.
    budget : Out(ArrayLayout(cost_width, num_adis))
        Remaining budget of each ADI in the current slice (status).
    slice_end : Out(1)
        One-cycle pulse when budgets refill.
    """

    def __init__(self, num_adis, *, cost_width=24):
        if not isinstance(num_adis, int) or not 1 <= num_adis <= 64:
            raise ValueError(f"Number of ADIs must be an integer between 1 and 64, not {num_adis!r}")
        if not isinstance(cost_width, int) or not 4 <= cost_width <= 32:
            raise ValueError(f"Cost width must be an integer between 4 and 32, not {cost_width!r}")
        self.num_adis = num_adis
        self.cost_width = cost_width
        idx = range(num_adis) if num_adis > 1 else range(2)
        super().__init__({
            "req": In(num_adis),
            "cost": In(data.ArrayLayout(cost_width, num_adis)),
            "grant": Out(stream.Signature(data.StructLayout({"adi": idx}))),
            "policy": In(2),
            "weight": In(data.ArrayLayout(8, num_adis)),
            "quantum": In(data.ArrayLayout(cost_width, num_adis)),
            "slice_cycles": In(24),
            "budget": Out(data.ArrayLayout(cost_width, num_adis)),
            "slice_end": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.num_adis
        w = self.cost_width

        budget = [Signal(w, name=f"budget{i}") for i in range(n)]
        fresh = Signal(n, init=(1 << n) - 1)
        last = Signal(range(max(n, 2)), init=n - 1)
        credit = Signal(8)             # WRR: further grants `last` may take in a row
        settle = Signal()              # one bubble after a take
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

        # Stage 1: eligibility and the WRR "stay" decision, registered.
        fits = Signal(n)
        for i in range(n):
            m.d.comb += fits[i].eq((self.cost[i] <= budget[i]) | fresh[i])
        eligible = Signal(n)
        with m.If(self.policy == Policy.QOS):
            m.d.comb += eligible.eq(self.req & fits)
        with m.Else():
            m.d.comb += eligible.eq(self.req)
        stay = Signal()
        m.d.comb += stay.eq((self.policy == Policy.WRR) & (credit != 0) & self.req.bit_select(last, 1))
        eligible_q = Signal(n)
        stay_q = Signal()
        m.d.sync += [eligible_q.eq(eligible), stay_q.eq(stay)]

        # Stage 2: rotating priority, first eligible index after `last`, wrapping.
        # `after[i]`: i comes after `last` in the rotation; a register kept in
        # step with `last`, so stage 2 has no index compare (timing).
        after = Signal(n, init=0)
        above = Signal(n)
        m.d.comb += above.eq(eligible_q & after)
        pick = Signal(range(max(n, 2)))
        found = Signal()
        for i in reversed(range(n)):
            with m.If(eligible_q[i]):
                m.d.comb += [pick.eq(i), found.eq(1)]
        for i in reversed(range(n)):
            with m.If(above[i]):
                m.d.comb += pick.eq(i)
        choice = Signal(range(max(n, 2)))
        m.d.comb += choice.eq(Mux(stay_q, last, pick))

        take = Signal()
        m.d.comb += take.eq(self.grant.valid & self.grant.ready)
        # WRR credit each ADI would start with, computed in parallel before the mux.
        credit_load = [Signal(8, name=f"credit_load{i}") for i in range(n)]
        for i in range(n):
            m.d.comb += credit_load[i].eq(Mux(self.weight[i] == 0, 0, self.weight[i] - 1))

        # At the take, everything comes from registers (the granted index and
        # `last`); `after` follows the new `last` for stage 2.
        with m.If(take):
            g = self.grant.payload.adi
            m.d.sync += [self.grant.valid.eq(0), settle.eq(1), last.eq(g),
                         after.eq(Cat(Const(0, 1), *(g < i for i in range(1, n))) if n > 1 else 0)]
            with m.If(g == last):
                m.d.sync += credit.eq(Mux(credit == 0, 0, credit - 1))
            with m.Else():
                m.d.sync += credit.eq(Array(credit_load)[g])
        with m.Elif(~self.grant.valid & ~settle & (found | stay_q)):
            m.d.sync += [self.grant.valid.eq(1), self.grant.payload.adi.eq(choice)]
        with m.If(settle):
            m.d.sync += settle.eq(0)

        # Budgets: charge on take (saturating at zero), refill at slice end.
        for i in range(n):
            charged = take & (self.grant.payload.adi == i)
            with m.If(refill):
                m.d.sync += [budget[i].eq(self.quantum[i]), fresh[i].eq(1)]
            with m.Elif(charged):
                m.d.sync += fresh[i].eq(0)
                with m.If(self.cost[i] >= budget[i]):
                    m.d.sync += budget[i].eq(0)
                with m.Else():
                    m.d.sync += budget[i].eq(budget[i] - self.cost[i])
        return m
