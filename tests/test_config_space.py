"""The virtual device's configuration space (sw/hv/config_space.py).

Unit tests of the register semantics, and the space decoded by the real
``lspci`` (pciutils) from a ``-xxxx`` dump: what lspci reads from it is what
a guest's PCI core would find.
"""

import re

import pytest
from apt_support import debian_program, run_command

from siov.sw.hv import config_space as cs
from siov.sw.hv.config_space import (CONFIG_SPACE_SIZE, ConfigWriteError, ReadOnlyConfigWrite,
                                     VirtualConfigSpace)

PAGE = 4096


def space(**kw):
    kw.setdefault("msix_vectors", 8)
    return VirtualConfigSpace(**kw)


# --- layout -----------------------------------------------------------------

def test_header_identity():
    c = space(vendor_id=0x1234, device_id=0xABCD, revision=3)
    assert c.read(cs.PCI_VENDOR_ID, 2) == 0x1234 == c.vendor_id
    assert c.read(cs.PCI_DEVICE_ID, 2) == 0xABCD == c.device_id
    assert c.read(cs.PCI_VENDOR_ID, 4) == 0xABCD1234
    assert c.read(cs.PCI_REVISION_ID, 4) == 0x08800003     # class 0880, prog-if 0, rev 3
    assert c.read(cs.PCI_HEADER_TYPE, 1) == 0
    assert c.read(cs.PCI_STATUS, 2) & cs.PCI_STATUS_CAP_LIST
    assert c.read(cs.PCI_SUBSYSTEM_VENDOR_ID, 4) == 0xABCD1234
    assert c.read(cs.PCI_INTERRUPT_PIN, 1) == 0
    assert c.read(cs.PCI_BASE_ADDRESS_0, 4) == cs.PCI_BASE_ADDRESS_MEM_TYPE_64
    assert c.command == 0 and c.bar0 == 0


def test_capability_chain():
    c = space(msix_vectors=5, pasid_width=20)
    caps = c.capabilities()
    assert [cid for cid, _ in caps] == [cs.PCI_CAP_ID_EXP, cs.PCI_CAP_ID_MSIX]
    assert c.read(cs.PCI_CAPABILITY_LIST, 1) == caps[0][1]
    exp = c.find_capability(cs.PCI_CAP_ID_EXP)
    flags = c.read(exp + cs.PCI_EXP_FLAGS, 2)
    assert flags & cs.PCI_EXP_FLAGS_VERS == 2
    assert (flags & cs.PCI_EXP_FLAGS_TYPE) >> 4 == cs.PCI_EXP_TYPE_RC_END
    assert c.read(exp + cs.PCI_EXP_DEVCAP, 4) & cs.PCI_EXP_DEVCAP_FLR
    msix = c.find_capability(cs.PCI_CAP_ID_MSIX)
    assert c.read(msix + cs.PCI_CAP_LIST_NEXT, 1) == 0     # the list ends
    assert c.ext_capabilities() == [(cs.PCI_EXT_CAP_ID_PASID, 1, 0x100)]
    header = c.read(0x100, 4)
    assert header >> cs.PCI_EXT_CAP_NEXT_SHIFT == 0         # the extended list ends
    pasid = c.find_ext_capability(cs.PCI_EXT_CAP_ID_PASID)
    cap = c.read(pasid + cs.PCI_PASID_CAP, 2)
    assert (cap & cs.PCI_PASID_CAP_WIDTH) >> 8 == 20 == c.pasid_width
    assert not cap & (cs.PCI_PASID_CAP_EXEC | cs.PCI_PASID_CAP_PRIV)
    assert c.find_capability(0x05) is None and c.find_ext_capability(0x10) is None


