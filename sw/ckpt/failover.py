"""HA failover programs: a multi-tenant workload checkpointed on a primary Device, restored onto
a fresh secondary Device, and compared with an uninterrupted golden run.

Ref: US20170329623A1 step 5 (a backup takes over from the last snapshot);
Remus (NSDI'08) for output commit.

Three programs, each ``async def program(bus, seed, arg)`` for
:func:`siov.sw.platform.run_program` on either backend, each on a Device of
its own (their results are JSON-able, so a chain made on one backend
restores on the other):

* :func:`golden`: the workload runs to its end, nothing checkpointed;
* :func:`primary`: the same, with every tenant protected by one
  :class:`~siov.sw.ckpt.epoch.HaCheckpointer` (a base checkpoint after boot,
  then :func:`~siov.sw.ckpt.epoch.run_epochs` every ``interval`` cycles); at
  device cycle ``fail_at`` the primary stops dead (every task cancelled
  wherever it is, a checkpoint half taken included). It returns what a
  secondary can read (each tenant's chain up to the last group commit) and
  what left the VMs (the released outputs and interrupts);
* :func:`secondary`: boots the same VMM configuration on a fresh Device (the
  tenants, their virtual devices and the guests' driver set-up, no queue
  enabled), restores each tenant's chain through the VFIO migration states
  (RESUMING, the device state and pages as a data stream, RUNNING), its
  virtual interrupt controller and its guest's driver view, and runs the
  workload on to its end.

**The workload.** Each tenant's guest runs one vCPU whose whole state lives in
its memory (a state page: jobs posted, jobs reported, descriptors posted and
reported), so a checkpoint of its memory is a checkpoint of its guest. A
step reports the jobs whose completion records are all written (the report
is an output, and a digest of it goes to a results page), and posts the next
job (one to three MEMMOVE, MEMFILL or COMPARE descriptors chosen from the
seed, each job writing a page of its own, every other job with an
interrupt) while the ring has room. A checkpoint pauses the vCPUs between
two steps, as a VMM pauses its vCPUs.

**Compared.** Guest memory (completion records without their timing fields,
``cycles`` and ``start_cycle``: device time differs after a failover),
each tenant's outputs in order, and the vectors of its interrupts in order.
"""

import hashlib
import json
import random

from ...rtl.cmd.dsa import COMPLETION_BYTES, Opcode
from ...rtl.dma.defs import PAGE_SHIFT
from ..guest.driver import FrontendDriver
from ..hv.hypervisor import Hypervisor, TenantKind
from ..hv.migration import DevstateCodec, MigrationState, encode_records
from ..model.dsa import CompletionRecord, Descriptor
from ..sched.scanner import CommandScanner
from .epoch import HaCheckpointer, device_identity, run_epochs
from .storage import load_chain

__all__ = ["Workload", "Vcpus", "boot", "golden", "primary", "secondary", "canonical_memory", "restore_chain", "output_digest", "DEFAULTS"]

PAGE = 1 << PAGE_SHIFT
#: The workload's defaults (``arg`` overrides them): tenants, pages each, ring entries, jobs per
#: tenant, checkpoint interval and alignment slack (device cycles), copy cost per page.
DEFAULTS = {"tenants": 3, "pages": 64, "ring": 32, "jobs": 24, "interval": 4000, "slack": 1500,
            "copy_cycles_per_page": 0, "poll": 150}
_SRC_PAGES = 8
_STATE = ("next_job", "next_report", "posted", "reported")


def _arg(arg):
    return dict(DEFAULTS, **(arg or {}))


class Vcpus:
    """Pause and resume of the guests' vCPUs: a checkpoint waits until no vCPU is inside a step,
    and vCPUs start no step while paused."""

    def __init__(self, bus):
        self.bus, self.paused, self.busy = bus, False, 0

    async def pause(self):
        """Stop the vCPUs between two steps; returns once none is inside one."""
        self.paused = True
        while self.busy:
            await self.bus.wait_cycles(10)

    async def resume(self):
        """Let the vCPUs step again."""
        self.paused = False

    async def gate(self):
        """Called by a vCPU before a step: waits while paused."""
        while self.paused:
            await self.bus.wait_cycles(10)


