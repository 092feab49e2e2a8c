"""The Python side of the shared host file (tb/host/shared.py), without a simulator.

The file is made here as the simulator's main makes it (a control block
with its magic, then host memory, then the tap logs), so the mapping, the
backdoor, the pause and error tables and the tap logs can be checked alone.
That the C++ side lays the block out the same is checked by every rtl run
(SharedHost refuses a header of another size) and by tests/test_rtl_memory.py.
"""

import ctypes
import os
import random

import pytest

from siov.sw.model.engine import BusErrors
from siov.tb.host import shared

RAM = 1 << 20


@pytest.fixture
def host(tmp_path, monkeypatch):
    monkeypatch.setenv("SIOV_HOST_MEM", str(tmp_path))
    monkeypatch.setattr(shared.SharedHost, "_instance", None)
    path = tmp_path / f"siov-host-{os.getpid()}"
    logs = shared.NLOG * (1 << 20) * 16
    with open(path, "wb") as f:
        f.truncate(shared.CONTROL_BYTES + RAM + logs)
    with open(path, "r+b") as f:
        head = shared._Control()
        head.magic, head.version, head.header_size = shared.MAGIC, shared.VERSION, ctypes.sizeof(shared._Control)
        head.ram_size, head.log_cap = RAM, 1 << 20
        f.write(bytes(head))
    assert shared.available()
    h = shared.SharedHost.get()
    assert not path.exists()            # unlinked once mapped
    assert shared.available()           # and still available to this process
    yield h
    monkeypatch.setattr(shared.SharedHost, "_instance", None)


def test_memory_is_read_and_written_in_place(host):
    host.write(0x1234, b"siov")
    assert host.read(0x1232, 8) == b"\0\0siov\0\0"
    with pytest.raises(ValueError, match="outside"):
        host.read(RAM - 2, 4)
    host.clear()
    assert host.read(0x1234, 4) == bytes(4)


def test_pauses_follow_the_patterns(host):
    host.set_pauses({"aw": "light", "w": "bursty", "r": "heavy"}, random.Random(1))
    aw, w, b, ar, r = host.ctl.pause
    assert (aw.mode, aw.threshold) == (1, 2**30)
    assert (w.mode, w.length, w.pattern) == (2, 10, 0b0100011111)
    assert b.mode == ar.mode == 0
    assert r.mode == 1 and abs(r.threshold / 2**32 - 0.7) < 1e-9
    generation = aw.generation
    host.set_pauses({}, random.Random(1))
    assert host.ctl.pause[0].mode == 0 and host.ctl.pause[0].generation == generation + 1


def test_bus_errors_are_written_through(host):
    errors = shared.share_bus_errors(BusErrors(), host)
    errors.add(0x3000, 0x1000, read=True, write=False)
    errors.add(0x8000, 8)
    assert host.ctl.n_errors == 2
    e = host.ctl.errors[0]
    assert (e.start, e.end, e.read, e.write) == (0x3000, 0x4000, 1, 0)
    errors.remove(0x3000, 0x1000, read=True, write=False)
    assert host.ctl.n_errors == 1 and host.ctl.errors[0].start == 0x8000
    assert errors.read_fails(0x8004, 1) and not errors.read_fails(0x3000)
    errors.clear()
    assert host.ctl.n_errors == 0


def test_tap_logs_read_what_the_simulator_appended(host):
    early = shared.TapLog(host, shared.LOG_DISPATCH, lambda c, v: (c, v))

    def append(which, cycle, value):
        n = host.ctl.log_count[which]
        base = shared.CONTROL_BYTES + RAM + (which * (1 << 20) + n) * 16
        host._map[base:base + 16] = cycle.to_bytes(8, "little") + value.to_bytes(8, "little")
        host.ctl.log_count[which] = n + 1

    append(shared.LOG_DISPATCH, 10, 3)
    late = shared.TapLog(host, shared.LOG_DISPATCH, lambda c, v: (c, v))   # sees only what follows it
    append(shared.LOG_DISPATCH, 12, 5)
    append(shared.LOG_HANDOVER, 11, 3 | 1 << 8)
    assert early.items() == [(10, 3), (12, 5)]
    assert late.items() == [(12, 5)]
    assert shared.TapLog(host, shared.LOG_HANDOVER, lambda c, v: v).items() == []
