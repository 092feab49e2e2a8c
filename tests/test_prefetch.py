"""rtl/cmd/prefetch.py's Prefetcher in Amaranth's simulator, on its own, against Python models.

The bench plays every block around the prefetch, four ADIs
(``DeviceParams(num_adis=4)``):

* the ADI block and the dispatcher: rings posted, consumed, aborted, put in
  ERROR by the prefetch's fault beat and reset, at random; ``pending`` and
  ``need`` (pending with an empty slot) follow from them, as ``ring``
  (RING_LAYOUT) does;
* the DMA tracker: checks taken at random, answered in order after random
  delays, most ring pages allowed (translated to random host pages) and some
  blocked; a ring entry at or above 2**44 must fault with no check at all;
* host memory behind the AXI4 read port: descriptors written when posted,
  a few of them with a word answered SLVERR/DECERR, random AR/R timing.

Checks: each fetch checks the head entry's page under the ADI's PASID and
reads the translated address; the eight words written to the slot RAM are
the R beats, in order, into the ADI's slot; a fill carries the ADI, whether
the descriptor is a WAIT, and the cost as :func:`siov.sw.model.engine.estimate_cost`
computes it, and its words are the descriptor at ring base + 64 x head; a
blocked, untranslatable or erroring fetch raises FETCH_FAULT, held until
taken; a fetch whose ADI stops being pending neither fills nor faults, and
one that stays pending always ends in one or the other.
"""

import gc
import random
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable

from siov.rtl.cmd.adi import ADI_FAULT_LAYOUT, RING_LAYOUT, AdiError
from siov.rtl.cmd.cost import COST_WIDTH
from siov.rtl.cmd.dsa import Opcode
from siov.rtl.cmd.prefetch import FILL_LAYOUT, Prefetcher
from siov.rtl.dma.defs import PAGE_SHIFT, TRANSLATABLE_BITS
from siov.rtl.dma.tracker import OUT_LAYOUT, REQ_LAYOUT
from siov.rtl.params import DeviceParams
from siov.sw.model.engine import estimate_cost
from siov.tb.amsim import setter, signals, simulate
from siov.tb.layouts import pack, unpack

N = 4
PARAMS = DeviceParams(num_adis=N)
RING = 16                                   # entries per ring
LIMIT = 1 << TRANSLATABLE_BITS
SEEDS = [1, 2]
OPCODES = [op.value for op in Opcode] + [0x77]
FETCH_FAULT = AdiError.FETCH_FAULT.value


def _descriptor(rng):
    """64 random bytes with a chosen opcode and a small or huge ``xfer_size``."""
    raw = bytearray(rng.getrandbits(8) for _ in range(64))
    raw[7] = rng.choice(OPCODES)
    size = rng.choice((rng.randrange(1 << 16), rng.getrandbits(32)))
    raw[32:36] = size.to_bytes(4, "little")
    return bytes(raw)


def _words(raw):
    return [int.from_bytes(raw[8 * k:8 * k + 8], "little") for k in range(8)]


class _Adi:
    """One ADI as the ADI block and the dispatcher hold it."""

    def __init__(self, index, base, pasid):
        self.index, self.base, self.pasid = index, base, pasid
        self.state = "DIS"
        self.head = self.tail = 0
        self.slot_full = False
        self.filled_at = -1
        self.posted = {}                    # ring index -> descriptor bytes

    @property
    def pending(self):
        return self.state == "EN" and self.head != self.tail

    @property
    def need(self):
        return self.pending and not self.slot_full

    def addr(self, head=None):
        """Device address of ring entry ``head`` (the head entry by default)."""
        return self.base + 64 * (self.head if head is None else head)

    def ring_bits(self):
        return pack(RING_LAYOUT, base=self.base >> 6, size=RING, pasid=self.pasid,
                    domain=self.index, head=self.head, engine=self.index & 3)


