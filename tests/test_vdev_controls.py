"""A virtual device's PCI controls act as the PCIe spec says, and its trap entry points hold
against any integer a guest gives them (model backend).

One test per control of the configuration space: Memory Space Enable, Bus
Master Enable, Function Level Reset, MSI-X Enable, MSI-X Function Mask and
the per-vector Mask Bits of the MSI-X table in BAR0. Then the trap
boundary: a guest's offsets and data are unsigned and of the access's
width, and what falls outside is answered as PCIe answers an Unsupported
Request (reads all ones, writes dropped), and counted.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siov.rtl.cmd.dsa import Opcode
from siov.rtl.regmap import AdiState
from siov.sw.guest.driver import FrontendDriver
from siov.sw.hv import config_space as pci
from siov.sw.hv.config_space import ConfigWriteError
from siov.sw.hv.errors import HypervisorError
from siov.sw.hv.hypervisor import TenantKind
from siov.sw.hv.vdcm import (INT_HANDLE, INT_HANDLE_SEL, RING_HI, RING_LO, RING_SIZE, VirtualMmioError,
                             queue_register)
from siov.sw.model.dsa import Descriptor
from siov.sw.platform import run_program
from hv_support import PAGE, copy_setup, run, vm_with_queue

ALL_ONES = 0xFFFF_FFFF
COMMAND = pci.PCI_COMMAND
DEVCTL = pci.EXP_CAP_OFFSET + pci.PCI_EXP_DEVCTL
MSIX_CTRL = pci.MSIX_CAP_OFFSET + pci.PCI_MSIX_FLAGS


async def command(vdev, bits):
    await vdev.config_write(COMMAND, bits, 2)



def move(src, dst, n, pasid=0):
    return Descriptor(pasid=pasid, opcode=Opcode.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=n)


# --- what the guest driver does at open ---------------------------------------------------

def test_reset_state_and_what_the_driver_enables():
    """After reset the function decodes nothing, masters nothing and sends no MSI-X; the
    driver enables all three (pci_enable_device, pci_set_master, pci_alloc_irq_vectors) through
    the configuration-space trap, and programs and unmasks its table entries."""
    async def prog(bus, hv):
        t = await hv.create_tenant("vm0", TenantKind.VM, 16)
        vdev = await hv.vdcm.create(t, adis=2)
        c = vdev.config
        before = (c.memory_enabled, c.bus_master, c.msix_enabled,
                  [c.msix_table.masked(k) for k in range(2)])
        traps = vdev.traps
        drv = await FrontendDriver(vdev).open()
        after = (c.memory_enabled, c.bus_master, c.msix_enabled, c.msix_function_masked,
                 [c.msix_table.masked(k) for k in range(2)],
                 [c.msix_table.message(k)[1] for k in range(2)])
        return before, after, vdev.traps - traps, drv.vectors

    before, after, traps, vectors = run(prog)
    assert before == (False, False, False, [True, True])
    assert after == (True, True, True, False, [False, False], vectors)
    assert traps > 0


# --- Memory Space Enable ----------------------------------------------------------------

def test_memory_space_disabled_bar0_does_not_decode():
    """PCIe 6.0 7.5.1.1.3: with Memory Space Enable clear the function claims no memory
    request; a read completes as all ones, a write is dropped, and both are counted. A doorbell
    is a BAR0 write too: no work starts."""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        src, dst = await copy_setup(t, drv, PAGE)
        await command(vdev, pci.PCI_COMMAND_MASTER)
        tail = q.ring.tail
        off = [0, 4, 8, vdev.ctrl, vdev.config.msix_table_offset]
        reads = [await vdev.mmio_read(o) for o in off]
        await q.ring.post([move(src, dst, PAGE, t.pasid)])      # the doorbell goes nowhere
        await bus.wait_cycles(5000)
        copied = await t.memory.read(dst, 16)
        counted = dict(vdev.unsupported)
        await command(vdev, pci.PCI_COMMAND_MASTER | pci.PCI_COMMAND_MEMORY)
        head = await vdev.mmio_read(4)
        return reads, copied, counted, tail, head

    reads, copied, counted, tail, head = run(prog)
    assert reads == [ALL_ONES] * 5
    assert copied == bytes(16)
    assert counted == {"mmio_read": 5, "mmio_write": 1}
    assert head == tail                                        # decodes again; nothing was consumed


# --- Bus Master Enable --------------------------------------------------------------------

def test_bus_master_disabled_no_dma_and_no_interrupts():
    """PCIe 6.0 7.5.1.1.3: with Bus Master Enable clear the function issues no memory requests,
    and so no MSI-X messages. Clearing it waits for the descriptor being executed; afterwards
    nothing of the function's reaches memory or the tenant until it is set again."""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        src, dst = await copy_setup(t, drv, 16 * PAGE)
        (first,) = await q.submit([move(src, dst, 8 * PAGE)], interrupt=True)
        await bus.wait_cycles(200)                              # running
        await command(vdev, pci.PCI_COMMAND_MEMORY)
        at_clear = (await t.memory.read(dst, 16 * PAGE), len(t.vic.log))
        (second,) = await q.submit([move(src + 8 * PAGE, dst + 8 * PAGE, 8 * PAGE)], interrupt=True)
        await bus.wait_cycles(50_000)
        later = (await t.memory.read(dst, 16 * PAGE), len(t.vic.log))
        await command(vdev, pci.PCI_COMMAND_MEMORY | pci.PCI_COMMAND_MASTER)
        await q.wait(first)
        await q.wait(second)
        done = await t.memory.read(dst, 16 * PAGE) == await t.memory.read(src, 16 * PAGE)
        return at_clear, later, done, len(t.vic.log)

    at_clear, later, done, irqs = run(prog)
    assert later == at_clear                                    # no DMA, no interrupt while cleared
    assert at_clear[0][:8 * PAGE] != bytes(8 * PAGE)            # the descriptor in flight finished first
    assert at_clear[0][8 * PAGE:] == bytes(8 * PAGE)
    assert done and irqs == 2                                   # both interrupts, once it is set again


