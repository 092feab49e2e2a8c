"""The host stack as outsiders use it: one owner per device, clean teardown, and the API's promises.

* A destroyed tenant's domain reaches the next tenant clean: zeroed memory,
  empty bitmaps and dirty log, cleared IMS entries with nothing pending,
  ADIs disabled and unbound, and the old tenant's faults routed to it,
  never to the next.
* One driver, hypervisor, VDCM and container host per device: a second
  one of any of them is refused, so none can hand out what another owns.
* A queue whose ADI is not ENABLED refuses work with its state and error
  code instead of letting the device drop the doorbell.
* Lazy unpinning under LRU ages a page from its unmap.
* A container's node dies with it; it opens only for the container object,
  never for a name.
* The same misuse gives the same documented error; refused hypercalls are
  counted apart; ``Queue.wait`` waits for the record or the interrupt, as
  asked; the guest reads its configuration space through the trap; each
  queue is placed on an engine by a replaceable rule, and says which.
"""

import ast
import pathlib

import pytest

from siov.rtl import regmap
from siov.rtl.cmd.dsa import Opcode, Status
from siov.rtl.dma.defs import Bitmap
from siov.rtl.regmap import AdiError, AdiState
from siov.sw.diff import TIMING_COUNTERS, Recorder
from siov.sw.guest.driver import (DmaMapError, FrontendDriver, GuestDriverError, PageFaultError, QueueError,
                                  QueueFull)
from siov.sw.guest.ring import Ring
from siov.sw.hv import errors
from siov.sw.hv.containers import ContainerHost, NodeClosed
from siov.sw.hv.errors import (DeviceOwned, GuestAddressError, HypercallError, HypervisorError,
                               VirtualMmioError)
from siov.sw.hv.hypervisor import Hypervisor, TenantKind
from siov.sw.hv.pf import COUNTERS, PfDriver
from siov.sw.hv.unpin import LruUnpin
from siov.sw.hv.vdcm import PORTAL, QUEUE_CTRL, QUEUE_ENGINE, QueueControl, Vdcm, queue_register
from siov.sw.model.dsa import Descriptor
from siov.sw.platform import run_program

from hv_support import PAGE, device_state, run, vm_with_queue

ROOT = pathlib.Path(__file__).resolve().parent.parent


# -- teardown ---------------------------------------------------------------------------------------

async def _leave_traces(bus, hv, t, vdev, drv, q):
    """Give tenant ``t`` everything a teardown must clear: data in its memory, dirty pages, an
    unmap request, a queued fault, an interrupt pending behind a masked IMS entry, an ADI in ERROR."""
    buf = t.memory.alloc(4 * PAGE)
    await drv.dma_map(buf, 4 * PAGE)
    await t.memory.write(buf, b"vmA's secret" * 300)
    (fill,) = await q.submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=buf + PAGE, xfer_size=256,
                                         src_addr=0x5EC2E7)])
    await q.wait(fill)                                               # a dirty page
    await drv.dma_unmap(buf + 3 * PAGE, PAGE)                        # an unmap request
    (fault,) = await q.submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=20 * PAGE, xfer_size=8)])
    with pytest.raises(PageFaultError):
        await q.wait(fault)                                          # a fault, not drained
    await hv.pf.mask_ims(vdev.handles[0], t.pasid, mask=True)
    (irq,) = await q.submit([Descriptor(opcode=Opcode.NOOP)], interrupt=True)
    await q.wait(irq, on="record")                                   # an interrupt left pending
    assert vdev.handles[0] in bus.device.irq.pending
    await vdev.mmio_write(PORTAL * 0, 1000)                          # the ADI in ERROR
    return buf


