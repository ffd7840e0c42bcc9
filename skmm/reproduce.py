"""Rerun the papers' experiments: ``python -m skmm reproduce featprop|milk``.

Each experiment writes a CSV of per-seed results and a PNG plot into ``out``, and prints a table
of means and standard deviations over seeds.
"""

import csv
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .datasets import load_mmrec, make_multimodal, new_item_split, simulate_missing
from .impute import BaselineImputer, FeatPropImputer
from .milk import MILKRecommender
from .vbpr import VBPRRecommender

FEATPROP_RATES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
QUICK_RATES = (0.1, 0.3, 0.5, 0.7, 0.9)
FEATPROP_STRATEGIES = ("zeros", "mean", "random", "featprop")
MILK_SETTINGS = ("FTFT", "FTMT", "MTMT")
# The paper's training schedule: validate every 10 epochs, stop after 3 validations without a
# better NDCG@20 (the skmm defaults validate every epoch).
MILK_SCHEDULE = {"validation_interval": 10, "patience": 3}
# The DUIF-like content baseline is MILK without environments, invariance and alignment.
MILK_MODELS = {
    "MILK": {},
    "DUIF-like": {"environments": "none", "invariance_weight": 0.0, "alignment_weight": 0.0},
}


def default_data(random_state=0, quick=False):
    """The bundled default data: a synthetic catalogue with planted taste structure.

    Interactions are split at random into train / validation / test (80 / 10 / 10).

    Parameters
    ----------
    random_state : int, default=0
        Seeds :func:`~skmm.datasets.make_multimodal` and the split.
    quick : bool, default=False
        600 items and 400 users instead of 1500 and 1000.

    Returns
    -------
    data : Bunch
        As :func:`~skmm.datasets.make_multimodal`, plus ``Y_train``, ``Y_val``, ``Y_test``,
        ``name`` and ``modality_names``.
    """
    n_items, n_users = (600, 400) if quick else (1500, 1000)
    data = make_multimodal(n_items, n_users, (64, 32), density=0.03, random_state=random_state)
    Y_train, Y_val, Y_test = _split_interactions(data.Y, (0.8, 0.1, 0.1), random_state)
    data.update(Y_train=Y_train, Y_val=Y_val, Y_test=Y_test, name="synthetic",
                modality_names=["modality_a", "modality_b"])
    return data


def _split_interactions(Y, fractions, random_state):
    coo = Y.tocoo()
    u = np.random.default_rng(random_state).random(coo.nnz)
    edges = np.cumsum(fractions)[:-1]
    part = np.searchsorted(edges, u, side="right")
    return tuple(sp.csr_matrix((coo.data[part == p], (coo.row[part == p], coo.col[part == p])),
                               shape=Y.shape) for p in range(len(fractions)))


def load_data(path, modalities=None, quick=False):
    """Real data from an MMRec-format folder, or the default synthetic data when None.

    Parameters
    ----------
    path : str or path or None
        An MMRec-format folder (see :func:`~skmm.datasets.load_mmrec`); None for
        :func:`default_data`.
    modalities : list of str, default=None
        Feature files to read, by stem; None reads every ``.npy`` of the folder.
    quick : bool, default=False
        Passed to :func:`default_data`.

    Returns
    -------
    data : Bunch
        With ``name`` set to the folder's name.
    """
    if path is None:
        return default_data(quick=quick)
    data = load_mmrec(path, modalities)
    data.name = Path(path).name
    return data


def _imputer(strategy, seed):
    if strategy == "featprop":
        return FeatPropImputer()
    if strategy == "zeros":  # the paper's name for the constant-0 fill
        return BaselineImputer(strategy="constant", fill_value=0.0)
    return BaselineImputer(strategy=strategy, random_state=seed)


