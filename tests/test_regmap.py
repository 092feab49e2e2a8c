"""The register map: generated files are current, and the tables are consistent."""

import pytest

from siov.rtl import regmap
from siov.rtl.csr.bank import RegisterBank
from siov.rtl.csr.regdefs import External, Field, Register, window_contents
from siov.rtl.gen_regs import OUTPUTS, ROOT, generate


def test_generated_files_are_current():
    stale = generate(check=True)
    assert not stale, ("out of date (run `make regs`): " +
                       ", ".join(str(p.relative_to(ROOT)) for p in stale))


def test_every_output_exists():
    for path in OUTPUTS.values():
        assert path.exists() and path.stat().st_size > 0


def test_no_address_overlaps_in_any_window():
    windows = [""] + list(regmap.EXTERNALS)
    for w in windows:
        regs, exts = window_contents(w, regmap.REGISTERS.values(), regmap.EXTERNALS.values())
        spans = sorted([(r.offset, r.offset + 4) for r in regs] + [(e.offset, e.offset + e.size) for e in exts])
        for (a0, a1), (b0, _) in zip(spans, spans[1:]):
            assert b0 >= a1, f"overlap in window {w!r} at {b0:#x}"


def test_constants_match_tables():
    assert regmap.GLOBAL_ID == regmap.REGISTERS["GLOBAL.ID"].offset
    assert regmap.GLOBAL_ID_MAGIC_VALUE == int.from_bytes(b"VOIS", "little")
    f = regmap.REGISTERS["GLOBAL.CAP0"].field("IMS_ENTRIES")
    assert regmap.GLOBAL_CAP0_IMS_ENTRIES_MASK == f.mask


def test_c_header_names_every_top_register():
    text = OUTPUTS["cheader"].read_text()
    for path in window_contents("", regmap.REGISTERS.values(), regmap.EXTERNALS.values())[0]:
        assert path.path.split(".")[-1] in text


def test_bank_rejects_overlap():
    a = Register("A", 0x0, (Field("X", 0, 32, "rw", "r", 0),))
    b = Register("B", 0x0, (Field("Y", 0, 32, "rw", "r", 0),))
    with pytest.raises(ValueError, match=r"Register B at 0x0 overlaps A"):
        RegisterBank([a, b], addr_width=8)


def test_bank_rejects_misaligned_window():
    e = External("T", 0x30, 0x20)
    with pytest.raises(ValueError, match=r"External window T must be a naturally aligned power of two"):
        RegisterBank([], [e], addr_width=8)


def test_bank_rejects_register_outside_window():
    a = Register("A", 0x400, (Field("X", 0, 32, "rw", "r", 0),))
    with pytest.raises(ValueError, match=r"A at 0x400 lies outside the bank window"):
        RegisterBank([a], addr_width=8)


def test_bank_rejects_hw_written_sw_field():
    a = Register("A", 0x0, (Field("X", 0, 8, "rw", "w", 0),))
    with pytest.raises(ValueError, match=r"sw-writable fields written by hardware are not supported"):
        RegisterBank([a], addr_width=8)


def test_bank_split_read_needs_pipelined():
    a = Register("A", 0x0, (Field("X", 0, 32, "rw", "r", 0),))
    with pytest.raises(ValueError, match=r"split_read needs pipelined=True"):
        RegisterBank([a], addr_width=8, split_read=True)
