"""An attacker's DMA faults against a victim's one, on either backend.

Issue 24's fourth defect: the DMA fault queue holds 16 records for the whole
device, and an attacker that posted 40 descriptors writing a page it never
mapped filled it, so that the victim's one fault, raised next, was dropped
and counted only in a total that named nobody. The queue now keeps a quota
per domain (``DMA.FAULT_CAP``) and counts what it loses per domain
(``DMA.FAULT_LOST``). This program measures that:

1. the attacker (domain 0, PASID :data:`ATTACKER_PASID`, ADI 0, engine 0)
   has a ring of :data:`RING_SIZE` entries and :data:`UNMAPPED_PAGE`, a page
   of its window it never mapped; the victim (domain 1, ADI 1, engine 1)
   has its own ring and an unmapped page of its own;
2. the attacker posts ``arg["flood"]`` MEMFILLs of 64 bytes onto its
   unmapped page (each is one write fault), and the victim one MEMFILL onto
   its own unmapped page: after the whole flood has completed
   (``arg["victim"] == "after"``, the issue's order), or right behind the
   flood's doorbell, while it runs (``"during"``);
3. once every descriptor has completed, the hypervisor drains the queue as
   its fault polling does (:meth:`PfDriver.pop_dma_faults`) and reads the
   lost counts per domain (:meth:`PfDriver.dma_lost_faults`).

With ``arg["kind"] == "irq"`` the same is done to the interrupt remapper's
fault queue, whose quota is per source, the low bits of the sending PASID
(``IRQ.FAULT_CAP``): the attacker's descriptors are NOOPs asking for a
completion interrupt through the victim's IMS handle (each a PASID_MISMATCH
fault under the attacker's PASID), and the victim's one is a NOOP whose
interrupt handle names an entry that is not present (ENTRY_NOT_PRESENT under
its own PASID); the queue is drained with :meth:`PfDriver.pop_irq_faults`
and :meth:`PfDriver.irq_lost_faults`.

The record says whether the victim's fault was in the queue, how many of the
attacker's records were, and what was lost, in total and per domain; the
same on both backends for ``"after"`` (under ``"during"`` which of the
attacker's faults were queued depends on when the victim's landed; the
victim's own fault is queued either way).
"""

from ..guest.ring import Ring
from ..hv.guest_memory import window_base
from ..hv.pf import PfDriver
from ...rtl import regmap
from ...rtl.cmd.arbiter import Policy
from ...rtl.cmd.dsa import Flag, Opcode
from ...rtl.dma.defs import PAGE_SHIFT
from ..model.dsa import Descriptor

__all__ = ["fault_flood", "ATTACKER_PASID", "VICTIM_PASID", "UNMAPPED_PAGE", "VICTIM_UNMAPPED_PAGE",
           "RING_SIZE", "VICTIM_HANDLE", "ABSENT_HANDLE"]

PAGE = 1 << PAGE_SHIFT
ATTACKER_PASID, VICTIM_PASID = 0x42, 0x177
#: Entries of the attacker's ring: room for the flood of 1,000 (one entry stays empty).
RING_SIZE = 1024
RING_PAGES = RING_SIZE * 64 // PAGE
ATTACKER_PAGES = RING_PAGES + 2
UNMAPPED_PAGE = RING_PAGES + 1          # in the attacker's window, never pinned nor mapped
VICTIM_RING_SIZE, VICTIM_PAGES, VICTIM_UNMAPPED_PAGE = 16, 8, 5
#: The victim's IMS entry (the handle the attacker forges) and one that is never programmed.
VICTIM_HANDLE, ABSENT_HANDLE = 5, 9


def _fill(pasid, page):
    return Descriptor(pasid=pasid, opcode=Opcode.MEMFILL, dst_addr=page * PAGE, xfer_size=64,
                      pattern=0x5A5A_5A5A_5A5A_5A5A)


def _interrupt(pasid, handle):
    return Descriptor(pasid=pasid, opcode=Opcode.NOOP, flags=Flag.RCI, int_handle=handle)


async def _settled(pf, total):
    """Until ``total`` descriptors have completed (DESC_DONE counts the failed ones too) or been
    refused, and no engine is busy."""
    bus = pf.bus
    while True:
        done = await bus.read(regmap.ENG_DESC_DONE) + await bus.read(regmap.ENG_DESC_REFUSED)
        if done >= total and not await pf.engine_busy():
            return
        await bus.wait_cycles(50)


