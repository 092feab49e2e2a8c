"""Unit tests of the IRU reference model (sw/model/irq.py) on its own."""

import random

import pytest

from siov.rtl import regmap
from siov.rtl.csr.bus import Resp
from siov.sw.model.irq import (FAULT_ENTRY_NOT_PRESENT, FAULT_HANDLE_BEYOND_TABLE,
                               FAULT_PASID_MISMATCH, IrqModel, Message, ReplayQueueFull,
                               ims_ctrl, msi_address)

IMS = regmap.IRQ_IMS_BASE


def ctrl_addr(i):
    return IMS + 16 * i + 12


def irq(handle, pasid):
    return Message(True, pasid, handle)


def test_deliver_dest_and_vector():
    m = IrqModel(entries=16)
    m.set_entry(3, dest=0x5A, vector=0x41, pasid=7)
    o = m.process(irq(3, 7))
    assert (o.kind, o.dest, o.vector, o.pasid, o.handle) == ("deliver", 0x5A, 0x41, 7, 3)
    assert m.read(regmap.IRQ_CNT_DELIVERED) == (Resp.OKAY, 1)


def test_dma_passes_unchanged():
    m = IrqModel()
    msg = Message(False, 0x12345, 0xFFFF, addr=0xDEAD_BEEF_0000, data=0x1234)
    o = m.process(msg)
    assert o.kind == "dma" and o.message is msg
    assert m.read(regmap.IRQ_CNT_DMA) == (Resp.OKAY, 1)


@pytest.mark.parametrize("handle,setup,pasid,reason", [
    (16, False, 1, FAULT_HANDLE_BEYOND_TABLE),
    (0xFFFF, False, 1, FAULT_HANDLE_BEYOND_TABLE),
    (2, False, 1, FAULT_ENTRY_NOT_PRESENT),
    (1, True, 2, FAULT_PASID_MISMATCH),
])
def test_fault_reasons(handle, setup, pasid, reason):
    m = IrqModel(entries=16)
    if setup:
        m.set_entry(1, dest=1, vector=0x30, pasid=1)
    o = m.process(irq(handle, pasid))
    assert (o.kind, o.reason) == ("fault", reason)
    _, rec0 = m.read(regmap.IRQ_FAULT_REC0)
    _, rec1 = m.read(regmap.IRQ_FAULT_REC1)
    assert rec0 == reason | 1 << 9 | pasid << 12
    assert rec1 == handle
    m.write(regmap.IRQ_FAULT_CTRL, regmap.IRQ_FAULT_CTRL_POP_MASK)
    assert m.read(regmap.IRQ_FAULT_REC0) == (Resp.OKAY, 0)


def test_not_present_addresses():
    m = IrqModel(entries=16)
    base = IMS + 16 * 4
    m.write(base, 0xFED00000)            # not 0xFEE
    m.write(base + 12, 0)
    assert m.process(irq(4, 0)).reason == FAULT_ENTRY_NOT_PRESENT
    m.write(base, msi_address(1))
    m.write(base + 4, 1)                 # address_hi set: not an x86 MSI address
    assert m.process(irq(4, 0)).reason == FAULT_ENTRY_NOT_PRESENT
    m.write(base + 4, 0)
    assert m.process(irq(4, 0)).kind == "deliver"


def test_pasid_disabled_accepts_any_pasid():
    m = IrqModel(entries=16)
    m.set_entry(0, dest=2, vector=0x20, pasid=None)
    assert all(m.process(irq(0, p)).kind == "deliver" for p in (0, 1, 0xFFFFF))


def test_mask_pend_unmask_delivers_once():
    m = IrqModel(entries=16)
    m.set_entry(5, dest=9, vector=0x99, pasid=3, mask=True)
    assert m.process(irq(5, 3)).kind == "pend"
    assert m.process(irq(5, 3)).kind == "pend"      # coalesced in one pending bit
    assert m.read(ctrl_addr(5))[1] & 0b10
    assert m.read(regmap.IRQ_CNT_PENDED)[1] == 2
    m.write(ctrl_addr(5), ims_ctrl(mask=False, pasid=3))
    assert not m.read(ctrl_addr(5))[1] & 0b10
    outs = m.drain_replays()
    assert [(o.kind, o.dest, o.vector, o.replay) for o in outs] == [("deliver", 9, 0x99, True)]
    assert m.drain_replays() == []


def test_pasid_change_discards_pending():
    m = IrqModel(entries=16)
    m.set_entry(5, dest=9, vector=0x99, pasid=3, mask=True)
    m.process(irq(5, 3))
    m.write(ctrl_addr(5), ims_ctrl(mask=False, pasid=4))
    assert m.drain_replays() == []
    assert m.read(ctrl_addr(5))[1] & 0b10 == 0


def test_replay_rechecks_presence_and_mask():
    m = IrqModel(entries=16)
    m.set_entry(2, dest=1, vector=0x31, pasid=1, mask=True)
    m.process(irq(2, 1))
    m.write(ctrl_addr(2), ims_ctrl(mask=False, pasid=1))
    m.write(IMS + 32, 0)                             # address cleared before the replay runs
    (o,) = m.drain_replays()
    assert (o.kind, o.reason, o.pasid) == ("fault", FAULT_ENTRY_NOT_PRESENT, 1)


def test_pending_bit_read_only():
    m = IrqModel(entries=16)
    m.set_entry(1, dest=1, vector=1, mask=True)
    m.write(ctrl_addr(1), 0xFFFFFFFF)
    assert m.read(ctrl_addr(1))[1] == 0xFFFFFFFD


