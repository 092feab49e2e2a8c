"""A host program that exercises a virtual device's PCI controls on either backend.

A VM's guest driver opens its device (Memory Space, Bus Master and MSI-X
Enable through the configuration-space trap), then:

1. clears Bus Master Enable while a 32 KiB MEMMOVE runs, posts a second
   one, and notes whether the destination changed while it was clear; sets
   it again and waits for both records;
2. posts four 16 KiB MEMMOVEs and initiates an FLR while the first runs,
   then notes whether anything changed in the next 200,000 cycles;
3. clears Memory Space Enable and reads BAR 0 (all ones).

The result says, per step, what a test asserts: ``tests/test_vdev_controls.py``
runs it on the rtl backend, where the ADIs, the eligibility mask, the engines
and the IMS entries are the Verilated Device's.
"""

import hashlib

from ...rtl.cmd.dsa import Opcode
from ..guest.driver import FrontendDriver
from ..hv import config_space as pci
from ..hv.hypervisor import Hypervisor, TenantKind
from ..model.dsa import Descriptor

__all__ = ["pci_controls"]

PAGE = 4096


def _move(src, dst, n):
    return Descriptor(opcode=Opcode.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=n)


async def _digest(t, addr, n):
    return hashlib.sha256(await t.memory.read(addr, n)).hexdigest()[:16]


async def pci_controls(bus, seed):
    """``{"bme": {...}, "flr": {...}, "mse": [...]}``: see the module docstring."""
    hv = Hypervisor(bus)
    await hv.start()
    t = await hv.create_tenant("vm0", TenantKind.VM, 64)
    vdev = await hv.vdcm.create(t)
    drv = await FrontendDriver(vdev).open()
    q = drv.queues[0]
    await q.open(16)
    await q.enable()
    src, dst = t.memory.alloc(16 * PAGE), t.memory.alloc(16 * PAGE)
    await drv.dma_map(src, 16 * PAGE)
    await drv.dma_map(dst, 16 * PAGE)
    await t.memory.write(src, bytes(range(251)) * (16 * PAGE // 251) + bytes(16 * PAGE % 251))
    command = pci.PCI_COMMAND_MEMORY | pci.PCI_COMMAND_MASTER

    (first,) = await q.submit([_move(src, dst, 8 * PAGE)])
    await bus.wait_cycles(200)
    await vdev.config_write(pci.PCI_COMMAND, pci.PCI_COMMAND_MEMORY, 2)
    at_clear = await _digest(t, dst, 16 * PAGE)
    (second,) = await q.submit([_move(src + 8 * PAGE, dst + 8 * PAGE, 8 * PAGE)])
    await bus.wait_cycles(50_000)
    quiet = await _digest(t, dst, 16 * PAGE) == at_clear
    await vdev.config_write(pci.PCI_COMMAND, command, 2)
    statuses = [(await q.wait(tk, on="record")).status for tk in (first, second)]
    bme = {"quiet_while_clear": quiet, "statuses": statuses,
           "copied": await t.memory.read(dst, 16 * PAGE) == await t.memory.read(src, 16 * PAGE)}

    await t.memory.write(dst, bytes(16 * PAGE))
    await q.submit([_move(src + 4 * PAGE * k, dst + 4 * PAGE * k, 4 * PAGE) for k in range(4)])
    await bus.wait_cycles(200)
    devctl = pci.EXP_CAP_OFFSET + pci.PCI_EXP_DEVCTL
    await vdev.config_write(devctl, vdev.config.devctl | pci.PCI_EXP_DEVCTL_BCR_FLR, 2)
    at_flr = (await _digest(t, dst, 16 * PAGE), await _digest(t, q.records, PAGE))
    state = (await hv.pf.adi_state(vdev.adis[0]))[0]
    await bus.wait_cycles(200_000)
    later = (await _digest(t, dst, 16 * PAGE), await _digest(t, q.records, PAGE))
    flr = {"quiet_after": later == at_flr, "state": int(state),
           "first_done": await t.memory.read(dst, 4 * PAGE) == await t.memory.read(src, 4 * PAGE),
           "rest_untouched": await t.memory.read(dst + 4 * PAGE, 12 * PAGE) == bytes(12 * PAGE)}

    await vdev.config_write(pci.PCI_COMMAND, pci.PCI_COMMAND_MASTER, 2)
    mse = [await vdev.mmio_read(o) for o in (0, 4, vdev.ctrl)]
    return {"bme": bme, "flr": flr, "mse": mse, "unsupported": dict(vdev.unsupported)}
