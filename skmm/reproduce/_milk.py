"""The MILK experiment: new items, some of whose modalities are missing.

:data:`MILK_MODELS` is the registry of the compared models (a name and its
:class:`~skmm.MILKRecommender` parameters); each also runs behind FeatProp in MTMT.
"""

import time
from functools import partial

from ._data import interactions
from ._report import data_reading, plot_bars
from ._experiment import Experiment, Report, Task, check_seeds, estimator_params
from ._runner import run_experiments

MILK_SETTINGS = ("FTFT", "FTMT", "MTMT")
# The paper's training schedule: validate every 10 epochs, stop after 3 validations without a
# better NDCG@20 (the skmm defaults validate every epoch).
MILK_SCHEDULE = {"validation_interval": 10, "patience": 3}
#: Models compared: name -> MILKRecommender parameters. The DUIF-like content baseline is
#: MILK without environments, invariance and alignment.
MILK_MODELS = {
    "MILK": {},
    "DUIF-like": {"environments": "none", "invariance_weight": 0.0, "alignment_weight": 0.0},
}
# The protocol's sizes: new items (validation, test) and the share of items losing one modality.
_PROTOCOL = {"val_size": 0.1, "test_size": 0.1, "test_missing": 0.5, "train_missing": 0.3}


def new_item_data(data, seed):
    """The milk experiment's new-item split of ``data`` for ``seed``.

    20% of the items become new items (:func:`~skmm.datasets.new_item_split`, 10% validation,
    10% test) with the sizes of the milk experiment's protocol; a model is fitted on the
    training and validation items, and only the users with an interaction among them are
    scored.

    Returns
    -------
    split : dict
        ``fit_items``, ``val_items``, ``test_items`` (item indices), ``users`` (user
        indices), ``Y_fit`` and ``Y_test`` (interactions of the fitted and test items with
        those users).
    """
    import numpy as np

    from ..datasets import new_item_split

    Y = interactions(data)
    train, val, test = new_item_split(Y, test_size=_PROTOCOL["test_size"],
                                      val_size=_PROTOCOL["val_size"], random_state=seed)
    fit_items = np.union1d(train, val)
    users = np.flatnonzero(Y[fit_items].getnnz(axis=0) > 0)
    return {"fit_items": fit_items, "val_items": val, "test_items": test, "users": users,
            "Y_fit": Y[fit_items][:, users], "Y_test": Y[test][:, users]}


def milk_fit(data, *, seed, train, model, impute, models, params):
    """One MILK fit: ``model`` trained with full (``train="FT"``) or partly missing
    (``"MTMT"``) modalities, behind FeatProp if ``impute``; returns one row per test setting
    (FTFT and FTMT, or MTMT)."""
    from sklearn.pipeline import make_pipeline

    from ..datasets import simulate_missing
    from ..impute import FeatPropImputer
    from ..metrics import ndcg_at_k, recall_at_k
    from ..milk import MILKRecommender

    split = new_item_data(data, seed)
    fit_items, val, test = split["fit_items"], split["val_items"], split["test_items"]
    Y_fit, Y_test = split["Y_fit"], split["Y_test"]
    X_fit = data.X[fit_items]
    if train == "MTMT":
        X_fit, _ = simulate_missing(X_fit, data.modalities, _PROTOCOL["train_missing"],
                                    mode="one", random_state=1000 + seed)
    X_test_missing, _ = simulate_missing(data.X[test], data.modalities,
                                         _PROTOCOL["test_missing"], mode="one",
                                         random_state=seed)
    tic = time.perf_counter()
    milk = MILKRecommender(data.modalities, random_state=seed,
                           validation_fraction=val.size / fit_items.size,
                           **{**MILK_SCHEDULE, **models[model], **params})
    estimator = make_pipeline(FeatPropImputer(), milk) if impute else milk
    estimator.fit(X_fit, Y_fit)
    seconds = time.perf_counter() - tic
    tests = {"FTFT": data.X[test], "FTMT": X_test_missing} if train == "FT" else \
        {"MTMT": X_test_missing}
    rows = []
    for setting, X_test in tests.items():
        scores = estimator.decision_function(X_test)
        rows.append({
            "setting": setting, "model": _label(model, impute), "seed": seed,
            "recall@20": recall_at_k(Y_test, scores, k=20),
            "ndcg@20": ndcg_at_k(Y_test, scores, k=20),
            "epochs": milk.n_epochs_, "seconds": seconds,
        })
    return rows