def test_replay_queue_bound():
    m = IrqModel(entries=16, replay_depth=2)
    for i in range(3):
        m.set_entry(i, dest=i, vector=i, mask=True)
        m.process(irq(i, 0))
    m.write(ctrl_addr(0), 0)
    m.write(ctrl_addr(1), 0)
    with pytest.raises(ReplayQueueFull):
        m.write(ctrl_addr(2), 0)


def test_fault_queue_overflow_never_loses():
    m = IrqModel(entries=16, fault_depth=4)
    for i in range(10):
        m.process(irq(100 + i, i))
    _, status = m.read(regmap.IRQ_FAULT_STATUS)
    assert status == 4 | 1 << 8
    assert m.read(regmap.IRQ_FAULT_OVF_COUNT)[1] == 6
    assert m.read(regmap.IRQ_CNT_FAULTED)[1] == 10
    handles = []
    while m.read(regmap.IRQ_FAULT_REC0)[1] & 1 << 9:
        handles.append(m.read(regmap.IRQ_FAULT_REC1)[1])
        m.write(regmap.IRQ_FAULT_CTRL, regmap.IRQ_FAULT_CTRL_POP_MASK)
    assert handles == [100, 101, 102, 103]
    assert m.read(regmap.IRQ_FAULT_STATUS)[1] == 1 << 8          # sticky
    m.write(regmap.IRQ_FAULT_CTRL, regmap.IRQ_FAULT_CTRL_CLEAR_OVERFLOW_MASK)
    assert m.read(regmap.IRQ_FAULT_STATUS)[1] == 0
    assert m.read(regmap.IRQ_FAULT_OVF_COUNT)[1] == 0


@pytest.mark.parametrize("flood", [40, 1000])
def test_forged_handles_do_not_crowd_out_a_victims_fault(flood):
    """An attacker's forged handles (PASID_MISMATCH under its own PASID) hold at most the quota
    of its PASID's source; the victim's fault, under a PASID of another source, is queued; the
    losses are counted as the attacker's source's (FAULT_LOST, read and cleared)."""
    m = IrqModel(entries=16)
    attacker, victim = 0x40, 0x41                  # sources 0 and 1 (low 3 bits)
    m.set_entry(5, dest=2, vector=0x52, pasid=victim)
    for _ in range(flood):
        m.process(irq(5, attacker))                # the victim's handle, forged
    m.process(irq(9, victim))                      # the victim's own fault: entry 9 not present
    cap = m.read(regmap.IRQ_FAULT_CAP)[1]
    assert cap == 16 | 4 << 8 | 3 << 16
    records = []
    while m.read(regmap.IRQ_FAULT_REC0)[1] & regmap.IRQ_FAULT_REC0_VALID_MASK:
        records.append(m.read(regmap.IRQ_FAULT_REC0)[1] >> regmap.IRQ_FAULT_REC0_PASID_LSB)
        m.write(regmap.IRQ_FAULT_CTRL, regmap.IRQ_FAULT_CTRL_POP_MASK)
    assert records == [attacker] * 4 + [victim]
    assert m.read(regmap.IRQ_FAULT_OVF_COUNT)[1] == flood - 4
    lost = regmap.IRQ_FAULT_LOST_BASE
    assert [m.read(lost + 4 * s)[1] for s in range(8)] == [flood - 4] + [0] * 7
    assert m.read(lost)[1] == 0                    # the read cleared it
    assert m.read(lost + 4 * 8)[0] == Resp.DECERR
    assert m.write(lost, 0) == Resp.SLVERR


def test_bus_responses():
    m = IrqModel(entries=256)
    assert m.read(IMS + 16 * 256) == (Resp.DECERR, 0)
    assert m.write(IMS + 16 * 2047 + 12, 1) == Resp.DECERR
    assert m.read(regmap.IRQ_BASE + 0x40) == (Resp.DECERR, 0)
    assert m.write(regmap.IRQ_CNT_DELIVERED, 1) == Resp.SLVERR
    assert m.read(regmap.IRQ_FAULT_CTRL) == (Resp.OKAY, 0)
    m.write(IMS + 8, 0xAABBCCDD)
    m.write(IMS + 8, 0x00EE0000, 0x4)
    assert m.read(IMS + 8) == (Resp.OKAY, 0xAAEECCDD)


def test_counter_clear():
    m = IrqModel(entries=16)
    m.process(Message(False, 0, 0))
    m.process(irq(0, 0))
    m.write(regmap.IRQ_CNT_CTRL, 1)
    for a in (regmap.IRQ_CNT_DMA, regmap.IRQ_CNT_FAULTED, regmap.IRQ_CNT_DELIVERED):
        assert m.read(a)[1] == 0


def test_isolation_random():
    """No delivery ever reaches an entry whose PASID differs from the message's."""
    rng = random.Random(1)
    m = IrqModel(entries=16)
    for i in range(16):
        if rng.random() < 0.8:
            m.set_entry(i, dest=i, vector=i, pasid=rng.randrange(4), mask=rng.random() < 0.2)
    for _ in range(5000):
        if rng.random() < 0.05:
            i = rng.randrange(16)
            m.write(ctrl_addr(i), ims_ctrl(mask=rng.random() < 0.3, pasid=rng.randrange(4)))
            m.drain_replays()
        h = rng.choice([rng.randrange(16), rng.randrange(1 << 16)])
        o = m.process(irq(h, rng.randrange(4)))
        if o.kind == "deliver":
            ctrl = m.ims[h][3]
            assert not ctrl & 0b1000 or ctrl >> 12 == o.pasid
