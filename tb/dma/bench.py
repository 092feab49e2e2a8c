"""cocotb measurements of the DMA tracker for bench/bench_dma.py (top ``siov_dma``).

Each test writes its numbers into the JSON file named by ``SIOV_BENCH_OUT``;
every number is also checked against the reference model, so a fast but
wrong result cannot be reported.

* ``bench_throughput``: requests offered every cycle for N cycles (all
  allowed; then a mix with blocked ones), output always ready: accepted
  requests per clock;
* ``bench_same_word``: back-to-back writes to the pages of one bitmap word,
  one per cycle: stall cycles and bits lost (harvested word vs. pages written);
* ``bench_harvest``: a full-domain harvest: pages per bus read and bus cycles
  per read.
"""

import json
import os

import random

import cocotb
from cocotb.triggers import ClockCycles

from siov.rtl import regmap
from siov.rtl.dma.defs import WORD_PAGES, RangeOp
from siov.rtl.params import DeviceParams
from siov.sw.hv.pf import PfDriver
from siov.sw.model.dma import DmaModel, vfio_to_pages
from siov.tb.dma.env import PERIOD_NS, DmaBfm
from siov.tb.host.checked import POLLED, CheckedBus, CsrPortBus, range_op

PARAMS = DeviceParams(**json.loads(os.environ.get("SIOV_PARAMS", "{}")))
OUT = os.environ.get("SIOV_BENCH_OUT", "dma_bench.json")
N = int(os.environ.get("SIOV_BENCH_N", "4000"))


def record(key, value):
    data = json.loads(open(OUT).read()) if os.path.exists(OUT) else {}
    data[key] = value
    with open(OUT, "w") as f:
        json.dump(data, f, indent=1)


