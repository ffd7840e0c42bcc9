"""Tables, readings and plots of the experiments' per-seed rows."""

import csv

REPRODUCTION_PAGE = "docs/reproduction.rst"


def summarize(rows, keys, metrics=("recall@20", "ndcg@20")):
    """Mean and std over seeds for each combination of ``keys``.

    Parameters
    ----------
    rows : list of dict
        Per-seed results, as returned by :func:`reproduce_featprop` or :func:`reproduce_milk`.
    keys : sequence of str
        The columns that identify a group, e.g. ``("rate", "strategy")``.
    metrics : sequence of str, default=("recall@20", "ndcg@20")
        The columns to average.

    Returns
    -------
    header : list of str
        ``keys`` then ``"<metric> mean"`` and ``"<metric> std"`` for each metric.
    table : list of list
        One row per group, in order of first appearance. The std is the population standard
        deviation over the group's rows (``ddof=0``), the seed-to-seed spread.

    Examples
    --------
    >>> from skmm.reproduce import summarize
    >>> rows = [{"model": "a", "seed": s, "recall@20": r, "ndcg@20": r / 2}
    ...         for s, r in enumerate((0.1, 0.3))]
    >>> header, table = summarize(rows, ("model",))
    >>> header
    ['model', 'recall@20 mean', 'recall@20 std', 'ndcg@20 mean', 'ndcg@20 std']
    >>> [round(v, 3) for v in table[0][1:]]
    [0.2, 0.1, 0.1, 0.05]
    """
    import numpy as np

    groups = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    table = []
    for key, members in groups.items():
        line = list(key)
        for m in metrics:
            vals = np.array([r[m] for r in members])
            line += [float(vals.mean()), float(vals.std())]
        table.append(line)
    header = list(keys) + [f"{m} {s}" for m in metrics for s in ("mean", "std")]
    return header, table


def format_table(header, table, percent=("rate",)):
    """A fixed-width text table; columns named in ``percent`` print as percentages.

    Examples
    --------
    >>> from skmm.reproduce import format_table
    >>> print(format_table(["rate", "score"], [[0.5, 0.25], [0.75, 1.0]]))
    rate   score
     50%  0.2500
     75%  1.0000
    """
    def cell(name, v):
        if name in percent:
            return f"{v:.0%}"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    cells = [list(header)] + [[cell(h, v) for h, v in zip(header, row)] for row in table]
    widths = [max(len(c[j]) for c in cells) for j in range(len(header))]
    return "\n".join("  ".join(f"{c:>{w}}" for c, w in zip(line, widths)) for line in cells)


def write_summary(rows, keys, path, metrics=("recall@20", "ndcg@20")):
    """Write the table of :func:`summarize` as a CSV of ``mean ± std`` cells.

    Parameters
    ----------
    rows : list of dict
        Per-seed results.
    keys : sequence of str
        The grouping columns; a ``"rate"`` key is written as a percentage.
    path : str or path
        The CSV file to write.
    metrics : sequence of str, default=("recall@20", "ndcg@20")
        The columns to average.
    """
    _, table = summarize(rows, keys, metrics)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(keys) + list(metrics))
        for line in table:
            key = [f"{v:.0%}" if k == "rate" else v for k, v in zip(keys, line)]
            means, stds = line[len(keys)::2], line[len(keys) + 1::2]
            cells = [f"{m:.4f} ± {s:.4f}" for m, s in zip(means, stds)]
            writer.writerow(key + cells)


def seed_text(rows):
    """``"5 seeds (0-4)"``, ``"1 seed (3)"`` or ``"3 seeds (0, 2, 5)"``: the seeds in ``rows``."""
    seeds = sorted({int(r["seed"]) for r in rows})
    if len(seeds) == 1:
        return f"1 seed ({seeds[0]})"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{len(seeds)} seeds ({seeds[0]}-{seeds[-1]})"
    return f"{len(seeds)} seeds ({', '.join(map(str, seeds))})"


