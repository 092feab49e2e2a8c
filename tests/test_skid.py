"""rtl/stream.py's SkidBuffer in Amaranth's simulator, against a Python deque.

A producer offers words at random and a consumer takes them at random. Every
word accepted must come out once and in order; the buffer never holds more
than two; ``inp.ready`` must depend on the buffer's state alone (it equals
"fewer than two words held" every cycle, whatever the consumer's ready in
that cycle); and with the consumer always ready a word goes through every
cycle (full throughput). Coverage: both entries in use, and the consumer
stalled while a word waits in the spare entry.
"""

import collections
import random

import pytest
from amaranth.sim import Simulator

from siov.rtl.stream import SkidBuffer


def _run(seed, cycles=3000, p_valid=0.6, p_ready=0.6):
    dut = SkidBuffer(16)
    rng = random.Random(seed)
    log = {"in": [], "out": [], "both_full": 0, "stalled_with_spare": 0}

    async def bench(ctx):
        held = collections.deque()
        nxt = 0
        for _ in range(cycles):
            valid = rng.random() < p_valid
            ready = rng.random() < p_ready
            ctx.set(dut.inp.valid, valid)
            ctx.set(dut.inp.payload, nxt)
            ctx.set(dut.out.ready, ready)
            await ctx.delay(1e-9)
            in_ready = ctx.get(dut.inp.ready)
            # inp.ready: room for one more, from the state alone.
            assert in_ready == (len(held) < 2), (len(held), in_ready)
            assert ctx.get(dut.out.valid) == (len(held) > 0)
            if held:
                assert ctx.get(dut.out.payload) == held[0]
            log["both_full"] += len(held) == 2
            log["stalled_with_spare"] += len(held) == 2 and not ready
            if held and ready:
                log["out"].append(held.popleft())
            if valid and in_ready:
                held.append(nxt)
                log["in"].append(nxt)
                nxt = (nxt + 1) & 0xFFFF
            await ctx.tick()
        log["left"] = list(held)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return log


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_skid_buffer_keeps_order_and_loses_nothing(seed):
    log = _run(seed)
    assert log["out"] + log["left"] == log["in"]
    assert log["both_full"] > 50 and log["stalled_with_spare"] > 20


def test_skid_buffer_full_throughput():
    log = _run(7, cycles=500, p_valid=1.0, p_ready=1.0)
    # One word per cycle once the first has arrived.
    assert len(log["out"]) == 499 and log["both_full"] == 0
