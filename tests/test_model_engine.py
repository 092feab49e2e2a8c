"""The command-engine reference model (sw/model/engine.py) on its own."""

import random

import pytest

from siov.rtl.cmd.dsa import Flag, Opcode, Status
from siov.rtl.dma.defs import RangeOp
from siov.rtl.params import DeviceParams
from siov.sw.model.adi import ERR_FETCH_FAULT, ERROR, AdiModel
from siov.sw.model.device import EngineModel
from siov.sw.model.dma import DmaModel
from siov.sw.model.dsa import CompletionRecord, Descriptor
from siov.sw.model.engine import (MAX_XFER, PAGE_SIZE, BusErrors, Engine, Memory, PageFault,
                                  PageMap, estimate_cost)
from siov.sw.model.irq import IrqModel, Message

P = PAGE_SIZE
PASID = 0x2A
CR = 0x7F000          # device address of the completion record page
CR_FLAGS = Flag.CRAV | Flag.RCR


def setup(pages=range(16), host_base=0x100, num_handles=256, max_xfer=MAX_XFER):
    """Device pages ``pages`` of PASID 42 map to host pages host_base+page (reversed order
    would work as well; an offset is enough to catch an identity assumption)."""
    mem = Memory()
    pm = PageMap({(PASID, p): host_base + 3 * p for p in pages})
    pm.map(PASID, CR >> 12, 0x900)
    return mem, pm, Engine(mem, pm, max_xfer=max_xfer, num_handles=num_handles)


def dev_write(mem, pm, addr, data):
    for i, b in enumerate(data):
        mem.write(pm(PASID, addr + i, False), bytes([b]))


def dev_read(mem, pm, addr, n):
    return b"".join(mem.read(pm(PASID, addr + i, False), 1) for i in range(n))


def desc(op, **kw):
    kw.setdefault("pasid", PASID)
    kw.setdefault("flags", CR_FLAGS)
    kw.setdefault("completion_addr", CR)
    if "pattern" in kw:                 # union members of the descriptor
        kw["src_addr"] = kw.pop("pattern")
    if "src2_addr" in kw:
        kw["dst_addr"] = kw.pop("src2_addr")
    return Descriptor(opcode=op, **kw)


def record(mem):
    return CompletionRecord.unpack(mem.read(0x900 << 12, 32))


# -- memory and translation ----------------------------------------------------------------

def test_memory_sparse():
    m = Memory()
    assert m.read(0x12345, 10) == bytes(10) and m.pages == {}
    m.write(P - 3, b"abcdef")
    assert sorted(m.pages) == [0, 1]
    assert m.read(P - 4, 8) == b"\0abcdef\0"


def test_page_map():
    pm = PageMap({(1, 2): 7}, readonly={(1, 2)})
    assert pm(1, 0x2123, False) == 0x7123
    with pytest.raises(PageFault) as e:
        pm(1, 0x2123, True)
    assert e.value.addr == 0x2123
    with pytest.raises(PageFault):
        pm(2, 0x2123, False)


# -- status codes ------------------------------------------------------------------------

def test_success_and_record():
    mem, pm, eng = setup()
    o = eng.execute(desc(Opcode.NOOP, xfer_size=0), cycles=77)
    assert o.status is Status.SUCCESS and o.interrupt is None
    r = record(mem)
    assert o.completion == r.pack() and (r.status, r.cycles) == (0x01, 77)
    assert o.pages_written == [CR >> 12] and (o.bytes_read, o.bytes_written) == (0, 32)


@pytest.mark.parametrize("op", [0x01, 0x06, 0x10, 0x20, 0xFF])
def test_bad_opcode(op):
    mem, pm, eng = setup()
    o = eng.execute(desc(op, xfer_size=8))
    assert o.status is Status.BAD_OPCODE and record(mem).status == 0x10


