"""Unit tests of the ADI block reference model (sw/model/adi.py), at register level."""

from siov.rtl import regmap
from siov.rtl.csr.bus import Resp
from siov.rtl.params import DeviceParams
from siov.sw.model.adi import (DISABLED, DRAINING, ENABLED, ERR_BAD_RING_CONFIG, ERR_TAIL_BEYOND_RING,
                               ERROR, PAGE_HEAD, PAGE_STATE, AdiModel, page_address)
from siov.sw.model.csr import CsrModel

ENABLE, DRAIN, ABORT, RESET_ERROR = 1, 2, 4, 8


def configure(m, adi, *, base=0x1234_5678_9ABC_DEC0, size=16, pasid=0x77, domain=3):
    assert m.write(regmap.CMD_ADI_SEL, adi) == Resp.OKAY
    m.write(regmap.CMD_RING_BASE_LO, base & 0xFFFF_FFFF)
    m.write(regmap.CMD_RING_BASE_HI, base >> 32)
    m.write(regmap.CMD_RING_SIZE, size)
    m.write(regmap.CMD_ADI_CFG, pasid | domain << 20)
    return m.write(regmap.CMD_ADI_CMD, ENABLE)


def status(m, adi):
    m.write(regmap.CMD_ADI_SEL, adi)
    _, st = m.read(regmap.CMD_ADI_STATUS)
    _, ptrs = m.read(regmap.CMD_ADI_PTRS)
    return st & 3, st >> 4 & 0xF, ptrs & 0xFFF, ptrs >> 16 & 0xFFF


def test_enable_doorbell_consume():
    m = AdiModel()
    assert configure(m, 2) == Resp.OKAY
    a = m.adis[2]
    assert (a.state, a.size, a.base, a.pasid, a.domain) == (ENABLED, 16, 0x1234_5678_9ABC_DEC0, 0x77, 3)
    assert m.write(page_address(2), 5) == Resp.OKAY
    assert m.pending() == 1 << 2
    assert status(m, 2) == (ENABLED, 0, 0, 5)
    for _ in range(5):
        assert m.consume(2)
    assert not m.consume(2) and m.pending() == 0
    assert m.read(page_address(2, PAGE_HEAD)) == (Resp.OKAY, 5)
    # Wrap around the ring.
    m.write(page_address(2), 1)
    for _ in range(12):
        m.consume(2)
    assert m.adis[2].head == 1 and m.pending() == 0


def test_tail_beyond_ring_and_reset_error():
    m = AdiModel()
    configure(m, 0, size=8)
    m.write(page_address(0), 3)
    assert m.write(page_address(0), 8) == Resp.OKAY
    assert status(m, 0) == (ERROR, ERR_TAIL_BEYOND_RING, 0, 3)
    assert m.pending() == 0
    m.write(page_address(0), 1)
    assert m.dropped == 1
    assert m.read(regmap.CMD_DROPPED_DOORBELLS) == (Resp.OKAY, 1)
    m.write(regmap.CMD_ADI_CMD, RESET_ERROR)
    assert status(m, 0)[:2] == (DISABLED, 0)


def test_bad_config_and_disabled_doorbells():
    m = AdiModel()
    for size in (0, 1, 3, 8192, 6):
        m.adis[1].state = DISABLED
        configure(m, 1, size=size)
        assert status(m, 1)[:2] == (ERROR, ERR_BAD_RING_CONFIG), size
        m.write(regmap.CMD_ADI_CMD, RESET_ERROR)
    m.write(page_address(1), 0)
    assert m.dropped == 1


def test_drain_and_abort():
    m = AdiModel()
    configure(m, 4)
    m.write(page_address(4), 3)
    m.write(regmap.CMD_ADI_CMD, DRAIN)
    assert m.adis[4].state == DRAINING
    m.write(page_address(4), 5)            # dropped while draining
    assert m.dropped == 1 and m.adis[4].tail == 3
    m.consume(4), m.consume(4)
    assert m.adis[4].state == DRAINING
    m.consume(4)
    assert m.adis[4].state == DISABLED
    configure(m, 4)
    m.write(page_address(4), 7)
    m.write(regmap.CMD_ADI_CMD, ABORT | ENABLE)    # ABORT wins
    assert (m.adis[4].state, m.adis[4].head, m.adis[4].tail) == (DISABLED, 7, 7)


def test_page_decode():
    m = AdiModel(DeviceParams(num_adis=4))
    assert m.read(page_address(3, PAGE_STATE)) == (Resp.OKAY, DISABLED)
    assert m.read(page_address(4))[0] == Resp.DECERR
    assert m.read(page_address(63, PAGE_STATE))[0] == Resp.DECERR
    assert m.read(page_address(0, 0xC))[0] == Resp.DECERR
    assert m.write(page_address(0, PAGE_HEAD), 1) == Resp.SLVERR
    assert m.write(page_address(0, PAGE_STATE), 1) == Resp.SLVERR
    assert m.write(page_address(0, 0x10), 1) == Resp.DECERR
    assert m.write(page_address(9), 1) == Resp.DECERR
    assert m.write(page_address(0), 1, 0) == Resp.OKAY and m.dropped == 0
    assert m.read(regmap.CMD_BASE + 0x3C)[0] == Resp.DECERR
    assert m.write(regmap.CMD_ADI_STATUS, 1) == Resp.SLVERR


def test_mounted_in_device_model():
    dev = CsrModel()
    adi = AdiModel()
    dev.windows = {"CMD": adi, "ADI_PAGES": adi}
    assert configure(dev, 5, size=4) == Resp.OKAY
    assert dev.write(page_address(5), 2) == Resp.OKAY
    assert dev.read(page_address(5)) == (Resp.OKAY, 2)
    assert adi.pending() == 1 << 5
    assert dev.read(regmap.ADI_PAGES_BASE + 16 * 0x1000)[0] == Resp.DECERR
    assert dev.read(regmap.CMD_BASE + 0x40)[0] == Resp.DECERR   # beyond the CMD window
