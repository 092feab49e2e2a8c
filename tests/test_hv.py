"""The hypervisor, the VDCM, the guest frontend driver and container nodes, on the model backend.

Every bad input a guest or container can give gets a clear error, and a
snapshot of the whole device model (every ADI, the four bitmaps of every
domain, the ADI table, every IMS entry, the counters and the other tenant's
memory) shows that nothing changed.
"""

import logging
import types

import pytest

from siov.rtl.cmd.dsa import Flag, Opcode, Status
from siov.rtl.dma.defs import GuestResult
from siov.sw.guest.driver import (STATUS_ERRORS, DescriptorError, DmaMapError, FrontendDriver, PageFaultError,
                                  QueueError, _message)
from siov.sw.hv.config_space import ReadOnlyConfigWrite
from siov.sw.hv.containers import NodeClosed
from siov.sw.hv.hypervisor import HypercallError, TenantKind
from siov.sw.hv.unpin import LruUnpin, NeverUnpin, ThresholdUnpin
from siov.sw.hv.vdcm import AdiInUse, VirtualMmioError
from siov.sw.model.adi import page_address
from siov.sw.model.dsa import CompletionRecord, Descriptor
from hv_support import PAGE, device_state, memory_of, run, vm_with_queue

def test_vm_end_to_end_with_interrupts_and_no_traps_per_descriptor():
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, adis=2)
        assert (drv.num_queues, drv.ring_min, drv.ring_max) == (2, 2, 4096)
        assert (drv.max_xfer, drv.cr_align, drv.fill_align) == (1 << 20, 32, 8) and len(drv.handles) == 2
        src, dst = t.memory.alloc(2 * PAGE), t.memory.alloc(2 * PAGE)
        await drv.dma_map(src, 2 * PAGE)
        await drv.dma_map(dst, 2 * PAGE)
        hypercalls = drv.stats["map_hypercalls"]
        await t.memory.write(src, bytes(range(256)) * 32)
        traps = vdev.traps
        tickets = await q.submit([Descriptor(opcode=Opcode.MEMMOVE, src_addr=src + 5, dst_addr=dst, xfer_size=5000),
                                  Descriptor(opcode=Opcode.MEMFILL, dst_addr=dst + 6000, xfer_size=64,
                                             src_addr=0x1122334455667788)], interrupt=True)
        recs = [await q.wait(tk) for tk in tickets]
        assert vdev.traps == traps                        # the fast path alone
        assert [r.status for r in recs] == [Status.SUCCESS.value] * 2
        assert await t.memory.read(dst, 5000) == (bytes(range(256)) * 32)[5:5005]
        assert await t.memory.read(dst + 6000, 8) == (0x1122334455667788).to_bytes(8, "little")
        assert [v for v, _ in t.vic.log] == [vdev.vectors[0]] * 2
        # Unmap and map again: the pages are still pinned, so no hypercall.
        await drv.dma_unmap(src, 2 * PAGE)
        await drv.dma_map(src, 2 * PAGE)
        assert drv.stats["map_hypercalls"] == hypercalls
        await q.drain()
        assert await q.status() == (0, 0)
        return hypercalls

    assert run(prog) == 1 + 1 + 2 + 2       # ring page, record page, two 2-page buffers: one call each


