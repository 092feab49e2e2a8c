"""pyuvm environment of the DMA tracker (top ``siov_dma``).

Structure (after pyuvm's TinyALU example, one bus-functional model shared by
the agents):

* :class:`DmaBfm` samples the ports once per clock: it drives the request
  stream from a queue (the request agent's driver; sequences fill the
  queue), drives the output ``ready`` with random back-pressure (the output
  agent), and reports accepted requests, output beats, the harvest tap
  (``tap_harvest``: the cycle a harvest read reads and clears its word) and
  the fault-queue pop tap (``tap_fault_pop``: the cycle a POP takes the head
  record) with the cycle number of each, to the scoreboard's monitors;
* ``csr`` agent: :class:`CsrAgent` runs the host software's sequences
  (:class:`~siov.sw.hv.pf.PfDriver`) over a
  :class:`~siov.tb.host.checked.CheckedBus` on the top's CSR port; every
  access is checked against the reference model unless it races the request
  stream (then it goes to the unchecked ``raw`` bus);
* ``fault`` agent: :class:`FaultAgent` pops the fault queue over CSR while
  traffic runs;
* ``lost`` agent: :class:`LostAgent` reads (and so clears) the per-domain
  lost-fault counts (``FAULT_LOST``) while traffic runs;
* ``harvest`` agent: :class:`HarvestAgent` reads the dirty log while traffic
  runs.

The :class:`Scoreboard` replays every event in hardware order through
:class:`siov.sw.model.dma.DmaModel`: a request accepted in cycle c is decided
in cycle c + DECIDE_LATENCY; a harvest read whose tap fires in cycle h sees every write
decided before h (the one of cycle h-1 through the forwarding path) and none
decided after (the hardware gives the read its own request slot, so no
write is decided in h); a POP whose tap fires in cycle p is seen by the
faults decided in p - FAULT_LATENCY + 1 and after, not by those decided
before (the fault queue takes or refuses a fault FAULT_LATENCY cycles after
its decision, against the queue as it stood at the start of that cycle), so
the model's quota and full-queue decisions follow the hardware's. So every output beat (one per accepted
request, allowed or blocked, in acceptance order), every fault record popped
and every harvested word is predicted exactly: every page written between
two harvests appears in exactly the next harvest, and what the lost-fault
counts read over a phase adds up, per domain, to what the model lost. Each output is also checked on its own,
without the model, against the configuration the test programmed: a beat
let through (``fault`` = 0) has its page mapped in the requester's own domain
and its host address in that domain's window; a blocked one has address 0,
a fault reason, and the requester's domain (0 if none).
"""

import collections
import itertools
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, Timer
from pyuvm import uvm_component, uvm_env

from siov.rtl import regmap
from siov.rtl.dma.defs import WORD_PAGES, Bitmap, GuestResult, RangeOp, Reason
from siov.rtl.dma.tracker import FAULT_LATENCY, OUT_LAYOUT, REQ_LAYOUT, DmaTracker
from siov.sw.hv.pf import PfDriver
from siov.sw.model.dma import FaultRecord
from siov.tb.coverage import Coverage
from siov.tb.host.checked import POLLED, CheckedBus, CsrPortBus, range_op
from siov.tb.reset import reset_dut
from siov.tb.layouts import pack, unpack

__all__ = ["PERIOD_NS", "pack", "unpack", "DmaBfm", "CsrAgent", "FaultAgent", "LostAgent", "HarvestAgent",
           "Scoreboard", "DmaEnv", "COVERAGE_BINS"]

PERIOD_NS = 10
#: A request accepted in cycle c is decided (and sets its dirty bit) in c + DECIDE_LATENCY.
DECIDE_LATENCY = DmaTracker.DECIDE_LATENCY

COVERAGE_BINS = [
    # faults
    "fault_write_unmapped", "fault_read_unmapped", "fault_no_domain", "fault_out_of_window",
    "fault_queue_overflow", "fault_page_out_of_range", "fault_other_domain",
    # fault queue: quota and lost counts
    "fault_lost_at_quota", "fault_lost_queue_full", "fault_queued_beside_flooder", "fault_lost_no_domain",
    "lost_read_nonzero", "lost_read_zero", "lost_window_decerr", "lost_window_slverr",
    # CSR operations
    "op_pin", "op_unpin", "op_reclaim", "op_clear_unmap", "op_refused",
    "guest_map_ok", "guest_map_not_pinned", "guest_unmap_ok", "guest_unmap_not_mapped",
    "guest_bad_adi", "guest_out_of_range", "adi_write", "dom_write",
    "bmap_pinned", "bmap_mapped", "bmap_unmap", "bmap_dirty",
    "harvest_clear", "harvest_no_clear", "fault_pop", "overflow_clear", "counter_clear",
    "window_decerr", "window_slverr",
    # hazards
    "same_word_back_to_back", "write_just_before_harvest", "write_just_after_harvest",
    "out_backpressure",
    # output stream: outcome beats
    "out_allowed", "out_blocked",
]


