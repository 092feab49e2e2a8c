"""DSA formats (rtl/cmd/dsa.py) and their Python packing (sw/model/dsa.py) on their own.

The numbers below were read in Linux include/uapi/linux/idxd.h: the byte
offsets follow from the declaration order and widths of ``struct
dsa_hw_desc`` and ``struct dsa_completion_record`` (both packed).
"""

import random

import pytest
from amaranth.hdl import Shape

from siov.rtl.cmd.dsa import (RESERVED_FLAGS, SUPPORTED_FLAGS, CompletionLayout, DescriptorLayout, Flag,
                              Opcode, Status)
from siov.sw.model.dsa import CompletionRecord, Descriptor, fields_of


def test_layout_sizes():
    assert DescriptorLayout.size == 512
    assert CompletionLayout.size == 256
    for layout in (DescriptorLayout, CompletionLayout):
        end = 0
        for _, offset, width in fields_of(layout):      # contiguous, no overlap
            assert offset == end
            end += width
        assert end == layout.size


# (field, bit offset, width) from struct dsa_hw_desc; the op-specific bytes 40..55
# carry the project's semaphore value and mask.
DESC_FIELDS = [
    ("pasid", 0, 20), ("rsvd", 20, 11), ("priv", 31, 1),
    ("flags", 32, 24), ("opcode", 56, 8),
    ("completion_addr", 8 * 8, 64), ("src_addr", 16 * 8, 64), ("dst_addr", 24 * 8, 64),
    ("xfer_size", 32 * 8, 32), ("int_handle", 36 * 8, 16), ("rsvd1", 38 * 8, 16),
    ("sem_value", 40 * 8, 64), ("sem_mask", 48 * 8, 64),     # project: op-specific space, WAIT/SIGNAL
    ("op_specific", 56 * 8, 64),
]
# struct dsa_completion_record (status byte split at DSA_COMP_STATUS_MASK 0x7f / WRITE 0x80).
CR_FIELDS = [
    ("status", 0, 7), ("status_write", 7, 1), ("result", 8, 8), ("fault_info", 16, 8),
    ("rsvd", 24, 8), ("bytes_completed", 4 * 8, 32), ("fault_addr", 8 * 8, 64),
    ("invalid_flags", 16 * 8, 24), ("rsvd2", 19 * 8, 8),
    # project: op-specific space that the supported operations leave unused
    ("cycles", 20 * 8, 32), ("start_cycle", 24 * 8, 32), ("engine", 28 * 8, 8), ("rsvd3", 29 * 8, 24),
]


@pytest.mark.parametrize("layout, expected", [(DescriptorLayout, DESC_FIELDS),
                                              (CompletionLayout, CR_FIELDS)])
def test_offsets_match_idxd(layout, expected):
    for name, offset, width in expected:
        f = layout[name]
        assert (f.offset, Shape.cast(f.shape).width) == (offset, width), name


def test_packed_byte_positions():
    raw = Descriptor(pasid=0xABCDE, priv=1, flags=0x00001C, opcode=Opcode.MEMMOVE,
                     completion_addr=0x1111_2222_3333_4440, src_addr=0x0102_0304_0506_0708,
                     dst_addr=0xA1A2_A3A4_A5A6_A7A8, xfer_size=0xDEADBEEF,
                     int_handle=0x1234).pack()
    assert len(raw) == 64
    assert int.from_bytes(raw[0:4], "little") == 0xABCDE | 1 << 31
    assert int.from_bytes(raw[4:7], "little") == 0x1C and raw[7] == 0x03
    assert int.from_bytes(raw[8:16], "little") == 0x1111_2222_3333_4440
    assert int.from_bytes(raw[16:24], "little") == 0x0102_0304_0506_0708
    assert int.from_bytes(raw[24:32], "little") == 0xA1A2_A3A4_A5A6_A7A8
    assert int.from_bytes(raw[32:36], "little") == 0xDEADBEEF
    assert int.from_bytes(raw[36:38], "little") == 0x1234
    assert raw[38:] == bytes(26)

    cr = CompletionRecord(status=Status.PAGE_FAULT, status_write=1, result=1, fault_info=0x5A,
                          bytes_completed=0x1000, fault_addr=0xFEDC_BA98_7654_3210,
                          invalid_flags=0x800002, cycles=0x01020304, start_cycle=0xA0B0C0D0,
                          engine=3).pack()
    assert len(cr) == 32
    assert cr[0] == 0x83 and cr[1] == 1 and cr[2] == 0x5A and cr[3] == 0
    assert int.from_bytes(cr[4:8], "little") == 0x1000
    assert int.from_bytes(cr[8:16], "little") == 0xFEDC_BA98_7654_3210
    assert int.from_bytes(cr[16:19], "little") == 0x800002 and cr[19] == 0
    assert int.from_bytes(cr[20:24], "little") == 0x01020304
    assert int.from_bytes(cr[24:28], "little") == 0xA0B0C0D0
    assert cr[28] == 3 and cr[29:] == bytes(3)


