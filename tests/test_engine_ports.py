"""rtl/cmd/ports.py's arbiters, and rtl/stream.py's RoundRobin and StreamMerge
they are built from, in Amaranth's simulator, each on its own, against Python
models.

* RoundRobin: random request sets and random takes against a Python
  rotating-priority model (the pick is the first requester after the last
  one taken, never a non-requester); requesters that hold their request until
  served wait fewer than ``n`` grants (no starvation).
* StreamMerge: random producers (valid held until ready) and a random
  consumer; every accepted beat comes out once, in acceptance order (so each
  input's order is kept), the output holds still while stalled, and with
  every input always valid the shares differ by at most one.
* TrackerPortArbiter: requesters issue checks (valid held until ready), a
  fake tracker answers them in order after random delays with a payload
  derived from the check; each requester gets exactly its own answers, in
  order, and at most one check leaves per clock.
* AxiReadArbiter / AxiWriteArbiter: three masters issue random INCR bursts
  to a Python AXI4 slave that reorders responses across IDs (same ID in
  order) with random ready and latency; every master gets exactly its own
  read data (derived from the address) and B responses in order, every
  write lands in memory with its strobes, W beats on the bus follow the AW
  order, AR/AW hold still while stalled, the bus ID is the master's index,
  and only the selected master sees a ready.
"""

import collections
import gc
import random
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable

from siov.rtl.cmd.ports import ORDER_DEPTH, AxiReadArbiter, AxiWriteArbiter, TrackerPortArbiter
from siov.rtl.dma.tracker import OUT_LAYOUT, REQ_LAYOUT
from siov.rtl.stream import RoundRobin, StreamMerge
from siov.tb.amsim import setter, signals, simulate
from siov.tb.layouts import pack, unpack

SEEDS = [1, 2]
MASK64 = (1 << 64) - 1


