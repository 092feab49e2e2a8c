"""Workloads for scheduling studies: guests that submit through their own driver, and what they saw.

Each tenant is a VM whose virtual device the VDCM composes (its queues
placed on engines by the VDCM's placement rule), driven by its frontend
driver (:class:`~siov.sw.guest.driver.FrontendDriver`): descriptors go
through :meth:`~siov.sw.guest.driver.Queue.submit`, each with a completion
record. A :class:`Watcher` polls the records (host memory: no device time)
and stamps each completion with the device cycle it saw it, so latencies are
measured as a guest would measure them, on either backend.

Workloads (each an ``async`` function of a :class:`Bench` and its options):

* :func:`dependent`: producer and consumer rings of one VM joined by SIGNAL
  and WAIT (a chain of ``pairs`` pairs);
* :func:`flood`: a VM that keeps its rings full of large copies;
* :func:`client`: one client of the DRM "fair" scheduler series' workloads
  (deep queue, heavy, interactive, oversubscriber, hog).
"""

import dataclasses
import random

from ...rtl.cmd.dsa import Opcode
from ...rtl.dma.defs import PAGE_SHIFT
from ..guest.driver import FrontendDriver
from ..hv.tenant import TenantKind
from ..model.dsa import Descriptor

__all__ = ["Bench", "Watcher", "Vm", "dependent", "flood", "client", "ClientSpec", "DRM_CLIENTS"]

PAGE = 1 << PAGE_SHIFT
FULL = (1 << 64) - 1


class Watcher:
    """Polls completion records every ``every`` cycles and stamps each with the cycle it was seen.

    ``watch(tenant, record_addr, callback)`` calls ``callback(cycle, record_bytes)`` once the
    record's status byte is nonzero.
    """

    def __init__(self, bus, every=8):
        self.bus, self.every = bus, every
        self.pending = []
        self._task = None
        self._stop = False

    def watch(self, tenant, addr, callback):
        """Call ``callback(cycle, record)`` when the record at guest ``addr`` of ``tenant`` is written."""
        self.pending.append((tenant, addr, callback))
        if self._task is None:
            self._task = self.bus.spawn(self._run())

    async def _run(self):
        while not self._stop:
            keep = []
            now = self.bus.now()
            for tenant, addr, cb in self.pending:
                raw = await tenant.memory.read(addr, 32)
                if raw[0]:
                    cb(now, raw)
                else:
                    keep.append((tenant, addr, cb))
            self.pending = keep
            await self.bus.wait_cycles(self.every)

    async def stop(self):
        """Stop polling (after the current round)."""
        self._stop = True
        if self._task is not None:
            await self._task


@dataclasses.dataclass
class Vm:
    """A tenant with its driver and open queues."""
    tenant: object
    driver: object
    queues: list

    @property
    def name(self):
        """The tenant's name."""
        return self.tenant.name


