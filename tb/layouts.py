"""Turn Amaranth layouts into the integers a cocotb handle carries, and back.

A stream payload or a port of ``data.StructLayout`` / ``data.ArrayLayout`` is one
flat vector in the Verilog; these helpers read the field offsets from the
layout itself, so no testbench repeats a bit position.
"""

__all__ = ["pack", "unpack", "pack_array", "unpack_array"]


_FIELDS = {}


def _fields(layout):
    """``{name: (offset, width)}``, cached: testbenches pack millions of payloads."""
    key = id(layout)
    if key not in _FIELDS:
        _FIELDS[key] = (layout, {name: (f.offset, f.width) for name, f in layout})
    return _FIELDS[key][1]


def pack(layout, **values):
    """The integer of a ``StructLayout`` with these field values (missing fields are 0)."""
    v = 0
    for name, (off, width) in _fields(layout).items():
        v |= (int(values.get(name, 0)) & ((1 << width) - 1)) << off
    return v


def unpack(layout, value):
    """A dict of the fields of a ``StructLayout`` integer."""
    return {name: (value >> off) & ((1 << width) - 1) for name, (off, width) in _fields(layout).items()}


def pack_array(values, width):
    """The integer of an ``ArrayLayout(width, len(values))``."""
    v = 0
    for i, x in enumerate(values):
        v |= (int(x) & ((1 << width) - 1)) << (i * width)
    return v


def unpack_array(value, width, n):
    """The ``n`` elements of an ``ArrayLayout(width, n)`` integer."""
    return [(value >> (i * width)) & ((1 << width) - 1) for i in range(n)]
