"""The propagation's sparse-times-dense kernel (skmm._spmm) and the loops that run it."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skmm import _propagator
from skmm._spmm import spmm_plus
from skmm.propagation import propagate_features


def _matrix(n_rows, n_cols, dtype, index_dtype, seed):
    """A CSR matrix whose rows hold 0 to 10 entries: every tail of the four-term unrolling."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 11, n_rows)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(index_dtype)
    indices = np.concatenate([np.sort(rng.choice(n_cols, c, replace=False)) for c in counts])
    data = rng.normal(size=indptr[-1]).astype(dtype)
    return indptr, indices.astype(index_dtype), data


def _ordered_reference(indptr, indices, data, x, b):
    """``b + A @ x`` summed as the kernel promises (``b`` first, then the row's terms in CSR
    order, no fused multiply-adds), by scipy's public operator: ``[I | A] @ [b; x]`` puts ``b``
    first in every row with weight 1, and scipy sums each row from zero in CSR order."""
    n_rows = indptr.size - 1
    starts = indptr[:-1]
    aug = sp.csr_matrix(
        (np.insert(data, starts, np.ones(n_rows, data.dtype)),
         np.insert(indices.astype(np.int64) + n_rows, starts, np.arange(n_rows)),
         indptr.astype(np.int64) + np.arange(n_rows + 1)),
        shape=(n_rows, n_rows + x.shape[0]))
    return aug @ np.vstack([b, x])


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spmm_plus_matches_dense_product(dtype, index_dtype):
    indptr, indices, data = _matrix(40, 25, dtype, index_dtype, seed=0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(25, 7)).astype(dtype)
    b = rng.normal(size=(40, 7)).astype(dtype)
    A = sp.csr_matrix((data, indices, indptr), shape=(40, 25)).toarray().astype(np.float64)
    expected = b.astype(np.float64) + A @ x.astype(np.float64)
    out = np.full_like(b, np.nan)
    spmm_plus(indptr, indices, data, x, b, out)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    # b may be the output: out += A @ x.
    y = b.copy()
    spmm_plus(indptr, indices, data, x, y, y)
    np.testing.assert_array_equal(y, out)


@pytest.mark.parametrize("width", [1, 3, 16, 37])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spmm_plus_sums_in_the_promised_order(dtype, width):
    # Bit for bit against an ordered reference computed by other code: the propagation's
    # results then do not depend on which path or block width runs them.
    indptr, indices, data = _matrix(60, 50, dtype, np.int32, seed=2)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, width)).astype(dtype)
    b = rng.normal(size=(60, width)).astype(dtype)
    out = np.empty_like(b)
    spmm_plus(indptr, indices, data, x, b, out)
    np.testing.assert_array_equal(out, _ordered_reference(indptr, indices, data, x, b))


def _problem(partial, seed=4):
    rng = np.random.default_rng(seed)
    n, d = 150, 40
    A = sp.random(n, n, density=0.06, random_state=seed, format="csr")
    A = ((A + A.T) > 0).astype(np.float64)
    P = sp.diags(1 / np.maximum(np.asarray(A.sum(1)).ravel(), 1)) @ A
    X = rng.normal(size=(n, d)).astype(np.float32)
    missing = np.zeros((n, d), bool)
    missing[rng.random(n) < 0.5] = True  # whole rows
    if partial:
        missing |= rng.random((n, d)) < 0.2  # and scattered entries
    return sp.csr_matrix(P), X, missing


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("partial", [False, True], ids=["rows", "rows+entries"])
def test_block_and_tall_loops_agree_bit_for_bit(monkeypatch, partial, n_threads):
    P, X, missing = _problem(partial)
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        runs = {}
        for name, width in [("tall", None), ("blocks of 16", 16), ("blocks of 32", 32)]:
            monkeypatch.setattr(_propagator, "_block_width", lambda *a, w=width: w)
            runs[name] = propagate_features(P, X, missing, 7)
    finally:
        torch.set_num_threads(before)
    (r0, v0, m0) = runs["tall"]
    for name, (r, v, m) in runs.items():
        np.testing.assert_array_equal(r, r0, err_msg=name)
        np.testing.assert_array_equal(v, v0, err_msg=name)
        np.testing.assert_array_equal(m, m0, err_msg=name)
    # And the values are the reset propagation's, from a dense loop.
    Pd = P.toarray()
    z = np.where(missing, 0.0, X).astype(np.float64)
    for _ in range(7):
        z = np.where(missing, Pd @ z, X)
    np.testing.assert_allclose(v0, z[r0], rtol=1e-4, atol=1e-5)


def test_row_chunks_cover_all_rows_in_order():
    indptr = np.array([0, 5, 5, 10, 30, 31])
    for n_chunks in (1, 2, 3, 4, 8):
        bounds = _propagator._row_chunks(indptr, n_chunks)
        assert bounds.size == n_chunks + 1
        assert bounds[0] == 0 and bounds[-1] == 5
        assert np.all(np.diff(bounds) >= 0)
    np.testing.assert_array_equal(_propagator._row_chunks(indptr, 4), [0, 3, 4, 4, 5])
    np.testing.assert_array_equal(_propagator._row_chunks(np.zeros(1, np.int64), 3), [0] * 4)