def reproduce_featprop(data, *, seeds=5, rates=FEATPROP_RATES, vbpr_params=None, out=None,
                       progress=True):
    """The FeatProp experiment: impute items that lost all modalities, then train VBPR.

    For every missing rate and seed, a fraction of items loses every modality; each strategy
    imputes them, VBPR is trained on the training interactions with the imputed features, and
    Recall@20 / NDCG@20 are measured on the test interactions by full ranking over all items.

    Parameters
    ----------
    data : Bunch
        ``X``, ``modalities``, ``Y_train`` and ``Y_test`` as returned by
        :func:`~skmm.datasets.load_mmrec` or :func:`default_data`.
    seeds : int, default=5
        Seeds 0 to ``seeds - 1``; each draws its own missing items and VBPR initialisation.
    rates : sequence of float, default=FEATPROP_RATES
        Fractions of items that lose every modality (10% to 90%).
    vbpr_params : dict, default=None
        Overrides of the :class:`~skmm.VBPRRecommender` parameters (default 30 epochs,
        batch 1024, learning rate 0.005).
    out : str or path, default=None
        Folder for ``featprop.csv`` (per-seed rows), ``featprop_summary.csv`` and
        ``featprop.png`` (Recall@20 against the missing rate); nothing is written when None.
    progress : bool, default=True
        Show a progress bar.

    Returns
    -------
    rows : list of dict
        One per (rate, strategy, seed): ``recall@20``, ``ndcg@20``, ``seconds``.
    """
    from .metrics import ndcg_at_k, recall_at_k

    vbpr_params = {**dict(max_epochs=30, batch_size=1024, lr=0.005), **(vbpr_params or {})}
    runs = [(r, s, seed) for r in rates for seed in range(seeds) for s in FEATPROP_STRATEGIES]
    rows = []
    for rate, strategy, seed in _progress(runs, progress, "featprop"):
        X_miss, _ = simulate_missing(data.X, data.modalities, rate, mode="all",
                                     random_state=seed)
        tic = time.perf_counter()
        X_imp = _imputer(strategy, seed).fit_transform(X_miss, data.Y_train)
        model = VBPRRecommender(device="auto", random_state=seed, **vbpr_params)
        scores = model.fit(X_imp, data.Y_train).decision_function(X_imp)
        rows.append({
            "rate": rate, "strategy": strategy, "seed": seed,
            "recall@20": recall_at_k(data.Y_test, scores, k=20, exclude=data.Y_train),
            "ndcg@20": ndcg_at_k(data.Y_test, scores, k=20, exclude=data.Y_train),
            "seconds": time.perf_counter() - tic,
        })
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        _write_csv(rows, out / "featprop.csv")
        write_summary(rows, ("rate", "strategy"), out / "featprop_summary.csv")
        _plot_curves(rows, out / "featprop.png",
                     title=f"FeatProp on {data.get('name', 'data')}: VBPR after imputation")
    return rows


