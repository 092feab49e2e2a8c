"""Several engines, WAIT/SIGNAL semaphore descriptors and the eligibility mask in the models.

The semantics are the ENG addrmap's in rtl/regs.rdl: each ADI is bound to one
engine (CMD.ADI_CFG.ENGINE, copied at ENABLE); WAIT and SIGNAL are checked like
NOOP and then for 8-byte alignment; a WAIT whose condition is false stays at its
ring's head (no record, no interrupt, HEAD unchanged) until a re-check finds it
true or times out; ELIGIBLE_CMD.COMMIT makes the staged mask current in one write.

First the block models (:class:`~siov.sw.model.system.DeviceModel`), then the
model backend running host programs on two engines.
"""

import pytest

from siov.rtl import regmap
from siov.rtl.cmd.dsa import Flag, Opcode, Status
from siov.rtl.dma.defs import Bitmap, RangeOp
from siov.rtl.params import DeviceParams
from siov.sw.guest.ring import Ring
from siov.sw.hv.guest_memory import HOST_BASE
from siov.sw.hv.pf import PfDriver
from siov.sw.model.adi import DISABLED, ENABLED, ERR_BAD_RING_CONFIG, ERR_DESC_PASID, ERROR, page_address
from siov.sw.model.device import EngineModel
from siov.sw.model.dsa import CompletionRecord, Descriptor
from siov.sw.model.system import DeviceModel
from siov.sw.platform import run_program
from siov.sw.platform.timing import TimingModel, features

PAGE = 4096
PASID = 0x42
HOST = 0x40_0000            # host address of guest page 0 (domain 0) in the block-model tests
RING_SIZE = 16
CR = 2 * PAGE               # completion records: guest page 2, 32 bytes apart
SEM = 5 * PAGE              # semaphores: guest page 5
CR_FLAGS = Flag.CRAV | Flag.RCR
ALL_ONES = 0xFFFF_FFFF


# -- block models --------------------------------------------------------------------------

def make(num_engines=2, num_adis=4, unmapped=()):
    """A DeviceModel with domain 0 at HOST, guest pages 0..15 pinned and mapped except ``unmapped``,
    ADI i's DMA entry PASID+i, and IMS handle 5 of PASID delivering to dest 9 vector 0x61."""
    d = DeviceModel(DeviceParams(num_adis=num_adis, num_engines=num_engines))
    d.dma.set_domain(0, HOST, 16)
    d.dma.range_op(RangeOp.PIN, 0, 0, 16)
    for i in range(num_adis):
        d.dma.set_adi(i, PASID + i, 0)
    for page in range(16):
        if page not in unmapped:
            d.dma.guest_map(0, page)
    d.irq.set_entry(5, dest=9, vector=0x61, pasid=PASID)
    return d


def enable(d, adi, engine=0, pasid=None):
    """ENABLE ADI ``adi`` through the registers, bound to ``engine``; its ring at guest address
    adi * 0x400 (``RING_SIZE`` descriptors). Returns ``(state, error code)``."""
    pasid = PASID + adi if pasid is None else pasid
    w = d.write
    assert w(regmap.CMD_ADI_SEL, adi) == 0
    w(regmap.CMD_RING_BASE_LO, adi * RING_SIZE * 64)
    w(regmap.CMD_RING_BASE_HI, 0)
    w(regmap.CMD_RING_SIZE, RING_SIZE)
    w(regmap.CMD_ADI_CFG, pasid | engine << regmap.CMD_ADI_CFG_ENGINE_LSB)
    w(regmap.CMD_ADI_CMD, regmap.CMD_ADI_CMD_ENABLE_MASK)
    st = d.read(regmap.CMD_ADI_STATUS)[1]
    return st & regmap.CMD_ADI_STATUS_STATE_MASK, (st & regmap.CMD_ADI_STATUS_ERROR_CODE_MASK) >> 4


def post(d, adi, *descs):
    """Write ``descs`` at ADI ``adi``'s tail and ring its doorbell."""
    a = d.adi.adis[adi]
    tail = a.tail
    for desc in descs:
        d.memory.write(HOST + a.base + tail * 64, desc.pack())
        tail = (tail + 1) % a.size
    d.write(page_address(adi), tail)


