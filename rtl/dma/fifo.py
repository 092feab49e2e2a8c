"""The tracker's output FIFO: registered output, write and read sides a cycle apart.

A first-word-fall-through FIFO of ``depth`` entries, ``depth - 1`` in RAM plus
the output register ``r_data`` (as :class:`amaranth.lib.fifo.SyncFIFOBuffered`),
for a writer that never writes it when full (the tracker's credits see to
that: ``w_rdy`` is an output for checking, and a write is not gated by it).

Why not ``SyncFIFOBuffered``: there the output register (as wide as the FIFO:
120 bits of outcome) and the read pointer are enabled by ``inner_level != 0 &
(~r_rdy | r_en)``, and the same fill level is updated by the writer. So the
writer's side, the RAM with the output register and the reader's side pull
one small loop of logic across the chip (the slowest path of the tracker).
Here the two sides are decoupled:

* the writer only writes the RAM at ``produce`` and raises ``wr_q`` for one
  cycle (a register);
* the reader keeps its own fill level of the RAM, thermometer-coded (bit
  ``k`` set when more than ``k`` entries can be read), counting ``wr_q`` in;
  "not empty" is bit 0, a flip-flop next to the output register's enable.

A word written in cycle ``c`` can be read from the RAM in ``c + 2`` and is on
``r_data`` in ``c + 3`` (one cycle later than with ``SyncFIFOBuffered``).
``level`` counts every word written and not yet read from ``r_data``; in
every reachable state ``therm`` is ``0..01..1`` (``therm & (therm + 1) ==
0``: an inductive invariant, which a formal harness states).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SyncFifoOut"]


class SyncFifoOut(wiring.Component):
    """Synchronous FIFO of ``depth`` entries (at least 3), registered output.

    Attributes
    ----------
    w_en, w_data : Signal
        Write (never when the FIFO is full).
    w_rdy : Signal
        The FIFO has room (for checking only).
    r_en, r_data, r_rdy : Signal
        As :class:`amaranth.lib.fifo.SyncFIFOBuffered`.
    level : Signal
        Words written and not yet read (``sum(therm) + wr_q + r_rdy``).
    therm : Signal(depth - 1)
        The reader's fill level of the RAM, thermometer-coded (formal harnesses).
    """

    def __init__(self, *, width, depth):
        if depth < 3:
            raise ValueError(f"FIFO depth must be at least 3, not {depth!r}")
        self.width = width
        self.depth = depth
        super().__init__({
            "w_en": In(1), "w_data": In(width), "w_rdy": Out(1),
            "r_en": In(1), "r_data": Out(width), "r_rdy": Out(1),
            "level": Out(range(depth + 2)),
        })
        self.therm = Signal(depth - 1, name="therm")
        self.wr_q = Signal(name="wr_q")

    def elaborate(self, platform):
        m = Module()
        n = self.depth - 1
        therm, wr_q = self.therm, self.wr_q
        m.d.comb += [self.w_rdy.eq(~therm[n - 1] & ~(therm[n - 2] & wr_q)),
                     self.level.eq(sum(therm) + wr_q + self.r_rdy)]

        m.submodules.storage = storage = Memory(shape=self.width, depth=n, init=[])
        w_port = storage.write_port()
        r_port = storage.read_port(domain="sync")
        produce = Signal(range(n))
        consume = Signal(range(n))
        rd = Signal()
        m.d.comb += [w_port.addr.eq(produce), w_port.data.eq(self.w_data), w_port.en.eq(self.w_en),
                     rd.eq(therm[0] & (~self.r_rdy | self.r_en)),
                     r_port.addr.eq(consume), r_port.en.eq(rd), self.r_data.eq(r_port.data)]
        m.d.sync += wr_q.eq(self.w_en)
        with m.If(self.w_en):
            m.d.sync += produce.eq(_incr(produce, n))
        with m.If(rd):
            m.d.sync += consume.eq(_incr(consume, n))
        with m.If(wr_q & ~rd):
            m.d.sync += therm.eq(Cat(1, therm[:-1]))
        with m.If(rd & ~wr_q):
            m.d.sync += therm.eq(therm[1:])
        with m.If(rd):
            m.d.sync += self.r_rdy.eq(1)
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        return m


def _incr(v, n):
    """``v + 1`` modulo ``n``."""
    return Mux(v == n - 1, 0, v + 1)
