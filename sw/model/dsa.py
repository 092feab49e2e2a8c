"""DSA descriptors and completion records as Python values, packed to bytes.

Ref: Linux include/uapi/linux/idxd.h (``struct dsa_hw_desc``, 64 bytes;
``struct dsa_completion_record``, 32 bytes). Byte order is little-endian.

The offsets are not written here: :func:`pack` and :func:`unpack` walk the
fields of :data:`siov.rtl.cmd.dsa.DescriptorLayout` and
:data:`~siov.rtl.cmd.dsa.CompletionLayout`, the same layouts the RTL uses.
Each dataclass must declare exactly the fields of its layout (checked when
the class is defined).

Field values are plain ints. An Amaranth enum member (``Opcode.MEMMOVE``,
``Status.SUCCESS``) is accepted wherever an int is and packed as its value;
:meth:`unpack` always returns ints, so an opcode the engine does not know
survives a round trip. ``Status`` is an ``IntEnum``, so ``record.status ==
Status.SUCCESS`` compares as it reads.

A :class:`Descriptor` is built from its layout's fields or from the other
names idxd.h gives the same bytes: ``pattern`` (MEMFILL's ``src_addr``),
``src2_addr`` (COMPARE's ``dst_addr``) and ``sem_addr`` (the semaphore
address: WAIT's ``src_addr``, SIGNAL's ``dst_addr``).
"""

import dataclasses
import enum as py_enum
from dataclasses import dataclass

from amaranth.hdl import Shape

from ...rtl.cmd.dsa import CompletionLayout, DescriptorLayout, Opcode

__all__ = ["Descriptor", "CompletionRecord", "fields_of"]


def fields_of(layout):
    """``[(name, bit offset, width)]`` of a StructLayout, in offset order."""
    out = [(name, f.offset, Shape.cast(f.shape).width) for name, f in layout]
    return sorted(out, key=lambda t: t[1])


class _Packed:
    """Base of the record dataclasses: pack/unpack through ``LAYOUT``."""

    LAYOUT = None
    _FIELDS = ()
    _NBYTES = 0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._FIELDS = tuple(fields_of(cls.LAYOUT))
        cls._NBYTES = cls.LAYOUT.size // 8

    @classmethod
    def _codec(cls):
        """``(pack, fields)``: straight-line functions made once per class from its layout (the
        model packs and unpacks every descriptor and record it moves, several times).

        ``pack(record)`` is :meth:`pack`; ``fields(word)`` is the dict of every field of the
        little-endian integer ``word``, in the order the dataclass declares them (the order
        its constructor would set them in)."""
        codec = cls.__dict__.get("_CODEC")
        if codec is None:
            spec = {name: (offset, width) for name, offset, width in cls._FIELDS}
            src = ["def pack(record):", "    values = record.__dict__", "    word = 0"]
            for name, offset, width in cls._FIELDS:
                src += [f"    value = values[{name!r}]",
                        "    if type(value) is not int:",
                        f"        value = record._plain({name!r}, value)",
                        f"    if value < 0 or value >> {width}:",
                        f"        record._too_wide({name!r}, {width}, value)",
                        f"    word |= value << {offset}"]
            src.append(f"    return word.to_bytes({cls._NBYTES}, 'little')")
            items = ", ".join(f"{f.name!r}: word >> {spec[f.name][0]} & {(1 << spec[f.name][1]) - 1:#x}"
                              for f in dataclasses.fields(cls))
            src += ["def fields(word):", f"    return {{{items}}}"]
            scope = {}
            exec(compile("\n".join(src), f"<{cls.__name__} codec>", "exec"), scope)
            codec = cls._CODEC = (scope["pack"], scope["fields"])
        return codec

    @classmethod
    def _check_fields(cls):
        declared = [f.name for f in dataclasses.fields(cls)]
        expected = sorted(name for name, _, _ in cls._FIELDS)
        if sorted(declared) != expected:
            raise TypeError(f"{cls.__name__} declares fields {sorted(declared)}, "
                            f"its layout has {expected}")

    def pack(self):
        """The record as ``LAYOUT.size // 8`` little-endian bytes."""
        return self._codec()[0](self)

    def _too_wide(self, field, width, value):
        raise ValueError(f"{type(self).__name__}.{field} is a {width}-bit field; {value:#x} does not fit")

    def _plain(self, field, value):
        """``value`` of ``field`` as a plain int: an enum member's value; anything but an int refused."""
        if isinstance(value, py_enum.Enum):
            value = value.value
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{type(self).__name__}.{field} must be an int, not {value!r}")
        return value

    @classmethod
    def unpack(cls, buf):
        """Build a record from exactly ``LAYOUT.size // 8`` bytes."""
        if not isinstance(buf, (bytes, bytearray, memoryview)):
            raise TypeError(f"{cls.__name__}.unpack needs a bytes-like object, "
                            f"not {type(buf).__name__}")
        buf = bytes(buf)
        if len(buf) != cls._NBYTES:
            raise ValueError(f"{cls.__name__} is {cls._NBYTES} bytes, not {len(buf)}")
        word = int.from_bytes(buf, "little")
        # Every field is given, as plain ints: what the constructor would do, without its
        # handling of aliases and defaults.
        obj = cls.__new__(cls)
        obj.__dict__.update(cls._codec()[1](word))
        return obj


