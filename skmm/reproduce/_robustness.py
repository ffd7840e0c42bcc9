"""Where MILK's robustness pays: accuracy as the share of test items missing a modality grows.

Each model is trained once per seed on full modalities (the milk experiment's new-item split);
the fitted model then scores the test items while the share of them missing one modality goes
from 0 to 100%, for each modality lost, alone and behind a FeatProp imputer. Every fit also
records :func:`~skmm.inspection.modality_ranking` of the test items: how well each
modality's projection alone ranks them.
"""

import time
from functools import partial
from numbers import Real

from ._experiment import Experiment, Report, Task, check_seeds
from ._milk import _PROTOCOL, MILK_MODELS, MILK_SCHEDULE, _estimators, _label, new_item_data
from ._report import data_reading, error_bar_note, pyplot, summarize
from ._runner import run_experiments

#: Shares of the test items that lose the modality, by default.
ROBUSTNESS_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: The compared models, keys of :data:`MILK_MODELS`, by default.
ROBUSTNESS_MODELS = ("MILK", "DUIF-like")


def missing_items(n_items, n_missing, seed, modality):
    """The test items that lose ``modality``: the first ``n_missing`` of a permutation of
    ``range(n_items)`` drawn for (``seed``, ``modality``), so that the items missing it at
    a share are among those missing it at any larger share."""
    import numpy as np

    return np.random.default_rng([seed, modality]).permutation(n_items)[:n_missing]


def lose_modality(X, modalities, modality, items):
    """A copy of ``X`` whose block ``modality`` is NaN on the rows ``items``."""
    import numpy as np

    X = np.array(X, dtype=np.float32, copy=True)
    start = int(np.sum(modalities[:modality]))
    X[np.asarray(items, dtype=np.int64), start:start + modalities[modality]] = np.nan
    return X


def robustness_fit(data, *, seed, model, models, params, shares):
    """One fit: ``model`` trained on full modalities, then its test items scored at every
    share missing each modality, alone and behind FeatProp. Returns one row per (modality
    lost, share, with or without FeatProp)."""
    import numpy as np
    from sklearn.pipeline import Pipeline

    from ..impute import FeatPropImputer
    from ..inspection import modality_ranking
    from ..metrics import ndcg_at_k, recall_at_k
    from ..milk import MILKRecommender

    split = new_item_data(data, seed)
    X_fit, X_test = data.X[split["fit_items"]], data.X[split["test_items"]]
    Y_fit, Y_test = split["Y_fit"], split["Y_test"]
    tic = time.perf_counter()
    milk = MILKRecommender(data.modalities, random_state=seed,
                           validation_fraction=split["val_items"].size / X_fit.shape[0],
                           **{**MILK_SCHEDULE, **models[model], **params})
    milk.fit(X_fit, Y_fit)
    seconds = time.perf_counter() - tic
    # Pipeline(FeatPropImputer(), milk).fit would train MILK on FeatProp's output for the
    # training items; they are complete, so that output is X_fit itself and the MILK inside
    # would be this one, bit for bit. Fit the imputer alone and share the model (checked).
    imputer = FeatPropImputer()
    X_seen = imputer.fit_transform(X_fit, Y_fit)
    if not np.array_equal(np.asarray(X_seen, np.float32), np.asarray(X_fit, np.float32)):
        raise RuntimeError("FeatPropImputer changed the complete training items; the model "
                           "cannot be shared with the pipeline.")
    estimators = {False: milk, True: Pipeline([("featprop", imputer), ("milk", milk)])}
    names = _modality_names(data)
    alone = modality_ranking(milk, X_test, Y_test, k=20, metrics=("ndcg", "recall"),
                             modality_names=names)
    diagnostic = {f"{metric}@20 {name} alone": float(value)
                  for metric in ("ndcg", "recall")
                  for name, value in zip(alone.names, alone[metric]) if name in names}
    rows = []
    for m, lost in enumerate(names):
        for share in shares:
            items = missing_items(X_test.shape[0], int(round(share * X_test.shape[0])), seed, m)
            X_share = lose_modality(X_test, data.modalities, m, items)
            for impute, estimator in estimators.items():
                scores = estimator.decision_function(X_share)
                rows.append({
                    "lost": lost, "share": share, "model": _label(model, impute),
                    "seed": seed, "recall@20": recall_at_k(Y_test, scores, k=20),
                    "ndcg@20": ndcg_at_k(Y_test, scores, k=20), **diagnostic,
                    "epochs": milk.n_epochs_, "seconds": seconds})
    return rows


