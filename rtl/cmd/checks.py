"""The executor's descriptor checks: the first check a descriptor fails, or where it goes, as a register.

Ref: the check order and the alignment rule stated in :mod:`.dsa` (opcode,
flags, interrupt handle, size, alignment), which the reference model's
:meth:`siov.sw.model.engine.Engine.check` follows; before them the hand-over's
own check, that the descriptor's PASID is its ADI's (a refusal: ERROR code 3).

The sequencer loads the descriptor and its ADI's PASID at the hand-over and
spends one cycle (PREPARE) before it acts on the checks (CHECK). The checks
are computed in that cycle and registered (``verdict``), so CHECK decides
its next state from a register: the compares of 64-bit addresses, the flags
word and the transfer size end in this register, not in the sequencer's
state and the registers that state loads (the Device's critical path ran
through them). No cycle changes.
"""

import functools
import operator

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..dma.defs import PASID_BITS
from .dsa import (CR_ALIGN, FILL_ALIGN, MAX_XFER, RESERVED_FLAGS, SEM_ALIGN, SIZED_OPCODES, DescriptorLayout,
                  Flag, Opcode)

__all__ = ["DescriptorChecks", "Verdict", "bad_flags"]

_CR_LOW = exact_log2(CR_ALIGN)        # address bits that must be 0 in a completion address
_FILL_LOW = exact_log2(FILL_ALIGN)    # ... and in a MEMFILL destination
_SEM_LOW = exact_log2(SEM_ALIGN)      # ... and in a semaphore address


class Verdict(enum.Enum, shape=4):
    """The first check a descriptor fails, in the order of :mod:`.dsa`, or where a
    descriptor that passes them all goes next."""
    REFUSE = 0          # its PASID is not its ADI's
    BAD_OPCODE = 1
    INVALID_FLAGS = 2
    BAD_HANDLE = 3      # RCI with an interrupt handle beyond the IMS
    XFER_SIZE = 4
    ADDR_ALIGN = 5
    SIZED = 6           # MEMMOVE, MEMFILL, COMPARE: its pieces
    WAIT = 7            # its semaphore's translation
    SIGNAL = 8          # its word's translation
    UNSIZED = 9         # NOOP, DRAIN: its record


def bad_flags(flags):
    """The flag bits that fail a descriptor (``Status.INVALID_FLAGS``'s ``invalid``):
    reserved bits, and RCR without CRAV."""
    return ((flags & RESERVED_FLAGS)
            | Mux((flags & Flag.RCR.value).any() & ~(flags & Flag.CRAV.value).any(), Flag.RCR.value, 0))


class DescriptorChecks(wiring.Component):
    """The checks of ``desc`` against ``adi_pasid``, registered every cycle into ``verdict``.

    Parameters
    ----------
    ims_entries : int
        Interrupt handles below this are valid (``Status.INVALID_INT_HANDLE`` beyond).

    Attributes
    ----------
    desc : In(DescriptorLayout)
    adi_pasid : In(PASID_BITS)
        The descriptor and its ADI's PASID, held while their verdict is used.
    verdict : Out(Verdict)
        Their :class:`Verdict`, a cycle after they are presented.
    """

    def __init__(self, ims_entries):
        self.ims_entries = ims_entries
        super().__init__({"desc": In(DescriptorLayout), "adi_pasid": In(PASID_BITS), "verdict": Out(Verdict)})

    def elaborate(self, platform):
        m = Module()
        desc, verdict = self.desc, self.verdict
        opcode, flags = desc.opcode.as_value(), desc.flags
        dec = {op: opcode == op.value for op in Opcode}
        sized = functools.reduce(operator.or_, (dec[op] for op in SIZED_OPCODES))
        known = functools.reduce(operator.or_, dec.values())
        rci, crav = (flags & Flag.RCI.value).any(), (flags & Flag.CRAV.value).any()
        misaligned = ((crav & (desc.completion_addr[:_CR_LOW] != 0))
                      | (dec[Opcode.MEMFILL] & (desc.dst_addr[:_FILL_LOW] != 0))
                      | (dec[Opcode.WAIT] & (desc.src_addr[:_SEM_LOW] != 0))
                      | (dec[Opcode.SIGNAL] & (desc.dst_addr[:_SEM_LOW] != 0)))
        # The first that applies, as the model checks them.
        with m.If(desc.pasid != self.adi_pasid):
            m.d.sync += verdict.eq(Verdict.REFUSE)
        with m.Elif(~known):
            m.d.sync += verdict.eq(Verdict.BAD_OPCODE)
        with m.Elif(bad_flags(flags) != 0):
            m.d.sync += verdict.eq(Verdict.INVALID_FLAGS)
        with m.Elif(rci & (desc.int_handle >= self.ims_entries)):
            m.d.sync += verdict.eq(Verdict.BAD_HANDLE)
        with m.Elif(sized & ((desc.xfer_size == 0) | (desc.xfer_size > MAX_XFER))):
            m.d.sync += verdict.eq(Verdict.XFER_SIZE)
        with m.Elif(misaligned):
            m.d.sync += verdict.eq(Verdict.ADDR_ALIGN)
        with m.Elif(sized):
            m.d.sync += verdict.eq(Verdict.SIZED)
        with m.Elif(dec[Opcode.WAIT]):
            m.d.sync += verdict.eq(Verdict.WAIT)
        with m.Elif(dec[Opcode.SIGNAL]):
            m.d.sync += verdict.eq(Verdict.SIGNAL)
        with m.Else():
            m.d.sync += verdict.eq(Verdict.UNSIZED)
        return m
