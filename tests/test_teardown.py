"""Teardown quiesces before it releases: nothing of a destroyed tenant, or of a closed queue, lands later.

Issue 24, item 1. A tenant destroyed while its 1 MiB MEMMOVE runs, then a
new tenant in the same domain (the same window of host memory, the same ADI
and IMS handle): the new tenant's memory holds exactly its own data after
the old copy would have finished, and every fault and interrupt of the old
tenant reached the old tenant before its teardown returned (none is left to
arrive later, unattributed, or at the new tenant). The same race inside one
guest: a queue closed while its copy runs, its ring and record pages given
to a new buffer. Both programs (:mod:`siov.sw.programs.teardown`) run on the
model and (``sim``) on the rtl backend, where each takes a few seconds.
"""

import pytest

from siov.rtl import regmap
from siov.rtl.cmd.dsa import Opcode
from siov.sw.hv.errors import DeviceTimeout
from siov.sw.model.dsa import Descriptor
from siov.sw.platform import run_program
from siov.sw.programs.teardown import tenant_pages

from hv_support import PAGE, run, vm_with_queue

TEARDOWN = "siov.sw.programs.teardown:inflight_teardown"
CLOSE = "siov.sw.programs.teardown:queue_close"
VECTOR = 0x40                   # the VDCM's first vector: queue 0's


def _functional(record):
    return {k: v for k, v in record.items() if k != "timing"}


def _check_teardown(out):
    assert _functional(out) == {
        "same_domain": True, "same_adi_and_handle": True,
        "victim_memory_exact": True, "victim_pages_changed": 0,
        "victim_faults": [], "victim_interrupts": [],
        "unattributed": [], "stray_interrupts": [],
        # the copy ran to its end inside the attacker's window, and its interrupt reached it
        "attacker": {"faults": [], "interrupts": [VECTOR]},
        "engines_busy_after_destroy": 0,
    }


def _check_close(out):
    assert _functional(out) == {"reused": True, "new_buffer_exact": True, "faults": [], "unattributed": [],
                                "copied": True}


@pytest.mark.parametrize("seed", [1, 2])
def test_a_descriptor_in_flight_never_reaches_the_next_tenant(seed):
    out = run_program(TEARDOWN, "model", seed=seed)
    _check_teardown(out)
    # the teardown waited for the copy: at least the three quarters of it left
    assert out["timing"]["teardown_cycles"] > 3 * (1 << 20) // 8 // 4


def test_a_queue_closed_with_a_descriptor_in_flight_gives_its_pages_back_quiet():
    _check_close(run_program(CLOSE, "model", seed=1))


@pytest.mark.sim
def test_a_descriptor_in_flight_never_reaches_the_next_tenant_on_rtl():
    _check_teardown(run_program(TEARDOWN, "rtl", seed=1, quiet=True))


@pytest.mark.sim
def test_a_queue_closed_with_a_descriptor_in_flight_gives_its_pages_back_quiet_on_rtl():
    _check_close(run_program(CLOSE, "rtl", seed=1, quiet=True))