def test_a_destroyed_tenants_domain_passes_to_the_next_clean():
    async def prog(bus, hv):
        a, va, da, qa = await vm_with_queue(hv, "vm_a", pages=32)
        await _leave_traces(bus, hv, a, va, da, qa)
        dom, adis, handles = a.domain, list(va.adis), list(va.handles)
        await hv.destroy_tenant(a)
        b = await hv.create_tenant("vm_b", TenantKind.VM, 32)
        d = bus.device
        out = {
            "same domain": b.domain == dom, "new PASID": b.pasid != a.pasid,
            "nonzero bytes": sum(x != 0 for x in await b.memory.read(0, b.pages * PAGE)),
            "bitmaps": {Bitmap(k).name: int(d.dma.bits[k, dom].sum()) for k in range(len(Bitmap))},
            "dirty log": await hv.pf.harvest(b.domain, b.pages) == bytes(8),
            "IMS entries": [list(d.irq.ims[h]) for h in handles], "pending": sorted(d.irq.pending),
            "ADIs": [(d.adi.adis[x].state, d.adi.adis[x].error, d.dma.adi[x][0]) for x in adis],
            "old faults": [(f.reason, f.page) for f in a.faults], "unattributed": hv.unattributed,
        }
        # The next tenant's device reuses the ADI and the handle: nothing of vm_a's reaches it.
        vb = await hv.vdcm.create(b)
        assert (vb.adis, vb.handles) == (adis, handles)
        drv = await FrontendDriver(vb).open()
        await drv.queues[0].open(16)
        await drv.queues[0].enable()
        (tk,) = await drv.queues[0].submit([Descriptor(opcode=Opcode.NOOP)], interrupt=True)
        await drv.queues[0].wait(tk)
        await hv.poll_faults()
        out["vm_b interrupts"], out["vm_b faults"] = len(b.vic.log), b.faults
        # What vm_a's objects still reach: nothing.
        with pytest.raises(GuestAddressError, match="released with its tenant"):
            await a.memory.read(0, 1)
        with pytest.raises(VirtualMmioError, match="released"):
            await va.mmio_read(0)
        with pytest.raises(HypercallError, match="destroyed"):
            await hv.hc_map(a, 0)
        with pytest.raises(HypervisorError, match="not a live tenant"):
            await hv.destroy_tenant(a)
        return out

    assert run(prog) == {
        "same domain": True, "new PASID": True, "nonzero bytes": 0,
        "bitmaps": {"PINNED": 0, "MAPPED": 0, "UNMAP": 0, "DIRTY": 0}, "dirty log": True,
        "IMS entries": [[0, 0, 0, 0]], "pending": [], "ADIs": [(AdiState.DISABLED, 0, False)],
        "old faults": [(0x05, 20)], "unattributed": [],
        "vm_b interrupts": 1, "vm_b faults": [],
    }


# -- one owner per device ---------------------------------------------------------------------------

def test_a_device_has_one_driver_hypervisor_vdcm_and_container_host():
    async def prog(bus, hv):
        t0, v0, d0, q0 = await vm_with_queue(hv, "vm0")
        assert PfDriver.of(bus) is hv.pf
        for make in (lambda: PfDriver(bus), lambda: Hypervisor(bus), lambda: ContainerHost(hv),
                     lambda: Vdcm(hv.pf, hv.caps, hv.hc_map, hv.hc_unmap)):
            with pytest.raises(DeviceOwned, match="already has"):
                make()
        with pytest.raises(ValueError, match="other options"):
            PfDriver.of(bus, poll_cycles=7)
        # The device's own VDCM goes on handing out what is free, and vm0's queue still works.
        t1 = await hv.create_tenant("vm1", TenantKind.VM, 16)
        v1 = await hv.vdcm.create(t1)
        buf = t0.memory.alloc(PAGE)
        await d0.dma_map(buf, PAGE)
        (tk,) = await q0.submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=buf, xfer_size=64)])
        return (v0.adis, v0.handles), (v1.adis, v1.handles), (await q0.wait(tk)).status

    assert run(prog) == (([0], [0]), ([1], [1]), Status.SUCCESS)


def test_the_hypervisors_parts_exist_after_start_and_other_buses_have_their_own_driver():
    async def prog(bus, seed):
        hv = Hypervisor(bus)
        with pytest.raises(HypervisorError, match="no VDCM before `await hv.start\\(\\)`"):
            hv.vdcm
        await hv.start()
        return isinstance(hv.vdcm, Vdcm) and isinstance(hv.containers, ContainerHost)

    assert run_program(prog) and run_program(prog)        # a fresh bus is a fresh device


