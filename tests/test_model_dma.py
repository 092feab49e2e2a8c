"""Unit tests of the DMA tracker reference model (sw/model/dma.py) on its own."""

import random

import numpy as np
import pytest

from siov.rtl import regmap
from siov.rtl.csr.bus import Resp
from siov.rtl.dma.defs import GUEST_MAP, Bitmap, GuestResult, RangeOp, Reason, guest_word
from siov.rtl.params import DeviceParams
from siov.sw.model.dma import DmaModel, FaultRecord, bitmap_to_vfio, vfio_to_pages

P = DeviceParams(num_adis=4, num_domains=2, pages_per_domain=128)


def model():
    m = DmaModel(P, fault_depth=4, fault_quota=4)       # no quota: the queue as one
    m.set_adi(0, pasid=0x11, domain=0)
    m.set_adi(1, pasid=0x22, domain=1)
    m.set_domain(0, 0x1_0000_0000, 100)
    m.set_domain(1, 0x2_0000_0000, 128)
    return m


def test_map_requires_pin_and_translation():
    m = model()
    assert m.guest_map(0, 5) == GuestResult.NOT_PINNED
    assert not m.request(0x11, 5, True).allowed
    assert m.range_op(RangeOp.PIN, 0, 0, 10)
    assert m.guest_map(0, 5) == GuestResult.OK
    d = m.request(0x11, 5, True)
    assert d.allowed and d.domain == 0 and d.addr == 0x1_0000_0000 + 5 * 4096
    assert m.read_word(Bitmap.DIRTY, 0, 0) == 1 << 5
    # Domain 1 never mapped page 5: the other guest is blocked.
    d = m.request(0x22, 5, False)
    assert not d.allowed and d.fault == FaultRecord(Reason.READ_UNMAPPED, 0x22, 5, False)


def test_fault_reasons_and_overflow():
    m = model()
    m.range_op(RangeOp.PIN, 0, 0, 128)
    for page in (3, 120):
        m.guest_map(0, page)
    assert m.request(0x99, 3, True).fault.reason == Reason.NO_DOMAIN
    assert m.request(0x11, 4, True).fault.reason == Reason.WRITE_UNMAPPED
    assert m.request(0x11, 4, False).fault.reason == Reason.READ_UNMAPPED
    assert m.request(0x11, 500, False).fault.reason == Reason.READ_UNMAPPED
    assert m.request(0x11, 120, True).fault.reason == Reason.OUT_OF_WINDOW   # limit 100
    assert len(m.faults) == 4 and m.overflow and m.ovf_count == 1
    assert m.counters == {"allowed": 0, "blocked": 5, "dirtied": 0}
    m.pop_fault()
    m.request(0x11, 4, True)
    assert len(m.faults) == 4 and m.ovf_count == 1
    m.clear_overflow()
    assert not m.overflow and m.ovf_count == 0
    assert m.lost == [1, 0, 0]          # domain 0's, domain 1's, and those of no domain


def _flooded(attacker_faults, depth=16, quota=None):
    """Domain 0 writes an unmapped page ``attacker_faults`` times, then domain 1 once."""
    m = DmaModel(P, fault_depth=depth, fault_quota=quota)
    m.set_adi(0, pasid=0x11, domain=0)
    m.set_adi(1, pasid=0x22, domain=1)
    for _ in range(attacker_faults):
        m.request(0x11, 4, True)
    victim = m.request(0x22, 7, True).fault
    return m, victim


@pytest.mark.parametrize("flood", [40, 1000])
def test_quota_keeps_the_victims_fault(flood):
    """The attacker holds its quota (a quarter of the queue by default); the victim's one
    fault is queued; what was lost is counted, in total and as the attacker's."""
    m, victim = _flooded(flood)
    assert m.fault_quota == 4
    assert list(m.faults) == [FaultRecord(Reason.WRITE_UNMAPPED, 0x11, 4, True)] * 4 + [victim]
    assert m.ovf_count == flood - 4 and m.overflow
    assert m.lost == [flood - 4, 0, 0]