# --- Function Level Reset -----------------------------------------------------------------

def test_flr_resets_the_function_and_nothing_posted_before_completes_after():
    """PCIe 6.0 6.6.2: an FLR returns the function to its reset state; a VFIO user relies on it
    between owners. Its queues are aborted once the descriptor being executed has finished,
    its staged registers and MSI-X table are back at reset, its pending interrupts discarded."""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        src, dst = await copy_setup(t, drv, 16 * PAGE)
        await q.submit([move(src + 4 * PAGE * k, dst + 4 * PAGE * k, 4 * PAGE) for k in range(4)],
                       interrupt=True)
        await bus.wait_cycles(200)
        await vdev.config_write(DEVCTL, vdev.config.devctl | pci.PCI_EXP_DEVCTL_BCR_FLR, 2)
        at_flr = (await t.memory.read(dst, 16 * PAGE), await t.memory.read(q.records, PAGE), len(t.vic.log))
        state = await hv.pf.adi_state(vdev.adis[0])           # BAR 0 does not decode after the reset
        c = vdev.config
        regs = [vdev.config_read(o, 2) for o in (COMMAND, MSIX_CTRL)]
        masked = c.msix_table.masked(0)
        await bus.wait_cycles(200_000)
        later = (await t.memory.read(dst, 16 * PAGE), await t.memory.read(q.records, PAGE), len(t.vic.log))
        await command(vdev, pci.PCI_COMMAND_MEMORY)
        staged = tuple([await vdev.mmio_read(vdev.ctrl + queue_register(0, r)) for r in (RING_LO, RING_HI, RING_SIZE)])
        # The function works again from scratch, as after a reset.
        drv2 = await FrontendDriver(vdev).open()
        q2 = drv2.queues[0]
        await q2.open(16)
        await q2.enable()
        (tk,) = await q2.submit([Descriptor(opcode=Opcode.NOOP)], interrupt=True)
        await q2.wait(tk)
        return (state, regs, masked, staged, at_flr, later,
                await t.memory.read(dst, 4 * PAGE) == await t.memory.read(src, 4 * PAGE))

    state, regs, masked, staged, at_flr, later, first_done = run(prog)
    assert state[0] == AdiState.DISABLED
    assert regs == [0, 0] and masked                        # Command, MSI-X Message Control at reset
    assert staged == (0, 0, 0)
    assert later == at_flr                                  # nothing posted before the FLR completes after it
    assert first_done and at_flr[0][12 * PAGE:] == bytes(4 * PAGE)


