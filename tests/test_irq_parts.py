"""The interrupt remapper's parts in Amaranth's simulator, each on its own, against Python models.

* ImsTable (rtl/irq/ims.py): random lane writes and reads on one port; the
  row on ``raw`` two cycles after its address is the model's row before
  that cycle's write (read-before-write), and the peek port shows the
  model's words and flags.
* RemapPipeline (rtl/irq/pipeline.py): random messages and replays (each
  held in a register until taken, before any message) against
  a table model (rows on ``raw`` two cycles after their address), with the
  IMS window taking the port now and then; every accepted message is
  reported decided in its effect stage, four cycles later, as the x86 MSI
  and VT-d rules of the module say (deliver with its destination and
  vector, pend, a fault with its reason, or DMA), ``irq_out`` and
  ``dma_out`` carry the delivered interrupts and DMA messages in order (an
  interrupt on ``irq_out`` in its effect stage while the queue is empty and
  ``irq_out`` ready), and nothing is taken while the window excludes it.
* ImsWindow (rtl/irq/window.py): register-bus reads and writes of random
  IMS words, with pending interrupts raised between them; reads return the
  model's word (CTRL with the pending bit), writes reach the table one
  cycle before their commit with the decoded flag, and unmasking a pending
  entry queues one replay and clears the bit.
"""

import random

import pytest

from siov.rtl import regmap
from siov.rtl.csr.bus import Resp
from siov.rtl.irq.ims import LANE, READ_LATENCY, ImsTable
from siov.rtl.irq.layouts import Decision, IrqLayout, MessageLayout
from siov.rtl.irq.pipeline import CTRL_WORD, LATENCY, MASK, PASID, PASID_EN, PENDING, RemapPipeline
from siov.rtl.irq.window import ImsWindow
from siov.rtl.regmap import IrqFaultReason
from siov.tb.amsim import setter, simulate
from siov.tb.layouts import pack, unpack

M32 = (1 << 32) - 1


def _row(words):
    """The table row of four IMS words: each word with its decoded flag."""
    flags = [words[0] >> 20 == 0xFEE, words[1] != 0, 0, 0]
    return sum(((w & M32) | int(f) << 32) << (LANE * i) for i, (w, f) in enumerate(zip(words, flags)))


def test_ims_table_reads_before_write_and_peeks():
    rng = random.Random(3)
    entries = 16
    dut = ImsTable(entries, peek=True)
    lanes = [[0] * 4 for _ in range(entries)]     # the 36-bit lanes as written

    async def bench(ctx):
        put = setter(ctx)
        expect = {}
        for cyc in range(600):
            addr, en, data = rng.randrange(entries), rng.choice([0, 0, 1, 2, 4, 8]), rng.randrange(1 << LANE)
            put(dut.addr, addr)
            put(dut.lane_en, en)
            put(dut.wdata, data)
            peek = rng.randrange(entries)
            put(dut.peek_addr, peek)
            expect[cyc + READ_LATENCY] = sum(lanes[addr][i] << (LANE * i) for i in range(4))
            if cyc in expect and cyc >= READ_LATENCY:
                assert ctx.get(dut.raw) == expect.pop(cyc), cyc
            assert ctx.get(dut.peek_data) == sum((lanes[peek][i] & M32) << (32 * i) for i in range(4))
            assert ctx.get(dut.peek_flags) == (lanes[peek][0] >> 32 & 1) | (lanes[peek][1] >> 32 & 1) << 1
            for i in range(4):
                if en >> i & 1:
                    lanes[addr][i] = data
            await ctx.tick()

    simulate(dut, bench)


def _entry(rng):
    present = rng.random() < 0.85
    ctrl = (rng.random() < 0.4) << MASK | (rng.random() < 0.3) << PASID_EN | rng.randrange(4) << PASID.start
    return [(0xFEE << 20 if present else rng.randrange(1 << 20) << 12) | rng.randrange(1 << 20),
            0 if present or rng.random() < 0.5 else rng.randrange(1, 1 << 32), rng.randrange(1 << 32), ctrl]


