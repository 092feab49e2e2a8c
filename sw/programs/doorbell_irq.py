"""A host program that times a doorbell to its completion interrupt, with nothing else running.

One tenant (one ADI, one domain of 16 pinned and mapped pages, an IMS entry)
posts a NOOP with RCI, then two, with and without a completion record, and
reports for each post the cycles from the doorbell write's response to each
interrupt that reaches the host. ``tests/test_host_runtime.py`` runs it on
both backends: the figures come from the RTL (the doorbell reaching the
Device as the write is made, one prefetch, the grant's take and hand-over,
the executor, the remapper's pipeline), and the model backend's timing model
must give the same.
"""

from ...rtl.cmd.dsa import Flag, Opcode
from ...rtl.dma.defs import GuestResult
from ..guest.ring import Ring
from ..hv.guest_memory import HOST_BASE
from ..hv.pf import PfDriver
from ..model.dsa import Descriptor

__all__ = ["doorbell_to_interrupt"]

PAGE = 4096
PASID, HANDLE = 0x42, 5


async def doorbell_to_interrupt(bus, seed):
    """``[[cycles], [cycles, cycles], ...]``: per post (1 NOOP, 2 NOOPs; then the same with a
    record), the cycles from its doorbell's response to each of its interrupts."""
    pf = PfDriver.of(bus)
    await pf.set_domain(0, HOST_BASE, 16)
    assert await pf.pin(0, 0, 16)
    await pf.bind_adi(0, PASID, 0)
    for page in range(16):
        assert await pf.guest_map(0, page) is GuestResult.OK
    await pf.set_ims(HANDLE, PASID, dest=9, vector=0x61)
    assert await pf.enable_adi(0, 0, 16, PASID, 0) == (1, 0)
    ring = Ring(bus, 0, 0, HOST_BASE, 16)
    irqs = []
    bus.on_irq(lambda irq: irqs.append(irq.cycle))
    out = []
    for flags in (Flag.RCI, Flag.RCI | Flag.CRAV | Flag.RCR):
        for count in (1, 2):
            irqs.clear()
            await ring.post([Descriptor(pasid=PASID, opcode=Opcode.NOOP, flags=flags, int_handle=HANDLE,
                                        completion_addr=PAGE + 32 * k) for k in range(count)])
            rung = bus.now()
            await bus.wait_cycles(600)
            out.append([c - rung for c in irqs])
    return out
