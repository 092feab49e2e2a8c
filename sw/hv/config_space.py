"""The PCI configuration space of one virtual device, as the VDCM emulates it.

A guest's configuration reads and writes of its virtual device (the slow
path) land here. :class:`VirtualConfigSpace` holds the 4 KiB PCI Express
configuration space of one function: a Type 0 header with one 64-bit
memory BAR, a PCI Express capability (v2, Root Complex Integrated Endpoint,
Function Level Reset), an MSI-X capability whose vectors are the IMS
handles the virtual device exposes, and, in extended space, a PASID
capability. :class:`MsixTable` is the MSI-X table that capability places
in BAR0. Both are plain data: no bus, no event loop; the VDCM decides what a
write that takes effect means (``changed`` and ``flr`` of the returned
:class:`ConfigWrite`, the entry an MSI-X table write changed): see
:mod:`siov.sw.hv.vdcm` for what Memory Space Enable, Bus Master Enable,
Function Level Reset, MSI-X Enable, Function Mask and the vectors' Mask
Bits do to the device.

Every byte has a write mask (read-write bits) and a write-1-to-clear mask.
A write takes effect bit by bit through those masks, or not at all: a write
that reaches a read-only register (no RW or RW1C bit anywhere in it: IDs,
class code, capability headers, unimplemented BARs, reserved space) or that
carries no writable bit in the bytes it covers raises
:class:`ReadOnlyConfigWrite` naming the register and changes nothing.
(The rule is per register rather than per byte so that the accesses
software makes to writable registers whose low byte is hardwired still
work: the BAR sizing dword write to BAR0, whose bits 11:4 are zero, and a
dword write of Command and Status.)

BAR0 layout (all offsets are from the BAR's base; each part page-aligned)::

    0                     doorbell MMIO of the ADI (``mmio_size`` bytes)
    mmio_size             MSI-X table (16 bytes a vector)
    msix_pba_offset       MSI-X PBA (one bit a vector), right after the table's pages
    bar0_size             the next power of two at or above the PBA's page end

The default vendor ID :data:`DEFAULT_VENDOR_ID` is a placeholder that
``pci.ids`` does not list; no PCI-SIG assignment is claimed by it. A
product passes its own vendor and device IDs.

Ref: PCI Express Base Specification 6.0, section 7.5.1 (PCI-compatible
configuration registers: 7.5.1.1 common header, 7.5.1.2 Type 0 header,
7.5.1.2.1 BARs and their sizing), 7.5.3 (PCI Express Capability
structure; 7.5.3.3/7.5.3.4 Device Capabilities/Control, FLR in 6.6.2),
7.7.2 (MSI-X capability and table structures; the table's entries in
7.7.2.5 to 7.7.2.9), 7.8.8 (PASID Extended
Capability structure), 7.6 (extended capability header, configuration
space layout). Offsets and field names follow Linux
``include/uapi/linux/pci_regs.h``.
"""

from dataclasses import dataclass

from ...rtl.dma.defs import PAGE_SHIFT, PASID_BITS
from .errors import HypervisorError

__all__ = ["VirtualConfigSpace", "MsixTable", "ConfigWrite", "ConfigWriteError", "ReadOnlyConfigWrite",
           "CONFIG_SPACE_SIZE", "DEFAULT_VENDOR_ID", "DEFAULT_DEVICE_ID"]

PAGE = 1 << PAGE_SHIFT

#: Bytes of PCI Express configuration space (PCI_CFG_SPACE_EXP_SIZE).
CONFIG_SPACE_SIZE = 4096
#: Bytes of the PCI-compatible part (PCI_CFG_SPACE_SIZE); extended space follows.
PCI_CFG_SPACE_SIZE = 256

#: Placeholder vendor ID, absent from pci.ids (see the module docstring).
DEFAULT_VENDOR_ID = 0x510F
#: Device ID of the virtual device under :data:`DEFAULT_VENDOR_ID`.
DEFAULT_DEVICE_ID = 0x0001

