"""The online cost model: cycles of a descriptor learned from the completion records it leaves.

# Ref: US10580108B2 (best-effort QoS: estimate the cost of buffered commands
# from earlier executions); ``rtl/regs.rdl`` ENG.COST_A / ENG.COST_B.

Every completion record carries the cycles its descriptor took (record byte
20). The scheduler feeds each one to :meth:`CostModel.add` with what the
scanner read of the descriptor: its opcode, its size, and the page-bounded
pieces its transfer is cut into (one translation each, which is what makes
a 512-byte copy that crosses a page cost a third more than one that does
not). Per opcode, the model fits ``cycles = A + B * size + C * pieces`` by
least squares (numpy) over its last ``window`` samples.

Its error is measured the honest way: each sample is first predicted with
the fit made before it arrived (:attr:`CostModel.errors`, relative).

The arbiter's own estimate is one line for every opcode, ``COST_A + COST_B
* size / 256`` (:func:`siov.sw.model.engine.estimate_cost`);
:meth:`CostModel.hardware` fits that line over every sample, in the
registers' units and widths.
"""

import collections

import numpy as np

from ...rtl import regmap
from ...rtl.cmd.cost import COST_FRAC_BITS

__all__ = ["CostModel"]


class CostModel:
    """Per-opcode least squares of cycles on ``[1, size, pieces]``, learned online.

    Parameters
    ----------
    window : int
        Samples kept per opcode (the oldest are dropped).
    min_samples : int
        Samples an opcode needs before :meth:`predict` answers for it.

    Attributes
    ----------
    errors : list of float
        ``|predicted - actual| / actual`` of each sample that had a prediction when it arrived.
    samples : int
        Samples taken in all.
    """

    def __init__(self, window=256, min_samples=4):
        self.window, self.min_samples = window, min_samples
        self._data = collections.defaultdict(lambda: collections.deque(maxlen=window))
        self._fits = {}
        self.errors = []
        self.samples = 0

    def add(self, opcode, size, pieces, cycles):
        """One completed descriptor: ``opcode`` (a name), its ``size``, ``pieces`` and the
        ``cycles`` its record says."""
        guess = self.predict(opcode, size, pieces)
        if guess is not None and cycles > 0:
            self.errors.append(abs(guess - cycles) / cycles)
        self._data[opcode].append((size, pieces, cycles))
        self._fits.pop(opcode, None)
        self.samples += 1

    def _fit(self, opcode):
        if opcode not in self._fits:
            rows = self._data.get(opcode)
            if not rows or len(rows) < self.min_samples:
                return None
            a = np.array(rows, dtype=float)
            x = np.column_stack([np.ones(len(a)), a[:, 0], a[:, 1]])
            self._fits[opcode] = np.linalg.lstsq(x, a[:, 2], rcond=None)[0]
        return self._fits[opcode]

    def predict(self, opcode, size, pieces):
        """Predicted cycles of a descriptor, or None while the opcode has too few samples."""
        coef = self._fit(opcode)
        if coef is None:
            return None
        return max(1.0, float(coef[0] + coef[1] * size + coef[2] * pieces))

    def coefficients(self):
        """``{opcode: (A, B, C)}`` of every opcode fitted so far."""
        out = {}
        for op in self._data:
            coef = self._fit(op)
            if coef is not None:
                out[op] = tuple(round(float(c), 4) for c in coef)
        return out

    def hardware(self):
        """``(COST_A, COST_B)`` for the arbiter's estimator, fitted over every sample on
        ``[1, size]``, clamped to the register fields; None before any sample."""
        rows = [r for d in self._data.values() for r in d]
        if not rows:
            return None
        a = np.array(rows, dtype=float)
        x = np.column_stack([np.ones(len(a)), a[:, 0]])
        c0, c1 = np.linalg.lstsq(x, a[:, 2], rcond=None)[0]
        cost_a = int(min(max(round(c0), 0), regmap.ENG_COST_A_A_MASK >> regmap.ENG_COST_A_A_LSB))
        cost_b = int(min(max(round(c1 * (1 << COST_FRAC_BITS)), 0), regmap.ENG_COST_B_B_MASK >> regmap.ENG_COST_B_B_LSB))
        return cost_a, cost_b

    def error(self, q=95):
        """The ``q``-th percentile of the relative errors (None before any)."""
        return float(np.percentile(self.errors, q)) if self.errors else None
