"""The DMA tracker's parts in Amaranth's simulator, each on its own, against Python models.

* DomainTables (rtl/dma/tables.py): random entry and window writes; the
  table holds what was written to the selected entry, ``big`` is
  ``limit >= pages_per_domain``, and the read-back is the selected entry
  three cycles later.
* AddressLookup (rtl/dma/lookup.py): random tables and PASIDs; four cycles
  after a PASID, ``hit``/``domain`` name the lowest valid matching entry
  bound to a domain in range, and three cycles later ``base``/``limit`` its
  window (zeros if none).
* DirtyLog (rtl/dma/dirtylog.py): random sets, harvest reads and clears on
  a few words, one slot per cycle (back to back on one word most of the
  time); in stage S every slot sees its word with every earlier slot's
  write, as a dictionary of words does.
* OutcomeQueue (rtl/dma/outq.py): requests accepted only with a credit and
  pushed a fixed number of cycles later, under random back-pressure; no
  push ever meets a full FIFO, the outcomes leave in order with the address
  and reason gated by the verdict, and with a free consumer one request
  per clock is sustained.
* BitmapEngine (rtl/dma/engine.py): guest maps and unmaps, window reads and
  range words at random; results, words read and every bitmap word
  afterwards are a set-based model's, and mapped implies pinned throughout.
* GuestOps (rtl/dma/guest.py): guest MAP and UNMAP writes with random byte
  strobes and ADI tables; each operation waits for the engine with the
  page, the domain of its ADI's entry, or its refusal (BAD_ADI,
  OUT_OF_RANGE), is answered on the bus only when the engine is done, and
  a read returns the word last written.
* RangeOps (rtl/dma/rangeop.py): random ranges, codes and domains; GO is
  refused (ERR) while busy, for a domain out of range or a range beyond the
  bitmap, else the walk gives every word of the range once, in order, with
  the mask of the range's pages in it, and BUSY falls after the last.
* TrackerCounters (rtl/dma/counters.py): random events and clears; each
  count is the model's, COUNT_LAG cycles late.
* TrackerFront (rtl/dma/front.py): register writes read back over the bus;
  a harvest read takes a pipeline slot with its domain, word and clear, and
  its answer is the word the pipeline returns; bitmap window reads wait for
  the engine; out-of-range and write accesses get their error answers.
* TrackerFaults (rtl/dma/faults.py): faults offered are shown at the head
  in order, popped by POP, and the level counts them.
"""

import random

import pytest

from siov.rtl import regmap
from siov.rtl.csr.bus import Resp
from siov.rtl.dma.common import ADI_ENTRY, DOMAIN_WINDOW, FAULT_LAYOUT, HARVEST_LAYOUT, OUT_FIFO_LAYOUT, OUT_LAYOUT
from siov.rtl.dma.counters import COUNT_LAG, COUNTERS, TrackerCounters
from siov.rtl.dma.defs import Bitmap, GuestResult, RangeOp
from siov.rtl.dma.dirtylog import DirtyLog
from siov.rtl.dma.engine import BitmapEngine
from siov.rtl.dma.faults import TrackerFaults
from siov.rtl.dma.front import TrackerFront
from siov.rtl.dma.guest import GuestOps
from siov.rtl.dma.lookup import HIT_STAGES, WINDOW_STAGES, AddressLookup
from siov.rtl.dma.outq import OutcomeQueue
from siov.rtl.dma.rangeop import RangeOps
from siov.rtl.dma.tables import DomainTables
from siov.rtl.params import DeviceParams
from siov.tb.amsim import setter, simulate
from siov.tb.layouts import pack, unpack

SMALL = DeviceParams(num_adis=6, num_domains=3, pages_per_domain=256)
M32 = (1 << 32) - 1


def _array(layout, items):
    """The integer of an ArrayLayout of ``layout`` structs given as dicts."""
    v = 0
    for i, item in enumerate(items):
        v |= pack(layout, **item) << (i * layout.size)
    return v