class Bench:
    """What the workloads of one run share: the hypervisor, a :class:`Watcher`, the metrics
    (:class:`~siov.sw.sched.metrics.Metrics`), seeded random generators, and optionally a
    :class:`~siov.sw.diff.Recorder` told of every tenant and completion record."""

    def __init__(self, hv, metrics, seed=0, poll=8, recorder=None):
        self.hv, self.bus, self.metrics = hv, hv.bus, metrics
        self.recorder = recorder
        self.watcher = Watcher(hv.bus, poll)
        self.seed = seed
        self._rngs = {}
        self.records = {}             # tenant name -> host addresses of its records, in order

    def rng(self, vm):
        """The random generator of ``vm`` (a :class:`Vm` or a name): one per tenant, seeded from
        the run's seed and its name, so that what a tenant draws does not depend on how its
        task interleaves with the others'."""
        name = getattr(vm, "name", vm)
        if name not in self._rngs:
            self._rngs[name] = random.Random(f"{self.seed}:{name}")
        return self._rngs[name]

    async def vm(self, name, queues=2, pages=64, ring=64):
        """A VM with a virtual device of ``queues`` queues, each open and enabled."""
        t = await self.hv.create_tenant(name, TenantKind.VM, pages)
        if self.recorder is not None:
            self.recorder.tenant(t)
        vdev = await self.hv.vdcm.create(t, adis=queues)
        drv = await FrontendDriver(vdev).open()
        for q in drv.queues:
            await q.open(ring)
            await q.enable()
        return Vm(t, drv, list(drv.queues))

    async def buffer(self, vm, pages):
        """``pages`` mapped pages of ``vm``'s memory, filled with seeded bytes."""
        addr = vm.driver.memory.alloc(pages * PAGE)
        await vm.driver.dma_map(addr, pages * PAGE)
        await vm.driver.memory.write(addr, self.rng(vm).randbytes(pages * PAGE))
        return addr

    async def submit(self, vm, q, descriptors, on_done=None, nbytes=0):
        """Submit ``descriptors`` on queue ``q`` of ``vm``; each completion is reported to the
        metrics (latency from now, ``nbytes`` each) and to ``on_done(k, cycle, record)``."""
        now = self.bus.now()
        tickets = await q.submit(descriptors)
        rec = self.records.setdefault(vm.name, [])
        for k, t in enumerate(tickets):
            rec.append(vm.tenant.memory.host(t.record_addr))
            if self.recorder is not None:
                self.recorder.expect_record(vm.name, rec[-1])

            def done(cycle, raw, k=k):
                self.metrics.done(vm.name, now, cycle, nbytes)
                if on_done is not None:
                    on_done(k, cycle, raw)
            self.watcher.watch(vm.tenant, t.record_addr, done)
        return tickets

    async def wait_free(self, q, n, poll=64):
        """Until queue ``q`` has ``n`` free entries."""
        while await q.free() < n:
            await self.bus.wait_cycles(poll)


def _cycles(raw):
    return int.from_bytes(raw[20:24], "little")


