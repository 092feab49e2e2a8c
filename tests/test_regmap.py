"""The register map: generated files are current, and the tables are consistent."""

import pytest

from siov.rtl import regmap
from siov.rtl.csr.bank import RegisterBank
from siov.rtl.csr.regdefs import External, Field, Register, window_contents
from siov.rtl.gen_regs import OUTPUTS, ROOT, generate
from siov.tb.amsim import csr_access


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


@pytest.mark.parametrize("pipelined, split_read, latency", [(False, False, 1), (True, False, 2), (True, True, 3)])
def test_bank_answers_by_the_whole_address(pipelined, split_read, latency):
    """The bank decodes the word address in two halves (the low bits the registers
    differ in, the high bits they share): an address whose low bits name a register
    and whose high bits do not is no register (DECERR, zero data, nothing written),
    whichever access came before it, and every answer keeps its latency."""
    from amaranth.sim import Simulator

    from siov.rtl.csr.bus import Resp
    rw = Register("T.RW", 0x100, (Field("V", 0, 32, "rw", "r", 0x1234_5678),))
    ro = Register("T.RO", 0x104, (Field("V", 0, 32, "r", "w", None),))
    dut = RegisterBank([rw, ro], addr_width=12, base=0x100, pipelined=pipelined, split_read=split_read)
    seen = []

    async def bench(ctx):
        ctx.set(dut.port("T.RO.V"), 0xCAFE_F00D)
        # (address, we, wdata) -> (resp, rdata); 0x8 and 0x10 share the low bit with
        # RO and RW, 0x40 the low bits of both.
        for addr, we, wdata, want in [
                (0x0, 0, 0, (Resp.OKAY, 0x1234_5678)), (0x8, 0, 0, (Resp.DECERR, 0)),
                (0x4, 0, 0, (Resp.OKAY, 0xCAFE_F00D)), (0x10, 0, 0, (Resp.DECERR, 0)),
                (0x10, 1, 0xFFFF_FFFF, (Resp.DECERR, 0)), (0x40, 1, 0xFFFF_FFFF, (Resp.DECERR, 0)),
                (0x4, 1, 0, (Resp.SLVERR, 0)), (0x0, 1, 0xAAAA_5555, (Resp.OKAY, 0)),
                (0x40, 0, 0, (Resp.DECERR, 0)), (0x0, 0, 0, (Resp.OKAY, 0xAAAA_5555))]:
            cycles, resp, rdata = await csr_access(ctx, dut.csr, addr, we=we, wdata=wdata, limit=10)
            got = (resp, rdata)
            seen.append((addr, we, cycles, got, want))
            assert (cycles, got) == (latency, want), f"{addr:#x} we={we}: {cycles} cycles, {got}"
            await ctx.tick()
            assert not ctx.get(dut.csr.ack)
        assert ctx.get(dut.port("T.RW.V")) == 0xAAAA_5555

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(seen) == 10