@pytest.mark.parametrize("case, error, text", [
    ("bad_opcode", DescriptorError, "does not implement the descriptor's opcode"),
    ("bad_flags", DescriptorError, "invalid or reserved flags 0x100000"),
    ("size", DescriptorError, "transfer size is zero"),
    ("align", DescriptorError, "memory fill destination: 8 bytes"),
    ("handle", DescriptorError, "interrupt handle is beyond"),
    ("read_fault", PageFaultError, "page fault on a read at device address 0x3f000"),
    ("write_fault", PageFaultError, "page fault on a write at device address 0x3f000"),
    ("bus_error", DescriptorError, "bus error after 0 bytes"),
    ("wait_timeout", DescriptorError, r"WAIT's condition \(memory & mask\) == value did not hold"),
])
def test_every_completion_status_is_an_error_that_says_what_happened(case, error, text):
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        buf = t.memory.alloc(PAGE)
        await drv.dma_map(buf, PAGE)
        unmapped = 63 * PAGE
        d = Descriptor(opcode=Opcode.MEMMOVE, src_addr=buf, dst_addr=buf + 2048, xfer_size=64)
        if case == "bad_opcode":
            d.opcode = 0x7E
        elif case == "bad_flags":
            d.flags = 1 << 20
        elif case == "size":
            d.xfer_size = 0
        elif case == "align":
            d.opcode, d.dst_addr = Opcode.MEMFILL, buf + 4
        elif case == "handle":
            d.flags, d.int_handle = Flag.RCI, 0xFFFF      # a handle beyond the table
        elif case == "read_fault":
            d.src_addr = unmapped
        elif case == "write_fault":
            d.dst_addr = unmapped
        elif case == "bus_error":
            bus.device.engine.bus_errors.add(t.memory.host(buf), 64, write=False)
        elif case == "wait_timeout":       # a semaphore nobody signals: ENG.WAIT_TIMEOUT (2**20 cycles) ends it
            d = Descriptor(opcode=Opcode.WAIT, sem_addr=buf, sem_value=1, sem_mask=1)
        (ticket,) = await q.submit([d])
        with pytest.raises(error, match=text) as info:
            await q.wait(ticket, timeout_cycles=4 << 20, poll_cycles=1 << 14)
        return info.value.record

    rec = run(prog)
    if case == "write_fault":
        assert rec.status_write == 1


def test_every_status_has_a_message():
    """No status reaches the guest as a bare number: each member of ``Status`` has its own
    explanation, and each one but SUCCESS its error class."""
    drv = types.SimpleNamespace(max_xfer=1 << 20, cr_align=32, fill_align=8)
    rec = CompletionRecord(fault_addr=0x3F000, bytes_completed=64)
    messages = {s: _message(s, rec, drv) for s in Status}
    assert len(set(messages.values())) == len(Status)
    assert not any(m.startswith("status") or str(int(s)) == m for s, m in messages.items())
    assert set(STATUS_ERRORS) == set(Status) - {Status.SUCCESS}


def test_release_leaves_nothing_behind_and_assigned_adis_are_refused():
    async def prog(bus, hv):
        t = await hv.create_tenant("vm0", TenantKind.VM, 16)
        before = device_state(bus)
        vdev = await hv.vdcm.create(t, adis=2, adi_indices=[3, 5])
        with pytest.raises(AdiInUse, match="ADI 5 is assigned to vm0"):
            await hv.vdcm.create(t, adi_indices=[5])
        drv = await FrontendDriver(vdev).open()
        await drv.queues[1].open(8)
        await drv.queues[1].enable()
        await hv.vdcm.release(vdev)
        after = device_state(bus)
        with pytest.raises(VirtualMmioError, match="released"):
            await vdev.mmio_read(0)
        return before, after, [(a.state, a.error) for a in bus.device.adi.adis]

    before, after, adis = run(prog)
    # The ring and record pages stay pinned and mapped: they belong to the guest's memory, not to
    # the virtual device. The ADIs are DISABLED without error, the ADI table holds no valid entry
    # and the IMS entries are empty again, as before. (An ADI keeps its last ring registers until
    # its next ENABLE, as the hardware does; DISABLED and unbound, nothing can use them.)
    assert (before[2], before[5], before[6]) == (after[2], after[5], after[6])
    assert adis == [(0, 0)] * 16


