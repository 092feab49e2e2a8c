"""Standalone top for one block: each register-bus port behind its own AXI4-Lite slave.

Block testbenches and per-block synthesis need the block alone, with bus
ports that cocotbext-axi drives (``AxiLiteBus.from_prefix(dut, "csr",
bus_separator="__")``). This wrapper derives that top from the block's own
signature, so each block states its ports once:

* every ``In(CsrSignature(w))`` member becomes ``In(AxiLiteSignature(w))`` of the
  same name, through an :class:`~siov.rtl.csr.axil.AxiLiteToCsr` bridge;
* every other member is passed through unchanged;
* ``observe`` names internal signals that get a named copy in the top module,
  so that a testbench can make exactly those public.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from .axil import AxiLiteSignature, AxiLiteToCsr
from .bus import CsrSignature

__all__ = ["AxiLiteWrapper"]


class AxiLiteWrapper(wiring.Component):
    """A block with AXI4-Lite slaves in place of its register-bus ports.

    Parameters
    ----------
    block : wiring.Component
        The block to wrap.
    name : str
        Its submodule name (the scope it has in waveforms).
    ports : iterable of str, optional
        The block's members to expose (default: all). Members left out keep
        their reset values (inputs) or stay unconnected (outputs).
    observe : dict of str to Signal
        Internal signals copied to signals of these names in the top module.
    """

    def __init__(self, block, name, *, ports=None, observe=None):
        self.block = block
        self._block_name = name
        self._observe = dict(observe or {})
        members = {}
        for name, member in block.signature.members.items():
            if ports is not None and name not in ports:
                continue
            if member.is_signature and member.flow == In and isinstance(member.signature, CsrSignature):
                members[name] = In(AxiLiteSignature(member.signature.addr_width))
            else:
                members[name] = member
        if ports is not None and set(ports) - set(members):
            raise ValueError(f"Block has no member(s) {sorted(set(ports) - set(members))}")
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules[self._block_name] = block = self.block
        for name, member in self.signature.members.items():
            outer, inner = getattr(self, name), getattr(block, name)
            if member.is_signature and isinstance(member.signature, AxiLiteSignature):
                bridge = AxiLiteToCsr(member.signature.addr_width)
                m.submodules[f"{name}_bridge"] = bridge
                wiring.connect(m, wiring.flipped(outer), bridge.axil)
                wiring.connect(m, bridge.csr, inner)
            elif member.is_signature:
                if member.flow == In:
                    wiring.connect(m, wiring.flipped(outer), inner)
                else:
                    wiring.connect(m, inner, wiring.flipped(outer))
            elif member.flow == In:
                m.d.comb += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)
        for name, sig in self._observe.items():
            copy = Signal.like(sig, name=name)
            m.d.comb += copy.eq(sig)
        return m
