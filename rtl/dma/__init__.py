"""DMA tracker: per-domain pinned/mapped/unmap-requested/dirty bitmaps (rtl/dma/tracker.py)."""

from .defs import Bitmap, GuestResult, RangeOp, Reason
from .tracker import DmaTracker, OUT_LAYOUT, REQ_LAYOUT

__all__ = ["DmaTracker", "REQ_LAYOUT", "OUT_LAYOUT", "Bitmap", "Reason", "RangeOp", "GuestResult"]