def test_semaphore_fields_byte_positions():
    raw = Descriptor(opcode=Opcode.WAIT, src_addr=0x2008, sem_value=0x1122_3344_5566_7788,
                     sem_mask=0xF0F0_0000_FFFF_0001, op_specific=0xAB).pack()
    assert raw[7] == 0xF0
    assert int.from_bytes(raw[40:48], "little") == 0x1122_3344_5566_7788
    assert int.from_bytes(raw[48:56], "little") == 0xF0F0_0000_FFFF_0001
    assert int.from_bytes(raw[56:64], "little") == 0xAB
    d = Descriptor.unpack(raw)
    assert d.sem_addr == 0x2008 and Descriptor(opcode=Opcode.SIGNAL, dst_addr=0x40).sem_addr == 0x40
    assert Descriptor(opcode=Opcode.MEMMOVE, src_addr=8).sem_addr is None


def test_enum_values_match_idxd():
    # WAIT, SIGNAL and WAIT_TIMEOUT are the project's, outside the values idxd.h defines.
    assert {op.name: op.value for op in Opcode} == {
        "NOOP": 0x00, "DRAIN": 0x02, "MEMMOVE": 0x03, "MEMFILL": 0x04, "COMPARE": 0x05,
        "WAIT": 0xF0, "SIGNAL": 0xF1}
    assert {s.name: s.value for s in Status} == {
        "NONE": 0x00, "SUCCESS": 0x01, "PAGE_FAULT": 0x03, "BAD_OPCODE": 0x10,
        "INVALID_FLAGS": 0x11, "XFER_SIZE": 0x13, "INVALID_INT_HANDLE": 0x19, "ADDR_ALIGN": 0x1C,
        "HW_ERROR": 0x20, "WAIT_TIMEOUT": 0x70}
    assert (Flag.FENCE, Flag.BOF, Flag.CRAV, Flag.RCR, Flag.RCI) == (0x1, 0x2, 0x4, 0x8, 0x10)
    assert (Flag.CRSTS, Flag.CR, Flag.CC) == (0x20, 0x80, 0x100)
    assert (Flag.ADDR1_TCS, Flag.ADDR2_TCS, Flag.ADDR3_TCS, Flag.CR_TCS) == (0x200, 0x400, 0x800, 0x1000)
    assert (Flag.STORD, Flag.DRDBK, Flag.DSTS) == (0x2000, 0x4000, 0x8000)
    assert SUPPORTED_FLAGS == 0x11D and RESERVED_FLAGS == 0xFFFEE2
    assert Shape.cast(Opcode).width == 8 and Shape.cast(Flag).width == 24


def _random(cls, rng):
    return cls(**{name: rng.getrandbits(width) for name, _, width in cls._FIELDS})


@pytest.mark.parametrize("seed", range(4))
def test_round_trip_random(seed):
    rng = random.Random(seed)
    for cls, n in ((Descriptor, 64), (CompletionRecord, 32)):
        for _ in range(200):
            rec = _random(cls, rng)
            raw = rec.pack()
            assert len(raw) == n
            assert cls.unpack(raw) == rec
            assert cls.unpack(raw).pack() == raw
            junk = rng.randbytes(n)
            assert cls.unpack(junk).pack() == junk


@pytest.mark.parametrize("seed", range(2))
def test_pack_agrees_with_amaranth(seed):
    """The Python packing and Amaranth's own view of the layouts give the same bits.

    (A constant view of an enum field must hold a member, so those fields get
    member values here; a signal's EnumView has no such restriction.)
    """
    rng = random.Random(seed)
    for cls, enum_field, enum in ((Descriptor, "opcode", Opcode), (CompletionRecord, "status", Status)):
        for _ in range(50):
            rec = _random(cls, rng)
            setattr(rec, enum_field, rng.choice(list(enum)).value)
            view = cls.LAYOUT.from_bits(int.from_bytes(rec.pack(), "little"))
            for name, _, _ in cls._FIELDS:
                got = getattr(view, name)
                assert (got.value if name == enum_field else got) == getattr(rec, name), name
    c = DescriptorLayout.const({"opcode": Opcode.MEMFILL, "xfer_size": 7, "int_handle": 9})
    assert Descriptor.unpack(c.as_value().value.to_bytes(64, "little")) == Descriptor(
        opcode=4, xfer_size=7, int_handle=9)


def test_unknown_opcode_survives():
    d = Descriptor.unpack(bytes(7) + b"\xEE" + bytes(56))
    assert d.opcode == 0xEE
    assert Descriptor(opcode=Opcode.COMPARE).pack()[7] == 5


