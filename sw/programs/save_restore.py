"""Host programs that save a Device's state and restore it onto a fresh one.

:func:`build_state` gives a Device state of every kind a save holds (rings
ENABLED with work posted, DRAINING, DISABLED with moved pointers, arbiter
weights and quanta, WAIT settings, domain windows, pinned, mapped and
unmap-requested pages, IMS entries); :func:`read_all` reads every register a
restore must reproduce, enumerated from :data:`siov.sw.hv.devstate.STATE`
(indexed registers at every index). :func:`cross_backend` runs on the rtl
backend: it restores a state saved elsewhere onto its fresh Device, reads it,
then builds and saves its own, so that a test restores that one elsewhere.
:func:`unmask_restored` is how a host delivers the interrupts a restored IMS
entry held pending (which no register can set again), and
:func:`pending_across_save` runs it: an interrupt pending in a masked entry
when its virtual device is saved and restored elsewhere reaches the guest as
it would have without the save.

Ref: ``docs/migration.md``; :mod:`siov.sw.hv.devstate`.
"""

import random

from ...rtl import regmap
from ...rtl.cmd.dsa import Flag, Opcode
from ..guest.ring import AdiPortal, Ring
from ..hv import devstate
from ..hv.guest_memory import HOST_BASE
from ..hv.pf import PfDriver
from ..model.dsa import Descriptor
from ..model.irq import ims_ctrl
from .four_tenants import wait_for_descriptors

__all__ = ["build_state", "read_all", "save_whole", "cross_backend", "unmask_restored", "pending_across_save"]

_PAGES = 16          # pages of each domain's window used here