def test_without_a_quota_the_flood_crowds_the_victim_out():
    m, victim = _flooded(40, quota=16)
    assert victim not in m.faults and m.lost == [24, 1, 0]


def test_quota_frees_with_pops_and_the_full_queue_still_loses():
    """A pop of a domain's record gives it room again; a queue full of several domains'
    records loses even a fault of a domain below its quota (and counts it as that domain's)."""
    params = DeviceParams(num_adis=8, num_domains=8, pages_per_domain=128)
    m = DmaModel(params, fault_depth=8, fault_quota=2)
    for d in range(5):
        m.set_adi(d, pasid=0x10 + d, domain=d)
    for d in range(4):
        for _ in range(3):
            m.request(0x10 + d, 1, False)
    assert len(m.faults) == 8 and m.lost[:4] == [1, 1, 1, 1]
    m.request(0x14, 1, False)                     # domain 4 holds nothing, and the queue is full
    assert m.lost[4] == 1 and m.ovf_count == 5
    assert m.pop_fault().pasid == 0x10
    m.request(0x14, 1, False)                     # now there is room, and domain 4 is below quota
    assert m.faults[-1].pasid == 0x14
    m.request(0x14, 1, False)                     # the queue is full again
    assert m.lost[4] == 2
    assert m.pop_fault().pasid == 0x10
    m.request(0x10, 1, False)                     # domain 0 holds none now: queued
    assert m.faults[-1].pasid == 0x10
    m.request(0x99, 1, False)                     # no domain: source NUM_DOMAINS, queue full
    assert m.lost[8] == 1


def test_lost_window_reads_and_clears():
    """FAULT_LOST word s: source s's lost faults, cleared by the read; FAULT_CAP: depth and quota."""
    m, _ = _flooded(40)
    m.request(0x99, 1, True)                      # no domain: its own source, below quota
    cap = m.read(regmap.DMA_FAULT_CAP)[1]
    assert (cap & regmap.DMA_FAULT_CAP_DEPTH_MASK) >> regmap.DMA_FAULT_CAP_DEPTH_LSB == 16
    assert (cap & regmap.DMA_FAULT_CAP_QUOTA_MASK) >> regmap.DMA_FAULT_CAP_QUOTA_LSB == 4
    lost = regmap.DMA_FAULT_LOST_BASE
    assert m.read(lost) == (Resp.OKAY, 36)
    assert m.read(lost) == (Resp.OKAY, 0)
    assert m.read(lost + 4) == (Resp.OKAY, 0)
    assert m.read(lost + 8) == (Resp.OKAY, 0)     # no domain (entry NUM_DOMAINS = 2)
    assert m.read(lost + 12)[0] == Resp.DECERR
    assert m.write(lost, 0) == Resp.SLVERR
    assert m.read(regmap.DMA_FAULT_OVF_COUNT) == (Resp.OKAY, 36)   # the total is not cleared by it


