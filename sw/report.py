"""What ``siov run`` writes: results.json, a Perfetto timeline, PNG plots, and the terminal tables.

* ``results.json``: the scenario's result (:mod:`siov.sw.programs.scenario`)
  with sorted keys and no wall-clock figure, so one file and seed give the
  same bytes every time on the model backend; ``timing_dependent`` lists
  the fields that differ between backends by design;
* ``trace.json``: Chrome trace-event format (JSON object form, complete
  events ``"ph": "X"``), which Perfetto and chrome://tracing open: one track
  per engine with each descriptor from grant to completion (its record's
  cycles), and one per tenant with each descriptor from submission to
  completion. Timestamps are device cycles shown as microseconds;
* ``throughput.png`` and ``latency.png``: each tenant's completed bytes per
  window of device time, and each tenant's latency distribution.

Ref: Trace Event Format (the Chrome/Perfetto JSON trace documentation).
"""

import json

__all__ = ["write_results", "write_trace", "write_plots", "summary_rows"]


def write_results(result, path):
    path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


def write_trace(result, path):
    events = [{"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "siov device"}},
              {"name": "process_name", "ph": "M", "pid": 2, "args": {"name": "tenants"}},
              {"name": "thread_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": "engine 0"}}]
    for tid, (name, t) in enumerate(sorted(result["tenants"].items()), start=1):
        events.append({"name": "thread_name", "ph": "M", "pid": 2, "tid": tid,
                       "args": {"name": f"{name} ({t['kind']}, ADIs {t['adis']})"}})
        for submitted, done, cycles, _ in t["completions"]:
            events.append({"name": name, "cat": "descriptor", "ph": "X", "pid": 2, "tid": tid,
                           "ts": submitted, "dur": max(done - submitted, 1)})
            if cycles:
                events.append({"name": name, "cat": "engine", "ph": "X", "pid": 1, "tid": 0,
                               "ts": max(done - cycles, submitted), "dur": cycles, "args": {"cycles": cycles}})
    path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ns",
                                "otherData": {"time unit": "1 us on the timeline = 1 device cycle"}}))


def write_plots(result, out_dir, windows=50):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cycles = result["device"]["cycles"]
    width = max(cycles // windows, 1)
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, t in sorted(result["tenants"].items()):
        bins = [0] * (windows + 1)
        for _, done, _, size in t["completions"]:
            bins[min(done // width, windows)] += size
        ax.plot([i * width / 1000 for i in range(windows + 1)], [b / width for b in bins], label=name)
    ax.set_xlabel("device time (k cycles)")
    ax.set_ylabel(f"bytes per cycle (windows of {width} cycles)")
    ax.set_title("Throughput over time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "throughput.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4))
    names = sorted(result["tenants"])
    data = [[d - s for s, d, _, _ in result["tenants"][n]["completions"]] or [0] for n in names]
    ax.boxplot(data, tick_labels=names, showfliers=True)
    ax.set_yscale("log")
    ax.set_ylabel("latency, submission to completion (cycles)")
    ax.set_title("Latency per tenant")
    fig.tight_layout()
    fig.savefig(out_dir / "latency.png", dpi=100)
    plt.close(fig)


def summary_rows(result):
    """Rows of the per-tenant table. Columns: descriptors completed, bytes per thousand cycles,
    latency p50/p99 (cycles), map hypercalls, slow-path traps, DMA faults by reason, what the
    device or hypervisor refused, interrupts delivered."""
    rows = []
    for name, t in sorted(result["tenants"].items()):
        faults = ", ".join(f"{k}: {v}" for k, v in t["faults_by_reason"].items()) or "-"
        refused = ", ".join(f"{k}: {v}" for k, v in t["refused"].items()) or "-"
        rows.append({"tenant": f"{name} ({t['kind']})", "ADIs": ",".join(map(str, t["adis"])),
                     "desc": t["descriptors"], "B/kcyc": t["throughput_bytes_per_kcycle"],
                     "p50": t["latency_p50"], "p99": t["latency_p99"], "hcalls": t["map_hypercalls"],
                     "traps": t["traps"], "faults": faults, "refused": refused, "irqs": t["interrupts"]})
    return rows
