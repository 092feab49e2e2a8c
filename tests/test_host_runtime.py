"""The host runtime on the model backend: the virtual-time loop, ModelBus, PfDriver, Ring.

The model backend must behave as the Device does, by itself: a doorbell
makes the engine run the descriptor through the block models, the record
lands in host memory after the calibrated time, and the completion
interrupt reaches the bus's callbacks (or waits, masked, until an unmask).
"""

import asyncio
import pathlib
import re
import time

import pytest

from siov.rtl import regmap
from siov.rtl.cmd.arbiter import Policy
from siov.rtl.cmd.dsa import Flag, Opcode, Status
from siov.rtl.dma.defs import Bitmap, GuestResult
from siov.rtl.params import DeviceParams
from siov.sw.bus import Bus, BusError
from siov.sw.guest.ring import Ring, RingFull
from siov.sw.hv.guest_memory import HOST_BASE
from siov.sw.hv.pf import PfDriver
from siov.sw.model.arbiter import ArbiterConfig, ArbiterModel, ArbiterPolicyModel
from siov.sw.model.dsa import CompletionRecord, Descriptor
from siov.sw.platform import run_program, vtime
from siov.sw.platform.model import ModelBus
from siov.sw.platform.timing import TimingModel

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = 4096
BASE = HOST_BASE


# -- the virtual-time loop -------------------------------------------------------------

def test_virtual_time_jumps_and_orders_timers():
    order = []

    async def sleeper(n, tag):
        await asyncio.sleep(n)
        order.append((tag, asyncio.get_running_loop().time()))

    async def main():
        await asyncio.gather(sleeper(10**9, "late"), sleeper(5, "a"), sleeper(5, "b"), sleeper(1, "first"))
        return asyncio.get_running_loop().time()

    assert vtime.run(main()) == 10**9
    assert order == [("first", 1), ("a", 5), ("b", 5), ("late", 10**9)]


def test_virtual_time_reports_deadlock():
    async def main():
        await asyncio.sleep(7)
        await asyncio.Event().wait()

    with pytest.raises(vtime.Deadlock, match="device cycle 7"):
        vtime.run(main())