def _mix(x):
    """A 64-bit value derived from ``x`` (splitmix64), for data that names its origin."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


# ---------------------------------------------------------------------------- RoundRobin

def _rr_expected(req, last, n):
    for k in range(1, n + 1):
        i = (last + k) % n
        if req >> i & 1:
            return i
    return None


def _run_round_robin(n, seed, cycles=600):
    """Random request sets (including none and all) and random takes."""
    dut = RoundRobin(n)
    rng = random.Random(seed)
    log = {"picks": [0] * n, "rotated": 0, "idle": 0}

    async def bench(ctx):
        put = setter(ctx)
        last = n - 1
        for _ in range(cycles):
            density = rng.choice([0.2, 0.5, 0.9])
            req = sum(1 << i for i in range(n) if rng.random() < density)
            take = rng.random() < 0.7
            put(dut.req, req)
            put(dut.take, take)
            assert ctx.get(dut.found) == (req != 0)
            want = _rr_expected(req, last, n)
            if want is None:
                log["idle"] += 1
            else:
                pick = ctx.get(dut.pick)
                assert req >> pick & 1, f"picked {pick}, which does not request ({req:#b})"
                assert pick == want, f"req {req:#b} after {last}: picked {pick}, expected {want}"
                # The rotation mattered: the lowest requester was passed over.
                log["rotated"] += pick != (req & -req).bit_length() - 1
                if take:
                    log["picks"][pick] += 1
                    last = pick
            await ctx.tick()

    simulate(dut, bench)
    return log


@pytest.mark.parametrize("n", [1, 3, 5])
@pytest.mark.parametrize("seed", SEEDS)
def test_round_robin_picks_first_requester_after_last(n, seed):
    log = _run_round_robin(n, seed)
    assert log["idle"] > 5
    assert min(log["picks"]) > 30
    if n > 1:
        assert log["rotated"] > 50


def _run_round_robin_hold(n, seed, cycles=600, p_new=0.9, p_take=0.6):
    """Requesters raise a request and hold it until they are served."""
    dut = RoundRobin(n)
    rng = random.Random(seed)
    log = {"served": 0, "max_wait": 0, "order": []}

    async def bench(ctx):
        put = setter(ctx)
        waiting = [None] * n          # grants to others since the request went up
        for _ in range(cycles):
            for i in range(n):
                if waiting[i] is None and rng.random() < p_new:
                    waiting[i] = 0
            take = rng.random() < p_take
            req = sum(1 << i for i in range(n) if waiting[i] is not None)
            put(dut.req, req)
            put(dut.take, take)
            if req and take:
                pick = ctx.get(dut.pick)
                assert waiting[pick] is not None
                log["max_wait"] = max(log["max_wait"], waiting[pick])
                log["order"].append(pick)
                waiting[pick] = None
                log["served"] += 1
                for i in range(n):
                    if waiting[i] is not None:
                        waiting[i] += 1
                        # Bounded wait: every other requester is served at most once first.
                        assert waiting[i] < n, f"requester {i} passed over {waiting[i]} times"
            await ctx.tick()

    simulate(dut, bench)
    return log


@pytest.mark.parametrize("seed", SEEDS)
def test_round_robin_no_starvation(seed):
    n = 4
    log = _run_round_robin_hold(n, seed)
    assert log["served"] > 200
    assert log["max_wait"] == n - 1      # the bound is reached, and never passed
    # Everyone always requesting, a take every cycle: strict rotation from 0.
    full = _run_round_robin_hold(n, seed, cycles=40, p_new=1.0, p_take=1.0)
    assert full["order"] == [i % n for i in range(40)]


# ---------------------------------------------------------------------------- StreamMerge

def _run_merge(n, seed, cycles, beats, p_valid, p_ready, drain=400):
    dut = StreamMerge(n, 16)
    rng = random.Random(seed)
    ins = [signals(i) for i in dut.inputs()]
    out = signals(dut.out)
    log = {"accepted": [], "out": [], "stalled": 0, "both_waiting": 0, "sent": [0] * n}

    async def bench(ctx):
        put = setter(ctx)
        nxt = [0] * n                 # next sequence number of each input
        offered = [False] * n         # valid is up (and must stay up until ready)
        prev = None                   # the payload of a stalled output
        for t in range(cycles + drain):
            for k in range(n):
                if not offered[k] and nxt[k] < beats and t < cycles and rng.random() < p_valid:
                    offered[k] = True
                put(ins[k].valid, offered[k])
                put(ins[k].payload, k << 12 | nxt[k])
            ready = t >= cycles or rng.random() < p_ready
            put(out.ready, ready)
            valid = ctx.get(out.valid)
            payload = ctx.get(out.payload)
            if prev is not None:
                assert valid and payload == prev, "the output changed while valid and not ready"
            prev = payload if valid and not ready else None
            log["stalled"] += valid and not ready
            if valid and ready:
                log["out"].append(payload)
            readies = [ctx.get(s.ready) for s in ins]
            assert sum(readies) <= 1, f"several inputs taken at once: {readies}"
            log["both_waiting"] += sum(offered) > 1
            for k in range(n):
                if readies[k]:
                    assert offered[k], f"input {k} ready while not valid"
                    log["accepted"].append(k << 12 | nxt[k])
                    nxt[k] += 1
                    offered[k] = False
            await ctx.tick()
            if t >= cycles and not any(offered) and len(log["out"]) == len(log["accepted"]):
                break
        log["sent"] = nxt
        log["left"] = ctx.get(out.valid)

    simulate(dut, bench)
    return log


@pytest.mark.parametrize("seed", SEEDS)
def test_stream_merge_every_beat_once_in_order(seed):
    n = 3
    log = _run_merge(n, seed, cycles=1200, beats=4096, p_valid=0.5, p_ready=0.6)
    assert not log["left"]
    # Exactly what was taken, in the order taken: nothing lost, duplicated or reordered.
    assert log["out"] == log["accepted"]
    for k in range(n):
        mine = [p & 0xFFF for p in log["out"] if p >> 12 == k]
        assert mine == list(range(log["sent"][k])), f"input {k} out of order or incomplete"
        assert log["sent"][k] > 150
    assert log["stalled"] > 100 and log["both_waiting"] > 200


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("p_ready", [1.0, 0.5])
def test_stream_merge_fair_share(seed, p_ready):
    n = 3
    log = _run_merge(n, seed, cycles=600, beats=4096, p_valid=1.0, p_ready=p_ready, drain=0)
    counts = [sum(1 for p in log["out"] if p >> 12 == k) for k in range(n)]
    assert max(counts) - min(counts) <= 1, counts
    # Every input always valid: strict rotation.
    assert [p >> 12 for p in log["out"]] == [i % n for i in range(len(log["out"]))]
    if p_ready == 1.0:
        assert len(log["out"]) >= 598          # one beat per cycle after the first load
    else:
        assert len(log["out"]) > 200


# ---------------------------------------------------------------------------- TrackerPortArbiter

def _answer(req):
    """The fake tracker's answer to a check: every field derived from it."""
    pasid, page, write = req["pasid"], req["page"], req["write"]
    fault = _mix(pasid << 33 | page << 1 | write) & 7 == 0
    return {"addr": 0 if fault else _mix(page) & ~0xFFF & MASK64, "write": write, "pasid": pasid,
            "domain": pasid & 0x3F, "page": page, "fault": int(fault), "reason": 5 if fault else 0}


