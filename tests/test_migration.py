"""A virtual device's VFIO migration v2 states (sw/hv/migration.py), on the model backend.

The expected paths below are written from the uAPI's documentation
(include/uapi/linux/vfio.h: the FSM arcs, "select the shortest path", "the
path cannot have saving group states as interior arcs", STOP_COPY to
PRE_COPY refused, ERROR never requested) and the combination paths that
drivers/vfio/vfio_main.c lists above vfio_mig_get_next_state; not from the
code under test.
"""

import pytest

from siov.rtl.cmd.dsa import Opcode
from siov.sw.hv import config_space as pci
from siov.sw.hv.migration import (MigrationArcRefused, MigrationError, MigrationState, decode_records,
                                  encode_records, path)
from siov.sw.model.dsa import Descriptor
from hv_support import PAGE, copy_setup, run, vm_with_queue

S = MigrationState

#: from > to: the states stepped through, "" for none; "refused" for what the uAPI refuses.
EXPECTED = {
    # the arcs themselves
    "RUNNING>RUNNING_P2P": "RUNNING_P2P", "RUNNING>PRE_COPY": "PRE_COPY",
    "RUNNING_P2P>RUNNING": "RUNNING", "RUNNING_P2P>STOP": "STOP", "RUNNING_P2P>PRE_COPY_P2P": "PRE_COPY_P2P",
    "STOP>RUNNING_P2P": "RUNNING_P2P", "STOP>STOP_COPY": "STOP_COPY", "STOP>RESUMING": "RESUMING",
    "STOP_COPY>STOP": "STOP", "RESUMING>STOP": "STOP",
    "PRE_COPY>RUNNING": "RUNNING", "PRE_COPY>PRE_COPY_P2P": "PRE_COPY_P2P",
    "PRE_COPY_P2P>PRE_COPY": "PRE_COPY", "PRE_COPY_P2P>RUNNING_P2P": "RUNNING_P2P",
    "PRE_COPY_P2P>STOP_COPY": "STOP_COPY",
    # the combinations vfio_main.c lists
    "PRE_COPY>STOP_COPY": "PRE_COPY_P2P STOP_COPY",
    "PRE_COPY>RUNNING_P2P": "RUNNING RUNNING_P2P",
    "PRE_COPY>STOP": "RUNNING RUNNING_P2P STOP",
    "PRE_COPY>RESUMING": "RUNNING RUNNING_P2P STOP RESUMING",
    "PRE_COPY_P2P>RUNNING": "RUNNING_P2P RUNNING",
    "PRE_COPY_P2P>STOP": "RUNNING_P2P STOP",
    "PRE_COPY_P2P>RESUMING": "RUNNING_P2P STOP RESUMING",
    "RESUMING>RUNNING_P2P": "STOP RUNNING_P2P",
    "RESUMING>PRE_COPY_P2P": "STOP RUNNING_P2P PRE_COPY_P2P",
    "RESUMING>RUNNING": "STOP RUNNING_P2P RUNNING",
    "RESUMING>PRE_COPY": "STOP RUNNING_P2P RUNNING PRE_COPY",
    "RESUMING>STOP_COPY": "STOP STOP_COPY",
    "RUNNING>PRE_COPY_P2P": "RUNNING_P2P PRE_COPY_P2P",
    "RUNNING>STOP": "RUNNING_P2P STOP",
    "RUNNING>RESUMING": "RUNNING_P2P STOP RESUMING",
    "RUNNING>STOP_COPY": "RUNNING_P2P STOP STOP_COPY",
    "RUNNING_P2P>PRE_COPY": "RUNNING PRE_COPY",
    "RUNNING_P2P>RESUMING": "STOP RESUMING",
    "RUNNING_P2P>STOP_COPY": "STOP STOP_COPY",
    "STOP>PRE_COPY_P2P": "RUNNING_P2P PRE_COPY_P2P",
    "STOP>RUNNING": "RUNNING_P2P RUNNING",
    "STOP>PRE_COPY": "RUNNING_P2P RUNNING PRE_COPY",
    "STOP_COPY>RESUMING": "STOP RESUMING",
    "STOP_COPY>RUNNING_P2P": "STOP RUNNING_P2P",
    "STOP_COPY>RUNNING": "STOP RUNNING_P2P RUNNING",
    # refused
    "STOP_COPY>PRE_COPY": "refused", "STOP_COPY>PRE_COPY_P2P": "refused",
}
for _s in S:
    EXPECTED[f"{_s.name}>ERROR"] = "refused"
    if _s is not S.ERROR:
        EXPECTED[f"ERROR>{_s.name}"] = "refused"
        EXPECTED[f"{_s.name}>{_s.name}"] = ""