def sem_write(d, value, addr=SEM):
    d.memory.write(HOST + addr, value.to_bytes(8, "little"))


def record(d, slot=0):
    return CompletionRecord.unpack(d.memory.read(HOST + CR + 32 * slot, 32))


def wait(value, mask=2**64 - 1, slot=0, **kw):
    kw.setdefault("pasid", PASID)
    kw.setdefault("flags", CR_FLAGS)
    return Descriptor(opcode=Opcode.WAIT, src_addr=kw.pop("addr", SEM), sem_value=value, sem_mask=mask,
                      completion_addr=CR + 32 * slot, **kw)


def signal(value, slot=0, **kw):
    kw.setdefault("pasid", PASID)
    kw.setdefault("flags", CR_FLAGS)
    return Descriptor(opcode=Opcode.SIGNAL, dst_addr=kw.pop("addr", SEM), sem_value=value,
                      completion_addr=CR + 32 * slot, **kw)


def eng(d, name):
    resp, value = d.read(getattr(regmap, "ENG_" + name))
    assert resp == 0
    return value


def head(d, adi):
    return d.read(page_address(adi, 0x4))[1]


def test_wait_success_consumes_and_completes():
    d = make()
    assert enable(d, 0) == (ENABLED, 0)
    sem_write(d, 0xAB05)
    post(d, 0, wait(0x05, mask=0xFF, flags=CR_FLAGS | Flag.RCI, int_handle=5, xfer_size=0xFFFF_FFFF))
    raw = d.engine.fetch(0)
    res = d.engine.check_wait(0, raw, timed_out=False, cycles=33)
    assert not res.retry and res.outcome.status is Status.SUCCESS
    rec = record(d)
    assert (rec.status, rec.result, rec.bytes_completed, rec.cycles) == (0x01, 0, 0, 33)
    assert res.outcome.interrupt is not None and res.outcome.interrupt.handle == 5
    assert head(d, 0) == 1
    assert (eng(d, "DESC_DONE"), eng(d, "DESC_FAILED"), eng(d, "WAIT_RETRIES")) == (1, 0, 0)
    assert eng(d, "ENG_STATUS") >> 16 & 0x7F == 0x01


def test_wait_retry_leaves_the_descriptor_at_the_head():
    d = make()
    enable(d, 0)
    sem_write(d, 0)
    post(d, 0, wait(7, flags=CR_FLAGS | Flag.RCI, int_handle=5))
    irq_before = dict(d.irq.counters)
    for n in (1, 2):
        res = d.engine.check_wait(0, d.engine.fetch(0), timed_out=False, cycles=40)
        assert res.retry and res.outcome.retry and res.outcome.status is Status.NONE
        assert res.outcome.completion is None and res.irq is None
        assert head(d, 0) == 0 and d.adi.adis[0].pending and not d.adi.adis[0].busy
        assert d.memory.read(HOST + CR, 32) == bytes(32)                       # no record
        assert (eng(d, "WAIT_RETRIES"), eng(d, "WAIT_CYCLES")) == (n, 40 * n)
        assert (eng(d, "DESC_DONE"), eng(d, "DESC_FAILED"), eng(d, "DESC_REFUSED")) == (0, 0, 0)
        assert eng(d, "ENG_STATUS") & regmap.ENG_ENG_STATUS_BUSY_MASK == 0
    assert d.irq.counters == irq_before
    assert d.dma.counters["dirtied"] == 0                                       # nothing written
    sem_write(d, 7)
    res = d.engine.check_wait(0, d.engine.fetch(0), timed_out=False, cycles=40)
    assert res.outcome.status is Status.SUCCESS and head(d, 0) == 1 and record(d).status == 1
    assert (eng(d, "WAIT_RETRIES"), eng(d, "DESC_DONE")) == (2, 1)
    assert res.irq.kind == "deliver" and d.irq.counters["CNT_DELIVERED"] == irq_before["CNT_DELIVERED"] + 1