# -- queues -----------------------------------------------------------------------------------------

async def _tail_beyond_ring(q):
    await q.driver.vdev.mmio_write(PORTAL * q.index, 1000)


async def _foreign_pasid(q):
    await q.post_raw(Descriptor(opcode=Opcode.NOOP, pasid=q.driver.pasid ^ 1))
    while (await q.status())[0] is not AdiState.ERROR:
        await q.driver.bus.wait_cycles(50)


async def _drained(q):
    await q.drain()


@pytest.mark.parametrize("stop, message", [
    (_tail_beyond_ring, r"queue 0 is ERROR \(error code 1, TAIL_BEYOND_RING\)"),
    (_foreign_pasid, r"queue 0 is ERROR \(error code 3, DESC_PASID\)"),
    (_drained, r"queue 0 is DISABLED: the device would drop the doorbell"),
])
def test_a_queue_that_is_not_enabled_refuses_work_and_names_its_state(stop, message):
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        await stop(q)
        before, tail = device_state(bus), q.tail
        with pytest.raises(QueueError, match=message):
            await q.submit([Descriptor(opcode=Opcode.NOOP)])
        unchanged = device_state(bus) == before and q.tail == tail
        if (await q.status())[0] is AdiState.ERROR:
            await q.recover()
        else:
            await q.enable()
        (tk,) = await q.submit([Descriptor(opcode=Opcode.NOOP)])
        return unchanged, (await q.wait(tk)).status

    assert run(prog) == (True, Status.SUCCESS)


def test_a_submit_that_meets_a_recovery_runs():
    """A task submits while another recovers the queue from an error (the scenario's
    ``forged_pasid``), in the window where the ADI is ENABLED again but the recovery has not
    yet read its state back: the submit waits for the recovery, so the ring pointers of the
    driver and of the device agree after both, and what is submitted next completes. (A
    submit that posted in that window at the driver's old tail moved the device's tail
    beyond the driver's: nothing posted after it ever ran, and its waiters timed out.)"""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        await _foreign_pasid(q)
        racing, status = [], q.status

        async def submit():
            try:
                return len(await q.submit([Descriptor(opcode=Opcode.NOOP)] * 3))
            except QueueError:
                return 0                                        # refused: nothing posted

        async def status_with_a_submit_racing():
            if not racing:                                      # recover(): ENABLE written, not read back
                racing.append(bus.spawn(submit()))
                await bus.wait_cycles(200)
            return await status()
        q.status = status_with_a_submit_racing
        await q.recover()
        q.status = status
        raced = await racing[0]
        tickets = await q.submit([Descriptor(opcode=Opcode.NOOP)] * 2)
        return raced, [(await q.wait(tk, timeout_cycles=20_000)).status for tk in tickets]

    assert run(prog) == (3, [Status.SUCCESS] * 2)


def test_queue_is_built_on_ring_and_refuses_more_than_fits():
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, ring=4)
        assert isinstance(q.ring, Ring) and q.ring.size == 4
        await hv.pf.set_eligible([])               # no engine takes anything now
        await q.submit([Descriptor(opcode=Opcode.NOOP)] * 3)
        await bus.wait_cycles(5000)
        before, memory = device_state(bus), await t.memory.read(0, t.pages * PAGE)
        with pytest.raises(QueueFull, match="queue 0: 1 descriptors, 0 entries free"):
            await q.submit([Descriptor(opcode=Opcode.NOOP)])
        return device_state(bus) == before, await t.memory.read(0, t.pages * PAGE) == memory

    assert run(prog) == (True, True)


