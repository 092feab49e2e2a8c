"""rtl/counter.py's counters in Amaranth's simulator, against Python models,
every cycle, under random counts and clears (a clear in a count's cycle
wins): saturating_inc on 3 bits so that it saturates often, split_counter on
6 bits so that both halves wrap often."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from siov.rtl.counter import saturating_inc, split_counter


def _drive(m, when, clear, *, seed, p_clear, step):
    """4000 cycles of random counts (70%) and clears (``p_clear``) into the
    counter of ``m``; ``step(ctx, count, clear)`` checks each cycle after its edge."""
    rng = random.Random(seed)

    async def bench(ctx):
        for _ in range(4000):
            w, c = rng.random() < 0.7, rng.random() < p_clear
            ctx.set(when, w)
            ctx.set(clear, c)
            await ctx.tick()
            step(ctx, w, c)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("seed", [1, 2])
def test_saturating_inc_matches_model(seed):
    m = Module()
    count, when, clear = Signal(3), Signal(), Signal()
    saturating_inc(m, count, when, clear)
    seen = {"held_at_max": 0, "clear_with_count": 0, "clear_at_max": 0}
    model = 0

    def step(ctx, w, c):
        nonlocal model
        seen["held_at_max"] += w and not c and model == 7
        seen["clear_with_count"] += w and c
        seen["clear_at_max"] += c and model == 7
        model = 0 if c else min(model + w, 7)
        assert ctx.get(count) == model

    _drive(m, when, clear, seed=seed, p_clear=0.04, step=step)
    # The run must have met each case it is there to check.
    assert all(v > 0 for v in seen.values()), seen


@pytest.mark.parametrize("seed", [1, 2])
def test_split_counter_matches_model(seed):
    """split_counter on 6 bits split 3/3 (the low part wraps every 8 counts):
    every cycle it shows the count as of two cycles before, under random counts
    and clears (a clear in a count's cycle wins, and the value shown after a
    clear starts from zero)."""
    m = Module()
    when, clear = Signal(), Signal()
    shown = split_counter(m, 6, when, clear, name="cnt", low=3)
    seen = {"low_wraps": 0, "full_wraps": 0, "clear_with_count": 0}
    history = [0, 0, 0]         # the count after each of the last three cycles, oldest first
    model = 0

    def step(ctx, w, c):
        nonlocal model, history
        seen["low_wraps"] += w and not c and model % 8 == 7
        seen["full_wraps"] += w and not c and model == 63
        seen["clear_with_count"] += w and c
        model = 0 if c else (model + w) % 64
        # After a clear every register is zero; else the count of two cycles before.
        history = [0, 0, 0] if c else history[1:] + [model]
        assert ctx.get(shown) == history[0], (history, ctx.get(shown))

    _drive(m, when, clear, seed=seed, p_clear=0.01, step=step)
    assert all(v > 0 for v in seen.values()), seen
