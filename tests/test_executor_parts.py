"""The executor's parts in Amaranth's simulator, each on its own, against Python models.

* Comparator (rtl/cmd/compare.py): random pieces (lane offset, length, a
  difference planted in or out of the piece's bytes, or none) fed word by
  word with random gaps; ``pending`` must rise the cycle after a word whose
  piece bytes differ, and ``found``/``at`` give the first differing byte's
  offset in the transfer, as a byte-by-byte comparison does.
* WriteSourceSelect (rtl/cmd/wsource.py): random selections, FIFO words and
  writer readiness; the writer sees exactly the selected source, the FIFO is
  popped only when selected, and the record's four words come out in order.
* DescriptorChecks (rtl/cmd/checks.py): random descriptors, drawn near
  every check's edge (unknown opcodes, reserved flags and RCR without CRAV,
  handles around the IMS's size, sizes 0, MAX_XFER and one more, addresses
  one byte off their alignment), against the reference model's
  ``Engine.check`` and the hand-over's PASID refusal; the verdict is the
  model's first failing check, or the opcode's next step, a cycle after the
  descriptor is presented; every verdict is seen.
* TrackerClient (rtl/cmd/xlate.py): random translations against a fake
  tracker with random ready and answer delays; every request carries the
  address's page, its direction and the PASID, the answer ends the
  translation in the cycle it arrives with the host address (answer page |
  offset) or the fault, and an address at or above 2**44 faults a cycle after
  its start with no request.
"""

import gc
import random
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable

from siov.rtl.cmd.checks import DescriptorChecks, Verdict
from siov.rtl.cmd.compare import Comparator
from siov.rtl.cmd.dsa import MAX_XFER, SIZED_OPCODES, CompletionLayout, Flag, Opcode, Status
from siov.rtl.cmd.wsource import RECORD_WORDS, WriteSource, WriteSourceSelect
from siov.rtl.cmd.xlate import TrackerClient
from siov.rtl.dma.defs import TRANSLATABLE_BITS
from siov.rtl.dma.tracker import OUT_LAYOUT, REQ_LAYOUT
from siov.sw.model.dsa import Descriptor
from siov.sw.model.engine import Engine
from siov.tb.amsim import setter, signals, simulate
from siov.tb.layouts import pack, unpack

M64 = (1 << 64) - 1


def _words(data, lane):
    """Bus words holding ``data`` from byte lane ``lane`` (zeros around it)."""
    padded = bytes(lane) + data + bytes(-(lane + len(data)) % 8)
    return [int.from_bytes(padded[i:i + 8], "little") for i in range(0, len(padded), 8)]