# --- Type 0 header (pci_regs.h) ---------------------------------------------
PCI_VENDOR_ID = 0x00
PCI_DEVICE_ID = 0x02
PCI_COMMAND = 0x04
PCI_COMMAND_MEMORY = 0x0002       # Memory Space Enable
PCI_COMMAND_MASTER = 0x0004       # Bus Master Enable
PCI_COMMAND_PARITY = 0x0040       # Parity Error Response (RW in PCI Express)
PCI_COMMAND_SERR = 0x0100         # SERR# Enable (RW in PCI Express)
PCI_COMMAND_INTX_DISABLE = 0x0400  # Interrupt Disable
PCI_STATUS = 0x06
PCI_STATUS_CAP_LIST = 0x0010
#: RW1C bits of Status: master data parity error, signaled/received target
#: abort, received master abort, signaled system error, detected parity error.
PCI_STATUS_W1C = 0x0100 | 0x0800 | 0x1000 | 0x2000 | 0x4000 | 0x8000
PCI_REVISION_ID = 0x08
PCI_CLASS_PROG = 0x09
PCI_CLASS_DEVICE = 0x0A
PCI_CACHE_LINE_SIZE = 0x0C
PCI_LATENCY_TIMER = 0x0D
PCI_HEADER_TYPE = 0x0E
PCI_HEADER_TYPE_NORMAL = 0
PCI_BIST = 0x0F
PCI_BASE_ADDRESS_0 = 0x10
PCI_BASE_ADDRESS_5 = 0x24
PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04
PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08
PCI_BASE_ADDRESS_MEM_MASK = ~0x0F
PCI_CARDBUS_CIS = 0x28
PCI_SUBSYSTEM_VENDOR_ID = 0x2C
PCI_SUBSYSTEM_ID = 0x2E
PCI_ROM_ADDRESS = 0x30
PCI_CAPABILITY_LIST = 0x34
PCI_INTERRUPT_LINE = 0x3C
PCI_INTERRUPT_PIN = 0x3D
PCI_MIN_GNT = 0x3E
PCI_MAX_LAT = 0x3F
#: Class code 0x0880: base class 0x08 (generic system peripheral), sub-class
#: 0x80 (other); programming interface 0.
PCI_CLASS_SYSTEM_OTHER = 0x0880
#: What lspci prints for :data:`PCI_CLASS_SYSTEM_OTHER` (pci.ids "C 08", "80").
CLASS_TEXT = "System peripheral"

# --- Capability list ---------------------------------------------------------
PCI_CAP_LIST_ID = 0
PCI_CAP_LIST_NEXT = 1
PCI_CAP_ID_EXP = 0x10
PCI_CAP_ID_MSIX = 0x11

# PCI Express capability, offsets from its start.
PCI_EXP_FLAGS = 0x02
PCI_EXP_FLAGS_VERS = 0x000F
PCI_EXP_FLAGS_TYPE = 0x00F0
PCI_EXP_TYPE_ENDPOINT = 0x0
PCI_EXP_TYPE_RC_END = 0x9
PCI_EXP_DEVCAP = 0x04
PCI_EXP_DEVCAP_EXT_TAG = 0x00000020
PCI_EXP_DEVCAP_RBER = 0x00008000
PCI_EXP_DEVCAP_FLR = 0x10000000
PCI_EXP_DEVCTL = 0x08
PCI_EXP_DEVCTL_CERE = 0x0001
PCI_EXP_DEVCTL_NFERE = 0x0002
PCI_EXP_DEVCTL_FERE = 0x0004
PCI_EXP_DEVCTL_URRE = 0x0008
PCI_EXP_DEVCTL_RELAX_EN = 0x0010
PCI_EXP_DEVCTL_PAYLOAD = 0x00E0
PCI_EXP_DEVCTL_EXT_TAG = 0x0100
PCI_EXP_DEVCTL_NOSNOOP_EN = 0x0800
PCI_EXP_DEVCTL_READRQ = 0x7000
PCI_EXP_DEVCTL_READRQ_512B = 0x2000
PCI_EXP_DEVCTL_BCR_FLR = 0x8000
PCI_EXP_DEVSTA = 0x0A
PCI_EXP_DEVSTA_W1C = 0x000F       # CED, NFED, FED, URD
PCI_EXP_LNKCAP = 0x0C
PCI_EXP_LNKCTL = 0x10
PCI_EXP_LNKSTA = 0x12
PCI_EXP_SLTCAP = 0x14
PCI_EXP_SLTCTL = 0x18
PCI_EXP_SLTSTA = 0x1A
PCI_EXP_RTCTL = 0x1C
PCI_EXP_RTCAP = 0x1E
PCI_EXP_RTSTA = 0x20
PCI_EXP_DEVCAP2 = 0x24
PCI_EXP_DEVCTL2 = 0x28
PCI_EXP_DEVSTA2 = 0x2A
PCI_EXP_LNKCAP2 = 0x2C
PCI_EXP_LNKCTL2 = 0x30
PCI_EXP_LNKSTA2 = 0x32
PCI_EXP_SLTCAP2 = 0x34
PCI_EXP_SLTCTL2 = 0x38
PCI_EXP_SLTSTA2 = 0x3A
#: Bytes of the version 2 PCI Express capability (through Slot Status 2).
PCI_EXP_SIZEOF_V2 = 0x3C
#: Version of the PCI Express capability structure.
PCI_EXP_VERSION = 2

