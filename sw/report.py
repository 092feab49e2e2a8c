"""What ``siov run`` shows and draws from a results document (:mod:`siov.sw.results`).

* the terminal report (:func:`print_report`): a table of each tenant's
  work, with units in its headers, narrow enough for 80 columns, then each
  tenant's events one per line (hypercalls and traps, how its descriptors
  ended, what was refused, the faults the device recorded, the faults
  injected), then the device (utilisation per engine), then the scheduler
  (:func:`scheduler_lines`: its switches with their reasons, the VM, the
  rings and the semaphore address, the idle engine-cycles the mask cost, and
  the pair latency of dependent workloads), then the checkpointer
  (:func:`checkpoint_lines`: checkpoints, pages copied, downtime, and the
  failover's check or each VM's migration). A console too narrow for the
  table gets every tenant as a list of lines instead: no figure is ever cut;
* ``trace.json`` (:func:`write_trace`): Chrome trace-event format, which
  Perfetto and chrome://tracing open: one track per engine, drawn from the
  completion records (the engine and start cycle each record carries), one
  per tenant, the scheduler's: its switches as instant events and each
  tenant's gang slices as spans, and the checkpointer's: each checkpoint's
  stop, copy and resume as spans, and the failover as an instant event;
* ``siov run --policies``: the same scenario under several policies side by
  side (:func:`policy_rows`, :func:`print_policies`, and ``policies.png`` by
  :func:`write_policy_plots`);
* ``throughput.png`` and ``latency.png`` (:func:`write_plots`);
* ``report.html`` (:func:`write_html`): all of the above in one file that
  needs no network: the tables, the plots embedded as PNG, the scenario and
  where the run came from.

Names come from the register map and the RTL's enums: completion statuses
are :class:`~siov.rtl.cmd.dsa.Status` names, an ADI's error is an
:class:`~siov.rtl.regmap.AdiError` name, fault reasons are
:class:`~siov.rtl.regmap.DmaFaultReason` and
:class:`~siov.rtl.regmap.IrqFaultReason` names.

Ref: Trace Event Format (the Chrome/Perfetto JSON trace documentation).
"""

import base64
import html
import io
import json

__all__ = ["print_report", "tenant_rows", "tenant_details", "device_lines", "scheduler_lines", "checkpoint_lines",
           "write_trace",
           "write_plots", "write_html", "policy_rows", "print_policies", "write_policy_plots", "PLOTS",
           "POLICY_PLOT", "SWITCHES_SHOWN"]

#: The plots :func:`write_plots` draws, by file name.
PLOTS = ("throughput.png", "latency.png")
#: The plot of ``siov run --policies`` (:func:`write_policy_plots`).
POLICY_PLOT = "policies.png"
#: Switches the report lists one per line; results.json has them all.
SWITCHES_SHOWN = 8

#: Column headers of the per-tenant table: name and unit on two lines, so that the table
#: stays narrow and no header is cut.
_HEADERS = {"tenant": "tenant", "adis": "ADIs", "engines": "engine", "descriptors": "done\n(desc.)",
            "throughput": "through-\nput\n(B/kcycle)", "p50": "latency\np50\n(cycles)",
            "p99": "latency\np99\n(cycles)", "interrupts": "inter-\nrupts"}

#: What the program records under ``refused``, in words.
_REFUSED = {"ring_full": "ring full (QueueFull)", "foreign_map": "map hypercall of a page not its own"}


