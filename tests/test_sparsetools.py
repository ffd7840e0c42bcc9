"""The private scipy kernels and their public fallback give identical results."""

import numpy as np
import pytest
import scipy.sparse as sp

from skmm import _sparsetools
from skmm.graph import cointeraction_graph, normalize_adjacency
from skmm.propagation import propagate_features

from .conftest import random_interactions


@pytest.fixture(params=[True, False], ids=["kernels", "fallback"])
def kernels(request, monkeypatch):
    if request.param and not _sparsetools._USE_KERNELS:
        pytest.skip("this scipy has no private kernels")
    monkeypatch.setattr(_sparsetools, "_USE_KERNELS", request.param)
    return request.param


def _both_paths(monkeypatch, fn):
    out = []
    for flag in (True, False):
        monkeypatch.setattr(_sparsetools, "_USE_KERNELS", flag)
        out.append(fn())
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spmm_add_matches_dense(kernels, dtype):
    rng = np.random.default_rng(0)
    A = sp.random(30, 20, density=0.2, random_state=1, format="csr", dtype=dtype)
    x = rng.normal(size=(20, 7)).astype(dtype)
    y = rng.normal(size=(30, 7)).astype(dtype)
    expected = y.astype(np.float64) + A.toarray().astype(np.float64) @ x
    _sparsetools.spmm_add(A.indptr, A.indices, A.data, A.shape, x, y)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_spmm_add_paths_bit_identical(monkeypatch):
    if not _sparsetools._USE_KERNELS:
        pytest.skip("this scipy has no private kernels")
    rng = np.random.default_rng(0)
    A = sp.random(50, 40, density=0.3, random_state=2, format="csr", dtype=np.float32)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y0 = rng.normal(size=(50, 5)).astype(np.float32)

    def run():
        y = y0.copy()
        _sparsetools.spmm_add(A.indptr, A.indices, A.data, A.shape, x, y)
        return y

    fast, slow = _both_paths(monkeypatch, run)
    np.testing.assert_array_equal(fast, slow)


def test_graph_and_propagation_identical_on_both_paths(monkeypatch):
    if not _sparsetools._USE_KERNELS:
        pytest.skip("this scipy has no private kernels")
    Y = random_interactions(120, 60, 0.08, seed=5, n_isolated=3, n_blocks=2)
    rng = np.random.default_rng(6)
    X = rng.normal(size=(120, 40)).astype(np.float32)
    missing = rng.random((120, 40)) < 0.3
    missing[:30] = True

    def run():
        A = cointeraction_graph(Y, n_neighbors=5, weighting="count")
        P = normalize_adjacency(A)
        return A, propagate_features(P, X, missing, 4)

    (A1, (r1, v1, m1)), (A2, (r2, v2, m2)) = _both_paths(monkeypatch, run)
    assert (A1 != A2).nnz == 0
    np.testing.assert_array_equal(A1.indices, A2.indices)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(m1, m2)
