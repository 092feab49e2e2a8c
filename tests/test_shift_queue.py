"""rtl/stream.py's ShiftQueue in Amaranth's simulator, against a Python deque.

A producer writes at random (honouring ``w_rdy``, as callers must) and a
consumer reads at random. Every cycle the queue's ``level``, ``r_rdy``,
``w_rdy`` and head word must match the deque's; every word written comes out
once, in order, and a word written into an empty queue is at the head a cycle
later. Coverage: full, empty, and (deeper than one) a read and a write in the
same cycle.
"""

import collections
import random

import pytest

from siov.rtl.stream import ShiftQueue
from siov.tb.amsim import simulate


def _run(depth, seed, cycles=2000, p_write=0.55, p_read=0.5):
    dut = ShiftQueue(12, depth)
    rng = random.Random(seed)
    log = {"in": [], "out": [], "full": 0, "empty": 0, "both": 0}

    async def bench(ctx):
        model = collections.deque()
        nxt = 0
        for _ in range(cycles):
            assert ctx.get(dut.level) == len(model)
            assert ctx.get(dut.r_rdy) == bool(model)
            assert ctx.get(dut.w_rdy) == (len(model) < depth)
            if model:
                assert ctx.get(dut.r_data) == model[0]
            write = len(model) < depth and rng.random() < p_write
            read = rng.random() < p_read
            ctx.set(dut.w_en, write)
            ctx.set(dut.w_data, nxt)
            ctx.set(dut.r_en, read)
            log["full"] += len(model) == depth
            log["empty"] += not model
            popped = read and bool(model)
            log["both"] += popped and write
            if popped:
                log["out"].append(model.popleft())
            if write:
                model.append(nxt)
                log["in"].append(nxt)
                nxt = (nxt + 1) & 0xFFF
            await ctx.tick()

    simulate(dut, bench)
    return log


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("seed", [1, 2])
def test_shift_queue_matches_a_deque(depth, seed):
    log = _run(depth, seed)
    assert log["out"] == log["in"][:len(log["out"])]
    assert len(log["in"]) - len(log["out"]) <= depth
    assert log["full"] and log["empty"], log
    # A queue of one is either full or empty: it never reads and writes at once.
    assert bool(log["both"]) == (depth > 1), log
