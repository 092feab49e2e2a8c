"""The model backend gives the records it gave when its golden records were captured.

The model backend is tuned for speed (issue 25: its cost should grow with
events, not with cycles or polls), and none of that may change what a run
does: every descriptor must still start and finish at the same device
cycle, on the same engine, with the same status, and every host program
must return the same result. This test runs a few programs that between
them exercise every path of the descriptor dispatcher (weighted and QoS
arbitration at one and two engines, WAIT and SIGNAL with re-checks and the
eligibility mask of gang scheduling, faults, interrupt floods, a ring
reset while descriptors are in flight, and the built-in ``siov run``
scenario pinned in ``bench/fixtures/simspeed_scenario.toml``), and compares
a digest of each run with ``tests/golden/model_records.json``:

* the program's result, as JSON, key by key (a key added to a program's
  result later is not compared; a lost one is);
* every descriptor the engines completed and every WAIT check retried
  (:class:`~siov.sw.platform.model.DispatchRecord`: ADI, start, end,
  opcode, status, engine), in order;
* every interrupt the host received, with its cycle.

A deliberate change of the model's behaviour regenerates the file
(``python tests/test_model_golden.py [case ...]``) and says why in its
commit. So does a change of what a program does on the host (the GPU
scheduler reading its rings at other times moves the descriptors'
cycles): capture its records again on the model as it was before, so that
the file keeps recording that model's behaviour.
"""

import hashlib
import json
import pathlib
import sys

import pytest

from siov.rtl.params import DeviceParams
from siov.sw.platform import run_program

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "model_records.json"
SCENARIO = ROOT / "bench" / "fixtures" / "simspeed_scenario.toml"

#: name -> (program, seed, arg, Device parameters; None: the scenario's)
CASES = {
    "scenario": ("siov.sw.programs.scenario:run_scenario", 0, "scenario", None),
    "four_tenants": ("siov.sw.programs.four_tenants:four_tenants", 1, None, DeviceParams()),
    "cross_ring": ("siov.sw.programs.cross_ring:cross_ring", 1, None, DeviceParams()),
    "vms_and_containers": ("siov.sw.programs.vms_and_containers:vms_and_containers", 2, None, DeviceParams()),
    "scheduled_auto": ("siov.sw.sched.programs:scheduled", 1, "auto", DeviceParams()),
    "arbitration_wrr_2": ("siov.sw.programs.arbitration:arbitration", 1, ("wrr", 2), DeviceParams(num_engines=2)),
    "arbitration_qos_1": ("siov.sw.programs.arbitration:arbitration", 1, ("qos", 1), DeviceParams(num_engines=1)),
    "arbitration_qos_2": ("siov.sw.programs.arbitration:arbitration", 1, ("qos", 2), DeviceParams(num_engines=2)),
    "fault_flood_irq": ("siov.sw.programs.fault_flood:fault_flood", 1,
                        {"flood": 40, "victim": "after", "kind": "irq"}, DeviceParams()),
    "inflight_teardown": ("siov.sw.programs.teardown:inflight_teardown", 1, None, DeviceParams()),
}


def _arg(arg):
    if arg == "scenario":
        return {"scenario": SCENARIO.read_text(), "source": str(SCENARIO.name), "seed": None}
    if isinstance(arg, tuple):
        from siov.sw.programs.arbitration import case_arg
        return case_arg(*arg)
    return arg


def record(name):
    """``{"result", "dispatches", "retries", "interrupts"}`` of case ``name``: digests and counts."""
    program, seed, arg, params = CASES[name]
    if params is None:
        from siov.sw.scenario import load
        params = load(SCENARIO).device.params()
    buses, irqs = [], []

    def hook(bus):
        buses.append(bus)
        bus.on_irq(lambda irq: irqs.append([irq.dest, irq.vector, irq.cycle]))
    result = run_program(program, "model", seed=seed, params=params, arg=_arg(arg), bus_hook=hook)
    bus = buses[0]
    parts = {"result": result,
             "dispatches": [[d.adi, d.start, d.end, d.opcode, d.status, d.engine] for d in bus.dispatches],
             "retries": [[d.adi, d.start, d.end, d.opcode, d.status, d.engine] for d in bus.retries],
             "interrupts": irqs}
    out = {}
    for key, value in parts.items():
        out[key] = {"sha256": _digest(value), "count": len(value) if isinstance(value, list) else None,
                    "last": value[-1] if isinstance(value, list) and value else None}
    if isinstance(result, dict):
        out["result"]["parts"] = {k: _digest(v) for k, v in result.items() if k not in DECLARATIONS}
    return out


#: Result keys that declare something about the program (field names), not what happened.
DECLARATIONS = ("timing_dependent",)


def _digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def _compare(name, golden, got):
    """The differences between a golden record and this run's. A program's result is compared key
    by key: a key the program has added since the capture is a new output, not a change of what
    the model did, and is not compared; a key it lost is a difference."""
    diffs = []
    for key in golden:
        g, r = golden[key], got[key]
        if key == "result" and "parts" in g:
            diffs += [f"{name}: result[{k!r}] differs" for k in g["parts"] if g["parts"][k] != r["parts"].get(k)]
        elif g != r:
            diffs.append(f"{name}: {key} differs: golden {g}, now {r}")
    return diffs


@pytest.mark.parametrize("name", list(CASES))
def test_model_records_match_the_golden_ones(name):
    golden = json.loads(GOLDEN.read_text())[name]
    got = record(name)
    assert _compare(name, golden, got) == []


if __name__ == "__main__":
    names = sys.argv[1:] or list(CASES)
    data = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    for n in names:
        data[n] = record(n)
        print(n, json.dumps(data[n]))
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