#: Which field holds the semaphore address of each semaphore opcode.
_SEM_FIELD = {Opcode.WAIT.value: "src_addr", Opcode.SIGNAL.value: "dst_addr"}


@dataclass
class _DescriptorFields(_Packed):
    """The fields of ``struct dsa_hw_desc``, with the constructor dataclasses makes for them."""
    LAYOUT = DescriptorLayout

    pasid: int = 0
    rsvd: int = 0
    priv: int = 0
    flags: int = 0
    opcode: int = 0
    completion_addr: int = 0
    src_addr: int = 0
    dst_addr: int = 0
    xfer_size: int = 0
    int_handle: int = 0
    rsvd1: int = 0
    sem_value: int = 0
    sem_mask: int = 0
    op_specific: int = 0


@dataclass(init=False)
class Descriptor(_DescriptorFields):
    """``struct dsa_hw_desc`` (64 bytes).

    The constructor takes every field of the layout by name, and the union
    members ``pattern``, ``src2_addr`` and ``sem_addr`` (see the module
    docstring). Giving one field under two names raises ``TypeError``;
    ``sem_addr`` with an opcode other than WAIT or SIGNAL raises
    ``ValueError``.
    """

    def __init__(self, *args, pattern=None, src2_addr=None, sem_addr=None, **fields):
        super().__init__(*args, **fields)
        given = {f.name for f in dataclasses.fields(self)[:len(args)]} | set(fields)
        aliases = [("pattern", pattern, "src_addr"), ("src2_addr", src2_addr, "dst_addr")]
        if sem_addr is not None:
            op = getattr(self.opcode, "value", self.opcode)
            if op not in _SEM_FIELD:
                raise ValueError(f"Descriptor: sem_addr is the address of a WAIT or SIGNAL, "
                                 f"not of opcode {op:#x}")
            aliases.append(("sem_addr", sem_addr, _SEM_FIELD[op]))
        for alias, value, field in aliases:
            if value is None:
                continue
            if field in given:
                raise TypeError(f"Descriptor: {alias} and {field} are the same field; give one")
            setattr(self, field, value)
            given.add(field)

    @property
    def pattern(self):
        """MEMFILL's 8-byte pattern (the ``src_addr`` union member)."""
        return self.src_addr

    @pattern.setter
    def pattern(self, value):
        self.src_addr = value

    @property
    def src2_addr(self):
        """COMPARE's second source (the ``dst_addr`` union member)."""
        return self.dst_addr

    @src2_addr.setter
    def src2_addr(self, value):
        self.dst_addr = value

    @property
    def sem_addr(self):
        """The semaphore address: WAIT's ``src_addr``, SIGNAL's ``dst_addr`` (None for other opcodes)."""
        field = _SEM_FIELD.get(getattr(self.opcode, "value", self.opcode))
        return None if field is None else getattr(self, field)


@dataclass
class CompletionRecord(_Packed):
    """``struct dsa_completion_record`` (32 bytes) with the project's ``cycles``, ``start_cycle``
    and ``engine`` fields (see :mod:`siov.rtl.cmd.dsa`)."""
    LAYOUT = CompletionLayout

    status: int = 0
    status_write: int = 0
    result: int = 0
    fault_info: int = 0
    rsvd: int = 0
    bytes_completed: int = 0
    fault_addr: int = 0
    invalid_flags: int = 0
    rsvd2: int = 0
    cycles: int = 0
    start_cycle: int = 0
    engine: int = 0
    rsvd3: int = 0


Descriptor._check_fields()
CompletionRecord._check_fields()