@pytest.mark.parametrize("flags, bad", [
    (Flag.BOF, Flag.BOF), (Flag.CR, Flag.CR), (Flag.CRSTS, Flag.CRSTS), (Flag.DSTS, Flag.DSTS),
    (0x40, 0x40), (1 << 16, 1 << 16), (1 << 23, 1 << 23), (Flag.STORD | Flag.BOF, 0x2002)])
def test_invalid_flags(flags, bad):
    mem, pm, eng = setup()
    o = eng.execute(desc(Opcode.MEMMOVE, flags=CR_FLAGS | flags, xfer_size=8, dst_addr=0x1000))
    assert o.status is Status.INVALID_FLAGS
    r = record(mem)
    assert (r.status, r.invalid_flags) == (0x11, bad)
    assert o.pages_written == [CR >> 12]          # the copy did not run


def test_rcr_needs_crav():
    mem, pm, eng = setup()
    o = eng.execute(desc(Opcode.NOOP, flags=Flag.RCR))
    assert o.status is Status.INVALID_FLAGS and o.completion is None and o.record.invalid_flags == Flag.RCR


def test_supported_flags_accepted():
    mem, pm, eng = setup()
    flags = Flag.FENCE | Flag.CRAV | Flag.RCR | Flag.RCI | Flag.CC
    o = eng.execute(desc(Opcode.MEMMOVE, flags=flags, xfer_size=16, dst_addr=0x1000, int_handle=3))
    assert o.status is Status.SUCCESS and o.interrupt == Message(True, PASID, 3)


@pytest.mark.parametrize("op", [Opcode.MEMMOVE, Opcode.MEMFILL, Opcode.COMPARE])
@pytest.mark.parametrize("size", [0, 4097])
def test_xfer_size(op, size):
    mem, pm, eng = setup(max_xfer=4096)
    o = eng.execute(desc(op, xfer_size=size, dst_addr=0x2000))
    assert o.status is Status.XFER_SIZE and record(mem).status == 0x13
    assert eng.execute(desc(op, xfer_size=4096, dst_addr=0x2000)).status is Status.SUCCESS


def test_default_max_xfer():
    mem, pm, eng = setup()
    assert eng.max_xfer == 1 << 20
    assert eng.execute(desc(Opcode.COMPARE, xfer_size=(1 << 20) + 1)).status is Status.XFER_SIZE


@pytest.mark.parametrize("op", [Opcode.NOOP, Opcode.DRAIN])
def test_noop_drain_ignore_size(op):
    mem, pm, eng = setup(max_xfer=16)
    for size in (0, 17, 0xFFFF_FFFF):
        o = eng.execute(desc(op, xfer_size=size, src_addr=0xDEAD_0000, dst_addr=0xBEEF_0003))
        assert o.status is Status.SUCCESS and o.bytes_read == 0 and record(mem).bytes_completed == 0


def test_invalid_int_handle():
    mem, pm, eng = setup(num_handles=8)
    o = eng.execute(desc(Opcode.NOOP, flags=CR_FLAGS | Flag.RCI, int_handle=8))
    assert o.status is Status.INVALID_INT_HANDLE and o.interrupt is None and record(mem).status == 0x19
    o = eng.execute(desc(Opcode.NOOP, flags=CR_FLAGS | Flag.RCI, int_handle=7))
    assert o.status is Status.SUCCESS and o.interrupt == Message(True, PASID, 7)
    # Without RCI the handle is not looked at.
    assert eng.execute(desc(Opcode.NOOP, int_handle=0xFFFF)).status is Status.SUCCESS


def test_addr_align_completion():
    mem, pm, eng = setup()
    o = eng.execute(desc(Opcode.MEMMOVE, completion_addr=CR + 16, xfer_size=8, dst_addr=0x1000,
                         flags=CR_FLAGS | Flag.RCI))
    assert o.status is Status.ADDR_ALIGN and o.completion is None and mem.pages == {}
    assert o.interrupt == Message(True, PASID, 0)
    # Without CRAV the completion address is not looked at.
    assert eng.execute(desc(Opcode.NOOP, flags=0, completion_addr=3)).status is Status.SUCCESS