def _run_tracker_port(n, seed, cycles=1200, drain=300, max_outstanding=4):
    dut = TrackerPortArbiter(n, REQ_LAYOUT, OUT_LAYOUT)
    rng = random.Random(seed)
    reqs = [signals(getattr(dut, f"req{k}")) for k in range(n)]
    resps = [signals(getattr(dut, f"resp{k}")) for k in range(n)]
    to_tracker, from_tracker = signals(dut.out), signals(dut.back)
    log = {"issued": [0] * n, "answered": [0] * n, "stall_order": 0, "stall_back": 0, "max_inflight": 0}

    async def bench(ctx):
        put = setter(ctx)
        issued = [[] for _ in range(n)]        # each requester's accepted checks, in order
        got = [0] * n                          # answers received by each requester
        offer = [None] * n                     # the check held on req{k}
        tracker = collections.deque()          # (due cycle, answer) in request order
        back = None                            # the answer on `back`, held until ready
        last = n - 1                           # the requester served last (round robin)
        for t in range(cycles + drain):
            busy = t < cycles
            for k in range(n):
                if offer[k] is None and busy and len(issued[k]) - got[k] < max_outstanding \
                        and rng.random() < 0.5:
                    offer[k] = {"pasid": k << 16 | rng.getrandbits(16), "page": rng.getrandbits(32),
                                "write": rng.getrandbits(1)}
                put(reqs[k].valid, offer[k] is not None)
                if offer[k] is not None:
                    put(reqs[k].payload.as_value(), pack(REQ_LAYOUT, **offer[k]))
                put(resps[k].ready, not busy or rng.random() < 0.6)
            out_ready = not busy or rng.random() < 0.7
            put(to_tracker.ready, out_ready)
            if back is None and tracker and tracker[0][0] <= t:
                back = tracker.popleft()[1]
            put(from_tracker.valid, back is not None)
            if back is not None:
                put(from_tracker.payload.as_value(), pack(OUT_LAYOUT, **back))

            out_valid = ctx.get(to_tracker.valid)
            fire = out_valid and out_ready
            readies = [ctx.get(r.ready) for r in reqs]
            # At most one check per clock, and it is the one on `out`.
            assert sum(readies) == int(fire), (readies, fire)
            if any(offer) and not out_valid:
                log["stall_order"] += 1       # the order queue is full
            if fire:
                k = readies.index(1)
                assert offer[k] is not None
                mask = sum(1 << i for i in range(n) if offer[i] is not None)
                assert k == _rr_expected(mask, last, n), f"requester {k} served out of turn"
                last = k
                assert unpack(REQ_LAYOUT, ctx.get(to_tracker.payload.as_value())) == offer[k]
                issued[k].append(offer[k])
                offer[k] = None
                # The answer comes at least one cycle after the check, in order.
                tracker.append((t + 1 + rng.randrange(6), _answer(issued[k][-1])))
            inflight = sum(len(issued[k]) - got[k] for k in range(n))
            log["max_inflight"] = max(log["max_inflight"], inflight)

            valids = [ctx.get(r.valid) for r in resps]
            assert sum(valids) <= 1
            back_ready = ctx.get(from_tracker.ready)
            if back is None:
                assert not any(valids)
            else:
                if not back_ready:
                    log["stall_back"] += 1
                if any(valids):
                    k = valids.index(1)
                    # Back-pressure goes to the requester the answer is for.
                    assert back_ready == ctx.get(resps[k].ready)
                else:
                    assert not back_ready
            for k in range(n):
                if valids[k] and ctx.get(resps[k].ready):
                    assert got[k] < len(issued[k]), f"requester {k} got an answer it did not ask for"
                    want = _answer(issued[k][got[k]])
                    assert unpack(OUT_LAYOUT, ctx.get(resps[k].payload.as_value())) == want, \
                        f"requester {k}, answer {got[k]}"
                    got[k] += 1
            if back is not None and back_ready:
                back = None
            await ctx.tick()
            if not busy and not any(offer) and not tracker and back is None:
                break
        log["issued"] = [len(i) for i in issued]
        log["answered"] = got
        log["pending"] = len(tracker) + (back is not None)

    simulate(dut, bench)
    return log


