"""The model backend arbitrates as the RTL does (DESIGN.md, "Scheduler and scanner"; issue 25).

Policies get studied on the model backend, so its arbiters must give each
tenant the RTL's share of descriptors and of engine time (within 2%), and
the RTL's grant order where costs are equal. The program
(:mod:`siov.sw.programs.arbitration`) saturates every engine with tenants'
rings; :func:`~siov.sw.programs.arbitration.shares` reads each tenant's
shares, and each engine's grant order, from the completion interrupts and
records, on either backend.

* In ``make test``: on the model, WRR keeps a ring's grant for its weight
  (the RTL's order: the dispatcher decides only once the running ring's next
  descriptor is prefetched), and QoS grants a small tenant whatever fits its
  budget as soon as it is ready, instead of waiting for the next refill.
* On the RTL (``sim``; the 1-engine Device has its own build, so those go
  under ``slow`` too): per policy and engine count, the model's shares are
  within 2% of the RTL's, and under rr and wrr with equal costs every
  engine's grant order is the RTL's.
"""

import pytest

from siov.rtl.params import DeviceParams
from siov.sw.platform import run_program
from siov.sw.programs.arbitration import case_arg, shares

PROGRAM = "siov.sw.programs.arbitration:arbitration"


def _run(policy, engines, backend):
    arg = case_arg(policy, engines)
    result = run_program(PROGRAM, backend, seed=1, arg=arg, params=DeviceParams(num_engines=engines), quiet=True)
    assert all(status == 1 for recs in result["records"] for status, _ in recs)
    return shares(result, [t["engine"] for t in arg["tenants"]])


def test_wrr_keeps_the_grant_for_the_weight_on_the_model():
    """Weights 1:3 over NOOP streams: the RTL grants 0111 0111 ... (the prefetch of the running
    ring's next descriptor finishes before the engine decides again); the model did 0101."""
    arg = {"policy": "wrr", "tenants": [{"op": "noop", "weight": 1, "count": 100},
                                        {"op": "noop", "weight": 3, "count": 200}]}
    result = run_program(PROGRAM, "model", seed=1, arg=arg)
    got = shares(result, [0, 0])
    assert "".join(map(str, got["order"][0])) == "0111" * 66 + "011"
    assert got["descriptors"] == [67 / 267, 200 / 267]


def test_wrr_weights_share_the_engine_on_the_model():
    got = _run("wrr", 1, "model")
    assert "".join(map(str, got["order"][0][:12])) == "011122011122"
    assert [round(s, 2) for s in got["descriptors"]] == [0.17, 0.5, 0.33]


def test_qos_serves_the_small_tenant_within_its_budget_on_the_model():
    """A small tenant whose next copy fits its budget is granted as soon as it is fetched: about
    1000 / 52 copies per 4000-cycle slice beside one big copy, not one per refill. (On the RTL the
    small tenant gets 94.3% of the descriptors here, and 52.6% of the engine's time.)"""
    got = _run("qos", 1, "model")
    order = got["order"][0]
    runs = [len(r) for r in "".join(map(str, order)).split("0") if r]
    assert min(runs[1:-1]) >= 17
    assert got["descriptors"][1] > 0.9 and 0.5 < got["time"][1] < 0.55


def _compare(policy, engines):
    model, rtl = _run(policy, engines, "model"), _run(policy, engines, "rtl")
    for key in ("descriptors", "time"):
        for m, r in zip(model[key], rtl[key]):
            assert abs(m - r) <= 0.02 * r, (key, model[key], rtl[key])
    if policy in ("rr", "wrr"):
        assert model["order"] == rtl["order"]
    return model, rtl


@pytest.mark.sim
@pytest.mark.parametrize("policy", ["rr", "wrr", "qos"])
def test_model_shares_match_the_rtl_at_two_engines(policy):
    """Two engines share the prefetch and the AXI port: the model's shares and orders still follow."""
    _compare(policy, 2)


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("policy", ["rr", "wrr", "qos"])
def test_model_shares_match_the_rtl_at_one_engine(policy):
    _compare(policy, 1)