# --- MSI-X Enable, Function Mask, per-vector Mask Bits, the table and the PBA -------------------

def test_msix_enable_off_delivers_nothing():
    """PCIe 6.0 7.7.2.2: with MSI-X Enable clear the function may not send MSI-X messages; this
    device holds the interrupt pending (its IMS entry masked) and sends it once enabled."""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        await vdev.config_write(MSIX_CTRL, 0, 2)
        (tk,) = await q.submit([Descriptor(opcode=Opcode.NOOP)], interrupt=True)
        rec = await q.wait(tk, on="record")
        await bus.wait_cycles(2000)
        off = len(t.vic.log)
        await vdev.config_write(MSIX_CTRL, pci.PCI_MSIX_FLAGS_ENABLE, 2)
        await bus.wait_cycles(100)
        return rec.status, off, [v for v, _ in t.vic.log]

    status, off, log = run(prog)
    assert status == 1 and off == 0
    assert len(log) == 1


def test_function_mask_and_vector_mask_hold_interrupts_in_the_pba():
    """PCIe 6.0 7.7.2.2 and 7.7.2.9: a masked vector (by the Function Mask or its own Mask Bit)
    sends nothing; its Pending Bit is set, and the message goes when it is unmasked."""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv)
        c = vdev.config
        table, pba = c.msix_table_offset, c.msix_pba_offset
        out = []
        for mask_on, mask_off in (((MSIX_CTRL, pci.PCI_MSIX_FLAGS_ENABLE | pci.PCI_MSIX_FLAGS_MASKALL),
                                   (MSIX_CTRL, pci.PCI_MSIX_FLAGS_ENABLE)),
                                  ((table + pci.PCI_MSIX_ENTRY_VECTOR_CTRL, 1),
                                   (table + pci.PCI_MSIX_ENTRY_VECTOR_CTRL, 0))):
            config = mask_on[0] == MSIX_CTRL
            write = (lambda o, v: vdev.config_write(o, v, 2)) if config else vdev.mmio_write
            await write(*mask_on)
            (tk,) = await q.submit([Descriptor(opcode=Opcode.NOOP)], interrupt=True)
            await q.wait(tk, on="record")
            await bus.wait_cycles(500)
            masked = (len(t.vic.log), await vdev.mmio_read(pba))
            await write(*mask_off)
            await bus.wait_cycles(100)
            out.append((masked, (len(t.vic.log), await vdev.mmio_read(pba))))
        return out

    (fm_masked, fm_open), (vm_masked, vm_open) = run(prog)
    assert fm_masked == (0, 1) and fm_open == (1, 0)
    assert vm_masked == (1, 1) and vm_open == (2, 0)


def test_msix_table_in_bar0():
    """The table the capability places at BAR0 + the MMIO size is there: entries read back
    with PCIe's writable bits, the PBA is read-only."""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, adis=2)
        c = vdev.config
        e1 = c.msix_table_offset + pci.PCI_MSIX_ENTRY_SIZE
        await vdev.mmio_write(e1 + pci.PCI_MSIX_ENTRY_LOWER_ADDR, 0xFEE0_0003)
        await vdev.mmio_write(e1 + pci.PCI_MSIX_ENTRY_VECTOR_CTRL, ALL_ONES)
        words = [await vdev.mmio_read(e1 + 4 * i) for i in range(4)]
        with pytest.raises(VirtualMmioError, match="read-only"):
            await vdev.mmio_write(c.msix_pba_offset, 1)
        with pytest.raises(VirtualMmioError, match="no register"):
            await vdev.mmio_read(c.msix_table_offset + 2 * pci.PCI_MSIX_ENTRY_SIZE)
        return words, drv.vectors[1]

    words, vector = run(prog)
    assert words == [0xFEE0_0000, 0, vector, 1]


# --- the trap boundary --------------------------------------------------------------------

