"""The imputers experiment: every graph method x similarity against the mean, per modality.

For each missing protocol (FeatProp's: an item loses every modality; MILK's: it loses one),
missing rate and seed, each imputer fills the hidden entries and is scored per modality block
by :func:`~skmm.metrics.imputation_score` (centred cosine, 0 for the mean imputer by
construction, and MSE); optionally a downstream recommender (:data:`DOWNSTREAM_MODELS`) is
trained on the imputed features. A second, small experiment records the feature homophily
(:func:`~skmm.inspection.feature_homophily`) of each similarity's training graph per modality:
where it is near 0, no graph imputer can beat the mean.

:data:`IMPUTATION_METHODS` is the registry of what is compared. An entry is an
:class:`ImputationMethod`: a model-selection estimator (a cross-validated choice of method
and similarity) is one more entry with ``similarities=False``; its ``best_params_`` and
``best_score_`` then fill the rows' ``choice`` and ``choice_score`` columns, which the fixed
methods leave empty. The registered one is ``"cv"``, :class:`~skmm.impute.GraphImputerCV`
over :data:`CV_GRID`; it is not run by default (:data:`DEFAULT_IMPUTERS`).
"""

import json
import time
from dataclasses import dataclass
from functools import partial
from numbers import Real
from typing import Callable

from ._experiment import Experiment, Report, Task, check_seeds, estimator_params
from ._featprop import DOWNSTREAM_MODELS, FEATPROP_RATES, QUICK_RATES
from ._report import data_reading, error_bar_note, pyplot, summarize
from ._runner import run_experiments

PROTOCOLS = {"all": "all", "one": "one"}  # name -> simulate_missing's mode
PROTOCOL_LABELS = {"all": "FeatProp protocol (an item loses every modality)",
                   "one": "MILK protocol (an item loses one modality)"}
SIMILARITY_CHOICES = ("count", "cosine", "asymmetric_cosine", "jaccard", "tfidf", "bm25")
DEFAULT_SIMILARITIES = ("count", "cosine", "jaccard")
QUICK_SIMILARITIES = ("count", "cosine")
NO_SIMILARITY = "-"  # the similarity cell of an imputer that uses no graph
# Imputation quality, per modality block (imputation_score's metrics). The centred cosine is
# invariant to scaling about the centre, so it cannot see an imputation shrunk towards 0; the
# MSE and its skill over the mean (1 - MSE / MSE of the mean imputer, 0 for the mean) can.
QUALITY = ("centred_cosine", "mse", "mse_skill")


@dataclass(frozen=True)
class ImputationMethod:
    """An imputer compared by the imputers experiment.

    Parameters
    ----------
    make : callable
        ``make(similarity, random_state)`` returns an unfitted transformer with
        ``fit_transform(X, Y)`` (``Y`` the training interactions, items as rows); module level
        or a partial, so that it pickles. ``similarity`` is None when ``similarities`` is
        False.
    similarities : bool
        Whether it runs once per similarity of the experiment (a graph imputer) or once
        (the mean; an estimator that chooses the similarity itself).
    label : str
        Its name in the reading and the plot's legend.
    data_params : callable, default=None
        ``data_params(data)`` returns keyword arguments of ``make`` read off the data (the
        modality block sizes of a model-selection imputer, which hides and scores by block);
        None passes none.
    """

    make: Callable
    similarities: bool
    label: str
    data_params: Callable = None

    def build(self, data, similarity, random_state):
        """``make(similarity, random_state, **data_params(data))``."""
        extra = self.data_params(data) if self.data_params else {}
        return self.make(similarity, random_state, **extra)


def _mean(similarity, random_state):
    from ..impute import BaselineImputer

    return BaselineImputer(strategy="mean")


def _graph(method, similarity, random_state):
    from ..impute import GraphImputer

    return GraphImputer(method=method, similarity=similarity)


