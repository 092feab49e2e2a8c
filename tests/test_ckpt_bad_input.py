"""Bad input to checkpoint restore (sw/ckpt, sw/hv/migration.py's DevstateCodec): a chain
restored onto a Device with fewer ADIs is refused with a clear error, the virtual device stays
in RESUMING and its memory is unchanged; a checkpoint requested while a queue is in ERROR is
refused before anything stops, and the chain is unchanged. (A flipped byte: test_ckpt_storage;
a refused arc: test_migration.)"""

import pytest

from siov.rtl.cmd.dsa import Opcode
from siov.rtl.params import DeviceParams
from siov.sw.ckpt import failover
from siov.sw.ckpt.epoch import CheckpointRefused, HaCheckpointer
from siov.sw.hv.migration import MigrationError, MigrationState
from siov.sw.model.dsa import Descriptor
from siov.sw.platform import run_program

FP = "0123456789ab"


def test_restore_onto_fewer_adis_is_refused_and_changes_nothing():
    p = run_program(failover.primary, seed=5, arg={"fingerprint": FP, "fail_at": 60_000})

    async def prog(bus, seed):
        w = await failover.boot(bus, seed, {"fingerprint": FP}, enable=False)
        vm = w.tenants[0]
        before = await vm.t.memory.read(0, vm.t.pages * failover.PAGE)
        with pytest.raises(MigrationError, match="other parameters.*num_adis"):
            await failover.restore_chain(vm, [bytes.fromhex(b) for b in p["chains"][vm.name]])
        return before == await vm.t.memory.read(0, vm.t.pages * failover.PAGE), vm.vdev.migration.state
    same, state = run_program(prog, seed=5, params=DeviceParams(num_adis=8))
    assert same and state is MigrationState.RESUMING


def test_checkpoint_while_a_queue_is_in_error_is_refused():
    async def prog(bus, seed):
        w = await failover.boot(bus, seed, {"fingerprint": FP})
        ck = HaCheckpointer([vm.vdev for vm in w.tenants], meta={"fingerprint": FP})
        await ck.checkpoint()
        vm = w.tenants[1]
        await vm.q.post_raw(Descriptor(pasid=0x3FF, opcode=Opcode.NOOP))      # another PASID: ERROR
        await bus.wait_cycles(500)
        with pytest.raises(CheckpointRefused, match="vm1: ADI .* is in ERROR"):
            await ck.checkpoint()
        return ck.committed, [len(wr.blobs) for wr in ck.writers.values()], \
            [v.migration.state for v in ck.vdevs]
    committed, blobs, states = run_program(prog, seed=1)
    assert committed == 0 and blobs == [1, 1, 1] and states == [MigrationState.RUNNING] * 3
