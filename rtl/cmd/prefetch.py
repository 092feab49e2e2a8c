"""The descriptor prefetch that every engine shares.

For each ADI the dispatcher asks for (``need``: pending, its slot empty),
lowest index first, the prefetch reads the head descriptor (ring base + 64 x
head, a device address checked and translated by the DMA tracker under the
ADI's PASID) with its own AXI4 reader into the ADI's 8-word slot in block RAM,
estimates its cost (:mod:`.cost`), and reports the fill (``fill``: ADI, cost
and whether it is a WAIT, which the dispatcher does not consume at dispatch).

A fetch blocked by the tracker, at an address the tracker cannot translate
(at or above 2**44), or whose read gets a non-OKAY RRESP, puts the ADI into
ERROR (code FETCH_FAULT, as the model's ``EngineModel.fetch``), unless the ADI
stopped being pending meanwhile (an ABORT), in which case the fetch is
dropped silently, as is a fill. After a fault the prefetch waits until the
fault beat has reached the ADI block, so that it never fetches for an ADI
that is about to enter ERROR.

A ring's descriptors are 64-byte aligned, so a fetch is eight whole words
that go straight from the reader into the slot, with no aligner.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..axi4 import Axi4ReadSignature
from ..dma.defs import PASID_BITS
from ..dma.tracker import OUT_LAYOUT, REQ_LAYOUT
from ..params import DeviceParams, require_params
from .adi import ADI_FAULT_LAYOUT, RING_LAYOUT, AdiError
from .cost import COST_WIDTH, CostEstimator
from .dsa import DESC_BYTES, Opcode
from .mover import WORD_BITS, AxiReader
from .xlate import TrackerClient

__all__ = ["Prefetcher", "FILL_LAYOUT", "DESC_WORDS", "slot_addr_bits"]

DESC_WORDS = DESC_BYTES // 8

#: A filled slot: the ADI, its head descriptor's estimated cost, and whether it is a WAIT.
FILL_LAYOUT = data.StructLayout({"adi": 6, "cost": COST_WIDTH, "wait": 1})


def slot_addr_bits(num_adis):
    """Address width of the slot RAM: 8 words per ADI."""
    return (DESC_WORDS - 1).bit_length() + max(1, (num_adis - 1).bit_length())


class Prefetcher(wiring.Component):
    """Fetches head descriptors into the per-ADI slots.

    Attributes
    ----------
    need : In(num_adis)
        ADIs whose head descriptor should be fetched (pending, slot empty).
    pending : In(num_adis)
    ring : In(ArrayLayout(RING_LAYOUT, num_adis))
    fill : Out(stream.Signature(FILL_LAYOUT, always_ready=True))
        One-cycle beat when a slot has been filled.
    slot_we, slot_waddr, slot_wdata : Out
        The slot RAM's write port.
    dma_req : Out(stream.Signature(REQ_LAYOUT))
    dma_resp : In(stream.Signature(OUT_LAYOUT, always_ready=True))
        The tracker's answers, each taken in the cycle it arrives (by the :class:`~.xlate.TrackerClient`).
    bus : Out(Axi4ReadSignature())
    fault : Out(stream.Signature(ADI_FAULT_LAYOUT))
        FETCH_FAULT towards the ADI block, held until taken.
    cost_a, cost_b : In
        The cost model (ENG.COST_A/COST_B).
    """

    def __init__(self, params=DeviceParams()):
        self.params = require_params(params, "Prefetcher")
        n = params.num_adis
        super().__init__({
            "need": In(n),
            "pending": In(n),
            "ring": In(data.ArrayLayout(RING_LAYOUT, n)),
            "fill": Out(stream.Signature(FILL_LAYOUT, always_ready=True)),
            "slot_we": Out(1),
            "slot_waddr": Out(slot_addr_bits(n)),
            "slot_wdata": Out(WORD_BITS),
            "dma_req": Out(stream.Signature(REQ_LAYOUT)),
            "dma_resp": In(stream.Signature(OUT_LAYOUT, always_ready=True)),
            "bus": Out(Axi4ReadSignature()),
            "fault": Out(stream.Signature(ADI_FAULT_LAYOUT)),
            "cost_a": In(24),
            "cost_b": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.params.num_adis

        m.submodules.reader = rd = AxiReader(data_always_ready=True)
        wiring.connect(m, rd.bus, wiring.flipped(self.bus))
        m.submodules.cost = est = CostEstimator()
        m.submodules.xlate = xc = TrackerClient(addr_width=65)
        wiring.connect(m, xc.req, wiring.flipped(self.dma_req))
        wiring.connect(m, wiring.flipped(self.dma_resp), xc.resp)
        m.d.comb += [est.a.eq(self.cost_a), est.b.eq(self.cost_b)]

        cur = Signal(range(max(n, 2)))
        ring = self.ring[cur]
        stale = Signal()               # the ADI stopped being pending during the fetch
        word = Signal(range(DESC_WORDS + 1))
        opcode = Signal(8)
        size = Signal(32)
        pasid = Signal(PASID_BITS)
        base = Signal(58)
        head = Signal(12)
        host = Signal(64)

        pick = Signal(range(max(n, 2)))
        for i in reversed(range(n)):
            with m.If(self.need[i]):
                m.d.comb += pick.eq(i)
        with m.If(~self.pending.bit_select(cur, 1)):
            m.d.sync += stale.eq(1)

        m.d.comb += [xc.pasid.eq(pasid),
                     rd.cmd.payload.addr.eq(host),
                     rd.cmd.payload.words.eq(DESC_WORDS),
                     self.slot_waddr.eq(Cat(word[:3], cur)),
                     self.slot_wdata.eq(rd.data.payload)]
        with m.If(self.fill.valid):
            m.d.sync += self.fill.valid.eq(0)
        with m.If(self.fault.valid & self.fault.ready):
            m.d.sync += self.fault.valid.eq(0)

        live = ~stale & self.pending.bit_select(cur, 1)

        with m.FSM(name="prefetch"):
            with m.State("IDLE"):
                with m.If(self.need.any()):
                    m.d.sync += [cur.eq(pick), stale.eq(0)]
                    m.next = "RING"
            with m.State("RING"):
                m.d.sync += [base.eq(ring.base), head.eq(ring.head), pasid.eq(ring.pasid)]
                m.next = "ADDR"
            with m.State("ADDR"):
                # The ring entry's address (base + 64 x head may pass 2**64:
                # a fault) goes into the tracker client's register.
                m.d.comb += [xc.start.eq(1), xc.addr.eq((base + head) << 6), xc.write.eq(0)]
                m.next = "XLATE"
            with m.State("XLATE"):
                with m.If(xc.done & xc.fault):
                    m.next = "FAULT"
                with m.Elif(xc.done):
                    m.d.sync += host.eq(xc.host)
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += rd.cmd.valid.eq(1)
                with m.If(rd.cmd.ready):
                    m.d.sync += word.eq(0)
                    m.next = "STORE"
            with m.State("STORE"):
                m.d.comb += self.slot_we.eq(rd.data.valid)
                with m.If(rd.data.valid):
                    m.d.sync += word.eq(word + 1)
                    with m.If(word == 0):
                        m.d.sync += opcode.eq(rd.data.payload[56:64])
                    with m.If(word == 4):
                        m.d.sync += size.eq(rd.data.payload[:32])
                    with m.If(word == DESC_WORDS - 1):
                        # Every R beat of the fetch has been seen: `rd.error` is final.
                        m.next = "CHECK_READ"
            with m.State("CHECK_READ"):
                with m.If(rd.error):
                    m.next = "FAULT"
                with m.Else():
                    m.d.comb += [est.start.eq(1), est.opcode.eq(opcode), est.size.eq(size)]
                    m.next = "COST_WAIT"
            with m.State("COST_WAIT"):
                with m.If(est.done):
                    m.d.sync += [self.fill.valid.eq(live), self.fill.payload.adi.eq(cur),
                                 self.fill.payload.cost.eq(est.cost),
                                 self.fill.payload.wait.eq(opcode == Opcode.WAIT.value)]
                    m.next = "FILLED"
            with m.State("FILLED"):
                # The dispatcher marks the slot valid with the fill beat; `need`
                # drops for this ADI from the next cycle.
                m.next = "IDLE"
            with m.State("FAULT"):
                with m.If(live):
                    m.d.sync += [self.fault.valid.eq(1), self.fault.payload.adi.eq(cur),
                                 self.fault.payload.code.eq(AdiError.FETCH_FAULT)]
                    m.next = "FAULT_WAIT"
                with m.Else():
                    m.next = "IDLE"
            with m.State("FAULT_WAIT"):
                # Until the beat has been taken; the ADI block acts on it in the
                # cycle it is taken, and `pending` falls in the next.
                with m.If(~self.fault.valid):
                    m.next = "IDLE"
        return m
