"""DSA descriptor and completion-record formats, opcodes, status codes and flags.

Ref: Linux include/uapi/linux/idxd.h (``struct dsa_hw_desc``, ``struct
dsa_completion_record``, ``enum dsa_opcode``, ``enum dsa_completion_status``,
the ``IDXD_OP_FLAG_*`` flags and ``DSA_COMP_STATUS_MASK/WRITE``).

These layouts are the single source of the byte offsets: the RTL views
descriptors through them and :mod:`siov.sw.model.dsa` packs and unpacks them
by iterating their fields, so no offset is written twice.

Descriptor (64 bytes, little-endian; bit offset = 8 x byte offset)::

    byte  0  pasid[19:0], rsvd[30:20], priv[31]
    byte  4  flags[23:0], opcode[31:24]
    byte  8  completion_addr (u64)
    byte 16  src_addr (u64)      MEMFILL: the 8-byte pattern
    byte 24  dst_addr (u64)      COMPARE: the second source
    byte 32  xfer_size (u32)
    byte 36  int_handle (u16)
    byte 38  rsvd1 (u16)
    byte 40  sem_value (u64)     WAIT, SIGNAL: the semaphore value (op-specific space)
    byte 48  sem_mask (u64)      WAIT: the mask applied to memory before comparing
    byte 56  op_specific (8 bytes; unused)

Completion record (32 bytes, 32-byte aligned in memory)::

    byte  0  status[6:0], status_write[7] (the faulting access was a write)
    byte  1  result
    byte  2  fault_info
    byte  3  rsvd
    byte  4  bytes_completed (u32)
    byte  8  fault_addr (u64)
    byte 16  invalid_flags[23:0], rsvd2[31:24]
    byte 20  cycles (u32)  -- project use of op-specific space: cycles from the hand-over
                              of the descriptor to its executor to the composing of this
                              record (ENG.LAST_CYCLES adds the record's write and 2)
    byte 24  start_cycle (u32) -- project use of op-specific space: the low 32 bits of the
                              Device's cycle counter (GLOBAL.CYCLE_LO) in the cycle the descriptor
                              was handed over to its executor, so [start_cycle, start_cycle +
                              cycles] is the engine's time on it up to the record
    byte 28  engine (u8)       -- project use of op-specific space: the engine that ran it
    byte 29  rsvd3 (3 bytes)

Supported subset: opcodes NOOP, DRAIN, MEMMOVE, MEMFILL (8-byte pattern) and
COMPARE, and two project opcodes outside the DSA range for dependencies
between rings (documented in the register map, ``ENG``):

* WAIT (0xF0): complete when ``(8 bytes at src_addr & sem_mask) == sem_value``;
  while the condition is false the descriptor stays at its ring's head and
  is checked again later, and a check made ``ENG.WAIT_TIMEOUT`` cycles after
  the first completes it with ``Status.WAIT_TIMEOUT``;
* SIGNAL (0xF1): write ``sem_value`` (8 bytes) at ``dst_addr``, after every
  earlier descriptor of its ring has completed.

Both ignore ``xfer_size``; their semaphore address is ``SEM_ALIGN`` = 8-byte
aligned (else ``Status.ADDR_ALIGN``). Flags: flags FENCE, CRAV, RCR, RCI and the cache-control hint CC (accepted,
no effect; Linux's dmaengine driver sets it on every descriptor). Any other
flag bit is reserved here and fails the descriptor with
``Status.INVALID_FLAGS``.

Alignment rule of this engine (checked after opcode, flags, handle and
size; failure is ``Status.ADDR_ALIGN``):

* ``completion_addr`` (when CRAV is set) is ``CR_ALIGN`` = 32-byte aligned,
  so a record is one 256-bit beat and never crosses a page;
* MEMFILL's ``dst_addr`` is ``FILL_ALIGN`` = 8-byte aligned, so the pattern
  keeps fixed byte lanes on a 64-bit datapath;
* WAIT's ``src_addr`` and SIGNAL's ``dst_addr`` are ``SEM_ALIGN`` = 8-byte
  aligned: a semaphore is one bus word;
* MEMMOVE and COMPARE addresses and all sizes have no alignment constraint.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, enum

__all__ = [
    "Opcode", "Status", "Flag", "SUPPORTED_FLAGS", "RESERVED_FLAGS", "SIZED_OPCODES", "SEMAPHORE_OPCODES",
    "DESC_BYTES", "COMPLETION_BYTES", "MAX_XFER", "CR_ALIGN", "FILL_ALIGN", "SEM_ALIGN", "PATTERN_BYTES",
    "DescriptorLayout", "CompletionLayout",
]

#: Bytes in a descriptor and in a completion record.
DESC_BYTES = 64
COMPLETION_BYTES = 32
#: Largest ``xfer_size`` the engine accepts (bytes); larger is ``Status.XFER_SIZE``.
MAX_XFER = 1 << 20
#: Alignment of the completion record address (bytes).
CR_ALIGN = 32
#: Alignment of MEMFILL's destination and width of its pattern (bytes).
FILL_ALIGN = 8
PATTERN_BYTES = 8
#: Alignment of a WAIT's or SIGNAL's semaphore address (bytes): one bus word.
SEM_ALIGN = 8


class Opcode(enum.Enum, shape=8):
    """``enum dsa_opcode`` values of the operations this engine implements,
    and the project's semaphore opcodes (outside the range DSA defines)."""
    NOOP = 0x00
    DRAIN = 0x02
    MEMMOVE = 0x03
    MEMFILL = 0x04
    COMPARE = 0x05
    WAIT = 0xF0
    SIGNAL = 0xF1


