"""A host program of rings that depend on each other: producers and consumers joined by SIGNAL and WAIT.

The differential harness (:mod:`siov.sw.diff`) runs it on both backends and
compares the records. For a seed it does, in order:

1. has the hypervisor create two VMs, each with a DMA domain and a PASID
   shared by two rings set up by hand through the hypervisor's driver:
   a producer ring on engine 0 and a consumer ring on engine 1 (on a Device
   of one engine, both on engine 0); a WAIT re-check period drawn from the
   seed;
2. posts every consumer's work first: for each pair j, WAIT until semaphore j
   holds j + 1 (under a full mask, or on its low byte only), then copy the
   producer's buffer P_j into the consumer's C_j and COMPARE the two (equal,
   whatever the timing, only if the WAIT held the copy back); then the
   producers' work: fill P_j, then SIGNAL semaphore j;
3. in the middle, a gang slice: the mask gives VM 0's two rings every engine
   for a while, then every ADI again;
4. phase 2: with a short WAIT timeout, a WAIT on a semaphore nobody signals
   completes with WAIT_TIMEOUT, a WAIT and a SIGNAL on a pinned but unmapped
   page fault (read and write), and a misaligned WAIT fails its alignment
   check;
5. harvests both domains' dirty logs.

What depends on timing: the records' cycles, and DMA.CNT_ALLOWED (see
:data:`~siov.sw.diff.TIMING_COUNTERS`); both go under ``"timing"``.
"""

import random

from ..diff import Recorder
from ..guest.ring import Ring
from ..hv.hypervisor import Hypervisor, TenantKind
from ...rtl.cmd.dsa import Flag, Opcode
from ...rtl.dma.defs import PAGE_SHIFT
from ..model.dsa import Descriptor
from .four_tenants import wait_for_descriptors

__all__ = ["cross_ring"]

PAGE = 1 << PAGE_SHIFT
PAGES = 24
RING_PAGES = (0, 1)          # producer, consumer
RECORD_PAGES = (2, 3)
SEM_PAGE = 4
P_FIRST, C_FIRST = 5, 11     # six buffer pages each
UNMAPPED_PAGE = 19
RING_SIZE = 64
PAIRS = 8
FULL_MASK = (1 << 64) - 1


class _Ring:
    def __init__(self, adi, engine, ring, record_page):
        self.adi, self.engine, self.ring, self.record_page = adi, engine, ring, record_page
        self.slot = 0


class _Vm:
    def __init__(self, index, tenant, handle):
        self.index, self.name, self.tenant, self.handle = index, tenant.name, tenant, handle
        self.dom, self.pasid = tenant.domain, tenant.pasid
        self.rings = []