def test_bad_input_gets_an_error_and_changes_nothing():
    async def prog(bus, hv):
        a, va, da, qa = await vm_with_queue(hv, "vm_a", pages=32)
        b, vb, db, qb = await vm_with_queue(hv, "vm_b", pages=32)
        buf = a.memory.alloc(PAGE)
        await da.dma_map(buf, PAGE)
        await db.dma_map(b.memory.alloc(PAGE), PAGE)
        await b.memory.write(0x5000, b"other tenant's data")
        cases = [
            (va.hypercall_map(32), HypercallError, "not all inside its 32 pages"),          # outside the guest
            (va.hypercall_map(32 + 5), HypercallError, "not all inside"),                    # another guest's
            (va.hypercall_map(3, 0), HypercallError, "count must be positive"),
            (va.hypercall_map(4, -1), HypercallError, "count must be positive"),
            (va.hypercall_map((1 << 64) - 1, 2), HypercallError, "not all inside"),          # wraps
            (va.hypercall_unmap(-3, 2), HypercallError, "not all inside"),
            (da.dma_unmap(20 * PAGE, PAGE), DmaMapError, "NOT_MAPPED"),                       # never mapped
            (va.mmio_write(0x4, 1), VirtualMmioError, "read-only"),                           # HEAD word
            (va.mmio_write(va.ctrl + 0x0, 7), VirtualMmioError, "read-only"),                 # CAPS
            (va.mmio_write(va.ctrl + 0x444, 7), VirtualMmioError, "no register"),
        ]
        results = []
        for coro, error, text in cases:
            state, mem_b = device_state(bus), await memory_of(b)
            with pytest.raises(error, match=text):
                await coro
            results.append((state == device_state(bus), mem_b == await memory_of(b)))
        # A double unmap: the first is fine, the second is refused and changes nothing.
        await da.dma_unmap(buf, PAGE)
        state = device_state(bus)
        with pytest.raises(DmaMapError, match="it was not mapped"):
            await da.dma_unmap(buf, PAGE)
        results.append((state == device_state(bus), True))
        # Read-only configuration space.
        state, cfg = device_state(bus), bytes(va.config.read(o, 1) for o in range(4096))
        with pytest.raises(ReadOnlyConfigWrite):
            await va.config_write(0, 0xFFFF_FFFF)      # vendor and device IDs
        results.append((state == device_state(bus), cfg == bytes(va.config.read(o, 1) for o in range(4096))))
        # Rings too small, too large or not a power of two, from the driver and from the device's
        # side: the virtual device refuses the RING_SIZE write itself and keeps the size it had.
        for size in (0, 1, 3, 12, 5000, 8192):
            state = device_state(bus)
            with pytest.raises(QueueError, match="power of two from 2 to 4096"):
                await da.queues[0].__class__(da, 0).open(size)
            with pytest.raises(VirtualMmioError, match=f"ring of {size} entries; the device takes a power of two"):
                await va.mmio_write(va.ctrl + 0x108, size)
            results.append((state == device_state(bus), await va.mmio_read(va.ctrl + 0x108) == 16))
        return results

    assert run(prog) == [(True, True)] * 18


def test_lazy_unpin_policies():
    async def workload(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, pages=64)
        bufs = [t.memory.alloc(PAGE) for _ in range(8)]
        for b in bufs:
            await drv.dma_map(b, PAGE)
        pinned_all = len(await hv.pinned_pages(t))
        for b in bufs[:6]:
            await drv.dma_unmap(b, PAGE)
        first = await hv.lazy_unpin(t)
        await bus.wait_cycles(10_000)
        await drv.dma_map(bufs[0], PAGE)          # used again: loses its unmap request
        second = await hv.lazy_unpin(t)
        return pinned_all, first, second, len(await hv.pinned_pages(t))

    assert run(workload, unpin_policy=NeverUnpin()) == (10, 0, 0, 10)
    assert run(workload, unpin_policy=ThresholdUnpin(5)) == (10, 6, 0, 4 + 1)
    assert run(workload, unpin_policy=ThresholdUnpin(20)) == (10, 0, 0, 10)
    # LRU of 5000 cycles: nothing is old enough at first; later the five still unmapped go.
    assert run(workload, unpin_policy=LruUnpin(5000)) == (10, 0, 5, 5)