# MSI-X capability, offsets from its start.
PCI_MSIX_FLAGS = 0x02
PCI_MSIX_FLAGS_QSIZE = 0x07FF
PCI_MSIX_FLAGS_MASKALL = 0x4000
PCI_MSIX_FLAGS_ENABLE = 0x8000
PCI_MSIX_TABLE = 0x04
PCI_MSIX_TABLE_BIR = 0x00000007
PCI_MSIX_TABLE_OFFSET = 0xFFFFFFF8
PCI_MSIX_PBA = 0x08
PCI_MSIX_PBA_BIR = 0x00000007
PCI_MSIX_PBA_OFFSET = 0xFFFFFFF8
PCI_CAP_MSIX_SIZEOF = 12
PCI_MSIX_ENTRY_SIZE = 16
# MSI-X table entry, offsets from its start.
PCI_MSIX_ENTRY_LOWER_ADDR = 0x0
PCI_MSIX_ENTRY_UPPER_ADDR = 0x4
PCI_MSIX_ENTRY_DATA = 0x8
PCI_MSIX_ENTRY_VECTOR_CTRL = 0xC
PCI_MSIX_ENTRY_CTRL_MASKBIT = 0x1
#: Most vectors an MSI-X table can have (Table Size is 11 bits, N-1).
MSIX_MAX_VECTORS = PCI_MSIX_FLAGS_QSIZE + 1

# --- Extended capability list ------------------------------------------------
PCI_EXT_CAP_ID_PASID = 0x1B
PCI_EXT_CAP_ID_MASK = 0x0000FFFF
PCI_EXT_CAP_VER_SHIFT = 16
PCI_EXT_CAP_VER_MASK = 0x000F0000
PCI_EXT_CAP_NEXT_SHIFT = 20
PCI_EXT_CAP_NEXT_MASK = 0xFFF00000
PCI_PASID_CAP = 0x04
PCI_PASID_CAP_EXEC = 0x0002
PCI_PASID_CAP_PRIV = 0x0004
PCI_PASID_CAP_WIDTH_SHIFT = 8
PCI_PASID_CAP_WIDTH = 0x1F00
PCI_PASID_CTRL = 0x06
PCI_PASID_CTRL_ENABLE = 0x0001
PCI_PASID_CTRL_EXEC = 0x0002
PCI_PASID_CTRL_PRIV = 0x0004
PCI_EXT_CAP_PASID_SIZEOF = 8
#: Version of the PASID extended capability structure.
PASID_CAP_VERSION = 1
#: Largest Max PASID Width the field may report.
PASID_MAX_WIDTH = 20

# --- Where this device puts things -------------------------------------------
#: Offset of the PCI Express capability (the first in the list).
EXP_CAP_OFFSET = 0x40
#: Offset of the MSI-X capability (the last in the list).
MSIX_CAP_OFFSET = 0x80
#: Offset of the PASID extended capability (the first and last extended one).
PASID_CAP_OFFSET = PCI_CFG_SPACE_SIZE
#: BAR that holds the doorbells, the MSI-X table and the PBA.
BAR0_INDEX = 0
#: Smallest memory BAR (PCI Express Base 7.5.1.2.1 advises 4 KiB at least).
BAR_MIN_SIZE = PAGE


