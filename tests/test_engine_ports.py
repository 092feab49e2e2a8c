"""rtl/cmd/ports.py's arbiters in Amaranth's simulator, each on its own, against Python models.

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
import random

import pytest
from amaranth.sim import Simulator

from siov.rtl.cmd.ports import (ORDER_DEPTH, AxiReadArbiter, AxiWriteArbiter, RoundRobin, StreamMerge,
                                TrackerPortArbiter)
from siov.rtl.dma.tracker import OUT_LAYOUT, REQ_LAYOUT

SEEDS = [1, 2]
MASK64 = (1 << 64) - 1


def _simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


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
        last = n - 1
        for _ in range(cycles):
            density = rng.choice([0.2, 0.5, 0.9])
            req = sum(1 << i for i in range(n) if rng.random() < density)
            take = rng.random() < 0.7
            ctx.set(dut.req, req)
            ctx.set(dut.take, take)
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

    _simulate(dut, bench)
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
        waiting = [None] * n          # grants to others since the request went up
        for _ in range(cycles):
            for i in range(n):
                if waiting[i] is None and rng.random() < p_new:
                    waiting[i] = 0
            take = rng.random() < p_take
            req = sum(1 << i for i in range(n) if waiting[i] is not None)
            ctx.set(dut.req, req)
            ctx.set(dut.take, take)
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

    _simulate(dut, bench)
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
    ins = dut.inputs()
    log = {"accepted": [], "out": [], "stalled": 0, "both_waiting": 0, "sent": [0] * n}

    async def bench(ctx):
        nxt = [0] * n                 # next sequence number of each input
        offered = [False] * n         # valid is up (and must stay up until ready)
        prev = None                   # (valid, payload) of a stalled output
        for t in range(cycles + drain):
            for k in range(n):
                if not offered[k] and nxt[k] < beats and t < cycles and rng.random() < p_valid:
                    offered[k] = True
                ctx.set(ins[k].valid, offered[k])
                ctx.set(ins[k].payload, k << 12 | nxt[k])
            ready = t >= cycles or rng.random() < p_ready
            ctx.set(dut.out.ready, ready)
            valid = ctx.get(dut.out.valid)
            payload = ctx.get(dut.out.payload)
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
        log["sent"] = nxt
        log["left"] = ctx.get(dut.out.valid)

    _simulate(dut, bench)
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
    reqs = [getattr(dut, f"req{k}") for k in range(n)]
    resps = [getattr(dut, f"resp{k}") for k in range(n)]
    log = {"issued": [0] * n, "answered": [0] * n, "stall_order": 0, "stall_back": 0, "max_inflight": 0}

    async def bench(ctx):
        issued = [[] for _ in range(n)]        # each requester's accepted checks, in order
        got = [0] * n                          # answers received by each requester
        offer = [None] * n                     # the check held on req{k}
        tracker = collections.deque()          # (due cycle, answer) in request order
        back = None                            # the answer on `back`, held until ready
        prev_back_ready = None
        for t in range(cycles + drain):
            busy = t < cycles
            for k in range(n):
                if offer[k] is None and busy and len(issued[k]) - got[k] < max_outstanding \
                        and rng.random() < 0.5:
                    offer[k] = {"pasid": k << 16 | rng.getrandbits(16), "page": rng.getrandbits(32),
                                "write": rng.getrandbits(1)}
                ctx.set(reqs[k].valid, offer[k] is not None)
                if offer[k] is not None:
                    ctx.set(reqs[k].payload, offer[k])
                ctx.set(resps[k].ready, not busy or rng.random() < 0.6)
            out_ready = not busy or rng.random() < 0.7
            ctx.set(dut.out.ready, out_ready)
            if back is None and tracker and tracker[0][0] <= t:
                back = tracker.popleft()[1]
            ctx.set(dut.back.valid, back is not None)
            if back is not None:
                ctx.set(dut.back.payload, back)

            out_valid = ctx.get(dut.out.valid)
            fire = out_valid and out_ready
            readies = [ctx.get(r.ready) for r in reqs]
            # At most one check per clock, and it is the one on `out`.
            assert sum(readies) == int(fire), (readies, fire)
            if any(offer) and not out_valid:
                log["stall_order"] += 1       # the order queue is full
            if fire:
                k = readies.index(1)
                assert offer[k] is not None
                payload = ctx.get(dut.out.payload)
                assert {f: payload[f] for f in ("pasid", "page", "write")} == offer[k]
                issued[k].append(offer[k])
                offer[k] = None
                # The answer comes at least one cycle after the check, in order.
                tracker.append((t + 1 + rng.randrange(6), _answer(issued[k][-1])))
            inflight = sum(len(issued[k]) - got[k] for k in range(n))
            log["max_inflight"] = max(log["max_inflight"], inflight)

            valids = [ctx.get(r.valid) for r in resps]
            assert sum(valids) <= 1
            back_ready = ctx.get(dut.back.ready)
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
                    payload = ctx.get(resps[k].payload)
                    assert got[k] < len(issued[k]), f"requester {k} got an answer it did not ask for"
                    want = _answer(issued[k][got[k]])
                    assert {f: payload[f] for f in want} == want, f"requester {k}, answer {got[k]}"
                    got[k] += 1
            if back is not None and back_ready:
                back = None
            prev_back_ready = back_ready
            await ctx.tick()
        del prev_back_ready
        log["issued"] = [len(i) for i in issued]
        log["answered"] = got
        log["pending"] = len(tracker) + (back is not None)

    _simulate(dut, bench)
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


def _bursts(rng, master, count, region):
    """``count`` INCR bursts of 1..16 beats inside ``region`` (no 4 KiB crossing)."""
    out = []
    for j in range(count):
        length = rng.randint(1, 16)
        page = region + (rng.randrange(16) << 12)
        offset = rng.randrange(512 - length + 1) << 3
        out.append((page + offset, length))
    return out


class _Responder:
    """The slave's response side: a queue per ID, answered in any order across IDs.

    Each entry is ``[due cycle, item, beats left]``; the head of one ID's queue
    goes first within that ID. ``choose`` picks among the IDs whose head is due,
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
        self.order.remove(head[1])
        return True

    def idle(self):
        return not self.order