def reproduce_milk(data, *, seeds=5, milk_params=None, out=None, progress=True):
    """The MILK experiment: new items, some of whose modalities are missing.

    For every seed, 20% of the items become new items (:func:`~skmm.datasets.new_item_split`:
    10% validation, 10% test) and lose all their interactions from training. Models are
    fitted on the training and validation items, holding out the validation share for early
    stopping on the paper's schedule (``MILK_SCHEDULE``: validation every 10 epochs, patience
    3 validations), and every user ranks the test items only. Settings (the paper's):

    * ``FTFT``: full modalities in training and test;
    * ``FTMT``: full modalities in training; 50% of the test items each lose one modality;
    * ``MTMT``: as FTMT, and 30% of the training items each lose one modality.

    Models: MILK and the DUIF-like content baseline (missing modalities filled with the
    training mean, the paper's choice), and in MTMT each of them behind a
    :class:`~skmm.FeatPropImputer` that imputes the training items' missing modalities over
    their co-interaction graph (test items, which have no interactions, take its
    nearest-neighbour rule).

    Returns
    -------
    rows : list of dict
        One per (setting, model, seed): ``recall@20``, ``ndcg@20``, ``epochs``, ``seconds``.
    """
    from sklearn.pipeline import make_pipeline

    from .metrics import ndcg_at_k, recall_at_k

    Y = data.Y if "Y" in data else data.Y_train + data.Y_val + data.Y_test
    Y = sp.csr_matrix(Y, dtype=np.float32)
    Y.data[:] = 1.0
    # A model trained on full modalities ("FT") is tested both on FTFT and on FTMT.
    runs = []
    for seed in range(seeds):
        runs += [(seed, "FT", name, False) for name in MILK_MODELS]
        runs += [(seed, "MTMT", name, impute) for name in MILK_MODELS for impute in (False, True)]
    rows = []
    for seed, setting, name, impute in _progress(runs, progress, "milk"):
        train, val, test = new_item_split(Y, test_size=0.1, val_size=0.1, random_state=seed)
        fit_items = np.union1d(train, val)
        # Only users seen in training can be scored.
        users = np.flatnonzero(Y[fit_items].getnnz(axis=0) > 0)
        Y_fit, Y_test = Y[fit_items][:, users], Y[test][:, users]
        X_fit = data.X[fit_items]
        if setting == "MTMT":
            X_fit, _ = simulate_missing(X_fit, data.modalities, 0.3, mode="one",
                                        random_state=1000 + seed)
        X_test_missing, _ = simulate_missing(data.X[test], data.modalities, 0.5, mode="one",
                                             random_state=seed)
        tic = time.perf_counter()
        milk = MILKRecommender(data.modalities, random_state=seed,
                               validation_fraction=val.size / fit_items.size,
                               **{**MILK_SCHEDULE, **MILK_MODELS[name], **(milk_params or {})})
        model = make_pipeline(FeatPropImputer(), milk) if impute else milk
        model.fit(X_fit, Y_fit)
        seconds = time.perf_counter() - tic
        tests = {"FTFT": data.X[test], "FTMT": X_test_missing} if setting == "FT" else \
            {"MTMT": X_test_missing}
        for test_setting, X_test in tests.items():
            scores = model.decision_function(X_test)
            rows.append({
                "setting": test_setting, "model": name + (" + FeatProp" if impute else ""),
                "seed": seed,
                "recall@20": recall_at_k(Y_test, scores, k=20),
                "ndcg@20": ndcg_at_k(Y_test, scores, k=20),
                "epochs": milk.n_epochs_, "seconds": seconds,
            })
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        _write_csv(rows, out / "milk.csv")
        write_summary(sorted(rows, key=lambda r: MILK_SETTINGS.index(r["setting"])),
                      ("setting", "model"), out / "milk_summary.csv")
        _plot_bars(rows, out / "milk.png",
                   title=f"MILK on {data.get('name', 'data')}: new items, 20% split")
    return rows


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
        One row per group, in order of first appearance.
    """
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    table = []
    for key, members in groups.items():
        line = list(key)
        for m in metrics:
            vals = np.array([r[m] for r in members])
            line += [vals.mean(), vals.std()]
        table.append(line)
    header = list(keys) + [f"{m} {s}" for m in metrics for s in ("mean", "std")]
    return header, table


def format_table(header, table, percent=("rate",)):
    """A fixed-width text table; columns named in ``percent`` print as percentages."""
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
            cells = [f"{m:.4f} ± {s:.4f}" for m, s in zip(line[len(keys)::2],
                                                           line[len(keys) + 1::2])]
            writer.writerow(key + cells)


def _write_csv(rows, path):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _plot_curves(rows, path, title):
    plt = _pyplot()
    header, table = summarize(rows, ("strategy", "rate"))
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy in FEATPROP_STRATEGIES:
        pts = sorted((r[1], r[2], r[3]) for r in table if r[0] == strategy)
        if not pts:
            continue
        x, mean, std = map(np.array, zip(*pts))
        ax.errorbar(100 * x, mean, yerr=std, marker="o", capsize=3, label=strategy)
    ax.set_xlabel("items missing all modalities (%)")
    ax.set_ylabel("Recall@20")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_bars(rows, path, title):
    plt = _pyplot()
    metrics = ("recall@20", "ndcg@20")
    header, table = summarize(rows, ("setting", "model"), metrics)
    settings = [s for s in MILK_SETTINGS if any(r[0] == s for r in table)]
    models = list(dict.fromkeys(r[1] for r in table))
    width = 0.8 / len(models)
    colors = dict(zip(models, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(10, 4))
    for ax, (m, metric) in zip(axes, enumerate(metrics)):
        labelled = set()
        for i, setting in enumerate(settings):
            # Bars of the models run in this setting, centred on its tick.
            here = [r for r in table if r[0] == setting]
            for j, r in enumerate(here):
                ax.bar(i + (j - (len(here) - 1) / 2) * width, r[2 + 2 * m], width,
                       yerr=r[3 + 2 * m], capsize=3, color=colors[r[1]],
                       label=None if r[1] in labelled else r[1])
                labelled.add(r[1])
        ax.set_xticks(range(len(settings)), settings)
        ax.set_ylabel({"recall@20": "Recall@20", "ndcg@20": "NDCG@20"}[metric])
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'skmm[plot]'") from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _progress(items, enabled, desc):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc)
