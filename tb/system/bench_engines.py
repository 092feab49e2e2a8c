"""Measurements of the Device's engines (``make bench``, bench/bench_engines.py), as pyuvm tests.

Each test runs on the system environment (:mod:`siov.tb.system.env`) and ends
with the same checks as the regression: the scoreboard replays every consume
through the reference model and compares records, memory, interrupts,
counters and the dirty log. The measurements go to JSON files in
``$SIOV_RESULTS``; bench/bench_engines.py runs them on Devices of 1, 2 and 4
engines and writes the tables of docs/PERFORMANCE.md.

* :class:`EngineScalingBench`: throughput of 8 saturated ADIs bound to the
  engines in turn, for NOOP, 256-byte MEMMOVE and 4 KiB MEMMOVE (each with a
  completion record);
* :class:`DependencyRingBench` / :class:`DependencyGangBench`: two VMs, each
  a producer ring and a consumer ring joined by SIGNAL and WAIT, against a
  third VM that floods both engines with 4 KiB MEMMOVEs; with the
  eligibility mask left open (per-ring scheduling) or rotated over the VMs in
  slices by a test sequence (gang scheduling).
"""

import json
import os
import pathlib

import cocotb
import pyuvm

from siov.rtl import regmap
from siov.rtl.cmd.arbiter import Policy
from siov.rtl.cmd.dsa import Flag, Opcode
from siov.sw.model.dsa import Descriptor
from siov.tb.host.bus import wait_cycles
from siov.tb.system.env import PAGE
from siov.tb.system.test_device import PAGES, RO_PAGES, MultiEngineTest

RESULTS = pathlib.Path(os.environ.get("SIOV_RESULTS", "build/results"))

#: Measurement windows end when the Device reports idle, polled every 50 cycles.
POLL = 50


def _record(t, d, rci=False):
    d.flags |= Flag.CRAV | Flag.RCR | (Flag.RCI if rci else 0)
    d.completion_addr = t.record_addr()
    d.int_handle = t.handle
    return d


@pyuvm.test()
class EngineScalingBench(MultiEngineTest):
    """Descriptors per 1000 cycles and bytes per cycle of 8 saturated ADIs, against the engine count."""

    KINDS = (("NOOP", 0), ("MEMMOVE 256 B", 256), ("MEMMOVE 4 KiB", PAGE))
    PER_ADI = 12

    def descriptor(self, t, size):
        if not size:
            return _record(t, Descriptor(pasid=t.pasid, opcode=Opcode.NOOP))
        ro = (PAGES - RO_PAGES) * PAGE
        src = ro + self.rng.randrange(0, RO_PAGES * PAGE - size + 1, 64)
        dst = self.data_addr(size, writable=True, align=64)
        return _record(t, Descriptor(pasid=t.pasid, opcode=Opcode.MEMMOVE, xfer_size=size, src_addr=src, dst_addr=dst))

    async def body(self):
        env, pf = self.env, self.env.pf
        ne = env.params.num_engines
        await pf.set_arbiter(Policy.RR)
        tenants = await self.setup_tenants(8, engines=ne)
        rows, total = [], 0
        for kind, size in self.KINDS:
            posts = {t.adi: [self.descriptor(t, size) for _ in range(self.PER_ADI)] for t in tenants}
            start = env.bfm.cycle
            for t in tenants:
                await env.guest.post(t.adi, posts[t.adi])
            n = self.PER_ADI * len(tenants)
            total += n
            await env.wait_dispatched(total)
            cycles = env.bfm.cycle - start
            rows.append({"engines": ne, "descriptor": kind, "descriptors": n, "cycles": cycles,
                         "per 1000 cycles": round(1000 * n / cycles, 1),
                         "bytes per cycle": round(n * size / cycles, 2)})
            cocotb.top._log.info(f"engines {ne}: {rows[-1]}")
        await self.finish(tenants, total, irqs_per_destination=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"engines_scaling_e{ne}.json").write_text(json.dumps(rows, indent=1))