class Bench:
    """The BFM, and the hypervisor's sequences over the CSR port, every access checked against the model."""

    def __init__(self, dut):
        self.dut = dut
        self.bfm = DmaBfm(dut, random.Random(1))
        self.model = DmaModel(PARAMS)
        self.raw = CsrPortBus(dut, base=regmap.DMA_BASE)
        self.bus = CheckedBus(self.raw, self.model, volatile=POLLED)
        self.pf = PfDriver.of(self.bus, poll_cycles=1)
        self.accepts = []
        self.outs = []
        self.bfm.on_accept.append(lambda c, r: self.accepts.append(c))
        self.bfm.on_out.append(lambda c, b: self.outs.append(b))

    async def setup(self, pages):
        """Domain 0, ADI 0 = PASID 0x42, window at 16 GiB, ``pages`` pinned and mapped."""
        await self.bfm.reset()
        # Block RAM keeps its contents across reset and across tests: start
        # domain 0 from empty bitmaps, as the (fresh) model does.
        assert await range_op(self.pf, RangeOp.UNPIN, 0, 0, PARAMS.pages_per_domain)
        for w in range(PARAMS.pages_per_domain // WORD_PAGES):
            await self.raw.read(regmap.DMA_HARVEST_BASE + 4 * w)
        await self.pf.bind_adi(0, 0x42, 0)
        await self.pf.set_domain(0, 4 << 32, PARAMS.pages_per_domain)
        assert await range_op(self.pf, RangeOp.PIN, 0, 0, pages)
        for p in range(pages):
            await self.pf.guest_map(0, p)

    async def stream(self, reqs):
        """Offer ``reqs`` back to back; return (cycles from first to last accept, accepted).

        Every request gives one output beat (allowed or blocked), checked
        against the model in order.
        """
        self.accepts.clear()
        self.outs.clear()
        self.bfm.req_q.extend(reqs)
        while not self.bfm.idle():
            await ClockCycles(self.dut.clk, 50)
        await ClockCycles(self.dut.clk, 20)
        assert len(self.outs) == len(reqs), f"{len(self.outs)} output beats for {len(reqs)} requests"
        for i, (r, beat) in enumerate(zip(reqs, self.outs)):
            exp = self.model.request(r["pasid"], r["page"], r["write"]).out_beat()
            assert beat == exp, f"request {i}: output {beat}, model {exp}"
        return self.accepts[-1] - self.accepts[0] + 1, len(self.accepts)


@cocotb.test()
async def bench_throughput(dut):
    b = Bench(dut)
    pages = 64
    await b.setup(pages)
    reqs = [dict(pasid=0x42, page=i % pages, write=i % 3 == 0) for i in range(N)]
    cycles, n = await b.stream(reqs)
    assert n == N and len(b.outs) == N
    allowed = await b.bus.read(regmap.DMA_CNT_ALLOWED)
    mixed = [dict(pasid=0x42 if i % 4 else 0x43, page=i % (2 * pages), write=i % 2 == 0) for i in range(N)]
    cycles2, n2 = await b.stream(mixed)
    blocked = await b.bus.read(regmap.DMA_CNT_BLOCKED)
    await b.bus.read(regmap.DMA_CNT_ALLOWED)
    # The same stream while the dirty log of the domain is harvested non-stop.
    await b.bus.write(regmap.DMA_HARVEST_CTRL, 0)
    reads = 0
    done = False

    async def harvester():
        nonlocal reads
        while not done:
            await b.raw.read(regmap.DMA_HARVEST_BASE + 4 * (reads % 2))
            reads += 1
    task = cocotb.start_soon(harvester())
    cycles3, n3 = await b.stream(reqs)
    done = True
    await task
    record("throughput", {"requests": N, "cycles": cycles, "checks_per_clock": round(n / cycles, 4),
                          "allowed": allowed,
                          "mixed_cycles": cycles2, "mixed_checks_per_clock": round(n2 / cycles2, 4),
                          "mixed_blocked": blocked,
                          "harvesting_cycles": cycles3, "harvest_reads": reads,
                          "harvesting_checks_per_clock": round(n3 / cycles3, 4)})


@cocotb.test()
async def bench_same_word(dut):
    b = Bench(dut)
    await b.setup(WORD_PAGES)
    # Every page of word 0 written once, one per cycle, in a shuffled order.
    order = list(range(WORD_PAGES))
    random.Random(3).shuffle(order)
    reqs = [dict(pasid=0x42, page=p, write=True) for p in order] * 4
    cycles, n = await b.stream(reqs)
    stalls = cycles - n
    await b.bus.write(regmap.DMA_HARVEST_CTRL, 0)
    word = await b.bus.read(regmap.DMA_HARVEST_BASE)
    lost = WORD_PAGES - bin(word).count("1")
    assert word == 0xFFFF_FFFF, f"harvest {word:#x}"
    record("same_word", {"writes": n, "cycles": cycles, "stall_cycles": stalls, "bits_lost": lost})


@cocotb.test()
async def bench_harvest(dut):
    b = Bench(dut)
    pages = 256
    await b.setup(pages)
    reqs = [dict(pasid=0x42, page=p, write=True) for p in range(0, pages, 3)]
    await b.stream(reqs)
    await b.bus.write(regmap.DMA_HARVEST_CTRL, 0)
    words = PARAMS.pages_per_domain // WORD_PAGES
    t0 = cocotb.utils.get_sim_time("ns")
    buf = bytearray()
    for w in range(words):
        buf += (await b.bus.read(regmap.DMA_HARVEST_BASE + 4 * w)).to_bytes(4, "little")
    t1 = cocotb.utils.get_sim_time("ns")
    assert vfio_to_pages(buf) == list(range(0, pages, 3))
    cyc = (t1 - t0) / PERIOD_NS
    record("harvest", {"pages": PARAMS.pages_per_domain, "bus_reads": words,
                       "pages_per_read": PARAMS.pages_per_domain // words,
                       "cycles": cyc, "cycles_per_read": round(cyc / words, 2),
                       "pages_per_cycle": round(PARAMS.pages_per_domain / cyc, 2)})
