"""Internal register bus between the AXI4-Lite bridge and register blocks.

A request is a one-cycle ``stb`` pulse with ``addr``, ``we``, ``wdata`` and
``wstrb`` held stable until the response. The responder answers with a
one-cycle ``ack`` pulse, one or more cycles after ``stb``, carrying ``rdata``
and ``resp``. ``resp`` uses the AXI encoding so that the bridge can pass it
through unchanged (Ref: AMBA AXI and ACE Protocol Specification, A3.4.4).

The response is never combinational, which keeps the bridge free of
combinational loops and lets a block answer from block RAM with a read latency.
"""

import enum

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Resp", "CsrSignature"]


class Resp(enum.IntEnum):
    """AXI response codes."""
    OKAY = 0b00
    EXOKAY = 0b01
    SLVERR = 0b10
    DECERR = 0b11


class CsrSignature(wiring.Signature):
    """Register bus, from the requester's side.

    Parameters
    ----------
    addr_width : int
        Width of the byte address. Bits 1:0 are ignored by responders.
    """

    def __init__(self, addr_width):
        if not isinstance(addr_width, int) or addr_width < 2:
            raise TypeError(f"Address width must be an integer of at least 2, not {addr_width!r}")
        self.addr_width = addr_width
        super().__init__({
            "stb": Out(1),
            "we": Out(1),
            "addr": Out(addr_width),
            "wdata": Out(32),
            "wstrb": Out(4),
            "ack": In(1),
            "rdata": In(32),
            "resp": In(2),
        })

    def __eq__(self, other):
        return isinstance(other, CsrSignature) and other.addr_width == self.addr_width

    def __repr__(self):
        return f"CsrSignature({self.addr_width})"