PAIRS = [(a, b) for a in S for b in S]


def test_the_expected_table_covers_all_64_pairs():
    assert len(PAIRS) == 64 and set(EXPECTED) == {f"{a.name}>{b.name}" for a, b in PAIRS}


@pytest.mark.parametrize("cur,new", PAIRS, ids=[f"{a.name}>{b.name}" for a, b in PAIRS])
def test_path_follows_the_uapi(cur, new):
    want = EXPECTED[f"{cur.name}>{new.name}"]
    if want == "refused":
        with pytest.raises(MigrationArcRefused, match=f"{cur.name} -> {new.name} refused"):
            path(cur, new)
    else:
        assert [s.name for s in path(cur, new)] == want.split()


class Codec:
    """A device-state codec that records what it saved and restored (the real one is
    sw/hv/devstate.py's); ``refuse`` makes restore raise before applying anything."""

    def __init__(self, fail_save=False, refuse=False):
        self.fail_save, self.refuse = fail_save, refuse
        self.restored = []

    async def save(self, vdev):
        if self.fail_save:
            raise RuntimeError("save failed")
        return b"state of " + vdev.tenant.name.encode()

    async def restore(self, vdev, data):
        if self.refuse:
            raise ValueError("incompatible Device")
        self.restored.append(data)


def _device_state(vdev):
    pf = vdev.vdcm.pf
    return vdev.migration.state, pf.held(), tuple(vdev._ims)


def test_all_64_transitions_on_a_device():
    """Every (from, to) pair on a live device: the arcs it takes are the expected ones, a
    refused request raises and leaves the state, the eligibility holds and the IMS entries as
    they were, and after each transition the device is held exactly in the stopped states."""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, pages=4)
        m = vdev.migration
        m.codec = Codec()
        out = {}
        for cur, new in PAIRS:
            await m.reset()
            if cur is S.ERROR:
                m.codec = Codec(fail_save=True)
                with pytest.raises(RuntimeError):
                    await m.set_state(S.STOP_COPY)
                m.codec = Codec()
            else:
                await m.set_state(cur)
                if cur is S.RESUMING:
                    m.write_data(encode_records([], b"x"))
            assert m.state is cur
            before, arcs = _device_state(vdev), len(m.history)
            try:
                steps = await m.set_state(new)
            except MigrationArcRefused as e:
                out[cur, new] = ("refused", before == _device_state(vdev), len(m.history) == arcs, str(e))
                continue
            held = bool(hv.pf.held() >> vdev.adis[0] & 1)
            out[cur, new] = (" ".join(s.name for s in steps), m.state, held,
                             [b for _, b in m.history[arcs:]] == list(steps))
        return out

    out = run(prog)
    for (cur, new), got in out.items():
        want = EXPECTED[f"{cur.name}>{new.name}"]
        if want == "refused":
            assert got[:3] == ("refused", True, True), (cur, new, got)
        else:
            assert got == (want, new, new in (S.STOP, S.STOP_COPY, S.RESUMING), True), (cur, new, got)


def _move(src, dst, n):
    return Descriptor(opcode=Opcode.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=n)