#: The grid of the ``"cv"`` entry (:class:`~skmm.impute.GraphImputerCV`'s lists), chosen to
#: cost a few seconds per fit on Last.fm 2K (108 settings; 1,425 items: 3.5 s on one CPU
#: thread of a busy 2-core machine):
#:
#: * ``methods``: NeighMean and MultiHop. PPR and heat build one rewired operator per ``k``
#:   (and ``alpha`` / ``t``), far costlier than MultiHop's normalised adjacency, and lost to
#:   the mean with co-count graphs and to MultiHop with the others in the fixed-setting run;
#: * ``similarities``: those of the fixed-setting run, the paper's co-count and the two
#:   normalised ones that won there (one neighbour list each, at ``max(n_neighbors)``);
#: * ``n_neighbors``: 10, 20 (GraphImputer's default), 40, a factor of 2 apart;
#: * ``n_iter``: 0 to 10. Step 0 propagates nothing, so every missing entry takes the
#:   fallback: it is the mean imputer, which lets the choice fall back to the mean where no
#:   graph setting beats it (most items missing). The reset propagation needs more steps the
#:   more rows miss (it starts them at 0 and MSE punishes the shrinkage); its masked-recovery
#:   score levels off by 8-10 steps on Last.fm, and one run of ``max(n_iter)`` steps serves
#:   every step count, so the longer list costs little;
#: * ``metric="mse_skill"``: per modality ``1 - MSE / MSE of the mean``, averaged over the
#:   modalities with equal weight. It is scale-free across blocks (``neg_mse`` would be ruled
#:   by the block with the largest values) and sees the shrinkage the centred cosine cannot,
#:   which at high missing rates makes MultiHop many times worse than the mean in MSE while
#:   its centred cosine stays positive;
#: * ``n_repeats=6`` hidden copies of 5% of the observed (item, modality) blocks
#:   (``fraction=0.05``, ``mode="modality"``: whole blocks, as the protocols hide them),
#:   seeded by the row's seed. An item's last observed block is never hidden, so under the
#:   MILK protocol at rate ``r`` (two modalities) only the second blocks of the ``1 - r``
#:   complete items can be: a share ``(1 - r) / (2 - r)`` of the observed blocks, 9.1% at
#:   90%, where 10% is refused. 5% allows rates up to about 95% and adds less missingness to
#:   the data than 10%; six copies score as many blocks as three of 10%.
CV_GRID = {"methods": ("neighmean", "multihop"), "similarities": ("count", "cosine", "jaccard"),
           "n_neighbors": (10, 20, 40), "n_iter": tuple(range(11)), "metric": "mse_skill",
           "n_repeats": 6, "fraction": 0.05}


def cv_grid_text():
    """:data:`CV_GRID` in words, for ``--help``."""
    g = CV_GRID
    steps = g["n_iter"]
    return (f"GraphImputerCV over {', '.join(g['methods'])} x {', '.join(g['similarities'])} x "
            f"{', '.join(map(str, g['n_neighbors']))} neighbours x {min(steps)}-{max(steps)} "
            f"steps, chosen by {g['metric']} on {g['n_repeats']} hidden copies of "
            f"{g['fraction']:.0%} of the observed blocks")


def _cv(similarity, random_state, modalities=None):
    from ..impute import GraphImputerCV

    return GraphImputerCV(**CV_GRID, modalities=modalities, mode="modality",
                          random_state=random_state)


def _block_sizes(data):
    return {"modalities": [int(m) for m in data.modalities]}


#: The imputers compared, by ``--imputers`` name. The graph methods run with GraphImputer's
#: defaults (20 neighbours, 3 steps): ``multihop`` with ``count`` is the FeatProp paper's
#: default, FeatPropImputer(). ``cv`` is GraphImputerCV over :data:`CV_GRID`, refitted with
#: its choice (the ``choice`` and ``choice_score`` columns).
IMPUTATION_METHODS = {
    "mean": ImputationMethod(_mean, False, "mean"),
    "neighmean": ImputationMethod(partial(_graph, "neighmean"), True, "NeighMean"),
    "multihop": ImputationMethod(partial(_graph, "multihop"), True, "MultiHop (FeatProp)"),
    "ppr": ImputationMethod(partial(_graph, "ppr"), True, "PPR"),
    "heat": ImputationMethod(partial(_graph, "heat"), True, "heat"),
    "cv": ImputationMethod(_cv, False, "GraphImputerCV", data_params=_block_sizes),
}

