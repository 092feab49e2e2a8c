"""System regression of the integrated Device: every block through the one AXI4-Lite port.

The block testbenches (tb/irq, tb/dma) drive each block behind its own
bridge; this one checks the composition: the top-level decoder forwards each
block's window (IRQ at 0x10000, DMA at 0x20000) with local addresses, answers
holes correctly, and the blocks' streams work through the Device's ports;
the ADI block answers CMD at 0x30000 and the per-ADI doorbell pages at 0x80000.
The oracle is the Device-level model: :class:`~siov.sw.model.csr.CsrModel`
with the blocks' models (:class:`~siov.sw.model.irq.IrqModel`,
:class:`~siov.sw.model.dma.DmaModel`) in its windows.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from siov.rtl import regmap
from siov.rtl.csr.bus import Resp
from siov.rtl.dma.defs import GUEST_MAP, RangeOp, guest_word
from siov.rtl.dma.tracker import OUT_LAYOUT, REQ_LAYOUT
from siov.rtl.irq.remapper import IrqLayout, MessageLayout
from siov.rtl.params import DeviceParams
from siov.sw.model.adi import ENABLED, PAGE_HEAD, PAGE_STATE, AdiModel, page_address
from siov.sw.model.csr import CsrModel
from siov.sw.model.dma import DmaModel
from siov.sw.model.irq import IrqModel, Message, ims_ctrl, msi_address
from siov.tb.coverage import Coverage
from siov.tb.reset import reset_dut
from siov.tb.layouts import pack, unpack

TIMEOUT_NS = 50_000

COVERAGE = Coverage("device", [
    "global_window", "irq_window", "dma_window", "hole_in_irq_window", "hole_in_dma_window",
    "ims_beyond_table", "irq_delivered", "irq_faulted", "dma_allowed", "dma_blocked",
    "adi_doorbell", "adi_consume", "adi_page_beyond",
])


class DeviceTB:
    def __init__(self, dut):
        self.dut = dut
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.params = DeviceParams(**json.loads(os.environ.get("SIOV_PARAMS", "{}")))
        self.model = CsrModel(self.params)
        self.irq = IrqModel(entries=self.params.ims_entries)
        self.dma = DmaModel(self.params)
        self.adi = AdiModel(self.params)
        self.model.windows = {"IRQ": self.irq, "DMA": self.dma, "CMD": self.adi, "ADI_PAGES": self.adi}
        Clock(dut.clk, 10, unit="ns").start()
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr", bus_separator="__"), dut.clk, dut.rst)

    async def reset(self):
        await reset_dut(self.dut, {"irq_in__valid": 0, "dma_req__valid": 0, "irq_out__ready": 1,
                                   "irq_dma__ready": 1, "dma_out__ready": 1, "consume__valid": 0})

    async def read(self, addr):
        r = await with_timeout(self.axil.read(addr, 4), TIMEOUT_NS, "ns")
        return Resp(int(r.resp)), int.from_bytes(r.data, "little")

    async def write(self, addr, value):
        r = await with_timeout(self.axil.write(addr, value.to_bytes(4, "little")), TIMEOUT_NS, "ns")
        return Resp(int(r.resp))

    async def mwrite(self, addr, value):
        """Write to the Device and the model; the responses must agree."""
        resp = await self.write(addr, value)
        exp = self.model.write(addr, value)
        assert resp == exp, f"write {addr:#07x}: {resp.name}, model {exp.name}"
        return resp

    async def mread(self, addr):
        """Read from the Device and the model; response and value must agree."""
        resp, value = await self.read(addr)
        exp_resp, exp_value = self.model.read(addr)
        assert resp == exp_resp, f"read {addr:#07x}: {resp.name}, model {exp_resp.name}"
        assert value == exp_value, f"read {addr:#07x}: {value:#010x}, model {exp_value:#010x}"
        return resp, value

    async def wait_dma_idle(self):
        for _ in range(10_000):
            _, status = await self.read(regmap.DMA_STATUS)
            if not status & regmap.DMA_STATUS_BUSY_MASK:
                return
        raise AssertionError("DMA range operation never finished")

    async def send(self, valid_sig, payload_sig, ready_sig, value):
        """Drive one stream beat and wait for its handshake."""
        d = self.dut
        await FallingEdge(d.clk)
        payload_sig.value = value
        valid_sig.value = 1
        for _ in range(1000):
            # READY is settled by mid-cycle and holds until the rising edge that takes the beat.
            taken = int(ready_sig.value)
            await FallingEdge(d.clk)
            if taken:
                break
        else:
            raise AssertionError("stream beat never accepted")
        valid_sig.value = 0

    async def collect(self, valid_sig, payload_sig, layout, cycles):
        """Beats seen on an output stream (its ready is held high) over ``cycles``."""
        beats = []
        for _ in range(cycles):
            await FallingEdge(self.dut.clk)
            if int(valid_sig.value):
                beats.append(unpack(layout, int(payload_sig.value)))
        return beats


@cocotb.test()
async def test_window_decode(dut):
    """Each block's registers and tables answer through the Device, holes included."""
    tb = DeviceTB(dut)
    await tb.reset()
    await tb.mread(regmap.GLOBAL_ID)
    COVERAGE.sample("global_window")
    for addr in (regmap.IRQ_FAULT_STATUS, regmap.IRQ_CNT_DELIVERED, regmap.IRQ_FAULT_REC0):
        await tb.mread(addr)
        COVERAGE.sample("irq_window")
    for addr in (regmap.DMA_STATUS, regmap.DMA_ADI_CUR, regmap.DMA_CNT_ALLOWED, regmap.DMA_FAULT_STATUS):
        await tb.mread(addr)
        COVERAGE.sample("dma_window")
    # Holes inside the block windows answer DECERR from the block itself.
    for addr in (regmap.IRQ_BASE + 0x40, regmap.IRQ_BASE + 0x7FFC):
        resp, _ = await tb.mread(addr)
        assert resp == Resp.DECERR
        COVERAGE.sample("hole_in_irq_window")
    for addr in (regmap.DMA_BASE + 0x90, regmap.DMA_BASE + 0xBFFC):
        resp, _ = await tb.mread(addr)
        assert resp == Resp.DECERR
        COVERAGE.sample("hole_in_dma_window")
    # IMS entries: random words in and beyond the built table.
    beyond = [i for i in (tb.params.ims_entries, tb.params.ims_entries + 5) if i < 2048]
    for n in range(40):
        idx = beyond[n] if n < len(beyond) else tb.rng.randrange(tb.params.ims_entries)
        addr = regmap.IRQ_IMS_BASE + 16 * idx + 4 * tb.rng.randrange(3)
        await tb.mwrite(addr, tb.rng.getrandbits(32))
        resp, _ = await tb.mread(addr)
        COVERAGE.sample("ims_beyond_table", resp == Resp.DECERR)
    # DMA staging registers (plain storage).
    for addr in (regmap.DMA_ADI_ENTRY, regmap.DMA_DOM_LIMIT, regmap.DMA_OP_START):
        await tb.mwrite(addr, tb.rng.getrandbits(32))
        await tb.mread(addr)


