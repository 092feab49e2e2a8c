"""AXI4-Lite slave that turns bus transactions into register-bus requests.

Ref: AMBA AXI and ACE Protocol Specification (ARM IHI 0022E), part B (AXI4-Lite).

* AW and W are latched independently, so they may arrive in either order or
  together (A3.3.1: no dependency between them on the slave side).
* One request is in flight on the register bus at a time. Reads and writes
  alternate when both are waiting, so neither starves.
* A write is only issued once the previous B response has been taken and a
  read only once the previous R response has been taken: back-pressure on B
  or R stalls the bridge but never loses or overwrites a response.
* Port names follow the AXI spec so that cocotbext-axi's
  ``AxiLiteBus.from_prefix(dut, "csr", bus_separator="__")`` finds them.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .bus import CsrSignature

__all__ = ["AxiLiteSignature", "AxiLiteToCsr"]


class AxiLiteSignature(wiring.Signature):
    """AXI4-Lite, 32-bit data, from the master's side (AxPROT is not used).

    Parameters
    ----------
    addr_width : int
        Byte address width.
    """

    def __init__(self, addr_width):
        if not isinstance(addr_width, int) or addr_width < 2:
            raise TypeError(f"Address width must be an integer of at least 2, not {addr_width!r}")
        self.addr_width = addr_width
        super().__init__({
            "awaddr": Out(addr_width), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    def __eq__(self, other):
        return isinstance(other, AxiLiteSignature) and other.addr_width == self.addr_width

    def __repr__(self):
        return f"AxiLiteSignature({self.addr_width})"


class AxiLiteToCsr(wiring.Component):
    """AXI4-Lite slave to register-bus bridge.

    Parameters
    ----------
    addr_width : int
        Byte address width of both sides.

    Attributes
    ----------
    axil : In(AxiLiteSignature)
        The AXI4-Lite slave port.
    csr : Out(CsrSignature)
        The register-bus requester port.
    """

    def __init__(self, addr_width):
        self._addr_width = addr_width
        super().__init__({
            "axil": In(AxiLiteSignature(addr_width)),
            "csr": Out(CsrSignature(addr_width)),
        })

    def elaborate(self, platform):
        m = Module()
        axil, csr = self.axil, self.csr

        aw_full = Signal()
        aw_addr = Signal(self._addr_width)
        w_full = Signal()
        w_data = Signal(32)
        w_strb = Signal(4)
        ar_full = Signal()
        ar_addr = Signal(self._addr_width)
        b_valid = Signal()
        b_resp = Signal(2)
        r_valid = Signal()
        r_data = Signal(32)
        r_resp = Signal(2)
        busy = Signal()
        busy_we = Signal()
        prefer_read = Signal()

        # Input latches: one slot per channel.
        m.d.comb += [
            axil.awready.eq(~aw_full),
            axil.wready.eq(~w_full),
            axil.arready.eq(~ar_full),
            axil.bvalid.eq(b_valid), axil.bresp.eq(b_resp),
            axil.rvalid.eq(r_valid), axil.rdata.eq(r_data), axil.rresp.eq(r_resp),
        ]
        with m.If(axil.awvalid & ~aw_full):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(axil.awaddr)]
        with m.If(axil.wvalid & ~w_full):
            m.d.sync += [w_full.eq(1), w_data.eq(axil.wdata), w_strb.eq(axil.wstrb)]
        with m.If(axil.arvalid & ~ar_full):
            m.d.sync += [ar_full.eq(1), ar_addr.eq(axil.araddr)]
        with m.If(axil.bready & b_valid):
            m.d.sync += b_valid.eq(0)
        with m.If(axil.rready & r_valid):
            m.d.sync += r_valid.eq(0)

        # Issue: a write needs both halves and a free B slot; a read a free R slot.
        write_ready = aw_full & w_full & ~b_valid
        read_ready = ar_full & ~r_valid
        do_write = Signal()
        do_read = Signal()
        m.d.comb += [
            do_write.eq(~busy & write_ready & (~read_ready | ~prefer_read)),
            do_read.eq(~busy & read_ready & (~write_ready | prefer_read)),
        ]
        req_addr = Signal(self._addr_width)
        m.d.comb += csr.addr.eq(req_addr)
        m.d.comb += [csr.wdata.eq(w_data), csr.wstrb.eq(w_strb), csr.we.eq(busy_we)]
        m.d.sync += csr.stb.eq(0)
        with m.If(do_write):
            m.d.sync += [busy.eq(1), busy_we.eq(1), req_addr.eq(aw_addr), csr.stb.eq(1),
                         prefer_read.eq(1)]
        with m.Elif(do_read):
            m.d.sync += [busy.eq(1), busy_we.eq(0), req_addr.eq(ar_addr), csr.stb.eq(1),
                         prefer_read.eq(0)]

        with m.If(busy & csr.ack):
            m.d.sync += busy.eq(0)
            with m.If(busy_we):
                m.d.sync += [aw_full.eq(0), w_full.eq(0), b_valid.eq(1), b_resp.eq(csr.resp)]
            with m.Else():
                m.d.sync += [ar_full.eq(0), r_valid.eq(1), r_data.eq(csr.rdata), r_resp.eq(csr.resp)]

        return m
