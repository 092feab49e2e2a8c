"""A sweep's specification: seeds, ``--set`` keys and their values, and the parameter points they make.

``--seeds`` takes integers and inclusive ranges, comma-separated: ``1-200``,
``1,5,9-12``.

``--set KEY=V1,V2,...`` names one key of the scenario file by its dotted
path and the values to sweep it over; several ``--set`` options are crossed
(every combination is a parameter point, the first option varying slowest).

* A path walks the scenario's tables: ``arbiter.policy``, ``device.num_engines``,
  ``cycles``. A table the file leaves out is made (its keys take their
  defaults).
* An array of tables (``[[tenants]]``, ``[[tenants.workloads]]``,
  ``[[faults]]``) takes an element selector: an index from 0 in file order
  (``tenants.0.weight``), a name (``tenants.vm1.weight``: the element whose
  ``name`` is ``vm1``) or ``*`` (``tenants.*.quantum``: every element). The
  element must exist in the file: a sweep changes a scenario, it does not
  add tenants.
* A value is read as TOML (``2``, ``true``, ``"text"``, ``[64, 512]``), and
  as a plain string when it is not TOML (``wrr``, ``per-ring``). Commas
  inside brackets or quotes do not split values. ``A-B`` and ``A-B:STEP``
  (non-negative integers) are inclusive ranges; quote one (``'"2-4"'``) to
  mean the string.

Every key is checked against the scenario schema before anything runs: a
key the schema does not know, an element the file does not have, an empty
range, an empty value list, or a value the schema refuses is a
:class:`SweepError` that names the key. Then every point is checked whole
(:func:`siov.sw.scenario.parse`), so a combination the schema refuses (a
zero weight under ``wrr``) is named by its point.
"""

import copy
import dataclasses
import hashlib
import itertools
import json
import re
import tomllib
import types
import typing

from pydantic import BaseModel

from ..scenario import Scenario, ScenarioError, parse

__all__ = ["SweepError", "Point", "parse_seeds", "parse_values", "parse_set", "apply", "dump_toml", "expand",
           "scenario_digest"]


class SweepError(ValueError):
    """A sweep that cannot run, named by the option or key at fault; nothing has run."""


@dataclasses.dataclass(frozen=True)
class Point:
    """One parameter point: the values of the ``--set`` keys, and the scenario they make.

    Attributes
    ----------
    index : int
        Its place among the sweep's points (the first ``--set`` varies slowest).
    values : dict
        ``{key: value}`` in the order of the ``--set`` options.
    text : str
        The scenario file with the values applied (TOML).
    scenario : Scenario
        ``text`` parsed and checked.
    """
    index: int
    values: dict
    text: str
    scenario: Scenario

    @property
    def id(self):
        """``p000``, ``p001``...: names its folder and its scenario file in the sweep's output."""
        return f"p{self.index:03d}"

    @property
    def label(self):
        """``arbiter.policy=wrr device.num_engines=4`` (``base`` for a sweep of seeds alone)."""
        return " ".join(f"{k}={_show(v)}" for k, v in self.values.items()) or "base"


def _show(value):
    return value if isinstance(value, str) else json.dumps(value)


def parse_seeds(text):
    """The sorted seeds of ``text``: integers and inclusive ranges ``A-B``, comma-separated.

    Raises :class:`SweepError` for an empty range (``5-1``), a part that is
    not a seed, or no seed at all.
    """
    seeds = set()
    for part in (p.strip() for p in str(text).split(",")):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise SweepError(f"--seeds {text!r}: {part!r} is not a seed (N) or an inclusive range (A-B)")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise SweepError(f"--seeds {text!r}: the range {part} is empty")
        seeds.update(range(lo, hi + 1))
    return sorted(seeds)


def _split(text):
    """Split at commas outside brackets, braces and quotes."""
    parts, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def parse_values(key, text):
    """The values of ``--set key=text`` (see the module's docstring for the syntax)."""
    values = []
    for item in _split(text):
        if not item:
            raise SweepError(f"--set {key}: an empty value in {text!r}" if text.strip() else f"--set {key}: no values")
        m = re.fullmatch(r"(\d+)-(\d+)(?::(\d+))?", item)
        if m:
            lo, hi, step = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
            if step < 1:
                raise SweepError(f"--set {key}: the range {item} has a step of 0")
            if hi < lo:
                raise SweepError(f"--set {key}: the range {item} is empty")
            values.extend(range(lo, hi + 1, step))
            continue
        try:
            values.append(tomllib.loads(f"v = {item}")["v"])
        except tomllib.TOMLDecodeError:
            values.append(item)
    unique = []
    for v in values:                         # a value given twice is one point
        if v not in unique:
            unique.append(v)
    return unique


def parse_set(text):
    """``(key, values)`` of one ``--set KEY=V1,V2`` option; the key is checked against the schema."""
    key, eq, rest = str(text).partition("=")
    key = key.strip()
    if not eq or not key:
        raise SweepError(f"--set {text!r}: expected KEY=VALUE[,VALUE...], such as arbiter.policy=rr,wrr")
    _schema_path(key)
    return key, parse_values(key, rest)


