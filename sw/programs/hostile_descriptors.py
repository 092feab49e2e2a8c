"""A hostile tenant's descriptors beside a victim's, on either backend.

Guest memory is hostile: whatever a tenant writes into its ring, the Device
must refuse or contain it, and so must the model backend that stands in for
it (no guest-written value may make the model raise, hang, or take time the
RTL would not). This program runs a given list of descriptors as one
tenant's (the attacker) next to another tenant (the victim) that shares its
engine, and records what each did, so that the same list gives the same
record on the model and on the RTL (:func:`siov.sw.diff.compare`-style:
what depends on timing sits under ``"timing"``).

``arg`` is ``{"descriptors": [64-byte descriptors as hex], "burst": n}``.
For a seed it does, in order:

1. sets up the attacker (domain 0, PASID :data:`ATTACKER_PASID`, ADI 0) and
   the victim (domain 1, ADI 1), both on engine 0 under round robin, each
   with an IMS entry; the attacker's window is :data:`PAGES` pages: its
   ring, a record page and data pages mapped, :data:`UNMAPPED_PAGE` pinned
   but not mapped, and the last page neither; WAITs time out after
   :data:`WAIT_TIMEOUT` cycles;
2. one at a time, posts each descriptor as it is, waits until the engine
   has completed or refused it, and notes the completion record at its
   ``completion_addr`` (when that lies in the attacker's window), ENG's
   LAST_STATUS, the ADI's state, and the faults it raised; an ADI in ERROR
   (a foreign PASID) is reset and enabled again. ENG.LAST_CYCLES (what the
   engine spent on it) is timing;
3. posts the first ``burst`` descriptors at once (under the attacker's own
   PASID), and right after them the victim's NOOP with a completion
   interrupt: the victim's latency, from its doorbell to its interrupt, is
   timing, and it is what a descriptor can deny another tenant;
4. returns both windows' memory digests, the interrupts per destination and
   the event counters (DMA.CNT_ALLOWED under timing: each WAIT re-check is
   a tracker request).

:func:`draw_descriptor` draws one hostile descriptor from a
:class:`random.Random` (hypothesis's ``st.randoms()`` gives one too), in the
attacker's layout: any opcode, flags, size and address, inside or outside
the window, with records on mapped, unmapped or foreign pages.
"""

import hashlib

from ..guest.ring import Ring
from ..hv.guest_memory import window_base
from ..hv.pf import PfDriver
from ...rtl import regmap
from ...rtl.cmd.arbiter import Policy
from ...rtl.cmd.dsa import COMPLETION_BYTES, MAX_XFER, Flag, Opcode, SUPPORTED_FLAGS
from ...rtl.dma.defs import PAGE_SHIFT
from ..model.dsa import CompletionRecord, Descriptor

__all__ = ["hostile_descriptors", "draw_descriptor", "ATTACKER_PASID", "PAGES", "UNMAPPED_PAGE",
           "RING_SIZE", "WAIT_TIMEOUT"]

PAGE = 1 << PAGE_SHIFT
ATTACKER_PASID, VICTIM_PASID = 0x42, 0x177
ATTACKER_HANDLE, VICTIM_HANDLE = 3, 5
PAGES = 8
RING_PAGE, RECORD_PAGE, DATA_PAGES = 0, 1, (2, 3, 4, 5)
UNMAPPED_PAGE = 6            # pinned, never mapped
UNPINNED_PAGE = 7            # in the window, neither pinned nor mapped
RING_SIZE = 16
VICTIM_PAGES = 4
WAIT_RECHECK, WAIT_TIMEOUT = 31, 600


def draw_descriptor(rng):
    """One hostile descriptor of the attacker (a :class:`Descriptor`), drawn from ``rng``."""
    ops = [op.value for op in Opcode]
    r = rng.random()
    opcode = rng.choice(ops) if r < 0.8 else rng.getrandbits(8)
    flags = rng.choice([Flag.CRAV | Flag.RCR, Flag.CRAV, Flag.CRAV | Flag.RCR | Flag.RCI, Flag.RCI, 0,
                        Flag.RCR, Flag.CRAV | Flag.RCR | Flag.FENCE | Flag.CC])
    if rng.random() < 0.1:
        flags |= rng.getrandbits(24) & ~SUPPORTED_FLAGS
    size = _size(rng)
    src = _addr(rng)
    r = rng.random()
    if r < 0.15:         # a source that ends past 2**64
        src = (1 << 64) - rng.randint(1, max(1, min(size, 1 << 20)))
    # Mostly independent; else overlapping, either way (around 2**64 with such a source).
    dst = _addr(rng) if 0.15 < r < 0.75 else (src + rng.randint(-64, 64)) % (1 << 64)
    return Descriptor(
        pasid=ATTACKER_PASID if rng.random() < 0.95 else rng.getrandbits(20),
        flags=int(flags), opcode=opcode,
        completion_addr=_record_addr(rng), src_addr=src, dst_addr=dst,
        xfer_size=size, int_handle=rng.choice([ATTACKER_HANDLE, VICTIM_HANDLE, 255, 256, 0xFFFF]),
        sem_value=rng.choice([0, 1, rng.getrandbits(64)]), sem_mask=rng.choice([0, (1 << 64) - 1, 0xFF]),
        op_specific=rng.getrandbits(64) if rng.random() < 0.1 else 0)


