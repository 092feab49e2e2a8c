"""Codes shared by the DMA tracker hardware, its reference model and software.

Plain enums with no Amaranth dependency, so that :mod:`siov.sw` can use them
without elaborating anything. The numeric values are the register-map
encodings documented in ``rtl/regs.rdl`` (window ``DMA``); the fault reasons
are declared there (``DmaFaultReason``) and re-exported here as ``Reason``.

``PASID_BITS`` is the PASID width of every block (interrupt messages, ADI
configuration, descriptors, DMA requests); ``tests/test_regmap.py`` checks
that each PASID field of the register map is this wide.
"""

import enum

from ..regmap import DmaFaultReason as Reason

__all__ = ["Bitmap", "Reason", "RangeOp", "GuestResult", "PAGE_SHIFT", "PASID_BITS",
           "PAGE_BITS", "TRANSLATABLE_BITS", "WORD_PAGES", "GUEST_MAP", "GUEST_UNMAP", "guest_word"]

#: 4 KiB pages.
PAGE_SHIFT = 12
#: PCIe PASID width.
PASID_BITS = 20
#: Width of the guest page number carried by a DMA request.
PAGE_BITS = 32
#: Device addresses below 2**TRANSLATABLE_BITS have a page number a request can carry.
TRANSLATABLE_BITS = PAGE_SHIFT + PAGE_BITS
#: Pages per bitmap word (one 32-bit CSR read).
WORD_PAGES = 32
#: Byte offsets of the two words of the ``DMA.GUEST`` window (regs.rdl).
GUEST_MAP = 0x0
GUEST_UNMAP = 0x4


def guest_word(adi, page):
    """The value written to GUEST MAP/UNMAP: PAGE in bits 19:0, ADI in bits 25:20."""
    return (adi & 0x3F) << 20 | (page & 0xFFFFF)


class Bitmap(enum.IntEnum):
    """The four per-domain page bitmaps (BMAP_SEL.BITMAP)."""
    PINNED = 0
    MAPPED = 1
    UNMAP = 2      # unmap requested by the guest, waiting for a lazy unpin
    DIRTY = 3


class RangeOp(enum.IntEnum):
    """OP.CODE of a privileged range operation."""
    PIN = 0
    UNPIN = 1          # forced: clears pinned, mapped and unmap-requested
    RECLAIM = 2        # lazy unpin of pages with unmap-requested set and mapped clear
    CLEAR_UNMAP = 3


class GuestResult(enum.IntEnum):
    """GUEST_STATUS.RESULT after a guest fast-path map or unmap."""
    OK = 0
    NOT_PINNED = 1     # map refused: fall back to the map hypercall
    BAD_ADI = 2
    OUT_OF_RANGE = 3
    NOT_MAPPED = 4     # unmap of a page that is not mapped: nothing changed
