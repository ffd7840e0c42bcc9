"""GraphImputer against dense references: hand-written rules and the official transcription."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from sklearn.base import clone

from skmm import FeatPropImputer, GraphImputer
from skmm.diffusion import n_series_terms, rewired_graph, transition_matrix, truncation_error

from . import _official_graph_imputers as off
from ._imputer_checks import check_new_item_rule
from .conftest import random_interactions, requires_cuda

METHODS = ["neighmean", "multihop", "ppr", "heat"]


def _catalogue(seed=1, n_items=60, n_users=25, density=0.12):
    """Interactions with ties, isolated items (the last 4) and three components."""
    return random_interactions(n_items, n_users, density, seed=seed, n_isolated=4, n_blocks=3)


def _denser(seed):
    """Fewer items without interactions: the diffusions reach most missing entries."""
    return random_interactions(60, 40, 0.15, seed=seed, n_isolated=3, n_blocks=2)


def _masked(n_items, n_features, mask, seed):
    """Features with NaN at the missing entries, the isolated items missing something."""
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=1.0, size=(n_items, n_features))
    if mask == "rows":
        missing = np.zeros(X.shape, bool)
        missing[rng.random(n_items) < 0.5] = True
    else:
        missing = rng.random(X.shape) < 0.4
    missing[-4:, :2] = True
    missing[0, 0] = False  # every column keeps an observed value
    X[missing] = np.nan
    return X


# ------------------------------------------------------------------------------------------
# Dense references, written from the rules
# ------------------------------------------------------------------------------------------

def dense_graph(Y, k, similarity="count", symmetric=False):
    """skmm's graph: the ``k`` other items of largest similarity with a common user, ties to
    the smaller index; weight 1."""
    R = off.dense_interactions(Y)
    C = R @ R.T
    d = np.diag(C)
    n = C.shape[0]
    A = np.zeros((n, n))
    for i in range(n):
        if similarity == "count":
            key = C[i]
        else:  # cosine: c_ij / sqrt(d_i d_j) ranks row i like c_ij**2 / d_j
            key = np.divide(C[i] ** 2, d, out=np.zeros(n), where=d > 0)
        candidates = sorted((j for j in range(n) if j != i and C[i, j] > 0),
                            key=lambda j: (-key[j], j))
        A[i, candidates[:k]] = 1.0
    return np.maximum(A, A.T) if symmetric else A


def _fallback(X, Z, pending, fallback="mean", fill_value=0.0):
    fill = np.nanmean(X, axis=0) if fallback == "mean" else np.full(X.shape[1], fill_value)
    Z = Z.copy()
    Z[pending] = np.broadcast_to(fill, X.shape)[pending]
    return Z


def dense_neigh_mean(A, X):
    """Each missing entry: the mean of the neighbours observing it; none: the column mean."""
    missing = np.isnan(X)
    Z = X.copy()
    pending = np.zeros_like(missing)
    for i, c in zip(*np.nonzero(missing)):
        donors = [j for j in np.flatnonzero(A[i]) if not missing[j, c]]
        if donors:
            Z[i, c] = X[donors, c].mean()
        else:
            pending[i, c] = True
    return _fallback(X, Z, pending)


def dense_reset_propagation(P, X, n_iter):
    """``Z <- P Z``, observed entries reset, ``n_iter`` times from zeros; entries that no
    observed value reached along P's edges within ``n_iter`` hops take the column mean."""
    missing = np.isnan(X)
    known = np.where(missing, 0.0, X)
    Z, reach = known.copy(), ~missing
    for _ in range(n_iter):
        Z = np.where(missing, P @ Z, known)
        reach = reach | (((P != 0).astype(float) @ reach.astype(float)) > 0)
    return _fallback(X, Z, missing & ~reach)


def dense_transition(A):
    """``D^-1 (A + I)``, row sums D: the default transition matrix of PPR and heat."""
    At = A + np.eye(A.shape[0])
    return At / At.sum(axis=1, keepdims=True)


