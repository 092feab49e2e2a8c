"""The differential harness over a save and restore (sw/programs/migrate_tenant.py): one tenant
of three is saved mid-workload, restored onto another ADI, IMS handle and domain, and continues.

* On the model backend, over seeds, the record does not depend on the timing model
  (where the save falls is timing, kept under ``"timing"``), and every tenant's
  memory, completion records, interrupts, faults and dirty log are those of the run
  in which nobody moved.
* On the rtl backend (one seed, in the Device build the other rtl programs share),
  the record is the model's.
"""

import pytest

from siov.sw.diff import compare, run
from test_diff import _slow_timing

PROGRAM = "siov.sw.programs.migrate_tenant:migrate_tenant"
UNINTERRUPTED = "siov.sw.programs.migrate_tenant:uninterrupted"
TENANT_FIELDS = ("memory", "records", "interrupts", "dma_faults", "irq_faults", "dirty")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_moved_tenant_record_is_independent_of_timing_and_matches_an_uninterrupted_run(seed):
    a = run(PROGRAM, "model", seed=seed)
    b = run(PROGRAM, "model", seed=seed, timing=_slow_timing())
    assert compare(a, b) == []
    assert a["timing"]["save"] != b["timing"]["save"]        # the save fell elsewhere
    head, tail = a["timing"]["save"]["head_tail"]
    assert 0 < head < tail, "the save did not fall while the mover had work left"
    _, old, new, pending, state = a["tenants"]["t1"]["events"][0]
    assert old == [1, 3, 1] and new == [15, 255, 7] and pending == [3] and state == [1, 0]   # ENABLED
    # Odd seeds make the restored entry pending again, so the unmask's replay is the one interrupt.
    assert a["tenants"]["t1"]["events"][1] == ["unmasked", 0 if seed % 2 else 1]
    golden = run(UNINTERRUPTED, "model", seed=seed)
    for name, t in golden["tenants"].items():
        for field in TENANT_FIELDS:
            if (name, field) != ("t1", "memory"):   # its ring holds descriptors naming its new handle
                assert a["tenants"][name][field] == t[field], (name, field)
    assert a["tenants"]["t1"]["events"][-1] == golden["tenants"]["t1"]["events"][-1]    # its data pages
    assert a["tenants"]["t1"]["interrupts"][0] == [2, 0x41]
    assert a["counters"]["desc_done"] == golden["counters"]["desc_done"]
    assert a["counters"]["desc_failed"] == a["counters"]["dma_blocked"] == a["counters"]["irq_faulted"] == 0
    assert not a["unattributed"] and not a["stray_interrupts"]


@pytest.mark.sim
def test_moved_tenant_on_rtl_matches_the_model():
    rtl = run(PROGRAM, "rtl", seed=1)
    model = run(PROGRAM, "model", seed=1)
    assert compare(model, rtl) == []
    assert rtl["tenants"]["t1"]["events"] == model["tenants"]["t1"]["events"]