async def fault_flood(bus, seed, arg):
    """``arg``: ``{"flood": n, "victim": "after" | "during", "kind": "dma" | "irq"}``; returns the
    record (module docstring)."""
    flood, when, kind = int(arg["flood"]), arg.get("victim", "after"), arg.get("kind", "dma")
    if kind not in ("dma", "irq"):
        raise ValueError(f"the flood is of 'dma' or 'irq' faults, not {kind!r}")
    if not 0 <= flood < RING_SIZE:
        raise ValueError(f"the flood is 0..{RING_SIZE - 1} descriptors, not {flood}")
    if when not in ("after", "during"):
        raise ValueError(f"the victim faults 'after' or 'during' the flood, not {when!r}")
    pf = PfDriver.of(bus)
    caps = await pf.identify()
    await pf.set_arbiter(Policy.RR)
    # The attacker: ring pages pinned and mapped; UNMAPPED_PAGE neither.
    await pf.set_domain(0, window_base(0), ATTACKER_PAGES)
    assert await pf.pin(0, 0, RING_PAGES)
    await pf.bind_adi(0, ATTACKER_PASID, 0)
    for page in range(RING_PAGES):
        await pf.guest_map(0, page)
    await pf.set_domain(1, window_base(1), VICTIM_PAGES)
    assert await pf.pin(1, 0, 1)
    await pf.bind_adi(1, VICTIM_PASID, 1)
    await pf.guest_map(1, 0)
    await pf.set_ims(VICTIM_HANDLE, VICTIM_PASID, dest=2, vector=0x52)
    await pf.enable_adi(0, 0, RING_SIZE, ATTACKER_PASID, 0, engine=0)
    await pf.enable_adi(1, 0, VICTIM_RING_SIZE, VICTIM_PASID, 1, engine=min(1, caps.num_engines - 1))
    attacker = Ring(bus, 0, 0, window_base(0), RING_SIZE)
    victim = Ring(bus, 1, 0, window_base(1), VICTIM_RING_SIZE)

    if kind == "dma":
        attack, own = _fill(ATTACKER_PASID, UNMAPPED_PAGE), _fill(VICTIM_PASID, VICTIM_UNMAPPED_PAGE)
    else:
        attack, own = _interrupt(ATTACKER_PASID, VICTIM_HANDLE), _interrupt(VICTIM_PASID, ABSENT_HANDLE)
    start = bus.now()
    await attacker.post([attack] * flood)
    if when == "after":
        await _settled(pf, flood)
    victim_posted = bus.now()
    await victim.post([own])
    await _settled(pf, flood + 1)
    if kind == "irq":
        return await _drain_irq(pf, caps, start, victim_posted, when)

    # The hypervisor drains the queue (Hypervisor.poll_faults) and reads the losses per domain.
    faults, lost_total = await pf.pop_dma_faults(clear_overflow=True)
    lost = await pf.dma_lost_faults()
    by = {"attacker": [f for f in faults if f.pasid == ATTACKER_PASID],
          "victim": [f for f in faults if f.pasid == VICTIM_PASID]}
    record = {
        "victim_reported": any(f.page == VICTIM_UNMAPPED_PAGE and f.write for f in by["victim"]),
        "victim_records": len(by["victim"]),
        "attacker_records": len(by["attacker"]),
        "lost_total": lost_total,
        "lost": {("none" if d is None else str(d)): n for d, n in sorted(lost.items(), key=lambda kv: str(kv[0]))},
        "depth": caps.dma_fault_depth, "quota": caps.dma_fault_quota,
        "timing": {"flood_cycles": victim_posted - start, "end": bus.now()},
    }
    if when == "during":
        # Which of the attacker's faults were in the queue when the victim's landed is timing.
        record["timing"]["attacker_records"] = record.pop("attacker_records")
    return record


async def _drain_irq(pf, caps, start, victim_posted, when):
    """The interrupt fault queue drained as the hypervisor does, and the losses per source."""
    bus = pf.bus
    faults, lost_total = await pf.pop_irq_faults(clear_overflow=True)
    lost = await pf.irq_lost_faults()
    source = {"attacker": ATTACKER_PASID % (1 << caps.irq_fault_source_bits),
              "victim": VICTIM_PASID % (1 << caps.irq_fault_source_bits)}
    record = {
        "victim_reported": any(f.pasid == VICTIM_PASID and f.handle == ABSENT_HANDLE for f in faults),
        "victim_records": sum(f.pasid == VICTIM_PASID for f in faults),
        "attacker_records": sum(f.pasid == ATTACKER_PASID for f in faults),
        "lost_total": lost_total,
        "lost": {("attacker" if s == source["attacker"] else "victim" if s == source["victim"] else str(s)): n
                 for s, n in sorted(lost.items())},
        "depth": caps.irq_fault_depth, "quota": caps.irq_fault_quota,
        "timing": {"flood_cycles": victim_posted - start, "end": bus.now()},
    }
    if when == "during":
        record["timing"]["attacker_records"] = record.pop("attacker_records")
    return record