def test_stop_means_no_dma_and_no_interrupt_while_a_neighbour_runs():
    """vfio.h STOP: no interrupts, no DMA, while MSI-X and the configuration space are answered.
    A stopped VM's posted work stays posted and its neighbour's completes; an interrupt held
    pending in a masked vector stays pending when the guest unmasks it during STOP. RUNNING
    takes the stopped VM's work up where it was, and every interrupt arrives: nothing is lost."""
    async def prog(bus, hv):
        t0, vdev0, drv0, q0 = await vm_with_queue(hv, "vm0", adis=2, pages=64)
        t1, vdev1, drv1, q1 = await vm_with_queue(hv, "vm1", pages=64)
        c = vdev0.config
        vector1 = c.msix_table_offset + pci.PCI_MSIX_ENTRY_SIZE + pci.PCI_MSIX_ENTRY_VECTOR_CTRL
        q0b = drv0.queues[1]
        await q0b.open(16)
        await q0b.enable()
        await vdev0.mmio_write(vector1, 1)                          # the guest masks vector 1 ...
        (pending,) = await q0b.submit([Descriptor(opcode=Opcode.NOOP)], interrupt=True)
        await q0b.wait(pending, on="record")                        # ... so its interrupt is held pending
        src0, dst0 = await copy_setup(t0, drv0, 16 * PAGE)
        src1, dst1 = await copy_setup(t1, drv1, 4 * PAGE)
        tickets0 = await q0.submit([_move(src0 + 4 * PAGE * k, dst0 + 4 * PAGE * k, 4 * PAGE) for k in range(4)],
                                   interrupt=True)
        await bus.wait_cycles(300)                                  # the first copy is running
        await vdev0.migration.set_state(S.STOP)
        at_stop = (await t0.memory.read(dst0, 16 * PAGE), len(t0.vic.log), await hv.pf.ring_pointers(vdev0.adis[0]))
        # Configuration space and MSI-X are answered; the guest's unmask delivers nothing yet.
        answered = (vdev0.config_read(pci.PCI_COMMAND, 2), await vdev0.mmio_read(c.msix_table_offset + 8),
                    await vdev0.mmio_read(c.msix_pba_offset))
        await vdev0.mmio_write(vector1, 0)
        tickets1 = await q1.submit([_move(src1, dst1, 4 * PAGE)], interrupt=True)
        for tk in tickets1:
            await q1.wait(tk)
        await bus.wait_cycles(100_000)
        during = (await t0.memory.read(dst0, 16 * PAGE), len(t0.vic.log), await hv.pf.ring_pointers(vdev0.adis[0]))
        neighbour = await t1.memory.read(dst1, 4 * PAGE) == await t1.memory.read(src1, 4 * PAGE)
        await vdev0.migration.set_state(S.RUNNING)
        for tk in tickets0:
            await q0.wait(tk)
        await q0b.wait(pending)
        done = await t0.memory.read(dst0, 16 * PAGE) == await t0.memory.read(src0, 16 * PAGE)
        return at_stop, during, answered, neighbour, done, len(t0.vic.log), hv.pf.held()

    at_stop, during, answered, neighbour, done, irqs, held = run(prog)
    assert during == at_stop                                      # no DMA, no interrupt, no descriptor taken
    assert at_stop[0][:4 * PAGE] != bytes(4 * PAGE)               # the copy in flight finished before STOP returned
    assert at_stop[0][4 * PAGE:] == bytes(12 * PAGE)
    assert at_stop[2][0] != at_stop[2][1]                         # work still posted
    # PBA: vector 1's held interrupt, and vector 0's from the copy that finished while STOP masked it
    assert answered[0] & pci.PCI_COMMAND_MASTER and answered[1] != 0xFFFF_FFFF and answered[2] == 0b11
    assert neighbour
    assert done and irqs == 5 and held == 0


