"""The DMA tracker's soak (its regular builds run from tests/test_sim.py)."""

import dataclasses

import pytest

from siov.tb.regressions import REGRESSIONS

DMA = [name for name in REGRESSIONS if name.startswith("dma-")]


def _check(res):
    assert res.tests > 0
    assert res.failed == 0, f"{res.failed} of {res.tests} cocotb tests failed; see {res.results_xml}"


@pytest.mark.sim
@pytest.mark.slow
def test_dma_soak():
    """Ten times the default traffic, on the default build's own soak folder."""
    base = REGRESSIONS[DMA[0]]
    soak = dataclasses.replace(base, name=base.name + "-soak", env={**base.env, "SIOV_DMA_SCALE": "10"})
    _check(soak.run())


@pytest.mark.parametrize("write_reg", [False, True])
@pytest.mark.parametrize("transparent", [False, True])
def test_bitmap_ram_latency_and_transparency(transparent, write_reg):
    """BitmapRam (rtl/dma/bram.py): a word read in cycle c is on r_data in c + 2; a write in c is
    seen by a transparent read port and never by the other (Amaranth's simulator, behavioural model),
    with the write port registered or not."""
    from amaranth.sim import Simulator

    from siov.rtl.dma.bram import BitmapRam

    ram = BitmapRam(64, transparent=(False, transparent), write_reg=write_reg)
    seen = []

    async def bench(ctx):
        # Cycle 0: write word 5; read it on both ports in the same cycle.
        ctx.set(ram.w_en, 1)
        ctx.set(ram.w_addr, 5)
        ctx.set(ram.w_data, 0xAAAA_5555)
        ctx.set(ram.r_addrs[0], 5)
        ctx.set(ram.r_addrs[1], 5)
        await ctx.tick()
        ctx.set(ram.w_en, 0)
        ctx.set(ram.r_addrs[1], 6)
        seen.append((ctx.get(ram.r_datas[0]), ctx.get(ram.r_datas[1])))
        await ctx.tick()
        seen.append((ctx.get(ram.r_datas[0]), ctx.get(ram.r_datas[1])))   # the reads of cycle 0
        await ctx.tick()
        seen.append((ctx.get(ram.r_datas[0]), ctx.get(ram.r_datas[1])))   # cycle 1: word 5 / word 6

    sim = Simulator(ram)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen[1] == (0, 0xAAAA_5555 if transparent else 0)
    assert seen[2] == (0xAAAA_5555, 0)



@pytest.mark.parametrize("write_reg,bypass_landing", [(False, True), (True, True), (True, False)])
def test_bitmap_ram_random_against_dict(write_reg, bypass_landing):
    """BitmapRam under random writes and reads on one small address range (so that reads
    land on writes of the cycles just before, the registered write's landing cycle included):
    every word read in cycle c is the word of the last write made before c (with
    ``bypass_landing=False``: once the user substitutes the landing word where it is flagged)."""
    import random

    from amaranth.sim import Simulator

    from siov.rtl.dma.bram import BitmapRam

    ram = BitmapRam(16, write_reg=write_reg, bypass_landing=bypass_landing)
    rng = random.Random(7)
    landed = []
    mismatches = []
    checked = []

    async def bench(ctx):
        model = {}
        expect = [None, None]       # the words of the reads made 1 and 2 cycles ago
        for _ in range(600):
            w_en, w_addr, w_data = rng.random() < 0.7, rng.randrange(4), rng.getrandbits(32)
            r_addr = rng.randrange(4)
            ctx.set(ram.w_en, w_en)
            ctx.set(ram.w_addr, w_addr)
            ctx.set(ram.w_data, w_data)
            ctx.set(ram.r_addr, r_addr)
            mine = model.get(r_addr, 0)            # before this cycle's write
            if w_en:
                model[w_addr] = w_data
            await ctx.tick()
            expect = [mine, expect[0]]
            if expect[1] is not None:
                got = ctx.get(ram.r_data)
                if not bypass_landing and ctx.get(ram.landing_hits[0]):
                    got = ctx.get(ram.landing_words[0])
                    landed.append(got)
                checked.append(got)
                if got != expect[1]:
                    mismatches.append((got, expect[1]))

    sim = Simulator(ram)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(checked) > 500 and len(set(checked)) > 100
    assert bypass_landing or len(landed) > 50
    assert not mismatches, mismatches[:5]


def test_bitmap_ram_refuses_a_transparent_port_with_the_landing_outside():
    from siov.rtl.dma.bram import BitmapRam

    with pytest.raises(ValueError, match="bypass_landing"):
        BitmapRam(16, transparent=(False, True), write_reg=True, bypass_landing=False)
