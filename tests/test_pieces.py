"""rtl/cmd/pieces.py's PieceWalker in Amaranth's simulator, against the reference model's cuts.

Constrained-random descriptors are walked one after another with the
strobes in the sequencer's order (:mod:`siov.rtl.cmd.sequencer`): PREPARE,
CHECK, ORIENT, then per piece PIECE_LEN, PIECE_ADDR, PIECE_XLATE, a random
wait for the translations and the moves, the ``advance``, and the PIECE
cycle that tests ``last`` or stops on a COMPARE's first difference. Some
transfers end at a fault instead, after a piece's translation started;
SIGNALs take their one word in CHECK.

Sources and destinations sit near page boundaries, near 0 and just below
2**64 (pieces whose addresses wrap around, and MEMMOVEs whose source wraps,
which walk upwards); destinations inside, just past, at and below their
source, inside it but for the upper half of their distance, and
anywhere; sizes of single bytes, around a page, up to
``MAX_XFER``. Each piece must be the next of
:meth:`siov.sw.model.engine.Engine._pieces` (descending for a MEMMOVE whose
destination starts inside its source, as
:func:`siov.sw.model.engine.descending` says), with its word counts, byte
strobes and store-then-forward flag as plain byte arithmetic gives them, and
``p_lo`` the bytes moved before it; ``done`` ends at the size, at the stop's
byte count, or at the bytes of the pieces moved before a fault.
"""

import random
import types

import pytest

from siov.rtl.cmd.dsa import MAX_XFER
from siov.rtl.cmd.pieces import PieceWalker
from siov.sw.model.engine import Engine, descending
from siov.tb.amsim import simulate

PAGE = 4096
M64 = (1 << 64) - 1
GEOMETRY = ("p_src", "p_dst", "p_len", "p_lo", "words_s", "words_d", "last_k", "first_strb", "last_strb",
            "overlap")


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


def _case(rng):
    """One descriptor: its fields, and where its walk ends early (None: it does not)."""
    size = rng.choice([1, 7, 8, 9, 4095, 4096, 4097, 8193, rng.randrange(1, 3 * PAGE), rng.randrange(1, 3 * PAGE),
                       rng.randrange(1, MAX_XFER + 1)])
    where = rng.choice(["page", "page", "page", "low", "top"])
    if where == "top":                            # the transfer may wrap around 2**64
        src = (1 << 64) - rng.randrange(1, 3 * PAGE)
    elif where == "low":
        src = rng.randrange(3 * PAGE)
    else:
        src = rng.randrange(1 << 40) * PAGE + rng.choice([0, 1, 8, PAGE - 1, PAGE - 8, rng.randrange(PAGE)])
    kind = rng.choice(["inside", "inside", "below", "past", "same", "alias", "apart", "fill", "signal"])
    dst = {"inside": src + rng.randrange(1, size + 1), "below": src - rng.randrange(1, size + 1),
           "alias": src + (rng.choice([1, 2, rng.randrange(1, 1 << 32)]) << 32) + rng.randrange(1, size + 1),
           "past": src + size + rng.choice([0, 1]), "same": src,
           "apart": rng.choice([rng.randrange(1 << 64), rng.randrange(3 * PAGE), (1 << 64) - rng.randrange(1, PAGE)]),
           "fill": rng.randrange(1 << 64) & ~7, "signal": rng.randrange(1 << 64) & ~7}[kind] & M64
    ends = rng.choice([None, None, None, ("stop", 1), ("stop", rng.randrange(1, 4)), ("fault", rng.randrange(1, 4))])
    if size > 3 * PAGE and ends is None:
        ends = ("stop", rng.randrange(1, 4))      # a long walk is cut short: the pieces are alike
    return types.SimpleNamespace(src=src, dst=dst, size=size, move=int(kind not in ("fill", "signal")),
                                 fill=int(kind == "fill"), signal=kind == "signal", ends=ends,
                                 stop_at=rng.randrange(1 << 32))


def _edges():
    """Cases every seed walks: a MEMMOVE into its own source that wraps around 2**64 (so it
    walks up), one whose pieces wrap, and a downward one that stores and forwards."""
    top = 1 << 64
    return [types.SimpleNamespace(src=src, dst=dst, size=size, move=1, fill=0, signal=False, ends=None, stop_at=0)
            for src, dst, size in ((top - 100, top - 50, 300), (top - PAGE - 5, 3, 9000),
                                   (0x1000_0FF0, 0x1000_0FF8, 8200))]


def _walk(cases, rng):
    """Each case's direction, pieces, ``done``, ``last`` and SIGNAL geometry, from one simulation."""
    dut = PieceWalker()
    got = []

    async def bench(ctx):
        async def strobe(*names):
            for name in names:
                ctx.set(getattr(dut, name), 1)
            await ctx.tick()
            for name in names:
                ctx.set(getattr(dut, name), 0)

        for c in cases:
            for name in ("src", "dst", "size", "move", "fill", "stop_at"):
                ctx.set(getattr(dut, name), getattr(c, name))
            await strobe("prepare")
            await strobe("begin", "one_word") if c.signal else await strobe("begin")
            pieces, word = [], None
            if c.signal:
                word = (ctx.get(dut.words_d), ctx.get(dut.first_strb), ctx.get(dut.last_strb))
            else:
                await strobe("orient")
                while True:
                    for name in ("measure", "place", "shape"):
                        await strobe(name)
                    pieces.append({k: ctx.get(getattr(dut, k)) for k in GEOMETRY})
                    if c.ends == ("fault", len(pieces)):
                        break
                    await ctx.tick().repeat(rng.choice([1, 1, 2, 9]))   # XLATE, the moves
                    await strobe("advance")                       # now in PIECE
                    if c.ends == ("stop", len(pieces)):
                        await strobe("stop")
                        break
                    if ctx.get(dut.last) or len(pieces) > 2 * (c.size // PAGE + 2):
                        break                                     # (the second: a runaway walk)
                    await ctx.tick()
            got.append((ctx.get(dut.down), pieces, ctx.get(dut.done), ctx.get(dut.last), word))
            await ctx.tick().repeat(rng.randrange(1, 4))            # RECORD, IDLE

    simulate(dut, bench)
    return got


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pieces_match_the_model(seed):
    rng = random.Random(seed)
    cases = _edges() + [_case(rng) for _ in range(120)]
    seen = set()
    for c, (down, pieces, done, last, word) in zip(cases, _walk(cases, rng)):
        if c.signal:
            assert word == (1, 0xFF, 0xFF), vars(c)
            continue
        want_down, want = _expected(c.src, c.dst, c.size, c.move, c.fill)
        assert down == want_down, vars(c)
        how, count = c.ends or ("all", len(want))
        if count > len(want):                     # the walk ended first
            how, count = "all", len(want)
        assert pieces == want[:count], vars(c)
        if how == "stop":
            assert done == c.stop_at, vars(c)
        elif how == "fault":
            assert done == sum(p["p_len"] for p in want[:count - 1]), vars(c)
        else:
            assert (done, last) == (c.size, 1), vars(c)
        seen |= {how, "down" * want_down, "overlap" * any(p["overlap"] for p in pieces),
                 "wrapped" * any(p["p_src"] < c.src or p["p_dst"] < c.dst for p in pieces),
                 "wrapping source" * (c.move and c.src < c.dst and c.src + c.size > 1 << 64),
                 "crossing" * (len(pieces) > 1)}
    assert {"all", "stop", "fault", "down", "overlap", "wrapped", "wrapping source", "crossing"} <= seen, seen
