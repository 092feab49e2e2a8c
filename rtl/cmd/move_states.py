"""The sequencer's data states: a piece's data moved or compared, and the movers' commands.

Ref: Linux include/uapi/linux/idxd.h (MEMMOVE, MEMFILL, COMPARE); the
outcomes are those of the reference model :class:`siov.sw.model.engine.Engine`
(an AXI error response is ``Status.HW_ERROR``, ``DSA_COMP_HW_ERR1``). Part of
the executor's sequencer (:mod:`.sequencer`), which owns the state machine and
enters these states when a piece's last page has been translated::

    MEMFILL, SIGNAL     MOVE_WAIT -> ADVANCE -> PIECE (SIGNAL: -> RECORD)
    MEMMOVE             [MOVE_STORE ->] MOVE_WAIT -> ADVANCE -> PIECE
    COMPARE             CMP_FILL -> CMP_READ -> CMP_WAIT -> CMP_SETTLE -> ADVANCE or PIECE

A MEMMOVE piece whose destination starts inside its source is stored and
forwarded (MOVE_STORE: read whole into the FIFO, then written); any other
streams with reads and writes overlapped. A COMPARE piece reads source 1
into the FIFO, aligned to source 2's lanes, then reads source 2 against it.
A piece ends only when its movers have finished (every R and B response in),
and an error response to any of its reads or writes then ends the
descriptor.

The movers' commands leave from registers: a state sets a mover's ``go`` (and
what its command is for), and the command is valid in the next cycle, when
the mover is idle and takes it. (A valid from the state and its conditions in
the same cycle reached the movers' command registers' enables through six
LUTs.) Until then the mover counts as busy.
"""

import types

from amaranth.hdl import Mux, Signal

from .dsa import Status
from .wsource import RECORD_WORDS, WriteSource

__all__ = ["MoveStates"]


