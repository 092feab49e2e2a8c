"""Live migration (sw/ckpt/migrate.py) on the model backend: pre-copy iterations on the dirty log,
then stop-and-copy; the destination's guest memory equals the source's at the stop."""

import pytest

from siov.rtl.cmd.dsa import Opcode
from siov.sw.ckpt.cpu_log import PageHashLog
from siov.sw.ckpt.migrate import live_migrate
from siov.sw.hv.migration import MigrationState
from siov.sw.model.dsa import Descriptor
from hv_support import PAGE, run, vm_with_queue

PAGES = 32


class Codec:
    """Stands in for sw/hv/devstate.py's codec: the device state as a tag, checked on restore."""

    def __init__(self):
        self.restored = []

    async def save(self, vdev):
        return b"state of " + vdev.tenant.name.encode()

    async def restore(self, vdev, data):
        self.restored.append(data)


async def _migrate(bus, hv, threshold, max_iterations):
    t0, vdev0, drv0, q0 = await vm_with_queue(hv, "src", ring=64, pages=PAGES)
    t1, vdev1, drv1, q1 = await vm_with_queue(hv, "dst", pages=PAGES)
    codec = Codec()
    vdev0.migration.codec, vdev1.migration.codec = Codec(), codec
    src, dst = t0.memory.alloc(8 * PAGE), t0.memory.alloc(8 * PAGE)
    await drv0.dma_map(src, 8 * PAGE)
    await drv0.dma_map(dst, 8 * PAGE)
    await t0.memory.write(src, bytes(range(256)) * (8 * PAGE // 256))
    counter = t0.memory.alloc(PAGE)
    # The device's work: copies posted up front, run while pre-copy goes on.
    await q0.submit([Descriptor(opcode=Opcode.MEMMOVE, src_addr=src + PAGE * (k % 8), dst_addr=dst + PAGE * (k % 8),
                                xfer_size=PAGE) for k in range(40)])
    # The guest's CPU: a counter written every 2,000 cycles until the VM is stopped.
    cpu_log = PageHashLog(t0.memory)
    await cpu_log.start()
    vdev0.migration.cpu_dirty = cpu_log

    async def vcpu():
        n = 0
        while not vdev0.migration.stopped:
            n += 1
            await t0.memory.write(counter, n.to_bytes(8, "little"))
            await bus.wait_cycles(2000)
    task = bus.spawn(vcpu())
    report = await live_migrate(vdev0, vdev1, threshold=threshold, max_iterations=max_iterations, between=3000)
    task.cancel()
    same = await t1.memory.read(0, PAGES * PAGE) == await t0.memory.read(0, PAGES * PAGE)
    written = int.from_bytes(await t1.memory.read(counter, 8), "little")
    return report, same, written, codec.restored, vdev0.migration.state, vdev1.migration.state


def test_precopy_converges_and_the_destination_has_the_source_memory():
    report, same, written, restored, s, d = run(lambda bus, hv: _migrate(bus, hv, threshold=8 * PAGE,
                                                                         max_iterations=64))
    assert report.iterations[0] == (PAGES * PAGE, 0)
    assert report.converged and report.iterations[-1][0] == 0 and report.iterations[-1][1] <= 8 * PAGE
    assert any(dirty for _, dirty in report.iterations[1:])              # the guest kept dirtying
    assert report.pages_sent[0] == PAGES
    assert report.stop_copy_pages * PAGE <= report.iterations[-1][1] + 2 * PAGE   # + what dirtied meanwhile
    assert same and written > 0
    assert restored == [b"state of src"] and (s, d) == (MigrationState.STOP, MigrationState.RUNNING)
    assert report.downtime_cycles > 0


def test_without_convergence_the_cap_ends_precopy():
    report, same, written, restored, s, d = run(lambda bus, hv: _migrate(bus, hv, threshold=0, max_iterations=3))
    assert not report.converged and len(report.pages_sent) == 3
    assert same and restored == [b"state of src"]
