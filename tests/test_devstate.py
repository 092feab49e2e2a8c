"""Save and restore of device state (sw/hv/devstate.py): a whole Device restored into a
fresh one reads back register for register; a virtual device restored elsewhere resumes
its ring; an interrupt pending at save reaches the guest once, as without the save; every
refusal leaves the destination as it was; the list of device state in docs/migration.md
covers the register map."""

import hashlib
import pathlib
import struct

import pytest

from siov.rtl import regmap
from siov.rtl.cmd.dsa import Flag, Opcode
from siov.rtl.params import DeviceParams
from siov.sw.guest.ring import Ring
from siov.sw.hv import devstate
from siov.sw.hv.guest_memory import HOST_BASE
from siov.sw.hv.pf import PfDriver
from siov.sw.model.dsa import Descriptor
from siov.sw.platform import vtime
from siov.sw.platform.model import ModelBus
from siov.sw.platform import run_program
from siov.sw.programs.save_restore import build_state, read_all

ROOT = pathlib.Path(__file__).resolve().parent.parent
FP = "0123456789ab"          # a fingerprint given explicitly: the model tests need no Verilog
PARAMS = DeviceParams(num_adis=8, ims_entries=16, num_domains=4, pages_per_domain=64)


def run(coro_fn):
    return vtime.run(coro_fn())


async def _built(seed=1, params=PARAMS):
    """A Device in the state build_state gives, and its driver (kept alive with it)."""
    bus = ModelBus(params)
    return bus, await build_state(bus, seed)


def test_whole_device_restores_every_register():
    async def main():
        src, pf = await _built()
        before = await read_all(src)
        blob = await devstate.save(pf, whole=True, fingerprint=FP)
        dst = ModelBus(PARAMS)
        pd = PfDriver.of(dst)
        fresh = await read_all(dst)
        state = await devstate.restore(pd, blob, fingerprint=FP)
        after = await read_all(dst)
        return before, fresh, after, state, blob
    before, fresh, after, state, blob = run(main)
    diffs = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not diffs, diffs
    # The state is not trivially the fresh Device's: rings, pages and settings moved.
    assert sum(before[k] != fresh[k] for k in before) > 40
    assert {a.state for a in state.adis} == {regmap.AdiState.DISABLED, regmap.AdiState.ENABLED,
                                             regmap.AdiState.DRAINING}
    assert any(a.state == regmap.AdiState.DISABLED and a.head != 0 for a in state.adis)
    assert state.pending_handles == []


def test_virtual_device_is_small_and_resumes_its_ring_elsewhere():
    """An ADI saved with four NOOPs posted and held resumes on another ADI, IMS handle and
    domain of a fresh Device, once its guest memory is copied, and completes them."""
    async def main():
        src = ModelBus(PARAMS)
        pf = PfDriver.of(src)
        await pf.set_domain(0, HOST_BASE, 8)
        await pf.pin(0, 0, 8)
        await pf.bind_adi(0, 0x42, 0)
        for page in range(2):
            await pf.guest_map(0, page)
        await pf.set_ims(0, 0x42, 3, 0x40)
        await pf.set_eligible([])
        await pf.enable_adi(0, 0, 16, 0x42, 0)
        await pf.adi_command(0, 0)
        ring = Ring(src, 0, 0, HOST_BASE, 16)
        descs = [Descriptor(pasid=0x42, opcode=Opcode.NOOP, flags=Flag.CRAV | Flag.RCR,
                            completion_addr=0x1000 + 32 * i) for i in range(4)]
        await ring.post(descs)
        await src.wait_cycles(300)
        assert await pf.ring_pointers(0) == (0, 4)
        blob = await devstate.save(pf, adis=[0], handles=[0], domains=[0], fingerprint=FP)
        memory = await src.mem_read(HOST_BASE, 2 * 4096)
        dst = ModelBus(PARAMS)
        pd = PfDriver.of(dst)
        await dst.mem_write(HOST_BASE, memory)
        await pd.set_eligible([])
        state = await devstate.restore(pd, blob, devstate.Placement(adis={0: 5}, handles={0: 9}, domains={0: 2}),
                                       fingerprint=FP)
        restored = (await pd.ring_pointers(5), await pd.adi_state(5), pd.ring_config(5))
        await pd.set_eligible(range(8))
        await dst.wait_cycles(3000)
        records = [(await dst.mem_read(HOST_BASE + 0x1000 + 32 * i, 1))[0] for i in range(4)]
        return blob, state, restored, records, await pd.ring_pointers(5)
    blob, state, restored, records, ptrs = run(main)
    assert len(blob) < 200, len(blob)
    assert restored[0] == (0, 4) and restored[1] == (regmap.AdiState.ENABLED, 0)
    assert restored[2].dom == 2 and restored[2].pasid == 0x42
    assert records == [1, 1, 1, 1]          # success, as run on the source
    assert ptrs == (4, 4)


