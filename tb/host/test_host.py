"""The cocotb entry that runs one host program on the Verilated Device.

:func:`siov.tb.host.run.run_on_rtl` starts it with the program's name
(``SIOV_PROGRAM``, ``module:function``), its seed (``SIOV_SEED``) and where
to write its JSON result (``SIOV_RESULT``); the program runs on
:class:`~siov.tb.host.bus.RtlBus` and its return value goes back to the
caller through that file. With ``SIOV_PROFILE``, the program's run is
profiled (cProfile, in CPU seconds) into that file.
"""

import cProfile
import json
import os
import pathlib
import time

import cocotb

from siov.sw.diff import load_program
from siov.tb.host.bus import RtlBus


@cocotb.test()
async def test_host_program(dut):
    program = load_program(os.environ["SIOV_PROGRAM"])
    seed = int(os.environ.get("SIOV_SEED", "0"))
    bus = RtlBus(dut)
    await bus.reset()
    arg_file = os.environ.get("SIOV_PROGRAM_ARG")
    args = (json.loads(pathlib.Path(arg_file).read_text()),) if arg_file else ()
    profile = os.environ.get("SIOV_PROFILE")
    if profile:
        # The profiler stays on across every entry from the simulator into Python
        # until it is disabled: it sees exactly the program's run. It counts CPU
        # time, which other work on the machine does not inflate.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
    started, start, cpu = time.time(), time.perf_counter(), time.process_time()
    result = await program(bus, seed, *args)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if profile:
        profiler.disable()
        profiler.dump_stats(profile)
    out = {"result": result, "cycles": bus.now(), "wall_s": wall, "cpu_s": cpu, "started": started,
           "ended": time.time()}
    pathlib.Path(os.environ["SIOV_RESULT"]).write_text(json.dumps(out))