class MoveStates:
    """The movers' commands and the states that move or compare a piece, for a :class:`~.sequencer.Sequencer`.

    Parameters
    ----------
    seq : Sequencer
        Its module, the descriptor's decodes, the executor's parts, and the
        registers these states set (``status``, ``result``, ``wsrc``).

    Attributes
    ----------
    h_src, h_dst : Signal(64)
        The host addresses of the reader's and the writer's next command,
        set by the sequencer's translations.
    rd_busy, al_busy, wr_busy : Value
        A mover has a command (from its ``go`` until it has finished).
    """

    def __init__(self, seq):
        self.seq = seq
        self.h_src, self.h_dst = Signal(64, name="h_src"), Signal(64, name="h_dst")    # host addresses, translated
        self.go = types.SimpleNamespace(**{name: Signal(name=name) for name in
                                           ("rd_go", "al_go", "wr_go", "rd_sem", "rd_cmp", "al_sem", "wr_record")})
        self.cmp_src_err = Signal()                    # COMPARE: the piece's source-1 read saw an error
        p, go = seq.parts, self.go
        self.rd_busy, self.al_busy, self.wr_busy = p.rd.busy | go.rd_go, p.al.busy | go.al_go, p.wr.busy | go.wr_go

    def commands(self):
        """The movers' commands, from the ``go`` registers and the piece's geometry."""
        m, walk, go = self.seq.m, self.seq.parts.walk, self.go
        rd, al, wr = self.seq.parts.rd, self.seq.parts.al, self.seq.parts.wr
        lane_s, lane_d = walk.p_src[:3], walk.p_dst[:3]
        m.d.sync += [go.rd_go.eq(0), go.al_go.eq(0), go.wr_go.eq(0)]
        m.d.comb += [
            rd.cmd.valid.eq(go.rd_go), al.cmd.valid.eq(go.al_go), wr.cmd.valid.eq(go.wr_go),
            # a piece's source, a WAIT's semaphore (1 word), or COMPARE's source 2
            rd.cmd.payload.addr.eq(Mux(go.rd_cmp, self.h_dst, self.h_src)),
            rd.cmd.payload.words.eq(Mux(go.rd_sem, 1, Mux(go.rd_cmp, walk.words_d, walk.words_s))),
            al.cmd.payload.lane_in.eq(Mux(go.al_sem, 0, lane_s)),
            al.cmd.payload.lane_out.eq(Mux(go.al_sem, 0, lane_d)),
            al.cmd.payload.words_in.eq(Mux(go.al_sem, 1, walk.words_s)),
            al.cmd.payload.words_out.eq(Mux(go.al_sem, 1, walk.words_d)),
            # a piece's destination or the completion record (4 whole words)
            wr.cmd.payload.addr.eq(self.h_dst),
            wr.cmd.payload.words.eq(Mux(go.wr_record, RECORD_WORDS, walk.words_d)),
            wr.cmd.payload.first_strb.eq(Mux(go.wr_record, 0xFF, walk.first_strb)),
            wr.cmd.payload.last_strb.eq(Mux(go.wr_record, 0xFF, walk.last_strb)),
        ]

    def issue(self, *movers, sem=False, cmp=False, record=False):
        """Set the ``go`` of ``movers`` ("rd", "al", "wr"): their commands are valid in the next cycle.

        ``sem``: WAIT's one word; ``cmp``: COMPARE's source 2; ``record``: the completion record.
        """
        m, go = self.seq.m, self.go
        if "rd" in movers:
            m.d.sync += [go.rd_go.eq(1), go.rd_sem.eq(sem), go.rd_cmp.eq(cmp)]
        if "al" in movers:
            m.d.sync += [go.al_go.eq(1), go.al_sem.eq(sem)]
        if "wr" in movers:
            m.d.sync += [go.wr_go.eq(1), go.wr_record.eq(record)]

    def start(self):
        """The piece's last translation is in: issue its movers (their commands are valid in the
        next cycle, with ``h_dst``)."""
        seq = self.seq
        m, d = seq.m, seq.d
        with m.If(d.is_fill | d.is_signal):
            m.d.sync += seq.wsrc.eq(WriteSource.PATTERN)
            self.issue("wr")
            m.next = "MOVE_WAIT"
        with m.Elif(d.is_cmp):
            # Phase 1: source 1 into the FIFO, aligned to source 2's lanes.
            self.issue("rd", "al")
            m.next = "CMP_FILL"
        with m.Else():
            m.d.sync += seq.wsrc.eq(WriteSource.FIFO)
            with m.If(seq.parts.walk.overlap):
                self.issue("rd", "al")
                m.next = "MOVE_STORE"
            with m.Else():
                self.issue("rd", "al", "wr")
                m.next = "MOVE_WAIT"

    def states(self):
        """Add the states, moving first, then comparing."""
        self._movement()
        self._comparison()

    def _movement(self):
        """MOVE_STORE, MOVE_WAIT, ADVANCE: a piece's data moved (stored first if it overlaps), then
        its responses' verdict, then the next piece."""
        seq = self.seq
        m, d, p = seq.m, seq.d, seq.parts
        with m.State("MOVE_STORE"):
            with m.If(~self.rd_busy & ~self.al_busy):
                self.issue("wr")
                m.next = "MOVE_WAIT"
        with m.State("MOVE_WAIT"):
            with m.If(~self.rd_busy & ~self.al_busy & ~self.wr_busy):
                # The piece is fully read and written: an error response on
                # either side ends the descriptor (MEMFILL issued no read,
                # so the reader's flag may be left from an earlier command).
                with m.If(p.wr.error | (p.rd.error & ~d.is_fill & ~d.is_signal)):
                    m.d.sync += [seq.status.eq(Status.HW_ERROR), seq.result.eq(d.is_move & p.walk.down)]
                    m.next = "RECORD"
                with m.Elif(d.is_signal):
                    m.next = "RECORD"
                with m.Else():
                    m.next = "ADVANCE"
        with m.State("ADVANCE"):
            m.d.comb += p.walk.advance.eq(1)
            m.next = "PIECE"

    def _comparison(self):
        """CMP_FILL to CMP_SETTLE: COMPARE's piece, source 1 into the FIFO, then source 2 read
        against it word by word."""
        seq = self.seq
        m, p, rd, cmp = seq.m, seq.parts, seq.parts.rd, seq.parts.cmp
        with m.State("CMP_FILL"):
            with m.If(~self.rd_busy & ~self.al_busy):
                # Source 2's read clears the reader's error flag: keep source 1's.
                m.d.comb += cmp.restart.eq(1)
                m.d.sync += [p.route_compare.eq(1), self.cmp_src_err.eq(rd.error)]
                m.next = "CMP_READ"
        with m.State("CMP_READ"):
            self.issue("rd", cmp=True)
            m.next = "CMP_WAIT"
        with m.State("CMP_WAIT"):
            with m.If(~self.rd_busy):
                m.next = "CMP_SETTLE"
        with m.State("CMP_SETTLE"):
            # One more cycle: the registered comparison of the last word lands.
            m.d.sync += p.route_compare.eq(0)
            with m.If(self.cmp_src_err | rd.error):
                # Both sources were read whole (the FIFO is empty again); an
                # error outranks any difference found in the piece.
                m.d.sync += seq.status.eq(Status.HW_ERROR)
                m.next = "RECORD"
            with m.Elif(cmp.pending | cmp.found):
                m.next = "PIECE"
            with m.Else():
                m.next = "ADVANCE"
