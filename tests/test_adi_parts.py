"""The ADI block's parts in Amaranth's simulator, each on its own, against Python models.

* AdiCommands (rtl/cmd/adi_command.py): random CMD.ADI_CMD bits, ADI_SEL and
  staged registers; the command acting is the written bit of highest priority
  in the same cycle, and ADI_SEL's one-hot, the ENABLE check of the staged
  ring (size a power of two in 2..4096, engine of the Device, pointers below
  the size) and "the staged pointers differ" follow one cycle later.
* AdiSlot (rtl/cmd/adi_slot.py): one ADI under random consumes, doorbells,
  busy bits, engine faults and commands that meet in one cycle; its state,
  error, pointers, configuration and ``pending`` equal a model of the
  transitions of rtl/cmd/adi.py every cycle.
* AdiPages (rtl/cmd/adi_pages.py): random page reads and writes of random
  ADIs' TAIL, HEAD, STATE and other offsets while the ADIs' registers change
  under it; each TAIL write leaves as a doorbell one cycle after its strobe,
  each access answers two cycles after it with the model's response and
  word, and doorbells to ADIs that are not ENABLED are counted.
"""

import gc
import random
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable

from siov.rtl.cmd.adi_command import WRITTEN_LAYOUT, AdiCommands
from siov.rtl.cmd.adi_layouts import (DOORBELL_LAYOUT, MAX_RING_ENTRIES, PAGE_HEAD, PAGE_STATE, PAGE_TAIL,
                                      RING_LAYOUT, STAGED_LAYOUT, AdiCommand)
from siov.rtl.cmd.adi_pages import AdiPages
from siov.rtl.cmd.adi_slot import AdiSlot
from siov.rtl.csr.bus import Resp
from siov.rtl.regmap import AdiError, AdiState
from siov.tb.amsim import setter, simulate
from siov.tb.layouts import pack, pack_array, unpack

ACTIVE = (AdiState.ENABLED, AdiState.DRAINING)
#: CMD.ADI_CMD bits by priority, and the command each one is.
PRIORITY = [("reset_error", AdiCommand.RESET_ERROR), ("abort", AdiCommand.ABORT), ("drain", AdiCommand.DRAIN),
            ("enable", AdiCommand.ENABLE), ("load", AdiCommand.LOAD)]


def _staged(rng, sizes=(2, 4, 8, 16), bad=0.2):
    """Staged registers: mostly a good ring, sometimes (``bad``) a bad size or pointers beyond it."""
    size = rng.choice(sizes) if rng.random() >= bad else rng.choice([0, 1, 3, 6, 4096, 5000])
    span = max(size, 1) + (2 if rng.random() < bad else 0)
    return {"base": rng.getrandbits(58), "size": size, "pasid": rng.getrandbits(20), "domain": rng.getrandbits(6),
            "engine": rng.randrange(4), "head": rng.randrange(min(span, 4096)),
            "tail": rng.randrange(min(span, 4096))}


@pytest.mark.parametrize("num_adis, num_engines", [(4, 2), (64, 1), (1, 4)])
def test_commands_pick_by_priority_and_check_the_staged_ring(num_adis, num_engines):
    rng = random.Random(num_adis)
    dut = AdiCommands(num_adis, num_engines)
    seen = {"ok": 0, "bad": 0, "several": 0}

    async def bench(ctx):
        put = setter(ctx)
        for _ in range(1500):
            bits = {name: int(rng.random() < 0.25) for name, _ in PRIORITY}
            sel = rng.randrange(64)
            staged = _staged(rng)
            put(dut.written.as_value(), pack(WRITTEN_LAYOUT, **bits))
            put(dut.sel, sel)
            put(dut.staged.as_value(), pack(STAGED_LAYOUT, **staged))
            want = next((kind for name, kind in PRIORITY if bits[name]), AdiCommand.NONE)
            assert ctx.get(dut.command) == want, bits
            seen["several"] += sum(bits.values()) > 1
            await ctx.tick()
            size = staged["size"]
            ok = (2 <= size <= MAX_RING_ENTRIES and size & (size - 1) == 0 and staged["engine"] < num_engines
                  and staged["head"] < size and staged["tail"] < size)
            seen["ok" if ok else "bad"] += 1
            assert ctx.get(dut.config_ok) == ok, staged
            assert ctx.get(dut.ptrs_differ) == (staged["head"] != staged["tail"])
            assert ctx.get(dut.selected) == (1 << sel if sel < num_adis else 0)

    simulate(dut, bench)
    assert all(v >= 50 for v in seen.values()), seen


def test_parts_refuse_bad_parameters():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)       # the half-built components
        with pytest.raises(ValueError, match="Number of ADIs must be an integer in 1..64, not 65"):
            AdiCommands(65, 2)
        with pytest.raises(ValueError, match="Number of engines must be an integer in 1..4, not 0"):
            AdiCommands(4, 0)
        with pytest.raises(ValueError, match="Number of ADIs must be an integer in 1..64, not 0"):
            AdiPages(0)
        gc.collect()