def _ranges(xs):
    """``[0, 1, 2, 5]`` as ``"0-2,5"``."""
    out, xs = [], sorted(xs)
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(str(xs[i]) if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    return ",".join(out) or "-"


def tenant_rows(doc):
    """One row per tenant (keys as :data:`_HEADERS`), every figure formatted."""
    rows = []
    for name, t in sorted(doc["tenants"].items()):
        rows.append({"tenant": name, "adis": _ranges(t["adis"]), "engines": _ranges(set(t["engines"])),
                     "descriptors": f"{t['descriptors']:,}", "throughput": f"{t['throughput_bytes_per_kcycle']:,.1f}",
                     "p50": f"{t['latency_p50']:,}", "p99": f"{t['latency_p99']:,}",
                     "interrupts": f"{t['interrupts']:,}"})
    return rows


def _counts(d, names=None):
    return [f"{(names or {}).get(k, k)}: {v:,}" for k, v in d.items()]


def tenant_details(doc):
    """Per tenant, ``(title, [(label, [entries])])``: its events, one entry per line."""
    out = []
    for name, t in sorted(doc["tenants"].items()):
        refused = [f"ADI error {k.split('.', 1)[1]}: {v:,}" if k.startswith("adi_error.") else
                   f"{_REFUSED.get(k, k)}: {v:,}" for k, v in t["refused"].items()]
        faults = []
        for f in t["faults"]:
            where = (f"page {f['page']:#x} {'write' if f['write'] else 'read'}" if f["unit"] == "dma"
                     else f"handle {f['handle']}")
            faults.append(f"{f['unit'].upper()} {f['reason']} ({f['code']:#04x}), {where}")
        injected = [f"{i['kind']} at cycle {i['at']:,}: {i['outcome']}" for i in t.get("injected", [])]
        lines = [("host", [f"map hypercalls {t['map_hypercalls']:,} ({t['refused_hypercalls']:,} refused), "
                           f"traps {t['traps']:,}"]),
                 ("descriptors", [", ".join(_counts(t["statuses"])) or "none"]),
                 ("refused", refused or ["nothing"]),
                 ("device faults", faults or ["none"])]
        if injected:
            lines.append(("injected", injected))
        out.append((f"{name} ({t['kind']}, PASID {t['pasid']})", lines))
    return out


def device_lines(doc, rate=None):
    """The device's figures as lines of text; ``rate``, if given, describes the simulation's speed."""
    dev = doc["device"]
    p = dev["params"]
    c = dev["counters"]
    policy = (f"scheduler {doc['scheduler']['policy']}" if doc.get("scheduler") else f"policy {dev['policy']}")
    lines = [f"Device {dev['verilog_fingerprint']} ({p['num_engines']} engines, {p['num_adis']} ADIs, "
             f"{p['num_domains']} domains), {policy}"]
    lines += [f"  engine {e['engine']}: busy {e['utilisation']:.1%} of the run (its records' cycles), "
              f"{e['descriptors']:,} descriptors" for e in dev["engines"]]
    lines += [f"  descriptors done {c['desc_done']:,}, failed {c['desc_failed']:,}, refused {c['desc_refused']:,}",
              f"  DMA accesses blocked {c['dma_blocked']:,}, interrupt faults {c['irq_faulted']:,}",
              f"  faults naming no tenant {dev['unattributed_faults']:,}, lost to a full fault queue "
              f"{dev['lost_faults']:,}"]
    if rate:
        lines.append(rate)
    return lines


def _switch_text(sw):
    """One switch in words: when, who, to what, why, and the rings and semaphore."""
    rings = f", rings {_ranges(sw['adis'])}" if sw["adis"] else ""
    sem = f", semaphore {sw['sem']:#x}" if sw["sem"] is not None else ""
    return f"cycle {sw['cycle']:,}: {sw['tenant']} -> {sw['mode']} ({sw['reason']}{rings}{sem})"


def scheduler_lines(doc):
    """The scheduler's figures as lines of text (none if no scheduler ran): its policy, the
    switches by reason and the first :data:`SWITCHES_SHOWN` in full, the gang slices, the idle
    engine-cycles, its own cost, and each dependent workload's pair latency."""
    sched = doc.get("scheduler")
    pairs = [(n, t["pair_latency"]) for n, t in sorted(doc["tenants"].items()) if "pair_latency" in t]
    lines = []
    if sched:
        m = sched["metrics"]
        reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(m["switch_reasons"].items())) or "none"
        lines += [f"Scheduler {sched['policy']}, tick {sched['tick']:,} cycles, slice {sched['slice_cycles']:,}: "
                  f"{len(sched['switches']):,} switches ({reasons}), {len(sched['slices']):,} gang slices "
                  f"({sum(x['end'] - x['start'] for x in sched['slices']):,} cycles)"]
        lines += [f"  {_switch_text(sw)}" for sw in sched["switches"][:SWITCHES_SHOWN]]
        if len(sched["switches"]) > SWITCHES_SHOWN:
            lines.append(f"  ... {len(sched['switches']) - SWITCHES_SHOWN:,} more in results.json and trace.json")
        idle = (f"engines idle with ineligible work {m['idle_ineligible']:,} engine-cycles, waiting on a WAIT "
                f"{m['idle_waiting']:,}" if m["idle_ineligible"] is not None else "idle engine-cycles not read")
        lines += [f"  {idle}; Jain's index of share over weight {m['jain']:.3f}",
                  f"  its own cost: {m['ticks']:,} ticks, {m['mmio_accesses']:,} MMIO accesses, "
                  f"{m['mmio_cycles']:,} device cycles ({m['overhead']:.2%} of the run)"]
        for nf in sched["never_fits"]:
            lines.append(f"  never fits: {nf['tenant']} ADI {nf['adi']}, {nf['predicted_cycles']:,} cycles predicted")
    for name, pl in pairs:
        lines.append(f"  pair latency of {name} (fill handed to its engine to the copy done): {pl['pairs']:,} "
                     f"pairs, mean {pl['mean']:,.0f}, p50 {pl['p50']:,}, p99 {pl['p99']:,} cycles")
    return lines