def test_wait_on_the_record_or_on_the_interrupt():
    """With the queue's IMS entry masked the record is written and the interrupt held pending:
    a wait on the interrupt times out, a wait on the record returns it."""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        await hv.pf.mask_ims(vdev.handles[0], t.pasid, mask=True)
        (tk,) = await q.submit([Descriptor(opcode=Opcode.NOOP)], interrupt=True)
        with pytest.raises(QueueError, match="no interrupt on vector 0x40 in 3000 cycles"):
            await q.wait(tk, timeout_cycles=3000)
        rec = await q.wait(tk, on="record")
        (plain,) = await q.submit([Descriptor(opcode=Opcode.NOOP)])
        with pytest.raises(QueueError, match="asked for no interrupt"):
            await q.wait(plain, on="interrupt")
        with pytest.raises(ValueError, match="wait on one of record, interrupt"):
            await q.wait(plain, on="irq")
        await hv.pf.mask_ims(vdev.handles[0], t.pasid, mask=False)        # delivers the pending one
        await q.wait(tk, on="interrupt")
        return rec.status, [v for v, _ in t.vic.log]

    assert run(prog) == (Status.SUCCESS, [0x40])


def test_a_wait_that_cannot_complete_says_the_queue_is_in_error():
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        (tk,) = await q.submit([Descriptor(opcode=Opcode.NOOP)])
        await q.wait(tk)
        await vdev.mmio_write(PORTAL * 0, 1000)
        tk.record_addr = t.memory.alloc(PAGE)           # a record nobody will write
        with pytest.raises(QueueError, match=r"no completion in 500 cycles \(the queue is ERROR \(error code 1"):
            await q.wait(tk, timeout_cycles=500)

    run(prog)


# -- lazy unpin -------------------------------------------------------------------------------------

