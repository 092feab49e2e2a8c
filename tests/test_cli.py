"""The siov command and its scenario files.

``siov run`` on the model backend writes the same results.json for the same
file and seed, and a trace Perfetto can read; a scenario with a mistake is
refused with a message naming the key and its line, and nothing runs.
"""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from siov.sw.cli import main
from siov.sw.scenario import DEFAULT, DEFAULT_SHORT, ScenarioError, parse

SMALL = """\
cycles = 20000
seed = 3
[arbiter]
policy = "qos"
[[tenants]]
name = "vm0"
adis = 2
quantum = 500
[[tenants.workloads]]
kind = "copy"
size = [64, 2048]
[[tenants]]
name = "ctr0"
kind = "container"
[[tenants.workloads]]
kind = "fill"
size = [64, 512]
interval = 300
[[faults]]
tenant = "ctr0"
kind = "forged_pasid"
at = 5000
"""


def test_builtin_scenarios_are_valid():
    sc = parse(DEFAULT)
    assert (sum(t.kind == "vm" for t in sc.tenants), sum(t.kind == "container" for t in sc.tenants)) == (5, 2)
    assert sc.device.num_engines == 2 and sc.scheduler.policy == "auto"
    assert [t.name for t in sc.tenants if any(w.kind == "dependent" for w in t.workloads)] == ["pc"]
    assert {f.kind for f in sc.faults} == {"flood", "foreign_map", "forged_pasid", "unmap_in_flight",
                                           "outside_window", "forged_handle", "use_after_unpin"}
    short = parse(DEFAULT_SHORT)
    assert short.cycles < sc.cycles
    assert short.device.num_engines == 2 and short.scheduler.policy == "auto"
    assert [t.name for t in short.tenants if any(w.kind == "dependent" for w in t.workloads)] == ["pc"]


@pytest.mark.parametrize("text, message", [
    ("cycles = 5000\nbogus = 1\n[[tenants]]\nname = 'a'\n", r"<s>:2: bogus: unknown key"),
    ("[[tenants]]\nname = 'a'\nwieght = 2\n", r"<s>:3: tenants.0.wieght: unknown key"),
    ("[[tenants]]\nname = 'a'\nadis = 0\n", r"<s>:3: tenants.0.adis: Input should be greater than or equal to 1"),
    ("[device]\nnum_adis = 2\n[[tenants]]\nname = 'a'\nadis = 3\n", r"tenants ask for 3 ADIs; the device has 2"),
    ("[arbiter]\npolicy = 'wrr'\n[[tenants]]\nname = 'a'\nweight = 0\n", r"tenant a: weight 0 under weighted round robin"),
    ("[arbiter]\npolicy = 'lottery'\n[[tenants]]\nname = 'a'\n", r"<s>:2: arbiter.policy: Input should be 'rr', 'wrr' or 'qos'"),
    ("[scheduler]\npolicy = 'fair'\n[[tenants]]\nname = 'a'\n",
     r"<s>:2: scheduler.policy: Input should be 'per-ring', 'gang', 'auto' or 'qos'"),
    ("[scheduler]\ntick = 1\n[[tenants]]\nname = 'a'\n", r"<s>:2: scheduler.tick: Input should be greater than"),
    ("[[tenants]]\nname = 'a'\n[[faults]]\ntenant = 'b'\nkind = 'flood'\n", r"names tenant 'b'"),
    ("[device]\nims_entries = 300\n[[tenants]]\nname = 'a'\n", r"power of two"),
    ("[checkpoint]\nmode = 'remus'\n[[tenants]]\nname = 'a'\n", r"<s>:2: checkpoint.mode: Input should be 'ha' or 'migrate'"),
    ("[checkpoint]\ninterval = 10\n[[tenants]]\nname = 'a'\n", r"<s>:2: checkpoint.interval: Input should be greater"),
    ("[checkpoint]\nevery = 3\n[[tenants]]\nname = 'a'\n", r"<s>:2: checkpoint.every: unknown key"),
    ("tenants = [", r"not valid TOML"),
    ("cycles = 5000\n", r"tenants: Field required"),
])
def test_scenario_errors_name_the_key(text, message):
    with pytest.raises(ScenarioError, match=message):
        parse(text, "<s>")


