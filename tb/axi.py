"""Shared AXI testbench pieces: idle/back-pressure patterns and master setup.

Patterns follow the style of verilog-pcie/corundum testbenches: a generator
of booleans per channel, ``True`` meaning "pause this cycle".
"""

import itertools
import random

__all__ = ["PATTERNS", "pause_pattern", "apply_axil_pauses", "apply_axi_ram_pauses"]


def _random(p, rng):
    while True:
        yield rng.random() < p


def pause_pattern(kind, rng):
    """A pause generator: ``none``, ``light`` (25 %), ``heavy`` (70 %) or ``bursty``."""
    if kind == "none":
        return itertools.repeat(False)
    if kind == "light":
        return _random(0.25, rng)
    if kind == "heavy":
        return _random(0.7, rng)
    if kind == "bursty":
        return itertools.cycle([True] * 5 + [False] * 3 + [True, False])
    raise ValueError(f"Unknown pause pattern {kind!r}; expected one of {PATTERNS}")


PATTERNS = ("none", "light", "heavy", "bursty")


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
