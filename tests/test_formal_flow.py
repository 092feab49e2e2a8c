"""The proof flow itself: a true property passes, a false one fails and names its trace."""

import pytest
from amaranth.hdl import Assert, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from siov.tb.formal import prove


class WrapCounter(wiring.Component):
    """Counts 0..9 when ``inc``; the buggy variant forgets to wrap."""
    inc: In(1)

    def __init__(self, wraps):
        self.wraps = wraps
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        count = Signal(4)
        with m.If(self.inc):
            m.d.sync += count.eq(Mux(count == 9, 0, count + 1) if self.wraps else count + 1)
        m.d.comb += Assert(count <= 9)
        return m


@pytest.mark.formal
def test_true_property_is_proven():
    res = prove(WrapCounter(True), "flow_true", depth=12)
    assert res.status == "PASS", res.log[-2000:]


@pytest.mark.formal
def test_false_property_fails_with_a_trace():
    res = prove(WrapCounter(False), "flow_false", depth=12)
    assert res.status == "FAIL"
    assert res.trace is not None and res.trace.exists() and res.trace.suffix == ".vcd"
    assert f"counterexample trace: {res.trace}" in res.summary()