@pytest.mark.parametrize("text, message", [
    ("[[tenants]]\nname = 'a'\n[[tenants]]\nname = 'b'\n[[tenants]]\nname = 'a'\n",
     r"^<s>:6: tenants.2.name: tenant name 'a' is used by tenant 0 too"),
    ("[arbiter]\npolicy = 'wrr'\n[[tenants]]\nname = 'a'\n[[tenants]]\nname = 'b'\nweight = 0\n",
     r"^<s>:7: tenants.1.weight: tenant b: weight 0"),
    ("[[tenants]]\nname = 'a'\n[[tenants]]\nname = 'b'\n[[tenants.workloads]]\nkind = 'copy'\n"
     "[[tenants.workloads]]\nkind = 'fill'\nsize = [9, 3]\n", r"^<s>:9: tenants.1.workloads.1.size: size must be"),
    ("[[tenants]]\nname = 'a'\n[[faults]]\ntenant = 'a'\nkind = 'flood'\n[[faults]]\ntenant = 'b'\n"
     "kind = 'flood'\n", r"^<s>:7: faults.1.tenant: fault names tenant 'b'"),
    ("[[tenants]]\nname = 'a'\npages = 9000\n", r"^<s>:3: tenants.0.pages: 9000 pages"),
    ("[[tenants]]\nname = 'a'\nadis = 2\nengines = [0, 2]\n",
     r"^<s>:4: tenants.0.engines: tenant a: engine 2; the device has 2 \(0..1\)"),
    ("[[tenants]]\nname = 'a'\n[[tenants.workloads]]\nkind = 'dependent'\n",
     r"^<s>:4: tenants.0.workloads.0.kind: tenant a: a dependent workload needs a VM with 2 ADIs"),
    ("[arbiter]\npolicy = 'rr'\n[scheduler]\npolicy = 'gang'\n[[tenants]]\nname = 'a'\n",
     r"^<s>:1: arbiter: a \[scheduler\] programs the arbiters itself"),
    ("[scheduler]\n[[tenants]]\nname = 'a'\nweight = 0\n", r"^<s>:4: tenants.0.weight: tenant a: weight 0; the "),
    ("cycles = 50000\n[checkpoint]\nmode = 'ha'\ninterval = 60000\n[[tenants]]\nname = 'a'\n",
     r"^<s>:4: checkpoint.interval: interval 60000 is not shorter than the run \(50000 cycles\)"),
    ("cycles = 50000\n[checkpoint]\nmode = 'migrate'\nfailover = 100\n[[tenants]]\nname = 'a'\n",
     r"^<s>:4: checkpoint.failover: failover is a cycle of mode 'ha'; a migration \(mode 'migrate'\) has none"),
    ("cycles = 50000\n[checkpoint]\nfailover = 70000\n[[tenants]]\nname = 'a'\n",
     r"^<s>:3: checkpoint.failover: failover at cycle 70000 is past the run's end \(50000 cycles\)"),
    ("[checkpoint]\n[[tenants]]\nname = 'a'\nkind = 'container'\n",
     r"^<s>:1: checkpoint: the checkpointer protects VMs; the scenario has none"),
    ("[device]\nnum_adis = 4\n[checkpoint]\n[[tenants]]\nname = 'a'\nadis = 3\n",
     r"^<s>:3: checkpoint: the checkpointer restores each VM onto a stand-in of as many ADIs on this Device: "
     r"3 \+ 3 ADIs; it has 4"),
    ("[device]\nnum_domains = 2\n[checkpoint]\n[[tenants]]\nname = 'a'\n[[tenants]]\nname = 'b'\n",
     r"^<s>:3: checkpoint: the checkpointer's stand-in VM needs a DMA domain: 2 tenants \+ 1; the device has 2"),
])
def test_cross_field_errors_name_the_key_and_line(text, message):
    with pytest.raises(ScenarioError, match=message) as e:
        parse(text, "<s>")
    assert "Value error" not in str(e.value)


