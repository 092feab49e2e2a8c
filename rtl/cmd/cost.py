"""Cost estimator in front of the QoS arbiter: cost = A + (B x size) >> 8.

The arbiter's time-slice policy dispatches a descriptor only if its estimated
cost fits the ADI's remaining budget, so every prefetched descriptor gets an
estimate. ``A`` (cycles) and ``B`` (1/256 cycle per byte) come from
``ENG.COST_A`` / ``ENG.COST_B``; software calibrates them from the measured
cycles each completion record carries. Only MEMMOVE, MEMFILL and COMPARE
count their ``xfer_size``. The estimate saturates at ``2**COST_WIDTH - 1``.
The same rule in Python: :func:`siov.sw.model.engine.estimate_cost`.

Four registered stages (inputs; two 16 x 16 products; their sum; add and
saturate), so each multiply sits alone between registers on a DSP block.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .dsa import SIZED_OPCODES

__all__ = ["COST_WIDTH", "COST_FRAC_BITS", "CostEstimator"]

#: Width of costs, quanta and budgets (the arbiter's ``cost_width``).
COST_WIDTH = 24
#: Fraction bits of the per-byte coefficient B.
COST_FRAC_BITS = 8


class CostEstimator(wiring.Component):
    """``cost`` is valid (``done``) four cycles after ``opcode``/``size`` are presented with ``start``.

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
        # Stage 0: register the inputs (they come from the engine's state mux).
        sized = Signal()
        m.d.comb += sized.eq(0)
        for op in SIZED_OPCODES:
            with m.If(self.opcode == op.value):
                m.d.comb += sized.eq(1)
        s0, size0, a0, b0 = Signal(), Signal(32), Signal(COST_WIDTH), Signal(16)
        m.d.sync += [s0.eq(self.start), size0.eq(Mux(sized, self.size, 0)), a0.eq(self.a), b0.eq(self.b)]
        # Stage 1: two 16 x 16 products (one DSP block each).
        s1, p_lo, p_hi, a1 = Signal(), Signal(32), Signal(32), Signal(COST_WIDTH)
        m.d.sync += [s1.eq(s0), p_lo.eq(b0 * size0[:16]), p_hi.eq(b0 * size0[16:]), a1.eq(a0)]
        # Stage 2: the 48-bit product.
        s2, product, a2 = Signal(), Signal(48), Signal(COST_WIDTH)
        m.d.sync += [s2.eq(s1), product.eq(p_lo + (p_hi << 16)), a2.eq(a1)]
        # Stage 3: add the fixed part and saturate.
        total = Signal(COST_WIDTH + 41)
        m.d.comb += total.eq(a2 + (product >> COST_FRAC_BITS))
        limit = (1 << COST_WIDTH) - 1
        m.d.sync += [self.done.eq(s2), self.cost.eq(Mux(total >= limit, limit, total))]
        return m