def test_host_code_never_imports_cocotb():
    """The seam between cocotb and asyncio is the Bus: sw/ stays free of cocotb."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "sw").rglob("*.py")
                 if re.search(r"^\s*(import|from)\s+cocotb", p.read_text(), re.M)]
    assert offenders == []


# -- ModelBus --------------------------------------------------------------------------

def test_model_bus_is_a_bus_and_keeps_device_time():
    async def prog(bus, seed):
        assert isinstance(bus, Bus)
        t0 = bus.now()
        await bus.write(regmap.GLOBAL_SCRATCH, 0x1234_5678)
        assert await bus.read(regmap.GLOBAL_SCRATCH) == 0x1234_5678
        lo = await bus.read(regmap.GLOBAL_CYCLE_LO)
        assert lo == bus.now()
        with pytest.raises(BusError, match="SLVERR"):
            await bus.write(regmap.GLOBAL_ID, 0)
        await bus.wait_cycles(1 << 33)
        lo, hi = await bus.read(regmap.GLOBAL_CYCLE_LO), await bus.read(regmap.GLOBAL_CYCLE_HI)
        assert hi == 2 and bus.now() - (hi << 32 | lo) < 100
        ev = bus.event()
        assert not await bus.wait_event(ev, 50)
        bus.spawn(_set_later(bus, ev, 30))
        before = bus.now()
        assert await bus.wait_event(ev, 1000) and bus.now() - before == 30
        return t0

    assert run_program(prog) == 0


async def _set_later(bus, ev, n):
    await bus.wait_cycles(n)
    ev.set()


def test_model_memory_is_sparse():
    big = DeviceParams(num_adis=64, ims_entries=2048, num_domains=64, pages_per_domain=65536)

    async def prog(bus, seed):
        for i in range(100):
            await bus.mem_write(i << 30, b"\xAB" * 10)
        assert await bus.mem_read(5 << 30, 12) == b"\xAB" * 10 + b"\0\0"
        assert await bus.mem_read(1 << 40, 4) == b"\0" * 4
        return len(bus.device.memory.pages)

    assert run_program(prog, params=big) == 100


def test_device_failure_stops_the_program():
    """A crash inside the device model surfaces in the host program instead of hanging it."""
    broken = TimingModel(coefficients={})

    async def prog(bus, seed):
        pf = PfDriver.of(bus)
        ring = await _one_tenant(pf, bus)
        await ring.post([Descriptor(pasid=0x42, opcode=Opcode.NOOP)])
        for _ in range(100):
            await bus.wait_cycles(100)

    with pytest.raises(RuntimeError, match="the device model stopped"):
        run_program(prog, timing=broken)


async def _one_tenant(pf, bus, adi=0, pasid=0x42, dom=0, handle=5, mask=False, ring_size=16):
    await pf.set_domain(dom, BASE, 16)
    assert await pf.pin(dom, 0, 16)
    await pf.bind_adi(adi, pasid, dom)
    for page in range(16):
        assert await pf.guest_map(adi, page) is GuestResult.OK
    await pf.set_ims(handle, pasid, dest=9, vector=0x61, mask=mask)
    state = await pf.enable_adi(adi, 0, ring_size, pasid, dom)
    assert state == (1, 0)
    return Ring(bus, adi, 0, BASE, ring_size)


def test_doorbell_runs_descriptor_and_interrupts():
    async def prog(bus, seed):
        pf = PfDriver.of(bus)
        irqs = []
        bus.on_irq(irqs.append)
        ring = await _one_tenant(pf, bus)
        await bus.mem_write(BASE + 2 * PAGE, bytes(range(256)) * 4)
        d = Descriptor(pasid=0x42, opcode=Opcode.MEMMOVE, src_addr=2 * PAGE, dst_addr=3 * PAGE + 8, xfer_size=1000,
                       flags=Flag.CRAV | Flag.RCR | Flag.RCI, completion_addr=PAGE, int_handle=5)
        await ring.post([d])
        posted = bus.now()
        while not (await bus.mem_read(BASE + PAGE, 1))[0]:
            await bus.wait_cycles(10)
        rec = CompletionRecord.unpack(await bus.mem_read(BASE + PAGE, 32))
        assert rec.status == Status.SUCCESS.value and rec.bytes_completed == 1000
        _, outcome, cycles = bus.executed[BASE + PAGE]
        assert rec.cycles == cycles == TimingModel().descriptor_cycles(d, outcome)
        assert bus.dispatches[0].end - bus.dispatches[0].start == TimingModel().engine_cycles(d, outcome, cycles)
        assert await bus.mem_read(BASE + 3 * PAGE + 8, 1000) == (bytes(range(256)) * 4)[:1000]
        await bus.wait_cycles(20)
        assert [(i.dest, i.vector) for i in irqs] == [(9, 0x61)]
        assert irqs[0].cycle > posted
        dirty = await pf.harvest(0, 16)
        assert int.from_bytes(dirty, "little") == 1 << 3 | 1 << 1     # data page and record page
        return True

    assert run_program(prog)


def test_masked_interrupt_waits_for_unmask():
    async def prog(bus, seed):
        pf = PfDriver.of(bus)
        irqs = []
        bus.on_irq(irqs.append)
        ring = await _one_tenant(pf, bus, mask=True)
        noop = Descriptor(pasid=0x42, opcode=Opcode.NOOP, flags=Flag.RCI, int_handle=5)
        await ring.post([noop, noop])
        await bus.wait_cycles(500)
        assert irqs == [] and await bus.read(regmap.IRQ_CNT_PENDED) == 2
        await pf.mask_ims(5, 0x42, mask=False)
        await bus.wait_cycles(20)
        return [(i.dest, i.vector) for i in irqs]

    assert run_program(prog) == [(9, 0x61)]      # one pending bit: one delivery


def test_faults_are_queued_and_popped():
    async def prog(bus, seed):
        pf = PfDriver.of(bus)
        ring = await _one_tenant(pf, bus)
        assert await pf.guest_map(0, 7, unmap=True) is GuestResult.OK
        fill = Descriptor(pasid=0x42, opcode=Opcode.MEMFILL, dst_addr=7 * PAGE, xfer_size=64,
                          flags=Flag.CRAV | Flag.RCR, completion_addr=PAGE)
        await ring.post([fill, Descriptor(pasid=0x42, opcode=Opcode.NOOP, flags=Flag.RCI, int_handle=6)])
        await bus.wait_cycles(1000)
        dma, ovf = await pf.pop_dma_faults()
        irq, _ = await pf.pop_irq_faults()
        raw = await bus.mem_read(BASE + PAGE, 32)
        unmap_bits = await pf.read_bitmap(Bitmap.UNMAP, 0, 1)
        return dma, ovf, irq, raw[0], unmap_bits

    dma, ovf, irq, status, unmap_bits = run_program(prog)
    assert [(f.reason, f.pasid, f.page, f.write) for f in dma] == [(0x05, 0x42, 7, True)] and ovf == 0
    assert [(f.reason, f.pasid, f.handle) for f in irq] == [(0x22, 0x42, 6)]
    assert status == Status.PAGE_FAULT.value | 0x80       # a write fault sets bit 7 of the status byte
    assert unmap_bits == [1 << 7]


def test_ring_refuses_overflow_and_bad_size():
    with pytest.raises(ValueError, match="power of two"):
        Ring(None, 0, 0, 0, 12)

    async def prog(bus, seed):
        pf = PfDriver.of(bus)
        ring = await _one_tenant(pf, bus, ring_size=4)
        await pf.adi_command(0, regmap.CMD_ADI_CMD_DRAIN_MASK)      # nothing consumes now
        with pytest.raises(RingFull):
            await ring.post([Descriptor(pasid=0x42)] * 4)
        return ring.tail

    assert run_program(prog) == 0


# -- the arbiter policy model against the cycle-accurate one ------------------------------

@pytest.mark.parametrize("policy", [Policy.RR, Policy.WRR])
def test_policy_model_grants_in_the_cycle_model_order(policy):
    n = 6
    weights = [1, 3, 2, 1, 4, 2]
    cfg = ArbiterConfig(policy=policy, weight=weights, quantum=[0] * n)
    cyc = ArbiterModel(n)
    grants = []
    for _ in range(400):
        valid, adi, _ = cyc.outputs()
        if cyc.clock([True] * n, [0] * n, True, cfg):
            grants.append(adi)
    txn = ArbiterPolicyModel(n)
    expect = [txn.pick((1 << n) - 1, {}, cfg) for _ in grants]
    assert grants == expect and len(grants) > 50


def test_a_device_write_wakes_its_watcher():
    """ModelBus.watch: a host task waiting for a completion record is woken once, when the record
    lands (the descriptor's finish), instead of reading host memory every few cycles; a watch on
    memory the Device does not write never fires, and an unwatched one is gone."""
    async def prog(bus, seed):
        pf = PfDriver.of(bus)
        ring = await _one_tenant(pf, bus)
        record, other, dropped = bus.watch(BASE + PAGE, 32), bus.watch(BASE + 9 * PAGE, 8), bus.watch(BASE + PAGE, 4)
        bus.unwatch(dropped)
        d = Descriptor(pasid=0x42, opcode=Opcode.MEMFILL, dst_addr=3 * PAGE, xfer_size=512, src_addr=7,
                       flags=Flag.CRAV | Flag.RCR, completion_addr=PAGE)
        await ring.post([d])
        woken = await bus.wait_event(record, 100_000)
        at = bus.now()
        status = (await bus.mem_read(BASE + PAGE, 1))[0]
        return woken, at, status, other.is_set(), dropped.is_set(), bus.dispatches[0].end, dict(bus._watches)

    woken, at, status, other, dropped, end, watches = run_program(prog)
    assert woken and status == Status.SUCCESS and at == end
    assert not other and not dropped
    assert list(watches) == [(BASE + 9 * PAGE) >> 12]          # only the watch that never fired is left


#: Doorbell write's response to each completion interrupt, as measured on the RTL: a NOOP with RCI
#: (the doorbell reaches the Device as the write is made, one prefetch, the grant's take and
#: hand-over, the executor, the remapper's 4 cycles), two of them (the second's prefetch overlapped
#: the first's execution), then the same with completion records.
DOORBELL_TO_IRQ = [[57], [57, 98], [81], [81, 124]]
DOORBELL_PROGRAM = "siov.sw.programs.doorbell_irq:doorbell_to_interrupt"


def test_doorbell_to_interrupt_takes_the_rtls_cycles():
    """The model backend gives the RTL's doorbell-to-interrupt cycles (the rtl run below keeps them true)."""
    assert run_program(DOORBELL_PROGRAM) == DOORBELL_TO_IRQ


@pytest.mark.sim
def test_doorbell_to_interrupt_on_the_rtl():
    assert run_program(DOORBELL_PROGRAM, "rtl", quiet=True) == DOORBELL_TO_IRQ


def test_an_idle_device_under_qos_costs_no_steps():
    """The dispatcher wakes for a QoS refill only when work waits for the budget: an idle Device
    under QoS (even refilling every cycle, ENG.ARB_SLICE 0) lets millions of cycles pass at once."""
    async def prog(bus, seed):
        pf = PfDriver.of(bus)
        await pf.set_arbiter(Policy.QOS, slice_cycles=0)
        await bus.wait_cycles(2_000_000)
        await pf.set_arbiter(Policy.QOS, slice_cycles=10)
        await bus.wait_cycles(2_000_000)
        return bus.now()

    start = time.perf_counter()
    assert run_program(prog) > 4_000_000
    assert time.perf_counter() - start < 2


@pytest.mark.sim
def test_rtl_runs_of_one_program_with_other_arguments_run_in_parallel():
    """Two rtl runs of one program and seed with different arguments, at the same time (as
    pytest's workers run the arbitration comparisons): each gets its own argument and result,
    not the other's (they had one run folder, argument file and result file between them)."""
    from concurrent.futures import ThreadPoolExecutor
    args = [{"policy": "rr", "tenants": [{"op": "noop", "count": count}]} for count in (3, 9)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda a: run_program("siov.sw.programs.arbitration:arbitration", "rtl",
                                                      seed=1, arg=a, quiet=True), args))
    assert [len(r["records"][0]) for r in results] == [3, 9]
    assert all(status == Status.SUCCESS for r in results for status, _ in r["records"][0])