def test_example_scenario_is_the_builtin_one_commented():
    from siov.sw.scenario import example_text
    text = example_text()
    assert parse(text) == parse(DEFAULT)
    assert "# per-ring | gang | auto | qos" in text and "# length of the run, device cycles" in text
    assert "# dependent: SIGNAL-WAIT pairs in one chain" in text
    res = CliRunner().invoke(main, ["scenario", "--example"])
    assert res.exit_code == 0 and res.output == text


def test_version():
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("siov, version ")


def test_error_text_is_not_taken_for_markup(tmp_path):
    """Rich markup must not eat ``[min, max]`` from a message."""
    (tmp_path / "s.toml").write_text("[[tenants]]\nname = 'a'\n[[tenants.workloads]]\nkind = 'copy'\nsize = [0, 1]\n")
    res = CliRunner().invoke(main, ["run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "size must be [min, max] with" in res.output


def test_a_run_too_long_asks_for_yes(tmp_path):
    (tmp_path / "s.toml").write_text("cycles = 1000000000000\n[[tenants]]\nname = 'a'\n")
    res = CliRunner().invoke(main, ["run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "--yes" in res.output and "days" in res.output
    assert not (tmp_path / "out").exists()


def test_verilog_names_the_tops_for_an_unknown_one(tmp_path):
    res = CliRunner().invoke(main, ["verilog", "--out", str(tmp_path), "siov_foo"])
    assert res.exit_code == 2 and "no top siov_foo" in res.output and "siov_device" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_verilog_lints_only_what_was_asked(tmp_path):
    (tmp_path / "siov_stale.v").write_text("module siov_stale(input a); endmodule\n")
    res = CliRunner().invoke(main, ["verilog", "--out", str(tmp_path), "siov_arbiter"])
    assert res.exit_code == 0, res.output
    assert "lint siov_arbiter: clean" in res.output and "siov_stale" not in res.output


def test_run_model_is_reproducible_and_writes_everything(tmp_path):
    (tmp_path / "s.toml").write_text(SMALL)
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        res = CliRunner().invoke(main, ["run", str(tmp_path / "s.toml"), "--out", str(out)])
        assert res.exit_code == 0, res.output
        outs.append(out)
    a, b = ((o / "results.json").read_bytes() for o in outs)
    assert a == b
    result = json.loads(a)
    vm, ctr = result["tenants"]["vm0"], result["tenants"]["ctr0"]
    assert vm["descriptors"] > 10 and vm["statuses"] == {"SUCCESS": vm["descriptors"]}
    assert ctr["refused"] == {"adi_error.DESC_PASID": 1} and result["device"]["policy"] == "qos"
    assert "tenants.*.latency_p99" in result["timing_dependent"]
    for png in ("throughput.png", "latency.png"):
        assert (outs[0] / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


#: Two VMs on two engines: one whose producer and consumer rings depend on each other, placed on
#: both engines, and one that floods both with large copies.
PAIRS = """\
cycles = 30000
seed = 2
[scheduler]
policy = "per-ring"
tick = 4096
[[tenants]]
name = "pc"
adis = 2
engines = [1, 0]
[[tenants.workloads]]
kind = "dependent"
size = [512, 1024]
depth = 3
interval = 500
[[tenants]]
name = "flood"
adis = 2
[[tenants.workloads]]
kind = "copy"
size = [8192, 16384]
batch = 4
interrupt = false
"""


def test_policies_side_by_side(tmp_path):
    """--policies runs the same scenario and seed under each policy, one folder each, and shows
    them side by side: auto gangs the dependent VM (its switches name the VM, both rings and the
    semaphore), per-ring never switches, and the placement the scenario gave holds."""
    (tmp_path / "s.toml").write_text(PAIRS)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(tmp_path / "s.toml"), "--policies", "per-ring,auto", "--out", str(out)])
    assert res.exit_code == 0, res.output
    docs = {p: json.loads((out / p / "results.json").read_text()) for p in ("per-ring", "auto")}
    for p, doc in docs.items():
        assert doc["scenario"]["policy"] == p == doc["scheduler"]["policy"] == doc["scenario"]["parsed"]["scheduler"]["policy"]
        assert doc["scenario"]["seed"] == 2 and doc["tenants"]["pc"]["engines"] == [1, 0]
        assert doc["tenants"]["pc"]["pair_latency"]["pairs"] >= 3
        assert (out / p / "report.html").exists()
    assert docs["per-ring"]["scheduler"]["switches"] == []
    gang = docs["auto"]["scheduler"]["switches"][0]
    assert gang["tenant"] == "pc" and gang["mode"] == "gang" and gang["reason"].startswith("dependency")
    assert set(gang["adis"]) == set(docs["auto"]["tenants"]["pc"]["adis"]) and gang["sem"] is not None
    assert (out / "policies.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "side by side" in res.output and "pair latency" in res.output


def test_policies_refuses_an_unknown_name(tmp_path):
    (tmp_path / "s.toml").write_text(PAIRS)
    res = CliRunner().invoke(main, ["run", str(tmp_path / "s.toml"), "--policies", "auto,fair",
                                    "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "unknown scheduling policy 'fair'" in res.output
    assert not (tmp_path / "out").exists()


#: Two VMs and a container under HA checkpoints every 15k cycles, the primary failing at 90k.
CHECKPOINTED = """\
cycles = 120000
seed = 2
[checkpoint]
mode = "ha"
interval = 15000
failover = 90000
[[tenants]]
name = "vm0"
adis = 2
pages = 32
[[tenants.workloads]]
kind = "copy"
size = [256, 4096]
batch = 2
interval = 500
[[tenants]]
name = "vm1"
pages = 32
[[tenants.workloads]]
kind = "fill"
size = [512, 2048]
batch = 2
interval = 800
[[tenants]]
name = "ctr0"
kind = "container"
[[tenants.workloads]]
kind = "copy"
size = [64, 512]
interval = 600
"""


def test_a_checkpoint_scenario_shows_its_checkpoints_and_failover(tmp_path):
    """siov run drives the checkpointer over the scenario's VMs: the report shows the
    checkpoints, pages copied, downtime and the failover (the last committed epoch restored
    onto a stand-in equals the primary); the trace has each checkpoint's stop, copy and resume
    as spans on the checkpointer's track and the failover as an instant; results.json carries
    it under its schema, and the workloads ran beside it."""
    from siov.sw.results import validate
    (tmp_path / "s.toml").write_text(CHECKPOINTED)
    res = CliRunner().invoke(main, ["run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    validate(doc)
    ck = doc["checkpoint"]
    assert ck["mode"] == "ha" and ck["vms"] == ["vm0", "vm1"] and ck["failover_at"] == 90_000
    cps = ck["checkpoints"]
    assert len(cps) >= 2 and cps[0]["pages"] == 64 and all(c["cycle"] < 90_000 and c["downtime"] > 0 for c in cps)
    f = ck["failover"]
    assert f["cycle"] == 90_000 and f["restored_epoch"] is not None and f["equal"], f
    assert all(t["descriptors"] > 10 and t["statuses"] == {"SUCCESS": t["descriptors"]}
               for t in doc["tenants"].values())
    tot = ck["totals"]
    assert (tot["checkpoints"], tot["pages"]) == (len(cps), sum(c["pages"] for c in cps))
    flat = " ".join(res.output.split())
    assert (f"Checkpoints (ha, every 15,000 cycles, VMs vm0, vm1): {len(cps)} taken, {tot['pages']:,} pages "
            f"copied" in flat)
    assert f"downtime {tot['downtime']:,} cycles in all" in flat
    assert f"failover at cycle 90,000: epoch {f['restored_epoch']} restored onto a stand-in, equal to the primary" in flat
    events = json.loads((tmp_path / "out" / "trace.json").read_text())["traceEvents"]
    spans = sorted((e["args"]["phase"], e["ts"], e["ts"] + e["dur"]) for e in events
                   if e.get("pid") == 4 and e["ph"] == "X")
    assert spans == sorted((x["name"], x["start"], max(x["end"], x["start"] + 1)) for x in ck["spans"])
    assert [x["name"] for x in ck["spans"]] == ["stop", "copy", "resume"] * len(cps)
    assert [e["ts"] for e in events if e.get("pid") == 4 and e["ph"] == "i"] == [90_000]
    assert 'id="checkpoint"' in (tmp_path / "out" / "report.html").read_text()
    assert {"checkpoint.checkpoints", "checkpoint.spans", "checkpoint.failover.restored_epoch"} <= set(
        doc["timing_dependent"])


def test_run_refuses_a_bad_file_and_runs_nothing(tmp_path):
    (tmp_path / "bad.toml").write_text("[[tenants]]\nname = 'a'\nadis = 99\n")
    res = CliRunner().invoke(main, ["run", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "the device has 16" in res.output
    assert not (tmp_path / "out").exists()


def test_regs():
    res = CliRunner().invoke(main, ["regs"])
    assert res.exit_code == 0 and "DMA.FAULT_REC0" in res.output
    res = CliRunner().invoke(main, ["regs", "dma.fault_rec0"])
    assert res.exit_code == 0 and "REASON" in res.output and "PASID" in res.output
    res = CliRunner().invoke(main, ["regs", "FAULT_REC9"])
    assert res.exit_code == 2 and "no register" in res.output


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "siov.sw.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout and "synth" in out.stdout


@pytest.mark.sim
@pytest.mark.slow
def test_run_rtl_short_builtin(tmp_path):
    """The rtl backend's built-in scenario runs the GPU scheduler over both engines (auto gangs the
    dependent VM on the Verilated Device too), and gives the model's data results: every field
    of results.json outside ``timing_dependent`` is the same, but where the scenario came from."""
    from siov.sw.results import differences, validate
    res = CliRunner().invoke(main, ["run", "--backend", "rtl", "--out", str(tmp_path / "rtl")])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "rtl" / "results.json").read_text())
    (tmp_path / "short.toml").write_text(DEFAULT_SHORT)
    model = CliRunner().invoke(main, ["run", str(tmp_path / "short.toml"), "--out", str(tmp_path / "m")])
    assert model.exit_code == 0, model.output
    other = json.loads((tmp_path / "m" / "results.json").read_text())
    for doc in (result, other):
        validate(doc)
    assert differences(other, result) == [("scenario.source", str(tmp_path / "short.toml"), "<built-in scenario>")]
    assert result["tenants"]["vm1"]["refused"] == {"foreign_map": 4}
    assert all(t["statuses"].keys() <= {"SUCCESS"} for t in result["tenants"].values())
    assert result["scheduler"]["policy"] == "auto" and all(e["descriptors"] for e in result["device"]["engines"])
    assert {(s["tenant"], s["mode"]) for s in result["scheduler"]["switches"]} == {("pc", "gang"), ("pc", "per-ring")}
    assert result["tenants"]["pc"]["pair_latency"]["pairs"] > 0
    assert "Scheduler auto" in res.output and "pc -> gang (dependency" in res.output


@pytest.mark.sim
@pytest.mark.slow
def test_default_scenario_agrees_between_backends(tmp_path):
    """The default scenario on the model and on the Verilated Device: every field of
    results.json outside ``timing_dependent`` (and ``backend``) is the same."""
    from siov.sw.results import differences, validate
    (tmp_path / "default.toml").write_text(DEFAULT)
    docs = {}
    for backend in ("model", "rtl"):
        res = CliRunner().invoke(main, ["run", str(tmp_path / "default.toml"), "--backend", backend,
                                        "--out", str(tmp_path / backend)])
        assert res.exit_code == 0, res.output
        docs[backend] = json.loads((tmp_path / backend / "results.json").read_text())
        validate(docs[backend])
    assert "per second of simulation" in res.output          # the rtl rate leaves the build out
    assert differences(docs["model"], docs["rtl"]) == []
    for doc in docs.values():
        assert doc["tenants"]["vm3"]["refused"]["adi_error.DESC_PASID"] == 1


DEVICE_FAULTS = """\
cycles = 30000
seed = 2
[[tenants]]
name = "a"
[[tenants.workloads]]
kind = "copy"
size = [64, 512]
interval = 400
[[tenants]]
name = "b"
kind = "container"
[[tenants]]
name = "c"
[[tenants]]
name = "d"
[[faults]]
tenant = "a"
kind = "unmap_in_flight"
at = 5000
[[faults]]
tenant = "b"
kind = "outside_window"
at = 6000
[[faults]]
tenant = "c"
kind = "forged_handle"
at = 7000
[[faults]]
tenant = "d"
kind = "use_after_unpin"
at = 8000
"""


def test_faults_that_reach_the_device(tmp_path):
    """Each device-fault kind makes the device record a fault naming its tenant, shown under it."""
    (tmp_path / "s.toml").write_text(DEVICE_FAULTS)
    res = CliRunner().invoke(main, ["run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    t = json.loads((tmp_path / "out" / "results.json").read_text())["tenants"]
    faults = {n: [(f["unit"], f["reason"]) for f in t[n]["faults"]] for n in t}
    assert faults == {"a": [("dma", "WRITE_UNMAPPED")], "b": [("dma", "WRITE_UNMAPPED")],
                      "c": [("irq", "PASID_MISMATCH")], "d": [("dma", "WRITE_UNMAPPED")]}
    assert t["b"]["faults"][0]["page"] == 64                   # the page just past its 64
    outcomes = {n: [i["outcome"] for i in t[n]["injected"]] for n in t}
    assert outcomes["a"] == ["descriptor PAGE_FAULT after 12,288 bytes; device faults: DMA WRITE_UNMAPPED"]
    assert outcomes["c"] == ["descriptor SUCCESS; device faults: IRQ PASID_MISMATCH"]
    assert "DMA WRITE_UNMAPPED (0x05), page 0x40 write" in res.output
    assert res.output.count("device faults: DMA WRITE_UNMAPPED") == 3


def test_ctrl_c_writes_partial_results(tmp_path):
    """Ctrl-C on a model run stops it at the next tick and writes everything, marked partial."""
    import signal
    import time
    from siov.sw.results import validate
    (tmp_path / "long.toml").write_text(SMALL.replace("cycles = 20000", "cycles = 40000000"))
    proc = subprocess.Popen([sys.executable, "-m", "siov.sw.cli", "run", str(tmp_path / "long.toml"),
                             "--out", str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        lines = []
        while not any("Ctrl-C stops the run" in x for x in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        output = "".join(lines) + proc.communicate(timeout=120)[0]
    finally:
        proc.kill()
    assert proc.returncode == 130, output
    assert "partial results" in output
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    validate(doc)
    assert doc["partial"] is True and 0 < doc["device"]["cycles"] < 40_000_000
    assert doc["tenants"]["vm0"]["descriptors"] > 0
    assert "PARTIAL" in (tmp_path / "out" / "report.html").read_text()
    for name in ("trace.json", "throughput.png", "latency.png"):
        assert (tmp_path / "out" / name).exists()


@pytest.mark.sim
@pytest.mark.slow
def test_a_checkpoint_scenario_agrees_between_backends(tmp_path):
    """The checkpointed scenario on the Verilated Device: the failover's stand-in equals the
    primary there too, and results.json differs from the model's only in timing-dependent fields."""
    from siov.sw.results import differences, validate
    (tmp_path / "s.toml").write_text(CHECKPOINTED)
    docs = {}
    for backend in ("model", "rtl"):
        res = CliRunner().invoke(main, ["run", str(tmp_path / "s.toml"), "--backend", backend,
                                        "--out", str(tmp_path / backend)])
        assert res.exit_code == 0, res.output
        docs[backend] = json.loads((tmp_path / backend / "results.json").read_text())
        validate(docs[backend])
    assert differences(docs["model"], docs["rtl"]) == []
    assert docs["rtl"]["checkpoint"]["failover"]["equal"] and docs["rtl"]["checkpoint"]["checkpoints"]