def dense_row_top_k(T, rows, k, scale=None):
    """Row top-k of ``T`` without the diagonal, ranked by ``T_ij / scale_j`` (values equal to
    1e-12 tie, ties to the smaller index), the kept entries normalised to sum 1."""
    n = T.shape[0]
    scale = np.ones(n) if scale is None else scale
    W = np.zeros((n, n))
    for i in rows:
        row = T[i].copy()
        row[i] = 0
        key = np.round(row / scale * 2.0 ** 40)
        order = sorted(np.flatnonzero(row > 1e-15), key=lambda j: (-key[j], j))[:k]
        if order:
            W[i, order] = row[order] / row[order].sum()
    return W


def _assert_no_near_ties_at_cut(T, rows, k):
    for i in rows:
        row = T[i].copy()
        row[i] = 0
        vals = np.unique(np.round(row[row > 1e-15], 12))[::-1]  # exact ties are fine
        if vals.size > k:
            assert np.all(np.diff(vals[:k + 1]) < -1e-9), "near-tie at the cut: another seed"


def _fit(X, Y, **params):
    return GraphImputer(device="cpu", **params).fit_transform(X, Y)


# ------------------------------------------------------------------------------------------
# NeighMean
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", ["rows", "entries"])
@pytest.mark.parametrize("similarity", ["count", "cosine"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_neighmean_matches_dense_rule(mask, similarity, symmetric):
    Y = _catalogue()
    X = _masked(60, 5, mask, seed=2)
    expected = dense_neigh_mean(dense_graph(Y, 3, similarity, symmetric), X)
    imp = GraphImputer(method="neighmean", n_neighbors=3, similarity=similarity,
                       symmetric=symmetric, device="cpu")
    np.testing.assert_allclose(imp.fit_transform(X, Y), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(imp.graph_.toarray(), dense_graph(Y, 3, similarity, symmetric))
    n_missing = int(np.isnan(X).sum())
    assert imp.n_propagated_ + imp.n_fallback_ == n_missing
    assert imp.n_fallback_ > 0  # the isolated items
    assert imp.device_ == "cpu"


def test_neighmean_by_hand():
    # Item 1 (users 0, 1) neighbours: 0 and 2; item 3 (user 1): 1 and 2, only 2 observes col 1.
    X = np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, 4.0], [5.0, np.nan]])
    Y = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 1], [0, 1]]))
    out = _fit(X, Y, method="neighmean", n_neighbors=2)
    np.testing.assert_allclose(out, [[1, 2], [2, 3], [3, 4], [5, 4]])
    # The official rule on the authors' top-2 (self included, counted as 0): item 1 lists
    # itself (count 2) and item 0; item 3 itself and item 1, both missing column 1.
    out = _fit(X, Y, method="neighmean", n_neighbors=2, paper_compat=True)
    np.testing.assert_allclose(out, [[1, 2], [0.5, 1], [3, 4], [5, 2]])


@pytest.mark.parametrize("mask", ["rows", "entries"])
@pytest.mark.parametrize("top_k", [3, 6])
def test_neighmean_paper_compat_matches_official(mask, top_k):
    Y = _catalogue()
    X = _masked(60, 5, mask, seed=3)
    missing = np.isnan(X)
    expected = off.official_neigh_mean(off.official_graph(Y, top_k), X, missing)
    imp = GraphImputer(method="neighmean", n_neighbors=top_k, paper_compat=True, device="cpu")
    out = imp.fit_transform(X, Y)
    # No fallback in the official rule: an entry without observed neighbour is 0.
    np.testing.assert_allclose(out, np.where(missing, expected, X), rtol=1e-6, atol=1e-6)
    assert imp.n_fallback_ == 0 and imp.n_propagated_ == missing.sum()
    np.testing.assert_array_equal(imp.graph_.toarray(), off.official_graph(Y, top_k))


