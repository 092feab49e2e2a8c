"""The checkpointer beside a scenario's workload (sw/ckpt/scenario.py), on the model backend: HA
epochs with a failover checked against the primary, and a live migration onto a stand-in."""

import json
import random

import pytest

from siov.rtl.cmd.dsa import Opcode
from siov.sw.ckpt.scenario import compare_device_states, drive
from siov.sw.hv.migration import DevstateCodec, MigrationState
from siov.sw.model.dsa import Descriptor
from hv_support import PAGE, run, vm_with_queue

FP = "0123456789ab"
RUN = 70_000


async def _workload(bus, drv, q, rng, end):
    """As a scenario's copy/fill workload: batches posted and waited for, until ``end``."""
    src, dst = drv.memory.alloc(4 * PAGE), drv.memory.alloc(4 * PAGE)
    await drv.memory.write(src, rng.randbytes(4 * PAGE))
    await drv.dma_map(src, 4 * PAGE)
    await drv.dma_map(dst, 4 * PAGE)
    n = 0
    while bus.now() < end:
        batch = []
        for _ in range(4):
            size = rng.choice((256, 1024, 4096))
            if rng.random() < 0.5:
                batch.append(Descriptor(opcode=Opcode.MEMMOVE, src_addr=src + rng.randrange(4) * PAGE,
                                        dst_addr=dst + rng.randrange(4) * PAGE, xfer_size=size))
            else:
                batch.append(Descriptor(opcode=Opcode.MEMFILL, pattern=rng.getrandbits(64),
                                        dst_addr=dst + rng.randrange(4) * PAGE, xfer_size=size))
        tickets = await q.submit(batch, interrupt=rng.random() < 0.5)
        for tk in tickets:
            await q.wait(tk, poll_cycles=10)
            n += 1
    return n


def _scenario(mode, seed, **kw):
    async def prog(bus, hv):
        vms = [await vm_with_queue(hv, f"vm{i}", ring=32, pages=32) for i in range(2)]
        start = bus.now()
        end = start + RUN
        rng = random.Random(seed)
        tasks = [bus.spawn(_workload(bus, drv, q, random.Random(rng.random()), end)) for _, _, drv, q in vms]
        ck = bus.spawn(drive(hv, [v for _, v, _, _ in vms], mode, 12_000, start=start,
                             done=lambda: bus.now() >= end, fingerprint=FP, **kw))
        done = [await t for t in tasks]
        out = await ck
        return out, done, [v.migration.state for _, v, _, _ in vms], sorted(hv.tenants)
    return run(prog)


@pytest.mark.parametrize("seed", [1, 2])
def test_ha_epochs_and_a_failover_equal_to_the_primary(seed):
    out, done, states, tenants = _scenario("ha", seed, failover=50_000, copy_cycles_per_page=40)
    json.dumps(out)
    assert all(n > 0 for n in done)                   # the workload ran to its end beside the checkpointer
    cps = out["checkpoints"]
    assert cps[0]["epoch"] == 0 and cps[0]["pages"] == 64          # the base: every page of both VMs
    assert len(cps) >= 3 and all(c["downtime"] > 0 for c in cps)
    assert all(c["cycle"] < 50_000 for c in cps)                   # none after the failure
    assert [c["epoch"] for c in cps] == list(range(len(cps)))
    f = out["failover"]
    # The epoch restored is the last committed by the failure: a checkpoint under way then
    # completes (the VMs resume) but is not the one restored unless it committed in time.
    copied = {s["epoch"]: s["end"] for s in out["spans"] if s["name"] == "copy"}
    last = max(e for e, end in copied.items() if end <= 50_000)
    assert f["cycle"] == 50_000 and f["restored_epoch"] in (last, last + 1)
    assert f["restored_epoch"] == last or cps[last + 1]["cycle"] < 50_000 < copied[last + 1]
    assert f["restored_epoch"] >= 1
    assert f["equal"], f
    assert all(v["interrupts_restored"] >= v["interrupts_seen"] for v in f["vms"].values())
    assert out["totals"]["checkpoints"] == len(cps) and out["totals"]["pages"] == sum(c["pages"] for c in cps)
    names = [s["name"] for s in out["spans"]]
    assert names == ["stop", "copy", "resume"] * len(cps)
    assert all(s["start"] <= s["end"] for s in out["spans"])
    assert states == [MigrationState.RUNNING] * 2 and tenants == ["vm0", "vm1"]     # stand-ins destroyed


def test_migration_onto_a_stand_in_equals_the_source_at_the_stop():
    out, done, states, tenants = _scenario("migrate", 3)
    json.dumps(out)
    assert all(n > 0 for n in done)
    for name in ("vm0", "vm1"):
        m = out["migration"][name]
        assert m["iterations"][0]["initial_bytes"] == 32 * PAGE and m["iterations"][0]["pages_sent"] == 32
        assert m["equal"], m
        assert m["downtime"] > 0 and m["total_pages"] >= 32
    assert [s["name"] for s in out["spans"]] == ["stop", "copy", "resume"] * 2
    assert states == [MigrationState.RUNNING] * 2 and tenants == ["vm0", "vm1"]


def test_a_failover_before_any_commit_restores_nothing():
    out, *_ = _scenario("ha", 4, failover=0)
    assert out["checkpoints"] == [] and out["failover"]["restored_epoch"] is None
    assert not out["failover"]["equal"]


def test_compare_device_states_names_what_moved():
    async def prog(bus, hv):
        t, v, drv, q = await vm_with_queue(hv, "vm0", ring=16)
        codec = DevstateCodec(FP)
        await v.migration.set_state(MigrationState.STOP)
        a = await codec.save(v)
        await v.migration.set_state(MigrationState.RUNNING)
        buf = drv.memory.alloc(PAGE)
        await drv.dma_map(buf, PAGE)
        [tk] = await q.submit([Descriptor(opcode=Opcode.MEMFILL, dst_addr=buf, xfer_size=64)])
        await q.wait(tk)
        await v.migration.set_state(MigrationState.STOP)
        b = await codec.save(v)
        return compare_device_states(a, a), compare_device_states(a, b)
    same, moved = run(prog)
    assert same == []
    assert any(d.startswith("queue 0 head") for d in moved) and any(d.startswith("queue 0 tail") for d in moved)
