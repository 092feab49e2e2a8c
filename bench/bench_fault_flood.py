"""An attacker's fault flood against a victim's one fault (make bench BENCH=fault_flood).

Issue 24, item 4: runs :mod:`siov.sw.programs.fault_flood` on the model and
the rtl backends: the attacker posts 40, then 1,000 descriptors writing a
page it never mapped; the victim faults once, after the flood or while it
runs; then the hypervisor drains the DMA fault queue. Per run: whether the
victim's record was in the queue, how many of the attacker's records were,
the attacker's lost count (DMA.FAULT_LOST, its domain's word) and the total
(DMA.FAULT_OVF_COUNT). Two rows run the model with the quota set to the
queue's depth, as the queue was before the quota: the victim's fault is lost.
Then the same against the interrupt remapper's fault queue: the attacker
forges the victim's IMS handle (a PASID_MISMATCH fault each, charged to the
source of its own PASID), the victim's one interrupt names an entry that is
not present.

Writes build/bench/fault_flood.json.
"""

import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
PROGRAM = "siov.sw.programs.fault_flood:fault_flood"


#: The attacker's and the victim's keys in the record's lost counts, per queue.
KEYS = {"dma": ("0", "1"), "irq": ("attacker", "victim")}


def _row(backend, flood, victim, out, note="", kind="dma"):
    attacker = out.get("attacker_records", out["timing"].get("attacker_records"))
    a, v = KEYS[kind]
    return {"queue": kind.upper(), "backend": backend, "flood": flood, "victim faults": victim,
            "victim reported": "yes" if out["victim_reported"] else "no",
            "attacker records queued": attacker,
            "attacker lost (FAULT_LOST)": out["lost"].get(a, 0),
            "victim lost": out["lost"].get(v, 0),
            "lost in total (FAULT_OVF_COUNT)": out["lost_total"],
            "size": f"{out['depth']} records, quota {out['quota']}{note}"}


def main():
    from siov.sw.platform import run_program
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in ("dma", "irq"):
        for backend in ("model", "rtl"):
            for flood in (40, 1000):
                for victim in ("after", "during"):
                    out = run_program(PROGRAM, backend, seed=1, arg={"flood": flood, "victim": victim, "kind": kind},
                                      quiet=True)
                    rows.append(_row(backend, flood, victim, out, kind=kind))

        def no_quota(bus, kind=kind):
            block = getattr(bus.device, kind)
            block.fault_quota = block.fault_depth
        for flood in (40, 1000):
            out = run_program(PROGRAM, "model", seed=1, arg={"flood": flood, "victim": "after", "kind": kind},
                              bus_hook=no_quota)
            rows.append(_row("model", flood, "after", out, " (no quota, as before)", kind=kind))
    data = {"title": "Fault queues: an attacker's fault flood against a victim's fault", "rows": rows,
            "notes": ("The attacker (domain 0) posts the flood of MEMFILLs onto a page it never mapped, one "
                      "write fault each; the victim (domain 1, on the other engine) one MEMFILL onto its own "
                      "unmapped page, after the flood has completed or right behind its doorbell. Then the "
                      "hypervisor drains the queue (PfDriver.pop_dma_faults) and reads the per-domain lost "
                      "counts (PfDriver.dma_lost_faults). The attacker holds at most its quota of records; the "
                      "victim's fault is always queued. Without the quota the flood fills the queue and the "
                      "victim's one fault is lost (the rows marked 'no quota'). The IRQ rows: the attacker's "
                      "NOOPs ask for a completion interrupt through the victim's IMS handle (PASID_MISMATCH "
                      "under the attacker's PASID 0x42, source 2 of 8), the victim's NOOP through an entry "
                      "that is not present (ENTRY_NOT_PRESENT under PASID 0x177, source 7); the quota is per "
                      "source, the low FAULT_CAP.SOURCE_BITS bits of the sending PASID.")}
    (OUT / "fault_flood.json").write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
