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

The ADI-to-domain table is a CAM of ``num_adis`` entries {valid, PASID,
domain}, indexed by ADI and written by the hypervisor (ADI_SEL/ADI_ENTRY/
ADI_CMD). A request belongs to the domain of the lowest valid entry whose
PASID matches; an entry whose domain is not below ``num_domains`` matches
nothing. Each domain's guest memory is a contiguous window of host memory:
guest page ``n`` is at ``BASE + n * 4096`` and must be below ``LIMIT`` pages.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from .. import regmap
from ..stream import BypassFifo
from ..csr.banked import BankedRegisters
from ..csr.bus import CsrSignature, Resp
from ..counter import split_counter
from ..faultq import FaultQueue
from ..params import DeviceParams, require_params
from .bram import BitmapRam, chunk_equal
from .defs import PAGE_BITS, PAGE_SHIFT, PASID_BITS, Bitmap, GuestResult, RangeOp, Reason

__all__ = ["DmaTracker", "REQ_LAYOUT", "OUT_LAYOUT", "DOMAIN_BITS", "CSR_ADDR_WIDTH", "FAULT_LATENCY"]

#: Width of a domain index (64 domains at most, see DeviceParams).
DOMAIN_BITS = 6
#: The engine's operations, one flag each: guest map and unmap, a bitmap
#: window read, and the range ops (pin, unpin, reclaim, clear unmap-requested).
ENGINE_OPS = ("gmap", "gunmap", "win", "pin", "unpin", "reclaim", "clr")
#: The tracker's CSR window is 64 KiB.
CSR_ADDR_WIDTH = 16

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
_OUT_FIFO_LAYOUT = data.StructLayout({"host": 64 - PAGE_SHIFT, "write": 1, "pasid": PASID_BITS,
                                      "domain": DOMAIN_BITS, "page": PAGE_BITS,
                                      "fault": 1, "reason": 8})
