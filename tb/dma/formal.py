"""Formal harnesses of the DMA tracker, proven by k-induction (:func:`siov.tb.formal.prove`).

Each harness instantiates :class:`~siov.rtl.dma.tracker.DmaTracker` in a tiny
configuration (2 ADIs, 2 domains x 64 pages: 4 words per bitmap), leaves
every input free (the CSR bus, the request stream, the output ``ready``, the
reset), and only assumes the register-bus protocol of rtl/csr/bus.py (one
request at a time, held stable until its ``ack``). So the ADI table, the
domain windows and all four bitmaps are driven by arbitrary CSR traffic,
including arbitrary guest maps, range operations and harvests. Properties,
stated on a symbolic page where they concern one page (a free input held constant by assumption, on reset-less
registers, so reset does not let it change):

* ``dma_isolation``: every decided request pushes exactly one beat into the
  output queue, and the queue has room for it (no beat is dropped); a
  request is let through (an output beat with ``fault`` = 0) only if its
  PASID was bound, by the lowest matching valid ADI entry, to the domain it
  is let through in; its page is in range, mapped in that domain, and below
  the domain's limit; and its host address is ``(BASE + page) * 4096``; a
  blocked request's beat has ``fault`` = 1, a nonzero reason and address 0;
* ``dma_mapped_pinned``: a mapped page is always pinned;
* ``dma_dirty_sticky``: a set dirty bit stays set until a harvest read that
  reports it (its data, returned on the bus in that cycle, has the bit) clears
  it; nothing else ever clears a dirty bit; and a write let through to the
  page sets the bit. Together: a write is in the next harvest, never in
  neither (the forwarding of back-to-back read-modify-writes included);
* ``dma_fault_quota``: the tracker's fault queue
  (:class:`~siov.rtl.faultq.FaultQueue`, on its own: 4 records, quota 2,
  the 3 sources of the tiny tracker, every input free): each source's count
  is the number of its records the queue holds, and never above the quota;
  a fault of a source holding fewer records than its quota is queued unless
  the queue is full; the queue is full only while at least DEPTH/QUOTA
  sources hold records; and a fault that is not queued is counted.

The harnesses see the tracker through its parts' observation points
(:meth:`~siov.rtl.dma.tracker.DmaTracker.observe`: the tables, the request
pipeline's stages, the bitmap engine's state) and the block RAMs' behavioural
memories, never through private names. Assertions live here only, never in
the synthesized design. The proofs are
not vacuous: each fails (induction counterexample) on a design with the
matching check removed (the mapped bit in the allow condition, the pinned
test of a guest map, the dirty-word forwarding); the
cocotb regression shows the same states are reachable from reset.
"""

from amaranth.hdl import Assert, Assume, Cat, Const, Elaboratable, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring

from siov.rtl.dma.defs import PAGE_SHIFT, Bitmap
from siov.rtl.dma.tracker import DOMAIN_BITS, FAULT_LATENCY, FAULT_LAYOUT, DmaTracker
from siov.rtl.faultq import FaultQueue
from siov.rtl.params import DeviceParams
from siov.tb.formal import prove

__all__ = ["TINY", "Harness", "IsolationHarness", "MappedPinnedHarness", "DirtyStickyHarness",
           "FaultQuotaHarness", "PROOFS", "run"]

#: The configuration proofs run on.
TINY = DeviceParams(num_adis=2, num_domains=2, pages_per_domain=64)


