"""The graph imputation operators (skmm.diffusion) against dense references.

The official rules come from ``tests/_official_graph_imputers.py`` (a dense transcription of the
authors' code); skmm's own forms are checked against dense computations of their definitions
(the exact operator by ``np.linalg.inv`` / ``scipy.linalg.expm``).
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.special import gammaln

from skmm.diffusion import (
    diffuse,
    diffusion_impute,
    n_series_terms,
    neighbour_mean,
    paper_diffusion_operator,
    paper_graph,
    rewired_graph,
    series_coefficients,
    transition_matrix,
    truncation_error,
)
from skmm.graph import cointeraction_graph, normalize_adjacency
from skmm.propagation import propagate_features

from . import _official_graph_imputers as off
from .conftest import random_interactions


def _catalogue(seed=1, n_items=60, n_users=25, density=0.12):
    """Interactions with ties, isolated items (the last 4) and three components."""
    return random_interactions(n_items, n_users, density, seed=seed, n_isolated=4, n_blocks=3)


def _masked(n_items, n_features, mask, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_items, n_features))
    if mask == "rows":
        missing = np.zeros(X.shape, bool)
        missing[rng.random(n_items) < 0.5] = True
    else:
        missing = rng.random(X.shape) < 0.4
    missing[-4:, :2] = True  # the isolated items miss something
    return X, missing


# ------------------------------------------------------------------------------------------
# The authors' graph
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("top_k", [1, 2, 3, 6, 20, 60])
@pytest.mark.parametrize("seed", [1, 2])
def test_paper_graph_matches_official(top_k, seed):
    Y = _catalogue(seed)
    A = paper_graph(Y, top_k)
    expected = off.official_graph(Y, top_k)
    assert A.dtype == np.float32 and A.has_sorted_indices
    np.testing.assert_array_equal(A.toarray(), expected)
    assert (np.diff(A.indptr) == top_k).all()


def test_paper_graph_self_displaced_by_tied_smaller_items():
    # Items 0-3 share the same single user: for item 3, items 0, 1, 2 tie with its own count
    # and come first, so with top_k=2 it lists 0 and 1, not itself.
    Y = sp.csr_matrix(np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1]]))
    A = paper_graph(Y, 2).toarray()
    np.testing.assert_array_equal(A[3], [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(A[0], [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(A[4], [1, 0, 0, 0, 1])  # self, then the smallest pad
    np.testing.assert_array_equal(A, off.official_graph(Y, 2))


def test_paper_graph_rejects_top_k_above_n_items():
    with pytest.raises(ValueError, match="top_k=5 exceeds the number of items"):
        paper_graph(np.eye(4), 5)
    with pytest.raises(ValueError, match="top_k"):
        paper_graph(np.eye(4), 0)


# ------------------------------------------------------------------------------------------
# NeighMean
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", ["rows", "entries"])
@pytest.mark.parametrize("top_k", [3, 6])
def test_neighbour_mean_paper_compat_matches_official(mask, top_k):
    Y = _catalogue()
    X, missing = _masked(60, 5, mask, seed=3)
    A = paper_graph(Y, top_k)
    expected = off.official_neigh_mean(off.official_graph(Y, top_k), X, missing)
    for dtype, atol in [(np.float64, 1e-12), (np.float32, 1e-5)]:
        rows, values, reached = neighbour_mean(A, np.where(missing, np.nan, X), missing,
                                               paper_compat=True, dtype=dtype)
        np.testing.assert_array_equal(rows, np.flatnonzero(missing.any(axis=1)))
        assert values.dtype == dtype
        np.testing.assert_allclose(values, expected[rows], atol=atol)
        # No fallback in the official rule: entries without an observed neighbour are 0.
        assert (values[~reached] == 0).all()


def _dense_observed_mean(A, X, missing):
    """The default rule, one entry at a time: weighted mean of the observed neighbours."""
    A = A.toarray() if sp.issparse(A) else A
    out = np.where(missing, np.nan, X)
    n, d = X.shape
    for i in range(n):
        for c in range(d):
            if missing[i, c]:
                w = np.array([A[i, j] if (j != i and not missing[j, c]) else 0.0
                              for j in range(n)])
                if w.sum() > 0:
                    out[i, c] = w @ np.where(missing[:, c], 0.0, X[:, c]) / w.sum()
    return out


@pytest.mark.parametrize("mask", ["rows", "entries"])
@pytest.mark.parametrize("weighting", ["binary", "count"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_neighbour_mean_default_matches_dense_rule(mask, weighting, symmetric):
    Y = _catalogue()
    X, missing = _masked(60, 5, mask, seed=4)
    A = cointeraction_graph(Y, 4, weighting=weighting, symmetric=symmetric)
    expected = _dense_observed_mean(A, X, missing)
    rows, values, reached = neighbour_mean(A, np.where(missing, np.nan, X), dtype=np.float64)
    np.testing.assert_array_equal(reached, ~np.isnan(expected[rows]))
    np.testing.assert_allclose(values[reached], expected[rows][reached], atol=1e-12)
    assert (values[~reached] == 0).all()
    # The isolated items have no neighbour at all.
    assert not reached[np.isin(rows, np.arange(56, 60))][:, :2].any()


def test_neighbour_mean_by_hand():
    # Row 0 pulls from 1 (weight 1), 2 (weight 3) and itself (ignored by default).
    A = sp.csr_matrix(np.array([[5.0, 1, 3], [0, 0, 0], [1, 0, 0]]))
    X = np.array([[np.nan, np.nan], [2.0, np.nan], [6.0, 8.0]])
    rows, values, reached = neighbour_mean(A, X, dtype=np.float64)
    np.testing.assert_array_equal(rows, [0, 1])
    np.testing.assert_allclose(values[0], [(1 * 2 + 3 * 6) / 4, 8.0])
    np.testing.assert_array_equal(reached, [[True, True], [True, False]])
    # Official: plain mean over the 3 listed entries, self and missing ones as 0.
    _, values, _ = neighbour_mean(A, X, paper_compat=True, dtype=np.float64)
    np.testing.assert_allclose(values[0], [(2 + 6) / 3, 8 / 3])


def test_neighbour_mean_is_shrunk_multihop_on_the_paper_graph():
    """Spec 2.2: NeighMean = ((k-1)/k) MultiHop(L=1) when self is in every top-k and every row
    has k-1 other neighbours (here: a dense catalogue, every pair co-interacts)."""
    rng = np.random.default_rng(0)
    Y = sp.csr_matrix((rng.random((30, 200)) < 0.5).astype(float))
    k = 5
    A = paper_graph(Y, k)
    assert (A.diagonal() == 1).all()
    X, missing = _masked(30, 4, "rows", seed=5)
    missing[-4:] = False
    X_nan = np.where(missing, np.nan, X)
    rows, nm, _ = neighbour_mean(A, X_nan, missing, paper_compat=True, dtype=np.float64)
    A0 = A.copy()
    A0.setdiag(0)
    A0.eliminate_zeros()
    P = normalize_adjacency(A0, dtype=np.float64)
    rows2, mh, _ = propagate_features(P, np.nan_to_num(X_nan), missing, 1, dtype=np.float64)
    np.testing.assert_array_equal(rows, rows2)
    np.testing.assert_allclose(nm, np.where(missing[rows], (k - 1) / k * mh, X[rows]),
                               atol=1e-12)


@pytest.mark.parametrize("mask", ["rows", "entries"])
def test_multihop_on_the_paper_graph_matches_official(mask):
    """MultiHop = FeatProp: skmm's propagation on the paper graph (diagonal dropped, as the
    official ``fill_diag``) reproduces the official rule."""
    Y = _catalogue()
    X, missing = _masked(60, 5, mask, seed=6)
    A = paper_graph(Y, 6)
    A.setdiag(0)
    A.eliminate_zeros()
    rows, values, _ = propagate_features(normalize_adjacency(A, dtype=np.float64),
                                         np.nan_to_num(np.where(missing, np.nan, X)), missing,
                                         4, dtype=np.float64)
    expected = off.official_multihop(off.official_graph(Y, 6), X, missing, 4)
    np.testing.assert_allclose(values, expected[rows], atol=1e-12)


# ------------------------------------------------------------------------------------------
# The series
# ------------------------------------------------------------------------------------------

SPEC_TABLES = {  # spec 3.3: terms J for eps_J <= 1e-2, 1e-3, 1e-4, 1e-6
    ("ppr", 0.05): [90, 135, 180, 270],
    ("ppr", 0.1): [44, 66, 88, 132],
    ("ppr", 0.2): [21, 31, 42, 62],
    ("heat", 1.0): [5, 6, 7, 10],
    ("heat", 5.0): [12, 14, 16, 20],
    ("heat", 10.0): [19, 22, 25, 29],
}


@pytest.mark.parametrize("key", list(SPEC_TABLES))
def test_n_series_terms_reproduces_the_spec_tables(key):
    kernel, value = key
    kw = {"alpha": value} if kernel == "ppr" else {"t": value}
    got = [n_series_terms(kernel, tol, **kw) for tol in (1e-2, 1e-3, 1e-4, 1e-6)]
    assert got == SPEC_TABLES[key]
    for J, tol in zip(got, (1e-2, 1e-3, 1e-4, 1e-6)):
        assert truncation_error(kernel, J, **kw) <= tol < truncation_error(kernel, J - 1, **kw)


@pytest.mark.parametrize("t", [0.5, 1.0, 5.0, 10.0])
def test_heat_truncation_error_is_the_poisson_tail_and_within_the_spec_bound(t):
    theta = series_coefficients("heat", 200, t=t)
    for J in range(0, 40):
        exact = 1.0 - theta[:J].sum() if J else 1.0
        eps = truncation_error("heat", J, t=t)
        assert eps == pytest.approx(max(exact, 0.0), abs=1e-14)
        if J + 1 > t and J > 0:
            bound = np.exp(-t + J * np.log(t) - gammaln(J + 1)) * (J + 1) / (J + 1 - t)
            assert eps <= bound * (1 + 1e-12)


def test_series_coefficients_by_hand():
    np.testing.assert_allclose(series_coefficients("ppr", 4, alpha=0.2),
                               [0.2, 0.16, 0.128, 0.1024])
    np.testing.assert_allclose(series_coefficients("heat", 3, t=2.0),
                               np.exp(-2) * np.array([1, 2, 2]))
    assert truncation_error("ppr", 3, alpha=0.5) == 0.125
    assert n_series_terms("ppr", 0.5, alpha=1.0) == 1


def _dense_transition(A):
    A = A.toarray().astype(float)
    np.fill_diagonal(A, 0)
    A += np.eye(A.shape[0])
    return A / A.sum(axis=1, keepdims=True)


def test_transition_matrix_default_and_paper_quirk():
    Y = _catalogue()
    A = cointeraction_graph(Y, 4, weighting="count")
    H = transition_matrix(A)
    np.testing.assert_allclose(H.toarray(), _dense_transition(A), atol=1e-15)
    np.testing.assert_allclose(H.sum(axis=1), 1.0)
    P = paper_graph(Y, 6)
    Hp = transition_matrix(P, paper_compat=True)
    np.testing.assert_allclose(Hp.toarray(), off.official_transition(P.toarray()), atol=1e-15)
    np.testing.assert_allclose(Hp.toarray(), (P.toarray() + np.eye(60)) / 7, atol=1e-15)
    # On a graph with unequal row sums the row-0 scalar is not a normalisation.
    Hq = transition_matrix(A, paper_compat=True).toarray()
    np.testing.assert_allclose(Hq, off.official_transition(A.toarray()), atol=1e-15)
    assert not np.allclose(Hq.sum(axis=1), 1)


@pytest.mark.parametrize("kernel", ["ppr", "heat"])
@pytest.mark.parametrize("tol", [1e-2, 1e-4, 1e-8])
def test_diffuse_is_within_the_truncation_bound(kernel, tol):
    Y = _catalogue()
    H = transition_matrix(cointeraction_graph(Y, 5))
    Z = np.random.default_rng(0).random((60, 7))  # non-negative: T_J Z is a lower bound
    exact = off.diffusion_kernel(H.toarray(), kernel) @ Z
    got = diffuse(H, Z, kernel=kernel, tol=tol)
    J = n_series_terms(kernel, tol)
    eps = truncation_error(kernel, J)
    assert (got <= exact + 1e-12).all()
    assert np.abs(exact - got).max() <= eps * np.abs(Z).max() + 1e-12
    # And it is exactly the truncated series.
    theta = series_coefficients(kernel, J)
    Hd, acc, P = H.toarray(), np.zeros_like(Z), Z.copy()
    for coef in theta:
        acc += coef * P
        P = Hd @ P
    np.testing.assert_allclose(got, acc, atol=1e-12)


@pytest.mark.parametrize("kernel", ["ppr", "heat"])
@pytest.mark.parametrize("mask", ["rows", "entries"])
@pytest.mark.parametrize("renormalize", [True, False])
def test_diffusion_impute_matches_dense_truncated_layers(kernel, mask, renormalize):
    Y = _catalogue()
    H = transition_matrix(cointeraction_graph(Y, 4))
    X, missing = _masked(60, 5, mask, seed=7)
    J, n_iter = 12, 3
    theta = series_coefficients(kernel, J)
    if renormalize:
        theta = theta / theta.sum()
    Hd = H.toarray()
    T = sum(c * np.linalg.matrix_power(Hd, p) for p, c in enumerate(theta))
    Z = np.where(missing, 0.0, X)
    for _ in range(n_iter):
        Z = np.where(missing, T @ Z, X)
    rows, values, reached = diffusion_impute(H, np.where(missing, np.nan, X), n_iter=n_iter,
                                             kernel=kernel, n_terms=J, renormalize=renormalize,
                                             dtype=np.float64)
    np.testing.assert_allclose(values, np.where(reached, Z[rows], 0.0), atol=1e-12)
    # Unreached entries are those the dense operator leaves at exactly zero weight.
    reach = ~missing.copy()
    Tpat = (T > 0).astype(float)
    for _ in range(n_iter):
        reach = reach | ((Tpat @ reach) > 0)
    np.testing.assert_array_equal(reached, reach[rows])
    rows32, values32, _ = diffusion_impute(H, np.where(missing, np.nan, X), n_iter=n_iter,
                                           kernel=kernel, n_terms=J, renormalize=renormalize)
    assert values32.dtype == np.float32
    np.testing.assert_allclose(values32, values, atol=1e-5)


def test_diffusion_impute_reach_counts_hops():
    # A path 0 - 1 - 2 - 3 - 4, only item 0 observed; J terms reach J - 1 hops per layer.
    A = sp.diags([np.ones(4), np.ones(4)], [1, -1], format="csr")
    H = transition_matrix(A)
    X = np.array([[1.0], [np.nan], [np.nan], [np.nan], [np.nan]])
    _, _, reached = diffusion_impute(H, X, n_iter=1, n_terms=3)
    np.testing.assert_array_equal(reached.ravel(), [True, True, False, False])
    _, _, reached = diffusion_impute(H, X, n_iter=2, n_terms=3)
    np.testing.assert_array_equal(reached.ravel(), [True, True, True, True])
    _, values, reached = diffusion_impute(H, X, n_iter=None, dtype=np.float64)
    assert reached.all()
    np.testing.assert_allclose(values, 1.0, atol=1e-5)  # one observed value: it everywhere


@pytest.mark.parametrize("mask", ["rows", "entries"])
def test_infinite_layers_ppr_solves_the_fixed_point(mask):
    Y = _catalogue()
    H = transition_matrix(cointeraction_graph(Y, 4))
    X, missing = _masked(60, 3, mask, seed=8)
    alpha = 0.2
    T = off.diffusion_kernel(H.toarray(), "ppr", alpha=alpha)
    rows, values, reached = diffusion_impute(H, np.where(missing, np.nan, X), n_iter=None,
                                             alpha=alpha, dtype=np.float64, solve_tol=1e-13)
    for c in range(X.shape[1]):
        m = np.flatnonzero(missing[:, c])
        k = np.flatnonzero(~missing[:, c])
        # Z_M = (T Z)_M with Z_K = X_K, for the rows that reach an observed value.
        r = np.flatnonzero(reached[np.searchsorted(rows, m), c]) if m.size else m
        mr = m[r]
        lhs = np.eye(mr.size) - T[np.ix_(mr, mr)]
        expected = np.linalg.solve(lhs, T[np.ix_(mr, k)] @ X[k, c])
        np.testing.assert_allclose(values[np.searchsorted(rows, mr), c], expected, atol=1e-9)


def test_infinite_layers_warns_when_not_converged():
    Y = _catalogue()
    H = transition_matrix(cointeraction_graph(Y, 4))
    X, missing = _masked(60, 2, "rows", seed=9)
    with pytest.warns(Warning, match="did not reach solve_tol"):
        diffusion_impute(H, np.where(missing, np.nan, X), n_iter=None, max_iter=2)


# ------------------------------------------------------------------------------------------
# (C) row top-k
# ------------------------------------------------------------------------------------------

def _dense_row_top_k(T, rows, k, keep_self, scale=None):
    """Row top-k of a dense T ranked by ``T_ij / scale_j`` (ties to the smaller index), the
    kept ``T_ij`` row-normalised."""
    n = T.shape[0]
    scale = np.ones(n) if scale is None else scale
    W = np.zeros((n, n))
    for i in rows:
        row = T[i].copy()
        if not keep_self:
            row[i] = 0
        key = np.round(row / scale * 2.0 ** 40)
        order = sorted(np.flatnonzero(row > 0), key=lambda j: (-key[j], j))[:k]
        if order:
            W[i, order] = row[order] / row[order].sum()
    return W


def _assert_no_ties_at_cut(T, rows, k, keep_self, gap=1e-9):
    for i in rows:
        row = T[i].copy()
        if not keep_self:
            row[i] = 0
        vals = np.sort(row[row > 0])[::-1]
        if vals.size > k:
            assert vals[k - 1] - vals[k] > gap, "a near-tie at the cut: pick another seed"


@pytest.mark.parametrize("kernel", ["ppr", "heat"])
@pytest.mark.parametrize("keep_self", [False, True])
@pytest.mark.parametrize("k", [2, 5])
def test_rewired_graph_exact_rows_match_dense_operator(kernel, keep_self, k):
    rng = np.random.default_rng(3)
    Y = sp.csr_matrix(rng.random((50, 40)) < 0.08)
    A = cointeraction_graph(Y, 4, weighting="count")
    H = transition_matrix(A)
    T = off.diffusion_kernel(H.toarray(), kernel)
    rows = np.flatnonzero(rng.random(50) < 0.5)
    W, info = rewired_graph(H, rows, kernel=kernel, n_neighbors=k, keep_self=keep_self,
                            prune_tol=0, tol=1e-13, batch_size=7)
    # Exact ties (structurally equivalent items) are allowed: both sides break them alike,
    # once the series is converged far below the 1e-12 ranking grid.
    np.testing.assert_allclose(W.toarray(), _dense_row_top_k(T, rows, k, keep_self),
                               atol=1e-10)
    np.testing.assert_array_equal(info.rows, rows)
    assert (info.error <= 1e-12).all()
    np.testing.assert_allclose(W.sum(axis=1).A1[rows][np.diff(W[rows].indptr) > 0], 1.0)


@pytest.mark.parametrize("kernel", ["ppr", "heat"])
@pytest.mark.parametrize("prune_tol", [0.0, 1e-3])
def test_rewired_graph_relative_ranking(kernel, prune_tol):
    """rank="relative": entries ranked by T_ij / m_j, m the column sums of T, weights T_ij."""
    Y = _catalogue(seed=2)
    H = transition_matrix(cointeraction_graph(Y, 5))
    T = off.diffusion_kernel(H.toarray(), kernel)
    rows = np.arange(1, 60, 3)
    W, info = rewired_graph(H, rows, kernel=kernel, n_neighbors=4, rank="relative",
                            prune_tol=prune_tol, tol=1e-13)
    np.testing.assert_allclose(info.column_mass, T.sum(axis=0), atol=1e-11)
    if prune_tol == 0:
        expected = _dense_row_top_k(T, rows, 4, False, scale=T.sum(axis=0))
        np.testing.assert_allclose(W.toarray(), expected, atol=1e-10)
    else:  # the pruned rows, ranked the same way
        J = n_series_terms(kernel, 1e-13)
        theta = series_coefficients(kernel, J)
        eps = np.array([truncation_error(kernel, j) for j in range(J + 1)])
        S = np.zeros_like(T)
        for i in rows:
            S[i] = _dense_pruned_series(H.toarray(), i, theta, eps, prune_tol)[0]
        expected = _dense_row_top_k(S, rows, 4, False, scale=info.column_mass)
        np.testing.assert_allclose(W.toarray(), expected, atol=1e-12)
    # It prefers items that receive little mass from everyone else.
    Wv, _ = rewired_graph(H, rows, kernel=kernel, n_neighbors=4, prune_tol=prune_tol,
                          tol=1e-13)
    m = T.sum(axis=0)
    assert m[W.indices].mean() < m[Wv.indices].mean()


def _dense_pruned_series(H, i, theta, eps, prune_tol):
    """The pruning rule of rewired_graph on dense vectors: (S_i, dropped l1 mass)."""
    J = len(theta)
    v = np.zeros(H.shape[0])
    v[i] = 1.0
    S, dropped = theta[0] * v, 0.0
    for step in range(1, J):
        v = v @ H
        remaining = eps[step] - eps[J]
        small = v * remaining < prune_tol
        dropped += v[small].sum() * remaining
        v[small] = 0
        S += theta[step] * v
    return S, dropped + eps[J]


@pytest.mark.parametrize("kernel", ["ppr", "heat"])
@pytest.mark.parametrize("prune_tol", [1e-2, 1e-3])
def test_rewired_graph_pruned_rows_and_their_exact_error(kernel, prune_tol):
    Y = _catalogue(seed=2)
    H = transition_matrix(cointeraction_graph(Y, 5))
    Hd = H.toarray()
    T = off.diffusion_kernel(Hd, kernel)
    tol = 1e-6
    J = n_series_terms(kernel, tol)
    theta = series_coefficients(kernel, J)
    eps = np.array([truncation_error(kernel, j) for j in range(J + 1)])
    rows = np.arange(0, 60, 2)
    W, info = rewired_graph(H, rows, kernel=kernel, n_neighbors=4, prune_tol=prune_tol,
                            tol=tol)
    S = np.zeros_like(T)
    for r, i in enumerate(rows):
        S[i], dropped = _dense_pruned_series(Hd, i, theta, eps, prune_tol)
        # The computed row is a lower bound of T's, and its l1 distance is known exactly.
        assert (S[i] <= T[i] + 1e-12).all()
        assert info.error[r] == pytest.approx(dropped, abs=1e-12)
        assert info.error[r] == pytest.approx((T[i] - S[i]).sum(), abs=1e-9)
    np.testing.assert_allclose(W.toarray(), _dense_row_top_k(S, rows, 4, False), atol=1e-12)


@pytest.mark.parametrize("kernel", ["ppr", "heat"])
def test_rewired_graph_equal_weight_rows_take_the_same_path_bit_for_bit(kernel, monkeypatch):
    # Rows of equal weights skip reading their data; a count-weighted graph mixes such rows
    # with others. Both must give what the general push gives, to the last bit.
    from skmm import diffusion

    rng = np.random.default_rng(11)
    Y = sp.csr_matrix(rng.random((80, 50)) < 0.1)
    H = transition_matrix(cointeraction_graph(Y, 5, weighting="count"))
    weight = diffusion._row_weights(H.indptr, H.data)
    lengths = np.diff(H.indptr)
    uniform = np.array([np.ptp(H.data[H.indptr[u]:H.indptr[u + 1]]) == 0 if lengths[u] else
                        False for u in range(80)])
    np.testing.assert_array_equal(weight > 0, uniform)
    np.testing.assert_array_equal(weight[uniform], H.data[H.indptr[:-1][uniform]])
    assert 0 < uniform.sum() < 80  # both kinds of rows are exercised
    rows = np.arange(0, 80, 3)
    W, info = rewired_graph(H, rows, kernel=kernel, n_neighbors=4, prune_tol=1e-3)
    monkeypatch.setattr(diffusion, "_row_weights", lambda indptr, data: np.zeros(80))
    W0, info0 = rewired_graph(H, rows, kernel=kernel, n_neighbors=4, prune_tol=1e-3)
    np.testing.assert_array_equal(W.indptr, W0.indptr)
    np.testing.assert_array_equal(W.indices, W0.indices)
    np.testing.assert_array_equal(W.data, W0.data)
    np.testing.assert_array_equal(info.error, info0.error)


def test_rewired_graph_imputes_convex_combinations():
    Y = _catalogue()
    H = transition_matrix(cointeraction_graph(Y, 4))
    X, missing = _masked(60, 3, "rows", seed=10)
    rows = np.flatnonzero(missing.any(axis=1))
    W, _ = rewired_graph(H, rows, n_neighbors=5)
    r, values, reached = propagate_features(W, np.nan_to_num(np.where(missing, np.nan, X)),
                                            missing, 20, dtype=np.float64)
    W_r = W[rows]
    np.testing.assert_allclose(W_r.sum(axis=1).A1[np.diff(W_r.indptr) > 0], 1.0)
    for c in range(3):
        known = X[~missing[:, c], c]
        v = values[reached[:, c], c]
        assert v.size and (v >= known.min() - 1e-12).all() and (v <= known.max() + 1e-12).all()


# ------------------------------------------------------------------------------------------
# (B) the official operator
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel", ["ppr", "heat"])
@pytest.mark.parametrize("top_k", [3, 6])
@pytest.mark.parametrize("seed", [1, 2])
def test_paper_operator_matches_official(kernel, top_k, seed):
    Y = _catalogue(seed)
    A = paper_graph(Y, top_k)
    T, info = paper_diffusion_operator(A, kernel=kernel, block_size=17)
    expected = off.official_operator(off.official_graph(Y, top_k), kernel, top_k)
    np.testing.assert_allclose(T.toarray(), expected, atol=1e-8)
    assert info.max_error <= 1e-10
    assert ((T > 0).sum(axis=0) <= top_k).all()


@pytest.mark.parametrize("kernel", ["ppr", "heat"])
@pytest.mark.parametrize("mask", ["rows", "entries"])
def test_paper_propagation_matches_official(kernel, mask):
    Y = _catalogue()
    X, missing = _masked(60, 5, mask, seed=11)
    top_k, n_iter = 6, 5
    T, _ = paper_diffusion_operator(paper_graph(Y, top_k), kernel=kernel)
    rows, values, _ = propagate_features(T, np.nan_to_num(np.where(missing, np.nan, X)),
                                         missing, n_iter, dtype=np.float64)
    expected = off.official_diffusion(off.official_graph(Y, top_k), X, missing, n_iter,
                                      kernel, top_k)
    np.testing.assert_allclose(values, expected[rows], atol=1e-5)


def test_paper_operator_grows_for_items_nobody_lists():
    """Quirk P3: an item in no other item's top-k has a column with only its own entry, 1
    after normalisation, so its imputation adds its inflow again at every layer."""
    Y = _catalogue()
    A = paper_graph(Y, 3)
    T, _ = paper_diffusion_operator(A, kernel="ppr")
    listed_by_others = (A - sp.diags(A.diagonal())).sum(axis=0).A1 > 0
    lonely = np.flatnonzero(~listed_by_others)
    assert lonely.size
    np.testing.assert_allclose(T.diagonal()[lonely], 1.0)


def test_paper_operator_refuses_large_graphs():
    with pytest.raises(ValueError, match="exceed max_items=10"):
        paper_diffusion_operator(paper_graph(np.eye(12), 2), max_items=10)


# ------------------------------------------------------------------------------------------
# PyG's GDC where the settings coincide
# ------------------------------------------------------------------------------------------

def _gdc(A, kernel, k, dim, normalization_out):
    from torch_geometric.data import Data
    from torch_geometric.transforms import GDC

    coo = sp.coo_matrix(A)
    diffusion = ({"method": "ppr", "alpha": 0.1} if kernel == "ppr"
                 else {"method": "heat", "t": 5.0})
    data = Data(edge_index=torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)),
                edge_attr=torch.from_numpy(coo.data.astype(np.float64)),
                num_nodes=A.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = GDC(self_loop_weight=1, normalization_in="row",
                  normalization_out=normalization_out, diffusion_kwargs=diffusion,
                  sparsification_kwargs={"method": "topk", "k": k, "dim": dim},
                  exact=True)(data)
    i, w = out.edge_index.numpy(), out.edge_attr.numpy()
    return sp.coo_matrix((w, (i[0], i[1])), shape=A.shape).toarray()


@pytest.mark.parametrize("kernel", ["ppr", "heat"])
def test_paper_operator_equals_pyg_gdc_column_top_k(kernel):
    """GDC with a row-normalised input (A + I, self weight 2 where listed: exactly the
    official H on the paper graph), column top-k and column normalisation is the official
    operator."""
    rng = np.random.default_rng(5)
    Y = sp.csr_matrix(rng.random((70, 60)) < 0.15)
    A = paper_graph(Y, 5)
    T, info = paper_diffusion_operator(A, kernel=kernel)
    assert info.n_tied_columns == 0  # torch's order at ties is unspecified
    np.testing.assert_allclose(T.toarray(), _gdc(A, kernel, 5, 0, "col"), atol=1e-9)


@pytest.mark.parametrize("kernel", ["ppr", "heat"])
def test_rewired_graph_with_self_equals_pyg_gdc_row_top_k(kernel):
    rng = np.random.default_rng(6)
    Y = sp.csr_matrix(rng.random((70, 60)) < 0.15)
    A = cointeraction_graph(Y, 5)
    H = transition_matrix(A)
    _assert_no_ties_at_cut(off.diffusion_kernel(H.toarray(), kernel), range(70), 6, True)
    W, _ = rewired_graph(H, np.arange(70), kernel=kernel, n_neighbors=6, keep_self=True,
                         prune_tol=0, tol=1e-13)
    np.testing.assert_allclose(W.toarray(), _gdc(A, kernel, 6, 1, "row"), atol=1e-9)


# ------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------

def _all_methods(A, X_nan, missing):
    H = transition_matrix(A)
    rows = np.flatnonzero(missing.any(axis=1))
    W, _ = rewired_graph(H, rows, n_neighbors=A.shape[0], prune_tol=0, tol=1e-12)
    T, _ = paper_diffusion_operator(A, top_k=A.shape[0])
    X0 = np.nan_to_num(X_nan)
    return {
        "neigh_mean": neighbour_mean(A, X_nan, missing, dtype=X_nan.dtype),
        "neigh_mean_paper": neighbour_mean(A, X_nan, missing, paper_compat=True,
                                           dtype=X_nan.dtype),
        "series": diffusion_impute(H, X_nan, missing, n_iter=2, dtype=X_nan.dtype),
        "series_inf": diffusion_impute(H, X_nan, missing, n_iter=None, dtype=X_nan.dtype),
        "rewired": propagate_features(W, X0, missing, 3, dtype=X_nan.dtype),
        "paper": propagate_features(T, X0, missing, 3, dtype=X_nan.dtype),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_observed_entries_bit_identical_and_inputs_unchanged(dtype):
    Y = _catalogue()
    A = cointeraction_graph(Y, 4)
    X, missing = _masked(60, 4, "entries", seed=12)
    X_nan = np.where(missing, np.nan, X).astype(dtype)
    X_before, m_before, A_before = X_nan.copy(), missing.copy(), A.copy()
    for name, (rows, values, _) in _all_methods(A, X_nan, missing).items():
        obs = ~missing[rows]
        np.testing.assert_array_equal(values[obs], X_nan[rows][obs], err_msg=name)
    np.testing.assert_array_equal(X_nan, X_before)
    np.testing.assert_array_equal(missing, m_before)
    assert (A != A_before).nnz == 0


def test_permutation_equivariance_without_top_k_cut():
    """Relabelling the items relabels every result when no top-k cut decides anything (all
    neighbours kept), so that no tie rule is involved."""
    rng = np.random.default_rng(13)
    Y = sp.csr_matrix(rng.random((25, 30)) < 0.15)
    A = cointeraction_graph(Y, 24, weighting="count")
    X, missing = _masked(25, 3, "entries", seed=14)
    X_nan = np.where(missing, np.nan, X)
    perm = rng.permutation(25)
    inv = np.argsort(perm)
    Ap = A[perm][:, perm]
    base = _all_methods(A, X_nan, missing)
    moved = _all_methods(Ap, X_nan[perm], missing[perm])
    # The official H scales every row by row 0's degree: on a graph with unequal row sums it
    # depends on which item is numbered 0 (on the paper graph every row sum is equal).
    del base["paper"]
    for name in base:
        full, full_p = np.zeros((25, 3)), np.zeros((25, 3))
        rows, values, reached = base[name]
        full[rows] = np.where(reached, values, 0)
        rows_p, values_p, reached_p = moved[name]
        full_p[rows_p] = np.where(reached_p, values_p, 0)
        np.testing.assert_allclose(full_p[inv], full, atol=1e-9, err_msg=name)


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors():
    A = cointeraction_graph(_catalogue(), 3)
    H = transition_matrix(A)
    X = np.ones((60, 2))
    with pytest.raises(ValueError, match="kernel"):
        diffuse(H, X, kernel="pagerank")
    with pytest.raises(ValueError, match="alpha"):
        diffuse(H, X, alpha=0.0)
    with pytest.raises(ValueError, match="t"):
        rewired_graph(H, [0], kernel="heat", t=-1.0)
    with pytest.raises(ValueError, match="n_iter=None"):
        diffusion_impute(H, X, np.zeros((60, 2), bool), n_iter=None, kernel="heat")
    with pytest.raises(ValueError, match="square"):
        neighbour_mean(sp.csr_matrix(np.ones((3, 4))), np.ones((3, 1)))
    with pytest.raises(ValueError, match="60 rows but X has 5"):
        neighbour_mean(A, np.ones((5, 2)))
    with pytest.raises(ValueError, match="negative"):
        transition_matrix(-A)
    with pytest.raises(TypeError, match="sparse array or matrix"):
        neighbour_mean(A.toarray(), X)
    with pytest.raises(ValueError, match="boolean array"):
        neighbour_mean(A, X, np.zeros((60, 3), bool))
    with pytest.raises(ValueError, match="observed"):
        neighbour_mean(A, np.full((60, 2), np.nan), np.zeros((60, 2), bool))
    with pytest.raises(ValueError, match="rank"):
        rewired_graph(H, [0], rank="degree")
    with pytest.raises(ValueError, match="rows must be item indices"):
        rewired_graph(H, [60])
    with pytest.raises(ValueError, match="dtype"):
        neighbour_mean(A, X, dtype=np.int64)
    with pytest.raises(ValueError, match="tol"):
        n_series_terms("ppr", 0.0)
