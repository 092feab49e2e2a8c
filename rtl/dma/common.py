"""Layouts and small logic helpers shared by the DMA tracker's parts (rtl/dma/tracker.py).

The layouts are the tracker's stream payloads and records; the helpers build
the AND-OR trees and registered read-back muxes the parts use instead of
wide binary muxes (each select flip-flop then drives only its own entry's
bits, which is what keeps the tracker at its ECP5 clock).
"""

from amaranth.hdl import Cat, Signal
from amaranth.lib import data
from amaranth.utils import exact_log2

from ..stream import and_or_by_fours, or_all
from .defs import PAGE_BITS, PAGE_SHIFT, PASID_BITS

__all__ = ["DOMAIN_BITS", "REQ_LAYOUT", "OUT_LAYOUT", "OUT_FIFO_LAYOUT", "FAULT_LAYOUT", "HARVEST_LAYOUT",
           "ADI_ENTRY", "DOMAIN_WINDOW", "word_address", "readback"]

#: Width of a domain index (64 domains at most, see DeviceParams).
DOMAIN_BITS = 6

#: A DMA request from the engine: requester PASID, guest page, direction.
REQ_LAYOUT = data.StructLayout({"pasid": PASID_BITS, "page": PAGE_BITS, "write": 1})
#: The outcome of one request (one beat per accepted request, in order): host byte
#: address of the page (0 if blocked), direction, where it came from, and
#: ``fault``/``reason`` (0/0 if allowed, else 1 and the fault reason).
OUT_LAYOUT = data.StructLayout({"addr": 64, "write": 1, "pasid": PASID_BITS,
                                "domain": DOMAIN_BITS, "page": PAGE_BITS,
                                "fault": 1, "reason": 8})
#: What the output FIFO holds for an outcome: the host page ungated, and the
#: reason whatever the verdict. The verdict (``fault``) gates both at the
#: FIFO's output, so the verdict drives a few LUTs into the FIFO's RAM rather
#: than one on each of the 52 address bits at the far end of the pipeline.
OUT_FIFO_LAYOUT = data.StructLayout({"host": 64 - PAGE_SHIFT, "write": 1, "pasid": PASID_BITS,
                                     "domain": DOMAIN_BITS, "page": PAGE_BITS,
                                     "fault": 1, "reason": 8})
#: A fault record, VT-d style (the FAULT_REC0/1 registers).
FAULT_LAYOUT = data.StructLayout({"reason": 8, "write": 1, "pasid": PASID_BITS, "page": PAGE_BITS})
#: A dirty-bitmap read riding the request pipeline: it is one (``active``), from
#: the bitmap window rather than the harvest window (``bmap``), reads the bitmap
#: (``mem``: in range, not a write), clears the word (``clear``), and its answer.
HARVEST_LAYOUT = data.StructLayout({"active": 1, "bmap": 1, "mem": 1, "clear": 1, "resp": 2})
#: An entry of the ADI-to-domain table (ADI_ENTRY; the order of ADI_CUR's read-back).
ADI_ENTRY = data.StructLayout({"valid": 1, "pasid": PASID_BITS, "domain": DOMAIN_BITS})
#: A domain's host window (DOM_BASE, DOM_LIMIT), and whether the limit covers
#: the whole bitmap (``big``: stored with the limit, so that the request path
#: compares only the limit's bits below the bitmap's size).
DOMAIN_WINDOW = data.StructLayout({"base": 64 - PAGE_SHIFT, "limit": 32, "big": 1})


def word_address(params, word, domain):
    """Block RAM address of bitmap ``word`` of ``domain`` (both in range): ``domain * pages/32 + word``."""
    wbits = exact_log2(params.pages_per_domain // 32)
    aw = max(1, (params.num_domains * (params.pages_per_domain // 32) - 1).bit_length())
    return Cat(word[:wbits], domain)[:aw]




def readback(m, name, index, values):
    """``values[index]`` (0 beyond), three cycles late: index decoded one-hot, AND-OR by fours, then the rest.

    The index is decoded one-hot first so that each of its flip-flops
    drives only the bits of its own entry (a binary index would drive
    every bit of every entry, a fan-out of hundreds).
    """
    n = len(values)
    sel = Signal(n, name=f"{name}_sel")
    m.d.sync += sel.eq(Cat(*(index == i for i in range(n))))
    out = Signal(len(values[0]), name=name)
    m.d.sync += out.eq(or_all(and_or_by_fours(m, sel, values, f"{name}_grp")))
    return out