def test_lru_ages_a_page_from_its_unmap():
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        old, new, raw = (t.memory.alloc(PAGE) for _ in range(3))
        for buf in (old, new, raw):
            await drv.dma_map(buf, PAGE)
        await drv.dma_unmap(old, PAGE)
        await bus.wait_cycles(5000)
        await drv.dma_unmap(new, PAGE)
        await hv.pf.guest_map(vdev.adis[0], raw // PAGE, unmap=True)     # not through the VDCM
        first = await hv.lazy_unpin(t)        # 'old' is 5000 cycles old; 'raw' is first seen now
        await bus.wait_cycles(1000)
        second = await hv.lazy_unpin(t)       # 'new' and 'raw' are 1000 cycles old now
        pinned = await hv.pinned_pages(t)
        return first, second, [p in pinned for p in (old // PAGE, new // PAGE, raw // PAGE)]

    assert run(prog, unpin_policy=LruUnpin(1000)) == (1, 2, [False, False, False])


def test_lru_keeps_a_page_mapped_again():
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        buf = t.memory.alloc(PAGE)
        await drv.dma_map(buf, PAGE)
        await drv.dma_unmap(buf, PAGE)
        await bus.wait_cycles(5000)
        await drv.dma_map(buf, PAGE)          # used again: its request is gone ...
        await drv.dma_unmap(buf, PAGE)        # ... and a new one starts now
        unmapped = bus.now()
        return await hv.lazy_unpin(t), t.unmap_requested_at[buf // PAGE] - unmapped

    assert run(prog, unpin_policy=LruUnpin(1000)) == (0, 0)


# -- containers -------------------------------------------------------------------------------------

def test_a_containers_node_dies_with_it_and_its_name_is_not_its_identity():
    async def prog(bus, hv):
        host = hv.containers
        web = (await host.add_container("web", pages=16)).tenant
        handle = await host.open("/dev/siov0", web)
        buf = await handle.map(PAGE)
        await hv.destroy_tenant(web)                   # without closing the handle
        gone = "/dev/siov0" not in host.nodes
        vm = await hv.create_tenant("vm", TenantKind.VM, 16)          # takes web's domain
        await vm.memory.write(buf, b"the VM's data")
        for use in (handle.read(buf, 13), handle.write(buf, b"x"), handle.map(PAGE),
                    handle.submit([Descriptor(opcode=Opcode.NOOP)])):
            with pytest.raises(NodeClosed, match="/dev/siov0 is gone: its container was destroyed"):
                await use
        node = await host.add_container("web", pages=16)              # the same name again
        with pytest.raises(PermissionError, match="'web' may not open /dev/siov0, which belongs to 'web'"):
            await host.open(node.path, web)
        with pytest.raises(TypeError, match="not 'web'"):
            await host.open(node.path, "web")
        fresh = await host.open(node.path, node.tenant)
        return (gone, vm.domain == web.domain, node.path, await vm.memory.read(buf, 13),
                await fresh.read(0, 4))

    assert run(prog) == (True, True, "/dev/siov0", b"the VM's data", bytes(4))


# -- errors -----------------------------------------------------------------------------------------

def test_every_layer_has_one_exception_base():
    hv_errors = [getattr(errors, n) for n in errors.__all__]
    assert all(issubclass(e, HypervisorError) for e in hv_errors)
    from siov.sw.hv.config_space import ConfigWriteError
    assert issubclass(ConfigWriteError, HypervisorError)
    from siov.sw.guest import driver
    guest = [getattr(driver, n) for n in driver.__all__ if isinstance(getattr(driver, n), type)
             and issubclass(getattr(driver, n), Exception)]
    assert len(guest) >= 6 and all(issubclass(e, GuestDriverError) for e in guest)


def test_the_same_misuse_raises_the_same_error_and_refused_hypercalls_count_apart():
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, pages=16)
        accepted = dict(t.hypercalls)
        outside = 16 * PAGE
        for call in (drv.dma_map(outside, PAGE), drv.dma_map(outside - 8, 16), drv.dma_unmap(outside, PAGE),
                     drv.dma_map(-PAGE, PAGE)):
            with pytest.raises(DmaMapError, match="outside the guest's"):
                await call
        # A hypervisor that will not pin the page (out of host memory, say).
        async def refuse(tenant, gfn, count):
            raise HypercallError(f"no host memory left for {tenant.name}")
        hv.vdcm.hc_map, hc_map = refuse, hv.vdcm.hc_map
        with pytest.raises(DmaMapError, match="the hypervisor refused to pin it: no host memory left for vm0"):
            await drv.dma_map(8 * PAGE, PAGE)
        hv.vdcm.hc_map = hc_map
        for gfn, count in ((16, 1), (True, 1), (2, True), (-1, 2), (3, 0)):
            with pytest.raises(HypercallError):
                await vdev.hypercall_map(gfn, count)
        await vdev.hypercall_map(9, 2)
        return accepted, dict(t.hypercalls)

    accepted, after = run(prog)
    assert after == {**accepted, "map": accepted["map"] + 1, "refused": 5}


def test_a_guest_map_of_a_page_beyond_the_field_is_refused():
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        before = device_state(bus)
        for page in ((1 << 20) + 5, -1, True):
            with pytest.raises(VirtualMmioError, match="a page number is an integer in 0..1048575"):
                await vdev.guest_map(page)
        return device_state(bus) == before

    assert run(prog)


# -- the virtual device -----------------------------------------------------------------------------

def test_the_guest_reads_its_configuration_space_through_the_trap():
    async def prog(bus, hv):
        t = await hv.create_tenant("vm0", TenantKind.VM, 16)
        vdev = await hv.vdcm.create(t, adis=2, vectors=3)
        reads = []
        real = vdev.config.read
        vdev.config.read = lambda offset, size=4: reads.append((offset, size)) or real(offset, size)
        traps = vdev.traps
        drv = await FrontendDriver(vdev).open()
        mmio_traps = 4 + 2 * 3 + 4 * 3  # CAPS, MAX_XFER, ALIGN, NUM_VECTORS; per vector SEL and HANDLE,
        config_writes = 1 + 2           # and its MSI-X table entry; Command; MSI-X Message Control twice
        return len(drv.handles), vdev.traps - traps - mmio_traps - config_writes, len(reads)

    vectors, config_traps, config_reads = run(prog)
    assert vectors == 3 and config_reads > 0 and config_traps == config_reads


def test_a_bad_control_write_is_refused_and_changes_nothing():
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        before = device_state(bus)
        with pytest.raises(VirtualMmioError, match="control 0x10 has unknown bits"):
            await vdev.mmio_write(vdev.ctrl + queue_register(0, QUEUE_CTRL), 0x10)
        return device_state(bus) == before, [QueueControl(b).adi_command for b in (1, 2, 4, 8)]

    unchanged, commands = run(prog)
    assert unchanged and commands == [regmap.CMD_ADI_CMD_ENABLE_MASK, regmap.CMD_ADI_CMD_DRAIN_MASK,
                                      regmap.CMD_ADI_CMD_ABORT_MASK, regmap.CMD_ADI_CMD_RESET_ERROR_MASK]


def test_queues_are_spread_over_the_engines_and_report_theirs():
    async def prog(bus, hv):
        placed = {}
        for name, adis in (("vm0", 2), ("vm1", 1), ("vm2", 1), ("vm3", 3)):
            t, vdev, drv, q = await vm_with_queue(hv, name, adis=adis, pages=16)
            for k in range(1, adis):
                await drv.queues[k].open(8)
                await drv.queues[k].enable()
            placed[name] = ([await qq.engine() for qq in drv.queues],
                            [bus.device.adi.adis[a].engine for a in vdev.adis])
        with pytest.raises(VirtualMmioError, match="queue 0 engine is read-only"):
            await vdev.mmio_write(vdev.ctrl + queue_register(0, QUEUE_ENGINE), 0)
        hv.vdcm.placement = lambda count, load: [1] * count         # the scheduler's rule
        t = await hv.create_tenant("vm4", TenantKind.VM, 16)
        placed["vm4"] = (await hv.vdcm.create(t, adis=2)).engines
        hv.vdcm.placement = lambda count, load: [2] * count         # an engine the device lacks
        with pytest.raises(ValueError, match=r"gave \[2\] for 1 queues; it must give one engine in 0..1"):
            await hv.vdcm.create(await hv.create_tenant("vm5", TenantKind.VM, 16))
        return placed

    assert run(prog) == {
        "vm0": ([0, 1], [0, 1]),       # one VM's queues side by side
        "vm1": ([0], [0]),             # then the least loaded engine, lowest first
        "vm2": ([1], [1]),
        "vm3": ([0, 1, 0], [0, 1, 0]),
        "vm4": [1, 1],
    }


# -- the harness ------------------------------------------------------------------------------------

def test_the_recorder_reads_what_the_hypervisor_routed():
    """The hypervisor drains the fault queues; the record shows the same faults the tenant has."""
    async def prog(bus, hv):
        rec = Recorder(hv)
        t, vdev, drv, q = await vm_with_queue(hv)
        rec.tenant(t)
        (tk,) = await q.submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=40 * PAGE, xfer_size=8)])
        with pytest.raises(PageFaultError):
            await q.wait(tk)
        await hv.poll_faults()
        record = await rec.finish()
        return [(f.reason, f.page) for f in t.faults], record["tenants"]["vm0"]["dma_faults"]

    routed, recorded = run(prog)
    assert routed == [(0x05, 40)] and [(f[1], f[3]) for f in recorded] == routed


