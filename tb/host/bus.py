"""The ``rtl`` backend of the Bus: the Verilated Device under cocotb.

:class:`RtlBus` implements :class:`siov.sw.bus.Bus` over a ``siov_device``
simulation:

* MMIO through cocotbext-axi's ``AxiLiteMaster`` on the ``csr`` port;
* host memory is cocotbext-axi's ``AxiRam`` on the ``mem`` port; host
  software's own accesses use its backdoor (``ram.read``/``ram.write``) and
  take no device time, the Device's go through the AXI4 channels;
* a monitor on ``irq_out`` (always ready) that hands each beat to the
  :meth:`~RtlBus.on_irq` callbacks; while ``irq_out.valid`` is low it waits
  on the signal's edge rather than every clock, so an idle interrupt path
  costs no Python per cycle;
* tasks and events are cocotb's (``cocotb.start_soon``, ``Event``).

It lives under tb/ because it is the only host-side code that imports cocotb.
"""

import logging

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, FallingEdge, First, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from ...rtl.csr.bus import Resp
from ...rtl.irq.remapper import IrqLayout
from ...sw.bus import BusError, Interrupt
from ..axi import axil_read, axil_write
from ..layouts import unpack
from ..reset import reset_dut

__all__ = ["RtlBus", "PERIOD_NS", "RAM_SIZE"]

PERIOD_NS = 10
#: Host memory the AxiRam models (the host programs keep their windows below it).
RAM_SIZE = 1 << 28


class RtlBus:
    """:class:`~siov.sw.bus.Bus` over a Verilated ``siov_device``.

    Parameters
    ----------
    dut : cocotb handle
        The ``siov_device`` top.
    ram : AxiRam, optional
        Host memory on the ``mem`` port (made here if not given, so a
        testbench can pass one with its own back-pressure and error ranges).
    start_clock : bool
        Start the 100 MHz clock (a testbench that starts its own passes False).
    """

    def __init__(self, dut, ram=None, axil=None, start_clock=True):
        self.dut = dut
        self.clk = dut.clk
        if start_clock:
            Clock(dut.clk, PERIOD_NS, unit="ns").start()
        self.axil = axil or AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr", bus_separator="__"),
                                          dut.clk, dut.rst)
        self.ram = ram or AxiRam(AxiBus.from_prefix(dut, "mem", bus_separator="__"), dut.clk, dut.rst,
                                 size=RAM_SIZE)
        for log in (self.axil.write_if.log, self.axil.read_if.log, self.ram.write_if.log,
                    self.ram.read_if.log):
            log.setLevel(logging.WARNING)
        self._callbacks = []
        self.irqs = []
        self._monitor = None

    async def reset(self):
        """Reset the Device and start the interrupt monitor."""
        await reset_dut(self.dut, {"irq_out__ready": 1})
        if self._monitor is None:
            self._monitor = cocotb.start_soon(self._irq_monitor())

    # -- MMIO ------------------------------------------------------------------------

    async def read(self, addr):
        resp, value = await axil_read(self.axil, addr & ~3)
        if resp != Resp.OKAY:
            raise BusError("read", addr, resp)
        return value

    async def write(self, addr, value, strb=0xF):
        if not strb:            # a write with no strobes changes nothing (cocotbext-axi cannot send one)
            return
        resp = await axil_write(self.axil, addr & ~3, value, strb)
        if resp != Resp.OKAY:
            raise BusError("write", addr, resp)

    # -- host memory -----------------------------------------------------------------

    async def mem_read(self, addr, n):
        return bytes(self.ram.read(addr, n))

    async def mem_write(self, addr, data):
        self.ram.write(addr, bytes(data))

    # -- interrupts ------------------------------------------------------------------

    def on_irq(self, callback):
        self._callbacks.append(callback)

    async def _irq_monitor(self):
        d = self.dut
        while True:
            await FallingEdge(d.clk)
            await ReadOnly()
            if int(d.irq_out__valid.value):
                beat = unpack(IrqLayout, int(d.irq_out__payload.value))
                irq = Interrupt(beat["dest"], beat["vector"], self.now())
                self.irqs.append(irq)
                for cb in list(self._callbacks):
                    cb(irq)
            else:
                await RisingEdge(d.irq_out__valid)

    # -- time and concurrency --------------------------------------------------------

    def now(self):
        return int(get_sim_time("ns")) // PERIOD_NS

    async def wait_cycles(self, n):
        if n > 0:
            await ClockCycles(self.clk, n)

    def spawn(self, coro):
        return cocotb.start_soon(coro)

    def event(self):
        return Event()

    async def wait_event(self, event, timeout_cycles):
        if not event.is_set():
            await First(event.wait(), ClockCycles(self.clk, timeout_cycles))
        return event.is_set()