class Harness(Elaboratable):
    """Tracker + free inputs + the register-bus protocol as assumptions."""

    depth = 4
    #: smtbmc ``--unroll`` (:func:`siov.tb.formal.prove`).
    unroll = True

    def __init__(self, params=TINY):
        self.params = params
        self.dut = DmaTracker(params, out_depth=4, fault_depth=2)

    def ports(self):
        """The free inputs of the tracker (they become top-level ports)."""
        d = self.dut
        out = []
        for path, member, value in d.signature.flatten(d):
            if member.flow == wiring.In:
                out.append(value.as_value() if hasattr(value, "as_value") else value)
        return out

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        csr = dut.csr
        busy = Signal()
        held = Signal(len(Cat(csr.we, csr.addr, csr.wdata, csr.wstrb)))
        now = Cat(csr.we, csr.addr, csr.wdata, csr.wstrb)
        with m.If(csr.stb):
            m.d.sync += [busy.eq(1), held.eq(now)]
        with m.If(csr.ack):
            m.d.sync += busy.eq(0)
        m.d.comb += [Assume(~(csr.stb & busy)), Assume(~busy | (now == held))]
        self.properties(m, dut)
        return m

    def word_addr(self, dut, word, domain):
        return dut.word_addr(word, domain)


def _delay(m, sig, n, name):
    """``sig`` as it was ``n`` cycles ago (a chain of registers)."""
    for i in range(n):
        nxt = Signal.like(sig, name=f"{name}_d{i + 1}")
        m.d.sync += nxt.eq(sig)
        sig = nxt
    return sig


class IsolationHarness(Harness):
    depth = 12

    def properties(self, m, dut):
        p = self.params
        D, P, A = p.num_domains, p.pages_per_domain, p.num_adis
        L = dut.DECIDE_LATENCY
        obs = dut.observe()
        pl, adi, win = obs["pipeline"], obs["tables"]["adi"], obs["tables"]["windows"]
        s1, s1_dom = pl["s_req"], pl["s_dom"]
        # The ADI table as the CAM saw it (stage C, one cycle after accept):
        # the lowest valid entry whose PASID matches, computed here on its own.
        c_hit = Signal()
        c_dom = Signal(DOMAIN_BITS)
        for i in reversed(range(A)):
            with m.If(adi[i].valid & (adi[i].pasid == pl["c_req"].pasid) & (adi[i].domain < D)):
                m.d.comb += [c_hit.eq(1), c_dom.eq(adi[i].domain)]
        exp_hit = _delay(m, c_hit, L - 1, "exp_hit")
        exp_dom = _delay(m, c_dom, L - 1, "exp_dom")
        # The mapped bit as the bitmap stood when the block RAM took the
        # address (stage M), including an engine write in that very cycle.
        mp = dut.mem[Bitmap.MAPPED].read_port(domain="comb")
        ew = dut.ram[Bitmap.MAPPED]
        m.d.comb += mp.addr.eq(pl["m_addr"])
        word_m = Signal(32)
        m.d.comb += word_m.eq(Mux(ew.w_en & (ew.w_addr == pl["m_addr"]), ew.w_data, mp.data))
        M_TO_S = 4
        mapped_then = _delay(m, word_m.bit_select(pl["m_req"].page[:5], 1), M_TO_S, "mapped_then")
        # The domain's window as stage M saw it.
        base = Signal(64 - PAGE_SHIFT)
        limit = Signal(32)
        with m.Switch(pl["m_dom"]):
            for d in range(D):
                with m.Case(d):
                    m.d.comb += [limit.eq(win[d].limit), base.eq(win[d].base)]
        in_window = _delay(m, pl["m_req"].page < limit, M_TO_S, "in_window")
        # The tracker's stored "limit covers the bitmap" flag agrees with the
        # limit it was written with (an invariant: induction may not start
        # from a state where they differ).
        m.d.comb += [Assert(win[d].big == (win[d].limit >= P)) for d in range(D)]
        # Likewise the bitmap engine's registered window answer: high exactly
        # in a window read's WRITE (it clears the CSR front's pending read);
        # with the engine's state one-hot and its choices made only in IDLE
        # (MappedPinnedHarness proves both), that is 1-inductive.
        eng = obs["engine"]
        m.d.comb += [Assert(eng["window_done_in_write"]), Assert(eng["choice_in_idle"]),
                     Assert(sum(st for st in eng["states"]) == 1)]
        host = _delay(m, (base + pl["m_req"].page)[:64 - PAGE_SHIFT], M_TO_S, "host")
        out_rec, push = pl["out_record"], pl["out_push"]
        # One beat per decided request, never into a full queue; the credits
        # account for every request in flight and every beat queued (the
        # counter takes a request's credit in stage C, and gets a read's back
        # a cycle after it).
        in_flight = sum(v for v in pl["valids"])
        credits = pl["out_credits"]
        m.d.comb += [Assert(push == dut.taps["decide"]),
                     Assert(~push | pl["out_w_rdy"]),
                     Assert(credits - pl["c_valid"] + in_flight + pl["out_level"] + pl["out_pop_q"] == dut.out_depth),
                     Assert(pl["out_no_credit"] == (credits == 0)),
                     Assert(pl["out_one_credit"] == (credits == 1))]
        m.d.comb += [Assert(cond) for fifo in (pl["out_fifo"], obs["fault_fifo"]) for cond in fifo.invariants()]
        with m.If(push & out_rec.fault):
            m.d.comb += [Assert(~dut.taps["allow"]), Assert(out_rec.reason != 0),
                         Assert(out_rec.addr == 0), Assert(out_rec.pasid == s1.pasid),
                         Assert(out_rec.page == s1.page), Assert(out_rec.write == s1.write)]
        # Let through: an output beat with fault = 0.
        with m.If(push & ~out_rec.fault):
            m.d.comb += [
                Assert(dut.taps["allow"]),
                Assert(out_rec.reason == 0),
                Assert(exp_hit & (exp_dom == s1_dom)),
                Assert(s1.page < P),
                Assert(mapped_then),
                Assert(in_window),
                Assert(out_rec.addr == Cat(Const(0, PAGE_SHIFT), host)),
                Assert(out_rec.domain == s1_dom),
                Assert(out_rec.pasid == s1.pasid),
            ]


