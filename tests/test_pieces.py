"""rtl/cmd/pieces.py's PieceWalker in Amaranth's simulator, against the reference model's cuts.

Random transfers (sources and destinations near page boundaries, overlapping
MEMMOVEs in both directions, MEMFILLs, sizes up to 3 pages and single bytes)
are walked with the strobes in the executor's order. Each piece must be the
next of :meth:`siov.sw.model.engine.Engine._pieces` (descending for a
MEMMOVE whose destination starts inside its source, as
:func:`siov.sw.model.engine.descending` says), with its word counts, byte
strobes and store-then-forward flag as plain byte arithmetic gives them, and
``p_lo`` the bytes moved before it. A stop mid-transfer leaves its byte count.
"""

import random
import types

import pytest

from siov.rtl.cmd.pieces import PieceWalker
from siov.sw.model.engine import Engine, descending
from siov.tb.amsim import simulate

PAGE = 4096
M64 = (1 << 64) - 1


def _expected(src, dst, size, move, fill):
    down = move and descending(types.SimpleNamespace(src_addr=src, dst_addr=dst, xfer_size=size))
    spans = Engine._pieces([dst] if fill else [src, dst], size, descending=down)
    out = []
    done = 0                  # bytes moved before the piece, in walking order
    for lo, hi in spans:
        n = hi - lo
        ps, pd = (src + lo) & M64, (dst + lo) & M64
        ls, ld = ps % 8, pd % 8
        last_lane = (ld + n - 1) % 8
        out.append({"p_src": ps, "p_dst": pd, "p_len": n, "p_lo": done,
                    "words_s": (ls + n + 7) // 8, "words_d": (ld + n + 7) // 8,
                    "last_k": (ld + n + 7) // 8 - 1,
                    "first_strb": (0xFF << ld) & 0xFF, "last_strb": 0xFF >> (7 - last_lane),
                    "overlap": int(down and 0 <= (dst - src) < n)})
        done += n
    return down, out


def _walk(cases):
    dut = PieceWalker()
    got = []

    async def bench(ctx):
        async def strobe(name, value=1):
            ctx.set(getattr(dut, name), value)
            await ctx.tick()
            ctx.set(getattr(dut, name), 0)

        for src, dst, size, move, fill, stop_after in cases:
            ctx.set(dut.src, src)
            ctx.set(dut.dst, dst)
            ctx.set(dut.size, size)
            ctx.set(dut.move, move)
            ctx.set(dut.fill, fill)
            for name in ("prepare", "begin", "orient"):
                await strobe(name)
            pieces = []
            while not ctx.get(dut.last):
                if len(pieces) == stop_after:
                    ctx.set(dut.stop_at, 12345)
                    await strobe("stop")
                    break
                for name in ("measure", "place", "shape"):
                    await strobe(name)
                pieces.append({k: ctx.get(getattr(dut, k)) for k in
                               ("p_src", "p_dst", "p_len", "p_lo", "words_s", "words_d", "last_k",
                                "first_strb", "last_strb", "overlap")})
                await strobe("advance")
                await ctx.tick()          # the sequencer's PIECE state: `last` is tested
            got.append((ctx.get(dut.down), pieces, ctx.get(dut.done)))

    simulate(dut, bench)
    return got


def _cases(seed, count=60):
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        size = rng.choice([1, 7, 8, 9, 4095, 4096, 4097, rng.randrange(1, 3 * PAGE)])
        src = rng.randrange(1 << 20) * PAGE + rng.choice([0, 1, PAGE - 1, rng.randrange(PAGE)])
        kind = rng.choice(["apart", "up", "down", "fill"])
        if kind == "apart":
            dst = rng.randrange(1 << 20) * PAGE + rng.randrange(PAGE)
        elif kind == "up":
            dst = src + rng.randrange(1, size + 1)
        else:
            dst = max(0, src - rng.randrange(1, size + 1))
        fill = kind == "fill"
        stop_after = rng.choice([None, None, None, 0, 1])
        cases.append((src, dst, size, int(not fill), int(fill), stop_after))
    return cases


@pytest.mark.parametrize("seed", [1, 2])
def test_pieces_match_the_model(seed):
    cases = _cases(seed)
    results = _walk(cases)
    downs = 0
    for (src, dst, size, move, fill, stop_after), (down, pieces, done) in zip(cases, results):
        want_down, want = _expected(src, dst, size, move, fill)
        assert down == want_down, (src, dst, size)
        downs += down
        if stop_after is not None and stop_after < len(want):
            assert pieces == want[:stop_after] and done == 12345, (src, dst, size)
        else:
            assert pieces == want, (src, dst, size)
            assert done == size
    assert downs, "no descending transfer drawn"
    assert any(p["overlap"] for _, pieces, _ in results for p in pieces), "no store-and-forward piece drawn"
