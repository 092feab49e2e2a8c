"""siov sweep on the Verilated Device, on a LocalCluster of two workers (make soak: minutes of builds).

* An rtl sweep of a Device no other test builds: exactly one Verilator
  build for its parameter set, done before its runs, and every run (and
  every attempt) in its own folder, with nothing left in the build folder.
* Seeds of a pyuvm random test: one folder per seed, one JUnit file and
  one coverage merged over the seeds.
"""

import json
import shutil
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from siov.rtl.params import DeviceParams
from siov.sw.cli import main
from siov.tb.regressions import device_build
from siov.tb.runner import BUILD
from sweep_support import TINY

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_rtl_sweep_builds_once_per_parameter_set(tmp_path):
    params = DeviceParams(num_adis=12, num_engines=3)
    build_dir = BUILD / "sim" / device_build(params).build
    shutil.rmtree(build_dir, ignore_errors=True)          # a parameter set of this test alone: a cold build
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", str(scenario), "--backend", "rtl", "--seeds", "1-2",
                                       "--set", "arbiter.policy=rr,wrr", "--set", "device.num_adis=12",
                                       "--set", "device.num_engines=3", "--cluster", "local:2",
                                       "--out", str(out), "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    timing = json.loads((out / "timing.json").read_text())
    assert [(b["params"]["num_engines"], b["built"]) for b in timing["builds"]] == [(3, True)]
    assert timing["computed"] == 4
    logs = sorted(out.glob("runs/p*/seed-*/attempt-*/sim.log"))
    assert len(logs) == 4 and len({p.parent for p in logs}) == 4
    assert all((p.parent / "result.json").exists() and (p.parent / "results.xml").exists() for p in logs)
    assert not list(build_dir.glob("run-sweep-*"))
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["backend"] == "rtl" and all(len(p["runs"]) == 2 for p in doc["points"])
    shutil.rmtree(build_dir, ignore_errors=True)


def test_regression_seeds_on_workers(tmp_path):
    out = tmp_path / "reg"
    result = CliRunner().invoke(main, ["sweep", "--regression", "EngineRandomTest", "--seeds", "1-2",
                                       "--cluster", "local:2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 passed, 0 failed" in result.output
    root = ET.parse(out / "junit.xml").getroot()
    assert [s.get("name") for s in root] == ["EngineRandomTest[seed=1]", "EngineRandomTest[seed=2]"]
    assert root.get("failures") == "0"
    cov = json.loads((out / "coverage.json").read_text())["system"]
    assert cov["bins"]["mem_backpressure"] == {"hits": 2, "seeds": 2}
    assert len(list(out.glob("runs/EngineRandomTest/seed-*/attempt-*/sim.log"))) == 2