def _decide(entries, table, msg, replay):
    """(kind, reason, irq) of a message, by the rules of rtl/irq/pipeline.py."""
    if not msg["is_irq"] and not replay:
        return Decision.DMA, 0, None
    handle = msg["handle"]
    if handle >= entries:
        return Decision.FAULT, IrqFaultReason.HANDLE_BEYOND_TABLE, None
    lo, hi, data, ctrl = table[handle]
    e_pasid = (ctrl >> PASID.start) & ((1 << (PASID.stop - PASID.start)) - 1)
    if lo >> 20 != 0xFEE or hi != 0:
        return Decision.FAULT, IrqFaultReason.ENTRY_NOT_PRESENT, None
    if not replay and ctrl >> PASID_EN & 1 and e_pasid != msg["pasid"]:
        return Decision.FAULT, IrqFaultReason.PASID_MISMATCH, None
    if ctrl >> MASK & 1:
        return Decision.PEND, 0, None
    pasid = e_pasid if replay else msg["pasid"]
    return Decision.DELIVER, 0, {"dest": (lo >> 12) & 0xFF, "vector": data & 0xFF, "handle": handle, "pasid": pasid}


@pytest.mark.parametrize("pipelined", [True, False])
def test_pipeline_decides_every_message(pipelined):
    rng = random.Random(7)
    entries = 16
    dut = RemapPipeline(entries, pipelined=pipelined)
    table = [_entry(rng) for _ in range(entries)]
    seen = {k: 0 for k in Decision}
    out = {"irq": [], "dma": []}
    want = {"irq": [], "dma": []}

    async def bench(ctx):
        put = setter(ctx)
        rows = {}
        decisions = {}
        bypasses = 0
        held = None                       # the replay waiting in the pipeline's register
        for cyc in range(1000 + 20):
            drain = cyc >= 1000           # the last cycles: no input, outputs ready, until all is out
            excl = not drain and rng.random() < 0.08
            csr = excl or rng.random() < 0.05
            put(dut.port_excl, excl)
            put(dut.port_csr, csr)
            put(dut.window_index, rng.randrange(entries))
            msg = {"is_irq": int(rng.random() < 0.75), "pasid": rng.randrange(4),
                   "handle": rng.randrange(entries + 2), "addr": rng.randrange(1 << 64), "data": rng.randrange(M32)}
            put(dut.msg_in.valid, not drain and rng.random() < 0.8)
            put(dut.msg_in.payload.as_value(), pack(MessageLayout, **msg))
            put(dut.replay.valid, not drain and rng.random() < 0.1)
            replay_handle = rng.randrange(entries)
            put(dut.replay.payload, replay_handle)
            put(dut.irq_out.ready, drain or rng.random() < 0.7)
            put(dut.dma_out.ready, drain or rng.random() < 0.7)
            # The table: the row addressed two cycles ago.
            rows[cyc + 2] = _row(table[ctx.get(dut.table_addr)])
            put(dut.raw, rows.pop(cyc, 0))
            assert ctx.get(dut.replay_held) == (held is not None) and ctx.get(dut.replay.ready) == (held is None)
            taken_replay = ctx.get(dut.replay_take)
            taken_msg = ctx.get(dut.msg_in.valid) and ctx.get(dut.msg_in.ready)
            assert not (excl and (taken_replay or taken_msg))
            if csr:
                assert not taken_replay
                assert not taken_msg or not msg["is_irq"] or msg["handle"] == ctx.get(dut.window_index)
            if taken_replay or taken_msg:
                m = {"is_irq": 1, "handle": held, "pasid": 0} if taken_replay else msg
                kind, reason, irq = _decide(entries, table, m, taken_replay)
                decisions[cyc + LATENCY] = (kind, reason, m["handle"])
                if kind == Decision.DMA:
                    want["dma"].append(pack(MessageLayout, **msg))
                if irq:
                    want["irq"].append(pack(IrqLayout, **irq))
            if taken_replay:
                held = None
            elif held is None and ctx.get(dut.replay.valid):
                held = replay_handle
            assert all(ctx.get(c) for c in dut.invariants())
            d = decisions.pop(cyc, None)
            assert ctx.get(dut.decision.valid) == (d is not None)
            if d:
                kind, reason, handle = d
                assert (ctx.get(dut.decision.kind), ctx.get(dut.decision.reason), ctx.get(dut.decision.handle)) == \
                    (kind, reason, handle)
                assert ctx.get(dut.pend) == (kind == Decision.PEND)
                assert ctx.get(dut.fault) == (kind == Decision.FAULT)
                assert ctx.get(dut.irq_push) == (kind == Decision.DELIVER)
                seen[kind] += 1
                # An interrupt passes the empty queue in its effect stage while irq_out is ready.
                if kind == Decision.DELIVER and ctx.get(dut.irq_level) == 0 and ctx.get(dut.irq_out.ready):
                    assert ctx.get(dut.irq_out.valid)
                    bypasses += 1
            if ctx.get(dut.irq_out.valid) and ctx.get(dut.irq_out.ready):
                out["irq"].append(ctx.get(dut.irq_out.payload.as_value()))
            if ctx.get(dut.dma_out.valid) and ctx.get(dut.dma_out.ready):
                out["dma"].append(ctx.get(dut.dma_out.payload.as_value()))
            await ctx.tick()
        assert not decisions
        seen["bypasses"] = bypasses

    simulate(dut, bench)
    assert min(seen.values()) >= 8, seen
    assert out == want