# ------------------------------------------------------------------------------------------
# MultiHop
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", ["rows", "entries"])
def test_multihop_default_equals_featprop(mask):
    rng = np.random.default_rng(0)
    Y = sp.csr_matrix(rng.random((120, 80)) < 0.1)
    X = _masked(120, 7, mask, seed=4)
    got = GraphImputer(device="cpu").fit_transform(X, Y)
    expected = FeatPropImputer(device="cpu").fit_transform(X, Y)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got, expected)  # the same engine on the same operands


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("n_iter", [0, 1, 5])
def test_multihop_equals_featprop_and_dense_reference(symmetric, n_iter):
    Y = _catalogue()
    X = _masked(60, 5, "entries", seed=5)
    imp = GraphImputer(method="multihop", n_neighbors=3, symmetric=symmetric, n_iter=n_iter,
                       device="cpu")
    got = imp.fit_transform(X, Y)
    fp = FeatPropImputer(n_neighbors=3, symmetric=symmetric, n_iter=n_iter, device="cpu")
    np.testing.assert_array_equal(got, fp.fit_transform(X, Y))
    assert (imp.n_propagated_, imp.n_fallback_) == (fp.n_propagated_, fp.n_fallback_)
    A = dense_graph(Y, 3, symmetric=symmetric)
    deg = A.sum(axis=1)
    inv = np.divide(1.0, np.sqrt(deg), out=np.zeros_like(deg), where=deg > 0)
    expected = dense_reset_propagation(inv[:, None] * A * inv[None, :], X, n_iter)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mask", ["rows", "entries"])