def test_addr_align_memfill():
    mem, pm, eng = setup()
    o = eng.execute(desc(Opcode.MEMFILL, dst_addr=0x1004, xfer_size=8, pattern=1))
    assert o.status is Status.ADDR_ALIGN and record(mem).status == 0x1C
    assert o.pages_written == [CR >> 12]
    # MEMMOVE and COMPARE take any alignment.
    assert eng.execute(desc(Opcode.MEMMOVE, src_addr=3, dst_addr=0x1005, xfer_size=9)).status is Status.SUCCESS
    assert eng.execute(desc(Opcode.COMPARE, src_addr=3, dst_addr=0x1005, xfer_size=9)).status is Status.SUCCESS


def test_check_order():
    mem, pm, eng = setup(num_handles=1)
    bad_all = dict(flags=CR_FLAGS | Flag.RCI | Flag.BOF, int_handle=5, xfer_size=0,
                   completion_addr=CR + 1, dst_addr=1)
    assert eng.check(desc(0x09, **bad_all))[0] is Status.BAD_OPCODE
    assert eng.check(desc(Opcode.MEMFILL, **bad_all))[0] is Status.INVALID_FLAGS
    bad_all["flags"] &= ~Flag.BOF
    assert eng.check(desc(Opcode.MEMFILL, **bad_all))[0] is Status.INVALID_INT_HANDLE
    bad_all["int_handle"] = 0
    assert eng.check(desc(Opcode.MEMFILL, **bad_all))[0] is Status.XFER_SIZE
    bad_all["xfer_size"] = 8
    assert eng.check(desc(Opcode.MEMFILL, **bad_all))[0] is Status.ADDR_ALIGN


# -- operations -----------------------------------------------------------------------------

def test_memmove_across_pages():
    mem, pm, eng = setup()
    rng = random.Random(1)
    data = rng.randbytes(3 * P)
    dev_write(mem, pm, 0x0FF0, data)
    o = eng.execute(desc(Opcode.MEMMOVE, src_addr=0x0FF0, dst_addr=0x8007, xfer_size=len(data)))
    assert o.status is Status.SUCCESS
    assert dev_read(mem, pm, 0x8007, len(data)) == data
    assert (o.bytes_read, o.bytes_written) == (len(data), len(data) + 32)
    assert o.pages_written == [8, 9, 10, 11, CR >> 12]
    r = record(mem)
    assert (r.result, r.bytes_completed) == (0, len(data))


@pytest.mark.parametrize("seed", range(8))
def test_memmove_overlap(seed):
    rng = random.Random(seed)
    mem, pm, eng = setup()
    base, span = 0x1000, 3 * P
    image = bytearray(rng.randbytes(span))
    dev_write(mem, pm, base, image)
    for _ in range(6):
        n = rng.randint(1, 2 * P)
        src = rng.randrange(0, span - n)
        dst = min(max(src + rng.randint(-n, n), 0), span - n)
        o = eng.execute(desc(Opcode.MEMMOVE, src_addr=base + src, dst_addr=base + dst, xfer_size=n))
        image[dst:dst + n] = image[src:src + n]          # memmove semantics
        assert o.status is Status.SUCCESS
        assert o.result == int(src < dst < src + n)
        assert dev_read(mem, pm, base, span) == bytes(image)


def test_memfill_pattern():
    mem, pm, eng = setup()
    pattern = 0x8877665544332211
    o = eng.execute(desc(Opcode.MEMFILL, pattern=pattern, dst_addr=0x1FF8, xfer_size=21))
    assert o.status is Status.SUCCESS and o.bytes_read == 0
    expect = (pattern.to_bytes(8, "little") * 3)[:21]
    assert dev_read(mem, pm, 0x1FF8, 21) == expect
    assert dev_read(mem, pm, 0x1FF8 + 21, 3) == bytes(3)   # nothing past the end
    assert o.pages_written == [1, 2, CR >> 12]