#: What ``imputers=None`` runs: the fixed settings, not ``cv``. The CV answers another question
#: (which setting to pick, not how the settings compare); it would add about 70% to the
#: default run on Last.fm 2K (3.5 s a fit on a busy 2-core machine, against 5.2 s for the 13
#: fixed fits of a (protocol, rate, seed)), more with larger catalogues; and it would change
#: the configuration of the documented runs, so that ``--resume`` would refuse their folders.
#: ``--imputers ... cv`` adds it.
DEFAULT_IMPUTERS = ("mean", "neighmean", "multihop", "ppr", "heat")


def modality_names(data):
    """The data's modality names (``modality_0 ...`` when it has none), for column names."""
    names = data.get("modality_names")
    return list(names) if names else [f"modality_{i}" for i in range(len(data.modalities))]


def _choice(imputer):
    """What a model-selection imputer chose (``best_params_``, ``best_score_``); empty for a
    fixed method."""
    params = getattr(imputer, "best_params_", None)
    if params is None:
        return "", float("nan")
    return (json.dumps(params, sort_keys=True, default=repr),
            float(getattr(imputer, "best_score_", float("nan"))))


def imputers_fit(data, *, protocol, rate, method, similarity, seed, methods, names, model,
                 model_params):
    """One fit: ``method`` imputes the entries hidden at ``rate`` under ``protocol``; its
    imputation quality per modality (and the downstream model's ranking quality). Returns
    its one row."""
    from ..datasets import simulate_missing
    from ..metrics import imputation_score

    X_miss, _ = simulate_missing(data.X, data.modalities, rate, mode=PROTOCOLS[protocol],
                                 random_state=seed)
    imputer = methods[method].build(data, None if similarity == NO_SIMILARITY else similarity,
                                    seed)
    tic = time.perf_counter()
    X_imp = imputer.fit_transform(X_miss, data.Y_train)
    seconds = time.perf_counter() - tic
    row = {"protocol": protocol, "rate": rate, "method": method, "similarity": similarity,
           "seed": seed}
    for metric in QUALITY:
        scores = imputation_score(data.X, X_imp, X_miss, metric=metric,
                                  modalities=data.modalities, multioutput="raw_values")
        row.update({f"{metric} {n}": float(s) for n, s in zip(names, scores)})
    row["choice"], row["choice_score"] = _choice(imputer)
    if model is not None:
        row.update(_downstream(data, X_imp, model, model_params, seed))
    row["seconds"] = seconds
    return [row]


def _downstream(data, X_imp, model, model_params, seed):
    from ..metrics import ndcg_at_k, recall_at_k

    extra = model.data_params(data) if model.data_params else {}
    recommender = model.make(seed, **{**extra, **model_params})
    fit_params = model.fit_params(data) if model.fit_params else {}
    scores = recommender.fit(X_imp, data.Y_train, **fit_params).decision_function(X_imp)
    return {"recall@20": recall_at_k(data.Y_test, scores, k=20, exclude=data.Y_train),
            "ndcg@20": ndcg_at_k(data.Y_test, scores, k=20, exclude=data.Y_train)}


def homophily_fit(data, *, similarity, seed, names, n_neighbors, n_permutations):
    """Feature homophily of the complete features on ``similarity``'s training graph (the
    graph GraphImputer builds from ``Y_train``), per modality; ``seed`` seeds the
    permutation baseline. Returns its one row."""
    from ..impute import GraphImputer
    from ..inspection import feature_homophily

    # The imputer's own graph, so that it is the graph the imputation ran on.
    graph = GraphImputer(similarity=similarity, n_neighbors=n_neighbors, device="cpu").fit(
        data.X, data.Y_train).graph_
    h = feature_homophily(data.X, graph, modalities=data.modalities, kind="graph",
                          n_permutations=n_permutations, random_state=seed)
    row = {"similarity": similarity, "seed": seed}
    for i, n in enumerate(names):
        row[f"homophily {n}"] = float(h.homophily[i])
        row[f"null {n}"] = float(h.baseline_mean[i])
        row[f"edges {n}"] = int(h.n_edges[i])
    return [row]


def _check_choices(name, given, allowed):
    given = tuple(given)
    unknown = [g for g in given if g not in allowed]
    if unknown or not given or len(set(given)) != len(given):
        raise ValueError(f"{name} must be distinct names among {', '.join(allowed)}, got "
                         f"{' '.join(map(str, given)) or 'none'}.")
    return given