class _PageHarness(Harness):
    """A symbolic (domain, page) and comb read ports on its word."""

    def __init__(self, params=TINY):
        super().__init__(params)
        self.sym_dom = Signal(max(1, (params.num_domains - 1).bit_length()), name="sym_dom")
        self.sym_page = Signal((params.pages_per_domain - 1).bit_length(), name="sym_page")

    def ports(self):
        return super().ports() + [self.sym_dom, self.sym_page]

    def page_ports(self, m, dut, bitmaps):
        p = self.params
        dom, page = self.sym_dom, self.sym_page
        started = Signal(reset_less=True)
        held = Signal(len(Cat(dom, page)), reset_less=True)
        m.d.sync += [started.eq(1), held.eq(Cat(dom, page))]
        m.d.comb += [Assume(~started | (Cat(dom, page) == held)), Assume(dom < p.num_domains)]
        ports = {}
        for b in bitmaps:
            ports[b] = rp = dut.mem[b].read_port(domain="comb")
            m.d.comb += rp.addr.eq(dut.word_addr(page[5:], dom))
        return dom, page, ports


class MappedPinnedHarness(_PageHarness):
    # Deep enough for a state whose engine registers the invariants below do
    # not pin down (the bit-test slices, the verdicts, the masks and new words
    # made from them: FLAGS to WRITE) to reach the bitmap.
    depth = 5       # 4 is the least that passes

    def properties(self, m, dut):
        _dom, page, ports = self.page_ports(m, dut, (Bitmap.PINNED, Bitmap.MAPPED))
        bit = page[:5]
        m.d.comb += Assert(~ports[Bitmap.MAPPED].data.bit_select(bit, 1) |
                           ports[Bitmap.PINNED].data.bit_select(bit, 1))
        eng = dut.observe()["engine"]
        # The engine acts on its choice flags alone: they only rise in IDLE.
        m.d.comb += Assert(eng["choice_in_idle"])
        # ... and its state is one-hot.
        m.d.comb += Assert(sum(st for st in eng["states"]) == 1)
        nxt = eng["next"]
        m.d.comb += Assert(nxt["any"] == (nxt["refuse"] | nxt["guest"] | nxt["win"] | nxt["range"]))
        # Invariants of the engine's data path, so that induction need not
        # reach back to the read of the word: at most one operation, a guest
        # op's mask has one bit, and from the block RAM's output (LATCH) on,
        # the words the engine holds are the bitmaps' words at its address
        # (nothing else writes these bitmaps, and the engine only in WRITE).
        op, mask = eng["op"], eng["mask"]
        m.d.comb += Assert(sum(op.values()) <= 1)
        with m.If(op["gmap"] | op["gunmap"]):
            m.d.comb += Assert((mask != 0) & ((mask & (mask - 1)) == 0))
        _idle, _rd, _out, latch, *held = eng["states"]
        for b in (Bitmap.PINNED, Bitmap.MAPPED):
            rp = dut.mem[b].read_port(domain="comb")
            m.d.comb += rp.addr.eq(eng["addr"])
            with m.If(latch):
                m.d.comb += Assert(dut.ram[b].r_data == rp.data)
            with m.If(Cat(*held).any()):
                m.d.comb += Assert(eng["words"][b] == rp.data)