def _size(rng):
    r = rng.random()
    if r < 0.5:
        return rng.randint(1, 256)
    if r < 0.75:
        return rng.randint(257, 3 * PAGE)
    return rng.choice([0, MAX_XFER, MAX_XFER + 1, (1 << 32) - 1, rng.getrandbits(32)])


def _hostile(rng):
    """An address outside what the attacker may touch: unmapped, unpinned, beyond the window,
    wrapping around 2**64, or anything."""
    r = rng.random()
    if r < 0.3:
        return rng.choice([UNMAPPED_PAGE, UNPINNED_PAGE]) * PAGE + rng.randrange(PAGE)
    if r < 0.6:
        return PAGES * PAGE + rng.randrange(1 << 24)
    if r < 0.8:
        return (1 << 64) - rng.randint(1, 2 * PAGE)
    return rng.getrandbits(64)


def _addr(rng):
    """A data address: mostly in the mapped data pages (which only data operations touch,
    so that no timing, such as a record's cycles, flows into data), else hostile."""
    if rng.random() < 0.65:
        return DATA_PAGES[0] * PAGE + rng.randrange(len(DATA_PAGES) * PAGE)
    return _hostile(rng)


def _record_addr(rng):
    """A completion-record address: a slot of the record page, misaligned, or hostile."""
    r = rng.random()
    if r < 0.55:
        return RECORD_PAGE * PAGE + 32 * rng.randrange(PAGE // 32)
    if r < 0.65:
        return RECORD_PAGE * PAGE + rng.randrange(PAGE)
    return _hostile(rng) & ~31 if rng.random() < 0.8 else _hostile(rng)


async def _done_count(bus):
    return await bus.read(regmap.ENG_DESC_DONE) + await bus.read(regmap.ENG_DESC_REFUSED)


async def _wait_engine(pf, total):
    """Until ``total`` descriptors have completed or been refused and the engine is idle."""
    while await _done_count(pf.bus) < total or await pf.engine_busy():
        await pf.bus.wait_cycles(20)


class _Program:
    def __init__(self, bus, seed, arg):
        self.bus, self.seed = bus, seed
        self.descriptors = [Descriptor.unpack(bytes.fromhex(h)) for h in arg["descriptors"]]
        self.burst = min(arg.get("burst", 0), RING_SIZE - 1)
        self.pf = PfDriver.of(bus)
        self.irqs = {}
        self.total = 0
        bus.on_irq(lambda irq: self.irqs.setdefault(irq.dest, []).append([irq.vector, irq.cycle]))

    async def setup(self):
        pf, bus = self.pf, self.bus
        await pf.set_arbiter(Policy.RR)
        await pf.set_wait(recheck_cycles=WAIT_RECHECK, timeout_cycles=WAIT_TIMEOUT)
        # The attacker: every page pinned but the last; all mapped but UNMAPPED_PAGE.
        await pf.set_domain(0, window_base(0), PAGES)
        assert await pf.pin(0, 0, PAGES - 1)
        await pf.bind_adi(0, ATTACKER_PASID, 0)
        for page in range(PAGES - 1):
            if page != UNMAPPED_PAGE:
                await pf.guest_map(0, page)
        await pf.set_ims(ATTACKER_HANDLE, ATTACKER_PASID, dest=1, vector=0x41)
        # The victim, on the same engine.
        await pf.set_domain(1, window_base(1), VICTIM_PAGES)
        assert await pf.pin(1, 0, VICTIM_PAGES)
        await pf.bind_adi(1, VICTIM_PASID, 1)
        for page in range(VICTIM_PAGES):
            await pf.guest_map(1, page)
        await pf.set_ims(VICTIM_HANDLE, VICTIM_PASID, dest=2, vector=0x52)
        for dom, pages, first in ((0, PAGES, DATA_PAGES[0]), (1, VICTIM_PAGES, 2)):
            for page in range(first, pages):
                data = hashlib.sha256(f"{self.seed}/{dom}/{page}".encode()).digest() * (PAGE // 32)
                await bus.mem_write(window_base(dom) + page * PAGE, data)
        self.ring = await self.enable(0, ATTACKER_PASID, 0)
        self.victim = await self.enable(1, VICTIM_PASID, 1)

    async def enable(self, adi, pasid, dom):
        await self.pf.enable_adi(adi, RING_PAGE * PAGE, RING_SIZE, pasid, dom, engine=0)
        return Ring(self.bus, adi, RING_PAGE * PAGE, window_base(dom) + RING_PAGE * PAGE, RING_SIZE)

    async def one(self, d):
        """Post ``d`` alone; ``(functional outcome, timing)``."""
        pf, bus = self.pf, self.bus
        start = bus.now()
        await self.ring.post([d])
        self.total += 1
        await _wait_engine(pf, self.total)
        status = await bus.read(regmap.ENG_ENG_STATUS)
        out = {"last_status": (status & regmap.ENG_ENG_STATUS_LAST_STATUS_MASK) >> regmap.ENG_ENG_STATUS_LAST_STATUS_LSB}
        timing = {"last_cycles": await bus.read(regmap.ENG_LAST_CYCLES)}
        # A record is written only at an aligned address: what a misaligned one names is
        # neighbouring records, whose timing fields are not the program's to compare.
        if d.completion_addr % COMPLETION_BYTES == 0 and d.completion_addr < PAGES * PAGE:
            rec = CompletionRecord.unpack(await bus.mem_read(window_base(0) + d.completion_addr, COMPLETION_BYTES))
            timing["record_cycles"], timing["record_start"] = rec.cycles, rec.start_cycle
            rec.cycles = rec.start_cycle = 0       # the record's cycles and start cycle are timing
            out["record"] = rec.pack().hex()
        out["adi"] = list(await pf.adi_state(0))
        if out["adi"][0] != 1:                     # ERROR (a foreign PASID): start the ring again
            await pf.adi_command(0, regmap.CMD_ADI_CMD_RESET_ERROR_MASK)
            self.ring = await self.enable(0, ATTACKER_PASID, 0)
        out["faults"] = await self.faults()
        timing["elapsed"] = bus.now() - start
        return out, timing

    async def faults(self):
        dma, dma_lost = await self.pf.pop_dma_faults(clear_overflow=True)
        irq, irq_lost = await self.pf.pop_irq_faults(clear_overflow=True)
        return ([["dma", f.reason, f.pasid, f.page, int(f.write)] for f in dma]
                + [["irq", f.reason, f.pasid, f.handle] for f in irq] + [["lost", dma_lost, irq_lost]])

    async def burst_phase(self):
        """The first ``burst`` descriptors at once, then the victim's NOOP: its latency."""
        if not self.burst:
            return {}, {}
        burst = [Descriptor.unpack(d.pack()) for d in self.descriptors[:self.burst]]
        for d in burst:
            d.pasid = ATTACKER_PASID
        await self.ring.post(burst)
        noop = Descriptor(pasid=VICTIM_PASID, opcode=Opcode.NOOP, flags=Flag.CRAV | Flag.RCR | Flag.RCI,
                          completion_addr=RECORD_PAGE * PAGE, int_handle=VICTIM_HANDLE)
        await self.victim.post([noop])
        posted = self.bus.now()
        self.total += len(burst) + 1
        await _wait_engine(self.pf, self.total)
        record = await self.bus.mem_read(window_base(1) + RECORD_PAGE * PAGE, COMPLETION_BYTES)
        delivered = [c for v, c in self.irqs.get(2, []) if c >= posted]
        return ({"victim_status": record[0], "adi": list(await self.pf.adi_state(0)), "faults": await self.faults()},
                {"victim_latency": delivered[0] - posted if delivered else None})

    async def run(self):
        await self.setup()
        outcomes, timing = [], []
        for d in self.descriptors:
            out, t = await self.one(d)
            outcomes.append(out)
            timing.append(t)
        burst, burst_timing = await self.burst_phase()
        memory = {}
        for dom, pages in ((0, PAGES), (1, VICTIM_PAGES)):
            mem = bytearray(await self.bus.mem_read(window_base(dom), pages * PAGE))
            for off in range(RECORD_PAGE * PAGE, (RECORD_PAGE + 1) * PAGE, COMPLETION_BYTES):
                mem[off + 20:off + 28] = bytes(8)          # the records' cycles and start cycles are timing
            memory[str(dom)] = hashlib.sha256(mem).hexdigest()
        counters = await self.pf.counters()
        allowed = counters.pop("dma_allowed")
        return {"outcomes": outcomes, "burst": burst, "memory": memory, "counters": counters,
                "interrupts": {str(k): [v for v, _ in irqs] for k, irqs in sorted(self.irqs.items())},
                "timing": {"descriptors": timing, **burst_timing, "dma_allowed": allowed, "end": self.bus.now()}}


async def hostile_descriptors(bus, seed, arg):
    """The attacker's descriptors in ``arg`` beside the victim; returns the record (module docstring)."""
    return await _Program(bus, seed, arg).run()