def _model_of(annotation):
    """``(model, is_array)`` of a field's annotation if it holds a table or an array of tables
    (an optional table, ``Table | None``, counts as its table)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _model_of(rest[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if typing.get_origin(annotation) in (list, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            return args[0], True
    return None, False


def _schema_path(key):
    """Check ``key`` against the scenario schema: each part a field of its table, and an element
    selector after each array of tables. Returns the key's parts."""
    parts = key.split(".")
    model, tables, i = Scenario, [], 0
    while i < len(parts):
        part = parts[i]
        if part not in model.model_fields:
            where = f"[{'.'.join(tables)}]" if tables else "the top level"
            raise SweepError(f"--set {key}: unknown key {part!r} in {where} (its keys: "
                             f"{', '.join(model.model_fields)})")
        sub, is_array = _model_of(model.model_fields[part].annotation)
        if sub is None:
            if i != len(parts) - 1:
                raise SweepError(f"--set {key}: {'.'.join(parts[:i + 1])} is a value, not a table")
            return parts
        tables.append(part)
        if is_array:
            i += 1                     # the element selector: an index, a name or *
        if i >= len(parts) - 1:
            raise SweepError(f"--set {key}: {key} is a table; name one of its keys, such as "
                             f"{key}{'.0' if is_array and i == len(parts) else ''}.{next(iter(sub.model_fields))}")
        model = sub
        i += 1
    return parts


def apply(data, key, value):
    """A deep copy of the scenario's TOML ``data`` with ``key`` (a dotted path, see the module's
    docstring) set to ``value``; :class:`SweepError` if the path names an element the file does not have."""
    parts = _schema_path(key)
    data = copy.deepcopy(data)
    _apply(data, Scenario, parts, value, key)
    return data


def _apply(node, model, parts, value, key):
    part, rest = parts[0], parts[1:]
    if not rest:
        node[part] = value
        return
    sub, is_array = _model_of(model.model_fields[part].annotation)
    if not is_array:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SweepError(f"--set {key}: {part} is not a table in the scenario file")
        _apply(child, sub, rest, value, key)
        return
    items = node.get(part, [])
    if not isinstance(items, list):
        raise SweepError(f"--set {key}: {part} is not an array of tables in the scenario file")
    sel, rest = rest[0], rest[1:]
    if sel == "*":
        chosen = items
        if not chosen:
            raise SweepError(f"--set {key}: the scenario has no {part}")
    elif re.fullmatch(r"\d+", sel):
        if int(sel) >= len(items):
            raise SweepError(f"--set {key}: the scenario has {len(items)} {part} (indices 0 to "
                             f"{len(items) - 1})")
        chosen = [items[int(sel)]]
    else:
        chosen = [t for t in items if isinstance(t, dict) and t.get("name") == sel]
        if not chosen:
            names = [t.get("name") for t in items if isinstance(t, dict) and "name" in t]
            raise SweepError(f"--set {key}: no element of {part} is named {sel!r}"
                             + (f" (names: {', '.join(map(str, names))})" if names else
                                "; select an element by its index from 0, or * for every one"))
    for item in chosen:
        _apply(item, sub, rest, value, key)


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)     # a TOML basic string is JSON's string syntax
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as TOML")


def _toml_key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _is_table_array(v):
    return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)


def dump_toml(data, _prefix=""):
    """TOML text of ``data`` (what :mod:`tomllib` reads back as ``data``): scalars and inline
    values first, then tables, then arrays of tables, each in its own section."""
    out = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_table_array(v)}
    for k, v in scalars.items():
        out.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for k, v in data.items():
        name = f"{_prefix}{_toml_key(k)}"
        if isinstance(v, dict):
            out += ["", f"[{name}]", dump_toml(v, name + ".").strip("\n")]
        elif _is_table_array(v):
            for item in v:
                out += ["", f"[[{name}]]", dump_toml(item, name + ".").strip("\n")]
    text = "\n".join(line for line in out)
    return text.strip("\n") + "\n"


def _check(text, what):
    """``parse(text)``, or a SweepError naming ``what`` with the schema's messages (less the
    generated file's line numbers, which mean nothing to the user)."""
    try:
        return parse(text, "<point>")
    except ScenarioError as e:
        lines = [re.sub(r"^<point>(:\d+)?: ", "", line) for line in str(e).splitlines()]
        raise SweepError("\n".join(f"{what}: {line}" for line in lines)) from None


def scenario_digest(sc):
    """SHA-256 of a parsed scenario with every default filled in: two files that parse the same
    (whatever their formatting, and however a point was spelled) have the same digest."""
    return hashlib.sha256(json.dumps(sc.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def expand(text, sets, source="<scenario>"):
    """The parameter points of scenario ``text`` under ``sets`` (``[(key, values), ...]``).

    Checks the scenario, then each value of each key alone, then every point
    whole; the first problem found is a :class:`SweepError` naming the key,
    or the point. Returns the list of :class:`Point`.
    """
    try:
        parse(text, source)
        data = tomllib.loads(text)
    except ScenarioError as e:
        raise SweepError(f"scenario error\n{e}") from None
    seen = set()
    for key, values in sets:
        if key in seen:
            raise SweepError(f"--set {key}: given twice; list every value in one option ({key}=A,B)")
        seen.add(key)
        if not values:
            raise SweepError(f"--set {key}: no values")
        for v in values:
            _check(dump_toml(apply(data, key, v)), f"--set {key}={_show(v)}")
    points = []
    for i, combo in enumerate(itertools.product(*(values for _, values in sets))):
        values = dict(zip((k for k, _ in sets), combo))
        d = data
        for k, v in values.items():
            d = apply(d, k, v)
        pt_text = dump_toml(d) if values else text
        label = " ".join(f"{k}={_show(v)}" for k, v in values.items())
        sc = _check(pt_text, f"point {label}")
        points.append(Point(i, values, pt_text, sc))
    return points