def _estimators(data, names, params):
    """Every parameter of the estimators a run fits, for its configuration file."""
    from ..impute import FeatPropImputer
    from ..milk import MILKRecommender

    milk = {n: estimator_params(MILKRecommender(data.modalities,
                                                **{**MILK_SCHEDULE, **MILK_MODELS[n], **params}))
            for n in names}
    for p in milk.values():
        p.pop("validation_fraction")  # set per seed, from the split
    return {**milk, "FeatProp": estimator_params(FeatPropImputer())}


def _label(model, impute):
    return model + (" + FeatProp" if impute else "")


def milk_experiment(data, *, seeds=5, milk_params=None, models=None, quick=False):
    """The MILK experiment as an :class:`Experiment`: per seed, each model trained on full
    modalities (tested in FTFT and FTMT), then on partly missing ones (MTMT), alone and
    behind FeatProp.

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

    Parameters
    ----------
    data : Bunch
        ``X``, ``modalities`` and the interactions, as :func:`load_data` returns.
    seeds : int or sequence of int, default=5
        The seeds (an int ``n``: seeds 0 to ``n - 1``); each draws its own split, missing
        modalities and initialisation.
    milk_params : dict, default=None
        Overrides of every model's :class:`~skmm.MILKRecommender` parameters.
    models : sequence of str, default=None
        Keys of :data:`MILK_MODELS`; None runs them all.
    quick : bool, default=False
        30 epochs at most (unless ``milk_params`` says otherwise).

    Returns
    -------
    experiment : Experiment
    """
    seeds = check_seeds(seeds)
    names = tuple(MILK_MODELS) if models is None else tuple(models)
    if not names or any(n not in MILK_MODELS for n in names):
        raise ValueError(f"models must be among {list(MILK_MODELS)}, got {list(names)}.")
    params = {**({"max_epochs": 30} if quick else {}), **(milk_params or {})}
    tasks = []
    for seed in seeds:
        # A model trained on full modalities ("FT") is tested both on FTFT and on FTMT.
        tasks += [Task({"seed": seed, "train": "FT", "model": n, "impute": False},
                       rows=(("FTFT", n, seed), ("FTMT", n, seed))) for n in names]
        tasks += [Task({"seed": seed, "train": "MTMT", "model": n, "impute": impute},
                       rows=(("MTMT", _label(n, impute), seed),))
                  for n in names for impute in (False, True)]
    name = data.get("name", "data")
    report = Report(
        groups=("setting", "model"),
        reading=("Reading: MILK against the DUIF-like baseline (MILK without environments, "
                 "invariance and alignment) on new items, by setting (FT/MT: full/missing "
                 "modalities in training, then test); mean and std over {seeds} (std: the "
                 "seed-to-seed spread).",
                 data_reading(name, "MILK ahead of the DUIF-like model, most of all in FTMT "
                                    "and MTMT")),
        order=lambda row: MILK_SETTINGS.index(row["setting"]),
        plot=lambda rows: plot_bars(rows, f"MILK on {name}: new items, 20% split",
                                    groups_order=MILK_SETTINGS))
    return Experiment(
        name="milk",
        run=partial(milk_fit, models={n: MILK_MODELS[n] for n in names}, params=params),
        tasks=tuple(tasks),
        columns={"setting": str, "model": str, "seed": int, "recall@20": float,
                 "ndcg@20": float, "epochs": int, "seconds": float},
        key=("setting", "model", "seed"),
        config={"models": {n: MILK_MODELS[n] for n in names}, "schedule": MILK_SCHEDULE,
                "milk_params": params, "protocol": _PROTOCOL,
                "estimators": _estimators(data, names, params)},
        report=report)


def reproduce_milk(data, *, seeds=5, milk_params=None, models=None, out=None,
                   if_exists="error", jobs=1, threads=None, progress=True, plots=True):
    """The MILK experiment: new items, some of whose modalities are missing.

    The protocol is :func:`milk_experiment`'s; this runs it with :func:`run_experiments`.

    Parameters
    ----------
    data : Bunch
        As returned by :func:`load_data`.
    seeds, milk_params, models
        See :func:`milk_experiment`.
    out : str or path, default=None
        Folder for ``milk.csv`` (per-seed rows, written as each fit ends),
        ``milk_config.json``, ``milk_summary.csv`` and ``milk.png``; nothing is written when
        None.
    if_exists, jobs, threads, progress, plots
        See :func:`run_experiments`.

    Returns
    -------
    rows : list of dict
        One per (setting, model, seed): ``recall@20``, ``ndcg@20``, ``epochs``, ``seconds``.
    """
    experiment = milk_experiment(data, seeds=seeds, milk_params=milk_params, models=models)
    return run_experiments([experiment], data, out=out, if_exists=if_exists, jobs=jobs,
                           threads=threads, progress=progress, plots=plots)["milk"]