async def _refused(blob, params=PARAMS, fingerprint=FP, exc=devstate.DeviceStateError, **kw):
    dst = ModelBus(params)
    pd = PfDriver.of(dst)
    before = await read_all(dst)
    with pytest.raises(exc) as info:
        await devstate.restore(pd, blob, fingerprint=fingerprint, **kw)
    assert await read_all(dst) == before, "a refused restore changed the Device"
    return str(info.value)


def test_bad_input_is_refused_and_changes_nothing():
    async def main():
        src, pf = await _built()
        blob = await devstate.save(pf, whole=True, fingerprint=FP)
        msgs = []
        flipped = bytearray(blob)
        flipped[len(blob) // 2] ^= 0x10
        msgs.append(await _refused(bytes(flipped), exc=devstate.CorruptState))
        msgs.append(await _refused(blob[:-9], exc=devstate.CorruptState))
        msgs.append(await _refused(b"NOTSIOV!" + blob[8:], exc=devstate.CorruptState))
        msgs.append(await _refused(blob, params=DeviceParams(num_adis=6, ims_entries=16, num_domains=4,
                                                             pages_per_domain=64), exc=devstate.IncompatibleState))
        msgs.append(await _refused(blob, params=DeviceParams(num_adis=8, ims_entries=32, num_domains=4,
                                                             pages_per_domain=64), exc=devstate.IncompatibleState))
        msgs.append(await _refused(blob, fingerprint="ba9876543210", exc=devstate.IncompatibleState))
        return msgs
    msgs = run(main)
    assert "checksum" in msgs[0]
    assert "truncated" in msgs[1]
    assert "magic" in msgs[2]
    assert "num_adis" in msgs[3] and "ims_entries" in msgs[4]
    assert "Verilog" in msgs[5]


def test_restore_onto_an_adi_in_use_is_refused():
    async def main():
        src, pf = await _built()
        blob = await devstate.save(pf, whole=True, fingerprint=FP)
        dst = ModelBus(PARAMS)
        pd = PfDriver.of(dst)
        await pd.set_eligible([])
        await pd.enable_adi(1, 0, 8, 0x7, 0)
        before = await read_all(dst)
        with pytest.raises(devstate.TargetInUse, match="ADI 1 is ENABLED"):
            await devstate.restore(pd, blob, fingerprint=FP)
        assert await read_all(dst) == before
    run(main)


def test_adi_in_error_or_eligible_is_not_saved():
    """An ADI in ERROR is refused at save (docs/migration.md), as is one that could still be
    dispatched; after RESET_ERROR, or held, the same ADI saves."""
    async def main():
        bus = ModelBus(PARAMS)
        pf = PfDriver.of(bus)
        await pf.set_eligible([])
        await pf.enable_adi(0, 0, 8, 0x5, 0)
        await bus.write(regmap.ADI_PAGES_BASE, 9)             # beyond the ring: ERROR
        with pytest.raises(devstate.AdiInError, match="ADI 0 is in ERROR \\(TAIL_BEYOND_RING\\)"):
            await devstate.save(pf, adis=[0], fingerprint=FP)
        await pf.adi_command(0, regmap.CMD_ADI_CMD_RESET_ERROR_MASK)
        assert devstate.decode(await devstate.save(pf, adis=[0], fingerprint=FP)).adis[0].state == 0
        await pf.enable_adi(1, 0, 8, 0x6, 0)
        await pf.set_eligible([1])
        with pytest.raises(devstate.NotQuiesced, match="ADI 1 is ENABLED and eligible"):
            await devstate.save(pf, adis=[1], fingerprint=FP)
        await pf.set_eligible([])
        assert devstate.decode(await devstate.save(pf, adis=[1], fingerprint=FP)).adis[0].state == 1
    run(main)


def test_state_list_covers_the_register_map_and_is_documented():
    paths = set(regmap.REGISTERS) | set(regmap.EXTERNALS)
    assert set(devstate.STATE) == paths, (paths ^ set(devstate.STATE))
    for path, (kind, sel, why) in devstate.STATE.items():
        assert kind in (devstate.SAVED, devstate.REDERIVED, devstate.RESET, devstate.CONSTANT, devstate.COMMAND)
        assert sel is None or sel in regmap.REGISTERS, path
        assert why, path
        reg = regmap.REGISTERS.get(path)
        if reg is not None and kind == devstate.COMMAND:
            assert not any(f.sw_readable for f in reg.fields), f"{path} is readable: state, not a command"
        if reg is not None and kind == devstate.SAVED and sel is None:
            assert path in devstate.SETTINGS or any(f.hw == "w" for f in reg.fields), path
    # Every register a restore writes back is listed as saved.
    assert all(devstate.STATE[p][0] == devstate.SAVED for p in devstate.SETTINGS)
    assert devstate.render_state_table() in (ROOT / "docs" / "migration.md").read_text()


PENDING = "siov.sw.programs.save_restore:pending_across_save"


@pytest.mark.parametrize("fire_again", [False, True])
def test_interrupt_pending_at_save_reaches_the_guest_as_without_the_save(fire_again):
    """An entry masked with an interrupt pending is saved and restored onto another handle;
    on unmask the guest gets what a run without the save gets: the saved interrupt once,
    delivered by the host (the PENDING bit cannot be restored), or, when another interrupt
    made the restored entry pending again, by the device's replay alone (MSI-X's PBA holds
    one bit, so the two are one interrupt on the source too)."""
    arg = {"fire_again": fire_again, "fingerprint": FP}
    golden = run_program(PENDING, "model", arg={**arg, "move": False})
    moved = run_program(PENDING, "model", arg={**arg, "move": True})
    assert golden["interrupts"] == [[3, 0x41], [3, 0x40], [3, 0x40], [3, 0x41]]
    assert moved["interrupts"] == golden["interrupts"]
    assert moved["pending_handles"] == [0]
    # Delivering the saved interrupt whatever the entry holds would give the guest two.
    assert moved["pending_before_unmask"] is fire_again and moved["delivered"] is not fire_again


def test_restore_drops_a_pending_interrupt_the_state_does_not_hold():
    """A destination entry that holds a pending interrupt (masked, with the PASID the state
    gives it) reads back as saved, PENDING clear: an unmask must not deliver an interrupt of
    the entry's earlier life to the restored device's guest."""
    async def main():
        src, pf = await _built()
        before = await read_all(src)
        blob = await devstate.save(pf, whole=True, fingerprint=FP)
        saved = devstate.decode(blob).ims[1].words
        assert saved[3] & regmap.IRQ_IMS_ENTRY_MASK_MASK and not saved[3] & regmap.IRQ_IMS_ENTRY_PENDING_MASK
        dst = ModelBus(PARAMS)
        pd = PfDriver.of(dst)
        pasid = saved[3] >> regmap.IRQ_IMS_ENTRY_PASID_LSB
        await pd.set_domain(0, HOST_BASE, 8)
        await pd.pin(0, 0, 8)
        await pd.bind_adi(0, pasid, 0)
        await pd.guest_map(0, 0)
        await pd.set_ims(1, pasid, 2, 0x30, mask=True)
        await pd.enable_adi(0, 0, 4, pasid, 0)
        await Ring(dst, 0, 0, HOST_BASE, 4).post([Descriptor(pasid=pasid, opcode=Opcode.NOOP, flags=Flag.RCI,
                                                             int_handle=1)])
        await dst.wait_cycles(500)
        assert await pd.ims_pending(1)
        await pd.adi_command(0, regmap.CMD_ADI_CMD_ABORT_MASK)
        state = await devstate.restore(pd, blob, fingerprint=FP)
        return before, await read_all(dst), state
    before, after, state = run(main)
    diffs = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not diffs, diffs
    assert state.pending_handles == []


def _reseal(blob, payload=None, version=devstate.VERSION):
    """``blob`` with another payload or version, its length and checksum made right again:
    what a writer of another version, or a forger, would hand over."""
    head = struct.Struct("<8sHHI")
    magic, _, flags, _ = head.unpack_from(blob)
    body = blob[head.size:-8] if payload is None else payload
    sealed = head.pack(magic, version, flags, len(body)) + body
    return sealed + hashlib.sha256(sealed).digest()[:8]


def test_every_flipped_byte_and_every_cut_is_refused():
    """A flip of any one bit in any byte of the blob, header, payload or checksum, and every
    truncation, is CorruptState; onto a Device, a few of them change nothing."""
    async def main():
        src, pf = await _built()
        blob = await devstate.save(pf, whole=True, fingerprint=FP)
        for i in range(len(blob)):
            flipped = bytearray(blob)
            flipped[i] ^= 1 << (i % 8)
            with pytest.raises(devstate.CorruptState):
                devstate.decode(bytes(flipped))
        for n in range(len(blob)):
            with pytest.raises(devstate.CorruptState, match="truncated|header says"):
                devstate.decode(blob[:n])
        msgs = []
        for i in (0, 9, 12, len(blob) - 1):       # magic, version, length, checksum
            flipped = bytearray(blob)
            flipped[i] ^= 0x80
            msgs.append(await _refused(bytes(flipped), exc=devstate.CorruptState))
        return msgs
    msgs = run(main)
    assert "magic" in msgs[0] and "version" in msgs[1] and "header says" in msgs[2] and "checksum" in msgs[3]


def test_a_resealed_blob_of_another_version_or_impossible_content_is_refused():
    async def main():
        src, pf = await _built()
        blob = await devstate.save(pf, whole=True, fingerprint=FP)
        payload = blob[16:-8]
        msgs = [await _refused(_reseal(blob, version=devstate.VERSION + 1), exc=devstate.CorruptState),
                await _refused(_reseal(blob, payload + b"\0"), exc=devstate.CorruptState),
                await _refused(_reseal(blob, payload[:-1]), exc=devstate.CorruptState)]
        impossible = bytearray(payload)
        impossible[0:4] = (65).to_bytes(4, "little")            # 65 ADIs: no Device has them
        msgs.append(await _refused(_reseal(blob, bytes(impossible)), exc=devstate.CorruptState))
        return msgs
    msgs = run(main)
    assert "version 2" in msgs[0]
    assert "after its last record" in msgs[1] and "truncated" in msgs[2]
    assert "impossible Device parameters" in msgs[3]


@pytest.mark.parametrize("other", [dict(num_adis=4), dict(num_domains=2), dict(pages_per_domain=128),
                                   dict(num_engines=1), dict(ims_entries=32)])
def test_a_virtual_device_onto_other_parameters_is_refused(other):
    """A virtual device's state (not only a whole Device's) carries the parameters: any one
    of them different, fewer ADIs among them, is refused, and names the parameter."""
    async def main():
        src, pf = await _built()
        blob = await devstate.save(pf, adis=[0, 1], handles=[0, 1], domains=[0, 1], fingerprint=FP)
        params = DeviceParams(**{**vars(PARAMS), **other})
        return await _refused(blob, params=params, exc=devstate.IncompatibleState)
    msg = run(main)
    assert next(iter(other)) in msg


def test_a_placement_the_destination_cannot_take_is_refused():
    """Onto an ADI, IMS handle or domain beyond the Device, two saved ADIs onto one, or a
    whole Device's state with a placement: refused before the first write."""
    async def main():
        src, pf = await _built()
        blob = await devstate.save(pf, adis=[0, 1], handles=[0, 1], domains=[0, 1], fingerprint=FP)
        whole = await devstate.save(pf, whole=True, fingerprint=FP)
        P = devstate.Placement
        return [await _refused(blob, placement=P(adis={1: PARAMS.num_adis}), exc=devstate.IncompatibleState),
                await _refused(blob, placement=P(handles={0: PARAMS.ims_entries}), exc=devstate.IncompatibleState),
                await _refused(blob, placement=P(domains={0: 4}), exc=devstate.IncompatibleState),
                await _refused(blob, placement=P(adis={0: 5, 1: 5}), exc=ValueError),
                await _refused(whole, placement=P(adis={0: 5}), exc=ValueError)]
    msgs = run(main)
    assert "destination ADI 8 is beyond the Device's 8" in msgs[0]
    assert "IMS handle 16" in msgs[1] and "domain 4" in msgs[2]
    assert "two saved ADIs on one" in msgs[3] and "whole Device" in msgs[4]


def test_a_whole_device_with_an_adi_in_error_is_not_saved_and_keeps_its_error():
    """A checkpoint of the whole Device while one ADI is in ERROR: AdiInError, naming the ADI
    and its code; the ADI stays in ERROR with that code (the guest still sees it) and every
    other ADI as it was (docs/migration.md: the hypervisor reports it, the guest resets it)."""
    async def main():
        bus, pf = await _built()
        await pf.enable_adi(6, 0, 8, 0x9, 0)
        await bus.write(regmap.ADI_PAGES_BASE + 0x1000 * 6, 8)          # TAIL = RING_SIZE: ERROR
        states = [await pf.adi_state(i) for i in range(PARAMS.num_adis)]
        ptrs = [await pf.ring_pointers(i) for i in range(PARAMS.num_adis)]
        with pytest.raises(devstate.AdiInError, match="ADI 6 is in ERROR \\(TAIL_BEYOND_RING\\)") as info:
            await devstate.save(pf, whole=True, fingerprint=FP)
        after = [await pf.adi_state(i) for i in range(PARAMS.num_adis)]
        return states, after, ptrs, [await pf.ring_pointers(i) for i in range(PARAMS.num_adis)], str(info.value)
    states, after, ptrs, ptrs_after, msg = run(main)
    assert states[6][0] == regmap.AdiState.ERROR and after == states and ptrs_after == ptrs
    assert "RESET_ERROR" in msg



def test_a_migration_between_two_virtual_devices_of_one_device_keeps_the_guest_pasid():
    """The PASID is the guest's (its descriptors carry it, in its memory), so a restore keeps
    it: restored onto another tenant's virtual device of the same Device, the destination's
    ADI, its DMA ADI-table entry and its IMS entry carry the source's PASID, not the tenant's
    (docs/migration.md says what that means on one Device)."""
    from siov.sw.guest.driver import FrontendDriver
    from siov.sw.hv.hypervisor import Hypervisor, TenantKind
    from siov.sw.hv.migration import DevstateCodec, MigrationState, encode_records

    async def main():
        bus = ModelBus(PARAMS)
        hv = Hypervisor(bus)
        await hv.start()
        t0 = await hv.create_tenant("src", TenantKind.VM, 16)
        v0 = await hv.vdcm.create(t0, adis=1)
        q = (await FrontendDriver(v0).open()).queues[0]
        await q.open(16)
        await q.enable()
        t1 = await hv.create_tenant("dst", TenantKind.VM, 16)
        v1 = await hv.vdcm.create(t1, adis=1)
        await FrontendDriver(v1).open()
        codec = DevstateCodec(FP)
        v1.migration.codec = codec
        await v0.migration.set_state(MigrationState.STOP)
        blob = await codec.save(v0)
        await v1.migration.set_state(MigrationState.RESUMING)
        v1.migration.write_data(encode_records([], blob))
        await v1.migration.set_state(MigrationState.STOP)
        a = v1.adis[0]
        return t0.pasid, t1.pasid, await _cmd_pasid(bus, a), await _dma_pasid(bus, a), \
            await bus.read(regmap.IRQ_IMS_BASE + 16 * v1.handles[0] + 12)

    src, dst, cfg, dma, ims = run(main)
    assert src != dst
    assert cfg == src and dma == src
    assert (ims & regmap.IRQ_IMS_ENTRY_PASID_MASK) >> regmap.IRQ_IMS_ENTRY_PASID_LSB == src


async def _cmd_pasid(bus, adi):
    await bus.write(regmap.CMD_ADI_SEL, adi)
    v = await bus.read(regmap.CMD_ADI_CUR_CFG)
    return (v & regmap.CMD_ADI_CUR_CFG_PASID_MASK) >> regmap.CMD_ADI_CUR_CFG_PASID_LSB


async def _dma_pasid(bus, adi):
    await bus.write(regmap.DMA_ADI_SEL, adi)
    v = await bus.read(regmap.DMA_ADI_CUR)
    return (v & regmap.DMA_ADI_CUR_PASID_MASK) >> regmap.DMA_ADI_CUR_PASID_LSB


def test_check_validates_without_writing():
    """devstate.check refuses what restore would refuse, with the same errors, and writes
    nothing either way (but CMD.ADI_SEL, through which it reads the destination ADIs' states);
    it returns the decoded state of a blob it accepts."""
    async def main():
        src, pf = await _built()
        blob = await devstate.save(pf, adis=[1], handles=[1], domains=[1], fingerprint=FP)
        dst = ModelBus(PARAMS)
        pd = PfDriver.of(dst)
        before = await read_all(dst)
        ok = await devstate.check(pd, blob, devstate.Placement(adis={1: 5}), fingerprint=FP)
        errors = []
        for b, place, fp in ((blob[:-1], devstate.Placement(), FP), (blob, devstate.Placement(adis={1: 99}), FP),
                             (blob, devstate.Placement(), "ffffffffffff")):
            try:
                await devstate.check(pd, b, place, fingerprint=fp)
            except devstate.DeviceStateError as e:
                errors.append(type(e).__name__)
        after = await read_all(dst)
        return ok, errors, {k: v for k, v in after.items() if not k.endswith("_SEL")} == \
            {k: v for k, v in before.items() if not k.endswith("_SEL")}
    ok, errors, unchanged = run(main)
    assert isinstance(ok, devstate.DeviceState) and [a.index for a in ok.adis] == [1]
    assert errors == ["CorruptState", "IncompatibleState", "IncompatibleState"] and unchanged
