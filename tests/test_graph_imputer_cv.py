"""GraphImputerCV: its shared-work scores against separate GraphImputer fits, scored by the
self-supervised scorer; the choice, the refit, the results layout, the argument checks."""

import pickle
import warnings

import numpy as np
import pytest

import skmm._propagator
import skmm.impute._graph_cv as graph_cv
from skmm import GraphImputer, GraphImputerCV
from skmm.datasets import hide_observed
from skmm.metrics import imputation_score, make_imputation_scorer

from .conftest import random_interactions

MODALITIES = [3, 2]


def _data(mask="blocks", seed=0, n_items=60, dtype=np.float64):
    """Interactions with isolated items (the last 3) and two components; features with whole
    blocks missing (``"blocks"``) or single entries (``"entries"``)."""
    Y = random_interactions(n_items, 40, 0.15, seed=seed, n_isolated=3, n_blocks=2)
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=1.0, size=(n_items, sum(MODALITIES)))
    # A shared signal along the graph's communities, so that settings differ in quality.
    X += np.repeat(rng.normal(size=(2, 1)), [n_items // 2, n_items - n_items // 2], axis=0)
    if mask == "blocks":
        missing = np.zeros(X.shape, bool)
        which = rng.integers(0, 2, n_items)
        hit = rng.random(n_items) < 0.35
        missing[hit & (which == 0), :3] = True
        missing[hit & (which == 1), 3:] = True
    else:
        missing = rng.random(X.shape) < 0.3
    missing[0] = False  # every column keeps an observed value
    X[missing] = np.nan
    return X.astype(dtype), Y


def _reference_scores(cv, X, Y, n_repeats):
    """For every setting of ``cv``: the scorer on a separately fitted GraphImputer, per hidden
    copy and in the mean (``n_repeats`` copies)."""
    common = dict(modalities=cv.modalities, mode=cv.mode, fraction=cv.fraction,
                  metric=cv.metric, random_state=cv.random_state, stratify=cv.stratify,
                  n_bins=cv.n_bins)
    mean_scorer = make_imputation_scorer(n_repeats=n_repeats, **common)
    first_scorer = make_imputation_scorer(n_repeats=1, **common)
    means, firsts = [], []
    for params in cv.cv_results_["params"]:
        est = GraphImputer(**{name: getattr(cv, name) for name in graph_cv._PASSTHROUGH},
                           **params)
        means.append(mean_scorer(est, X, Y))
        firsts.append(first_scorer(est, X, Y))
    return np.array(means), np.array(firsts)


GRID = dict(n_neighbors=(2, 5, 9), n_iter=(0, 1, 3, 6), alphas=(0.1, 0.4), ts=(1.0, 5.0))


@pytest.mark.parametrize("case", [
    dict(),
    dict(paper_compat=True),
    dict(symmetric=True, rank="relative", prune_tol=0.0),
    dict(similarities=("cosine", "jaccard", "count"), metric="neg_mse"),
    dict(mask="entries", mode="entry", metric="mse_skill", dtype="float64"),
    dict(X_dtype=np.float32, fallback="constant", fill_value=-1.0),
    dict(stratify="degree"),
    dict(mask="entries", mode="entry", stratify="degree", metric="neg_mse"),
    dict(stratify="degree", n_bins=2),
])
def test_scores_equal_separate_fits_of_each_setting(case):
    """The sharing (one neighbour list, one operator, one propagation read after every step)
    changes no score: each equals the scorer's on a GraphImputer fitted for that setting
    alone, exactly."""
    case = dict(case)
    X, Y = _data(case.pop("mask", "blocks"), dtype=case.pop("X_dtype", np.float64))
    sims = case.pop("similarities", ("count",) if case.get("paper_compat") else
                    ("count", "cosine"))
    cv = GraphImputerCV(similarities=sims, modalities=MODALITIES, n_repeats=2, device="cpu",
                        **GRID, **case).fit(X, Y)
    n = len(sims) * 3 * (1 + 4 + 2 * 4 + 2 * 4)
    assert len(cv.cv_results_["params"]) == n
    means, firsts = _reference_scores(cv, X, Y, 2)
    np.testing.assert_array_equal(cv.cv_results_["mean_test_score"], means)
    np.testing.assert_array_equal(cv.cv_results_["split0_test_score"], firsts)
    assert np.isfinite(means).all() and np.unique(means).size > n // 4  # settings differ


@pytest.mark.parametrize("loop", ["tall", "torch"])
def test_scores_equal_on_the_whole_group_path(monkeypatch, loop):
    """The loops over the whole column group are read after every step too: the CPU's (row
    chunks on threads, forced with a cache of zero bytes) and the torch one that a GPU runs
    (one product per step, run here on the CPU)."""
    monkeypatch.setattr(skmm._propagator, "_cache_bytes", lambda: 0)
    if loop == "torch":
        monkeypatch.setattr(skmm._propagator.ColumnPropagator, "_propagate_tall",
                            skmm._propagator.ColumnPropagator._propagate_whole)
    X, Y = _data("entries", seed=3)
    cv = GraphImputerCV(methods=("multihop", "ppr"), n_neighbors=(4, 8), n_iter=(1, 2, 5),
                        modalities=MODALITIES, n_repeats=2, device="cpu").fit(X, Y)
    means, _ = _reference_scores(cv, X, Y, 2)
    np.testing.assert_array_equal(cv.cv_results_["mean_test_score"], means)


def test_one_neighbour_list_per_similarity_one_propagation_per_graph(monkeypatch):
    calls = {"lists": 0, "runs": 0}
    lists, run = graph_cv.neighbour_lists, graph_cv._run

    def count_lists(*args, **kwargs):
        calls["lists"] += 1
        return lists(*args, **kwargs)

    def count_runs(*args, **kwargs):
        calls["runs"] += 1
        return run(*args, **kwargs)

    monkeypatch.setattr(graph_cv, "neighbour_lists", count_lists)
    monkeypatch.setattr(graph_cv, "_run", count_runs)
    X, Y = _data()
    GraphImputerCV(similarities=("count", "cosine"), n_neighbors=(3, 6, 9),
                   n_iter=tuple(range(1, 11)), alphas=(0.1, 0.2), n_repeats=3,
                   modalities=MODALITIES, device="cpu").fit(X, Y)
    assert calls["lists"] == 2
    # Per similarity and k: multihop, ppr at two alphas, heat at one t; 3 copies each.
    assert calls["runs"] == 2 * 3 * (1 + 2 + 1) * 3


def test_best_is_the_argmax_and_the_refit_its_graph_imputer():
    X, Y = _data(seed=1)
    X_before = X.copy()
    cv = GraphImputerCV(n_neighbors=(2, 6), n_iter=(1, 4), modalities=MODALITIES,
                        n_repeats=2, device="cpu")
    out = cv.fit_transform(X, Y)
    np.testing.assert_array_equal(X, X_before)  # the input is not changed
    res = cv.cv_results_
    mean = res["mean_test_score"]
    assert cv.best_index_ == int(np.flatnonzero(mean == mean.max())[0])
    assert cv.best_score_ == mean.max()
    assert cv.best_params_ == res["params"][cv.best_index_]
    assert res["rank_test_score"][cv.best_index_] == 1
    # rank: 1 + the number of strictly better settings
    np.testing.assert_array_equal(res["rank_test_score"],
                                  [1 + (mean > m).sum() for m in mean])
    ref = GraphImputer(**cv.best_params_, device="cpu").fit_transform(X, Y)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(cv.transform(X), ref)
    assert isinstance(cv.best_estimator_, GraphImputer)
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(out[observed], X[observed])
    # std over the copies
    splits = np.stack([res["split0_test_score"], res["split1_test_score"]], axis=1)
    np.testing.assert_allclose(res["std_test_score"], splits.std(axis=1), rtol=0, atol=0)


def test_ties_go_to_the_first_setting_in_grid_order():
    """k beyond the number of co-interacted items gives the same graph, hence equal scores:
    the smaller k, first in the grid, is chosen."""
    X, Y = _data(seed=2)
    cv = GraphImputerCV(methods=("neighmean",), n_neighbors=(100, 200, 300),
                        modalities=MODALITIES, n_repeats=1, device="cpu").fit(X, Y)
    mean = cv.cv_results_["mean_test_score"]
    assert mean[0] == mean[1] == mean[2]
    assert cv.best_params_["n_neighbors"] == 100
    np.testing.assert_array_equal(cv.cv_results_["rank_test_score"], [1, 1, 1])


def test_without_y_every_setting_takes_the_fallback():
    X, _ = _data()
    with pytest.warns(UserWarning, match="no y"):
        cv = GraphImputerCV(n_neighbors=(2, 3), n_iter=(1,), n_repeats=1, device="cpu",
                            modalities=MODALITIES).fit(X)
    assert np.unique(cv.cv_results_["mean_test_score"]).size == 1
    assert cv.best_index_ == 0
    assert cv.cv_results_["mean_test_score"][0] == 0.0  # the mean imputer's centred cosine


def test_results_layout_in_grid_order():
    X, Y = _data()
    cv = GraphImputerCV(methods=("heat", "neighmean"), similarities=("cosine", "count"),
                        n_neighbors=(4, 2), n_iter=(2, 1), ts=(1.0, 3.0), n_repeats=3,
                        modalities=MODALITIES, device="cpu").fit(X, Y)
    res = cv.cv_results_
    expected = [{"method": "heat", "similarity": s, "n_neighbors": k, "t": t, "n_iter": n}
                for s in ("cosine", "count") for k in (4, 2) for t in (1.0, 3.0)
                for n in (2, 1)]
    expected += [{"method": "neighmean", "similarity": s, "n_neighbors": k}
                 for s in ("cosine", "count") for k in (4, 2)]
    assert res["params"] == expected
    n = len(expected)
    assert {"param_method", "param_similarity", "param_n_neighbors", "param_t",
            "param_n_iter", "split0_test_score", "split2_test_score", "mean_test_score",
            "std_test_score", "rank_test_score"} <= set(res)
    assert "param_alpha" not in res  # no PPR setting
    for key, col in res.items():
        assert len(col) == n, key
    assert res["param_n_iter"].mask.tolist() == [False] * 16 + [True] * 4
    assert res["param_t"][0] == 1.0 and res["param_method"][-1] == "neighmean"


def test_pickle_round_trip():
    X, Y = _data()
    cv = GraphImputerCV(methods=("multihop",), n_neighbors=(3,), n_iter=(1, 2), n_repeats=1,
                        modalities=MODALITIES, device="cpu").fit(X, Y)
    again = pickle.loads(pickle.dumps(cv))
    np.testing.assert_array_equal(again.transform(X), cv.transform(X))
    assert again.best_params_ == cv.best_params_
    np.testing.assert_array_equal(again.cv_results_["mean_test_score"],
                                  cv.cv_results_["mean_test_score"])


def test_random_state_instance_is_copied():
    X, Y = _data()
    rng = np.random.RandomState(5)
    state = rng.get_state()[1].copy()
    kw = dict(methods=("neighmean",), n_neighbors=(3, 6), n_repeats=2, modalities=MODALITIES,
              device="cpu")
    a = GraphImputerCV(random_state=rng, **kw).fit(X, Y).cv_results_["mean_test_score"]
    b = GraphImputerCV(random_state=rng, **kw).fit(X, Y).cv_results_["mean_test_score"]
    c = GraphImputerCV(random_state=5, **kw).fit(X, Y).cv_results_["mean_test_score"]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(rng.get_state()[1], state)


@pytest.mark.parametrize("params, name", [
    ({"methods": ("multihop", "pagerank")}, "methods"),
    ({"methods": ()}, "methods"),
    ({"methods": "multihop"}, "methods"),
    ({"similarities": ("cosine", "euclid")}, "similarities"),
    ({"n_neighbors": (0, 5)}, "n_neighbors"),
    ({"n_neighbors": (5, 5)}, "n_neighbors"),
    ({"n_neighbors": (True,)}, "n_neighbors"),
    ({"n_neighbors": (2.5,)}, "n_neighbors"),
    ({"n_neighbors": 10}, "n_neighbors"),
    ({"n_iter": (1, -1)}, "n_iter"),
    ({"alphas": (0.0,)}, "alphas"),
    ({"alphas": (1.5,)}, "alphas"),
    ({"ts": (-1.0,)}, "ts"),
    ({"ts": (float("nan"),)}, "ts"),
    ({"n_repeats": 0}, "n_repeats"),
    ({"fraction": 1.0}, "fraction"),
    ({"metric": "mse"}, "metric"),
    ({"mode": "rows"}, "mode"),
    ({"random_state": None}, "random_state"),
    ({"modalities": [3, 3]}, "modalities"),
    ({"paper_compat": True, "similarities": ("count", "cosine")}, "similarities"),
    ({"paper_compat": True, "n_neighbors": (5, 61)}, "n_neighbors=61"),
    ({"dtype": "float16"}, "dtype"),
    ({"selection": "1se"}, "selection"),
    ({"selection": None}, "selection"),
    ({"per_block": "yes"}, "per_block"),
    ({"stratify": "popularity"}, "stratify"),
    ({"stratify": True}, "stratify"),
    ({"stratify": "degree", "n_bins": 0}, "n_bins"),
    ({"n_bins": 2}, "n_bins=2 only applies with stratify"),
])
def test_bad_grid_values_name_the_parameter(params, name):
    X, Y = _data()
    with pytest.raises(ValueError, match=name):
        GraphImputerCV(**{"device": "cpu", "n_repeats": 1, "modalities": MODALITIES,
                          **params}).fit(X, Y)


def test_unused_grids_are_not_checked():
    """``n_iter`` is not read for NeighMean alone, ``alphas`` without PPR, ``ts`` without
    heat."""
    X, Y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GraphImputerCV(methods=("neighmean",), n_neighbors=(3,), n_iter=(), alphas=(),
                       ts=(-1,), n_repeats=1, modalities=MODALITIES, device="cpu").fit(X, Y)


@pytest.mark.parametrize("method, extra", [("ppr", {}), ("heat", {"paper_compat": True}),
                                           ("multihop", {"symmetric": True})])
def test_refit_reusing_the_search_operator_equals_a_fresh_fit(method, extra, monkeypatch):
    """The refit takes the chosen setting's graph and operator from the search (its rows
    cover every row missing in X): same result and graph as a GraphImputer fitted alone."""
    X, Y = _data("entries", seed=4)
    cv = GraphImputerCV(methods=(method,), n_neighbors=(3, 7), n_iter=(1, 3),
                        modalities=MODALITIES, n_repeats=2, device="cpu", **extra)
    built = []
    operator = GraphImputer._operator
    monkeypatch.setattr(GraphImputer, "_operator",
                        lambda self, *a: built.append(1) or operator(self, *a))
    out = cv.fit_transform(X, Y)
    assert len(built) == 2  # one per k during the search, none for the refit
    fresh = GraphImputer(**cv.best_params_, device="cpu", **extra).fit(X, Y)
    np.testing.assert_array_equal(out, fresh.transform(X))
    assert (cv.best_estimator_.graph_ != fresh.graph_).nnz == 0
    assert cv.best_estimator_.n_propagated_ == fresh.n_propagated_


# --- selection="one_se" ---------------------------------------------------------------------

def test_one_se_rule_on_a_hand_built_score_table():
    """Best: 0.5 with std 0.25 over 4 copies, so SE = 0.125 and the threshold is 0.375
    (all exact in binary). Within it: settings 1, 2, 5, 6, 7 (2 on the threshold itself);
    below: 3, 8; NaN: 4. Fewest steps: 2, 5, 6, 7 have one step (NeighMean counts one); of
    those the fewest neighbours: 5, 6, 7 (k=5); the method order puts NeighMean (6, 7) before
    PPR (5); grid order then picks 6 over 7."""
    mh, nm, ppr = "multihop", "neighmean", "ppr"
    settings = [
        {"method": mh, "similarity": "count", "n_neighbors": 10, "n_iter": 3},  # 0 best
        {"method": mh, "similarity": "count", "n_neighbors": 5, "n_iter": 3},   # 1 within
        {"method": mh, "similarity": "count", "n_neighbors": 20, "n_iter": 1},  # 2 boundary
        {"method": nm, "similarity": "count", "n_neighbors": 2},                # 3 below
        {"method": mh, "similarity": "count", "n_neighbors": 10, "n_iter": 0},  # 4 NaN
        {"method": ppr, "similarity": "count", "n_neighbors": 5, "alpha": 0.1,
         "n_iter": 1},                                                          # 5 within
        {"method": nm, "similarity": "count", "n_neighbors": 5},                # 6 within
        {"method": nm, "similarity": "cosine", "n_neighbors": 5},               # 7 within
        {"method": mh, "similarity": "count", "n_neighbors": 50, "n_iter": 0},  # 8 below
    ]
    mean = np.array([0.5, 0.45, 0.375, 0.37, np.nan, 0.47, 0.4, 0.49, 0.25])
    std = np.array([0.25, 0.0, 0.3, 0.1, np.nan, 0.2, 0.1, 0.1, 0.0])
    assert graph_cv._select("best", mean, std, 4, settings) == 0
    assert graph_cv._select("one_se", mean, std, 4, settings) == 6
    # Without setting 6 and 7 (moved below the threshold) PPR at k=5 is next; without those
    # three, the boundary setting 2 (one step, k=20).
    mean[[6, 7]] = 0.3
    assert graph_cv._select("one_se", mean, std, 4, settings) == 5
    mean[5] = 0.3
    assert graph_cv._select("one_se", mean, std, 4, settings) == 2
    # A single copy: SE 0, so only the settings tied with the best count.
    mean = np.array([0.5, 0.5, 0.5, 0.1, np.nan, 0.5, 0.2, 0.2, 0.1])
    assert graph_cv._select("one_se", mean, np.zeros(9), 1, settings) == 5
    assert graph_cv._select("best", mean, np.zeros(9), 1, settings) == 0


def _documented_complexity(params):
    order = ("neighmean", "multihop", "ppr", "heat")
    steps = 1 if params["method"] == "neighmean" else params["n_iter"]
    return steps, params["n_neighbors"], order.index(params["method"])


def test_one_se_choice_end_to_end():
    X, Y = _data(seed=0)
    kw = dict(n_neighbors=(2, 5, 9), n_iter=(0, 1, 2, 4, 8), alphas=(0.1, 0.4),
              modalities=MODALITIES, n_repeats=4, device="cpu")
    best = GraphImputerCV(**kw).fit(X, Y)
    cv = GraphImputerCV(selection="one_se", **kw)
    out = cv.fit_transform(X, Y)
    res = cv.cv_results_
    for key in ("mean_test_score", "std_test_score", "rank_test_score", "split3_test_score"):
        np.testing.assert_array_equal(res[key], best.cv_results_[key])  # unchanged
    assert res["params"] == best.cv_results_["params"]
    # The threshold from the per-copy scores, computed here.
    splits = np.stack([res[f"split{r}_test_score"] for r in range(4)], axis=1)
    mean = splits.mean(axis=1)
    top = int(np.nanargmax(mean))
    threshold = mean[top] - splits[top].std() / 2.0
    chosen = cv.best_index_
    assert mean[chosen] >= threshold - 1e-12
    assert cv.best_score_ == res["mean_test_score"][chosen]
    assert cv.best_params_ == res["params"][chosen]
    # No more complex than the argmax, and the simplest of those within one SE.
    assert _documented_complexity(cv.best_params_) <= _documented_complexity(best.best_params_)
    within = [i for i in range(len(mean)) if mean[i] >= threshold + 1e-12]
    assert all(_documented_complexity(res["params"][i]) >= _documented_complexity(
        cv.best_params_) for i in within)
    assert cv.best_index_ != best.best_index_  # the case is one where the rule matters
    ref = GraphImputer(**cv.best_params_, device="cpu").fit_transform(X, Y)
    np.testing.assert_array_equal(out, ref)


# --- per_block=True --------------------------------------------------------------------------

def _block_slices():
    bounds = np.cumsum([0] + MODALITIES)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


@pytest.mark.parametrize("case", [
    dict(),
    dict(paper_compat=True),
    dict(symmetric=True, similarity="cosine"),
    dict(mask="entries", dtype="float64"),
])
@pytest.mark.parametrize("method", ["neighmean", "multihop", "ppr", "heat"])
def test_graph_imputation_is_column_by_column(method, case):
    """The claim per_block rests on: block b's columns of a GraphImputer fitted on all of X
    are those of the same GraphImputer fitted on X[:, block b] alone. Bit for bit where every
    block is missing on the same rows (whole rows missing): the same rows are propagated.
    Otherwise only up to rounding: a fit on all of X also propagates (and resets) the rows
    that observe block b but miss another block, which changes the order of the sums, so
    the two differ by a few units in the last place of ``dtype``."""
    case = dict(case)
    X, Y = _data(case.pop("mask", "blocks"), seed=5)
    est = dict(method=method, n_neighbors=4, n_iter=3, alpha=0.2, t=2.0, device="cpu", **case)
    eps = np.finfo(np.float64 if case.get("dtype") == "float64" or (
        case.get("paper_compat") and method in ("ppr", "heat")) else np.float32).eps
    atol = 16 * eps * np.nanmax(np.abs(X))
    rows_missing = np.where(np.isnan(X).any(axis=1, keepdims=True), np.nan, X)
    for X_case, exact in ((rows_missing, True), (X, False)):
        whole = GraphImputer(**est).fit_transform(X_case, Y)
        for cols in _block_slices():
            alone = GraphImputer(**est).fit_transform(X_case[:, cols], Y)
            if exact or method == "neighmean":  # NeighMean reads each row on its own
                np.testing.assert_array_equal(whole[:, cols], alone)
            else:
                np.testing.assert_allclose(whole[:, cols], alone, rtol=0, atol=atol)


def _reference_block_scores(cv, X, Y, params):
    """Per hidden copy, the per-block scores of a GraphImputer fitted on that copy alone."""
    rng = np.random.RandomState(cv.random_state)
    metric = "mse" if cv.metric == "neg_mse" else cv.metric
    sign = -1 if cv.metric == "neg_mse" else 1
    out = []
    for _ in range(cv.n_repeats):
        X_hidden, _ = hide_observed(X, MODALITIES, fraction=cv.fraction, mode=cv.mode,
                                    random_state=rng)
        est = GraphImputer(**{name: getattr(cv, name) for name in graph_cv._PASSTHROUGH},
                           **params)
        out.append(sign * imputation_score(X, est.fit_transform(X_hidden, Y), X_hidden,
                                           metric=metric, modalities=MODALITIES,
                                           multioutput="raw_values"))
    return np.array(out)  # (n_repeats, n_blocks)


@pytest.mark.parametrize("case", [dict(), dict(mask="entries", mode="entry", metric="neg_mse"),
                                  dict(paper_compat=True, metric="mse_skill")])
def test_per_block_scores_equal_separate_fits(case):
    case = dict(case)
    X, Y = _data(case.pop("mask", "blocks"), seed=3)
    kw = dict(n_neighbors=(2, 6), n_iter=(0, 1, 4), alphas=(0.2,), ts=(2.0,),
              modalities=MODALITIES, n_repeats=2, device="cpu", **case)
    cv = GraphImputerCV(per_block=True, **kw).fit(X, Y)
    plain = GraphImputerCV(**kw).fit(X, Y)
    res = cv.cv_results_
    for key, col in plain.cv_results_.items():  # the pooled columns are as without per_block
        if key != "params":
            np.testing.assert_array_equal(res[key], col)
    for i, params in enumerate(res["params"]):
        ref = _reference_block_scores(cv, X, Y, params)
        for b in range(2):
            for r in range(2):
                assert res[f"split{r}_test_score_block{b}"][i] == ref[r, b]
            assert res[f"mean_test_score_block{b}"][i] == np.mean(list(ref[:, b]))
            assert res[f"std_test_score_block{b}"][i] == ref[:, b].std()
    for b in range(2):
        mean = res[f"mean_test_score_block{b}"]
        np.testing.assert_array_equal(res[f"rank_test_score_block{b}"],
                                      [1 + (mean > m).sum() for m in mean])


def test_per_block_choice_and_refit():
    X, Y = _data(seed=0)
    X_before = X.copy()
    kw = dict(n_neighbors=(2, 5, 9), n_iter=(0, 1, 2, 4, 8), modalities=MODALITIES,
              n_repeats=3, device="cpu")
    for selection in ("best", "one_se"):
        cv = GraphImputerCV(per_block=True, selection=selection, **kw)
        out = cv.fit_transform(X, Y)
        np.testing.assert_array_equal(X, X_before)
        res = cv.cv_results_
        assert isinstance(cv.best_params_, list) and len(cv.best_params_) == 2
        assert cv.best_index_.shape == (2,) and cv.best_score_.shape == (2,)
        for b, cols in enumerate(_block_slices()):
            mean = res[f"mean_test_score_block{b}"]
            # Each block's choice is the single-block rule on the block's own scores.
            expected = graph_cv._select(selection, mean, res[f"std_test_score_block{b}"], 3,
                                        res["params"])
            if selection == "best":
                assert expected == int(np.flatnonzero(mean == np.nanmax(mean))[0])
            assert cv.best_index_[b] == expected
            assert cv.best_params_[b] == res["params"][expected]
            assert cv.best_score_[b] == mean[expected]
            # The refit: a GraphImputer with the block's setting fitted on the block alone;
            # up to rounding (see above), the block's columns of one fitted on all of X.
            alone = GraphImputer(**cv.best_params_[b], device="cpu").fit(X[:, cols], Y)
            np.testing.assert_array_equal(out[:, cols], alone.transform(X[:, cols]))
            whole = GraphImputer(**cv.best_params_[b], device="cpu").fit_transform(X, Y)
            atol = 16 * np.finfo(np.float32).eps * np.nanmax(np.abs(X))
            np.testing.assert_allclose(out[:, cols], whole[:, cols], rtol=0, atol=atol)
        np.testing.assert_array_equal(cv.transform(X), out)
        observed = ~np.isnan(X)
        np.testing.assert_array_equal(out[observed], X[observed])
    assert cv.best_params_[0] != cv.best_params_[1]  # the blocks choose differently here
    # New items: each block's estimator's new-item rule on the block's columns.
    X_new = X[:5].copy()
    X_new[0, 0] = np.nan
    np.testing.assert_array_equal(
        cv.transform(X_new),
        np.hstack([est.transform(X_new[:, cols])
                   for est, cols in zip(cv.best_estimator_, _block_slices())]))
    again = pickle.loads(pickle.dumps(cv))
    np.testing.assert_array_equal(again.transform(X), out)


def test_stratify_degree_needs_y():
    X, _ = _data()
    with pytest.raises(ValueError, match="stratify='degree'.*y"):
        GraphImputerCV(stratify="degree", n_neighbors=(2,), n_iter=(1,), n_repeats=1,
                       modalities=MODALITIES, device="cpu").fit(X)


@pytest.mark.parametrize("case", [dict(), dict(similarities=("cosine",), symmetric=True),
                                  dict(mask="entries", mode="entry")])
def test_reached_fraction_equals_separate_fits(case):
    """``mean_reached_fraction``: the share of the hidden entries that a separately fitted
    GraphImputer fills from the graph, read off its output with a sentinel fallback value
    (no graph value can equal it), on the same hidden copies (one generator, in order)."""
    case = dict(case)
    X, Y = _data(case.pop("mask", "blocks"))
    sentinel = -777.0
    cv = GraphImputerCV(modalities=MODALITIES, n_repeats=2, device="cpu", fallback="constant",
                        fill_value=sentinel, **GRID, **case).fit(X, Y)
    rng = np.random.RandomState(cv.random_state)
    copies = [hide_observed(X, list(MODALITIES), fraction=cv.fraction, mode=cv.mode,
                            random_state=rng)[0] for _ in range(2)]
    expected = []
    for params in cv.cv_results_["params"]:
        est = GraphImputer(**{name: getattr(cv, name) for name in graph_cv._PASSTHROUGH},
                           **params)
        shares = []
        for X_hidden in copies:
            hidden = np.isnan(X_hidden) & ~np.isnan(X)
            out = est.fit_transform(X_hidden, Y)
            shares.append(np.mean(out[hidden] != sentinel))
        expected.append(np.mean(shares))
    got = cv.cv_results_["mean_reached_fraction"]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    steps = np.array([p.get("n_iter", 1) for p in cv.cv_results_["params"]])
    assert (got[steps == 0] == 0).all() and (got[steps > 0] > 0).all()
    assert cv.reached_fraction_ == got[cv.best_index_]


def test_reached_fraction_is_one_under_the_official_rules():
    X, Y = _data()
    cv = GraphImputerCV(modalities=MODALITIES, n_repeats=1, device="cpu", paper_compat=True,
                        n_neighbors=(2, 5), n_iter=(1, 2), methods=("neighmean", "multihop"))
    cv.fit(X, Y)
    np.testing.assert_array_equal(cv.cv_results_["mean_reached_fraction"], 1.0)
