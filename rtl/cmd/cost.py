"""Cost estimator in front of the QoS arbiter: cost = A + (B x size) >> 8.

The arbiter's time-slice policy dispatches a descriptor only if its estimated
cost fits the ADI's remaining budget, so every prefetched descriptor gets an
estimate. ``A`` (cycles) and ``B`` (1/256 cycle per byte) come from
``ENG.COST_A`` / ``ENG.COST_B``; software calibrates them from the measured
cycles each completion record carries. Only MEMMOVE, MEMFILL and COMPARE
count their ``xfer_size``. The estimate saturates at ``2**COST_WIDTH - 1``.
The same rule in Python: :func:`siov.sw.model.engine.estimate_cost`.

Two registered stages (multiply, then add and saturate), so the 16 x 32
multiply maps onto DSP blocks without sitting on a longer path.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .dsa import SIZED_OPCODES

__all__ = ["COST_WIDTH", "COST_FRAC_BITS", "CostEstimator"]

#: Width of costs, quanta and budgets (the arbiter's ``cost_width``).
COST_WIDTH = 24
#: Fraction bits of the per-byte coefficient B.
COST_FRAC_BITS = 8


class CostEstimator(wiring.Component):
    """``cost`` is valid two cycles after ``opcode``/``size`` are presented with ``start``.

    Attributes
    ----------
    start : In(1)
    opcode : In(8)
    size : In(32)
    a : In(COST_WIDTH)
    b : In(16)
    cost : Out(COST_WIDTH)
    done : Out(1)
        Pulses with ``cost`` valid.
    """

    def __init__(self):
        super().__init__({
            "start": In(1), "opcode": In(8), "size": In(32),
            "a": In(COST_WIDTH), "b": In(16),
            "cost": Out(COST_WIDTH), "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        sized = Signal()
        m.d.comb += sized.eq(0)
        for op in SIZED_OPCODES:
            with m.If(self.opcode == op.value):
                m.d.comb += sized.eq(1)
        product = Signal(48)
        stage1 = Signal()
        m.d.sync += [product.eq((self.b * self.size) & (sized.replicate(48))),
                     stage1.eq(self.start)]
        total = Signal(COST_WIDTH + 25)
        m.d.comb += total.eq(self.a + (product >> COST_FRAC_BITS))
        limit = (1 << COST_WIDTH) - 1
        m.d.sync += self.done.eq(stage1)
        with m.If(total >= limit):
            m.d.sync += self.cost.eq(limit)
        with m.Else():
            m.d.sync += self.cost.eq(total)
        return m