class DmaBfm:
    """Clock, reset and the per-cycle view of the streams and the harvest tap."""

    def __init__(self, dut, rng):
        self.dut = dut
        self.rng = rng
        self.cycle = 0
        self.req_q = collections.deque()
        self.ready_p = 0.0           # probability of deasserting out.ready in a cycle
        self.on_accept = []          # f(cycle, dict)
        self.on_out = []             # f(cycle, dict)
        self.on_harvest = []         # f(cycle)
        self.on_fault_pop = []       # f(cycle)
        self.accepted = 0
        self._cur = None
        Clock(dut.clk, PERIOD_NS, unit="ns").start()

    async def reset(self):
        await reset_dut(self.dut, {"req__valid": 0, "req__payload": 0, "out__ready": 1})
        cocotb.start_soon(self._loop())

    def idle(self):
        """True when no request waits in the queue or on the port."""
        return not self.req_q and self._cur is None

    async def _loop(self):
        d = self.dut
        while True:
            await RisingEdge(d.clk)
            self.cycle += 1
            if self._cur is None and self.req_q:
                self._cur = self.req_q.popleft()
            if self._cur is not None:
                d.req__valid.value = 1
                d.req__payload.value = pack(REQ_LAYOUT, **self._cur)
            else:
                d.req__valid.value = 0
            ready = not (self.ready_p and self.rng.random() < self.ready_p)
            d.out__ready.value = int(ready)
            await ReadOnly()
            # A POP first (the faults decided in its cycle see it), then the
            # harvest tap (a request decided in this cycle races it).
            if self.on_fault_pop and d.tap_fault_pop.value:
                for f in self.on_fault_pop:
                    f(self.cycle)
            if d.tap_harvest.value:
                for f in self.on_harvest:
                    f(self.cycle)
            if self._cur is not None and d.req__ready.value:
                self.accepted += 1
                for f in self.on_accept:
                    f(self.cycle, self._cur)
                self._cur = None
            if d.out__valid.value:
                if ready:
                    beat = unpack(OUT_LAYOUT, int(d.out__payload.value))
                    for f in self.on_out:
                        f(self.cycle, beat)
                else:
                    COVERAGE.sample("out_backpressure")


COVERAGE = Coverage("dma", COVERAGE_BINS)
_BITMAP_BINS = {Bitmap.PINNED: "bmap_pinned", Bitmap.MAPPED: "bmap_mapped", Bitmap.UNMAP: "bmap_unmap",
                Bitmap.DIRTY: "bmap_dirty"}
_OP_BINS = {RangeOp.PIN: "op_pin", RangeOp.UNPIN: "op_unpin", RangeOp.RECLAIM: "op_reclaim",
            RangeOp.CLEAR_UNMAP: "op_clear_unmap"}
_GUEST_BINS = {GuestResult.NOT_PINNED: "guest_map_not_pinned", GuestResult.NOT_MAPPED: "guest_unmap_not_mapped",
               GuestResult.BAD_ADI: "guest_bad_adi", GuestResult.OUT_OF_RANGE: "guest_out_of_range"}


