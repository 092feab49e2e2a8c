"""Reference model of the register fabric (AXI4-Lite slave + register bank).

It reads the same generated tables as the hardware decode
(:mod:`siov.rtl.regmap`) and answers like the hardware does: DECERR for an
address with no register, SLVERR (and no change) for a write to a register
with no software-writable field, byte strobes honoured. It is the scoreboard's
oracle in tb/csr and the register file of the ``model`` bus backend.
"""

from amaranth.utils import exact_log2

from ...rtl import regmap
from ...rtl.cmd.dsa import CR_ALIGN, FILL_ALIGN, MAX_XFER
from ...rtl.csr.bus import Resp
from ...rtl.params import DeviceParams

__all__ = ["CsrModel", "strobe_mask"]


def strobe_mask(strb):
    """Expand a 4-bit WSTRB into a 32-bit byte mask."""
    m = 0
    for i in range(4):
        if strb >> i & 1:
            m |= 0xFF << (8 * i)
    return m


class CsrModel:
    """Register-file model.

    Parameters
    ----------
    params : DeviceParams
        Build parameters, reported in CAP0/CAP1.

    ``hw`` maps ``"REG.FIELD"`` paths of hardware-driven fields to their
    current value; :attr:`volatile` lists registers whose value changes on its
    own (the cycle counter), which a scoreboard checks by response only.
    """

    volatile = frozenset({"GLOBAL.CYCLE_LO", "GLOBAL.CYCLE_HI"})

    def __init__(self, params=DeviceParams(), window=""):
        from ...rtl.csr.regdefs import window_contents
        self.params = params
        regs, exts = window_contents(window, regmap.REGISTERS.values(), regmap.EXTERNALS.values())
        self.registers = {r.path: r for r in regs}
        self.externals = {e.path: e for e in exts}
        #: window path -> model with ``read(addr) -> (resp, value)`` and
        #: ``write(addr, data, strb) -> resp`` (absolute addresses)
        self.windows = {}
        self._by_word = {r.offset >> 2: r for r in self.registers.values()}
        self.storage = {path: r.reset_value & r.write_mask for path, r in self.registers.items()}
        self.hw = {
            "GLOBAL.CAP0.NUM_ADIS": params.num_adis,
            "GLOBAL.CAP0.IMS_ENTRIES": params.ims_entries,
            "GLOBAL.CAP0.NUM_ENGINES": params.num_engines,
            "GLOBAL.CAP1.NUM_DOMAINS": params.num_domains,
            "GLOBAL.CAP1.PAGES_PER_DOMAIN": params.pages_per_domain,
            "GLOBAL.GENCAP.MAX_XFER_SHIFT": exact_log2(MAX_XFER),
            "GLOBAL.GENCAP.CR_ALIGN_SHIFT": exact_log2(CR_ALIGN),
            "GLOBAL.GENCAP.FILL_ALIGN_SHIFT": exact_log2(FILL_ALIGN),
            "GLOBAL.CYCLE_LO.VALUE": 0,
            "GLOBAL.CYCLE_HI.VALUE": 0,
        }

    def field(self, path):
        """The stored value of software-written field ``"REG.PATH.FIELD"``."""
        *reg, name = path.split(".")
        reg = ".".join(reg)
        fld = self.registers[reg].field(name)
        return (self.storage[reg] & fld.mask) >> fld.lsb

    def register_at(self, addr):
        """The register at byte address ``addr`` (low two bits ignored), or None."""
        return self._by_word.get(addr >> 2)

    def window_at(self, addr):
        """The external window containing ``addr``, or None."""
        for e in self.externals.values():
            if e.offset <= addr < e.offset + e.size:
                return e
        return None

    def read(self, addr):
        """Return ``(resp, value)`` for a read of ``addr``."""
        win = self.window_at(addr)
        if win is not None:
            if win.path not in self.windows:
                return Resp.DECERR, 0
            return self.windows[win.path].read(addr)
        reg = self.register_at(addr)
        if reg is None:
            return Resp.DECERR, 0
        value = 0
        for f in reg.fields:
            if not f.sw_readable or f.singlepulse:
                continue
            if f.has_storage:
                v = (self.storage[reg.path] & f.mask) >> f.lsb
            elif f.hw == "w":
                v = self.hw.get(f"{reg.path}.{f.name}", 0)
            else:
                v = f.reset or 0
            value |= (v & ((1 << f.width) - 1)) << f.lsb
        return Resp.OKAY, value

    def write(self, addr, data, strb=0xF):
        """Apply a write of ``data`` with byte strobes ``strb``; return the response."""
        win = self.window_at(addr)
        if win is not None:
            if win.path not in self.windows:
                return Resp.DECERR
            return self.windows[win.path].write(addr, data, strb)
        reg = self.register_at(addr)
        if reg is None:
            return Resp.DECERR
        if not reg.sw_writable:
            return Resp.SLVERR
        m = strobe_mask(strb) & reg.write_mask
        old = self.storage[reg.path]
        self.storage[reg.path] = (old & ~m) | (data & m)
        return Resp.OKAY
