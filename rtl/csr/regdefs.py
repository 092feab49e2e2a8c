"""Plain data types that describe the register map.

The tables in :mod:`siov.rtl.regmap` are written with these types by
``rtl/gen_regs.py`` from ``rtl/regs.rdl``. Hardware (:class:`~siov.rtl.csr.bank.RegisterBank`),
host software (:mod:`siov.sw.csr`) and the reference model
(:mod:`siov.sw.model.csr`) all read the same tables, so no address is typed twice.
"""

from dataclasses import dataclass

__all__ = ["Field", "Register", "External", "window_contents"]


def window_contents(window, registers, externals):
    """Split the register map for the decoder of ``window``.

    ``window`` is the path of an external window (``"IRQ"``), or ``""`` for the
    device's top-level decoder. Returns ``(registers, externals)``: the
    registers this decoder holds itself, and the windows directly inside it
    that it forwards, both with absolute offsets. A register or window belongs
    to the innermost window whose path prefixes its own.
    """
    def owner(path):
        best = ""
        for e in externals:
            if e.path != path and path.startswith(e.path + ".") and len(e.path) > len(best):
                best = e.path
        return best
    regs = [r for r in registers if owner(r.path) == window]
    exts = [e for e in externals if e.path != window and owner(e.path) == window]
    return regs, exts


@dataclass(frozen=True)
class Field:
    """One field of a register.

    Attributes
    ----------
    name : str
        Field name as in the RDL (``NUM_ADIS``).
    lsb, width : int
        Bit position and width inside the 32-bit register.
    sw : str
        Software access: ``"r"``, ``"w"``, ``"rw"`` or ``""`` (none).
    hw : str
        Hardware access: ``"r"`` (hardware reads the stored value), ``"w"``
        (hardware drives the value software reads) or ``"na"`` (constant).
    reset : int or None
        Reset value of storage, or the constant of an ``hw=na`` field.
    singlepulse : bool
        A software write of 1 produces a one-cycle pulse; the field reads 0.
    swacc : bool
        Hardware gets a strobe when software reads the register.
    swmod : bool
        Hardware gets a strobe when software writes the field.
    desc : str
        Documentation text.
    """
    name: str
    lsb: int
    width: int
    sw: str
    hw: str
    reset: "int | None" = None
    singlepulse: bool = False
    swacc: bool = False
    swmod: bool = False
    desc: str = ""

    @property
    def mask(self):
        return ((1 << self.width) - 1) << self.lsb

    @property
    def sw_readable(self):
        return "r" in self.sw

    @property
    def sw_writable(self):
        return "w" in self.sw

    @property
    def has_storage(self):
        """True if the bank keeps a flip-flop for this field."""
        return self.sw_writable and not self.singlepulse


@dataclass(frozen=True)
class Register:
    """A 32-bit register at a byte ``offset`` from the device base."""
    path: str
    offset: int
    fields: tuple = ()
    desc: str = ""

    @property
    def name(self):
        """Identifier form of the path: ``GLOBAL.CAP0`` becomes ``global_cap0``."""
        return self.path.replace(".", "_").lower()

    @property
    def sw_writable(self):
        return any(f.sw_writable for f in self.fields)

    @property
    def sw_readable(self):
        return any(f.sw_readable for f in self.fields)

    @property
    def write_mask(self):
        m = 0
        for f in self.fields:
            if f.sw_writable:
                m |= f.mask
        return m

    @property
    def reset_value(self):
        """What a read returns right after reset (0 for hardware-driven fields)."""
        v = 0
        for f in self.fields:
            if f.sw_readable and f.reset is not None and not f.singlepulse:
                v |= f.reset << f.lsb
        return v

    def field(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"Register {self.path} has no field {name!r}")


@dataclass(frozen=True)
class External:
    """An address window whose accesses the bank forwards to a block.

    Used for tables too large for flip-flops (IMS entries, bitmaps): the block
    answers on its own CSR port, in its own time.
    """
    path: str
    offset: int
    size: int
    desc: str = ""

    @property
    def name(self):
        return self.path.replace(".", "_").lower()