class _AdiModel:
    """One ADI as rtl/cmd/adi.py's module text describes it. The ring index
    mask is SIZE - 1 (equal to "modulo SIZE" and "below SIZE" for the
    power-of-two sizes ENABLE accepts; LOAD copies a saved configuration
    unchecked)."""

    def __init__(self):
        self.state, self.error, self.head, self.tail = AdiState.DISABLED, 0, 0, 0
        self.config = {"base": 0, "size": 0, "pasid": 0, "domain": 0, "engine": 0}
        self.pending = False

    def step(self, ev):
        state, head, tail = self.state, self.head, self.tail
        mask = (self.config["size"] - 1) & (MAX_RING_ENTRIES - 1)
        active = state in ACTIVE
        n_state, n_head, n_tail = state, head, tail
        if ev["consume"] and self.pending:
            n_head = (head + 1) & mask
        if ev["doorbell"] and state == AdiState.ENABLED:
            if ev["db"]["below_max"] and ev["db"]["tail"] & ~mask == 0:
                n_tail = ev["db"]["tail"]
            else:
                n_state, self.error = AdiState.ERROR, AdiError.TAIL_BEYOND_RING
        if state == AdiState.DRAINING and head == tail and not ev["busy"]:
            n_state = AdiState.DISABLED
        if ev["fault"] and active:
            n_state, self.error = AdiState.ERROR, ev["fault_code"]
        st, command = ev["staged"], ev["command"] if ev["selected"] else AdiCommand.NONE
        if command == AdiCommand.RESET_ERROR and state == AdiState.ERROR:
            n_state, self.error = AdiState.DISABLED, 0
        elif command == AdiCommand.ABORT and active:
            n_state, n_head = AdiState.DISABLED, tail
        elif command == AdiCommand.DRAIN and state == AdiState.ENABLED:
            n_state = AdiState.DRAINING
        elif command in (AdiCommand.ENABLE, AdiCommand.LOAD) and state == AdiState.DISABLED:
            if command == AdiCommand.ENABLE and not ev["config_ok"]:
                n_state, self.error = AdiState.ERROR, AdiError.BAD_RING_CONFIG
            else:
                n_head, n_tail = st["head"], st["tail"]
                self.config = {k: st[k] for k in self.config}
                if command == AdiCommand.ENABLE:
                    n_state = AdiState.ENABLED
        self.state, self.head, self.tail = n_state, n_head, n_tail
        self.pending = n_state in ACTIVE and n_head != n_tail


@pytest.mark.parametrize("seed", [1, 2])
def test_slot_follows_the_model_every_cycle(seed):
    rng = random.Random(seed)
    dut = AdiSlot()
    model = _AdiModel()
    seen = {"consumed": 0, "tail_set": 0, "tail_error": 0, "drained": 0, "fault": 0, "reset": 0, "abort": 0,
            "enable": 0, "enable_bad": 0, "loaded": 0, "consume_and_doorbell": 0}

    async def bench(ctx):
        put = setter(ctx)
        for cyc in range(5000):
            staged = _staged(rng, sizes=(2, 4, 8), bad=0.05)
            size = staged["size"]
            ok = (2 <= size <= MAX_RING_ENTRIES and size & (size - 1) == 0
                  and staged["head"] < size and staged["tail"] < size and rng.random() < 0.9)
            # Commands mostly ENABLE and RESET_ERROR, so that the ring is often live.
            command = rng.choices(list(AdiCommand), weights=[0, 8, 2, 5, 10, 2])[0]
            ev = {"consume": rng.random() < 0.5, "doorbell": rng.random() < 0.3,
                  "db": {"adi": rng.getrandbits(6), "tail": rng.randrange(4) if rng.random() < 0.9
                         else rng.choice([rng.randrange(10), rng.getrandbits(12)]), "below_max": int(rng.random() < 0.95)},
                  "busy": rng.random() < 0.2, "fault": rng.random() < 0.02, "fault_code": rng.randrange(1, 16),
                  "selected": rng.random() < 0.12, "command": command, "config_ok": ok, "staged": staged}
            for name in ("consume", "doorbell", "busy", "fault", "fault_code", "selected", "config_ok"):
                put(getattr(dut, name), ev[name])
            put(dut.db.as_value(), pack(DOORBELL_LAYOUT, **ev["db"]))
            put(dut.command.as_value(), command.value)
            put(dut.staged.as_value(), pack(STAGED_LAYOUT, **staged))
            put(dut.ptrs_differ, staged["head"] != staged["tail"])
            before = (model.state, model.head, model.tail, model.pending)
            model.step(ev)
            await ctx.tick()
            ring = unpack(RING_LAYOUT, ctx.get(dut.ring.as_value()))
            got = (ctx.get(dut.state), ctx.get(dut.error), ring["head"], ctx.get(dut.tail), ctx.get(dut.pending))
            want = (model.state, model.error, model.head, model.tail, model.pending)
            assert got == want, f"cycle {cyc}: {got} != {want} after {before} and {ev}"
            assert {k: ring[k] for k in model.config} == model.config, cyc
            s0, h0, t0, p0 = before
            picked = command if ev["selected"] else None
            seen["consumed"] += bool(ev["consume"] and p0 and model.head != h0)
            seen["consume_and_doorbell"] += bool(ev["consume"] and p0 and ev["doorbell"] and model.tail != t0)
            seen["tail_set"] += s0 == AdiState.ENABLED and model.tail != t0
            seen["tail_error"] += model.error == AdiError.TAIL_BEYOND_RING and model.state != s0
            seen["drained"] += s0 == AdiState.DRAINING and model.state == AdiState.DISABLED and picked is None
            seen["fault"] += bool(ev["fault"] and s0 in ACTIVE)
            seen["reset"] += picked == AdiCommand.RESET_ERROR and s0 == AdiState.ERROR
            seen["abort"] += picked == AdiCommand.ABORT and s0 in ACTIVE
            seen["enable"] += picked == AdiCommand.ENABLE and model.state == AdiState.ENABLED and s0 != model.state
            seen["enable_bad"] += picked == AdiCommand.ENABLE and s0 == AdiState.DISABLED and not ok
            seen["loaded"] += picked == AdiCommand.LOAD and s0 == AdiState.DISABLED

    simulate(dut, bench)
    assert all(v >= 5 for v in seen.values()), seen