class CsrAgent(uvm_component):
    """The hypervisor's sequences (:class:`~siov.sw.hv.pf.PfDriver`) over the ``csr`` port.

    ``bus`` is a :class:`~siov.tb.host.checked.CheckedBus` over the port's
    :class:`~siov.tb.host.checked.CsrPortBus`: every access is checked against
    the reference model. An access that races the request stream goes to
    ``raw`` (the port itself) instead. The operations here add the checks
    and the coverage of this testbench to PfDriver's; they run while the
    stream is idle, with model and hardware in step.
    """

    def build_phase(self):
        self.bus = self.raw = self.pf = self.raw_pf = None

    def attach(self, bfm, model):
        self.raw = CsrPortBus(bfm.dut, base=regmap.DMA_BASE)
        self.bus = CheckedBus(self.raw, model, volatile=POLLED)
        self.pf = PfDriver.of(self.bus, poll_cycles=1)
        self.raw_pf = PfDriver.of(self.raw)

    async def range_op(self, code, dom, start, count):
        """Run range operation ``code``; True if the tracker took it, as the model did."""
        done = await range_op(self.pf, code, dom, start, count)
        COVERAGE.sample("op_refused", not done)
        COVERAGE.sample(_OP_BINS[code], done)
        return done

    async def set_adi(self, index, pasid, dom, valid=True):
        await self.pf.bind_adi(index, pasid, dom, valid)
        await self.bus.read(regmap.DMA_ADI_CUR)
        COVERAGE.sample("adi_write")

    async def set_domain(self, dom, base, limit):
        await self.pf.set_domain(dom, base, limit)
        for a in (regmap.DMA_DOM_CUR_BASE_LO, regmap.DMA_DOM_CUR_BASE_HI, regmap.DMA_DOM_CUR_LIMIT):
            await self.bus.read(a)
        COVERAGE.sample("dom_write")

    async def guest(self, unmap, adi, page):
        res = await self.pf.guest_map(adi, page, unmap)
        ok = "guest_unmap_ok" if unmap else "guest_map_ok"
        COVERAGE.sample(ok if res == GuestResult.OK else _GUEST_BINS[res])
        return res

    async def read_bitmap(self, bitmap, dom, words):
        """Words ``0..words-1`` of ``bitmap`` of ``dom``."""
        out = await self.pf.read_bitmap(bitmap, dom, words)
        COVERAGE.sample(_BITMAP_BINS[Bitmap(bitmap)])
        return out


class FaultAgent(uvm_component):
    """Pops the fault queue over CSR while traffic runs; records every record popped."""

    def build_phase(self):
        self.popped = []
        self.running = False

    async def pop_all(self, csr):
        # Unchecked: the model learns of a fault only when the scoreboard decides its request.
        faults, _ = await csr.raw_pf.pop_dma_faults()
        for f in faults:
            COVERAGE.sample("fault_pop")
            self.popped.append(FaultRecord(f.reason, f.pasid, f.page, f.write))

    async def run_while(self, csr, period_ns):
        self.running = True
        while self.running:
            await self.pop_all(csr)
            await Timer(period_ns, unit="ns")


class LostAgent(uvm_component):
    """Reads the lost-fault counts (FAULT_LOST, read and clear) while traffic runs, unchecked:
    what it reads over a phase, with a last read of every word, is the model's loss per source."""

    def build_phase(self):
        self.running = False
        self.total = collections.Counter()

    async def read(self, csr, source):
        v = await csr.raw.read(regmap.DMA_FAULT_LOST_BASE + 4 * source)
        self.total[source] += v
        COVERAGE.sample("lost_read_nonzero" if v else "lost_read_zero")

    async def read_all(self, csr, sources):
        for s in range(sources):
            await self.read(csr, s)

    async def run_while(self, csr, rng, sources, period_ns):
        self.running = True
        while self.running:
            await self.read(csr, rng.randrange(sources))
            await Timer(rng.randrange(1, period_ns), unit="ns")


class HarvestAgent(uvm_component):
    """Reads dirty words while traffic runs; the scoreboard predicts each at its tap."""

    def build_phase(self):
        self.running = False

    async def harvest(self, csr, sb, dom, words, no_clear):
        await csr.bus.write(regmap.DMA_HARVEST_CTRL, (int(no_clear) << 8) | dom)
        for w in words:
            sb.harvest_ctx = (dom, w, no_clear)
            v = await csr.raw.read(regmap.DMA_HARVEST_BASE + 4 * w)
            sb.harvest_ctx = None
            assert sb.harvest_expect, "harvest read returned without a harvest tap"
            h1, exp, racing = sb.harvest_expect.popleft()
            assert v == exp, (f"harvest domain {dom} word {w} (cycle {h1}, no_clear={no_clear}): "
                              f"{v:#010x}, model {exp:#010x} (racing pages {racing})")
            COVERAGE.sample("harvest_no_clear" if no_clear else "harvest_clear")

    async def run_while(self, csr, sb, rng, doms, words_of):
        self.running = True
        while self.running:
            dom = rng.choice(doms)
            await self.harvest(csr, sb, dom, words_of(dom), rng.random() < 0.2)