@pytest.mark.parametrize("seed", SEEDS)
def test_tracker_port_routes_answers_in_order(seed):
    n = 3
    log = _run_tracker_port(n, seed)
    assert log["answered"] == log["issued"] and log["pending"] == 0
    assert min(log["issued"]) > 150
    assert log["stall_back"] > 50
    # The order queue filled (the tracker's latency and the requesters' depth exceed it).
    assert log["max_inflight"] >= ORDER_DEPTH and log["stall_order"] > 0


# ---------------------------------------------------------------------------- AXI slave model

def _read_word(addr):
    return _mix(addr)


def _read_resp(addr):
    """SLVERR on about one beat in 16, chosen by address."""
    return 2 if _mix(addr ^ 0x5A5A) & 15 == 0 else 0


def _write_resp(addr):
    return 2 if _mix(addr ^ 0xA5A5) & 7 == 0 else 0


def _read_bursts(rng, region):
    """Endless INCR bursts of 1..16 beats in 16 pages at ``region``, none crossing 4 KiB."""
    while True:
        length = rng.randint(1, 16)
        offset = rng.randrange(512 - length + 1) << 3
        yield region + (rng.randrange(16) << 12) + offset, length


class _Responder:
    """The slave's response side: a queue per ID, answered in any order across IDs.

    Each entry is ``[due cycle, item, beats, beats sent]``; the head of one ID's
    queue goes first within that ID. ``choose`` picks among the IDs whose head is due,
    often staying with the last ID, sometimes moving to another in the middle of
    a burst (AXI4 allows read data of different IDs to interleave).
    """

    def __init__(self, rng, p_stay=0.7):
        self.rng = rng
        self.p_stay = p_stay
        self.queues = collections.defaultdict(collections.deque)
        self.order = []            # items in the order they were pushed, until done
        self.current = None
        self.interleaved = 0       # switched away from a burst in the middle
        self.reordered = 0         # answered an item while an older one of another ID waits

    def push(self, ident, due, item, beats=1):
        self.queues[ident].append([due, item, beats, 0])
        self.order.append(item)

    def choose(self, t):
        due = sorted(i for i, q in self.queues.items() if q and q[0][0] <= t)
        if not due:
            return None
        if not (self.current in due and self.rng.random() < self.p_stay):
            cur = self.queues.get(self.current)
            choice = self.rng.choice(due)
            if cur and cur[0][3] and choice != self.current:
                self.interleaved += 1
            self.current = choice
        head = self.queues[self.current][0]
        if head[3] == 0 and self.order[0] is not head[1]:
            self.reordered += 1
        return self.current, head

    def advance(self, ident):
        """One beat of ``ident``'s head went out; True when it was the last."""
        head = self.queues[ident][0]
        head[3] += 1
        if head[3] < head[2]:
            return False
        self.queues[ident].popleft()
        del self.order[next(i for i, item in enumerate(self.order) if item is head[1])]
        return True

    def idle(self):
        return not self.order


