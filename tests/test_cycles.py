"""What ENG.LAST_CYCLES and a completion record's ``cycles`` count, on both backends.

The register map (``rtl/regs.rdl``, ENG.LAST_CYCLES) says: the record's
``cycles`` run from the hand-over of the descriptor to its executor to the
composing of the record, so they cannot include the record's own write;
LAST_CYCLES runs to the cycle the executor is free again, so it adds the
record's write (its page's translation and the AXI write to its response)
when there is one, a faulting translation when the record's page is not
mapped, and the two cycles that hand the interrupt on and finish. The
scheduler's cost model reads LAST_CYCLES as engine time, the guest reads the
record as execution time. :class:`~siov.sw.platform.timing.TimingModel`
carries the three figures, measured on the RTL by the same program
(:mod:`siov.sw.programs.cycles`), so the rtl run below is what keeps them true.
"""

import pytest

from siov.sw.platform import run_program
from siov.sw.platform.timing import TimingModel

PROGRAM = "siov.sw.programs.cycles:last_and_record_cycles"
WITH_RECORD = ("memmove_4k_record", "memmove_4k_record_irq", "memfill_256_record", "noop_record",
               "bad_opcode_record")


def check(out):
    t = TimingModel()
    for case in WITH_RECORD:
        last, record = out[case]
        assert last - record == t.record_write + t.finish, case
    # Without a record, LAST_CYCLES is what the record would have said, plus the finish.
    assert out["memmove_4k_no_record"] == [out["memmove_4k_record"][1] + t.finish, None]
    assert out["noop_no_record"] == out["noop_irq"] == [out["noop_record"][1] + t.finish, None]
    # A record whose page faults costs the translation, and no write.
    assert out["noop_record_unmapped"] == [out["noop_record"][1] + t.record_fault + t.finish, None]
    assert out["memmove_4k_record"][1] > 500          # 4 KiB take time: the record's count is no constant


def test_last_cycles_and_record_cycles_on_the_model():
    check(run_program(PROGRAM, "model"))


@pytest.mark.sim
def test_last_cycles_and_record_cycles_on_the_rtl():
    out = run_program(PROGRAM, "rtl", quiet=True)
    check(out)
    assert out["memmove_4k_record"] == [586, 560]      # the lone 4 KiB MEMMOVE of the issue
