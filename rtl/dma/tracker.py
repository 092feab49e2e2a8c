"""DMA tracker: PASID -> domain, pinned/mapped check, dirty log, lazy unpin.

The hardware half of DMA tracking for pass-through devices, after coIOMMU
(Tian et al., USENIX ATC 2020): the hypervisor pins only what the guest maps
and unpins lazily; the guest's map/unmap fast path touches only bitmaps.

Per domain and per 4 KiB guest page, four bitmaps live in block RAM as 32-bit
words (word ``w`` of domain ``d`` is at address ``d * pages/32 + w``, bit
``n`` is page ``32 w + n``):

* **pinned**: set and cleared only by privileged range operations (OP);
* **mapped**: set by a guest map only if the page is pinned, cleared by a
  guest unmap or a forced unpin. Only mapped pages are reachable by DMA, so a
  guest can never make the device reach an unpinned page (mapped implies
  pinned is kept by every operation);
* **unmap requested**: set by a guest unmap (no hypercall); cleared by the
  hypervisor's lazy unpin (RECLAIM), a forced UNPIN or CLEAR_UNMAP;
* **dirty**: set by every write request let through; harvested in the
  VFIO/IOMMUFD dirty-bitmap layout (little-endian u64 words, bit n = page n),
  read-and-clear unless NO_CLEAR.

Request path (one request per clock, never stalled by CSR traffic; short
register stages, for the clock rate)::

    A : accept (credit check; a dirty-bitmap read takes the slot)
    C : ADI table CAM: the PASID compared with every entry, 4 bits at a time
    D0: ... the chunks combined: the matching entries
    D1: the lowest matching entry, one-hot
    D2: its domain: an AND-OR of the one-hot, by groups of four entries ...
    D3: ... and of the groups; the bitmap word address
    M : the block RAMs take the address; the domain's window is looked up
        (an AND-OR with the one-hot domain the CAM stages carried along, by
        groups of four domains)
    O : the block RAMs' output registers; the window's groups are ORed
    R : the words arrive; dirty: the writes S made in M and O are merged
    T : the mapped bit is selected (pre-decoded one-hot); window check and
        host address (low half); dirty: S's write of R is merged
    S : decide; set the dirty bit (read-modify-write, S's write of T
        forwarded); push the outcome into the output FIFO (every request) and
        a fault record, with its source, into the fault queue (blocked ones)

A request accepted in cycle ``c`` is decided in ``c + DECIDE_LATENCY`` (10),
and its ``out`` beat is valid from ``c + DECIDE_LATENCY + 1`` (the output
FIFO is a :class:`~siov.rtl.stream.BypassFifo`, which passes a word written
into it when empty to its output register at once).
The bitmaps are :class:`~.bram.BitmapRam` block RAMs with a registered output
(read latency 2: the ECP5 block RAM's clock-to-out without its output
register alone is longer than a 5 ns clock).

Output stream: every accepted request gives exactly one ``out`` beat, in
acceptance order, so the requester learns the outcome of each one. Allowed:
``fault`` = 0, ``reason`` = 0, ``addr`` = the translated host byte address.
Blocked: ``fault`` = 1, ``reason`` = the fault reason below, ``addr`` = 0;
``write``, ``pasid`` and ``page`` are the request's, ``domain`` is the
requester's domain (0 when its PASID is bound to none). The output FIFO
holds the host page and the reason whatever the verdict, and the verdict
gates them at its output: the decision drives a few bits into the FIFO, not
each of the 52 address bits.

``req.ready`` is a credit check on the output FIFO: a credit counter holds
the FIFO entries not yet promised to a request (taken a cycle after accept,
given back a cycle after a beat leaves the FIFO; the check allows for the
one being taken), so every request in flight, allowed or not, has its entry
and no stage after A ever stalls, so no read data can go stale.
The mapped check sees the bitmap as it was at the end of stage M (the read
is transparent to an engine write in that cycle); the ADI table is the one
of stage C and the domain window the one of stage M. Faults are VT-d style
records {reason, PASID, page, write}, the reason a ``Reason``
(``DmaFaultReason`` in ``rtl/regs.rdl``): a write or read to a page that is
not mapped (or beyond the domain's bitmap), a PASID bound to no domain, a
page mapped but outside the domain's host window (DOM_LIMIT). The fault
queue is a :class:`~siov.rtl.faultq.FaultQueue`: each record's source is the
requester's domain, or ``num_domains`` for a PASID bound to none, and a
source holds at most ``fault_quota`` records at once. A fault not queued (its
source at its quota, or the queue full) sets a sticky overflow flag and is
counted (as VT-d's PFO), in total and in its source's lost count (the
FAULT_LOST window): no fault is silently lost, and none of one domain's
faults can crowd out another's.

Dirty bitmap hazards. Each bitmap is a simple dual-port block RAM (one
synchronous read port, one write port). Setting a dirty bit reads the word in
M and writes it back in S, four cycles later; the read cannot see the writes
S makes in those four cycles (the one of M itself included: the block RAM's
read-during-write result is never used), so the last two writes are kept
and forwarded: the writes of M and O into R, the write of R into T, the
write of T into S (address matches are computed a stage ahead). Back-to-back
writes to one word neither stall nor lose a bit. A harvest read (and a
bitmap-window read of the dirty bitmap) is registered, takes the request
slot of the next cycle (``req.ready`` low for that one cycle) and runs
through the same read-modify-write path, writing zeros unless NO_CLEAR: the
read-and-clear is atomic against requests by construction, and a write
decided just before it is forwarded into it (in this harvest) while one
decided just after it lands in the word after the clear (in the next one).
One request slot per 32 harvested pages is the price of a single write port.

The engine (range operations, guest map/unmap, bitmap-window reads of the
other bitmaps) works one word at a time: IDLE (which issues the word), RD,
OUT, LATCH, FLAGS, HITS, EVAL, WRITE, one-hot, one cycle each after IDLE.

The tracker is a composition of parts, one job each, each with its own unit
test against a Python model (tests/test_dma_parts.py):

* :class:`~.front.TrackerFront`: the register bank, the harvest window and
  the bitmap window;
* :class:`~.tables.DomainTables`: the ADI table and the domain windows;
* :class:`~.pipeline.RequestPipeline`: the request path, made of the
  :class:`~.lookup.AddressLookup` (PASID -> domain, window), the
  :class:`~.dirtylog.DirtyLog` (the dirty bitmap's read-modify-write) and
  the :class:`~.outq.OutcomeQueue` (output FIFO and credits);
* :class:`~.engine.BitmapEngine` with :class:`~.guest.GuestOps` and
  :class:`~.rangeop.RangeOps`: the other three bitmaps;
* :class:`~.faults.TrackerFaults`: the fault queue
  (:class:`~siov.rtl.faultq.FaultQueue`, shared with the interrupt unit);
* :class:`~.counters.TrackerCounters`: CNT_ALLOWED, CNT_BLOCKED, CNT_DIRTIED.

Formal harnesses observe the parts through :meth:`DmaTracker.observe`.

The ADI-to-domain table is a CAM of ``num_adis`` entries {valid, PASID,
domain}, indexed by ADI and written by the hypervisor (ADI_SEL/ADI_ENTRY/
ADI_CMD). A request belongs to the domain of the lowest valid entry whose
PASID matches; an entry whose domain is not below ``num_domains`` matches
nothing. Each domain's guest memory is a contiguous window of host memory:
guest page ``n`` is at ``BASE + n * 4096`` and must be below ``LIMIT`` pages.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..csr.bus import CsrSignature
from ..params import DeviceParams, require_params
from .common import DOMAIN_BITS, FAULT_LAYOUT, OUT_LAYOUT, REQ_LAYOUT, word_address
from .counters import TrackerCounters
from .defs import Bitmap
from .engine import BitmapEngine
from .faults import FAULT_LATENCY, TrackerFaults
from .front import CSR_ADDR_WIDTH, TrackerFront
from .guest import GuestOps
from .pipeline import DECIDE_LATENCY, RequestPipeline
from .rangeop import RangeOps
from .tables import DomainTables

__all__ = ["DmaTracker", "REQ_LAYOUT", "OUT_LAYOUT", "FAULT_LAYOUT", "DOMAIN_BITS", "CSR_ADDR_WIDTH",
           "FAULT_LATENCY"]


class DmaTracker(wiring.Component):
    """DMA tracker block.

    Parameters
    ----------
    params : DeviceParams
        ``num_domains``, ``pages_per_domain`` and ``num_adis`` size the bitmaps
        and the ADI table.
    out_depth : int
        Entries of the output FIFO (at least 4; 16 sustain one request per
        clock: the credit loop from accept to the FIFO's read is 12 cycles).
    fault_depth : int
        Entries of the fault queue, a power of two 2..128.
    fault_quota : int or None
        Records one source (a domain, or the faults of no domain) may hold in
        the fault queue at once, 1..``fault_depth`` (default
        :func:`~siov.rtl.faultq.default_quota`: a quarter of the depth).
    primitive : None or "ecp5"
        How the bitmap block RAMs are built (:class:`~.bram.BitmapRam`):
        inferred (default; simulation, formal, lint) or ECP5 DP16KD with the
        output register inside the block RAM (synthesis only).

    Attributes
    ----------
    csr : In(CsrSignature(16))
        Local addresses of the ``DMA`` window of the register map.
    req : In(stream.Signature(REQ_LAYOUT))
        DMA requests to check.
    out : Out(stream.Signature(OUT_LAYOUT))
        The outcome of every accepted request, in order: translated to a host
        address if let through (``fault`` = 0), else ``fault`` = 1 with the
        fault ``reason`` and ``addr`` = 0.
    taps : dict of Signal
        Observation points for testbenches and formal harnesses (not ports):
        ``harvest`` pulses in the cycle a dirty-bitmap read takes its word
        (and clears it unless NO_CLEAR), ``decide`` in the cycle a request is
        decided, ``allow`` if it was let through, ``fault_pop`` in the cycle
        a record leaves the fault queue (the cycle after a POP's pulse), ``fault_decide`` in the
        cycle the queue takes or refuses a fault (:data:`FAULT_LATENCY`
        after its decision).
    ram : dict of Bitmap to BitmapRam
        The four bitmaps' block RAMs; ``mem`` their behavioural memories (None
        with a primitive), to which a formal harness may add read ports.
    """

    #: Cycles from the accept of a request to its decision (stage S).
    DECIDE_LATENCY = DECIDE_LATENCY

    def __init__(self, params=DeviceParams(), *, out_depth=16, fault_depth=16, fault_quota=None, primitive=None):
        require_params(params, "DMA tracker")
        if not isinstance(out_depth, int) or out_depth < 4:
            raise ValueError(f"Output FIFO depth must be an integer of at least 4, not {out_depth!r}")
        if (not isinstance(fault_depth, int) or not 2 <= fault_depth <= 128
                or fault_depth & (fault_depth - 1)):
            raise ValueError(f"Fault queue depth must be a power of two 2..128, not {fault_depth!r}")
        self.params = params
        self.out_depth = out_depth
        self.fault_depth = fault_depth
        self.primitive = primitive
        self.words_per_domain = params.pages_per_domain // 32
        #: Page bits within a domain's bitmap (pages_per_domain is a power of two).
        self.page_bits = exact_log2(params.pages_per_domain)
        self.depth = params.num_domains * self.words_per_domain
        # The parts (made here so that a formal harness can observe them, and
        # add its own read ports to the block RAMs, before elaboration).
        self.front = TrackerFront(params)
        self.tables = DomainTables(params)
        self.pipeline = RequestPipeline(params, out_depth=out_depth, primitive=primitive)
        self.engine = BitmapEngine(params, primitive=primitive)
        self.guest = GuestOps(params)
        self.range = RangeOps(params)
        self.faults = TrackerFaults(params.num_domains, depth=fault_depth, quota=fault_quota)
        self.counters = TrackerCounters()
        self.fault_quota = self.faults.quota
        self.aw = self.pipeline.aw
        super().__init__({
            "csr": In(CsrSignature(CSR_ADDR_WIDTH)),
            "req": In(stream.Signature(REQ_LAYOUT)),
            "out": Out(stream.Signature(OUT_LAYOUT)),
        })
        self.ram = {**self.engine.ram, Bitmap.DIRTY: self.pipeline.dirty.ram}
        #: The behavioural memories (None with a primitive).
        self.mem = {b: r.mem for b, r in self.ram.items()}
        self.taps = {"harvest": Signal(name="evt_harvest"), "decide": Signal(name="evt_decide"),
                     "allow": Signal(name="evt_allow"), "fault_pop": Signal(name="evt_fault_pop"),
                     "fault_decide": Signal(name="evt_fault_decide")}

    def word_addr(self, word, domain):
        """Block RAM address of bitmap ``word`` of ``domain`` (both in range)."""
        return word_address(self.params, word, domain)

    def observe(self):
        """Observation points of the parts for formal harnesses (not ports), by part:
        ``tables`` (the ADI table ``adi`` and the domain ``windows``, ports of
        :class:`~.tables.DomainTables`), ``pipeline`` (:meth:`RequestPipeline.observe`),
        ``engine`` (:meth:`BitmapEngine.observe`) and ``fault_fifo`` (the fault
        queue's FIFO, for its invariants)."""
        return {"tables": {"adi": self.tables.adi, "windows": self.tables.windows},
                "pipeline": self.pipeline.observe(), "engine": self.engine.observe(),
                "fault_fifo": self.faults.queue.fifo}

    def elaborate(self, platform):
        m = Module()
        front, tables, pl, eng = self.front, self.tables, self.pipeline, self.engine
        guest, rng, faults, counters = self.guest, self.range, self.faults, self.counters
        for name in ("front", "tables", "pipeline", "engine", "guest", "range", "faults", "counters"):
            m.submodules[name] = getattr(self, name)
        r, ext = front.field, front.ext
        wiring.connect(m, wiring.flipped(self.csr), front.csr)
        # The tables, written and read back through the registers.
        m.d.comb += [
            tables.adi_index.eq(r("DMA.ADI_SEL.INDEX")), tables.adi_write.eq(r("DMA.ADI_CMD.WRITE")),
            tables.adi_entry.valid.eq(r("DMA.ADI_ENTRY.VALID")), tables.adi_entry.pasid.eq(r("DMA.ADI_ENTRY.PASID")),
            tables.adi_entry.domain.eq(r("DMA.ADI_ENTRY.DOMAIN")),
            tables.dom_index.eq(r("DMA.DOM_SEL.INDEX")), tables.dom_write.eq(r("DMA.DOM_CMD.WRITE")),
            tables.dom_base.eq(Cat(r("DMA.DOM_BASE_LO.ADDR"), r("DMA.DOM_BASE_HI.ADDR"))),
            tables.dom_limit.eq(r("DMA.DOM_LIMIT.PAGES")),
            r("DMA.ADI_CUR.VALID").eq(tables.cur_adi.valid), r("DMA.ADI_CUR.PASID").eq(tables.cur_adi.pasid),
            r("DMA.ADI_CUR.DOMAIN").eq(tables.cur_adi.domain),
            r("DMA.DOM_CUR_BASE_LO.ADDR").eq(tables.cur_dom.base[:20]),
            r("DMA.DOM_CUR_BASE_HI.ADDR").eq(tables.cur_dom.base[20:]),
            r("DMA.DOM_CUR_LIMIT.PAGES").eq(tables.cur_dom.limit),
        ]
        # The request path, with the dirty-bitmap reads in its free slots.
        wiring.connect(m, wiring.flipped(self.req), pl.req)
        wiring.connect(m, pl.out, wiring.flipped(self.out))
        m.d.comb += [pl.adi.eq(tables.adi), pl.windows.eq(tables.windows),
                     pl.harvest.eq(front.harvest), pl.harvest_word.eq(front.harvest_word),
                     pl.harvest_domain.eq(front.harvest_domain), front.done.eq(pl.done), front.word.eq(pl.word),
                     eng.mapped_addr.eq(pl.mapped_addr), pl.mapped_word.eq(eng.mapped_word)]
        # The bitmap engine and its three kinds of work.
        wiring.connect(m, ext["dma_guest"], guest.bus)
        m.d.comb += [
            guest.adi.eq(tables.adi), guest.done.eq(eng.guest_done),
            eng.guest.ready.eq(guest.ready), eng.guest.refuse.eq(guest.refuse),
            eng.guest.refuse_result.eq(guest.refuse_result), eng.guest.unmap.eq(guest.unmap),
            eng.guest.page.eq(guest.page), eng.guest.domain.eq(guest.domain),
            r("DMA.GUEST_STATUS.RESULT").eq(eng.result),
            eng.window.eq(front.window), front.window_done.eq(eng.window_done),
            front.window_data.eq(eng.window_data),
            rng.start.eq(r("DMA.OP_START.PAGE")), rng.count.eq(r("DMA.OP_COUNT.COUNT")),
            rng.code.eq(r("DMA.OP.CODE")), rng.domain.eq(r("DMA.OP.DOMAIN")), rng.go.eq(r("DMA.OP.GO")),
            rng.step.eq(eng.range_step),
            eng.range.busy.eq(rng.busy), eng.range.code.eq(rng.op_code), eng.range.domain.eq(rng.op_domain),
            eng.range.word.eq(rng.word), eng.range.mask.eq(rng.mask),
            r("DMA.STATUS.BUSY").eq(rng.busy), r("DMA.STATUS.ERR").eq(rng.err),
        ]
        # Counters and faults.
        wiring.connect(m, ext["dma_fault_lost"], faults.lost)
        m.d.comb += [
            counters.allowed.eq(pl.allow), counters.blocked.eq(pl.block), counters.dirtied.eq(pl.dirtied),
            counters.clear.eq(r("DMA.CNT_CTRL.CLEAR")),
            r("DMA.CNT_ALLOWED.COUNT").eq(counters.count.allowed),
            r("DMA.CNT_BLOCKED.COUNT").eq(counters.count.blocked),
            r("DMA.CNT_DIRTIED.COUNT").eq(counters.count.dirtied),
            faults.offer.eq(pl.block), faults.record.eq(pl.fault), faults.source.eq(pl.fault_source),
            faults.pop.eq(r("DMA.FAULT_CTRL.POP")), faults.clear_overflow.eq(r("DMA.FAULT_CTRL.CLEAR_OVERFLOW")),
            r("DMA.FAULT_CAP.DEPTH").eq(self.fault_depth), r("DMA.FAULT_CAP.QUOTA").eq(self.fault_quota),
            r("DMA.FAULT_STATUS.COUNT").eq(faults.level), r("DMA.FAULT_STATUS.OVERFLOW").eq(faults.overflow),
            r("DMA.FAULT_OVF_COUNT.COUNT").eq(faults.ovf_count),
            r("DMA.FAULT_REC0.VALID").eq(faults.head.valid),
            r("DMA.FAULT_REC0.REASON").eq(faults.head.record.reason),
            r("DMA.FAULT_REC0.WRITE").eq(faults.head.record.write),
            r("DMA.FAULT_REC0.PASID").eq(faults.head.record.pasid),
            r("DMA.FAULT_REC1.PAGE").eq(faults.head.record.page),
        ]
        m.d.comb += [self.taps["harvest"].eq(pl.done.mem), self.taps["decide"].eq(pl.decide),
                     self.taps["allow"].eq(pl.allow), self.taps["fault_pop"].eq(faults.popped),
                     self.taps["fault_decide"].eq(faults.decided)]
        return m