def test_union_aliases():
    d = Descriptor()
    d.pattern = 0x1122334455667788
    d.src2_addr = 0x4000
    assert (d.src_addr, d.dst_addr) == (0x1122334455667788, 0x4000)


def test_wrong_length():
    with pytest.raises(ValueError, match=r"^Descriptor is 64 bytes, not 63$"):
        Descriptor.unpack(bytes(63))
    with pytest.raises(ValueError, match=r"^CompletionRecord is 32 bytes, not 64$"):
        CompletionRecord.unpack(bytes(64))
    with pytest.raises(TypeError, match=r"^Descriptor.unpack needs a bytes-like object, not str$"):
        Descriptor.unpack("x" * 64)


def test_value_too_wide():
    with pytest.raises(ValueError, match=r"^Descriptor.pasid is a 20-bit field; 0x100000 does not fit$"):
        Descriptor(pasid=1 << 20).pack()
    with pytest.raises(ValueError, match=r"^Descriptor.xfer_size is a 32-bit field; -0x1 does not fit$"):
        Descriptor(xfer_size=-1).pack()
    with pytest.raises(ValueError, match=r"^CompletionRecord.status is a 7-bit field; 0x83 does not fit$"):
        CompletionRecord(status=0x83).pack()
    with pytest.raises(TypeError, match=r"^Descriptor.flags must be an int, not 1.5$"):
        Descriptor(flags=1.5).pack()
    with pytest.raises(TypeError, match=r"^Descriptor.priv must be an int, not True$"):
        Descriptor(priv=True).pack()


def test_status_compares_as_the_int_the_record_holds():
    """Host code reads a record's status byte as an int and compares it with a
    ``Status`` member: the comparison must mean what it says (``Status`` is an
    Amaranth ``IntEnum``, still a 7-bit shape for the RTL)."""
    rec = CompletionRecord.unpack(CompletionRecord(status=Status.PAGE_FAULT, status_write=1).pack())
    assert rec.status == Status.PAGE_FAULT and rec.status != Status.SUCCESS
    assert int(Status.WAIT_TIMEOUT) == 0x70 and Status(0x01) is Status.SUCCESS
    assert Status.PAGE_FAULT | 0x80 == 0x83                 # DSA_COMP_STATUS_WRITE on the status byte
    assert sorted(Status) == sorted(s.value for s in Status)
    assert Shape.cast(Status).width == 7 and CompletionLayout["status"].shape is Status


def test_every_field_and_union_name_is_a_constructor_argument():
    """What a descriptor has, its constructor takes: the layout's fields and the
    union members idxd.h names (MEMFILL's ``pattern``, COMPARE's ``src2_addr``)
    and the semaphore address of WAIT and SIGNAL."""
    assert Descriptor(opcode=Opcode.MEMFILL, pattern=0x1122334455667788, dst_addr=8).src_addr \
        == 0x1122334455667788
    assert Descriptor(opcode=Opcode.COMPARE, src_addr=0x40, src2_addr=0x80).dst_addr == 0x80
    w = Descriptor(opcode=Opcode.WAIT, sem_addr=0x2008, sem_value=5, sem_mask=0xFF)
    s = Descriptor(opcode=Opcode.SIGNAL, sem_addr=0x3010, sem_value=7)
    assert (w.src_addr, w.dst_addr, w.sem_value, w.sem_mask) == (0x2008, 0, 5, 0xFF)
    assert (s.src_addr, s.dst_addr, s.sem_value) == (0, 0x3010, 7)
    for name, _, width in Descriptor._FIELDS:
        assert getattr(Descriptor(**{name: 1}), name) == 1
    assert Descriptor(pattern=3) == Descriptor(src_addr=3)          # one descriptor, two spellings


def test_constructor_refuses_two_values_for_one_field():
    with pytest.raises(TypeError, match=r"^Descriptor: pattern and src_addr are the same field; give one$"):
        Descriptor(pattern=1, src_addr=2)
    with pytest.raises(TypeError, match=r"^Descriptor: src2_addr and dst_addr are the same field; give one$"):
        Descriptor(src2_addr=1, dst_addr=2)
    with pytest.raises(TypeError, match=r"^Descriptor: sem_addr and src_addr are the same field"):
        Descriptor(opcode=Opcode.WAIT, sem_addr=8, src_addr=16)
    with pytest.raises(ValueError, match=r"^Descriptor: sem_addr is the address of a WAIT or SIGNAL, "
                                         r"not of opcode 0x3$"):
        Descriptor(opcode=Opcode.MEMMOVE, sem_addr=8)
    with pytest.raises(TypeError):
        Descriptor(value=1)