def test_compare():
    mem, pm, eng = setup()
    data = random.Random(2).randbytes(2 * P)
    dev_write(mem, pm, 0x0800, data)
    dev_write(mem, pm, 0x5123, data)
    o = eng.execute(desc(Opcode.COMPARE, src_addr=0x0800, src2_addr=0x5123, xfer_size=len(data)))
    assert (o.status, o.result, o.bytes_completed) == (Status.SUCCESS, 0, len(data))
    assert o.pages_written == [CR >> 12] and o.bytes_read == 2 * len(data)
    for diff in (0, 1, P - 0x123, 5000, len(data) - 1):
        dev_write(mem, pm, 0x5123 + diff, bytes([data[diff] ^ 0x40]))
        o = eng.execute(desc(Opcode.COMPARE, src_addr=0x0800, src2_addr=0x5123, xfer_size=len(data)))
        assert (o.status, o.result, o.bytes_completed) == (Status.SUCCESS, 1, diff)
        r = record(mem)
        assert (r.status, r.result, r.bytes_completed) == (1, 1, diff)
        dev_write(mem, pm, 0x5123 + diff, bytes([data[diff]]))


# -- page faults ------------------------------------------------------------------------------

def test_fault_mid_memmove_dst():
    mem, pm, eng = setup(pages=[0, 1, 2, 8, 10])        # page 9 unmapped
    data = random.Random(3).randbytes(2 * P + 100)
    dev_write(mem, pm, 0x0000, data)
    o = eng.execute(desc(Opcode.MEMMOVE, src_addr=0, dst_addr=0x8010, xfer_size=len(data)))
    assert o.status is Status.PAGE_FAULT
    r = record(mem)
    assert (r.status, r.status_write, r.fault_addr, r.bytes_completed, r.result) == (3, 1, 0x9000, P - 0x10, 0)
    assert o.completion[0] == 0x83           # DSA_COMP_STATUS_WRITE | PAGE_FAULT_NOBOF
    assert dev_read(mem, pm, 0x8010, P - 0x10) == data[:P - 0x10]
    assert dev_read(mem, pm, 0xA000, P) == bytes(P)     # nothing after the fault
    assert o.pages_written == [8, CR >> 12]


def test_fault_mid_memmove_src_descending():
    mem, pm, eng = setup(pages=[0, 2, 3])               # page 1 unmapped
    # dst inside src: copies from the end; faults reading page 1 after two pieces.
    o = eng.execute(desc(Opcode.MEMMOVE, src_addr=0x0800, dst_addr=0x1800, xfer_size=0x2000))
    r = record(mem)
    assert o.status is Status.PAGE_FAULT
    # Pieces, descending, split at src and dst page boundaries: [0x1800,0x2000) done (0x800 bytes),
    # then [0x800,0x1800) reads src 0x1000.. on the unmapped page.
    assert (r.status_write, r.result, r.fault_addr, r.bytes_completed) == (0, 1, 0x1000, 0x800)


def test_fault_compare_and_memfill():
    mem, pm, eng = setup(pages=[0, 1, 2, 4])            # page 3 unmapped
    o = eng.execute(desc(Opcode.COMPARE, src_addr=0x100, src2_addr=0x2100, xfer_size=0x2000))
    assert (o.status, o.fault_addr, o.bytes_completed, o.record.status_write) == (
        Status.PAGE_FAULT, 0x3000, 0xF00, 0)
    o = eng.execute(desc(Opcode.MEMFILL, pattern=0xFF, dst_addr=0x2F00, xfer_size=0x1200))
    assert (o.status, o.fault_addr, o.bytes_completed, o.record.status_write) == (
        Status.PAGE_FAULT, 0x3000, 0x100, 1)


def test_fault_on_completion_record():
    mem, pm, eng = setup()
    o = eng.execute(desc(Opcode.NOOP, completion_addr=0x60000, flags=CR_FLAGS | Flag.RCI, int_handle=2))
    assert o.status is Status.PAGE_FAULT and o.completion is None
    assert (o.record.fault_addr, o.record.status_write) == (0x60000, 1)
    assert o.interrupt == Message(True, PASID, 2)
    assert o.pages_written == [] and mem.pages == {}


