"""Saturating event counters for status registers.

A counter that stops at all ones must not test "all ones" on its own output
in the cycle it counts: that test (an AND tree, or the increment's carry
out) then drives the enable of every one of its flip-flops, and on the ECP5
it was the tracker's critical path. :func:`saturating_inc` keeps a ``full``
flag in a flip-flop instead, set in the cycle the count steps onto all ones,
so the enables hang off two registers and the wide compare feeds one.
"""

from amaranth.hdl import Signal

__all__ = ["saturating_inc"]


def saturating_inc(m, counter, when, clear):
    """Count ``when`` in ``counter`` (synchronous domain of ``m``), stopping
    at all ones; ``clear`` zeroes it and wins over a count in the same cycle.
    The counter must start at zero (its reset value), as the flag does."""
    full = Signal(name=f"{counter.name}_full")
    with m.If(clear):
        m.d.sync += [counter.eq(0), full.eq(0)]
    with m.Elif(when & ~full):
        m.d.sync += [counter.eq(counter + 1),
                     full.eq(counter == (1 << len(counter)) - 2)]
    return full
