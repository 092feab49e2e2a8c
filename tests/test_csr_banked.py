"""rtl/csr/banked.py's BankedRegisters in Amaranth's simulator, against a dict model.

Random register accesses (every byte-lane mask), reads of a read-only
register the block drives, writes to it (SLVERR, nothing changes), addresses
where nothing answers (DECERR: a gap inside the register span, above it,
outside every window) and accesses to an external window (forwarded with its
local address, answered by a stand-in device) must all answer as the model
says, a register six cycles after the strobe.
"""

import random

import pytest
from amaranth.sim import Simulator

from siov.rtl.csr.banked import BankedRegisters
from siov.rtl.csr.bus import Resp
from siov.rtl.csr.regdefs import External, Field, Register
from siov.tb.amsim import csr_access

BASE = 0x4000
# Twenty read-write registers over three banks of eight words, a gap at word
# 21, a read-only register at word 22, and a 64-byte window at 0x100.
RW = [Register(f"T.R{i}", BASE + 4 * i, (Field("V", 0, 32, "rw", "r", i * 0x0101),)) for i in range(20)]
RO = Register("T.STATUS", BASE + 4 * 22, (Field("V", 0, 32, "r", "w", None),))
WINDOW = External("T.WIN", BASE + 0x100, 0x40)
STATUS = 0x5A5A_1234


def _front():
    return BankedRegisters(RW + [RO], [WINDOW], addr_width=12, base=BASE, bank_words=8)


def _window_answer(addr, we, wdata):
    return (0xC0DE_0000 | addr) if not we else 0


def test_random_accesses_match_model():
    dut = _front()
    rng = random.Random(7)
    model = {r.offset - BASE: r.fields[0].reset for r in RW}
    seen = {"rw": 0, "ro_read": 0, "ro_write": 0, "decerr": 0, "window": 0, "partial": 0}
    window_log = []

    async def device(ctx):
        # The window's device: answers each strobe in the next cycle.
        port = dut.ext["t_win"]
        async for _clk, _rst, stb, addr, we, wdata in ctx.tick().sample(
                port.stb, port.addr, port.we, port.wdata):
            ctx.set(port.ack, 0)
            if stb:
                window_log.append((addr, we, wdata))
                ctx.set(port.ack, 1)
                ctx.set(port.rdata, _window_answer(addr, we, wdata))
                ctx.set(port.resp, Resp.OKAY)

    async def bench(ctx):
        ctx.set(dut.port("T.STATUS.V"), STATUS)
        for _ in range(600):
            kind = rng.choice(["rw", "rw", "rw", "ro_read", "ro_write", "gap", "above", "window"])
            we = rng.random() < 0.5
            wdata = rng.getrandbits(32)
            wstrb = rng.choice([0xF, 0xF, rng.getrandbits(4)])
            if kind == "rw":
                off = 4 * rng.randrange(20)
            elif kind in ("ro_read", "ro_write"):
                off, we = 4 * 22, kind == "ro_write"
            elif kind == "gap":
                off = 4 * 21
            elif kind == "above":
                off = rng.choice([0x80, 0x0F0, 0x140, 0xFFC])
            else:
                off = 0x100 + 4 * rng.randrange(16)
            cycles, resp, rdata = await csr_access(ctx, dut.csr, off, we=we, wdata=wdata, wstrb=wstrb)
            await ctx.tick()
            assert not ctx.get(dut.csr.ack), "the ack is one cycle long"
            if kind == "rw":
                assert (cycles, resp) == (6, Resp.OKAY)
                if we:
                    mask = sum(0xFF << (8 * b) for b in range(4) if wstrb >> b & 1)
                    model[off] = (model[off] & ~mask) | (wdata & mask)
                    seen["partial"] += wstrb != 0xF
                else:
                    assert rdata == model[off], f"read {rdata:#x} at {off:#x}, expected {model[off]:#x}"
                seen["rw"] += 1
            elif kind == "ro_read":
                assert (cycles, resp, rdata) == (6, Resp.OKAY, STATUS)
                seen["ro_read"] += 1
            elif kind == "ro_write":
                assert (resp, rdata) == (Resp.SLVERR, 0)
                seen["ro_write"] += 1
            elif kind in ("gap", "above"):
                assert (resp, rdata) == (Resp.DECERR, 0), f"{off:#x}"
                seen["decerr"] += 1
            else:
                local = off - 0x100
                assert window_log and window_log[-1] == (local, we, wdata if we else window_log[-1][2])
                assert resp == Resp.OKAY and rdata == _window_answer(local, we, wdata)
                seen["window"] += 1
        # Every register still holds what the model says.
        for off, value in model.items():
            assert ctx.get(dut.port(f"T.R{off // 4}.V")) == value

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_process(device)
    sim.add_testbench(bench)
    sim.run()
    # Functional coverage: every kind of access, and partial writes.
    assert all(n > 10 for n in seen.values()), seen
    # The window saw its own accesses and no other.
    assert len(window_log) == seen["window"]


def test_rejects_window_inside_register_span():
    # The banks decode addresses below twice the register span: a window there
    # would be answered by both.
    with pytest.raises(ValueError, match="overlaps the register span"):
        BankedRegisters(RW, [External("T.LOW", BASE + 0x80, 0x40)], addr_width=12, base=BASE)


def test_rejects_no_registers():
    with pytest.raises(ValueError, match="at least one register"):
        BankedRegisters([], [WINDOW], addr_width=12, base=BASE)
