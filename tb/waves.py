"""Rerun one cocotb test with a waveform dump and print the file's path (``make waves TEST=...``).

FST is written where the liblz4 headers exist (Verilator needs them for FST),
VCD otherwise. Open it with ``gtkwave <file>`` or ``surfer <file>``.
"""

import argparse
import sys

from .regressions import find_test


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("test", help="cocotb test name, e.g. test_unmapped_decerr")
    args = ap.parse_args(argv)
    try:
        reg = find_test(args.test)
    except LookupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"[waves] {args.test} from {reg.test_module} on {reg.top} ({reg.name})")
    res = reg.run(testcase=args.test.split("/")[0], waves=True)
    if res.waves is None:
        print("error: the simulation wrote no waveform", file=sys.stderr)
        return 1
    status = "passed" if res.failed == 0 else f"FAILED ({res.failed} of {res.tests})"
    print(f"[waves] test {status}")
    print(f"[waves] waveform: {res.waves}")
    print(f"[waves] open with: gtkwave {res.waves}   (or: surfer {res.waves})")
    return 0 if res.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
