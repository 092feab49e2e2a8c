"""A host program that measures the device's fixed latencies, for the model backend's timing.

It times, in device cycles: MMIO reads and writes (SCRATCH), and from a
doorbell to the completion record of a NOOP on an idle engine, and of the
second of two NOOPs posted together (the gap between back-to-back
descriptors). ``bench/bench_host.py`` runs it on both backends and reports
the figures side by side; :class:`~siov.sw.platform.timing.TimingModel`'s
defaults come from the rtl column.
"""

from ...rtl import regmap
from ...rtl.cmd.dsa import Flag, Opcode
from ..guest.ring import Ring
from ..hv.guest_memory import HOST_BASE
from ..hv.pf import PfDriver
from ..model.dsa import Descriptor

__all__ = ["probe"]

BASE = HOST_BASE


async def _wait_record(bus, addr):
    start = bus.now()
    while not (await bus.mem_read(addr, 1))[0]:
        await bus.wait_cycles(1)
    return bus.now() - start


async def probe(bus, seed):
    """``{"mmio_read", "mmio_write", "noop_latency", "noop_pair_latency"}`` in cycles."""
    n = 32
    t = bus.now()
    for _ in range(n):
        await bus.read(regmap.GLOBAL_SCRATCH)
    read = (bus.now() - t) / n
    t = bus.now()
    for i in range(n):
        await bus.write(regmap.GLOBAL_SCRATCH, i)
    write = (bus.now() - t) / n
    pf = PfDriver.of(bus)
    await pf.set_domain(0, BASE, 4)
    await pf.pin(0, 0, 4)
    await pf.bind_adi(0, 0x42, 0)
    for page in range(4):
        await pf.guest_map(0, page)
    await pf.enable_adi(0, 0, 16, 0x42, 0)
    ring = Ring(bus, 0, 0, BASE, 16)

    def noop(slot):
        return Descriptor(pasid=0x42, opcode=Opcode.NOOP, flags=Flag.CRAV | Flag.RCR,
                          completion_addr=0x1000 + 32 * slot)
    t = bus.now()
    await ring.post([noop(0)])
    await _wait_record(bus, BASE + 0x1000)
    single = bus.now() - t
    await bus.wait_cycles(100)
    t = bus.now()
    await ring.post([noop(1), noop(2)])
    await _wait_record(bus, BASE + 0x1000 + 64)
    pair = bus.now() - t
    return {"mmio_read": read, "mmio_write": write, "noop_latency": single, "noop_pair_latency": pair}


#: One harmless register per window: (name, address, writable).
WINDOW_REGISTERS = [
    ("GLOBAL", regmap.GLOBAL_SCRATCH, True),
    ("IRQ", regmap.IRQ_CNT_DELIVERED, False),
    ("IRQ.IMS", regmap.IRQ_IMS_BASE + 8, True),
    ("DMA", regmap.DMA_OP_START, True),
    ("DMA.GUEST", regmap.DMA_GUEST_STATUS, False),
    ("DMA.HARVEST", regmap.DMA_HARVEST_BASE, False),
    ("CMD", regmap.CMD_RING_SIZE, True),
    ("ENG", regmap.ENG_COST_A, True),
    ("ADI_PAGES", regmap.ADI_PAGES_BASE + 4, False),
]


async def probe_windows(bus, seed):
    """Cycles of one MMIO read (and write, where harmless) in each register window."""
    out = {}
    for name, addr, writable in WINDOW_REGISTERS:
        t = bus.now()
        for _ in range(8):
            await bus.read(addr)
        out[name + ".read"] = (bus.now() - t) / 8
        if writable:
            t = bus.now()
            for _ in range(8):
                await bus.write(addr, 0)
            out[name + ".write"] = (bus.now() - t) / 8
    t = bus.now()
    for page in range(8):
        await bus.write(regmap.DMA_GUEST_BASE, page)      # a guest map (refused: nothing bound)
    out["DMA.GUEST.write"] = (bus.now() - t) / 8
    return out


async def irq_latency(bus, seed):
    """Cycles from a completion record becoming visible to the interrupt reaching the tenant's
    virtual interrupt controller, for a few NOOPs with RCI, through the whole host stack."""
    from ..guest.driver import FrontendDriver
    from ..hv.hypervisor import Hypervisor, TenantKind
    hv = Hypervisor(bus)
    await hv.start()
    t = await hv.create_tenant("vm0", TenantKind.VM, 16)
    drv = await FrontendDriver(await hv.vdcm.create(t)).open()
    q = drv.queues[0]
    await q.open(8)
    await q.enable()
    out = []
    for _ in range(8):
        (tk,) = await q.submit([Descriptor(opcode=Opcode.NOOP)], interrupt=True)
        while not (await t.memory.read(tk.record_addr, 1))[0]:
            await bus.wait_cycles(1)
        seen = bus.now()
        await t.vic.wait(tk.vector, 10_000)
        out.append(t.vic.log[-1][1] - seen)
        await bus.wait_cycles(50)
    return out