def test_readonly_destination_faults():
    mem, pm, eng = setup()
    pm.map(PASID, 5, 0x555, writable=False)
    o = eng.execute(desc(Opcode.MEMMOVE, src_addr=0x1000, dst_addr=0x5000, xfer_size=64))
    assert (o.status, o.fault_addr, o.bytes_completed) == (Status.PAGE_FAULT, 0x5000, 0)
    assert 0x555 not in mem.pages


# -- bus errors (SLVERR/DECERR from host memory) ---------------------------------------------

def bus_error_page(pm, eng, page, read=True, write=True):
    """Make device page ``page`` of PASID 42 answer bus errors (its host page, whole)."""
    eng.bus_errors.add(pm(PASID, page * P, False), P, read=read, write=write)


def test_bus_errors_granularity():
    mem, errors = Memory(), BusErrors()
    mem.write(0x1000, bytes(range(1, 33)))
    errors.add(0x100C, 2, write=False)               # inside the second 8-byte word
    assert errors.read(mem, 0x1000, 32) == (bytes(range(1, 9)) + bytes(8) + bytes(range(17, 33)), True)
    assert errors.read(mem, 0x1010, 16) == (bytes(range(17, 33)), False)
    assert not errors.write_fails(0x100C, 2)
    errors.add(0x2004, 2, read=False)
    assert errors.write(mem, 0x2000, b"abcdefgh" * 2)
    assert mem.read(0x2000, 16) == bytes(8) + b"abcdefgh"    # the erroring beat stored nothing
    assert not errors.write(mem, 0x2000, b"xyzw")            # bytes 0..3 do not touch 0x2004
    errors.clear()
    assert errors.read(mem, 0x1000, 8) == (bytes(range(1, 9)), False)


def test_bus_error_memmove_source():
    mem, pm, eng = setup()
    data = random.Random(5).randbytes(3 * P)
    dev_write(mem, pm, 0x1000, data)
    bus_error_page(pm, eng, 2, write=False)
    o = eng.execute(desc(Opcode.MEMMOVE, src_addr=0x1800, dst_addr=0x8000, xfer_size=P + 0x100))
    r = record(mem)
    assert o.status is Status.HW_ERROR and o.completion == r.pack()
    # Pieces: [0x1800, 0x2000) copied, then [0x2000, 0x2800) reads the erroring page.
    assert (r.status, r.status_write, r.result, r.fault_addr, r.bytes_completed) == (0x20, 0, 0, 0, 0x800)
    assert dev_read(mem, pm, 0x8000, 0x800) == data[0x800:0x1000]
    assert dev_read(mem, pm, 0x8800, 0x800) == bytes(0x800)     # the failing piece: zeros were read
    assert dev_read(mem, pm, 0x9000, 0x100) == bytes(0x100)     # nothing after it


def test_bus_error_memmove_destination_descending():
    mem, pm, eng = setup()
    data = random.Random(6).randbytes(0x2000)
    dev_write(mem, pm, 0x0800, data)
    bus_error_page(pm, eng, 1, read=False)
    # dst inside src, descending: piece [0x17F0, 0x1800) writes dst 0x2000.. (page 2), then
    # [0x800, 0x17F0) writes dst 0x1010..0x2000 on the erroring page.
    o = eng.execute(desc(Opcode.MEMMOVE, src_addr=0x0800, dst_addr=0x0810, xfer_size=0x1800))
    r = record(mem)
    assert (o.status, r.result, r.bytes_completed) == (Status.HW_ERROR, 1, 0x10)
    assert dev_read(mem, pm, 0x0800, 0x1800) == data[:0x1800]   # the erroring page kept its bytes
    assert dev_read(mem, pm, 0x2000, 0x10) == data[0x17F0:0x1800]