def _entries(value, layout, n):
    return [unpack(layout, (value >> (i * layout.size)) & ((1 << layout.size) - 1)) for i in range(n)]


def _random_tables(rng, p):
    adi = [{"valid": rng.random() < 0.8, "pasid": rng.randrange(4), "domain": rng.randrange(p.num_domains + 1)}
           for _ in range(p.num_adis)]
    win = []
    for _ in range(p.num_domains):
        limit = rng.choice([rng.randrange(p.pages_per_domain), p.pages_per_domain, rng.randrange(1 << 32)])
        win.append({"base": rng.randrange(1 << 52), "limit": limit, "big": limit >= p.pages_per_domain})
    return adi, win


@pytest.mark.parametrize("seed", [1, 2])
def test_tables_hold_what_was_written(seed):
    rng = random.Random(seed)
    p = SMALL
    dut = DomainTables(p)
    adi = [dict(valid=0, pasid=0, domain=0) for _ in range(p.num_adis)]
    win = [dict(base=0, limit=0, big=0) for _ in range(p.num_domains)]

    async def bench(ctx):
        put = setter(ctx)
        for _ in range(60):
            ai, di = rng.randrange(8), rng.randrange(8)
            entry = {"valid": rng.randrange(2), "pasid": rng.randrange(1 << 20), "domain": rng.randrange(64)}
            base, limit = rng.randrange(1 << 52), rng.choice([rng.randrange(1 << 32), p.pages_per_domain,
                                                             p.pages_per_domain - 1])
            put(dut.adi_index, ai)
            put(dut.dom_index, di)
            put(dut.adi_entry.as_value(), pack(ADI_ENTRY, **entry))
            put(dut.dom_base, base)
            put(dut.dom_limit, limit)
            await ctx.tick()            # SEL, ENTRY, BASE, LIMIT a cycle before the command
            do_adi, do_dom = rng.randrange(2), rng.randrange(2)
            put(dut.adi_write, do_adi)
            put(dut.dom_write, do_dom)
            await ctx.tick()
            put(dut.adi_write, 0)
            put(dut.dom_write, 0)
            if do_adi and ai < p.num_adis:
                adi[ai] = entry
            if do_dom and di < p.num_domains:
                win[di] = {"base": base, "limit": limit, "big": int(limit >= p.pages_per_domain)}
            await ctx.tick().repeat(3)
            assert _entries(ctx.get(dut.adi.as_value()), ADI_ENTRY, p.num_adis) == adi
            assert _entries(ctx.get(dut.windows.as_value()), DOMAIN_WINDOW, p.num_domains) == win
            cur = unpack(ADI_ENTRY, ctx.get(dut.cur_adi.as_value()))
            assert cur == (adi[ai] if ai < p.num_adis else dict(valid=0, pasid=0, domain=0))
            want = win[di] if di < p.num_domains else dict(base=0, limit=0)
            assert (ctx.get(dut.cur_dom.base), ctx.get(dut.cur_dom.limit)) == (want["base"], want["limit"])

    simulate(dut, bench)


def _lookup_model(p, adi, win, valid, pasid):
    kp = p.pages_per_domain.bit_length() - 1
    for e in adi:
        if valid and e["valid"] and e["pasid"] == pasid and e["domain"] < p.num_domains:
            w = win[e["domain"]]
            return (1, e["domain"]), (w["base"], (w["limit"] & ((1 << kp) - 1)) | (int(w["big"]) << kp))
    return (0, 0), (0, 0)


@pytest.mark.parametrize("params", [SMALL, DeviceParams(num_adis=9, num_domains=5, pages_per_domain=64)],
                         ids=["a6d3", "a9d5"])
