"""Standalone top of the interrupt remapping unit, for its own testbench and synthesis.

The IRU's 64 KiB register window sits behind an AXI4-Lite slave
(:class:`~siov.rtl.csr.axil.AxiLiteToCsr`, 16-bit local addresses), so that
cocotbext-axi's ``AxiLiteBus.from_prefix(dut, "csr", bus_separator="__")``
drives it. The streams are the IRU's own.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..csr.axil import AxiLiteSignature, AxiLiteToCsr
from .remapper import CSR_ADDR_WIDTH, InterruptRemapper, IrqLayout, MessageLayout, ProbeLayout

__all__ = ["IrqTop"]


class IrqTop(wiring.Component):
    """AXI4-Lite + streams around :class:`InterruptRemapper`.

    Parameters
    ----------
    **kwargs
        Passed to :class:`InterruptRemapper` (``entries``, ``fault_depth``, ``pipelined``).

    Attributes
    ----------
    csr : In(AxiLiteSignature(16))
        Register window of the IRU, local addresses (``regmap.IRQ_* - regmap.IRQ_BASE``).
    msg_in, irq_out, dma_out : streams
        As on :class:`InterruptRemapper`.
    probe : Signal(ProbeLayout)
        Named ``probe`` in the top module so that a testbench can make it public.
    """

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        self.iru = InterruptRemapper(**kwargs)
        super().__init__({
            "csr": In(AxiLiteSignature(CSR_ADDR_WIDTH)),
            "msg_in": In(stream.Signature(MessageLayout)),
            "irq_out": Out(stream.Signature(IrqLayout)),
            "dma_out": Out(stream.Signature(MessageLayout)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = AxiLiteToCsr(CSR_ADDR_WIDTH)
        m.submodules.iru = iru = self.iru
        wiring.connect(m, wiring.flipped(self.csr), bridge.axil)
        wiring.connect(m, bridge.csr, iru.csr)
        wiring.connect(m, wiring.flipped(self.msg_in), iru.msg_in)
        wiring.connect(m, wiring.flipped(self.irq_out), iru.irq_out)
        wiring.connect(m, wiring.flipped(self.dma_out), iru.dma_out)
        probe = Signal(ProbeLayout, name="probe")
        m.d.comb += probe.eq(iru.probe)
        return m