def checkpoint_lines(doc):
    """The checkpointer's figures as lines of text (none without a ``[checkpoint]``): its mode
    and interval, the checkpoints with the pages they copied and the VMs' downtime, then the
    failover (the epoch restored and whether the stand-in equals the primary, per VM) or each
    VM's migration (pre-copy iterations, pages, downtime, converged, equal)."""
    ck = doc.get("checkpoint")
    if not ck:
        return []
    tot = ck["totals"]
    vms = ", ".join(ck["vms"])
    if ck["mode"] == "ha":
        lines = [f"Checkpoints (ha, every {ck['interval']:,} cycles, VMs {vms}): {tot['checkpoints']:,} taken, "
                 f"{tot['pages']:,} pages copied ({tot['predicted_pages']:,} predicted written), downtime "
                 f"{tot['downtime']:,} cycles in all, {tot['max_downtime']:,} the longest"]
        for c in ck["checkpoints"][:SWITCHES_SHOWN]:
            lines.append(f"  epoch {c['epoch']} at cycle {c['cycle']:,}: {c['pages']:,} pages "
                         f"({c['predicted_only']:,} only predicted), downtime {c['downtime']:,} cycles"
                         + (f", {c['cut']} queue(s) with a descriptor in flight at the stop" if c["cut"] else ""))
        if len(ck["checkpoints"]) > SWITCHES_SHOWN:
            lines.append(f"  ... {len(ck['checkpoints']) - SWITCHES_SHOWN:,} more in results.json and trace.json")
        f = ck["failover"]
        if f is None:
            lines.append("  failover: none asked for" if ck.get("failover_at") is None else
                         f"  failover: none (the run ended before cycle {ck['failover_at']:,})")
        elif f["restored_epoch"] is None:
            lines.append(f"  failover at cycle {f['cycle']:,}: no epoch had committed, nothing to restore")
        else:
            lines.append(f"  failover at cycle {f['cycle']:,}: epoch {f['restored_epoch']} restored onto a stand-in, "
                         + ("equal to the primary" if f["equal"] else "NOT equal to the primary"))
            for name, v in sorted(f["vms"].items()):
                lines.append(f"    {name}: {len(v['pages_differing']):,} pages differ, "
                             f"{len(v['device_differences']):,} device-state differences, interrupts "
                             f"{v['interrupts_restored']:,} restored of {v['interrupts_seen']:,} seen")
        return lines
    lines = [f"Migration (every {ck['interval']:,} cycles a pre-copy iteration, VMs {vms}): {tot['pages']:,} pages "
             f"sent, downtime {tot['downtime']:,} cycles in all, {tot['max_downtime']:,} the longest"]
    for name, m in sorted((ck["migration"] or {}).items()):
        lines.append(f"  {name}: {len(m['iterations']):,} pre-copy iterations "
                     f"({'converged' if m['converged'] else 'not converged'}), {m['total_pages']:,} pages, "
                     f"{m['stop_copy_pages']:,} in the stop-and-copy, downtime {m['downtime']:,} cycles, "
                     + ("equal to the source" if m["equal"] else "NOT equal to the source"))
    return lines