def test_address_lookup_finds_the_lowest_matching_entry(params):
    rng = random.Random(params.num_adis)
    dut = AddressLookup(params)
    seen = {"hit": 0, "miss": 0}

    async def bench(ctx):
        put = setter(ctx)
        for _ in range(12):
            adi, win = _random_tables(rng, params)
            put(dut.adi.as_value(), _array(ADI_ENTRY, adi))
            put(dut.windows.as_value(), _array(DOMAIN_WINDOW, win))
            expect = {}
            for cyc in range(40 + WINDOW_STAGES):
                if cyc < 40:
                    valid, pasid = rng.random() < 0.8, rng.choice([rng.randrange(4), rng.randrange(1 << 20)])
                    put(dut.valid, valid)
                    put(dut.pasid, pasid)
                    hit, window = _lookup_model(params, adi, win, valid, pasid)
                    expect.setdefault(cyc + HIT_STAGES, {})["hit"] = hit
                    expect.setdefault(cyc + WINDOW_STAGES, {})["window"] = window
                else:
                    put(dut.valid, 0)
                now = expect.pop(cyc, {})
                if "hit" in now:
                    assert (ctx.get(dut.hit), ctx.get(dut.domain)) == now["hit"]
                    seen["hit" if now["hit"][0] else "miss"] += 1
                if "window" in now:
                    assert (ctx.get(dut.base), ctx.get(dut.limit)) == now["window"]
                await ctx.tick()

    simulate(dut, bench)
    assert seen["hit"] > 50 and seen["miss"] > 50


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dirty_log_forwards_every_earlier_write(seed):
    """Slots enter at M (address), give the bit or the clear at T (three cycles
    later) and set it at S (four): each slot's word at S has every earlier write."""
    rng = random.Random(seed)
    depth = 6
    dut = DirtyLog(depth)
    model = [0] * depth
    counts = {"set": 0, "clear": 0, "same_word": 0}

    async def bench(ctx):
        put = setter(ctx)
        slots = []          # by cycle of entry: (addr, kind, bit)
        prev_addr = None
        for cyc in range(1500):
            if cyc < 1490:
                addr = prev_addr if prev_addr is not None and rng.random() < 0.5 else rng.randrange(depth)
                kind = rng.choice(["set", "set", "set", "none", "clear", "read"])
                slots.append((addr, kind, 1 << rng.randrange(32)))
                counts["same_word"] += addr == prev_addr
                prev_addr = addr
            else:
                slots.append((0, "none", 1))
            put(dut.addr, slots[cyc][0])
            t = slots[cyc - 3] if cyc >= 3 else (0, "none", 1)
            put(dut.bit, t[2])
            put(dut.clear, t[1] == "clear")
            s = slots[cyc - 4] if cyc >= 4 else None
            put(dut.set, s is not None and s[1] == "set")
            put(dut.clear_now, s is not None and s[1] == "clear")
            if s is not None:
                addr, kind, bit = s
                assert ctx.get(dut.word) == model[addr], f"cycle {cyc}"
                assert ctx.get(dut.write_addr) == addr
                if kind == "set":
                    model[addr] |= bit
                elif kind == "clear":
                    model[addr] = 0
                counts[kind] = counts.get(kind, 0) + 1
            await ctx.tick()

    simulate(dut, bench)
    assert counts["set"] > 500 and counts["clear"] > 100 and counts["same_word"] > 500