def test_window_reads_writes_and_pending_bits():
    rng = random.Random(11)
    entries = 16
    dut = ImsWindow(entries, replay_depth=4)
    table = [[0, 0, 0, 0] for _ in range(entries)]
    pending = [0] * entries
    log = {"replays": [], "writes": 0, "unmasked_pending": 0}

    async def bench(ctx):
        state = {"rows": {}, "cyc": 0}

        async def step():
            """One cycle of the table (the window's row two cycles after its index) and the replay queue."""
            cyc = state["cyc"]
            state["rows"][cyc + 2] = _row(table[ctx.get(dut.index)])
            ctx.set(dut.raw, state["rows"].pop(cyc, 0))
            en = ctx.get(dut.lane_en)
            if en:
                assert ctx.get(dut.port_csr)
                word, flag = ctx.get(dut.wdata) & M32, ctx.get(dut.wdata) >> 32 & 1
                i, w = ctx.get(dut.index), en.bit_length() - 1
                table[i][w] = word
                assert flag == _row(table[i]) >> (LANE * w + 32) & 1
                log["writes"] += 1
            if ctx.get(dut.push):
                log["replays"].append(ctx.get(dut.push_index))
            state["cyc"] += 1
            await ctx.tick()

        async def access(addr, data=None, strb=0xF):
            ctx.set(dut.bus.stb, 1)
            ctx.set(dut.bus.we, data is not None)
            ctx.set(dut.bus.addr, addr)
            ctx.set(dut.bus.wdata, data or 0)
            ctx.set(dut.bus.wstrb, strb)
            await step()
            ctx.set(dut.bus.stb, 0)
            for _ in range(20):
                if ctx.get(dut.bus.ack):
                    got = ctx.get(dut.bus.rdata), ctx.get(dut.bus.resp)
                    await step()
                    return got
                await step()
            raise AssertionError("no answer")

        for _ in range(300):
            e, w = rng.randrange(entries), rng.choice([0, 1, 2, 3, 3, 3])
            if rng.random() < 0.3:
                # A pending interrupt from the pipeline, between accesses (its entry
                # on pend_index_next the cycle before).
                ctx.set(dut.pend_index_next, e)
                await step()
                ctx.set(dut.pend, 1)
                ctx.set(dut.pend_index, e)
                await step()
                ctx.set(dut.pend, 0)
                pending[e] = 1
                await step()
            elif rng.random() < 0.5:
                rdata, resp = await access(16 * e + 4 * w)
                want = table[e][w] | (pending[e] << PENDING if w == CTRL_WORD else 0)
                assert (rdata, resp) == (want, Resp.OKAY)
            else:
                value = rng.randrange(1 << 32)
                old = table[e][w]
                if w == CTRL_WORD:
                    owner_bits = 1 << PASID_EN | ((1 << (PASID.stop - PASID.start)) - 1) << PASID.start
                    owner = rng.randrange(2) << PASID_EN | rng.randrange(2) << PASID.start
                    value = (rng.random() < 0.5) << MASK | (old & owner_bits if rng.random() < 0.7 else owner)
                replays = len(log["replays"])
                assert await access(16 * e + 4 * w, value) == (0, Resp.OKAY)
                for _ in range(4):
                    await step()
                if w == CTRL_WORD:
                    value &= ~(1 << PENDING)
                    owner = (old ^ value) & (1 << PASID_EN | ((1 << (PASID.stop - PASID.start)) - 1) << PASID.start)
                    unmask = not value >> MASK & 1 and not owner
                    if unmask and pending[e]:
                        assert log["replays"][replays:] == [e]
                        log["unmasked_pending"] += 1
                    else:
                        assert log["replays"][replays:] == []
                    if not value >> MASK & 1 or owner:
                        pending[e] = 0
                assert table[e][w] == value
        assert await access(16 * entries) == (0, Resp.DECERR)

    simulate(dut, bench)
    assert log["unmasked_pending"] > 5 and log["writes"] > 100, log