def test_replayed_retry_counts_without_consuming():
    """What a scoreboard replays for a retry the hardware made: the tracker request and the counters."""
    d = make()
    enable(d, 0)
    sem_write(d, 1)                             # true in the model's memory: the replay does not look
    post(d, 0, wait(1))
    raw = d.engine.fetch(0)
    allowed = d.dma.counters["allowed"]
    d.engine.replay_retry(0, raw, cycles=41)
    assert d.dma.counters["allowed"] == allowed + 1 and head(d, 0) == 0
    assert (eng(d, "WAIT_RETRIES"), eng(d, "WAIT_CYCLES"), eng(d, "DESC_DONE")) == (1, 41, 0)
    assert d.engine.dispatch(0, raw).outcome.status is Status.SUCCESS and head(d, 0) == 1


def test_wait_timeout_and_the_consumed_wait():
    d = make()
    enable(d, 0)
    sem_write(d, 3)
    post(d, 0, wait(4, flags=CR_FLAGS | Flag.RCI, int_handle=5), wait(4, slot=1), wait(3, slot=2))
    res = d.engine.check_wait(0, d.engine.fetch(0), timed_out=True, cycles=50)
    out = res.outcome
    assert not res.retry and out.status is Status.WAIT_TIMEOUT and out.interrupt is not None
    assert (record(d).status, record(d).result, record(d).bytes_completed, record(d).cycles) == (0x70, 0, 0, 50)
    assert head(d, 0) == 1 and (eng(d, "DESC_DONE"), eng(d, "DESC_FAILED")) == (1, 1)
    assert eng(d, "ENG_STATUS") >> 16 & 0x7F == 0x70
    # dispatch() runs a WAIT the hardware consumed: condition false -> it timed out; true -> success.
    assert d.engine.dispatch(0, d.engine.fetch(0)).outcome.status is Status.WAIT_TIMEOUT
    assert d.engine.dispatch(0, d.engine.fetch(0)).outcome.status is Status.SUCCESS
    assert [record(d, i).status for i in range(3)] == [0x70, 0x70, 0x01] and head(d, 0) == 3
    assert eng(d, "WAIT_RETRIES") == 0


def test_wait_page_fault_and_bus_error_are_decided_at_once():
    d = make(unmapped=(6,))
    enable(d, 0)
    post(d, 0, wait(1, addr=6 * PAGE + 8), wait(1, slot=1))
    res = d.engine.check_wait(0, d.engine.fetch(0), timed_out=False)
    rec = record(d)
    assert res.outcome.status is Status.PAGE_FAULT and not res.retry
    assert (rec.status, rec.status_write, rec.fault_addr, rec.bytes_completed, rec.result) == \
        (0x03, 0, 6 * PAGE + 8, 0, 0)
    f = d.dma.pop_fault()
    assert (f.pasid, f.page, f.write) == (PASID, 6, False)
    d.engine.bus_errors.add(HOST + SEM, 8, write=False)
    res = d.engine.check_wait(0, d.engine.fetch(0), timed_out=False)
    assert res.outcome.status is Status.HW_ERROR and record(d, 1).status == 0x20
    assert head(d, 0) == 2 and eng(d, "WAIT_RETRIES") == 0


@pytest.mark.parametrize("kw, status", [
    ({"addr": SEM + 4}, Status.ADDR_ALIGN),                                  # semaphore not 8-byte aligned
    ({"completion_addr": CR + 16}, Status.ADDR_ALIGN),                       # record not 32-byte aligned
    ({"addr": SEM + 4, "flags": CR_FLAGS | Flag.RCI, "int_handle": 999}, Status.INVALID_INT_HANDLE),
    ({"addr": SEM + 4, "flags": Flag.RCR}, Status.INVALID_FLAGS),            # flags before alignment
    ({"xfer_size": 0}, Status.SUCCESS),                                      # the size is not checked
    ({"xfer_size": 0xFFFF_FFFF}, Status.SUCCESS),
])
@pytest.mark.parametrize("op", [Opcode.WAIT, Opcode.SIGNAL])
def test_semaphore_checks(op, kw, status):
    d = make()
    enable(d, 0)
    sem_write(d, 9)
    kw = dict(kw)
    completion = kw.pop("completion_addr", None)
    desc = wait(9, **kw) if op is Opcode.WAIT else signal(9, **kw)
    if completion is not None:
        desc.completion_addr = completion
    post(d, 0, desc)
    res = d.engine.check_wait(0, d.engine.fetch(0), timed_out=False)
    assert res.outcome.status is status and not res.retry and head(d, 0) == 1
    if status is Status.SUCCESS or completion is not None:
        assert d.engine.engine.check(res.descriptor) == (status, 0)
    if completion is not None or kw.get("flags") == Flag.RCR:
        assert d.memory.read(HOST + CR, 64) == bytes(64)                        # no record written
    else:
        assert record(d).status == status.value