def _title(doc):
    s = doc["scenario"]
    partial = " - PARTIAL (interrupted)" if doc["partial"] else ""
    return (f"{len(doc['tenants'])} tenants, {doc['device']['cycles']:,} device cycles "
            f"({doc['backend']} backend, seed {s['seed']}){partial}")


def print_report(doc, console, rate=None):
    """Print the report of ``doc`` on a Rich ``console``, at any width from 80 columns without
    cutting a figure."""
    from rich import box
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    rows = tenant_rows(doc)
    table = Table(title=_title(doc), box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, show_edge=False)
    for key, head in _HEADERS.items():
        table.add_column(head, justify="left" if key in ("tenant", "adis", "engines") else "right",
                         no_wrap=True)
    for r in rows:
        table.add_row(*r.values())
    if Measurement.get(console, console.options.update_width(1 << 16), table).maximum <= console.width:
        console.print(table)
        per_tenant = {}
    else:           # too narrow for the table: each tenant's figures as lines
        console.print(Text(_title(doc), style="italic"))
        per_tenant = {r["tenant"]: [(_HEADERS[k].replace("-\n", "").replace("\n", " "), [v])
                                    for k, v in r.items() if k != "tenant"]
                      for r in rows}
    for (title, lines), r in zip(tenant_details(doc), rows):
        console.print(Text(title, style="bold"))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column()
        for label, entries in per_tenant.get(r["tenant"], []) + lines:
            grid.add_row(Text(f"  {label}"), Text("\n".join(entries)))
        console.print(grid)
    for line in device_lines(doc, rate) + scheduler_lines(doc) + checkpoint_lines(doc):
        console.print(Text(line))


# -- the timeline ------------------------------------------------------------------------------


def write_trace(doc, path):
    """Chrome trace-event JSON of the run: one track per engine in process "engines", each
    descriptor a complete slice (``"X"``) from its hand-over to the engine to the composing of
    its completion record (``[started, started + cycles]``, from the record's own
    ``start_cycle``, ``cycles`` and ``engine``), which never overlap on one engine; one track per
    tenant in process "tenants", each descriptor an async span (``"b"``/``"e"`` with its own
    id) from submission to the host seeing it complete, so that descriptors in flight together
    never overlap on one thread; markers (``"i"``) where faults were injected. Timestamps are
    device cycles shown as microseconds."""
    events = [{"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "engines"}},
              {"name": "process_name", "ph": "M", "pid": 2, "args": {"name": "tenants"}}]
    for e in doc["device"]["engines"]:
        events.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": e["engine"],
                       "args": {"name": f"engine {e['engine']}"}})
    for name, t in sorted(doc["tenants"].items()):
        for c in t["completions"]:
            events.append({"name": name, "cat": "engine", "ph": "X", "pid": 1, "tid": c["engine"],
                           "ts": c["started"], "dur": c["cycles"],
                           "args": {k: c[k] for k in ("bytes", "status")}})
    span = 0
    for tid, (name, t) in enumerate(sorted(doc["tenants"].items()), start=1):
        events.append({"name": "thread_name", "ph": "M", "pid": 2, "tid": tid,
                       "args": {"name": f"{name} ({t['kind']}, ADIs {_ranges(t['adis'])})"}})
        for c in t["completions"]:
            span += 1
            args = {k: c[k] for k in ("started", "cycles", "bytes", "engine", "status")}
            events.append({"name": f"{name} descriptor", "cat": name, "ph": "b", "id": span, "pid": 2,
                           "tid": tid, "ts": c["submitted"], "args": args})
            events.append({"name": f"{name} descriptor", "cat": name, "ph": "e", "id": span, "pid": 2,
                           "tid": tid, "ts": max(c["completed"], c["submitted"] + 1)})
        for i in t.get("injected", []):
            events.append({"name": f"{i['kind']}: {i['outcome']}", "cat": "fault", "ph": "i", "s": "t",
                           "pid": 2, "tid": tid, "ts": i["at"]})
    events += _scheduler_events(doc)
    events += _checkpoint_events(doc)
    events.sort(key=lambda e: (e.get("ts", -1), e.get("id", 0), e["ph"] == "b"))
    path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ns",
                                "otherData": {"time unit": "1 us on the timeline = 1 device cycle",
                                              "schema_version": doc["schema_version"],
                                              "siov_version": doc["siov_version"]}}))