#: The project's semaphore opcodes (no ``xfer_size``; one 8-byte access).
SEMAPHORE_OPCODES = (Opcode.WAIT, Opcode.SIGNAL)

#: Opcodes whose ``xfer_size`` is checked and used (the others ignore it).
#: A tuple, in opcode order: hardware is generated by iterating over it, and a
#: set of enum members iterates in an order that changes with Python's string
#: hash seed, which made the generated Verilog differ from run to run.
SIZED_OPCODES = (Opcode.MEMMOVE, Opcode.MEMFILL, Opcode.COMPARE)


class Status(enum.IntEnum, shape=7):
    """``enum dsa_completion_status`` values this engine reports.

    An :class:`amaranth.lib.enum.IntEnum`: in the RTL it is a 7-bit shape like
    any Amaranth enum, and on the host a member is the int it stands for, so
    ``record.status == Status.SUCCESS`` compares the status byte a completion
    record holds, and ``int(Status.SUCCESS)`` is 1. (A plain Amaranth ``Enum``
    member equals no int, which made that comparison silently False.) The
    generated Verilog is the same either way.

    The status byte of a completion record holds the status in bits 6:0
    (``DSA_COMP_STATUS_MASK``) and, for a page fault, the direction of the
    faulting access in bit 7 (``DSA_COMP_STATUS_WRITE``), hence ``shape=7``.

    ``HW_ERROR`` is ``DSA_COMP_HW_ERR1`` (0x20, the entry after
    ``DSA_COMP_PFAULT_RDBA`` = 0x1f in the header): the engine reports it when
    host memory answers a data read or write, or the completion-record write,
    with a response other than OKAY (see :mod:`.engine`).
    """
    NONE = 0x00                 # DSA_COMP_NONE: record not yet written
    SUCCESS = 0x01              # DSA_COMP_SUCCESS
    PAGE_FAULT = 0x03           # DSA_COMP_PAGE_FAULT_NOBOF (block-on-fault not set)
    BAD_OPCODE = 0x10           # DSA_COMP_BAD_OPCODE
    INVALID_FLAGS = 0x11        # DSA_COMP_INVALID_FLAGS
    XFER_SIZE = 0x13            # DSA_COMP_XFER_ERANGE
    INVALID_INT_HANDLE = 0x19   # DSA_COMP_INT_HANDLE_INVAL
    ADDR_ALIGN = 0x1C           # DSA_COMP_ADDR_ALIGN
    HW_ERROR = 0x20             # DSA_COMP_HW_ERR1: an AXI read or write answered SLVERR/DECERR
    WAIT_TIMEOUT = 0x70         # project: a WAIT not satisfied within ENG.WAIT_TIMEOUT cycles


class Flag(enum.IntFlag, shape=24):
    """Descriptor flag bits (``IDXD_OP_FLAG_*``, bits 15:0 of the 24-bit field)."""
    FENCE = 0x0001       # wait for earlier descriptors of the same queue
    BOF = 0x0002         # block on fault
    CRAV = 0x0004        # completion record address valid
    RCR = 0x0008         # request completion record
    RCI = 0x0010         # request completion interrupt
    CRSTS = 0x0020       # completion record store status
    CR = 0x0080          # check result
    CC = 0x0100          # cache control (hint)
    ADDR1_TCS = 0x0200   # traffic-class selectors
    ADDR2_TCS = 0x0400
    ADDR3_TCS = 0x0800
    CR_TCS = 0x1000
    STORD = 0x2000       # strict ordering
    DRDBK = 0x4000       # destination readback
    DSTS = 0x8000        # destination steering tag selector


#: Flags the engine accepts (a plain int mask); any other set bit of the
#: 24-bit field, named in ``Flag`` or not, yields ``Status.INVALID_FLAGS``.
SUPPORTED_FLAGS = int(Flag.FENCE | Flag.CRAV | Flag.RCR | Flag.RCI | Flag.CC)
#: The complement of ``SUPPORTED_FLAGS`` in the 24-bit field. (Not ``~Flag``:
#: inverting an IntFlag drops the bits it does not name.)
RESERVED_FLAGS = ((1 << 24) - 1) & ~SUPPORTED_FLAGS

#: ``struct dsa_hw_desc``: the fields in declaration order, 512 bits.
DescriptorLayout = data.StructLayout({
    "pasid": unsigned(20),
    "rsvd": unsigned(11),
    "priv": unsigned(1),
    "flags": unsigned(24),
    "opcode": Opcode,
    "completion_addr": unsigned(64),
    "src_addr": unsigned(64),       # union: pattern (MEMFILL)
    "dst_addr": unsigned(64),       # union: src2_addr (COMPARE)
    "xfer_size": unsigned(32),
    "int_handle": unsigned(16),
    "rsvd1": unsigned(16),
    "sem_value": unsigned(64),      # WAIT, SIGNAL (op-specific space)
    "sem_mask": unsigned(64),       # WAIT
    "op_specific": unsigned(64),
})

#: ``struct dsa_completion_record`` with the project's ``cycles``, ``start_cycle`` and
#: ``engine`` fields (in op-specific bytes that the supported operations leave unused), 256 bits.
CompletionLayout = data.StructLayout({
    "status": Status,
    "status_write": unsigned(1),
    "result": unsigned(8),
    "fault_info": unsigned(8),
    "rsvd": unsigned(8),
    "bytes_completed": unsigned(32),
    "fault_addr": unsigned(64),
    "invalid_flags": unsigned(24),
    "rsvd2": unsigned(8),
    "cycles": unsigned(32),
    "start_cycle": unsigned(32),
    "engine": unsigned(8),
    "rsvd3": unsigned(24),
})

assert DescriptorLayout.size == 8 * DESC_BYTES
assert CompletionLayout.size == 8 * COMPLETION_BYTES