class Scoreboard(uvm_component):
    """Replays requests and harvests in hardware order through the model."""

    def build_phase(self):
        self.model = None
        self.pending = collections.deque()     # (decide cycle, request dict)
        self.expected_out = collections.deque()
        self.expected_faults = []
        self.outputs = 0
        self.last_write = None                  # (decide cycle, domain, word)
        self.last_harvest = None                # (harvest cycle, domain, word)
        self.config = None                      # set by the test: domain windows
        self.harvest_ctx = None                 # (domain, word, no_clear) of the read in flight
        self.harvest_expect = collections.deque()
        #: The FaultAgent pops (unchecked) while this is set: the model pops at each POP tap.
        self.track_pops = False
        self.expected_popped = []
        #: Fault records decided and not yet judged by the queue: (the queue's cycle, record).
        self.fault_pending = collections.deque()

    def attach(self, bfm, model):
        self.model = model
        bfm.on_fault_pop.append(self.on_fault_pop)
        bfm.on_harvest.append(self.on_tap)
        bfm.on_accept.append(lambda c, r: self.pending.append((c + DECIDE_LATENCY, r)))
        bfm.on_out.append(self.out)

    def _decide(self, cycle, req, set_dirty=True):
        d = self.model.check(req["pasid"], req["page"], req["write"])
        self.model.apply(d, set_dirty=set_dirty, push=False)
        if not d.allowed:
            # The fault queue judges the record FAULT_LATENCY cycles later.
            self.fault_pending.append((cycle + FAULT_LATENCY, d.fault))
        self.expected_out.append(d)      # every request gives one output beat
        if d.allowed:
            if d.write:
                key = (d.domain, d.page // WORD_PAGES)
                if self.last_write == (cycle - 1,) + key:
                    COVERAGE.sample("same_word_back_to_back")
                if self.last_harvest == (cycle - 1,) + key:
                    COVERAGE.sample("write_just_after_harvest")
                self.last_write = (cycle,) + key
        else:
            self.expected_faults.append(d.fault)
            COVERAGE.sample({Reason.WRITE_UNMAPPED: "fault_write_unmapped",
                             Reason.READ_UNMAPPED: "fault_read_unmapped",
                             Reason.NO_DOMAIN: "fault_no_domain",
                             Reason.OUT_OF_WINDOW: "fault_out_of_window"}[Reason(d.fault.reason)])
            COVERAGE.sample("fault_page_out_of_range", d.page >= self.model.params.pages_per_domain)
            own = self.model.lookup(d.pasid)
            COVERAGE.sample("fault_other_domain", own is not None and d.page < self.model.params.pages_per_domain
                            and any(self.model.bits[Bitmap.MAPPED, o, d.page]
                                    for o in range(self.model.params.num_domains) if o != own))
        return d

    def _sample_quota(self, rec):
        """Coverage of the fault queue's decision on ``rec``, from the model's queue before it."""
        m = self.model
        held = collections.Counter(f.source for f in m.faults)
        at_quota = held[rec.source] >= m.fault_quota
        full = len(m.faults) >= m.fault_depth
        COVERAGE.sample("fault_lost_at_quota", at_quota and not full)
        COVERAGE.sample("fault_lost_queue_full", full and not at_quota)
        COVERAGE.sample("fault_queued_beside_flooder", not (at_quota or full) and any(
            n >= m.fault_quota for s, n in held.items() if s != rec.source))
        COVERAGE.sample("fault_lost_no_domain", (at_quota or full) and rec.source == m.params.num_domains)

    def push_faults(self, upto=None):
        """The fault queue judges the records it takes in cycles up to ``upto`` (all if None)."""
        while self.fault_pending and (upto is None or self.fault_pending[0][0] <= upto):
            _, rec = self.fault_pending.popleft()
            self._sample_quota(rec)
            self.model.push_fault(rec)

    def on_fault_pop(self, p):
        """A POP takes the head record in cycle ``p``: the faults the queue judges by then
        (decided FAULT_LATENCY cycles before) do not see it, those after do."""
        if not self.track_pops:
            return
        self.flush(before=p - FAULT_LATENCY + 1)
        self.push_faults(upto=p)
        rec = self.model.pop_fault()
        assert rec is not None, f"cycle {p}: a POP took a record from a queue the model has empty"
        self.expected_popped.append(rec)

    def flush(self, before=None):
        """Decide every pending request decided before cycle ``before`` (all if None, and
        then the fault queue judges every record decided)."""
        while self.pending and (before is None or self.pending[0][0] < before):
            c, r = self.pending.popleft()
            self._decide(c, r)
        if before is None:
            self.push_faults()

    def on_tap(self, h1):
        """A harvest read takes its data in cycle ``h1``: predict it now, in hardware order."""
        if self.harvest_ctx is None:
            return       # a NO_CLEAR bitmap-window read of the dirty bitmap, checked by CsrAgent
        dom, word, no_clear = self.harvest_ctx
        self.flush(before=h1)
        if self.last_write == (h1 - 1, dom, word):
            COVERAGE.sample("write_just_before_harvest")
        self.last_harvest = (h1, dom, word)
        racing = []
        while self.pending and self.pending[0][0] == h1:
            c, r = self.pending.popleft()
            dec = self.model.check(r["pasid"], r["page"], r["write"])
            same = dec.allowed and dec.write and dec.domain == dom and dec.page // WORD_PAGES == word
            self._decide(c, r, set_dirty=not same)
            if same:
                racing.append(dec.page)
        self.harvest_expect.append((h1, self.model.harvest_word(dom, word, no_clear, racing), racing))

    def out(self, cycle, beat):
        self.flush(before=cycle + 1)
        assert self.expected_out, f"unexpected output {beat}"
        d = self.expected_out.popleft()
        exp = d.out_beat()
        assert beat == exp, f"cycle {cycle}: output {beat}, model {exp}"
        self.outputs += 1
        COVERAGE.sample("out_blocked" if beat["fault"] else "out_allowed")
        if self.config is not None and beat["fault"]:
            # A blocked request, independent of the model: a known reason, no
            # address, and the requester's own domain (0 if none).
            own = self.config.domain_of(beat["pasid"])
            assert beat["reason"] in {int(r) for r in Reason}, f"blocked beat with reason {beat['reason']:#x}"
            assert beat["addr"] == 0, f"blocked beat with address {beat['addr']:#x}"
            assert beat["domain"] == (0 if own is None else own), f"blocked beat in domain {beat['domain']}"
            assert (beat["reason"] == Reason.NO_DOMAIN) == (own is None), f"reason {beat['reason']:#x}"
        elif self.config is not None:
            # Isolation, independent of the model: own domain, inside its window.
            assert beat["reason"] == 0, f"allowed beat with reason {beat['reason']:#x}"
            own = self.config.domain_of(beat["pasid"])
            assert own == beat["domain"], f"PASID {beat['pasid']:#x} reached domain {beat['domain']}"
            base, limit = self.config.windows[own]
            assert base <= beat["addr"] < base + limit * 4096, f"address {beat['addr']:#x} outside window"
            assert beat["page"] in self.config.mapped[own], f"page {beat['page']} not mapped in {own}"

    def check_faults(self, popped, lost):
        """The records popped are the model's, in order (each quota and full-queue decision
        as the model made it); with what is left queued (nothing, after a final drain) and
        ``lost`` (per source, read over the phase), they are every fault predicted."""
        for i, (rec, exp) in enumerate(zip(popped, self.expected_popped)):
            assert rec == exp, f"fault record {i} popped: {rec}, model {exp}"
        assert len(popped) == len(self.expected_popped), (
            f"{len(popped)} fault records popped, the model popped {len(self.expected_popped)}")
        model_lost = {s: n for s, n in enumerate(self.model.lost) if n}
        assert {s: n for s, n in lost.items() if n} == model_lost, (
            f"lost faults per source read {dict(lost)}, model {model_lost}")
        assert len(popped) + len(self.model.faults) + sum(lost.values()) == len(self.expected_faults), (
            f"{len(popped)} faults popped + {len(self.model.faults)} queued + {sum(lost.values())} lost "
            f"!= {len(self.expected_faults)} predicted")


class DmaEnv(uvm_env):
    def build_phase(self):
        self.csr = CsrAgent("csr", self)
        self.faults = FaultAgent("fault", self)
        self.lost = LostAgent("lost", self)
        self.harvester = HarvestAgent("harvest", self)
        self.sb = Scoreboard("scoreboard", self)

    def attach(self, dut, model, seed):
        """The BFM on ``dut`` (its random source seeded with ``seed``), and the agents on it and ``model``."""
        self.bfm = DmaBfm(dut, random.Random(seed))
        self.csr.attach(self.bfm, model)
        self.sb.attach(self.bfm, model)

    def report_phase(self):
        self.logger.info(COVERAGE.report())

    def check_phase(self):
        COVERAGE.check()


def chunks(it, n):
    it = iter(it)
    while True:
        c = list(itertools.islice(it, n))
        if not c:
            return
        yield c
