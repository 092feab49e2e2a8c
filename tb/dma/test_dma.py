"""cocotb + pyuvm regression of the DMA tracker (top ``siov_dma``).

One pyuvm test runs every phase against the reference model
(:mod:`siov.sw.model.dma`), see :mod:`siov.tb.dma.env` for the agents and the
scoreboard:

1. configuration over CSR: ADI table (including a PASID bound to a domain
   that does not exist and an invalid entry), domain windows, pin/unpin
   ranges (and refused ones), guest maps of pinned and unpinned pages, with
   every response and read-back compared with the model;
2. random DMA traffic from every domain, with adversarial requests (forged
   PASIDs, pages of another domain, unmapped pages, out-of-range pages,
   pages beyond the window) under random output back-pressure (every
   request, allowed or blocked, gives one output beat, checked in order), while the
   dirty log is harvested (with and without NO_CLEAR), the fault queue is
   popped and the lost-fault counts are read at the same time;
3. a race phase: writes to one word while that word is harvested over and
   over, so writes land in the cycles right before and right after each
   read-and-clear (forwarding into and out of the harvest);
4. lazy unpin: guest unmaps, RECLAIM, CLEAR_UNMAP, UNPIN, then traffic again;
5. floods: one or two domains write unmapped pages at full rate (bursts of
   a few hundred requests) while the others, and PASIDs bound to no domain,
   fault now and then, and the fault queue is popped slowly: every record
   popped is the model's (quota and full-queue decisions exact), every loss
   is counted as its domain's, and, independently of the model, no fault of
   a domain that never reached its quota is lost while fewer domains than
   DEPTH/QUOTA flood;
6. fault-queue overflow and its counters, counter clear, bitmap-window,
   harvest-window and lost-window errors, final read of every bitmap and a
   full harvest.

Coverage bins (faults, CSR operations, hazards) must all be hit.
"""

import collections
import json
import os

import cocotb
import pyuvm
from cocotb.triggers import ClockCycles
from pyuvm import uvm_test

from siov.rtl import regmap
from siov.rtl.csr.bus import Resp
from siov.rtl.dma.defs import GUEST_MAP, GUEST_UNMAP, WORD_PAGES, Bitmap, GuestResult, RangeOp
from siov.rtl.params import DeviceParams
from siov.sw.model.dma import DmaModel
from siov.tb.dma.env import COVERAGE, DmaEnv

PARAMS = DeviceParams(**json.loads(os.environ.get("SIOV_PARAMS", "{}")))
SCALE = float(os.environ.get("SIOV_DMA_SCALE", "1"))


class Config:
    """What the test programmed, kept independently of the model."""

    def __init__(self, params):
        self.params = params
        self.adis = {}                     # index -> (pasid, domain, valid)
        self.windows = {}                  # domain -> (base byte address, limit pages)
        self.mapped = {d: set() for d in range(params.num_domains)}
        self.pinned = {d: set() for d in range(params.num_domains)}

    def domain_of(self, pasid):
        for i in sorted(self.adis):
            p, d, v = self.adis[i]
            if v and p == pasid and d < self.params.num_domains:
                return d
        return None

    def adi_of(self, dom):
        return min(i for i, (p, d, v) in self.adis.items() if v and d == dom
                   and self.domain_of(p) == dom)