def test_out_beat_of_every_request():
    """Every request has an ``out`` beat (OUT_LAYOUT fields): allowed and blocked alike."""
    from siov.rtl.dma.tracker import OUT_LAYOUT
    m = model()
    m.range_op(RangeOp.PIN, 0, 0, 128)
    for page in (3, 120):
        m.guest_map(0, page)
    fields = {name for name, _ in OUT_LAYOUT}
    assert fields == {"addr", "write", "pasid", "domain", "page", "fault", "reason"}
    d = m.request(0x11, 3, True)
    assert d.reason == 0
    assert d.out_beat() == {"addr": 0x1_0000_0000 + 3 * 4096, "write": 1, "pasid": 0x11, "domain": 0,
                            "page": 3, "fault": 0, "reason": 0}
    # Blocked: fault 1, the reason, address 0; domain 0 when there is none.
    assert m.request(0x99, 3, False).out_beat() == {"addr": 0, "write": 0, "pasid": 0x99, "domain": 0,
                                                    "page": 3, "fault": 1, "reason": Reason.NO_DOMAIN}
    d = m.request(0x22, 3, True)              # domain 1 never mapped page 3
    assert d.domain == 1 and d.reason == Reason.WRITE_UNMAPPED == d.fault.reason
    assert d.out_beat() == {"addr": 0, "write": 1, "pasid": 0x22, "domain": 1, "page": 3,
                            "fault": 1, "reason": Reason.WRITE_UNMAPPED}
    assert m.request(0x11, 500, False).out_beat()["reason"] == Reason.READ_UNMAPPED
    d = m.request(0x11, 120, True)            # mapped, beyond the window limit 100
    assert d.out_beat() == {"addr": 0, "write": 1, "pasid": 0x11, "domain": 0, "page": 120,
                            "fault": 1, "reason": Reason.OUT_OF_WINDOW}
    # Every beat fits its field.
    for dec in (m.check(0x11, 3, True), m.check(0x99, 3, False)):
        for name, f in OUT_LAYOUT:
            assert 0 <= dec.out_beat()[name] < 1 << f.width, name
    # The fault record is still queued (and counted) exactly as before.
    assert m.counters == {"allowed": 1, "blocked": 4, "dirtied": 1}
    assert [r.reason for r in m.faults] == [Reason.NO_DOMAIN, Reason.WRITE_UNMAPPED, Reason.READ_UNMAPPED,
                                           Reason.OUT_OF_WINDOW]


def test_unmap_lazy_unpin_and_reclaim():
    m = model()
    m.range_op(RangeOp.PIN, 1, 30, 4)
    for page in range(30, 34):
        assert m.guest_map(1, page) == GuestResult.OK
    assert m.guest_unmap(1, 31) == GuestResult.OK
    assert m.guest_unmap(1, 31) == GuestResult.NOT_MAPPED
    assert m.guest_unmap(1, 32) == GuestResult.OK
    assert m.guest_map(1, 32) == GuestResult.OK     # mapped again: reclaim keeps it
    assert m.read_word(Bitmap.UNMAP, 1, 0) == 1 << 31
    assert m.range_op(RangeOp.RECLAIM, 1, 0, 128)
    assert m.read_word(Bitmap.PINNED, 1, 0) == (1 << 30) and m.read_word(Bitmap.PINNED, 1, 1) == 0b11
    assert m.read_word(Bitmap.UNMAP, 1, 0) == 0
    # Mapped implies pinned after every operation.
    m.range_op(RangeOp.UNPIN, 1, 32, 1)
    assert not (m.bits[Bitmap.MAPPED] & ~m.bits[Bitmap.PINNED]).any()
    assert not m.range_op(RangeOp.PIN, 1, 100, 29) and m.op_err
    assert not m.range_op(RangeOp.PIN, 2, 0, 1)
    assert m.guest_map(3, 0) == GuestResult.BAD_ADI
    assert m.guest_map(0, 128) == GuestResult.OUT_OF_RANGE


def test_harvest_vfio_format_and_no_clear():
    m = model()
    m.range_op(RangeOp.PIN, 0, 0, 100)
    pages = [0, 1, 31, 32, 63, 64, 99]
    for p in pages:
        m.guest_map(0, p)
        m.request(0x11, p, True)
    m.request(0x11, 2, False)   # a read dirties nothing
    buf = m.harvest(0, no_clear=True)
    assert len(buf) == 16 and vfio_to_pages(buf) == pages
    assert int.from_bytes(buf[:8], "little") == (1 << 0) | (1 << 1) | (1 << 31) | (1 << 32) | (1 << 63)
    assert vfio_to_pages(m.harvest(0)) == pages
    assert vfio_to_pages(m.harvest(0)) == []
    assert bitmap_to_vfio(np.array([1, 0, 1], dtype=bool)) == bytes([5]) + bytes(7)