async def dependent(b, vm, pairs=12, size=512, latencies=None, depth=1, check=False, sem_out=None):
    """Producer (queue 0) and consumer (queue 1) of ``vm`` joined by SIGNAL and WAIT.

    Pair ``j``: the producer fills buffer ``P_j`` and SIGNALs semaphore ``j``; the consumer
    WAITs for it and copies ``P_j`` to ``C_j`` (and, with ``check``, COMPAREs the two: equal
    only if the WAIT held the copy back). The consumer's work is posted first, then the
    producer's, ``depth`` pairs per submission. A pair's latency, from the producer's fill
    handed to its engine (its completion less its record's cycles) to the consumer's copy
    completed, goes to ``latencies``; the semaphores' guest address to ``sem_out``. Returns
    when every pair is done.
    """
    prod, cons = vm.queues[0], vm.queues[1]
    span = -(-pairs * size // PAGE)
    src, dst = await b.buffer(vm, span), await b.buffer(vm, span)
    sem = await b.buffer(vm, 1)
    await vm.driver.memory.write(sem, bytes(PAGE))
    if sem_out is not None:
        sem_out.append(sem)
    fills, moves, done = {}, {}, b.bus.event()
    left = [pairs]
    last = 2 if check else 1

    def filled(j):
        return lambda k, cycle, raw: fills.__setitem__(j, cycle - _cycles(raw)) if k == 0 else None

    def moved(j):
        def cb(k, cycle, raw):
            if k == 1:
                moves[j] = cycle
            if k == last:
                left[0] -= 1
                if not left[0]:
                    done.set()
        return cb

    def consume(j):
        work = [Descriptor(opcode=Opcode.WAIT, sem_addr=sem + 8 * j, sem_value=j + 1, sem_mask=FULL),
                Descriptor(opcode=Opcode.MEMMOVE, src_addr=src + j * size, dst_addr=dst + j * size, xfer_size=size)]
        if check:
            work.append(Descriptor(opcode=Opcode.COMPARE, src_addr=src + j * size, src2_addr=dst + j * size,
                                   xfer_size=size))
        return work

    for j0 in range(0, pairs, depth):
        for j in range(j0, min(pairs, j0 + depth)):
            await b.submit(vm, cons, consume(j), on_done=moved(j), nbytes=size)
    for j0 in range(0, pairs, depth):
        for j in range(j0, min(pairs, j0 + depth)):
            await b.submit(vm, prod, [Descriptor(opcode=Opcode.MEMFILL, pattern=b.rng(vm).getrandbits(64),
                                                 dst_addr=src + j * size, xfer_size=size),
                                      Descriptor(opcode=Opcode.SIGNAL, sem_addr=sem + 8 * j, sem_value=j + 1)],
                           on_done=filled(j), nbytes=size)
    await done.wait()
    if latencies is not None:
        latencies += [moves[j] - fills[j] for j in range(pairs)]


async def flood(b, vm, count=24, size=PAGE, span=None):
    """Each queue of ``vm`` copies ``count`` times ``size`` bytes, kept as full as its ring
    allows. ``span`` (a two-element list) gets the first hand-over and the last completion."""
    src = await b.buffer(vm, 2 * -(-size // PAGE))
    dst = src + -(-size // PAGE) * PAGE
    done, left = b.bus.event(), [count * len(vm.queues)]

    def cb(k, cycle, raw):
        if span is not None:
            start = cycle - _cycles(raw)
            span[0] = start if span[0] is None else min(span[0], start)
            span[1] = cycle if span[1] is None else max(span[1], cycle)
        left[0] -= 1
        if not left[0]:
            done.set()

    for q in vm.queues:
        posted = 0
        while posted < count:
            n = min(count - posted, q.size - 2)
            await b.wait_free(q, n)
            await b.submit(vm, q, [Descriptor(opcode=Opcode.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=size)
                                   for _ in range(n)], on_done=cb, nbytes=size)
            posted += n
    await done.wait()


@dataclasses.dataclass(frozen=True)
class ClientSpec:
    """One client of a DRM "fair" scheduler workload: it keeps ``depth`` descriptors of ``size``
    bytes in flight (a MEMMOVE each), thinks ``think`` cycles after each completes, for
    ``duration`` cycles; ``weight`` is its scheduling weight."""
    name: str
    size: int
    depth: int
    think: int = 0
    weight: int = 1


#: The four client workloads of the Linux DRM "fair" scheduler series (drm_sched: "fair"
#: scheduling, its kunit tests): two deep-queue clients; a heavy client against an interactive
#: one; an oversubscriber against an interactive one; a low-priority hog against a
#: heavy-interactive one.
DRM_CLIENTS = {
    "two deep queues": (ClientSpec("deep0", 2048, 16), ClientSpec("deep1", 2048, 16)),
    "heavy vs interactive": (ClientSpec("heavy", 16384, 4), ClientSpec("interactive", 1024, 1, think=2000)),
    "oversubscriber vs interactive": (ClientSpec("oversub", 4096, 48),
                                      ClientSpec("interactive", 1024, 1, think=2000)),
    "low-priority hog vs heavy-interactive": (ClientSpec("hog", 16384, 8, weight=1),
                                              ClientSpec("heavy-interactive", 4096, 2, think=500, weight=4)),
}


async def client(b, vm, spec, duration, queue=0):
    """Run client ``spec`` on queue ``queue`` of ``vm`` for ``duration`` cycles from now."""
    q = vm.queues[queue]
    pages = -(-spec.size // PAGE)
    src = await b.buffer(vm, 2 * pages)
    dst = src + pages * PAGE
    end = b.bus.now() + duration
    inflight, idle = [0], b.bus.event()

    def cb(k, cycle, raw):
        inflight[0] -= 1
        idle.set()

    while b.bus.now() < end:
        while inflight[0] < spec.depth and b.bus.now() < end:
            if await q.free() < 1:
                break
            inflight[0] += 1
            await b.submit(vm, q, [Descriptor(opcode=Opcode.MEMMOVE, src_addr=src, dst_addr=dst,
                                              xfer_size=spec.size)], on_done=cb, nbytes=spec.size)
            if spec.think:
                break
        idle.clear()
        await b.bus.wait_event(idle, max(1, end - b.bus.now()))
        if spec.think and b.bus.now() < end:
            await b.bus.wait_cycles(spec.think)
    while inflight[0]:
        idle.clear()
        await b.bus.wait_event(idle, 100_000)