class Tenant:
    """One VM of the workload: its tenant, virtual device, driver, queue and guest addresses."""

    def __init__(self, t, vdev, drv, q, state, results, src, dst):
        self.t, self.vdev, self.drv, self.q = t, vdev, drv, q
        self.state, self.results, self.src, self.dst = state, results, src, dst

    @property
    def name(self):
        """The tenant's name."""
        return self.t.name


class Workload:
    """The VMs of one run (:func:`boot`) and their guests' vCPU loop."""

    def __init__(self, bus, hv, seed, cfg, tenants):
        self.bus, self.hv, self.seed, self.cfg, self.tenants = bus, hv, seed, cfg, tenants
        self.vcpus = Vcpus(bus)
        self.outputs = {vm.name: [] for vm in tenants}
        self.output = None            # where a report goes (default: kept in self.outputs)

    def job(self, vm, j):
        """``(descriptors, interrupt)`` of job ``j`` of ``vm``: a function of the seed alone."""
        rng = random.Random(f"{self.seed}/{vm.name}/{j}")
        dst = vm.dst + j * PAGE
        descs = []
        for k in range(rng.randint(1, 3)):
            kind = rng.choice((Opcode.MEMMOVE, Opcode.MEMFILL, Opcode.COMPARE))
            size = rng.choice((64, 256, 1024, 2048))
            off = k * 1024 if size <= 1024 else 0
            a = vm.src + rng.randrange(_SRC_PAGES) * PAGE + rng.randrange(0, PAGE - size + 1, 64)
            if kind is Opcode.MEMMOVE:
                descs.append(Descriptor(opcode=Opcode.MEMMOVE, src_addr=a, dst_addr=dst + off, xfer_size=size))
            elif kind is Opcode.MEMFILL:
                descs.append(Descriptor(opcode=Opcode.MEMFILL, pattern=rng.getrandbits(64), dst_addr=dst + off,
                                        xfer_size=size))
            else:
                b = vm.src + rng.randrange(_SRC_PAGES) * PAGE + rng.randrange(0, PAGE - size + 1, 64)
                descs.append(Descriptor(opcode=Opcode.COMPARE, src_addr=a, src2_addr=b, xfer_size=size))
        return descs, j % 2 == 0

    async def read_state(self, vm):
        """The guest's state page as a dict (:data:`_STATE`)."""
        raw = await vm.t.memory.read(vm.state, 4 * len(_STATE))
        return {k: int.from_bytes(raw[4 * i:4 * i + 4], "little") for i, k in enumerate(_STATE)}

    async def _write_state(self, vm, st):
        await vm.t.memory.write(vm.state, b"".join(st[k].to_bytes(4, "little") for k in _STATE))

    async def all_done(self):
        """Whether every guest reported its last job."""
        for vm in self.tenants:
            if (await self.read_state(vm))["next_report"] < self.cfg["jobs"]:
                return False
        return True

    async def step(self, vm):
        """One vCPU step of ``vm``'s guest: report finished jobs, post the next; whether it did
        anything, and whether the guest has reported every job."""
        st = await self.read_state(vm)
        moved = False
        q, size = vm.q, vm.q.size
        while st["next_report"] < st["next_job"]:
            j = st["next_report"]
            n = len(self.job(vm, j)[0])
            recs = []
            for s in range(st["reported"], st["reported"] + n):
                raw = await vm.t.memory.read(q.records + COMPLETION_BYTES * (s % size), COMPLETION_BYTES)
                recs.append(CompletionRecord.unpack(raw))
            if not all(r.status for r in recs):
                break
            value = [vm.name, j, [[r.status, r.result, r.bytes_completed] for r in recs]]
            digest = hashlib.sha256(json.dumps(value).encode()).digest()[:16]
            await vm.t.memory.write(vm.results + 16 * j, digest)
            (self.output or self.outputs[vm.name].append)(value)
            st["next_report"] += 1
            st["reported"] += n
            moved = True
        if st["next_job"] < self.cfg["jobs"]:
            descs, irq = self.job(vm, st["next_job"])
            if st["posted"] - st["reported"] + len(descs) < size and await q.free() >= len(descs):
                await q.submit(descs, interrupt=irq)
                st["next_job"] += 1
                st["posted"] += len(descs)
                moved = True
        if moved:
            await self._write_state(vm, st)
        return moved, st["next_report"] >= self.cfg["jobs"]

    async def vcpu(self, vm):
        """``vm``'s vCPU: steps until its guest has reported every job."""
        while True:
            await self.vcpus.gate()
            self.vcpus.busy += 1
            try:
                moved, done = await self.step(vm)
            finally:
                self.vcpus.busy -= 1
            if done:
                return
            if not moved:
                await self.bus.wait_cycles(self.cfg["poll"])

    async def run(self):
        """Every vCPU to its end."""
        tasks = [self.bus.spawn(self.vcpu(vm)) for vm in self.tenants]
        for task in tasks:
            await task

    async def result(self):
        """What a run is compared on: per tenant the canonical memory's digest and per-page
        digests, the outputs, and the interrupt vectors in order."""
        out = {}
        for vm in self.tenants:
            mem = canonical_memory(await vm.t.memory.read(0, vm.t.pages * PAGE), vm.q.records, vm.q.size)
            out[vm.name] = {"memory": hashlib.sha256(mem).hexdigest(),
                            "pages": [hashlib.sha256(mem[p * PAGE:(p + 1) * PAGE]).hexdigest()[:12]
                                      for p in range(vm.t.pages)],
                            "outputs": self.outputs[vm.name],
                            "vectors": [v for v, _ in vm.t.vic.log]}
        return out