class DirtyStickyHarness(_PageHarness):
    depth = 10      # longer than read (M) to write (S) plus the forwarding history
    unroll = False  # 30 s without --unroll, 64 s with it

    def properties(self, m, dut):
        dom, page, ports = self.page_ports(m, dut, (Bitmap.DIRTY,))
        bit = page[:5]
        # The bitmap as written so far: the memory, and the registered write
        # that lands at the end of this cycle.
        l_en, l_addr, l_data = dut.ram[Bitmap.DIRTY].landing
        word = Mux(l_en & (l_addr == ports[Bitmap.DIRTY].addr), l_data, ports[Bitmap.DIRTY].data)
        now = Signal()
        m.d.comb += now.eq(word.bit_select(bit, 1))
        was = Signal()
        reported = Signal()
        wrote = Signal()
        pl = dut.observe()["pipeline"]
        s1 = pl["s_req"]
        m.d.sync += [
            was.eq(now),
            # In the previous cycle: a harvest cleared this word and its data
            # (on the bus in that cycle) had the bit ...
            reported.eq(pl["h1_clear"] & (pl["s_addr"] == dut.word_addr(page[5:], dom)) &
                        pl["cur"].bit_select(bit, 1)),
            # ... or a write to this page was let through (an output beat
            # with fault = 0).
            wrote.eq(pl["out_push"] & ~pl["out_record"].fault & s1.write & (pl["s_dom"] == dom) &
                     (s1.page == page)),
        ]
        # A dirty-bitmap read has its request slot to itself, in every stage
        # (an invariant of the pipeline, stated for the induction).
        m.d.comb += [Assert(~(v & h)) for v, h in zip(pl["valids"], pl["h_mems"])]
        # A dirty bit falls only through a harvest clear that reports it.
        with m.If(was & ~now):
            m.d.comb += Assert(reported)
        # A write let through sets the bit.
        with m.If(wrote):
            m.d.comb += Assert(now)