class DmaTest(uvm_test):
    def build_phase(self):
        self.env = DmaEnv("env", self)

    async def run_phase(self):
        self.raise_objection()
        self.model = DmaModel(PARAMS)
        self.env.attach(cocotb.top, self.model, cocotb.RANDOM_SEED)
        self.bfm, self.rng = self.env.bfm, self.env.bfm.rng
        self.csr, self.bus = self.env.csr, self.env.csr.bus
        self.sb = self.env.sb
        self.cfg = self.sb.config = Config(PARAMS)
        await self.bfm.reset()
        cap = await self.bus.read(regmap.DMA_FAULT_CAP)
        depth = (cap & regmap.DMA_FAULT_CAP_DEPTH_MASK) >> regmap.DMA_FAULT_CAP_DEPTH_LSB
        quota = (cap & regmap.DMA_FAULT_CAP_QUOTA_MASK) >> regmap.DMA_FAULT_CAP_QUOTA_LSB
        if (PARAMS.num_domains + 1) * quota <= depth:
            COVERAGE.waive("fault_lost_queue_full", f"{PARAMS.num_domains + 1} sources of quota {quota} "
                           f"cannot fill {depth} records but all at their quota")
        await self.configure()
        await self.traffic(int(3000 * SCALE), ready_p=0.3)
        await self.race_phase(int(800 * SCALE))
        await self.lazy_unpin()
        await self.traffic(int(800 * SCALE), ready_p=0.5)
        for _ in range(max(1, int(3 * SCALE))):
            await self.flood_phase(int(600 * SCALE))
        await self.overflow_and_errors()
        await self.final_checks()
        self.drop_objection()

    # -- phases ------------------------------------------------------------

    async def configure(self):
        rng, csr, cfg = self.rng, self.csr, self.cfg
        D, P, A = PARAMS.num_domains, PARAMS.pages_per_domain, PARAMS.num_adis
        pasids = rng.sample(range(1, 1 << 20), A + 4)
        self.forged = pasids[A:]
        for i in range(A):
            if i < D:
                entry = (pasids[i], i, True)
            elif i == D:
                entry = (pasids[i], 0, True)             # a second ADI in domain 0
            elif i == D + 1:
                entry = (pasids[i], 63, True)            # bound to a domain that does not exist
            elif i == D + 2:
                entry = (pasids[i], 1 % D, False)        # invalid entry
            else:
                continue
            cfg.adis[i] = entry
            await csr.set_adi(i, *entry)
        for d in range(D):
            base = rng.randrange(1 << 40) << 12
            # Some windows end before the bitmap, some at its end, some far
            # beyond it (the tracker stores "covers the bitmap" beside the
            # limit and compares only the limit's bits below the bitmap size).
            limit = (P - 3 * WORD_PAGES, P, rng.choice([P + 1, 2 * P, 0xFFFF_FFFF]))[d % 3]
            cfg.windows[d] = (base, limit)
            await csr.set_domain(d, base, limit)
        # Pin a few ranges per domain, unpin a piece, and try refused ops.
        for d in range(D):
            for _ in range(2):
                start = rng.randrange(P - 200)
                count = rng.randrange(1, 200)
                await csr.range_op(RangeOp.PIN, d, start, count)
                cfg.pinned[d] |= set(range(start, start + count))
            start = rng.randrange(P - 40)
            await csr.range_op(RangeOp.UNPIN, d, start, 17)
            cfg.pinned[d] -= set(range(start, start + 17))
        await csr.range_op(RangeOp.PIN, D, 0, 1)                # no such domain
        await csr.range_op(RangeOp.PIN, 0, P - 5, 6)            # beyond the bitmap
        await csr.range_op(RangeOp.PIN, 0, 5, 0)                # empty: nothing, no error
        await csr.range_op(RangeOp.PIN, 1 % D, P - 40, 40)      # up to the last page
        cfg.pinned[1 % D] |= set(range(P - 40, P))
        for d in range(0, D, 3):                                 # pages beyond the window limit
            await csr.range_op(RangeOp.PIN, d, P - 8, 8)
            cfg.pinned[d] |= set(range(P - 8, P))
        # Guest maps: pinned pages (accepted), unpinned ones (refused).
        for d in range(D):
            adi = cfg.adi_of(d)
            pinned = sorted(cfg.pinned[d])
            for page in rng.sample(pinned, min(40, len(pinned))) + pinned[-4:]:
                if await csr.guest(False, adi, page) == GuestResult.OK:
                    cfg.mapped[d].add(page)
            for page in rng.sample(range(P), 5):
                res = await csr.guest(False, adi, page)
                assert (res == GuestResult.OK) == (page in cfg.pinned[d]), f"map of page {page}: {res!r}"
                if res == GuestResult.OK:
                    cfg.mapped[d].add(page)
        if A < 64:
            await csr.guest(False, A, 3)                         # no such ADI
        await csr.guest(False, D + 1, 3)                         # domain does not exist
        await csr.guest(False, D + 2, 3)                         # invalid ADI
        await csr.guest(False, 0, P)                             # out of range
        await csr.guest(True, 0, P + 7)
        # Unmap of a page that is not mapped.
        await csr.guest(True, 0, next(p for p in range(P) if p not in cfg.mapped[0]))

    def random_request(self, prev):
        rng, cfg = self.rng, self.cfg
        D, P = PARAMS.num_domains, PARAMS.pages_per_domain
        d = rng.randrange(D)
        adi_pasid = {dom: cfg.adis[cfg.adi_of(dom)][0] for dom in range(D)}
        pasid = adi_pasid[d]
        if d == 0 and rng.random() < 0.3:
            pasid = cfg.adis[D][0]                      # the second ADI of domain 0
        x = rng.random()
        write = rng.random() < 0.6
        if prev is not None and x < 0.2:
            # Same word as the previous request: back-to-back RMW hazards.
            word = prev["page"] // WORD_PAGES
            return dict(pasid=prev["pasid"], page=word * WORD_PAGES + rng.randrange(WORD_PAGES), write=True)
        if x < 0.7 and cfg.mapped[d]:
            page = rng.choice(sorted(cfg.mapped[d]))
        elif x < 0.75:
            pasid = rng.choice(self.forged + [cfg.adis[D + 1][0], cfg.adis[D + 2][0]])
            page = rng.randrange(P)
        elif x < 0.8:
            page = rng.choice([P, P + 1, rng.randrange(P, 1 << 32), (1 << 32) - 1])
        elif x < 0.9:
            others = [p for o in range(D) if o != d for p in cfg.mapped[o] if p not in cfg.mapped[d]]
            page = rng.choice(others) if others else rng.randrange(P)
        else:
            page = rng.randrange(P)
        return dict(pasid=pasid, page=page, write=write)

    async def run_traffic(self, reqs, ready_p, harvest_doms, words_of, pop_ns=100, harvest=True):
        bfm, csr, sb = self.bfm, self.csr, self.sb
        bfm.ready_p = ready_p
        bfm.req_q.extend(reqs)
        faults, lost = self.env.faults, self.env.lost
        hv = self.env.harvester
        sources = PARAMS.num_domains + 1
        sb.track_pops = True
        ft = cocotb.start_soon(faults.run_while(csr, pop_ns))
        lt = cocotb.start_soon(lost.run_while(csr, self.rng, sources, 4 * pop_ns))
        ht = cocotb.start_soon(hv.run_while(csr, sb, self.rng, harvest_doms, words_of)) if harvest else None
        while not bfm.idle():
            await ClockCycles(bfm.dut.clk, 100)
        await ClockCycles(bfm.dut.clk, 20)
        bfm.ready_p = 0
        await ClockCycles(bfm.dut.clk, 20)
        faults.running = hv.running = lost.running = False
        await ft
        await lt
        if ht is not None:
            await ht
        await faults.pop_all(csr)
        await lost.read_all(csr, sources)
        sb.flush()
        sb.track_pops = False
        assert not sb.expected_out, f"{len(sb.expected_out)} predicted outputs never came out"
        sb.check_faults(faults.popped, lost.total)
        # Both queues are empty; the lost counts, read and cleared in the hardware, are
        # cleared in the model too; the rest is checked as the model has it.
        self.model.lost = [0] * sources
        outcome = {"popped": list(faults.popped), "lost": dict(lost.total)}
        faults.popped.clear()
        lost.total.clear()
        sb.expected_faults.clear()
        sb.expected_popped.clear()
        for a in (regmap.DMA_FAULT_STATUS, regmap.DMA_FAULT_REC0, regmap.DMA_FAULT_OVF_COUNT,
                  regmap.DMA_CNT_ALLOWED, regmap.DMA_CNT_BLOCKED, regmap.DMA_CNT_DIRTIED):
            await self.bus.read(a)
        for s in range(sources):
            await self.bus.read(regmap.DMA_FAULT_LOST_BASE + 4 * s)
        return outcome

    async def traffic(self, n, ready_p):
        reqs, prev = [], None
        for _ in range(n):
            prev = self.random_request(prev)
            reqs.append(prev)
        words = {d: sorted({p // WORD_PAGES for p in self.cfg.mapped[d]}) or [0]
                 for d in range(PARAMS.num_domains)}
        await self.run_traffic(reqs, ready_p, list(range(PARAMS.num_domains)),
                               lambda d: self.rng.sample(words[d], min(4, len(words[d]))))

    async def race_phase(self, n):
        """Writes into one word while that word is harvested over and over."""
        csr, cfg, rng = self.csr, self.cfg, self.rng
        d = 0
        await csr.range_op(RangeOp.PIN, d, 0, WORD_PAGES)
        adi = cfg.adi_of(d)
        for page in range(WORD_PAGES):
            cfg.pinned[d].add(page)
            if await csr.guest(False, adi, page) == GuestResult.OK:
                cfg.mapped[d].add(page)
        pasid = cfg.adis[adi][0]
        reqs = [dict(pasid=pasid, page=rng.randrange(WORD_PAGES), write=True) for _ in range(n)]
        await self.run_traffic(reqs, 0.1, [d], lambda _d: [0])

    async def lazy_unpin(self):
        csr, cfg, rng = self.csr, self.cfg, self.rng
        D, P = PARAMS.num_domains, PARAMS.pages_per_domain
        for d in range(D):
            adi = cfg.adi_of(d)
            victims = rng.sample(sorted(cfg.mapped[d]), min(10, len(cfg.mapped[d])))
            for page in victims:
                assert await csr.guest(True, adi, page) == GuestResult.OK
                cfg.mapped[d].discard(page)
            # The guest maps two of them again before the hypervisor gets to them.
            for page in victims[:2]:
                assert await csr.guest(False, adi, page) == GuestResult.OK
                cfg.mapped[d].add(page)
            await csr.read_bitmap(Bitmap.UNMAP, d, P // WORD_PAGES)
            if d % 2:
                await csr.range_op(RangeOp.RECLAIM, d, 0, P)
            else:
                await csr.range_op(RangeOp.CLEAR_UNMAP, d, 0, P // 2)
            await csr.read_bitmap(Bitmap.PINNED, d, P // WORD_PAGES)
        # A forced unpin of mapped pages also unmaps them.
        d = D - 1
        start = min(cfg.mapped[d]) if cfg.mapped[d] else 0
        await csr.range_op(RangeOp.UNPIN, d, start, 50)
        cfg.mapped[d] -= set(range(start, start + 50))
        for d in range(D):
            assert not (self.model.bits[Bitmap.MAPPED, d] & ~self.model.bits[Bitmap.PINNED, d]).any()

    async def flood_phase(self, n):
        """One or two domains flood unmapped pages; the others fault a few times each."""
        rng, cfg, bus = self.rng, self.cfg, self.bus
        D, P = PARAMS.num_domains, PARAMS.pages_per_domain
        cap = await bus.read(regmap.DMA_FAULT_CAP)
        depth = (cap & regmap.DMA_FAULT_CAP_DEPTH_MASK) >> regmap.DMA_FAULT_CAP_DEPTH_LSB
        quota = (cap & regmap.DMA_FAULT_CAP_QUOTA_MASK) >> regmap.DMA_FAULT_CAP_QUOTA_LSB
        # Fewer flooders than DEPTH/QUOTA, and few enough victims' faults that the
        # queue never fills: then no victim below its quota may lose a fault.
        n_flood = min(D, rng.choice([1, 1, 2]), max(1, depth // quota - 1))
        flooders = rng.sample(range(D), n_flood)
        room = depth - n_flood * quota - 1
        victims = [d for d in range(D) if d not in flooders]
        adi_pasid = {d: cfg.adis[cfg.adi_of(d)][0] for d in range(D)}

        def unmapped(d):
            page = rng.randrange(P + 8)
            return page if page >= P or page not in cfg.mapped[d] else P + 1
        budget = {d: rng.randrange(quota) for d in victims}          # each below its quota
        while sum(budget.values()) > room:
            budget[max(budget, key=budget.get)] -= 1
        forged = min(rng.randrange(quota), max(0, room - sum(budget.values())))
        # Requests let through, now and then, from every domain: mapped pages inside the window.
        allowed = {d: sorted(p for p in cfg.mapped[d] if p < cfg.windows[d][1]) for d in range(D)}
        allowed = {d: pages for d, pages in allowed.items() if pages}
        reqs = []
        for i in range(n):
            if allowed and rng.random() < 0.15:
                d = rng.choice(sorted(allowed))
                reqs.append(dict(pasid=adi_pasid[d], page=rng.choice(allowed[d]), write=True))
            else:
                d = rng.choice(flooders)
                reqs.append(dict(pasid=adi_pasid[d], page=unmapped(d), write=rng.random() < 0.7))
        victim_reqs = [dict(pasid=adi_pasid[d], page=unmapped(d), write=False)
                       for d, k in budget.items() for _ in range(k)]
        victim_reqs += [dict(pasid=rng.choice(self.forged), page=rng.randrange(P), write=True)
                        for _ in range(forged)]
        for r in victim_reqs:
            reqs.insert(rng.randrange(len(reqs) + 1), r)
        out = await self.run_traffic(reqs, rng.choice([0, 0.2]), [], lambda d: [0],
                                     pop_ns=rng.choice([200, 1000, 5000]), harvest=False)
        # Independently of the model: every victim's fault (and every fault of no domain) was
        # popped, none lost; the flooders' losses are theirs.
        popped = collections.Counter(cfg.domain_of(r.pasid) for r in out["popped"])
        for d, k in budget.items():
            assert popped[d] == k and not out["lost"].get(d), (
                f"domain {d} faulted {k} times below its quota {quota}: {popped[d]} popped, "
                f"{out['lost'].get(d, 0)} lost, beside flooders {flooders}")
        assert popped[None] == forged and not out["lost"].get(D), f"faults of no domain: {popped[None]} of {forged}"
        losers = sorted(s for s, k in out["lost"].items() if k)
        assert set(losers) <= set(flooders), f"lost faults of {losers}, flooders {flooders}"

    async def overflow_and_errors(self):
        bus, bfm, sb = self.bus, self.bfm, self.sb
        n = self.model.fault_depth + 20
        bfm.req_q.extend(dict(pasid=self.forged[0], page=i, write=i % 2 == 0) for i in range(n))
        while not bfm.idle():
            await ClockCycles(bfm.dut.clk, 20)
        await ClockCycles(bfm.dut.clk, 10)
        sb.flush()
        # Blocked requests give output beats too: every one came out, as predicted.
        assert not sb.expected_out, f"{len(sb.expected_out)} predicted outputs never came out"
        for a in (regmap.DMA_FAULT_STATUS, regmap.DMA_FAULT_OVF_COUNT, regmap.DMA_FAULT_REC0,
                  regmap.DMA_FAULT_REC1):
            await bus.read(a)
        st = await bus.read(regmap.DMA_FAULT_STATUS)
        COVERAGE.sample("fault_queue_overflow", bool(st & regmap.DMA_FAULT_STATUS_OVERFLOW_MASK))
        for _ in range(3):
            await bus.write(regmap.DMA_FAULT_CTRL, regmap.DMA_FAULT_CTRL_POP_MASK)
            await bus.read(regmap.DMA_FAULT_REC0)
            await bus.read(regmap.DMA_FAULT_REC1)
        await bus.write(regmap.DMA_FAULT_CTRL, regmap.DMA_FAULT_CTRL_CLEAR_OVERFLOW_MASK)
        COVERAGE.sample("overflow_clear")
        await bus.read(regmap.DMA_FAULT_STATUS)
        await bus.read(regmap.DMA_FAULT_OVF_COUNT)
        # The lost counts: every word (the forged PASIDs' losses are the last, no domain's),
        # read twice (the read clears), and the words beyond the sources.
        D = PARAMS.num_domains
        for _ in range(2):
            for s in range(D + 1):
                await bus.read(regmap.DMA_FAULT_LOST_BASE + 4 * s)
        for s in (D + 1, 127):
            resp, _ = await bus.try_read(regmap.DMA_FAULT_LOST_BASE + 4 * s)
            COVERAGE.sample("lost_window_decerr", resp == Resp.DECERR)
        resp = await bus.try_write(regmap.DMA_FAULT_LOST_BASE, 1)
        COVERAGE.sample("lost_window_slverr", resp == Resp.SLVERR)
        while self.model.faults:
            await bus.write(regmap.DMA_FAULT_CTRL, regmap.DMA_FAULT_CTRL_POP_MASK)
        await bus.read(regmap.DMA_FAULT_STATUS)
        sb.expected_faults.clear()
        # Window errors.
        P = PARAMS.pages_per_domain
        await bus.write(regmap.DMA_BMAP_SEL, Bitmap.MAPPED)
        resp, _ = await bus.try_read(regmap.DMA_BMAP_BASE + 4 * (P // WORD_PAGES))
        COVERAGE.sample("window_decerr", resp == Resp.DECERR)
        for a in (regmap.DMA_BMAP_BASE, regmap.DMA_HARVEST_BASE):
            resp = await bus.try_write(a, 0xFFFF_FFFF)
            COVERAGE.sample("window_slverr", resp == Resp.SLVERR)
        await bus.write(regmap.DMA_BMAP_SEL, Bitmap.DIRTY)
        await bus.try_read(regmap.DMA_BMAP_BASE + 4 * (P // WORD_PAGES))
        await bus.write(regmap.DMA_HARVEST_CTRL, PARAMS.num_domains)   # no such domain
        await bus.try_read(regmap.DMA_HARVEST_BASE)
        await bus.write(regmap.DMA_GUEST_BASE + GUEST_MAP, 0x0123_4567)
        await bus.read(regmap.DMA_GUEST_BASE + GUEST_MAP)
        await bus.read(regmap.DMA_GUEST_BASE + GUEST_UNMAP)
        # Counters, then clear.
        for a in (regmap.DMA_CNT_ALLOWED, regmap.DMA_CNT_BLOCKED, regmap.DMA_CNT_DIRTIED):
            await bus.read(a)
        await bus.write(regmap.DMA_CNT_CTRL, 1)
        COVERAGE.sample("counter_clear")
        for a in (regmap.DMA_CNT_ALLOWED, regmap.DMA_CNT_BLOCKED, regmap.DMA_CNT_DIRTIED):
            await bus.read(a)

    async def final_checks(self):
        csr, bus = self.csr, self.bus
        D, P = PARAMS.num_domains, PARAMS.pages_per_domain
        words = range(P // WORD_PAGES)
        for d in sorted({0, 1 % D, D - 1}):
            for b in Bitmap:
                await csr.read_bitmap(b, d, len(words))
        # The whole dirty log, every domain: VFIO layout via the harvest window.
        for d in range(D):
            await bus.write(regmap.DMA_HARVEST_CTRL, d)
            buf = bytearray()
            for w in words:
                v = await bus.read(regmap.DMA_HARVEST_BASE + 4 * w)
                buf += v.to_bytes(4, "little")
            assert not self.model.bits[Bitmap.DIRTY, d].any()
        assert self.sb.outputs > 0


@pyuvm.test()
class DmaRandomTest(DmaTest):
    """Every phase, checked against the model; coverage checked at the end."""
