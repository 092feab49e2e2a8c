"""The engine's byte aligner (rtl/cmd/mover.py) in Amaranth's simulator, against plain byte arithmetic.

Every combination of source lane, destination lane and a spread of lengths
(including one byte, exact words and a whole page) goes through the aligner
with random stalls on both sides; each destination word must hold, in every
lane the writer will enable, the source byte that belongs there.
"""

import random

import pytest
from amaranth.sim import Simulator

from siov.rtl.cmd.mover import WORD_BYTES, Aligner, words_covering


def _expected(src_bytes, lane_in, lane_out, length):
    """Destination words (lists of 8 bytes or None for don't-care lanes)."""
    n_out = words_covering(lane_out, length)
    out = [[None] * WORD_BYTES for _ in range(n_out)]
    for i in range(length):
        pos = lane_out + i
        out[pos // WORD_BYTES][pos % WORD_BYTES] = src_bytes[lane_in + i]
    return out


def _run(cases, seed):
    dut = Aligner()
    rng = random.Random(seed)
    results = []

    async def bench(ctx):
        for lane_in, lane_out, length in cases:
            n_in = words_covering(lane_in, length)
            n_out = words_covering(lane_out, length)
            src = bytes(rng.getrandbits(8) for _ in range(n_in * WORD_BYTES))
            words = [int.from_bytes(src[8 * k:8 * k + 8], "little") for k in range(n_in)]
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, {"lane_in": lane_in, "lane_out": lane_out,
                                      "words_in": n_in, "words_out": n_out})
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            got, k = [], 0
            for _ in range(20 * (n_in + n_out) + 50):
                ctx.set(dut.inp.valid, int(k < n_in and rng.random() < 0.7))
                ctx.set(dut.inp.payload, words[k] if k < n_in else 0)
                ctx.set(dut.out.ready, int(rng.random() < 0.7))
                # Sample the handshakes the coming edge will take.
                took_in = ctx.get(dut.inp.valid) and ctx.get(dut.inp.ready)
                took_out = ctx.get(dut.out.valid) and ctx.get(dut.out.ready)
                if took_out:
                    got.append(ctx.get(dut.out.payload))
                await ctx.tick()
                k += int(bool(took_in))
                if len(got) == n_out and not ctx.get(dut.busy):
                    break
            ctx.set(dut.inp.valid, 0)
            results.append((src, got))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results


LENGTHS = [1, 2, 7, 8, 9, 15, 16, 17, 63, 100, 4096]


@pytest.mark.parametrize("lane_in", range(8))
def test_aligner_every_lane_pair(lane_in):
    cases = [(lane_in, lane_out, length) for lane_out in range(8) for length in LENGTHS]
    for (li, lo, length), (src, got) in zip(cases, _run(cases, seed=lane_in)):
        exp = _expected(src, li, lo, length)
        assert len(got) == len(exp), f"lanes {li}->{lo}, {length} bytes: {len(got)} words, expected {len(exp)}"
        for k, (word, lanes) in enumerate(zip(got, exp)):
            for b, want in enumerate(lanes):
                if want is not None:
                    have = word >> (8 * b) & 0xFF
                    assert have == want, f"lanes {li}->{lo}, {length} bytes: word {k} lane {b}"