async def build_state(bus, seed):
    """Put the Device behind ``bus`` into a state of every kind; every ADI is held out of
    the eligibility mask, so it stays as built until someone makes it eligible. Returns the
    device's driver, which the caller keeps (it holds the eligibility mask it committed)."""
    pf = PfDriver.of(bus)
    caps = await pf.identify()
    rng = random.Random(seed)
    n = caps.num_adis
    await pf.set_eligible([])
    await pf.set_arbiter(2, slice_cycles=rng.randrange(100, 1000), cost_a=rng.randrange(1, 50),
                         cost_b=rng.randrange(1, 300), weights=[rng.randrange(1, 9) for _ in range(n)],
                         quanta=[rng.randrange(0, 5000) for _ in range(n)])
    await pf.set_wait(recheck_cycles=rng.randrange(8, 100), timeout_cycles=rng.randrange(1000, 100000))
    await bus.write(regmap.GLOBAL_SCRATCH, rng.getrandbits(32))
    doms = min(3, caps.num_domains)
    for d in range(doms):
        await pf.set_domain(d, HOST_BASE + d * _PAGES * 4096, rng.randrange(4, _PAGES + 1))
        await pf.pin(d, 0, _PAGES)
        if d:
            await pf.unpin(d, rng.randrange(_PAGES // 2, _PAGES), 1)
    specs = []                   # (adi, dom, pasid, size, engine, tail, then)
    for a in range(min(n, 5)):
        d = a % doms
        pasid = 0x100 + a
        await pf.bind_adi(a, pasid, d)
        specs.append((a, d, pasid))
    for a, d, pasid in specs:
        await pf.guest_map(a, a)             # each ADI's ring page
        await pf.guest_map(a, 8 + a)
        if rng.random() < 0.7:
            await pf.guest_map(a, 8 + a, unmap=True)
    for h in range(min(6, caps.ims_entries)):
        await pf.set_ims(h, 0x100 + h, rng.randrange(256), rng.randrange(32, 256), mask=h % 2 == 1)
    then = ["run", "drain", "abort", "run", "error_reset"]
    for (a, d, pasid), what in zip(specs, then):
        size = rng.choice([4, 8, 16, 32])
        engine = rng.randrange(caps.num_engines)
        await pf.enable_adi(a, a * 4096, size if what != "error_reset" else 3, pasid, d, engine)
        if what == "error_reset":
            await pf.adi_command(a, regmap.CMD_ADI_CMD_RESET_ERROR_MASK)
            continue
        await bus.write(regmap.ADI_PAGES_BASE + 0x1000 * a, rng.randrange(1, size))
        if what == "drain":
            await pf.adi_command(a, regmap.CMD_ADI_CMD_DRAIN_MASK)
        elif what == "abort":
            await pf.adi_command(a, regmap.CMD_ADI_CMD_ABORT_MASK)
    await bus.wait_cycles(200)           # the prefetch reads the posted rings' heads
    return pf


async def read_all(bus):
    """Every SAVED and CONSTANT register and window of the Device, as ``{name: value}``;
    indexed ones at every index. The selects it moves are written back as they were."""
    pf = PfDriver.of(bus)
    caps = await pf.identify()
    out = {}
    count = {"CMD.ADI_SEL": caps.num_adis, "ENG.ARB_SEL": caps.num_adis, "DMA.ADI_SEL": caps.num_adis,
             "DMA.DOM_SEL": caps.num_domains}
    keep = (devstate.SAVED, devstate.CONSTANT)
    async with pf.exclusive():
        for path, (kind, sel, _) in devstate.STATE.items():
            if kind in keep and sel is None and path in regmap.REGISTERS:
                out[path] = await bus.read(regmap.REGISTERS[path].offset)
        for h in range(caps.ims_entries):
            for w in range(4):
                out[f"IRQ.IMS[{h}].{w}"] = await bus.read(regmap.IRQ_IMS_BASE + 16 * h + 4 * w)
        for a in range(caps.num_adis):
            for off in (0x0, 0x4, 0x8):
                out[f"ADI_PAGES[{a}]+{off}"] = await bus.read(regmap.ADI_PAGES_BASE + 0x1000 * a + off)
        for path, (kind, sel, _) in devstate.STATE.items():
            if kind in keep and sel in count:
                for i in range(count[sel]):
                    await bus.write(regmap.REGISTERS[sel].offset, i)
                    out[f"{path}[{i}]"] = await bus.read(regmap.REGISTERS[path].offset)
        for d in range(caps.num_domains):
            for bm in range(3):          # pinned, mapped, unmap-requested (dirty is reset)
                await bus.write(regmap.DMA_BMAP_SEL, bm | d << regmap.DMA_BMAP_SEL_DOMAIN_LSB)
                words = [await bus.read(regmap.DMA_BMAP_BASE + 4 * w) for w in range(caps.pages_per_domain // 32)]
                out[f"DMA.BMAP[{bm},{d}]"] = sum(v << 32 * w for w, v in enumerate(words))
        for sel in (*count, "DMA.BMAP_SEL"):     # leave the selects as found
            await bus.write(regmap.REGISTERS[sel].offset, out[sel])
    return out


async def save_whole(bus, fingerprint):
    """The whole Device's state (quiet: its ADIs held), as hex."""
    return (await devstate.save(PfDriver.of(bus), whole=True, fingerprint=fingerprint)).hex()


async def cross_backend(bus, seed, arg):
    """On a fresh Device: restore ``arg["blob"]`` (hex, with ``arg["fingerprint"]``) and
    read every register; then change a setting (SCRATCH = ``seed``) and save the result.

    Returns ``{"restored": read_all after the restore, "built": read_all after the build,
    "blob": the second save, hex}``.
    """
    fp = arg["fingerprint"]
    pf = PfDriver.of(bus)
    await devstate.restore(pf, bytes.fromhex(arg["blob"]), fingerprint=fp)
    restored = await read_all(bus)
    # The second state is the restored one, moved on by a settings write.
    await bus.write(regmap.GLOBAL_SCRATCH, seed)
    built = await read_all(bus)
    return {"restored": restored, "built": built, "blob": await save_whole(bus, fp)}


async def unmask_restored(pf, handle, pasid, saved_pending, deliver):
    """Unmask IMS entry ``handle`` (owned by ``pasid``) of a restored virtual device, and
    deliver the interrupt that its saved state held pending, unless the device delivers one.

    A restore cannot set an entry's PENDING bit (``rtl/regs.rdl`` IRQ.IMS), so
    :func:`~siov.sw.hv.devstate.restore` lists the entries that held one
    (:attr:`~siov.sw.hv.devstate.DeviceState.pending_handles`). On the source,
    the unmask would have delivered one interrupt however many had fired while
    the entry was masked (MSI-X's PBA holds one bit). So if an interrupt made the
    restored entry pending again, the unmask's own replay is that one interrupt
    and the saved one is not delivered; otherwise ``deliver()`` (which raises the
    entry's vector where its destination is) is called once the entry is unmasked.

    ``saved_pending``: whether the saved state held an interrupt pending in this entry.
    PENDING is read and the entry unmasked in two accesses: an interrupt that lands
    between them is delivered by the replay too, the one case where the guest gets
    one interrupt more than on the source. Returns whether ``deliver`` was called.
    """
    ctrl = regmap.IRQ_IMS_BASE + 16 * handle + 12
    async with pf.exclusive():
        pending_now = await pf.bus.read(ctrl) & regmap.IRQ_IMS_ENTRY_PENDING_MASK
        await pf.bus.write(ctrl, ims_ctrl(mask=False, pasid=pasid))
    if saved_pending and not pending_now:
        deliver()
        return True
    return False


async def pending_across_save(bus, seed, arg):
    """An interrupt held pending by a masked IMS entry when its virtual device is saved.

    A virtual device of one ADI (PASID 0x42, destination 3) and two IMS entries:
    handle 0 masked (vector 0x40), handle 1 unmasked (vector 0x41). Two
    completion interrupts through handle 0 become pending, one through handle 1
    is delivered. With ``arg["move"]`` the device is then saved (ADI held), its
    ADI, entries and domain released, and restored onto ADI 5, handles 9 and 10
    and domain 2 (``arg["fingerprint"]`` for both). With ``arg["fire_again"]``,
    one more interrupt goes through the (still masked) entry. Then the entry is
    unmasked (:func:`unmask_restored`, which delivers the saved pending interrupt
    unless the device's replay does), and one more interrupt goes through each entry.

    Returns ``{"interrupts": [[dest, vector], ...] in arrival order, "pending_handles":
    restore's, "pending_before_unmask": the entry's PENDING just before the unmask,
    "delivered": whether the host delivered the saved one}``: without ``move`` the
    run no save interrupts, which the moved run's interrupts must equal.
    """
    pf = PfDriver.of(bus)
    pasid, dest = 0x42, 3
    log = []
    bus.on_irq(lambda irq: log.append([irq.dest, irq.vector]))
    await pf.set_domain(0, HOST_BASE, 8)
    await pf.pin(0, 0, 8)
    await pf.bind_adi(0, pasid, 0)
    for page in range(2):
        await pf.guest_map(0, page)
    await pf.set_ims(0, pasid, dest, 0x40, mask=True)
    await pf.set_ims(1, pasid, dest, 0x41)
    await pf.enable_adi(0, 0, 16, pasid, 0)
    ring, done = Ring(bus, 0, 0, HOST_BASE, 16), 0

    async def fire(*handles):
        nonlocal done
        await ring.post([Descriptor(pasid=pasid, opcode=Opcode.NOOP, flags=Flag.RCI, int_handle=h) for h in handles])
        done += len(handles)
        await wait_for_descriptors(pf, done)

    await fire(0, 0, 1)
    handle, saved_pending, pending_handles = {0: 0, 1: 1}, False, []
    if arg["move"]:
        fp = arg["fingerprint"]
        await pf.hold("save", [0])
        blob = await devstate.save(pf, adis=[0], handles=[0, 1], domains=[0], fingerprint=fp)
        await pf.adi_command(0, regmap.CMD_ADI_CMD_ABORT_MASK)
        await pf.bind_adi(0, 0, 0, valid=False)
        for h in (0, 1):
            await pf.clear_ims(h)
        await pf.unpin(0, 0, 8)
        await pf.set_domain(0, 0, 0)
        await pf.hold("save", [5])
        handle = {0: 9, 1: 10}
        state = await devstate.restore(pf, blob, devstate.Placement(adis={0: 5}, handles=handle, domains={0: 2}),
                                       fingerprint=fp)
        pending_handles = state.pending_handles
        saved_pending = 0 in pending_handles
        ring.portal = AdiPortal(bus, 5)
        await pf.hold("save", ())
    if arg["fire_again"]:
        await fire(handle[0])
    before = await pf.ims_pending(handle[0])
    delivered = await unmask_restored(pf, handle[0], pasid, saved_pending,
                                      lambda: log.append([dest, 0x40]))
    await bus.wait_cycles(100)
    await fire(handle[0], handle[1])
    await bus.wait_cycles(100)
    return {"interrupts": log, "pending_handles": pending_handles, "pending_before_unmask": before,
            "delivered": delivered}