def test_wait_refused_on_pasid_mismatch():
    d = make()
    enable(d, 1)
    post(d, 1, wait(1, pasid=PASID), wait(1, pasid=PASID + 1, slot=1))    # ADI 1 runs PASID + 1
    res = d.engine.check_wait(1, d.engine.fetch(1), timed_out=False)
    assert res.refused and res.outcome is None and not res.retry
    assert head(d, 1) == 1 and (d.adi.adis[1].state, d.adi.adis[1].error) == (ERROR, ERR_DESC_PASID)
    assert eng(d, "DESC_REFUSED") == 1 and d.memory.read(HOST + CR, 64) == bytes(64)


def test_signal_writes_the_value_and_dirties_the_page():
    d = make(unmapped=(7,))
    enable(d, 0)
    post(d, 0, signal(0x1122_3344_5566_7788, flags=CR_FLAGS | Flag.RCI, int_handle=5),
         signal(1, addr=7 * PAGE, slot=1))
    d.dma.harvest(0)                                          # start with a clean log
    res = d.engine.dispatch(0, d.engine.fetch(0))
    assert res.outcome.status is Status.SUCCESS and res.outcome.interrupt is not None
    assert d.memory.read(HOST + SEM, 8) == bytes.fromhex("8877665544332211")
    assert d.memory.read(HOST + SEM + 8, 8) == bytes(8)
    assert (record(d).status, record(d).bytes_completed, record(d).result) == (1, 0, 0)
    assert d.dma.bits[Bitmap.DIRTY, 0, SEM // PAGE] and d.dma.bits[Bitmap.DIRTY, 0, CR // PAGE]
    assert res.outcome.pages_written == [SEM // PAGE, CR // PAGE]
    res = d.engine.dispatch(0, d.engine.fetch(0))
    rec = record(d, 1)
    assert res.outcome.status is Status.PAGE_FAULT
    assert (rec.status, rec.status_write, rec.fault_addr, rec.bytes_completed) == (0x03, 1, 7 * PAGE, 0)
    f = d.dma.pop_fault()
    assert (f.page, f.write) == (7, True)


def test_signal_bus_error():
    d = make()
    enable(d, 0)
    d.engine.bus_errors.add(HOST + SEM, 8, read=False)
    post(d, 0, signal(5))
    assert d.engine.dispatch(0, d.engine.fetch(0)).outcome.status is Status.HW_ERROR
    assert d.memory.read(HOST + SEM, 8) == bytes(8) and record(d).status == 0x20


def test_engine_binding_and_bad_engine():
    d = make(num_engines=2)
    assert d.read(regmap.GLOBAL_CAP0)[1] >> 24 & 0xF == 2
    assert enable(d, 1, engine=1) == (ENABLED, 0)
    assert d.adi.adis[1].engine == 1 and d.engine.engine_of(1) == 1
    assert d.read(regmap.CMD_ADI_CFG)[1] == (PASID + 1) | 1 << 28
    assert enable(d, 2, engine=2) == (ERROR, ERR_BAD_RING_CONFIG)
    assert enable(d, 3, engine=3) == (ERROR, ERR_BAD_RING_CONFIG)
    assert d.adi.bound(1) == 0b10
    d4 = make(num_engines=4)
    assert enable(d4, 3, engine=3) == (ENABLED, 0) and d4.read(regmap.GLOBAL_CAP0)[1] >> 24 == 4
    d1 = make(num_engines=1)
    assert enable(d1, 0, engine=1) == (ERROR, ERR_BAD_RING_CONFIG)
    # A descriptor executing on engine 1 shows in ENGINES_BUSY, bit 1.
    post(d, 1, signal(1, pasid=PASID + 1))
    res = d.engine.dispatch(1, d.engine.fetch(1), finish=False)
    st = eng(d, "ENG_STATUS")
    assert st & 1 and (st & regmap.ENG_ENG_STATUS_ENGINES_BUSY_MASK) >> 4 == 0b10 and st >> 8 & 0x3F == 1
    d.engine.finish(res)
    assert eng(d, "ENG_STATUS") & 0xF1 == 0


def test_eligibility_mask_commits_atomically():
    d = make()
    assert (eng(d, "ELIGIBLE_CUR_LO"), eng(d, "ELIGIBLE_CUR_HI")) == (ALL_ONES, ALL_ONES)
    assert (eng(d, "ELIGIBLE_LO"), eng(d, "ELIGIBLE_HI")) == (ALL_ONES, ALL_ONES)
    d.write(regmap.ENG_ELIGIBLE_LO, 0b101)
    assert eng(d, "ELIGIBLE_CUR_LO") == ALL_ONES and d.engine.eligible == 2**64 - 1     # staged only
    d.write(regmap.ENG_ELIGIBLE_HI, 0x8000_0000)
    assert eng(d, "ELIGIBLE_CUR_HI") == ALL_ONES
    d.write(regmap.ENG_ELIGIBLE_CMD, 1, strb=0b0010)                 # COMMIT's byte not written
    assert d.engine.eligible == 2**64 - 1
    d.write(regmap.ENG_ELIGIBLE_CMD, 0)
    assert d.engine.eligible == 2**64 - 1
    d.write(regmap.ENG_ELIGIBLE_CMD, regmap.ENG_ELIGIBLE_CMD_COMMIT_MASK)
    assert (eng(d, "ELIGIBLE_CUR_LO"), eng(d, "ELIGIBLE_CUR_HI")) == (0b101, 0x8000_0000)
    assert d.engine.eligible == 1 << 63 | 0b101 and eng(d, "ELIGIBLE_CMD") == 0
    d.write(regmap.ENG_ELIGIBLE_LO, 0)
    assert d.engine.eligible == 1 << 63 | 0b101
    assert (eng(d, "WAIT_RECHECK"), eng(d, "WAIT_TIMEOUT")) == (63, 0x100000)
    assert d.engine.wait_recheck == 64 and d.engine.wait_timeout == 0x100000


def test_timing_dependent_registers_are_volatile():
    assert {"ENG.WAIT_RETRIES", "ENG.WAIT_CYCLES", "ENG.IDLE_INELIGIBLE", "ENG.IDLE_WAITING",
            "ENG.LAST_CYCLES", "ENG.ARB_BUDGET"} <= EngineModel.volatile
    assert "ENG.DESC_DONE" not in EngineModel.volatile


def test_semaphore_timing_kinds():
    d = make()
    enable(d, 0)
    sem_write(d, 1)
    post(d, 0, wait(1), signal(2, slot=1), wait(9, slot=2))
    outs = [d.engine.check_wait(0, d.engine.fetch(0), timed_out=False) for _ in range(3)]
    assert [features(o.descriptor, o.outcome) for o in outs] == [
        ("WAIT", 1, 1, 0, 1), ("SIGNAL", 1, 0, 1, 1), ("WAIT", 1, 1, 0, 0)]
    assert outs[2].retry
    # The RTL's cycles for a WAIT check and a SIGNAL (sw/platform/timing.py, measured on the
    # cross-ring program): a WAIT that retries costs what a satisfied one does.
    t = TimingModel()
    assert [t.descriptor_cycles(o.descriptor, o.outcome) for o in outs] == [28, 23, 28]


# -- the model backend ---------------------------------------------------------------------------

BASE = HOST_BASE


async def _tenants(bus, engines, pasids=None, timeout=None, recheck=None):
    """Domain 0 at BASE (16 pages, pinned), ADI i with PASID 0x42 + i bound to ``engines[i]``, its ring
    at guest page 0 + i * 0x400; IMS handle 5 for PASID 0x42. Returns the rings."""
    pf = PfDriver.of(bus)
    await pf.set_domain(0, BASE, 16)
    assert await pf.pin(0, 0, 16)
    rings = []
    for adi, engine in enumerate(engines):
        pasid = PASID + adi
        await pf.bind_adi(adi, pasid, 0)
        for page in range(16):
            await pf.guest_map(adi, page)
        ring = adi * RING_SIZE * 64
        await bus.write(regmap.CMD_ADI_SEL, adi)
        await bus.write(regmap.CMD_RING_BASE_LO, ring)
        await bus.write(regmap.CMD_RING_BASE_HI, 0)
        await bus.write(regmap.CMD_RING_SIZE, RING_SIZE)
        await bus.write(regmap.CMD_ADI_CFG, pasid | engine << regmap.CMD_ADI_CFG_ENGINE_LSB)
        await bus.write(regmap.CMD_ADI_CMD, regmap.CMD_ADI_CMD_ENABLE_MASK)
        assert await pf.adi_state(adi) == (ENABLED, 0)
        rings.append(Ring(bus, adi, ring, BASE + ring, RING_SIZE))
    if timeout is not None:
        await bus.write(regmap.ENG_WAIT_TIMEOUT, timeout)
    if recheck is not None:
        await bus.write(regmap.ENG_WAIT_RECHECK, recheck)
    return rings


async def _record(bus, slot, limit=200_000):
    """Poll completion record ``slot`` until it is written; return it."""
    for _ in range(limit // 10):
        raw = await bus.mem_read(BASE + CR + 32 * slot, 32)
        if raw[0]:
            return CompletionRecord.unpack(raw)
        await bus.wait_cycles(10)
    raise AssertionError(f"record {slot} never written")


def test_model_backend_signal_releases_wait_on_another_engine():
    data = bytes((7 * i + 3) & 0xFF for i in range(3 * PAGE))

    async def prog(bus, seed):
        ring_a, ring_b = await _tenants(bus, engines=[0, 1])
        await bus.mem_write(BASE + 8 * PAGE, data)
        # B (engine 1) waits for A's semaphore, then copies what A produced.
        await ring_b.post([wait(1, pasid=PASID + 1, slot=2),
                           Descriptor(pasid=PASID + 1, opcode=Opcode.MEMMOVE, src_addr=11 * PAGE + 5,
                                      dst_addr=1 * PAGE, xfer_size=PAGE, flags=CR_FLAGS,
                                      completion_addr=CR + 32 * 3)])
        await bus.wait_cycles(200)          # B's WAIT is checked (and retried) before A starts
        await ring_a.post([Descriptor(pasid=PASID, opcode=Opcode.MEMMOVE, src_addr=8 * PAGE,
                                      dst_addr=11 * PAGE, xfer_size=3 * PAGE, flags=CR_FLAGS,
                                      completion_addr=CR),
                           signal(1, slot=1)])
        recs = [await _record(bus, slot) for slot in range(4)]
        regs = {name: await bus.read(getattr(regmap, "ENG_" + name))
                for name in ("WAIT_RETRIES", "WAIT_CYCLES", "IDLE_WAITING", "DESC_DONE", "DESC_FAILED")}
        copied = await bus.mem_read(BASE + PAGE, PAGE)
        return recs, regs, copied, list(bus.dispatches), list(bus.retries)

    recs, regs, copied, dispatches, retries = run_program(prog)
    assert [r.status for r in recs] == [0x01] * 4
    assert copied == data[5:5 + PAGE]                        # B read what A wrote, not zeros
    by = {(r.adi, r.opcode): r for r in dispatches}
    move_a, signal_a = by[(0, Opcode.MEMMOVE.value)], by[(0, Opcode.SIGNAL.value)]
    wait_b, move_b = by[(1, Opcode.WAIT.value)], by[(1, Opcode.MEMMOVE.value)]
    assert (move_a.engine, signal_a.engine, wait_b.engine, move_b.engine) == (0, 0, 1, 1)
    assert wait_b.start >= signal_a.end and move_b.start >= wait_b.end
    # B's WAIT was retried while A ran, on engine 1, at re-check ticks (64 cycles apart): the hold
    # clears the cycle after a tick, and the check starts after the grant's take and hand-over.
    timing = TimingModel()
    after_tick = 1 + timing.take + timing.load
    assert retries and all(r.adi == 1 and r.engine == 1 and r.status == 0 for r in retries)
    assert any(move_a.start < r.start < move_a.end for r in retries)       # the engines overlapped
    assert all(b.start - a.end >= 1 and (b.start - after_tick) % 64 == 0 for a, b in zip(retries, retries[1:]))
    assert regs["WAIT_RETRIES"] == len(retries)
    assert regs["WAIT_CYCLES"] == sum(r.end - r.start for r in retries)
    # Engine 1 had nothing else to run: idle, waiting, from the cycle after each retry until the
    # hold clears (then it decides, and the grant is taken and handed over).
    checks = retries + [wait_b]
    assert regs["IDLE_WAITING"] == sum(b.start - (timing.take + timing.load) - (a.end + 1)
                                       for a, b in zip(checks, checks[1:])) > 0
    assert (regs["DESC_DONE"], regs["DESC_FAILED"]) == (4, 0)


@pytest.mark.parametrize("timeout, recheck", [(500, 63), (0, 63), (1000, 199)])
def test_model_backend_wait_times_out(timeout, recheck):
    async def prog(bus, seed):
        (ring,) = await _tenants(bus, engines=[1], timeout=timeout, recheck=recheck)
        allowed = await bus.read(regmap.DMA_CNT_ALLOWED)
        await ring.post([wait(1, flags=CR_FLAGS | Flag.RCI, int_handle=5), signal(3, slot=1)])
        rec = await _record(bus, 0)
        await _record(bus, 1)
        head = await ring.read_head()
        allowed = await bus.read(regmap.DMA_CNT_ALLOWED) - allowed
        return rec, head, list(bus.retries), list(bus.dispatches), await bus.read(regmap.ENG_WAIT_RETRIES), allowed

    rec, head, retries, dispatches, count, allowed = run_program(prog)
    # Tracker requests: each descriptor fetched once (a retried WAIT stays in its slot), the
    # semaphore read at every check, SIGNAL's write and the two records.
    assert allowed == 2 + (len(retries) + 1) + 1 + 2
    assert rec.status == Status.WAIT_TIMEOUT.value and (rec.result, rec.bytes_completed) == (0, 0)
    assert head == 2 and count == len(retries)
    final = dispatches[0]
    assert final.opcode == Opcode.WAIT.value and final.status == 0x70 and final.engine == 1
    # The first retry is stamped when its check reports (its end); a check finds the WAIT timed
    # out if it is taken (``load`` cycles before it starts) ``timeout`` or more cycles after that.
    timing = TimingModel()
    first = retries[0].end
    assert all(r.start - timing.load - first < timeout for r in retries[1:])
    assert final.start - timing.load - first >= timeout and retries[-1].end <= final.start
    if timeout == 0:
        assert len(retries) == 1                     # the first failed check never times out
    else:
        assert final.start < first + timeout + (recheck + 1) + 100
    assert all((b.start - 1 - timing.take - timing.load) % (recheck + 1) == 0 for b in retries[1:] + [final])
    assert dispatches[1].opcode == Opcode.SIGNAL.value and dispatches[1].status == 1


def test_model_backend_mask_holds_other_adis_until_reopened():
    fill = lambda adi, slot: Descriptor(pasid=PASID + adi, opcode=Opcode.MEMFILL, src_addr=0x0101_0101_0101_0101 * (adi + 1),
                                        dst_addr=(9 + adi) * PAGE, xfer_size=256, flags=CR_FLAGS,
                                        completion_addr=CR + 32 * slot)

    async def prog(bus, seed):
        rings = await _tenants(bus, engines=[0, 1, 0])
        await bus.write(regmap.ENG_ELIGIBLE_LO, 0b001)          # only ADI 0 ...
        await bus.write(regmap.ENG_ELIGIBLE_HI, 0)
        await bus.write(regmap.ENG_ELIGIBLE_CMD, regmap.ENG_ELIGIBLE_CMD_COMMIT_MASK)
        await rings[1].post([fill(1, 1)])
        doorbell = bus.now()
        await rings[2].post([fill(2, 2)])
        doorbell = doorbell, bus.now()
        await rings[0].post([fill(0, 0)])
        await _record(bus, 0)
        await bus.wait_cycles(3000)
        held = [await bus.mem_read(BASE + CR + 32 * s, 1) for s in (1, 2)]
        heads = [await rings[i].read_head() for i in (1, 2)]
        await bus.write(regmap.ENG_ELIGIBLE_LO, ALL_ONES)       # staged: nothing changes yet
        await bus.wait_cycles(3000)
        still = [await bus.mem_read(BASE + CR + 32 * s, 1) for s in (1, 2)]
        idle = await bus.read(regmap.ENG_IDLE_INELIGIBLE), bus.now()
        reopened = bus.now()
        await bus.write(regmap.ENG_ELIGIBLE_CMD, regmap.ENG_ELIGIBLE_CMD_COMMIT_MASK)
        recs = [await _record(bus, s) for s in (1, 2)]
        data = [await bus.mem_read(BASE + (9 + a) * PAGE, 256) for a in (1, 2)]
        waiting = await bus.read(regmap.ENG_IDLE_WAITING)
        return held, heads, still, idle, doorbell, reopened, recs, data, list(bus.dispatches), waiting

    held, heads, still, idle, doorbell, reopened, recs, data, dispatches, waiting = run_program(prog)
    assert held == [b"\0", b"\0"] and heads == [0, 0] and still == [b"\0", b"\0"]
    assert [r.status for r in recs] == [1, 1]
    assert data == [b"\x02" * 256, b"\x03" * 256]
    assert [d.adi for d in dispatches] == [0, 1, 2] or [d.adi for d in dispatches] == [0, 2, 1]
    assert all(d.start >= reopened for d in dispatches if d.adi != 0)
    # One prefetch serves every engine, lowest ADI first: ADI 1, then ADI 0, then ADI 2. Engine 0
    # decides only once ADI 2's fetch is done too (fetches go first), so ADI 0 starts after three
    # fetches and the grant's take and hand-over. Until the read: engine 1 sat idle with ADI 1
    # ready but ineligible; engine 0 with ADI 2 so, from the cycle after ADI 0's descriptor ended.
    timing = TimingModel()
    (idle, read_at), first, (doorbell1, doorbell2) = idle, dispatches[0], doorbell
    rung = doorbell1 - timing.doorbell                # the doorbell reached the Device before its response
    assert first.adi == 0 and first.start == rung + 3 * timing.prefetch + timing.take + timing.load
    assert first.end < read_at - 5000
    assert idle == (read_at - (rung + timing.prefetch)) + (read_at - (first.end + 1))
    assert waiting == 0


def test_model_backend_abort_ends_a_wait():
    """ABORT drops the WAIT at the head; a WAIT posted after a new ENABLE gets its own timeout."""
    async def prog(bus, seed):
        (ring,) = await _tenants(bus, engines=[0], timeout=2000)
        pf = PfDriver.of(bus)
        await ring.post([wait(1)])
        first = bus.now()
        await bus.wait_cycles(1500)
        assert await pf.adi_command(0, regmap.CMD_ADI_CMD_ABORT_MASK) == (DISABLED, 0)
        await bus.wait_cycles(100)                                # a check in flight ends
        assert await bus.mem_read(BASE + CR, 1) == b"\0"         # an aborted WAIT writes no record
        before = len(bus.retries)
        assert await pf.adi_command(0, regmap.CMD_ADI_CMD_ENABLE_MASK) == (ENABLED, 0)
        again = Ring(bus, 0, 0, BASE, RING_SIZE)
        await bus.wait_cycles(first + 2100 - bus.now())     # past the aborted WAIT's timeout
        reposted = bus.now()
        await again.post([wait(1, slot=1)])
        rec = await _record(bus, 1)
        return before, reposted, list(bus.retries), list(bus.dispatches), rec

    before, reposted, retries, dispatches, rec = run_program(prog)
    assert before >= 10 and rec.status == Status.WAIT_TIMEOUT.value
    new = [r for r in retries[before:]]
    assert new and new[0].start > reposted
    assert len(dispatches) == 1 and dispatches[0].start >= new[0].start + 2000