def imputers_experiment(data, *, seeds=5, rates=None, imputers=None, similarities=None,
                        protocol="both", downstream="none", model_params=None, quick=False):
    """The imputers experiment and its homophily companion, as two :class:`Experiment`.

    For every protocol, missing rate and seed, :func:`~skmm.datasets.simulate_missing` hides
    a fraction of the items' modalities (``mode="all"``, the FeatProp protocol: an item loses
    every modality; ``mode="one"``, MILK's: it loses one drawn at random), seeded by the seed;
    each imputer (each graph method once per similarity) fills them from the training
    interactions. A row holds, per modality block, the centred cosine and the MSE of the
    hidden entries (:func:`~skmm.metrics.imputation_score`; the mean imputer scores a centred
    cosine of exactly 0), and with a ``downstream`` model its Recall@20 / NDCG@20 after
    training on the imputed features (as in :func:`featprop_experiment`).

    The homophily experiment has one row per (similarity, seed): the feature homophily of
    each modality on that similarity's graph (complete features; the graph and the features
    do not depend on the seed, its permutation baseline does).

    Parameters
    ----------
    data : Bunch
        ``X``, ``modalities``, ``Y_train`` (and ``Y_test`` with a downstream model), as
        :func:`load_data` returns.
    seeds : int or sequence of int, default=5
        The seeds (an int ``n``: seeds 0 to ``n - 1``).
    rates : sequence of float in [0, 1), default=None
        Fractions of items that lose modalities; None is :data:`FEATPROP_RATES`
        (:data:`QUICK_RATES` when ``quick``).
    imputers : sequence of str, default=None
        Keys of :data:`IMPUTATION_METHODS`; None is :data:`DEFAULT_IMPUTERS` (all but
        ``"cv"``).
    similarities : sequence of str, default=None
        Similarities of the graph methods' co-interaction graph; None is count, cosine and
        jaccard (count and cosine when ``quick``).
    protocol : {"all", "one", "both"}, default="both"
        The missing protocol(s).
    downstream : {"none", "vbpr", "freedom"}, default="none"
        A recommender trained on each imputation (the expensive part: one training per row).
    model_params : dict, default=None
        Overrides of the downstream model's experiment parameters.
    quick : bool, default=False
        The quick rates and similarities and the model's ``quick_params``.

    Returns
    -------
    experiments : tuple of Experiment
        ``imputers`` and ``imputers_homophily``.
    """
    from ..impute import GraphImputer

    seeds = check_seeds(seeds)
    rates = tuple(QUICK_RATES if quick else FEATPROP_RATES) if rates is None else tuple(rates)
    if not rates or not all(isinstance(r, Real) and 0 <= r < 1 for r in rates):
        raise ValueError(f"rates must be numbers in [0, 1), got {rates!r}.")
    if len(set(rates)) != len(rates):
        raise ValueError(f"rates must differ, got {rates!r}.")
    registered = tuple(IMPUTATION_METHODS)  # now: an entry may be registered after import
    methods = _check_choices("imputers", DEFAULT_IMPUTERS if imputers is None else imputers,
                             registered)
    sims = _check_choices("similarities", (QUICK_SIMILARITIES if quick else
                                           DEFAULT_SIMILARITIES)
                          if similarities is None else similarities, SIMILARITY_CHOICES)
    if protocol not in ("all", "one", "both"):
        raise ValueError(f"protocol must be 'all', 'one' or 'both', got {protocol!r}.")
    protocols = ("all", "one") if protocol == "both" else (protocol,)
    if downstream != "none" and downstream not in DOWNSTREAM_MODELS:
        raise ValueError(f"downstream must be 'none' or one of {sorted(DOWNSTREAM_MODELS)}, "
                         f"got {downstream!r}.")
    spec = None if downstream == "none" else DOWNSTREAM_MODELS[downstream]
    params = {} if spec is None else {**spec.params, **(spec.quick_params if quick else {}),
                                      **(model_params or {})}
    names = modality_names(data)
    pairs = [(m, s) for m in methods
             for s in (sims if IMPUTATION_METHODS[m].similarities else (NO_SIMILARITY,))]
    tasks = tuple(Task({"protocol": p, "rate": float(r), "method": m, "similarity": s,
                        "seed": seed}, rows=((p, float(r), m, s, seed),))
                  for p in protocols for r in rates for seed in seeds for m, s in pairs)
    quality = [f"{metric} {n}" for metric in QUALITY for n in names]
    ranking = [] if spec is None else ["recall@20", "ndcg@20"]
    columns = {"protocol": str, "rate": float, "method": str, "similarity": str, "seed": int,
               **{c: float for c in quality}, "choice": str, "choice_score": float,
               **{c: float for c in ranking}, "seconds": float}
    name = data.get("name", "data")
    rank = {k: i for i, k in enumerate(protocols + methods + (NO_SIMILARITY,) + sims)}
    report = Report(
        groups=("protocol", "rate", "method", "similarity"),
        reading=("Reading: centred cosine (0 = the mean imputer, by construction; 1 = "
                 "perfect; blind to scale), MSE and MSE skill (1 - MSE / the mean imputer's: "
                 "> 0 beats the mean) of the hidden entries per modality"
                 + (f", then {spec.label} Recall@20 / NDCG@20" if spec else "")
                 + "; protocol all: an item loses every modality, one: it loses one; mean "
                   "and std over {seeds} (std: the seed-to-seed spread).",
                 data_reading(name, "graph imputation ahead of the mean where the graph is "
                                    "homophilous; the homophily table says where")),
        metrics=tuple(quality + ranking),
        order=lambda r: (rank[r["protocol"]], r["rate"], rank[r["method"]],
                         rank[r["similarity"]], r["seed"]),
        plot=partial(plot_imputers, title=f"Imputation quality on {name}", names=names,
                     methods=methods, similarities=sims, protocols=protocols))
    estimators = {f"{m}/{s}": estimator_params(IMPUTATION_METHODS[m].build(
        data, None if s == NO_SIMILARITY else s, 0)) for m, s in pairs}
    if spec is not None:
        estimators["model"] = estimator_params(spec.make(0, **params))
    main = Experiment(
        name="imputers",
        run=partial(imputers_fit, methods={m: IMPUTATION_METHODS[m] for m in methods},
                    names=names, model=spec, model_params=params),
        tasks=tasks, columns=columns, key=("protocol", "rate", "method", "similarity", "seed"),
        config={"protocols": list(protocols), "rates": list(rates), "imputers": list(methods),
                "similarities": list(sims), "downstream": downstream, "model_params": params,
                "modality_names": names, "estimators": estimators},
        report=report)

    n_neighbors = GraphImputer().n_neighbors
    n_permutations = 20
    h_metrics = [f"{kind} {n}" for n in names for kind in ("homophily", "null")]
    homophily = Experiment(
        name="imputers_homophily",
        run=partial(homophily_fit, names=names, n_neighbors=n_neighbors,
                    n_permutations=n_permutations),
        tasks=tuple(Task({"similarity": s, "seed": seed}, rows=((s, seed),))
                    for seed in seeds for s in sims),
        columns={"similarity": str, "seed": int,
                 **{f"{kind} {n}": (int if kind == "edges" else float)
                    for n in names for kind in ("homophily", "null", "edges")}},
        key=("similarity", "seed"),
        config={"similarities": list(sims), "n_neighbors": n_neighbors,
                "n_permutations": n_permutations, "modality_names": names},
        report=Report(
            groups=("similarity",),
            reading=(f"Reading: feature homophily h of the complete features over the edges "
                     f"of each similarity's {n_neighbors}-neighbour training graph, per "
                     f"modality, and its permutation baseline (null, about 0); h does not "
                     f"depend on the seed, only the baseline does ({{seeds}}).",
                     "Near 0, graph neighbours carry no information about an item's "
                     "features and a graph imputer cannot beat the mean; the larger h, the "
                     "more a graph imputer can gain."),
            metrics=tuple(h_metrics)))
    return main, homophily


