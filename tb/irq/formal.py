"""Formal harnesses of the interrupt remapping unit, proven by k-induction.

Each harness wraps an :class:`~siov.rtl.irq.remapper.InterruptRemapper` with a
16-entry table. Every input is free (the register bus, the message stream and
both ``ready`` lines); the only assumptions are the register-bus protocol
(one request at a time, request held until ``ack``) and no reset after the
start. Properties:

A message is decided the cycle after its acceptance (it sees the IMS table
as the writes committed up to its acceptance cycle left it); the probe reports
the decision ``EFFECT_DELAY`` (3) cycles later, from the effect stage.

``isolation``
    A message from ``msg_in`` delivered through entry ``sel`` (a free input
    held constant) carries the PASID of that entry whenever the entry has
    PASID_EN set. The entry is a shadow copy kept by the harness from the
    register-bus writes as they commit (``ack``), so the property also checks
    the write path, the ordering of writes against acceptance and the
    decision: "the table as software wrote it", not the pipeline's own copy.
``outcome``
    Every accepted interrupt message (and every replay) is reported decided
    exactly ``LATENCY`` (4) cycles later and has exactly one effect:
    delivered (on ``irq_out`` or into its queue) or made pending in that
    cycle, or a fault (queued or counted as overflow) two cycles later; DMA
    messages are pushed to ``dma_out`` three cycles before their report; a
    push never meets a full queue (nothing is dropped); nothing happens
    without a decision.

Run with ``python -m siov.tb.irq.formal`` or ``pytest -m formal``.
"""

import sys
import time

from amaranth.hdl import Cat, Module, ResetSignal, Signal
from amaranth.hdl import Assert, Assume
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from siov.rtl import regmap
from siov.rtl.csr.bus import CsrSignature, Resp
from siov.rtl.dma.defs import PASID_BITS
from siov.rtl.irq.pipeline import EFFECT_DELAY, LATENCY
from siov.rtl.irq.remapper import (CSR_ADDR_WIDTH, DMA_DEPTH, HANDLE_WIDTH, IRQ_DEPTH, Decision,
                                   InterruptRemapper, IrqLayout, MessageLayout)
from siov.tb.formal import prove

__all__ = ["IrqHarness", "PROPERTIES", "DEPTH", "run"]

ENTRIES = 16
PROPERTIES = ("isolation", "outcome")