# ---------------------------------------------------------------------------- AxiReadArbiter

def _run_axi_read(n, seed, cycles=1500, drain=800):
    dut = AxiReadArbiter(n)
    rng = random.Random(seed)
    ms = [getattr(dut, f"m{k}") for k in range(n)]
    bus = dut.bus
    log = {"bursts": [0] * n, "done": [0] * n, "interleaved": 0, "ar_stall": 0, "reordered": 0}
    ar_fields = ("araddr", "arlen", "arsize", "arburst")

    async def bench(ctx):
        todo = [collections.deque(_bursts(rng, k, 10 ** 6, (k + 1) << 32)) for k in range(n)]
        offer = [None] * n                       # the AR held by master k
        expect = [collections.deque() for _ in range(n)]   # (addr, len, beat) of bursts issued
        accepted = collections.deque()           # (k, addr, len) in the arbiter's acceptance order
        slave = _Pick(rng)
        beat = None                              # (id, addr, len, index) on R, held until ready
        last_id_order = []
        prev_ar = None
        for t in range(cycles + drain):
            busy = t < cycles
            for k in range(n):
                if offer[k] is None and busy and len(expect[k]) < 6 and rng.random() < 0.4:
                    offer[k] = todo[k].popleft()
                m = ms[k]
                ctx.set(m.arvalid, offer[k] is not None)
                if offer[k] is not None:
                    addr, length = offer[k]
                    # The master's own ID is ignored (the bus ID names the master).
                    ctx.set(m.arid, rng.getrandbits(1))
                    ctx.set(m.araddr, addr)
                    ctx.set(m.arlen, length - 1)
                    ctx.set(m.arsize, 3)
                    ctx.set(m.arburst, 1)
                ctx.set(m.rready, not busy or rng.random() < 0.7)
            arready = not busy or rng.random() < 0.5
            ctx.set(bus.arready, arready)
            if beat is None:
                ident = slave.choose(t)
                if ident is not None:
                    due, burst = slave.queues[ident][0]
                    beat = (ident, burst[0], burst[1], burst[2])
                    if last_id_order and last_id_order[0] != burst:
                        log["reordered"] += 1
            ctx.set(bus.rvalid, beat is not None)
            if beat is not None:
                ident, addr, length, i = beat
                ctx.set(bus.rid, ident)
                ctx.set(bus.rdata, _read_word(addr + 8 * i))
                ctx.set(bus.rresp, _read_resp(addr + 8 * i))
                ctx.set(bus.rlast, i == length - 1)

            # AR: from a register that holds still while stalled.
            ar_valid = ctx.get(bus.arvalid)
            ar = tuple(ctx.get(getattr(bus, f)) for f in ("arid",) + ar_fields)
            if prev_ar is not None:
                assert ar_valid and ar == prev_ar, "AR changed while valid and not ready"
            prev_ar = ar if ar_valid and not arready else None
            log["ar_stall"] += ar_valid and not arready
            readies = [ctx.get(m.arready) for m in ms]
            assert sum(readies) <= 1, f"several masters' ARREADY at once: {readies}"
            for k in range(n):
                if readies[k]:
                    assert offer[k] is not None, f"ARREADY to master {k}, which has no AR"
                    addr, length = offer[k]
                    accepted.append((k, addr, length))
                    expect[k].append([addr, length, 0])
                    log["bursts"][k] += 1
                    offer[k] = None
            if ar_valid and arready:
                assert accepted, "an AR on the bus that no master issued"
                k, addr, length = accepted.popleft()
                assert ar == (k, addr, length - 1, 3, 1), f"AR {ar}, expected master {k}'s {addr:#x}/{length}"
                slave.push(k, t + 1 + rng.randrange(8), (addr, length, 0))
                last_id_order.append((addr, length, 0))

            # R: routed by RID; only that master sees RVALID, and its RREADY is the bus's.
            rvalids = [ctx.get(m.rvalid) for m in ms]
            rready = ctx.get(bus.rready)
            if beat is None:
                assert not any(rvalids)
            else:
                ident, addr, length, i = beat
                assert rvalids == [int(k == ident) for k in range(n)], (rvalids, ident)
                assert rready == ctx.get(ms[ident].rready)
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
                ident, addr, length, i = beat
                q = slave.queues[ident]
                if i + 1 == length:
                    burst = q.popleft()[1]
                    last_id_order.remove(burst)
                    beat = None
                else:
                    if slave.current != ident:
                        pass
                    beat = (ident, addr, length, i + 1)
                    # Let another ID's burst in between the beats of this one.
                    if rng.random() < 0.3:
                        q[0] = (q[0][0], (addr, length, i + 1))
                        other = slave.choose(t)
                        if other != ident:
                            log["interleaved"] += 1
                            due, burst = slave.queues[other][0]
                            beat = (other, burst[0], burst[1], burst[2])
            await ctx.tick()
        log["outstanding"] = [len(e) for e in expect] + [len(accepted)]

    _simulate(dut, bench)
    return log


@pytest.mark.parametrize("seed", SEEDS)
def test_axi_read_arbiter_routes_bursts_by_id(seed):
    n = 3
    log = _run_axi_read(n, seed)
    assert log["outstanding"] == [0] * (n + 1)
    assert log["done"] == log["bursts"] and min(log["bursts"]) > 40
    assert log["ar_stall"] > 50 and log["interleaved"] > 20 and log["reordered"] > 20
