"""Host programs and a scenario for the sweep tests (not a test module): Dask workers import the
programs by name.

``slow_scenario`` is ``siov run``'s program that first sleeps in wall time,
so a test can kill the worker running it; ``crash_on_seed`` ends its
process, as a crash in a simulator would, on seed :data:`CRASH_SEED`.
"""

import os
import time

from siov.sw.programs.scenario import run_scenario

#: A scenario that runs in about a tenth of a second on the model backend.
TINY = """\
cycles = 5000
seed = 3
[arbiter]
policy = "wrr"
[[tenants]]
name = "vm0"
adis = 2
weight = 2
[[tenants.workloads]]
kind = "copy"
size = [64, 1024]
[[tenants]]
name = "ctr0"
kind = "container"
[[tenants.workloads]]
kind = "fill"
size = [64, 512]
interval = 300
"""

#: The seed on which :func:`crash_on_seed` kills its process.
CRASH_SEED = 2
#: Wall seconds :func:`slow_scenario` sleeps before it runs.
SLEEP_S = 0.4


async def slow_scenario(bus, seed, arg):
    """``run_scenario`` after :data:`SLEEP_S` seconds of wall time."""
    time.sleep(SLEEP_S)
    return await run_scenario(bus, seed, arg)


async def crash_on_seed(bus, seed, arg):
    """``run_scenario``, except on :data:`CRASH_SEED`, where it ends the process at once."""
    if seed == CRASH_SEED:
        os._exit(13)
    return await run_scenario(bus, seed, arg)


async def crash_on_seed_raising(bus, seed, arg):
    """``run_scenario``, except on :data:`CRASH_SEED`, where it raises RuntimeError."""
    if seed == CRASH_SEED:
        raise RuntimeError(f"seed {seed} fails")
    return await run_scenario(bus, seed, arg)