def _modality_names(data):
    names = data.get("modality_names")
    return list(names) if names else [f"modality_{m}" for m in range(len(data.modalities))]


def robustness_experiment(data, *, seeds=5, shares=None, models=None, milk_params=None,
                          quick=False):
    """MILK's robustness as a curve: accuracy on new items as the share missing a modality
    grows, as an :class:`Experiment`.

    Per seed, the items are split as in the milk experiment (:func:`new_item_data`: 20% new
    items, half validation, half test) and each model is trained once on the training and
    validation items with full modalities, on the paper's schedule. The fitted model then
    scores the test items while a share of them (each value of ``shares``) lacks one modality,
    for each modality in turn: the test items missing it are the first of a permutation drawn
    per seed and modality (:func:`missing_items`), so they are nested across shares. Every
    user ranks the test items; Recall@20 and NDCG@20.

    Each model is scored alone (a missing modality takes MILK's fill, the training mean) and
    behind a :class:`~skmm.FeatPropImputer`, as ``Pipeline([FeatPropImputer(), model])``. The
    test items are new items without interactions, so FeatProp's propagation cannot reach
    them: they take its new-item rule, the mean of their nearest fitted items over the
    modality they still have. The training items are complete, so the imputer leaves them
    unchanged and the pipeline's model is the model trained alone (one fit serves both).

    Every row also records, for its fit, how well each modality's projection alone ranks the
    complete test items (:func:`~skmm.inspection.modality_ranking`): columns
    ``"ndcg@20 <modality> alone"`` and ``"recall@20 <modality> alone"``.

    Parameters
    ----------
    data : Bunch
        ``X``, ``modalities`` and the interactions, as :func:`load_data` returns; its
        ``modality_names`` name the modalities lost.
    seeds : int or sequence of int, default=5
        The seeds (an int ``n``: seeds 0 to ``n - 1``); each draws its own split, missing
        items and initialisation.
    shares : sequence of float in [0, 1], default=None
        Shares of the test items that lose the modality; None is
        :data:`ROBUSTNESS_SHARES` (0, 25, 50, 75, 100%).
    models : sequence of str, default=None
        Keys of :data:`MILK_MODELS`; None is :data:`ROBUSTNESS_MODELS` (MILK, DUIF-like).
    milk_params : dict, default=None
        Overrides of every model's :class:`~skmm.MILKRecommender` parameters.
    quick : bool, default=False
        30 epochs at most (unless ``milk_params`` says otherwise).

    Returns
    -------
    experiment : Experiment

    Examples
    --------
    >>> from skmm.reproduce import default_data, robustness_experiment
    >>> experiment = robustness_experiment(default_data(quick=True), seeds=2, quick=True)
    >>> len(experiment.tasks)  # one fit per seed and model
    4
    >>> len(experiment.tasks[0].rows)  # 2 modalities lost x 5 shares x with/without FeatProp
    20
    """
    seeds = check_seeds(seeds)
    shares = ROBUSTNESS_SHARES if shares is None else tuple(shares)
    if (not shares or not all(isinstance(s, Real) and not isinstance(s, bool) and 0 <= s <= 1
                              for s in shares) or len(set(shares)) != len(shares)):
        raise ValueError(f"shares must be distinct numbers in [0, 1], got {shares!r}.")
    shares = tuple(sorted(float(s) for s in shares))
    names = ROBUSTNESS_MODELS if models is None else tuple(models)
    if not names or any(n not in MILK_MODELS for n in names) or len(set(names)) != len(names):
        raise ValueError(f"models must be distinct keys of {list(MILK_MODELS)}, got "
                         f"{list(names)}.")
    params = {**({"max_epochs": 30} if quick else {}), **(milk_params or {})}
    modalities = _modality_names(data)
    labels = [_label(n, impute) for n in names for impute in (False, True)]
    tasks = tuple(
        Task({"seed": seed, "model": n},
             rows=tuple((lost, share, _label(n, impute), seed) for lost in modalities
                        for share in shares for impute in (False, True)))
        for seed in seeds for n in names)
    diagnostic = {f"{metric}@20 {name} alone": float
                  for metric in ("ndcg", "recall") for name in modalities}
    name = data.get("name", "data")
    report = Report(
        groups=("lost", "share", "model"),
        reading=("Reading: models trained on full modalities score the test new items while "
                 "a share of them lacks one modality (`lost`); alone, a missing modality "
                 "takes the training mean, + FeatProp takes its nearest fitted items over the "
                 "other modality. Mean and std over {seeds} (std: the seed-to-seed spread).",
                 data_reading(name, "MILK losing less than the DUIF-like model as the share "
                                    "grows")),
        order=lambda row: (modalities.index(row["lost"]), row["share"],
                           labels.index(row["model"])),
        plot=lambda rows: plot_robustness(rows, f"Robustness on {name}: new items missing "
                                                f"one modality", lost_order=modalities,
                                          model_order=labels))
    return Experiment(
        name="milk_robustness",
        run=partial(robustness_fit, models={n: MILK_MODELS[n] for n in names}, params=params,
                    shares=shares),
        tasks=tasks,
        columns={"lost": str, "share": float, "model": str, "seed": int, "recall@20": float,
                 "ndcg@20": float, **diagnostic, "epochs": int, "seconds": float},
        key=("lost", "share", "model", "seed"),
        config={"models": {n: MILK_MODELS[n] for n in names}, "schedule": MILK_SCHEDULE,
                "milk_params": params, "shares": list(shares),
                "protocol": {k: _PROTOCOL[k] for k in ("val_size", "test_size")},
                "estimators": _estimators(data, names, params)},
        report=report)


