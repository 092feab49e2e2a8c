"""The cocotb entry that runs one host program on the Verilated Device.

:func:`siov.tb.host.run.run_on_rtl` starts it with the program's name
(``SIOV_PROGRAM``, ``module:function``), its seed (``SIOV_SEED``) and where
to write its JSON result (``SIOV_RESULT``); the program runs on
:class:`~siov.tb.host.bus.RtlBus` and its return value goes back to the
caller through that file.
"""

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
    start = time.perf_counter()
    arg_file = os.environ.get("SIOV_PROGRAM_ARG")
    if arg_file:
        result = await program(bus, seed, json.loads(pathlib.Path(arg_file).read_text()))
    else:
        result = await program(bus, seed)
    wall = time.perf_counter() - start
    out = {"result": result, "cycles": bus.now(), "wall_s": wall}
    pathlib.Path(os.environ["SIOV_RESULT"]).write_text(json.dumps(out))
