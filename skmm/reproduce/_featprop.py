"""The FeatProp experiment: impute the items that lost every modality, then train a recommender.

Two registries make it extensible without touching the runner: :data:`IMPUTERS` (the
strategies compared) and :data:`DOWNSTREAM_MODELS` (the recommender trained on the imputed
features, ``--model`` on the command line).
"""

import time
from dataclasses import dataclass, field
from functools import partial
from numbers import Real
from typing import Callable

from ._report import data_reading, plot_curves
from ._experiment import Experiment, Report, Task, check_seeds, estimator_params
from ._runner import run_experiments

FEATPROP_RATES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
QUICK_RATES = (0.1, 0.3, 0.5, 0.7, 0.9)


@dataclass(frozen=True)
class DownstreamModel:
    """A recommender trained on the imputed features of the FeatProp experiment.

    Parameters
    ----------
    make : callable
        ``make(random_state, **params)`` returns an unfitted estimator with ``fit(X, Y)``
        (``Y`` the training interactions, items as rows) and ``decision_function(X)``
        returning the (n_items, n_users) scores of those items. Must pickle (module level).
    params : dict
        The experiment's parameters for it; the ``model_params`` of a run override them.
    label : str
        Its name in tables and plots.
    quick_params : dict, default={}
        Overrides for a ``--quick`` run.
    data_params : callable, default=None
        ``data_params(data)`` returns constructor parameters that depend on the data (e.g.
        the modalities' block sizes); module level, so that it pickles.
    fit_params : callable, default=None
        ``fit_params(data)`` returns keyword arguments of ``fit`` (e.g. a validation split).
    """

    make: Callable
    params: dict
    label: str
    quick_params: dict = field(default_factory=dict)
    data_params: Callable = None
    fit_params: Callable = None


def _vbpr(random_state, **params):
    from ..vbpr import VBPRRecommender

    return VBPRRecommender(device="auto", random_state=random_state, **params)


def _freedom(random_state, **params):
    from ..freedom import FREEDOMRecommender

    return FREEDOMRecommender(device="auto", random_state=random_state, **params)


def _freedom_data_params(data):
    """FREEDOM's modalities; with two, the FeatProp authors' graph weights (textual 0.9,
    visual 0.1) for the first and second modality (on Last.fm 2K: text, then audio)."""
    return {"modalities": list(data.modalities),
            "modality_weights": (0.9, 0.1) if len(data.modalities) == 2 else None}


def _validation_split(data):
    """Early stopping on the data's own validation interactions, as the papers' runs do."""
    return {"y_val": data.Y_val}


def _baseline(strategy, random_state):
    from ..impute import BaselineImputer

    if strategy == "zeros":  # the paper's name for the constant-0 fill
        return BaselineImputer(strategy="constant", fill_value=0.0)
    return BaselineImputer(strategy=strategy, random_state=random_state)


def _featprop(random_state):
    from ..impute import FeatPropImputer

    return FeatPropImputer()


#: Downstream models by ``--model`` name. The FeatProp paper's is VBPR, with its settings
#: (30 epochs, batch 1024, learning rate 0.005).
DOWNSTREAM_MODELS = {
    "vbpr": DownstreamModel(_vbpr, {"max_epochs": 30, "batch_size": 1024, "lr": 0.005},
                            "VBPR", quick_params={"max_epochs": 10}),
    # The FeatProp authors' FREEDOM run (their Elliot setting, freedom.md section 1.11):
    # batch 1024, at most 200 epochs, patience 5 on validation Recall@20, dropout 0.8,
    # modality loss weight 1e-5. zero_rows="rank_first" reproduces the reference's ordering of
    # all-zero rows, which the "zeros" baseline creates (its cosine is undefined).
    "freedom": DownstreamModel(
        _freedom, {"max_epochs": 200, "patience": 5, "batch_size": 1024, "lr": 1e-3,
                   "edge_dropout": 0.8, "modality_loss_weight": 1e-5, "n_neighbors": 10,
                   "zero_rows": "rank_first"},
        "FREEDOM", quick_params={"max_epochs": 10},
        data_params=_freedom_data_params, fit_params=_validation_split),
}

#: Imputation strategies compared: name -> ``make(random_state)`` returning an unfitted
#: transformer with ``fit_transform(X, Y)``. Must pickle (module level or partial).
IMPUTERS = {
    "zeros": partial(_baseline, "zeros"),
    "mean": partial(_baseline, "mean"),
    "random": partial(_baseline, "random"),
    "featprop": _featprop,
}
FEATPROP_STRATEGIES = tuple(IMPUTERS)


def featprop_fit(data, *, rate, strategy, seed, imputers, model, model_params):
    """One FeatProp fit: ``strategy`` imputes the items missing at ``rate``, ``model`` is
    trained and tested. Returns its one row."""
    from ..datasets import simulate_missing
    from ..metrics import ndcg_at_k, recall_at_k

    X_miss, _ = simulate_missing(data.X, data.modalities, rate, mode="all", random_state=seed)
    # Made before the clock starts: the first call imports the estimators' modules.
    imputer = imputers[strategy](seed)
    extra = model.data_params(data) if model.data_params else {}
    recommender = model.make(seed, **{**extra, **model_params})
    fit_params = model.fit_params(data) if model.fit_params else {}
    tic = time.perf_counter()
    X_imp = imputer.fit_transform(X_miss, data.Y_train)
    scores = recommender.fit(X_imp, data.Y_train, **fit_params).decision_function(X_imp)
    return [{
        "rate": rate, "strategy": strategy, "seed": seed,
        "recall@20": recall_at_k(data.Y_test, scores, k=20, exclude=data.Y_train),
        "ndcg@20": ndcg_at_k(data.Y_test, scores, k=20, exclude=data.Y_train),
        "seconds": time.perf_counter() - tic,
    }]


