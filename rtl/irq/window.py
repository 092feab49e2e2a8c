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
* 5 (CTRL)   its decoded flag, and whether a CTRL write changes the owner
  (from OLD to CTRL, the pipeline takes no message before a CTRL read: see
  ``_pending``);
* 6 (WRITE)  a write is written into the table (``lane_en``, ``wdata``: the
  only message taken is one for the same entry, which reads the old row),
  and what a CTRL write does to PENDING is registered;
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
from .pipeline import CTRL_WORD, EFFECT_DELAY, MASK, PASID, PASID_EN, PENDING

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
    pend : In(1), pend_index : In(idx_bits), pend_index_next : In(idx_bits)
        The pipeline's effect stage makes entry ``pend_index`` pending; ``pend_index_next``
        is ``pend_index`` of the next cycle (so that comparisons with it are registered).
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
            "pend": In(1), "pend_index": In(ib), "pend_index_next": In(ib), "replay_level": In(7),
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
        n_diff = Signal(32)                   # the bits a write changes (but PENDING)
        n_write = Signal()                    # a write inside the table
        n_owner = Signal()                    # ... that changes PASID_EN or PASID (if CTRL)
        n_unmask = Signal()                   # ... of CTRL that leaves MASK clear, same owner
        n_clear = Signal()                    # ... of CTRL that clears PENDING
        # One step per phase: the new word, then its flag and owner, then what it does to PENDING.
        with m.If(at(_P_NEW)):
            m.d.sync += [n_word.eq(new_word), n_diff.eq((old_word ^ bus.wdata) & bytemask),
                         n_write.eq(bus.we & q_in_range)]
        with m.If(at(_P_CTRL)):
            m.d.sync += [
                n_flag.eq(Mux(q_word == 0, n_word[20:32] == 0xFEE, Mux(q_word == 1, n_word.any(), 0))),
                n_owner.eq(n_diff[PASID_EN] | n_diff[PASID].any()),
            ]
        with m.If(at(_P_WRITE)):
            m.d.sync += [n_unmask.eq(n_write & is_ctrl & ~n_word[MASK] & ~n_owner),
                         n_clear.eq(n_write & is_ctrl & (~n_word[MASK] | n_owner))]
        # An unmask pushes at most one replay, one to EFFECT_DELAY + 2 cycles
        # after its commit; no other access commits meanwhile. So room now,
        # counting the push still to come from the last commit, is room at
        # this access's push.
        owed = Signal(2)
        wait = bus.we & q_in_range & is_ctrl & (self.replay_level + owed >= self.replay_depth)
        start = Mux(bus.stb, 1, at(_P_WAIT)) & ~wait
        commit = Signal()
        m.d.comb += commit.eq(at(_P_COMMIT))
        # The pipeline takes no message while the port reads, nor in the
        # EFFECT_DELAY cycles from the one two cycles before the commit of a
        # CTRL read backwards (see _pending), and only one for the same entry
        # while it writes.
        ctrl_read = ~bus.we & q_in_range & is_ctrl & self.busy
        excl = start | (ctrl_read & (self._phase >= _P_COMMIT - 2 - EFFECT_DELAY) & (self._phase <= _P_COMMIT - 3))
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
        pend_start = self._pending(m, commit, n_unmask, n_clear, owed)
        m.d.comb += [
            bus.ack.eq(commit),
            bus.resp.eq(Mux(q_in_range, Resp.OKAY, Resp.DECERR)),
            bus.rdata.eq(Mux(commit & ~bus.we & q_in_range, old_word | Mux(is_ctrl, pend_start << PENDING, 0), 0)),
        ]
        return m

    def _pending(self, m, commit, n_unmask, n_clear, owed):
        """The pending bits, and the replays an unmask queues (``owed``: the push still
        to come from the last commit); returns PENDING of the access's entry at the
        start of the commit cycle."""
        n, ib, q_idx = self.entries, self.idx_bits, self.index
        pending = Signal(n, name="pending")
        # A message decided in cycle x (the cycle after its acceptance) has its
        # effect stage in x + EFFECT_DELAY; a pending interrupt sets its bit one
        # cycle later (registered first). PENDING of the addressed entry at the
        # start of the commit cycle: the bit k + 1 cycles earlier (read in k
        # steps, each a 4:1 choice, 8:1 beyond 1024 entries), plus the interrupts of the k + 1 effect
        # stages since (only a commit clears). That is every decision up to
        # the commit cycle's, as a read must see, because the pipeline takes no message in the
        # EFFECT_DELAY cycles up to two cycles before a CTRL read commits: no
        # decision of the EFFECT_DELAY cycles before the commit is still on its way.
        after = Signal(range(EFFECT_DELAY + 1))   # effect stages left of decisions before the last clearing commit
        after_idx = Signal(ib)
        after_unmask = Signal()               # ... which unmasked its entry and queued no replay yet
        s2_idx = self.pend_index
        # The pending interrupt's entry against the last clearing commit's, and the
        # access's (stable from its strobe on), compared a cycle ahead.
        is_after, is_here = Signal(), Signal()
        m.d.sync += [is_after.eq(self.pend_index_next == Mux(commit & n_clear, q_idx, after_idx)),
                     is_here.eq(self.pend_index_next == q_idx)]
        s2_cleared = (after != 0) & is_after
        s2_sets = self.pend & ~s2_cleared
        s2_hit = s2_sets & is_here
        bits, done, k = pending, 0, 0
        while done < ib:                      # bit q_idx[:done + lo] of each group of 2**(done + lo) bits
            lo = min(2 if ib <= 10 else 3, ib - done)
            step = Signal(len(bits) >> lo, name=f"pend_sel{k}")
            m.d.sync += [step[g].eq(bits[g << lo:(g + 1) << lo].bit_select(q_idx[done:done + lo], 1))
                         for g in range(len(step))]
            bits, done, k = step, done + lo, k + 1
        # The index is stable from the strobe on, and is_here from the cycle after.
        assert k + 1 < _P_COMMIT - _P_WAIT
        set_q = Signal(k + 1)                 # s2_hit of the last k + 1 cycles
        m.d.sync += set_q.eq(Cat(s2_hit, set_q[:k]))
        pend_start = Signal()
        m.d.comb += pend_start.eq(bits | set_q.any())
        unmask = commit & n_unmask
        pend_clear = commit & n_clear
        # An unmask queues one replay if the entry is pending: set before the
        # commit cycle (queued now), or set by an interrupt decided up to the
        # commit cycle, which read the entry before the write: the one in the
        # effect stage of the commit cycle or of the EFFECT_DELAY cycles after
        # it. Those are registered first (replay_hit), so that no check feeds
        # the queue directly.
        replay_now = unmask & pend_start
        replay_hit = Signal()
        m.d.sync += replay_hit.eq((unmask & ~pend_start & s2_hit) | (self.pend & s2_cleared & after_unmask))
        with m.If(pend_clear):
            m.d.sync += [after.eq(EFFECT_DELAY), after_idx.eq(q_idx),
                         after_unmask.eq(unmask & ~pend_start & ~s2_hit)]
        with m.Elif(after != 0):
            m.d.sync += after.eq(after - 1)
            with m.If(self.pend & s2_cleared):
                m.d.sync += after_unmask.eq(0)
        # At most one per unmask, and commits are at least eight cycles apart.
        # The push itself is registered.
        m.d.sync += [self.push.eq(replay_now | replay_hit), self.push_index.eq(Mux(commit, q_idx, after_idx))]
        m.d.comb += owed.eq(self.push + replay_hit + ((after != 0) & after_unmask))
        # Unmasking or a new owner clears the pending bit (one cycle after the
        # commit, registered first), over a set by an interrupt of an earlier
        # effect stage (registered in set_ev) or of the commit cycle's (dropped
        # here). Those of the EFFECT_DELAY cycles after cannot set it (s2_cleared).
        set_ev, clr_ev = Signal(), Signal()
        m.d.sync += [set_ev.eq(s2_sets & ~(pend_clear & is_here)), clr_ev.eq(pend_clear)]
        set_at, clr_at = _decoded(m, s2_idx, "set"), _decoded(m, q_idx, "clr")
        m.d.sync += pending.eq(Cat(*((pending[i] | (set_ev & set_at(i))) & ~(clr_ev & clr_at(i)) for i in range(n))))
        return pend_start


def _decoded(m, index, name):
    """``index`` registered as two one-hots, of its low and its high half: entry ``i``
    is selected by two flip-flops (``at(i)``), not by a comparison fanned out to every entry."""
    lo_bits = (len(index) + 1) // 2
    lo, hi = Signal(1 << lo_bits, name=f"{name}_lo"), Signal(1 << (len(index) - lo_bits), name=f"{name}_hi")
    m.d.sync += [lo.eq(Const(1, len(lo)) << index[:lo_bits]), hi.eq(Const(1, len(hi)) << index[lo_bits:])]
    return lambda i: lo[i % len(lo)] & hi[i // len(lo)]
