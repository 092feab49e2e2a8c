"""Elaboration checks of the interrupt remapping unit (no simulator needed)."""

import gc
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable
from amaranth.back import rtlil

from siov.rtl.irq.remapper import InterruptRemapper
from siov.rtl.irq.top import IrqTop


def raises(exc, text, fn):
    """``fn()`` raises ``exc`` with exactly ``text``; the half-built component is discarded quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(exc) as info:
            fn()
        message = str(info.value)
        del info
        gc.collect()
    assert message == text


@pytest.mark.parametrize("entries", [16, 256, 2048])
def test_elaborates(entries):
    rtlil.convert(InterruptRemapper(entries=entries), name="iru")


def test_non_pipelined_elaborates():
    rtlil.convert(IrqTop(entries=16, pipelined=False), name="siov_irq_seq")


@pytest.mark.parametrize("entries,exc,text", [
    (100, ValueError, "Number of IMS entries must be a power of two between 16 and 2048, not 100"),
    (4096, ValueError, "Number of IMS entries must be a power of two between 16 and 2048, not 4096"),
    (8, ValueError, "Number of IMS entries must be a power of two between 16 and 2048, not 8"),
    ("256", TypeError, "Number of IMS entries must be an integer, not '256'"),
    (True, TypeError, "Number of IMS entries must be an integer, not True"),
])
def test_entries_checked(entries, exc, text):
    raises(exc, text, lambda: InterruptRemapper(entries=entries))


def test_depths_checked():
    raises(ValueError, "Fault queue depth must be an integer between 2 and 255, not 1",
           lambda: InterruptRemapper(fault_depth=1))
    raises(ValueError, "Replay queue depth must be an integer between 1 and 64, not 0",
           lambda: InterruptRemapper(replay_depth=0))
