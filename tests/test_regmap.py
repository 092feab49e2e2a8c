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


def test_every_pasid_field_is_pasid_bits_wide():
    from siov.rtl.dma.defs import PASID_BITS
    fields = [(r.path, f) for r in regmap.REGISTERS.values() for f in r.fields if f.name == "PASID"]
    assert {"IRQ.FAULT_REC0", "DMA.ADI_ENTRY", "DMA.ADI_CUR", "DMA.FAULT_REC0", "CMD.ADI_CFG"} <= \
        {path for path, _ in fields}
    for path, f in fields:
        assert f.width == PASID_BITS, f"{path}.PASID is {f.width} bits"
    assert regmap.IRQ_IMS_ENTRY_PASID_WIDTH == PASID_BITS


def test_layouts_carry_pasid_bits():
    from amaranth.hdl import Shape
    from siov.rtl.cmd.adi import RING_LAYOUT
    from siov.rtl.cmd.dsa import DescriptorLayout
    from siov.rtl.dma.defs import PASID_BITS
    from siov.rtl.irq.remapper import FaultLayout, IrqLayout, MessageLayout
    for layout in (RING_LAYOUT, DescriptorLayout, MessageLayout, IrqLayout, FaultLayout):
        assert Shape.cast(layout["pasid"].shape).width == PASID_BITS


def test_enums_fit_their_fields():
    cases = [(regmap.AdiState, "CMD.ADI_STATUS", "STATE"), (regmap.AdiError, "CMD.ADI_STATUS", "ERROR_CODE"),
             (regmap.IrqFaultReason, "IRQ.FAULT_REC0", "REASON"), (regmap.DmaFaultReason, "DMA.FAULT_REC0", "REASON")]
    for enum, path, name in cases:
        width = regmap.REGISTERS[path].field(name).width
        assert all(0 <= m < 1 << width for m in enum), f"{enum.__name__} does not fit {path}.{name}"


def test_enums_are_imported_not_redeclared():
    from siov.rtl.cmd import adi
    from siov.rtl.dma import defs
    from siov.sw.model import adi as adi_model
    from siov.sw.model import irq as irq_model
    assert adi.AdiState is regmap.AdiState and adi.AdiError is regmap.AdiError
    assert defs.Reason is regmap.DmaFaultReason
    assert (adi_model.DISABLED, adi_model.ENABLED, adi_model.DRAINING, adi_model.ERROR) == tuple(regmap.AdiState)
    assert adi_model.ERR_DESC_PASID is regmap.AdiError.DESC_PASID
    assert irq_model.FAULT_PASID_MISMATCH is regmap.IrqFaultReason.PASID_MISMATCH


def test_ims_entry_constants():
    # The IMS window holds entries of IRQ_IMS_ENTRY_STRIDE bytes, the idxd layout.
    assert regmap.IRQ_IMS_ENTRY_STRIDE == 16
    assert regmap.EXTERNALS["IRQ.IMS"].size % regmap.IRQ_IMS_ENTRY_STRIDE == 0
    words = [regmap.IRQ_IMS_ENTRY_ADDR_LO_WORD, regmap.IRQ_IMS_ENTRY_ADDR_HI_WORD,
             regmap.IRQ_IMS_ENTRY_DATA_WORD, regmap.IRQ_IMS_ENTRY_MASK_WORD]
    assert words == [0, 1, 2, 3]
    ctrl = [regmap.IRQ_IMS_ENTRY_MASK_MASK, regmap.IRQ_IMS_ENTRY_PENDING_MASK,
            regmap.IRQ_IMS_ENTRY_PASID_EN_MASK, regmap.IRQ_IMS_ENTRY_PASID_MASK]
    assert ctrl == [1 << 0, 1 << 1, 1 << 3, 0xFFFFF << 12]
    assert regmap.IRQ_IMS_ENTRY_PASID_WORD == regmap.IRQ_IMS_ENTRY_MASK_WORD
