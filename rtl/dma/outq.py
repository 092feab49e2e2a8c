"""The DMA tracker's output queue: one outcome per accepted request, and the credits that keep room for it.

The queue is a :class:`~siov.rtl.stream.BypassFifo`, whose output register
gives a word written in cycle ``c`` on ``out`` in ``c + 1``
(SyncFIFOBuffered: ``c + 2``, and its write enable, gated by a compare on
its level, was the slowest path of the ECP5 build). Its write side is never
refused: a credit counter holds the entries not yet promised to a request
in flight, a request is accepted only with a credit, and so no stage of the
request pipeline ever stalls (no read data can go stale).

A credit is taken a cycle after its request was accepted (``take``, the C
stage's valid), so that accept, which hangs off the requester's valid,
drives flip-flops only; ``ready`` counts the credit still being taken. "No
credit" and "one credit" are flip-flops kept with the count, so that
``ready`` is one LUT from flip-flops. A read gives its credit back a cycle
later: the FIFO sits at the far end of the pipeline from the accept logic.

What the FIFO stores is an outcome with the host page and the reason
ungated; the verdict gates them at its output (:func:`outcome`).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..stream import BypassFifo
from .common import OUT_FIFO_LAYOUT, OUT_LAYOUT
from .defs import PAGE_SHIFT

__all__ = ["OutcomeQueue", "outcome"]


def outcome(m, rec, out):
    """Drive ``out`` (OUT_LAYOUT) from an output FIFO record: the address
    and the reason gated by the verdict."""
    m.d.comb += [out.addr.eq(Mux(rec.fault, 0, Cat(Const(0, PAGE_SHIFT), rec.host))),
                 out.write.eq(rec.write), out.pasid.eq(rec.pasid),
                 out.domain.eq(rec.domain), out.page.eq(rec.page),
                 out.fault.eq(rec.fault), out.reason.eq(Mux(rec.fault, rec.reason, 0))]


class OutcomeQueue(wiring.Component):
    """Output FIFO of ``depth`` outcomes with credits for the requests in flight.

    Attributes
    ----------
    ready : Out(1)
        A credit is free for a request accepted now.
    take : In(1)
        A request accepted in the previous cycle takes its credit.
    push : In(1), record : In(OUT_FIFO_LAYOUT)
        An outcome enters the FIFO (the credits guarantee the room).
    out : Out(stream.Signature(OUT_LAYOUT))
        The outcomes, in order, gated by their verdicts.
    """

    def __init__(self, depth):
        self.depth = depth
        # Guarded: the credits keep the producer from writing into a full
        # FIFO (asserted by the formal harness), so its full flag stays off
        # the write path.
        self.fifo = BypassFifo(width=OUT_FIFO_LAYOUT.size, depth=depth, guarded=True)
        self._credits = Signal(range(depth + 1), init=depth, name="credits")
        self._no_credit = Signal(name="no_credit")      # credits == 0 (depth >= 4)
        self._one_credit = Signal(name="one_credit")    # credits == 1
        self._pop_q = Signal(name="pop_q")              # a credit on its way back
        self._rec = Signal(OUT_LAYOUT, name="out_rec")
        super().__init__({
            "ready": Out(1), "take": In(1), "push": In(1), "record": In(OUT_FIFO_LAYOUT),
            "out": Out(stream.Signature(OUT_LAYOUT)),
        })

    def observe(self):
        """Observation points for formal harnesses (not ports): the credit count
        and its two flags, a credit on its way back (``pop_q``), the FIFO's level
        and whether it has room (``w_rdy``), and the outcome being pushed as it
        will leave the FIFO (``record``), and the FIFO itself (``fifo``, for its
        invariants)."""
        return {"fifo": self.fifo, "credits": self._credits, "no_credit": self._no_credit, "one_credit": self._one_credit,
                "pop_q": self._pop_q, "level": self.fifo.level, "w_rdy": self.fifo.w_rdy, "record": self._rec}

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = self.fifo
        credits, no_credit, one_credit, pop_q = self._credits, self._no_credit, self._one_credit, self._pop_q
        m.d.comb += self.ready.eq(~(no_credit | (one_credit & self.take)))
        pop = Signal()
        m.d.comb += [pop.eq(fifo.r_rdy & self.out.ready),
                     self.out.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.out.ready),
                     fifo.w_en.eq(self.push), fifo.w_data.eq(self.record)]
        head = Signal(OUT_FIFO_LAYOUT)
        m.d.comb += head.eq(fifo.r_data)
        outcome(m, head, self.out.payload)
        # The outcome as it will leave the FIFO (what the formal harness checks).
        outcome(m, self.record, self._rec)
        m.d.sync += pop_q.eq(pop)
        with m.If(self.take & ~pop_q):
            m.d.sync += [credits.eq(credits - 1), no_credit.eq(one_credit), one_credit.eq(credits == 2)]
        with m.Elif(pop_q & ~self.take):
            m.d.sync += [credits.eq(credits + 1), no_credit.eq(0), one_credit.eq(no_credit)]
        return m