def test_multihop_paper_compat_matches_official(mask):
    Y = _catalogue()
    X = _masked(60, 5, mask, seed=6)
    missing = np.isnan(X)
    top_k, n_iter = 6, 4
    expected = off.official_multihop(off.official_graph(Y, top_k), X, missing, n_iter)
    out = _fit(X, Y, method="multihop", n_neighbors=top_k, n_iter=n_iter, paper_compat=True)
    np.testing.assert_allclose(out, np.where(missing, expected, X), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------
# PPR and heat
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel", ["ppr", "heat"])
@pytest.mark.parametrize("rank", ["value", "relative"])
@pytest.mark.parametrize("n_iter", [1, 4])
def test_diffusion_exact_rows_match_dense_operator(kernel, rank, n_iter):
    """Converged series, no pruning: the row top-k of the dense inverse / expm."""
    Y = _denser(seed=2)
    X = _masked(60, 5, "entries", seed=7)
    k = 4  # one n_neighbors: the graph's edges per item and the entries kept per row of T
    T = off.diffusion_kernel(dense_transition(dense_graph(Y, k)), kernel)
    rows = np.flatnonzero(np.isnan(X).any(axis=1))
    scale = T.sum(axis=0) if rank == "relative" else None
    _assert_no_near_ties_at_cut(T if scale is None else T / scale, rows, k)
    expected = dense_reset_propagation(dense_row_top_k(T, rows, k, scale), X, n_iter)
    got = _fit(X, Y, method=kernel, n_neighbors=k, n_iter=n_iter, tol=1e-13, prune_tol=0,
               rank=rank)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    reached = np.isnan(X) & (got != np.broadcast_to(np.nanmean(X, axis=0), X.shape))
    assert reached.sum() > 0.8 * np.isnan(X).sum()  # the diffusion, not the fallback


@pytest.mark.parametrize("kernel", ["ppr", "heat"])
@pytest.mark.parametrize("tol", [1e-2, 1e-4])
def test_diffusion_default_form_within_truncation_bound(kernel, tol):
    """Every reached item kept (no cut), exact rows: the imputation is within the bound of
    the Notes, ``n_iter * 2 eps_J / m * max|X|``, of the one on the exact dense operator."""
    Y = _denser(seed=3)
    X = _masked(60, 4, "rows", seed=8)
    n_iter = 3
    # n_neighbors=60: every co-interacted item is an edge and every reached item is kept.
    got = _fit(X, Y, method=kernel, n_neighbors=60, n_iter=n_iter, tol=tol, prune_tol=0)
    T = off.diffusion_kernel(dense_transition(dense_graph(Y, 60)), kernel)
    rows = np.flatnonzero(np.isnan(X).any(axis=1))
    expected = dense_reset_propagation(dense_row_top_k(T, rows, 60), X, n_iter)
    off_diag = T - np.diag(np.diag(T))
    mass = off_diag.sum(axis=1)[rows]
    mass = mass[mass > 1e-12]  # isolated items: no neighbour, the fallback on both sides
    eps = truncation_error(kernel, n_series_terms(kernel, tol))
    assert eps <= tol
    bound = n_iter * 2 * eps / mass.min() * np.nanmax(np.abs(X))
    err = np.abs(got - expected).max()
    assert err <= bound + 1e-5
    if tol == 1e-2:
        assert err > 1e-5  # the truncation is visible, and the bound covers it


@pytest.mark.parametrize("kernel", ["ppr", "heat"])
def test_diffusion_pruned_default_is_close_to_exact(kernel):
    """The defaults (tol=1e-4, prune_tol=1e-4) against the exact dense operator, no cut."""
    Y = _denser(seed=3)
    X = _masked(60, 4, "entries", seed=9)
    rows = np.flatnonzero(np.isnan(X).any(axis=1))
    T = off.diffusion_kernel(dense_transition(dense_graph(Y, 60)), kernel)
    expected = dense_reset_propagation(dense_row_top_k(T, rows, 60), X, 3)
    imp = GraphImputer(method=kernel, n_neighbors=60, device="cpu")
    got = imp.fit_transform(X, Y)
    # The bound of the Notes with the mass the pruned rows miss, which rewired_graph accounts
    # exactly (its ``error``, tested against the dense rows in test_diffusion.py).
    _, info = rewired_graph(transition_matrix(imp.graph_), rows, kernel=kernel, n_neighbors=60)
    mass = (T - np.diag(np.diag(T))).sum(axis=1)[rows]
    has = mass > 1e-12
    bound = 3 * 2 * (info.error[has] / mass[has]).max() * np.nanmax(np.abs(X))
    assert np.abs(got - expected).max() <= bound + 1e-5
    assert bound < 0.5  # informative: the pruning is fine enough here


@pytest.mark.parametrize("kernel", ["ppr", "heat"])
def test_diffusion_is_convex(kernel):
    Y = _catalogue(seed=4)
    X = _masked(60, 4, "rows", seed=10)
    out = _fit(X, Y, method=kernel, n_neighbors=5, n_iter=10)
    lo, hi = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    assert ((out >= lo - 1e-5) & (out <= hi + 1e-5)).all()


@pytest.mark.parametrize("kernel", ["ppr", "heat"])
@pytest.mark.parametrize("mask", ["rows", "entries"])
def test_diffusion_paper_compat_matches_official(kernel, mask):
    Y = _catalogue()
    X = _masked(60, 5, mask, seed=11)
    missing = np.isnan(X)
    top_k, n_iter = 6, 5
    expected = off.official_diffusion(off.official_graph(Y, top_k), X, missing, n_iter,
                                      kernel, top_k)
    imp = GraphImputer(method=kernel, n_neighbors=top_k, n_iter=n_iter, paper_compat=True,
                       device="cpu")
    out = imp.fit_transform(X, Y)
    np.testing.assert_allclose(out, np.where(missing, expected, X), atol=1e-5)
    assert imp.n_fallback_ == 0


def test_diffusion_alpha_and_t_reach_the_operator():
    Y = _catalogue(seed=2)
    X = _masked(60, 3, "rows", seed=12)
    base = _fit(X, Y, method="ppr", n_neighbors=5)
    assert not np.allclose(base, _fit(X, Y, method="ppr", n_neighbors=5, alpha=0.5))
    heat = _fit(X, Y, method="heat", n_neighbors=5)
    assert not np.allclose(heat, _fit(X, Y, method="heat", n_neighbors=5, t=1.0))


# ------------------------------------------------------------------------------------------
# The contract: observed entries, inputs, y, transform, pickle, parameters
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("paper_compat", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_observed_entries_bit_identical_inputs_unchanged(method, paper_compat, dtype):
    Y = _catalogue()
    X = _masked(60, 5, "entries", seed=13).astype(dtype)
    X_before, Y_before = X.copy(), Y.copy()
    out = _fit(X, Y, method=method, n_neighbors=4, paper_compat=paper_compat)
    assert out.dtype == dtype
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(out[observed].view(f"u{X.itemsize}"),
                                  X[observed].view(f"u{X.itemsize}"))
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(X, X_before)
    assert (Y != Y_before).nnz == 0


@pytest.mark.parametrize("method", METHODS)
def test_without_y_warns_and_takes_the_fallback(method):
    X = _masked(30, 3, "entries", seed=14)
    imp = GraphImputer(method=method, device="cpu")
    with pytest.warns(UserWarning, match="GraphImputer got no y"):
        out = imp.fit_transform(X)
    np.testing.assert_allclose(out, _fallback(X, X, np.isnan(X)))
    assert imp.graph_ is None and imp.n_propagated_ == 0
    assert imp.n_fallback_ == np.isnan(X).sum()
    imp = GraphImputer(method=method, fallback="constant", fill_value=-1.0, device="cpu")
    with pytest.warns(UserWarning):
        out = imp.fit_transform(X)
    np.testing.assert_array_equal(out[np.isnan(X)], -1.0)


def test_no_warning_with_y():
    Y = _catalogue()
    X = _masked(60, 3, "rows", seed=15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(X, Y, method="ppr", n_neighbors=3)


@pytest.mark.parametrize("method", METHODS)
def test_constant_fallback_and_nan_fill(method):
    Y = _catalogue()
    X = _masked(60, 3, "rows", seed=16)
    imp = GraphImputer(method=method, n_neighbors=3, fallback="constant", fill_value=np.nan,
                       device="cpu")
    out = imp.fit_transform(X, Y)
    # The isolated items (no neighbour at all) keep their missing entries.
    assert np.isnan(out[-4:][np.isnan(X[-4:])]).all()
    assert np.isnan(out).sum() == imp.n_fallback_


@pytest.mark.parametrize("method", METHODS)
def test_transform_of_the_fitted_matrix_and_of_new_items(method):
    Y = _catalogue()
    X = _masked(60, 4, "entries", seed=17)
    imp = GraphImputer(method=method, n_neighbors=3, device="cpu")
    fitted = imp.fit_transform(X, Y)
    np.testing.assert_array_equal(imp.transform(X), fitted)
    np.testing.assert_array_equal(imp.transform(X.copy()), fitted)  # a copy is recognised too
    fitted[:] = 0  # the result is the caller's: changing it does not change the estimator
    np.testing.assert_array_equal(imp.transform(X), imp.fit_transform(X, Y))
    completed = imp.transform(X)
    rng = np.random.default_rng(18)
    new = rng.normal(size=(4, 4))
    new[0, 2:] = np.nan
    new[1, :1] = np.nan
    new[2] = np.nan
    assert imp.n_donors_ == 3
    out = check_new_item_rule(imp, completed, new, partial_rows=(0, 1), empty_rows=(2,))
    np.testing.assert_array_equal(out[3], new[3])
    # One changed observed value: not the fitted matrix, so the new-item rule.
    X2 = X.copy()
    X2[np.flatnonzero(~np.isnan(X2[:, 0]))[3], 0] += 1.0
    assert not np.array_equal(imp.transform(X2), fitted)
    np.testing.assert_array_equal(imp.transform(X2)[~np.isnan(X2)], X2[~np.isnan(X2)])


@pytest.mark.parametrize("method", METHODS)
def test_pickle_round_trip(method):
    Y = _catalogue()
    X = _masked(60, 4, "entries", seed=19)
    imp = GraphImputer(method=method, n_neighbors=3, device="cpu").fit(X, Y)
    again = pickle.loads(pickle.dumps(imp))
    np.testing.assert_array_equal(again.transform(X), imp.transform(X))
    new = _masked(5, 4, "entries", seed=20)
    np.testing.assert_array_equal(again.transform(new), imp.transform(new))
    assert (again.graph_ != imp.graph_).nnz == 0


@pytest.mark.parametrize("method", METHODS)
def test_deterministic(method):
    Y = _catalogue()
    X = _masked(60, 4, "entries", seed=21)
    first = _fit(X, Y, method=method, n_neighbors=4)
    np.testing.assert_array_equal(first, clone(GraphImputer(method=method, n_neighbors=4,
                                                            device="cpu")).fit_transform(X, Y))


def test_float64_close_to_float32():
    Y = _catalogue()
    X = _masked(60, 4, "entries", seed=22)
    for method in METHODS:
        a = _fit(X, Y, method=method, n_neighbors=4)
        b = _fit(X, Y, method=method, n_neighbors=4, dtype="float64")
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_n_iter_zero_leaves_everything_to_the_fallback():
    Y = _catalogue()
    X = _masked(60, 3, "entries", seed=23)
    for method in ("multihop", "ppr", "heat"):
        imp = GraphImputer(method=method, n_neighbors=3, n_iter=0, device="cpu")
        np.testing.assert_allclose(imp.fit_transform(X, Y), _fallback(X, X, np.isnan(X)))
        assert imp.n_propagated_ == 0
    # NeighMean has no layers: n_iter does not change it.
    np.testing.assert_array_equal(_fit(X, Y, method="neighmean", n_neighbors=3, n_iter=0),
                                  _fit(X, Y, method="neighmean", n_neighbors=3))


def test_method_is_searchable_with_set_params():
    Y = _catalogue()
    X = _masked(60, 3, "rows", seed=24)
    imp = GraphImputer(device="cpu", n_neighbors=3)
    results = {m: clone(imp).set_params(method=m).fit_transform(X, Y) for m in METHODS}
    for m in METHODS:
        np.testing.assert_array_equal(results[m], _fit(X, Y, method=m, n_neighbors=3))
    assert not np.allclose(results["neighmean"], results["ppr"])


@pytest.mark.parametrize("param, value", [
    ("method", "featprop"), ("n_neighbors", 0), ("n_neighbors", True), ("similarity", "dot"),
    ("n_iter", -1), ("alpha", 0.0), ("alpha", 1.5), ("t", -1.0), ("tol", 0.0), ("tol", 1.0),
    ("prune_tol", -1e-3), ("rank", "degree"), ("paper_compat", "yes"), ("fallback", "median"),
    ("fill_value", np.inf), ("dtype", "float16"), ("symmetric", 1.5),
])
def test_bad_parameters_name_themselves(param, value):
    Y = _catalogue()
    X = _masked(60, 3, "rows", seed=25)
    with pytest.raises(ValueError, match=f"'{param}' parameter"):
        GraphImputer(**{param: value}, device="cpu").fit(X, Y)


@pytest.mark.parametrize("params, name", [
    ({"similarity": "cosine"}, "similarity"), ({"symmetric": True}, "symmetric"),
    ({"n_neighbors": 61}, "n_neighbors"),
])
def test_paper_compat_conflicts_are_refused(params, name):
    Y = _catalogue()
    X = _masked(60, 3, "rows", seed=26)
    with pytest.raises(ValueError, match=name):
        GraphImputer(paper_compat=True, device="cpu", **params).fit(X, Y)


def test_bad_inputs():
    Y = _catalogue()
    X = _masked(60, 3, "rows", seed=27)
    with pytest.raises(ValueError, match="y"):
        GraphImputer(device="cpu").fit(X, Y[:50])
    X_inf = X.copy()
    X_inf[1, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        GraphImputer(device="cpu").fit(X_inf, Y)
    X_empty = X.copy()
    X_empty[:, 2] = np.nan
    with pytest.raises(ValueError, match="no observed value"):
        GraphImputer(device="cpu").fit(X_empty, Y)
    with pytest.raises(ValueError, match="device"):
        GraphImputer(device="tpu").fit(X, Y)
    imp = GraphImputer(device="cpu").fit(X, Y)
    with pytest.raises(ValueError, match="features"):
        imp.transform(X[:, :2])


def test_masked_array_input():
    Y = _catalogue()
    X = _masked(60, 3, "entries", seed=28)
    Xm = np.ma.masked_invalid(X)
    Xm.data[np.isnan(X)] = 7.0  # values under the mask are ignored
    np.testing.assert_array_equal(_fit(Xm, Y, method="ppr", n_neighbors=3),
                                  _fit(X, Y, method="ppr", n_neighbors=3))


@requires_cuda
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("paper_compat", [False, True])
def test_cuda_matches_cpu(method, paper_compat):
    Y = _catalogue()
    X = _masked(60, 5, "entries", seed=29)
    params = dict(method=method, n_neighbors=4, paper_compat=paper_compat)
    cpu = GraphImputer(device="cpu", **params).fit_transform(X, Y)
    imp = GraphImputer(device="cuda", **params)
    np.testing.assert_allclose(imp.fit_transform(X, Y), cpu, rtol=1e-5, atol=1e-5)
    assert imp.device_.startswith("cpu" if method == "neighmean" else "cuda")


def test_scipy_expm_is_the_heat_reference():
    # The dense reference's heat operator is scipy's expm of -t (I - H), rows summing to 1.
    H = dense_transition(dense_graph(_catalogue(), 3))
    T = off.diffusion_kernel(H, "heat")
    np.testing.assert_allclose(T, scipy.linalg.expm(-5.0 * (np.eye(60) - H)))
    np.testing.assert_allclose(T.sum(axis=1), 1.0)


def test_paper_compat_diffusion_refuses_large_catalogues(monkeypatch):
    import skmm.impute._graph as graph_module

    monkeypatch.setattr(graph_module, "_PAPER_MAX_ITEMS", 50)  # instead of 1e5 items
    Y = _catalogue()
    X = _masked(60, 3, "rows", seed=30)
    with pytest.raises(ValueError, match="paper_compat=False"):
        GraphImputer(method="ppr", paper_compat=True, n_neighbors=4, device="cpu").fit(X, Y)
    GraphImputer(method="multihop", paper_compat=True, n_neighbors=4, device="cpu").fit(X, Y)


def test_grid_search_over_method():
    """One estimator, one graph contract: GridSearchCV compares the methods on hidden entries
    (a scorer of known truth; skmm's self-supervised scorer is separate)."""
    from sklearn.model_selection import GridSearchCV

    from skmm.model_selection import AllItemsSplit

    Y = _denser(seed=5)
    rng = np.random.default_rng(31)
    X_true = rng.normal(size=(60, 3))
    X = X_true.copy()
    hidden = rng.random(X.shape) < 0.3
    hidden[0] = False
    X[hidden] = np.nan

    def neg_mse(estimator, X_, y_):
        return -np.mean((estimator.transform(X_)[hidden] - X_true[hidden]) ** 2)

    grid = {"method": METHODS, "n_neighbors": [3, 6]}
    search = GridSearchCV(GraphImputer(device="cpu"), grid, scoring=neg_mse,
                          cv=AllItemsSplit()).fit(X, Y)
    for params, score in zip(search.cv_results_["params"],
                             search.cv_results_["mean_test_score"]):
        expected = -np.mean((_fit(X, Y, **params)[hidden] - X_true[hidden]) ** 2)
        assert score == pytest.approx(expected)
    np.testing.assert_array_equal(search.best_estimator_.transform(X),
                                  _fit(X, Y, **search.best_params_))


@pytest.mark.parametrize("method", ["neighmean", "multihop", "ppr", "heat"])
@pytest.mark.parametrize("similarity", ["count", "cosine"])
def test_permutation_equivariance_without_a_top_k_cut(method, similarity):
    """Relabelling the items relabels the imputation when every neighbour is kept (no top-k
    cut, so no tie rule decides anything; no pruning of the diffusion rows)."""
    rng = np.random.default_rng(21)
    n_items = 30
    Y = sp.csr_matrix(rng.random((n_items, 40)) < 0.15)
    X = rng.normal(size=(n_items, 4))
    X[rng.random((n_items, 4)) < 0.3] = np.nan
    X[:, 0][np.isnan(X[:, 0])] = 0.5  # keep a column partly observed whatever the draw
    perm = rng.permutation(n_items)
    params = dict(method=method, similarity=similarity, n_neighbors=n_items, prune_tol=0.0,
                  tol=1e-10, device="cpu", dtype="float64")
    imputer = GraphImputer(**params)
    base = imputer.fit_transform(X, Y)
    assert imputer.n_propagated_ > 0.8 * np.isnan(X).sum()  # the graph, not the fallback
    moved = GraphImputer(**params).fit_transform(X[perm], Y[perm])
    np.testing.assert_allclose(moved, base[perm], rtol=1e-9, atol=1e-12)
