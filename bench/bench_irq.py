"""Interrupt remapping unit: throughput, latency, pipelined against one-at-a-time, fmax.

Cycle counts come from Amaranth's simulator running the IRU itself (the same
RTL the Verilator tests run): a table of 16 present entries, then a stream of
messages with ``irq_out`` and ``dma_out`` always ready. Throughput is messages
per cycle from the first acceptance to the last output; latency is from the
cycle a message is accepted to the first cycle its interrupt is valid on
``irq_out``. fmax and size come from ``siov.rtl.synth`` (ECP5-25F, nextpnr)
unless ``--no-synth`` (a result already made from the same Verilog is reused).

Writes ``build/bench/irq.json`` and prints a table.
"""

import argparse
import json
import pathlib
import random
import sys

from amaranth.sim import Simulator

from siov.rtl import regmap
from siov.rtl.irq.remapper import InterruptRemapper
from siov.sw.model.irq import ims_ctrl, msi_address

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench" / "irq.json"


async def _csr_write(ctx, dut, addr, data):
    csr = dut.csr
    ctx.set(csr.addr, addr - regmap.IRQ_BASE)
    ctx.set(csr.we, 1)
    ctx.set(csr.wdata, data)
    ctx.set(csr.wstrb, 0xF)
    ctx.set(csr.stb, 1)
    await ctx.tick()
    ctx.set(csr.stb, 0)
    while not ctx.get(csr.ack):
        await ctx.tick()
    await ctx.tick()


def measure(pipelined, n, mix, seed=1):
    """Return (messages/cycle, list of accept->irq_out latencies) for ``n`` messages.

    ``mix`` is ``"irq"`` (all deliverable interrupts), ``"irq+dma"`` (25 % DMA)
    or ``"single"`` (one message at a time, for latency).
    """
    dut = InterruptRemapper(entries=256, pipelined=pipelined)
    rng = random.Random(seed)
    msgs = []
    for _ in range(n):
        if mix == "irq+dma" and rng.random() < 0.25:
            msgs.append({"is_irq": 0, "pasid": 1, "handle": 0, "addr": rng.getrandbits(64), "data": 0})
        else:
            h = rng.randrange(16)
            msgs.append({"is_irq": 1, "pasid": 0x100 + h, "handle": h, "addr": 0, "data": 0})
    result = {}

    async def bench(ctx):
        for h in range(16):
            base = regmap.IRQ_IMS_BASE + 16 * h
            await _csr_write(ctx, dut, base, msi_address(h))
            await _csr_write(ctx, dut, base + 8, 0x30 + h)
            await _csr_write(ctx, dut, base + 12, ims_ctrl(pasid=0x100 + h))
        ctx.set(dut.irq_out.ready, 1)
        ctx.set(dut.dma_out.ready, 1)
        cycle = 0
        i = 0
        first = last = None
        accepted_at = []        # accept cycle of each interrupt, in order
        latencies = []
        outputs = 0
        idle_gap = 0
        while outputs < n:
            want = i < n and idle_gap == 0
            if want:
                ctx.set(dut.msg_in.payload, msgs[i])
            ctx.set(dut.msg_in.valid, want)
            acc = want and ctx.get(dut.msg_in.ready)
            irq_v = ctx.get(dut.irq_out.valid)
            dma_v = ctx.get(dut.dma_out.valid)
            if irq_v:
                latencies.append(cycle - accepted_at.pop(0))
            outputs += irq_v + dma_v
            if irq_v or dma_v:
                last = cycle
            if acc:
                if first is None:
                    first = cycle
                if msgs[i]["is_irq"]:
                    accepted_at.append(cycle)
                i += 1
                if mix == "single":
                    idle_gap = 6
            elif idle_gap:
                idle_gap -= 1
            await ctx.tick()
            cycle += 1
            assert cycle < 20 * n + 1000, "no progress"
        result["rate"] = n / (last - first + 1)
        result["latency"] = latencies

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return result["rate"], result["latency"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--no-synth", action="store_true", help="skip synthesis (fmax, LUT/FF/BRAM)")
    args = ap.parse_args(argv)
    rows = []
    for pipelined in (True, False):
        name = "pipelined" if pipelined else "one at a time"
        rate_irq, lat_stream = measure(pipelined, args.messages, "irq")
        rate_mix, _ = measure(pipelined, args.messages, "irq+dma")
        _, lat_single = measure(pipelined, 50, "single")
        rows.append({
            "variant": name,
            "msgs/cycle (interrupts)": round(rate_irq, 3),
            "msgs/cycle (25% DMA)": round(rate_mix, 3),
            "latency idle (cycles)": max(lat_single),
            "latency streaming max (cycles)": max(lat_stream),
        })
    synth = {}
    if not args.no_synth:
        try:
            from siov.rtl.irq.top import IrqTop
            from siov.rtl.synth import synthesize
        except ImportError:
            synth = None
        if synth is not None:
            for r, pipelined, top in ((rows[0], True, "siov_irq"), (rows[1], False, "siov_irq_seq")):
                s = synthesize(top, None if pipelined else IrqTop(pipelined=False), seeds=3, reuse=True)
                r.update({"fmax MHz": s["fmax_mhz"], "LUT4": s["lut4"], "FF": s["ff"], "BRAM": s["bram"]})
                if s["fmax_mhz"]:
                    r["Mmsgs/s (interrupts)"] = round(s["fmax_mhz"] * r["msgs/cycle (interrupts)"], 1)
            # The same pipelined unit with its IMS table in DP16KD primitives and their
            # output register: cycle for cycle the same (tests/test_sim_irq.py), so only
            # its synthesis differs.
            s = synthesize("siov_irq_ecp5", seeds=3, reuse=True)
            rows.append({"variant": "pipelined, IMS in DP16KD with OUTREG", **{
                k: rows[0][k] for k in rows[0] if k.startswith(("msgs", "latency"))},
                "fmax MHz": s["fmax_mhz"], "LUT4": s["lut4"], "FF": s["ff"], "BRAM": s["bram"]})
            if s["fmax_mhz"]:
                rows[-1]["Mmsgs/s (interrupts)"] = round(s["fmax_mhz"] * rows[-1]["msgs/cycle (interrupts)"], 1)
    data = {
        "title": "Interrupt remapping unit (256 entries)",
        "rows": rows,
        "notes": (f"{args.messages} messages per run, irq_out and dma_out always ready, Amaranth "
                  "simulator cycle counts. Latency: from the cycle a message is accepted to the first "
                  "cycle its interrupt is valid on irq_out. "
                  + ("fmax/size: siov.rtl.synth, ECP5-25F out-of-context." if not args.no_synth
                     else "Synthesis skipped (--no-synth).")),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1))
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))
    print(f"\nresults: {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
