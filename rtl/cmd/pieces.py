"""The executor's piece walker: a transfer cut into page-bounded pieces.

Ref: Linux include/uapi/linux/idxd.h (``struct dsa_hw_desc``: source,
destination and ``xfer_size``); the cuts are those of the reference model,
:meth:`siov.sw.model.engine.Engine._pieces`.

A data-moving descriptor is moved in *pieces* that never cross a 4 KiB page
of the source or of the destination (only the destination, for MEMFILL), so
that one translation covers each side and no AXI burst crosses the 4 KiB
boundary. An overlapping MEMMOVE whose destination starts inside its source
walks its pieces from the top down.

The walker keeps where the next piece lies in the transfer (``done``
bytes below it walking up, ``rem`` bytes left up to its end walking down)
and hands each piece's geometry to the movers, all from registers: no 64-bit
adder sits in front of a comparison or of a mover's command. Its owner (the
executor's sequencer) steps it with one-cycle strobes, in this order::

    prepare, begin, orient, then per piece: measure, place, shape, advance

Each strobe's effect is visible in the cycle after it; ``measure`` needs
``begin`` or ``advance`` one cycle old at the latest (the bytes to the page
boundaries are registered from them), as the sequencer's states guarantee.

A piece's addresses are the transfer's start plus its offset, one adder per
side (``place``); its length is the bytes to the nearer page boundary,
measured from the low 12 bits of those sums, or the bytes left if fewer.
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..dma.defs import PAGE_SHIFT
from .mover import COUNT_BITS

__all__ = ["PieceWalker", "LEN_BITS"]

#: Width of a piece's length: at most one page, 4096 bytes.
LEN_BITS = PAGE_SHIFT + 1


def _strobes(lane_first, length):
    """(first-word strobes, last-word strobes) for ``length`` bytes starting in ``lane_first``."""
    last_lane = (lane_first + length - 1)[:3]
    return (Const(0xFF, 8) << lane_first)[:8], (Const(0xFF, 8) >> (~last_lane)[:3])[:8]


class PieceWalker(wiring.Component):
    """Page-bounded pieces of one transfer, one at a time.

    Attributes
    ----------
    src, dst : In(64)
        The descriptor's source and destination addresses (held for the whole descriptor).
    size : In(32)
        Its transfer size.
    move : In(1)
        The descriptor is a MEMMOVE (the only one that may walk downwards).
    fill : In(1)
        Only the destination bounds a piece (MEMFILL).
    prepare : In(1)
        Strobe: register the transfer's ends and the destination's distance from the source.
    begin : In(1)
        Strobe: start the transfer: every byte left, none done, the direction decided.
    orient : In(1)
        Strobe: the first piece comes next. The walker needs nothing then
        (``begin`` has set what ``measure`` uses); the sequencer's ORIENT
        state keeps the cycle.
    measure : In(1)
        Strobe: the piece's length (``p_len``) and offset in the transfer (``p_lo``).
    place : In(1)
        Strobe: the piece's addresses (``p_src``, ``p_dst``).
    shape : In(1)
        Strobe: the piece's word counts, strobes and overlap flag.
    one_word : In(1)
        Strobe: instead of ``shape``, one whole destination word (SIGNAL).
    advance : In(1)
        Strobe: the piece is done; step past it.
    stop : In(1), stop_at : In(32)
        Strobe: end the transfer with ``stop_at`` bytes done (a COMPARE's first difference).
    src_end : Out(64)
        ``src + size``, registered by ``prepare``.
    down : Out(1)
        The transfer walks downwards (an overlapping MEMMOVE, destination above the source).
    last : Out(1)
        No byte is left.
    p_src, p_dst : Out(64), p_len : Out(LEN_BITS), p_lo : Out(32)
        The current piece.
    words_s, words_d : Out(COUNT_BITS)
        Bus words covering the piece's source and destination bytes.
    last_k : Out(COUNT_BITS)
        Index of the destination's last word (``words_d - 1``).
    first_strb, last_strb : Out(8)
        Byte strobes of the destination's first and last words.
    overlap : Out(1)
        The destination starts inside the piece's source: store, then forward.
    done : Out(32)
        Bytes completed before the current piece (or ``stop_at`` after ``stop``).
    """

    def __init__(self):
        super().__init__({
            "src": In(64), "dst": In(64), "size": In(32), "move": In(1), "fill": In(1),
            "prepare": In(1), "begin": In(1), "orient": In(1), "measure": In(1), "place": In(1),
            "shape": In(1), "one_word": In(1), "advance": In(1), "stop": In(1), "stop_at": In(32),
            "src_end": Out(64), "down": Out(1), "last": Out(1),
            "p_src": Out(64), "p_dst": Out(64), "p_len": Out(LEN_BITS), "p_lo": Out(32),
            "words_s": Out(COUNT_BITS), "words_d": Out(COUNT_BITS), "last_k": Out(COUNT_BITS),
            "first_strb": Out(8), "last_strb": Out(8), "overlap": Out(1), "done": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        done, rem = self.done, Signal(32)
        gap = self._direction(m, rem)
        left = self._measure(m, rem)
        m.d.comb += self.last.eq(rem == 0)
        with m.If(self.place):
            offset = Mux(self.down, left, done)
            m.d.sync += [self.p_src.eq(self.src + offset), self.p_dst.eq(self.dst + offset)]
        with m.If(self.advance):
            m.d.sync += [done.eq(done + self.p_len), rem.eq(left)]
        with m.If(self.stop):
            m.d.sync += done.eq(self.stop_at)
        self._shape(m, gap)
        return m

    def _direction(self, m, rem):
        """`prepare` and `begin`: the source's end, the destination's distance from the source,
        and the direction; returns the low half of dst - src.

        src < dst < src_end when dst - src is neither zero nor the size or
        more and src + size does not wrap around 2**64 (then src_end is below
        both). Such a gap is below 2**32: only its low half is kept, for
        `begin` and for `shape`'s overlap, with whether bits 32 to 63 are
        zero. The borrow is not needed: with dst below src, dst - src is at
        least the size unless src + size wraps.
        """
        gap = Signal(32)                          # dst - src, low half
        near = Signal()                           # src + size does not wrap; dst - src < 2**32
        with m.If(self.prepare):
            end, diff = self.src + self.size, self.dst - self.src
            m.d.sync += [self.src_end.eq(end), gap.eq(diff),
                         near.eq(~end[64] & (diff[32:64] == 0))]
        with m.If(self.begin):
            m.d.sync += [self.done.eq(0), rem.eq(self.size),
                         self.down.eq(self.move & near & (gap != 0) & (gap < self.size))]
        return gap

    def _measure(self, m, rem):
        """`measure`: the piece's length and offset; returns the bytes left after it.

        The next piece starts `done` bytes into the transfer (walking up) or
        ends `rem` bytes into it (walking down). The bytes from there to the
        page boundary on each side are registered every cycle. The piece is
        the smaller of them (the destination's, for MEMFILL), or the `rem`
        left if fewer (`rem - lim` borrows); the bytes left after it are
        registered with it: where a downward piece starts, and `rem` once it
        is done.
        """
        page, down = 1 << PAGE_SHIFT, self.down
        edge = Mux(down, rem, self.done)[:PAGE_SHIFT]
        to_end = []
        for start in (self.src, self.dst):
            low, length = Signal(PAGE_SHIFT), Signal(LEN_BITS)
            m.d.comb += low.eq(start[:PAGE_SHIFT] + edge)
            m.d.sync += length.eq(Mux(down, Mux(low == 0, page, low), page - low))
            to_end.append(length)
        len_src, len_dst = to_end
        lim = Mux(self.fill | (len_dst < len_src), len_dst, len_src)
        after = Signal(32)
        final = Signal()                          # the piece takes every byte left
        short = rem - lim
        with m.If(self.measure):
            m.d.sync += [self.p_len.eq(Mux(short[32], rem, lim)), self.p_lo.eq(self.done),
                         after.eq(short), final.eq(short[32])]
        return Mux(final, 0, after)

    def _shape(self, m, gap):
        """`shape` (or `one_word`): word counts and strobes, registered after p_src/p_dst/p_len
        are, so no adder feeds the movers or the comparator."""
        lane_s, lane_d, p_len = self.p_src[:3], self.p_dst[:3], self.p_len
        with m.If(self.shape):
            fs, ls = _strobes(lane_d, p_len)
            m.d.sync += [self.words_s.eq((lane_s + p_len + 7) >> 3),
                         self.words_d.eq((lane_d + p_len + 7) >> 3),
                         self.last_k.eq(((lane_d + p_len + 7) >> 3) - 1),
                         self.first_strb.eq(fs), self.last_strb.eq(ls),
                         self.overlap.eq(self.down & (gap[LEN_BITS:] == 0) & (gap[:LEN_BITS] < p_len))]
        with m.If(self.one_word):
            m.d.sync += [self.words_d.eq(1), self.first_strb.eq(0xFF), self.last_strb.eq(0xFF)]
