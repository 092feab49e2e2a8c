"""HA failover on the rtl backend and across backends (sw/ckpt/failover.py): one seed whose
primary and secondary both run on the Verilated Device, then a chain checkpointed on rtl
restored onto a fresh model Device, and one checkpointed on the model restored onto rtl. Each
secondary's memory, outputs and interrupts equal the golden run's: the saved state is complete
and means the same on both backends."""

import pytest

from siov.rtl.params import DeviceParams
from siov.sw.platform import run_program
from siov.sw.results import device_fingerprint
from test_failover import check_failover

PARAMS = DeviceParams()
SEED = 5


@pytest.fixture(scope="module")
def runs():
    fp = device_fingerprint(PARAMS)
    arg = {"fingerprint": fp}

    def run(name, backend, **more):
        return run_program(f"siov.sw.ckpt.failover:{name}", backend=backend, seed=SEED, params=PARAMS,
                           arg=dict(arg, **more), quiet=backend == "rtl")
    out = {"golden": run("golden", "model"), "run": run}
    out["rtl"] = run("primary", "rtl", fail_at=150_000)
    out["model"] = run("primary", "model", fail_at=80_000)
    return out


def test_golden_is_the_same_on_rtl(runs):
    rtl = runs["run"]("golden", "rtl")
    assert {k: (v["memory"], v["outputs"], v["vectors"]) for k, v in rtl.items()} == \
        {k: (v["memory"], v["outputs"], v["vectors"]) for k, v in runs["golden"].items()}


def test_rtl_primary_fails_over_to_rtl(runs):
    p = runs["rtl"]
    assert p["committed"] >= 1
    check_failover(runs["golden"], p, runs["run"]("secondary", "rtl", chains=p["chains"]))


def test_rtl_checkpoint_restores_on_the_model(runs):
    p = runs["rtl"]
    check_failover(runs["golden"], p, runs["run"]("secondary", "model", chains=p["chains"]))


def test_model_checkpoint_restores_on_rtl(runs):
    p = runs["model"]
    assert p["committed"] >= 1
    check_failover(runs["golden"], p, runs["run"]("secondary", "rtl", chains=p["chains"]))
