"""A sweep's statistics: the headline metrics of each run, their summary per point, the table and the plots.

Headline metrics of one run (:func:`headline`), from ``siov run``'s results:

* ``throughput``: bytes moved per 1000 device cycles, all tenants together;
* ``utilisation``: the engines' mean busy fraction, and ``engineN.utilisation`` each;
* per tenant ``T``: ``T.throughput``, ``T.latency_p50`` and ``T.latency_p99``
  (device cycles from a batch's doorbell to each completion);
* per tenant with a ``dependent`` workload: ``T.pair_latency_mean`` and
  ``T.pair_latency_p99`` (a producer's fill handed over to its consumer's copy
  completed), the figure a scheduler policy sweep compares.

Per point and metric (:func:`summarize`): the number of runs, mean, p50 and
p99 (linear interpolation between order statistics), min, max, standard
deviation, and the 95% confidence interval of the mean (Student's t).
"""

import math
import re

__all__ = ["headline", "summarize", "t_quantile", "UNITS", "family", "print_table", "markdown", "write_plots"]

#: Unit of each metric family.
UNITS = {"throughput": "bytes/kcycle", "utilisation": "fraction busy", "latency_p50": "cycles",
         "latency_p99": "cycles", "pair_latency_mean": "cycles", "pair_latency_p99": "cycles"}

#: Two-sided 95% quantiles of Student's t for 1 to 30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_quantile(df):
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom: a table to 30, then the
    Cornish-Fisher expansion about the normal's 1.95996 (within 0.001 of the exact value)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def headline(result):
    """``{metric: value}`` of one run's result (``siov run``'s, with or without completions); empty
    for the result of another program."""
    if not isinstance(result, dict) or "tenants" not in result or "device" not in result:
        return {}
    tenants = result["tenants"]
    engines = result["device"]["engines"]
    out = {"throughput": round(sum(t["throughput_bytes_per_kcycle"] for t in tenants.values()), 1),
           "utilisation": round(sum(e["utilisation"] for e in engines) / max(1, len(engines)), 4)}
    for e in engines:
        out[f"engine{e['engine']}.utilisation"] = e["utilisation"]
    for name, t in tenants.items():
        out[f"{name}.throughput"] = t["throughput_bytes_per_kcycle"]
        out[f"{name}.latency_p50"] = t["latency_p50"]
        out[f"{name}.latency_p99"] = t["latency_p99"]
        pairs = t.get("pair_latency")
        if pairs and pairs.get("pairs"):
            out[f"{name}.pair_latency_mean"] = pairs["mean"]
            out[f"{name}.pair_latency_p99"] = pairs["p99"]
    return out


def family(metric):
    """The family of ``metric``: a key of :data:`UNITS` (``throughput``, ``latency_p99``, ...)."""
    return metric.rsplit(".", 1)[-1]


def _percentile(xs, p):
    """Linear interpolation between order statistics (numpy's default)."""
    k = (len(xs) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _round(x):
    return round(float(x), 4)


def summarize(values):
    """``{"n", "mean", "p50", "p99", "min", "max", "std", "ci95"}`` of ``values``; ``ci95`` is
    ``[low, high]`` of the mean (None for fewer than two values). Empty: None."""
    xs = sorted(float(v) for v in values)
    n = len(xs)
    if n == 0:
        return None
    mean = math.fsum(xs) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    half = t_quantile(n - 1) * std / math.sqrt(n) if n > 1 else None
    return {"n": n, "mean": _round(mean), "p50": _round(_percentile(xs, 50)), "p99": _round(_percentile(xs, 99)),
            "min": _round(xs[0]), "max": _round(xs[-1]), "std": _round(std),
            "ci95": None if half is None else [_round(mean - half), _round(mean + half)]}


def _fmt(x):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.1f}"


def _rows(point):
    for metric, s in point["stats"].items():
        if s is None:
            yield metric, ["-"] * 5
            continue
        ci = "-" if s["ci95"] is None else f"{_fmt(s['ci95'][0])} .. {_fmt(s['ci95'][1])}"
        yield metric, [_fmt(s["mean"]), ci, _fmt(s["p50"]), _fmt(s["p99"]), str(s["n"])]


_COLUMNS = ("mean", "95% CI of mean", "p50", "p99", "runs")
#: What the tables' numbers are in.
UNITS_NOTE = ("throughput in bytes per 1000 device cycles, utilisation as the fraction of cycles busy, "
              "latency in device cycles")


def print_table(doc, console):
    """One rich table per point of the sweep document ``doc``."""
    from rich.table import Table
    for point in doc["points"]:
        failed = len(point["failed"])
        title = f"{point['id']}: {point['label']}" + (f"  ({failed} failed)" if failed else "")
        table = Table(title=title, title_justify="left")
        table.add_column("metric")
        for col in _COLUMNS:
            table.add_column(col, justify="right")
        for metric, cells in _rows(point):
            table.add_row(metric, *cells)
        console.print(table)
    console.print(f"[dim]{UNITS_NOTE}; the confidence interval is Student's t over the seeds[/dim]")


