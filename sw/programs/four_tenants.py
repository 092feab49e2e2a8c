"""A host program of raw descriptors: four tenants, every opcode, faults, errors and interrupts.

The differential harness (:mod:`siov.sw.diff`) runs it on both backends and
compares the records. For a seed it does, in order:

1. starts the hypervisor (the device's owner: its driver, its fault queues
   and its interrupts) and has it create four tenants, each with its own
   DMA domain, PASID and destination ``i + 1``; then sets each one's ADI,
   IMS entry (vector ``0x40 + i``) and 64-entry ring up by hand, through
   the hypervisor's driver;
   tenant 2's IMS entry starts masked; the arbiter policy is drawn from the
   seed (round robin, weighted, or QoS time slices);
2. phase 1: every tenant posts a random mix of NOOP, DRAIN, MEMMOVE (any
   alignment, overlapping both ways, across pages), MEMFILL and COMPARE,
   with a few bad descriptors (bad opcode, reserved flag, size 0, misaligned
   fill, interrupt handle beyond the table), page faults on a pinned but
   unmapped page, and interrupts through another tenant's IMS entry (a
   PASID-mismatch fault), in several doorbell batches, interleaved;
3. phase 2: tenant 3 rings its doorbell with a tail beyond its ring (ADI
   ERROR 1), tenant 1 posts a descriptor with a foreign PASID (ERROR 3);
   both are reset and re-enabled and post more work; tenant 0 unmaps a data
   page on the fast path and touches it (a write fault), then maps it again;
   an ADI whose PASID no domain knows is enabled and rung (a fetch fault
   that names nobody); tenant 2's IMS entry is unmasked, delivering its
   pending interrupt;
4. the dirty log of every tenant's domain is harvested.

The hypervisor drains the fault queues after each phase. The number of
faults between two drains stays below the queue depth, so what is recorded
does not depend on timing.
"""

import random

from ..diff import Recorder
from ..guest.ring import Ring
from ..hv.hypervisor import Hypervisor, TenantKind
from ...rtl import regmap
from ...rtl.cmd.arbiter import Policy
from ...rtl.cmd.dsa import Flag, Opcode
from ...rtl.dma.defs import PAGE_SHIFT
from ..model.dsa import Descriptor

__all__ = ["four_tenants", "Layout", "wait_for_descriptors"]

PAGE = 1 << PAGE_SHIFT


class Layout:
    """Guest layout of each tenant and where its window sits in host memory."""
    PAGES = 24
    RING_PAGE, RECORD_PAGES, DATA_FIRST = 0, (1, 2), 3
    UNMAPPED_PAGE = 19              # pinned, never mapped: DMA to it faults
    RO_FIRST = 20                   # pages 20..23 are only ever read
    RING_SIZE = 64


