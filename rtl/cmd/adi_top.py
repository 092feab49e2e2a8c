"""Standalone top ``siov_adi``: the ADI register block behind two AXI4-Lite slaves.

``csr`` carries the local addresses of the ``CMD`` window (absolute address
minus ``regmap.CMD_BASE``), ``pages`` those of the ``ADI_PAGES`` window
(minus ``regmap.ADI_PAGES_BASE``). ``pending`` and the ``consume`` stream are
the block's own; the per-ADI ring information stays inside.
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..csr.axil import AxiLiteSignature, AxiLiteToCsr
from ..params import DeviceParams
from .adi import CONSUME_LAYOUT, CSR_ADDR_WIDTH, PAGES_ADDR_WIDTH, AdiBlock

__all__ = ["AdiTop"]


class AdiTop(wiring.Component):
    """Two AXI4-Lite bridges + :class:`AdiBlock`.

    Attributes
    ----------
    csr : In(AxiLiteSignature(CSR_ADDR_WIDTH))
    pages : In(AxiLiteSignature(18))
    pending : Out(num_adis)
    consume : In(stream.Signature(CONSUME_LAYOUT))
    """

    def __init__(self, params=DeviceParams()):
        self.params = params
        self.block = AdiBlock(params)
        super().__init__({
            "csr": In(AxiLiteSignature(CSR_ADDR_WIDTH)),
            "pages": In(AxiLiteSignature(PAGES_ADDR_WIDTH)),
            "pending": Out(params.num_adis),
            "consume": In(stream.Signature(CONSUME_LAYOUT)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.csr_bridge = csr_bridge = AxiLiteToCsr(CSR_ADDR_WIDTH)
        m.submodules.pages_bridge = pages_bridge = AxiLiteToCsr(PAGES_ADDR_WIDTH)
        m.submodules.adi = adi = self.block
        wiring.connect(m, wiring.flipped(self.csr), csr_bridge.axil)
        wiring.connect(m, wiring.flipped(self.pages), pages_bridge.axil)
        wiring.connect(m, csr_bridge.csr, adi.csr)
        wiring.connect(m, pages_bridge.csr, adi.pages)
        wiring.connect(m, wiring.flipped(self.consume), adi.consume)
        m.d.comb += self.pending.eq(adi.pending)
        return m
