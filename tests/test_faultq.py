"""rtl/faultq.py's FaultQueue in Amaranth's simulator, against a cycle-by-cycle Python model.

Sources push at random (one flooding, the others now and then), the head is
popped at random and the lost window is read at random: every cycle the
head, the level and the overflow count must be the model's, every lost read
must return the model's count (and clear it), and every fault pushed must
end up popped, still queued, or in exactly one lost read. A source below its
quota loses a fault only while the queue is full.
"""

import random

import pytest
from amaranth.sim import Simulator

from siov.rtl.csr.bus import Resp
from siov.rtl.faultq import LOST_WIDTH, FaultQueue, default_quota


class Model:
    """The queue as the module docstring states it, one call per cycle."""

    def __init__(self, depth, sources, quota, stages=1):
        self.depth, self.sources, self.quota = depth, sources, quota
        self.queue = []
        self.offered = [None] * (stages - 1)   # offered, not yet in the decision's stage
        self.stages = stages
        self.pop_pending = False        # two stages: a POP registered, acting this cycle
        self.pending = None             # decided this cycle
        self.evt = [0] * sources        # lost last cycle: counted this cycle
        self.ovf_evt = 0
        self.lost = [0] * sources
        self.ovf = 0
        self.overflow = False
        self.dropped_below_quota_not_full = 0

    def occ(self, s):
        return sum(1 for _, src in self.queue if src == s)

    def step(self, push, pop, clear_src, clear_ovf):
        """End of a cycle: ``push`` offered (record, source) or None, ``pop``, the source
        whose lost count a read takes and clears this cycle (or None), and clear_overflow."""
        evt = [0] * self.sources
        ovf_evt = 0
        if self.pending is not None:
            rec, src = self.pending
            if self.occ(src) < self.quota and len(self.queue) < self.depth:
                queued = True
            else:
                queued = False
                evt[src] = 1
                ovf_evt = 1
        if self.stages == 2:
            act, self.pop_pending = self.pop_pending, bool(pop and self.queue and not self.pop_pending)
        else:
            act = pop
        popped = self.queue[0] if act and self.queue else None
        if popped is not None:
            self.queue.pop(0)
        if self.pending is not None and queued:
            self.queue.append(self.pending)
        taken = None
        for s in range(self.sources):
            if s == clear_src:
                taken = self.lost[s]
                self.lost[s] = self.evt[s]
            else:
                self.lost[s] = min(self.lost[s] + self.evt[s], (1 << LOST_WIDTH) - 1)
        if clear_ovf:
            self.ovf, self.overflow = 0, False
        elif self.ovf_evt:
            self.ovf, self.overflow = min(self.ovf + 1, (1 << 32) - 1), True
        self.offered.append(push)
        self.pending, self.evt, self.ovf_evt = self.offered.pop(0), evt, ovf_evt
        return popped, taken


