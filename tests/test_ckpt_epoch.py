"""HA checkpoint epochs (sw/ckpt/epoch.py) on the model backend: every committed chain restores the
guest memory as it was at its commit; deltas carry only what was written (and predicted);
outputs leave only once their epoch has committed."""

import random

from siov.rtl.cmd.dsa import Opcode
from siov.sw.ckpt.epoch import HaCheckpointer, aligned_time, predicted_completions
from siov.sw.ckpt.storage import load_chain
from siov.sw.model.dsa import Descriptor
from siov.sw.sched.scanner import CommandScanner
from hv_support import PAGE, run, vm_with_queue

PAGES = 64


class Codec:
    """Stands in for sw/hv/devstate.py's codec (the device state is not what these tests check)."""

    async def save(self, vdev):
        return b"device"

    async def restore(self, vdev, data):
        pass


class Recording(HaCheckpointer):
    """Notes the guest memory at each commit, while the VM is still stopped."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.at_commit = []

    def _release(self, epoch):
        super()._release(epoch)
        self.at_commit.append(self.tenant.memory.read(0, PAGES * PAGE))


def test_each_chain_restores_the_memory_at_its_commit():
    async def prog(bus, hv):
        t, vdev, drv, q = await vm_with_queue(hv, ring=64, pages=PAGES)
        vdev.migration.codec = Codec()
        src, dst = t.memory.alloc(16 * PAGE), t.memory.alloc(16 * PAGE)
        await drv.dma_map(src, 16 * PAGE)
        await drv.dma_map(dst, 16 * PAGE)
        await t.memory.write(src, bytes(range(256)) * (16 * PAGE // 256))
        ck = Recording(vdev, scanner=CommandScanner(hv), meta={"fingerprint": "test"})
        rng = random.Random(5)
        snapshots, reports = [], []
        await ck.checkpoint()
        snapshots.append(await ck.at_commit[-1])
        for epoch in range(1, 6):
            ck.output(f"result {epoch}")
            released_before = list(ck.released)
            for _ in range(3):
                k = rng.randrange(16)
                await q.submit([Descriptor(opcode=Opcode.MEMMOVE, src_addr=src + k * PAGE, dst_addr=dst + k * PAGE,
                                           xfer_size=PAGE)])
            await t.memory.write(src + rng.randrange(16) * PAGE, bytes([epoch]) * 64)   # the guest CPU
            await bus.wait_cycles(rng.randrange(200, 3000))
            reports.append(await ck.checkpoint())
            snapshots.append(await ck.at_commit[-1])
            assert released_before == [(e, f"result {e}") for e in range(1, epoch)]
        chains = [load_chain(ck.writer.blobs[:k + 1]).pages for k in range(len(ck.writer.blobs))]
        return snapshots, chains, reports, ck.released

    snapshots, chains, reports, released = run(prog)
    for k, (snap, pages) in enumerate(zip(snapshots, chains)):
        assert b"".join(pages[p] for p in range(PAGES)) == snap, f"epoch {k}"
    assert all(0 < r.pages < PAGES // 2 for r in reports)            # deltas, not full copies
    assert released == [(e, f"result {e}") for e in range(1, 6)]


def test_alignment_picks_a_predicted_completion():
    class D:
        def __init__(self, adi, cycles):
            self.adi, self.cycles = adi, cycles
    done = predicted_completions([D(0, 100), D(0, 5000), D(1, 300)], now=1000)
    assert done == [1100, 1300, 6100]
    assert aligned_time(1200, done, slack=500) == 1300
    assert aligned_time(1400, done, slack=500) == 1400              # the long copy ends past the slack
    assert aligned_time(6000, done, slack=500) == 6100


def test_prehold_lets_the_running_descriptor_finish_before_the_stop():
    """run_epochs(prehold=...): the VM's ADIs are held out of dispatch until nothing of theirs is
    in flight, so no stop cuts a descriptor; without it, a ring kept full of long copies is cut."""
    from siov.rtl.cmd.dsa import Opcode as Op
    from siov.sw.ckpt.epoch import HaCheckpointer, run_epochs
    from siov.sw.model.dsa import Descriptor as D
    from siov.sw.sched.scanner import CommandScanner
    from hv_support import PAGE as P, run as run_hv, vm_with_queue

    def once(prehold):
        async def prog(bus, hv):
            t, vdev, drv, q = await vm_with_queue(hv, "vm", ring=16, pages=64)
            buf = t.memory.alloc(48 * P)
            await drv.dma_map(buf, 48 * P)
            vdev.migration.codec = _TagCodec()
            ck = HaCheckpointer(vdev, scanner=CommandScanner(hv), meta={"fingerprint": "0123456789ab"})
            await ck.checkpoint()
            stop = []

            async def done():
                return bool(stop)
            loop = bus.spawn(run_epochs(ck, 6000, 0, done, prehold=prehold))
            for _ in range(6):
                tickets = await q.submit([D(opcode=Op.MEMMOVE, src_addr=buf, dst_addr=buf + 16 * P,
                                            xfer_size=16 * P) for _ in range(4)])
                for tk in tickets:
                    await q.wait(tk)
            stop.append(1)
            await loop
            return [(r.cut, r.held) for r in ck.epochs[1:]], hv.pf.held()
        return run_hv(prog)

    cut, _ = once(0)
    held, mask = once(40_000)
    assert cut and any(c for c, _ in cut)
    assert held and all(c == 0 for c, _ in held) and any(h > 0 for _, h in held)
    assert mask == 0                                   # every hold released


class _TagCodec:
    async def save(self, vdev):
        return b"state"

    async def restore(self, vdev, data):
        pass