def test_timing_dependent_counters_are_listed_in_one_place():
    assert set(TIMING_COUNTERS) <= set(COUNTERS) and "dma_allowed" in TIMING_COUNTERS

    async def prog(bus, hv):
        with pytest.raises(ValueError, match=r"\['dma_blocked'\] are not timing-dependent counters"):
            Recorder(hv, timing_counters=("dma_blocked",))

    run(prog)


def _imports(path):
    """Modules of the siov package that ``path`` imports anywhere (module level or in a function)."""
    module = ".".join(("siov",) + path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            target = f"{base}.{node.module}" if node.module else base
            out |= {target} | {f"{target}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module.startswith("siov"):
            out.add(node.module)
    return module, out


def test_the_host_stack_has_no_import_cycles():
    """sw/hv, sw/guest, sw/diff.py and sw/platform/__init__.py import in one direction only."""
    files = [*(ROOT / "sw" / "hv").glob("*.py"), *(ROOT / "sw" / "guest").glob("*.py"),
             ROOT / "sw" / "diff.py", ROOT / "sw" / "platform" / "__init__.py"]
    graph = dict(_imports(p) for p in files)
    graph = {m: {i for i in deps if i in graph and i != m} for m, deps in graph.items()}

    def reaches(a, b, seen=()):
        return any(n == b or (n not in seen and reaches(n, b, seen + (n,))) for n in graph[a])
    cycles = sorted(m for m in graph if reaches(m, m))
    assert cycles == []