def _scheduler_events(doc):
    """The scheduler's tracks (process "scheduler"): thread 0 its switches as instant events,
    then one thread per tenant with its gang slices as complete slices."""
    sched = doc.get("scheduler")
    if not sched:
        return []
    events = [{"name": "process_name", "ph": "M", "pid": 3, "args": {"name": f"scheduler ({sched['policy']})"}},
              {"name": "thread_name", "ph": "M", "pid": 3, "tid": 0, "args": {"name": "switches"}}]
    for sw in sched["switches"]:
        events.append({"name": f"{sw['tenant']} -> {sw['mode']}: {sw['reason']}", "cat": "switch", "ph": "i",
                       "s": "t", "pid": 3, "tid": 0, "ts": sw["cycle"],
                       "args": {"adis": sw["adis"], "sem": None if sw["sem"] is None else hex(sw["sem"])}})
    tids = {name: k for k, name in enumerate(sorted({x["tenant"] for x in sched["slices"]}), start=1)}
    for name, tid in tids.items():
        events.append({"name": "thread_name", "ph": "M", "pid": 3, "tid": tid, "args": {"name": f"gang: {name}"}})
    for x in sched["slices"]:
        events.append({"name": f"gang {x['tenant']}", "cat": "gang", "ph": "X", "pid": 3, "tid": tids[x["tenant"]],
                       "ts": x["start"], "dur": max(x["end"] - x["start"], 1), "args": {"reason": x["reason"]}})
    return events


def _checkpoint_events(doc):
    """The checkpointer's track (process "checkpointer"): each checkpoint's (or migration's) stop,
    copy and resume as complete slices, one after another, and the failover as an instant."""
    ck = doc.get("checkpoint")
    if not ck:
        return []
    events = [{"name": "process_name", "ph": "M", "pid": 4, "args": {"name": f"checkpointer ({ck['mode']})"}},
              {"name": "thread_name", "ph": "M", "pid": 4, "tid": 0,
               "args": {"name": "checkpoints" if ck["mode"] == "ha" else "migration"}}]
    for x in ck["spans"]:
        what = f"epoch {x['epoch']}" if ck["mode"] == "ha" else str(x["epoch"])
        events.append({"name": f"{x['name']} ({what})", "cat": "checkpoint", "ph": "X", "pid": 4, "tid": 0,
                       "ts": x["start"], "dur": max(x["end"] - x["start"], 1), "args": {"phase": x["name"]}})
    f = ck.get("failover")
    if f is not None:
        events.append({"name": f"failover: epoch {f['restored_epoch']} restored, "
                               f"{'equal' if f['equal'] else 'not equal'}", "cat": "failover", "ph": "i", "s": "p",
                       "pid": 4, "tid": 0, "ts": f["cycle"]})
    return events