def format_report(experiment, rows):
    """The summary table of ``rows`` and how to read it, as printed text.

    Parameters
    ----------
    experiment : Experiment
        Gives the grouping keys, the table order and the reading.
    rows : list of dict
        The experiment's per-seed rows.

    Returns
    -------
    text : str
        A heading, the table of means and stds over seeds, the experiment's two-line reading
        and where the reproduction page is.
    """
    report = experiment.report
    header, table = summarize(report.sorted(rows), report.groups, report.metrics)
    seeds = seed_text(rows)
    lines = [f"{experiment.name}: mean and std over {seeds}",
             format_table(header, table)]
    lines += [line.replace("{seeds}", seeds) for line in report.reading]
    lines.append(f"The Last.fm 2K results and how to read them: {REPRODUCTION_PAGE} "
                 f"(in the skmm source tree).")
    return "\n".join(lines)


def data_reading(name, claim):
    """The second line of a reading: what the data (synthetic or real) can show."""
    if name == "synthetic":
        return (f"The synthetic catalogue checks that the protocol runs end to end and is "
                f"reproducible seed by seed; it is too small and too simple a model of real "
                f"data to test the paper's claim ({claim}).")
    return ("Neither paper publishes figures for this data: check the paper's claim "
            f"({claim}) as orderings and gains against the spread, not as values.")


def error_bar_note(rows):
    """The caption that says what a plot's error bars are."""
    return f"error bars: ± 1 standard deviation over {seed_text(rows)}, the seed-to-seed spread"


def plot_curves(rows, title, *, x="rate", line="strategy", metric="recall@20", order=()):
    """One line per ``line`` value: ``metric`` (mean ± std over seeds) against ``x``.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    plt = pyplot()
    _, table = summarize(rows, (line, x), (metric,))
    names = list(order) + [n for n in dict.fromkeys(r[0] for r in table) if n not in order]
    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    for name in names:
        pts = sorted((r[1], r[2], r[3]) for r in table if r[0] == name)
        if not pts:
            continue
        xs, mean, std = zip(*pts)
        ax.errorbar([100 * v for v in xs], mean, yerr=std, marker="o", capsize=3, label=name)
    ax.set_xlabel("items missing all modalities (%)")
    ax.set_ylabel({"recall@20": "Recall@20", "ndcg@20": "NDCG@20"}.get(metric, metric))
    ax.set_title(title, fontsize="medium")
    # Beside the axes, where it covers no point or error bar.
    ax.legend(title=line, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.text(0.5, 0.01, error_bar_note(rows), ha="center", va="bottom", fontsize="small")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_bars(rows, title, *, group="setting", bar="model", groups_order=(),
              metrics=("recall@20", "ndcg@20")):
    """Grouped bars of each metric (mean ± std over seeds), one group per ``group`` value.

    The legend sits in its own row under the title, outside the axes, so it covers no bar.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    plt = pyplot()
    _, table = summarize(rows, (group, bar), metrics)
    groups = [g for g in groups_order if any(r[0] == g for r in table)]
    groups += [g for g in dict.fromkeys(r[0] for r in table) if g not in groups]
    bars = list(dict.fromkeys(r[1] for r in table))
    width = 0.8 / max(len(bars), 1)
    colors = dict(zip(bars, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(10, 4.8), squeeze=False)
    handles = {}
    for ax, (m, metric) in zip(axes[0], enumerate(metrics)):
        for i, g in enumerate(groups):
            # Bars of the models run in this group, centred on its tick.
            here = [r for r in table if r[0] == g]
            for j, r in enumerate(here):
                handles[r[1]] = ax.bar(i + (j - (len(here) - 1) / 2) * width, r[2 + 2 * m],
                                       width, yerr=r[3 + 2 * m], capsize=3, color=colors[r[1]])
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylabel({"recall@20": "Recall@20", "ndcg@20": "NDCG@20"}.get(metric, metric))
    fig.suptitle(title)
    fig.legend([handles[b] for b in bars], bars, loc="upper center", ncol=min(len(bars), 4),
               bbox_to_anchor=(0.5, 0.935), fontsize="small", frameon=False)
    fig.text(0.5, 0.01, error_bar_note(rows), ha="center", va="bottom", fontsize="small")
    n_legend_rows = -(-len(bars) // 4)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96 - 0.05 * n_legend_rows))
    return fig


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend; a clear error without it."""
    check_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_matplotlib():
    """Raise an ImportError that says how to install matplotlib when it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError("the plots need matplotlib, which is not installed: "
                          "pip install 'skmm[plot]' (or pass --no-plot)") from exc
