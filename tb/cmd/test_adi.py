"""cocotb regression of the ADI register block (top ``siov_adi``).

Random CMD register traffic (configure/enable with good and bad ring sizes,
DRAIN/ABORT/RESET_ERROR, ADI_SEL beyond NUM_ADIS, holes and read-only
registers), doorbells (tails in and beyond the ring, to disabled, draining and
errored ADIs, partial strobes), page reads and writes at unmapped
offsets, in pages beyond NUM_ADIS and at the read-only HEAD/STATE, and
random fetcher ``consume`` beats, interleaved. Every response and read value,
and the ``pending`` output after every step, is compared with
:class:`siov.sw.model.adi.AdiModel`. ``test_random`` issues accesses one at a
time, so the model sees them in the hardware's order. ``test_concurrent``
runs one owner per ADI at once: the register bus, the page bus and the
consume port are busy in the same cycles, each owner on its own ADI (the
shared ADI_SEL and consume port taken under a lock), so the model's per-ADI
state does not depend on how the owners interleave; each owner checks its
ADI's pending bit after each of its steps, and the whole state is compared at
the end.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, Lock
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from siov.rtl import regmap
from siov.rtl.cmd.adi import AdiError
from siov.rtl.csr.bus import Resp
from siov.rtl.params import DeviceParams
from siov.sw.model.adi import (DISABLED, DRAINING, ENABLED, ERROR, PAGE_HEAD, PAGE_STATE, PAGE_TAIL,
                               AdiModel, page_address, ring_size_ok)
from siov.tb.axi import apply_axil_pauses, axil_read, axil_write
from siov.tb.coverage import Coverage
from siov.tb.reset import reset_dut

TIMEOUT_NS = 20_000
STEPS = int(os.environ.get("SIOV_ADI_STEPS", "1500"))
ENABLE, DRAIN, ABORT, RESET_ERROR, LOAD = 1, 2, 4, 8, 16
STATE_NAMES = {DISABLED: "disabled", ENABLED: "enabled", DRAINING: "draining", ERROR: "error"}

COVERAGE = Coverage("adi", [
    "enable_ok", "enable_bad_config", "enable_ignored", "drain", "drain_completed", "abort",
    "reset_error", "cmd_beyond_num_adis", "multi_command",
    "doorbell_accepted", "doorbell_beyond_ring", "doorbell_dropped_disabled",
    "doorbell_dropped_draining", "doorbell_dropped_error", "doorbell_partial_strobe",
    "page_read_ok", "page_ro_slverr", "page_offset_decerr", "page_beyond_decerr",
    "cmd_read_ok", "cmd_hole_decerr", "cmd_ro_slverr",
    "consume_applied", "consume_ignored", "ring_wrap", "pending_multiple",
    "drain_waits_busy", "engine_fault_error", "engine_fault_ignored",
    "concurrent_buses_busy", "concurrent_consume_with_access",
    "restore_enable_resumed", "restore_bad_pointers", "restore_load", "restore_load_ignored",
])


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.params = DeviceParams(**json.loads(os.environ.get("SIOV_PARAMS", "{}")))
        self.n = self.params.num_adis
        self.model = AdiModel(self.params)
        Clock(dut.clk, 10, unit="ns").start()
        self.csr = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr", bus_separator="__"), dut.clk, dut.rst)
        self.pages = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "pages", bus_separator="__"), dut.clk, dut.rst)

    async def reset(self):
        await reset_dut(self.dut, {"consume__valid": 0, "consume__payload": 0, "busy": 0,
                                   "fault__valid": 0, "fault__payload": 0})

    def _port(self, addr):
        if addr >= regmap.ADI_PAGES_BASE:
            return self.pages, addr - regmap.ADI_PAGES_BASE
        return self.csr, addr - regmap.CMD_BASE

    async def read(self, addr, mask=None):
        port, local = self._port(addr)
        resp, value = await axil_read(port, local, timeout_ns=TIMEOUT_NS)
        exp_resp, exp_value = self.model.read(addr)
        assert resp == exp_resp, f"read {addr:#x}: {resp.name}, model {exp_resp.name}"
        assert value == exp_value, f"read {addr:#x}: {value:#x}, model {exp_value:#x}"
        await self.check_pending(mask)
        return resp, value

    async def write(self, addr, data, strb=0xF, mask=None):
        port, local = self._port(addr)
        # cocotbext-axi cannot issue a write with no strobes (it sends nothing),
        # so WSTRB=0 is covered by the model's unit tests only.
        resp = await axil_write(port, local, data, strb, timeout_ns=TIMEOUT_NS)
        exp = self.model.write(addr, data, strb)
        assert resp == exp, f"write {addr:#x} strb {strb:#x}: {resp.name}, model {exp.name}"
        await self.check_pending(mask)
        return resp

    async def check_pending(self, mask=None):
        """The ``pending`` output against the model: every bit, or those of
        ``mask`` (an owner's own ADI while others run)."""
        # A DRAINING ADI reaching HEAD == TAIL goes DISABLED one cycle later; let it settle.
        await ClockCycles(self.dut.clk, 2)
        got, exp = int(self.dut.pending.value), self.model.pending()
        if mask is not None:
            got, exp = got & mask, exp & mask
        assert got == exp, f"pending {got:#x}, model {exp:#x}"
        COVERAGE.sample("pending_multiple", bin(got).count("1") > 1)

    async def consume(self, adi):
        await self.consume_raw(adi)
        a = self.model.adis[adi] if adi < self.n else None
        draining = a is not None and a.state == DRAINING
        wrap = a is not None and a.pending and a.head == a.size - 1
        applied = self.model.consume(adi)
        COVERAGE.sample("consume_applied" if applied else "consume_ignored")
        COVERAGE.sample("ring_wrap", applied and wrap)
        COVERAGE.sample("drain_completed", draining and a.state == DISABLED)
        await self.check_pending()

    async def consume_raw(self, adi):
        """A consume beat the caller has already applied to the model."""
        d = self.dut
        await FallingEdge(d.clk)
        d.consume__payload.value = adi
        d.consume__valid.value = 1
        await FallingEdge(d.clk)
        d.consume__valid.value = 0

    async def fault(self, adi, code):
        """An engine fault beat {adi, code}, applied to the model as well."""
        d = self.dut
        await FallingEdge(d.clk)
        d.fault__payload.value = adi | int(code) << 6
        d.fault__valid.value = 1
        await FallingEdge(d.clk)
        d.fault__valid.value = 0
        self.model.fault(adi, int(code))

    # -- stimulus ---------------------------------------------------------------

    def pick_adi(self):
        r = self.rng.random()
        if r < 0.85:
            return self.rng.randrange(min(self.n, 4))
        if r < 0.95:
            return self.rng.randrange(self.n)
        return self.rng.randrange(self.n, 64) if self.n < 64 else self.rng.randrange(64)

    async def configure(self, adi, size=None, ptrs=None, load=False):
        """Stage a ring and enable it: a random configuration, or (``size`` given) a good one of that size.

        The engine binding is one the block has, except in 1 random configuration of 20
        (ENABLE then fails with BAD_RING_CONFIG, as for a bad size). ``ptrs`` (head, tail)
        stages a restore's pointers for a directed one, applied by ENABLE or (``load``) LOAD."""
        rng = self.rng
        engines = self.model.params.num_engines
        bad_engine = size is None and rng.random() < 0.05 and engines < 4
        engine = rng.randrange(engines, 4) if bad_engine else rng.randrange(engines)
        cfg = (rng.getrandbits(32) & ~regmap.CMD_ADI_CFG_ENGINE_MASK) | engine << regmap.CMD_ADI_CFG_ENGINE_LSB
        random_size = size is None
        if size is None:
            size = rng.choice([2, 4, 8, 16, 4096, 1 << rng.randrange(1, 13)] * 3 + [0, 1, 3, 12, 8192, 5000])
        await self.write(regmap.CMD_ADI_SEL, adi)
        await self.write(regmap.CMD_RING_BASE_LO, rng.getrandbits(32))
        await self.write(regmap.CMD_RING_BASE_HI, rng.getrandbits(32))
        await self.write(regmap.CMD_RING_SIZE, size)
        await self.write(regmap.CMD_ADI_CFG, cfg)
        # In a random configuration, 3 in 10 are a restore's ring: staged pointers,
        # mostly inside the ring, some beyond it, then ENABLE or LOAD; otherwise
        # zero, as every fresh driver leaves them.
        restore = (random_size and rng.random() < 0.3) or ptrs is not None
        head = tail = 0
        if ptrs is not None:
            head, tail = ptrs
        elif restore:
            span = size if 2 <= size < 4096 else 16
            head, tail = (rng.randrange(span) if rng.random() < 0.85 else rng.randrange(span, 4096)
                          for _ in range(2))
        await self.write(regmap.CMD_RING_PTRS, head << regmap.CMD_RING_PTRS_HEAD_LSB
                         | tail << regmap.CMD_RING_PTRS_TAIL_LSB)
        if ptrs is not None:
            load_now = load
        else:
            load_now = restore and rng.random() < 0.3
        await self.command(adi, LOAD if load_now else ENABLE)
        if restore:
            await self.write(regmap.CMD_RING_PTRS, 0)

    async def command(self, adi, bits):
        a = self.model.adis[adi] if adi < self.n else None
        before = a.state if a else None
        await self.write(regmap.CMD_ADI_SEL, adi)
        await self.write(regmap.CMD_ADI_CMD, bits)
        COVERAGE.sample("cmd_beyond_num_adis", a is None)
        COVERAGE.sample("multi_command", bin(bits).count("1") > 1)
        if a is None:
            return
        first = next((b for b in (RESET_ERROR, ABORT, DRAIN, ENABLE, LOAD) if bits & b), None)
        if first == LOAD:
            COVERAGE.sample("restore_load" if before == DISABLED else "restore_load_ignored")
        if first == ENABLE and before == DISABLED:
            COVERAGE.sample("restore_enable_resumed", a.state == ENABLED and a.head != a.tail)
            f = self.model._regs.field
            size = f("CMD.RING_SIZE.ENTRIES")
            ptrs_bad = ring_size_ok(size) and max(f("CMD.RING_PTRS.HEAD"), f("CMD.RING_PTRS.TAIL")) >= size
            COVERAGE.sample("restore_bad_pointers", ptrs_bad and a.state == ERROR)
        if first == ENABLE:
            if before != DISABLED:
                COVERAGE.sample("enable_ignored")
            else:
                COVERAGE.sample("enable_ok" if a.state == ENABLED else "enable_bad_config")
        COVERAGE.sample("drain", first == DRAIN and before == ENABLED)
        COVERAGE.sample("abort", first == ABORT and before in (ENABLED, DRAINING))
        COVERAGE.sample("reset_error", first == RESET_ERROR and before == ERROR)
        # Read the selected ADI back through ADI_STATUS / ADI_PTRS.
        await self.read(regmap.CMD_ADI_STATUS)
        await self.read(regmap.CMD_ADI_PTRS)

    async def doorbell(self, adi):
        rng = self.rng
        a = self.model.adis[adi] if adi < self.n else None
        size = a.size if a and a.size else 16
        r = rng.random()
        tail = rng.randrange(size) if r < 0.8 else rng.choice([size, size + 1, rng.getrandbits(32)])
        strb = rng.choice([0xF] * 12 + [0x1, 0x3, 0x2])
        state = a.state if a else None
        resp = await self.write(page_address(adi), tail, strb)
        if a is None:
            COVERAGE.sample("page_beyond_decerr", resp == Resp.DECERR)
            return
        COVERAGE.sample("doorbell_partial_strobe", strb not in (0, 0xF))
        if state == ENABLED:
            COVERAGE.sample("doorbell_accepted" if a.state == ENABLED else "doorbell_beyond_ring")
        else:
            COVERAGE.sample(f"doorbell_dropped_{STATE_NAMES[state]}")

    async def page_access(self, adi):
        rng = self.rng
        off = rng.choice([PAGE_TAIL, PAGE_HEAD, PAGE_STATE, 0xC, rng.randrange(0x10, 0x1000, 4)])
        if rng.random() < 0.6:
            resp, _ = await self.read(page_address(adi, off))
            write = False
        else:
            if off == PAGE_TAIL:
                return await self.doorbell(adi)
            resp = await self.write(page_address(adi, off), rng.getrandbits(32))
            write = True
        if adi >= self.n:
            COVERAGE.sample("page_beyond_decerr", resp == Resp.DECERR)
        elif resp == Resp.DECERR:
            COVERAGE.sample("page_offset_decerr")
        elif resp == Resp.SLVERR:
            COVERAGE.sample("page_ro_slverr")
        elif not write:
            COVERAGE.sample("page_read_ok")

    async def cmd_access(self):
        rng = self.rng
        addr = regmap.CMD_BASE + rng.randrange(0, regmap.CMD_SIZE, 4)
        if rng.random() < 0.7:
            resp, _ = await self.read(addr)
            COVERAGE.sample("cmd_read_ok" if resp == Resp.OKAY else "cmd_hole_decerr")
        elif addr not in (regmap.CMD_ADI_CMD, regmap.CMD_ADI_SEL):
            resp = await self.write(addr, rng.getrandbits(32))
            COVERAGE.sample("cmd_ro_slverr", resp == Resp.SLVERR)
            COVERAGE.sample("cmd_hole_decerr", resp == Resp.DECERR)


@cocotb.test()
async def test_directed(dut):
    """Enable, ring, consume with wrap, drain, tail beyond the ring and its reset."""
    tb = TB(dut)
    await tb.reset()
    await tb.configure(0, size=4)
    assert tb.model.adis[0].state == ENABLED
    await tb.write(page_address(0), 3)
    assert int(dut.pending.value) == 1
    for _ in range(3):
        await tb.consume(0)
    await tb.write(page_address(0), 1)
    await tb.consume(0)
    await tb.consume(0)      # wraps 3 -> 0, then 0 -> 1
    assert tb.model.adis[0].head == 1
    await tb.write(page_address(0), 3)
    await tb.command(0, DRAIN)
    assert tb.model.adis[0].state == DRAINING
    await tb.write(page_address(0), 0)   # dropped while draining
    assert tb.model.dropped == 1
    COVERAGE.sample("doorbell_dropped_draining")
    await tb.consume(0)
    await tb.consume(0)
    assert tb.model.adis[0].state == DISABLED
    await tb.configure(1, size=8)
    await tb.write(page_address(1), 9)
    assert tb.model.adis[1].state == ERROR
    await tb.read(regmap.CMD_DROPPED_DOORBELLS)
    await tb.command(1, RESET_ERROR)
    await tb.read(page_address(1, PAGE_STATE))
    await tb.configure(1, size=12)       # not a power of two
    assert tb.model.adis[1].state == ERROR
    await tb.command(1, RESET_ERROR | ENABLE)
    # A restore's staged pointers: inside the ring ENABLE resumes at them, beyond it
    # ENABLE refuses them (BAD_RING_CONFIG); LOAD copies them into a DISABLED ADI.
    await tb.configure(2, size=16, ptrs=(3, 7))
    assert (tb.model.adis[2].state, tb.model.adis[2].head, tb.model.adis[2].tail) == (ENABLED, 3, 7)
    await tb.configure(3, size=16, ptrs=(3, 20))
    assert tb.model.adis[3].state == ERROR
    await tb.command(3, RESET_ERROR)
    await tb.configure(4, size=16, ptrs=(5, 9), load=True)
    assert tb.model.adis[4].state == DISABLED


@cocotb.test()
async def test_engine_inputs(dut):
    """DRAIN completes only once the engine is no longer busy with the ADI; engine faults error an ADI."""
    tb = TB(dut)
    await tb.reset()
    await tb.configure(2, size=8)
    await tb.write(page_address(2), 1)
    dut.busy.value = 1 << 2                 # the engine runs ADI 2's descriptor...
    tb.model.consume(2, busy=True)
    await tb.consume_raw(2)
    await tb.command(2, DRAIN)
    await ClockCycles(dut.clk, 4)
    assert tb.model.adis[2].state == DRAINING
    await tb.read(regmap.CMD_ADI_STATUS)    # ...so the ADI stays DRAINING
    COVERAGE.sample("drain_waits_busy")
    dut.busy.value = 0
    tb.model.complete(2)
    await ClockCycles(dut.clk, 2)
    assert tb.model.adis[2].state == DISABLED
    await tb.read(regmap.CMD_ADI_STATUS)
    for adi, code in ((2, AdiError.FETCH_FAULT), (3, AdiError.DESC_PASID)):
        if adi == 3:
            await tb.configure(3, size=4)
        await tb.fault(adi, code)
        await tb.command(adi, 0)
        await tb.read(regmap.CMD_ADI_STATUS)
        COVERAGE.sample("engine_fault_error" if tb.model.adis[adi].state == ERROR else "engine_fault_ignored")
    await tb.command(3, RESET_ERROR)


@cocotb.test()
async def test_random(dut):
    """Random registers, doorbells, page accesses and consumes, every step checked."""
    tb = TB(dut)
    await tb.reset()
    apply_axil_pauses(tb.pages, {ch: "light" for ch in ("aw", "w", "b", "ar", "r")}, tb.rng)
    rng = tb.rng
    for _ in range(STEPS):
        r = rng.random()
        adi = tb.pick_adi()
        if r < 0.12:
            await tb.configure(adi)
        elif r < 0.22:
            await tb.command(adi, rng.choice([ENABLE, DRAIN, ABORT, RESET_ERROR, DRAIN, RESET_ERROR, LOAD,
                                             rng.randrange(32)]))
        elif r < 0.50:
            await tb.doorbell(adi)
        elif r < 0.62:
            await tb.page_access(adi)
        elif r < 0.70:
            await tb.cmd_access()
        else:
            pend = [i for i, a in enumerate(tb.model.adis) if a.pending]
            await tb.consume(rng.choice(pend) if pend and rng.random() < 0.85 else rng.randrange(64))
    for a in range(min(tb.n, 4)):
        await tb.write(regmap.CMD_ADI_SEL, a)
        await tb.read(regmap.CMD_ADI_STATUS)
        await tb.read(regmap.CMD_ADI_PTRS)
    await tb.read(regmap.CMD_DROPPED_DOORBELLS)


class Owner:
    """Drives one ADI while the owners of the others run: configure and
    command it (ADI_SEL and what follows under the register lock), ring its
    doorbell and read its page (the page bus, free), consume its descriptors
    (the consume port under its lock). Every step is checked against the
    model; the pending output only at the owner's bit."""

    def __init__(self, tb, adi, sel_lock, consume_lock, busy):
        self.tb, self.adi, self.mask = tb, adi, 1 << adi
        self.sel_lock, self.consume_lock, self.busy = sel_lock, consume_lock, busy
        self.rng = random.Random(tb.rng.getrandbits(32))

    async def selected(self, *steps):
        """Register accesses to this ADI through ADI_SEL, none of another
        owner's in between: ``steps`` of ("w", addr, data) or ("r", addr)."""
        tb = self.tb
        async with self.sel_lock:
            self.busy["csr"] += 1
            await tb.write(regmap.CMD_ADI_SEL, self.adi, mask=self.mask)
            for step in steps:
                if step[0] == "w":
                    await tb.write(step[1], step[2], mask=self.mask)
                else:
                    await tb.read(step[1], mask=self.mask)
            self.busy["csr"] -= 1

    async def step(self):
        tb, rng, adi, a = self.tb, self.rng, self.adi, self.tb.model.adis[self.adi]
        r = rng.random()
        if r < 0.08 or a.state == DISABLED and r < 0.3:
            size = rng.choice([2, 4, 8, 16, 64, 3])
            await self.selected(("w", regmap.CMD_RING_BASE_LO, rng.getrandbits(32)),
                                ("w", regmap.CMD_RING_SIZE, size), ("w", regmap.CMD_ADI_CMD, ENABLE),
                                ("r", regmap.CMD_ADI_STATUS))
        elif r < 0.16:
            bits = rng.choice([DRAIN, ABORT, RESET_ERROR, RESET_ERROR | ENABLE])
            await self.selected(("w", regmap.CMD_ADI_CMD, bits), ("r", regmap.CMD_ADI_STATUS),
                                ("r", regmap.CMD_ADI_PTRS))
        elif r < 0.55:
            size = a.size or 16
            tail = rng.randrange(size) if rng.random() < 0.95 else size
            self.busy["pages"] += 1
            await tb.write(page_address(adi), tail, mask=self.mask)
            self.busy["pages"] -= 1
        elif r < 0.65:
            self.busy["pages"] += 1
            await tb.read(page_address(adi, rng.choice([PAGE_TAIL, PAGE_HEAD, PAGE_STATE])), mask=self.mask)
            self.busy["pages"] -= 1
        elif a.pending:
            async with self.consume_lock:
                COVERAGE.sample("concurrent_consume_with_access", self.busy["csr"] + self.busy["pages"] > 0)
                await tb.consume_raw(adi)
                tb.model.consume(adi)
            await tb.check_pending(self.mask)

    async def run(self, steps):
        for _ in range(steps):
            await self.step()


@cocotb.test()
async def test_concurrent(dut):
    """One owner per ADI at once on the register bus, the page bus and the consume port."""
    tb = TB(dut)
    await tb.reset()
    apply_axil_pauses(tb.pages, {ch: "light" for ch in ("aw", "w", "b", "ar", "r")}, tb.rng)
    busy = {"csr": 0, "pages": 0}
    sel_lock, consume_lock = Lock("adi_sel"), Lock("consume")
    owners = [Owner(tb, adi, sel_lock, consume_lock, busy) for adi in range(min(tb.n, 6))]

    async def watch():
        while True:
            await ClockCycles(dut.clk, 1)
            COVERAGE.sample("concurrent_buses_busy", busy["csr"] > 0 and busy["pages"] > 0)

    watcher = cocotb.start_soon(watch())
    tasks = [cocotb.start_soon(o.run(max(1, STEPS // 8))) for o in owners]
    for t in tasks:
        await t
    watcher.cancel()
    # Quiet now: the whole state, through every register and the pending output.
    for adi in range(min(tb.n, 6)):
        await tb.write(regmap.CMD_ADI_SEL, adi)
        await tb.read(regmap.CMD_ADI_STATUS)
        await tb.read(regmap.CMD_ADI_PTRS)
        for off in (PAGE_TAIL, PAGE_HEAD, PAGE_STATE):
            await tb.read(page_address(adi, off))
    await tb.read(regmap.CMD_DROPPED_DOORBELLS)
    await tb.check_pending()


@cocotb.test()
async def test_zzz_coverage(dut):
    """Runs last: every coverage bin was hit."""
    dut._log.info("\n" + COVERAGE.report())
    COVERAGE.save(os.path.join(os.environ.get("SIOV_COVERAGE_DIR", "."), "adi.json"))
    COVERAGE.check()