def test_precopy_info_from_the_dirty_log():
    """VFIO_MIG_GET_PRECOPY_INFO: initial_bytes starts at the guest window and falls as it is
    read; dirty_bytes counts the pages the device wrote since they were read, read without
    clearing (asking twice gives the same), and a read of the data clears them."""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, pages=16)
        src, dst = await copy_setup(t, drv, 3 * PAGE)
        m = vdev.migration
        m.codec = Codec()
        with pytest.raises(MigrationError, match="PRE_COPY states only"):
            await m.precopy_info()
        await m.set_state(S.PRE_COPY)
        infos = [await m.precopy_info()]
        first = await m.read_data(max_pages=10)
        infos.append(await m.precopy_info())
        rest = await m.read_data()
        infos.append(await m.precopy_info())
        (tk,) = await q.submit([_move(src, dst, 3 * PAGE)])
        await q.wait(tk)
        infos += [await m.precopy_info(), await m.precopy_info()]
        dirty = await m.read_data()
        infos.append(await m.precopy_info())
        await m.set_state(S.STOP_COPY)
        final = await m.read_data()
        end = await m.read_data()
        await m.set_state(S.RUNNING)
        return (infos, len(decode_records(first)[0]), len(decode_records(rest)[0]), decode_records(dirty)[0],
                decode_records(final), end, t.memory.pages_of(dst, 3 * PAGE), t.memory.pages_of(q.records, 32))

    infos, n_first, n_rest, dirty, final, end, dst_pages, rec_pages = run(prog)
    assert [(i.initial_bytes, i.dirty_bytes) for i in infos] == [
        (16 * PAGE, 0), (6 * PAGE, 0), (0, 0), (0, 4 * PAGE), (0, 4 * PAGE), (0, 0)]
    assert (n_first, n_rest) == (10, 6)
    assert set(dirty) == set(dst_pages) | set(rec_pages)       # the copy's pages and its record's
    assert final == ({}, b"state of vm0") and end == b""


def test_stop_copy_to_resuming_moves_memory_and_device_state():
    """STOP_COPY's stream restores on another device through RESUMING; a stream the codec
    refuses, or a truncated one, leaves the destination in RESUMING with nothing written."""
    async def prog(bus, hv):
        t0, vdev0, drv0, q0 = await vm_with_queue(hv, "src", pages=8)
        t1, vdev1, drv1, q1 = await vm_with_queue(hv, "dst", pages=8)
        await t0.memory.write(5 * PAGE, b"guest bytes")
        vdev0.migration.codec = Codec()
        codec1 = vdev1.migration.codec = Codec(refuse=True)
        await vdev0.migration.set_state(S.STOP_COPY)
        stream = await vdev0.migration.read_data()
        before = await t1.memory.read(0, 8 * PAGE)
        m1 = vdev1.migration
        await m1.set_state(S.RESUMING)
        m1.write_data(stream[:-3])
        with pytest.raises(MigrationError, match="truncated"):
            await m1.set_state(S.RUNNING)
        truncated = (m1.state, await t1.memory.read(0, 8 * PAGE) == before)
        await m1.reset()
        await m1.set_state(S.RESUMING)
        m1.write_data(stream)
        with pytest.raises(MigrationError, match="incompatible Device"):
            await m1.set_state(S.RUNNING)
        refused = (m1.state, await t1.memory.read(0, 8 * PAGE) == before)
        codec1.refuse = False
        await m1.set_state(S.RUNNING)
        return truncated, refused, codec1.restored, await t1.memory.read(0, 8 * PAGE) == await t0.memory.read(0, 8 * PAGE)

    truncated, refused, restored, same = run(prog)
    assert truncated == (S.RESUMING, True) and refused == (S.RESUMING, True)
    assert restored == [b"state of src"] and same