_FAULT_LAYOUT = data.StructLayout({"reason": 8, "write": 1, "pasid": PASID_BITS, "page": PAGE_BITS})
#: Cycles from a fault's decision (stage S) to the fault queue's decision to
#: queue it or count it lost (against the queue as it stood at that cycle's
#: start): the queue's two stages (:class:`~siov.rtl.faultq.FaultQueue`).
FAULT_LATENCY = 2


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
    """

    #: Cycles from the accept of a request to its decision (stage S).
    DECIDE_LATENCY = 10

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
        # (The fault queue checks the quota.)
        self._fault_queue = FaultQueue(width=_FAULT_LAYOUT.size, depth=fault_depth,
                                       sources=params.num_domains + 1, quota=fault_quota, stages=FAULT_LATENCY,
                                       lost_addr_width=max(2, (regmap.EXTERNALS["DMA.FAULT_LOST"].size - 1).bit_length()))
        self.fault_quota = self._fault_queue.quota
        super().__init__({
            "csr": In(CsrSignature(CSR_ADDR_WIDTH)),
            "req": In(stream.Signature(REQ_LAYOUT)),
            "out": Out(stream.Signature(OUT_LAYOUT)),
        })
        self.words_per_domain = params.pages_per_domain // 32
        #: Page bits within a domain's bitmap (pages_per_domain is a power of two).
        self.page_bits = exact_log2(params.pages_per_domain)
        self.depth = params.num_domains * self.words_per_domain
        # Block RAMs (made here so that a formal harness can add its own
        # combinational read ports to their memories before elaboration).
        # Engine (range ops, guest ops, bitmap window): pinned, mapped,
        # unmap-requested (read port 0). The request path reads mapped
        # through its second read port, transparent for the engine's write.
        # The dirty bitmap's write port is registered: its write data is made
        # by the request pipeline's last stage, which the placer puts far from
        # the block RAM. The word of a read that meets the registered write
        # landing is substituted in stage T, a stage after the block RAM's
        # output meets the forwarding mux.
        self.ram = {b: BitmapRam(self.depth, transparent=(False, True) if b == Bitmap.MAPPED else (False,),
                                 write_reg=b == Bitmap.DIRTY, bypass_landing=b != Bitmap.DIRTY, primitive=primitive,
                                 name=f"ram_{b.name.lower()}")
                    for b in Bitmap}
        #: The behavioural memories (None with a primitive): the engine's
        #: pinned, mapped, unmap-requested and dirty bitmaps.
        self.mem = {b: r.mem for b, r in self.ram.items()}
        self.taps = {"harvest": Signal(name="evt_harvest"), "decide": Signal(name="evt_decide"),
                     "allow": Signal(name="evt_allow"), "fault_pop": Signal(name="evt_fault_pop"),
                     "fault_decide": Signal(name="evt_fault_decide")}
        # State that formal harnesses state properties about (made here so a
        # harness can name it before elaboration).
        D, A = params.num_domains, params.num_adis
        aw = max(1, ceil_log2(self.depth))
        self.aw = aw
        self._adi_valid = [Signal(name=f"adi{i}_valid") for i in range(A)]
        self._adi_pasid = [Signal(PASID_BITS, name=f"adi{i}_pasid") for i in range(A)]
        self._adi_dom = [Signal(DOMAIN_BITS, name=f"adi{i}_domain") for i in range(A)]
        self._dom_base = [Signal(64 - PAGE_SHIFT, name=f"dom{d}_base") for d in range(D)]
        self._dom_limit = [Signal(32, name=f"dom{d}_limit") for d in range(D)]
        #: The limit covers the whole bitmap (at least pages_per_domain):
        #: stored with the limit, so that the request pipeline looks up and
        #: compares only the limit's low bits (a page beyond the bitmap is
        #: refused whatever its window says).
        self._dom_limit_big = [Signal(name=f"dom{d}_limit_big") for d in range(D)]
        # Stage C (CAM compare), stage M (block RAM address), stage S (decision).
        self._c_valid = Signal(name="c_valid")
        self._c_req = Signal(REQ_LAYOUT, name="c_req")
        self._m_valid = Signal(name="m_valid")
        self._m_req = Signal(REQ_LAYOUT, name="m_req")
        self._m_dom = Signal(DOMAIN_BITS, name="m_dom")
        self._m_addr = Signal(aw, name="m_addr")
        self._s_valid = Signal(name="s_valid")
        self._o_req = Signal(REQ_LAYOUT, name="o_req")
        self._o_dom = Signal(DOMAIN_BITS, name="o_dom")
        #: Valid flags of the stages after A (C, D0, D1, D2, D3, M, O, R, T, S).
        self._valids = [self._c_valid] + [Signal(name=f"{n}_valid") for n in ("d0", "d1", "d2", "d3")] + [
            self._m_valid] + [Signal(name=f"{n}_valid") for n in ("o", "r", "t")] + [self._s_valid]
        #: ... and whether each holds a dirty-bitmap read or clear (never with a request).
        self._h_mems = [Signal(name=f"hmem{k}") for k in range(len(self._valids))]
        self._credits = Signal(range(out_depth + 1), init=out_depth, name="credits")
        self._no_credit = Signal(name="no_credit")      # credits == 0 (out_depth >= 4)
        self._one_credit = Signal(name="one_credit")    # credits == 1
        self._out_level = Signal(range(out_depth + 1), name="out_level")
        self._pop_q = Signal(name="pop_q")            # a credit on its way back
        # Guarded: the credits keep the producer from writing into a full
        # FIFO (asserted by the formal harness), so its full flag stays off
        # the write path.
        self._out_fifo = BypassFifo(width=_OUT_FIFO_LAYOUT.size, depth=out_depth, guarded=True)
        self._s1 = Signal(REQ_LAYOUT, name="s_req")
        self._s1_dom = Signal(DOMAIN_BITS, name="s_dom")
        self._out_rec = Signal(OUT_LAYOUT, name="out_rec")
        self._out_push = Signal(name="out_push")     # out_rec enters the output FIFO
        self._out_w_rdy = Signal(name="out_w_rdy")   # the output FIFO has room
        self._h1_clear = Signal(name="h1_clear")     # a harvest clears word s1_addr now
        self._s1_addr = Signal(aw, name="s_addr")
        #: The engine's choice flags are high only in IDLE (asserted formally).
        self._e_choice_in_idle = Signal(name="e_choice_in_idle")
        #: The engine's choice flags for its next word, and whether any is set.
        self._e_next = {k: Signal(name=f"e_next_{k}") for k in ("refuse", "guest", "win", "range", "any")}
        #: The engine's one-hot state (IDLE, RD, OUT, LATCH, FLAGS, HITS, EVAL, WRITE).
        self._e_states = [Signal(name=f"e_at_{n}", init=(n == "idle"))
                          for n in ("idle", "rd", "out", "latch", "flags", "hits", "eval", "write")]
        self._cur = Signal(32, name="cur")            # dirty word s1_addr, forwarded
        #: The engine's word address, its operation (one flag per kind, at
        #: most one set) and bit mask, and the pinned/mapped/unmap-requested
        #: words it latched (the invariants of the mapped-implies-pinned proof).
        self._e_addr = Signal(aw, name="e_addr")
        self._e_op = {k: Signal(name=f"op_{k}") for k in ENGINE_OPS}
        self._e_mask = Signal(32, name="e_mask")
        self._e_words = {Bitmap.PINNED: Signal(32, name="pw"), Bitmap.MAPPED: Signal(32, name="mw"),
                         Bitmap.UNMAP: Signal(32, name="uw")}

    # -- helpers -----------------------------------------------------------

    def _word_addr(self, word, domain):
        """Memory address of ``word`` of ``domain`` (both in range)."""
        wbits = exact_log2(self.words_per_domain)
        return Cat(word[:wbits], domain)[:self.aw]

    @staticmethod
    def _reg_port(m, port, name):
        """The request side of an external window port, registered (its strobe a cycle late)."""
        class Q:
            pass
        q = Q()
        for f in ("stb", "we", "addr", "wdata", "wstrb"):
            sig = getattr(port, f)
            setattr(q, f, Signal.like(sig, name=f"{name}_{f}"))
            m.d.sync += getattr(q, f).eq(sig)
        return q

    @staticmethod
    def _outcome(m, rec, out):
        """Drive ``out`` (OUT_LAYOUT) from an output FIFO record: the address
        and the reason gated by the verdict."""
        m.d.comb += [out.addr.eq(Mux(rec.fault, 0, Cat(Const(0, PAGE_SHIFT), rec.host))),
                     out.write.eq(rec.write), out.pasid.eq(rec.pasid),
                     out.domain.eq(rec.domain), out.page.eq(rec.page),
                     out.fault.eq(rec.fault), out.reason.eq(Mux(rec.fault, rec.reason, 0))]

    @staticmethod
    def _and_or_by_fours(m, sel, values, name):
        """``values[i]`` where the one-hot ``sel[i]`` is set, as an AND-OR by
        groups of four entries, each group registered (``name0``, ``name1``,
        ...): the caller ORs the groups a cycle later. Each select bit drives
        only its own entry's bits."""
        width = len(values[0])
        parts = []
        for g in range(0, len(values), 4):
            part = Signal(width, name=f"{name}{g // 4}")
            acc = Const(0, width)
            for i in range(g, min(g + 4, len(values))):
                acc = acc | (values[i] & sel[i].replicate(width))
            m.d.sync += part.eq(acc)
            parts.append(part)
        return parts

    @staticmethod
    def _or_all(parts):
        acc = Const(0, len(parts[0]))
        for part in parts:
            acc = acc | part
        return acc

    @classmethod
    def _readback(cls, m, name, index, values):
        """``values[index]`` (0 beyond), three cycles late: index decoded one-hot, AND-OR by fours, then the rest.

        The index is decoded one-hot first so that each of its flip-flops
        drives only the bits of its own entry (a binary index would drive
        every bit of every entry, a fan-out of hundreds).
        """
        n = len(values)
        sel = Signal(n, name=f"{name}_sel")
        m.d.sync += sel.eq(Cat(*(index == i for i in range(n))))
        out = Signal(len(values[0]), name=name)
        m.d.sync += out.eq(cls._or_all(cls._and_or_by_fours(m, sel, values, f"{name}_grp")))
        return out

    def elaborate(self, platform):
        m = Module()
        p = self.params
        D, P, A = p.num_domains, p.pages_per_domain, p.num_adis
        WPD = self.words_per_domain
        wbits = exact_log2(WPD)
        kp = self.page_bits
        aw = self.aw

        for b, ram in self.ram.items():
            m.submodules[f"ram_{b.name.lower()}"] = ram

        # The register bus front end (rtl/csr/banked.py): registered window
        # decode, registers in banks of eight words; a register answers five
        # cycles after its strobe.
        m.submodules.csr_front = front = BankedRegisters.for_window(
            "DMA", addr_width=CSR_ADDR_WIDTH, base=regmap.DMA_BASE, bank_words=8)
        wiring.connect(m, wiring.flipped(self.csr), front.csr)
        r, ext = front.port, front.ext

        # ---- ADI -> domain table (CAM) and per-domain host windows ---------
        adi_valid, adi_pasid, adi_dom = self._adi_valid, self._adi_pasid, self._adi_dom
        dom_base, dom_limit = self._dom_base, self._dom_limit

        # Table writes: the entry index is decoded one-hot a cycle ahead (the
        # CMD write is a later bus write than SEL, ENTRY, BASE and LIMIT).
        adi_we = Signal(A, name="adi_we")
        m.d.sync += adi_we.eq(Cat(*(r("DMA.ADI_SEL.INDEX") == i for i in range(A))))
        for i in range(A):
            with m.If(r("DMA.ADI_CMD.WRITE") & adi_we[i]):
                m.d.sync += [adi_valid[i].eq(r("DMA.ADI_ENTRY.VALID")),
                             adi_pasid[i].eq(r("DMA.ADI_ENTRY.PASID")),
                             adi_dom[i].eq(r("DMA.ADI_ENTRY.DOMAIN"))]
        dom_we = Signal(D, name="dom_we")
        m.d.sync += dom_we.eq(Cat(*(r("DMA.DOM_SEL.INDEX") == d for d in range(D))))
        # Whether the limit covers the whole bitmap, made from LIMIT a cycle
        # ahead in the same way: the wide OR is cut in two, three partial ORs
        # of LIMIT's high bits registered here and ORed into the domain's
        # flag by the CMD write (two LUT levels on either side, not three).
        high = r("DMA.DOM_LIMIT.PAGES")[kp:]
        part = -(-len(high) // 3)
        limit_parts = Signal(-(-len(high) // part), name="limit_parts")
        m.d.sync += limit_parts.eq(Cat(*(high[i:i + part].any() for i in range(0, len(high), part))))
        for d in range(D):
            with m.If(r("DMA.DOM_CMD.WRITE") & dom_we[d]):
                m.d.sync += [dom_base[d].eq(Cat(r("DMA.DOM_BASE_LO.ADDR"), r("DMA.DOM_BASE_HI.ADDR"))),
                             dom_limit[d].eq(r("DMA.DOM_LIMIT.PAGES")),
                             self._dom_limit_big[d].eq(limit_parts.any())]
        # Read-back registers, a few cycles behind the table and the index (a
        # bus read comes later): a registered two-level mux.
        cur_adi = self._readback(m, "cur_adi", r("DMA.ADI_SEL.INDEX"),
                                 [Cat(adi_valid[i], adi_pasid[i], adi_dom[i]) for i in range(A)])
        m.d.comb += [r("DMA.ADI_CUR.VALID").eq(cur_adi[0]), r("DMA.ADI_CUR.PASID").eq(cur_adi[1:21]),
                     r("DMA.ADI_CUR.DOMAIN").eq(cur_adi[21:])]
        cur_dom = self._readback(m, "cur_dom", r("DMA.DOM_SEL.INDEX"),
                                 [Cat(dom_base[d], dom_limit[d]) for d in range(D)])
        cur_base, cur_limit = cur_dom[:64 - PAGE_SHIFT], cur_dom[64 - PAGE_SHIFT:]
        m.d.comb += [r("DMA.DOM_CUR_BASE_LO.ADDR").eq(cur_base[:20]),
                     r("DMA.DOM_CUR_BASE_HI.ADDR").eq(cur_base[20:]),
                     r("DMA.DOM_CUR_LIMIT.PAGES").eq(cur_limit)]

        # ---- dirty-bitmap reads (harvest window, bitmap window) -------------
        # A read of the dirty bitmap is registered, then takes the request slot
        # of the next cycle (req.ready low) and runs down the request pipeline
        # through the same read-modify-write path (writing zeros unless
        # NO_CLEAR). Error answers ride the pipeline too, without the slot.
        H = data.StructLayout({"active": 1, "bmap": 1, "mem": 1, "clear": 1, "resp": 2})
        hv_port, bm_port = ext["dma_harvest"], ext["dma_bmap"]
        # The window strobes are registered first (the bank's address decode
        # stays off the tracker's paths).
        hvq = self._reg_port(m, hv_port, "hvq")
        self._bmq = bmq = self._reg_port(m, bm_port, "bmq")
        self._gpq = self._reg_port(m, ext["dma_guest"], "gpq")
        bm_sel = r("DMA.BMAP_SEL.BITMAP")
        bm_dom = r("DMA.BMAP_SEL.DOMAIN")
        hv_dom = r("DMA.HARVEST_CTRL.DOMAIN")
        # The windows' range checks, registered with their strobes (the word
        # from the bus address) or a cycle behind the select registers (a
        # window access comes at least three cycles after a write to them
        # answered): the strobes then meet single bits, not compares.
        self._bm_ok = bm_ok = {k: Signal(name=f"bm_{k}") for k in ("word", "dom", "dirty")}
        hv_word_ok, hv_dom_ok = Signal(name="hv_word_ok"), Signal(name="hv_dom_ok")
        m.d.sync += [bm_ok["word"].eq(bm_port.addr[2:] < WPD), bm_ok["dom"].eq(bm_dom < D),
                     bm_ok["dirty"].eq(bm_sel == Bitmap.DIRTY),
                     hv_word_ok.eq(hv_port.addr[2:] < WPD), hv_dom_ok.eq(hv_dom < D)]
        h_take_hv = hvq.stb
        h_take_bm = bmq.stb & bm_ok["dirty"]
        h_dom = Mux(h_take_hv, hv_dom, bm_dom)
        h_word = Mux(h_take_hv, hvq.addr[2:], bmq.addr[2:])
        h_we = Mux(h_take_hv, hvq.we, bmq.we)
        h_ok = Signal()
        m.d.comb += h_ok.eq(~h_we & Mux(h_take_hv, hv_word_ok & hv_dom_ok, bm_ok["word"] & bm_ok["dom"]))
        a_h = Signal(H)
        a_hword = Signal(max(1, wbits))
        a_hdom = Signal(DOMAIN_BITS)
        m.d.sync += [a_h.active.eq(h_take_hv | h_take_bm), a_h.bmap.eq(~h_take_hv),
                     a_h.mem.eq((h_take_hv | h_take_bm) & h_ok),
                     a_h.clear.eq(h_take_hv & h_ok & ~r("DMA.HARVEST_CTRL.NO_CLEAR")),
                     a_h.resp.eq(Mux(h_ok, Resp.OKAY, Mux(h_we, Resp.SLVERR, Resp.DECERR))),
                     a_hword.eq(h_word), a_hdom.eq(h_dom)]

        # ---- request path --------------------------------------------------
        # A : accept (credit check on the output FIFO; a dirty-bitmap read
        #     takes the slot)
        # C : ADI table CAM: PASID compare per entry
        # D1: the lowest matching entry (one-hot)
        # D2: its domain; the block RAM word address (or the harvest's)
        # M : the block RAMs take the address; the domain's window
        # O : the block RAMs' output registers
        # R : the words arrive (mapped: as of the end of M, with an engine
        #     write in M; dirty: plus the writes S made in M and O)
        # T : select the mapped bit; forward S's write of R into the dirty word
        # S : decide; set the dirty bit (forwarding S's write of T); push the
        #     outcome and a fault record
        req = self.req
        # The output FIFO: a BypassFifo, whose output register gives a word
        # written in cycle c on `out` in c + 1 (SyncFIFOBuffered: c + 2, and
        # its write enable, gated by a compare on its level, was the slowest
        # path of the ECP5 build). The credits below keep it from filling.
        m.submodules.out_fifo = out_fifo = self._out_fifo
        # Credits: free output FIFO entries not promised to a request in flight.
        credits = self._credits
        # (The FIFO's words written and not yet read: what the credit
        # invariant of the formal harness is stated on.)
        m.d.comb += self._out_level.eq(out_fifo.level)
        # A credit is taken a cycle after its request was accepted (on the
        # C stage's valid), so that accept, which hangs off the requester's
        # valid, drives flip-flops only; the ready check counts the credit
        # still being taken.
        # "No credit" and "one credit" are flip-flops kept with the count
        # (the formal harness asserts they agree with it), so that ready is
        # one LUT from flip-flops and accept two.
        c_valid = self._c_valid
        no_credit, one_credit = self._no_credit, self._one_credit
        credit_ok = Signal()
        m.d.comb += credit_ok.eq(~(no_credit | (one_credit & c_valid)))
        m.d.comb += req.ready.eq(credit_ok & ~a_h.mem)
        accept = Signal()
        pop = Signal()
        m.d.comb += [accept.eq(req.valid & req.ready), pop.eq(out_fifo.r_rdy & self.out.ready),
                     self.out.valid.eq(out_fifo.r_rdy), out_fifo.r_en.eq(self.out.ready)]
        head = Signal(_OUT_FIFO_LAYOUT)
        m.d.comb += head.eq(out_fifo.r_data)
        self._outcome(m, head, self.out.payload)
        # A read gives its credit back a cycle later: the FIFO sits at the
        # far end of the pipeline from the accept logic, and the consumer's
        # ready then crosses that distance from a flip-flop. (The loop from
        # accept to the credit's return is DECIDE_LATENCY + 3 cycles, within
        # the FIFO's depth, so one request per clock is still sustained.)
        pop_q = self._pop_q
        m.d.sync += pop_q.eq(pop)
        with m.If(c_valid & ~pop_q):
            m.d.sync += [credits.eq(credits - 1), no_credit.eq(one_credit), one_credit.eq(credits == 2)]
        with m.Elif(pop_q & ~c_valid):
            m.d.sync += [credits.eq(credits + 1), no_credit.eq(0), one_credit.eq(no_credit)]

        def stage(name, layout):
            return Signal(layout, name=name)

        # C
        c_valid, c_req = self._c_valid, self._c_req
        c_h = stage("c_h", H)
        c_hword, c_hdom = Signal.like(a_hword, name="c_hword"), Signal(DOMAIN_BITS, name="c_hdom")
        m.d.sync += [c_valid.eq(accept), c_req.eq(req.payload), c_h.eq(a_h),
                     c_hword.eq(a_hword), c_hdom.eq(a_hdom)]
        # D0: per-entry compare, in 4-bit chunks, with the entry's enable and
        # domain as the CAM saw them (the table of stage C).
        CH = -(-PASID_BITS // 4)
        d0_valid, d0_req, d0_h = self._valids[1], stage("d0_req", REQ_LAYOUT), stage("d0_h", H)
        d0_hword, d0_hdom = Signal.like(a_hword, name="d0_hword"), Signal(DOMAIN_BITS, name="d0_hdom")
        d0_eq = [Signal(CH, name=f"d0_eq{i}") for i in range(A)]
        d0_en = Signal(A, name="d0_en")
        d0_mdom = [Signal(DOMAIN_BITS, name=f"d0_mdom{i}") for i in range(A)]
        # Each entry's domain, also one-hot: the window look-up of stage M is
        # then an AND-OR of the windows with no decoder in front.
        d0_moh = [Signal(D, name=f"d0_moh{i}") for i in range(A)]
        d0_in_range = Signal(name="d0_in_range")
        m.d.sync += [d0_valid.eq(c_valid), d0_req.eq(c_req), d0_h.eq(c_h),
                     d0_hword.eq(c_hword), d0_hdom.eq(c_hdom),
                     d0_in_range.eq(c_req.page < P)]
        for i in range(A):
            m.d.sync += [d0_eq[i].eq(Cat(*(adi_pasid[i][4 * k:4 * k + 4] == c_req.pasid[4 * k:4 * k + 4]
                                           for k in range(CH)))),
                         d0_en[i].eq(c_valid & adi_valid[i] & (adi_dom[i] < D)),
                         d0_mdom[i].eq(adi_dom[i]),
                         d0_moh[i].eq(Cat(*(adi_dom[i] == d for d in range(D))))]
        # D1: per-entry match.
        d1_valid, d1_req, d1_h = self._valids[2], stage("d1_req", REQ_LAYOUT), stage("d1_h", H)
        d1_hword, d1_hdom = Signal.like(a_hword, name="d1_hword"), Signal(DOMAIN_BITS, name="d1_hdom")
        d1_match = Signal(A, name="d1_match")
        d1_mdom = [Signal(DOMAIN_BITS, name=f"d1_mdom{i}") for i in range(A)]
        d1_moh = [Signal(D, name=f"d1_moh{i}") for i in range(A)]
        d1_in_range = Signal(name="d1_in_range")
        m.d.sync += [d1_valid.eq(d0_valid), d1_req.eq(d0_req), d1_h.eq(d0_h),
                     d1_hword.eq(d0_hword), d1_hdom.eq(d0_hdom), d1_in_range.eq(d0_in_range),
                     d1_match.eq(Cat(*(d0_en[i] & d0_eq[i].all() for i in range(A))))]
        m.d.sync += [d1_mdom[i].eq(d0_mdom[i]) for i in range(A)]
        m.d.sync += [d1_moh[i].eq(d0_moh[i]) for i in range(A)]
        # D2: the lowest matching entry, one-hot (``x & -x``: the negation
        # is a carry chain, faster than a priority chain of LUTs).
        d2_valid, d2_req, d2_h = self._valids[3], stage("d2_req", REQ_LAYOUT), stage("d2_h", H)
        d2_hword, d2_hdom = Signal.like(a_hword, name="d2_hword"), Signal(DOMAIN_BITS, name="d2_hdom")
        d2_first = Signal(A, name="d2_first")
        d2_mdom = [Signal(DOMAIN_BITS, name=f"d2_mdom{i}") for i in range(A)]
        d2_moh = [Signal(D, name=f"d2_moh{i}") for i in range(A)]
        d2_hit, d2_in_range = Signal(name="d2_hit"), Signal(name="d2_in_range")
        m.d.sync += [d2_valid.eq(d1_valid), d2_req.eq(d1_req), d2_h.eq(d1_h),
                     d2_hword.eq(d1_hword), d2_hdom.eq(d1_hdom),
                     d2_hit.eq(d1_match.any()), d2_in_range.eq(d1_in_range),
                     # x & -x: the lowest set bit, through one carry chain
                     # (a priority chain of LUTs over every entry is deeper).
                     d2_first.eq(d1_match & (-d1_match.as_signed())[:A])]
        m.d.sync += [d2_mdom[i].eq(d1_mdom[i]) for i in range(A)]
        m.d.sync += [d2_moh[i].eq(d1_moh[i]) for i in range(A)]
        # D3: the domain, an AND-OR of the one-hot (0 if none), in groups of four.
        d3_valid, d3_req, d3_h = self._valids[4], stage("d3_req", REQ_LAYOUT), stage("d3_h", H)
        d3_hword, d3_hdom = Signal.like(a_hword, name="d3_hword"), Signal(DOMAIN_BITS, name="d3_hdom")
        d3_hit, d3_in_range = Signal(name="d3_hit"), Signal(name="d3_in_range")
        d3_part = self._and_or_by_fours(m, d2_first, d2_mdom, "d3_part")
        d3_ohpart = self._and_or_by_fours(m, d2_first, d2_moh, "d3_ohpart")
        m.d.sync += [d3_valid.eq(d2_valid), d3_req.eq(d2_req), d3_h.eq(d2_h),
                     d3_hword.eq(d2_hword), d3_hdom.eq(d2_hdom),
                     d3_hit.eq(d2_hit), d3_in_range.eq(d2_in_range)]
        # M: the domain and the word address.
        m_valid, m_req, m_dom, m_addr = self._m_valid, self._m_req, self._m_dom, self._m_addr
        m_h = stage("m_h", H)
        m_hit, m_in_range = Signal(name="m_hit"), Signal(name="m_in_range")
        dom_sel = Signal(DOMAIN_BITS)
        m.d.comb += dom_sel.eq(self._or_all(d3_part))
        m_dsel = Signal(D, name="m_dsel")
        m.d.sync += m_dsel.eq(self._or_all(d3_ohpart))
        # In a harvest slot no entry matches (the request slot is empty): the
        # harvest's domain and word go in through the same OR.
        addr_dom = dom_sel | Mux(d3_h.mem, d3_hdom, 0)
        addr_word = Mux(d3_h.mem, d3_hword, d3_req.page[5:])
        m.d.sync += [m_valid.eq(d3_valid), m_req.eq(d3_req), m_h.eq(d3_h), m_dom.eq(dom_sel),
                     m_hit.eq(d3_hit), m_in_range.eq(d3_in_range),
                     m_addr.eq(self._word_addr(addr_word, addr_dom))]
        rm, rd = self.ram[Bitmap.MAPPED], self.ram[Bitmap.DIRTY]
        m.d.comb += [rm.r_addrs[1].eq(m_addr), rd.r_addr.eq(m_addr)]

        # Dirty-bitmap writes (stage S), kept for forwarding: w[0] made in the
        # previous cycle, w[1] the one before.
        wp = self.ram[Bitmap.DIRTY]
        w_v = [Signal(name="w1_v"), Signal(name="w2_v")]
        w_d = [Signal(32, name="w1_d"), Signal(32, name="w2_d")]
        m.d.sync += [w_v[0].eq(wp.w_en), w_d[0].eq(wp.w_data), w_v[1].eq(w_v[0]), w_d[1].eq(w_d[0])]
        s_addr = self._s1_addr

        # O
        o_valid, o_req, o_h = self._valids[6], self._o_req, stage("o_h", H)
        o_hit, o_in_range, o_dom = Signal(name="o_hit"), Signal(name="o_in_range"), self._o_dom
        o_addr = Signal(aw, name="o_addr")
        # This word is the one S writes in M: compared by 3-bit chunks in O
        # and combined in R (m_addr sits by the block RAMs' address pins, far
        # from the rest of the pipeline).
        o_eq2 = chunk_equal(m, m_addr, s_addr, "o_eq2")
        # The domain's window, looked up in M: an AND-OR of the windows with
        # the one-hot domain, each select bit driving only its own window's
        # bits. It is registered twice (O, R) before its compare and adder in
        # T.
        # The AND-OR is split: by groups of four domains in M, the groups
        # ORed in O.
        o_base = self._and_or_by_fours(m, m_dsel, dom_base, "o_base")
        # The limit as the compare needs it: its bits below the bitmap's size
        # and whether it covers the whole bitmap (13 bits where there were 32
        # by default). A page beyond the bitmap is refused whatever its
        # window, so the compare looks at the page's bits below that size.
        o_limit = self._and_or_by_fours(m, m_dsel, [Cat(dom_limit[d][:kp], self._dom_limit_big[d])
                                                    for d in range(D)], "o_limit")
        m.d.sync += [o_valid.eq(m_valid), o_req.eq(m_req), o_h.eq(m_h), o_hit.eq(m_hit),
                     o_in_range.eq(m_in_range), o_dom.eq(m_dom), o_addr.eq(m_addr)]
        # R
        r_valid, r_req, r_h = self._valids[7], stage("r_req", REQ_LAYOUT), stage("r_h", H)
        r_hit, r_in_range, r_dom = Signal(name="r_hit"), Signal(name="r_in_range"), Signal(DOMAIN_BITS, name="r_dom")
        r_addr = Signal(aw, name="r_addr")
        r_base, r_limit = Signal(64 - PAGE_SHIFT, name="r_base"), Signal(kp + 1, name="r_limit")
        r_onehot = Signal(32, name="r_onehot")
        r_eq1, r_eq2 = Signal(name="r_eq1"), Signal(name="r_eq2")
        m.d.sync += [r_valid.eq(o_valid), r_req.eq(o_req), r_h.eq(o_h), r_hit.eq(o_hit),
                     r_in_range.eq(o_in_range), r_dom.eq(o_dom), r_addr.eq(o_addr),
                     r_base.eq(self._or_all(o_base)), r_limit.eq(self._or_all(o_limit)),
                     r_onehot.eq(Const(1, 32) << o_req.page[:5]),
                     r_eq1.eq(o_addr == s_addr), r_eq2.eq(o_eq2.all())]
        r_dw = Signal(32)
        r_fwd = Signal()
        m.d.comb += [r_fwd.eq((r_eq1 & w_v[0]) | (r_eq2 & w_v[1])),
                     r_dw.eq(Mux(r_eq1 & w_v[0], w_d[0], Mux(r_eq2 & w_v[1], w_d[1], rd.r_data)))]
        # T
        t_valid, t_req, t_h = self._valids[8], stage("t_req", REQ_LAYOUT), stage("t_h", H)
        t_hit, t_in_range, t_dom = (Signal(name="t_hit"), Signal(name="t_in_range"),
                                          Signal(DOMAIN_BITS, name="t_dom"))
        t_addr = Signal(aw, name="t_addr")
        t_in_window = Signal(name="t_in_window")
        t_host_lo = Signal(33, name="t_host_lo")
        t_host_hi = Signal(64 - PAGE_SHIFT - 32, name="t_host_hi")
        t_onehot = Signal(32, name="t_onehot")
        t_mword, t_dw = Signal(32, name="t_mword"), Signal(32, name="t_dw")
        t_eq1 = Signal(name="t_eq1")
        # The block RAM's landing write (older than those forwarded in R).
        t_land, t_land_dw = Signal(name="t_land"), Signal(32, name="t_land_dw")
        m.d.sync += [t_land.eq(rd.landing_hits[0] & ~r_fwd), t_land_dw.eq(rd.landing_words[0])]
        m.d.sync += [t_valid.eq(r_valid), t_req.eq(r_req), t_h.eq(r_h), t_hit.eq(r_hit),
                     t_in_range.eq(r_in_range), t_dom.eq(r_dom), t_addr.eq(r_addr),
                     t_in_window.eq(r_limit[kp] | (r_req.page[:kp] < r_limit[:kp])), t_host_lo.eq(r_base[:32] + r_req.page),
                     t_host_hi.eq(r_base[32:]), t_onehot.eq(r_onehot),
                     t_mword.eq(rm.r_datas[1]), t_dw.eq(r_dw), t_eq1.eq(r_addr == s_addr)]
        # S
        s_valid, s1, s1_dom = self._s_valid, self._s1, self._s1_dom
        s_h = stage("s_h", H)
        s_ok, s_hit, s_in_range, s_mapped = (Signal(name="s_ok"), Signal(name="s_hit"),
                                             Signal(name="s_in_range"), Signal(name="s_mapped"))
        s_host = Signal(64 - PAGE_SHIFT, name="s_host")
        s_setbit, s_dw = Signal(32, name="s_setbit"), Signal(32, name="s_dw")
        # Forwarding S's write into the word T moves to S: decided in T, with
        # the harvest's clear folded in, so that the dirty RAM's write data
        # is one LUT (a 5-input AND-OR) from flip-flops.
        s_fwd = Signal(name="s_fwd")                # take the word S wrote last cycle
        s_take_w, s_take_dw = Signal(name="s_take_w"), Signal(name="s_take_dw")
        # T's word is S's: compared a stage early, between R and T (the
        # pipeline never stalls), so only S's write enable is left in the
        # cycle that decides the forwarding.
        t_eq_s = Signal(name="t_eq_s")
        m.d.sync += t_eq_s.eq(r_addr == t_addr)
        t_fwd = Signal()
        m.d.comb += t_fwd.eq(t_eq_s & wp.w_en)
        m.d.sync += [s_fwd.eq(t_fwd), s_take_w.eq(t_fwd & ~t_h.clear), s_take_dw.eq(~t_fwd & ~t_h.clear)]
        # An allowed write would set a dirty bit: everything but the mapped
        # bit, decided a stage early, so the dirty RAM's write enable is one
        # LUT from flip-flops (s_wok, s_mapped, the clear).
        s_wok = Signal(name="s_wok")
        m.d.sync += s_wok.eq(t_valid & t_req.write & t_hit & t_in_range & t_in_window)
        s_we = Signal(name="s_we")      # S writes a dirty bit
        m.d.comb += s_we.eq(s_wok & s_mapped)
        m.d.sync += [s_valid.eq(t_valid), s1.eq(t_req), s_h.eq(t_h), s_hit.eq(t_hit),
                     s_in_range.eq(t_in_range), s1_dom.eq(t_dom), s_addr.eq(t_addr), s_ok.eq(t_hit & t_in_range & t_in_window),
                     s_mapped.eq((t_mword & t_onehot).any()),
                     s_host.eq(Cat(t_host_lo[:32], t_host_hi + t_host_lo[32])),
                     s_setbit.eq(Mux(t_h.clear, 0, t_onehot)),
                     s_dw.eq(Mux(t_eq1 & w_v[0], w_d[0], Mux(t_land, t_land_dw, t_dw)))]

        m.d.comb += [hm.eq(h.mem | h.clear) for hm, h in zip(self._h_mems, (c_h, d0_h, d1_h, d2_h, d3_h, m_h, o_h,
                                                                   r_h, t_h, s_h))]

        # ---- stage S: decide, set the dirty bit ---------------------------
        allow = Signal()
        block = Signal()
        reason = Signal(8)
        m.d.comb += [allow.eq(s_valid & s_ok & s_mapped), block.eq(s_valid & ~(s_ok & s_mapped))]
        # The reason (no domain; unmapped or out of range; out of the window)
        # decided in T for either value of the mapped bit, which picks one in
        # S: one LUT after s_mapped, whose routes to the queue are long.
        reason_if = {mapped: Signal(8, name=f"s_reason_{'m' if mapped else 'u'}") for mapped in (0, 1)}
        t_unmapped = Mux(t_req.write, Reason.WRITE_UNMAPPED, Reason.READ_UNMAPPED)
        m.d.sync += [reason_if[0].eq(Mux(~t_hit, Reason.NO_DOMAIN, t_unmapped)),
                     reason_if[1].eq(Mux(~t_hit, Reason.NO_DOMAIN,
                                         Mux(~t_in_range, t_unmapped, Reason.OUT_OF_WINDOW)))]
        m.d.comb += reason.eq(Mux(s_mapped, reason_if[1], reason_if[0]))
        m.d.comb += [self.taps["decide"].eq(s_valid), self.taps["allow"].eq(allow)]

        # Every decided request pushes its outcome (the credits guarantee the room).
        m.d.comb += [self._out_push.eq(s_valid), self._out_w_rdy.eq(out_fifo.w_rdy),
                     out_fifo.w_en.eq(self._out_push)]
        # What the FIFO stores: out_rec with the address and reason ungated.
        fifo_rec = Signal(_OUT_FIFO_LAYOUT)
        m.d.comb += [fifo_rec.host.eq(s_host), fifo_rec.write.eq(s1.write), fifo_rec.pasid.eq(s1.pasid),
                     fifo_rec.domain.eq(s1_dom), fifo_rec.page.eq(s1.page),
                     fifo_rec.fault.eq(~allow), fifo_rec.reason.eq(reason),
                     out_fifo.w_data.eq(fifo_rec)]
        # The outcome as it will leave the FIFO (what the formal harness checks).
        self._outcome(m, fifo_rec, self._out_rec)

        # Dirty bitmap read-modify-write: the word misses the write S made in
        # the previous cycle (while this one was in T): forwarded here.
        cur = self._cur
        h1_clear = self._h1_clear
        m.d.comb += [h1_clear.eq(s_h.clear), cur.eq(Mux(s_fwd, w_d[0], s_dw))]
        m.d.comb += [wp.w_en.eq(s_we | h1_clear), wp.w_addr.eq(s_addr),
                     # = Mux(h1_clear, 0, cur | s_setbit): the clear is in the
                     # selects and s_setbit
                     wp.w_data.eq((w_d[0] & s_take_w.replicate(32)) | (s_dw & s_take_dw.replicate(32)) | s_setbit),
                     self.taps["harvest"].eq(s_h.mem)]
        # The answer of a dirty-bitmap read, registered.
        h_ack, h_bmap, h_resp, h_data = Signal(), Signal(), Signal(2), Signal(32)
        m.d.sync += [h_ack.eq(s_h.active), h_bmap.eq(s_h.bmap), h_resp.eq(s_h.resp),
                     h_data.eq(Mux(s_h.mem, cur, 0))]
        m.d.comb += [hv_port.ack.eq(h_ack & ~h_bmap), hv_port.resp.eq(h_resp),
                     hv_port.rdata.eq(Mux(h_ack & ~h_bmap, h_data, 0))]

        # ---- counters ------------------------------------------------------
        # Counted one cycle after the decision (keeps the adders off its path).
        inc = {k: Signal(name=f"inc_{k}") for k in ("allowed", "blocked", "dirtied")}
        m.d.sync += [inc["allowed"].eq(allow), inc["blocked"].eq(block), inc["dirtied"].eq(s_we)]
        # Split counters, read through their registered value (two cycles
        # behind the count, so that each counter's flip-flops, adders and
        # the register read mux are not pulled apart; a read samples at
        # least four cycles after a CLEAR's pulse).
        shown = {k: split_counter(m, 32, inc[k], r("DMA.CNT_CTRL.CLEAR"), name=f"cnt_{k}") for k in inc}
        m.d.comb += [r("DMA.CNT_ALLOWED.COUNT").eq(shown["allowed"]),
                     r("DMA.CNT_BLOCKED.COUNT").eq(shown["blocked"]),
                     r("DMA.CNT_DIRTIED.COUNT").eq(shown["dirtied"])]

        # ---- fault queue ---------------------------------------------------
        # A blocked request offers its record, with its source (its domain,
        # or D for none), in the cycle of its decision; the queue registers
        # it (the decision and the queue's flags sit far apart), judges it
        # against its source's quota and takes it or counts it lost
        # FAULT_LATENCY cycles later.
        m.submodules.fault_queue = fq = self._fault_queue
        frec = Signal(_FAULT_LAYOUT)
        m.d.comb += [frec.reason.eq(reason), frec.write.eq(s1.write), frec.pasid.eq(s1.pasid),
                     frec.page.eq(s1.page),
                     fq.push.valid.eq(block), fq.push.payload.record.eq(frec),
                     fq.push.payload.source.eq(Mux(s_hit, s1_dom, D)),
                     fq.clear_overflow.eq(r("DMA.FAULT_CTRL.CLEAR_OVERFLOW"))]
        wiring.connect(m, ext["dma_fault_lost"], fq.lost)
        # The head record as FAULT_REC0/1 show it (zeros when the queue is
        # empty) and the queue's level, registered so that the registers'
        # read mux starts at flip-flops. They lag the queue by a cycle: a read
        # that follows a POP samples its registers at least four cycles after
        # the POP's pulse (the bus makes one access at a time and the front
        # end answers a write two cycles after its pulse).
        head = Signal(_FAULT_LAYOUT)
        head_valid = Signal()
        level_shown = Signal.like(fq.level, name="fault_level_shown")   # the same for the count
        m.d.sync += [head_valid.eq(fq.head.valid), head.eq(Mux(fq.head.valid, fq.head.payload.record, 0)),
                     level_shown.eq(fq.level)]
        m.d.comb += [
            fq.head.ready.eq(r("DMA.FAULT_CTRL.POP")),
            self.taps["fault_pop"].eq(fq.popped),
            self.taps["fault_decide"].eq(fq.taken | fq.dropped),
            r("DMA.FAULT_CAP.DEPTH").eq(self.fault_depth), r("DMA.FAULT_CAP.QUOTA").eq(self.fault_quota),
            r("DMA.FAULT_STATUS.COUNT").eq(level_shown), r("DMA.FAULT_STATUS.OVERFLOW").eq(fq.overflow),
            r("DMA.FAULT_OVF_COUNT.COUNT").eq(fq.ovf_count),
            r("DMA.FAULT_REC0.VALID").eq(head_valid),
            r("DMA.FAULT_REC0.REASON").eq(head.reason),
            r("DMA.FAULT_REC0.WRITE").eq(head.write),
            r("DMA.FAULT_REC0.PASID").eq(head.pasid),
            r("DMA.FAULT_REC1.PAGE").eq(head.page),
        ]

        # ---- engine: range ops, guest map/unmap, bitmap window -------------
        self._elaborate_engine(m, r, ext, adi_valid, adi_dom, h_ack & h_bmap, h_resp, h_data)
        return m

    def _elaborate_engine(self, m, r, ext, adi_valid, adi_dom, h_bm_ack, h_bm_resp, h_bm_data):
        p = self.params
        D, P, A = p.num_domains, p.pages_per_domain, p.num_adis
        WPD = self.words_per_domain
        aw = self.aw
        gp, bm = ext["dma_guest"], ext["dma_bmap"]
        gq, bq = self._gpq, self._bmq      # their requests, registered

        # Range operation registers.
        busy = Signal()
        err = Signal()
        r_code = Signal(2)
        r_dom = Signal(DOMAIN_BITS)
        r_word = Signal(16)
        r_last = Signal(16)
        r_is_first = Signal()
        r_is_last = Signal()
        lo_mask = Signal(32)
        hi_mask = Signal(32)
        m.d.comb += [r("DMA.STATUS.BUSY").eq(busy), r("DMA.STATUS.ERR").eq(err)]
        start = r("DMA.OP_START.PAGE")
        count = r("DMA.OP_COUNT.COUNT")
        # The range's end and masks, computed ahead of OP.GO from the stored
        # registers, three register stages deep (GO is a later bus write
        # than OP_START and OP_COUNT, the bus makes one access at a time and
        # the register front end takes six cycles to answer one: GO's pulse
        # comes at least six cycles after theirs reached storage).
        # One carry chain per stage: the last page is end - 1 a stage after
        # end, and what needs only its low five bits (the last word's mask,
        # whether the range fits one word) is computed from 6-bit sums; the
        # one-word test is its two halves (high count bits zero, low sum at
        # most 32) a stage before their AND.
        end = Signal(33)
        last_page = Signal(32)
        # The last word's mask, bits 0..last_page % 32, is a thermometer of
        # end % 32 (all ones when it is 0), with no subtraction on the way,
        # decoded in two stages (a table of five bits per mask bit was mapped
        # by ABC into a ripple through the mask bits; compares with constants
        # became carry chains).
        end_bit = Signal(5)                   # end[:5]
        beyond, one_word, nonempty = Signal(), Signal(), Signal()
        ow_hi, ow_lo = Signal(), Signal()
        nz_bytes = Signal(-(-len(count) // 8))
        lo_pre, hi_pre = Signal(32, name="lo_pre"), Signal(32, name="hi_pre")
        eb_zero, eb_gt, eb_eq, eb_lo = Signal(), Signal(4), Signal(4), Signal(8)
        sb_gt, sb_eq, sb_le = Signal(3, name="sb_gt"), Signal(4, name="sb_eq"), Signal(7, name="sb_le")
        # end > P (a power of two, 2**kp): a bit above kp set, or bit kp and
        # one below it; by 4-bit slices ORed a stage later.
        kp = self.page_bits
        bey_hi = Signal(-(-(len(end) - kp - 1) // 4))
        bey_lo = Signal(-(-kp // 4))
        bey_at = Signal()
        m.d.sync += [bey_hi.eq(Cat(*(end[k:k + 4].any() for k in range(kp + 1, len(end), 4)))),
                     bey_lo.eq(Cat(*(end[k:min(k + 4, kp)].any() for k in range(0, kp, 4)))),
                     bey_at.eq(end[kp]), beyond.eq(bey_hi.any() | (bey_at & bey_lo.any()))]
        m.d.sync += [end.eq(start + count), last_page.eq(end - 1), end_bit.eq(start[:5] + count[:5]),
                     # start[:5] + count - 1 < 32, for a nonempty range
                     ow_hi.eq(count[6:] == 0), ow_lo.eq(count[:6] + start[:5] <= 32), one_word.eq(ow_hi & ow_lo),
                     # count != 0, by bytes, ORed a stage later
                     nz_bytes.eq(Cat(*(count[k:k + 8].any() for k in range(0, len(count), 8)))),
                     nonempty.eq(nz_bytes.any()),
                     # bit k: k >= start % 32, from the start's eighths and
                     # its place in the eighth, decoded a stage earlier, as
                     # for hi_pre below
                     sb_gt.eq(Cat(*(j > start[3:5] for j in range(1, 4)))),
                     sb_eq.eq(Cat(*(start[3:5] == j for j in range(4)))),
                     # (k % 8 = 7 is at or above any place: no compare that
                     # lint would flag as always true)
                     sb_le.eq(Cat(*(start[:3] <= i for i in range(7)))),
                     lo_pre.eq(Cat(*((sb_gt[k // 8 - 1] if k >= 8 else 0) |
                                     (sb_eq[k // 8] & (sb_le[k % 8] if k % 8 < 7 else 1))
                                     for k in range(32)))),
                     # bit k: k < end_bit (all ones for 0), from the end's
                     # eighths and its place in the eighth, decoded a stage
                     # earlier: one LUT of four flip-flops per bit
                     eb_zero.eq(end_bit == 0),
                     # (the top bit of each is 0: no compare with a
                     # constant that lint would flag as always false)
                     eb_gt.eq(Cat(*(end_bit[3:] > j for j in range(3)))),
                     eb_eq.eq(Cat(*(end_bit[3:] == j for j in range(4)))),
                     eb_lo.eq(Cat(*(end_bit[:3] > i for i in range(7)))),
                     hi_pre.eq(Cat(*(eb_zero | eb_gt[k // 8] | (eb_eq[k // 8] & eb_lo[k % 8]) for k in range(32))))]
        # GO is registered with its verdict (refused: busy, a domain out of
        # range, a range beyond the bitmap), and acted on a cycle later: the
        # strobe comes from the register bank, away from the op's state.
        # OP's fields stay in storage until the next bus write, cycles away.
        # The verdict is applied a cycle later still, as two flip-flops (taken
        # and refused): the op's registers load on one of them straight.
        go, go_refused = Signal(name="go"), Signal(name="go_refused")
        go_take, go_refuse = Signal(name="go_take"), Signal(name="go_refuse")
        m.d.sync += [go.eq(r("DMA.OP.GO")), go_refused.eq(busy | (r("DMA.OP.DOMAIN") >= D) | beyond),
                     go_take.eq(go & ~go_refused), go_refuse.eq(go & go_refused)]
        with m.If(go_refuse):
            m.d.sync += err.eq(1)
        with m.If(go_take):
            m.d.sync += [err.eq(0), busy.eq(nonempty), r_code.eq(r("DMA.OP.CODE")),
                         r_dom.eq(r("DMA.OP.DOMAIN")), r_word.eq(start[5:]),
                         r_last.eq(last_page[5:]), r_is_first.eq(1), r_is_last.eq(one_word),
                         lo_mask.eq(lo_pre), hi_mask.eq(hi_pre)]

        # Guest fast path: latch the request; answer when it is done.
        g_pend = Signal()
        g_look = Signal()       # the ADI lookup of the latched request is done
        g_unmap = Signal()
        g_val = [Signal(26, name="g_map_val"), Signal(26, name="g_unmap_val")]
        g_new = Signal(26)
        bytemask = Cat(*(b.replicate(8) for b in gq.wstrb))[:26]
        g_old = Mux(gq.addr[2], g_val[1], g_val[0])
        m.d.comb += g_new.eq((g_old & ~bytemask) | (gq.wdata[:26] & bytemask))
        g_rd_ack = Signal()
        g_rd_data = Signal(26)
        g_page = Signal(20)
        g_adi = Signal(6)
        m.d.sync += g_rd_ack.eq(0)
        with m.If(gq.stb):
            with m.If(gq.we):
                m.d.sync += [g_pend.eq(1), g_look.eq(0), g_unmap.eq(gq.addr[2]), g_page.eq(g_new[:20]),
                             g_adi.eq(g_new[20:26])]
                with m.If(gq.addr[2]):
                    m.d.sync += g_val[1].eq(g_new)
                with m.Else():
                    m.d.sync += g_val[0].eq(g_new)
            with m.Else():
                m.d.sync += [g_rd_ack.eq(1), g_rd_data.eq(g_old)]
        g_result = Signal(4)
        m.d.comb += r("DMA.GUEST_STATUS.RESULT").eq(g_result)
        # The ADI lookup, in two register stages (the entry among each four,
        # then among the groups: a mux of all the entries in one cycle was
        # too slow), with what it means for the op: refused (and the answer)
        # or not (one register each, so that the engine's IDLE state tests
        # one bit). ``g_look`` rises when it is done, three cycles after the
        # request was latched.
        g_dom = Signal(DOMAIN_BITS)
        g_refuse = Signal()
        g_refuse_res = Signal(4)
        g_entry_ok = Signal(A)      # registered: the table is stable while a guest op waits
        m.d.sync += g_entry_ok.eq(Cat(*(adi_valid[i] & (adi_dom[i] < D) for i in range(A))))
        g_grp_dom, g_grp_ok = [], []
        # Which group the ADI number names, one-hot, registered with the
        # groups (none: a number beyond the table): the second stage is then
        # an AND-OR of a few registers, not a mux and a compare.
        n_grp = -(-A // 4)
        g_grp_sel = Signal(n_grp, name="g_grp_sel")
        m.d.sync += g_grp_sel.eq(Cat(*(g_adi[2:] == k for k in range(n_grp))))
        for g in range(0, A, 4):
            n_part = min(4, A - g)
            gd, go = Signal(DOMAIN_BITS, name=f"g_grp{g // 4}_dom"), Signal(name=f"g_grp{g // 4}_ok")
            m.d.sync += [gd.eq(Array(adi_dom[g:g + n_part])[g_adi[:2]] if n_part > 1 else adi_dom[g]),
                         go.eq(g_entry_ok[g:g + n_part].bit_select(g_adi[:2], 1) if n_part > 1
                               else g_entry_ok[g] & (g_adi[:2] == 0))]
            g_grp_dom.append(gd)
            g_grp_ok.append(go)
        g_valid_adi, g_page_oor = Signal(), Signal()
        m.d.sync += [g_valid_adi.eq((g_grp_sel & Cat(*g_grp_ok)).any()),
                     g_page_oor.eq(g_page >= P),
                     g_dom.eq(self._or_all([Mux(g_grp_sel[k], g_grp_dom[k], 0) for k in range(n_grp)]))]
        # The verdict a stage later still (the group registers and the
        # verdict's users sit far apart on the die).
        m.d.sync += [g_refuse.eq(~g_valid_adi | g_page_oor),
                     g_refuse_res.eq(Mux(g_valid_adi, GuestResult.OUT_OF_RANGE, GuestResult.BAD_ADI))]
        g_look_sr = Signal(2)   # the lookup's stages done so far, as a shift register
        with m.If(gq.stb & gq.we):
            m.d.sync += g_look_sr.eq(0)
        with m.Elif(g_pend):
            m.d.sync += [g_look_sr.eq(Cat(1, g_look_sr[0])), g_look.eq(g_look_sr[1])]

        # Bitmap window reads of pinned/mapped/unmap-requested.
        b_pend = Signal()
        b_addr = Signal(aw)
        b_sel = Signal(2)
        bm_word = bq.addr[2:]
        bm_sel = r("DMA.BMAP_SEL.BITMAP")
        bm_dom = r("DMA.BMAP_SEL.DOMAIN")
        bm_ok = self._bm_ok
        # Taken a cycle after the strobe (the request is held until the
        # answer), so that the verdict drives one flip-flop rather than the
        # enables of the address registers.
        b_take = Signal(name="b_take")
        m.d.sync += b_take.eq(bq.stb & ~bm_ok["dirty"] & ~bq.we & bm_ok["word"] & bm_ok["dom"])
        with m.If(b_take):
            m.d.sync += [b_pend.eq(1), b_sel.eq(bm_sel), b_addr.eq(self._word_addr(bm_word, bm_dom))]
        # Errors on the bitmap window for non-dirty bitmaps answer at once.
        b_err_ack = Signal()
        b_err_resp = Signal(2)
        m.d.sync += b_err_ack.eq(0)
        with m.If(bq.stb & ~bm_ok["dirty"] & (bq.we | ~bm_ok["word"] | ~bm_ok["dom"])):
            m.d.sync += [b_err_ack.eq(1), b_err_resp.eq(Mux(bq.we, Resp.SLVERR, Resp.DECERR))]

        # Engine, one word at a time: ISSUE (IDLE) registers the word address
        # (guest ops first: they are the fast path, then window reads, then
        # the next range word); RD the block RAMs take it; OUT their output
        # registers; LATCH registers the words; FLAGS tests the guest op's
        # bit (by slices, combined in HITS) and turns the operation into set
        # and clear masks; EVAL computes
        # the new words; WRITE writes the changed ones and answers. The
        # operation is decoded one-hot at ISSUE and into masks in FLAGS, so
        # that EVAL is an AND-OR of a few bits per word bit (the decode of
        # kind and code in front of the three words' 96 bits was too long
        # for the clock).
        # The state is one-hot (``at[X]``: in state X). A word's states
        # after IDLE follow each other one per cycle, a shift register, so
        # every enable below hangs off one flip-flop and IDLE's next value is
        # one LUT (a binary state's next-state logic was on the clock's
        # longest path).
        IDLE, RD, OUT, LATCH, FLAGS, HITS, EVAL, WRITE = range(8)
        at = dict(enumerate(self._e_states))
        m.d.sync += [at[x].eq(at[x - 1]) for x in (OUT, LATCH, FLAGS, HITS, EVAL, WRITE)]
        e_kind = Signal(2)      # 0 guest, 1 window read, 2 range word
        e_addr, e_mask, op = self._e_addr, self._e_mask, self._e_op
        e_unmap = Signal()

        def issue(**on):
            return [op[k].eq(on.get(k, 0)) for k in ENGINE_OPS]
        g_ack = Signal()
        b_ack = Signal()
        b_data = Signal(32)
        m.d.sync += [g_ack.eq(0), b_ack.eq(0)]
        eb = (Bitmap.PINNED, Bitmap.MAPPED, Bitmap.UNMAP)
        rams = self.ram
        for b in eb:
            m.d.comb += rams[b].r_addr.eq(e_addr)

        r_next_last = Signal()      # r_word + 1 is the last word (r_word holds for a whole step)
        # Tested as r_word == r_last - 1 (r_last holds for the whole range op
        # and its first word is answered cycles after GO): a compare after
        # the register of a subtraction, not after an adder in the same cycle.
        r_last_m1 = Signal(17)
        # The compare by 3-bit chunks, ANDed a cycle later (r_word holds for
        # a whole step, r_last for the whole op).
        r_nl_eq = chunk_equal(m, r_word, r_last_m1, "r_nl_eq")
        m.d.sync += [r_last_m1.eq(r_last - 1), r_next_last.eq(r_nl_eq.all())]
        range_mask = Signal(32)
        m.d.comb += range_mask.eq(Mux(r_is_first, lo_mask, 0xFFFF_FFFF) & Mux(r_is_last, hi_mask, 0xFFFF_FFFF))

        # What IDLE does next is decided a cycle ahead, into one flag per
        # choice (guest op refused, guest op, window read, range word), from
        # a cycle the engine spent in IDLE and did not leave: after WRITE
        # (which clears the pending flag it served) IDLE waits a cycle for
        # the flags to catch up. The priority chain then stays off the
        # state's enables.
        n_refuse, n_guest, n_win, n_range = (self._e_next[k] for k in ("refuse", "guest", "win", "range"))
        # n_any: one of the flags is set (so IDLE is not settled).
        n_any = self._e_next["any"]
        settled = at[IDLE] & ~n_any
        g_ready = g_pend & g_look
        m.d.sync += [n_any.eq(settled & (g_ready | b_pend | busy)),
                     n_refuse.eq(settled & g_ready & g_refuse),
                     n_guest.eq(settled & g_ready & ~g_refuse),
                     n_win.eq(settled & ~g_ready & b_pend),
                     n_range.eq(settled & ~g_ready & ~b_pend & busy)]
        # A choice flag is high for one cycle, and only in IDLE (it is set
        # from a settled IDLE cycle, which leaves the state alone): the
        # actions test the flag alone (the formal harness asserts this).
        m.d.comb += self._e_choice_in_idle.eq(~(n_refuse | n_guest | n_win | n_range) | at[IDLE])
        with m.If(n_refuse):
            m.d.sync += [g_pend.eq(0), g_ack.eq(1), g_result.eq(g_refuse_res)]
        m.d.sync += [at[RD].eq(n_guest | n_win | n_range),
                     at[IDLE].eq((at[IDLE] & ~(n_guest | n_win | n_range)) | at[WRITE])]
        with m.If(n_guest):
            m.d.sync += [e_kind.eq(0), e_unmap.eq(g_unmap),
                         e_addr.eq(self._word_addr(g_page[5:], g_dom)),
                         e_mask.eq(Const(1, 32) << g_page[:5])]
            m.d.sync += issue(gmap=~g_unmap, gunmap=g_unmap)
        with m.If(n_win):
            m.d.sync += [e_kind.eq(1), e_addr.eq(b_addr)]
            m.d.sync += issue(win=1)
        with m.If(n_range):
            m.d.sync += [e_kind.eq(2), e_mask.eq(range_mask), e_addr.eq(self._word_addr(r_word, r_dom))]
            m.d.sync += issue(pin=r_code == RangeOp.PIN, unpin=r_code == RangeOp.UNPIN,
                              reclaim=r_code == RangeOp.RECLAIM, clr=r_code == RangeOp.CLEAR_UNMAP)
        pw, mw, uw = (self._e_words[b] for b in eb)
        with m.If(at[LATCH]):
            m.d.sync += [pw.eq(rams[Bitmap.PINNED].r_data),
                         mw.eq(rams[Bitmap.MAPPED].r_data), uw.eq(rams[Bitmap.UNMAP].r_data)]
        p_hit, m_hit = Signal(), Signal()     # the guest op's page is pinned / mapped
        # Masks (the guest ops' ones apply only if the page is pinned / mapped):
        # gm guest map (sets mapped, clears unmap-requested), gu guest unmap
        # (clears mapped, sets unmap-requested), and the range ops' ones.
        gm, gu = Signal(32, name="e_gm"), Signal(32, name="e_gu")
        set_p, clr_p = Signal(32, name="e_set_p"), Signal(32, name="e_clr_p")
        clr_m, clr_u = Signal(32, name="e_clr_m"), Signal(32, name="e_clr_u")
        reclaim = e_mask & uw & ~mw
        # Whether the masked bits are set: by two-bit slices in FLAGS (one
        # LUT each), ORed in HITS.
        p_part, m_part = Signal(16, name="e_p_part"), Signal(16, name="e_m_part")
        with m.If(at[HITS]):
            m.d.sync += [p_hit.eq(p_part.any()), m_hit.eq(m_part.any())]
        with m.If(at[FLAGS]):
            m.d.sync += [p_part.eq(Cat(*((pw & e_mask)[k:k + 2].any() for k in range(0, 32, 2)))),
                         m_part.eq(Cat(*((mw & e_mask)[k:k + 2].any() for k in range(0, 32, 2)))),
                         gm.eq(e_mask & op["gmap"].replicate(32)), gu.eq(e_mask & op["gunmap"].replicate(32)),
                         set_p.eq(e_mask & op["pin"].replicate(32)),
                         clr_p.eq((e_mask & op["unpin"].replicate(32)) | (reclaim & op["reclaim"].replicate(32))),
                         clr_m.eq(e_mask & op["unpin"].replicate(32)),
                         clr_u.eq((e_mask & (op["unpin"] | op["clr"]).replicate(32)) |
                                  (reclaim & op["reclaim"].replicate(32)))]
        new = {b: Signal(32, name=f"new_{b.name.lower()}") for b in eb}
        we = {b: Signal(name=f"we_{b.name.lower()}") for b in eb}
        for b in eb:
            m.d.comb += [rams[b].w_addr.eq(e_addr), rams[b].w_data.eq(new[b]),
                         rams[b].w_en.eq(we[b] & at[WRITE])]
        with m.If(at[EVAL]):
            g_set = gm & p_hit.replicate(32)
            g_clr = gu & m_hit.replicate(32)
            g_done = (op["gmap"] & p_hit) | (op["gunmap"] & m_hit)
            m.d.sync += [new[Bitmap.PINNED].eq((pw & ~clr_p) | set_p),
                         new[Bitmap.MAPPED].eq((mw & ~(clr_m | g_clr)) | g_set),
                         new[Bitmap.UNMAP].eq((uw & ~(clr_u | g_set)) | g_clr),
                         we[Bitmap.PINNED].eq(op["pin"] | op["unpin"] | op["reclaim"]),
                         we[Bitmap.MAPPED].eq(g_done | op["unpin"]),
                         we[Bitmap.UNMAP].eq(g_done | op["unpin"] | op["reclaim"] | op["clr"])]
            with m.If(op["gmap"]):
                m.d.sync += g_result.eq(Mux(p_hit, GuestResult.OK, GuestResult.NOT_PINNED))
            with m.If(op["gunmap"]):
                m.d.sync += g_result.eq(Mux(m_hit, GuestResult.OK, GuestResult.NOT_MAPPED))
            with m.If(op["win"]):
                m.d.sync += b_data.eq(Mux(b_sel == Bitmap.PINNED, pw, Mux(b_sel == Bitmap.MAPPED, mw, uw)))
        with m.If(at[WRITE]):
            with m.Switch(e_kind):
                with m.Case(0):
                    m.d.sync += [g_pend.eq(0), g_ack.eq(1)]
                with m.Case(1):
                    m.d.sync += [b_pend.eq(0), b_ack.eq(1)]
                with m.Case(2):
                    with m.If(r_is_last):
                        m.d.sync += busy.eq(0)
                    with m.Else():
                        m.d.sync += [r_word.eq(r_word + 1), r_is_first.eq(0), r_is_last.eq(r_next_last)]

        # Responses.
        m.d.comb += [
            gp.ack.eq(g_ack | g_rd_ack), gp.resp.eq(Resp.OKAY),
            gp.rdata.eq(Mux(g_rd_ack, g_rd_data, 0)),
            bm.ack.eq(b_ack | b_err_ack | h_bm_ack),
            bm.resp.eq(Mux(h_bm_ack, h_bm_resp, Mux(b_err_ack, b_err_resp, Resp.OKAY))),
            bm.rdata.eq(Mux(b_ack, b_data, Mux(h_bm_ack, h_bm_data, 0))),
        ]