# ---------------------------------------------------------------------------- AxiReadArbiter

def _run_axi_read(n, seed, cycles=1500, drain=800):
    dut = AxiReadArbiter(n)
    rng = random.Random(seed)
    ms = [signals(getattr(dut, f"m{k}")) for k in range(n)]
    bus = signals(dut.bus)
    log = {"bursts": [0] * n, "done": [0] * n, "ar_stall": 0, "r_stall": 0}
    ar_fields = ("arid", "araddr", "arlen", "arsize", "arburst")

    async def bench(ctx):
        put = setter(ctx)
        todo = [_read_bursts(rng, (k + 1) << 32) for k in range(n)]
        offer = [None] * n                       # the AR held by master k until its ARREADY
        expect = [collections.deque() for _ in range(n)]   # [addr, len, beats seen] per burst
        accepted = collections.deque()           # (k, addr, len) in the arbiter's acceptance order
        slave = _Responder(rng)
        beat = None                              # (id, burst entry) on R, held until ready
        prev_ar = None
        last = n - 1                             # the master whose AR was taken last
        for t in range(cycles + drain):
            busy = t < cycles
            for k in range(n):
                if offer[k] is None and busy and len(expect[k]) < 6 and rng.random() < 0.4:
                    offer[k] = next(todo[k])
                m = ms[k]
                put(m.arvalid, offer[k] is not None)
                if offer[k] is not None:
                    addr, length = offer[k]
                    # The master's own ID is ignored (the bus ID names the master).
                    put(m.arid, addr >> 3 & 1)
                    put(m.araddr, addr)
                    put(m.arlen, length - 1)
                    put(m.arsize, 3)
                    put(m.arburst, 1)
                put(m.rready, not busy or rng.random() < 0.7)
            arready = not busy or rng.random() < 0.5
            put(bus.arready, arready)
            if beat is None:
                beat = slave.choose(t)
            put(bus.rvalid, beat is not None)
            if beat is not None:
                ident, (_, (addr, length), _, i) = beat
                put(bus.rid, ident)
                put(bus.rdata, _read_word(addr + 8 * i))
                put(bus.rresp, _read_resp(addr + 8 * i))
                put(bus.rlast, i == length - 1)

            # AR: from a register that holds still while stalled.
            ar_valid = ctx.get(bus.arvalid)
            ar = tuple(ctx.get(getattr(bus, f)) for f in ar_fields)
            if prev_ar is not None:
                assert ar_valid and ar == prev_ar, "AR changed while valid and not ready"
            prev_ar = ar if ar_valid and not arready else None
            log["ar_stall"] += ar_valid and not arready
            readies = [ctx.get(m.arready) for m in ms]
            assert sum(readies) <= 1, f"several masters' ARREADY at once: {readies}"
            for k in range(n):
                if readies[k]:
                    assert offer[k] is not None, f"ARREADY to master {k}, which has no AR"
                    mask = sum(1 << i for i in range(n) if offer[i] is not None)
                    assert k == _rr_expected(mask, last, n), f"master {k}'s AR taken out of turn"
                    last = k
                    addr, length = offer[k]
                    accepted.append((k, addr, length))
                    expect[k].append([addr, length, 0])
                    log["bursts"][k] += 1
                    offer[k] = None
            if ar_valid and arready:
                assert accepted, "an AR on the bus that no master issued"
                k, addr, length = accepted.popleft()
                assert ar == (k, addr, length - 1, 3, 1), \
                    f"AR {ar}, expected master {k}'s {addr:#x}/{length} with ARID {k}"
                slave.push(k, t + 1 + rng.randrange(8), (addr, length), beats=length)

            # R: routed by RID; only that master sees RVALID, and the bus's RREADY is its RREADY.
            rvalids = [ctx.get(m.rvalid) for m in ms]
            rready = ctx.get(bus.rready)
            if beat is None:
                assert not any(rvalids)
            else:
                ident = beat[0]
                assert rvalids == [int(k == ident) for k in range(n)], (rvalids, ident)
                assert rready == ctx.get(ms[ident].rready)
                log["r_stall"] += not rready
            for k in range(n):
                m = ms[k]
                if rvalids[k] and ctx.get(m.rready):
                    assert expect[k], f"master {k} got R data it did not ask for"
                    exp = expect[k][0]
                    a = exp[0] + 8 * exp[2]
                    got = (ctx.get(m.rid), ctx.get(m.rdata), ctx.get(m.rresp), ctx.get(m.rlast))
                    assert got == (0, _read_word(a), _read_resp(a), int(exp[2] == exp[1] - 1)), \
                        f"master {k}: beat {exp[2]} of {exp[0]:#x}/{exp[1]}: {got}"
                    exp[2] += 1
                    if exp[2] == exp[1]:
                        expect[k].popleft()
                        log["done"][k] += 1
            if beat is not None and rready:
                slave.advance(beat[0])
                beat = None
            await ctx.tick()
            if not busy and slave.idle() and not any(offer) and not accepted:
                break
        log["outstanding"] = [len(e) for e in expect] + [len(accepted), len(slave.order)]
        log["interleaved"], log["reordered"] = slave.interleaved, slave.reordered

    simulate(dut, bench)
    return log


