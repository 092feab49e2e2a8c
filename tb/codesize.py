"""Sizes of the RTL's source, by AST line counts: the figures issue 30's goals are stated in.

A function's size is its line span in the file (``end_lineno - lineno + 1``,
docstring and comments included); a module's is its line count. Generated
modules (``rtl/regmap.py``, from ``rtl/regs.rdl``) are left out. The size
test (tests/test_code_size.py) bounds both, and ``make bench``
(bench/bench_code_size.py) reports them in docs/PERFORMANCE.md.
"""

import ast
import pathlib

__all__ = ["RTL", "GENERATED", "functions", "modules", "longest"]

RTL = pathlib.Path(__file__).resolve().parent.parent / "rtl"
#: Modules written by a generator, not by hand.
GENERATED = {"regmap.py"}


def _sources(root):
    return [p for p in sorted(pathlib.Path(root).rglob("*.py")) if p.name not in GENERATED]


def functions(root=RTL):
    """``[(lines, "Class.method" or "function", path relative to root's parent)]`` of every function."""
    root = pathlib.Path(root)
    out = []
    for path in _sources(root):
        tree = ast.parse(path.read_text())
        rel = str(path.relative_to(root.parent))
        owners = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    owners[id(item)] = node.name
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{owners[id(node)]}.{node.name}" if id(node) in owners else node.name
                out.append((node.end_lineno - node.lineno + 1, name, rel))
    return sorted(out, key=lambda r: (-r[0], r[1]))


def modules(root=RTL):
    """``[(lines, path relative to root's parent)]``, largest first."""
    root = pathlib.Path(root)
    return sorted(((len(p.read_text().splitlines()), str(p.relative_to(root.parent))) for p in _sources(root)),
                  key=lambda r: (-r[0], r[1]))


def longest(name, root=RTL):
    """The longest function called ``name`` (a method of any class): ``(lines, "Class.name", path)``."""
    return next(r for r in functions(root) if r[1].split(".")[-1] == name)