def reproduce_robustness(data, *, seeds=5, shares=None, models=None, milk_params=None,
                         out=None, if_exists="error", jobs=1, threads=None, progress=True,
                         plots=True):
    """MILK's robustness curve: :func:`robustness_experiment` run by :func:`run_experiments`.

    Parameters
    ----------
    data : Bunch
        As returned by :func:`load_data`.
    seeds, shares, models, milk_params
        See :func:`robustness_experiment`.
    out : str or path, default=None
        Folder for ``milk_robustness.csv`` (per-seed rows, written as each fit ends), its
        configuration, summary CSV and plot; nothing is written when None.
    if_exists, jobs, threads, progress, plots
        See :func:`run_experiments`.

    Returns
    -------
    rows : list of dict
        One per (modality lost, share, model, seed).
    """
    experiment = robustness_experiment(data, seeds=seeds, shares=shares, models=models,
                                       milk_params=milk_params)
    return run_experiments([experiment], data, out=out, if_exists=if_exists, jobs=jobs,
                           threads=threads, progress=progress, plots=plots)[experiment.name]


def plot_robustness(rows, title, *, lost_order=(), model_order=(), metric="ndcg@20"):
    """One panel per modality lost: ``metric`` (mean ± std over seeds) against the share of
    test items missing it, one line per model.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    plt = pyplot()
    _, table = summarize(rows, ("lost", "model", "share"), (metric,))
    lost = list(lost_order) + [v for v in dict.fromkeys(r[0] for r in table)
                               if v not in lost_order]
    models = list(model_order) + [v for v in dict.fromkeys(r[1] for r in table)
                                  if v not in model_order]
    fig, axes = plt.subplots(1, len(lost), figsize=(5.2 * len(lost), 4.6), sharey=True,
                             squeeze=False)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {m: cycle[i % len(cycle)] for i, m in enumerate(models)}
    handles = {}
    for ax, modality in zip(axes[0], lost):
        for j, model in enumerate(models):
            pts = sorted((r[2], r[3], r[4]) for r in table
                         if r[0] == modality and r[1] == model)
            if not pts:
                continue
            share, mean, std = zip(*pts)
            # Lines side by side by a point or two, so that error bars do not hide each other.
            offset = (j - (len(models) - 1) / 2) * 1.2
            handles[model] = ax.errorbar([100 * s + offset for s in share], mean, yerr=std,
                                         capsize=3, label=model, color=colors[model],
                                         # Behind an imputer: dashed, open squares.
                                         **({"linestyle": "--", "marker": "s",
                                             "markerfacecolor": "white"} if " + " in model
                                            else {"marker": "o"}))
        ax.set_title(f"{modality} lost", fontsize="medium")
        ax.set_xlabel(f"test items missing {modality} (%)")
        ax.set_xticks([0, 25, 50, 75, 100])
    axes[0][0].set_ylabel({"recall@20": "Recall@20", "ndcg@20": "NDCG@20"}.get(metric, metric))
    fig.suptitle(title)
    # In its own row under the title, outside the axes: it covers no point or error bar.
    fig.legend([handles[m] for m in models if m in handles],
               [m for m in models if m in handles], loc="upper center",
               ncol=min(len(handles), 4), bbox_to_anchor=(0.5, 0.935), fontsize="small",
               frameon=False)
    fig.text(0.5, 0.01, error_bar_note(rows), ha="center", va="bottom", fontsize="small")
    fig.tight_layout(rect=(0, 0.05, 1, 0.88))
    return fig
