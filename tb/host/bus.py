"""The ``rtl`` backend of the Bus: the Verilated Device under cocotb.

:class:`RtlBus` implements :class:`siov.sw.bus.Bus` over a ``siov_device``
simulation:

* by default the host side runs in the simulator's C++ main
  (:mod:`siov.tb.host.shared`): the clock, an AXI4 slave on the ``mem`` port
  over host memory that Python maps too, so the Device's bursts cost no
  Python, and the AXI4-Lite master on the ``csr`` port, so an MMIO access
  wakes Python twice instead of on every cycle of its channels. With
  ``memory="axiram"`` (or ``SIOV_RTL_MEMORY=axiram``) they are cocotb's clock
  and cocotbext-axi's ``AxiRam`` and ``AxiLiteMaster``, which answer cycle for
  cycle the same. Host software's own accesses to host memory use its
  backdoor (``read``/``write``) and take no device time;
* a monitor on ``irq_out`` (always ready) that hands each beat to the
  :meth:`~RtlBus.on_irq` callbacks; while ``irq_out.valid`` is low it waits
  on the signal's edge rather than every clock, so an idle interrupt path
  costs no Python per cycle;
* waits of device time (:meth:`~RtlBus.wait_cycles`, timeouts) wake Python
  at most three times, however long (:class:`Cycles`);
* tasks and events are cocotb's (``cocotb.start_soon``, ``Event``).

It lives under tb/ because it is the only host-side code that imports cocotb.
"""

import logging
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import Event, FallingEdge, First, ReadOnly, RisingEdge, Timer, Waitable
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from ...rtl.csr.bus import Resp
from ...rtl.irq.remapper import IrqLayout
from ...sw.bus import BusError, Interrupt
from ..axi import axil_read, axil_write
from ..layouts import unpack
from ..reset import reset_dut
from . import shared

__all__ = ["RtlBus", "PERIOD_NS", "RAM_SIZE", "MEMORIES", "Cycles", "wait_cycles", "default_memory"]

PERIOD_NS = 10
#: Host memory (the host programs keep their windows below it).
RAM_SIZE = 1 << 28
#: The host memories of the rtl backend: the simulator's C++ slave, and cocotbext-axi's AxiRam.
MEMORIES = ("shared", "axiram")


class Cycles(Waitable):
    """``ClockCycles(clk, n)`` that wakes Python at most three times instead of ``n``.

    It returns just after the ``n``-th rising edge of ``clk`` from now, as
    ClockCycles does: it awaits the first edge (which fixes the phase), a
    Timer to the middle of the cycle before the last edge, and the last edge.
    ``clk`` must be a free-running clock of ``period_ns``. A Waitable, so that
    ``First`` takes it as it takes ClockCycles.
    """

    def __init__(self, clk, n, period_ns=PERIOD_NS):
        self.clk, self.n, self.period_ns = clk, n, period_ns

    async def _wait(self):
        if self.n <= 3:                 # as cheap edge by edge
            for _ in range(self.n):
                await RisingEdge(self.clk)
            return self
        await RisingEdge(self.clk)
        await Timer((self.n - 2) * self.period_ns + self.period_ns // 2, "ns")
        await RisingEdge(self.clk)
        return self


async def wait_cycles(clk, n, period_ns=PERIOD_NS):
    """Let ``n`` rising edges of ``clk`` pass (:class:`Cycles`)."""
    await Cycles(clk, n, period_ns)


def default_memory():
    """The host memory a new :class:`RtlBus` uses: ``SIOV_RTL_MEMORY``, else ``shared`` where
    the simulator serves it."""
    kind = os.environ.get("SIOV_RTL_MEMORY") or ("shared" if shared.available() else "axiram")
    if kind not in MEMORIES:
        raise ValueError(f"SIOV_RTL_MEMORY must be one of {', '.join(MEMORIES)}, not {kind!r}")
    return kind


class RtlBus:
    """:class:`~siov.sw.bus.Bus` over a Verilated ``siov_device``.

    Parameters
    ----------
    dut : cocotb handle
        The ``siov_device`` top.
    ram : AxiRam or SharedHost, optional
        Host memory on the ``mem`` port (made here if not given, so a
        testbench can pass one with its own back-pressure and error ranges).
    start_clock : bool
        Start the 100 MHz clock (a testbench that starts its own passes False).
    memory : str, optional
        Which host memory to make (:data:`MEMORIES`); default :func:`default_memory`.
    """

    def __init__(self, dut, ram=None, axil=None, start_clock=True, memory=None):
        self.dut = dut
        self.clk = dut.clk
        if ram is None and (memory or default_memory()) == "shared":
            ram = shared.SharedHost.get()
            ram.serve_memory()
        elif ram is None:
            ram = AxiRam(AxiBus.from_prefix(dut, "mem", bus_separator="__"), dut.clk, dut.rst, size=RAM_SIZE)
            for log in (ram.write_if.log, ram.read_if.log):
                log.setLevel(logging.WARNING)
        self.ram = ram
        if start_clock and isinstance(ram, shared.SharedHost):
            ram.start_clock(dut.clk, PERIOD_NS)      # toggled in C++, not through a VPI callback
        elif start_clock:
            Clock(dut.clk, PERIOD_NS, unit="ns").start()
        if axil is None and isinstance(ram, shared.SharedHost):
            axil = shared.SharedMmio(ram, dut)       # the AXI4-Lite master in C++ too
        elif axil is None:
            axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr", bus_separator="__"), dut.clk, dut.rst)
            for log in (axil.write_if.log, axil.read_if.log):
                log.setLevel(logging.WARNING)
        self.axil = axil
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
        await wait_cycles(self.clk, n)

    def spawn(self, coro):
        return cocotb.start_soon(coro)

    def event(self):
        return Event()

    async def wait_event(self, event, timeout_cycles):
        if not event.is_set():
            await First(event.wait(), Cycles(self.clk, timeout_cycles))
        return event.is_set()