class DependencyBench(MultiEngineTest):
    """Producer/consumer pairs of two VMs against a flooding VM; per-ring or gang scheduling."""

    gang = False
    PAIRS = 12
    SIZE = 512
    FLOOD = 24
    SLICE = 2000

    def pair_descriptors(self, prod, cons, j):
        p_j = self.P_FIRST * PAGE + j * self.SIZE
        c_j = self.C_FIRST * PAGE + j * self.SIZE
        fill = _record(prod, Descriptor(pasid=prod.pasid, opcode=Opcode.MEMFILL, xfer_size=self.SIZE,
                                        dst_addr=p_j, src_addr=self.rng.getrandbits(64)))
        signal = _record(prod, Descriptor(pasid=prod.pasid, opcode=Opcode.SIGNAL, sem_value=j + 1,
                                          dst_addr=self.SEM_PAGE * PAGE + 8 * j))
        wait = _record(cons, Descriptor(pasid=cons.pasid, opcode=Opcode.WAIT, sem_value=j + 1,
                                        sem_mask=(1 << 64) - 1, src_addr=self.SEM_PAGE * PAGE + 8 * j))
        move = _record(cons, Descriptor(pasid=cons.pasid, opcode=Opcode.MEMMOVE, xfer_size=self.SIZE,
                                        src_addr=p_j, dst_addr=c_j), rci=True)
        return [fill, signal], [wait, move]

    async def gang_slices(self, vms, done):
        """The test sequence of gang scheduling: each VM in turn gets every engine for a slice."""
        while not done[0]:
            for vm in vms:
                await self.env.pf.set_eligible([t.adi for t in vm])
                await wait_cycles(self.env.bfm.dut.clk, self.SLICE)
                if done[0]:
                    break
        await self.env.pf.set_eligible(range(self.env.params.num_adis))

    async def body(self):
        env, pf, bus = self.env, self.env.pf, self.env.bus
        await pf.set_arbiter(Policy.RR)
        await pf.set_wait(recheck_cycles=31, timeout_cycles=50_000_000)
        vms = await self.setup_vms(3)
        tenants = [t for vm in vms for t in vm]
        posts, total = {}, 0
        for prod, cons in vms[:2]:
            posts[prod.adi], posts[cons.adi] = [], []
            for j in range(self.PAIRS):
                pd, cd = self.pair_descriptors(prod, cons, j)
                posts[prod.adi] += pd
                posts[cons.adi] += cd
        for t in vms[2]:
            posts[t.adi] = self.flood(t, self.FLOOD)
        for d in posts[vms[2][0].adi] + posts[vms[2][1].adi]:
            d.flags &= ~Flag.RCI
        start = env.bfm.cycle
        done = [False]
        slicer = cocotb.start_soon(self.gang_slices(vms, done)) if self.gang else None
        for adi in sorted(posts, key=lambda a: (a % 2 == 0, a)):      # consumers first
            await env.guest.post(adi, posts[adi])
            total += len(posts[adi])
        await env.wait_dispatched(total, timeout_cycles=2_000_000)
        end = env.bfm.cycle
        done[0] = True
        if slicer is not None:
            await slicer
        wait_cycles = await bus.raw_read(regmap.ENG_WAIT_CYCLES)
        retries = await bus.raw_read(regmap.ENG_WAIT_RETRIES)
        idle_inel = await bus.raw_read(regmap.ENG_IDLE_INELIGIBLE)
        idle_wait = await bus.raw_read(regmap.ENG_IDLE_WAITING)
        await self.finish(tenants, total, irqs_per_destination=True)

        # Latency of each pair: from the producer's fill taken to the consumer's copy completed.
        consumed = {}
        for cycle, res in env.scoreboard.results:
            consumed.setdefault(res.adi, []).append((cycle, res))
        latencies = []
        for prod, cons in vms[:2]:
            fills = consumed[prod.adi][0::2]
            moves = consumed[cons.adi][1::2]
            for (fc, _), (mc, mres) in zip(fills, moves):
                latencies.append(mc + mres.outcome.record.cycles - fc)
        flood = [(c, r) for t in vms[2] for c, r in consumed[t.adi]]
        flood_span = max(c + r.outcome.record.cycles for c, r in flood) - min(c for c, _ in flood)
        row = {"engines": env.params.num_engines, "scheduling": "gang slices" if self.gang else "per-ring",
               "cycles": end - start, "WAIT retries": retries, "engine cycles on unsatisfied WAITs": wait_cycles,
               "idle cycles, ineligible": idle_inel, "idle cycles, waiting": idle_wait,
               "pair latency mean": round(sum(latencies) / len(latencies)), "pair latency max": max(latencies),
               "flood bytes per cycle": round(len(flood) * PAGE / flood_span, 2)}
        cocotb.top._log.info(f"dependency bench: {row}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        tag = "gang" if self.gang else "ring"
        (RESULTS / f"engines_dependency_{tag}_e{env.params.num_engines}.json").write_text(json.dumps(row, indent=1))


@pyuvm.test()
class DependencyRingBench(DependencyBench):
    """Per-ring scheduling: the mask stays open."""


@pyuvm.test()
class DependencyGangBench(DependencyBench):
    """Gang scheduling: a test sequence rotates the mask over the VMs in slices."""

    gang = True
