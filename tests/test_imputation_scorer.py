"""The self-supervised imputation scorer and the hiding behind it.

Every expected value is derived by hand (counts from the masks, the scores of a perfect and
of the mean imputer) or computed independently (a dense numpy transcription of the hiding's
definition, a separate call of the scorer per grid candidate)."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import GridSearchCV

from skmm import BaselineImputer, FeatPropImputer
from skmm.datasets import hide_observed, make_multimodal, simulate_missing
from skmm.metrics import imputation_score, make_imputation_scorer
from skmm.model_selection import AllItemsSplit

SIZES = [6, 4]


def _data(mode="one", rate=0.3, seed=0):
    data = make_multimodal(120, 60, SIZES, density=0.1, random_state=seed)
    X, _ = simulate_missing(data.X, SIZES, rate=rate, mode=mode, random_state=seed)
    return data.X.astype(np.float64), X.astype(np.float64), data.Y


class _Oracle(TransformerMixin, BaseEstimator):
    """Returns the complete matrix: a perfect imputer (observed entries unchanged)."""

    def __init__(self, X_complete=None):
        self.X_complete = X_complete

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.where(np.isnan(X), self.X_complete, X)


_SEEN = []  # module level: clone() deep-copies parameters, so a list parameter is not shared


class _Spy(TransformerMixin, BaseEstimator):
    """A mean imputer that records every matrix it is fitted on, in ``_SEEN``."""

    def __init__(self, tag=0):
        self.tag = tag

    def fit(self, X, y=None):
        _SEEN.append(np.array(X, copy=True))
        return self

    def transform(self, X):
        return np.where(np.isnan(X), np.nanmean(X, axis=0), X)


# --- hide_observed ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["modality", "entry"])
def test_hiding_is_reproducible_by_random_state(mode):
    _, X, _ = _data()
    a = hide_observed(X, SIZES, fraction=0.2, mode=mode, random_state=3)
    b = hide_observed(X, SIZES, fraction=0.2, mode=mode, random_state=3)
    c = hide_observed(X, SIZES, fraction=0.2, mode=mode, random_state=4)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[1], c[1])
    # The same draw from a RandomState instance as from its seed.
    d = hide_observed(X, SIZES, fraction=0.2, mode=mode, random_state=np.random.RandomState(3))
    np.testing.assert_array_equal(a[1], d[1])


@pytest.mark.parametrize("mode", ["modality", "entry"])
def test_hidden_entries_are_observed_and_input_untouched(mode):
    _, X, _ = _data()
    X_before = X.copy()
    X_hidden, hidden = hide_observed(X, SIZES, fraction=0.25, mode=mode, random_state=0)
    np.testing.assert_array_equal(X, X_before)  # input never mutated
    truly_missing = np.isnan(X)
    assert hidden.any()
    assert not (hidden & truly_missing).any()  # never a truly missing entry
    # X_hidden: NaN exactly at the truly missing and the hidden entries, X elsewhere.
    np.testing.assert_array_equal(np.isnan(X_hidden), truly_missing | hidden)
    np.testing.assert_array_equal(X_hidden[~np.isnan(X_hidden)], X[~(truly_missing | hidden)])


def test_entry_mode_hides_the_rounded_fraction_of_observed_entries():
    _, X, _ = _data(mode="one")
    n_observed = int((~np.isnan(X)).sum())
    for fraction in (0.05, 0.1, 0.33):
        _, hidden = hide_observed(X, SIZES, fraction=fraction, mode="entry", random_state=1)
        assert hidden.sum() == int(round(fraction * n_observed))


def test_modality_mode_hides_whole_blocks_and_never_an_items_last_block():
    _, X, _ = _data(mode="one", rate=0.4)
    bounds = np.cumsum([0] + SIZES)
    obs_blocks = np.stack([~np.isnan(X[:, bounds[b]:bounds[b + 1]]).any(axis=1)
                           for b in range(len(SIZES))], axis=1)
    n_units = int(obs_blocks.sum())
    for seed in range(5):
        X_hidden, hidden = hide_observed(X, SIZES, fraction=0.2, mode="modality",
                                         random_state=seed)
        hid_blocks = np.stack([hidden[:, bounds[b]:bounds[b + 1]].all(axis=1)
                               for b in range(len(SIZES))], axis=1)
        # Whole blocks: within a block, an item's entries are all hidden or none.
        for b in range(len(SIZES)):
            part = hidden[:, bounds[b]:bounds[b + 1]]
            np.testing.assert_array_equal(part.any(axis=1), part.all(axis=1))
        assert hid_blocks.sum() == int(round(0.2 * n_units))
        assert not (hid_blocks & ~obs_blocks).any()
        # Every item that observed a block keeps one.
        kept = obs_blocks & ~hid_blocks
        np.testing.assert_array_equal(kept.any(axis=1), obs_blocks.any(axis=1))


def _reference_modality_hiding(X, sizes, fraction, seed):
    """The definition, as a plain loop: walk the observed (item, block) units in a random order
    and hide a unit while its item still has another observed block, until the count."""
    bounds = np.cumsum([0] + list(sizes))
    units = [(i, b) for i in range(X.shape[0]) for b in range(len(sizes))
             if not np.isnan(X[i, bounds[b]:bounds[b + 1]]).all()]
    left = {}
    for i, _ in units:
        left[i] = left.get(i, 0) + 1
    n_hide = int(round(fraction * len(units)))
    hidden = np.zeros(X.shape, dtype=bool)
    for u in np.random.RandomState(seed).permutation(len(units)):
        if n_hide == 0:
            break
        i, b = units[u]
        if left[i] > 1:
            left[i] -= 1
            n_hide -= 1
            hidden[i, bounds[b]:bounds[b + 1]] = ~np.isnan(X[i, bounds[b]:bounds[b + 1]])
    return hidden


@pytest.mark.parametrize("seed", range(4))
def test_modality_mode_matches_the_reference_loop(seed):
    _, X, _ = _data(mode="one", rate=0.5, seed=seed)
    X[np.random.default_rng(seed).random(X.shape) < 0.05] = np.nan  # some partial blocks too
    sizes = [3, 3, 4]  # three blocks: items can lose two
    X[:10, 6:] = np.nan
    _, hidden = hide_observed(X, sizes, fraction=0.3, mode="modality", random_state=seed)
    np.testing.assert_array_equal(hidden, _reference_modality_hiding(X, sizes, 0.3, seed))


def test_modality_mode_refuses_a_fraction_that_would_take_last_blocks():
    X = np.arange(16.0).reshape(4, 4)
    X[0, 2:] = np.nan  # 7 observed blocks; items 1-3 can each lose one: at most 3
    _, hidden = hide_observed(X, [2, 2], fraction=3 / 7, mode="modality", random_state=0)
    assert hidden.sum() == 3 * 2 and not hidden[0].any()
    with pytest.raises(ValueError, match="fraction=0.6"):
        hide_observed(X, [2, 2], fraction=0.6, mode="modality", random_state=0)


def test_single_block_modality_mode_hides_whole_rows():
    _, X, _ = _data(mode="all")
    X_hidden, hidden = hide_observed(X, None, fraction=0.1, mode="modality", random_state=0)
    rows = hidden.any(axis=1)
    np.testing.assert_array_equal(rows, hidden.all(axis=1))
    assert rows.sum() == int(round(0.1 * (~np.isnan(X)).any(axis=1).sum()))


def test_auto_mode_follows_the_real_missingness():
    _, X_blocks, _ = _data(mode="one")  # whole blocks missing
    for seed in range(3):
        np.testing.assert_array_equal(
            hide_observed(X_blocks, SIZES, fraction=0.1, random_state=seed)[1],
            hide_observed(X_blocks, SIZES, fraction=0.1, mode="modality",
                          random_state=seed)[1])
    X_entries = X_blocks.copy()
    X_entries[np.random.default_rng(0).random(X_entries.shape) < 0.05] = np.nan
    np.testing.assert_array_equal(
        hide_observed(X_entries, SIZES, fraction=0.1, random_state=0)[1],
        hide_observed(X_entries, SIZES, fraction=0.1, mode="entry", random_state=0)[1])


@pytest.mark.parametrize("kwargs, name", [
    ({"fraction": 0.0}, "fraction"), ({"fraction": 1.0}, "fraction"),
    ({"fraction": -0.1}, "fraction"), ({"fraction": "0.1"}, "fraction"),
    ({"mode": "block"}, "mode"), ({"modalities": [6, 3]}, "modalities"),
    ({"modalities": [6, 0, 4]}, "modalities"),
    ({"stratify": np.ones(119)}, "stratify"), ({"stratify": np.ones((120, 2))}, "stratify"),
    ({"stratify": np.r_[np.nan, np.ones(119)]}, "stratify"),
    ({"stratify": ["a"] * 120}, "stratify"), ({"stratify": "degree"}, "stratify"),
    ({"stratify": np.ones(120), "n_bins": 0}, "n_bins"),
])
def test_hide_observed_bad_arguments(kwargs, name):
    _, X, _ = _data()
    args = {"modalities": SIZES, "fraction": 0.1, **kwargs}
    with pytest.raises(ValueError, match=name):
        hide_observed(X, **args)


def test_hide_observed_refuses_to_empty_a_column():
    X = np.array([[1.0, 2.0], [3.0, np.nan], [np.nan, 4.0]])
    with pytest.raises(ValueError, match="fraction=0.9.*column"):
        hide_observed(X, None, fraction=0.9, mode="entry", random_state=0)


# --- make_imputation_scorer ------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["auto", "modality", "entry"])
def test_perfect_imputer_scores_one_and_zero_mse(mode):
    X_complete, X, _ = _data()
    oracle = _Oracle(X_complete)
    cos = make_imputation_scorer(SIZES, mode=mode, fraction=0.2)(oracle, X)
    assert cos == pytest.approx(1.0, abs=1e-12)  # rounding of the cosine's own arithmetic
    assert make_imputation_scorer(SIZES, mode=mode, metric="neg_mse")(oracle, X) == 0.0
    assert make_imputation_scorer(SIZES, mode=mode, metric="mse_skill")(oracle, X) == 1.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mean_imputer_scores_exactly_zero(dtype):
    """The centre of a block is the mean of its observed entries in the hidden copy, the very
    value the mean imputer (fitted on that copy) fills in: every imputed row is the centre,
    its centred vector is 0, and its cosine counts 0; likewise MSE skill is 1 - 1 = 0."""
    _, X, Y = _data()
    X = X.astype(dtype)
    for metric in ("centred_cosine", "mse_skill"):
        assert make_imputation_scorer(SIZES, metric=metric)(BaselineImputer(), X, Y) == 0.0


def test_average_precision_on_a_binary_block():
    rng = np.random.default_rng(0)
    X_complete = (rng.random((80, 8)) < 0.3).astype(np.float64)
    X = X_complete.copy()
    X[rng.random(80) < 0.2] = np.nan
    oracle = _Oracle(X_complete)
    assert make_imputation_scorer(metric="average_precision")(oracle, X) == 1.0
    X_hidden, _ = hide_observed(X, None, fraction=0.1, random_state=0)
    X_mean = BaselineImputer().fit_transform(X_hidden)
    expected = imputation_score(X, X_mean, X_hidden, metric="average_precision_gain")
    assert expected == 0.0  # the mean imputer's own gain (derivation: AP minus itself)
    assert make_imputation_scorer(metric="average_precision_gain")(BaselineImputer(), X) == 0.0


def test_scorer_equals_imputation_score_on_hide_observed():
    """The scorer's value is imputation_score of a fresh fit on hide_observed's copy."""
    _, X, Y = _data()
    est = FeatPropImputer(n_neighbors=5, device="cpu")
    X_hidden, _ = hide_observed(X, SIZES, fraction=0.15, random_state=7)
    X_imputed = FeatPropImputer(n_neighbors=5, device="cpu").fit_transform(X_hidden, Y)
    for metric, sign, name in (("centred_cosine", 1, "centred_cosine"), ("mse", -1, "neg_mse")):
        expected = sign * imputation_score(X, X_imputed, X_hidden, metric=metric,
                                           modalities=SIZES)
        scorer = make_imputation_scorer(SIZES, fraction=0.15, metric=name, random_state=7)
        assert scorer(est, X, Y) == expected
    # An already fitted estimator is not used: only its parameters are (a clone refits).
    fitted = FeatPropImputer(n_neighbors=5, device="cpu").fit(X, Y)
    scorer = make_imputation_scorer(SIZES, fraction=0.15, random_state=7)
    assert scorer(fitted, X, Y) == scorer(est, X, Y)
    assert not hasattr(est, "graph_")  # the estimator handed in is left unfitted


def test_n_repeats_averages_consecutive_draws():
    _, X, Y = _data()
    rng = np.random.RandomState(5)
    expected = []
    for _ in range(3):
        X_hidden, _ = hide_observed(X, SIZES, fraction=0.1, random_state=rng)
        X_imputed = FeatPropImputer(n_neighbors=5, device="cpu").fit_transform(X_hidden, Y)
        expected.append(imputation_score(X, X_imputed, X_hidden, modalities=SIZES))
    scorer = make_imputation_scorer(SIZES, n_repeats=3, random_state=5)
    assert scorer(FeatPropImputer(n_neighbors=5, device="cpu"), X, Y) == np.mean(expected)


def test_every_call_hides_the_same_entries():
    _, X, _ = _data()
    log = _SEEN
    state = np.random.RandomState(11)
    for random_state in (11, state):
        log.clear()
        scorer = make_imputation_scorer(SIZES, fraction=0.2, random_state=random_state)
        for tag in range(3):
            scorer(_Spy(tag), X)
        assert len(log) == 3
        for X_seen in log[1:]:
            np.testing.assert_array_equal(X_seen, log[0])
        np.testing.assert_array_equal(
            log[0], hide_observed(X, SIZES, fraction=0.2, random_state=11)[0])
    # The caller's RandomState is not advanced by the scorer.
    assert state.randint(1 << 30) == np.random.RandomState(11).randint(1 << 30)


def test_grid_search_with_all_items_split():
    _, X, Y = _data()
    scorer = make_imputation_scorer(SIZES, fraction=0.15, random_state=2)
    grid = [2, 5, 10]
    search = GridSearchCV(FeatPropImputer(device="cpu"), {"n_neighbors": grid},
                          scoring=scorer, cv=AllItemsSplit()).fit(X, Y)
    expected = [scorer(FeatPropImputer(n_neighbors=k, device="cpu"), X, Y) for k in grid]
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], expected)
    assert search.best_params_ == {"n_neighbors": grid[int(np.argmax(expected))]}
    # The refit target is the real X: its imputation is a fit on the real missingness.
    np.testing.assert_array_equal(
        search.best_estimator_.transform(X),
        FeatPropImputer(n_neighbors=search.best_params_["n_neighbors"],
                        device="cpu").fit_transform(X, Y))


def test_grid_search_candidates_see_the_same_hidden_matrix():
    _, X, _ = _data()
    log = _SEEN
    log.clear()
    scorer = make_imputation_scorer(SIZES, fraction=0.1, random_state=0)
    GridSearchCV(_Spy(), {"tag": [0, 1, 2]}, scoring=scorer, cv=AllItemsSplit(),
                 refit=False).fit(X)
    # Per candidate: the fold's fit (the real X), then the scorer's fit (the hidden copy).
    hidden_fits = [a for a in log if np.isnan(a).sum() > np.isnan(X).sum()]
    assert len(hidden_fits) == 3
    for a in hidden_fits[1:]:
        np.testing.assert_array_equal(a, hidden_fits[0])


def test_out_file_estimators_score_in_memory(tmp_path):
    _, X, Y = _data()
    path = tmp_path / "imputed.npy"
    scorer = make_imputation_scorer(SIZES)
    with_file = scorer(FeatPropImputer(n_neighbors=5, device="cpu", out_file=path), X, Y)
    assert not path.exists()
    assert with_file == scorer(FeatPropImputer(n_neighbors=5, device="cpu"), X, Y)


def test_scorer_pickles():
    _, X, Y = _data()
    for random_state in (3, np.random.RandomState(3)):
        scorer = make_imputation_scorer(SIZES, metric="neg_mse", random_state=random_state)
        again = pickle.loads(pickle.dumps(scorer))
        assert repr(again) == repr(scorer) and again.__name__ == "neg_mse"
        est = FeatPropImputer(n_neighbors=5, device="cpu")
        assert again(est, X, Y) == scorer(est, X, Y)


@pytest.mark.parametrize("kwargs, name", [
    ({"fraction": 0.0}, "fraction"), ({"fraction": 1.5}, "fraction"),
    ({"mode": "rows"}, "mode"), ({"metric": "accuracy"}, "metric"),
    ({"metric": "mse"}, "neg_mse"), ({"n_repeats": 0}, "n_repeats"),
    ({"random_state": None}, "random_state"), ({"random_state": -1}, "random_state"),
    ({"modalities": [6, 0]}, "modalities"),
    ({"stratify": "popularity"}, "stratify"), ({"stratify": np.ones(3)}, "stratify"),
    ({"stratify": "degree", "n_bins": 0}, "n_bins"), ({"n_bins": 2.5}, "n_bins"),
    ({"n_bins": 3}, "n_bins=3 only applies with stratify"),
])
def test_make_imputation_scorer_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_imputation_scorer(**kwargs)


def test_scorer_refuses_modalities_that_do_not_fit_X():
    _, X, _ = _data()
    with pytest.raises(ValueError, match="modalities"):
        make_imputation_scorer([5, 4])(BaselineImputer(), X)


# --- stratify ----------------------------------------------------------------------------------

def _degree_correlated(seed=0):
    """1000 items in five groups of 200 with degrees 1, 2, 4, 8 and 16; the first 160, 100,
    40, 20 and 10 items of each group have their (single-block) row missing: missingness
    strongly favours the rarely interacted items."""
    degree = np.repeat([1, 2, 4, 8, 16], 200)
    X = np.random.default_rng(seed).normal(size=(1000, 3))
    missing = np.zeros(1000, bool)
    for g, n in enumerate([160, 100, 40, 20, 10]):
        missing[200 * g:200 * g + n] = True
    X[missing] = np.nan
    return X, degree, missing


def test_allocate_by_hand():
    from skmm.datasets._missing import _allocate
    # 10 as 5 : 3 : 2 : 0, the first capped at 2; the 3 left as 3 : 2 over the next two
    # (1.8, 1.2: floors 1 and 1, the larger remainder, 0.8, takes the last one).
    np.testing.assert_array_equal(_allocate(10, [5, 3, 2, 0], [2, 10, 10, 10]), [2, 5, 3, 0])
    # Only the first has weight; full at 2, the 4 left go by the room left (3 and 1).
    np.testing.assert_array_equal(_allocate(6, [1, 0, 0], [2, 3, 1]), [2, 3, 1])
    # Equal remainders: the lower index first.
    np.testing.assert_array_equal(_allocate(1, [1, 1], [5, 5]), [1, 0])


def test_stratified_hiding_follows_the_missing_rows_degrees():
    """Derivation. The 330 missing rows have degrees 1 (160), 2 (100), 4 (40), 8 (20), 16
    (10), mean 840/330 = 2.545. Quintile edges (smallest d with F(d) >= j/5): 1, 1, 2, 4, so
    bins d <= 1, (1, 2], (2, 4], > 4 with 160, 100, 40, 30 missing rows. round(0.1 * 670) =
    67 rows are hidden: 67 x (160, 100, 40, 30) / 330 = 32.48, 20.30, 8.12, 6.09, floors
    32, 20, 8, 6 (66) and the largest remainder takes one more: 33, 20, 8, 6. So exactly 33
    hidden rows of degree 1, 20 of degree 2, 8 of degree 4, and 6 of degree 8 or 16: a mean
    between (33 + 40 + 32 + 6 x 8) / 67 = 2.28 and (33 + 40 + 32 + 6 x 16) / 67 = 3.0. A
    uniform draw of the 670 observed rows has expected mean degree (40 + 200 + 640 + 1440 +
    3040) / 670 = 8.0."""
    X, degree, missing = _degree_correlated()
    assert degree[missing].mean() == pytest.approx(840 / 330)
    uniform = []
    for seed in range(10):
        _, hidden = hide_observed(X, None, fraction=0.1, mode="modality", stratify=degree,
                                  random_state=seed)
        rows = hidden.any(axis=1)
        assert rows.sum() == 67 and not (rows & missing).any()
        counts = np.bincount(degree[rows], minlength=17)
        np.testing.assert_array_equal(counts[[1, 2, 4]], [33, 20, 8])
        assert counts[8] + counts[16] == 6
        assert 153 / 67 <= degree[rows].mean() <= 201 / 67
        assert abs(degree[rows].mean() - 840 / 330) < 0.5
        _, hidden = hide_observed(X, None, fraction=0.1, mode="modality", random_state=seed)
        uniform.append(degree[hidden.any(axis=1)].mean())
    # Uniform hiding: about 8.0 (per draw sd about 5.6 / sqrt(67) = 0.7, so 10 draws about
    # 0.22), far from the missing rows' 2.5.
    assert abs(np.mean(uniform) - 8.0) < 1.0


@pytest.mark.parametrize("mode, sizes", [("modality", [6, 4]), ("modality", [3, 3, 4]),
                                         ("entry", [6, 4])])
def test_stratified_hiding_is_reproducible_and_keeps_the_invariants(mode, sizes):
    _, X, Y = _data(mode="one", rate=0.4)
    if mode == "entry":
        X[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
    X_before = X.copy()
    degree = np.diff(sp.csr_matrix(Y).indptr)
    kw = dict(fraction=0.15, mode=mode, stratify=degree)
    a = hide_observed(X, sizes, random_state=3, **kw)
    b = hide_observed(X, sizes, random_state=np.random.RandomState(3), **kw)
    c = hide_observed(X, sizes, random_state=4, **kw)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    np.testing.assert_array_equal(X, X_before)
    X_hidden, hidden = a
    truly_missing = np.isnan(X)
    assert not (hidden & truly_missing).any()
    np.testing.assert_array_equal(np.isnan(X_hidden), truly_missing | hidden)
    bounds = np.cumsum([0] + sizes)
    if mode == "entry":
        assert hidden.sum() == int(round(0.15 * (~truly_missing).sum()))
        return
    obs = np.stack([~truly_missing[:, bounds[k]:bounds[k + 1]].all(axis=1)
                    for k in range(len(sizes))], axis=1)
    hid = np.stack([hidden[:, bounds[k]:bounds[k + 1]].any(axis=1)
                    for k in range(len(sizes))], axis=1)
    assert hid.sum() == int(round(0.15 * obs.sum()))
    np.testing.assert_array_equal((obs & ~hid).any(axis=1), obs.any(axis=1))  # one kept
    # The blocks share the count in proportion to their observed blocks (largest remainder).
    from skmm.datasets._missing import _allocate
    np.testing.assert_array_equal(hid.sum(axis=0),
                                  _allocate(hid.sum(), obs.sum(axis=0), obs.sum(axis=0)))


def test_stratified_hiding_without_truly_missing_rows_is_one_bin():
    """No missing row gives no bin edges: the block is one stratum, the count is the
    unstratified one, and the draw differs from the uniform one only in its mechanism."""
    X = np.random.default_rng(0).normal(size=(50, 4))
    degree = np.arange(50)
    _, hidden = hide_observed(X, [2, 2], fraction=0.2, mode="modality", stratify=degree,
                              random_state=0)
    blocks = np.stack([hidden[:, :2].all(axis=1), hidden[:, 2:].all(axis=1)], axis=1)
    assert blocks.sum() == 20
    np.testing.assert_array_equal(blocks.sum(axis=0), [10, 10])  # 100 units, 50 per block
    assert not (blocks.all(axis=1)).any()  # never both blocks of an item


def test_scorer_stratify_degree_is_hide_observed_with_the_degrees():
    _, X, Y = _data()
    degree = np.diff(sp.csr_matrix(Y).indptr)
    X_hidden, _ = hide_observed(X, SIZES, fraction=0.15, random_state=7, stratify=degree)
    X_imputed = FeatPropImputer(n_neighbors=5, device="cpu").fit_transform(X_hidden, Y)
    expected = imputation_score(X, X_imputed, X_hidden, modalities=SIZES)
    scorer = make_imputation_scorer(SIZES, fraction=0.15, random_state=7, stratify="degree")
    assert scorer(FeatPropImputer(n_neighbors=5, device="cpu"), X, Y) == expected
    assert "stratify='degree'" in repr(scorer)
    with pytest.raises(ValueError, match="stratify='degree'.*y"):
        scorer(BaselineImputer(), X)


@pytest.mark.parametrize("n_bins", [1, 2, 8])
def test_scorer_n_bins_is_hide_observed_with_those_bins(n_bins):
    _, X, Y = _data()
    degree = np.diff(sp.csr_matrix(Y).indptr)
    X_hidden, _ = hide_observed(X, SIZES, fraction=0.15, random_state=7, stratify=degree,
                                n_bins=n_bins)
    X_imputed = FeatPropImputer(n_neighbors=5, device="cpu").fit_transform(X_hidden, Y)
    expected = imputation_score(X, X_imputed, X_hidden, modalities=SIZES)
    scorer = make_imputation_scorer(SIZES, fraction=0.15, random_state=7, stratify="degree",
                                    n_bins=n_bins)
    assert scorer(FeatPropImputer(n_neighbors=5, device="cpu"), X, Y) == expected
    assert f"n_bins={n_bins}" in repr(scorer)
    # The bins matter on this data, so a scorer ignoring n_bins would fail above.
    other, _ = hide_observed(X, SIZES, fraction=0.15, random_state=7, stratify=degree)
    assert not np.array_equal(np.isnan(X_hidden), np.isnan(other))
