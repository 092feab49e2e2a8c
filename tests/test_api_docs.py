"""The host library's API reference: every public name has a docstring, and the reference builds.

The reference (``make docs``: pdoc over :mod:`siov.sw`, into
``build/docs/api/``) is made from docstrings alone, so a public name without
one is a hole in it. Public means: listed in its module's ``__all__``, and,
for a public class, every method and property it defines whose name does not
start with an underscore.
"""

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import siov.sw

#: Modules of the reference beyond what ``siov.sw`` and its ``__all__`` lists reach.
EXTRA_MODULES = ("siov.sw.platform.model", "siov.sw.platform.vtime", "siov.sw.platform.timing")


def _modules():
    for info in pkgutil.walk_packages(siov.sw.__path__, "siov.sw."):
        if info.name == "siov.sw.cli":       # the command line is documented by --help
            continue
        yield importlib.import_module(info.name)


def _documented(cls, attr, fn):
    """A method's docstring, its own or the one of the method it overrides; a backend's
    implementation of the Bus protocol is documented by :class:`~siov.sw.bus.Bus`."""
    from siov.sw.bus import Bus
    if (fn.__doc__ or "").strip():
        return True
    for base in cls.__mro__[1:]:
        if (getattr(getattr(base, attr, None), "__doc__", None) or "").strip():
            return True
    return attr in vars(Bus) and (vars(Bus)[attr].__doc__ or "").strip() != ""


def _undocumented():
    missing = []
    for mod in _modules():
        if not (mod.__doc__ or "").strip():
            missing.append(mod.__name__)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            where = f"{mod.__name__}.{name}"
            if inspect.isclass(obj) or inspect.isfunction(obj):
                if obj.__module__ != mod.__name__:
                    continue                  # re-exported: checked where it is defined
                if not (obj.__doc__ or "").strip():
                    missing.append(where)
            if inspect.isclass(obj) and obj.__module__ == mod.__name__:
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    fn = member.fget if isinstance(member, property) else member
                    if isinstance(fn, (staticmethod, classmethod)):
                        fn = fn.__func__
                    if inspect.isfunction(fn) and not _documented(obj, attr, fn):
                        missing.append(f"{where}.{attr}")
    return sorted(set(missing))


def test_every_public_name_has_a_docstring():
    missing = _undocumented()
    assert not missing, f"{len(missing)} public names without a docstring:\n  " + "\n  ".join(missing)


def test_the_checker_finds_a_missing_docstring(monkeypatch):
    """The check itself can fail: a public method stripped of its docstring is named."""
    from siov.sw.guest.ring import Ring
    monkeypatch.setattr(Ring.post, "__doc__", None)
    assert "siov.sw.guest.ring.Ring.post" in _undocumented()


def test_reference_builds(tmp_path):
    out = tmp_path / "api"
    subprocess.run([sys.executable, "-m", "pdoc", "--docformat", "numpy", "-o", str(out), "siov.sw",
                    *EXTRA_MODULES], check=True, capture_output=True, text=True)
    page = (out / "siov" / "sw" / "guest" / "driver.html").read_text()
    assert "FrontendDriver" in page and "dma_map" in page
    assert (out / "siov" / "sw" / "platform" / "model.html").exists()
