"""The differential harness: the same host program gives the same functional record everywhere.

* On the model backend, over 20 seeds, the record does not depend on the
  timing model: a run with every latency tripled gives the same record
  (timing belongs under ``"timing"`` only).
* The harness catches a wrong backend: a model that drops the dirty bit of
  device writes differs (in the dirty logs), and so does one that loses
  interrupts.
* On the rtl backend (``make sim``, and in ``make test``), two seeds give
  the record of the model backend, and the broken model differs from the RTL.
"""

import pytest

from siov.rtl.cmd.dsa import Status
from siov.sw.model.dsa import CompletionRecord
from siov.sw.diff import compare, run
from siov.sw.platform.timing import Coefficients, TimingModel
from siov.sw.programs.four_tenants import four_tenants

PROGRAM = "siov.sw.programs.four_tenants:four_tenants"


def _slow_timing():
    base = TimingModel()
    coeffs = {k: Coefficients(c.base * 3 + 7, c.per_piece * 3, c.per_read_beat * 3, c.per_write_beat * 3,
                              c.record * 3) for k, c in base.coefficients.items()}
    return TimingModel(coeffs, mmio_read=31, mmio_write=17, prefetch=55, take=3, load=13, irq_latency=40)


def _drop_dirty_bits(bus):
    """A broken model backend: device writes no longer set the dirty bit."""
    apply = bus.device.dma.apply
    bus.device.dma.apply = lambda d, set_dirty=True: apply(d, set_dirty=False)


def _drop_last_interrupt_vector_bit(bus):
    """A broken model backend: the remapper delivers vector & 0xFE."""
    deliver = bus._deliver

    def wrong(outcome):
        if outcome is not None and outcome.kind == "deliver":
            outcome = type(outcome)(**{**outcome.__dict__, "vector": outcome.vector & 0xFE})
        deliver(outcome)
    bus._deliver = wrong


@pytest.mark.parametrize("seed", range(1, 21))
def test_model_record_is_independent_of_timing(seed):
    a = run(four_tenants, "model", seed=seed)
    b = run(four_tenants, "model", seed=seed, timing=_slow_timing())
    assert compare(a, b) == []
    assert a["timing"] != b["timing"]            # the runs did differ in time
    assert sum(len(t["records"]) for t in a["tenants"].values()) > 40
    assert a["counters"]["desc_failed"] > 0 and a["unattributed"]


def test_model_record_is_deterministic():
    assert run(four_tenants, "model", seed=3) == run(four_tenants, "model", seed=3)


@pytest.mark.parametrize("breakage, field", [(_drop_dirty_bits, "dirty"),
                                             (_drop_last_interrupt_vector_bit, "interrupts")])
def test_harness_catches_a_wrong_backend(breakage, field):
    good = run(four_tenants, "model", seed=4)
    bad = run(four_tenants, "model", seed=4, bus_hook=breakage)
    diffs = compare(good, bad)
    assert diffs and all(f".{field}:" in d for d in diffs), diffs


@pytest.mark.sim
@pytest.mark.parametrize("seed", [1, 2])
def test_rtl_and_model_records_are_identical(seed):
    rtl = run(PROGRAM, "rtl", seed=seed)
    model = run(PROGRAM, "model", seed=seed)
    assert compare(model, rtl) == []
    broken = run(PROGRAM, "model", seed=seed, bus_hook=_drop_dirty_bits)
    assert any(".dirty:" in d for d in compare(broken, rtl))


HV_PROGRAM = "siov.sw.programs.vms_and_containers:vms_and_containers"


def test_host_stack_record_is_independent_of_timing():
    a = run(HV_PROGRAM, "model", seed=5)
    assert a == run(HV_PROGRAM, "model", seed=5, timing=_slow_timing())
    assert any("may not open /dev/siov1" in e for e in a["ctr0"]["errors"])
    assert a["vm1"]["faults"] == [[0x05, a["vm1"]["faults"][0][1], 1]]
    assert all(a[t]["reclaimed"] > 0 for t in ("vm0", "vm1", "ctr0"))


@pytest.mark.sim
@pytest.mark.slow
def test_host_stack_on_rtl_matches_the_model():
    """One run of two VMs and two containers through the hypervisor, the guest drivers and the
    container nodes on the Verilated Device, against the model backend."""
    rtl = run(HV_PROGRAM, "rtl", seed=1)
    model = run(HV_PROGRAM, "model", seed=1)
    assert rtl == model


CROSS_RING = "siov.sw.programs.cross_ring:cross_ring"


@pytest.mark.parametrize("seed", range(1, 6))
def test_cross_ring_record_is_independent_of_timing(seed):
    """Rings joined by SIGNAL and WAIT on two engines: the record does not depend on timing,
    every WAIT that a SIGNAL answers succeeds, and every copy it guards compares equal."""
    a = run(CROSS_RING, "model", seed=seed)
    assert compare(a, run(CROSS_RING, "model", seed=seed, timing=_slow_timing())) == []
    for name in ("vm0", "vm1"):
        statuses = [CompletionRecord.unpack(bytes.fromhex(r)).status for r in a["tenants"][name]["records"]]
        results = [CompletionRecord.unpack(bytes.fromhex(r)).result for r in a["tenants"][name]["records"]]
        assert statuses[:40] == [Status.SUCCESS.value] * 40 and not any(results[:40])
    # phase 2: the WAIT nobody signals times out; the unmapped semaphores fault; the misaligned one
    tail = [CompletionRecord.unpack(bytes.fromhex(r)).status for r in a["tenants"]["vm1"]["records"][40:]]
    assert tail == [s.value for s in (Status.WAIT_TIMEOUT, Status.PAGE_FAULT, Status.PAGE_FAULT, Status.ADDR_ALIGN)]


@pytest.mark.sim
def test_cross_ring_on_rtl_matches_the_model():
    rtl = run(CROSS_RING, "rtl", seed=1)
    model = run(CROSS_RING, "model", seed=1)
    assert compare(model, rtl) == []