@pytest.mark.parametrize("seed", [1, 2])
def test_comparator_finds_the_first_difference(seed):
    rng = random.Random(seed)
    dut = Comparator()
    log = {"found": 0, "clean": 0}

    async def bench(ctx):
        for _ in range(40):
            lane, n, p_lo = rng.randrange(8), rng.randrange(1, 80), rng.randrange(1 << 20)
            a = bytes(rng.randrange(256) for _ in range(n))
            b = bytearray(a)
            for _ in range(rng.choice([0, 1, 2])):
                i = rng.randrange(n)
                b[i] ^= 1 << rng.randrange(8)
            wa, wb = _words(a, lane), _words(bytes(b), lane)
            # Noise outside the piece's bytes must not count.
            wb[0] ^= rng.randrange(256) & ((1 << (8 * lane)) - 1)
            first = next((i for i in range(n) if a[i] != b[i]), None)
            last_lane = (lane + n - 1) % 8
            ctx.set(dut.first_strb, (0xFF << lane) & 0xFF)
            ctx.set(dut.last_strb, 0xFF >> (7 - last_lane))
            ctx.set(dut.last_k, len(wa) - 1)
            ctx.set(dut.p_lo, p_lo)
            ctx.set(dut.lane, lane)
            ctx.set(dut.clear, 1)
            ctx.set(dut.restart, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            ctx.set(dut.restart, 0)
            for k, (x, y) in enumerate(zip(wa, wb)):
                while rng.random() < 0.3:
                    await ctx.tick()
                    assert not ctx.get(dut.pending)
                ctx.set(dut.a, x)
                ctx.set(dut.b, y)
                ctx.set(dut.fire, 1)
                await ctx.tick()
                ctx.set(dut.fire, 0)
                differs = first is not None and any(a[i] != b[i] for i in range(n) if (lane + i) // 8 == k)
                assert ctx.get(dut.pending) == differs
            await ctx.tick()
            assert ctx.get(dut.found) == (first is not None)
            if first is not None:
                assert ctx.get(dut.at) == p_lo + first
                log["found"] += 1
            else:
                log["clean"] += 1

    simulate(dut, bench)
    assert log["found"] and log["clean"]


#: The verdict of a descriptor the model's checks fail, by its status.
_FAILED = {Status.BAD_OPCODE: Verdict.BAD_OPCODE, Status.INVALID_FLAGS: Verdict.INVALID_FLAGS,
           Status.INVALID_INT_HANDLE: Verdict.BAD_HANDLE, Status.XFER_SIZE: Verdict.XFER_SIZE,
           Status.ADDR_ALIGN: Verdict.ADDR_ALIGN}


def _expected_verdict(model, desc, adi_pasid):
    """The hand-over's refusal, then the model's checks, then the opcode's next step."""
    if desc.pasid != adi_pasid:
        return Verdict.REFUSE
    status, _invalid = model.check(desc)
    if status is not Status.SUCCESS:
        return _FAILED[status]
    op = Opcode(desc.opcode)
    if op in SIZED_OPCODES:
        return Verdict.SIZED
    return {Opcode.WAIT: Verdict.WAIT, Opcode.SIGNAL: Verdict.SIGNAL}.get(op, Verdict.UNSIZED)


def _edge_descriptor(rng, ims_entries):
    """A descriptor whose fields sit near the checks' edges (one check's edge at a time, mostly)."""
    ok_flags = [0, Flag.CRAV, Flag.CRAV | Flag.RCR, Flag.RCI, Flag.CRAV | Flag.RCR | Flag.RCI, Flag.CC | Flag.FENCE]
    flags = int(rng.choice(ok_flags))
    if rng.random() < 0.15:
        flags |= 1 << rng.choice([1, 5, 6, 7, 9, 12, 15, 16, 23])       # reserved here
    if rng.random() < 0.1:
        flags = (flags | Flag.RCR) & ~Flag.CRAV                         # RCR without CRAV
    opcode = rng.choice([op.value for op in Opcode] * 3 + [0x01, 0x06, 0x20, 0xF2, 0xFF])
    aligned = lambda: rng.getrandbits(58) << 6                          # noqa: E731
    nudge = lambda a: a | rng.choice([1, 2, 4, 8, 16]) if rng.random() < 0.2 else a   # noqa: E731
    size = rng.choice([0, 1, rng.randrange(1, MAX_XFER), MAX_XFER, MAX_XFER + 1, rng.getrandbits(32)])
    return Descriptor(pasid=rng.choice([1, 2, rng.getrandbits(20)]), flags=flags, opcode=opcode,
                      completion_addr=nudge(aligned()), src_addr=nudge(aligned()), dst_addr=nudge(aligned()),
                      xfer_size=size, int_handle=rng.choice([0, ims_entries - 1, ims_entries, rng.getrandbits(16)]))


@pytest.mark.parametrize("seed", [1, 2])
def test_descriptor_checks_match_the_model(seed):
    rng = random.Random(seed)
    ims_entries = 256
    dut = DescriptorChecks(ims_entries)
    model = Engine(memory=None, translate=None, num_handles=ims_entries)
    seen = {v: 0 for v in Verdict}

    async def bench(ctx):
        put = setter(ctx)
        for _ in range(1500):
            desc = _edge_descriptor(rng, ims_entries)
            adi_pasid = desc.pasid if rng.random() < 0.9 else rng.getrandbits(20)
            put(dut.desc.as_value(), int.from_bytes(desc.pack(), "little"))
            put(dut.adi_pasid, adi_pasid)
            await ctx.tick()
            want = _expected_verdict(model, desc, adi_pasid)
            assert Verdict(ctx.get(dut.verdict)) is want, (desc, adi_pasid)
            seen[want] += 1

    simulate(dut, bench)
    assert all(seen.values()), seen


@pytest.mark.parametrize("seed", [1, 2])
def test_write_source_selects(seed):
    rng = random.Random(seed)
    dut = WriteSourceSelect()
    rec_fields = {name: rng.randrange(1 << f.width) for name, f in CompletionLayout}
    rec_bits = pack(CompletionLayout, **rec_fields)
    rec_words = [rec_bits >> (64 * i) & M64 for i in range(RECORD_WORDS)]
    seen = {s: 0 for s in WriteSource}

    async def bench(ctx):
        put = setter(ctx)
        fifo, out = signals(dut.fifo), signals(dut.out)
        put(dut.record.as_value(), rec_bits)
        for _ in range(60):
            sel = rng.choice(list(WriteSource))
            put(dut.sel, sel.value)
            put(dut.restart, 1)
            await ctx.tick()
            put(dut.restart, 0)
            sent = 0
            for _ in range(12):
                fv, fd, rdy, pat = rng.random() < 0.6, rng.getrandbits(64), rng.random() < 0.6, rng.getrandbits(64)
                put(fifo.valid, fv)
                put(fifo.payload, fd)
                put(out.ready, rdy)
                put(dut.pattern, pat)
                if sel is WriteSource.FIFO:
                    want = (fv, fd if fv else None)
                elif sel is WriteSource.PATTERN:
                    want = (1, pat)
                else:
                    want = (1, rec_words[sent % RECORD_WORDS])
                assert ctx.get(out.valid) == want[0]
                if want[0]:
                    assert ctx.get(out.payload) == want[1]
                assert ctx.get(fifo.ready) == (sel is WriteSource.FIFO and rdy)
                if want[0] and rdy:
                    sent += 1
                    seen[sel] += 1
                await ctx.tick()

    simulate(dut, bench)
    assert all(seen.values()), seen


@pytest.mark.parametrize("seed", [1, 2])
def test_tracker_client_translates(seed):
    rng = random.Random(seed)
    dut = TrackerClient()
    log = {"ok": 0, "refused": 0, "untranslatable": 0}

    async def bench(ctx):
        put = setter(ctx)
        req, resp = signals(dut.req), signals(dut.resp)
        for _ in range(80):
            far = rng.random() < 0.15
            addr = rng.getrandbits(64) if far else rng.getrandbits(TRANSLATABLE_BITS)
            far = addr >> TRANSLATABLE_BITS != 0
            write, pasid = rng.randrange(2), rng.getrandbits(20)
            host_page, fault = rng.getrandbits(52) << 12, rng.random() < 0.3
            put(dut.start, 1)
            put(dut.addr, addr)
            put(dut.write, write)
            put(dut.pasid, pasid)
            put(req.ready, 0)
            put(resp.valid, 0)
            await ctx.tick()
            put(dut.start, 0)
            assert ctx.get(dut.busy) and ctx.get(dut.x_addr) == addr and ctx.get(dut.x_write) == write
            if far:
                assert ctx.get(dut.done) and ctx.get(dut.fault) and not ctx.get(req.valid)
                await ctx.tick()
                assert not ctx.get(dut.busy)
                log["untranslatable"] += 1
                continue
            while True:                       # the request, until the tracker takes it
                assert ctx.get(req.valid) and not ctx.get(dut.done)
                assert unpack(REQ_LAYOUT, ctx.get(req.payload.as_value())) == \
                    {"pasid": pasid, "page": addr >> 12, "write": write}
                take = rng.random() < 0.5
                put(req.ready, take)
                await ctx.tick()
                put(req.ready, 0)
                if take:
                    break
            for _ in range(rng.randrange(4)):     # the tracker's latency
                assert ctx.get(dut.busy) and not ctx.get(dut.done) and not ctx.get(req.valid)
                await ctx.tick()
            put(resp.payload.as_value(), pack(OUT_LAYOUT, addr=0 if fault else host_page, fault=fault))
            put(resp.valid, 1)
            assert ctx.get(dut.done) and ctx.get(resp.ready) and ctx.get(dut.fault) == fault
            if not fault:
                assert ctx.get(dut.host) == host_page | addr & 0xFFF
            log["refused" if fault else "ok"] += 1
            await ctx.tick()
            put(resp.valid, 0)
            assert not ctx.get(dut.busy) and not ctx.get(dut.done)

    simulate(dut, bench)
    assert all(log.values()), log


def test_tracker_client_checks_its_width():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)       # the half-built component
        with pytest.raises(ValueError, match="Address width must be an integer of at least 44, not 12"):
            TrackerClient(addr_width=12)
        gc.collect()
