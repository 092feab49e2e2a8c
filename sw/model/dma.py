"""Reference model of the DMA tracker (rtl/dma/tracker.py), transaction level.

Same semantics as the hardware, without its timing: a range operation
completes at once, a request is checked and applied in one call. The model
answers at two levels:

* transactions: :meth:`DmaModel.request`, :meth:`~DmaModel.range_op`,
  :meth:`~DmaModel.guest_map`, :meth:`~DmaModel.harvest_word`, ...;
* registers: :meth:`DmaModel.read` / :meth:`DmaModel.write` at absolute
  addresses of the ``DMA`` window, decoded from the same generated tables as
  the hardware, so it plugs into :class:`siov.sw.model.csr.CsrModel` as
  ``windows["DMA"]``.

Fault queue (:class:`~siov.rtl.faultq.FaultQueue` in the tracker): each
record has a source, the requester's domain or ``num_domains`` for a PASID
bound to no domain; a source holds at most ``fault_quota`` records, and a
fault that is not queued (its source at quota, or the queue full) is counted
in ``ovf_count`` and in ``lost[source]``, which a read of its FAULT_LOST
word returns and clears. The hardware decides a fault against the queue as
it stood at the start of its cycle: a testbench replays a POP before the
faults decided after it, and after those decided in its own cycle.

Dirty log (VFIO/IOMMUFD format): little-endian u64 words, bit n = page n;
harvesting clears unless ``no_clear``. The race rule: a write decided before
the harvest read of its word is in this harvest, one decided after it is in
the next, never in neither. The hardware runs a harvest read through the
request slot, so no write is decided in the very cycle of the read; a
testbench that knows the cycle of each event replays them in that order and
predicts every harvest exactly. ``racing`` (writes decided in the same cycle,
ordered after the read) is kept for other orderings of the two.
"""

import collections
from dataclasses import dataclass, field

import numpy as np

from ...rtl import regmap
from ...rtl.csr.bus import Resp
from ...rtl.faultq import LOST_WIDTH, OVF_WIDTH, default_quota
from ...rtl.dma.defs import GUEST_MAP, GUEST_UNMAP, PAGE_SHIFT, PASID_BITS, WORD_PAGES, Bitmap, GuestResult, RangeOp, Reason
from ...rtl.params import DeviceParams
from .csr import CsrModel, strobe_mask

__all__ = ["DmaModel", "Decision", "FaultRecord", "bitmap_to_vfio", "vfio_to_pages"]

#: The bitmaps a request reads and writes, as plain ints for numpy's scalar indexing.
_MAPPED, _DIRTY = int(Bitmap.MAPPED), int(Bitmap.DIRTY)


@dataclass(frozen=True)
class FaultRecord:
    """One fault-queue record {reason, PASID, page, write flag}.

    ``source`` is the quota class the queue keeps beside the record (the
    requester's domain, or ``num_domains`` for none); software does not see
    it, and records compare without it.
    """
    reason: int
    pasid: int
    page: int
    write: bool
    source: "int | None" = field(default=None, compare=False)


@dataclass(frozen=True)
class Decision:
    """The outcome of checking one request.

    ``domain`` is the requester's domain (None if its PASID is bound to no
    domain), for blocked requests too. ``allowed`` requests carry the
    translated host ``addr``; blocked ones carry the ``fault`` record, whose
    reason is also ``reason`` (0 when allowed). :meth:`out_beat` is the
    tracker's ``out`` beat for the request: the hardware gives one for every
    request, allowed or blocked, in order.
    """
    pasid: int
    page: int
    write: bool
    allowed: bool
    domain: "int | None" = None
    addr: "int | None" = None
    fault: "FaultRecord | None" = None

    @property
    def reason(self):
        """The fault reason, or 0 if the request was allowed."""
        return 0 if self.allowed else self.fault.reason

    def out_beat(self):
        """The ``out`` stream beat (OUT_LAYOUT fields) the hardware gives for this request.

        Allowed: fault 0, reason 0, the host byte address. Blocked: fault 1,
        the reason, address 0; the domain is 0 when there is none.
        """
        return {"addr": self.addr if self.allowed else 0, "write": int(self.write), "pasid": self.pasid,
                "domain": self.domain if self.domain is not None else 0, "page": self.page,
                "fault": int(not self.allowed), "reason": int(self.reason)}


