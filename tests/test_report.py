"""What ``siov run`` writes and shows: the terminal report, results.json, the trace, the plots.

The built-in scenario runs once on the model backend (a couple of seconds)
and every test reads what that run wrote.
"""

import copy
import io
import json

import pytest
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
    assert set(c) == {"submitted", "completed", "cycles", "bytes", "engine", "status"}


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


def test_results_carry_the_device_fingerprint(doc):
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
