"""The result cache of ``siov sweep``: one file per run, found again by what the run depends on.

A run's key is the SHA-256 of:

* the scenario as parsed with its point applied (:func:`~siov.sw.sweep.spec.scenario_digest`:
  the file's formatting, and the way the point was spelled, do not matter);
* the seed and the backend;
* the Device's Verilog fingerprint for the point's parameters
  (:func:`siov.sw.results.device_fingerprint`): the RTL that ran, or that the
  model stands for;
* the host program that ran and the software under it (:func:`software_fingerprint`):
  a change of the hypervisor, the driver or a model changes results without
  changing the Verilog.

Only finished runs are stored (a failed run is tried again by the next
sweep, and a sweep during which the software or the Verilog changed keeps
none of its runs), each written whole or not at all (a temporary file renamed into
place), so a sweep stopped at any moment leaves a cache that the same
command resumes from: it computes only the runs without a file.
"""

import hashlib
import importlib.util
import json
import os
import pathlib

__all__ = ["ResultCache", "software_fingerprint", "run_key"]

_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
#: What results do not depend on: the command line, the reports, this package.
_NOT_RESULTS = ("sw/cli.py", "sw/report.py", "sw/results.py", "sw/sweep/")


def _sources(backend):
    files = [p for p in sorted((_ROOT / "sw").rglob("*.py"))
             if "__pycache__" not in p.parts
             and not p.relative_to(_ROOT).as_posix().startswith(_NOT_RESULTS)]
    if backend == "rtl":
        host = _ROOT / "tb" / "host"
        files += sorted(p for p in host.rglob("*") if p.suffix in (".py", ".cpp", ".h")
                        and "__pycache__" not in p.parts)
        files.append(_ROOT / "tb" / "runner.py")
    return files


def software_fingerprint(backend, program):
    """SHA-256 (16 hex digits) of what a run's result depends on besides the Verilog: the host
    software under sw/ (less the command line, the reports and the sweep itself), on the rtl
    backend the cocotb host side under tb/host, and the source of ``program`` (``module:function``)."""
    h = hashlib.sha256()
    for path in _sources(backend):
        h.update(path.relative_to(_ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    module = program.partition(":")[0]
    spec = importlib.util.find_spec(module)
    if spec is not None and spec.origin and os.path.exists(spec.origin):
        h.update(pathlib.Path(spec.origin).read_bytes())
    h.update(f"{backend}|{program}".encode())
    return h.hexdigest()[:16]


def run_key(*, scenario, seed, backend, verilog, software):
    """The cache key of one run (64 hex digits) from its parts (see the module's docstring)."""
    parts = {"scenario": scenario, "seed": seed, "backend": backend, "verilog": verilog, "software": software}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class ResultCache:
    """Results of finished runs under ``folder``, one JSON file per key (``ab/abcdef....json``).

    Parameters
    ----------
    folder : path
        Where the files are; several sweeps may share it, and a sweep of
        points another one ran reuses their runs.
    """

    def __init__(self, folder):
        self.folder = pathlib.Path(folder)

    def path(self, key):
        """The file of ``key``."""
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key):
        """The stored result of ``key``, or None (a file that does not read whole counts as absent)."""
        try:
            return json.loads(self.path(key).read_text())["result"]
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key, result, about=None):
        """Store ``result`` (JSON-able) under ``key``, with ``about`` (what the key was made of)
        beside it for people who read the file."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": about or {}, "result": result}, sort_keys=True))
        tmp.replace(path)

    def __contains__(self, key):
        return self.get(key) is not None