class _World:
    """Rings, tracker mapping and host memory for one run."""

    def __init__(self, rng):
        self.rng = rng
        pasids = rng.sample(range(1, 1 << 20), N)
        page = rng.randrange(1, 1 << 24) << PAGE_SHIFT
        bases = [
            LIMIT - 10 * 64,                           # heads 10..15 at or above 2**44
            page + 0x400,                              # inside one page
            page + (5 << 20) + 0x1000 - 13 * 64,       # crosses a page at head 13
            page + (9 << 20) + 0x1000 - 3 * 64,        # crosses a page at head 3
        ]
        self.adis = [_Adi(i, bases[i], pasids[i]) for i in range(N)]
        self.by_pasid = {a.pasid: a for a in self.adis}
        # The tracker: (pasid, page) -> host page, or None (blocked).
        self.map = {}
        hosts = iter(rng.sample(range(1 << 16, 1 << 28), 64))
        blocked = {(2, 1), (3, 0)}                     # ADI 2's heads 13..15, ADI 3's heads 0..2
        for a in self.adis:
            pages = sorted({a.addr(h) >> PAGE_SHIFT for h in range(RING) if a.addr(h) < LIMIT})
            for j, p in enumerate(pages):
                self.map[(a.pasid, p)] = None if (a.index, j) in blocked else next(hosts)
        self.mem = {}                                  # host address -> (word, rresp)

    def host(self, adi, head):
        """Host address of ADI ``adi``'s ring entry ``head``, or None if it does not translate."""
        a = self.adis[adi]
        g = a.addr(head)
        if g >= LIMIT:
            return None
        hp = self.map[(a.pasid, g >> PAGE_SHIFT)]
        return None if hp is None else hp << PAGE_SHIFT | g & 0xFFF

    def post(self, a):
        """Software writes a descriptor at the tail and rings the doorbell."""
        raw = _descriptor(self.rng)
        a.posted[a.tail] = raw
        host = self.host(a.index, a.tail)
        if host is not None:
            bad = self.rng.randrange(8) if self.rng.random() < 0.12 else None
            for k, w in enumerate(_words(raw)):
                self.mem[host + 8 * k] = (w, self.rng.choice((2, 3)) if k == bad else 0)
        a.tail = (a.tail + 1) % RING


class _Fetch:
    """What the bench saw of one fetch, from its tracker check on."""

    def __init__(self, adi, page, cycle):
        self.adi, self.page, self.cycle = adi, page, cycle
        self.accepted = False
        self.answer = None                  # host page, or "blocked"
        self.ars = []                       # (addr, beats)
        self.beats = []                     # R data, in order
        self.error = False
        self.slot = 0                       # slot words written
        self.outcome = None


def _check_fill(world, fetch, fill, head, a_cost, b_cost):
    """The fill of ``fetch``: its words are descriptor ``head``, and its cost and WAIT flag are right."""
    a = world.adis[fill["adi"]]
    g = a.addr(head)
    assert g < LIMIT, f"ADI {a.index}: a fill for an entry at {g:#x}, which cannot be translated"
    assert fetch.page == g >> PAGE_SHIFT, f"ADI {a.index}: checked page {fetch.page:#x}, head at {g:#x}"
    host = world.host(a.index, head)
    assert host is not None and fetch.answer == host >> PAGE_SHIFT, f"ADI {a.index}: filled from a blocked page"
    assert fetch.ars and fetch.ars[0][0] == host, f"ADI {a.index}: read {fetch.ars}, expected {host:#x}"
    assert sum(n for _, n in fetch.ars) == 8
    assert not fetch.error, f"ADI {a.index}: filled although the read got an error response"
    raw = a.posted[head]
    assert fetch.slot == 8 and fetch.beats == _words(raw), f"ADI {a.index}: slot words are not the head descriptor"
    assert fill["wait"] == (raw[7] == Opcode.WAIT.value)
    want = estimate_cost(raw, a_cost, b_cost, width=COST_WIDTH)
    assert fill["cost"] == want, f"ADI {a.index}: cost {fill['cost']}, expected {want} (opcode {raw[7]:#x})"