def markdown(doc):
    """The tables of :func:`print_table` as Markdown."""
    out = [f"# Sweep of {doc['scenario']['source']} on the {doc['backend']} backend", "",
           f"Seeds: {_seed_text(doc['seeds'])}. Metrics: {UNITS_NOTE}; the confidence interval of the mean "
           "is Student's t over the seeds.", ""]
    for point in doc["points"]:
        out += [f"## {point['id']}: {point['label']}", "", "| metric | " + " | ".join(_COLUMNS) + " |",
                "|---|" + "---:|" * len(_COLUMNS)]
        out += [f"| {m} | " + " | ".join(cells) + " |" for m, cells in _rows(point)]
        for f in point["failed"]:
            out.append(f"\nseed {f['seed']} failed: {f['error'].splitlines()[0] if f['error'] else ''}  \n"
                       f"reproduce: `{f['reproduce']}`  \nwith a waveform: `{f['reproduce_waves']}`")
        out.append("")
    return "\n".join(out)


def _seed_text(seeds):
    if not seeds:
        return "none"
    runs, start = [], seeds[0]
    for a, b in zip(seeds, seeds[1:] + [None]):
        if b != a + 1:
            runs.append(str(start) if start == a else f"{start}-{a}")
            start = b
    return ",".join(runs)


def _short(point, keys):
    """The point's values alone, for an axis label: ``wrr/4``."""
    if not keys:
        return "base"
    return "/".join(str(point["set"][k]) for k in keys)


#: Points past which an axis names points by id (``p042``, in summary.md) and only some of them.
_MAX_LABELS = 24
#: Runs a point needs for a box; fewer are shown as dots alone.
_MIN_BOX = 5


def _groups(points):
    groups = {}
    for m in dict.fromkeys(m for p in points for m in p["stats"]):
        name = "utilisation" if m == "utilisation" else "tenant_throughput" if m.endswith(".throughput") \
            else family(m)
        groups.setdefault(name, []).append(m)
    return groups


def _panel(ax, points, m, labels):
    n = len(points)
    data = [[r[m] for r in p["runs"].values() if m in r] for p in points]
    boxed = [i for i, d in enumerate(data) if len(d) >= _MIN_BOX]
    if boxed:
        ax.boxplot([data[i] for i in boxed], positions=[i + 1 for i in boxed], showfliers=False,
                   widths=0.6, manage_ticks=False)
    xs = [i + 1 + 0.18 * (((k * 7919) % 97) / 97 - 0.5) for i, d in enumerate(data) for k in range(len(d))]
    ys = [v for d in data for v in d]
    ax.plot(xs, ys, ".", color="tab:blue", alpha=0.6, markersize=4)     # every run, one call per panel
    ax.set_title(m, fontsize=9)
    step = max(1, -(-n // _MAX_LABELS))
    ticks = list(range(1, n + 1, step))
    names = [labels[i - 1] if n <= _MAX_LABELS else points[i - 1]["id"] for i in ticks]
    rotate = n > 4
    ax.set_xticks(ticks, names, rotation=30 if rotate else 0, fontsize=8, ha="right" if rotate else "center")
    ax.set_xlim(0.4, n + 0.6)
    ax.set_ylabel(UNITS.get(family(m), ""), fontsize=8)
    ax.tick_params(axis="y", labelsize=8)


def write_plots(doc, folder):
    """One PNG per metric family in ``folder``: a panel per tenant or engine (or one, for the
    totals), and in each panel the distribution over seeds of every point side by side: every
    run as a dot, and a box of the quartiles with whiskers to 1.5 IQR for a point of five runs or
    more. Past 24 points an axis names points by id (summary.md has their values). Returns the paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pathlib import Path
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    points = doc["points"]
    keys = list(doc["set"])
    labels = [_short(p, keys) for p in points]
    paths = []
    for name, ms in _groups(points).items():
        cols = min(3 if len(points) <= 12 else 1, len(ms))
        rows = -(-len(ms) // cols)
        width = min(16.0, max(4.0, 0.45 * min(len(points), 3 * _MAX_LABELS) + 1.5))
        fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 3.2 * rows), squeeze=False)
        for ax, m in zip(axes.flat, ms):
            _panel(ax, points, m, labels)
        for ax in list(axes.flat)[len(ms):]:
            ax.set_visible(False)
        fig.suptitle(f"{name} over seeds, per point" + (f" ({' / '.join(keys)})" if keys else ""), fontsize=10)
        fig.tight_layout()
        path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