def test_bus_error_memfill_and_compare():
    mem, pm, eng = setup()
    bus_error_page(pm, eng, 3)
    o = eng.execute(desc(Opcode.MEMFILL, pattern=0x1122334455667788, dst_addr=0x2F00, xfer_size=0x200))
    assert (o.status, o.bytes_completed, o.record.status_write) == (Status.HW_ERROR, 0x100, 0)
    assert dev_read(mem, pm, 0x2F00, 8) == (0x1122334455667788).to_bytes(8, "little")
    assert dev_read(mem, pm, 0x3000, 0x100) == bytes(0x100)
    bus_error_page(pm, eng, 7, write=False)
    for src, src2 in ((0x7000, 0x5000), (0x5000, 0x7000)):
        # Equal data elsewhere, zeros read from the erroring page: still an error, not a difference.
        o = eng.execute(desc(Opcode.COMPARE, src_addr=src - 0x80, src2_addr=src2 - 0x80, xfer_size=0x100))
        assert (o.status, o.result, o.bytes_completed) == (Status.HW_ERROR, 0, 0x80)


def test_bus_error_on_completion_record():
    mem, pm, eng = setup()
    eng.bus_errors.add(0x900 << 12, P, read=False)
    o = eng.execute(desc(Opcode.NOOP, flags=CR_FLAGS | Flag.RCI, int_handle=3), cycles=9)
    assert o.status is Status.HW_ERROR and o.completion is None
    assert (o.record.status, o.record.status_write, o.record.fault_addr) == (0x20, 0, 0)
    assert o.interrupt == Message(True, PASID, 3)            # the interrupt is still sent
    assert mem.pages == {}
    # A data error whose record also fails: one outcome, HW_ERROR.
    bus_error_page(pm, eng, 1)
    o = eng.execute(desc(Opcode.MEMFILL, dst_addr=0x1000, xfer_size=8))
    assert (o.status, o.completion) == (Status.HW_ERROR, None)


def test_bus_error_record_written_without_rcr():
    mem, pm, eng = setup()
    bus_error_page(pm, eng, 4, read=False)
    o = eng.execute(desc(Opcode.MEMFILL, flags=Flag.CRAV, dst_addr=0x4000, xfer_size=64))
    assert o.status is Status.HW_ERROR and record(mem).status == 0x20


def test_bus_error_elsewhere_changes_nothing():
    """An error range the descriptor does not touch: the outcome is the plain one."""
    runs = []
    for with_errors in (False, True):
        mem, pm, eng = setup()
        dev_write(mem, pm, 0x1000, random.Random(7).randbytes(2 * P))
        if with_errors:
            bus_error_page(pm, eng, 9)
            eng.bus_errors.add(pm(PASID, 0x1000, False) - 8, 8)   # the word just below the source
        o = eng.execute(desc(Opcode.MEMMOVE, src_addr=0x1003, dst_addr=0x6005, xfer_size=P + 9))
        runs.append((o, dict((k, bytes(v)) for k, v in mem.pages.items())))
    assert runs[0] == runs[1] and runs[0][0].status is Status.SUCCESS


def test_fetch_bus_error_is_fetch_fault():
    """EngineModel: a ring read answered with an error fails like a blocked one (ADI ERROR 4)."""
    params = DeviceParams()
    adi, dma, mem = AdiModel(params), DmaModel(params), Memory()
    model = EngineModel(mem, adi, dma, IrqModel(entries=params.ims_entries))
    ring_host = 0x40_0000
    dma.set_domain(0, ring_host, 16)
    dma.range_op(RangeOp.PIN, 0, 0, 16)
    dma.set_adi(0, PASID, 0)
    dma.guest_map(0, 0)
    adi.command(0, enable=True, base=0, size=4, pasid=PASID, domain=0)
    adi.doorbell(0, 2)
    raws = [Descriptor(pasid=PASID, opcode=Opcode.NOOP, completion_addr=i).pack() for i in range(2)]
    mem.write(ring_host, raws[0] + raws[1])
    assert model.fetch(0) == raws[0] and model.refused == 0
    model.bus_errors.add(ring_host + 8, 1, write=False)         # one beat of the head descriptor
    assert model.fetch(0) is None
    assert (adi.adis[0].state, adi.adis[0].error, model.refused) == (ERROR, ERR_FETCH_FAULT, 1)
    assert dma.counters["allowed"] == 2                          # both reads were translated