@pytest.mark.parametrize("depth,latency", [(16, 10), (4, 10), (7, 3)])
def test_outcome_queue_keeps_room_for_every_request(depth, latency):
    rng = random.Random(depth)
    dut = OutcomeQueue(depth)
    obs = dut.observe()
    sent, got = [], []
    stats = {"accepted_free": 0, "cycles_free": 0}

    def outcome(rec):
        fault = rec["fault"]
        return {"addr": 0 if fault else rec["host"] << 12, "write": rec["write"], "pasid": rec["pasid"],
                "domain": rec["domain"], "page": rec["page"], "fault": fault, "reason": rec["reason"] if fault else 0}

    async def bench(ctx):
        put = setter(ctx)
        pushes = {}
        for cyc in range(1500):
            free = cyc < 300                # a consumer that never waits, then random back-pressure
            put(dut.out.ready, 1 if free else rng.random() < 0.4)
            put(dut.take, int(pushes.pop(("take", cyc), 0)))
            offer = free or rng.random() < 0.8
            accepted = offer and ctx.get(dut.ready)
            rec = pushes.pop(cyc, None)
            put(dut.push, rec is not None)
            if rec is not None:
                put(dut.record.as_value(), pack(OUT_FIFO_LAYOUT, **rec))
                assert ctx.get(obs["w_rdy"]), "a push met a full FIFO"
                assert unpack(OUT_LAYOUT, ctx.get(obs["record"].as_value())) == outcome(rec)
                sent.append(outcome(rec))
            if accepted:
                pushes[("take", cyc + 1)] = 1
                pushes[cyc + 1 + latency] = {"host": rng.randrange(1 << 52), "write": rng.randrange(2),
                                             "pasid": rng.randrange(1 << 20), "domain": rng.randrange(64),
                                             "page": rng.randrange(1 << 32), "fault": rng.randrange(2),
                                             "reason": rng.randrange(1, 256)}
            if free and cyc > 2 * latency:
                stats["cycles_free"] += 1
                stats["accepted_free"] += bool(accepted)
            if ctx.get(dut.out.valid) and ctx.get(dut.out.ready):
                got.append(unpack(OUT_LAYOUT, ctx.get(dut.out.payload.as_value())))
            await ctx.tick()

    simulate(dut, bench)
    assert got == sent[:len(got)] and len(sent) - len(got) <= depth and len(got) > 200
    # A credit comes back four cycles after its push (out, read, returned, counted).
    if depth >= latency + 4:
        assert stats["accepted_free"] == stats["cycles_free"]


class BitmapModel:
    """The three bitmaps of rtl/dma/engine.py's docstring, one word per entry."""

    def __init__(self, depth):
        self.words = {b: [0] * depth for b in (Bitmap.PINNED, Bitmap.MAPPED, Bitmap.UNMAP)}

    def guest(self, addr, bit, unmap):
        p, m, u = (self.words[b] for b in (Bitmap.PINNED, Bitmap.MAPPED, Bitmap.UNMAP))
        if not unmap:
            if not p[addr] & bit:
                return GuestResult.NOT_PINNED
            m[addr] |= bit
            u[addr] &= ~bit
        else:
            if not m[addr] & bit:
                return GuestResult.NOT_MAPPED
            m[addr] &= ~bit
            u[addr] |= bit
        return GuestResult.OK

    def range(self, code, addr, mask):
        p, m, u = (self.words[b] for b in (Bitmap.PINNED, Bitmap.MAPPED, Bitmap.UNMAP))
        if code == RangeOp.PIN:
            p[addr] |= mask
        elif code == RangeOp.UNPIN:
            for w in (p, m, u):
                w[addr] &= ~mask
        elif code == RangeOp.RECLAIM:
            gone = mask & u[addr] & ~m[addr]
            p[addr] &= ~gone
            u[addr] &= ~gone
        else:
            u[addr] &= ~mask


