"""A host program that moves one tenant's virtual device mid-workload, for the differential harness.

Three tenants run raw descriptors, as in :mod:`~siov.sw.programs.four_tenants`
but with good descriptors only. Tenant ``t1`` (the mover) is saved while
the others keep running, and restored onto another ADI, IMS handle and DMA
domain of the same Device (:mod:`siov.sw.hv.devstate`, a
:class:`~siov.sw.hv.devstate.Placement`), where it continues. For a seed it
does, in order:

1. starts the hypervisor and has it create three tenants, each with its own
   domain, PASID, destination, ADI, IMS entry and 64-entry ring; the mover's
   IMS entry starts masked; the arbiter policy comes from the seed;
2. phase A: every tenant posts a few descriptors, the mover's with at least
   one completion interrupt, which its masked entry holds pending; all of
   them complete;
3. phase B: every tenant posts more (the mover's without interrupts); after
   a number of cycles drawn from the seed, while the work is in progress,
   the mover is **moved**: held out of the eligibility mask, its dirty log
   harvested, its virtual device saved (``devstate.save`` waits for it to
   quiesce), its old ADI, entry and domain released, and the state restored
   onto the last ADI, entry and domain of the Device, held until its
   tenant's record follows it (its domain) and its ring's doorbell moves to
   the new ADI; then let go, it takes up its ring where it stopped;
4. phase C: every tenant posts more; on odd seeds the mover's work raises
   interrupts that its still-masked entry holds pending again; then the
   mover's entry is unmasked
   (:func:`~siov.sw.programs.save_restore.unmask_restored`): the saved pending
   interrupt is delivered by the host unless the device's own replay
   delivers one, as an uninterrupted run's unmask delivers exactly one;
   a last batch raises interrupts through the unmasked entry;
5. harvests every tenant's dirty log (the mover's joined with what was
   harvested before the save).

Everything the record compares is the same whenever the save falls; where
the save fell (the mover's HEAD and TAIL) is kept under ``"timing"``.

Ref: ``docs/migration.md``; :mod:`siov.sw.diff` (the record's rules).
"""

import hashlib
import random

from ..diff import Recorder
from ..guest.ring import AdiPortal, Ring
from ..hv import devstate
from ..hv.hypervisor import Hypervisor, TenantKind
from ...rtl import regmap
from ...rtl.cmd.arbiter import Policy
from ...rtl.cmd.dsa import Flag, Opcode
from ...rtl.dma.defs import PAGE_SHIFT
from ..model.dsa import Descriptor
from .four_tenants import wait_for_descriptors
from .save_restore import unmask_restored

__all__ = ["migrate_tenant", "uninterrupted", "TENANTS", "MOVER"]

PAGE = 1 << PAGE_SHIFT
PAGES = 16
RING_PAGE, RECORD_PAGES, DATA_FIRST = 0, (1, 2), 3
RING_SIZE = 64
#: Names of the tenants, and the one that is moved.
TENANTS, MOVER = ("t0", "t1", "t2"), "t1"
_HOLDER = "migration"            # the owner of the mover's hold on the eligibility mask


