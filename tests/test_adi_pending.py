"""rtl/cmd/adi.py's ``pending``, every cycle, under events that meet in one cycle.

``pending`` is a register computed from the next values of each ADI's state,
HEAD and TAIL, so it must equal "ENABLED or DRAINING, and HEAD != TAIL" on
their current values in every cycle. The ADI testbench (tb/cmd/test_adi.py)
applies one event at a time; here consumes, doorbells, commands, engine
faults and busy bits arrive at random and often together, on 4 ADIs with
small rings, in Amaranth's simulator.
"""

import random

import pytest
from amaranth.sim import Simulator

from siov.rtl import regmap
from siov.rtl.cmd.adi import PAGE_HEAD, PAGE_STATE, PAGE_TAIL, AdiBlock, AdiState
from siov.rtl.params import DeviceParams

N = 4
ACTIVE = (AdiState.ENABLED, AdiState.DRAINING)


def _off(path):
    return regmap.REGISTERS[path].offset - regmap.CMD_BASE


# A second seed in make soak: each is a minute of Amaranth simulation.
@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_pending_matches_state_every_cycle(seed):
    dut = AdiBlock(DeviceParams(num_adis=N))
    rng = random.Random(seed)
    restore_rng = random.Random(seed + 1000)
    seen = {"pending_cycles": 0, "consume_and_tail_move": 0, "consume_applied": 0,
            "enable": 0, "enable_resumed": 0, "loaded": 0, "drained": 0, "tail_error": 0, "fault_error": 0}

    async def bench(ctx):
        csr_busy = pg_busy = False
        last = None
        for cyc in range(40000):
            # Register bus contract: a one-cycle strobe, one access in flight per port.
            stb = not csr_busy and rng.random() < 0.15
            ctx.set(dut.csr.stb, stb)
            if stb:
                # Mostly ENABLE (and RESET_ERROR), so that rings are often live.
                reg = rng.choice(["CMD.ADI_SEL", "CMD.RING_SIZE", "CMD.ADI_CMD", "CMD.ADI_CMD", "CMD.ADI_CFG"])
                command = rng.choices([regmap.CMD_ADI_CMD_ENABLE_MASK, regmap.CMD_ADI_CMD_RESET_ERROR_MASK,
                                       regmap.CMD_ADI_CMD_DRAIN_MASK, regmap.CMD_ADI_CMD_ABORT_MASK],
                                      weights=[10, 6, 1, 1])[0]
                # A restore's accesses, from a stream of their own (the others keep
                # their mix): staged pointers, zero half the time as a fresh
                # driver leaves them, and LOAD.
                if restore_rng.random() < 0.1:
                    reg = "CMD.RING_PTRS"
                if restore_rng.random() < 0.05:
                    command = regmap.CMD_ADI_CMD_LOAD_MASK
                ptrs = 0 if restore_rng.random() < 0.5 else (
                    restore_rng.randrange(5) << regmap.CMD_RING_PTRS_HEAD_LSB
                    | restore_rng.randrange(5) << regmap.CMD_RING_PTRS_TAIL_LSB)
                # ADI_CFG: random PASID and domain; the engine mostly one the block has
                # (an ENABLE with another is BAD_RING_CONFIG, like a bad size).
                engine = rng.choice([2, 3] if rng.random() < 0.05 else [0, 1])
                cfg = (rng.getrandbits(32) & ~regmap.CMD_ADI_CFG_ENGINE_MASK) | engine << regmap.CMD_ADI_CFG_ENGINE_LSB
                value = {"CMD.ADI_SEL": rng.randrange(N + 1), "CMD.RING_SIZE": rng.choice([4, 8, 8, 3]),
                         "CMD.ADI_CMD": command, "CMD.ADI_CFG": cfg, "CMD.RING_PTRS": ptrs}[reg]
                ctx.set(dut.csr.addr, _off(reg))
                ctx.set(dut.csr.we, 1)
                ctx.set(dut.csr.wdata, value)
                ctx.set(dut.csr.wstrb, 0xF)
                csr_busy = True
            pstb = not pg_busy and rng.random() < 0.4
            ctx.set(dut.pages.stb, pstb)
            if pstb:
                offset = rng.choice([PAGE_TAIL] * 4 + [PAGE_HEAD, PAGE_STATE])
                ctx.set(dut.pages.addr, rng.randrange(N + 1) << 12 | offset)
                ctx.set(dut.pages.we, rng.random() < 0.85)
                ctx.set(dut.pages.wdata, rng.randrange(9))
                ctx.set(dut.pages.wstrb, rng.choice([0xF, 0xF, 0x1]))
                pg_busy = True
            # Consumes mostly of pending ADIs (the fetcher's way), some of others.
            live = [i for i in range(N) if ctx.get(dut.pending) >> i & 1]
            cons_adi = rng.choice(live) if live and rng.random() < 0.8 else rng.randrange(N + 1)
            cons = rng.random() < 0.4
            ctx.set(dut.consume.valid, cons)
            ctx.set(dut.consume.payload.adi, cons_adi)
            flt, flt_adi = rng.random() < 0.02, rng.randrange(N)
            ctx.set(dut.fault.valid, flt)
            ctx.set(dut.fault.payload.adi, flt_adi)
            ctx.set(dut.fault.payload.code, 3)
            ctx.set(dut.busy, rng.getrandbits(N))
            before = [(ctx.get(dut._state[i]), ctx.get(dut._head[i]), ctx.get(dut._tail[i]),
                       ctx.get(dut.pending) >> i & 1) for i in range(N)]
            await ctx.tick()
            csr_busy &= not ctx.get(dut.csr.ack)
            pg_busy &= not ctx.get(dut.pages.ack)
            pending = ctx.get(dut.pending)
            for i in range(N):
                state, head, tail = ctx.get(dut._state[i]), ctx.get(dut._head[i]), ctx.get(dut._tail[i])
                want = state in ACTIVE and head != tail
                assert (pending >> i & 1) == want, (
                    f"cycle {cyc}, ADI {i}: pending {pending >> i & 1}, state {AdiState(state).name}, "
                    f"head {head}, tail {tail}")
                s0, h0, t0, p0 = before[i]
                applied = cons and cons_adi == i and p0
                # A consume of an ADI that is not pending never moves its HEAD
                # (a command may still set it: ABORT to TAIL, ENABLE and LOAD to
                # the staged HEAD, from a DISABLED state).
                if cons and cons_adi == i and not p0 and head != h0:
                    assert head == t0 and state != s0 or s0 == AdiState.DISABLED, (
                        f"cycle {cyc}: ignored consume moved ADI {i}'s head")
                seen["pending_cycles"] += want
                seen["consume_applied"] += bool(applied)
                seen["consume_and_tail_move"] += bool(applied and tail != t0)
                seen["enable"] += s0 == AdiState.DISABLED and state == AdiState.ENABLED
                seen["enable_resumed"] += s0 == AdiState.DISABLED and state == AdiState.ENABLED and want
                seen["loaded"] += s0 == AdiState.DISABLED and state == s0 and (head, tail) != (h0, t0)
                seen["drained"] += s0 == AdiState.DRAINING and state == AdiState.DISABLED
                seen["tail_error"] += s0 == AdiState.ENABLED and state == AdiState.ERROR
                seen["fault_error"] += flt and flt_adi == i and s0 in ACTIVE and state == AdiState.ERROR

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # Functional coverage: the events really met, and every path was taken.
    assert seen["consume_and_tail_move"] >= 20, seen
    assert all(n >= 5 for n in seen.values()), str(seen)
