"""The top-level siov Device.

Three interfaces, as the command front end issue asks:

* ``csr``: AXI4-Lite slave for every CSR and ADI doorbell page. The top
  register bank holds the global registers (ID, VERSION, CAP0/CAP1, SCRATCH,
  the 64-bit cycle counter) and forwards the block windows declared in
  ``rtl/regs.rdl``: IRQ (interrupt remapping unit), DMA (DMA tracker), CMD
  (ADI block), ENG (engine and arbiter) and ADI_PAGES (doorbells);
* ``mem``: AXI4 master (64-bit data) for descriptor fetches, data movement and
  completion records, all checked and dirty-logged by the DMA tracker;
* ``irq_out``: remapped interrupts {dest, vector, handle, PASID}.

Inside: ADI block -> engine (prefetch, cost, arbiter, execution) -> DMA
tracker (every engine access) and interrupt remapping unit (completion
interrupts). The remapper's DMA pass-through output carries nothing here (the
engine sends interrupt messages only): it ends in a sink that takes every beat.

``tap_consume_valid``/``tap_consume_adi`` are named copies of the engines'
consumes (the ADI whose head descriptor is taken: at dispatch, or for a WAIT
when it is decided), ``tap_dispatch_*`` of the hand-overs to an engine
(every WAIT check included) and ``tap_slice_end`` of the arbiters' slice
boundary, for testbenches that follow the execution order and measure QoS.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from amaranth.utils import exact_log2

from .axi4 import Axi4Signature
from .cmd.dsa import CR_ALIGN, FILL_ALIGN, MAX_XFER
from .csr.axil import AxiLiteSignature, AxiLiteToCsr
from .cmd.adi import AdiBlock
from .cmd.engine import Engine, mem_id_width
from .csr.bank import RegisterBank
from .dma.tracker import DmaTracker
from .irq.remapper import InterruptRemapper, IrqLayout, MessageLayout
from .params import DeviceParams, require_params

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
    mem : Out(Axi4Signature(64, 64, mem_id_width(params)))
        AXI4 master towards host memory; the ID names the requester (engine e, or the prefetch).
    irq_out : Out(stream.Signature(IrqLayout))
        Remapped interrupts {dest, vector} towards the vAPIC model.
    """

    def __init__(self, params=DeviceParams()):
        self.params = require_params(params, "Device")
        super().__init__({
            "csr": In(AxiLiteSignature(CSR_ADDR_WIDTH)),
            "mem": Out(Axi4Signature(64, 64, mem_id_width(self.params))),
            "irq_out": Out(stream.Signature(IrqLayout)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.bridge = bridge = AxiLiteToCsr(CSR_ADDR_WIDTH)
        m.submodules.regs = regs = RegisterBank.for_window("", addr_width=CSR_ADDR_WIDTH, pipelined=True)
        wiring.connect(m, wiring.flipped(self.csr), bridge.axil)
        wiring.connect(m, bridge.csr, regs.csr)

        m.submodules.dma = dma = DmaTracker(p)
        m.submodules.iru = iru = InterruptRemapper(entries=p.ims_entries)
        m.submodules.adi = adi = AdiBlock(p)
        m.submodules.engine = eng = Engine(p)
        wiring.connect(m, regs.ext_dma, dma.csr)
        wiring.connect(m, regs.ext_irq, iru.csr)
        wiring.connect(m, regs.ext_cmd, adi.csr)
        wiring.connect(m, regs.ext_adi_pages, adi.pages)
        wiring.connect(m, regs.ext_eng, eng.csr)

        # ADI block <-> engine.
        wiring.connect(m, eng.consume, adi.consume)
        wiring.connect(m, eng.adi_fault, adi.fault)
        m.d.comb += [eng.pending.eq(adi.pending), eng.ring.eq(adi.ring), adi.busy.eq(eng.busy)]

        # Engine -> DMA tracker (every access), engine -> interrupt remapper.
        wiring.connect(m, eng.dma_req, dma.req)
        wiring.connect(m, dma.out, eng.dma_resp)
        wiring.connect(m, eng.irq, iru.msg_in)
        wiring.connect(m, iru.irq_out, wiring.flipped(self.irq_out))
        dma_out_sink = stream.Signature(MessageLayout, always_ready=True).flip().create()
        wiring.connect(m, iru.dma_out, dma_out_sink)
        wiring.connect(m, eng.mem, wiring.flipped(self.mem))

        tap_valid = Signal(name="tap_consume_valid")
        tap_adi = Signal(6, name="tap_consume_adi")
        tap_slice = Signal(name="tap_slice_end")
        tap_dispatch = Signal(name="tap_dispatch_valid")
        tap_dispatch_adi = Signal(6, name="tap_dispatch_adi")
        tap_dispatch_engine = Signal(2, name="tap_dispatch_engine")
        m.d.comb += [tap_valid.eq(eng.consume.valid), tap_adi.eq(eng.consume.payload.adi),
                     tap_slice.eq(eng.slice_end), tap_dispatch.eq(eng.dispatched),
                     tap_dispatch_adi.eq(eng.dispatched_adi), tap_dispatch_engine.eq(eng.dispatched_engine)]

        m.d.comb += [
            regs.port("GLOBAL.CAP0.NUM_ADIS").eq(p.num_adis),
            regs.port("GLOBAL.CAP0.IMS_ENTRIES").eq(p.ims_entries),
            regs.port("GLOBAL.CAP0.NUM_ENGINES").eq(p.num_engines),
            regs.port("GLOBAL.CAP1.NUM_DOMAINS").eq(p.num_domains),
            regs.port("GLOBAL.CAP1.PAGES_PER_DOMAIN").eq(p.pages_per_domain),
            regs.port("GLOBAL.GENCAP.MAX_XFER_SHIFT").eq(exact_log2(MAX_XFER)),
            regs.port("GLOBAL.GENCAP.CR_ALIGN_SHIFT").eq(exact_log2(CR_ALIGN)),
            regs.port("GLOBAL.GENCAP.FILL_ALIGN_SHIFT").eq(exact_log2(FILL_ALIGN)),
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
