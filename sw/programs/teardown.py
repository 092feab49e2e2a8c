"""A tenant destroyed while its descriptor runs, and the next tenant of its domain, on either backend.

Issue 24's first defect, as a host program. The attacker maps a source and
a destination buffer of ``arg["size"]`` bytes each (default 1 MiB, the
device's largest transfer) and posts one MEMMOVE between them, with a
completion record and an interrupt. A quarter of the way into the copy the
host destroys the attacker (:meth:`Hypervisor.destroy_tenant`), creates the
next tenant, which gets the same DMA domain and so the same window of host
memory (and the attacker's ADI and IMS handle for its virtual device), and
that tenant writes its own data where the attacker's destination was and
maps it for DMA. Then the program waits until well after the old copy
would have finished and drains the fault queues once more.

The record says what reached whom:

* ``victim_memory_exact``: the new tenant's memory holds exactly what it
  wrote (its data over the old destination, zeros elsewhere): nothing of
  the old copy, its record or anything else landed in it;
* ``victim_faults``, ``victim_interrupts``: what was routed to the new tenant
  (nothing: it ran nothing);
* ``unattributed``, ``stray_interrupts``: faults and interrupts that named
  nobody when they were routed. A fault of the old tenant that arrives
  after its teardown lands here: its teardown did not wait for it;
* ``attacker``: what the attacker was routed before it was gone;
* ``engines_busy_after_destroy``: ENG.ENG_STATUS.ENGINES_BUSY read right
  after the teardown returned (nothing else runs: 0 unless the old copy
  still does);
* under ``timing``: the cycles the teardown took.

:func:`queue_close` is the same race inside one guest: its queue is closed
(:meth:`Queue.close`: abort, unmap and free the ring and the records) while
its MEMMOVE runs, and the guest gives the freed pages to a new buffer of its
own, maps it and fills it. ``new_buffer_exact`` says whether the buffer
still holds what the guest put there after the old copy would have finished
(its completion record must not land in it).
"""

import hashlib

from ...rtl import regmap
from ...rtl.cmd.dsa import MAX_XFER, Opcode
from ...rtl.dma.defs import PAGE_SHIFT
from ..guest.driver import FrontendDriver
from ..hv.hypervisor import Hypervisor, TenantKind
from ..model.dsa import Descriptor

__all__ = ["inflight_teardown", "queue_close", "tenant_pages"]

PAGE = 1 << PAGE_SHIFT
#: Pages the attacker's queue takes (its ring and its records) before the buffers.
QUEUE_PAGES = 2
RING = 16


