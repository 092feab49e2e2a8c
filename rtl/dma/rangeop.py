"""The DMA tracker's privileged range operations: a range of pages, walked one bitmap word at a time.

OP_START/OP_COUNT name the range, OP.CODE the operation (a
:class:`~.defs.RangeOp`: pin, forced unpin, lazy unpin of the
unmap-requested pages, clear unmap-requested) and OP.DOMAIN the domain;
OP.GO starts it unless one is running, the domain is out of range or the
range goes beyond the bitmap (STATUS.ERR). The bitmap engine
(:class:`~.engine.BitmapEngine`) works the range's words in order, each
with the mask of the range's pages in it, and steps to the next (``step``)
after each; STATUS.BUSY falls after the last.

The range's end and masks are computed ahead of OP.GO from the stored
registers, three register stages deep (GO is a later bus write than
OP_START and OP_COUNT, the bus makes one access at a time and the register
front end takes six cycles to answer one: GO's pulse comes at least six
cycles after theirs reached storage). One carry chain per stage.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .bram import chunk_equal
from .common import DOMAIN_BITS

__all__ = ["RangeOps"]


class RangeOps(wiring.Component):
    """A range operation's registers, its checks at GO, and its word-by-word walk.

    Attributes
    ----------
    start : In(32), count : In(32), code : In(2), domain : In(6)
        OP_START.PAGE, OP_COUNT.COUNT, OP.CODE and OP.DOMAIN (held in storage
        from before GO to the next bus write).
    go : In(1)
        OP.GO's pulse.
    step : In(1)
        The current word is done (a pulse): at least six cycles after GO's pulse,
        and three after the last step (the engine takes nine cycles a word).
    busy : Out(1), err : Out(1)
        STATUS.BUSY and STATUS.ERR (the last GO was refused).
    op_code : Out(2), op_domain : Out(6), word : Out(16)
        The running operation, its domain and its current word.
    mask : Out(32)
        The range's pages in the current word.
    """

    def __init__(self, params):
        self.params = params
        super().__init__({
            "start": In(32), "count": In(32), "code": In(2), "domain": In(DOMAIN_BITS), "go": In(1), "step": In(1),
            "busy": Out(1), "err": Out(1), "op_code": Out(2), "op_domain": Out(DOMAIN_BITS), "word": Out(16),
            "mask": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        start, count = self.start, self.count
        r_word = self.word
        r_last = Signal(16)
        r_is_first, r_is_last = Signal(), Signal()
        lo_mask, hi_mask = Signal(32), Signal(32)
        # The last page is end - 1 a stage after end, and what needs only its
        # low five bits (the last word's mask, whether the range fits one
        # word) is computed from 6-bit sums; the one-word test is its two
        # halves (high count bits zero, low sum at most 32) a stage before
        # their AND.
        end = Signal(33)
        last_page = Signal(32)
        # The last word's mask, bits 0..last_page % 32, is a thermometer of
        # end % 32 (all ones when it is 0), with no subtraction on the way,
        # decoded in two stages (a table of five bits per mask bit was mapped
        # by ABC into a ripple through the mask bits; compares with constants
        # became carry chains).
        end_bit = Signal(5)                   # end[:5]
        beyond, one_word, nonempty = Signal(), Signal(), Signal()
        ow_hi, ow_lo = Signal(), Signal()
        nz_bytes = Signal(-(-len(count) // 8))
        lo_pre, hi_pre = Signal(32, name="lo_pre"), Signal(32, name="hi_pre")
        eb_zero, eb_gt, eb_eq, eb_lo = Signal(), Signal(4), Signal(4), Signal(8)
        sb_gt, sb_eq, sb_le = Signal(3, name="sb_gt"), Signal(4, name="sb_eq"), Signal(7, name="sb_le")
        # end > P (a power of two, 2**kp): a bit above kp set, or bit kp and
        # one below it; by 4-bit slices ORed a stage later.
        kp = exact_log2(self.params.pages_per_domain)
        bey_hi = Signal(-(-(len(end) - kp - 1) // 4))
        bey_lo = Signal(-(-kp // 4))
        bey_at = Signal()
        m.d.sync += [bey_hi.eq(Cat(*(end[k:k + 4].any() for k in range(kp + 1, len(end), 4)))),
                     bey_lo.eq(Cat(*(end[k:min(k + 4, kp)].any() for k in range(0, kp, 4)))),
                     bey_at.eq(end[kp]), beyond.eq(bey_hi.any() | (bey_at & bey_lo.any()))]
        m.d.sync += [end.eq(start + count), last_page.eq(end - 1), end_bit.eq(start[:5] + count[:5]),
                     # start[:5] + count - 1 < 32, for a nonempty range
                     ow_hi.eq(count[6:] == 0), ow_lo.eq(count[:6] + start[:5] <= 32), one_word.eq(ow_hi & ow_lo),
                     # count != 0, by bytes, ORed a stage later
                     nz_bytes.eq(Cat(*(count[k:k + 8].any() for k in range(0, len(count), 8)))),
                     nonempty.eq(nz_bytes.any()),
                     # bit k: k >= start % 32, from the start's eighths and
                     # its place in the eighth, decoded a stage earlier, as
                     # for hi_pre below
                     sb_gt.eq(Cat(*(j > start[3:5] for j in range(1, 4)))),
                     sb_eq.eq(Cat(*(start[3:5] == j for j in range(4)))),
                     # (k % 8 = 7 is at or above any place: no compare that
                     # lint would flag as always true)
                     sb_le.eq(Cat(*(start[:3] <= i for i in range(7)))),
                     lo_pre.eq(Cat(*((sb_gt[k // 8 - 1] if k >= 8 else 0) |
                                     (sb_eq[k // 8] & (sb_le[k % 8] if k % 8 < 7 else 1))
                                     for k in range(32)))),
                     # bit k: k < end_bit (all ones for 0), from the end's
                     # eighths and its place in the eighth, decoded a stage
                     # earlier: one LUT of four flip-flops per bit
                     eb_zero.eq(end_bit == 0),
                     # (the top bit of each is 0: no compare with a
                     # constant that lint would flag as always false)
                     eb_gt.eq(Cat(*(end_bit[3:] > j for j in range(3)))),
                     eb_eq.eq(Cat(*(end_bit[3:] == j for j in range(4)))),
                     eb_lo.eq(Cat(*(end_bit[:3] > i for i in range(7)))),
                     hi_pre.eq(Cat(*(eb_zero | eb_gt[k // 8] | (eb_eq[k // 8] & eb_lo[k % 8]) for k in range(32))))]
        # GO is registered with its verdict (refused: busy, a domain out of
        # range, a range beyond the bitmap), and acted on a cycle later: the
        # strobe comes from the register bank, away from the op's state.
        # OP's fields stay in storage until the next bus write, cycles away.
        # The verdict is applied a cycle later still, as two flip-flops (taken
        # and refused): the op's registers load on one of them straight.
        busy = self.busy
        go, go_refused = Signal(name="go"), Signal(name="go_refused")
        go_take, go_refuse = Signal(name="go_take"), Signal(name="go_refuse")
        m.d.sync += [go.eq(self.go), go_refused.eq(busy | (self.domain >= self.params.num_domains) | beyond),
                     go_take.eq(go & ~go_refused), go_refuse.eq(go & go_refused)]
        with m.If(go_refuse):
            m.d.sync += self.err.eq(1)
        with m.If(go_take):
            m.d.sync += [self.err.eq(0), busy.eq(nonempty), self.op_code.eq(self.code),
                         self.op_domain.eq(self.domain), r_word.eq(start[5:]),
                         r_last.eq(last_page[5:]), r_is_first.eq(1), r_is_last.eq(one_word),
                         lo_mask.eq(lo_pre), hi_mask.eq(hi_pre)]
        # Whether r_word + 1 is the last word (r_word holds for a whole
        # step), tested as r_word == r_last - 1 (r_last holds for the whole
        # range op and its first word is answered cycles after GO): a compare
        # after the register of a subtraction, not after an adder in the
        # same cycle; by 3-bit chunks, ANDed a cycle later.
        r_next_last = Signal()
        r_last_m1 = Signal(17)
        r_nl_eq = chunk_equal(m, r_word, r_last_m1, "r_nl_eq")
        m.d.sync += [r_last_m1.eq(r_last - 1), r_next_last.eq(r_nl_eq.all())]
        m.d.comb += self.mask.eq(Mux(r_is_first, lo_mask, 0xFFFF_FFFF) & Mux(r_is_last, hi_mask, 0xFFFF_FFFF))
        with m.If(self.step):
            with m.If(r_is_last):
                m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += [r_word.eq(r_word + 1), r_is_first.eq(0), r_is_last.eq(r_next_last)]
        return m