_SKILL_FLOOR = -1.0  # MSE skill is clipped here in the plot: below, the mean is far better


def plot_imputers(rows, *, title, names, methods, similarities, protocols):
    """Centred cosine and MSE skill (mean ± std over seeds) against the missing rate: one
    pair of panel rows per (protocol, modality), one column per similarity, one line per
    method; the mean imputer is the dashed line at 0 (both of its scores, by construction).

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    plt = pyplot()
    graph_methods = [m for m in methods if IMPUTATION_METHODS[m].similarities]
    other = [m for m in methods if not IMPUTATION_METHODS[m].similarities and m != "mean"]
    panels = [(p, n, q) for p in protocols for n in names
              for q in ("centred_cosine", "mse_skill")]
    colors = dict(zip(graph_methods + other, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, axes = plt.subplots(len(panels), len(similarities), sharex=True, sharey="row",
                             figsize=(3.4 * len(similarities) + 1.2, 2.2 * len(panels) + 1.2),
                             squeeze=False)
    for i, (p, n, q) in enumerate(panels):
        metric = f"{q} {n}"
        _, table = summarize([r for r in rows if r["protocol"] == p],
                             ("method", "similarity", "rate"), (metric,))
        for j, s in enumerate(similarities):
            ax = axes[i][j]
            if "mean" in methods:
                ax.axhline(0.0, color="grey", linestyle="--", linewidth=1, label="mean")
            for m in graph_methods + other:
                pts = sorted((t[2], t[3], t[4]) for t in table if t[0] == m and
                             t[1] == (s if IMPUTATION_METHODS[m].similarities
                                      else NO_SIMILARITY))
                if pts:
                    xs, mean, std = zip(*pts)
                    if q == "mse_skill":
                        mean = [max(v, _SKILL_FLOOR) for v in mean]
                        std = [0.0 if v <= _SKILL_FLOOR else e for v, e in zip(mean, std)]
                    ax.errorbar([100 * v for v in xs], mean, yerr=std, marker="o",
                                markersize=3, capsize=2, color=colors[m],
                                label=IMPUTATION_METHODS[m].label)
            if i == 0:
                ax.set_title(f"similarity: {s}", fontsize="medium")
            if q == "mse_skill" and ax.get_ylim()[0] < _SKILL_FLOOR:
                ax.set_ylim(bottom=_SKILL_FLOOR - 0.05)  # the row's axes are shared
            if j == 0:
                label = "centred cosine" if q == "centred_cosine" else "MSE skill"
                ax.set_ylabel(f"{p}: {n}\n{label}", fontsize="small")
            if i == len(panels) - 1:
                ax.set_xlabel("items missing (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    height = fig.get_figheight()
    # Under the title, outside the axes, so that it covers no point.
    fig.legend(handles, labels, loc="upper center", ncol=len(handles), frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.75 / height), fontsize="small")
    fig.suptitle(f"{title}\nrows: protocol (all = an item loses every modality, one = it "
                 f"loses one), modality, score", fontsize="medium")
    fig.text(0.5, 0.005, f"{error_bar_note(rows)};\nMSE skill = 1 - MSE / MSE of the mean "
                         f"imputer, clipped at {_SKILL_FLOOR:g}", ha="center", va="bottom",
             fontsize="small")
    fig.tight_layout(rect=(0, 0.5 / height, 1, 1 - 1.0 / height))
    return fig


def reproduce_imputers(data, *, seeds=5, rates=None, imputers=None, similarities=None,
                       protocol="both", downstream="none", model_params=None, out=None,
                       if_exists="error", jobs=1, threads=None, progress=True, plots=True):
    """The imputers experiment: every graph method x similarity against the mean.

    The protocol is :func:`imputers_experiment`'s; this runs it (and its homophily
    companion) with :func:`run_experiments`.

    Parameters
    ----------
    data : Bunch
        As returned by :func:`load_data`.
    seeds, rates, imputers, similarities, protocol, downstream, model_params
        See :func:`imputers_experiment`.
    out : str or path, default=None
        Folder for ``imputers.csv`` (per-seed rows, written as each fit ends),
        ``imputers_config.json``, ``imputers_summary.csv``, ``imputers.png`` (centred cosine
        against the missing rate) and the ``imputers_homophily`` files; nothing is written
        when None.
    if_exists, jobs, threads, progress, plots
        See :func:`run_experiments`.

    Returns
    -------
    rows : dict
        ``"imputers"``: one row per (protocol, rate, method, similarity, seed);
        ``"imputers_homophily"``: one per (similarity, seed).
    """
    experiments = imputers_experiment(data, seeds=seeds, rates=rates, imputers=imputers,
                                      similarities=similarities, protocol=protocol,
                                      downstream=downstream, model_params=model_params)
    return run_experiments(list(experiments), data, out=out, if_exists=if_exists, jobs=jobs,
                           threads=threads, progress=progress, plots=plots)
