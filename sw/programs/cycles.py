"""A host program that reads both cycle counts of lone descriptors: ENG.LAST_CYCLES and the record's.

Each descriptor runs alone on an idle engine. After it has completed
(ENG.DESC_DONE counts it), the program reads ENG.LAST_CYCLES and, when the
descriptor wrote a completion record, the record's ``cycles`` field (byte
20). ``tests/test_cycles.py`` runs it on both backends and checks what the
register map says of the two counts (``rtl/regs.rdl``, ENG.LAST_CYCLES).
"""

from ...rtl import regmap
from ...rtl.cmd.dsa import Flag, Opcode
from ..guest.ring import Ring
from ..hv.guest_memory import HOST_BASE
from ..hv.pf import PfDriver
from ..model.dsa import CompletionRecord, Descriptor

__all__ = ["last_and_record_cycles", "CASES"]

PAGE = 4096
PASID, HANDLE = 0x42, 3
RECORD = Flag.CRAV | Flag.RCR

#: A page of the window that is pinned but not mapped: a record there faults.
UNMAPPED = 7

#: (name, descriptor fields) of the descriptors timed, in the order they run.
#: Addresses are offsets in the tenant's window: page 1 records, pages 2..3 source, 4..5 destination.
CASES = (
    ("memmove_4k_record", dict(opcode=Opcode.MEMMOVE, src_addr=2 * PAGE, dst_addr=4 * PAGE, xfer_size=PAGE,
                               flags=RECORD)),
    ("memmove_4k_record_irq", dict(opcode=Opcode.MEMMOVE, src_addr=2 * PAGE, dst_addr=4 * PAGE, xfer_size=PAGE,
                                   flags=RECORD | Flag.RCI, int_handle=HANDLE)),
    ("memmove_4k_no_record", dict(opcode=Opcode.MEMMOVE, src_addr=2 * PAGE, dst_addr=4 * PAGE, xfer_size=PAGE)),
    ("memfill_256_record", dict(opcode=Opcode.MEMFILL, pattern=0x0123_4567_89AB_CDEF, dst_addr=4 * PAGE,
                                xfer_size=256, flags=RECORD)),
    ("noop_record", dict(opcode=Opcode.NOOP, flags=RECORD)),
    ("noop_no_record", dict(opcode=Opcode.NOOP)),
    ("noop_irq", dict(opcode=Opcode.NOOP, flags=Flag.RCI, int_handle=HANDLE)),
    ("bad_opcode_record", dict(opcode=0x7E, flags=RECORD)),
    ("noop_record_unmapped", dict(opcode=Opcode.NOOP, flags=RECORD, completion_addr=UNMAPPED * PAGE)),
)


async def last_and_record_cycles(bus, seed):
    """``{case: [ENG.LAST_CYCLES, record cycles or None]}`` for each of :data:`CASES`."""
    pf = PfDriver(bus)
    await pf.set_domain(0, HOST_BASE, 8)
    await pf.pin(0, 0, 8)
    await pf.bind_adi(0, PASID, 0)
    for page in range(UNMAPPED):
        await pf.guest_map(0, page)
    await pf.set_ims(HANDLE, PASID, dest=1, vector=0x40)
    await pf.enable_adi(0, 0, 16, PASID, 0)
    ring = Ring(bus, 0, 0, HOST_BASE, 16)
    await bus.mem_write(HOST_BASE + 2 * PAGE, bytes(range(256)) * 16)
    out = {}
    for slot, (name, fields) in enumerate(CASES):
        record = fields.get("completion_addr", PAGE + 32 * slot)
        desc = Descriptor(pasid=PASID, **dict(fields, completion_addr=record))
        done = await bus.read(regmap.ENG_DESC_DONE)
        await ring.post([desc])
        while await bus.read(regmap.ENG_DESC_DONE) == done:
            await bus.wait_cycles(20)
        last = await bus.read(regmap.ENG_LAST_CYCLES)
        raw = await bus.mem_read(HOST_BASE + record, 32)      # the host's own read: no tracker check
        out[name] = [last, CompletionRecord.unpack(raw).cycles if raw[0] else None]
        await bus.wait_cycles(100)
    return out
