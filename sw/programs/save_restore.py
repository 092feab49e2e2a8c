"""Host programs that save a Device's state and restore it onto a fresh one.

:func:`build_state` gives a Device state of every kind a save holds (rings
ENABLED with work posted, DRAINING, DISABLED with moved pointers, arbiter
weights and quanta, WAIT settings, domain windows, pinned, mapped and
unmap-requested pages, IMS entries); :func:`read_all` reads every register a
restore must reproduce, enumerated from :data:`siov.sw.hv.devstate.STATE`
(indexed registers at every index). :func:`cross_backend` runs on the rtl
backend: it restores a state saved elsewhere onto its fresh Device, reads it,
then builds and saves its own, so that a test restores that one elsewhere.

Ref: ``docs/migration.md``; :mod:`siov.sw.hv.devstate`.
"""

import random

from ...rtl import regmap
from ..hv import devstate
from ..hv.guest_memory import HOST_BASE
from ..hv.pf import PfDriver

__all__ = ["build_state", "read_all", "save_whole", "cross_backend"]

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