def test_trap_offsets_and_data_out_of_range():
    """A negative offset used to index queues from the end (-0x1000 read another queue's
    TAIL) and INT_HANDLE_SEL kept 2**40; now both are outside the access's range."""
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, adis=2)
        size = vdev.config.bar0_size
        reads = [await vdev.mmio_read(o) for o in (-0x1000, -4, 2, size, 1 << 64)]
        for o, v in ((vdev.ctrl + INT_HANDLE_SEL, 1 << 40), (vdev.ctrl + INT_HANDLE_SEL, -5),
                     (-0x1000, 1), (0, 1 << 32), (size, 0)):
            await vdev.mmio_write(o, v)
        handle = await vdev.mmio_read(vdev.ctrl + INT_HANDLE)
        config = [vdev.config_read(o, s) for o, s in ((-1, 4), (4096, 1), (4094, 4), (0, 3))]
        await vdev.config_write(-2, 0, 2)
        await vdev.config_write(COMMAND, 1 << 16, 2)
        return reads, handle, drv.handles[-1], config, dict(vdev.unsupported), vdev.config.command

    reads, handle, first, config, counted, cmd = run(prog)
    assert reads == [ALL_ONES] * 5
    assert handle == first                                 # INT_HANDLE_SEL kept what the driver wrote last
    assert config == [ALL_ONES, 0xFF, ALL_ONES, ALL_ONES]
    assert counted == {"mmio_read": 5, "mmio_write": 5, "config_read": 4, "config_write": 2}
    assert cmd == pci.PCI_COMMAND_MEMORY | pci.PCI_COMMAND_MASTER


ACCESS = st.tuples(st.sampled_from(["mmio_read", "mmio_write", "config_read", "config_write"]),
                   st.one_of(st.integers(), st.integers(-16, 1 << 16)),
                   st.one_of(st.integers(), st.integers(0, 0xFFFF_FFFF)),
                   st.sampled_from([1, 2, 4, 3, 0, -1, 8]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACCESS, max_size=25))
def test_no_integer_breaks_a_trap_entry_point(accesses):
    """Whatever integers a hostile guest passes, the trap entry points return a value of the
    access's width or raise the layer's documented refusal (VirtualMmioError,
    ConfigWriteError), and another tenant's queue works as before."""
    async def prog(bus, hv):
        _, victim, vdrv, vq = await vm_with_queue(hv, "victim")
        t, vdev, drv, q = await vm_with_queue(hv, "attacker")
        for kind, offset, value, size in accesses:
            try:
                if kind == "mmio_read":
                    got = await vdev.mmio_read(offset)
                    assert 0 <= got <= ALL_ONES
                elif kind == "mmio_write":
                    await vdev.mmio_write(offset, value)
                elif kind == "config_read":
                    got = vdev.config_read(offset, size)
                    assert 0 <= got <= ALL_ONES
                else:
                    await vdev.config_write(offset, value, size)
            except (VirtualMmioError, ConfigWriteError) as e:
                assert isinstance(e, (HypervisorError, ConfigWriteError))
        (tk,) = await vq.submit([Descriptor(opcode=Opcode.NOOP)], interrupt=True)
        return (await vq.wait(tk)).status

    assert run(prog) == 1


PCI_PROGRAM = "siov.sw.programs.pci_controls:pci_controls"
PCI_EXPECTED = {"bme": {"quiet_while_clear": True, "statuses": [1, 1], "copied": True},
                "flr": {"quiet_after": True, "state": int(AdiState.DISABLED), "first_done": True,
                        "rest_untouched": True},
                "mse": [ALL_ONES] * 3, "unsupported": {"mmio_read": 3}}


def test_pci_controls_program_on_the_model():
    assert run_program(PCI_PROGRAM, "model") == PCI_EXPECTED


@pytest.mark.sim
def test_pci_controls_on_the_rtl():
    """Bus Master Enable, FLR and Memory Space Enable on the Verilated Device: its ADIs,
    eligibility mask, engines and IMS entries do what the model's do."""
    assert run_program(PCI_PROGRAM, "rtl", quiet=True) == PCI_EXPECTED