def test_harvest_race_rule():
    """A write racing a harvest follows it: it appears in the next harvest, never in neither."""
    m = model()
    m.range_op(RangeOp.PIN, 0, 0, 64)
    for p in range(64):
        m.guest_map(0, p)
    # Bit not yet set: the racing write goes to the next harvest.
    d = m.apply(m.check(0x11, 7, True), set_dirty=False)
    assert m.harvest_word(0, 0, racing=[7]) == 0
    assert m.harvest_word(0, 0) == 1 << 7
    # Bit already set by an earlier write: that write is reported now, the
    # racing one by the next harvest.
    m.request(0x11, 9, True)
    m.apply(m.check(0x11, 9, True), set_dirty=False)
    assert m.harvest_word(0, 0, racing=[9]) == 1 << 9
    assert m.harvest_word(0, 0) == 1 << 9
    assert m.harvest_word(0, 0) == 0
    # NO_CLEAR: the racing write stays set.
    m.apply(m.check(0x11, 3, True), set_dirty=False)
    assert m.harvest_word(0, 0, no_clear=True, racing=[3]) == 0
    assert m.harvest_word(0, 0) == 1 << 3
    with pytest.raises(ValueError):
        m.harvest_word(0, 0, racing=[40])
    assert d.allowed


def test_random_exactly_once():
    """Random writes and harvests: every page written between two harvests is in the next one."""
    rng = random.Random(4)
    m = model()
    m.range_op(RangeOp.PIN, 0, 0, 128)
    m.set_domain(0, 0, 128)
    for p in range(128):
        m.guest_map(0, p)
    written = set()
    for _ in range(200):
        for _ in range(rng.randrange(20)):
            p = rng.randrange(128)
            written.add(p)
            m.request(0x11, p, True)
        word = rng.randrange(4)
        racing = [32 * word + rng.randrange(32)] if rng.random() < 0.3 else []
        for p in racing:
            m.apply(m.check(0x11, p, True), set_dirty=False)
        before = {p for p in written if p // 32 == word}
        got = m.harvest_word(0, word, racing=racing)
        got_pages = {32 * word + i for i in range(32) if got >> i & 1}
        assert got_pages == before
        written -= got_pages
        written |= set(racing)


def test_register_interface():
    m = DmaModel(P)
    assert m.write(regmap.DMA_ADI_SEL, 1) == Resp.OKAY
    m.write(regmap.DMA_ADI_ENTRY, (1 << 31) | (1 << 20) | 0x33)
    m.write(regmap.DMA_ADI_CMD, 1)
    assert m.lookup(0x33) == 1
    assert m.read(regmap.DMA_ADI_CUR) == (Resp.OKAY, (1 << 31) | (1 << 20) | 0x33)
    assert m.read(regmap.DMA_ADI_CMD) == (Resp.OKAY, 0)
    m.write(regmap.DMA_OP_START, 4)
    m.write(regmap.DMA_OP_COUNT, 40)
    m.write(regmap.DMA_OP, (1 << 31) | (1 << 8) | RangeOp.PIN)
    assert m.read(regmap.DMA_STATUS) == (Resp.OKAY, 0)
    m.write(regmap.DMA_GUEST_BASE + GUEST_MAP, guest_word(1, 6))
    assert m.read(regmap.DMA_GUEST_STATUS)[1] == GuestResult.OK
    m.write(regmap.DMA_GUEST_BASE + GUEST_MAP, guest_word(1, 2))
    assert m.read(regmap.DMA_GUEST_STATUS)[1] == GuestResult.NOT_PINNED
    m.write(regmap.DMA_BMAP_SEL, (1 << 8) | Bitmap.PINNED)
    assert m.read(regmap.DMA_BMAP_BASE) == (Resp.OKAY, 0xFFFFFFF0)
    assert m.read(regmap.DMA_BMAP_BASE + 4) == (Resp.OKAY, 0xFFF)
    assert m.read(regmap.DMA_BMAP_BASE + 16)[0] == Resp.DECERR
    assert m.write(regmap.DMA_HARVEST_BASE, 0) == Resp.SLVERR
    assert m.write(regmap.DMA_STATUS, 1) == Resp.SLVERR
    m.write(regmap.DMA_OP, (1 << 31) | (5 << 8))
    assert m.read(regmap.DMA_STATUS) == (Resp.OKAY, 2)
