"""Write the Verilog of every synthesizable top to a folder (``make verilog``).

Each top is elaborated with its default parameters. The ``*_ecp5`` tops are
the same blocks with ECP5 block RAM primitives (:mod:`siov.rtl.ecp5`) in place
of inferred memories; their Verilog instantiates ``DP16KD``, which simulation
and lint take from ``tb/models/dp16kd.v``. The same table of tops
feeds ``make synth`` and the lint test, so a new block is added in one place.
"""

import argparse
import pathlib
import sys

from amaranth.back import verilog
from amaranth.hdl import Const, Value, ValueCastable
from amaranth.hdl._ir import PortDirection
from amaranth.lib import wiring

__all__ = ["TOPS", "convert_top", "top_ports", "write_all"]


def _device():
    from .device import Device
    return Device()


def _arbiter():
    from .cmd.arbiter import QosArbiter
    from .params import DeviceParams
    return QosArbiter(DeviceParams().num_adis)


def _irq():
    from .irq.top import IrqTop
    return IrqTop()


def _irq_ecp5():
    from .irq.top import IrqTop
    return IrqTop(primitive="ecp5")


def _dma_ecp5():
    from .dma.top import DmaTop
    return DmaTop(primitive="ecp5")


def _adi():
    from .cmd.adi_top import AdiTop
    return AdiTop()


def _dma():
    from .dma.top import DmaTop
    return DmaTop()


def _engine():
    from .cmd.engine import Engine
    from .csr.wrap import AxiLiteWrapper
    return AxiLiteWrapper(Engine(), "engine")


#: name of the Verilog module -> factory of the Amaranth component
TOPS = {
    "siov_device": _device,
    "siov_dma": _dma,
    "siov_arbiter": _arbiter,
    "siov_irq": _irq,
    "siov_irq_ecp5": _irq_ecp5,
    "siov_dma_ecp5": _dma_ecp5,
    "siov_adi": _adi,
    "siov_engine": _engine,
}


def top_ports(component):
    """The ports of a top: each signal of its signature, named by its path (``csr__awaddr``).

    As ``verilog.convert`` names them, except that a member the signature makes
    a constant is no port: the ``ready`` of an ``always_ready`` stream
    (``amaranth.lib.stream``) is ``Const(1)``, and Amaranth takes only signals
    as ports.
    """
    ports = {}
    for path, member, value in component.signature.flatten(component):
        value = value.as_value() if isinstance(value, ValueCastable) else Value.cast(value)
        if isinstance(value, Const):
            continue
        direction = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
        ports["__".join(map(str, path))] = (value, direction)
    return ports


def convert_top(name, component=None):
    """Return the Verilog text of top ``name`` (or of ``component`` under that name)."""
    if component is None:
        component = TOPS[name]()
    return verilog.convert(component, name=name, ports=top_ports(component), emit_src=False)


def write_all(out_dir, names=None):
    """Write ``<name>.v`` for each top into ``out_dir``; return the paths."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or TOPS:
        path = out_dir / f"{name}.v"
        path.write_text(convert_top(name))
        paths.append(path)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/verilog", help="output folder (default: build/verilog)")
    ap.add_argument("tops", nargs="*", help=f"tops to write (default: all of {', '.join(TOPS)})")
    args = ap.parse_args(argv)
    for p in write_all(args.out, args.tops or None):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