@pytest.mark.parametrize("seed", SEEDS)
def test_axi_read_arbiter_routes_bursts_by_id(seed):
    n = 3
    log = _run_axi_read(n, seed)
    assert log["outstanding"] == [0] * (n + 2)
    assert log["done"] == log["bursts"] and min(log["bursts"]) > 40
    assert log["ar_stall"] > 50 and log["r_stall"] > 50
    assert log["interleaved"] > 20 and log["reordered"] > 20


# ---------------------------------------------------------------------------- AxiWriteArbiter

def _write_bursts(rng, master, region):
    """Endless INCR bursts of 1..16 beats, each in its own 256-byte block (never crossing 4 KiB)."""
    j = 0
    while True:
        length = rng.randint(1, 16)
        addr = region + 256 * j + (rng.randrange(32 - length + 1) << 3)
        yield {"master": master, "addr": addr, "len": length,
               "data": [rng.getrandbits(64) for _ in range(length)],
               "strb": [0xFF if rng.random() < 0.7 else rng.randrange(256) for _ in range(length)],
               "aw": False, "w": 0}
        j += 1


def _merge(old, data, strb):
    mask = sum(0xFF << 8 * i for i in range(8) if strb >> i & 1)
    return old & ~mask | data & mask


def _run_axi_write(n, seed, cycles=1500, drain=800):
    dut = AxiWriteArbiter(n)
    rng = random.Random(seed)
    ms = [signals(getattr(dut, f"m{k}")) for k in range(n)]
    bus = signals(dut.bus)
    log = {"bursts": [0] * n, "b": [0] * n, "aw_stall": 0, "w_stall": 0, "w_waits_aw": 0}
    aw_fields = ("awid", "awaddr", "awlen", "awsize", "awburst")
    mem, want = {}, {}

    async def bench(ctx):
        put = setter(ctx)
        gen = [_write_bursts(rng, k, (k + 1) << 32) for k in range(n)]
        offered = [[] for _ in range(n)]          # bursts whose AW master k has raised, in order
        aw_offer = [None] * n                    # the AW held by master k
        w_next = [0] * n                         # index in offered[k] of the burst W is sending
        w_up = [False] * n                       # WVALID up (held until WREADY)
        b_expect = [collections.deque() for _ in range(n)]
        accepted = collections.deque()           # bursts in the arbiter's AW acceptance order
        w_order = collections.deque()            # the same, until their last W beat on the bus
        slave = _Responder(rng)
        bresp = None                             # (id, entry) on B, held until ready
        prev_aw = prev_w = None
        last = n - 1                             # the master whose AW was taken last
        for t in range(cycles + drain):
            busy = t < cycles
            if t % 100 == 0:
                # Phases: the AW side or W the bottleneck (the AW order queue fills up, or runs
                # empty with W already up), and all masters busy, or one alone (so that it
                # follows itself in the AW order), or all sparse.
                p_aw, p_w = rng.choice(((0.5, 0.6), (0.15, 0.9), (0.9, 0.3), (0.3, 1.0)))
                alone = rng.randrange(n)
                p_offer = rng.choice(([0.4] * n, [0.5 if k == alone else 0 for k in range(n)], [0.08] * n))
            for k in range(n):
                m = ms[k]
                if aw_offer[k] is None and busy and len(b_expect[k]) < 8 and rng.random() < p_offer[k]:
                    aw_offer[k] = next(gen[k])
                    offered[k].append(aw_offer[k])
                put(m.awvalid, aw_offer[k] is not None)
                if aw_offer[k] is not None:
                    b = aw_offer[k]
                    put(m.awid, b["addr"] >> 3 & 1)       # ignored
                    put(m.awaddr, b["addr"])
                    put(m.awlen, b["len"] - 1)
                    put(m.awsize, 3)
                    put(m.awburst, 1)
                # W may start before its AW is taken (it only needs the AW raised).
                if not w_up[k] and w_next[k] < len(offered[k]) and (not busy or rng.random() < 0.6):
                    w_up[k] = True
                put(m.wvalid, w_up[k])
                if w_up[k]:
                    b = offered[k][w_next[k]]
                    i = b["w"]
                    put(m.wdata, b["data"][i])
                    put(m.wstrb, b["strb"][i])
                    put(m.wlast, i == b["len"] - 1)
                put(m.bready, not busy or rng.random() < 0.7)
            awready = not busy or rng.random() < p_aw
            wready = not busy or rng.random() < p_w
            put(bus.awready, awready)
            put(bus.wready, wready)
            if bresp is None:
                bresp = slave.choose(t)
            put(bus.bvalid, bresp is not None)
            if bresp is not None:
                put(bus.bid, bresp[0])
                put(bus.bresp, _write_resp(bresp[1][1]["addr"]))

            # AW: from a register that holds still while stalled; ID = master.
            aw_valid = ctx.get(bus.awvalid)
            aw = tuple(ctx.get(getattr(bus, f)) for f in aw_fields)
            if prev_aw is not None:
                assert aw_valid and aw == prev_aw, "AW changed while valid and not ready"
            prev_aw = aw if aw_valid and not awready else None
            log["aw_stall"] += aw_valid and not awready
            readies = [ctx.get(m.awready) for m in ms]
            assert sum(readies) <= 1, f"several masters' AWREADY at once: {readies}"
            for k in range(n):
                if readies[k]:
                    assert aw_offer[k] is not None, f"AWREADY to master {k}, which has no AW"
                    mask = sum(1 << i for i in range(n) if aw_offer[i] is not None)
                    assert k == _rr_expected(mask, last, n), f"master {k}'s AW taken out of turn"
                    last = k
                    accepted.append(aw_offer[k])
                    w_order.append(aw_offer[k])
                    b_expect[k].append(aw_offer[k])
                    log["bursts"][k] += 1
                    aw_offer[k] = None
            if aw_valid and awready:
                assert accepted, "an AW on the bus that no master issued"
                b = accepted.popleft()
                k = b["master"]
                assert aw == (k, b["addr"], b["len"] - 1, 3, 1), \
                    f"AW {aw}, expected master {k}'s {b['addr']:#x}/{b['len']} with AWID {k}"
                b["aw"] = True

            # W: the bursts' beats back to back, in AW order; WREADY only to that burst's master.
            w_valid = ctx.get(bus.wvalid)
            w = (ctx.get(bus.wdata), ctx.get(bus.wstrb), ctx.get(bus.wlast))
            if prev_w is not None:
                assert w_valid and w == prev_w, "W changed while valid and not ready"
            prev_w = w if w_valid and not wready else None
            wreadies = [ctx.get(m.wready) for m in ms]
            assert sum(wreadies) <= 1, f"several masters' WREADY at once: {wreadies}"
            if any(wreadies):
                assert w_order and wreadies.index(1) == w_order[0]["master"], \
                    "WREADY to a master whose burst is not next in AW order"
            # Coverage: a master's W is up while another master's burst goes first.
            log["w_waits_aw"] += bool(w_order) and any(w_up[k] and k != w_order[0]["master"]
                                                         for k in range(n))
            if w_valid:
                assert w_order, "W on the bus with no AW taken"
                b = w_order[0]
                i = b["w"]
                assert w == (b["data"][i], b["strb"][i], int(i == b["len"] - 1)), \
                    f"W beat {i} of master {b['master']}'s {b['addr']:#x}/{b['len']}: {w}"
                log["w_stall"] += not wready
            for k in range(n):
                if w_up[k] and wreadies[k]:
                    assert w_valid, f"master {k}'s W beat taken but not on the bus"
            if w_valid and wready:
                b = w_order[0]
                a = b["addr"] + 8 * b["w"]
                mem[a] = _merge(mem.get(a, 0), b["data"][b["w"]], b["strb"][b["w"]])
                k = b["master"]
                assert w_up[k] and wreadies[k]
                w_up[k] = False
                b["w"] += 1
                if b["w"] == b["len"]:
                    w_order.popleft()
                    w_next[k] += 1
            # B: once the slave has the AW and every W beat, after a delay, any order across IDs.
            for k in range(n):
                for b in b_expect[k]:
                    if b["aw"] and b["w"] == b["len"] and not b.get("b_queued"):
                        b["b_queued"] = True
                        # Short or long B latency, so B often overtakes an older burst's.
                        slave.push(k, t + 1 + rng.choice((rng.randrange(4), 12 + rng.randrange(40))), b)

            bvalids = [ctx.get(m.bvalid) for m in ms]
            bready = ctx.get(bus.bready)
            if bresp is None:
                assert not any(bvalids)
            else:
                ident = bresp[0]
                assert bvalids == [int(k == ident) for k in range(n)], (bvalids, ident)
                assert bready == ctx.get(ms[ident].bready)
            for k in range(n):
                m = ms[k]
                if bvalids[k] and ctx.get(m.bready):
                    assert b_expect[k], f"master {k} got a B it did not expect"
                    b = b_expect[k].popleft()
                    assert (ctx.get(m.bid), ctx.get(m.bresp)) == (0, _write_resp(b["addr"])), \
                        f"master {k}: B of {b['addr']:#x}"
                    log["b"][k] += 1
            if bresp is not None and bready:
                slave.advance(bresp[0])
                bresp = None
            await ctx.tick()
            if not busy and not any(aw_offer) and not any(b_expect) and not accepted:
                break
        log["left"] = [len(e) for e in b_expect] + [len(accepted), len(w_order), len(slave.order)]
        log["left"] += [int(x is not None) for x in aw_offer]
        for k in range(n):
            for b in offered[k]:
                for i in range(b["len"]):
                    a = b["addr"] + 8 * i
                    want[a] = _merge(want.get(a, 0), b["data"][i], b["strb"][i])
        log["reordered"] = slave.reordered

    simulate(dut, bench)
    log["mem_ok"] = mem == want
    log["words"] = len(want)
    return log


@pytest.mark.parametrize("seed", SEEDS)
def test_axi_write_arbiter_keeps_w_in_aw_order(seed):
    n = 3
    log = _run_axi_write(n, seed)
    assert log["left"] == [0] * (2 * n + 3)
    assert log["mem_ok"] and log["words"] > 500
    assert log["b"] == log["bursts"] and min(log["bursts"]) > 12
    assert log["aw_stall"] > 50 and log["w_stall"] > 50 and log["reordered"] > 5
    assert log["w_waits_aw"] > 20      # a master's W waited behind another master's burst


# ---------------------------------------------------------------------------- construction

@pytest.mark.parametrize("n", [0, -1, 2.0, "3"])
def test_round_robin_refuses_bad_size(n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)       # the half-built component
        with pytest.raises(ValueError, match="Number of requesters must be a positive integer"):
            RoundRobin(n)
        gc.collect()