class _Program:
    def __init__(self, bus, seed):
        self.bus, self.rng = bus, random.Random(seed)
        self.hv = Hypervisor(bus)
        self.pf = self.hv.pf
        self.rec = Recorder(self.hv, timing_counters=("dma_allowed",))
        self.expected = 0

    def complete(self, vm, ring, d, irq=False):
        d.pasid = vm.pasid
        d.flags |= Flag.CRAV | Flag.RCR | (Flag.RCI if irq else 0)
        d.int_handle = vm.handle
        d.completion_addr = ring.record_page * PAGE + 32 * ring.slot
        ring.slot += 1
        self.rec.expect_record(vm.name, vm.tenant.memory.host(d.completion_addr))
        return d

    async def post(self, ring, descriptors):
        await ring.ring.post(descriptors)
        self.expected += len(descriptors)

    async def setup(self):
        pf, rng = self.pf, self.rng
        caps = await self.hv.start()
        await pf.set_wait(recheck_cycles=rng.choice([0, 15, 63]), timeout_cycles=1 << 24)
        self.vms = []
        for v in range(2):
            vm = _Vm(v, self.rec.tenant(await self.hv.create_tenant(f"vm{v}", TenantKind.VM, PAGES)), 7 + 5 * v)
            base = vm.tenant.memory.host_base
            assert await pf.pin(vm.dom, 0, PAGES)
            await pf.set_ims(vm.handle, vm.pasid, dest=vm.tenant.dest, vector=0x50 + v)
            for r in range(2):
                adi = 2 * v + r
                engine = r % caps.num_engines
                ring = Ring(self.bus, adi, RING_PAGES[r] * PAGE, base + RING_PAGES[r] * PAGE, RING_SIZE)
                await pf.bind_adi(adi, vm.pasid, vm.dom)
                for page in range(PAGES):
                    if page != UNMAPPED_PAGE:
                        await pf.guest_map(adi, page)
                await pf.enable_adi(adi, ring.guest_addr, RING_SIZE, vm.pasid, vm.dom, engine=engine)
                vm.rings.append(_Ring(adi, engine, ring, RECORD_PAGES[r]))
            await self.bus.mem_write(base + SEM_PAGE * PAGE, bytes(PAGE))
            for page in range(P_FIRST, PAGES):
                await self.bus.mem_write(base + page * PAGE, rng.randbytes(PAGE))
            self.vms.append(vm)

    def pair(self, vm, j):
        prod, cons = vm.rings
        size = self.rng.randrange(8, 2049, 8)
        p_j = P_FIRST * PAGE + j * 2048 + self.rng.randrange(0, 8) * 8 % (2048 - size + 8)
        c_j = C_FIRST * PAGE + j * 2048 + self.rng.randrange(0, 2048 - size + 1)
        low_byte = self.rng.random() < 0.5
        value = (j + 1) | (self.rng.getrandbits(56) << 8 if low_byte else 0)
        produce = [
            self.complete(vm, prod, Descriptor(opcode=Opcode.MEMFILL, xfer_size=size, dst_addr=p_j,
                                               src_addr=self.rng.getrandbits(64))),
            self.complete(vm, prod, Descriptor(opcode=Opcode.SIGNAL, dst_addr=SEM_PAGE * PAGE + 8 * j,
                                               sem_value=value)),
        ]
        consume = [
            self.complete(vm, cons, Descriptor(opcode=Opcode.WAIT, src_addr=SEM_PAGE * PAGE + 8 * j,
                                               sem_value=j + 1, sem_mask=0xFF if low_byte else FULL_MASK)),
            self.complete(vm, cons, Descriptor(opcode=Opcode.MEMMOVE, xfer_size=size, src_addr=p_j, dst_addr=c_j)),
            self.complete(vm, cons, Descriptor(opcode=Opcode.COMPARE, xfer_size=size, src_addr=p_j, dst_addr=c_j),
                          irq=True),
        ]
        return produce, consume

    async def phase1(self):
        work = {vm.name: [self.pair(vm, j) for j in range(PAIRS)] for vm in self.vms}
        for vm in self.vms:
            await self.post(vm.rings[1], [d for _, c in work[vm.name] for d in c])
        await self.bus.wait_cycles(500)
        for vm in self.vms:
            await self.post(vm.rings[0], [d for p, _ in work[vm.name] for d in p])
        await self.bus.wait_cycles(1500)
        await self.pf.set_eligible([r.adi for r in self.vms[0].rings])
        await self.bus.wait_cycles(3000)
        await self.pf.set_eligible(range(4))
        await wait_for_descriptors(self.pf, self.expected)
        await self.hv.poll_faults()

    async def phase2(self):
        await self.pf.set_wait(timeout_cycles=1500)
        vm = self.vms[1]
        cons = vm.rings[1]
        await self.post(cons, [
            self.complete(vm, cons, Descriptor(opcode=Opcode.WAIT, src_addr=SEM_PAGE * PAGE + 8 * 60,
                                               sem_value=0xDEAD, sem_mask=FULL_MASK), irq=True),
            self.complete(vm, cons, Descriptor(opcode=Opcode.WAIT, src_addr=UNMAPPED_PAGE * PAGE + 8,
                                               sem_value=1, sem_mask=FULL_MASK)),
            self.complete(vm, cons, Descriptor(opcode=Opcode.SIGNAL, dst_addr=UNMAPPED_PAGE * PAGE + 16,
                                               sem_value=2)),
            self.complete(vm, cons, Descriptor(opcode=Opcode.WAIT, src_addr=SEM_PAGE * PAGE + 4,
                                               sem_value=0, sem_mask=FULL_MASK)),
        ])
        await wait_for_descriptors(self.pf, self.expected)
        await self.hv.poll_faults()

    async def run(self):
        await self.setup()
        await self.phase1()
        await self.phase2()
        for vm in self.vms:
            await self.rec.harvest(vm.name)
        return await self.rec.finish()


async def cross_ring(bus, seed):
    """The cross-ring dependency program; returns the :class:`~siov.sw.diff.Recorder` record."""
    return await _Program(bus, seed).run()
