"""AXI4 memory-mapped interface, from the master's side.

Ref: AMBA AXI and ACE Protocol Specification (ARM IHI 0022E), part A (AXI4).

Only what a DMA master needs: INCR bursts (AxBURST = 1) of full-width beats
(AxSIZE = log2 of the data width in bytes), one ID. Port names follow the
spec so that cocotbext-axi's ``AxiBus.from_prefix(dut, "mem",
bus_separator="__")`` finds them (AxLOCK/AxCACHE/AxPROT/AxQOS are optional
there and left out).
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

__all__ = ["Axi4Signature", "Axi4ReadSignature", "Axi4WriteSignature", "join_axi4",
           "BURST_INCR", "MAX_BURST", "BOUNDARY"]

#: AxBURST encoding of an incrementing burst.
BURST_INCR = 1
#: Longest burst this project issues (beats). AXI4 allows 256 for INCR; 16 keeps
#: the slave's reorder/buffering needs small and still hides the address phase.
MAX_BURST = 16
#: A burst must not cross a 4 KiB boundary (A3.4.1).
BOUNDARY = 4096


def _read_members(addr_width, data_width, id_width):
    return {
        "arid": Out(id_width), "araddr": Out(addr_width), "arlen": Out(8), "arsize": Out(3),
        "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
        "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
        "rvalid": In(1), "rready": Out(1),
    }


def _write_members(addr_width, data_width, id_width):
    return {
        "awid": Out(id_width), "awaddr": Out(addr_width), "awlen": Out(8), "awsize": Out(3),
        "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
        "wvalid": Out(1), "wready": In(1),
        "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    }


class _Axi4Base(wiring.Signature):
    _members = None

    def __init__(self, addr_width=64, data_width=64, id_width=1):
        if data_width not in (32, 64, 128, 256, 512, 1024):
            raise ValueError(f"AXI4 data width must be a power of two 32..1024, not {data_width!r}")
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        members = {}
        for part in self._members:
            members.update(part(addr_width, data_width, id_width))
        super().__init__(members)

    @property
    def size_code(self):
        """AxSIZE of a full-width beat."""
        return exact_log2(self.data_width // 8)

    def __eq__(self, other):
        return (type(other) is type(self) and other.addr_width == self.addr_width
                and other.data_width == self.data_width and other.id_width == self.id_width)

    def __repr__(self):
        return f"{type(self).__name__}({self.addr_width}, {self.data_width}, {self.id_width})"


class Axi4Signature(_Axi4Base):
    """AXI4 master interface: the read channels (AR, R) and the write channels (AW, W, B).

    Parameters
    ----------
    addr_width : int
        Byte address width.
    data_width : int
        Data width in bits, a power of two from 32 to 1024.
    id_width : int
        Width of the ID signals.
    """
    _members = (_read_members, _write_members)


class Axi4ReadSignature(_Axi4Base):
    """The read half of :class:`Axi4Signature` (AR and R), for a read-only master."""
    _members = (_read_members,)


class Axi4WriteSignature(_Axi4Base):
    """The write half of :class:`Axi4Signature` (AW, W and B), for a write-only master."""
    _members = (_write_members,)


def join_axi4(m, bus, *halves):
    """Connect read and write halves (master interfaces) to one full master ``bus``.

    ``bus`` is the outward-facing :class:`Axi4Signature` master port (flipped
    inside a component); each half drives the members it has.
    """
    for half in halves:
        for name, member in half.signature.members.items():
            if member.flow == Out:
                m.d.comb += getattr(bus, name).eq(getattr(half, name))
            else:
                m.d.comb += getattr(half, name).eq(getattr(bus, name))
