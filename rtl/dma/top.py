"""Standalone top ``siov_dma``: the DMA tracker behind an AXI4-Lite slave.

Used by the cocotb regression (tb/dma) and the benchmark. The CSR port is
AXI4-Lite with 16-bit byte addresses: the local addresses of the ``DMA``
window (absolute address minus ``regmap.DMA_BASE``). The request and output
streams are the tracker's own.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..csr.axil import AxiLiteSignature, AxiLiteToCsr
from ..params import DeviceParams
from .tracker import CSR_ADDR_WIDTH, OUT_LAYOUT, REQ_LAYOUT, DmaTracker

__all__ = ["DmaTop"]


class DmaTop(wiring.Component):
    """AXI4-Lite bridge + :class:`DmaTracker`.

    Parameters
    ----------
    params : DeviceParams
        Passed to the tracker.

    Attributes
    ----------
    csr : In(AxiLiteSignature(16))
    req : In(stream.Signature(REQ_LAYOUT))
    out : Out(stream.Signature(OUT_LAYOUT))

    The internal signals ``tap_harvest``, ``tap_decide`` and ``tap_allow`` of
    this module copy the tracker's taps for testbenches (see
    :attr:`DmaTracker.taps`).
    """

    def __init__(self, params=DeviceParams(), **kwargs):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"DMA top parameters must be a DeviceParams, not {params!r}")
        self.params = params
        self.tracker = DmaTracker(params, **kwargs)
        super().__init__({
            "csr": In(AxiLiteSignature(CSR_ADDR_WIDTH)),
            "req": In(stream.Signature(REQ_LAYOUT)),
            "out": Out(stream.Signature(OUT_LAYOUT)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = AxiLiteToCsr(CSR_ADDR_WIDTH)
        m.submodules.tracker = tracker = self.tracker
        wiring.connect(m, wiring.flipped(self.csr), bridge.axil)
        wiring.connect(m, bridge.csr, tracker.csr)
        wiring.connect(m, wiring.flipped(self.req), tracker.req)
        wiring.connect(m, tracker.out, wiring.flipped(self.out))
        for name, sig in tracker.taps.items():
            tap = Signal(name=f"tap_{name}")
            m.d.comb += tap.eq(sig)
        return m
