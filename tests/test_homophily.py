"""feature_homophily against the official script (dense transcription) and hand cases."""

import numpy as np
import pytest
import scipy.sparse as sp

from skmm.diffusion import paper_graph
from skmm.graph import cointeraction_graph
from skmm.inspection import feature_homophily

from . import _official_graph_imputers as off
from .conftest import random_interactions


def _features(n, d, seed, loc=3.0):
    return np.random.default_rng(seed).normal(loc, 1.0, size=(n, d))


@pytest.mark.parametrize("k", [3, 6, 10])
def test_paper_compat_equals_the_official_script(k):
    Y = random_interactions(80, 300, 0.05, seed=1, n_isolated=3)
    X = _features(80, 8, seed=0)
    res = feature_homophily(X, Y, n_neighbors=k, paper_compat=True, n_permutations=0)
    expected = off.official_homophily(X, off.official_graph(Y, k))
    assert res.homophily[0] == pytest.approx(expected, abs=1e-12)
    assert res.n_edges[0] == 80 * k
    # Given the paper graph directly, the same value.
    res_graph = feature_homophily(X, paper_graph(Y, k), exclude_self=False, n_permutations=0)
    assert res_graph.homophily[0] == pytest.approx(expected, abs=1e-12)


def test_corrected_value_leaves_out_self_pairs():
    Y = random_interactions(80, 300, 0.05, seed=2)
    X = _features(80, 8, seed=1)
    A = paper_graph(Y, 6)
    res = feature_homophily(X, A, n_permutations=0)  # exclude_self=True by default
    A_off = A.toarray()
    np.fill_diagonal(A_off, 0)
    assert res.homophily[0] == pytest.approx(off.official_homophily(X, A_off), abs=1e-12)
    assert res.n_edges[0] == int(A_off.sum())
    # Random features: the official value is inflated by the self pairs (about 1/k).
    paper = feature_homophily(X, A, paper_compat=True, n_permutations=0).homophily[0]
    assert paper > res.homophily[0] + 0.08


def test_one_on_features_constant_on_components():
    Y = random_interactions(60, 40, 0.2, seed=3, n_blocks=3)
    A = cointeraction_graph(Y, 5)
    labels = np.repeat(np.arange(3), 20)  # random_interactions' item groups
    assert (labels[A.tocoo().row] == labels[A.tocoo().col]).all()
    centres = np.random.default_rng(0).normal(size=(3, 4))
    res = feature_homophily(centres[labels], A, n_permutations=0)
    assert res.homophily[0] == pytest.approx(1.0, abs=1e-12)


def test_minus_one_on_alternating_features():
    """Every edge joins a +v item to a -v item: the pooled mean is 0 and h = -1."""
    n = 10
    A = sp.lil_matrix((n, n))
    for i in range(n):
        A[i, (i + 1) % n] = A[i, (i + 3) % n] = 1  # odd steps on an even cycle
    v = np.array([1.0, -2.0, 0.5])
    X = np.where((np.arange(n) % 2 == 0)[:, None], v, -v)
    assert feature_homophily(X, A.tocsr(), n_permutations=0).homophily[0] == pytest.approx(-1)


@pytest.mark.parametrize("m", [1, 2, 4])
def test_self_loop_bias_formula_is_exact_on_a_circulant_graph(m):
    """Spec section 4: with equal-norm centred features and equal in/out degrees,
    h_paper = s + (1 - s) h_true exactly, s = 1 / (m + 1) the share of self pairs."""
    n = 12
    A = sp.lil_matrix((n, n))
    for i in range(n):
        A[i, i] = 1
        for step in range(1, m + 1):
            A[i, (i + step) % n] = 1
    theta = 2 * np.pi * 5 * np.arange(n) / n
    X = np.c_[np.cos(theta), np.sin(theta)] + 7.0  # the pooled mean is removed
    A = A.tocsr()
    h_paper = feature_homophily(X, A, paper_compat=True, n_permutations=0).homophily[0]
    h_true = feature_homophily(X, A, n_permutations=0).homophily[0]
    s = 1 / (m + 1)
    assert h_paper == pytest.approx(s + (1 - s) * h_true, abs=1e-12)


def test_permutation_baseline_is_near_zero_and_reproducible():
    Y = random_interactions(120, 60, 0.15, seed=4, n_blocks=4)
    A = cointeraction_graph(Y, 6)
    labels = np.repeat(np.arange(4), 30)
    X = np.random.default_rng(1).normal(size=(4, 5))[labels] + 0.3 * _features(120, 5, 2, 0)
    res = feature_homophily(X, A, n_permutations=30, random_state=0)
    assert res.homophily[0] == pytest.approx(off.official_homophily(X, A.toarray()), abs=1e-12)
    assert abs(res.baseline_mean[0]) < 3 * res.baseline_std[0]
    assert res.homophily[0] > res.baseline_mean[0] + 10 * res.baseline_std[0]
    again = feature_homophily(X, A, n_permutations=30, random_state=0)
    assert again.baseline_mean[0] == res.baseline_mean[0]
    # Shuffled features themselves have no homophily left.
    Xs = X[np.random.default_rng(5).permutation(120)]
    shuffled = feature_homophily(Xs, A, n_permutations=30, random_state=0)
    assert abs(shuffled.homophily[0]) < 4 * shuffled.baseline_std[0]


def test_blocks_use_edges_whose_endpoints_observe_the_block():
    Y = random_interactions(50, 200, 0.06, seed=5)
    A = cointeraction_graph(Y, 5, symmetric=True)
    X = _features(50, 5, seed=3)
    missing_rows = np.random.default_rng(6).random(50) < 0.3
    X_nan = X.copy()
    X_nan[missing_rows, 3:] = np.nan  # block 2 missing on some rows
    res = feature_homophily(X_nan, A, modalities=[3, 2], n_permutations=0)
    assert res.homophily[0] == pytest.approx(off.official_homophily(X[:, :3], A.toarray()))
    keep = ~missing_rows
    sub = A.toarray() * keep[:, None] * keep[None, :]
    assert res.homophily[1] == pytest.approx(off.official_homophily(X[:, 3:], sub))
    assert res.n_edges.tolist() == [A.nnz, int(sub.sum())]


def test_interactions_with_as_many_users_as_items():
    Y = random_interactions(30, 30, 0.2, seed=7)
    X = _features(30, 3, seed=4)
    as_y = feature_homophily(X, Y, kind="interactions", n_neighbors=4, n_permutations=0)
    as_graph = feature_homophily(X, cointeraction_graph(Y, 4), n_permutations=0)
    assert as_y.homophily[0] == pytest.approx(as_graph.homophily[0])


def test_no_usable_edge_gives_nan_and_bad_input_raises():
    A = sp.csr_matrix(np.array([[0, 1], [1, 0]]))
    res = feature_homophily(np.array([[1.0], [np.nan]]), A, n_permutations=0)
    assert np.isnan(res.homophily[0]) and res.n_edges[0] == 0
    with pytest.raises(ValueError, match="n_permutations"):
        feature_homophily(np.ones((2, 1)), A, n_permutations=1)
    with pytest.raises(ValueError, match="sums to"):
        feature_homophily(np.ones((2, 3)), A, modalities=[2, 2])
    with pytest.raises(ValueError, match=r"\(n_items, n_items\)"):
        feature_homophily(np.ones((2, 1)), np.ones((3, 3)), kind="graph")
    with pytest.raises(ValueError, match="non-negative"):
        feature_homophily(np.ones((2, 1)), -A)
    with pytest.raises(ValueError, match="kind"):
        feature_homophily(np.ones((2, 1)), A, kind="edges")
