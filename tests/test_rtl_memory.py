"""The rtl backend's two host memories answer the Device cycle for cycle alike.

The simulator's C++ slave (tb/host/sim_main.cpp, the default) replaces
cocotbext-axi's AxiRam so that no Python runs per beat. It must not change
what the Device does, nor when: a host program gives the same record on
both, the ``"timing"`` part (each completion record's cycles, the device
time at the end, the timing-dependent counters) included.
"""

import pytest

from siov.tb.host.run import run_on_rtl

PROGRAMS = [("siov.sw.programs.four_tenants:four_tenants", 1),
            ("siov.sw.programs.four_tenants:four_tenants", 2),
            ("siov.sw.programs.cross_ring:cross_ring", 1)]


@pytest.mark.sim
@pytest.mark.parametrize("program, seed", PROGRAMS)
def test_shared_memory_answers_as_axiram(program, seed):
    shared = run_on_rtl(program, seed=seed, quiet=True, memory="shared")
    axiram = run_on_rtl(program, seed=seed, quiet=True, memory="axiram")
    assert shared["timing"] == axiram["timing"]
    assert shared == axiram