def canonical_memory(mem, records, entries):
    """Guest memory ``mem`` with the timing fields (``cycles``, ``start_cycle``) of the
    ``entries`` completion records at ``records`` zeroed: what a failover must reproduce."""
    mem = bytearray(mem)
    for k in range(entries):
        at = records + COMPLETION_BYTES * k
        rec = CompletionRecord.unpack(bytes(mem[at:at + COMPLETION_BYTES]))
        rec.cycles = rec.start_cycle = 0
        mem[at:at + COMPLETION_BYTES] = rec.pack()
    return bytes(mem)


async def boot(bus, seed, arg, enable=True):
    """The VMM configuration and the guests' set-up, the same on every Device: a started
    hypervisor, ``tenants`` VMs each with a virtual device of one ADI, its driver, a ring and
    its records, a state page, a results page, source pages the guest fills and a destination
    page per job. ``enable=False`` leaves the queues disabled (a secondary's restore enables
    them as saved). A :class:`Workload`."""
    cfg = _arg(arg)
    hv = Hypervisor(bus)
    await hv.start()
    codec = DevstateCodec(cfg.get("fingerprint"))
    vms = []
    for i in range(cfg["tenants"]):
        t = await hv.create_tenant(f"vm{i}", TenantKind.VM, cfg["pages"])
        vdev = await hv.vdcm.create(t, adis=1)
        vdev.migration.codec = codec
        drv = await FrontendDriver(vdev).open()
        q = drv.queues[0]
        await q.open(cfg["ring"])
        if enable:
            await q.enable()
        state, results = t.memory.alloc(PAGE), t.memory.alloc(PAGE)
        src, dst = t.memory.alloc(_SRC_PAGES * PAGE), t.memory.alloc(cfg["jobs"] * PAGE)
        for addr, n in ((state, PAGE), (results, PAGE), (src, _SRC_PAGES * PAGE), (dst, cfg["jobs"] * PAGE)):
            await drv.dma_map(addr, n)
        rng = random.Random(f"{seed}/{t.name}/src")
        await t.memory.write(src, rng.randbytes(_SRC_PAGES * PAGE))
        vms.append(Tenant(t, vdev, drv, q, state, results, src, dst))
    return Workload(bus, hv, seed, cfg, vms)


async def golden(bus, seed, arg=None):
    """The workload from boot to its end, uninterrupted and never checkpointed; its
    :meth:`Workload.result`."""
    w = await boot(bus, seed, arg)
    await w.run()
    return await w.result()


