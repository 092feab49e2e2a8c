"""Fault queue with a quota per source and a count of lost faults per source.

Ref: Intel VT-d, primary fault logging (fault records, the primary fault
overflow flag PFO). VT-d queues faults first come, first served and leaves
the rest to software; then one source that faults without pause fills the
queue, and another's one fault is lost, counted only in a total that names
nobody. Here every record belongs to a *source* (the DMA tracker's: the
requester's domain), and:

* a source holds at most ``quota`` records in the queue at once: a fault of
  a source at its quota is not queued, and neither is any fault while the
  queue is full. So a source below its quota loses a fault only when the
  queue is full, which takes at least ``ceil(depth / quota)`` sources
  holding records at once: fewer sources than that, however many faults
  they raise, cannot crowd out another's;
* a fault that is not queued is counted twice: in the total
  (``ovf_count``, saturating, with the sticky ``overflow`` flag, cleared
  together by ``clear_overflow``), and in its source's lost count
  (saturating), read through the ``lost`` window: word ``s`` is source
  ``s``'s count, and a read returns it and clears it in one cycle, so a
  fault lost in that cycle is in the next read's count and none is missed.

Timing (cycle by cycle, for testbenches and models): a record offered on
``push`` in cycle ``c`` is registered and decided in ``c + L`` (``L`` =
``stages``, 1 or 2) against the queue as it stood at the start of ``c + L``
(the records taken up to ``c + L - 1``, less those popped up to then; a pop
in ``c + L`` itself does not make room for it); taken into an empty queue,
it is at the head in ``c + L + 1``. A fault not queued in ``c + L`` is
counted in ``c + L + 1`` (``ovf_count`` and the lost count hold it from
``c + L + 2``). With one stage a ``head.ready`` in cycle ``p`` pops the head
at the end of ``p``; with two, ``head.ready`` is registered and pops it at
the end of ``p + 1`` (a ``head.ready`` in that cycle is ignored), and the
verdict on the quota is made a cycle ahead, into a flip-flop, from the
counts as that cycle's decision and pop leave them (the decision is the
same): the queue's pointers and flags then hang off flip-flops and a LUT,
and the verdict off the first stage's source flags (an AND-OR by its
one-hot) and flip-flops set from the push's source, not off the decision
and the POP through a term per source. ``popped`` is high in the cycle a record leaves. A ``lost`` read whose strobe comes in cycle
``r`` takes the count as it stands in ``r + 1`` and clears it at the end of
that cycle; it answers in ``r + 3``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .csr.bus import CsrSignature, Resp
from .stream import BypassFifo, and_or_by_fours

__all__ = ["FaultQueue", "default_quota", "LOST_WIDTH", "OVF_WIDTH"]

#: Width of a source's lost-fault count, saturating. Sixteen bits: a count is
#: read (and cleared) by each poll of the hypervisor, and a source that loses
#: more than 65,535 faults between two polls is reported as having lost at
#: least that many; the table costs half the area of 32-bit counts.
LOST_WIDTH = 16
#: Width of ``ovf_count`` (every source's losses together), saturating.
OVF_WIDTH = 32


def default_quota(depth):
    """The quota a queue of ``depth`` records is built with unless told: a quarter of it, at least 1."""
    return max(1, depth // 4)


class FaultQueue(wiring.Component):
    """Fault records in order of arrival, at most ``quota`` per source.

    Parameters
    ----------
    width : int
        Bits of a record.
    depth : int
        Records the queue holds, 2..255.
    sources : int
        Sources (quota classes), 1..128. A record's source must be below it.
    quota : int or None
        Records one source may hold at once, 1..``depth``
        (default :func:`default_quota`); ``depth`` is a queue with no quota.
    lost_addr_width : int
        Byte address width of the ``lost`` window (at least enough for one
        word per source).
    stages : int
        Cycles from ``push`` to the decision, 1 or 2 (see the module's timing).

    Attributes
    ----------
    push : In(stream.Signature(layout, always_ready=True))
        A fault: ``record`` and ``source``. Always taken: queued or counted.
    head : Out(stream.Signature(layout))
        The oldest record and its source; ``ready`` pops it.
    level : Out
        Records held.
    overflow : Out(1)
        Sticky: a fault was not queued.
    ovf_count : Out(32)
        Faults not queued (saturating at 2**32 - 1).
    clear_overflow : In(1)
        Clears ``overflow`` and ``ovf_count`` (wins over a count in that cycle).
    lost : In(CsrSignature(lost_addr_width))
        Word ``s``: source ``s``'s lost faults (saturating at 2**16 - 1), read
        and cleared (writes answer SLVERR, words of no source DECERR).

    Raises
    ------
    ValueError
        If a parameter is out of range.
    """

    def __init__(self, *, width, depth, sources, quota=None, lost_addr_width=None, stages=1):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"Record width must be a positive integer, not {width!r}")
        if not isinstance(depth, int) or not 2 <= depth <= 255:
            raise ValueError(f"Fault queue depth must be an integer between 2 and 255, not {depth!r}")
        if not isinstance(sources, int) or not 1 <= sources <= 128:
            raise ValueError(f"Number of fault sources must be an integer between 1 and 128, not {sources!r}")
        if quota is None:
            quota = default_quota(depth)
        if not isinstance(quota, int) or not 1 <= quota <= depth:
            raise ValueError(f"Fault quota must be an integer between 1 and the depth {depth}, not {quota!r}")
        if stages not in (1, 2):
            raise ValueError(f"Fault queue stages must be 1 or 2, not {stages!r}")
        need = ceil_log2(sources) + 2
        if lost_addr_width is None:
            lost_addr_width = max(2, need)
        if not isinstance(lost_addr_width, int) or lost_addr_width < need:
            raise ValueError(f"The lost window needs an address width of at least {need} for {sources} "
                             f"sources, not {lost_addr_width!r}")
        self.width, self.depth, self.sources, self.quota, self.stages = width, depth, sources, quota, stages
        self.layout = data.StructLayout({"record": width, "source": unsigned(max(1, ceil_log2(sources)))})
        super().__init__({
            "push": In(stream.Signature(self.layout, always_ready=True)),
            "head": Out(stream.Signature(self.layout)),
            "level": Out(range(depth + 1)),
            "overflow": Out(1),
            "ovf_count": Out(OVF_WIDTH),
            "clear_overflow": In(1),
            "lost": In(CsrSignature(lost_addr_width)),
        })
        # With two stages each word carries its source one-hot as well, so
        # that a pop's source is a flip-flop, not a decoder, ahead of the
        # next verdict.
        self._word_width = self.layout.size + (sources if stages == 2 else 0)
        self.fifo = BypassFifo(width=self._word_width, depth=depth, keep=True)
        S = sources
        #: Records each source holds, and whether it holds ``quota`` (a flip-flop each).
        self._occ = [Signal(range(quota + 1), name=f"occ{s}") for s in range(S)]
        self._at_quota = Signal(S, name="at_quota")
        #: ... and whether it holds ``quota - 1`` (a flip-flop each).
        self._near = Signal(S, name="near_quota", init=(1 << S) - 1 if quota == 1 else 0)
        #: The lost counts, and their "all ones" flags.
        self._lost = [Signal(LOST_WIDTH, name=f"lost{s}") for s in range(S)]
        self._lost_full = [Signal(name=f"lost{s}_full") for s in range(S)]
        self._ovf_full = Signal(name="ovf_count_full")
        #: The offered record, registered (the decision's stage), and its source one-hot.
        self._p_valid = Signal(name="p_valid")
        self._p_data = Signal(self.layout, name="p_data")
        self._p_onehot = Signal(S, name="p_onehot")
        #: With two stages: the record's first stage, and the decision's verdict on the quota.
        self._a_valid = Signal(name="a_valid")
        self._a_data = Signal(self.layout, name="a_data")
        self._a_onehot = Signal(S, name="a_onehot")
        self._over_q = Signal(name="over_quota_q")
        #: With two stages: a POP registered, and the popped record's source one-hot.
        self._pop_q = Signal(name="pop_q")
        self._pop_oh = Signal(S, name="pop_onehot")
        #: With two stages, for the verdict: the decision's record and the first
        #: stage's have one source, and the registered POP pops a record of the
        #: first stage's source (flip-flops set from the push's source a cycle ahead).
        self._same_src = Signal(name="a_same_src", init=1)
        self._pop_hits_a = Signal(name="pop_hits_a")
        #: A record leaves the queue in this cycle.
        self.popped = Signal(name="popped")
        #: The lost window's access in flight: strobe registered (read, write), answer staged, answer.
        self._lost_rd, self._lost_wr = Signal(name="lost_rd"), Signal(name="lost_wr")
        self._lost_ack1, self._lost_ack = Signal(name="lost_ack1"), Signal(name="lost_ack")
        #: In the decision's stage: the record is queued / not queued.
        self.taken = Signal(name="taken")
        self.dropped = Signal(name="dropped")

    def invariants(self):
        """Relations between flags and counts that hold in every reachable state
        (the FIFO's own among them), each inductive on its own. The records each
        source holds are another: see :meth:`observe` and :meth:`held_sources`."""
        out = list(self.fifo.invariants())
        for s in range(self.sources):
            out.append(self._lost_full[s] == (self._lost[s] == (1 << LOST_WIDTH) - 1))
        out.append(self._ovf_full == (self.ovf_count == (1 << OVF_WIDTH) - 1))
        out.append(~self._p_valid | (self._p_onehot == Cat(*(self._p_data.source == s
                                                                for s in range(self.sources)))))
        if self.stages == 2:
            out.append(~self._a_valid | (self._a_onehot == Cat(*(self._a_data.source == s
                                                                  for s in range(self.sources)))))
            # A registered POP pops the head it saw (nothing else reads the FIFO meanwhile).
            head_oh = self.fifo._out_data[self.layout.size:]
            out += [~self._pop_q | self.fifo._out_valid,
                    self._pop_oh == Mux(self._pop_q, head_oh, 0)]
            # The verdict's flags name the records they were set for.
            head_src = self.layout(self.fifo._out_data[:self.layout.size]).source
            out += [self._same_src == (self._a_data.source == self._p_data.source),
                    self._pop_hits_a == (self._pop_q & (head_src == self._a_data.source))]
        return out

    def observe(self):
        """Observation points for testbenches and formal harnesses (not ports): each
        source's record count (``occupancy``) and quota flags (``at_quota``), and the
        decision's stage (``decide_valid``; ``decide_source``, the offered record's
        source, and ``decide_onehot``, the same one-hot; ``taken`` and ``dropped``
        are attributes of the queue); ``lost_busy``: the ``lost`` window is
        answering an access (from the cycle after its strobe to its ``ack``)."""
        return {"occupancy": list(self._occ), "at_quota": self._at_quota, "near_quota": self._near,
                "over_quota": self._over_q if self.stages == 2 else (self._p_onehot & self._at_quota).any(),
                "decide_valid": self._p_valid, "decide_source": self._p_data.source,
                "decide_onehot": self._p_onehot,
                "lost_busy": self._lost_rd | self._lost_wr | self._lost_ack1 | self._lost_ack}

    def held_sources(self, m):
        """For formal harnesses: the records the queue holds, oldest first, as
        ``depth`` triples ``(present, source, agrees)`` (adds read ports to the
        FIFO, see :meth:`BypassFifo.held_words`: call it once, before
        elaboration); ``agrees``: the source one-hot stored beside the record
        (two stages) names its source."""
        out = []
        for present, word in self.fifo.held_words(m):
            source = self.layout(word[:self.layout.size]).source
            agrees = Const(1)
            if self.stages == 2:
                agrees = word[self.layout.size:] == Cat(*(source == s for s in range(self.sources)))
            out.append((present, source, agrees))
        return out


    def _next_verdict(self, m):
        """With two stages: the next decision's verdict, made in the cycle before it
        for the first stage's record, from its source's flags as this cycle leaves
        them. A source is at its quota after this cycle if it is now and its record
        is not popped, or if it holds one less and this cycle's decision takes a
        record of it (and none of its records is popped):
        ``~pop_hits_a & (at_quota[a] | same_src & p_valid & w_rdy & near[a])``
        (the decision takes a record of a source below its quota only, so the
        "below" is implied by ``at_quota[a]``'s term). The source's two flags are
        one AND-OR by the first stage's one-hot each; whether the decision's record
        and the POP concern that source are flip-flops set a cycle earlier from the
        push's source, so the decision's ``p_valid`` and the POP reach the verdict
        through one LUT, not through a term per source."""
        a_oh = self._a_onehot
        a_at = Signal(name="a_at_quota")
        a_near = Signal(name="a_near_quota")
        m.d.comb += [a_at.eq((a_oh & self._at_quota).any()), a_near.eq((a_oh & self._near).any())]
        onto = Signal(name="a_taken_onto")
        m.d.comb += onto.eq(self._same_src & self._p_valid & self.fifo.w_rdy)
        m.d.sync += self._over_q.eq(~self._pop_hits_a & (a_at | (onto & a_near)))

    def elaborate(self, platform):
        m = Module()
        S, Q = self.sources, self.quota
        m.submodules.fifo = fifo = self.fifo

        # The decision's stage: the record registered (once or twice), its source one-hot.
        p_valid, p_data, p_oh = self._p_valid, self._p_data, self._p_onehot
        onehot_in = Cat(*(self.push.payload.source == s for s in range(S)))
        if self.stages == 1:
            m.d.sync += [p_valid.eq(self.push.valid), p_data.eq(self.push.payload), p_oh.eq(onehot_in)]
        else:
            a_valid, a_data, a_oh = self._a_valid, self._a_data, self._a_onehot
            m.d.sync += [a_valid.eq(self.push.valid), a_data.eq(self.push.payload), a_oh.eq(onehot_in),
                         p_valid.eq(a_valid), p_data.eq(a_data), p_oh.eq(a_oh)]
        at_quota, near = self._at_quota, self._near
        over = Signal(name="over_quota")
        # The record goes to the FIFO's RAM whatever the decision (its write
        # enables hang off the stage's flip-flop); the quota decides only
        # whether the FIFO keeps it.
        m.d.comb += [over.eq(self._over_q if self.stages == 2 else (p_oh & at_quota).any()),
                     fifo.w_en.eq(p_valid), fifo.w_keep.eq(~over), fifo.w_data.eq(Cat(p_data, p_oh) if self.stages == 2 else p_data),
                     self.taken.eq(p_valid & ~over & fifo.w_rdy),
                     self.dropped.eq(p_valid & (over | ~fifo.w_rdy))]

        # The head, popped by ``head.ready`` (with two stages a cycle later, with
        # its source one-hot taken then: the head stays until that pop).
        popped = self.popped
        head = Signal(self.layout)
        head_oh = fifo.r_data[self.layout.size:] if self.stages == 2 else None
        m.d.comb += [head.eq(fifo.r_data[:self.layout.size]), self.head.valid.eq(fifo.r_rdy),
                     self.head.payload.eq(head), self.level.eq(fifo.level)]
        if self.stages == 2:
            take = Signal(name="pop_take")
            m.d.comb += [take.eq(self.head.ready & fifo.r_rdy & ~self._pop_q),
                         fifo.r_en.eq(self._pop_q), popped.eq(self._pop_q)]
            m.d.sync += [self._pop_q.eq(take), self._pop_oh.eq(head_oh & take.replicate(S)),
                         # (the head stays until the pop: it is the record popped)
                         self._pop_hits_a.eq(take & (head.source == self.push.payload.source)),
                         self._same_src.eq(self.push.payload.source == self._a_data.source)]
        else:
            m.d.comb += [fifo.r_en.eq(self.head.ready), popped.eq(fifo.r_rdy & self.head.ready)]

        # Records per source: each count moves on its own record's push
        # (its own quota flag, not the OR of all) and on a pop of one.
        for s in range(S):
            occ = self._occ[s]
            inc, dec = Signal(name=f"occ{s}_inc"), Signal(name=f"occ{s}_dec")
            m.d.comb += [inc.eq(p_valid & p_oh[s] & ~at_quota[s] & fifo.w_rdy),
                         dec.eq(self._pop_oh[s] if self.stages == 2 else popped & (head.source == s))]
            with m.If(inc & ~dec):
                m.d.sync += [occ.eq(occ + 1), at_quota[s].eq(near[s]), near[s].eq(occ == Q - 2)]
            with m.Elif(dec & ~inc):
                m.d.sync += [occ.eq(occ - 1), at_quota[s].eq(0), near[s].eq(at_quota[s])]
        if self.stages == 2:
            self._next_verdict(m)

        # What was not queued, counted a cycle later: in total, and per source.
        ovf_evt = Signal(name="ovf_evt")
        lost_evt = Signal(S, name="lost_evt")
        m.d.sync += [ovf_evt.eq(self.dropped),
                     lost_evt.eq(p_oh & (at_quota | (~fifo.w_rdy).replicate(S)) & p_valid.replicate(S))]
        top = (1 << OVF_WIDTH) - 1
        # (Saturating counts keep their "all ones" flag in a flip-flop, as
        # rtl/counter.py's saturating_inc does.)
        with m.If(self.clear_overflow):
            m.d.sync += [self.overflow.eq(0), self.ovf_count.eq(0), self._ovf_full.eq(0)]
        with m.Elif(ovf_evt):
            m.d.sync += self.overflow.eq(1)
            with m.If(~self._ovf_full):
                m.d.sync += [self.ovf_count.eq(self.ovf_count + 1), self._ovf_full.eq(self.ovf_count == top - 1)]

        # The lost window: the word's source decoded one-hot into flip-flops
        # (the address is held through the access), then in one cycle the
        # counts are taken (AND-OR by fours into registers) and the selected
        # one cleared; the groups are ORed in the next, and the answer
        # registered.
        lost = self.lost
        word = lost.addr[2:]
        sel, ok = Signal(S, name="lost_sel"), Signal(name="lost_ok")
        rd, wr = self._lost_rd, self._lost_wr
        m.d.sync += [sel.eq(Cat(*(word == s for s in range(S)))), ok.eq(word < S),
                     rd.eq(lost.stb & ~lost.we), wr.eq(lost.stb & lost.we)]
        clear = Signal(name="lost_clear")
        m.d.comb += clear.eq(rd & ok)
        top = (1 << LOST_WIDTH) - 1
        for s in range(S):
            cnt, full = self._lost[s], self._lost_full[s]
            with m.If(clear & sel[s]):
                # An event of this very cycle lands after the clear.
                m.d.sync += [cnt.eq(lost_evt[s]), full.eq(0)]
            with m.Elif(lost_evt[s] & ~full):
                m.d.sync += [cnt.eq(cnt + 1), full.eq(cnt == top - 1)]
        parts = and_or_by_fours(m, sel, self._lost, "lost_grp")
        ack1, resp1 = self._lost_ack1, Signal(2, name="lost_resp1")
        m.d.sync += [ack1.eq(rd | wr),
                     resp1.eq(Mux(wr, Resp.SLVERR, Mux(ok, Resp.OKAY, Resp.DECERR)))]
        ack, rdata, resp = self._lost_ack, Signal(32, name="lost_rdata"), Signal(2, name="lost_resp")
        value = Const(0, LOST_WIDTH)
        for part in parts:
            value = value | part
        m.d.sync += [ack.eq(ack1), resp.eq(resp1),
                     rdata.eq(Mux(ack1 & (resp1 == Resp.OKAY), value, 0))]
        m.d.comb += [lost.ack.eq(ack), lost.rdata.eq(rdata), lost.resp.eq(resp)]
        return m