class FaultQuotaHarness(Elaboratable):
    """The tracker's fault queue alone, every input free (the ``lost`` window under the
    register-bus protocol; a record's source below the number of sources)."""

    depth = 4
    unroll = True
    DEPTH, QUOTA = 4, 2

    def __init__(self, params=TINY):
        self.params = params
        self.dut = FaultQueue(width=FAULT_LAYOUT.size, depth=self.DEPTH, sources=params.num_domains + 1,
                              quota=self.QUOTA, stages=FAULT_LATENCY)

    def ports(self):
        d = self.dut
        return [value.as_value() if hasattr(value, "as_value") else value
                for path, member, value in d.signature.flatten(d) if member.flow == wiring.In]

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        S, Q, N = dut.sources, dut.quota, dut.depth
        lost = dut.lost
        busy = Signal()
        held_req = Signal(len(Cat(lost.we, lost.addr)))
        now = Cat(lost.we, lost.addr)
        with m.If(lost.stb):
            m.d.sync += [busy.eq(1), held_req.eq(now)]
        with m.If(lost.ack):
            m.d.sync += busy.eq(0)
        m.d.comb += [Assume(~(lost.stb & busy)), Assume(~busy | (now == held_req)),
                     Assume(dut.push.payload.source < S)]
        obs = dut.observe()
        records = dut.held_sources(m)
        held = [sum((present & (src == s)).as_unsigned() for present, src, _ in records) for s in range(S)]
        # Every record held, and the one being decided, has a source (the push's assumption),
        # the one its stored one-hot names.
        m.d.comb += [Assert(~present | ((src < S) & agrees)) for present, src, agrees in records]
        m.d.comb += Assert(~obs["decide_valid"] | (obs["decide_source"] < S))
        # The counts are the queue's contents; none above the quota.
        m.d.comb += [Assert(c) for c in dut.invariants()]
        m.d.comb += [Assert(obs["occupancy"][s] == held[s]) for s in range(S)]
        m.d.comb += [Assert(held[s] <= Q) for s in range(S)]
        m.d.comb += [Assert(obs["at_quota"][s] == (held[s] == Q)) for s in range(S)]
        m.d.comb += [Assert(obs["near_quota"][s] == (held[s] == Q - 1)) for s in range(S)]
        # The decision's verdict on the quota (made a cycle ahead with two stages) is its
        # source's flag.
        with m.If(obs["decide_valid"]):
            m.d.comb += Assert(obs["over_quota"] == (obs["decide_onehot"] & obs["at_quota"]).any())
        # A source below its quota is queued unless the queue is full.
        src_held = Signal(8)
        for s in range(S):
            with m.If(obs["decide_onehot"][s]):
                m.d.comb += src_held.eq(held[s])
        with m.If(obs["decide_valid"] & (src_held < Q) & (dut.level < N)):
            m.d.comb += Assert(dut.taken)
        with m.If(dut.taken | dut.dropped):
            m.d.comb += Assert(obs["decide_valid"] & (dut.taken != dut.dropped))
        # The queue is full only with at least ceil(DEPTH / QUOTA) sources in it.
        holders = sum((held[s] != 0).as_unsigned() for s in range(S))
        with m.If(dut.level == N):
            m.d.comb += Assert(holders >= -(-N // Q))
        # A fault not queued is counted (in total; saturating; a clear, or a reset, wins).
        counted, before, cleared = Signal(), Signal.like(dut.ovf_count), Signal()
        m.d.sync += [counted.eq(_delay(m, dut.dropped, 1, "dropped")), before.eq(dut.ovf_count),
                     cleared.eq(dut.clear_overflow | ResetSignal())]
        with m.If(counted & ~cleared & (before != (1 << len(before)) - 1)):
            m.d.comb += Assert(dut.ovf_count == before + 1)
        with m.If(counted & ~cleared):
            m.d.comb += Assert(dut.overflow)
        return m


#: name -> harness class
PROOFS = {
    "dma_isolation": IsolationHarness,
    "dma_mapped_pinned": MappedPinnedHarness,
    "dma_dirty_sticky": DirtyStickyHarness,
    "dma_fault_quota": FaultQuotaHarness,
}


def run(name, params=TINY):
    """Prove one property; returns :class:`siov.tb.formal.FormalResult`."""
    h = PROOFS[name](params)
    return prove(h, name, depth=h.depth, ports=h.ports(), unroll=h.unroll)

