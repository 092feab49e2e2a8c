"""An attacker's DMA faults no longer crowd the victim's out of the fault queue (issue 24, item 4).

The program (:mod:`siov.sw.programs.fault_flood`) floods the queue with an
attacker's faults (40, then 1,000 descriptors writing a page it never
mapped) and has the victim fault once, after the flood or while it runs.
When the hypervisor drains the queue, the victim's record is there; the
attacker holds at most its quota of records, and the rest of its faults are
counted as its own losses (and in the total), never as the victim's. The same
holds for the interrupt remapper's fault queue against an attacker that
forges the victim's IMS handle (its quota is per source: the low bits of the
sending PASID). On the rtl backend (``make sim``) the same program gives the
same record.
"""

import pytest

from siov.sw.platform import run_program

PROGRAM = "siov.sw.programs.fault_flood:fault_flood"


def _run(flood, victim="after", backend="model", kind="dma"):
    return run_program(PROGRAM, backend, seed=1, arg={"flood": flood, "victim": victim, "kind": kind}, quiet=True)


#: The attacker's key in the record's lost counts: its domain (DMA), its source (interrupts).
ATTACKER = {"dma": "0", "irq": "attacker"}


@pytest.mark.parametrize("kind", ["dma", "irq"])
@pytest.mark.parametrize("victim", ["after", "during"])
@pytest.mark.parametrize("flood", [40, 1000])
def test_victims_fault_is_reported_under_a_flood(flood, victim, kind):
    out = _run(flood, victim, kind=kind)
    assert out["depth"] == 16 and out["quota"] == 4
    assert out["victim_reported"] and out["victim_records"] == 1
    attacker = out.get("attacker_records", out["timing"].get("attacker_records"))
    assert attacker == out["quota"]
    # What the attacker lost is counted as its own, and in the total; the victim lost nothing.
    assert out["lost"] == {ATTACKER[kind]: flood - out["quota"]}
    assert out["lost_total"] == flood - out["quota"]


def test_the_flood_fills_the_queue_without_the_quota():
    """The same flood against a queue with no quota loses the victim's fault (the defect), and
    the per-domain counts say whose it was."""
    from siov.sw.model.dma import DmaModel

    def no_quota(bus):
        dma = bus.device.dma
        dma.fault_quota = dma.fault_depth

    out = run_program(PROGRAM, "model", seed=1, arg={"flood": 40, "victim": "after"}, bus_hook=no_quota)
    assert not out["victim_reported"]
    assert out["lost"] == {"0": 24, "1": 1} and out["lost_total"] == 25
    assert DmaModel().fault_quota == 4


@pytest.mark.sim
@pytest.mark.parametrize("kind", ["dma", "irq"])
@pytest.mark.parametrize("flood", [40, 1000])
def test_rtl_gives_the_model_record(flood, kind):
    model, rtl = _run(flood, kind=kind), _run(flood, backend="rtl", kind=kind)
    assert rtl["victim_reported"] and rtl["lost"] == {ATTACKER[kind]: flood - 4}
    assert {k: v for k, v in rtl.items() if k != "timing"} == {k: v for k, v in model.items() if k != "timing"}