def test_a_failed_arc_enters_error_and_only_reset_leaves_it():
    """vfio.h: an arc that fails may leave the device in ERROR; ERROR is left by
    VFIO_DEVICE_RESET only, back to RUNNING, and the device then runs."""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, pages=8)
        m = vdev.migration
        m.codec = Codec(fail_save=True)
        with pytest.raises(RuntimeError, match="save failed"):
            await m.set_state(S.STOP_COPY)
        state = m.state
        with pytest.raises(MigrationArcRefused, match="only a reset"):
            await m.set_state(S.RUNNING)
        await m.reset()
        (tk,) = await q.submit([Descriptor(opcode=Opcode.NOOP)], interrupt=True)
        rec = await q.wait(tk)
        return state, m.state, rec.status

    assert run(prog) == (S.ERROR, S.RUNNING, 1)


def test_precopy_info_counts_the_vmm_dirty_pages_and_read_data_sends_them():
    """VFIO_MIG_GET_PRECOPY_INFO's dirty_bytes is what the session has to send beyond the
    initial data: here the pages the device's log names and those the VMM's own log
    (``cpu_dirty``) names. Asking does not lose the VMM's pages: the next read sends them."""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, pages=16)
        m = vdev.migration
        m.codec = Codec()
        cpu = [set()]

        async def cpu_dirty():
            pages, cpu[0] = cpu[0], set()
            return pages
        m.cpu_dirty = cpu_dirty
        await m.set_state(S.PRE_COPY)
        await m.read_data()
        cpu[0] = {3, 7}                                   # the guest CPU wrote two pages
        infos = [await m.precopy_info(), await m.precopy_info()]
        sent = decode_records(await m.read_data())[0]
        infos.append(await m.precopy_info())
        await m.set_state(S.RUNNING)
        return [(i.initial_bytes, i.dirty_bytes) for i in infos], sorted(sent)

    infos, sent = run(prog)
    assert infos == [(0, 2 * PAGE), (0, 2 * PAGE), (0, 0)]
    assert sent == [3, 7]


def test_a_held_interrupt_still_masked_at_resume_is_delivered_when_the_guest_unmasks():
    """An interrupt a saved IMS entry held pending, restored onto a device whose guest still
    masks that vector when it resumes, reaches the guest at its unmask, once, as MSI-X's
    pending bit would deliver it."""
    from siov.sw.guest.driver import FrontendDriver
    from siov.sw.hv.hypervisor import TenantKind
    from siov.sw.hv.migration import DevstateCodec

    async def prog(bus, hv):
        t0, vdev0, drv0, q0 = await vm_with_queue(hv, "src", pages=16)
        t1 = await hv.create_tenant("dst", TenantKind.VM, 16)
        vdev1 = await hv.vdcm.create(t1, adis=1)
        await FrontendDriver(vdev1).open()
        ctrl0 = vdev0.config.msix_table_offset + pci.PCI_MSIX_ENTRY_VECTOR_CTRL
        ctrl1 = vdev1.config.msix_table_offset + pci.PCI_MSIX_ENTRY_VECTOR_CTRL
        await vdev0.mmio_write(ctrl0, 1)                  # the source's guest masks vector 0 ...
        (tk,) = await q0.submit([Descriptor(opcode=Opcode.NOOP)], interrupt=True)
        await q0.wait(tk, on="record")                    # ... which holds the interrupt pending
        await vdev0.migration.set_state(S.STOP)
        blob = await DevstateCodec().save(vdev0)
        await vdev1.mmio_write(ctrl1, 1)                  # the destination's guest has it masked too
        m1 = vdev1.migration
        await m1.set_state(S.RESUMING)
        m1.write_data(encode_records([], blob))
        await m1.set_state(S.RUNNING)
        at_resume = len(t1.vic.log)
        await vdev1.mmio_write(ctrl1, 0)                  # the guest unmasks it
        at_unmask = [v for v, _ in t1.vic.log]
        await vdev1.mmio_write(ctrl1, 1)
        await vdev1.mmio_write(ctrl1, 0)
        await bus.wait_cycles(1000)
        return at_resume, at_unmask, [v for v, _ in t1.vic.log], vdev1.vectors[0]

    at_resume, at_unmask, after, vector = run(prog)
    assert at_resume == 0
    assert at_unmask == [vector] and after == [vector]
