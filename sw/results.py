"""The results file of ``siov run``: one self-describing JSON document per run.

A results file says what produced it and holds enough to produce it again:

* ``schema_version`` (this module's :data:`SCHEMA_VERSION`, the version of
  ``docs/results.schema.json``) and ``siov_version``;
* ``backend`` and ``partial`` (true when the run was stopped early, by
  Ctrl-C: the figures cover the cycles run, ``device.cycles``);
* ``scenario``: the file's text as given, its source, the seed the run used
  (``siov run --seed`` may override the file's), the scheduling policy
  ``siov run --policies`` ran it under (``policy``, null for the file's own)
  and the parsed scenario as it ran, with every default filled in, so
  ``siov run`` of the text with that seed (and policy) repeats the run;
* ``device``: the Device's elaboration parameters and the fingerprint of
  its Verilog (:func:`device_fingerprint`), with what the run measured;
* ``tenants``: per tenant what it did, with every completion, fault and
  refusal as a named object, and the pair latency of a dependent workload;
* ``scheduler``: the GPU scheduler's policy, its switches with their
  reasons, the gang slices and its metrics (null when no scheduler ran);
* ``checkpoint``: the checkpointer's checkpoints, pages copied, downtime,
  failover (the epoch restored onto a stand-in and whether it equals the
  primary) or migration, and the stop/copy/resume spans (null without a
  ``[checkpoint]`` section);
* ``timing_dependent``: the fields that may differ between the model and
  rtl backends (with ``backend`` itself); every other field is the same on
  both for one scenario and seed.

Ref: JSON Schema draft 2020-12 (``docs/results.schema.json``).
"""

import hashlib
import importlib.metadata
import json
import os
import pathlib

__all__ = ["SCHEMA_VERSION", "SCHEMA_PATH", "document", "device_fingerprint", "write", "validate",
           "scenario_schema", "differences"]

#: Version of the document's layout; bumped when a field changes meaning or goes.
SCHEMA_VERSION = 1
#: The JSON Schema every results file follows.
SCHEMA_PATH = pathlib.Path(__file__).resolve().parent.parent / "docs" / "results.schema.json"


def document(result, *, sc, text, source, backend, partial=False, policy=None):
    """The results document of a run: what :func:`~siov.sw.programs.scenario.run_scenario` returned
    (``result``) with the scenario ``sc`` parsed from ``text`` (read from ``source``), and run
    under scheduling policy ``policy`` if given (``sc`` is then the scenario as it ran,
    :func:`~siov.sw.scenario.with_policy`), and the provenance."""
    params = sc.device.params()
    return {
        "schema_version": SCHEMA_VERSION,
        "siov_version": importlib.metadata.version("siov"),
        "backend": backend,
        "partial": bool(partial or result.get("partial")),
        "scenario": {"source": source, "seed": result["seed"], "text": text, "policy": policy,
                     "parsed": sc.model_dump(mode="json")},
        "device": {"params": dict(vars(params)), "verilog_fingerprint": device_fingerprint(params),
                   **result["device"]},
        "tenants": result["tenants"],
        "scheduler": result.get("scheduler"),
        "checkpoint": result.get("checkpoint"),
        "timing_dependent": result["timing_dependent"],
    }


def device_fingerprint(params):
    """The fingerprint (:func:`siov.rtl.synth.verilog_fingerprint`) of the Device's Verilog with
    ``params``: the Verilog the rtl backend builds, and the one the model stands in for.

    Converting the Device takes seconds, so the fingerprint is kept in
    ``build/fingerprints`` under a key of what the Verilog depends on: every
    source under rtl/, Amaranth's version and the parameters.
    """
    cache = _ROOT / "build" / "fingerprints" / f"{_design_key(params)}.txt"
    if cache.exists():
        return cache.read_text().strip()
    from ..rtl.device import Device
    from ..rtl.generate import convert_top
    from ..rtl.synth import verilog_fingerprint
    fingerprint = verilog_fingerprint(convert_top("siov_device", Device(params)))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(fingerprint + "\n")
    tmp.replace(cache)
    return fingerprint


_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _design_key(params):
    h = hashlib.sha256()
    for path in sorted((_ROOT / "rtl").rglob("*")):
        if path.suffix in (".py", ".rdl") and "__pycache__" not in path.parts:
            h.update(path.relative_to(_ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(f"amaranth {importlib.metadata.version('amaranth')}|{params!r}".encode())
    return h.hexdigest()[:32]


def write(doc, path):
    """Write ``doc`` with sorted keys: one scenario and seed give the same bytes on the model backend."""
    pathlib.Path(path).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def validate(doc):
    """Check ``doc`` against ``docs/results.schema.json``; jsonschema's ValidationError if it fails."""
    import jsonschema
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)


def differences(a, b):
    """Where results ``a`` and ``b`` (of one scenario and seed on two backends) differ outside
    ``timing_dependent`` and ``backend``: ``[(dotted path, value in a, value in b)]``. A
    pattern's ``*`` stands for one tenant name or list index."""
    ignore = [p.split(".") for p in set(a["timing_dependent"]) | set(b["timing_dependent"])] + [["backend"]]

    def ignored(path):
        return any(len(p) <= len(path) and all(x in ("*", y) for x, y in zip(p, path)) for p in ignore)

    out = []

    def walk(x, y, path):
        if ignored(path):
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), path + [str(k)])
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for k, (u, v) in enumerate(zip(x, y)):
                walk(u, v, path + [str(k)])
        elif x != y:
            out.append((".".join(path), x, y))
    walk(a, b, [])
    return out


def scenario_schema():
    """The JSON Schema of a parsed scenario, from its pydantic model: ``$defs/scenario`` of
    ``docs/results.schema.json`` (a test checks that the file holds this one)."""
    from .scenario import Scenario
    return {"$id": "urn:siov:scenario", **Scenario.model_json_schema()}


if __name__ == "__main__":           # python -m siov.sw.results: bring the schema's scenario part up to date
    schema = json.loads(SCHEMA_PATH.read_text())
    schema["$defs"]["scenario"] = scenario_schema()
    SCHEMA_PATH.write_text(json.dumps(schema, indent=1) + "\n")
    print(f"wrote {SCHEMA_PATH}")
