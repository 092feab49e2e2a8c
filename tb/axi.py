"""Shared AXI testbench pieces: register accesses, idle/back-pressure patterns.

:func:`axil_read` and :func:`axil_write` are the one place that turns a
register access (address, value, byte strobes) into cocotbext-axi calls; the
testbenches and the ``rtl`` bus backend use them. They need cocotb and
cocotbext-axi only (no pyuvm).

Patterns follow the style of verilog-pcie/corundum testbenches: a generator
of booleans per channel, ``True`` meaning "pause this cycle".
"""

import itertools
import random

from cocotb.triggers import with_timeout

from ..rtl.csr.bus import Resp

__all__ = ["PATTERNS", "PAUSE_SPECS", "pause_pattern", "apply_axil_pauses", "apply_axi_ram_pauses",
           "strobe_runs", "axil_read", "axil_write"]


def strobe_runs(strb):
    """The contiguous runs of set bits of the 4-bit ``strb``, as ``(first byte, byte count)``."""
    runs, lo = [], None
    for i in range(5):
        on = i < 4 and strb >> i & 1
        if on and lo is None:
            lo = i
        elif not on and lo is not None:
            runs.append((lo, i - lo))
            lo = None
    return runs


async def axil_read(master, addr, *, timeout_ns=None):
    """Read the 32-bit word at byte address ``addr`` through ``master``.

    ``master`` is a cocotbext-axi ``AxiLiteMaster`` and ``addr`` an address on
    its bus (the caller subtracts a window's base). Returns ``(Resp, value)``.
    With ``timeout_ns``, an access that takes longer raises
    ``cocotb.triggers.SimTimeoutError`` (a hang fails the test).
    """
    op = master.read(addr, 4)
    r = await (op if timeout_ns is None else with_timeout(op, timeout_ns, "ns"))
    return Resp(int(r.resp)), int.from_bytes(r.data, "little")


async def axil_write(master, addr, value, strb=0xF, *, timeout_ns=None):
    """Write ``value`` to the 32-bit word at ``addr`` with byte strobes ``strb``; return the Resp.

    cocotbext-axi derives WSTRB from a write's address and length, so each
    contiguous run of enabled bytes goes out as one write at its own byte
    address (``AWADDR`` unaligned, WSTRB naming exactly those bytes). A
    sparse strobe (0x5, 0x9, ...) is therefore several bus writes, one per run,
    in ascending order: not atomic, and a register with write side effects
    sees each. The response is the first one that is not OKAY, else OKAY.
    cocotbext-axi cannot issue a write with no strobes: ``strb`` 0 raises
    ``ValueError``. ``timeout_ns`` as for :func:`axil_read`.
    """
    if not 0 < strb <= 0xF:
        raise ValueError(f"Write strobes must be between 0x1 and 0xF, not {strb:#x}")
    resp = Resp.OKAY
    for lo, n in strobe_runs(strb):
        part = (value >> (8 * lo)) & ((1 << (8 * n)) - 1)
        op = master.write(addr + lo, part.to_bytes(n, "little"))
        r = await (op if timeout_ns is None else with_timeout(op, timeout_ns, "ns"))
        if resp == Resp.OKAY:
            resp = Resp(int(r.resp))
    return resp


def _random(p, rng):
    while True:
        yield rng.random() < p


#: Each pause pattern as ``(kind, argument)``: ``("never", None)``, ``("random", p)``
#: (pause with probability p each cycle) or ``("cycle", [bool, ...])`` (repeated). The
#: Python generators below and the C++ host memory (:mod:`siov.tb.host.shared`) both read it.
PAUSE_SPECS = {
    "none": ("never", None),
    "light": ("random", 0.25),
    "heavy": ("random", 0.7),
    "bursty": ("cycle", [True] * 5 + [False] * 3 + [True, False]),
}

PATTERNS = tuple(PAUSE_SPECS)


def pause_pattern(kind, rng):
    """A pause generator: ``none``, ``light`` (25 %), ``heavy`` (70 %) or ``bursty``."""
    if kind not in PAUSE_SPECS:
        raise ValueError(f"Unknown pause pattern {kind!r}; expected one of {PATTERNS}")
    how, arg = PAUSE_SPECS[kind]
    if how == "never":
        return itertools.repeat(False)
    if how == "random":
        return _random(arg, rng)
    return itertools.cycle(arg)


def apply_axil_pauses(master, kinds, rng):
    """Set a pause generator on each AXI4-Lite channel of ``master``.

    ``kinds`` maps channel name (aw, w, b, ar, r) to a pattern name.
    Pausing B and R deasserts BREADY and RREADY: back-pressure on responses.
    """
    chans = {
        "aw": master.write_if.aw_channel, "w": master.write_if.w_channel,
        "b": master.write_if.b_channel, "ar": master.read_if.ar_channel,
        "r": master.read_if.r_channel,
    }
    for name, chan in chans.items():
        chan.set_pause_generator(pause_pattern(kinds.get(name, "none"), rng))


def apply_axi_ram_pauses(ram, kinds, rng):
    """Set a pause generator on each channel of a cocotbext-axi ``AxiRam``.

    On the slave side a paused AW, W or AR channel holds its READY low
    (back-pressure) and a paused B or R channel holds its VALID low (random
    response latency).
    """
    chans = {
        "aw": ram.write_if.aw_channel, "w": ram.write_if.w_channel, "b": ram.write_if.b_channel,
        "ar": ram.read_if.ar_channel, "r": ram.read_if.r_channel,
    }
    for name, chan in chans.items():
        chan.set_pause_generator(pause_pattern(kinds.get(name, "none"), rng))