@pytest.mark.parametrize("seed", [1, 2])
def test_bitmap_engine_against_a_model(seed):
    rng = random.Random(seed)
    p = DeviceParams(num_adis=4, num_domains=2, pages_per_domain=128)   # 4 words per domain
    wpd = p.pages_per_domain // 32
    depth = p.num_domains * wpd
    dut = BitmapEngine(p)
    model = BitmapModel(depth)
    counts = {"ok": 0, "refused": 0, "range": 0, "window": 0}

    async def wait(ctx, strobe):
        for _ in range(40):
            if ctx.get(strobe):
                return
            await ctx.tick()
        raise AssertionError("the engine did not answer")

    async def bench(ctx):
        for _ in range(300):
            kind = rng.choice(["map", "map", "unmap", "refuse", "range", "range", "window"])
            if kind in ("map", "unmap", "refuse"):
                dom, page = rng.randrange(p.num_domains), rng.randrange(p.pages_per_domain)
                ctx.set(dut.guest.as_value(), 0)
                for name, v in (("ready", 1), ("refuse", kind == "refuse"), ("refuse_result", GuestResult.BAD_ADI),
                                ("unmap", kind == "unmap"), ("page", page), ("domain", dom)):
                    ctx.set(getattr(dut.guest, name), v)
                await wait(ctx, dut.guest_done)
                await ctx.tick()
                ctx.set(dut.guest.ready, 0)
                if kind == "refuse":
                    want = GuestResult.BAD_ADI
                else:
                    want = model.guest(dom * wpd + page // 32, 1 << (page % 32), kind == "unmap")
                assert ctx.get(dut.result) == want
                counts["ok" if want == GuestResult.OK else "refused"] += 1
            elif kind == "range":
                dom, word = rng.randrange(p.num_domains), rng.randrange(wpd)
                code = rng.choice([RangeOp.PIN, RangeOp.PIN, RangeOp.UNPIN, RangeOp.RECLAIM, RangeOp.CLEAR_UNMAP])
                mask = rng.choice([M32, rng.randrange(1 << 32)])
                for name, v in (("busy", 1), ("code", code), ("domain", dom), ("word", word), ("mask", mask)):
                    ctx.set(getattr(dut.range, name), v)
                await wait(ctx, dut.range_step)
                await ctx.tick()
                ctx.set(dut.range.busy, 0)
                model.range(code, dom * wpd + word, mask)
                counts["range"] += 1
            else:
                addr, sel = rng.randrange(depth), rng.randrange(3)
                for name, v in (("pend", 1), ("addr", addr), ("sel", sel)):
                    ctx.set(getattr(dut.window, name), v)
                await wait(ctx, dut.window_done)
                await ctx.tick()
                ctx.set(dut.window.pend, 0)
                assert ctx.get(dut.window_data) == model.words[Bitmap(sel)][addr]
                counts["window"] += 1
            for a in range(depth):
                assert model.words[Bitmap.MAPPED][a] & ~model.words[Bitmap.PINNED][a] == 0
            await ctx.tick().repeat(2)
        # Every word of every bitmap, through the window.
        for b in (Bitmap.PINNED, Bitmap.MAPPED, Bitmap.UNMAP):
            for a in range(depth):
                ctx.set(dut.window.pend, 1)
                ctx.set(dut.window.addr, a)
                ctx.set(dut.window.sel, b)
                await wait(ctx, dut.window_done)
                await ctx.tick()
                ctx.set(dut.window.pend, 0)
                assert ctx.get(dut.window_data) == model.words[b][a], (b, a)
                await ctx.tick().repeat(2)

    simulate(dut, bench)
    assert min(counts.values()) > 20, counts


def test_guest_ops_latch_and_look_up():
    rng = random.Random(4)
    p = SMALL
    dut = GuestOps(p)
    words = [0, 0]          # MAP, UNMAP as last written (26 bits)
    counts = {"ok": 0, "bad_adi": 0, "out_of_range": 0, "read": 0}

    async def bench(ctx):
        put = setter(ctx)
        for _ in range(150):
            adi, _win = _random_tables(rng, p)
            put(dut.adi.as_value(), _array(ADI_ENTRY, adi))
            which, we = rng.randrange(2), rng.random() < 0.8
            value, strb = rng.randrange(1 << 32), rng.choice([0xF, 0xF, rng.randrange(16)])
            if we and strb == 0xF:
                value = (rng.randrange(p.num_adis + 2) << 20) | rng.choice([rng.randrange(p.pages_per_domain),
                                                                           rng.randrange(1 << 20)])
            for sig, v in ((dut.bus.stb, 1), (dut.bus.we, we), (dut.bus.addr, 4 * which), (dut.bus.wdata, value),
                           (dut.bus.wstrb, strb)):
                put(sig, v)
            await ctx.tick()
            put(dut.bus.stb, 0)
            if not we:
                await ctx.tick()
                assert (ctx.get(dut.bus.ack), ctx.get(dut.bus.rdata)) == (1, words[which])
                counts["read"] += 1
                await ctx.tick()
                continue
            mask = sum(0xFF << (8 * i) for i in range(4) if strb >> i & 1) & ((1 << 26) - 1)
            words[which] = (words[which] & ~mask) | (value & mask)
            page, n = words[which] & 0xFFFFF, words[which] >> 20
            for _ in range(10):
                assert not ctx.get(dut.bus.ack)
                if ctx.get(dut.ready):
                    break
                await ctx.tick()
            assert ctx.get(dut.ready)
            ok = n < p.num_adis and adi[n]["valid"] and adi[n]["domain"] < p.num_domains
            if not ok:
                want, key = (1, GuestResult.BAD_ADI), "bad_adi"
            elif page >= p.pages_per_domain:
                want, key = (1, GuestResult.OUT_OF_RANGE), "out_of_range"
            else:
                want, key = (0, None), "ok"
                assert (ctx.get(dut.page), ctx.get(dut.domain), ctx.get(dut.unmap)) == (page, adi[n]["domain"], which)
            assert ctx.get(dut.refuse) == want[0]
            if want[0]:
                assert ctx.get(dut.refuse_result) == want[1]
            counts[key] += 1
            await ctx.tick().repeat(rng.randrange(1, 4))
            assert not ctx.get(dut.bus.ack)
            put(dut.done, 1)
            await ctx.tick()
            put(dut.done, 0)
            assert ctx.get(dut.bus.ack) and not ctx.get(dut.ready)
            await ctx.tick()

    simulate(dut, bench)
    assert min(counts.values()) > 10, counts


@pytest.mark.parametrize("seed", [1, 2])
def test_range_ops_walk_the_words_of_a_range(seed):
    rng = random.Random(seed)
    p = SMALL
    pages = p.pages_per_domain
    dut = RangeOps(p)
    counts = {"refused": 0, "walked": 0, "words": 0}

    async def bench(ctx):
        put = setter(ctx)
        for _ in range(80):
            start = rng.randrange(pages) if rng.random() < 0.85 else rng.randrange(1 << 32)
            fits = rng.randrange(min(40, pages - start) + 1) if start < pages else 0
            count = rng.choice([fits, fits, pages - start if start < pages else 1, rng.randrange(1 << 32)])
            code, dom = rng.randrange(4), rng.randrange(p.num_domains) if rng.random() < 0.9 else rng.randrange(64)
            for sig, v in ((dut.start, start), (dut.count, count), (dut.code, code), (dut.domain, dom)):
                put(sig, v)
            await ctx.tick().repeat(6)      # GO comes at least six cycles after the fields
            busy_before = ctx.get(dut.busy)
            put(dut.go, 1)
            await ctx.tick()
            put(dut.go, 0)
            # The engine's first word ends nine cycles after GO is taken at the
            # earliest, the next ones nine apart: the steps here come sooner.
            await ctx.tick().repeat(8)
            refused = busy_before or dom >= p.num_domains or start + count > pages
            assert ctx.get(dut.err) == refused
            if refused:
                counts["refused"] += 1
                continue
            words = []
            while ctx.get(dut.busy):
                assert (ctx.get(dut.op_code), ctx.get(dut.op_domain)) == (code, dom)
                words.append((ctx.get(dut.word), ctx.get(dut.mask)))
                put(dut.step, 1)
                await ctx.tick()
                put(dut.step, 0)
                await ctx.tick().repeat(rng.randrange(2, 6))
                assert len(words) <= pages // 32
            want = {}
            for page in range(start, start + count):
                want[page // 32] = want.get(page // 32, 0) | 1 << (page % 32)
            assert words == sorted(want.items())
            counts["walked"] += 1
            counts["words"] += len(words)

    simulate(dut, bench)
    assert counts["refused"] > 5 and counts["walked"] > 10 and counts["words"] > 30, counts


def test_counters_count_each_event_lag_cycles_late():
    rng = random.Random(5)
    dut = TrackerCounters()
    events = []          # per cycle: dict of counter -> 0/1
    base = {k: 0 for k in COUNTERS}

    async def bench(ctx):
        put = setter(ctx)
        quiet_until = 0
        for cyc in range(3000):
            clear = cyc > quiet_until + 4 and rng.random() < 0.01
            ev = {k: int(not clear and cyc >= quiet_until and rng.random() < 0.6) for k in COUNTERS}
            if clear:
                # A clear in a quiet stretch: no event two cycles either side.
                quiet_until = cyc + 3
                for k in COUNTERS:
                    base[k] = sum(e[k] for e in events) + 0
            for k in COUNTERS:
                put(getattr(dut, k), ev[k])
            put(dut.clear, clear)
            events.append(ev)
            if cyc >= quiet_until + COUNT_LAG and cyc > COUNT_LAG:
                for k in COUNTERS:
                    want = sum(e[k] for e in events[:cyc - COUNT_LAG + 1]) - base[k]
                    assert ctx.get(dut.count[k]) == want, (cyc, k)
            await ctx.tick()
            put(dut.clear, 0)

    simulate(dut, bench)


class _Bus:
    """A register-bus initiator for a part's ``csr`` port (one access at a time)."""

    def __init__(self, ctx, port):
        self.ctx, self.port = ctx, port

    async def access(self, addr, data=None, strb=0xF):
        ctx, port = self.ctx, self.port
        ctx.set(port.stb, 1)
        ctx.set(port.we, data is not None)
        ctx.set(port.addr, addr)
        ctx.set(port.wdata, data or 0)
        ctx.set(port.wstrb, strb)
        await ctx.tick()
        ctx.set(port.stb, 0)
        for _ in range(60):
            if ctx.get(port.ack):
                got = ctx.get(port.rdata), ctx.get(port.resp)
                await ctx.tick()
                return got
            await ctx.tick()
        raise AssertionError(f"no answer at {addr:#x}")


def _off(path):
    table = regmap.REGISTERS if path in regmap.REGISTERS else regmap.EXTERNALS
    return table[path].offset - regmap.DMA_BASE


def test_front_registers_and_windows():
    p = SMALL
    dut = TrackerFront(p)
    wpd = p.pages_per_domain // 32
    aw = len(dut.window.addr)
    log = {"slots": [], "windows": []}

    async def pipeline(ctx):
        """The request pipeline and the bitmap engine as the front sees them: a slot
        is answered ten cycles after it was taken, with ``0xC0DE0000 | its word
        address``; a window read at once, with ``0xAB000000 | its word address``."""
        flight, busy = [], False
        async for _clk, _rst, h, hw, hd, win in ctx.tick().sample(dut.harvest.as_value(), dut.harvest_word,
                                                                 dut.harvest_domain, dut.window.as_value()):
            slot = unpack(HARVEST_LAYOUT, h)
            flight.append((slot, hd * wpd + hw) if slot["active"] else None)
            if slot["active"]:
                log["slots"].append((slot, hd, hw))
            done = flight.pop(0) if len(flight) > 10 else None
            ctx.set(dut.done.as_value(), pack(HARVEST_LAYOUT, **done[0]) if done else 0)
            ctx.set(dut.word, (0xC0DE0000 | done[1]) if done else 0)
            pend, addr, sel = win & 1, (win >> 1) & ((1 << aw) - 1), win >> (1 + aw)
            ctx.set(dut.window_done, pend and not busy)
            if pend and not busy:
                log["windows"].append((addr, sel))
                ctx.set(dut.window_data, 0xAB000000 | addr)
            busy = bool(pend)

    async def bench(ctx):
        bus = _Bus(ctx, dut.csr)
        assert await bus.access(_off("DMA.OP_START"), 0x1234_5678) == (0, Resp.OKAY)
        assert await bus.access(_off("DMA.OP_START")) == (0x1234_5678, Resp.OKAY)
        assert ctx.get(dut.field("DMA.OP_START.PAGE")) == 0x1234_5678
        # Harvest: domain 2, word 3, read-and-clear; then NO_CLEAR; then out of range, and a write.
        await bus.access(_off("DMA.HARVEST_CTRL"), 2)
        assert await bus.access(_off("DMA.HARVEST") + 4 * 3) == (0xC0DE0000 | (2 * wpd + 3), Resp.OKAY)
        slot, hd, hw = log["slots"][-1]
        assert (slot["mem"], slot["clear"], slot["bmap"], hd, hw) == (1, 1, 0, 2, 3)
        await bus.access(_off("DMA.HARVEST_CTRL"), 2 | 1 << 8)   # NO_CLEAR
        await bus.access(_off("DMA.HARVEST") + 4 * 1)
        assert (log["slots"][-1][0]["mem"], log["slots"][-1][0]["clear"]) == (1, 0)
        assert await bus.access(_off("DMA.HARVEST") + 4 * wpd) == (0, Resp.DECERR)
        assert log["slots"][-1][0]["mem"] == 0
        assert await bus.access(_off("DMA.HARVEST"), 5) == (0, Resp.SLVERR)
        # The bitmap window: the dirty bitmap rides the pipeline (never cleared) ...
        await bus.access(_off("DMA.BMAP_SEL"), Bitmap.DIRTY | 1 << 8)
        assert await bus.access(_off("DMA.BMAP") + 4 * 2) == (0xC0DE0000 | (wpd + 2), Resp.OKAY)
        assert (log["slots"][-1][0]["bmap"], log["slots"][-1][0]["clear"]) == (1, 0)
        # ... the others wait for the engine.
        slots = len(log["slots"])
        await bus.access(_off("DMA.BMAP_SEL"), Bitmap.MAPPED | 2 << 8)
        assert await bus.access(_off("DMA.BMAP") + 4 * 1) == (0xAB000000 | (2 * wpd + 1), Resp.OKAY)
        assert log["windows"] == [(2 * wpd + 1, Bitmap.MAPPED)]
        assert await bus.access(_off("DMA.BMAP") + 4 * wpd) == (0, Resp.DECERR)
        assert await bus.access(_off("DMA.BMAP"), 1) == (0, Resp.SLVERR)
        await bus.access(_off("DMA.BMAP_SEL"), Bitmap.PINNED | 3 << 8)
        assert await bus.access(_off("DMA.BMAP")) == (0, Resp.DECERR)
        assert len(log["slots"]) == slots and len(log["windows"]) == 1

    from amaranth.sim import Simulator
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(pipeline)
    sim.add_testbench(bench)
    sim.run()


def test_faults_show_the_head_and_pop_in_order():
    dut = TrackerFaults(2, depth=4, quota=4)
    recs = [{"reason": 1 + i, "write": i & 1, "pasid": 100 + i, "page": 1000 + i} for i in range(3)]

    async def bench(ctx):
        for i, rec in enumerate(recs):
            ctx.set(dut.offer, 1)
            ctx.set(dut.record.as_value(), pack(FAULT_LAYOUT, **rec))
            ctx.set(dut.source, i % 3)
            await ctx.tick()
        ctx.set(dut.offer, 0)
        await ctx.tick().repeat(4)
        assert ctx.get(dut.level) == 3
        for rec in recs:
            assert ctx.get(dut.head.valid) == 1
            assert unpack(FAULT_LAYOUT, ctx.get(dut.head.record.as_value())) == rec
            ctx.set(dut.pop, 1)
            await ctx.tick()
            ctx.set(dut.pop, 0)
            await ctx.tick().repeat(3)
        assert (ctx.get(dut.head.valid), ctx.get(dut.head.record.as_value()), ctx.get(dut.level)) == (0, 0, 0)

    simulate(dut, bench)