def _run(seed, cycles=2500, drain=2500):
    dut = Prefetcher(PARAMS)
    rng = random.Random(seed)
    world = _World(rng)
    adis = world.adis
    a_cost = rng.randrange(1 << 20)
    b_cost = rng.randrange(1 << 16)
    log = {"fills": 0, "waits": 0, "saturated": 0, "fault_blocked": 0, "fault_rresp": 0, "fault_limit": 0,
           "dropped": 0, "fault_held": 0, "aborts": 0, "fills_per_adi": [0] * N, "req_stall": 0}

    async def bench(ctx):
        put = setter(ctx)
        req, resp, fill, fault, bus = (signals(x) for x in (dut.dma_req, dut.dma_resp, dut.fill, dut.fault, dut.bus))
        ring = dut.ring.as_value()
        hist = [bytearray() for _ in range(N)]       # pending, per cycle, as driven
        heads = []                                   # the heads, per cycle, as driven
        fetch = None
        answers = []                                 # tracker: (due cycle, OUT payload) in order
        ar_q = []                                    # slave: [due cycle, addr, beats left]
        r_beat = None                                # (addr, last, word, rresp) on R, held until RREADY
        prev_req = prev_fault = prev_ar = None
        prev_fill = False

        def stale_since(f, t, margin=0):
            """ADI ``f.adi`` was not pending at some cycle from ``margin`` before the check to ``t``."""
            return 0 in hist[f.adi][max(0, f.cycle - margin):t + 1]

        put(dut.cost_a, a_cost)
        put(dut.cost_b, b_cost)
        put(bus.rid, 0)
        quiet = 0
        t = 0
        while t < cycles + drain:
            busy = t < cycles
            # ---- inputs ---------------------------------------------------------
            for a in adis:
                hist[a.index].append(a.pending)
            heads.append([a.head for a in adis])
            put(dut.pending, sum(a.pending << a.index for a in adis))
            put(dut.need, sum(a.need << a.index for a in adis))
            put(ring, sum(a.ring_bits() << (i * RING_LAYOUT.size) for i, a in enumerate(adis)))
            fault_ready = rng.random() < 0.4
            put(fault.ready, fault_ready)
            req_ready = rng.random() < 0.6
            put(req.ready, req_ready)
            due = bool(answers) and answers[0][0] <= t
            put(resp.valid, bool(due))
            if due:
                put(resp.payload.as_value(), pack(OUT_LAYOUT, **answers[0][1]))
            arready = rng.random() < 0.6
            put(bus.arready, arready)
            if r_beat is None and ar_q and ar_q[0][0] <= t and rng.random() < 0.8:
                addr = ar_q[0][1]
                assert addr in world.mem, f"read of {addr:#x}, which holds no posted descriptor"
                r_beat = (addr, ar_q[0][2] == 1) + world.mem[addr]
            put(bus.rvalid, r_beat is not None)
            if r_beat is not None:
                _, last, word, rresp = r_beat
                put(bus.rdata, word)
                put(bus.rresp, rresp)
                put(bus.rlast, last)

            # ---- the tracker check ----------------------------------------------
            req_valid = ctx.get(req.valid)
            req_bits = ctx.get(req.payload.as_value())
            if prev_req is not None:
                assert req_valid and req_bits == prev_req, "the check changed while valid and not ready"
            prev_req = req_bits if req_valid and not req_ready else None
            log["req_stall"] += req_valid and not req_ready
            if req_valid and (fetch is None or fetch.accepted):
                p = unpack(REQ_LAYOUT, req_bits)
                # No fetch while a fault waits: its ADI is about to enter ERROR.
                assert prev_fault is None, "a new fetch while a fault beat is still waiting"
                if fetch is not None and fetch.outcome is None:
                    # A fetch may end silently only if its ADI stopped being pending.
                    assert stale_since(fetch, t, margin=8), \
                        f"ADI {fetch.adi}'s fetch ended with neither a fill nor a fault"
                    log["dropped"] += 1
                assert p["pasid"] in world.by_pasid, f"a check under PASID {p['pasid']:#x}, no ADI's"
                a = world.by_pasid[p["pasid"]]
                assert (a.pasid, p["page"]) in world.map, \
                    f"ADI {a.index}: a check of page {p['page']:#x}, not a translatable page of its ring"
                assert p["write"] == 0
                fetch = _Fetch(a.index, p["page"], t)
            if req_valid and req_ready:
                fetch.accepted = True
                hp = world.map[(adis[fetch.adi].pasid, fetch.page)]
                answers.append((t + 1 + rng.randrange(5), {
                    "addr": 0 if hp is None else hp << PAGE_SHIFT, "write": 0, "pasid": adis[fetch.adi].pasid,
                    "domain": fetch.adi, "page": fetch.page, "fault": int(hp is None), "reason": 3 * (hp is None)}))
            if due and ctx.get(resp.ready):
                _, out = answers.pop(0)
                assert fetch is not None and fetch.accepted and fetch.answer is None
                fetch.answer = "blocked" if out["fault"] else out["addr"] >> PAGE_SHIFT

            # ---- AXI read ------------------------------------------------------------
            ar_valid = ctx.get(bus.arvalid)
            ar = (ctx.get(bus.araddr), ctx.get(bus.arlen), ctx.get(bus.arsize), ctx.get(bus.arburst))
            if prev_ar is not None:
                assert ar_valid and ar == prev_ar, "AR changed while valid and not ready"
            prev_ar = ar if ar_valid and not arready else None
            if ar_valid and arready:
                addr, length = ar[0], ar[1] + 1
                assert fetch is not None and fetch.answer not in (None, "blocked"), \
                    "a read with no translation allowed"
                assert ar[2:] == (3, 1) and addr % 8 == 0 and addr % 4096 + 8 * length <= 4096, ar
                fetch.ars.append((addr, length))
                for k in range(length):
                    ar_q.append([t + 1 + rng.randrange(4), addr + 8 * k, length - k])
            if r_beat is not None and ctx.get(bus.rready):
                _, _, word, rresp = r_beat
                fetch.beats.append(word)
                fetch.error |= rresp != 0
                ar_q.pop(0)
                r_beat = None

            # ---- slot RAM writes -------------------------------------------------------
            if ctx.get(dut.slot_we):
                waddr, wdata = ctx.get(dut.slot_waddr), ctx.get(dut.slot_wdata)
                assert fetch is not None and fetch.slot < len(fetch.beats), "a slot write with no R beat"
                assert waddr == fetch.adi << 3 | fetch.slot, \
                    f"slot write to {waddr:#x}, expected word {fetch.slot} of ADI {fetch.adi}"
                assert wdata == fetch.beats[fetch.slot]
                fetch.slot += 1

            # ---- fill ------------------------------------------------------------------
            fill_valid = ctx.get(fill.valid)
            assert not (fill_valid and prev_fill), "a fill beat longer than one cycle"
            prev_fill = fill_valid
            if fill_valid:
                f = unpack(FILL_LAYOUT, ctx.get(fill.payload.as_value()))
                i = f["adi"]
                assert i < N and fetch is not None and fetch.outcome is None and fetch.adi == i, \
                    f"a fill for ADI {i} that no fetch of it explains"
                a = adis[i]
                assert 0 not in hist[i][fetch.cycle:t], f"ADI {i} filled although it stopped being pending"
                assert not a.slot_full, f"ADI {i} filled while its slot is full"
                # The head as it stood in the last cycle (it cannot have moved during a live fetch).
                _check_fill(world, fetch, f, heads[t - 1][i], a_cost, b_cost)
                fetch.outcome = "fill"
                log["fills"] += 1
                log["fills_per_adi"][i] += 1
                log["waits"] += f["wait"]
                log["saturated"] += f["cost"] == (1 << COST_WIDTH) - 1
                a.slot_full = True
                a.filled_at = t

            # ---- fault -------------------------------------------------------------------
            fault_valid = ctx.get(fault.valid)
            fault_bits = ctx.get(fault.payload.as_value())
            if prev_fault is not None:
                assert fault_valid and fault_bits == prev_fault, "the fault changed before it was taken"
            elif fault_valid:
                p = unpack(ADI_FAULT_LAYOUT, fault_bits)
                i = p["adi"]
                assert i < N and p["code"] == FETCH_FAULT, p
                a = adis[i]
                assert hist[i][t - 1], f"ADI {i} faulted although not pending"
                head = heads[t - 1][i]
                if a.addr(head) >= LIMIT:
                    # No tracker check for this fetch: the last one seen belongs to an earlier fetch.
                    assert fetch is None or fetch.outcome is not None or stale_since(fetch, t, margin=8), \
                        f"ADI {i}: an untranslatable fetch that was checked"
                    if fetch is not None and fetch.outcome is None:
                        fetch.outcome = "dropped"
                        log["dropped"] += 1
                    log["fault_limit"] += 1
                else:
                    assert fetch is not None and fetch.outcome is None and fetch.adi == i, \
                        f"a fault for ADI {i} that no fetch of it explains"
                    assert 0 not in hist[i][fetch.cycle:t], f"ADI {i} faulted although it stopped being pending"
                    assert fetch.page == a.addr(head) >> PAGE_SHIFT
                    if fetch.answer == "blocked":
                        log["fault_blocked"] += 1
                    else:
                        assert fetch.error and fetch.slot == 8, f"ADI {i}: a fault with the read allowed and clean"
                        log["fault_rresp"] += 1
                    fetch.outcome = "fault"
            prev_fault = fault_bits if fault_valid and not fault_ready else None
            log["fault_held"] += fault_valid and not fault_ready
            if fault_valid and fault_ready:
                a = adis[unpack(ADI_FAULT_LAYOUT, fault_bits)["adi"]]
                if a.state == "EN":
                    a.state, a.slot_full = "ERR", False

            # ---- the ADI block's and software's moves (seen from the next cycle) ---------
            for a in adis:
                if a.state == "EN":
                    if a.slot_full and a.filled_at < t and rng.random() < 0.15:
                        a.slot_full = False
                        a.head = (a.head + 1) % RING
                    elif busy and rng.random() < 0.06:
                        for _ in range(rng.randint(1, 4)):
                            if (a.tail + 1) % RING != a.head:
                                world.post(a)
                    elif busy and rng.random() < 0.004:
                        a.state, a.head, a.slot_full = "DIS", a.tail, False      # ABORT
                        log["aborts"] += 1
                elif busy and a.state == "DIS" and rng.random() < 0.03:
                    a.state = "EN"
                    a.head = a.tail = rng.randrange(RING)
                elif busy and a.state == "ERR" and rng.random() < 0.02:
                    a.state = "DIS"
                if not a.pending:
                    a.slot_full = False
            await ctx.tick()
            t += 1
            # After the busy phase: stop once every ring has been drained or has faulted.
            activity = any(a.pending for a in adis) or fault_valid or req_valid or ar_valid or r_beat or ar_q \
                or answers
            quiet = 0 if activity else quiet + 1
            if not busy and quiet > 10:
                break
        log["cycles"] = t
        log["left_pending"] = [a.index for a in adis if a.pending]
        log["last_fetch_open"] = fetch is not None and fetch.outcome is None and not stale_since(fetch, t, 8)

    simulate(dut, bench)
    return log


