"""The interrupt remapper's drain (IRQ.DRAIN_CMD / DRAIN_STATUS) in Amaranth's simulator.

A drain is a fence: BUSY stays set until every message accepted before the
START write has had its effect. Here:

* deliveries held in the ``irq_out`` queue by a consumer that takes nothing
  keep BUSY set for as long as they wait, and it clears once they are taken;
* a message accepted in the cycle before the START write faults: by the time
  BUSY reads 0, its record is in the fault queue the registers show;
* a drain of an idle remapper ends by itself a few cycles after it starts.
"""

from amaranth.sim import Simulator

from siov.rtl import regmap
from siov.rtl.irq.remapper import InterruptRemapper
from siov.sw.model.irq import ims_ctrl, msi_address

PASID, OTHER = 0x123, 0x456
LOCAL = 0xFFFF                  # the window's local byte addresses


async def _csr(ctx, dut, addr, data=None):
    """One register access; ``(cycles to the answer, read data)``."""
    bus = dut.csr
    ctx.set(bus.addr, addr & LOCAL)
    ctx.set(bus.we, data is not None)
    ctx.set(bus.wdata, data or 0)
    ctx.set(bus.wstrb, 0xF)
    ctx.set(bus.stb, 1)
    await ctx.tick()
    ctx.set(bus.stb, 0)
    cycles = 1
    while not ctx.get(bus.ack):
        await ctx.tick()
        cycles += 1
    value = ctx.get(bus.rdata)
    await ctx.tick()
    return cycles, value


async def _busy(ctx, dut):
    return (await _csr(ctx, dut, regmap.IRQ_DRAIN_STATUS))[1] & regmap.IRQ_DRAIN_STATUS_BUSY_MASK


async def _send(ctx, dut, pasid, handle=0):
    m = dut.msg_in
    ctx.set(m.payload.is_irq, 1)
    ctx.set(m.payload.pasid, pasid)
    ctx.set(m.payload.handle, handle)
    ctx.set(m.valid, 1)
    await ctx.tick().until(m.ready)
    ctx.set(m.valid, 0)


def _run(bench):
    dut = InterruptRemapper(entries=16)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    out = {}

    async def testbench(ctx):
        base = regmap.IRQ_IMS_BASE
        for off, v in ((0, msi_address(5)), (4, 0), (8, 0x41), (12, ims_ctrl(pasid=PASID))):
            await _csr(ctx, dut, base + off, v)
        out.update(await bench(ctx, dut))

    sim.add_testbench(testbench)
    sim.run()
    return out


def test_a_drain_waits_for_the_deliveries_the_consumer_holds_back():
    async def bench(ctx, dut):
        ctx.set(dut.irq_out.ready, 0)
        for _ in range(3):
            await _send(ctx, dut, PASID)
        await ctx.tick().repeat(4)
        await _csr(ctx, dut, regmap.IRQ_DRAIN_CMD, regmap.IRQ_DRAIN_CMD_START_MASK)
        held = [await _busy(ctx, dut) for _ in range(5)]
        await ctx.tick().repeat(50)
        held.append(await _busy(ctx, dut))
        ctx.set(dut.irq_out.ready, 1)
        taken = 0
        for _ in range(10):
            taken += ctx.get(dut.irq_out.valid)     # taken at this tick (ready is high)
            await ctx.tick()
        return {"held": held, "taken": taken, "after": await _busy(ctx, dut)}

    assert _run(bench) == {"held": [1] * 6, "taken": 3, "after": 0}


def test_a_fault_is_in_the_queue_once_the_drain_is_done():
    async def bench(ctx, dut):
        ctx.set(dut.irq_out.ready, 1)
        await _send(ctx, dut, OTHER)                   # PASID mismatch: a fault
        await _csr(ctx, dut, regmap.IRQ_DRAIN_CMD, regmap.IRQ_DRAIN_CMD_START_MASK)
        polls = 1
        while await _busy(ctx, dut):
            polls += 1
        status = (await _csr(ctx, dut, regmap.IRQ_FAULT_STATUS))[1]
        return {"queued": status & regmap.IRQ_FAULT_STATUS_COUNT_MASK, "polls": polls > 0}

    assert _run(bench) == {"queued": 1, "polls": True}


def test_a_drain_of_an_idle_remapper_ends_by_itself():
    async def bench(ctx, dut):
        ctx.set(dut.irq_out.ready, 1)
        await _csr(ctx, dut, regmap.IRQ_DRAIN_CMD, regmap.IRQ_DRAIN_CMD_START_MASK)
        first = await _busy(ctx, dut)
        await ctx.tick().repeat(8)
        return {"first": first, "later": await _busy(ctx, dut)}

    assert _run(bench) == {"first": 1, "later": 0}
