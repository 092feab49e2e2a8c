"""Speed probes of the Verilated Device under cocotb, for ``make bench BENCH=simspeed``.

Three measurements on one simulator process, written as JSON to ``SIOV_RESULT``:

* ``idle_timer``: the Device idle, cocotb's C++ clock running and Python asleep
  on one Timer: the simulator and the GPI alone;
* ``idle_clockcycles``: the Device idle while Python awaits ``ClockCycles``, which
  resumes a Python coroutine on every edge it counts;
* ``read_stream``: back-to-back AXI4-Lite reads of GLOBAL.SCRATCH, one
  after the other as host code polls.

With ``SIOV_SPEED_HOST=shared`` the clock and the AXI4-Lite master run in
the simulator's main (:mod:`siov.tb.host.shared`, as the rtl backend runs
them) instead of cocotb's clock (toggled through a VPI callback) and
cocotbext-axi's master. ``SIOV_SPEED_CYCLES`` sets the cycles of each
(default 100000). Each is timed in wall and in CPU seconds.
"""

import json
import os
import pathlib
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, Timer
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from siov.rtl import regmap
from siov.tb.axi import axil_read
from siov.tb.host.shared import SharedHost, SharedMmio
from siov.tb.reset import reset_dut

PERIOD_NS = 10


@cocotb.test()
async def test_speed(dut):
    cycles = int(os.environ.get("SIOV_SPEED_CYCLES", "100000"))
    if os.environ.get("SIOV_SPEED_HOST") == "shared":
        host = SharedHost.get()
        host.start_clock(dut.clk, PERIOD_NS)
        axil = SharedMmio(host, dut)
    else:
        Clock(dut.clk, PERIOD_NS, unit="ns").start()
        axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr", bus_separator="__"), dut.clk, dut.rst)
    await reset_dut(dut, {"irq_out__ready": 1, "mem__arready": 1, "mem__awready": 1, "mem__wready": 1,
                          "mem__rvalid": 0, "mem__bvalid": 0})
    out = {"cycles": cycles}

    await RisingEdge(dut.clk)
    t0, c0 = time.perf_counter(), time.process_time()
    await Timer(cycles * PERIOD_NS, "ns")
    out["idle_timer_s"], out["idle_timer_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0

    await RisingEdge(dut.clk)
    t0, c0 = time.perf_counter(), time.process_time()
    await ClockCycles(dut.clk, cycles)
    out["idle_clockcycles_s"], out["idle_clockcycles_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0

    await RisingEdge(dut.clk)
    start, reads = int(dut.cycles.value), 0
    t0, c0 = time.perf_counter(), time.process_time()
    while int(dut.cycles.value) - start < cycles:
        resp, _ = await axil_read(axil, regmap.GLOBAL_SCRATCH)
        assert resp == 0
        reads += 1
    out["read_stream_s"], out["read_stream_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    out["read_stream_cycles"] = int(dut.cycles.value) - start
    out["reads"] = reads
    pathlib.Path(os.environ["SIOV_RESULT"]).write_text(json.dumps(out))