def _page_answer(n, page, offset, we, regs):
    """(resp, rdata) of a page access as rtl/cmd/adi_pages.py's module text says."""
    word = offset >> 2
    if page >= n or word not in (PAGE_TAIL >> 2, PAGE_HEAD >> 2, PAGE_STATE >> 2):
        return Resp.DECERR, 0
    value = {PAGE_TAIL >> 2: regs["tail"], PAGE_HEAD >> 2: regs["head"], PAGE_STATE >> 2: regs["state"]}[word][page]
    if we:
        return (Resp.OKAY if word == PAGE_TAIL >> 2 else Resp.SLVERR), 0
    return Resp.OKAY, value


@pytest.mark.parametrize("n", [4, 64])
def test_pages_answer_and_ring_doorbells(n):
    rng = random.Random(n)
    dut = AdiPages(n)
    seen = {"doorbells": 0, "dropped": 0, "okay": 0, "slverr": 0, "decerr": 0}

    async def bench(ctx):
        put = setter(ctx)
        busy_until = -1
        access = {}             # cycle of a strobe: (page, offset, we, wdata, wstrb)
        dropped = 0
        for cyc in range(3000):
            regs = {"state": [rng.choice(list(AdiState)) for _ in range(n)],
                    "head": [rng.getrandbits(12) for _ in range(n)], "tail": [rng.getrandbits(12) for _ in range(n)]}
            for name in regs:
                put(getattr(dut, name).as_value(), pack_array(regs[name], 2 if name == "state" else 12))
            stb = cyc > busy_until and rng.random() < 0.6
            put(dut.pages.stb, stb)
            if stb:
                page = rng.randrange(n + 2) if n < 64 else rng.randrange(64)
                offset = rng.choice([PAGE_TAIL] * 4 + [PAGE_HEAD, PAGE_STATE, 0xC, 0x400]) | rng.randrange(4)
                a = (page, offset, rng.random() < 0.7, rng.getrandbits(32) if rng.random() < 0.3
                     else rng.randrange(16), rng.choice([0xF, 0xF, 0x1, 0x6, 0]))
                put(dut.pages.addr, page << 12 | offset)
                put(dut.pages.we, a[2])
                put(dut.pages.wdata, a[3])
                put(dut.pages.wstrb, a[4])
                access[cyc] = a
                busy_until = cyc + 2
            await ctx.tick()
            # A doorbell one cycle after its strobe; counted as dropped in the
            # cycle it acts, against the ADI's state then.
            a = access.get(cyc)
            db = a is not None and a[2] and a[0] < n and a[1] >> 2 == PAGE_TAIL >> 2 and a[4] != 0
            assert ctx.get(dut.doorbell.valid) == db, cyc
            if db:
                value = a[3] & sum(0xFF << (8 * i) for i in range(4) if a[4] >> i & 1)
                got = unpack(DOORBELL_LAYOUT, ctx.get(dut.doorbell.payload.as_value()))
                assert got == {"adi": a[0], "tail": value & 0xFFF, "below_max": int(value < MAX_RING_ENTRIES)}
                seen["doorbells"] += 1
            prev = access.get(cyc - 1)
            if prev is not None and prev[2] and prev[0] < n and prev[1] >> 2 == 0 and prev[4] != 0:
                dropped += regs["state"][prev[0]] != AdiState.ENABLED
            assert ctx.get(dut.dropped) == dropped, cyc
            # The answer two cycles after the strobe, read from the registers of the cycle between.
            ack = prev is not None
            assert ctx.get(dut.pages.ack) == ack, cyc
            resp, rdata = _page_answer(n, prev[0], prev[1], prev[2], regs) if ack else (0, 0)
            assert (ctx.get(dut.pages.resp), ctx.get(dut.pages.rdata)) == (resp, rdata), (cyc, prev)
            if ack:
                seen[Resp(resp).name.lower()] += 1
        seen["dropped"] = dropped

    simulate(dut, bench)
    assert all(v >= 20 for v in seen.values()), seen
