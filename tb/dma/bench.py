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

import cocotb
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from siov.rtl import regmap
from siov.rtl.dma.defs import GUEST_MAP, WORD_PAGES, RangeOp, guest_word
from siov.rtl.params import DeviceParams
from siov.sw.model.dma import DmaModel
from siov.tb.dma.env import PERIOD_NS, DmaBfm

PARAMS = DeviceParams(**json.loads(os.environ.get("SIOV_PARAMS", "{}")))
OUT = os.environ.get("SIOV_BENCH_OUT", "dma_bench.json")
N = int(os.environ.get("SIOV_BENCH_N", "4000"))


def record(key, value):
    data = json.loads(open(OUT).read()) if os.path.exists(OUT) else {}
    data[key] = value
    with open(OUT, "w") as f:
        json.dump(data, f, indent=1)


class Bench:
    def __init__(self, dut):
        self.dut = dut
        self.bfm = DmaBfm(dut, __import__("random").Random(1))
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr", bus_separator="__"), dut.clk, dut.rst)
        self.model = DmaModel(PARAMS)
        self.accepts = []
        self.outs = []
        self.bfm.on_accept.append(lambda c, r: self.accepts.append(c))
        self.bfm.on_out.append(lambda c, b: self.outs.append(b))

    async def write(self, addr, data):
        await self.axil.write(addr - regmap.DMA_BASE, data.to_bytes(4, "little"))
        self.model.write(addr, data)

    async def raw_read(self, addr):
        r = await self.axil.read(addr - regmap.DMA_BASE, 4)
        return int.from_bytes(r.data, "little")

    async def read(self, addr):
        value = await self.raw_read(addr)
        exp = self.model.read(addr)[1]
        assert value == exp, f"read {addr:#x}: {value:#x}, model {exp:#x}"
        return value

    async def setup(self, pages):
        """Domain 0, ADI 0 = PASID 0x42, window at 16 GiB, ``pages`` pinned and mapped."""
        await self.bfm.reset()
        # Block RAM keeps its contents across reset and across tests: start
        # domain 0 from empty bitmaps, as the (fresh) model does.
        await self.write(regmap.DMA_OP_COUNT, PARAMS.pages_per_domain)
        await self.write(regmap.DMA_OP, (1 << 31) | RangeOp.UNPIN)
        while await self.raw_read(regmap.DMA_STATUS) & 1:
            pass
        for w in range(PARAMS.pages_per_domain // WORD_PAGES):
            await self.raw_read(regmap.DMA_HARVEST_BASE + 4 * w)
        await self.write(regmap.DMA_ADI_ENTRY, (1 << 31) | 0x42)
        await self.write(regmap.DMA_ADI_CMD, 1)
        await self.write(regmap.DMA_DOM_BASE_HI, 4)
        await self.write(regmap.DMA_DOM_LIMIT, PARAMS.pages_per_domain)
        await self.write(regmap.DMA_DOM_CMD, 1)
        await self.write(regmap.DMA_OP_START, 0)
        await self.write(regmap.DMA_OP_COUNT, pages)
        await self.write(regmap.DMA_OP, (1 << 31) | RangeOp.PIN)
        while await self.raw_read(regmap.DMA_STATUS) & 1:
            pass
        for p in range(pages):
            await self.write(regmap.DMA_GUEST_BASE + GUEST_MAP, guest_word(0, p))

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
    allowed = await b.read(regmap.DMA_CNT_ALLOWED)
    mixed = [dict(pasid=0x42 if i % 4 else 0x43, page=i % (2 * pages), write=i % 2 == 0) for i in range(N)]
    cycles2, n2 = await b.stream(mixed)
    blocked = await b.read(regmap.DMA_CNT_BLOCKED)
    await b.read(regmap.DMA_CNT_ALLOWED)
    # The same stream while the dirty log of the domain is harvested non-stop.
    await b.write(regmap.DMA_HARVEST_CTRL, 0)
    reads = 0
    done = False

    async def harvester():
        nonlocal reads
        while not done:
            await b.raw_read(regmap.DMA_HARVEST_BASE + 4 * (reads % 2))
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
    __import__("random").Random(3).shuffle(order)
    reqs = [dict(pasid=0x42, page=p, write=True) for p in order] * 4
    cycles, n = await b.stream(reqs)
    stalls = cycles - n
    await b.write(regmap.DMA_HARVEST_CTRL, 0)
    word = await b.read(regmap.DMA_HARVEST_BASE)
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
    await b.write(regmap.DMA_HARVEST_CTRL, 0)
    words = PARAMS.pages_per_domain // WORD_PAGES
    t0 = cocotb.utils.get_sim_time("ns")
    buf = bytearray()
    for w in range(words):
        buf += (await b.read(regmap.DMA_HARVEST_BASE + 4 * w)).to_bytes(4, "little")
    t1 = cocotb.utils.get_sim_time("ns")
    from siov.sw.model.dma import vfio_to_pages
    assert vfio_to_pages(buf) == list(range(0, pages, 3))
    cyc = (t1 - t0) / PERIOD_NS
    record("harvest", {"pages": PARAMS.pages_per_domain, "bus_reads": words,
                       "pages_per_read": PARAMS.pages_per_domain // words,
                       "cycles": cyc, "cycles_per_read": round(cyc / words, 2),
                       "pages_per_cycle": round(PARAMS.pages_per_domain / cyc, 2)})
