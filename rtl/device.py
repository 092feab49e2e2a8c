"""The top-level siov Device.

Today: the AXI4-Lite register fabric with the global registers (ID, VERSION,
CAP0/CAP1, SCRATCH and the 64-bit cycle counter). Blocks attach to the
register bus through external windows declared in ``rtl/regs.rdl``.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from .csr.axil import AxiLiteSignature, AxiLiteToCsr
from .csr.bank import RegisterBank
from .params import DeviceParams

__all__ = ["Device", "CSR_ADDR_WIDTH"]

#: Byte address width of the CSR window: 1 MiB, room for 64 ADI pages of 4 KiB.
CSR_ADDR_WIDTH = 20


class Device(wiring.Component):
    """siov accelerator top level.

    Parameters
    ----------
    params : DeviceParams
        Build-time sizes; reported in CAP0 and CAP1.

    Attributes
    ----------
    csr : In(AxiLiteSignature(20))
        AXI4-Lite slave for every CSR and ADI page.
    """

    def __init__(self, params=DeviceParams()):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"Device parameters must be a DeviceParams, not {params!r}")
        self.params = params
        super().__init__({"csr": In(AxiLiteSignature(CSR_ADDR_WIDTH))})

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.bridge = bridge = AxiLiteToCsr(CSR_ADDR_WIDTH)
        m.submodules.regs = regs = RegisterBank.for_window("", addr_width=CSR_ADDR_WIDTH)
        wiring.connect(m, wiring.flipped(self.csr), bridge.axil)
        wiring.connect(m, bridge.csr, regs.csr)

        m.d.comb += [
            regs.port("GLOBAL.CAP0.NUM_ADIS").eq(p.num_adis),
            regs.port("GLOBAL.CAP0.IMS_ENTRIES").eq(p.ims_entries),
            regs.port("GLOBAL.CAP1.NUM_DOMAINS").eq(p.num_domains),
            regs.port("GLOBAL.CAP1.PAGES_PER_DOMAIN").eq(p.pages_per_domain),
        ]

        # 64-bit timebase; a read of CYCLE_LO latches the high word for CYCLE_HI.
        # The swacc strobe arrives one cycle after the decode sampled CYCLE_LO,
        # so the high word is taken from a copy delayed by that same cycle.
        cycles = Signal(64)
        hi_delayed = Signal(32)
        cycle_hi = Signal(32)
        m.d.sync += [cycles.eq(cycles + 1), hi_delayed.eq(cycles[32:])]
        with m.If(regs.port("GLOBAL.CYCLE_LO.VALUE_swacc")):
            m.d.sync += cycle_hi.eq(hi_delayed)
        m.d.comb += [
            regs.port("GLOBAL.CYCLE_LO.VALUE").eq(cycles[:32]),
            regs.port("GLOBAL.CYCLE_HI.VALUE").eq(cycle_hi),
        ]
        return m
