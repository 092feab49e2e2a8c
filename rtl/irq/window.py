"""The interrupt remapper's IMS window: register-bus access to the IMS table, and the pending bits.

Ref: Intel Scalable IOV spec (IMS), PCI MSI-X pending bit array semantics;
the window and the entry's fields are ``IRQ.IMS`` and ``IRQ.IMS.ENTRY`` of
``rtl/regs.rdl``. An access (the request is held on the bus until ``ack``),
from its strobe:

* 0 (WAIT)   a CTRL write waits here while the replay queue may be full
  (counting the replays the last commit may still push); from there on the
  access never waits;
* 1 (READ)   the row is read (the pipeline takes no message: the table has
  one port, ``port_csr`` and ``port_excl``);
* 2 (ROW)    the row comes out of the block RAM into ``raw``;
* 3 (OLD)    the addressed word is taken from ``raw``;
* 4 (NEW)    the new word is computed;
* 5 (CTRL)   and what a CTRL write does to PENDING;
* 6 (WRITE)  a write is written into the table (``lane_en``, ``wdata``: the
  only message taken is one for the same entry, which reads the old row);
* 7 (COMMIT) the access commits (``ack``).

A message is read at the end of its acceptance cycle, so writing the table
one cycle before the commit gives the ordering of the register map: a
message accepted in the commit cycle or later sees the new entry, an
earlier one the old entry. A read returns the state at the start of its
commit cycle; a write takes effect at its end.

The pending bits (the PENDING field of CTRL reads them) are set by the
pipeline's pending interrupts (``pend``, one cycle after their effect
stage) and cleared by a CTRL write that unmasks the entry or changes its
owner (PASID_EN, PASID); an unmask of a pending entry queues one replay
(``push``).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import regmap
from ..csr.bus import CsrSignature, Resp
from .ims import LANE, ROW
from .pipeline import CTRL_WORD, MASK, PASID, PASID_EN, PENDING

__all__ = ["ImsWindow", "PHASES"]

#: The phases of an IMS window access, counted from its strobe.
PHASES = ("wait", "read", "row", "old", "new", "ctrl", "write", "commit")
_P_WAIT, _P_READ, _P_ROW, _P_OLD, _P_NEW, _P_CTRL, _P_WRITE, _P_COMMIT = range(len(PHASES))


class ImsWindow(wiring.Component):
    """The ``IRQ.IMS`` window and the pending bits of ``entries`` entries.

    Attributes
    ----------
    bus : In(CsrSignature(15))
        The window (byte addresses: entry ``i``'s word ``w`` at ``16 i + 4 w``).
    raw : In(144)
        The table's row (:class:`~.ims.ImsTable`), two cycles after its address.
    index : Out(idx_bits)
        The entry of the access (the table's address while ``port_csr``).
    port_csr, port_excl : Out(1)
        The window uses the table's port this cycle; ... and the pipeline takes no message.
    lane_en : Out(4), wdata : Out(36)
        The table's write (lane and data).
    pend : In(1), pend_index : In(idx_bits)
        The pipeline's effect stage makes entry ``pend_index`` pending.
    replay_level : In(7)
        Entries in the replay queue.
    push : Out(1), push_index : Out(idx_bits)
        An entry to replay (an unmask of a pending entry).
    busy : Out(1)
        An access is between its strobe and its ``ack``.
    """

    def __init__(self, entries, *, replay_depth):
        self.entries = entries
        self.replay_depth = replay_depth
        self.idx_bits = ib = (entries - 1).bit_length()
        aw = max(2, (regmap.EXTERNALS["IRQ.IMS"].size - 1).bit_length())
        super().__init__({
            "bus": In(CsrSignature(aw)), "raw": In(ROW),
            "index": Out(ib), "port_csr": Out(1), "port_excl": Out(1), "lane_en": Out(4), "wdata": Out(LANE),
            "pend": In(1), "pend_index": In(ib), "replay_level": In(7),
            "push": Out(1), "push_index": Out(ib), "busy": Out(1),
        })
        self._phase = Signal(range(_P_COMMIT + 1), name="phase")

    def _at(self, p):
        return self.busy & (self._phase == p)

    def elaborate(self, platform):
        m = Module()
        ib, bus, at = self.idx_bits, self.bus, self._at
        q_word = bus.addr[2:4]
        q_in_range = bus.addr[4 + ib:] == 0 if 4 + ib < len(bus.addr) else Const(1)
        m.d.comb += self.index.eq(bus.addr[4:4 + ib])
        is_ctrl = q_word == CTRL_WORD
        old_word = Signal(32)
        with m.If(at(_P_OLD)):
            m.d.sync += old_word.eq(self.raw.word_select(q_word, LANE)[:32])
        bytemask = Cat(*(b.replicate(8) for b in bus.wstrb))
        new_word = Signal(32)
        m.d.comb += new_word.eq(((old_word & ~bytemask) | (bus.wdata & bytemask)) &
                                Mux(is_ctrl, Const(0xFFFF_FFFF ^ (1 << PENDING), 32), Const(0xFFFF_FFFF, 32)))
        n_word, n_flag = Signal(32), Signal()
        n_write = Signal()                    # a write inside the table
        n_owner = Signal()                    # ... that changes PASID_EN or PASID (if CTRL)
        n_unmask = Signal()                   # ... of CTRL that leaves MASK clear, same owner
        n_clear = Signal()                    # ... of CTRL that clears PENDING
        with m.If(at(_P_NEW)):
            m.d.sync += [
                n_word.eq(new_word),
                n_flag.eq(Mux(q_word == 0, new_word[20:32] == 0xFEE, Mux(q_word == 1, new_word.any(), 0))),
                n_write.eq(bus.we & q_in_range),
                n_owner.eq((old_word[PASID_EN] != new_word[PASID_EN]) | (old_word[PASID] != new_word[PASID])),
            ]
        with m.If(at(_P_CTRL)):
            m.d.sync += [n_unmask.eq(n_write & is_ctrl & ~n_word[MASK] & ~n_owner),
                         n_clear.eq(n_write & is_ctrl & (~n_word[MASK] | n_owner))]
        # An unmask pushes at most one replay, one to three cycles after its
        # commit; no other access commits meanwhile. So room now, counting
        # the pushes still to come from the last commit, is room at this
        # access's push.
        replay_1, replay_2, last_unmask = Signal(), Signal(), Signal()
        owed = self.push + replay_1 + replay_2 + last_unmask
        wait = bus.we & q_in_range & is_ctrl & (self.replay_level + owed >= self.replay_depth)
        start = Mux(bus.stb, 1, at(_P_WAIT)) & ~wait
        commit = Signal()
        m.d.comb += commit.eq(at(_P_COMMIT))
        # The pipeline takes no message while the port reads, nor two cycles
        # before the commit of a CTRL read (see _pending), and only one for
        # the same entry while it writes.
        ctrl_read = ~bus.we & q_in_range & is_ctrl
        excl = start | (at(_P_COMMIT - 3) & ctrl_read)
        m.d.sync += [self.port_csr.eq(excl | (at(_P_WRITE - 1) & n_write)), self.port_excl.eq(excl)]
        phase = self._phase
        with m.If(bus.stb):
            m.d.sync += [self.busy.eq(1), phase.eq(Mux(wait, _P_WAIT, _P_READ))]
        with m.Elif(commit):
            m.d.sync += self.busy.eq(0)
        with m.Elif(self.busy & ((phase != _P_WAIT) | ~wait)):
            m.d.sync += phase.eq(phase + 1)
        do_write = at(_P_WRITE) & n_write
        m.d.comb += [self.wdata.eq(Cat(n_word, n_flag)), self.lane_en.eq(Mux(do_write, Const(1, 4) << q_word, 0))]
        pend_start = self._pending(m, commit, n_unmask, n_clear, replay_1, replay_2, last_unmask)
        m.d.comb += [
            bus.ack.eq(commit),
            bus.resp.eq(Mux(q_in_range, Resp.OKAY, Resp.DECERR)),
            bus.rdata.eq(Mux(commit & ~bus.we & q_in_range, old_word | Mux(is_ctrl, pend_start << PENDING, 0), 0)),
        ]
        return m

    def _pending(self, m, commit, n_unmask, n_clear, replay_1, replay_2, last_unmask):
        """The pending bits, and the replays an unmask queues; returns PENDING of the
        access's entry at the start of the commit cycle."""
        n, ib, q_idx = self.entries, self.idx_bits, self.index
        pending = Signal(n, name="pending")
        # A pending interrupt sets its bit one cycle after its effect stage
        # (registered first). PENDING of the addressed entry at the start of
        # the commit cycle: the bit three cycles earlier (read in two steps),
        # plus the interrupts of the three effect stages since (only a commit
        # clears). The pipeline takes no message two cycles before a CTRL read
        # commits, so no interrupt is in the effect stage then.
        last_clear = Signal()                 # the write of the previous cycle cleared PENDING
        last_idx = Signal(ib)
        s2_idx = self.pend_index
        s2_cleared = last_clear & (last_idx == s2_idx)
        s2_sets = self.pend & ~s2_cleared
        s2_hit = s2_sets & (s2_idx == q_idx)
        lo = min(4, ib)
        pend_grp = Signal(n >> lo)            # bit q_idx[:lo] of each group of 2**lo bits
        m.d.sync += [pend_grp[g].eq(pending[g << lo:(g + 1) << lo].bit_select(q_idx[:lo], 1))
                     for g in range(n >> lo)]
        pend_q = Signal()
        set_q = Signal(3)                     # s2_hit of the last three cycles
        m.d.sync += [pend_q.eq(pend_grp.bit_select(q_idx[lo:], 1)), set_q.eq(Cat(s2_hit, set_q[:2]))]
        pend_start = Signal()
        m.d.comb += pend_start.eq(pend_q | set_q.any())
        unmask = commit & n_unmask
        pend_clear = commit & n_clear
        # An unmask queues one replay if the entry is pending: set before the
        # commit cycle (queued now), set by the interrupt in the effect stage
        # of the commit cycle (queued in the next cycle), or set by the one in
        # the effect stage of the next cycle, which had read the entry before
        # the write (queued two cycles after the commit). The two later cases
        # are registered first, so that no check feeds the queue directly.
        replay_now = unmask & pend_start
        last_replayed = Signal()              # ... and queued (or will queue) a replay
        m.d.sync += [
            replay_1.eq(unmask & ~pend_start & s2_hit),
            replay_2.eq(self.pend & s2_cleared & last_unmask & ~last_replayed),
            last_clear.eq(pend_clear), last_unmask.eq(unmask), last_idx.eq(q_idx),
            last_replayed.eq(unmask & (pend_start | s2_hit)),
        ]
        replay_idx = Signal(ib)               # entry of the last commit, for replay_1 and replay_2
        with m.If(commit):
            m.d.sync += replay_idx.eq(q_idx)
        # At most one of the three per unmask, and commits are at least eight
        # cycles apart. The push itself is registered.
        m.d.sync += [self.push.eq(replay_now | replay_1 | replay_2),
                     self.push_index.eq(Mux(commit, q_idx, replay_idx))]
        # Unmasking or a new owner clears the pending bit (one cycle after the
        # commit, registered first), over a set by an interrupt of an earlier
        # effect stage (registered in set_ev) or of the commit cycle's (dropped
        # here). The next one cannot set it (s2_cleared).
        set_ev, clr_ev = Signal(), Signal()
        set_idx, clr_idx = Signal(ib), Signal(ib)
        m.d.sync += [set_ev.eq(s2_sets & ~(pend_clear & (s2_idx == q_idx))), set_idx.eq(s2_idx),
                     clr_ev.eq(pend_clear), clr_idx.eq(q_idx)]
        set_mask, clr_mask = Signal(n), Signal(n)
        m.d.comb += [set_mask.eq(Mux(set_ev, Const(1, n) << set_idx, 0)),
                     clr_mask.eq(Mux(clr_ev, Const(1, n) << clr_idx, 0))]
        m.d.sync += pending.eq((pending | set_mask) & ~clr_mask)
        return pend_start
