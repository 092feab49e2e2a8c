"""The Device's block models put together behind one register map, without time.

:class:`DeviceModel` is what the Device is made of (rtl/device.py): the
register fabric (:class:`~siov.sw.model.csr.CsrModel`) with the interrupt
remapper, the DMA tracker, the ADI block and the engine mounted in their
windows, over one host memory. It is the scoreboard's oracle in tb/system and
the state of the ``model`` backend (:mod:`siov.sw.platform.model`), which adds
time and runs the engine by itself.
"""

from ...rtl.params import DeviceParams, require_params
from .adi import AdiModel
from .csr import CsrModel
from .device import EngineModel
from .dma import DmaModel
from .engine import Memory
from .irq import IrqModel

__all__ = ["DeviceModel"]


class DeviceModel:
    """Every block model of one Device, sharing ``memory``.

    Parameters
    ----------
    params : DeviceParams
    memory : Memory, optional
        Host memory (default: a new sparse :class:`~siov.sw.model.engine.Memory`).
    """

    def __init__(self, params=DeviceParams(), memory=None):
        self.params = require_params(params, "DeviceModel")
        self.memory = Memory() if memory is None else memory
        self.irq = IrqModel(entries=params.ims_entries)
        self.dma = DmaModel(params)
        self.adi = AdiModel(params)
        self.engine = EngineModel(self.memory, self.adi, self.dma, self.irq)
        self.csr = CsrModel(params)
        self.csr.windows = {"IRQ": self.irq, "DMA": self.dma, "CMD": self.adi, "ADI_PAGES": self.adi,
                            "ENG": self.engine}

    def read(self, addr):
        """``(resp, value)`` of an MMIO read at ``addr``."""
        return self.csr.read(addr)

    def write(self, addr, data, strb=0xF):
        """Apply an MMIO write; return the response."""
        return self.csr.write(addr, data, strb)
