"""What each opcode reads, writes, waits on and signals: the scanner's one table of commands.

# Ref: Linux drivers/gpu/drm/i915/gvt/cmd_parser.c (``struct cmd_info``: per
# command its length, the fields that are addresses, and how each is audited);
# Linux include/uapi/linux/idxd.h for the DSA opcodes.

GVT-g describes every command it scans with one ``cmd_info`` entry; so does
this table, for the descriptors of :mod:`siov.rtl.cmd.dsa`. Per opcode
(:class:`CmdInfo`):

* the memory accesses it makes (:class:`Access`), in the order the engine
  translates them within a piece: which descriptor field holds the address,
  how many bytes (``xfer_size`` or a constant), read or write, and the
  alignment rule that applies;
* for WAIT and SIGNAL, the semaphore (:class:`Semaphore`): the field of its
  address, of its value and of its mask.

Besides the opcode's own accesses every descriptor may write a completion
record (:data:`RECORD`: ``completion_addr``, ``COMPLETION_BYTES``, the
``CR_ALIGN`` rule; with CRAV, and RCR or an error status) and raise an
interrupt (RCI, on ``int_handle``).

The facts come from :mod:`siov.rtl.cmd.dsa`, the module the RTL is built
from: the opcodes, which of them are sized (``SIZED_OPCODES``) or
semaphores (``SEMAPHORE_OPCODES``), the record's size, the alignments. What
this table adds is the one thing dsa.py states only in prose, each field's
role per opcode; it is checked against dsa.py when the module loads, and
against the engine model by ``tests/test_sched_scanner.py``.
"""

import enum
from dataclasses import dataclass

from ...rtl.cmd.dsa import (COMPLETION_BYTES, CR_ALIGN, FILL_ALIGN, SEM_ALIGN, SEMAPHORE_OPCODES,
                            SIZED_OPCODES, Opcode)

__all__ = ["Access", "Align", "Semaphore", "CmdInfo", "CMD_INFO", "RECORD", "SIZE", "SEM_BYTES", "cmd_info"]

#: The length of an access that moves ``xfer_size`` bytes.
SIZE = "xfer_size"
#: Bytes of a semaphore: one bus word, as its alignment says (dsa.py: "a semaphore is one bus word").
SEM_BYTES = SEM_ALIGN


class Align(enum.Enum):
    """Which alignment rule an address obeys; the value is the rule's :class:`~siov.sw.hv.pf.DeviceCaps`
    field when the device reports it (GENCAP), else the constant of :mod:`siov.rtl.cmd.dsa`."""
    NONE = None
    RECORD = "cr_align"
    FILL = "fill_align"
    SEMAPHORE = "sem_align"

    def bytes(self, caps=None):
        """The alignment in bytes: the device's (``caps``) where it reports one, else dsa.py's."""
        default = {Align.NONE: 1, Align.RECORD: CR_ALIGN, Align.FILL: FILL_ALIGN, Align.SEMAPHORE: SEM_ALIGN}[self]
        return getattr(caps, self.value, default) if caps is not None and self.value else default


@dataclass(frozen=True)
class Access:
    """One memory access of a descriptor: ``length`` bytes (an int, or :data:`SIZE`) at the
    device address in field ``field``, a read or a write, aligned by rule ``align``."""
    field: str
    length: object
    write: bool
    align: Align = Align.NONE

    def nbytes(self, desc):
        """Bytes this access covers for descriptor ``desc``."""
        return desc.xfer_size if self.length == SIZE else self.length


@dataclass(frozen=True)
class Semaphore:
    """The semaphore of a WAIT or SIGNAL: the fields of its address, value and mask (None: the
    whole word). A WAIT completes when ``(memory & mask) == value``; a SIGNAL stores ``value``."""
    address: str
    value: str
    mask: "str | None"
    wait: bool


@dataclass(frozen=True)
class CmdInfo:
    """One opcode's entry: its :class:`Access` list in the engine's order and its :class:`Semaphore`."""
    opcode: Opcode
    accesses: tuple = ()
    semaphore: "Semaphore | None" = None

    @property
    def name(self):
        """The opcode's name (``"MEMMOVE"``)."""
        return self.opcode.name

    @property
    def sized(self):
        """Whether ``xfer_size`` is checked and used (dsa.py ``SIZED_OPCODES``)."""
        return self.opcode in SIZED_OPCODES

    @property
    def address_fields(self):
        """The descriptor fields that hold device addresses (the record's excluded)."""
        return tuple(dict.fromkeys(a.field for a in self.accesses))

    @property
    def reads(self):
        """The accesses that read memory."""
        return tuple(a for a in self.accesses if not a.write)

    @property
    def writes(self):
        """The accesses that write memory (the record's excluded)."""
        return tuple(a for a in self.accesses if a.write)


#: The completion record every opcode may write (with CRAV; RCR, or a status other than success).
RECORD = Access("completion_addr", COMPLETION_BYTES, True, Align.RECORD)

#: The table: :class:`~siov.rtl.cmd.dsa.Opcode` -> :class:`CmdInfo`.
CMD_INFO = {info.opcode: info for info in (
    CmdInfo(Opcode.NOOP),
    CmdInfo(Opcode.DRAIN),
    CmdInfo(Opcode.MEMMOVE, (Access("src_addr", SIZE, False), Access("dst_addr", SIZE, True))),
    CmdInfo(Opcode.MEMFILL, (Access("dst_addr", SIZE, True, Align.FILL),)),      # src_addr is the pattern
    CmdInfo(Opcode.COMPARE, (Access("src_addr", SIZE, False), Access("dst_addr", SIZE, False))),
    CmdInfo(Opcode.WAIT, (Access("src_addr", SEM_BYTES, False, Align.SEMAPHORE),),
            Semaphore("src_addr", "sem_value", "sem_mask", wait=True)),
    CmdInfo(Opcode.SIGNAL, (Access("dst_addr", SEM_BYTES, True, Align.SEMAPHORE),),
            Semaphore("dst_addr", "sem_value", None, wait=False)),
)}

_BY_VALUE = {op.value: info for op, info in CMD_INFO.items()}


def cmd_info(opcode):
    """The :class:`CmdInfo` of ``opcode`` (an :class:`Opcode` or its byte), or None for an opcode
    the engine does not implement (it fails with BAD_OPCODE)."""
    return _BY_VALUE.get(getattr(opcode, "value", opcode))


def _check_against_dsa():
    """The table states what dsa.py states, and every opcode dsa.py defines has an entry."""
    assert set(CMD_INFO) == set(Opcode), "every opcode of rtl/cmd/dsa.py has a CmdInfo"
    sized = {op for op, info in CMD_INFO.items() if any(a.length == SIZE for a in info.accesses)}
    assert sized == set(SIZED_OPCODES), "the sized accesses are those of SIZED_OPCODES"
    assert {op for op, info in CMD_INFO.items() if info.semaphore} == set(SEMAPHORE_OPCODES)
    for info in CMD_INFO.values():
        if info.semaphore:
            (access,) = info.accesses
            assert access.field == info.semaphore.address and access.write != info.semaphore.wait


_check_against_dsa()
