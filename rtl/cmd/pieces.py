"""The executor's piece walker: a transfer cut into page-bounded pieces.

Ref: Linux include/uapi/linux/idxd.h (``struct dsa_hw_desc``: source,
destination and ``xfer_size``); the cuts are those of the reference model,
:meth:`siov.sw.model.engine.Engine._pieces`.

A data-moving descriptor is moved in *pieces* that never cross a 4 KiB page
of the source or of the destination (only the destination, for MEMFILL), so
that one translation covers each side and no AXI burst crosses the 4 KiB
boundary. An overlapping MEMMOVE whose destination starts inside its source
walks its pieces from the top down.

The walker keeps the running pointers of the next piece and hands each
piece's geometry to the movers, all from registers: no 64-bit adder sits in
front of a comparison or of a mover's command. Its owner (the executor's
sequencer) steps it with one-cycle strobes, in this order::

    prepare, begin, orient, then per piece: measure, place, shape, advance

Each strobe's effect is visible in the cycle after it; ``measure`` needs the
pointers one cycle old (``orient`` or ``advance`` the cycle before at the
latest), as the sequencer's states guarantee.
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
        Strobe: the first piece's pointers and bytes to the page boundaries.
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
        page = 1 << PAGE_SHIFT
        down = self.down
        # Running pointers: the next piece's start (ascending) or end,
        # exclusive (descending); `rem` the bytes left.
        at_src, at_dst = Signal(64), Signal(64)
        rem = Signal(32)
        dst_end = Signal(64)
        gap = Signal(64)                          # dst - src
        # Bytes to the page boundary on each side, registered every cycle
        # (valid one cycle after the pointers move, when `measure` uses them).
        len_src, len_dst = Signal(LEN_BITS), Signal(LEN_BITS)

        def to_page_end(at):
            low = at[:PAGE_SHIFT]
            return Mux(down, Mux(low == 0, page, low), page - low)
        m.d.sync += [len_src.eq(to_page_end(at_src)), len_dst.eq(to_page_end(at_dst))]
        lim = Signal(LEN_BITS)
        plen = Signal(LEN_BITS)
        m.d.comb += [lim.eq(Mux(self.fill | (len_dst < len_src), len_dst, len_src)),
                     plen.eq(Mux((rem[LEN_BITS:] == 0) & (rem[:LEN_BITS] < lim), rem, lim)),
                     self.last.eq(rem == 0)]

        with m.If(self.prepare):
            m.d.sync += [self.src_end.eq(self.src + self.size), dst_end.eq(self.dst + self.size),
                         gap.eq(self.dst - self.src)]
        with m.If(self.begin):
            m.d.sync += [self.done.eq(0), rem.eq(self.size),
                         down.eq(self.move & (self.src < self.dst) & (self.dst < self.src_end))]
        with m.If(self.orient):
            # From the direction `begin` registered (its compares and these
            # muxes in one cycle were too long), with the bytes to the page
            # boundaries alongside, so that `measure` may follow at once.
            first_src = Mux(down, self.src_end, self.src)
            first_dst = Mux(down, dst_end, self.dst)
            m.d.sync += [at_src.eq(first_src), at_dst.eq(first_dst),
                         len_src.eq(to_page_end(first_src)), len_dst.eq(to_page_end(first_dst))]
        with m.If(self.measure):
            m.d.sync += [self.p_len.eq(plen), self.p_lo.eq(self.done)]
        with m.If(self.place):
            m.d.sync += [self.p_src.eq(Mux(down, at_src - self.p_len, at_src)),
                         self.p_dst.eq(Mux(down, at_dst - self.p_len, at_dst))]
        # Word counts and strobes, registered after p_src/p_dst/p_len are, so
        # no adder feeds the movers or the comparator.
        lane_s, lane_d, p_len = self.p_src[:3], self.p_dst[:3], self.p_len
        with m.If(self.shape):
            fs, ls = _strobes(lane_d, p_len)
            m.d.sync += [self.words_s.eq((lane_s + p_len + 7) >> 3),
                         self.words_d.eq((lane_d + p_len + 7) >> 3),
                         self.last_k.eq(((lane_d + p_len + 7) >> 3) - 1),
                         self.first_strb.eq(fs), self.last_strb.eq(ls),
                         self.overlap.eq(down & (gap[LEN_BITS:] == 0) & (gap[:LEN_BITS] < p_len))]
        with m.If(self.one_word):
            m.d.sync += [self.words_d.eq(1), self.first_strb.eq(0xFF), self.last_strb.eq(0xFF)]
        with m.If(self.advance):
            m.d.sync += [self.done.eq(self.done + p_len), rem.eq(rem - p_len),
                         at_src.eq(Mux(down, self.p_src, self.p_src + p_len)),
                         at_dst.eq(Mux(down, self.p_dst, self.p_dst + p_len))]
        with m.If(self.stop):
            m.d.sync += self.done.eq(self.stop_at)
        return m
