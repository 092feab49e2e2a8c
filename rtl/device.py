"""The top-level siov Device.

Today: the AXI4-Lite register fabric with the global registers (ID, VERSION,
CAP0/CAP1, SCRATCH and the 64-bit cycle counter). Blocks attach to the
register bus through external windows declared in ``rtl/regs.rdl``.
The DMA tracker (rtl/dma) answers the ``DMA`` window; its request stream is a
port for now (the engine will drive it internally). The interrupt remapping
unit (rtl/irq) answers the ``IRQ`` window; its message input is a port for
now as well. The ADI block (rtl/cmd/adi.py) answers the ``CMD`` window and
the per-ADI doorbell pages ``ADI_PAGES``; its ``pending`` output and
``consume`` input are ports until the descriptor fetcher exists.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .csr.axil import AxiLiteSignature, AxiLiteToCsr
from .cmd.adi import CONSUME_LAYOUT, AdiBlock
from .csr.bank import RegisterBank
from .dma.tracker import OUT_LAYOUT, REQ_LAYOUT, DmaTracker
from .irq.remapper import InterruptRemapper, IrqLayout, MessageLayout
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
    irq_in : In(stream.Signature(MessageLayout))
        Upstream messages into the interrupt remapping unit (driven by the
        engine once it exists; a port today so that tests can drive it).
    irq_out : Out(stream.Signature(IrqLayout))
        Remapped interrupts {dest, vector} towards the vAPIC model.
    irq_dma : Out(stream.Signature(MessageLayout))
        DMA-flagged messages passed through by the remapping unit.
    dma_req : In(stream.Signature(REQ_LAYOUT))
        DMA requests into the tracker (driven by the engine later).
    dma_out : Out(stream.Signature(OUT_LAYOUT))
        Requests the tracker let through, translated to host addresses.
    pending : Out(num_adis)
        Bit i: ADI i has a posted descriptor (towards the future fetcher).
    consume : In(stream.Signature(CONSUME_LAYOUT))
        The fetcher took ADI ``adi``'s head descriptor (always ready).
    """

    def __init__(self, params=DeviceParams()):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"Device parameters must be a DeviceParams, not {params!r}")
        self.params = params
        super().__init__({
            "csr": In(AxiLiteSignature(CSR_ADDR_WIDTH)),
            "irq_in": In(stream.Signature(MessageLayout)),
            "irq_out": Out(stream.Signature(IrqLayout)),
            "irq_dma": Out(stream.Signature(MessageLayout)),
            "dma_req": In(stream.Signature(REQ_LAYOUT)),
            "dma_out": Out(stream.Signature(OUT_LAYOUT)),
            "pending": Out(params.num_adis),
            "consume": In(stream.Signature(CONSUME_LAYOUT)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.bridge = bridge = AxiLiteToCsr(CSR_ADDR_WIDTH)
        m.submodules.regs = regs = RegisterBank.for_window("", addr_width=CSR_ADDR_WIDTH)
        wiring.connect(m, wiring.flipped(self.csr), bridge.axil)
        wiring.connect(m, bridge.csr, regs.csr)

        m.submodules.dma = dma = DmaTracker(p)
        wiring.connect(m, regs.ext_dma, dma.csr)
        wiring.connect(m, wiring.flipped(self.dma_req), dma.req)
        wiring.connect(m, dma.out, wiring.flipped(self.dma_out))

        # Interrupt remapping unit: register window IRQ, message streams.
        m.submodules.iru = iru = InterruptRemapper(entries=p.ims_entries)
        wiring.connect(m, regs.ext_irq, iru.csr)
        wiring.connect(m, wiring.flipped(self.irq_in), iru.msg_in)
        wiring.connect(m, wiring.flipped(self.irq_out), iru.irq_out)
        wiring.connect(m, wiring.flipped(self.irq_dma), iru.dma_out)

        # ADI block: CMD registers and the per-ADI doorbell pages.
        m.submodules.adi = adi = AdiBlock(p)
        wiring.connect(m, regs.ext_cmd, adi.csr)
        wiring.connect(m, regs.ext_adi_pages, adi.pages)
        wiring.connect(m, wiring.flipped(self.consume), adi.consume)
        m.d.comb += self.pending.eq(adi.pending)

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
