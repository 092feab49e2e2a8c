"""rtl/stream.py's BypassFifo in Amaranth's simulator, against a Python deque.

A producer writes at random, either only when it holds a credit (one per free
entry, returned on a read) or regardless (a write into a full FIFO is then
dropped, as SyncFIFO drops it); the consumer reads at random. Every word taken
must come out once, in order; the flags must match the deque every cycle; and
a word written into an empty FIFO must be readable in the next cycle.
"""

import collections
import random

import pytest
from amaranth.sim import Simulator

from siov.rtl.stream import BypassFifo


def _run(depth, seed, cycles=3000, p_write=0.6, p_read=0.6, credits_only=True, guarded=False):
    dut = BypassFifo(width=16, depth=depth, guarded=guarded)
    rng = random.Random(seed)
    log = {"out": [], "in": [], "bypassed": 0, "full_cycles": 0, "max_level": 0, "dropped": 0}

    async def bench(ctx):
        model = collections.deque()
        credits = depth
        pending_bypass = None     # a word written into an empty FIFO last cycle
        nxt = 0
        for _ in range(cycles):
            w_en = (credits > 0 or not credits_only) and rng.random() < p_write
            r_en = rng.random() < p_read
            ctx.set(dut.w_en, w_en)
            ctx.set(dut.w_data, nxt)
            ctx.set(dut.r_en, r_en)
            # The level is words held; the model and the port must agree.
            assert ctx.get(dut.level) == len(model)
            assert ctx.get(dut.r_rdy) == (len(model) > 0)
            assert ctx.get(dut.w_rdy) == (len(model) < depth)
            log["max_level"] = max(log["max_level"], len(model))
            log["full_cycles"] += len(model) == depth
            if pending_bypass is not None:
                assert ctx.get(dut.r_rdy), "a word written into an empty FIFO is readable a cycle later"
                assert ctx.get(dut.r_data) == pending_bypass
                log["bypassed"] += 1
            # w_rdy is of the cycle's start: a write into a full FIFO is
            # dropped even when a read frees a word in the same cycle.
            taken = w_en and len(model) < depth
            popped = r_en and len(model) > 0
            if popped:
                got = ctx.get(dut.r_data)
                assert got == model[0], f"read {got}, expected {model[0]}"
                log["out"].append(model.popleft())
                credits += 1
            log["dropped"] += w_en and not taken
            pending_bypass = nxt if (taken and not model and not popped) else None
            if taken:
                model.append(nxt)
                log["in"].append(nxt)
                credits -= 1
                nxt = (nxt + 1) & 0xFFFF
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return log


@pytest.mark.parametrize("guarded", [False, True])
@pytest.mark.parametrize("depth", [2, 3, 4, 16])
@pytest.mark.parametrize("seed", [1, 2])
def test_order_and_bypass(depth, seed, guarded):
    """With credits, the guarded FIFO (no full gate on the write) behaves the same."""
    log = _run(depth, seed, guarded=guarded)
    assert log["out"] == log["in"][:len(log["out"])]
    assert len(log["out"]) > 1000
    assert log["bypassed"] > 20
    # The random run reached the full FIFO (so the credit limit was exercised).
    assert log["max_level"] == depth and log["full_cycles"] > 0


def test_write_into_full_is_dropped():
    """A producer without credits: writes into a full FIFO are ignored, and
    what was taken still comes out in order."""
    log = _run(4, 5, p_write=0.9, p_read=0.3, credits_only=False)
    assert log["dropped"] > 100
    assert log["out"] == log["in"][:len(log["out"])]


@pytest.mark.parametrize("guarded", [False, True])
def test_drains_when_consumer_stalls(guarded):
    """A slow consumer: the FIFO fills, and every word still comes out in order."""
    log = _run(4, 3, p_write=0.9, p_read=0.2, guarded=guarded)
    assert log["full_cycles"] > 100
    assert log["out"] == log["in"][:len(log["out"])]


@pytest.mark.parametrize("kwargs", [dict(width=8, depth=1), dict(width=0, depth=4), dict(width=8, depth=2.5)])
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        BypassFifo(**kwargs)
