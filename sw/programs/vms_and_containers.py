"""A host program through the whole host stack: two VMs and two containers on one device.

The hypervisor creates the tenants; each VM gets a virtual device of two
ADIs and runs its frontend driver, each container opens its own device node.
Every tenant copies, fills and compares buffers (with completion interrupts),
maps and unmaps buffers again (the second map of a pinned page makes no
hypercall), and then:

* container 0 tries to open container 1's node (refused, nothing touched);
* VM 1 writes to a page it has unmapped (a page fault, routed to VM 1);
* container 1 closes its node and tries to use it again (refused);
* the hypervisor reclaims unmapped pages under an LRU policy (aged from each
  unmap: what is 2000 cycles old at the first call goes then, the rest 3000
  cycles later).

The record is per tenant: a digest of its memory, its completion records
(less ``cycles`` and ``start_cycle``), the vectors its virtual interrupt controller raised, the
faults routed to it, the errors it was given, and its counters, so the
differential harness can compare it across backends.
"""

import hashlib
import random

from ...rtl.cmd.dsa import CompletionLayout, Opcode
from ...rtl.dma.defs import PAGE_SHIFT
from ..guest.driver import DescriptorError, FrontendDriver
from ..hv.containers import NodeClosed
from ..hv.hypervisor import Hypervisor, TenantKind
from ..hv.unpin import LruUnpin
from ..model.dsa import Descriptor, fields_of

__all__ = ["vms_and_containers"]

PAGE = 1 << PAGE_SHIFT
#: (byte offset, bytes) of the completion record's timing fields: its cycles and start cycle.
TIMING_FIELDS = [(off // 8, width // 8) for name, off, width in fields_of(CompletionLayout)
                 if name in ("cycles", "start_cycle")]


def _work(rng, src, dst, n):
    """Three descriptors over a source and a destination buffer of ``n`` bytes."""
    size = rng.randint(1, n)
    return [Descriptor(opcode=Opcode.MEMMOVE, src_addr=src, dst_addr=dst + rng.randrange(0, n - size + 1),
                       xfer_size=size),
            Descriptor(opcode=Opcode.MEMFILL, dst_addr=dst + 8 * rng.randrange(0, n // 16), xfer_size=64,
                       src_addr=rng.getrandbits(64)),
            Descriptor(opcode=Opcode.COMPARE, src_addr=src, dst_addr=dst, xfer_size=rng.randint(1, n))]


async def _records(queue_wait, tickets, errors, addrs):
    out = []
    for tk in tickets:
        addrs.append(tk.record_addr)
        try:
            rec = await queue_wait(tk)
        except DescriptorError as e:
            rec = e.record
            errors.append(str(e))
        rec.cycles = rec.start_cycle = 0          # timing
        out.append(rec.pack().hex())
    return out


async def vms_and_containers(bus, seed):
    """The two-VM, two-container program; returns its record (see the module)."""
    rng = random.Random(seed)
    hv = Hypervisor(bus, unpin_policy=LruUnpin(2000))
    await hv.start()
    host = hv.containers
    result = {}
    vms = []
    for i in range(2):
        t = await hv.create_tenant(f"vm{i}", TenantKind.VM, pages=48)
        vdev = await hv.vdcm.create(t, adis=2)
        drv = await FrontendDriver(vdev).open()
        for q in drv.queues:
            await q.open(16)
            await q.enable()
        vms.append((t, vdev, drv))
    nodes = [await host.add_container(f"ctr{i}", pages=32, ring_size=32) for i in range(2)]
    handles = [await host.open(n.path, n.tenant) for n in nodes]
    for t, _, _ in vms:
        result[t.name] = {"records": [], "errors": []}
    for n in nodes:
        result[n.tenant.name] = {"records": [], "errors": []}
    addrs = {name: [] for name in result}

    # Work: every tenant three rounds, buffers mapped, used, unmapped and mapped again.
    for rnd in range(3):
        for t, vdev, drv in vms:
            src, dst = t.memory.alloc(2 * PAGE), t.memory.alloc(2 * PAGE)
            await t.memory.write(src, rng.randbytes(2 * PAGE))
            await drv.dma_map(src, 2 * PAGE)
            await drv.dma_map(dst, 2 * PAGE)
            q = drv.queues[rnd % 2]
            tickets = await q.submit(_work(rng, src, dst, 2 * PAGE), interrupt=True)
            result[t.name]["records"] += await _records(q.wait, tickets, result[t.name]["errors"], addrs[t.name])
            await drv.dma_unmap(dst, 2 * PAGE)
            if rnd < 2:
                await drv.dma_map(dst, 2 * PAGE)
                await drv.dma_unmap(dst, 2 * PAGE)
        for h, n in zip(handles, nodes):
            src = await h.map(PAGE)
            dst = await h.map(PAGE)
            await h.write(src, rng.randbytes(PAGE))
            tickets = await h.submit(_work(rng, src, dst, PAGE))
            result[n.tenant.name]["records"] += await _records(h.wait, tickets, result[n.tenant.name]["errors"],
                                                               addrs[n.tenant.name])
            await h.unmap(dst, PAGE)

    # Isolation: container 0 on container 1's node.
    try:
        await host.open(nodes[1].path, nodes[0].tenant)
    except PermissionError as e:
        result["ctr0"]["errors"].append(str(e))
    # A fault: VM 1 writes to a page it unmapped.
    t, vdev, drv = vms[1]
    hole = t.memory.alloc(PAGE)
    await drv.dma_map(hole, PAGE)
    await drv.dma_unmap(hole, PAGE)
    tickets = await drv.queues[0].submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=hole, xfer_size=64)])
    result[t.name]["records"] += await _records(drv.queues[0].wait, tickets, result[t.name]["errors"],
                                                addrs[t.name])
    # A closed node refuses to be used again.
    await handles[1].close()
    try:
        await handles[1].submit([Descriptor(opcode=Opcode.NOOP)])
    except NodeClosed as e:
        result["ctr1"]["errors"].append(str(e))

    tenants = [t for t, _, _ in vms] + [n.tenant for n in nodes]
    reclaimed = {t.name: await hv.lazy_unpin(t) for t in tenants}    # unmapped 2000 cycles ago or more
    await bus.wait_cycles(3000)
    await hv.poll_faults()
    for t in tenants:
        reclaimed[t.name] += await hv.lazy_unpin(t)                   # the rest, old enough by now
        mem = await t.memory.read(0, t.pages * PAGE)
        # The digest leaves out the completion records' cycles and start cycles, which are timing.
        r = result[t.name]
        r.update({
            "memory": hashlib.sha256(_without_cycles(mem, addrs[t.name])).hexdigest(),
            "vectors": [v for v, _ in t.vic.log],
            "faults": [[f.reason, f.page, int(f.write)] for f in t.faults if hasattr(f, "page")],
            "irq_faults": [[f.reason, f.handle] for f in t.faults if hasattr(f, "handle")],
            "hypercalls": dict(t.hypercalls), "reclaimed": reclaimed[t.name],
            "pinned": len(await hv.pinned_pages(t)),
        })
    result["unattributed"] = [str(f) for f in hv.unattributed]
    result["counters"] = await hv.pf.counters()
    return result


def _without_cycles(mem, record_addrs):
    """``mem`` with the timing fields (cycles, start_cycle) of the completion records at
    ``record_addrs`` zeroed."""
    mem = bytearray(mem)
    for addr in record_addrs:
        for off, n in TIMING_FIELDS:
            mem[addr + off:addr + off + n] = bytes(n)
    return bytes(mem)
