"""The area-by-block report (bench/bench_area.py) reads yosys's per-module ``stat`` right.

A made-up ``stat`` of a top with two instances of one part and a leaf below
one of them: each row must sum its instance's own cells and everything below,
repeated siblings fold into one row, and sites count a carry cell twice and a
distributed RAM six times.
"""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_area", ROOT / "bench" / "bench_area.py")
bench_area = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_area)

STAT = """
=== siov_device ===

        +----------Local Count, excluding submodules.
        |
      160 cells
       32   CCU2C
      128   TRELLIS_FF

=== siov_device.engine.exec0 ===

      100   LUT4
       10   TRELLIS_FF

=== siov_device.engine.exec1 ===

      100   LUT4
       10   TRELLIS_FF

=== siov_device.engine.exec1.walker$85 ===

       50   LUT4
        5   CCU2C
        1   TRELLIS_DPR16X4

=== siov_device.engine ===

     1000   LUT4
        2   DP16KD

=== design hierarchy ===

     1250   LUT4
"""


def test_rows_sum_subtrees_and_fold_siblings():
    own = bench_area.parse_stat(STAT)
    assert set(own) == {"siov_device", "siov_device.engine", "siov_device.engine.exec0",
                        "siov_device.engine.exec1", "siov_device.engine.exec1.walker"}
    assert own["siov_device.engine.exec1.walker"]["CCU2C"] == 5
    rows = {r["block"]: r for r in bench_area.rows_of(own)}
    top = rows["siov_device (all)"]
    assert (top["LUT4"], top["CCU2C"], top["TRELLIS_FF"], top["DP16KD"]) == (1250, 37, 148, 2)
    assert top["sites"] == 1250 + 2 * 37 + 6
    assert rows["engine"]["sites"] == 1250 + 10 + 6
    execs = rows["engine.exec<i>"]
    assert (execs["instances"], execs["LUT4"], execs["sites"]) == (2, 250, 250 + 10 + 6)
    assert rows["engine.exec<i>.walker"]["instances"] == 1
    assert abs(rows["engine"]["share_%"] - round(100 * 1266 / 1330, 1)) < 1e-9