class _Tenant:
    def __init__(self, index, tenant, handle, ring):
        self.index, self.name, self.tenant = index, tenant.name, tenant
        self.adi, self.dom = index, tenant.domain
        self.pasid, self.handle, self.ring = tenant.pasid, handle, ring
        self.slot = 0

    def host(self, guest_addr=0):
        return self.tenant.memory.host_base + guest_addr

    def record_addr(self):
        page = Layout.RECORD_PAGES[0] + self.slot // (PAGE // 32)
        addr = page * PAGE + 32 * (self.slot % (PAGE // 32))
        self.slot += 1
        return addr


async def wait_for_descriptors(pf, total, settle=200):
    """Until the engine has completed or refused ``total`` descriptors in all and is idle,
    then ``settle`` more cycles for the last interrupts."""
    while True:
        c = await pf.bus.read(regmap.ENG_DESC_DONE) + await pf.bus.read(regmap.ENG_DESC_REFUSED)
        if c > total:
            raise AssertionError(f"{c} descriptors completed, expected {total}")
        if c == total and not await pf.engine_busy():
            break
        await pf.bus.wait_cycles(100)
    await pf.bus.wait_cycles(settle)


class _Program:
    def __init__(self, bus, seed):
        self.bus, self.rng = bus, random.Random(seed)
        self.hv = Hypervisor(bus)
        self.pf = self.hv.pf
        self.rec = Recorder(self.hv)
        self.expected = 0            # descriptors the engine will complete or refuse
        self.fault_budget = 0

    # -- descriptors --------------------------------------------------------------

    def _addr(self, size, writable, align=1):
        lo = Layout.DATA_FIRST * PAGE if writable else Layout.RO_FIRST * PAGE
        hi = Layout.UNMAPPED_PAGE * PAGE if writable else Layout.PAGES * PAGE
        addr = self.rng.randrange(lo, hi - size + 1)
        return addr - addr % align

    def _size(self):
        r = self.rng.random()
        if r < 0.4:
            return self.rng.randint(1, 64)
        if r < 0.85:
            return self.rng.randint(65, 2048)
        return self.rng.randint(PAGE, 2 * PAGE)

    def _complete(self, t, d, irq_p=0.4):
        d.flags |= Flag.CRAV | Flag.RCR
        d.completion_addr = t.record_addr()
        self.rec.expect_record(t.name, t.host(d.completion_addr))
        if self.rng.random() < irq_p:
            d.flags |= Flag.RCI
            d.int_handle = t.handle
        return d

    def descriptor(self, t, bad_ok=True):
        rng, d = self.rng, Descriptor(pasid=t.pasid)
        r = rng.random()
        size = self._size()
        if r < 0.35:
            d.opcode, d.xfer_size = Opcode.MEMMOVE, size
            kind = rng.random()
            if kind < 0.15 and size < 3000:          # destination inside the source: descending
                d.src_addr = self._addr(size + 64, True)
                d.dst_addr = d.src_addr + rng.randint(1, 63)
            elif kind < 0.25 and size < 3000:        # source inside the destination: ascending
                d.dst_addr = self._addr(size + 64, True)
                d.src_addr = d.dst_addr + rng.randint(1, 63)
            else:
                d.src_addr = self._addr(size, rng.random() < 0.6)
                d.dst_addr = self._addr(size, True)
        elif r < 0.55:
            d.opcode, d.xfer_size = Opcode.MEMFILL, size
            d.dst_addr = self._addr(size, True, align=8)
            d.src_addr = rng.getrandbits(64)
        elif r < 0.7:
            d.opcode, d.xfer_size = Opcode.COMPARE, size
            d.src_addr = self._addr(size, rng.random() < 0.5)
            d.dst_addr = d.src_addr if rng.random() < 0.3 else self._addr(size, rng.random() < 0.5)
        elif r < 0.78:
            d.opcode = Opcode.NOOP
        elif r < 0.83:
            d.opcode = Opcode.DRAIN
        elif bad_ok and r < 0.9:
            d = self.bad_descriptor(t, rng.randrange(5))
            return self._complete(t, d, irq_p=0)
        elif bad_ok and self.fault_budget > 0:
            # A copy from or to the pinned but unmapped page: one DMA fault.
            self.fault_budget -= 1
            d.opcode, d.xfer_size = Opcode.MEMMOVE, rng.randint(8, 256)
            hole = Layout.UNMAPPED_PAGE * PAGE + rng.randrange(0, PAGE - 256)
            if rng.random() < 0.5:
                d.src_addr, d.dst_addr = hole, self._addr(d.xfer_size, True)
            else:
                d.src_addr, d.dst_addr = self._addr(d.xfer_size, False), hole
        else:
            d.opcode = Opcode.NOOP
        self._complete(t, d)
        if d.flags & Flag.RCI and self.fault_budget > 0 and rng.random() < 0.15:
            # Another tenant's IMS entry: the remapper refuses our PASID there.
            self.fault_budget -= 1
            d.int_handle = (t.handle + 3) % 256
        return d

    def bad_descriptor(self, t, kind):
        d = Descriptor(pasid=t.pasid, opcode=Opcode.MEMMOVE, xfer_size=64,
                       src_addr=self._addr(64, False), dst_addr=self._addr(64, True))
        if kind == 0:
            d.opcode = 0x7F                                  # bad opcode (0x10)
        elif kind == 1:
            d.flags |= 1 << 20                               # reserved flag (0x11)
        elif kind == 2:
            d.xfer_size = 0                                  # transfer size (0x13)
        elif kind == 3:
            d.opcode, d.dst_addr = Opcode.MEMFILL, self._addr(64, True, align=8) + 4   # alignment (0x1c)
        else:
            d.flags |= Flag.RCI                              # handle beyond the table (0x19)
            d.int_handle = 0xFFFF
        return d

    async def post(self, t, descriptors):
        await t.ring.post(descriptors)
        self.expected += len(descriptors)

    # -- the program ----------------------------------------------------------------

    async def setup(self):
        pf, rng = self.pf, self.rng
        caps = await self.hv.start()
        n = 4
        policy = rng.choice([Policy.RR, Policy.WRR, Policy.QOS])
        await pf.set_arbiter(policy, slice_cycles=3000, cost_a=40, cost_b=32,
                             weights=[rng.randint(1, 4) for _ in range(n)],
                             quanta=[rng.choice([400, 800, 1600]) for _ in range(n)])
        self.tenants = []
        for i in range(n):
            tenant = self.rec.tenant(await self.hv.create_tenant(f"t{i}", TenantKind.VM, Layout.PAGES))
            handle, dom, pasid = (3 * i + 1) % caps.ims_entries, tenant.domain, tenant.pasid
            ring = Ring(self.bus, i, Layout.RING_PAGE * PAGE, tenant.memory.host(Layout.RING_PAGE * PAGE),
                        Layout.RING_SIZE)
            t = _Tenant(i, tenant, handle, ring)
            assert await pf.pin(dom, 0, Layout.PAGES)
            await pf.bind_adi(i, pasid, dom)
            for page in range(Layout.PAGES):
                if page != Layout.UNMAPPED_PAGE:
                    await pf.guest_map(i, page)
            await pf.set_ims(handle, pasid, dest=tenant.dest, vector=0x40 + i, mask=(i == 2))
            await pf.enable_adi(i, ring.guest_addr, Layout.RING_SIZE, pasid, dom)
            for page in range(Layout.DATA_FIRST, Layout.PAGES):
                await tenant.memory.write(page * PAGE, rng.randbytes(PAGE))
            self.tenants.append(t)

    async def phase1(self):
        self.fault_budget = 10
        batches = {t.name: [[self.descriptor(t) for _ in range(self.rng.randint(2, 6))]
                            for _ in range(3)] for t in self.tenants}
        for b in range(3):
            for t in self.tenants:
                await self.post(t, batches[t.name][b])
        await wait_for_descriptors(self.pf, self.expected)
        await self.hv.poll_faults()

    async def phase2(self):
        pf, rng = self.pf, self.rng
        self.fault_budget = 6
        t0, t1, t2, t3 = self.tenants
        # Tenant 3: a doorbell beyond the ring puts the ADI in ERROR (code 1).
        await t3.ring.ring_doorbell(Layout.RING_SIZE + 5)
        state = await pf.adi_state(t3.adi)
        await self.reset_and_enable(t3, state)
        # Tenant 1: a descriptor under a foreign PASID is refused (ERROR 3).
        await self.post(t1, [Descriptor(pasid=t2.pasid, opcode=Opcode.NOOP)])
        await wait_for_descriptors(pf, self.expected)
        state = await pf.adi_state(t1.adi)
        await self.reset_and_enable(t1, state)
        # Tenant 0 unmaps a data page (fast path) and writes to it: a write fault.
        page = Layout.DATA_FIRST + 1
        await pf.guest_map(t0.adi, page, unmap=True)
        fill = Descriptor(pasid=t0.pasid, opcode=Opcode.MEMFILL, xfer_size=128, dst_addr=page * PAGE + 64,
                          src_addr=0x5A5A)
        await self.post(t0, [self._complete(t0, fill, irq_p=0)])
        await wait_for_descriptors(pf, self.expected)
        await pf.guest_map(t0.adi, page)
        # An ADI whose PASID no domain knows: its fetch is blocked (ERROR 4, a fault naming nobody).
        stray = 4
        await pf.enable_adi(stray, 0, 4, 0x7777, 0)
        await self.bus.write(regmap.ADI_PAGES_BASE + stray * PAGE, 1)
        self.expected += 1
        await wait_for_descriptors(pf, self.expected)
        await pf.adi_command(stray, regmap.CMD_ADI_CMD_RESET_ERROR_MASK)
        # More work from everybody, then tenant 2's interrupt entry is unmasked.
        for t in self.tenants:
            await self.post(t, [self.descriptor(t, bad_ok=rng.random() < 0.5) for _ in range(rng.randint(2, 5))])
        await wait_for_descriptors(pf, self.expected)
        await pf.mask_ims(t2.handle, t2.pasid, mask=False)
        await self.bus.wait_cycles(200)
        await self.hv.poll_faults()

    async def reset_and_enable(self, t, state):
        await self.pf.adi_command(t.adi, regmap.CMD_ADI_CMD_RESET_ERROR_MASK)
        await self.pf.enable_adi(t.adi, t.ring.guest_addr, Layout.RING_SIZE, t.pasid, t.dom)
        t.ring.reset()
        self.rec.note(t.name, "adi_state", *state)
        await self.post(t, [self.descriptor(t, bad_ok=False) for _ in range(3)])

    async def run(self):
        await self.setup()
        await self.phase1()
        await self.phase2()
        for t in self.tenants:
            await self.rec.harvest(t.name)
        return await self.rec.finish()


async def four_tenants(bus, seed):
    """The 4-tenant raw-descriptor program; returns the :class:`~siov.sw.diff.Recorder` record."""
    return await _Program(bus, seed).run()
