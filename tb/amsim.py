"""Helpers for unit benches in Amaranth's simulator (tests/test_*.py).

The cocotb testbenches drive Verilator; the unit tests of single parts run
in :class:`amaranth.sim.Simulator` instead, with ``async def bench(ctx)``
testbenches. These are the helpers those benches share, so that no test file
keeps a copy. Payloads are packed and unpacked with :mod:`siov.tb.layouts`.
"""

import types

from amaranth.sim import Simulator

__all__ = ["simulate", "setter", "signals", "csr_access"]


def simulate(dut, bench, *, period=1e-8):
    """Run the testbench ``bench`` against ``dut`` on a clock of ``period`` seconds."""
    sim = Simulator(dut)
    sim.add_clock(period)
    sim.add_testbench(bench)
    sim.run()


def setter(ctx):
    """``ctx.set`` that skips values a signal already has.

    The simulator settles the design on every testbench ``set``, which is
    what these benches spend their time on; most inputs keep their value
    from one cycle to the next.
    """
    held = {}

    def put(signal, value):
        value = int(value)
        key = id(signal)
        if key not in held or held[key][0] != value:
            held[key] = (value, signal)
            ctx.set(signal, value)
    return put


def signals(interface):
    """An interface's signals as plain attributes (``wiring``'s own lookup is
    slow in a bench loop that runs every cycle)."""
    return types.SimpleNamespace(**{name: getattr(interface, name) for name in interface.signature.members})


async def csr_access(ctx, csr, addr, *, we=0, wdata=0, wstrb=0xF, limit=20):
    """One request on a register bus (rtl/csr/bus.py: a one-cycle strobe, the rest held until
    the one-cycle ack): ``(cycles to the ack, resp, rdata)``. Fails after ``limit`` cycles."""
    ctx.set(csr.stb, 1)
    ctx.set(csr.addr, addr)
    ctx.set(csr.we, we)
    ctx.set(csr.wdata, wdata)
    ctx.set(csr.wstrb, wstrb)
    cycles = 0
    while True:
        await ctx.tick()
        ctx.set(csr.stb, 0)
        cycles += 1
        assert cycles < limit, f"no answer at {addr:#x}"
        if ctx.get(csr.ack):
            return cycles, ctx.get(csr.resp), ctx.get(csr.rdata)
