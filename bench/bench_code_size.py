"""Size of the RTL's source (make bench BENCH=code_size): issue 30's first two goals.

The longest ``elaborate`` in rtl/ (goal: 150 lines or fewer), the median
``elaborate``, the longest functions and the largest hand-written modules
(goal: 400 lines or fewer), by AST line counts (:mod:`siov.tb.codesize`),
before the executor's split (commit 8f0d64a, measured the same way) and now,
with the longest ``elaborate`` and the largest module among the parts of the
DMA tracker (rtl/dma/) and of the interrupt remapper (rtl/irq/). (AdiBlock.elaborate
and rtl/cmd/adi.py were measured before their split at commit 1288330.)
tests/test_code_size.py keeps the figures from growing back.

Writes build/bench/code_size.json.
"""

import json
import pathlib
import statistics

from siov.tb import codesize

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"

#: Measured with siov.tb.codesize on commit 8f0d64a (before the executor's split).
BEFORE = {
    "longest elaborate": "534 (Executor.elaborate)",
    "median elaborate": 61,
    "Executor.elaborate": 534,
    "DmaTracker.elaborate": 444,
    "DmaTracker._elaborate_engine": 337,
    "InterruptRemapper.elaborate": 386,
    "AdiBlock.elaborate": 204,
    "largest module": "1156 (rtl/dma/tracker.py)",
    "rtl/cmd/executor.py": 703,
    "rtl/dma/tracker.py": 1156,
    "rtl/irq/remapper.py": 685,
    "rtl/cmd/adi.py": 324,
}
#: The blocks split into parts, by folder: their longest ``elaborate`` and largest module before.
PARTS = {"rtl/dma/": ("444 (DmaTracker.elaborate)", "1156 (rtl/dma/tracker.py)"),
         "rtl/irq/": ("386 (InterruptRemapper.elaborate)", "685 (rtl/irq/remapper.py)")}
GOALS = {"longest elaborate": "<= 150", "largest module": "<= 400"}
#: The executor's sequencer: its state groups and the data states that step the movers.
SEQUENCER = ("rtl/cmd/sequencer.py", "rtl/cmd/move_states.py")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    funcs = {name: lines for lines, name, _ in codesize.functions()}
    mods = {path: lines for lines, path in codesize.modules()}
    lines, name, _ = codesize.longest("elaborate")
    big_lines, big_path = codesize.modules()[0]
    elaborates = [n for n, f, _ in codesize.functions() if f.endswith(".elaborate")]
    now = {
        "longest elaborate": f"{lines} ({name})",
        "median elaborate": statistics.median(elaborates),
        "largest module": f"{big_lines} ({big_path})",
    }
    now.update({k: funcs.get(k, mods.get(k, "-")) for k in BEFORE if k not in now})
    rows = [{"measure": k, "before": v, "now": now[k], "goal": GOALS.get(k, "")} for k, v in BEFORE.items()]
    seq_lines, seq_name, seq_path = next(r for r in codesize.functions() if r[2] in SEQUENCER)
    rows.append({"measure": "the executor's sequencer: its longest function", "before": "268 (Executor._sequence)",
                 "now": f"{seq_lines} ({seq_name}, {seq_path})", "goal": ""})
    rows.append({"measure": "the executor's sequencer: its modules", "before": "-",
                 "now": " + ".join(f"{mods[p]} ({p})" for p in SEQUENCER), "goal": "about 250 lines"})
    for folder, (elab_before, mod_before) in PARTS.items():
        e_lines, e_name, _ = next(r for r in codesize.functions()
                                  if r[2].startswith(folder) and r[1].endswith(".elaborate"))
        m_lines, m_path = next(r for r in codesize.modules() if r[1].startswith(folder))
        rows.append({"measure": f"longest elaborate in {folder}", "before": elab_before,
                     "now": f"{e_lines} ({e_name})", "goal": GOALS["longest elaborate"]})
        rows.append({"measure": f"largest module in {folder}", "before": mod_before,
                     "now": f"{m_lines} ({m_path})", "goal": GOALS["largest module"]})
    notes = ("AST line counts of rtl/ (siov.tb.codesize): a function's line span, docstring and comments "
             "included; modules by line count, rtl/regmap.py (generated) left out. The executor is now a "
             "composition (rtl/cmd/executor.py) of parts with their own unit tests (rtl/cmd/pieces.py, compare.py, "
             "wsource.py, xlate.py) and a sequencer with one method per state group (rtl/cmd/sequencer.py; the "
             "data states in move_states.py); the DMA tracker is a composition of parts (rtl/dma/: front, tables, address lookup, "
             "request pipeline, dirty log, output queue, bitmap engine, guest fast path, range operations, "
             "fault log, counters) and so is the interrupt remapper (rtl/irq/: IMS table, message pipeline, "
             "IMS window), and so is the ADI block (rtl/cmd/adi_pages.py doorbell pages, adi_command.py "
             "command decoder, adi_slot.py one ADI's state and pointers), each part with its own unit test. "
             "The dispatcher's and the engine's elaborate are named steps. "
             "tests/test_code_size.py holds every function and module to the goals, so that none grows back.")
    (OUT / "code_size.json").write_text(json.dumps(
        {"title": "Size of the RTL source", "rows": rows, "notes": notes}, indent=1))


if __name__ == "__main__":
    main()
