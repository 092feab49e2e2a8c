"""The DMA tracker's dirty log: the dirty bitmap and its read-modify-write.

Every write request let through sets its page's dirty bit; a harvest read
(rtl/dma/tracker.py) reads a word and clears it unless NO_CLEAR. Both ride
the request pipeline, one word per cycle: the word's address is given in
stage M (when the block RAM takes it), the bit (or the clear) in stage T,
and whether to set it in stage S, where the word is written back. The
harvest reads the word as it stands in S (:attr:`DirtyLog.word`).

The bitmap is a simple dual-port block RAM (:class:`~.bram.BitmapRam`, read
latency 2, its write port registered): the read of stage M cannot see the
writes S makes in the following cycles (that of M itself included: the
block RAM's read-during-write result is never used), so the last writes
are kept and forwarded: the writes of M and O into R, the write of R into
T, the write of T into S, and the registered write landing in the RAM into
T (address matches are computed a stage ahead). Back-to-back writes to one
word neither stall nor lose a bit.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .bram import BitmapRam, chunk_equal

__all__ = ["DirtyLog"]


class DirtyLog(wiring.Component):
    """The dirty bitmap of every domain (``depth`` words), set and cleared one word per cycle.

    Parameters
    ----------
    depth : int
        Words of the bitmap (domains times words per domain).
    primitive : None or "ecp5"
        How the block RAM is built (:class:`~.bram.BitmapRam`).

    Attributes
    ----------
    addr : In(aw)
        Stage M: the word of this slot (read now, written in S).
    bit : In(32), clear : In(1)
        Stage T: the bit to set (one-hot, used if ``set`` in S), or clear the word.
    set : In(1), clear_now : In(1)
        Stage S: set the bit given in T; the word is cleared (the ``clear`` of T, a cycle on).
    word : Out(32)
        Stage S: the word as it stands before this slot's write (every earlier write forwarded).
    write_addr : Out(aw)
        Stage S: the word's address (the write port's).
    ram : BitmapRam
        The block RAM (a formal harness may add read ports to its ``mem``).
    """

    def __init__(self, depth, *, primitive=None):
        self.depth = depth
        self.aw = aw = max(1, ceil_log2(depth))
        # The write port is registered: its write data is made by the request
        # pipeline's last stage, which the placer puts far from the block RAM.
        # The word of a read that meets the registered write landing is
        # substituted in stage T, a stage after the block RAM's output meets
        # the forwarding mux.
        self.ram = BitmapRam(depth, transparent=(False,), write_reg=True, bypass_landing=False,
                             primitive=primitive, name="ram_dirty")
        super().__init__({
            "addr": In(aw), "bit": In(32), "clear": In(1), "set": In(1), "clear_now": In(1),
            "word": Out(32), "write_addr": Out(aw),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = rd = wp = self.ram
        aw = self.aw
        m_addr, s_addr = self.addr, self.write_addr
        m.d.comb += rd.r_addr.eq(m_addr)
        # The writes of stage S, kept for forwarding: w[0] made in the
        # previous cycle, w[1] the one before.
        w_v = [Signal(name="w1_v"), Signal(name="w2_v")]
        w_d = [Signal(32, name="w1_d"), Signal(32, name="w2_d")]
        m.d.sync += [w_v[0].eq(wp.w_en), w_d[0].eq(wp.w_data), w_v[1].eq(w_v[0]), w_d[1].eq(w_d[0])]
        # O: the word S writes in M is compared by 3-bit chunks here and
        # combined in R (the address sits by the block RAM's pins, far from
        # the rest of the pipeline).
        o_addr = Signal(aw, name="o_addr")
        o_eq2 = chunk_equal(m, m_addr, s_addr, "o_eq2")
        m.d.sync += o_addr.eq(m_addr)
        # R: the word arrives; the writes S made in M and O are merged.
        r_addr = Signal(aw, name="r_addr")
        r_eq1, r_eq2 = Signal(name="r_eq1"), Signal(name="r_eq2")
        m.d.sync += [r_addr.eq(o_addr), r_eq1.eq(o_addr == s_addr), r_eq2.eq(o_eq2.all())]
        r_dw = Signal(32)
        r_fwd = Signal()
        m.d.comb += [r_fwd.eq((r_eq1 & w_v[0]) | (r_eq2 & w_v[1])),
                     r_dw.eq(Mux(r_eq1 & w_v[0], w_d[0], Mux(r_eq2 & w_v[1], w_d[1], rd.r_data)))]
        # T: S's write of R is merged, and the block RAM's landing write
        # (older than those forwarded in R).
        t_addr = Signal(aw, name="t_addr")
        t_dw = Signal(32, name="t_dw")
        t_eq1 = Signal(name="t_eq1")
        t_land, t_land_dw = Signal(name="t_land"), Signal(32, name="t_land_dw")
        m.d.sync += [t_land.eq(rd.landing_hits[0] & ~r_fwd), t_land_dw.eq(rd.landing_words[0]),
                     t_addr.eq(r_addr), t_dw.eq(r_dw), t_eq1.eq(r_addr == s_addr)]
        # S: forwarding S's write into the word T moves to S: decided in T,
        # with the harvest's clear folded in, so that the write data is one
        # LUT (a 5-input AND-OR) from flip-flops. T's word is S's: compared a
        # stage early, between R and T (the pipeline never stalls), so only
        # S's write enable is left in the cycle that decides the forwarding.
        s_fwd = Signal(name="s_fwd")                # take the word S wrote last cycle
        s_take_w, s_take_dw = Signal(name="s_take_w"), Signal(name="s_take_dw")
        s_setbit, s_dw = Signal(32, name="s_setbit"), Signal(32, name="s_dw")
        t_eq_s = Signal(name="t_eq_s")
        m.d.sync += t_eq_s.eq(r_addr == t_addr)
        t_fwd = Signal()
        m.d.comb += t_fwd.eq(t_eq_s & wp.w_en)
        m.d.sync += [s_fwd.eq(t_fwd), s_take_w.eq(t_fwd & ~self.clear), s_take_dw.eq(~t_fwd & ~self.clear),
                     s_addr.eq(t_addr), s_setbit.eq(Mux(self.clear, 0, self.bit)),
                     s_dw.eq(Mux(t_eq1 & w_v[0], w_d[0], Mux(t_land, t_land_dw, t_dw)))]
        # The word misses the write S made in the previous cycle (while this
        # one was in T): forwarded here.
        m.d.comb += [self.word.eq(Mux(s_fwd, w_d[0], s_dw)),
                     wp.w_en.eq(self.set | self.clear_now), wp.w_addr.eq(s_addr),
                     # = Mux(clear_now, 0, word | s_setbit): the clear is in
                     # the selects and s_setbit
                     wp.w_data.eq((w_d[0] & s_take_w.replicate(32)) | (s_dw & s_take_dw.replicate(32)) | s_setbit)]
        return m