class _Tenant:
    def __init__(self, tenant, adi, handle, vector, ring):
        self.name, self.tenant, self.pasid = tenant.name, tenant, tenant.pasid
        self.adi, self.handle, self.vector, self.ring = adi, handle, vector, ring
        self.slot = 0

    def record_addr(self):
        page = RECORD_PAGES[0] + self.slot // (PAGE // 32)
        addr = page * PAGE + 32 * (self.slot % (PAGE // 32))
        self.slot += 1
        return addr


class _Program:
    def __init__(self, bus, seed, move=True):
        self.bus, self.seed, self.rng, self.move_it = bus, seed, random.Random(seed), move
        self.hv = Hypervisor(bus)
        self.pf = self.hv.pf
        self.rec = Recorder(self.hv)
        self.expected = 0
        self.timing = {}
        self.saved_pending, self.dirty_before = False, b""

    def descriptor(self, t, irq):
        rng = self.rng
        d = Descriptor(pasid=t.pasid)
        size = rng.choice([rng.randint(1, 64), rng.randint(65, 2048), rng.randint(PAGE, 2 * PAGE)])
        lo, hi = DATA_FIRST * PAGE, PAGES * PAGE
        r = rng.random()
        if r < 0.45:
            d.opcode, d.xfer_size = Opcode.MEMMOVE, size
            d.src_addr, d.dst_addr = rng.randrange(lo, hi - size + 1), rng.randrange(lo, hi - size + 1)
        elif r < 0.7:
            d.opcode, d.xfer_size = Opcode.MEMFILL, size
            d.dst_addr, d.src_addr = rng.randrange(lo, hi - size + 1) & ~7, rng.getrandbits(64)
        elif r < 0.85:
            d.opcode, d.xfer_size = Opcode.COMPARE, size
            d.src_addr, d.dst_addr = rng.randrange(lo, hi - size + 1), rng.randrange(lo, hi - size + 1)
        else:
            d.opcode = rng.choice([Opcode.NOOP, Opcode.DRAIN])
        d.flags |= Flag.CRAV | Flag.RCR
        d.completion_addr = t.record_addr()
        self.rec.expect_record(t.name, t.tenant.memory.host(d.completion_addr))
        if irq:
            d.flags |= Flag.RCI
            d.int_handle = t.handle
        return d

    async def post(self, t, count, irq_p, at_least_one_irq=False):
        irqs = [self.rng.random() < irq_p for _ in range(count)]
        if at_least_one_irq:
            irqs[0] = True
        await t.ring.post([self.descriptor(t, irq) for irq in irqs])
        self.expected += count

    async def setup(self):
        pf, rng = self.pf, self.rng
        caps = self.caps = await self.hv.start()
        policy = rng.choice([Policy.RR, Policy.WRR, Policy.QOS])
        await pf.set_arbiter(policy, slice_cycles=3000, cost_a=40, cost_b=32,
                             weights=[rng.randint(1, 4) for _ in range(caps.num_adis)],
                             quanta=[rng.choice([400, 800, 1600]) for _ in range(caps.num_adis)])
        self.tenants = {}
        for i, name in enumerate(TENANTS):
            tenant = self.rec.tenant(await self.hv.create_tenant(name, TenantKind.VM, PAGES))
            handle, dom = 2 * i + 1, tenant.domain
            ring = Ring(self.bus, i, RING_PAGE * PAGE, tenant.memory.host(RING_PAGE * PAGE), RING_SIZE)
            t = _Tenant(tenant, i, handle, 0x40 + i, ring)
            assert await pf.pin(dom, 0, PAGES)
            await pf.bind_adi(i, tenant.pasid, dom)
            for page in range(PAGES):
                await pf.guest_map(i, page)
            await pf.set_ims(handle, tenant.pasid, dest=tenant.dest, vector=t.vector, mask=name == MOVER)
            await pf.enable_adi(i, ring.guest_addr, RING_SIZE, tenant.pasid, dom, engine=i % caps.num_engines)
            for page in range(DATA_FIRST, PAGES):
                await tenant.memory.write(page * PAGE, rng.randbytes(PAGE))
            self.tenants[name] = t

    async def phase_a(self):
        for t in self.tenants.values():
            await self.post(t, self.rng.randint(3, 6), 0.5, at_least_one_irq=t.name == MOVER)
        await wait_for_descriptors(self.pf, self.expected)
        await self.hv.poll_faults()

    async def phase_b(self):
        for t in self.tenants.values():
            await self.post(t, self.rng.randint(16, 24), 0 if t.name == MOVER else 0.4)
        await self.bus.wait_cycles(self.rng.randrange(500, 4000))
        if self.move_it:
            await self.move(self.tenants[MOVER])
        await wait_for_descriptors(self.pf, self.expected)
        await self.hv.poll_faults()

    async def move(self, t):
        """Save ``t``'s virtual device, release its ADI, entry and domain, and restore it onto
        the last ones of the Device."""
        pf, caps, tenant = self.pf, self.caps, t.tenant
        old = (t.adi, t.handle, tenant.domain)
        new = (caps.num_adis - 1, caps.ims_entries - 1, caps.num_domains - 1)
        await pf.hold(_HOLDER, [old[0]])
        self.dirty_before = await pf.harvest(old[2], PAGES)
        blob = await devstate.save(pf, adis=[old[0]], handles=[old[1]], domains=[old[2]])
        self.timing["save"] = {"head_tail": list(await pf.ring_pointers(old[0])), "cycle": self.bus.now(),
                               "bytes": len(blob)}
        # The source lets go of everything: the ring aborted, the ADI unbound, the entry cleared
        # (a pending interrupt with it: the saved state holds it), the pages unpinned, the window shut.
        await pf.adi_command(old[0], regmap.CMD_ADI_CMD_ABORT_MASK)
        await pf.bind_adi(old[0], 0, 0, valid=False)
        await pf.clear_ims(old[1])
        await pf.unpin(old[2], 0, caps.pages_per_domain)
        await pf.harvest(old[2], PAGES)
        await pf.set_domain(old[2], 0, 0)
        await pf.hold(_HOLDER, [new[0]])
        state = await devstate.restore(pf, blob, devstate.Placement(adis={old[0]: new[0]}, handles={old[1]: new[1]},
                                                                    domains={old[2]: new[2]}))
        self.saved_pending = t.handle in state.pending_handles
        t.adi, t.handle = new[0], new[1]
        tenant.domain = new[2]
        t.ring.portal = AdiPortal(self.bus, new[0])
        self.rec.note(t.name, "moved", list(old), list(new), sorted(state.pending_handles),
                      list(await pf.adi_state(new[0])))
        await pf.hold(_HOLDER, ())

    async def phase_c(self):
        mover = self.tenants[MOVER]
        for t in self.tenants.values():
            again = t.name == MOVER and self.seed % 2 == 1
            await self.post(t, self.rng.randint(3, 6), 0.5 if t.name != MOVER or again else 0,
                            at_least_one_irq=again)
        await wait_for_descriptors(self.pf, self.expected)
        delivered = await unmask_restored(self.pf, mover.handle, mover.pasid, self.saved_pending,
                                          lambda: mover.tenant.vic.raise_vector(mover.vector, self.bus.now()))
        self.rec.note(MOVER, "unmasked", int(delivered))
        await self.bus.wait_cycles(200)
        for t in self.tenants.values():
            await self.post(t, self.rng.randint(2, 4), 0.5, at_least_one_irq=True)
        await wait_for_descriptors(self.pf, self.expected)
        await self.hv.poll_faults()

    async def run(self):
        await self.setup()
        await self.phase_a()
        await self.phase_b()
        await self.phase_c()
        for name in TENANTS:
            await self.rec.harvest(name)
        # The mover's data pages alone: its ring's descriptors posted after the move name
        # its new IMS handle, so its whole memory differs from an unmoved run's there.
        data = await self.tenants[MOVER].tenant.memory.read(DATA_FIRST * PAGE, (PAGES - DATA_FIRST) * PAGE)
        self.rec.note(MOVER, "data", hashlib.sha256(data).hexdigest())
        if self.move_it:
            entry = self.rec.tenants[MOVER]
            entry.dirty = bytes(a | b for a, b in zip(entry.dirty, self.dirty_before))
        out = await self.rec.finish()
        out["timing"].update(self.timing)
        return out


async def migrate_tenant(bus, seed):
    """The move-a-tenant program; returns the :class:`~siov.sw.diff.Recorder` record, with
    where the save fell under ``"timing"``."""
    return await _Program(bus, seed).run()


async def uninterrupted(bus, seed):
    """The same workload as :func:`migrate_tenant` for ``seed``, the mover never moved: the
    run that the moved one's tenants must match."""
    return await _Program(bus, seed, move=False).run()