@pytest.mark.parametrize("n", [1, 2, 8, 64, 65, 2048])
def test_msix_table_size_encoding(n):
    c = space(msix_vectors=n)
    msix = c.find_capability(cs.PCI_CAP_ID_MSIX)
    assert c.read(msix + cs.PCI_MSIX_FLAGS, 2) & 0x7FF == n - 1
    assert c.msix_table_size == n
    table = c.read(msix + cs.PCI_MSIX_TABLE, 4)
    pba = c.read(msix + cs.PCI_MSIX_PBA, 4)
    assert table & 7 == 0 and pba & 7 == 0                  # both in BAR0
    table, pba = table & ~7, pba & ~7
    assert (table, pba) == (c.msix_table_offset, c.msix_pba_offset)
    # Doorbells, table and PBA do not overlap, each page-aligned, all inside BAR0.
    assert table == c.mmio_size and table % PAGE == 0 and pba % PAGE == 0
    assert pba >= table + 16 * n
    assert pba + -(-n // 64) * 8 <= c.bar0_size
    assert c.bar0_size & (c.bar0_size - 1) == 0


def test_bad_parameters():
    for kw in ({"msix_vectors": 0}, {"msix_vectors": 2049}, {"pasid_width": 21},
               {"pasid_width": 0}, {"mmio_size": 100}, {"vendor_id": 0xFFFF}):
        with pytest.raises(ValueError):
            VirtualConfigSpace(**kw)


# --- BAR sizing ----------------------------------------------------------------

@pytest.mark.parametrize("pages,vectors", [(1, 1), (1, 8), (4, 300), (16, 2048)])
def test_bar_sizing(pages, vectors):
    c = space(mmio_size=pages * PAGE, msix_vectors=vectors)
    size = c.bar0_size
    assert size >= c.msix_pba_offset + PAGE
    bar = cs.PCI_BASE_ADDRESS_0
    c.write(bar, 4, 0xFFFFFFFF)
    c.write(bar + 4, 4, 0xFFFFFFFF)
    lo, hi = c.read(bar, 4), c.read(bar + 4, 4)
    assert lo & 0xF == cs.PCI_BASE_ADDRESS_MEM_TYPE_64      # memory, 64-bit, non-prefetchable
    mask = hi << 32 | lo & ~0xF
    assert (~mask & (1 << 64) - 1) + 1 == size
    # Program an address: it reads back, flags kept.
    c.write(bar, 4, 0xFE000000)
    c.write(bar + 4, 4, 0x1)
    assert c.read(bar, 4) == 0xFE000000 | cs.PCI_BASE_ADDRESS_MEM_TYPE_64
    assert c.bar0 == 0x1_FE000000


def test_bar_low_bits_hardwired():
    c = space()
    c.write(cs.PCI_BASE_ADDRESS_0, 4, 0xFEDC_BA98 | 0xF)
    assert c.read(cs.PCI_BASE_ADDRESS_0, 4) == 0xFEDC_BA98 & ~(c.bar0_size - 1) | 4


# --- read-only writes -------------------------------------------------------------

READ_ONLY = [
    (cs.PCI_VENDOR_ID, 2, "Vendor ID"),
    (cs.PCI_VENDOR_ID, 4, "Vendor ID"),
    (cs.PCI_DEVICE_ID, 1, "Device ID"),
    (cs.PCI_CLASS_DEVICE, 2, "Class Code"),
    (cs.PCI_HEADER_TYPE, 1, "Header Type"),
    (cs.PCI_BASE_ADDRESS_0 + 8, 4, "BAR2"),
    (cs.PCI_BASE_ADDRESS_5, 4, "BAR5"),
    (cs.PCI_ROM_ADDRESS, 4, "Expansion ROM Base Address"),
    (cs.PCI_CAPABILITY_LIST, 1, "Capabilities Pointer"),
    (cs.PCI_STATUS, 1, "Status bits 7:0"),
    (cs.PCI_BASE_ADDRESS_0, 1, "BAR0 bits 7:0"),
    (cs.PCI_INTERRUPT_LINE, 4, "Interrupt Pin"),            # line is RW, pin is not
    (cs.EXP_CAP_OFFSET, 4, "PCIe Capability Header"),
    (cs.EXP_CAP_OFFSET + cs.PCI_EXP_DEVCAP, 4, "PCIe Device Capabilities"),
    (cs.MSIX_CAP_OFFSET, 4, "MSI-X Capability Header"),     # dword with Message Control
    (cs.MSIX_CAP_OFFSET + cs.PCI_MSIX_TABLE, 4, "MSI-X Table Offset/BIR"),
    (cs.MSIX_CAP_OFFSET + cs.PCI_MSIX_FLAGS, 1, "MSI-X Message Control bits 7:0"),
    (0x100, 4, "PASID Extended Capability Header"),
    (0x104, 4, "PASID Capability"),                         # dword with PASID Control
    (0x50 + 0x3C, 4, "reserved PCI configuration space at 0x08c"),
    (0x200, 2, "reserved extended configuration space at 0x200"),
    (0xFFC, 4, "reserved extended configuration space at 0xffc"),
]


@pytest.mark.parametrize("offset,size,name", READ_ONLY)
def test_read_only_write_raises_and_changes_nothing(offset, size, name):
    c = space()
    c.write(cs.PCI_COMMAND, 2, cs.PCI_COMMAND_MEMORY)       # some non-reset state
    before = c.snapshot()
    assert len(before) == CONFIG_SPACE_SIZE
    assert not c.is_writable(offset, size)
    with pytest.raises(ReadOnlyConfigWrite) as e:
        c.write(offset, size, (1 << 8 * size) - 1)
    assert isinstance(e.value, ConfigWriteError)
    assert (e.value.offset, e.value.size) == (offset, size)
    assert e.value.register == name
    assert name in str(e.value) and f"{offset:#05x}" in str(e.value)
    assert c.snapshot() == before


def test_every_offset_classified():
    """is_writable agrees with write at every byte, and a refused write changes nothing."""
    c = space()
    before = c.snapshot()
    writable = set()
    for off in range(CONFIG_SPACE_SIZE):
        if c.is_writable(off, 1):
            writable.add(off)
            continue
        with pytest.raises(ReadOnlyConfigWrite):
            c.write(off, 1, 0xFF)
    assert c.snapshot() == before
    e, m = cs.EXP_CAP_OFFSET, cs.MSIX_CAP_OFFSET
    assert c.bar0_size == 0x4000                             # one doorbell page, table, PBA
    assert writable == {
        0x04, 0x05,                          # Command
        0x07,                                # Status RW1C bits 15:8
        0x0C,                                # Cache Line Size
        0x11, 0x12, 0x13,                    # BAR0 address bits 31:14
        0x14, 0x15, 0x16, 0x17,              # BAR0 upper
        0x3C,                                # Interrupt Line
        e + 8, e + 9, e + 10,                # Device Control, Device Status RW1C
        m + 3,                               # MSI-X enable, function mask
        0x106,                               # PASID Control enable
    }


def test_out_of_range_and_bad_size():
    c = space()
    for off, size in ((CONFIG_SPACE_SIZE, 1), (CONFIG_SPACE_SIZE - 2, 4), (-1, 1), (0, 3), (0, 8)):
        with pytest.raises(ValueError):
            c.read(off, size)
        with pytest.raises(ValueError):
            c.write(off, size, 0)
    with pytest.raises(ValueError):
        c.write(cs.PCI_COMMAND, 2, 0x10000)


# --- writable fields -----------------------------------------------------------------

def test_command_bits():
    c = space()
    r = c.write(cs.PCI_COMMAND, 2, 0xFFFF)
    assert c.command == (cs.PCI_COMMAND_MEMORY | cs.PCI_COMMAND_MASTER | cs.PCI_COMMAND_PARITY
                         | cs.PCI_COMMAND_SERR | cs.PCI_COMMAND_INTX_DISABLE)
    assert r.changed == ("Command",) and not r.flr
    assert c.memory_enabled and c.bus_master
    c.write(cs.PCI_COMMAND, 1, 0)                            # sub-word: low byte only
    assert c.command == cs.PCI_COMMAND_SERR | cs.PCI_COMMAND_INTX_DISABLE
    assert not c.memory_enabled and not c.bus_master


def test_command_status_dword():
    """A dword write of Command and Status: Status's RW1C bits take ones without effect."""
    c = space()
    r = c.write(cs.PCI_COMMAND, 4, 0xFFFF0000 | cs.PCI_COMMAND_MEMORY)
    assert c.read(cs.PCI_COMMAND, 4) == cs.PCI_STATUS_CAP_LIST << 16 | cs.PCI_COMMAND_MEMORY
    assert r.changed == ("Command",)
    # Writing the same again changes nothing and is still accepted.
    assert c.write(cs.PCI_COMMAND, 4, c.read(cs.PCI_COMMAND, 4)).changed == ()


def test_msix_control():
    c = space(msix_vectors=16)
    flags = cs.MSIX_CAP_OFFSET + cs.PCI_MSIX_FLAGS
    r = c.write(flags, 2, 0xFFFF)                            # table size bits ignored
    assert r.changed == ("MSI-X Message Control",)
    assert c.msix_enabled and c.msix_function_masked and c.msix_table_size == 16
    c.write(flags + 1, 1, cs.PCI_MSIX_FLAGS_ENABLE >> 8)    # byte write: unmask
    assert c.msix_enabled and not c.msix_function_masked
    assert c.msix_control == cs.PCI_MSIX_FLAGS_ENABLE | 15
    c.write(cs.MSIX_CAP_OFFSET + 2, 2, 0)
    assert not c.msix_enabled


def test_pasid_control():
    c = space(pasid_width=16)
    ctrl = cs.PASID_CAP_OFFSET + cs.PCI_PASID_CTRL
    r = c.write(ctrl, 2, 0xFFFF)                             # exec/priv unsupported: stay 0
    assert c.read(ctrl, 2) == cs.PCI_PASID_CTRL_ENABLE and c.pasid_enabled
    assert r.changed == ("PASID Control",)
    assert c.pasid_width == 16
    c.write(ctrl, 1, 0)
    assert not c.pasid_enabled


def test_device_control_and_flr():
    c = space()
    devctl = cs.EXP_CAP_OFFSET + cs.PCI_EXP_DEVCTL
    assert c.devctl == 0x2810                                # RO+, NoSnoop+, MRRS 512 B
    c.write(devctl, 2, 0x5000 | 0x0020 | cs.PCI_EXP_DEVCTL_URRE)
    assert c.devctl == 0x5000 | 0x0020 | cs.PCI_EXP_DEVCTL_URRE
    c.write(cs.PCI_COMMAND, 2, cs.PCI_COMMAND_MEMORY | cs.PCI_COMMAND_MASTER)
    c.write(cs.PCI_BASE_ADDRESS_0, 4, 0xFE000000)
    c.write(cs.MSIX_CAP_OFFSET + cs.PCI_MSIX_FLAGS, 2, cs.PCI_MSIX_FLAGS_ENABLE)
    c.write(cs.PASID_CAP_OFFSET + cs.PCI_PASID_CTRL, 2, 1)
    r = c.write(devctl, 2, c.devctl | cs.PCI_EXP_DEVCTL_BCR_FLR)
    assert r.flr
    # Function state back at reset, Max_Payload_Size kept, Initiate FLR reads 0.
    assert c.command == 0 and c.bar0 == 0 and not c.msix_enabled and not c.pasid_enabled
    assert c.devctl == 0x2810 | 0x0020
    fresh = space()
    fresh.write(devctl, 2, 0x2810 | 0x0020)
    assert c.snapshot() == fresh.snapshot()
    assert set(r.changed) >= {"Command", "BAR0", "PCIe Device Control",
                              "MSI-X Message Control", "PASID Control"}


def test_sub_dword_reads():
    c = space(vendor_id=0x1234, device_id=0x5678)
    assert c.read(0, 1) == 0x34 and c.read(1, 1) == 0x12
    assert c.read(1, 2) == 0x7812                            # unaligned, little-endian
    assert c.read(2, 2) == 0x5678
    assert c.read(0, 4) == 0x56781234
    c.write(cs.PCI_BASE_ADDRESS_0 + 4, 4, 0x89ABCDEF)
    assert [c.read(0x14 + i, 1) for i in range(4)] == [0xEF, 0xCD, 0xAB, 0x89]
    c.write(0x16, 2, 0x0102)
    assert c.read(0x14, 4) == 0x0102CDEF


def test_reset():
    c = space()
    before = c.snapshot()
    c.write(cs.PCI_COMMAND, 2, 6)
    c.write(cs.PCI_INTERRUPT_LINE, 1, 11)
    c.reset()
    assert c.snapshot() == before


# --- MSI-X table ---------------------------------------------------------------------

def test_msix_table_reset_state():
    """After reset every vector is masked (PCIe 6.0 7.7.2.9: Mask Bit resets to 1)."""
    c = space(msix_vectors=3)
    t = c.msix_table
    assert t.vectors == 3 and t.size == 3 * cs.PCI_MSIX_ENTRY_SIZE
    for k in range(3):
        base = k * cs.PCI_MSIX_ENTRY_SIZE
        assert [t.read(base + off) for off in (0, 4, 8, 12)] == [0, 0, 0, cs.PCI_MSIX_ENTRY_CTRL_MASKBIT]
        assert t.masked(k) and t.message(k) == (0, 0)


def test_msix_table_entries_take_what_pcie_lets_software_write():
    t = space(msix_vectors=2).msix_table
    e = cs.PCI_MSIX_ENTRY_SIZE
    assert t.write(e + cs.PCI_MSIX_ENTRY_LOWER_ADDR, 0xFEE0_1003) == 1
    t.write(e + cs.PCI_MSIX_ENTRY_UPPER_ADDR, 0x1)
    t.write(e + cs.PCI_MSIX_ENTRY_DATA, 0xABCD_0041)
    assert t.read(e) == 0xFEE0_1000                       # Message Address bits 1:0 are zero (DWORD aligned)
    assert t.message(1) == (0x1_FEE0_1000, 0xABCD_0041)
    t.write(e + cs.PCI_MSIX_ENTRY_VECTOR_CTRL, 0xFFFF_FFFE)  # reserved bits stay 0: the mask clears
    assert t.read(e + cs.PCI_MSIX_ENTRY_VECTOR_CTRL) == 0 and not t.masked(1) and t.masked(0)
    t.write(e + cs.PCI_MSIX_ENTRY_VECTOR_CTRL, 1)
    assert t.masked(1)
    for bad in (-4, 2 * e, 2, 7):
        with pytest.raises(ValueError, match="MSI-X table"):
            t.read(bad)
        with pytest.raises(ValueError, match="MSI-X table"):
            t.write(bad, 0)
    with pytest.raises(ValueError, match="does not fit in 4 bytes"):
        t.write(0, 1 << 32)


def test_flr_and_reset_restore_the_msix_table():
    c = space(msix_vectors=2)
    c.msix_table.write(cs.PCI_MSIX_ENTRY_VECTOR_CTRL, 0)
    c.msix_table.write(cs.PCI_MSIX_ENTRY_DATA, 0x41)
    devctl = cs.EXP_CAP_OFFSET + cs.PCI_EXP_DEVCTL
    assert c.write(devctl, 2, c.devctl | cs.PCI_EXP_DEVCTL_BCR_FLR).flr
    assert c.msix_table.masked(0) and c.msix_table.message(0) == (0, 0)
    c.msix_table.write(cs.PCI_MSIX_ENTRY_VECTOR_CTRL, 0)
    c.reset()
    assert c.msix_table.masked(0)


# --- lspci ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lspci():
    """Path of lspci, installing Debian's pciutils with apt when it is missing."""
    return debian_program("lspci", "pciutils")


def decode(lspci, tmp_path, c, *args):
    dump = tmp_path / "config.txt"
    dump.write_text(c.dump_lspci_x("00:04.0"))
    r = run_command([lspci, "-F", str(dump), *args])
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_dump_format():
    c = space()
    lines = c.dump_lspci_x("00:04.0").splitlines()
    assert lines[0] == "00:04.0 System peripheral: Device 510f:0001 (rev 01)"
    assert len(lines) == 1 + 256 + 1 and lines[-1] == ""    # ends with an empty line
    assert lines[1].startswith("00: 0f 51 01 00 ") and lines[16].startswith("f0: ")
    assert lines[17].startswith("100: 1b 00 01 00 ") and lines[256].startswith("ff0: ")


def test_lspci_reads_back_the_dump(lspci, tmp_path):
    """lspci -F parses every byte: its own -xxxx dump of the file is the same text."""
    c = space()
    c.write(cs.PCI_BASE_ADDRESS_0, 4, 0xFE000000)
    assert decode(lspci, tmp_path, c, "-xxxx") == c.dump_lspci_x("00:04.0")


@pytest.mark.parametrize("vectors,width", [(8, 20), (2048, 16)])
def test_lspci_decodes_capabilities(lspci, tmp_path, vectors, width):
    c = space(msix_vectors=vectors, pasid_width=width)
    out = decode(lspci, tmp_path, c, "-vvv")
    assert out.startswith("00:04.0 System peripheral: Device 510f:0001 (rev 01)\n")
    assert "Region 0: Memory at <unassigned> (64-bit, non-prefetchable)" in out
    assert "Capabilities: [40] Express (v2) Root Complex Integrated Endpoint, MSI 00" in out
    assert re.search(r"DevCap:.*\n\s+ExtTag\+ RBE\+ FLReset\+", out)
    assert f"Capabilities: [80] MSI-X: Enable- Count={vectors} Masked-" in out
    assert f"Vector table: BAR=0 offset={c.msix_table_offset:08x}" in out
    assert f"PBA: BAR=0 offset={c.msix_pba_offset:08x}" in out
    assert "Capabilities: [100 v1] Process Address Space ID (PASID)" in out
    # pciutils prints the Max PASID Width field in hex.
    assert f"PASIDCap: Exec- Priv-, Max PASID Width: {width:02x}" in out
    assert "PASIDCtl: Enable- Exec- Priv-" in out


def test_lspci_sees_writes(lspci, tmp_path):
    c = space()
    c.write(cs.PCI_COMMAND, 2, cs.PCI_COMMAND_MEMORY | cs.PCI_COMMAND_MASTER
            | cs.PCI_COMMAND_INTX_DISABLE)
    c.write(cs.PCI_BASE_ADDRESS_0, 4, 0xFE000000)
    c.write(cs.MSIX_CAP_OFFSET + cs.PCI_MSIX_FLAGS, 2,
            cs.PCI_MSIX_FLAGS_ENABLE | cs.PCI_MSIX_FLAGS_MASKALL)
    c.write(cs.PASID_CAP_OFFSET + cs.PCI_PASID_CTRL, 2, cs.PCI_PASID_CTRL_ENABLE)
    out = decode(lspci, tmp_path, c, "-vvv")
    assert re.search(r"Control: I/O- Mem\+ BusMaster\+ .* DisINTx\+", out)
    assert "Region 0: Memory at fe000000 (64-bit, non-prefetchable)\n" in out
    assert "MSI-X: Enable+ Count=8 Masked+" in out
    assert "PASIDCtl: Enable+ Exec- Priv-" in out


def test_lspci_sees_the_virtual_device_controls(lspci, tmp_path):
    """The controls as a guest's lspci -vv shows them on the VDCM's device: all off at reset,
    on after the guest driver's open (Memory, bus master, MSI-X), off again after an FLR."""
    from siov.sw.guest.driver import FrontendDriver
    from siov.sw.hv.hypervisor import TenantKind
    from hv_support import run

    async def prog(bus, hv):
        t = await hv.create_tenant("vm0", TenantKind.VM, 16)
        vdev = await hv.vdcm.create(t, adis=2)
        shots = [vdev.config.dump_lspci_x("00:04.0")]
        await FrontendDriver(vdev).open()
        shots.append(vdev.config.dump_lspci_x("00:04.0"))
        devctl = cs.EXP_CAP_OFFSET + cs.PCI_EXP_DEVCTL
        await vdev.config_write(devctl, vdev.config.devctl | cs.PCI_EXP_DEVCTL_BCR_FLR, 2)
        shots.append(vdev.config.dump_lspci_x("00:04.0"))
        return shots

    outs = []
    for i, shot in enumerate(run(prog)):
        dump = tmp_path / f"config{i}.txt"
        dump.write_text(shot)
        r = run_command([lspci, "-F", str(dump), "-vv"])
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    reset, opened, after_flr = outs
    for out in (reset, after_flr):
        assert re.search(r"Control: I/O- Mem- BusMaster- ", out)
        assert "MSI-X: Enable- Count=2 Masked-" in out
    assert re.search(r"Control: I/O- Mem\+ BusMaster\+ ", opened)
    assert "MSI-X: Enable+ Count=2 Masked-" in opened
    assert re.search(r"DevCap:.*\n\s+ExtTag\+ RBE\+ FLReset\+", after_flr)