# -- plots ------------------------------------------------------------------------------------


def write_plots(doc, out_dir, windows=50):
    """``throughput.png`` and ``latency.png`` in ``out_dir``; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    for name, draw in (("throughput.png", _throughput), ("latency.png", _latency)):
        fig = draw(plt, doc, windows)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100, metadata={"Software": None})
        plt.close(fig)
        paths.append(out_dir / name)
    return paths


def throughput_series(doc, windows=50):
    """``(window length, {tenant: (window ends in cycles, bytes per cycle)})`` over the
    scenario's length, in windows of equal length; a last window shorter than the others is
    divided by its own length, so it does not drop towards zero. Descriptors that complete
    after the scenario's length (the last batches, waited for) are left out."""
    horizon = min(doc["scenario"]["parsed"]["cycles"], doc["device"]["cycles"])
    width = max(-(-horizon // windows), 1)
    n = -(-horizon // width)
    lengths = [min(width, horizon - k * width) for k in range(n)]
    ends = [k * width + lengths[k] for k in range(n)]
    series = {}
    for name, t in sorted(doc["tenants"].items()):
        bins = [0] * n
        for c in t["completions"]:
            if c["completed"] < horizon:
                bins[c["completed"] // width] += c["bytes"]
        series[name] = (ends, [b / length for b, length in zip(bins, lengths)])
    return width, series


def _throughput(plt, doc, windows):
    width, series = throughput_series(doc, windows)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, (ends, rates) in series.items():
        ax.plot([e / 1000 for e in ends], rates, label=name, marker=".", markersize=3)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_ylim(bottom=0)
    for name, t in sorted(doc["tenants"].items()):
        for i in t.get("injected", []):
            ax.axvline(i["at"] / 1000, color="red", linestyle=":", linewidth=1)
            ax.annotate(f"{name}: {i['kind']}", (i["at"] / 1000, 1), xycoords=("data", "axes fraction"),
                        rotation=90, va="top", ha="right", fontsize=7, color="red",
                        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
    ax.set_xlabel("device time (thousands of cycles)")
    ax.set_ylabel("bytes per cycle (log scale above 0.01)")
    ax.set_title(f"Throughput per tenant, windows of {width:,} cycles; dotted: faults injected")
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(True, which="major", alpha=0.3)
    return fig


def _latency(plt, doc, windows):
    names = sorted(doc["tenants"])
    data = [[c["completed"] - c["submitted"] for c in doc["tenants"][n]["completions"]] for n in names]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.boxplot([d or [0] for d in data], tick_labels=[f"{n}\nn={len(d):,}" for n, d in zip(names, data)],
               whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
    ax.set_yscale("log")
    ax.set_ylabel("latency, submission to completion (cycles)")
    ax.set_title("Latency per tenant: box p25-p75, line median, whiskers p1 and p99, points beyond",
                 fontsize=10)
    return fig


# -- policies side by side ---------------------------------------------------------------------


def _pairs(doc):
    """The pair latencies of every dependent workload of ``doc``, merged: ``(pairs, mean, p99)``
    (p99 the largest of the tenants'), or None without one."""
    pl = [t["pair_latency"] for t in doc["tenants"].values() if "pair_latency" in t]
    n = sum(x["pairs"] for x in pl)
    if not n:
        return None
    return n, sum(x["mean"] * x["pairs"] for x in pl) / n, max(x["p99"] for x in pl)


def policy_rows(docs):
    """``(summary, per_tenant)`` for ``docs`` (policy -> results document of one scenario and
    seed): a row per policy (engines' utilisation, pair latency, throughput, idle engine-cycles
    with ineligible work, switches, the scheduler's own cost), and a row per tenant with its
    throughput and p99 latency under each policy; every figure formatted."""
    summary = []
    for policy, doc in docs.items():
        m = (doc.get("scheduler") or {}).get("metrics", {})
        pairs = _pairs(doc)
        total = sum(t["throughput_bytes_per_kcycle"] for t in doc["tenants"].values())
        summary.append({
            "policy": policy,
            "engines busy (%)": " / ".join(f"{e['utilisation']:.0%}".rstrip("%") for e in doc["device"]["engines"]),
            "pair latency mean / p99 (cycles)": f"{pairs[1]:,.0f} / {pairs[2]:,}" if pairs else "-",
            "throughput, all (B/kcycle)": f"{total:,.0f}",
            "idle, ineligible (engine-cycles)": f"{m['idle_ineligible']:,}" if m.get("idle_ineligible") is not None
                                                 else "-",
            "switches": f"{len(doc['scheduler']['switches']):,}" if doc.get("scheduler") else "-",
            "scheduler cost (% of cycles)": f"{m['overhead']:.2%}".rstrip("%") if m else "-"})
    names = sorted(set().union(*(d["tenants"] for d in docs.values())))
    per_tenant = []
    for name in names:
        row = {"tenant": name}
        for policy, doc in docs.items():
            t = doc["tenants"].get(name)
            row[policy] = (f"{t['throughput_bytes_per_kcycle']:,.0f} B/kc, p99 {t['latency_p99']:,}" if t else "-")
        per_tenant.append(row)
    return summary, per_tenant


def print_policies(docs, console):
    """Print :func:`policy_rows` of ``docs`` on a Rich ``console``, as tables, or as lines per
    policy and tenant on a console too narrow for them (no figure is ever cut)."""
    from rich import box
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    summary, per_tenant = policy_rows(docs)
    first = next(iter(docs.values()))
    title = (f"{len(docs)} policies, the same scenario and seed ({first['scenario']['seed']}), "
             f"{first['backend']} backend")
    for rows, head in ((summary, title), (per_tenant, "per tenant: throughput and p99 latency (cycles)")):
        table = Table(title=head, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, show_edge=False)
        for k, key in enumerate(rows[0]):
            table.add_column(key.replace(" (", "\n("), justify="left" if k == 0 else "right",
                             no_wrap=True)
        for r in rows:
            table.add_row(*r.values())
        if Measurement.get(console, console.options.update_width(1 << 16), table).maximum <= console.width:
            console.print(table)
            continue
        console.print(Text(head, style="italic"))
        for r in rows:
            key, *rest = r.items()
            console.print(Text(f"{key[1]}", style="bold"))
            for k, v in rest:
                console.print(Text(f"  {k}: {v}"))


def write_policy_plots(docs, out_dir):
    """``policies.png`` in ``out_dir``: per tenant its throughput and p99 latency under each
    policy, and per policy the pair latency and the engine-cycles idle with ineligible work.
    Returns its path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    policies = list(docs)
    names = sorted(set().union(*(d["tenants"] for d in docs.values())))
    x = np.arange(len(names))
    width = 0.8 / max(len(policies), 1)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for k, policy in enumerate(policies):
        ts = docs[policy]["tenants"]
        axes[0, 0].bar(x + k * width, [ts[n]["throughput_bytes_per_kcycle"] if n in ts else 0 for n in names],
                       width, label=policy)
        axes[0, 1].bar(x + k * width, [ts[n]["latency_p99"] if n in ts else 0 for n in names], width, label=policy)
    for ax, label in ((axes[0, 0], "throughput (bytes per kcycle)"), (axes[0, 1], "p99 latency (cycles, log)")):
        ax.set_xticks(x + 0.4 - width / 2, names, fontsize=8)
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    axes[0, 1].set_yscale("log")
    pairs = [_pairs(docs[p]) for p in policies]
    axes[1, 0].bar(policies, [p[1] if p else 0 for p in pairs], color="tab:blue", label="mean")
    axes[1, 0].scatter(policies, [p[2] if p else 0 for p in pairs], color="tab:red", zorder=3, label="p99")
    axes[1, 0].set_ylabel("pair latency (cycles)")
    axes[1, 0].legend(fontsize=8)
    idle = [((docs[p].get("scheduler") or {}).get("metrics") or {}).get("idle_ineligible") or 0 for p in policies]
    axes[1, 1].bar(policies, idle, color="tab:gray")
    axes[1, 1].set_ylabel("engine-cycles idle with ineligible work")
    seed = docs[policies[0]]["scenario"]["seed"]
    fig.suptitle(f"The same scenario and seed ({seed}) under each scheduling policy")
    fig.tight_layout()
    path = out_dir / POLICY_PLOT
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


# -- the HTML report -----------------------------------------------------------------------


def write_html(doc, out_dir, rate=None):
    """``report.html`` in ``out_dir``: the report's tables, the plots (read from ``out_dir``,
    embedded as base64 PNG), the scenario and the run's provenance, in one file that loads
    nothing from anywhere. Returns its path."""
    e = html.escape
    parts = [f"<h1>siov run: {e(_title(doc))}</h1>"]
    if doc["partial"]:
        parts.append('<p class="partial">This run was interrupted: the figures cover the '
                     f'{doc["device"]["cycles"]:,} cycles it ran.</p>')
    rows = tenant_rows(doc)
    head = "".join(f"<th>{e(h.replace(chr(45) + chr(10), '').replace(chr(10), ' '))}</th>" for h in _HEADERS.values())
    body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    parts.append(f'<h2>Tenants</h2><table id="tenants"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
    parts.append("<h2>Plots</h2>")
    for name in PLOTS:
        data = base64.b64encode((out_dir / name).read_bytes()).decode()
        parts.append(f'<figure><img id="{name.split(".")[0]}" alt="{name}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{name}</figcaption></figure>")
    details = []
    for title, lines in tenant_details(doc):
        cells = "".join(f"<tr><th>{e(label)}</th><td>{'<br>'.join(e(x) for x in entries)}</td></tr>"
                        for label, entries in lines)
        details.append(f'<table class="events"><caption>{e(title)}</caption>{cells}</table>')
    parts.append('<h2>Events per tenant</h2><div id="events">' + "".join(details) + "</div>")
    parts.append('<h2>Device</h2><ul id="device">' + "".join(f"<li>{e(x)}</li>" for x in device_lines(doc, rate))
                 + "</ul>")
    sched = scheduler_lines(doc)
    if sched:
        parts.append('<h2>Scheduler</h2><ul id="scheduler">' + "".join(f"<li>{e(x.strip())}</li>" for x in sched)
                     + "</ul>")
    ck = checkpoint_lines(doc)
    if ck:
        parts.append('<h2>Checkpoints</h2><ul id="checkpoint">' + "".join(f"<li>{e(x.strip())}</li>" for x in ck)
                     + "</ul>")
    s = doc["scenario"]
    parts.append(f'<h2>Scenario</h2><p>{e(s["source"])}, seed {s["seed"]} '
                 f'(<code>siov run FILE --backend {e(doc["backend"])} --seed {s["seed"]}</code> repeats it)</p>'
                 f'<pre id="scenario">{e(s["text"])}</pre>')
    prov = {"siov version": doc["siov_version"], "results schema version": doc["schema_version"],
            "backend": doc["backend"], "Device parameters": json.dumps(doc["device"]["params"]),
            "Verilog fingerprint": doc["device"]["verilog_fingerprint"],
            "may differ between backends": ", ".join(doc["timing_dependent"])}
    parts.append('<h2>Provenance</h2><table id="provenance">'
                 + "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in prov.items()) + "</table>")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>siov run: {e(_title(doc))}'
            f"</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    path = out_dir / "report.html"
    path.write_text(page)
    return path


_CSS = """
body { font-family: sans-serif; margin: 2em; max-width: 70em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
#tenants td:nth-child(n+4) { text-align: right; }
table.events { display: inline-table; margin-right: 1em; }
caption { font-weight: bold; text-align: left; }
img { max-width: 100%; }
pre { background: #f4f4f4; padding: 1em; overflow-x: auto; }
.partial { color: #a00; font-weight: bold; }
"""
