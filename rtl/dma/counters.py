"""The DMA tracker's counters: requests let through, blocked, and dirty bits set (CNT_* of rtl/regs.rdl).

Each event is counted a cycle after the decision that makes it (keeps the
adders off the decision's path), in a :func:`~siov.rtl.counter.split_counter`
read through its registered value: two cycles behind its count, so that each
counter's flip-flops, adders and the register read mux are not pulled apart
(a read samples at least four cycles after a CLEAR's pulse). The counters
wrap at 2**32; CNT_CTRL.CLEAR zeroes all three.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..counter import split_counter

__all__ = ["TrackerCounters", "COUNTERS", "COUNT_LAG"]

#: The counters, as named in the register map (CNT_ALLOWED, ...).
COUNTERS = ("allowed", "blocked", "dirtied")
#: Cycles from an event to the first cycle its count shows it (the event
#: registered, then the split counter's two).
COUNT_LAG = 4


class TrackerCounters(wiring.Component):
    """Three 32-bit event counters with a common clear.

    Attributes
    ----------
    allowed, blocked, dirtied : In(1)
        The events (one per cycle at most, each).
    clear : In(1)
        CNT_CTRL.CLEAR's pulse (wins over an event in the same cycle).
    count : Out({allowed, blocked, dirtied: 32})
        The counts, :data:`COUNT_LAG` cycles behind the events.
    """

    def __init__(self):
        super().__init__({**{k: In(1) for k in COUNTERS}, "clear": In(1),
                          "count": Out(data.StructLayout({k: 32 for k in COUNTERS}))})

    def elaborate(self, platform):
        m = Module()
        inc = {k: Signal(name=f"inc_{k}") for k in COUNTERS}
        m.d.sync += [inc[k].eq(getattr(self, k)) for k in COUNTERS]
        m.d.comb += [self.count[k].eq(split_counter(m, 32, inc[k], self.clear, name=f"cnt_{k}"))
                     for k in COUNTERS]
        return m