def bitmap_to_vfio(bits):
    """Pack a bool array (bit n = page n) into VFIO/IOMMUFD bytes (LE u64 words)."""
    bits = np.asarray(bits, dtype=bool)
    n = -(-len(bits) // 64) * 64
    padded = np.zeros(n, dtype=bool)
    padded[:len(bits)] = bits
    return np.packbits(padded, bitorder="little").tobytes()


def vfio_to_pages(buf, base=0):
    """Page numbers set in a VFIO/IOMMUFD bitmap ``buf`` (bit n = page base+n)."""
    bits = np.unpackbits(np.frombuffer(bytes(buf), dtype=np.uint8), bitorder="little")
    return [base + int(i) for i in np.flatnonzero(bits)]


class DmaModel:
    """DMA tracker model.

    Parameters
    ----------
    params : DeviceParams
        Domains, pages per domain and ADIs, as the hardware is built.
    fault_depth : int
        Fault queue entries (the hardware's ``fault_depth``).
    fault_quota : int or None
        Records one source may hold in the queue (the hardware's
        ``fault_quota``; default :func:`~siov.rtl.faultq.default_quota`).
    """

    def __init__(self, params=DeviceParams(), fault_depth=16, fault_quota=None):
        self.params = params
        self.fault_depth = fault_depth
        self.fault_quota = default_quota(fault_depth) if fault_quota is None else fault_quota
        D, P, A = params.num_domains, params.pages_per_domain, params.num_adis
        self.bits = np.zeros((len(Bitmap), D, P), dtype=bool)
        self.adi = [(False, 0, 0)] * A          # (valid, pasid, domain)
        self._domains = {}                      # PASID -> :meth:`lookup`'s answer, until set_adi
        self.dom_base = [0] * D                 # host page number of guest page 0
        self.dom_limit = [0] * D                # window size in pages
        self.faults = collections.deque()
        self.overflow = False
        self.ovf_count = 0
        #: Faults not queued, per source (domains, then no domain), since each was last read.
        self.lost = [0] * (D + 1)
        self.counters = {"allowed": 0, "blocked": 0, "dirtied": 0}
        self.op_err = False
        self.guest_result = GuestResult.OK
        self._regs = CsrModel(params, window="DMA")
        self._regs.windows = {"DMA.GUEST": _GuestWindow(self), "DMA.BMAP": _BitmapWindow(self, harvest=False),
                              "DMA.HARVEST": _BitmapWindow(self, harvest=True),
                              "DMA.FAULT_LOST": _LostWindow(self)}

    # -- configuration -------------------------------------------------------

    def set_adi(self, index, pasid, domain, valid=True):
        """Program ADI-table entry ``index`` (ignored beyond num_adis, as in hardware)."""
        if 0 <= index < self.params.num_adis:
            self.adi[index] = (bool(valid), pasid & ((1 << PASID_BITS) - 1), domain & 0x3F)
            self._domains.clear()

    def set_domain(self, domain, base_addr, limit_pages):
        """Set the host window of ``domain``: byte address ``base_addr`` (4 KiB aligned)."""
        if 0 <= domain < self.params.num_domains:
            self.dom_base[domain] = (base_addr >> PAGE_SHIFT) & ((1 << 52) - 1)
            self.dom_limit[domain] = limit_pages & 0xFFFF_FFFF

    def lookup(self, pasid):
        """Domain of ``pasid``: the lowest valid ADI entry with that PASID, or None."""
        try:
            return self._domains[pasid]
        except KeyError:
            pass
        dom = None
        for valid, p, d in self.adi:
            if valid and p == pasid and d < self.params.num_domains:
                dom = d
                break
        self._domains[pasid] = dom
        return dom

    # -- requests --------------------------------------------------------------

    def check(self, pasid, page, write):
        """Decide one request without changing any state."""
        write = bool(write)
        dom = self.lookup(pasid)
        if dom is None:
            reason = Reason.NO_DOMAIN
        elif not (page < self.params.pages_per_domain and self.bits[_MAPPED, dom, page]):
            reason = Reason.WRITE_UNMAPPED if write else Reason.READ_UNMAPPED
        elif not page < self.dom_limit[dom]:
            reason = Reason.OUT_OF_WINDOW
        else:
            addr = ((self.dom_base[dom] + page) & ((1 << 52) - 1)) << PAGE_SHIFT
            return Decision(pasid, page, write, True, dom, addr)
        source = self.params.num_domains if dom is None else dom
        return Decision(pasid, page, write, False, dom, fault=FaultRecord(int(reason), pasid, page, write, source))

    def apply(self, d, set_dirty=True, push=True):
        """Apply the effects of decision ``d``: counters, dirty bit, fault queue.

        With ``push`` False the fault record is left to the caller's
        :meth:`push_fault` (a testbench that replays when the hardware's queue
        decides, a few cycles after the request).
        """
        if d.allowed:
            self.counters["allowed"] += 1
            if d.write:
                self.counters["dirtied"] += 1
                if set_dirty:
                    self.bits[_DIRTY, d.domain, d.page] = True
        else:
            self.counters["blocked"] += 1
            if push:
                self.push_fault(d.fault)
        return d

    def push_fault(self, rec):
        """Queue fault record ``rec`` if its source is below its quota and the queue has
        room; otherwise count it as lost (in total and as its source's). True if queued."""
        src = rec.source
        held = sum(1 for f in self.faults if f.source == src)
        if held < self.fault_quota and len(self.faults) < self.fault_depth:
            self.faults.append(rec)
            return True
        self.overflow = True
        self.ovf_count = min(self.ovf_count + 1, (1 << OVF_WIDTH) - 1)
        self.lost[src] = min(self.lost[src] + 1, (1 << LOST_WIDTH) - 1)
        return False

    def read_lost(self, source):
        """FAULT_LOST word ``source``: its lost faults since the last read, cleared."""
        n, self.lost[source] = self.lost[source], 0
        return n

    def request(self, pasid, page, write):
        """Check and apply one request; return its :class:`Decision`."""
        return self.apply(self.check(pasid, page, write))

    def pop_fault(self):
        """Drop and return the head fault record (None if empty)."""
        return self.faults.popleft() if self.faults else None

    def clear_overflow(self):
        """FAULT_CTRL.CLEAR_OVERFLOW: clear the sticky OVERFLOW flag and FAULT_OVF_COUNT."""
        self.overflow = False
        self.ovf_count = 0

    # -- privileged range operations -------------------------------------------

    def range_op(self, code, domain, start, count):
        """OP: apply ``code`` to pages start..start+count-1; False (and nothing done) if refused."""
        P = self.params.pages_per_domain
        if not 0 <= domain < self.params.num_domains or start + count > P:
            self.op_err = True
            return False
        self.op_err = False
        if count == 0:
            return True
        sl = slice(start, start + count)
        b = self.bits[:, domain]
        if code == RangeOp.PIN:
            b[Bitmap.PINNED, sl] = True
        elif code == RangeOp.UNPIN:
            b[Bitmap.PINNED, sl] = b[Bitmap.MAPPED, sl] = b[Bitmap.UNMAP, sl] = False
        elif code == RangeOp.RECLAIM:
            sel = b[Bitmap.UNMAP, sl] & ~b[Bitmap.MAPPED, sl]
            b[Bitmap.PINNED, sl] &= ~sel
            b[Bitmap.UNMAP, sl] &= ~sel
        elif code == RangeOp.CLEAR_UNMAP:
            b[Bitmap.UNMAP, sl] = False
        else:
            raise ValueError(f"Unknown range operation {code!r}")
        return True

    # -- guest fast path -------------------------------------------------------

    def _guest_target(self, adi, page):
        if not 0 <= adi < self.params.num_adis:
            return GuestResult.BAD_ADI, None
        valid, _pasid, dom = self.adi[adi]
        if not valid or dom >= self.params.num_domains:
            return GuestResult.BAD_ADI, None
        if not page < self.params.pages_per_domain:
            return GuestResult.OUT_OF_RANGE, None
        return None, dom

    def guest_map(self, adi, page):
        """Set mapped if pinned (also cancels a pending unmap request)."""
        err, dom = self._guest_target(adi, page)
        if err is None:
            if self.bits[Bitmap.PINNED, dom, page]:
                self.bits[Bitmap.MAPPED, dom, page] = True
                self.bits[Bitmap.UNMAP, dom, page] = False
                err = GuestResult.OK
            else:
                err = GuestResult.NOT_PINNED
        self.guest_result = err
        return err

    def guest_unmap(self, adi, page):
        """Clear mapped and set unmap-requested (lazy unpin); NOT_MAPPED if it was not mapped."""
        err, dom = self._guest_target(adi, page)
        if err is None:
            if self.bits[Bitmap.MAPPED, dom, page]:
                self.bits[Bitmap.MAPPED, dom, page] = False
                self.bits[Bitmap.UNMAP, dom, page] = True
                err = GuestResult.OK
            else:
                err = GuestResult.NOT_MAPPED
        self.guest_result = err
        return err

    # -- bitmaps and the dirty log ---------------------------------------------

    def read_word(self, bitmap, domain, word):
        """32-bit word ``word`` of ``bitmap`` of ``domain`` (bit n = page 32*word+n)."""
        bits = self.bits[bitmap, domain, word * WORD_PAGES:(word + 1) * WORD_PAGES]
        return int(np.packbits(bits, bitorder="little").view("<u4")[0])

    def harvest_word(self, domain, word, no_clear=False, racing=()):
        """Read (and unless ``no_clear`` clear) one dirty word; return its value.

        ``racing`` lists pages of this word whose allowed write was decided in
        the same cycle as this read: the read returns the word without them,
        and their bits are set afterwards, for the next harvest.
        """
        value = self.read_word(Bitmap.DIRTY, domain, word)
        sl = slice(word * WORD_PAGES, (word + 1) * WORD_PAGES)
        if not no_clear:
            self.bits[Bitmap.DIRTY, domain, sl] = False
        for page in racing:
            if not page // WORD_PAGES == word:
                raise ValueError(f"Racing page {page} is not in word {word}")
            self.bits[Bitmap.DIRTY, domain, page] = True
        return value

    def harvest(self, domain, no_clear=False):
        """The whole dirty log of ``domain`` in VFIO/IOMMUFD format (bytes)."""
        words = self.params.pages_per_domain // WORD_PAGES
        out = bytearray()
        for w in range(words):
            out += self.harvest_word(domain, w, no_clear).to_bytes(4, "little")
        return bytes(out)

    # -- register interface ----------------------------------------------------

    def _refresh(self):
        regs = self._regs
        st = regs.storage
        f = lambda path: self._field(path)
        adi_i = f("DMA.ADI_SEL.INDEX")
        valid, pasid, dom = self.adi[adi_i] if adi_i < self.params.num_adis else (False, 0, 0)
        dom_i = f("DMA.DOM_SEL.INDEX")
        base, limit = ((self.dom_base[dom_i], self.dom_limit[dom_i])
                       if dom_i < self.params.num_domains else (0, 0))
        head = self.faults[0] if self.faults else None
        regs.hw.update({
            "DMA.STATUS.BUSY": 0, "DMA.STATUS.ERR": int(self.op_err),
            "DMA.ADI_CUR.PASID": pasid, "DMA.ADI_CUR.DOMAIN": dom, "DMA.ADI_CUR.VALID": int(valid),
            "DMA.DOM_CUR_BASE_LO.ADDR": base & 0xFFFFF, "DMA.DOM_CUR_BASE_HI.ADDR": base >> 20,
            "DMA.DOM_CUR_LIMIT.PAGES": limit,
            "DMA.GUEST_STATUS.RESULT": int(self.guest_result),
            "DMA.FAULT_STATUS.COUNT": len(self.faults), "DMA.FAULT_STATUS.OVERFLOW": int(self.overflow),
            "DMA.FAULT_REC0.REASON": head.reason if head else 0,
            "DMA.FAULT_REC0.WRITE": int(head.write) if head else 0,
            "DMA.FAULT_REC0.VALID": int(head is not None),
            "DMA.FAULT_REC0.PASID": head.pasid if head else 0,
            "DMA.FAULT_REC1.PAGE": head.page if head else 0,
            "DMA.FAULT_OVF_COUNT.COUNT": self.ovf_count,
            "DMA.FAULT_CAP.DEPTH": self.fault_depth, "DMA.FAULT_CAP.QUOTA": self.fault_quota,
            "DMA.CNT_ALLOWED.COUNT": self.counters["allowed"] & 0xFFFF_FFFF,
            "DMA.CNT_BLOCKED.COUNT": self.counters["blocked"] & 0xFFFF_FFFF,
            "DMA.CNT_DIRTIED.COUNT": self.counters["dirtied"] & 0xFFFF_FFFF,
        })
        del st

    def _field(self, path):
        return self._regs.field(path)

    def read(self, addr):
        """Return ``(resp, value)`` for a read at absolute address ``addr``."""
        if self._regs.window_at(addr) is None:     # the windows read the model, not these values
            self._refresh()
        return self._regs.read(addr)

    def write(self, addr, data, strb=0xF):
        """Apply a write at absolute address ``addr``; return the response."""
        resp = self._regs.write(addr, data, strb)
        reg = self._regs.register_at(addr)
        if resp != Resp.OKAY or reg is None or self._regs.window_at(addr) is not None:
            return resp
        mask = strobe_mask(strb)
        pulses = {f.name for f in reg.fields
                  if f.singlepulse and (data & mask & f.mask)}
        if not pulses:
            return resp
        # A pulse field reads as 0: drop it from storage.
        self._regs.storage[reg.path] &= ~sum(f.mask for f in reg.fields if f.singlepulse)
        f = self._field
        if reg.path == "DMA.OP" and "GO" in pulses:
            self.range_op(f("DMA.OP.CODE"), f("DMA.OP.DOMAIN"), f("DMA.OP_START.PAGE"),
                          f("DMA.OP_COUNT.COUNT"))
        elif reg.path == "DMA.ADI_CMD" and "WRITE" in pulses:
            self.set_adi(f("DMA.ADI_SEL.INDEX"), f("DMA.ADI_ENTRY.PASID"), f("DMA.ADI_ENTRY.DOMAIN"),
                         f("DMA.ADI_ENTRY.VALID"))
        elif reg.path == "DMA.DOM_CMD" and "WRITE" in pulses:
            base = f("DMA.DOM_BASE_HI.ADDR") << 32 | f("DMA.DOM_BASE_LO.ADDR") << 12
            self.set_domain(f("DMA.DOM_SEL.INDEX"), base, f("DMA.DOM_LIMIT.PAGES"))
        elif reg.path == "DMA.FAULT_CTRL":
            if "POP" in pulses:
                self.pop_fault()
            if "CLEAR_OVERFLOW" in pulses:
                self.clear_overflow()
        elif reg.path == "DMA.CNT_CTRL" and "CLEAR" in pulses:
            self.counters = {k: 0 for k in self.counters}
        return resp


class _GuestWindow:
    """GUEST.MAP / GUEST.UNMAP: a write performs the operation; a read returns the last value."""

    def __init__(self, model):
        self.model = model
        self.values = {regmap.DMA_GUEST_BASE + GUEST_MAP: 0, regmap.DMA_GUEST_BASE + GUEST_UNMAP: 0}

    def read(self, addr):
        return Resp.OKAY, self.values[addr & ~3]

    def write(self, addr, data, strb=0xF):
        a = addr & ~3
        m = strobe_mask(strb) & 0x03FF_FFFF
        v = self.values[a] = (self.values[a] & ~m) | (data & m)
        page, adi = v & 0xFFFFF, v >> 20
        if a == regmap.DMA_GUEST_BASE + GUEST_MAP:
            self.model.guest_map(adi, page)
        else:
            self.model.guest_unmap(adi, page)
        return Resp.OKAY


class _BitmapWindow:
    """BMAP (selected bitmap, read-only) and HARVEST (dirty log, read-and-clear)."""

    def __init__(self, model, harvest):
        self.model = model
        self.harvest = harvest
        self.base = regmap.DMA_HARVEST_BASE if harvest else regmap.DMA_BMAP_BASE

    def read(self, addr):
        m = self.model
        word = (addr - self.base) >> 2
        if self.harvest:
            dom, bitmap = m._field("DMA.HARVEST_CTRL.DOMAIN"), Bitmap.DIRTY
        else:
            dom, bitmap = m._field("DMA.BMAP_SEL.DOMAIN"), m._field("DMA.BMAP_SEL.BITMAP")
        if word >= m.params.pages_per_domain // WORD_PAGES or dom >= m.params.num_domains:
            return Resp.DECERR, 0
        if self.harvest:
            return Resp.OKAY, m.harvest_word(dom, word, bool(m._field("DMA.HARVEST_CTRL.NO_CLEAR")))
        return Resp.OKAY, m.read_word(bitmap, dom, word)

    def write(self, addr, data, strb=0xF):
        return Resp.SLVERR


class _LostWindow:
    """FAULT_LOST: word s is source s's lost count, read and cleared; DECERR beyond the sources."""

    def __init__(self, model):
        self.model = model

    def read(self, addr):
        word = (addr - regmap.DMA_FAULT_LOST_BASE) >> 2
        if word >= len(self.model.lost):
            return Resp.DECERR, 0
        return Resp.OKAY, self.model.read_lost(word)

    def write(self, addr, data, strb=0xF):
        return Resp.SLVERR