def tenant_pages(size):
    """Guest pages a tenant of this program needs for buffers of ``size`` bytes."""
    return QUEUE_PAGES + 2 * -(-size // PAGE) + 2


def _data(tag, seed, size):
    block = hashlib.sha256(f"{tag}/{seed}".encode()).digest()
    return (block * -(-size // len(block)))[:size]


def _fault(f):
    return [type(f).__name__, f.reason, f.pasid, getattr(f, "page", getattr(f, "handle", None))]


async def inflight_teardown(bus, seed, arg=None):
    """The program (see the module docstring); ``arg``: ``{"size": bytes}``."""
    size = (arg or {}).get("size", MAX_XFER)
    pages = tenant_pages(size)
    hv = Hypervisor(bus)
    await hv.start()

    a = await hv.create_tenant("attacker", TenantKind.VM, pages)
    va = await hv.vdcm.create(a)
    drv = await FrontendDriver(va).open()
    q = drv.queues[0]
    await q.open(RING)
    await q.enable()
    src, dst = a.memory.alloc(size), a.memory.alloc(size)
    await a.memory.write(src, _data("attacker", seed, size))
    await hv.hc_map(a, src // PAGE, 2 * -(-size // PAGE))     # pinned in one range operation
    await drv.dma_map(src, size)
    await drv.dma_map(dst, size)
    await q.submit([Descriptor(opcode=Opcode.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=size)],
                   interrupt=True)
    copy_cycles = size // 8             # the copy moves at most 8 bytes a cycle
    await bus.wait_cycles(copy_cycles // 4)

    start = bus.now()
    await hv.destroy_tenant(a)
    teardown = bus.now() - start
    busy_after = (await bus.read(regmap.ENG_ENG_STATUS) & regmap.ENG_ENG_STATUS_ENGINES_BUSY_MASK) \
        >> regmap.ENG_ENG_STATUS_ENGINES_BUSY_LSB

    b = await hv.create_tenant("victim", TenantKind.VM, pages)
    vb = await hv.vdcm.create(b)
    await FrontendDriver(vb).open()
    mine = _data("victim", seed, size)
    await b.memory.write(dst, mine)
    await hv.hc_map(b, dst // PAGE, -(-size // PAGE))
    for page in range(dst // PAGE, (dst + size - 1) // PAGE + 1):
        await vb.guest_map(page)

    await bus.wait_cycles(2 * copy_cycles + 20_000)
    await hv.poll_faults()
    expected = bytearray(pages * PAGE)
    expected[dst:dst + size] = mine
    held = await b.memory.read(0, pages * PAGE)
    return {
        "same_domain": b.domain == a.domain,
        "same_adi_and_handle": (vb.adis, vb.handles) == (va.adis, va.handles),
        "victim_memory_exact": held == bytes(expected),
        "victim_pages_changed": len({i // PAGE for i in range(0, len(held), 8)
                                     if held[i:i + 8] != expected[i:i + 8]}),
        "victim_faults": [_fault(f) for f in b.faults],
        "victim_interrupts": [v for v, _ in b.vic.log],
        "unattributed": [_fault(f) for f in hv.unattributed],
        "stray_interrupts": [[i.dest, i.vector] for i in hv.stray_interrupts],
        "attacker": {"faults": [_fault(f) for f in a.faults], "interrupts": [v for v, _ in a.vic.log]},
        "engines_busy_after_destroy": busy_after,
        "timing": {"teardown_cycles": teardown},
    }


async def queue_close(bus, seed, arg=None):
    """The guest's own race (see the module docstring); ``arg``: ``{"size": bytes}``."""
    size = (arg or {}).get("size", MAX_XFER)
    hv = Hypervisor(bus)
    await hv.start()
    t = await hv.create_tenant("vm", TenantKind.VM, tenant_pages(size))
    vdev = await hv.vdcm.create(t)
    drv = await FrontendDriver(vdev).open()
    q = drv.queues[0]
    await q.open(RING)
    await q.enable()
    ring, records = q.ring.guest_addr, q.records
    src, dst = t.memory.alloc(size), t.memory.alloc(size)
    await t.memory.write(src, _data("vm", seed, size))
    await hv.hc_map(t, src // PAGE, 2 * -(-size // PAGE))
    await drv.dma_map(src, size)
    await drv.dma_map(dst, size)
    (ticket,) = await q.submit([Descriptor(opcode=Opcode.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=size)])
    copy_cycles = size // 8
    await bus.wait_cycles(copy_cycles // 4)

    start = bus.now()
    await q.close()
    close_cycles = bus.now() - start
    buf = t.memory.alloc(QUEUE_PAGES * PAGE)             # the ring's and the records' pages again
    mine = _data("buffer", seed, QUEUE_PAGES * PAGE)
    await t.memory.write(buf, mine)
    await drv.dma_map(buf, len(mine))

    await bus.wait_cycles(2 * copy_cycles + 20_000)
    await hv.poll_faults()
    held = await t.memory.read(buf, len(mine))
    return {
        "reused": buf == min(ring, records),
        "new_buffer_exact": held == mine,
        "faults": [_fault(f) for f in t.faults],
        "unattributed": [_fault(f) for f in hv.unattributed],
        "copied": await t.memory.read(dst, size) == _data("vm", seed, size),
        "timing": {"close_cycles": close_cycles, "ticket": ticket.record_addr},
    }
