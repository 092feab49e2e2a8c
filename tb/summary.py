"""Print one table of every cocotb test result found under build/results (``make sim``)."""

import pathlib
import sys
import xml.etree.ElementTree as ET

RESULTS = pathlib.Path(__file__).resolve().parent.parent / "build" / "results"


def _sim_ns(case):
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    if "sim_time_ns" in case.attrib:
        return float(case.get("sim_time_ns"))
    try:
        return float(props.get("sim_time_stop", 0)) - float(props.get("sim_time_start", 0))
    except ValueError:
        return 0.0


def collect(results_dir=RESULTS):
    rows = []
    for xml in sorted(results_dir.glob("*.xml")):
        for case in ET.parse(xml).iter("testcase"):
            failed = case.find("failure") is not None or case.find("error") is not None
            skipped = case.find("skipped") is not None
            rows.append({
                "regression": xml.stem,
                "test": case.get("name"),
                "status": "FAIL" if failed else "SKIP" if skipped else "PASS",
                "sim_ns": _sim_ns(case),
                "seconds": float(case.get("time", 0) or 0),
            })
    return rows


def main():
    rows = collect()
    if not rows:
        print("no cocotb results under build/results", file=sys.stderr)
        return 1
    w1 = max(len(r["regression"]) for r in rows)
    w2 = max(len(r["test"]) for r in rows)
    print(f"{'regression':<{w1}}  {'test':<{w2}}  status  {'sim time':>12}  {'wall':>7}")
    for r in rows:
        print(f"{r['regression']:<{w1}}  {r['test']:<{w2}}  {r['status']:<6}  "
              f"{r['sim_ns'] / 1000:>9.1f} us  {r['seconds']:>6.2f}s")
    failed = sum(r["status"] == "FAIL" for r in rows)
    print(f"\n{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
