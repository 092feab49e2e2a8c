"""An attacker's DMA fault flood against a victim's one fault (make bench BENCH=fault_flood).

Issue 24, item 4: runs :mod:`siov.sw.programs.fault_flood` on the model and
the rtl backends: the attacker posts 40, then 1,000 descriptors writing a
page it never mapped; the victim faults once, after the flood or while it
runs; then the hypervisor drains the DMA fault queue. Per run: whether the
victim's record was in the queue, how many of the attacker's records were,
the attacker's lost count (DMA.FAULT_LOST, its domain's word) and the total
(DMA.FAULT_OVF_COUNT). A last row runs the model with the quota set to the
queue's depth, as the queue was before the quota: the victim's fault is lost.

Writes build/bench/fault_flood.json.
"""

import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
PROGRAM = "siov.sw.programs.fault_flood:fault_flood"


def _row(backend, flood, victim, out, note=""):
    attacker = out.get("attacker_records", out["timing"].get("attacker_records"))
    return {"backend": backend, "flood": flood, "victim faults": victim,
            "victim reported": "yes" if out["victim_reported"] else "no",
            "attacker records queued": attacker,
            "attacker lost (FAULT_LOST)": out["lost"].get("0", 0),
            "victim lost": out["lost"].get("1", 0),
            "lost in total (FAULT_OVF_COUNT)": out["lost_total"],
            "queue": f"{out['depth']} records, quota {out['quota']}{note}"}


def main():
    from siov.sw.platform import run_program
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for backend in ("model", "rtl"):
        for flood in (40, 1000):
            for victim in ("after", "during"):
                out = run_program(PROGRAM, backend, seed=1, arg={"flood": flood, "victim": victim}, quiet=True)
                rows.append(_row(backend, flood, victim, out))

    def no_quota(bus):
        bus.device.dma.fault_quota = bus.device.dma.fault_depth
    for flood in (40, 1000):
        out = run_program(PROGRAM, "model", seed=1, arg={"flood": flood, "victim": "after"}, bus_hook=no_quota)
        rows.append(_row("model", flood, "after", out, " (no quota, as before)"))
    data = {"title": "DMA fault queue: an attacker's fault flood against a victim's fault", "rows": rows,
            "notes": ("The attacker (domain 0) posts the flood of MEMFILLs onto a page it never mapped, one "
                      "write fault each; the victim (domain 1, on the other engine) one MEMFILL onto its own "
                      "unmapped page, after the flood has completed or right behind its doorbell. Then the "
                      "hypervisor drains the queue (PfDriver.pop_dma_faults) and reads the per-domain lost "
                      "counts (PfDriver.dma_lost_faults). The attacker holds at most its quota of records; the "
                      "victim's fault is always queued. Without the quota the flood fills the queue and the "
                      "victim's one fault is lost (the last rows).")}
    (OUT / "fault_flood.json").write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