def test_faults_reach_their_owner_and_strays_are_logged(caplog):
    async def prog(bus, hv):
        a, va, da, qa = await vm_with_queue(hv, "vm_a")
        b, vb, db, qb = await vm_with_queue(hv, "vm_b")
        (tk,) = await qa.submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=40 * PAGE, xfer_size=8)])
        with pytest.raises(PageFaultError):
            await qa.wait(tk)
        # A stray: an ADI bound to a PASID no tenant has.
        await hv.pf.enable_adi(15, 0, 4, 0x7777, 0)
        await bus.write(page_address(15), 1)
        await bus.wait_cycles(500)
        with caplog.at_level(logging.WARNING, logger="siov.hv"):
            await hv.poll_faults()
        return [(f.reason, f.page, f.write) for f in a.faults], b.faults, [f.pasid for f in hv.unattributed]

    fa, fb, stray = run(prog)
    assert fa == [(0x05, 40, True)] and fb == [] and stray == [0x7777]
    assert "fault naming no tenant's PASID" in caplog.text


def test_container_nodes_are_private():
    async def prog(bus, hv):
        host = hv.containers
        na = await host.add_container("ctr_a", pages=32)
        nb = await host.add_container("ctr_b", pages=32)
        assert (na.path, nb.path) == ("/dev/siov0", "/dev/siov1")
        ha = await host.open(na.path, na.tenant)
        buf = await ha.map(2 * PAGE)
        await ha.write(buf, b"x" * 100)
        (tk,) = await ha.submit([Descriptor(opcode=Opcode.MEMMOVE, src_addr=buf, dst_addr=buf + PAGE, xfer_size=100)])
        rec = await ha.wait(tk)
        assert rec.status == Status.SUCCESS.value and await ha.read(buf + PAGE, 100) == b"x" * 100
        state, mem_b = device_state(bus), await memory_of(nb.tenant)
        with pytest.raises(PermissionError, match="'ctr_a' may not open /dev/siov1, which belongs to 'ctr_b'"):
            await host.open(nb.path, na.tenant)
        with pytest.raises(TypeError, match="takes the container's Tenant, not 'ctr_b'"):
            await host.open(nb.path, "ctr_b")                 # a name is not an identity
        assert state == device_state(bus) and mem_b == await memory_of(nb.tenant)
        with pytest.raises(FileNotFoundError):
            await host.open("/dev/siov9", na.tenant)
        await ha.close()
        state = device_state(bus)
        for use in (ha.map(PAGE), ha.submit([Descriptor(opcode=Opcode.NOOP)]), ha.wait(tk), ha.close()):
            with pytest.raises(NodeClosed, match="/dev/siov0 was closed"):
                await use
        assert state == device_state(bus)
        return [v for v, _ in na.tenant.vic.log], nb.tenant.vic.log

    vectors_a, log_b = run(prog)
    assert vectors_a == [0x40] and log_b == []


def test_concurrent_guest_maps_do_not_read_each_others_status():
    """The guest map's status word is shared by every guest: two tenants mapping at once must
    each see their own answer (PfDriver holds its lock across the write and the read)."""
    async def prog(bus, hv):
        a, va, da, qa = await vm_with_queue(hv, "vm_a", pages=64)
        b, vb, db, qb = await vm_with_queue(hv, "vm_b", pages=64)
        bufs_a = [a.memory.alloc(PAGE) for _ in range(20)]
        bufs_b = [b.memory.alloc(PAGE) for _ in range(20)]
        await hv.hc_map(a, 0, a.pages)        # A's pages are all pinned: its maps succeed at once
        before = da.stats["map_hypercalls"]

        async def map_all(drv, bufs):
            for buf in bufs:
                await drv.dma_map(buf, PAGE)
        ta, tb = bus.spawn(map_all(da, bufs_a)), bus.spawn(map_all(db, bufs_b))
        await ta
        await tb
        statuses = []
        for q, buf in ((qa, bufs_a[-1]), (qb, bufs_b[-1])):
            (tk,) = await q.submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=buf, xfer_size=64)])
            statuses.append((await q.wait(tk)).status)
        return da.stats["map_hypercalls"] - before, db.stats["map_hypercalls"], statuses

    assert run(prog) == (0, 2 + 20, [Status.SUCCESS.value] * 2)
