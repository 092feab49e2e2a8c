"""Functional coverage: named bins that a test must hit, or it fails.

A deliberately small collector: bins are declared up front (so a bin never
hit is visible, not absent), sampled by the monitors, and checked at the end
with :meth:`Coverage.check`, which raises with the list of missed bins.
Used directly by cocotb tests and by pyuvm coverage subscribers.
"""

import collections
import json
import pathlib

__all__ = ["Coverage", "CoverageError"]


class CoverageError(AssertionError):
    """Raised when declared bins were never hit."""


class Coverage:
    """A set of bins with hit counts.

    Parameters
    ----------
    name : str
        Name of the coverage group (used in reports).
    bins : iterable of str
        Every bin that must be hit at least ``at_least`` times.
    """

    def __init__(self, name, bins, at_least=1):
        self.name = name
        self.at_least = at_least
        self.hits = collections.Counter({b: 0 for b in bins})
        #: Bins this configuration cannot reach, and why: not required.
        self.waived = {}

    def sample(self, bin_name, when=True):
        """Count a hit of ``bin_name`` if ``when``; unknown bins are an error."""
        if bin_name not in self.hits:
            raise KeyError(f"Coverage group {self.name} has no bin {bin_name!r}")
        if when:
            self.hits[bin_name] += 1

    def waive(self, bin_name, reason):
        """Drop ``bin_name`` from what must be hit, because this configuration cannot reach it
        (``reason`` says why; the report lists it)."""
        if bin_name not in self.hits:
            raise KeyError(f"Coverage group {self.name} has no bin {bin_name!r}")
        self.waived[bin_name] = reason

    def missed(self):
        return sorted(b for b, n in self.hits.items() if n < self.at_least and b not in self.waived)

    def report(self):
        width = max(len(b) for b in self.hits) if self.hits else 0
        lines = [f"coverage {self.name}: {len(self.hits) - len(self.missed())}/{len(self.hits)} bins"]
        for b, n in sorted(self.hits.items()):
            note = f"  waived: {self.waived[b]}" if b in self.waived else "  MISSED" if n < self.at_least else ""
            lines.append(f"  {b:<{width}}  {n:>8}{note}")
        return "\n".join(lines)

    def save(self, path):
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"group": self.name, "hits": dict(self.hits)}, indent=1))

    def check(self):
        missed = self.missed()
        if missed:
            raise CoverageError(f"coverage {self.name}: bins never hit: {', '.join(missed)}")
