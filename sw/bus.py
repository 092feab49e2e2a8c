"""The Bus protocol that all host software is written against, and its backends.

Host code (sw/hv, sw/guest, sw/sched, sw/ckpt) awaits only these methods, so
the same code runs on the Verilator simulation (``RtlBus``) and on the
reference models under plain asyncio (``ModelBus``). Time is the device's
clock in cycles, never the wall clock.
"""

from typing import Protocol, runtime_checkable

from ..rtl import regmap
from ..rtl.csr.bus import Resp

__all__ = ["Bus", "BusError", "ModelBus", "RtlBus"]


class BusError(Exception):
    """An MMIO access answered with SLVERR or DECERR."""

    def __init__(self, op, addr, resp):
        self.op, self.addr, self.resp = op, addr, Resp(resp)
        super().__init__(f"{op} at {addr:#07x} answered {self.resp.name}")


@runtime_checkable
class Bus(Protocol):
    """What sw/ may do to the device and host memory."""

    async def read(self, addr: int) -> int:
        """Read a 32-bit register; raise :class:`BusError` on an error response."""

    async def write(self, addr: int, value: int, strb: int = 0xF) -> None:
        """Write a 32-bit register with byte strobes; raise :class:`BusError` on an error response."""

    async def wait_cycles(self, n: int) -> None:
        """Let ``n`` device clock cycles pass."""

    def now(self) -> int:
        """Current device time in clock cycles."""


class ModelBus:
    """Bus backed by the reference models, for runs without a simulator.

    Each MMIO access costs ``access_cycles`` of device time, as a rough stand-in
    for the bridge's latency; the cycle counter registers follow device time.
    """

    def __init__(self, csr_model, access_cycles=4):
        self.csr = csr_model
        self.access_cycles = access_cycles
        self._now = 0

    def _tick(self, n):
        self._now += n
        self.csr.hw["GLOBAL.CYCLE_LO.VALUE"] = self._now & 0xFFFFFFFF

    async def read(self, addr):
        self._tick(self.access_cycles)
        if addr >> 2 == regmap.GLOBAL_CYCLE_LO >> 2:
            self.csr.hw["GLOBAL.CYCLE_HI.VALUE"] = self._now >> 32
        resp, value = self.csr.read(addr)
        if resp != Resp.OKAY:
            raise BusError("read", addr, resp)
        return value

    async def write(self, addr, value, strb=0xF):
        self._tick(self.access_cycles)
        resp = self.csr.write(addr, value, strb)
        if resp != Resp.OKAY:
            raise BusError("write", addr, resp)

    async def wait_cycles(self, n):
        self._tick(n)

    def now(self):
        return self._now


class RtlBus:
    """Bus over the Verilator simulation through cocotbext-axi's AxiLiteMaster.

    Parameters
    ----------
    axil : cocotbext.axi.AxiLiteMaster
        Master attached to the Device's ``csr`` port.
    clk : cocotb handle
        The device clock; ``wait_cycles`` counts its rising edges.
    period_ns : int
        Clock period, to turn simulation time into cycles.
    """

    def __init__(self, axil, clk, period_ns):
        self.axil, self.clk, self.period_ns = axil, clk, period_ns

    async def read(self, addr):
        r = await self.axil.read(addr & ~3, 4)
        if int(r.resp) != Resp.OKAY:
            raise BusError("read", addr, int(r.resp))
        return int.from_bytes(r.data, "little")

    async def write(self, addr, value, strb=0xF):
        if strb == 0xF:
            r = await self.axil.write(addr & ~3, value.to_bytes(4, "little"))
        else:
            # cocotbext-axi derives WSTRB from the address and length of each write,
            # so a sparse strobe becomes one write per contiguous run of bytes.
            r = None
            i = 0
            while i < 4:
                if strb >> i & 1:
                    j = i
                    while j < 4 and strb >> j & 1:
                        j += 1
                    part = (value >> (8 * i)) & ((1 << (8 * (j - i))) - 1)
                    r = await self.axil.write((addr & ~3) + i, part.to_bytes(j - i, "little"))
                    if int(r.resp) != Resp.OKAY:
                        break
                    i = j
                else:
                    i += 1
            if r is None:
                return
        if int(r.resp) != Resp.OKAY:
            raise BusError("write", addr, int(r.resp))

    async def wait_cycles(self, n):
        from cocotb.triggers import ClockCycles
        await ClockCycles(self.clk, n)

    def now(self):
        from cocotb.utils import get_sim_time
        return int(get_sim_time("ns")) // self.period_ns
