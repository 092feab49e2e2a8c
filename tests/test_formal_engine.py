"""k-induction proofs of the dispatcher's eligibility mask (tb/cmd/formal.py)."""

import gc
import re
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable

from siov.tb.cmd.formal import COVER, CoverHarness, DispatchHarness, trace_values
from siov.tb.formal import prove


@pytest.mark.formal
def test_no_dispatch_outside_the_mask():
    h = DispatchHarness()
    res = prove(h, "dispatch_mask", depth=h.depth, ports=h.ports(), timeout_s=600)
    assert res.passed, res.summary()


@pytest.mark.formal
@pytest.mark.parametrize("what", list(COVER))
def test_reachable(what):
    """Not vacuous: a BMC finds the dispatch (consume beat, start) the harness says never happens."""
    h = CoverHarness(what)
    res = prove(h, f"dispatch_cover_{what}", depth=h.depth, mode="bmc", ports=h.ports(), timeout_s=600)
    assert res.status == "FAIL", res.summary()
    assert res.trace is not None and res.trace.exists()


@pytest.mark.formal
def test_delayed_mask_is_caught():
    """The dispatcher sees the mask one cycle late: the same proof fails, from reset."""
    h = DispatchHarness(mask_delay=1)
    res = prove(h, "dispatch_mask_delayed", depth=h.depth, ports=h.ports(), timeout_s=600)
    assert res.status == "FAIL", res.summary()
    # A base-case counterexample: a real run from reset, not an unreachable induction state.
    assert re.search(r"basecase: .*Assert failed", res.log), res.log[-2000:]
    assert res.trace is not None and res.trace.name == "trace.vcd"
    # In it, an ADI is dispatched while outside the mask in force (inside the old one).
    v = trace_values(res.trace, ["mask", "dut.eligible", "dut.dispatched", "dut.dispatched_adi"])
    bad = [t for t, (d, a, mk, old) in enumerate(zip(v["dut.dispatched"], v["dut.dispatched_adi"],
                                                     v["mask"], v["dut.eligible"]))
           if d and not (mk >> a) & 1 and (old >> a) & 1]
    assert bad, v


def test_cover_rejects_unknown_target():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=r"^Cover target must be one of dispatch, consume_take, "
                                             r"consume_report, start, not 'x'$"):
            CoverHarness("x")
        gc.collect()
