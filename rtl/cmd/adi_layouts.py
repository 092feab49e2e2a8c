"""Widths, payloads and kinds shared by the ADI block's parts (rtl/cmd/adi*.py).

Ref: the ``CMD`` and ``ADI_PAGES`` windows of ``rtl/regs.rdl`` (field widths
come from the generated ``regmap``). The block (:class:`~.adi.AdiBlock`) is
composed of :class:`~.adi_pages.AdiPages` (the doorbell pages),
:class:`~.adi_command.AdiCommands` (the ADI_CMD decoder) and one
:class:`~.adi_slot.AdiSlot` per ADI (its state machine, pointers and
configuration); these are the signals that pass between them.
"""

from amaranth.lib import data, enum
from amaranth.utils import exact_log2

from .. import regmap
from ..dma.defs import PASID_BITS

__all__ = ["CSR_ADDR_WIDTH", "PAGES_ADDR_WIDTH", "PAGE_TAIL", "PAGE_HEAD", "PAGE_STATE", "MAX_RING_ENTRIES",
           "IDX_BITS", "SIZE_BITS", "ERROR_WIDTH", "RING_LAYOUT", "CONSUME_LAYOUT", "ADI_FAULT_LAYOUT",
           "STAGED_LAYOUT", "DOORBELL_LAYOUT", "AdiCommand"]

#: Local address widths of the CMD window and the ADI_PAGES window.
CSR_ADDR_WIDTH = exact_log2(regmap.CMD_SIZE)
PAGES_ADDR_WIDTH = exact_log2(regmap.ADI_PAGES_SIZE)
#: Offsets inside an ADI page.
PAGE_TAIL, PAGE_HEAD, PAGE_STATE = 0x0, 0x4, 0x8
MAX_RING_ENTRIES = 4096
#: Ring index width (4096 entries at most) and ring size width (up to 4096 itself).
IDX_BITS = 12
SIZE_BITS = 13
#: Width of an ADI's error code (CMD.ADI_STATUS.ERROR_CODE, an AdiError).
ERROR_WIDTH = regmap.CMD_ADI_STATUS_ERROR_CODE_WIDTH

#: Per-ADI ring information for the fetcher: base is the host byte address >> 6.
#: ``engine``: the engine the ring is bound to (CMD.ADI_CFG.ENGINE).
RING_LAYOUT = data.StructLayout({"base": 58, "size": SIZE_BITS, "pasid": PASID_BITS, "domain": 6,
                                 "head": IDX_BITS, "engine": 2})
#: A consume beat: the fetcher took ADI ``adi``'s head descriptor.
CONSUME_LAYOUT = data.StructLayout({"adi": 6})
#: An engine fault beat: put ADI ``adi`` into ERROR with ``code`` (an AdiError).
ADI_FAULT_LAYOUT = data.StructLayout({"adi": 6, "code": ERROR_WIDTH})

#: The staged registers an ENABLE or a LOAD copies into the selected ADI:
#: RING_BASE_LO/HI (``base``), RING_SIZE, ADI_CFG and RING_PTRS.
STAGED_LAYOUT = data.StructLayout({
    "base": 58,
    "size": SIZE_BITS,
    "pasid": PASID_BITS,
    "domain": 6,
    "engine": 2,
    "head": IDX_BITS,
    "tail": IDX_BITS,
})

#: A registered doorbell (a TAIL write to ADI ``adi``'s page): the value's
#: ring index bits and whether the whole value is below MAX_RING_ENTRIES, all
#: an ADI needs to check it against its size and take it.
DOORBELL_LAYOUT = data.StructLayout({"adi": 6, "tail": IDX_BITS, "below_max": 1})


class AdiCommand(enum.Enum, shape=3):
    """The ADI_CMD command that acts this cycle, one of the bits written to
    CMD.ADI_CMD, by their priority when several are written together
    (RESET_ERROR, then ABORT, DRAIN, ENABLE and LOAD)."""
    NONE = 0
    RESET_ERROR = 1
    ABORT = 2
    DRAIN = 3
    ENABLE = 4
    LOAD = 5