@pytest.mark.parametrize("seed", SEEDS)
def test_prefetch_fills_and_faults(seed):
    log = _run(seed)
    # Every ring drained or faulted, and no fetch of a pending ADI left without an outcome.
    assert log["left_pending"] == [] and not log["last_fetch_open"], log
    assert log["fills"] > 40 and min(log["fills_per_adi"]) > 3, log
    assert log["waits"] > 0 and log["saturated"] > 0
    assert log["fault_blocked"] > 2 and log["fault_rresp"] > 2 and log["fault_limit"] > 2, log
    assert log["fault_held"] > 10 and log["req_stall"] > 10
    assert log["aborts"] > 5 and log["dropped"] > 0, log


# ---------------------------------------------------------------------------- directed fetches

class _Directed:
    """One ADI's fetch at a time, with responders that answer at once (so timing repeats)."""

    def __init__(self, dut, world):
        self.dut, self.world = dut, world
        self.req, self.resp, self.fill, self.fault, self.bus = (
            signals(x) for x in (dut.dma_req, dut.dma_resp, dut.fill, dut.fault, dut.bus))

    async def fetch(self, ctx, put, adi, head, drop=None, glitch=False, horizon=60):
        """Ask for ADI ``adi``'s entry ``head`` at cycle 0; its pending falls at cycle ``drop``
        (for that cycle only if ``glitch``). Returns the outcomes and the tracker checks, with cycles."""
        w, dut = self.world, self.dut
        a = w.adis[adi]
        a.state, a.head, a.tail = "EN", head, (head + 1) % RING
        put(dut.ring.as_value(), sum(x.ring_bits() << (i * RING_LAYOUT.size) for i, x in enumerate(w.adis)))
        put(self.req.ready, 1)
        put(self.bus.arready, 1)
        put(self.fault.ready, 1)
        outcomes, checks, answers, beats = [], [], [], []
        filled = errored = False
        for c in range(horizon):
            low = drop is not None and (c == drop if glitch else c >= drop)
            pend = not low and not errored
            put(dut.pending, pend << adi)
            put(dut.need, (pend and not filled) << adi)
            due = bool(answers) and answers[0][0] <= c
            put(self.resp.valid, due)
            if due:
                put(self.resp.payload.as_value(), pack(OUT_LAYOUT, **answers[0][1]))
            rv = bool(beats) and beats[0][0] <= c
            put(self.bus.rvalid, rv)
            if rv:
                _, word, rresp, last = beats[0]
                put(self.bus.rdata, word)
                put(self.bus.rresp, rresp)
                put(self.bus.rlast, last)
            if ctx.get(self.req.valid):
                p = unpack(REQ_LAYOUT, ctx.get(self.req.payload.as_value()))
                checks.append((c, p["page"]))
                hp = w.map.get((p["pasid"], p["page"]), 1)
                answers.append((c + 1, {"addr": 0 if hp is None else hp << PAGE_SHIFT, "pasid": p["pasid"],
                                        "page": p["page"], "fault": int(hp is None)}))
            if due:
                assert ctx.get(self.resp.ready)
                answers.pop(0)
            if ctx.get(self.bus.arvalid):
                addr, n = ctx.get(self.bus.araddr), ctx.get(self.bus.arlen) + 1
                for k in range(n):
                    word, rresp = w.mem.get(addr + 8 * k, (0x5A5A, 0))
                    beats.append((c + 1 + k, word, rresp, k == n - 1))
            if rv and ctx.get(self.bus.rready):
                beats.pop(0)
            if ctx.get(self.fill.valid):
                outcomes.append((c, "fill", ctx.get(self.fill.payload.adi)))
                filled = True
            if ctx.get(self.fault.valid):
                outcomes.append((c, "fault", ctx.get(self.fault.payload.adi)))
                errored = True          # taken at once: the ADI goes to ERROR
            await ctx.tick()
        # The fetch is over: nothing in flight, and the ADI goes away.
        assert not (answers or beats or ctx.get(self.req.valid) or ctx.get(self.bus.arvalid)), \
            f"ADI {adi}: the prefetch is still busy {horizon} cycles on"
        a.state = "DIS"
        put(dut.pending, 0)
        put(dut.need, 0)
        await ctx.tick().repeat(2)
        return outcomes, checks


