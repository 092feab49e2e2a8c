"""HA failover (sw/ckpt/failover.py): a primary runs three tenants with checkpoints every K
cycles and dies at a random cycle; a secondary restores the last committed checkpoint onto a
fresh Device and runs on. The secondary's final guest memory, each tenant's outputs and its
interrupts equal an uninterrupted golden run's, and every output and interrupt released
before the failure is explained by the state the secondary restored."""

import random

import pytest

from siov.rtl.params import DeviceParams
from siov.sw.ckpt import failover
from siov.sw.platform import run_program

FP = "0123456789ab"          # a fingerprint given explicitly: the model runs need no Verilog


def _fail_at(seed):
    return random.Random(seed).randrange(2_000, 100_000)


def check_failover(g, p, s):
    """The failover's claims, for golden ``g``, primary ``p`` and secondary ``s`` results."""
    assert p["failed"]
    assert s["epoch"] == p["committed"]
    for name, want in g.items():
        got, restored = s["result"][name], s["restored"][name]
        assert got["memory"] == want["memory"], (name, [k for k, (a, b) in
                                                        enumerate(zip(want["pages"], got["pages"])) if a != b])
        # Each output leaves exactly once: the primary's released ones, then the secondary's.
        assert p["released"][name] + got["outputs"] == want["outputs"], name
        assert got["vectors"] == want["vectors"], name
        # Released before the failure, explained by the restored state: the guest had reported
        # the job (its results page holds the output's digest), and the interrupt is in the
        # restored controller's log.
        for value in p["released"][name]:
            job = value[1]
            assert job < restored["state"]["next_report"]
            assert restored["results"][job] == failover.output_digest(value)
        assert restored["vectors"][:len(p["interrupts"][name])] == p["interrupts"][name]


def _run(seed, fail_at, primary="model", secondary="model", golden="model", params=DeviceParams(), fp=FP):
    arg = {"fingerprint": fp}
    g = run_program("siov.sw.ckpt.failover:golden", backend=golden, seed=seed, params=params, arg=arg)
    p = run_program("siov.sw.ckpt.failover:primary", backend=primary, seed=seed, params=params,
                    arg=dict(arg, fail_at=fail_at))
    s = run_program("siov.sw.ckpt.failover:secondary", backend=secondary, seed=seed, params=params,
                    arg=dict(arg, chains=p["chains"]))
    return g, p, s


@pytest.mark.parametrize("seed", [5, 9, 10, 12])
def test_failover_equals_the_golden_run(seed):
    g, p, s = _run(seed, _fail_at(seed))
    assert p["committed"] >= 1           # these seeds fail after work was checkpointed
    check_failover(g, p, s)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 300))
def test_failover_soak(seed):
    check_failover(*_run(seed, _fail_at(seed)))


def test_uninterrupted_primary_equals_golden_and_releases_everything():
    g = run_program(failover.golden, seed=3, arg={"fingerprint": FP})
    p = run_program(failover.primary, seed=3, arg={"fingerprint": FP})
    assert not p["failed"] and p["committed"] >= 3
    for name, want in g.items():
        assert p["result"][name]["memory"] == want["memory"]
        assert p["released"][name] == want["outputs"]
        assert p["interrupts"][name] == want["vectors"]
    assert all(e["downtime"] > 0 and [s[0] for s in e["spans"]] == ["stop", "copy", "resume"] for e in p["epochs"])
    assert all(e["pages"] < 3 * 64 // 2 for e in p["epochs"][1:])        # deltas, not full copies
