"""A completion record is whole when its status byte shows, on either backend.

A guest polling a record every cycle must never read a nonzero status with
the record's later bytes (its cycles, start cycle and engine) not yet
written. On the rtl backend this is a property of the host memory: it
stores a write burst at its last beat (tb/host/sim_main.cpp), as a host
bridge commits a cache-line write. (The other rtl host memory,
``SIOV_RTL_MEMORY=axiram``, cocotbext-axi's AxiRam, stores each beat as it
arrives; it serves comparisons of whole runs, not polling guests.)
"""

import pytest

from siov.sw.platform import run_program as run

PROGRAM = "siov.sw.programs.record_poll:first_record_seen"


def _check(result):
    assert len(result) == 3
    for first, later in result:
        assert first == later, f"status shown before the record was whole: {first} then {later}"
        assert int(first[0:2], 16) == 1        # SUCCESS


def test_the_model_shows_whole_records():
    _check(run(PROGRAM, "model", seed=1))


@pytest.mark.sim
def test_the_rtl_host_memory_shows_whole_records():
    _check(run(PROGRAM, "rtl", seed=1, quiet=True))