def _directed_world():
    world = _World(random.Random(0))
    rng = random.Random(5)
    for adi, head, bad in ((1, 3, None), (1, 7, 6)):
        a = world.adis[adi]
        a.posted[head] = raw = _descriptor(rng)
        host = world.host(adi, head)
        for k, word in enumerate(_words(raw)):
            world.mem[host + 8 * k] = (word, 2 if k == bad else 0)
    return world


#: (ADI, head) of each way a fetch ends: a fill, a read error, a blocked page, an address at or above 2**44.
PATHS = {"fill": (1, 3, "fill"), "rresp": (1, 7, "fault"), "blocked": (2, 14, "fault"),
         "limit": (0, 12, "fault")}


@pytest.mark.parametrize("path", PATHS)
def test_prefetch_drops_a_fetch_whose_adi_stops_pending(path):
    """Pending falls at every cycle of the fetch in turn: before the cycle the outcome would
    appear, the fetch ends silently; from then on the outcome stands. A one-cycle drop also
    kills the fetch, and the ADI, pending again, is fetched anew."""
    adi, head, kind = PATHS[path]
    dut = Prefetcher(PARAMS)
    world = _directed_world()
    d = _Directed(dut, world)
    assert (world.adis[adi].addr(head) >= LIMIT) == (path == "limit")
    results = {}

    async def bench(ctx):
        put = setter(ctx)
        put(dut.cost_a, 10)
        put(dut.cost_b, 256)
        ref, checks = await d.fetch(ctx, put, adi, head)
        assert [(k, i) for _, k, i in ref] == [(kind, adi)], ref
        assert (checks == []) == (path == "limit"), checks
        f = ref[0][0]
        results["f"] = f
        for drop in range(1, f + 2):
            got, _ = await d.fetch(ctx, put, adi, head, drop=drop, horizon=f + 12)
            assert got == (ref if drop >= f else []), f"pending fell at cycle {drop}: {got}"
        for drop in sorted({1, f // 3, 2 * f // 3, f - 1}):
            got, _ = await d.fetch(ctx, put, adi, head, drop=drop, glitch=True, horizon=2 * f + 15)
            # The first fetch is dropped; the second, started after it, ends as the first would have.
            assert len(got) == 1 and got[0][0] > f and got[0][1:] == (kind, adi), \
                f"pending low at cycle {drop} only: {got}"

    simulate(dut, bench)
    assert results["f"] > 3


def test_prefetch_lowest_needed_first():
    """Several ADIs need a fetch at once: the lowest is fetched first, then the next."""
    dut = Prefetcher(PARAMS)
    world = _directed_world()
    req, resp = signals(dut.dma_req), signals(dut.dma_resp)
    order = []

    async def bench(ctx):
        put = setter(ctx)
        for a in world.adis:
            a.head = 2
        put(dut.ring.as_value(), sum(x.ring_bits() << (i * RING_LAYOUT.size) for i, x in enumerate(world.adis)))
        put(req.ready, 1)
        put(dut.fault.ready, 1)
        need = 0b1110
        answer = False
        put(resp.payload.as_value(), pack(OUT_LAYOUT, **{"fault": 1}))
        for _ in range(60):
            put(dut.pending, need)
            put(dut.need, need)
            # Each check is blocked, and its ADI stops being pending: the fetch ends silently.
            put(resp.valid, answer)
            answer = ctx.get(req.valid)
            if answer:
                a = world.by_pasid[ctx.get(req.payload.pasid)]
                order.append(a.index)
                need &= ~(1 << a.index)
            await ctx.tick()
        assert not ctx.get(dut.fault.valid) and not ctx.get(dut.fill.valid)

    simulate(dut, bench)
    assert order == [1, 2, 3]


def test_prefetch_ring_entry_past_2_64_faults_without_a_check():
    dut = Prefetcher(PARAMS)
    world = _directed_world()
    a = world.adis[1]
    a.base = (1 << 64) - 64                   # the last 64 bytes of the address space
    assert a.addr(1) >= LIMIT
    d = _Directed(dut, world)
    results = {}

    async def bench(ctx):
        put = setter(ctx)
        results["outcomes"], results["checks"] = await d.fetch(ctx, put, 1, 1, horizon=50)

    simulate(dut, bench)
    assert results["checks"] == [], f"tracker checks for an entry past 2**64: {results['checks']}"
    assert [k for _, k, _ in results["outcomes"]] == ["fault"], results["outcomes"]


# ---------------------------------------------------------------------------- construction

@pytest.mark.parametrize("params", [4, {"num_adis": 4}, None])
def test_prefetch_refuses_bad_params(params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)       # the half-built component
        with pytest.raises(TypeError, match="Prefetcher parameters must be a DeviceParams"):
            Prefetcher(params)
        gc.collect()
    # And the parameters themselves refuse an ADI count the slots cannot hold.
    for bad in (0, 65):
        with pytest.raises(ValueError, match="Number of ADIs"):
            DeviceParams(num_adis=bad)
