"""A host program that polls completion records every cycle, as a spinning guest does.

A guest that waits by polling reads a record's status byte (byte 0) and,
once it is nonzero, the rest of the record. That is only sound if the rest
is in memory by the time the status is: the Device writes a record as one
32-byte burst, and the host memory must not show its first beat before its
last. ``tests/test_record_poll.py`` runs this on both backends.
"""

from ...rtl.cmd.dsa import Flag, Opcode
from ..guest.ring import Ring
from ..hv.guest_memory import HOST_BASE
from ..hv.pf import PfDriver
from ..model.dsa import Descriptor

__all__ = ["first_record_seen"]

PAGE = 4096
PASID = 0x51
#: Copies of these sizes run one at a time; the larger ones keep the AXI write channel busy
#: while their record goes out, the case where a record's beats spread over most cycles.
SIZES = (64, 4096, 16384)


async def first_record_seen(bus, seed):
    """``[(first nonzero record read, the record 200 cycles later)]`` as hex, one per copy of :data:`SIZES`."""
    pf = PfDriver(bus)
    pages = 2 + 2 * (max(SIZES) // PAGE)
    await pf.set_domain(0, HOST_BASE, pages)
    await pf.pin(0, 0, pages)
    await pf.bind_adi(0, PASID, 0)
    for page in range(pages):
        await pf.guest_map(0, page)
    await pf.enable_adi(0, 0, 16, PASID, 0)
    ring = Ring(bus, 0, 0, HOST_BASE, 16)
    src, dst = 2 * PAGE, (2 + max(SIZES) // PAGE) * PAGE
    await bus.mem_write(HOST_BASE + src, bytes((seed + i) & 0xFF for i in range(max(SIZES))))
    out = []
    for slot, size in enumerate(SIZES):
        record = PAGE + 32 * slot
        await ring.post([Descriptor(pasid=PASID, opcode=Opcode.MEMMOVE, src_addr=src, dst_addr=dst,
                                    xfer_size=size, completion_addr=record, flags=Flag.CRAV | Flag.RCR)])
        first = bytes(32)
        for _ in range(100_000):
            first = await bus.mem_read(HOST_BASE + record, 32)
            if first[0]:
                break
            await bus.wait_cycles(1)
        await bus.wait_cycles(200)
        out.append((first.hex(), (await bus.mem_read(HOST_BASE + record, 32)).hex()))
    return out
