"""The register-fabric reference model, the model bus and the named accessors, on their own."""

import asyncio

import pytest

from siov.rtl import regmap
from siov.rtl.csr.bus import Resp
from siov.rtl.params import DeviceParams
from siov.sw.bus import BusError
from siov.sw.platform import run_program
from siov.sw.csr import Csr
from siov.sw.model.csr import CsrModel, strobe_mask


def test_strobe_mask():
    assert strobe_mask(0x0) == 0
    assert strobe_mask(0x5) == 0x00FF00FF
    assert strobe_mask(0xF) == 0xFFFFFFFF


def test_identity_and_caps():
    m = CsrModel(DeviceParams(num_adis=3, ims_entries=512, num_domains=5, pages_per_domain=128, num_engines=3))
    assert m.read(regmap.GLOBAL_ID) == (Resp.OKAY, 0x53494F56)
    resp, cap0 = m.read(regmap.GLOBAL_CAP0)
    assert resp == Resp.OKAY and cap0 == 3 | 512 << 8 | 3 << 24
    assert m.read(regmap.GLOBAL_CAP1)[1] == 5 | 128 << 8


def test_write_strobes_and_errors():
    m = CsrModel()
    a = regmap.GLOBAL_SCRATCH
    assert m.write(a, 0xAABBCCDD) == Resp.OKAY
    assert m.write(a, 0x11223344, 0b0101) == Resp.OKAY
    assert m.read(a) == (Resp.OKAY, 0xAA22CC44)
    assert m.write(a, 0, 0) == Resp.OKAY and m.read(a)[1] == 0xAA22CC44
    assert m.write(regmap.GLOBAL_ID, 0) == Resp.SLVERR
    assert m.read(regmap.GLOBAL_ID)[1] == 0x53494F56
    assert m.read(0x014) == (Resp.DECERR, 0)
    assert m.write(0xFFFFC, 1) == Resp.DECERR


def test_low_address_bits_ignored():
    m = CsrModel()
    assert m.read(regmap.GLOBAL_ID + 3) == m.read(regmap.GLOBAL_ID)


def test_params_are_checked():
    with pytest.raises(ValueError, match="Number of IMS entries must be a power of two, not 300"):
        DeviceParams(ims_entries=300)
    with pytest.raises(ValueError, match="Number of ADIs must be between 1 and 64, not 65"):
        DeviceParams(num_adis=65)
    with pytest.raises(TypeError, match="Pages per domain must be an integer"):
        DeviceParams(pages_per_domain="4096")


def test_model_bus_and_accessors():
    async def scenario(bus, seed):
        csr = Csr(bus)
        caps = await csr.identify()
        assert caps["num_adis"] == 7
        await csr.write("GLOBAL.SCRATCH", 0x1234)
        assert await csr.read("GLOBAL.SCRATCH") == 0x1234
        t0 = await csr.read_cycles()
        await bus.wait_cycles(1 << 32)
        t1 = await csr.read_cycles()
        assert t1 - t0 >= 1 << 32 and t1 >> 32 >= 1
        with pytest.raises(BusError, match="write at 0x00000 answered SLVERR"):
            await csr.write("GLOBAL.ID", 0)
        with pytest.raises(BusError, match="DECERR"):
            await bus.read(0x14)
        with pytest.raises(KeyError, match="No register 'GLOBAL.NOPE'"):
            await csr.read("GLOBAL.NOPE")
    run_program(scenario, params=DeviceParams(num_adis=7))