@cocotb.test()
async def test_interrupt_through_device(dut):
    """An IMS entry programmed over the Device's bus remaps a message on its irq_in port."""
    tb = DeviceTB(dut)
    await tb.reset()
    d = dut
    entries = []
    for _ in range(6):
        handle = tb.rng.randrange(tb.params.ims_entries)
        pasid, dest, vector = tb.rng.getrandbits(20), tb.rng.getrandbits(8), tb.rng.randrange(32, 256)
        base = regmap.IRQ_IMS_BASE + 16 * handle
        await tb.mwrite(base + 0, msi_address(dest))
        await tb.mwrite(base + 4, 0)
        await tb.mwrite(base + 8, vector)
        await tb.mwrite(base + 12, ims_ctrl(pasid=pasid))
        entries.append((handle, pasid))
    for handle, pasid in entries:
        for forged in (False, True):
            msg = Message(True, pasid ^ (1 if forged else 0), handle)
            expected = tb.irq.process(msg)
            collector = cocotb.start_soon(tb.collect(d.irq_out__valid, d.irq_out__payload, IrqLayout, 12))
            await tb.send(d.irq_in__valid, d.irq_in__payload, d.irq_in__ready,
                          pack(MessageLayout, is_irq=1, pasid=msg.pasid, handle=handle))
            beats = await collector
            if expected.kind == "deliver":
                assert [(b["dest"], b["vector"], b["pasid"]) for b in beats] == \
                    [(expected.dest, expected.vector, msg.pasid)], beats
                COVERAGE.sample("irq_delivered")
            else:
                assert expected.kind == "fault" and beats == [], (expected, beats)
                COVERAGE.sample("irq_faulted")
    for addr in (regmap.IRQ_FAULT_STATUS, regmap.IRQ_FAULT_REC0, regmap.IRQ_FAULT_REC1,
                 regmap.IRQ_CNT_DELIVERED, regmap.IRQ_CNT_FAULTED):
        await tb.mread(addr)


