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

Request path (one request per clock, never stalled by CSR traffic)::

    A : accept; ADI table CAM on the PASID -> domain; read the mapped and
        dirty words
    R : the block RAM words arrive: select the mapped bit, forward into the
        dirty word, look up the domain's window and translate (registered:
        keeps the RAM's clock-to-out and the adder off the decision)
    S1: decide; set the dirty bit (read-modify-write, forwarded); push the
        outcome into the output FIFO (every request), and a fault record into
        the fault queue (blocked ones)

Output stream: every accepted request gives exactly one ``out`` beat, in
acceptance order, so the requester learns the outcome of each one. Allowed:
``fault`` = 0, ``reason`` = 0, ``addr`` = the translated host byte address.
Blocked: ``fault`` = 1, ``reason`` = the fault reason below, ``addr`` = 0;
``write``, ``pasid`` and ``page`` are the request's, ``domain`` is the
requester's domain (0 when its PASID is bound to none).

``req.ready`` is a credit check on the output FIFO (it counts every request
in R and S1, allowed or not), so R and S1 never stall and their read data
can never go stale. The mapped check sees the bitmap as
it was at the end of cycle A (the read is transparent to an engine write in
that cycle). Faults are VT-d style records
{reason, PASID, page, write}: 0x05 write / 0x06 read to a page that is not
mapped (or beyond the domain's bitmap), 0x80 PASID bound to no domain, 0x81
page mapped but outside the domain's host window (DOM_LIMIT). A full fault
queue sets a sticky overflow flag and counts the fault (as VT-d's PFO): no
fault is silently lost.

Dirty bitmap hazards. Each bitmap is a simple dual-port block RAM (one
synchronous read port, one write port). Setting a dirty bit reads the word in
A and writes it back in S1, two cycles later; the read cannot see the writes
S1 makes in those two cycles, so the last write (address, data) is kept and
forwarded, into stage R and again into S1: back-to-back writes to one word
neither stall nor lose a bit. A harvest read
(and a bitmap-window read of the dirty bitmap) takes the request slot of its
strobe cycle (``req.ready`` low for that one cycle) and runs through the
same read-modify-write path, writing zeros unless NO_CLEAR: the read-and-clear
is atomic against requests by construction, and a write decided just before
it is forwarded into it (in this harvest) while one decided just after it
lands in the word after the clear (in the next one). One request slot per 32
harvested pages is the price of a single write port.

The ADI-to-domain table is a CAM of ``num_adis`` entries {valid, PASID,
domain}, indexed by ADI and written by the hypervisor (ADI_SEL/ADI_ENTRY/
ADI_CMD). A request belongs to the domain of the lowest valid entry whose
PASID matches; an entry whose domain is not below ``num_domains`` matches
nothing. Each domain's guest memory is a contiguous window of host memory:
guest page ``n`` is at ``BASE + n * 4096`` and must be below ``LIMIT`` pages.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from .. import regmap
from ..csr.bank import RegisterBank
from ..csr.bus import CsrSignature, Resp
from ..params import DeviceParams
from .defs import PAGE_BITS, PAGE_SHIFT, PASID_BITS, Bitmap, GuestResult, RangeOp, Reason

__all__ = ["DmaTracker", "REQ_LAYOUT", "OUT_LAYOUT", "DOMAIN_BITS", "CSR_ADDR_WIDTH"]

#: Width of a domain index (64 domains at most, see DeviceParams).
DOMAIN_BITS = 6
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
_FAULT_LAYOUT = data.StructLayout({"reason": 8, "write": 1, "pasid": PASID_BITS, "page": PAGE_BITS})


class DmaTracker(wiring.Component):
    """DMA tracker block.

    Parameters
    ----------
    params : DeviceParams
        ``num_domains``, ``pages_per_domain`` and ``num_adis`` size the bitmaps
        and the ADI table.
    out_depth : int
        Entries of the output FIFO (at least 4; 6 sustain one request per clock).
    fault_depth : int
        Entries of the fault queue, a power of two 2..128.

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
        decided, ``allow`` if it was let through.
    """

    def __init__(self, params=DeviceParams(), *, out_depth=6, fault_depth=16):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"DMA tracker parameters must be a DeviceParams, not {params!r}")
        if not isinstance(out_depth, int) or out_depth < 4:
            raise ValueError(f"Output FIFO depth must be an integer of at least 4, not {out_depth!r}")
        if (not isinstance(fault_depth, int) or not 2 <= fault_depth <= 128
                or fault_depth & (fault_depth - 1)):
            raise ValueError(f"Fault queue depth must be a power of two 2..128, not {fault_depth!r}")
        self.params = params
        self.out_depth = out_depth
        self.fault_depth = fault_depth
        super().__init__({
            "csr": In(CsrSignature(CSR_ADDR_WIDTH)),
            "req": In(stream.Signature(REQ_LAYOUT)),
            "out": Out(stream.Signature(OUT_LAYOUT)),
        })
        self.words_per_domain = params.pages_per_domain // 32
        self.depth = params.num_domains * self.words_per_domain
        # Memories and ports are made here so that a formal harness can add
        # its own (combinational) read ports before elaboration.
        mk = lambda name: Memory(shape=32, depth=self.depth, init=[])
        self.mem = {b: mk(b.name) for b in Bitmap}
        pin, mp, um, dt = (self.mem[b] for b in Bitmap)
        # Engine (range ops, guest ops, bitmap window): pinned, mapped, unmap-requested.
        self.e_wr = {b: self.mem[b].write_port() for b in (Bitmap.PINNED, Bitmap.MAPPED, Bitmap.UNMAP)}
        self.e_rd = {b: self.mem[b].read_port() for b in (Bitmap.PINNED, Bitmap.MAPPED, Bitmap.UNMAP)}
        # Request path: mapped check, transparent for the engine's write.
        self.p_rd_map = mp.read_port(transparent_for=(self.e_wr[Bitmap.MAPPED],))
        # Dirty bitmap: request-path port pair and harvest port pair.
        # Dirty bitmap: one read port (stage A) and one write port (stage S1),
        # shared by requests and harvest reads: a simple dual-port block RAM.
        self.p_rd_dirty = dt.read_port()
        self.p_wr_dirty = dt.write_port()
        self.taps = {"harvest": Signal(name="evt_harvest"), "decide": Signal(name="evt_decide"),
                     "allow": Signal(name="evt_allow")}
        # State that formal harnesses state properties about (made here so a
        # harness can name it before elaboration).
        D, A = params.num_domains, params.num_adis
        aw = max(1, ceil_log2(self.depth))
        self._adi_valid = [Signal(name=f"adi{i}_valid") for i in range(A)]
        self._adi_pasid = [Signal(PASID_BITS, name=f"adi{i}_pasid") for i in range(A)]
        self._adi_dom = [Signal(DOMAIN_BITS, name=f"adi{i}_domain") for i in range(A)]
        self._dom_base = [Signal(64 - PAGE_SHIFT, name=f"dom{d}_base") for d in range(D)]
        self._dom_limit = [Signal(32, name=f"dom{d}_limit") for d in range(D)]
        self._r_req = Signal(REQ_LAYOUT, name="r_req")
        self._r_dom = Signal(DOMAIN_BITS, name="r_dom")
        self._s1 = Signal(REQ_LAYOUT, name="s1")
        self._s1_dom = Signal(DOMAIN_BITS, name="s1_dom")
        self._out_rec = Signal(OUT_LAYOUT, name="out_rec")
        self._out_push = Signal(name="out_push")     # out_rec enters the output FIFO
        self._out_w_rdy = Signal(name="out_w_rdy")   # the output FIFO has room
        self._h1_clear = Signal(name="h1_clear")     # a harvest clears word s1_addr now
        self._s1_addr = Signal(aw, name="s1_addr")
        self._cur = Signal(32, name="cur")            # dirty word s1_addr, forwarded

    # -- helpers -----------------------------------------------------------

    def _word_addr(self, word, domain):
        """Memory address of ``word`` of ``domain`` (both in range)."""
        wbits = exact_log2(self.words_per_domain)
        aw = max(1, ceil_log2(self.depth))
        return Cat(word[:wbits], domain)[:aw]

    def elaborate(self, platform):
        m = Module()
        p = self.params
        D, P, A = p.num_domains, p.pages_per_domain, p.num_adis
        WPD = self.words_per_domain
        wbits = exact_log2(WPD)
        aw = max(1, ceil_log2(self.depth))

        for b, mem in self.mem.items():
            m.submodules[f"mem_{b.name.lower()}"] = mem

        m.submodules.regs = regs = RegisterBank.for_window("DMA", addr_width=CSR_ADDR_WIDTH,
                                                          base=regmap.DMA_BASE)
        wiring.connect(m, wiring.flipped(self.csr), regs.csr)
        r = regs.port

        # ---- ADI -> domain table (CAM) and per-domain host windows ---------
        adi_valid, adi_pasid, adi_dom = self._adi_valid, self._adi_pasid, self._adi_dom
        dom_base, dom_limit = self._dom_base, self._dom_limit

        with m.If(r("DMA.ADI_CMD.WRITE")):
            with m.Switch(r("DMA.ADI_SEL.INDEX")):
                for i in range(A):
                    with m.Case(i):
                        m.d.sync += [adi_valid[i].eq(r("DMA.ADI_ENTRY.VALID")),
                                     adi_pasid[i].eq(r("DMA.ADI_ENTRY.PASID")),
                                     adi_dom[i].eq(r("DMA.ADI_ENTRY.DOMAIN"))]
        with m.Switch(r("DMA.ADI_SEL.INDEX")):
            for i in range(A):
                with m.Case(i):
                    m.d.comb += [r("DMA.ADI_CUR.VALID").eq(adi_valid[i]),
                                 r("DMA.ADI_CUR.PASID").eq(adi_pasid[i]),
                                 r("DMA.ADI_CUR.DOMAIN").eq(adi_dom[i])]
        with m.If(r("DMA.DOM_CMD.WRITE")):
            with m.Switch(r("DMA.DOM_SEL.INDEX")):
                for d in range(D):
                    with m.Case(d):
                        m.d.sync += [dom_base[d].eq(Cat(r("DMA.DOM_BASE_LO.ADDR"),
                                                        r("DMA.DOM_BASE_HI.ADDR"))),
                                     dom_limit[d].eq(r("DMA.DOM_LIMIT.PAGES"))]
        with m.Switch(r("DMA.DOM_SEL.INDEX")):
            for d in range(D):
                with m.Case(d):
                    m.d.comb += [r("DMA.DOM_CUR_BASE_LO.ADDR").eq(dom_base[d][:20]),
                                 r("DMA.DOM_CUR_BASE_HI.ADDR").eq(dom_base[d][20:]),
                                 r("DMA.DOM_CUR_LIMIT.PAGES").eq(dom_limit[d])]

        # ---- request path, stage A -----------------------------------------
        req = self.req
        s1_valid = Signal()
        r_valid = Signal()
        m.submodules.out_fifo = out_fifo = SyncFIFOBuffered(width=OUT_LAYOUT.size, depth=self.out_depth)
        # Credit: what is in the FIFO, plus what S1 pushes now, plus this one.
        h_slot = Signal()        # a dirty-bitmap read (harvest or window) takes stage A
        m.d.comb += req.ready.eq((out_fifo.level + r_valid + s1_valid < self.out_depth) & ~h_slot)
        accept = Signal()
        m.d.comb += accept.eq(req.valid & req.ready)

        hit = Signal()
        hit_dom = Signal(DOMAIN_BITS)
        for i in reversed(range(A)):   # lowest index wins: its assignment comes last
            with m.If(adi_valid[i] & (adi_pasid[i] == req.payload.pasid) & (adi_dom[i] < D)):
                m.d.comb += [hit.eq(1), hit_dom.eq(adi_dom[i])]
        a_in_range = Signal()
        m.d.comb += a_in_range.eq(req.payload.page < P)
        a_addr = Signal(aw)
        m.d.comb += a_addr.eq(self._word_addr(req.payload.page[5:], hit_dom))
        rd_map = self.p_rd_map
        m.d.comb += [rd_map.addr.eq(a_addr), rd_map.en.eq(1)]

        # Harvest and bitmap-window reads of the dirty bitmap use the request
        # slot: one read-and-clear per 32 pages, through the same RMW path.
        hv_port, bm_port = regs.ext_dma_harvest, regs.ext_dma_bmap
        bm_sel = r("DMA.BMAP_SEL.BITMAP")
        bm_dom = r("DMA.BMAP_SEL.DOMAIN")
        hv_dom = r("DMA.HARVEST_CTRL.DOMAIN")
        h_take_hv = hv_port.stb
        h_take_bm = bm_port.stb & (bm_sel == Bitmap.DIRTY)
        h_dom = Mux(h_take_hv, hv_dom, bm_dom)
        h_word = Mux(h_take_hv, hv_port.addr[2:], bm_port.addr[2:])
        h_we = Mux(h_take_hv, hv_port.we, bm_port.we)
        h_ok = Signal()
        m.d.comb += [h_ok.eq(~h_we & (h_word < WPD) & (h_dom < D)),
                     h_slot.eq((h_take_hv | h_take_bm) & h_ok)]
        h_addr = Signal(aw)
        m.d.comb += h_addr.eq(self._word_addr(h_word, h_dom))
        rd_dp = self.p_rd_dirty
        m.d.comb += [rd_dp.addr.eq(Mux(h_slot, h_addr, a_addr)), rd_dp.en.eq(1)]

        # ---- stage R: the block RAM words arrive ----------------------------
        r_req, r_dom = self._r_req, self._r_dom
        r_hit, r_in_range = Signal(), Signal()
        r_addr = Signal(aw)
        r_h_active, r_h_port_bmap, r_h_mem, r_h_clear = Signal(), Signal(), Signal(), Signal()
        r_h_resp = Signal(2)
        m.d.sync += [r_valid.eq(accept), r_req.eq(req.payload), r_hit.eq(hit), r_dom.eq(hit_dom),
                     r_in_range.eq(a_in_range), r_addr.eq(rd_dp.addr),
                     r_h_active.eq(h_take_hv | h_take_bm), r_h_port_bmap.eq(~h_take_hv),
                     r_h_mem.eq(h_slot), r_h_clear.eq(h_slot & h_take_hv & ~r("DMA.HARVEST_CTRL.NO_CLEAR")),
                     r_h_resp.eq(Mux(h_ok, Resp.OKAY, Mux(h_we, Resp.SLVERR, Resp.DECERR)))]
        # The dirty word read in A misses the write S1 made in that same cycle:
        # it is the last write now, merged here (the next one is merged in S1).
        lw_v = Signal()
        lw_a = Signal(aw)
        lw_d = Signal(32)
        r_dw = Signal(32)
        m.d.comb += r_dw.eq(Mux(lw_v & (lw_a == r_addr), lw_d, rd_dp.data))
        # The domain's window, looked up here: S1 only combines flags.
        r_base = Signal(64 - PAGE_SHIFT)
        r_limit = Signal(32)
        with m.Switch(r_dom):
            for d in range(D):
                with m.Case(d):
                    m.d.comb += [r_base.eq(dom_base[d]), r_limit.eq(dom_limit[d])]

        # ---- stage S1: decide, set the dirty bit ---------------------------
        s1 = self._s1
        s1_hit = Signal()
        s1_dom = self._s1_dom
        s1_in_range = Signal()
        s1_addr = self._s1_addr
        s1_mapped = Signal()
        s1_dw = Signal(32)
        s1_in_window = Signal()
        s1_host = Signal(64 - PAGE_SHIFT)
        h1_active = Signal()     # a response of the dirty-bitmap read is due this cycle
        h1_port_bmap = Signal()  # ... on the bitmap window (else the harvest window)
        h1_mem = Signal()        # ... with data from the dirty memory
        h1_clear = self._h1_clear
        h1_resp = Signal(2)
        m.d.sync += [s1_valid.eq(r_valid), s1.eq(r_req), s1_hit.eq(r_hit), s1_dom.eq(r_dom),
                     s1_in_range.eq(r_in_range), s1_addr.eq(r_addr),
                     s1_mapped.eq(rd_map.data.bit_select(r_req.page[:5], 1)), s1_dw.eq(r_dw),
                     s1_in_window.eq(r_req.page < r_limit), s1_host.eq(r_base + r_req.page),
                     h1_active.eq(r_h_active), h1_port_bmap.eq(r_h_port_bmap),
                     h1_mem.eq(r_h_mem), h1_clear.eq(r_h_clear), h1_resp.eq(r_h_resp)]

        # ---- request path, stage S1 ----------------------------------------
        bit = s1.page[:5]
        mapped_bit = Signal()
        m.d.comb += mapped_bit.eq(s1_mapped)
        in_window = Signal()
        m.d.comb += in_window.eq(s1_in_window)
        allow = Signal()
        block = Signal()
        reason = Signal(8)
        m.d.comb += [allow.eq(s1_valid & s1_hit & s1_in_range & mapped_bit & in_window),
                     block.eq(s1_valid & ~allow)]
        with m.If(~s1_hit):
            m.d.comb += reason.eq(Reason.NO_DOMAIN)
        with m.Elif(~s1_in_range | ~mapped_bit):
            m.d.comb += reason.eq(Mux(s1.write, Reason.WRITE_UNMAPPED, Reason.READ_UNMAPPED))
        with m.Else():
            m.d.comb += reason.eq(Reason.OUT_OF_WINDOW)
        m.d.comb += [self.taps["decide"].eq(s1_valid), self.taps["allow"].eq(allow)]

        # Every decided request pushes its outcome (the credit check in A
        # guarantees the room).
        out_rec = self._out_rec
        m.d.comb += [
            out_rec.addr.eq(Mux(allow, Cat(Const(0, PAGE_SHIFT), s1_host), 0)),
            out_rec.write.eq(s1.write), out_rec.pasid.eq(s1.pasid),
            out_rec.domain.eq(s1_dom), out_rec.page.eq(s1.page),
            out_rec.fault.eq(~allow), out_rec.reason.eq(Mux(allow, 0, reason)),
            self._out_push.eq(s1_valid), self._out_w_rdy.eq(out_fifo.w_rdy),
            out_fifo.w_en.eq(self._out_push), out_fifo.w_data.eq(out_rec),
            self.out.valid.eq(out_fifo.r_rdy), self.out.payload.eq(out_fifo.r_data),
            out_fifo.r_en.eq(self.out.ready),
        ]

        # ---- dirty bitmap: read-modify-write at S1, forwarded -----------------
        # The word also misses the write of the previous cycle (made while this
        # one was in R): forwarded from the last write.
        cur = self._cur
        m.d.comb += cur.eq(Mux(lw_v & (lw_a == s1_addr), lw_d, s1_dw))
        setbit = Signal(32)
        m.d.comb += setbit.eq(Const(1, 32) << bit)
        p_we = Signal()
        m.d.comb += p_we.eq(allow & s1.write)
        wp = self.p_wr_dirty
        m.d.comb += [wp.en.eq(p_we | h1_clear), wp.addr.eq(s1_addr),
                     wp.data.eq(Mux(h1_clear, 0, cur | setbit))]
        m.d.sync += [lw_v.eq(wp.en), lw_a.eq(s1_addr), lw_d.eq(wp.data)]
        cur_h = Signal(32)
        m.d.comb += [cur_h.eq(cur), self.taps["harvest"].eq(h1_mem)]
        m.d.comb += [hv_port.ack.eq(h1_active & ~h1_port_bmap), hv_port.resp.eq(h1_resp),
                     hv_port.rdata.eq(Mux(h1_active & ~h1_port_bmap & h1_mem, cur_h, 0))]

        # ---- counters ------------------------------------------------------
        # Counted one cycle after the decision (keeps the adders off its path).
        cnt = {k: Signal(32, name=f"cnt_{k}") for k in ("allowed", "blocked", "dirtied")}
        inc = {k: Signal(name=f"inc_{k}") for k in cnt}
        m.d.sync += [inc["allowed"].eq(allow), inc["blocked"].eq(block), inc["dirtied"].eq(p_we)]
        with m.If(r("DMA.CNT_CTRL.CLEAR")):
            m.d.sync += [c.eq(0) for c in cnt.values()]
        with m.Else():
            m.d.sync += [cnt[k].eq(cnt[k] + inc[k]) for k in cnt]
        m.d.comb += [r("DMA.CNT_ALLOWED.COUNT").eq(cnt["allowed"]),
                     r("DMA.CNT_BLOCKED.COUNT").eq(cnt["blocked"]),
                     r("DMA.CNT_DIRTIED.COUNT").eq(cnt["dirtied"])]

        # ---- fault queue ---------------------------------------------------
        m.submodules.fault_fifo = fq = SyncFIFOBuffered(width=_FAULT_LAYOUT.size, depth=self.fault_depth)
        frec = Signal(_FAULT_LAYOUT)
        m.d.comb += [frec.reason.eq(reason), frec.write.eq(s1.write), frec.pasid.eq(s1.pasid),
                     frec.page.eq(s1.page), fq.w_en.eq(block), fq.w_data.eq(frec)]
        overflow = Signal()
        ovf_count = Signal(32)
        with m.If(r("DMA.FAULT_CTRL.CLEAR_OVERFLOW")):
            m.d.sync += [overflow.eq(0), ovf_count.eq(0)]
        with m.Elif(block & ~fq.w_rdy):
            m.d.sync += overflow.eq(1)
            with m.If(~ovf_count.all()):
                m.d.sync += ovf_count.eq(ovf_count + 1)
        head = Signal(_FAULT_LAYOUT)
        m.d.comb += [
            head.eq(fq.r_data), fq.r_en.eq(r("DMA.FAULT_CTRL.POP")),
            r("DMA.FAULT_STATUS.COUNT").eq(fq.level), r("DMA.FAULT_STATUS.OVERFLOW").eq(overflow),
            r("DMA.FAULT_OVF_COUNT.COUNT").eq(ovf_count),
            r("DMA.FAULT_REC0.VALID").eq(fq.r_rdy),
            r("DMA.FAULT_REC0.REASON").eq(Mux(fq.r_rdy, head.reason, 0)),
            r("DMA.FAULT_REC0.WRITE").eq(fq.r_rdy & head.write),
            r("DMA.FAULT_REC0.PASID").eq(Mux(fq.r_rdy, head.pasid, 0)),
            r("DMA.FAULT_REC1.PAGE").eq(Mux(fq.r_rdy, head.page, 0)),
        ]

        # ---- engine: range ops, guest map/unmap, bitmap window -------------
        self._elaborate_engine(m, regs, adi_valid, adi_dom, h1_active & h1_port_bmap, h1_mem, h1_resp,
                               cur_h)
        return m

    def _elaborate_engine(self, m, regs, adi_valid, adi_dom, h_bm_ack, h_bm_mem, h_bm_resp, cur_h):
        p = self.params
        D, P, A = p.num_domains, p.pages_per_domain, p.num_adis
        WPD = self.words_per_domain
        aw = max(1, ceil_log2(self.depth))
        r = regs.port
        gp, bm = regs.ext_dma_guest, regs.ext_dma_bmap

        # Range operation registers.
        busy = Signal()
        err = Signal()
        r_code = Signal(2)
        r_dom = Signal(DOMAIN_BITS)
        r_word = Signal(16)
        r_first = Signal(16)
        r_last = Signal(16)
        r_lo = Signal(5)
        r_hi = Signal(5)
        m.d.comb += [r("DMA.STATUS.BUSY").eq(busy), r("DMA.STATUS.ERR").eq(err)]
        start = r("DMA.OP_START.PAGE")
        count = r("DMA.OP_COUNT.COUNT")
        end = Signal(33)
        m.d.comb += end.eq(start + count)    # one past the last page
        last_page = Signal(32)
        m.d.comb += last_page.eq(end - 1)
        with m.If(r("DMA.OP.GO")):
            with m.If(busy | (r("DMA.OP.DOMAIN") >= D) | (end > P)):
                m.d.sync += err.eq(1)
            with m.Else():
                m.d.sync += [err.eq(0), busy.eq(count != 0), r_code.eq(r("DMA.OP.CODE")),
                             r_dom.eq(r("DMA.OP.DOMAIN")), r_word.eq(start[5:]), r_first.eq(start[5:]),
                             r_last.eq(last_page[5:]), r_lo.eq(start[:5]), r_hi.eq(last_page[:5])]

        # Guest fast path: latch the request; answer when it is done.
        g_pend = Signal()
        g_unmap = Signal()
        g_val = [Signal(26, name="g_map_val"), Signal(26, name="g_unmap_val")]
        g_new = Signal(26)
        bytemask = Cat(*(b.replicate(8) for b in gp.wstrb))[:26]
        g_old = Mux(gp.addr[2], g_val[1], g_val[0])
        m.d.comb += g_new.eq((g_old & ~bytemask) | (gp.wdata[:26] & bytemask))
        g_rd_ack = Signal()
        g_rd_data = Signal(26)
        g_page = Signal(20)
        g_adi = Signal(6)
        m.d.sync += g_rd_ack.eq(0)
        with m.If(gp.stb):
            with m.If(gp.we):
                m.d.sync += [g_pend.eq(1), g_unmap.eq(gp.addr[2]), g_page.eq(g_new[:20]),
                             g_adi.eq(g_new[20:26])]
                with m.If(gp.addr[2]):
                    m.d.sync += g_val[1].eq(g_new)
                with m.Else():
                    m.d.sync += g_val[0].eq(g_new)
            with m.Else():
                m.d.sync += [g_rd_ack.eq(1), g_rd_data.eq(g_old)]
        g_result = Signal(4)
        m.d.comb += r("DMA.GUEST_STATUS.RESULT").eq(g_result)

        # Bitmap window reads of pinned/mapped/unmap-requested.
        b_pend = Signal()
        b_addr = Signal(aw)
        b_sel = Signal(2)
        bm_word = bm.addr[2:]
        bm_sel = r("DMA.BMAP_SEL.BITMAP")
        bm_dom = r("DMA.BMAP_SEL.DOMAIN")
        with m.If(bm.stb & (bm_sel != Bitmap.DIRTY) & ~bm.we & (bm_word < WPD) & (bm_dom < D)):
            m.d.sync += [b_pend.eq(1), b_sel.eq(bm_sel), b_addr.eq(self._word_addr(bm_word, bm_dom))]
        # Errors on the bitmap window for non-dirty bitmaps answer at once.
        b_err_ack = Signal()
        b_err_resp = Signal(2)
        m.d.sync += b_err_ack.eq(0)
        with m.If(bm.stb & (bm_sel != Bitmap.DIRTY) & (bm.we | (bm_word >= WPD) | (bm_dom >= D))):
            m.d.sync += [b_err_ack.eq(1), b_err_resp.eq(Mux(bm.we, Resp.SLVERR, Resp.DECERR))]

        # Engine: ISSUE presents one word address to the three memories, WAIT
        # registers the words (the RAMs' clock-to-out stays off the compute),
        # EXEC writes the changed ones. Guest ops first (they
        # are the fast path), then window reads, then the next range word.
        e_kind = Signal(2)      # 0 guest, 1 window read, 2 range word
        e_addr = Signal(aw)
        e_mask = Signal(32)
        e_wait = Signal()       # the words are on the RAM outputs: register them
        e_exec = Signal()       # compute from the registered words and write back
        e_unmap = Signal()
        g_ack = Signal()
        b_ack = Signal()
        b_data = Signal(32)
        m.d.sync += [g_ack.eq(0), b_ack.eq(0)]
        rd = self.e_rd
        wr = self.e_wr
        issue_addr = Signal(aw)
        for port in rd.values():
            m.d.comb += [port.addr.eq(issue_addr), port.en.eq(1)]

        g_valid_adi = Signal()
        g_dom = Signal(DOMAIN_BITS)
        with m.Switch(g_adi):
            for i in range(A):
                with m.Case(i):
                    m.d.comb += [g_valid_adi.eq(adi_valid[i] & (adi_dom[i] < D)), g_dom.eq(adi_dom[i])]

        lo = Mux(r_word == r_first, r_lo, 0)
        hi = Mux(r_word == r_last, r_hi, 31)
        range_mask = Signal(32)
        m.d.comb += range_mask.eq((Const(0xFFFF_FFFF, 32) << lo)[:32] & (Const(0xFFFF_FFFF, 32) >> (31 - hi)[:5]))

        with m.If(~e_wait & ~e_exec):
            with m.If(g_pend):
                with m.If(~g_valid_adi):
                    m.d.sync += [g_pend.eq(0), g_ack.eq(1), g_result.eq(GuestResult.BAD_ADI)]
                with m.Elif(g_page >= P):
                    m.d.sync += [g_pend.eq(0), g_ack.eq(1), g_result.eq(GuestResult.OUT_OF_RANGE)]
                with m.Else():
                    m.d.comb += issue_addr.eq(self._word_addr(g_page[5:], g_dom))
                    m.d.sync += [e_wait.eq(1), e_kind.eq(0), e_unmap.eq(g_unmap),
                                 e_mask.eq(Const(1, 32) << g_page[:5])]
            with m.Elif(b_pend):
                m.d.comb += issue_addr.eq(b_addr)
                m.d.sync += [e_wait.eq(1), e_kind.eq(1)]
            with m.Elif(busy):
                m.d.comb += issue_addr.eq(self._word_addr(r_word, r_dom))
                m.d.sync += [e_wait.eq(1), e_kind.eq(2), e_mask.eq(range_mask)]
        with m.If(~e_wait & ~e_exec):
            m.d.sync += e_addr.eq(issue_addr)

        pw, mw, uw = Signal(32), Signal(32), Signal(32)
        with m.If(e_wait):
            m.d.sync += [e_wait.eq(0), e_exec.eq(1), pw.eq(rd[Bitmap.PINNED].data),
                         mw.eq(rd[Bitmap.MAPPED].data), uw.eq(rd[Bitmap.UNMAP].data)]
        new = {b: Signal(32, name=f"new_{b.name.lower()}") for b in wr}
        we = {b: Signal(name=f"we_{b.name.lower()}") for b in wr}
        m.d.comb += [new[Bitmap.PINNED].eq(pw), new[Bitmap.MAPPED].eq(mw), new[Bitmap.UNMAP].eq(uw)]
        for b, port in wr.items():
            m.d.comb += [port.addr.eq(e_addr), port.data.eq(new[b]), port.en.eq(we[b])]
        with m.If(e_exec):
            m.d.sync += e_exec.eq(0)
            with m.Switch(e_kind):
                with m.Case(0):
                    m.d.sync += [g_pend.eq(0), g_ack.eq(1)]
                    with m.If(~e_unmap):
                        with m.If(pw & e_mask):
                            m.d.comb += [new[Bitmap.MAPPED].eq(mw | e_mask), we[Bitmap.MAPPED].eq(1),
                                         new[Bitmap.UNMAP].eq(uw & ~e_mask), we[Bitmap.UNMAP].eq(1)]
                            m.d.sync += g_result.eq(GuestResult.OK)
                        with m.Else():
                            m.d.sync += g_result.eq(GuestResult.NOT_PINNED)
                    with m.Else():
                        with m.If(mw & e_mask):
                            m.d.comb += [new[Bitmap.MAPPED].eq(mw & ~e_mask), we[Bitmap.MAPPED].eq(1),
                                         new[Bitmap.UNMAP].eq(uw | e_mask), we[Bitmap.UNMAP].eq(1)]
                            m.d.sync += g_result.eq(GuestResult.OK)
                        with m.Else():
                            m.d.sync += g_result.eq(GuestResult.NOT_MAPPED)
                with m.Case(1):
                    m.d.sync += [b_pend.eq(0), b_ack.eq(1),
                                 b_data.eq(Mux(b_sel == Bitmap.PINNED, pw,
                                               Mux(b_sel == Bitmap.MAPPED, mw, uw)))]
                with m.Case(2):
                    with m.Switch(r_code):
                        with m.Case(RangeOp.PIN):
                            m.d.comb += [new[Bitmap.PINNED].eq(pw | e_mask), we[Bitmap.PINNED].eq(1)]
                        with m.Case(RangeOp.UNPIN):
                            m.d.comb += [new[Bitmap.PINNED].eq(pw & ~e_mask),
                                         new[Bitmap.MAPPED].eq(mw & ~e_mask),
                                         new[Bitmap.UNMAP].eq(uw & ~e_mask)]
                            m.d.comb += [w.eq(1) for w in we.values()]
                        with m.Case(RangeOp.RECLAIM):
                            sel = e_mask & uw & ~mw
                            m.d.comb += [new[Bitmap.PINNED].eq(pw & ~sel), new[Bitmap.UNMAP].eq(uw & ~sel),
                                         we[Bitmap.PINNED].eq(1), we[Bitmap.UNMAP].eq(1)]
                        with m.Case(RangeOp.CLEAR_UNMAP):
                            m.d.comb += [new[Bitmap.UNMAP].eq(uw & ~e_mask), we[Bitmap.UNMAP].eq(1)]
                    with m.If(r_word == r_last):
                        m.d.sync += busy.eq(0)
                    with m.Else():
                        m.d.sync += r_word.eq(r_word + 1)

        # Responses.
        m.d.comb += [
            gp.ack.eq(g_ack | g_rd_ack), gp.resp.eq(Resp.OKAY),
            gp.rdata.eq(Mux(g_rd_ack, g_rd_data, 0)),
            bm.ack.eq(b_ack | b_err_ack | h_bm_ack),
            bm.resp.eq(Mux(h_bm_ack, h_bm_resp, Mux(b_err_ack, b_err_resp, Resp.OKAY))),
            bm.rdata.eq(Mux(b_ack, b_data, Mux(h_bm_ack & h_bm_mem, cur_h, 0))),
        ]
