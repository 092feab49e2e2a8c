"""docs/host-programs.md runs as written: its code blocks, in order, are one program.

The walkthrough tells a reader to save its blocks as ``walkthrough.py`` and
run it; this test does exactly that, on the model backend in every run and
with ``--rtl`` (the same program on the Verilated Device, records compared)
under the ``sim`` marker.
"""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "host-programs.md"


def _script(tmp_path):
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.S | re.M)
    assert len(blocks) >= 8, "the walkthrough lost its code blocks"
    path = tmp_path / "walkthrough.py"
    path.write_text("\n\n".join(blocks))
    return path


def _run(tmp_path, *args, timeout):
    path = _script(tmp_path)
    return subprocess.run([sys.executable, path.name, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout)


def test_walkthrough_runs_on_the_model(tmp_path):
    out = _run(tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert re.search(r"model: 10 records of vm0, \d+ descriptors done", out.stdout), out.stdout


@pytest.mark.sim
def test_walkthrough_gives_the_same_record_on_rtl(tmp_path):
    out = _run(tmp_path, "--rtl", timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "model and rtl records identical" in out.stdout, out.stdout[-3000:]