@cocotb.test()
async def test_dma_through_device(dut):
    """A page pinned and mapped over the Device's bus lets a dma_req through, translated."""
    tb = DeviceTB(dut)
    await tb.reset()
    d = dut
    adi, pasid, dom = 3, 0x1234, 1
    host_base = 0x8000_0000
    await tb.mwrite(regmap.DMA_ADI_SEL, adi)
    await tb.mwrite(regmap.DMA_ADI_ENTRY, pasid | dom << 20 | 1 << 31)
    await tb.mwrite(regmap.DMA_ADI_CMD, 1)
    await tb.mwrite(regmap.DMA_DOM_SEL, dom)
    await tb.mwrite(regmap.DMA_DOM_BASE_LO, host_base & 0xFFFF_F000)
    await tb.mwrite(regmap.DMA_DOM_BASE_HI, host_base >> 32)
    await tb.mwrite(regmap.DMA_DOM_LIMIT, 256)
    await tb.mwrite(regmap.DMA_DOM_CMD, 1)
    await tb.mwrite(regmap.DMA_OP_START, 16)
    await tb.mwrite(regmap.DMA_OP_COUNT, 8)
    await tb.mwrite(regmap.DMA_OP, int(RangeOp.PIN) | dom << 8 | 1 << 31)
    await tb.wait_dma_idle()
    for page in (16, 20):
        await tb.mwrite(regmap.DMA_GUEST_BASE + GUEST_MAP, guest_word(adi, page))
        await tb.mread(regmap.DMA_GUEST_STATUS)
    for page, write in ((16, True), (20, False), (17, True), (40, False)):
        expected = tb.dma.request(pasid, page, write)
        collector = cocotb.start_soon(tb.collect(d.dma_out__valid, d.dma_out__payload, OUT_LAYOUT, 12))
        await tb.send(d.dma_req__valid, d.dma_req__payload, d.dma_req__ready,
                      pack(REQ_LAYOUT, pasid=pasid, page=page, write=int(write)))
        beats = await collector
        if expected.allowed:
            assert [(b["addr"], b["write"]) for b in beats] == [(expected.addr, int(write))], beats
            assert expected.addr == host_base + page * 4096
            COVERAGE.sample("dma_allowed")
        else:
            assert beats == [], beats
            COVERAGE.sample("dma_blocked")
    for addr in (regmap.DMA_FAULT_STATUS, regmap.DMA_CNT_ALLOWED, regmap.DMA_CNT_BLOCKED, regmap.DMA_CNT_DIRTIED):
        await tb.mread(addr)


@cocotb.test()
async def test_adi_doorbell_through_device(dut):
    """An ADI configured over the CMD window is rung through its own page; consume drains it."""
    tb = DeviceTB(dut)
    await tb.reset()
    d = dut
    adi = tb.params.num_adis - 1
    await tb.mwrite(regmap.CMD_ADI_SEL, adi)
    await tb.mwrite(regmap.CMD_RING_BASE_LO, 0x4000_0040)
    await tb.mwrite(regmap.CMD_RING_BASE_HI, 0x1)
    await tb.mwrite(regmap.CMD_RING_SIZE, 8)
    await tb.mwrite(regmap.CMD_ADI_CFG, 0x1234 | 2 << 20)
    await tb.mwrite(regmap.CMD_ADI_CMD, regmap.CMD_ADI_CMD_ENABLE_MASK)
    await tb.mread(regmap.CMD_ADI_STATUS)
    assert tb.adi.adis[adi].state == ENABLED
    await tb.mwrite(page_address(adi), 3)
    COVERAGE.sample("adi_doorbell")
    await ClockCycles(d.clk, 2)
    assert int(d.pending.value) == tb.adi.pending() == 1 << adi
    for _ in range(3):
        await tb.send(d.consume__valid, d.consume__payload, d.consume__ready, adi)
        assert tb.adi.consume(adi)
        COVERAGE.sample("adi_consume")
    await ClockCycles(d.clk, 2)
    assert int(d.pending.value) == tb.adi.pending() == 0
    for addr in (page_address(adi), page_address(adi, PAGE_HEAD), page_address(adi, PAGE_STATE),
                 regmap.CMD_ADI_PTRS, regmap.CMD_DROPPED_DOORBELLS):
        await tb.mread(addr)
    # Beyond the built ADIs, and past the CMD window: DECERR.
    resp, _ = await tb.mread(page_address(tb.params.num_adis))
    assert resp == Resp.DECERR
    COVERAGE.sample("adi_page_beyond")
    resp, _ = await tb.mread(regmap.CMD_BASE + regmap.CMD_SIZE)
    assert resp == Resp.DECERR
    # A doorbell beyond the ring errors the ADI.
    await tb.mwrite(page_address(adi), 8)
    await tb.mread(regmap.CMD_ADI_STATUS)


@cocotb.test()
async def test_zzz_coverage(dut):
    """Runs last: every coverage bin was hit."""
    dut._log.info("\n" + COVERAGE.report())
    COVERAGE.check()
