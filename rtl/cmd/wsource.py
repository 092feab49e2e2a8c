"""The executor's write-source selector: what the AXI writer's data stream carries.

Ref: Linux include/uapi/linux/idxd.h (``struct dsa_completion_record``, 32
bytes; MEMFILL's 8-byte pattern in the descriptor's source field); the
reference model is :class:`siov.sw.model.engine.Engine`.

The executor's one writer writes three kinds of data, one kind per command:
the words of the data FIFO (MEMMOVE), a repeated 64-bit pattern (MEMFILL's
pattern, SIGNAL's value) and the completion record's four words. The
selector is the mux in front of the writer, and counts the record's words.
"""

from amaranth.lib import enum

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .dsa import CompletionLayout
from .mover import WORD_BITS

__all__ = ["WriteSource", "WriteSourceSelect", "RECORD_WORDS"]

#: Bus words of a completion record (32 bytes).
RECORD_WORDS = CompletionLayout.size // WORD_BITS


class WriteSource(enum.Enum, shape=2):
    """Where the writer's words come from."""
    #: The data FIFO (a MEMMOVE's source, aligned to the destination).
    FIFO = 0
    #: ``pattern``, every word (MEMFILL's pattern, SIGNAL's value).
    PATTERN = 1
    #: The completion record, word by word.
    RECORD = 2


class WriteSourceSelect(wiring.Component):
    """The writer's data stream from one of three sources.

    Attributes
    ----------
    sel : In(WriteSource)
    restart : In(1)
        Strobe: the record's words start again from its first.
    fifo : In(stream.Signature(WORD_BITS))
        The data FIFO's head; ready only while ``sel`` is FIFO.
    pattern : In(WORD_BITS)
    record : In(CompletionLayout)
    out : Out(stream.Signature(WORD_BITS))
        To the writer.
    """

    sel: In(WriteSource)
    restart: In(1)
    fifo: In(stream.Signature(WORD_BITS))
    pattern: In(WORD_BITS)
    record: In(CompletionLayout)
    out: Out(stream.Signature(WORD_BITS))

    def elaborate(self, platform):
        m = Module()
        word = Signal(range(RECORD_WORDS))
        with m.Switch(self.sel):
            with m.Case(WriteSource.FIFO):
                m.d.comb += [self.out.valid.eq(self.fifo.valid), self.out.payload.eq(self.fifo.payload),
                             self.fifo.ready.eq(self.out.ready)]
            with m.Case(WriteSource.PATTERN):
                m.d.comb += [self.out.valid.eq(1), self.out.payload.eq(self.pattern)]
            with m.Case(WriteSource.RECORD):
                m.d.comb += [self.out.valid.eq(1),
                             self.out.payload.eq(self.record.as_value().word_select(word, WORD_BITS))]
        with m.If(self.out.valid & self.out.ready & (self.sel == WriteSource.RECORD)):
            m.d.sync += word.eq(word + 1)
        with m.If(self.restart):
            m.d.sync += word.eq(0)
        return m
