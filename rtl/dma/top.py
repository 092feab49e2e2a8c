"""Standalone top ``siov_dma``: the DMA tracker behind an AXI4-Lite slave.

Used by the cocotb regression (tb/dma) and the benchmark. The CSR port is
AXI4-Lite with 16-bit byte addresses: the local addresses of the ``DMA``
window (absolute address minus ``regmap.DMA_BASE``). The request and output
streams are the tracker's own.
"""

from ..csr.wrap import AxiLiteWrapper
from ..params import DeviceParams, require_params
from .tracker import DmaTracker

__all__ = ["DmaTop"]


class DmaTop(AxiLiteWrapper):
    """AXI4-Lite bridge + :class:`DmaTracker` (ports ``csr``, ``req``, ``out``).

    The internal signals ``tap_harvest``, ``tap_decide`` and ``tap_allow`` of
    this module copy the tracker's taps for testbenches (see
    :attr:`DmaTracker.taps`).
    """

    def __init__(self, params=DeviceParams(), **kwargs):
        self.params = require_params(params, "DMA top")
        self.tracker = DmaTracker(params, **kwargs)
        super().__init__(self.tracker, "tracker",
                         observe={f"tap_{name}": sig for name, sig in self.tracker.taps.items()})
