"""Standalone top of the interrupt remapping unit, for its own testbench and synthesis.

The IRU's 64 KiB register window sits behind an AXI4-Lite slave
(:class:`~siov.rtl.csr.axil.AxiLiteToCsr`, 16-bit local addresses), so that
cocotbext-axi's ``AxiLiteBus.from_prefix(dut, "csr", bus_separator="__")``
drives it. The streams are the IRU's own.
"""

from ..csr.wrap import AxiLiteWrapper
from .remapper import InterruptRemapper

__all__ = ["IrqTop"]


class IrqTop(AxiLiteWrapper):
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

    The IRU's ``probe`` is copied to a signal named ``probe`` in the top module,
    so that a testbench can make it public.
    """

    def __init__(self, **kwargs):
        self.iru = InterruptRemapper(**kwargs)
        super().__init__(self.iru, "iru", observe={"probe": self.iru.probe})
