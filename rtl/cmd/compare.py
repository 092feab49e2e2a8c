"""The executor's comparator: COMPARE's first differing byte, a word a cycle.

Ref: Linux include/uapi/linux/idxd.h (``DSA_OPCODE_COMPARE``; the completion
record's ``result`` is 1 and ``bytes_completed`` the offset of the first
difference); the reference model is :class:`siov.sw.model.engine.Engine`.

A piece of COMPARE reads source 1 through the aligner into the data FIFO,
aligned to source 2's lanes, then reads source 2 and meets the two word for
word (``fire``). Only the piece's bytes count: the first word's lanes below
the destination's first lane and the last word's lanes past its last byte
are masked with the piece's strobes. Which lanes differed is registered, and
the byte offset of the first difference in the transfer is formed a cycle
later, so that the compare and the offset's adder are in different cycles.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .mover import COUNT_BITS, WORD_BITS

__all__ = ["Comparator"]


class Comparator(wiring.Component):
    """Finds the first differing byte of a transfer, piece by piece.

    Attributes
    ----------
    a, b : In(WORD_BITS)
        The two words met this cycle (source 1 from the FIFO, source 2 from the reader).
    fire : In(1)
        ``a`` and ``b`` are met this cycle.
    restart : In(1)
        Strobe: a new piece's words follow (the word index returns to 0).
    clear : In(1)
        Strobe: a new transfer; forget the difference found.
    first_strb, last_strb : In(8)
        The piece's destination byte strobes, first and last word.
    last_k : In(COUNT_BITS)
        Index of the piece's last word.
    p_lo : In(32)
        Offset of the piece in the transfer.
    lane : In(3)
        The destination's first lane in the piece.
    pending : Out(1)
        The word met last cycle differed; ``found`` rises in the next cycle.
    found : Out(1), at : Out(32)
        A difference was found, and its byte offset in the transfer.
    """

    def __init__(self):
        super().__init__({
            "a": In(WORD_BITS), "b": In(WORD_BITS), "fire": In(1), "restart": In(1), "clear": In(1),
            "first_strb": In(8), "last_strb": In(8), "last_k": In(COUNT_BITS), "p_lo": In(32),
            "lane": In(3),
            "pending": Out(1), "found": Out(1), "at": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        k = Signal(COUNT_BITS)                # the word of the piece met next
        lane_mask = Signal(8)
        m.d.comb += lane_mask.eq(Mux(k == 0, self.first_strb, 0xFF) & Mux(k == self.last_k, self.last_strb, 0xFF))
        neq = Signal(8)
        for b in range(8):
            m.d.comb += neq[b].eq((self.a[8 * b:8 * b + 8] != self.b[8 * b:8 * b + 8]) & lane_mask[b])
        first_neq = Signal(3)
        for b in reversed(range(8)):
            with m.If(neq[b]):
                m.d.comb += first_neq.eq(b)
        # Registered: which lanes differed in word k; the offset is formed a cycle later.
        neq_q = Signal(8)
        first_q = Signal(3)
        k_q = Signal(COUNT_BITS)
        m.d.comb += self.pending.eq(neq_q.any())
        m.d.sync += neq_q.eq(0)
        with m.If(self.fire):
            m.d.sync += [k.eq(k + 1), neq_q.eq(neq), first_q.eq(first_neq), k_q.eq(k)]
        with m.If(self.restart):
            m.d.sync += k.eq(0)
        with m.If(neq_q.any() & ~self.found):
            m.d.sync += [self.found.eq(1), self.at.eq(self.p_lo + (k_q << 3) + first_q - self.lane)]
        with m.If(self.clear):
            m.d.sync += self.found.eq(0)
        return m