def _round_up(n, unit):
    return -(-n // unit) * unit


def _next_pow2(n):
    return 1 << (n - 1).bit_length()


class ConfigWriteError(HypervisorError):
    """A configuration write that the virtual device does not accept."""


class ReadOnlyConfigWrite(ConfigWriteError):
    """A write reached read-only configuration space; nothing changed.

    ``offset`` and ``size`` are the access's; ``register`` names the
    read-only register (``"Vendor ID"``, ``"BAR2"``, ``"MSI-X Table Offset/BIR"``).
    """

    def __init__(self, offset, size, register):
        self.offset, self.size, self.register = offset, size, register
        super().__init__(f"configuration write of {size} byte(s) at {offset:#05x} reaches "
                         f"read-only register {register!r}; nothing was written")


@dataclass(frozen=True)
class ConfigWrite:
    """What an accepted :meth:`VirtualConfigSpace.write` did.

    ``changed`` names the registers whose value changed (in offset order);
    ``flr`` is True when the write initiated a Function Level Reset, after
    which every register is back at its reset value but for Device
    Control's Max_Payload_Size.
    """
    offset: int
    size: int
    value: int
    changed: tuple
    flr: bool = False


class MsixTable:
    """The MSI-X Table of one function: ``vectors`` entries of 16 bytes, in BAR0 at
    :attr:`VirtualConfigSpace.msix_table_offset`.

    Each entry is four DWORDs (PCIe 6.0 7.7.2.5 to 7.7.2.9; Linux
    ``PCI_MSIX_ENTRY_*``): Message Address, whose bits 1:0 are zero so that
    the message is DWORD aligned; Message Upper Address; Message Data; and
    Vector Control, whose bit 0 is the per-vector Mask Bit, 1 after reset,
    and whose other bits are reserved (read 0, writes ignored). Reset values
    of address and data are 0 here (the spec leaves them undefined).

    Plain data, like :class:`VirtualConfigSpace`: it is read and written a
    DWORD at a time at DWORD-aligned offsets from the table's start (the
    accesses the spec requires software to make; the VDCM answers others
    before they reach the table), and says which entry a write changed. What
    a message means for the device (the interrupt it delivers) is the
    VDCM's.
    """

    def __init__(self, vectors):
        self.vectors = vectors
        #: Bytes of the table.
        self.size = vectors * PCI_MSIX_ENTRY_SIZE
        self.reset()

    def reset(self):
        """Every entry at its reset value: address and data 0, masked."""
        self._words = [0, 0, 0, PCI_MSIX_ENTRY_CTRL_MASKBIT] * self.vectors

    def _index(self, offset):
        if not 0 <= offset < self.size or offset % 4:
            raise ValueError(f"{offset:#x} is not a DWORD of the {self.size}-byte MSI-X table")
        return offset // 4

    def read(self, offset):
        """The DWORD at ``offset`` from the table's start."""
        return self._words[self._index(offset)]

    def write(self, offset, value):
        """Write the DWORD at ``offset``; returns the index of the entry it belongs to."""
        i = self._index(offset)
        if not 0 <= value < 1 << 32:
            raise ValueError(f"{value:#x} does not fit in 4 bytes")
        writable = {PCI_MSIX_ENTRY_LOWER_ADDR: 0xFFFF_FFFC, PCI_MSIX_ENTRY_UPPER_ADDR: 0xFFFF_FFFF,
                    PCI_MSIX_ENTRY_DATA: 0xFFFF_FFFF, PCI_MSIX_ENTRY_VECTOR_CTRL: PCI_MSIX_ENTRY_CTRL_MASKBIT}
        self._words[i] = value & writable[offset % PCI_MSIX_ENTRY_SIZE]
        return offset // PCI_MSIX_ENTRY_SIZE

    def masked(self, vector):
        """The Mask Bit of entry ``vector``."""
        return bool(self._words[4 * vector + 3] & PCI_MSIX_ENTRY_CTRL_MASKBIT)

    def message(self, vector):
        """``(address, data)`` of entry ``vector``: the 64-bit Message Address and Message Data."""
        lo, hi, data, _ = self._words[4 * vector:4 * vector + 4]
        return hi << 32 | lo, data


@dataclass(frozen=True)
class _Register:
    offset: int
    size: int
    name: str
    reset: int
    rw: int
    w1c: int

    @property
    def read_only(self):
        return not (self.rw | self.w1c)


class VirtualConfigSpace:
    """The 4 KiB configuration space of one virtual device.

    Parameters
    ----------
    mmio_size : int
        Bytes of doorbell MMIO at the start of BAR0: whole 4 KiB pages
        (default one page, one ADI portal).
    msix_vectors : int
        MSI-X table entries, 1..2048: the IMS handles the virtual device
        exposes (default 1).
    pasid_width : int
        Max PASID Width of the PASID capability, 1..20 (default siov's 20).
    vendor_id, device_id, subsystem_vendor_id, subsystem_id, revision : int
        Identification; the subsystem IDs default to the vendor and device IDs.
    """

    def __init__(self, mmio_size=PAGE, msix_vectors=1, pasid_width=PASID_BITS, *,
                 vendor_id=DEFAULT_VENDOR_ID, device_id=DEFAULT_DEVICE_ID,
                 subsystem_vendor_id=None, subsystem_id=None, revision=1):
        if mmio_size < PAGE or mmio_size % PAGE:
            raise ValueError(f"mmio_size must be whole {PAGE}-byte pages, not {mmio_size:#x}")
        if not 1 <= msix_vectors <= MSIX_MAX_VECTORS:
            raise ValueError(f"msix_vectors must be 1..{MSIX_MAX_VECTORS}, not {msix_vectors}")
        if not 1 <= pasid_width <= PASID_MAX_WIDTH:
            raise ValueError(f"pasid_width must be 1..{PASID_MAX_WIDTH}, not {pasid_width}")
        for what, v, bits in (("vendor_id", vendor_id, 16), ("device_id", device_id, 16),
                              ("subsystem_vendor_id", subsystem_vendor_id or 0, 16),
                              ("subsystem_id", subsystem_id or 0, 16), ("revision", revision, 8)):
            if not 0 <= v < 1 << bits:
                raise ValueError(f"{what} must fit in {bits} bits, not {v:#x}")
        if vendor_id in (0x0000, 0xFFFF):
            raise ValueError(f"vendor_id {vendor_id:#06x} means 'no function'")
        self.mmio_size = mmio_size
        self.msix_vectors = msix_vectors
        #: Offset of the MSI-X table in BAR0.
        self.msix_table_offset = mmio_size
        #: Offset of the MSI-X PBA in BAR0.
        self.msix_pba_offset = mmio_size + _round_up(msix_vectors * PCI_MSIX_ENTRY_SIZE, PAGE)
        pba_bytes = _round_up(msix_vectors, 64) // 8
        #: Bytes BAR0 decodes (a power of two).
        self.bar0_size = _next_pow2(self.msix_pba_offset + _round_up(pba_bytes, PAGE))
        self._registers = self._layout(
            vendor_id, device_id, revision,
            vendor_id if subsystem_vendor_id is None else subsystem_vendor_id,
            device_id if subsystem_id is None else subsystem_id, pasid_width)
        self._reset = bytearray(CONFIG_SPACE_SIZE)
        self._rw = bytearray(CONFIG_SPACE_SIZE)
        self._w1c = bytearray(CONFIG_SPACE_SIZE)
        #: Register covering each byte, None for reserved space.
        self._owner = [None] * CONFIG_SPACE_SIZE
        for r in self._registers:
            self._reset[r.offset:r.offset + r.size] = r.reset.to_bytes(r.size, "little")
            self._rw[r.offset:r.offset + r.size] = r.rw.to_bytes(r.size, "little")
            self._w1c[r.offset:r.offset + r.size] = r.w1c.to_bytes(r.size, "little")
            for i in range(r.offset, r.offset + r.size):
                assert self._owner[i] is None, f"{r.name} overlaps {self._owner[i].name}"
                self._owner[i] = r
        self._data = bytearray(self._reset)
        #: The MSI-X table in BAR0 (reset with the function).
        self.msix_table = MsixTable(msix_vectors)

    # --- layout ---------------------------------------------------------------

    def _layout(self, vendor_id, device_id, revision, ss_vendor, ss_id, pasid_width):
        """Every register of the space: offset, size, name, reset value, RW and RW1C bits."""
        regs = []

        def reg(offset, size, name, reset=0, rw=0, w1c=0):
            regs.append(_Register(offset, size, name, reset, rw, w1c))

        # Type 0 header.
        reg(PCI_VENDOR_ID, 2, "Vendor ID", vendor_id)
        reg(PCI_DEVICE_ID, 2, "Device ID", device_id)
        reg(PCI_COMMAND, 2, "Command", 0,
            rw=PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY
            | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)
        reg(PCI_STATUS, 2, "Status", PCI_STATUS_CAP_LIST, w1c=PCI_STATUS_W1C)
        reg(PCI_REVISION_ID, 1, "Revision ID", revision)
        reg(PCI_CLASS_PROG, 3, "Class Code", PCI_CLASS_SYSTEM_OTHER << 8)
        reg(PCI_CACHE_LINE_SIZE, 1, "Cache Line Size", 0, rw=0xFF)  # RW, no effect (PCIe)
        reg(PCI_LATENCY_TIMER, 1, "Latency Timer")
        reg(PCI_HEADER_TYPE, 1, "Header Type", PCI_HEADER_TYPE_NORMAL)
        reg(PCI_BIST, 1, "BIST")
        bar0_flags = PCI_BASE_ADDRESS_MEM_TYPE_64  # 64-bit, non-prefetchable (doorbells)
        bar0_mask = ~(self.bar0_size - 1) & PCI_BASE_ADDRESS_MEM_MASK & 0xFFFFFFFF
        bar0 = PCI_BASE_ADDRESS_0 + 4 * BAR0_INDEX
        reg(bar0, 4, f"BAR{BAR0_INDEX}", bar0_flags, rw=bar0_mask)
        reg(bar0 + 4, 4, f"BAR{BAR0_INDEX + 1} (BAR{BAR0_INDEX} upper)", 0, rw=0xFFFFFFFF)
        for bar in range(bar0 + 8, PCI_BASE_ADDRESS_5 + 4, 4):
            reg(bar, 4, f"BAR{(bar - PCI_BASE_ADDRESS_0) // 4}")
        reg(PCI_CARDBUS_CIS, 4, "CardBus CIS Pointer")
        reg(PCI_SUBSYSTEM_VENDOR_ID, 2, "Subsystem Vendor ID", ss_vendor)
        reg(PCI_SUBSYSTEM_ID, 2, "Subsystem ID", ss_id)
        reg(PCI_ROM_ADDRESS, 4, "Expansion ROM Base Address")
        reg(PCI_CAPABILITY_LIST, 1, "Capabilities Pointer", EXP_CAP_OFFSET)
        reg(PCI_INTERRUPT_LINE, 1, "Interrupt Line", 0, rw=0xFF)  # RW scratch for software
        reg(PCI_INTERRUPT_PIN, 1, "Interrupt Pin", 0)  # no INTx
        reg(PCI_MIN_GNT, 1, "Min_Gnt")
        reg(PCI_MAX_LAT, 1, "Max_Lat")

        # PCI Express capability (v2, RCiEP: link, slot and root registers are reserved).
        e = EXP_CAP_OFFSET
        reg(e + PCI_CAP_LIST_ID, 2, "PCIe Capability Header",
            PCI_CAP_ID_EXP | MSIX_CAP_OFFSET << 8)
        reg(e + PCI_EXP_FLAGS, 2, "PCIe Capabilities", PCI_EXP_VERSION | PCI_EXP_TYPE_RC_END << 4)
        reg(e + PCI_EXP_DEVCAP, 4, "PCIe Device Capabilities",
            PCI_EXP_DEVCAP_EXT_TAG | PCI_EXP_DEVCAP_RBER | PCI_EXP_DEVCAP_FLR)
        reg(e + PCI_EXP_DEVCTL, 2, "PCIe Device Control",
            PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_NOSNOOP_EN | PCI_EXP_DEVCTL_READRQ_512B,
            rw=PCI_EXP_DEVCTL_CERE | PCI_EXP_DEVCTL_NFERE | PCI_EXP_DEVCTL_FERE
            | PCI_EXP_DEVCTL_URRE | PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_PAYLOAD
            | PCI_EXP_DEVCTL_EXT_TAG | PCI_EXP_DEVCTL_NOSNOOP_EN | PCI_EXP_DEVCTL_READRQ
            | PCI_EXP_DEVCTL_BCR_FLR)
        reg(e + PCI_EXP_DEVSTA, 2, "PCIe Device Status", 0, w1c=PCI_EXP_DEVSTA_W1C)
        for off, size, name in ((PCI_EXP_LNKCAP, 4, "Link Capabilities"),
                                (PCI_EXP_LNKCTL, 2, "Link Control"),
                                (PCI_EXP_LNKSTA, 2, "Link Status"),
                                (PCI_EXP_SLTCAP, 4, "Slot Capabilities"),
                                (PCI_EXP_SLTCTL, 2, "Slot Control"),
                                (PCI_EXP_SLTSTA, 2, "Slot Status"),
                                (PCI_EXP_RTCTL, 2, "Root Control"),
                                (PCI_EXP_RTCAP, 2, "Root Capabilities"),
                                (PCI_EXP_RTSTA, 4, "Root Status"),
                                (PCI_EXP_DEVCAP2, 4, "Device Capabilities 2"),
                                (PCI_EXP_DEVCTL2, 2, "Device Control 2"),
                                (PCI_EXP_DEVSTA2, 2, "Device Status 2"),
                                (PCI_EXP_LNKCAP2, 4, "Link Capabilities 2"),
                                (PCI_EXP_LNKCTL2, 2, "Link Control 2"),
                                (PCI_EXP_LNKSTA2, 2, "Link Status 2"),
                                (PCI_EXP_SLTCAP2, 4, "Slot Capabilities 2"),
                                (PCI_EXP_SLTCTL2, 2, "Slot Control 2"),
                                (PCI_EXP_SLTSTA2, 2, "Slot Status 2")):
            reg(e + off, size, "PCIe " + name)
        assert e + PCI_EXP_SIZEOF_V2 <= MSIX_CAP_OFFSET

        # MSI-X capability: table and PBA in BAR0.
        m = MSIX_CAP_OFFSET
        reg(m + PCI_CAP_LIST_ID, 2, "MSI-X Capability Header", PCI_CAP_ID_MSIX)  # last: next 0
        reg(m + PCI_MSIX_FLAGS, 2, "MSI-X Message Control", self.msix_vectors - 1,
            rw=PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL)
        reg(m + PCI_MSIX_TABLE, 4, "MSI-X Table Offset/BIR", self.msix_table_offset | BAR0_INDEX)
        reg(m + PCI_MSIX_PBA, 4, "MSI-X PBA Offset/BIR", self.msix_pba_offset | BAR0_INDEX)
        assert m + PCI_CAP_MSIX_SIZEOF <= PCI_CFG_SPACE_SIZE

        # PASID extended capability, the only one: next offset 0 ends the list.
        p = PASID_CAP_OFFSET
        reg(p, 4, "PASID Extended Capability Header",
            PCI_EXT_CAP_ID_PASID | PASID_CAP_VERSION << PCI_EXT_CAP_VER_SHIFT)
        reg(p + PCI_PASID_CAP, 2, "PASID Capability", pasid_width << PCI_PASID_CAP_WIDTH_SHIFT)
        reg(p + PCI_PASID_CTRL, 2, "PASID Control", 0, rw=PCI_PASID_CTRL_ENABLE)
        return regs

    # --- access -----------------------------------------------------------------

    @staticmethod
    def _check_access(offset, size):
        if size not in (1, 2, 4):
            raise ValueError(f"configuration accesses are 1, 2 or 4 bytes, not {size}")
        if not 0 <= offset <= CONFIG_SPACE_SIZE - size:
            raise ValueError(f"{size}-byte access at {offset:#x} is outside the "
                             f"{CONFIG_SPACE_SIZE}-byte configuration space")

    def read(self, offset, size=4):
        """The ``size``-byte (1, 2 or 4) little-endian value at ``offset``."""
        self._check_access(offset, size)
        return self._get(offset, size)

    def _get(self, offset, size):
        """The value at ``offset`` for the space's own use (its fields, its writes), so that
        :meth:`read` is what software reads."""
        return int.from_bytes(self._data[offset:offset + size], "little")

    def register_name(self, offset):
        """Name of the register holding byte ``offset`` (``"reserved ..."`` for none)."""
        r = self._owner[offset]
        if r is not None:
            return r.name
        area = "extended" if offset >= PCI_CFG_SPACE_SIZE else "PCI"
        return f"reserved {area} configuration space at {offset:#05x}"

    def _read_only_register(self, offset, size):
        """Name of what makes a write of (offset, size) read-only, or None if it may go on."""
        self._check_access(offset, size)
        for i in range(offset, offset + size):
            r = self._owner[i]
            if r is None or r.read_only:
                return self.register_name(i)
        if not any(self._rw[i] | self._w1c[i] for i in range(offset, offset + size)):
            r = self._owner[offset]
            lo = 8 * (offset - r.offset)
            return f"{r.name} bits {lo + 8 * size - 1}:{lo}"
        return None

    def is_writable(self, offset, size=4):
        """Whether a write of ``size`` bytes at ``offset`` would be accepted."""
        return self._read_only_register(offset, size) is None

    def write(self, offset, size, value):
        """Write ``value`` (``size`` bytes, little-endian) at ``offset``.

        Read-write bits take the written value, RW1C bits written 1 clear,
        other bits keep theirs. Returns a :class:`ConfigWrite`; raises
        :class:`ReadOnlyConfigWrite`, changing nothing, when the access
        reaches a read-only register or no writable bit.
        """
        self._check_access(offset, size)
        if not 0 <= value < 1 << 8 * size:
            raise ValueError(f"{value:#x} does not fit in {size} byte(s)")
        name = self._read_only_register(offset, size)
        if name is not None:
            raise ReadOnlyConfigWrite(offset, size, name)
        before = bytes(self._data)
        for i, b in enumerate(value.to_bytes(size, "little"), offset):
            rw, w1c = self._rw[i], self._w1c[i]
            self._data[i] = (self._data[i] & ~rw | b & rw) & ~(b & w1c) & 0xFF
        flr = False
        devctl = EXP_CAP_OFFSET + PCI_EXP_DEVCTL
        if self._get(devctl, 2) & PCI_EXP_DEVCTL_BCR_FLR:
            # Initiate FLR always reads 0; the reset keeps Max_Payload_Size (PCIe 6.6.2).
            payload = self._get(devctl, 2) & PCI_EXP_DEVCTL_PAYLOAD
            self.reset()
            self._set(devctl, 2, self._get(devctl, 2) & ~PCI_EXP_DEVCTL_PAYLOAD | payload)
            flr = True
        changed = tuple(r.name for r in self._registers
                        if before[r.offset:r.offset + r.size]
                        != self._data[r.offset:r.offset + r.size])
        return ConfigWrite(offset, size, value, changed, flr)

    def _set(self, offset, size, value):
        self._data[offset:offset + size] = value.to_bytes(size, "little")

    def reset(self):
        """Every register, and the MSI-X table, back at its reset value (conventional reset)."""
        self._data[:] = self._reset
        self.msix_table.reset()

    def snapshot(self):
        """The whole space as 4096 bytes."""
        return bytes(self._data)

    # --- capability lists -------------------------------------------------------

    def capabilities(self):
        """``[(cap_id, offset), ...]`` walking the capability list from 0x34."""
        found, seen = [], set()
        offset = self._get(PCI_CAPABILITY_LIST, 1) & ~3
        while offset and offset not in seen:
            seen.add(offset)
            found.append((self._get(offset + PCI_CAP_LIST_ID, 1), offset))
            offset = self._get(offset + PCI_CAP_LIST_NEXT, 1) & ~3
        return found

    def ext_capabilities(self):
        """``[(cap_id, version, offset), ...]`` walking the extended list from 0x100."""
        found, seen = [], set()
        offset = PCI_CFG_SPACE_SIZE
        while offset and offset not in seen:
            header = self._get(offset, 4)
            if header == 0:
                break
            seen.add(offset)
            found.append((header & PCI_EXT_CAP_ID_MASK,
                          (header & PCI_EXT_CAP_VER_MASK) >> PCI_EXT_CAP_VER_SHIFT, offset))
            offset = (header & PCI_EXT_CAP_NEXT_MASK) >> PCI_EXT_CAP_NEXT_SHIFT
        return found

    def find_capability(self, cap_id):
        """Offset of capability ``cap_id`` (``PCI_CAP_ID_*``), or None."""
        return next((off for cid, off in self.capabilities() if cid == cap_id), None)

    def find_ext_capability(self, cap_id):
        """Offset of extended capability ``cap_id`` (``PCI_EXT_CAP_ID_*``), or None."""
        return next((off for cid, _, off in self.ext_capabilities() if cid == cap_id), None)

    # --- named fields -----------------------------------------------------------

    @property
    def vendor_id(self):
        """Vendor ID."""
        return self._get(PCI_VENDOR_ID, 2)

    @property
    def device_id(self):
        """Device ID."""
        return self._get(PCI_DEVICE_ID, 2)

    @property
    def command(self):
        """The Command register."""
        return self._get(PCI_COMMAND, 2)

    @property
    def memory_enabled(self):
        """Memory Space Enable: BAR0 decodes."""
        return bool(self.command & PCI_COMMAND_MEMORY)

    @property
    def bus_master(self):
        """Bus Master Enable: the device may issue DMA and MSI-X writes."""
        return bool(self.command & PCI_COMMAND_MASTER)

    @property
    def bar0(self):
        """The 64-bit base address software programmed into BAR0 (flag bits removed)."""
        bar = PCI_BASE_ADDRESS_0 + 4 * BAR0_INDEX
        return (self._get(bar + 4, 4) << 32 | self._get(bar, 4)) & ~(self.bar0_size - 1) \
            & PCI_BASE_ADDRESS_MEM_MASK

    @property
    def devctl(self):
        """The PCI Express Device Control register."""
        return self._get(EXP_CAP_OFFSET + PCI_EXP_DEVCTL, 2)

    @property
    def msix_control(self):
        """The MSI-X Message Control register."""
        return self._get(MSIX_CAP_OFFSET + PCI_MSIX_FLAGS, 2)

    @property
    def msix_table_size(self):
        """MSI-X vectors, decoded from Message Control (Table Size is N-1)."""
        return (self.msix_control & PCI_MSIX_FLAGS_QSIZE) + 1

    @property
    def msix_enabled(self):
        """MSI-X Enable: the function may send MSI-X messages."""
        return bool(self.msix_control & PCI_MSIX_FLAGS_ENABLE)

    @property
    def msix_function_masked(self):
        """MSI-X Function Mask: every vector is masked, whatever its Mask Bit."""
        return bool(self.msix_control & PCI_MSIX_FLAGS_MASKALL)

    @property
    def pasid_width(self):
        """Max PASID Width of the PASID capability."""
        return (self._get(PASID_CAP_OFFSET + PCI_PASID_CAP, 2) & PCI_PASID_CAP_WIDTH) \
            >> PCI_PASID_CAP_WIDTH_SHIFT

    @property
    def pasid_enabled(self):
        """PASID Enable of the PASID capability."""
        return bool(self._get(PASID_CAP_OFFSET + PCI_PASID_CTRL, 2) & PCI_PASID_CTRL_ENABLE)

    # --- lspci ------------------------------------------------------------------

    def dump_lspci_x(self, bdf="00:04.0"):
        """The space as ``lspci -xxxx`` prints it; ``lspci -F FILE`` reads it back.

        The first line is the device line lspci prints for IDs that pci.ids
        does not list (lspci -F takes only the bus:device.function from it);
        then 256 lines of 16 bytes, each starting with the offset (``%02x:``,
        so ``100:`` onwards in extended space), and an empty line.
        """
        revision = self._get(PCI_REVISION_ID, 1)
        lines = [f"{bdf} {CLASS_TEXT}: Device {self.vendor_id:04x}:{self.device_id:04x}"
                 + (f" (rev {revision:02x})" if revision else "")]
        for row in range(0, CONFIG_SPACE_SIZE, 16):
            lines.append(f"{row:02x}: " + " ".join(f"{b:02x}" for b in self._data[row:row + 16]))
        return "\n".join(lines) + "\n\n"