def _run(depth, sources, quota, seed, cycles=4000, stages=1):
    dut = FaultQueue(width=12, depth=depth, sources=sources, quota=quota, stages=stages)
    rng = random.Random(seed)
    model = Model(depth, sources, dut.quota, stages)
    log = {"pushed": 0, "popped": 0, "lost_read": 0, "reads": 0, "quota_drops": 0, "full_drops": 0}

    async def bench(ctx):
        read = None           # (source word, cycles since strobe)
        flooder = rng.randrange(sources)
        words = 1 << (len(dut.lost.addr) - 2)
        for cycle in range(cycles):
            # Outputs of this cycle, from the state at its start.
            head = model.queue[0] if model.queue else None
            assert ctx.get(dut.head.valid) == (head is not None), cycle
            if head is not None:
                assert ctx.get(dut.head.payload.record) == head[0], cycle
                assert ctx.get(dut.head.payload.source) == head[1], cycle
            assert ctx.get(dut.level) == len(model.queue), cycle
            assert ctx.get(dut.ovf_count) == model.ovf and ctx.get(dut.overflow) == model.overflow, cycle
            if model.pending is not None:
                rec, src = model.pending
                if model.occ(src) >= model.quota:
                    log["quota_drops"] += 1
                elif len(model.queue) >= depth:
                    log["full_drops"] += 1
            # Inputs.
            phase = (cycle // 500) % 3
            if rng.random() < (0.9 if phase == 0 else 0.3):
                src = flooder if rng.random() < 0.8 else rng.randrange(sources)
                push = (rng.getrandbits(12), src)
                log["pushed"] += 1
            else:
                push = None
            pop = rng.random() < (0.05 if phase == 0 else 0.4)
            clear_ovf = rng.random() < 0.005
            ctx.set(dut.push.valid, push is not None)
            ctx.set(dut.push.payload.record, push[0] if push else 0)
            ctx.set(dut.push.payload.source, push[1] if push else 0)
            ctx.set(dut.head.ready, pop)
            ctx.set(dut.clear_overflow, clear_ovf)
            clear_src = None
            stb = 0
            if read is None and rng.random() < 0.05:
                word = rng.randrange(min(sources + 2, words)) if rng.random() < 0.9 else rng.randrange(words)
                we = rng.random() < 0.05
                read = [word, 0, we]
                stb = 1
                ctx.set(dut.lost.addr, word * 4)
                ctx.set(dut.lost.we, we)
            ctx.set(dut.lost.stb, stb)
            if read is not None:
                word, age, we = read[:3]
                if age == 1 and not we and word < sources:
                    clear_src = word
                if age == 3:
                    assert ctx.get(dut.lost.ack), cycle
                    resp = ctx.get(dut.lost.resp)
                    if we:
                        assert resp == Resp.SLVERR
                    elif word >= sources:
                        assert resp == Resp.DECERR and ctx.get(dut.lost.rdata) == 0
                    else:
                        assert resp == Resp.OKAY
                        assert ctx.get(dut.lost.rdata) == read[3], (cycle, word)
                        log["lost_read"] += read[3]
                        log["reads"] += 1
                    read = None
                else:
                    assert not ctx.get(dut.lost.ack), cycle
                    read[1] += 1
            popped, taken = model.step(push, pop, clear_src, clear_ovf)
            if taken is not None:
                read.append(taken)
            log["popped"] += popped is not None
            await ctx.tick()
        ctx.set(dut.push.valid, 0)
        ctx.set(dut.lost.stb, 0)
        ctx.set(dut.head.ready, 0)
        # Drain what was lost and not read yet: every fault is accounted for once.
        for _ in range(2 + stages):
            popped, _ = model.step(None, False, None, False)
            log["popped"] += popped is not None
            await ctx.tick()
        log["pending_lost"] = sum(model.lost)
        log["queued"] = len(model.queue)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return log


@pytest.mark.parametrize("stages", [1, 2])
@pytest.mark.parametrize("depth,sources,quota,seed", [
    (16, 9, None, 1), (16, 9, None, 2), (16, 3, 16, 3), (4, 3, 1, 4), (5, 2, 2, 5), (8, 65, 2, 6),
])
def test_against_model(depth, sources, quota, seed, stages):
    log = _run(depth, sources, quota, seed, stages=stages)
    assert log["pushed"] == log["popped"] + log["queued"] + log["lost_read"] + log["pending_lost"]
    assert log["reads"] > 5 and log["lost_read"] > 0
    if quota is None or quota < depth:
        assert log["quota_drops"] > 0
    assert log["full_drops"] > 0 or (quota or default_quota(depth)) * sources < depth


@pytest.mark.parametrize("stages", [1, 2])
def test_a_source_below_its_quota_is_queued_however_others_flood(stages):
    """One source floods at one fault per cycle; another's fault, offered in any cycle, is queued."""
    dut = FaultQueue(width=8, depth=16, sources=9, stages=stages)
    assert dut.quota == 4
    seen = []

    async def bench(ctx):
        for cycle in range(60):
            victim = cycle == 37
            ctx.set(dut.push.valid, 1)
            ctx.set(dut.push.payload.record, 0xAA if victim else cycle)
            ctx.set(dut.push.payload.source, 5 if victim else 0)
            await ctx.tick()
        ctx.set(dut.push.valid, 0)
        await ctx.tick().repeat(2 + stages)
        while ctx.get(dut.head.valid):
            seen.append((ctx.get(dut.head.payload.source), ctx.get(dut.head.payload.record)))
            ctx.set(dut.head.ready, 1)
            await ctx.tick()
            ctx.set(dut.head.ready, 0)
            await ctx.tick()
        assert ctx.get(dut.ovf_count) == 59 - 4

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(0, 0), (0, 1), (0, 2), (0, 3), (5, 0xAA)]


@pytest.mark.parametrize("kwargs,message", [
    (dict(width=8, depth=1, sources=2), "Fault queue depth must be an integer between 2 and 255, not 1"),
    (dict(width=8, depth=16, sources=0), "Number of fault sources must be an integer between 1 and 128, not 0"),
    (dict(width=8, depth=16, sources=2, quota=17), "Fault quota must be an integer between 1 and the depth 16, not 17"),
    (dict(width=8, depth=16, sources=2, quota=0), "Fault quota must be an integer between 1 and the depth 16, not 0"),
    (dict(width=8, depth=16, sources=65, lost_addr_width=8),
     "The lost window needs an address width of at least 9 for 65 sources, not 8"),
    (dict(width=8, depth=16, sources=2, stages=3), "Fault queue stages must be 1 or 2, not 3"),
])
def test_constructor_checks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FaultQueue(**kwargs)
