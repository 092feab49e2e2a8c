"""What ``siov run`` writes and shows: the terminal report, results.json, the trace, the plots.

The built-in scenario runs once on the model backend (a couple of seconds)
and every test reads what that run wrote.
"""

import copy
import html
import io
import json
import re

import pytest
from apt_support import debian_program, run_command
from click.testing import CliRunner
from rich.console import Console

from siov.sw.cli import main
from siov.sw.report import print_report


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    res = CliRunner().invoke(main, ["run", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture
def doc(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def _render(doc, width):
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    print_report(doc, console, rate="123 device cycles per second of wall time (1.0 s)")
    return console.file.getvalue()


@pytest.mark.parametrize("width", [80, 120, 48])
def test_report_cuts_no_figure(doc, width):
    """At 80 columns (and narrower or wider) every figure is printed whole: Rich cuts a cell
    that does not fit with an ellipsis, and none may appear."""
    out = _render(doc, width)
    assert "…" not in out
    assert max(map(len, out.splitlines())) <= width
    for name, t in doc["tenants"].items():
        for figure in (f"{t['descriptors']:,}", f"{t['throughput_bytes_per_kcycle']:,.1f}",
                       f"{t['latency_p50']:,}", f"{t['latency_p99']:,}", f"traps {t['traps']:,}"):
            assert figure in out, (name, figure)


def test_report_units_names_and_engines(doc):
    out = _render(doc, 80)
    assert "(B/kcycle)" in out and out.count("(cycles)") == 2
    # the ADI error is named from the register map (AdiError), not a raw code
    assert "ADI error DESC_PASID: 1" in out and "adi_error" not in out
    for e in range(doc["device"]["params"]["num_engines"]):
        assert f"engine {e}: busy" in out
    # the table fits 80 columns: it is the table, not the per-tenant fallback
    assert "latency" in out.splitlines()[2] or "latency" in out.splitlines()[1]


def test_report_shows_lost_descriptors_and_decoded_faults(doc):
    doc = copy.deepcopy(doc)
    t = doc["tenants"]["vm0"]
    t["statuses"]["lost"] = 3
    t["faults"] = [{"unit": "dma", "reason": "WRITE_UNMAPPED", "code": 5, "pasid": t["pasid"], "page": 0x12,
                    "write": True}]
    out = _render(doc, 80)
    assert "lost: 3" in out
    assert "DMA WRITE_UNMAPPED (0x05), page 0x12 write" in out


def test_report_of_a_narrow_console_is_vertical(doc):
    out = _render(doc, 48)
    assert "latency p99 (cycles)" in out and "throughput (B/kcycle)" in out


# -- results.json -------------------------------------------------------------------------------


def test_results_follow_the_schema(doc):
    from siov.sw.results import SCHEMA_VERSION, validate
    validate(doc)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["siov_version"]
    assert doc["backend"] == "model" and doc["partial"] is False
    assert doc["device"]["params"]["num_engines"] == len(doc["device"]["engines"])
    c = doc["tenants"]["vm0"]["completions"][0]
    assert set(c) == {"submitted", "started", "completed", "cycles", "bytes", "engine", "status"}


def test_completions_carry_their_records_engine_and_start(doc):
    """Each completion's engine and start come from its record: the engine is one its tenant's
    queues are bound to, and the descriptor started after it was posted and its record was
    composed before the host saw it."""
    for name, t in doc["tenants"].items():
        for c in t["completions"]:
            assert c["engine"] in t["engines"], (name, c)
            assert c["submitted"] < c["started"] <= c["started"] + c["cycles"] < c["completed"], (name, c)


def test_schema_refuses_what_is_not_named(doc):
    import jsonschema
    from siov.sw.results import validate
    bad = copy.deepcopy(doc)
    bad["tenants"]["vm0"]["completions"][0] = [1, 2, 3, 4]
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'object'"):
        validate(bad)
    bad = copy.deepcopy(doc)
    bad["scenario"]["parsed"]["tenants"][0]["kind"] = "vmm"
    with pytest.raises(jsonschema.ValidationError, match="'vmm' is not one of"):
        validate(bad)


def test_schema_holds_the_scenario_schema_of_today():
    from siov.sw.results import SCHEMA_PATH, scenario_schema
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$defs"]["scenario"] == scenario_schema(), "run python -m siov.sw.results"


@pytest.mark.slow
def test_results_carry_the_device_fingerprint(doc):
    """The fingerprint kept in build/fingerprints is the one of the Verilog converted now (the
    conversion takes seconds)."""
    from siov.rtl.device import Device
    from siov.rtl.generate import convert_top
    from siov.rtl.params import DeviceParams
    from siov.rtl.synth import verilog_fingerprint
    params = DeviceParams(**doc["device"]["params"])
    assert doc["device"]["verilog_fingerprint"] == verilog_fingerprint(convert_top("siov_device", Device(params)))


def test_results_alone_reproduce_the_run(doc, tmp_path):
    """The scenario's text and seed, taken from results.json, give the same results.json."""
    (tmp_path / "again.toml").write_text(doc["scenario"]["text"])
    res = CliRunner().invoke(main, ["run", str(tmp_path / "again.toml"), "--seed", str(doc["scenario"]["seed"]),
                                    "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "out" / "results.json").read_text())
    assert again["scenario"].pop("source") != doc["scenario"].pop("source")
    assert again == doc
    from siov.sw.scenario import Scenario, parse
    assert Scenario.model_validate(doc["scenario"]["parsed"]) == parse(doc["scenario"]["text"])


# -- plots and report.html ----------------------------------------------------------------------


def test_throughput_windows_cover_the_run_and_a_short_last_one_is_not_a_drop():
    from siov.sw.report import throughput_series
    # one byte completes every cycle for 1000 cycles: every window, the short last one too, is 1 B/cycle
    doc = {"scenario": {"parsed": {"cycles": 1000}}, "device": {"cycles": 1040},
           "tenants": {"a": {"completions": [{"completed": k, "bytes": 1} for k in range(1040)]}}}
    width, series = throughput_series(doc, windows=3)
    ends, rates = series["a"]
    assert width == 334 and ends == [334, 668, 1000]
    assert rates == [1.0, 1.0, 1.0]


@pytest.fixture(scope="module")
def chromium():
    """Path of Debian's chromium, installed with apt when it is missing."""
    return debian_program("chromium", "chromium")


def _headless(chromium, tmp_path, *args):
    """Run chromium headless with no profile, network services or first-run work of its own."""
    profile = tmp_path / "profile"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args]
    r = run_command(cmd, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_html_report_is_one_self_contained_file(run_dir, doc):
    page = (run_dir / "report.html").read_text()
    # nothing is loaded from anywhere: every src and href is inline data
    assert re.findall(r'(?:src|href)="(?!data:)', page) == []
    assert page.count('src="data:image/png;base64,') == 2
    assert html.escape(doc["scenario"]["text"]) in page
    assert doc["device"]["verilog_fingerprint"] in page and doc["siov_version"] in page


def test_html_report_renders_in_a_browser(chromium, run_dir, doc, tmp_path):
    """Debian's chromium, headless, opens report.html: its DOM holds the tables, and a screenshot
    shows the plots (their line colours appear only if the embedded PNGs were decoded)."""
    url = (run_dir / "report.html").as_uri()
    dom = _headless(chromium, tmp_path, "--dump-dom", url)
    tenants = re.search(r'<table id="tenants">(.*?)</table>', dom, re.S).group(1)
    assert tenants.count("<tr>") == 1 + len(doc["tenants"])
    for name, t in doc["tenants"].items():
        assert f"<td>{name}</td>" in tenants and f"<td>{t['latency_p99']:,}</td>" in tenants
    assert 'id="provenance"' in dom and 'id="scenario"' in dom and "DESC_PASID" in dom
    shot = tmp_path / "shot.png"
    _headless(chromium, tmp_path, "--window-size=1280,2000", f"--screenshot={shot}", url)
    import matplotlib.image
    pixels = (matplotlib.image.imread(shot)[:, :, :3] * 255).round().astype(int)
    for colour in ((0x1f, 0x77, 0xb4), (0xff, 0x7f, 0x0e)):     # matplotlib's first two line colours
        assert ((pixels == colour).all(axis=2)).sum() > 50, colour


def test_differences_skip_what_may_differ(doc):
    from siov.sw.results import differences
    other = copy.deepcopy(doc)
    other["backend"] = "rtl"
    other["tenants"]["vm0"]["latency_p99"] += 1             # timing dependent
    other["device"]["engines"][1]["utilisation"] = 0.5      # timing dependent, by index
    assert differences(doc, other) == []
    other["tenants"]["vm3"]["traps"] += 1
    other["tenants"]["vm3"]["refused"] = {"adi_error.NONE": 1}
    # refused.ring_full (a flood's count) is timing dependent
    assert [d[0] for d in differences(doc, other)] == ["tenants.vm3.refused.adi_error.DESC_PASID",
                                                      "tenants.vm3.refused.adi_error.NONE",
                                                      "tenants.vm3.refused.foreign_map", "tenants.vm3.traps"]


def test_trace_tracks_never_overlap_themselves(run_dir, doc):
    """Perfetto cannot draw two complete slices of one thread that overlap partially: no track
    holds two "X" slices that overlap. Every engine has its track, with one slice per
    descriptor it ran (from its completion record's start cycle, for its cycles), and every
    descriptor is also an async span ("b"/"e", one id each), which Perfetto lays out on rows of
    their own."""
    events = json.loads((run_dir / "trace.json").read_text())["traceEvents"]
    tracks = {}
    for e in events:
        if e["ph"] == "X":
            tracks.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    for track, slices in tracks.items():
        slices.sort()
        assert all(a[1] <= b[0] for a, b in zip(slices, slices[1:])), track
    engines = doc["device"]["engines"]
    assert len(engines) == doc["device"]["params"]["num_engines"] >= 2
    assert sorted(t for t in tracks if t[0] == 1) == [(1, e["engine"]) for e in engines]  # one per engine, all used
    assert [len(tracks[1, e["engine"]]) for e in engines] == [e["descriptors"] for e in engines]
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert all(names[1, e["engine"]] == f"engine {e['engine']}" for e in engines)
    begins = {(e["cat"], e["id"]): e["ts"] for e in events if e["ph"] == "b"}
    ends = {(e["cat"], e["id"]): e["ts"] for e in events if e["ph"] == "e"}
    assert begins.keys() == ends.keys() and all(ends[k] > begins[k] for k in begins)
    assert len(begins) == sum(t["descriptors"] for t in doc["tenants"].values())
    marks = [e for e in events if e["ph"] == "i" and e["cat"] == "fault"]
    assert len(marks) == len(doc["scenario"]["parsed"]["faults"])


def test_the_default_run_uses_both_engines_and_the_scheduler_gangs_the_dependent_vm(doc):
    """The built-in scenario keeps both engines busy, and its scheduler (auto) gangs the VM whose
    producer and consumer rings depend on each other, with the VM, both rings and the semaphore
    as the reason, and returns to per-ring; the report says so, with the pair latency."""
    assert all(e["utilisation"] > 0.3 and e["descriptors"] > 100 for e in doc["device"]["engines"])
    sched = doc["scheduler"]
    assert sched["policy"] == "auto" and doc["device"]["policy"] == "scheduler"
    pc = doc["tenants"]["pc"]
    assert sorted(pc["engines"]) == [0, 1]
    first, back = sched["switches"][:2]
    assert (first["tenant"], first["mode"], back["tenant"], back["mode"]) == ("pc", "gang", "pc", "per-ring")
    assert "dependency" in first["reason"] and set(first["adis"]) == set(pc["adis"]) and first["sem"] is not None
    assert {s["tenant"] for s in sched["switches"]} == {"pc"}
    assert [(x["tenant"], x["start"]) for x in sched["slices"]][0] == ("pc", first["cycle"])
    assert pc["pair_latency"]["pairs"] > 50 and 0 < pc["pair_latency"]["p50"] <= pc["pair_latency"]["p99"]
    assert sched["metrics"]["ticks"] > 0 and sched["metrics"]["idle_ineligible"] is not None
    out = _render(doc, 120)
    assert "Scheduler auto, tick 8,192 cycles" in out
    assert f"pc -> gang (dependency: WAIT in ADI" in out and f"semaphore {first['sem']:#x}" in out
    assert "pair latency of pc" in out
    assert {"scheduler.switches", "scheduler.metrics", "tenants.*.pair_latency"} <= set(doc["timing_dependent"])


def test_the_trace_shows_switches_as_instants_and_gangs_as_slices(run_dir, doc):
    events = json.loads((run_dir / "trace.json").read_text())["traceEvents"]
    sched = [e for e in events if e.get("pid") == 3]
    instants = [e for e in sched if e["ph"] == "i"]
    spans = [e for e in sched if e["ph"] == "X"]
    assert [e["ts"] for e in instants] == [s["cycle"] for s in doc["scheduler"]["switches"]]
    assert sorted((e["ts"], e["ts"] + e["dur"]) for e in spans) == sorted(
        (x["start"], x["end"]) for x in doc["scheduler"]["slices"])
    names = {e["args"]["name"] for e in sched if e["ph"] == "M"}
    assert {"scheduler (auto)", "switches", "gang: pc"} <= names


def test_a_scheduled_policy_comparison_prints_every_policy(doc):
    """print_policies shows each policy's figures, as a table or, on a narrow console, as lines."""
    from siov.sw.report import policy_rows, print_policies
    other = copy.deepcopy(doc)
    other["scheduler"]["policy"] = "gang"
    docs = {"auto": doc, "gang": other}
    summary, per_tenant = policy_rows(docs)
    assert [r["policy"] for r in summary] == ["auto", "gang"] and len(per_tenant) == len(doc["tenants"])
    for width in (160, 80):
        console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
        print_policies(docs, console)
        out = console.file.getvalue()
        assert "…" not in out and "gang" in out and f"{doc['tenants']['pc']['pair_latency']['mean']:,.0f}" in out
