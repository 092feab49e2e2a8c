"""Event counters for status registers: saturating, and split wrapping ones.

A counter that stops at all ones must not test "all ones" on its own output
in the cycle it counts: that test (an AND tree, or the increment's carry
out) then drives the enable of every one of its flip-flops, and on the ECP5
it was the tracker's critical path. :func:`saturating_inc` keeps a ``full``
flag in a flip-flop instead, set in the cycle the count steps onto all ones,
so the enables hang off two registers and the wide compare feeds one.

A wrapping counter as wide as a register (32 bits) is one carry chain of
that length after its flip-flops, about 2 ns on the ECP5 before any
routing. :func:`split_counter` counts in a low part and carries into the
high part a cycle later (a registered carry), and shows the two halves as
one consistent value two cycles behind the events.
"""

from amaranth.hdl import Cat, Signal

__all__ = ["saturating_inc", "split_counter"]


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


def split_counter(m, width, when, clear, *, name, low=16):
    """A ``width``-bit counter of ``when`` (wrapping), in the synchronous domain
    of ``m``: the low ``low`` bits count ``when``, their wrap is registered
    and counted by the high bits in the next cycle. ``clear`` zeroes it and
    wins over a count in the same cycle.

    Returns the count as a register holding, in each cycle, the number of
    ``when`` cycles up to two cycles before (each half is taken at the
    moment that makes the pair consistent: the low half one cycle later than
    the high half, which lags it by the registered carry)."""
    if not 0 < low < width:
        raise ValueError(f"The low part must have between 1 and {width - 1} bits, not {low}")
    lo = Signal(low, name=f"{name}_lo")
    hi = Signal(width - low, name=f"{name}_hi")
    carry = Signal(name=f"{name}_carry")
    lo_then = Signal(low, name=f"{name}_lo_then")
    shown = Signal(width, name=name)
    with m.If(clear):
        m.d.sync += [lo.eq(0), hi.eq(0), carry.eq(0), lo_then.eq(0), shown.eq(0)]
    with m.Else():
        m.d.sync += [lo.eq(lo + when), carry.eq(when & lo.all()), hi.eq(hi + carry),
                     lo_then.eq(lo), shown.eq(Cat(lo_then, hi))]
    return shown
