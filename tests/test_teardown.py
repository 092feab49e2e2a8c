"""Teardown quiesces before it releases: nothing of a destroyed tenant, or of a closed queue, lands later.

Issue 24, item 1. A tenant destroyed while its 1 MiB MEMMOVE runs, then a
new tenant in the same domain (the same window of host memory, the same ADI
and IMS handle): the new tenant's memory holds exactly its own data after
the old copy would have finished, and every fault and interrupt of the old
tenant reached the old tenant before its teardown returned (none is left to
arrive later, unattributed, or at the new tenant). The same race inside one
guest: a queue closed while its copy runs, its ring and record pages given
to a new buffer. Both programs (:mod:`siov.sw.programs.teardown`) run on the
model and (``sim``) on the rtl backend, where each takes a few seconds.
"""

import pytest

from siov.rtl import regmap
from siov.rtl.cmd.dsa import Opcode
from siov.sw.hv.errors import DeviceTimeout
from siov.sw.hv.hypervisor import Hypervisor
from siov.sw.model.dsa import Descriptor
from siov.sw.platform import run_program
from siov.sw.platform.timing import TimingModel

from hv_support import PAGE, run, vm_with_queue

TEARDOWN = "siov.sw.programs.teardown:inflight_teardown"
CLOSE = "siov.sw.programs.teardown:queue_close"
VECTOR = 0x40                   # the VDCM's first vector: queue 0's


def _functional(record):
    return {k: v for k, v in record.items() if k != "timing"}


def _check_teardown(out):
    assert _functional(out) == {
        "same_domain": True, "same_adi_and_handle": True,
        "victim_memory_exact": True, "victim_pages_changed": 0,
        "victim_faults": [], "victim_interrupts": [],
        "unattributed": [], "stray_interrupts": [],
        # the copy ran to its end inside the attacker's window, and its interrupt reached it
        "attacker": {"faults": [], "interrupts": [VECTOR]},
        "engines_busy_after_destroy": 0,
    }


def _check_close(out):
    assert _functional(out) == {"reused": True, "new_buffer_exact": True, "faults": [], "unattributed": [],
                                "copied": True}


@pytest.mark.parametrize("seed", [1, 2])
def test_a_descriptor_in_flight_never_reaches_the_next_tenant(seed):
    out = run_program(TEARDOWN, "model", seed=seed)
    _check_teardown(out)
    # the teardown waited for the copy: at least the three quarters of it left
    assert out["timing"]["teardown_cycles"] > 3 * (1 << 20) // 8 // 4


def test_a_queue_closed_with_a_descriptor_in_flight_gives_its_pages_back_quiet():
    _check_close(run_program(CLOSE, "model", seed=1))


@pytest.mark.sim
def test_a_descriptor_in_flight_never_reaches_the_next_tenant_on_rtl():
    _check_teardown(run_program(TEARDOWN, "rtl", seed=1, quiet=True))


@pytest.mark.sim
def test_a_queue_closed_with_a_descriptor_in_flight_gives_its_pages_back_quiet_on_rtl():
    _check_close(run_program(CLOSE, "rtl", seed=1, quiet=True))


# -- the driver's wait ------------------------------------------------------------------------------

async def _copy_running(hv, size=64 * PAGE):
    """A VM whose MEMMOVE of ``size`` bytes has just started; ``(vm, vdev, queue, ticket)``."""
    t, vdev, drv, q = await vm_with_queue(hv, pages=4 + 2 * size // PAGE)
    src, dst = t.memory.alloc(size), t.memory.alloc(size)
    await hv.hc_map(t, src // PAGE, 2 * size // PAGE)
    await drv.dma_map(src, 2 * size)
    (ticket,) = await q.submit([Descriptor(opcode=Opcode.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=size)])
    await hv.bus.wait_cycles(500)
    return t, vdev, q, ticket


def test_quiesce_waits_for_the_descriptor_in_flight_and_times_out_if_it_never_ends():
    async def prog(bus, hv):
        t, vdev, q, ticket = await _copy_running(hv)
        (adi,) = vdev.adis
        with pytest.raises(ValueError, match=f"ADI {adi} is ENABLED and eligible"):
            await hv.pf.quiesce_adis([adi])
        await hv.pf.hold("test", [adi])                # held, not aborted: nothing new is taken
        hv.pf.timeout_cycles = 1000
        with pytest.raises(DeviceTimeout, match=rf"ADIs \[{adi}\] still have a descriptor in flight"):
            await hv.pf.quiesce_adis([adi])
        hv.pf.timeout_cycles = 1_000_000
        await hv.pf.quiesce_adis([adi])
        await bus.write(regmap.CMD_ADI_SEL, adi)
        status = await bus.read(regmap.CMD_ADI_STATUS)
        return {"record": (await t.memory.read(ticket.record_addr, 1))[0],
                "inflight": status & regmap.CMD_ADI_STATUS_INFLIGHT_MASK,
                "drain busy": await bus.read(regmap.IRQ_DRAIN_STATUS)}

    assert run(prog) == {"record": 1, "inflight": 0, "drain busy": 0}


def test_inflight_follows_the_descriptor_and_the_drain_its_interrupt():
    """INFLIGHT is set while the fill runs and clear once it finished; a drain started while
    its interrupt is on its way to the host (here a slow way: 500 cycles) reads BUSY until it
    has arrived."""
    async def main(bus, seed):
        hv = Hypervisor(bus)
        await hv.start()
        return await prog(bus, hv)

    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, pages=8)
        (adi,) = vdev.adis
        buf = t.memory.alloc(4 * PAGE)
        await drv.dma_map(buf, 4 * PAGE)
        seen = []
        (ticket,) = await q.submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=buf, xfer_size=4 * PAGE)],
                                   interrupt=True)
        while not (await t.memory.read(ticket.record_addr, 1))[0]:
            await bus.write(regmap.CMD_ADI_SEL, adi)
            seen.append(bool(await bus.read(regmap.CMD_ADI_STATUS) & regmap.CMD_ADI_STATUS_INFLIGHT_MASK))
        await bus.write(regmap.IRQ_DRAIN_CMD, regmap.IRQ_DRAIN_CMD_START_MASK)
        busy = await bus.read(regmap.IRQ_DRAIN_STATUS)
        arrived = len(t.vic.log)
        await bus.wait_cycles(500)
        return {"seen in flight": any(seen), "busy while on its way": (busy, arrived),
                "after": (await bus.read(regmap.IRQ_DRAIN_STATUS), len(t.vic.log))}

    out = run_program(main, timing=TimingModel(irq_latency=500))
    assert out == {"seen in flight": True, "busy while on its way": (1, 0), "after": (0, 1)}