@pytest.mark.parametrize("seed", range(6))
def test_no_write_outside_translated_pages(seed):
    rng = random.Random(seed)
    mapped = [p for p in range(24) if rng.random() < 0.7]
    mem, pm, eng = setup(pages=mapped)
    for p in mapped[::2]:
        pm.map(PASID, p, 0x100 + 3 * p, writable=False)
    writable_hosts = {h for (pasid, p), h in pm.pages.items() if (pasid, p) not in pm.readonly}
    for _ in range(60):
        op = rng.choice([Opcode.MEMMOVE, Opcode.MEMFILL, Opcode.COMPARE, Opcode.NOOP])
        n = rng.randint(1, 3 * P)
        d = desc(op, src_addr=rng.randrange(0, 20 * P), dst_addr=rng.randrange(0, 20 * P) & ~7,
                 xfer_size=n, flags=rng.choice([0, Flag.CRAV, CR_FLAGS]),
                 completion_addr=rng.choice([CR, rng.randrange(0, 24) * P]))
        o = eng.execute(d)
        assert o.status in (Status.SUCCESS, Status.PAGE_FAULT)
        assert set(mem.pages) <= writable_hosts | {0x900}
        assert all(p in mapped or p == CR >> 12 for p in o.pages_written)
        if op in (Opcode.MEMMOVE, Opcode.MEMFILL) and o.status is Status.SUCCESS:
            assert {p for p in range(d.dst_addr // P, (d.dst_addr + n - 1) // P + 1)} <= set(o.pages_written)


# -- completion record, interrupts, cost --------------------------------------------------------

def test_record_only_on_error_without_rcr():
    mem, pm, eng = setup()
    o = eng.execute(desc(Opcode.NOOP, flags=Flag.CRAV))
    assert o.status is Status.SUCCESS and o.completion is None and mem.pages == {}
    o = eng.execute(desc(Opcode.MEMMOVE, flags=Flag.CRAV, xfer_size=0))
    assert o.status is Status.XFER_SIZE and record(mem).status == 0x13
    o = eng.execute(desc(Opcode.MEMMOVE, flags=0, xfer_size=0))
    assert o.status is Status.XFER_SIZE and o.completion is None


def test_interrupt_on_error_and_bytes_input():
    mem, pm, eng = setup()
    d = desc(0x42, flags=Flag.RCI, int_handle=9)
    o = eng.execute(d.pack())
    assert o.status is Status.BAD_OPCODE and o.interrupt == Message(True, PASID, 9)


def test_estimate_cost():
    d = Descriptor(opcode=Opcode.MEMMOVE.value, xfer_size=4096)
    assert estimate_cost(d, 20, 3 * 256) == 20 + 3 * 4096
    assert estimate_cost(d.pack(), 20, 3 * 256) == 20 + 3 * 4096
    assert estimate_cost(d, 20, 32) == 20 + 4096 // 8          # b = 1/8 cycle per byte
    assert estimate_cost(d, 0, 1, frac_bits=0) == 4096
    assert estimate_cost(Descriptor(opcode=Opcode.NOOP, xfer_size=4096), 20, 3) == 20
    assert estimate_cost(Descriptor(opcode=Opcode.MEMFILL, xfer_size=1 << 20), 5, 64 << 8, width=24) == (1 << 24) - 1


def test_descriptor_checked_on_entry():
    mem, pm, eng = setup()
    with pytest.raises(ValueError, match="Descriptor.pasid is a 20-bit field"):
        eng.execute(Descriptor(pasid=1 << 20))