def featprop_experiment(data, *, seeds=5, rates=None, model="vbpr", model_params=None,
                        imputers=None, quick=False):
    """The FeatProp experiment as an :class:`Experiment`: one fit per (rate, strategy, seed).

    For every missing rate and seed, a fraction of the items loses every modality
    (:func:`~skmm.simulate_missing`, ``mode="all"``, seeded by the seed); each imputation
    strategy fills them, the downstream model is trained on the training interactions with
    the imputed features, and Recall@20 / NDCG@20 are measured on the test interactions by
    full ranking over all items, training interactions excluded.

    Parameters
    ----------
    data : Bunch
        ``X``, ``modalities``, ``Y_train`` and ``Y_test``, as :func:`load_data` returns.
    seeds : int or sequence of int, default=5
        The seeds (an int ``n``: seeds 0 to ``n - 1``); each draws its own missing items and
        model initialisation.
    rates : sequence of float in [0, 1), default=None
        Fractions of items that lose every modality; None is :data:`FEATPROP_RATES`
        (:data:`QUICK_RATES` when ``quick``).
    model : str, default="vbpr"
        A key of :data:`DOWNSTREAM_MODELS`.
    model_params : dict, default=None
        Overrides of the model's experiment parameters.
    imputers : sequence of str, default=None
        Keys of :data:`IMPUTERS`; None compares them all.
    quick : bool, default=False
        The quick rates and the model's ``quick_params``.

    Returns
    -------
    experiment : Experiment
    """
    seeds = check_seeds(seeds)
    rates = tuple(QUICK_RATES if quick else FEATPROP_RATES) if rates is None else tuple(rates)
    if not rates or not all(isinstance(r, Real) and 0 <= r < 1 for r in rates):
        raise ValueError(f"rates must be numbers in [0, 1), got {rates!r}.")
    if len(set(rates)) != len(rates):
        raise ValueError(f"rates must differ, got {rates!r}.")
    if model not in DOWNSTREAM_MODELS:
        raise ValueError(f"model must be one of {sorted(DOWNSTREAM_MODELS)}, got {model!r}.")
    spec = DOWNSTREAM_MODELS[model]
    params = {**spec.params, **(spec.quick_params if quick else {}), **(model_params or {})}
    strategies = tuple(IMPUTERS) if imputers is None else tuple(imputers)
    unknown = [s for s in strategies if s not in IMPUTERS]
    if unknown or not strategies:
        raise ValueError(f"imputers must be among {list(IMPUTERS)}, got {list(strategies)}.")
    tasks = tuple(Task({"rate": float(r), "strategy": s, "seed": seed},
                       rows=((float(r), s, seed),))
                  for r in rates for seed in seeds for s in strategies)
    name = data.get("name", "data")
    report = Report(
        groups=("rate", "strategy"),
        reading=(f"Reading: {spec.label} Recall@20 / NDCG@20 after each strategy fills the "
                 f"items that lost every modality, by missing rate; mean and std over "
                 f"{{seeds}} (std: the seed-to-seed spread, a smaller gap is noise).",
                 data_reading(name, "FeatProp ahead of the baselines")),
        plot=lambda rows: plot_curves(rows, f"FeatProp on {name}: {spec.label} after "
                                            f"imputation", order=strategies))
    return Experiment(
        name="featprop",
        run=partial(featprop_fit, imputers={s: IMPUTERS[s] for s in strategies}, model=spec,
                    model_params=params),
        tasks=tasks,
        columns={"rate": float, "strategy": str, "seed": int, "recall@20": float,
                 "ndcg@20": float, "seconds": float},
        key=("rate", "strategy", "seed"),
        config={"model": model, "model_params": params, "rates": list(rates),
                "imputers": list(strategies),
                "estimators": {"model": estimator_params(spec.make(0, **params)),
                               **{s: estimator_params(IMPUTERS[s](0)) for s in strategies}}},
        report=report)


def reproduce_featprop(data, *, seeds=5, rates=FEATPROP_RATES, model="vbpr", model_params=None,
                       imputers=None, out=None, if_exists="error", jobs=1, threads=None,
                       progress=True, plots=True):
    """The FeatProp experiment: impute items that lost all modalities, then train VBPR.

    The protocol is :func:`featprop_experiment`'s; this runs it with
    :func:`run_experiments`.

    Parameters
    ----------
    data : Bunch
        As returned by :func:`load_data`.
    seeds, rates, model, model_params, imputers
        See :func:`featprop_experiment`.
    out : str or path, default=None
        Folder for ``featprop.csv`` (per-seed rows, written as each fit ends),
        ``featprop_config.json``, ``featprop_summary.csv`` and ``featprop.png`` (Recall@20
        against the missing rate); nothing is written when None.
    if_exists, jobs, threads, progress, plots
        See :func:`run_experiments`.

    Returns
    -------
    rows : list of dict
        One per (rate, strategy, seed): ``recall@20``, ``ndcg@20``, ``seconds``.
    """
    experiment = featprop_experiment(data, seeds=seeds, rates=rates, model=model,
                                     model_params=model_params, imputers=imputers)
    return run_experiments([experiment], data, out=out, if_exists=if_exists, jobs=jobs,
                           threads=threads, progress=progress, plots=plots)["featprop"]
