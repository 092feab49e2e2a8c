"""Helpers shared by the host-stack tests (not a test module): run a program under a started
hypervisor on the model backend, make a VM with an open queue, snapshot the device model."""

from siov.sw.guest.driver import FrontendDriver
from siov.sw.hv.hypervisor import Hypervisor, TenantKind
from siov.sw.platform import run_program

__all__ = ["PAGE", "device_state", "memory_of", "vm_with_queue", "copy_setup", "run"]

PAGE = 4096


def device_state(bus):
    """Everything of the device model a guest could change, as comparable values."""
    d = bus.device
    return (repr(d.adi.adis), d.dma.bits.tobytes(), list(d.dma.adi), list(d.dma.dom_base),
            list(d.dma.dom_limit), [list(e) for e in d.irq.ims], sorted(d.irq.pending),
            dict(d.csr.storage), dict(d.dma.counters), dict(d.irq.counters), d.engine.done)


async def memory_of(t):
    return await t.memory.read(0, t.pages * PAGE)


async def vm_with_queue(hv, name="vm0", adis=1, ring=16, pages=64):
    """A VM with a virtual device of ``adis`` ADIs, its driver, and queue 0 open and enabled."""
    t = await hv.create_tenant(name, TenantKind.VM, pages)
    vdev = await hv.vdcm.create(t, adis=adis)
    drv = await FrontendDriver(vdev).open()
    q = drv.queues[0]
    await q.open(ring)
    await q.enable()
    return t, vdev, drv, q


async def copy_setup(t, drv, nbytes):
    """A source of ``nbytes`` with a pattern and a zeroed destination, both mapped."""
    src, dst = t.memory.alloc(nbytes), t.memory.alloc(nbytes)
    await drv.dma_map(src, nbytes)
    await drv.dma_map(dst, nbytes)
    await t.memory.write(src, bytes(range(251)) * (nbytes // 251) + bytes(nbytes % 251))
    return src, dst


def run(prog, **kw):
    """Run ``prog(bus, hv)`` on the model backend with a started ``Hypervisor(bus, **kw)``."""
    async def main(bus, seed):
        hv = Hypervisor(bus, **kw)
        await hv.start()
        return await prog(bus, hv)
    return run_program(main)
