"""rtl/counter.py's saturating_inc in Amaranth's simulator, on a 3-bit
counter so that it saturates often: against a Python model, every cycle, under
random counts and clears (a clear in a count's cycle wins)."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from siov.rtl.counter import saturating_inc


@pytest.mark.parametrize("seed", [1, 2])
def test_saturating_inc_matches_model(seed):
    m = Module()
    count, when, clear = Signal(3), Signal(), Signal()
    saturating_inc(m, count, when, clear)
    rng = random.Random(seed)
    seen = {"held_at_max": 0, "clear_with_count": 0, "clear_at_max": 0}

    async def bench(ctx):
        model = 0
        for _ in range(4000):
            w, c = rng.random() < 0.7, rng.random() < 0.04
            ctx.set(when, w)
            ctx.set(clear, c)
            await ctx.tick()
            seen["held_at_max"] += w and not c and model == 7
            seen["clear_with_count"] += w and c
            seen["clear_at_max"] += c and model == 7
            model = 0 if c else min(model + w, 7)
            assert ctx.get(count) == model

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # The run must have met each case it is there to check.
    assert all(v > 0 for v in seen.values()), seen


@pytest.mark.parametrize("seed", [1, 2])
def test_split_counter_matches_model(seed):
    """split_counter on 6 bits split 3/3 (the low part wraps every 8 counts):
    every cycle it shows the count as of two cycles before, under random counts
    and clears (a clear in a count's cycle wins, and the value shown after a
    clear starts from zero)."""
    from siov.rtl.counter import split_counter

    m = Module()
    when, clear = Signal(), Signal()
    shown = split_counter(m, 6, when, clear, name="cnt", low=3)
    rng = random.Random(seed)
    seen = {"low_wraps": 0, "full_wraps": 0, "clear_with_count": 0}

    async def bench(ctx):
        history = [0, 0, 0]         # the count before each of the last cycles (newest last)
        model = 0
        for _ in range(4000):
            w, c = rng.random() < 0.7, rng.random() < 0.01
            ctx.set(when, w)
            ctx.set(clear, c)
            await ctx.tick()
            seen["low_wraps"] += w and not c and model % 8 == 7
            seen["full_wraps"] += w and not c and model == 63
            seen["clear_with_count"] += w and c
            model = 0 if c else (model + w) % 64
            # After a clear every register is zero; else the count of two cycles before.
            history = [0, 0, 0] if c else history[1:] + [model]
            assert ctx.get(shown) == history[0], (history, ctx.get(shown))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert all(v > 0 for v in seen.values()), seen
