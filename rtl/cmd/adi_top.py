"""Standalone top ``siov_adi``: the ADI register block behind two AXI4-Lite slaves.

``csr`` carries the local addresses of the ``CMD`` window (absolute address
minus ``regmap.CMD_BASE``), ``pages`` those of the ``ADI_PAGES`` window
(minus ``regmap.ADI_PAGES_BASE``). ``pending``, the ``consume`` stream, the
engine's ``busy`` mask and ``fault`` stream are the block's own; the per-ADI
ring information stays inside.
"""

from ..csr.wrap import AxiLiteWrapper
from ..params import DeviceParams
from .adi import AdiBlock

__all__ = ["AdiTop"]


class AdiTop(AxiLiteWrapper):
    """Two AXI4-Lite bridges + :class:`AdiBlock` (``csr``, ``pages``, ``pending``, ``consume``, ``busy``, ``fault``)."""

    def __init__(self, params=DeviceParams()):
        self.params = params
        super().__init__(AdiBlock(params), "adi", ports=("csr", "pages", "pending", "consume", "busy", "fault"))