async def primary(bus, seed, arg=None):
    """The workload with every tenant protected, failing at device cycle ``arg["fail_at"]``
    (None: it runs to its end and takes a last checkpoint).

    Returns ``{"chains": {tenant: [image hex]}, "committed": epoch, "released": {tenant:
    [output]}, "interrupts": {tenant: [vector]} (seen by host observers), "epochs": [...],
    "failed": bool, "result": its :meth:`Workload.result` if it did not fail}``.
    """
    cfg = _arg(arg)
    w = await boot(bus, seed, cfg)
    meta = await device_identity(w.hv.pf, cfg.get("fingerprint"))
    ck = HaCheckpointer([vm.vdev for vm in w.tenants], scanner=CommandScanner(w.hv), meta=meta, vcpus=w.vcpus,
                        copy_cycles_per_page=cfg["copy_cycles_per_page"])
    w.output = ck.output
    await ck.checkpoint()                          # the base, before the guests start
    fail_at = cfg.get("fail_at")
    vcpus = [bus.spawn(w.vcpu(vm)) for vm in w.tenants]
    finished = []

    async def done():
        return bool(finished)
    loop = bus.spawn(run_epochs(ck, cfg["interval"], cfg["slack"], done))
    failed = False
    while True:
        if all(task.done() for task in vcpus):
            break
        if fail_at is not None and bus.now() >= fail_at:
            failed = True
            break
        step = cfg["poll"] if fail_at is None else max(1, min(cfg["poll"], fail_at - bus.now()))
        await bus.wait_cycles(step)
    if failed:
        for task in vcpus + [loop]:
            task.cancel()
    else:
        finished.append(True)
        await loop
        await ck.checkpoint()                      # the last outputs leave with it
    released = {vm.name: [] for vm in w.tenants}
    for _, value in ck.released:
        released[value[0]].append(value)
    return {"chains": {name: [b.hex() for b in blobs] for name, blobs in ck.chains().items()},
            "committed": ck.committed, "released": released, "failed": failed, "failed_at": bus.now(),
            "interrupts": {vm.name: [v for v, _ in ck.visible_interrupts(vm.name)] for vm in w.tenants},
            "epochs": [{"epoch": r.epoch, "pages": r.pages, "predicted_only": r.predicted_only,
                        "downtime": r.downtime, "spans": [[s.name, s.start, s.end] for s in r.spans]}
                       for r in ck.epochs],
            "result": None if failed else await w.result()}


async def restore_chain(vm, blobs):
    """Restore ``vm`` (booted with its queue disabled) from its chain ``blobs``: the chain is
    checked whole (:func:`~siov.sw.ckpt.storage.load_chain`) before anything is applied; then
    the virtual interrupt controller, then the device state and pages through the VFIO states
    (RESUMING, the stream, RUNNING: the device state is checked against this Device before its
    first write), then the guest driver's view of its ring. Returns the snapshot."""
    snap = load_chain(blobs)
    vic = json.loads(snap.sections["vic"])
    m = vm.vdev.migration
    await m.set_state(MigrationState.RESUMING)
    m.write_data(encode_records(sorted(snap.pages.items()), snap.sections["device"]))
    await m.set_state(MigrationState.STOP)         # decodes, restores the device state, then the pages
    vm.t.vic.log[:] = [tuple(e) for e in vic["log"]]
    vm.t.vic.pending.clear()
    vm.t.vic.pending.update({int(k): v for k, v in vic["pending"].items()})
    head, tail = await vm.vdev.vdcm.pf.ring_pointers(vm.vdev.adis[0])
    ring = vm.q.ring
    ring.head, ring.tail = head, tail
    st = int.from_bytes(snap.pages[vm.state // PAGE][vm.state % PAGE + 8:vm.state % PAGE + 12], "little")
    vm.q.slot = st                                 # descriptors posted: the next record's slot
    await m.set_state(MigrationState.RUNNING)
    return snap


async def secondary(bus, seed, arg):
    """Take over from a primary: ``arg["chains"]`` (tenant -> image hex, up to its last commit)
    restored onto this fresh Device, then the workload runs to its end.

    Returns ``{"result": Workload.result, "restored": {tenant: {"state": the guest's state
    page, "results": the results page's digests per job, hex}}, "epoch": the epoch restored}``.
    """
    cfg = _arg(arg)
    w = await boot(bus, seed, cfg, enable=False)
    restored, epoch = {}, None
    for vm in w.tenants:
        snap = await restore_chain(vm, [bytes.fromhex(b) for b in arg["chains"][vm.name]])
        epoch = snap.epoch
        restored[vm.name] = {"state": await w.read_state(vm), "vectors": [v for v, _ in vm.t.vic.log],
                             "results": [(await vm.t.memory.read(vm.results + 16 * j, 16)).hex()
                                         for j in range(cfg["jobs"])]}
    await w.run()
    return {"result": await w.result(), "restored": restored, "epoch": epoch}


def output_digest(value):
    """The digest a guest writes to its results page for output ``value`` (hex)."""
    return hashlib.sha256(json.dumps(value).encode()).digest()[:16].hex()