class IrqHarness(wiring.Component):
    """Free inputs around the IRU plus the assertions of one property.

    Parameters
    ----------
    prop : str
        ``"isolation"`` or ``"outcome"``.
    """

    def __init__(self, prop):
        if prop not in PROPERTIES:
            raise ValueError(f"Property must be one of {', '.join(PROPERTIES)}, not {prop!r}")
        self.prop = prop
        super().__init__({
            "csr": In(CsrSignature(CSR_ADDR_WIDTH)),
            "msg_in": In(stream.Signature(MessageLayout)),
            "irq_out": Out(stream.Signature(IrqLayout)),
            "dma_out": Out(stream.Signature(MessageLayout)),
            "sel": In(4),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = InterruptRemapper(entries=ENTRIES, fault_depth=4, replay_depth=2,
                                                   peek=True)
        wiring.connect(m, wiring.flipped(self.csr), dut.csr)
        wiring.connect(m, wiring.flipped(self.msg_in), dut.msg_in)
        wiring.connect(m, wiring.flipped(self.irq_out), dut.irq_out)
        wiring.connect(m, wiring.flipped(self.dma_out), dut.dma_out)
        csr, p = self.csr, dut.probe

        m.d.comb += Assume(~ResetSignal())

        # Register-bus protocol: one request at a time, held stable until ack.
        outstanding = Signal()
        lat = Signal(CSR_ADDR_WIDTH + 1 + 32 + 4)
        req = Cat(csr.addr, csr.we, csr.wdata, csr.wstrb)
        with m.If(csr.ack):
            m.d.sync += outstanding.eq(0)
        with m.If(csr.stb):
            m.d.sync += [outstanding.eq(1), lat.eq(req)]
        # A requester issues after the previous ack, never in its cycle (AxiLiteToCsr does).
        m.d.comb += Assume(~(csr.stb & (outstanding | csr.ack)))
        with m.If(outstanding):
            m.d.comb += Assume(req == lat)
        # The IMS side answers only the request in flight.
        ims_window = (regmap.IRQ_IMS_BASE - regmap.IRQ_BASE) >> 15
        m.d.comb += Assert(~p.ims_busy | (outstanding & (lat[15] == ims_window)))
        # ... and so does the fault queue's lost window (the fault queue's flags agree too).
        lost = regmap.EXTERNALS["IRQ.FAULT_LOST"]
        lost_bits = (lost.size - 1).bit_length()
        in_lost = lat[lost_bits:CSR_ADDR_WIDTH] == (lost.offset - regmap.IRQ_BASE) >> lost_bits
        m.d.comb += Assert(~dut.fault_observe()["lost_busy"] | (outstanding & in_lost))
        m.d.comb += [Assert(c) for c in dut.invariants()]
        self.outstanding = outstanding

        # The message accepted LATENCY cycles ago, as seen on the port (hist[k]: k + 1 cycles ago).
        accept = self.msg_in.valid & self.msg_in.ready
        pl = self.msg_in.payload
        hist = []
        last = (accept, p.replay_take, pl.is_irq, pl.pasid, pl.handle)
        for k in range(LATENCY):
            h = (Signal(name=f"h{k}_valid"), Signal(name=f"h{k}_replay"), Signal(name=f"h{k}_irq"),
                 Signal(PASID_BITS, name=f"h{k}_pasid"), Signal(HANDLE_WIDTH, name=f"h{k}_handle"))
            m.d.sync += [h[0].eq(last[0]), h[1].eq(last[1])]
            payload = [h[2].eq(last[2]), h[3].eq(last[3]), h[4].eq(last[4])]
            if k == 0:
                with m.If(accept):          # the port's payload is held while nothing is accepted
                    m.d.sync += payload
            else:
                m.d.sync += payload
            hist.append(h)
            last = h
        h_valid, h_replay, h_irq, h_pasid, h_handle = hist[-1]
        # Interrupts (and replays) in the stages between acceptance and report.
        self.in_flight_irq = sum(((v & irq) | rp) for v, rp, irq, _, _ in hist[:-1])
        # Reported exactly LATENCY cycles after acceptance, in order, for what was accepted.
        m.d.comb += [
            Assert(~(accept & p.replay_take)),
            Assert((p.dec_valid & ~p.dec_replay) == h_valid),
            Assert((p.dec_valid & p.dec_replay) == h_replay),
        ]
        with m.If(h_valid):
            m.d.comb += [
                Assert(p.dec_handle == h_handle),
                Assert(p.dec_pasid == h_pasid),
                Assert((p.dec_kind == Decision.DMA) == ~h_irq),
            ]

        if self.prop == "isolation":
            self._isolation(m, dut, h_valid, h_pasid, h_handle)
        else:
            self._outcome(m, dut)
        return m

    def _isolation(self, m, dut, h_valid, h_pasid, h_handle):
        csr, p, sel = self.csr, dut.probe, self.sel
        sel_q = Signal(4)
        m.d.sync += sel_q.eq(sel)
        started = Signal()
        m.d.sync += started.eq(1)
        with m.If(started):
            m.d.comb += Assume(sel == sel_q)

        # Shadow of entry `sel`, updated by writes as they commit; `shadow_next`
        # includes the write committing now, `shadow_q` is the shadow EFFECT_DELAY cycles ago.
        shadow = Signal(128, reset_less=True)
        shadow_next = Signal(128)
        ims_local = regmap.IRQ_IMS_BASE - regmap.IRQ_BASE
        entry_hit = csr.addr[4:] == ((ims_local >> 4) | sel)
        commit = self.outstanding & csr.ack & csr.we & entry_hit & (csr.resp == Resp.OKAY)
        bytemask = Cat(*(b.replicate(8) for b in csr.wstrb))
        word = csr.addr[2:4]
        old = shadow.word_select(word, 32)
        new = Signal(32)
        m.d.comb += new.eq((old & ~bytemask) | (csr.wdata & bytemask))
        m.d.comb += shadow_next.eq(shadow)
        with m.If(commit):
            with m.Switch(word):
                for w in range(4):
                    with m.Case(w):
                        if w == 3:
                            m.d.comb += shadow_next[96:128].eq(new & 0xFFFF_FFFD)
                        else:
                            m.d.comb += shadow_next[32 * w:32 * w + 32].eq(new)
        m.d.sync += shadow.eq(shadow_next)
        for k in range(EFFECT_DELAY):
            older = Signal(128, reset_less=True, name=f"shadow_q{k}")
            m.d.sync += older.eq(shadow if k == 0 else shadow_q)
            shadow_q = older
        # The table is written the cycle before the commit; the flags stored
        # with words 0 and 1 are what the pipeline checks for "present".
        m.d.comb += [
            dut.peek_addr.eq(sel), Assert(dut.peek_data == shadow_next),
            Assert(dut.peek_flags[0] == (dut.peek_data[20:32] == 0xFEE)),
            Assert(dut.peek_flags[1] == dut.peek_data[32:64].any()),
        ]

        # A decision reported now was taken EFFECT_DELAY cycles ago, against the shadow as it stood then.
        ctrl = shadow_q[32 * regmap.IRQ_IMS_ENTRY_MASK_WORD:][:32]
        pasid = ctrl[regmap.IRQ_IMS_ENTRY_PASID_LSB:][:regmap.IRQ_IMS_ENTRY_PASID_WIDTH]
        delivered = h_valid & p.dec_valid & (p.dec_kind == Decision.DELIVER)
        with m.If(delivered & (h_handle == sel)):
            m.d.comb += [
                Assert(~ctrl[regmap.IRQ_IMS_ENTRY_PASID_EN_LSB] | (h_pasid == pasid)),
                Assert(shadow_q[32:64] == 0),
                Assert(shadow_q[20:32] == 0xFEE),
                Assert(~ctrl[regmap.IRQ_IMS_ENTRY_MASK_LSB]),
            ]

    def _outcome(self, m, dut):
        p = dut.probe
        kind = p.dec_kind
        is_dma = p.dec_valid & (kind == Decision.DMA)
        is_irq = p.dec_valid & (kind != Decision.DMA)
        # DMA: pushed EFFECT_DELAY cycles before its report. Interrupts: delivered or
        # made pending in the cycle of the report, or a fault the fault queue's stages later.
        d_dma = p.eff_dma
        for k in range(EFFECT_DELAY):
            later = Signal(name=f"d_dma{k}")
            m.d.sync += later.eq(d_dma)
            d_dma = later
        d_fault = is_irq & (kind == Decision.FAULT)
        for k in range(dut.fault_stages):
            later = Signal(name=f"d_fault{k}")
            m.d.sync += later.eq(d_fault)
            d_fault = later
        fault = p.eff_fault | p.eff_lost
        m.d.comb += [
            Assert(d_dma == is_dma),
            Assert(p.eff_irq == (is_irq & (kind == Decision.DELIVER))),
            Assert(p.eff_pend == (is_irq & (kind == Decision.PEND))),
            Assert(fault == d_fault),
            Assert(~(p.eff_fault & p.eff_lost)),
            Assert(~(p.eff_irq & p.irq_full)),                # never dropped
            Assert(~(p.eff_dma & p.dma_full)),
            # Credit invariants behind it: queue + messages in flight towards it fit.
            Assert(p.irq_level + self.in_flight_irq + is_irq <= IRQ_DEPTH),
            Assert(p.dma_level + p.eff_dma <= DMA_DEPTH),
        ]


#: Induction length per property (``isolation`` spans a whole IMS window access).
DEPTH = {"isolation": 10, "outcome": 6}


def run(props=PROPERTIES, depth=None):
    """Prove each property; return ``{name: (FormalResult, seconds)}``."""
    out = {}
    for prop in props:
        t0 = time.monotonic()
        res = prove(IrqHarness(prop), f"irq_{prop}", depth=depth or DEPTH[prop])
        out[prop] = (res, time.monotonic() - t0)
    return out


if __name__ == "__main__":
    ok = True
    for prop, (res, secs) in run(sys.argv[1:] or PROPERTIES).items():
        print(f"{res.summary()}  [{secs:.1f} s]")
        ok &= res.passed
    sys.exit(0 if ok else 1)
