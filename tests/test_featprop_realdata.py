"""FeatProp on real Last.fm 2K interactions and text features (skips without the data).

The imputed rows are checked against an independent computation: the top-k co-interaction
graph built densely in numpy and the paper's loop (:func:`skmm.propagation.propagate_reference`),
in float64, on the same data.
"""

import numpy as np
import pytest

from skmm import FeatPropImputer, simulate_missing
from skmm.datasets import load_mmrec
from skmm.metrics._imputation import centred_cosine
from skmm.propagation import propagate_reference

pytestmark = pytest.mark.realdata


def _dense_topk_graph(Y, k):
    """Row i links the k other items sharing most users with it, ties to the lower index,
    never a pair without a common user; normalised D^-1/2 A D^-1/2 (row degrees)."""
    B = (Y.toarray() != 0).astype(np.float64)
    C = B @ B.T
    np.fill_diagonal(C, 0)
    n = C.shape[0]
    A = np.zeros_like(C)
    order = np.lexsort((np.tile(np.arange(n), (n, 1)), -C), axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    cols = order.ravel()
    keep = C[rows, cols] > 0
    A[rows[keep], cols[keep]] = 1.0
    d = A.sum(axis=1)
    inv = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
    return A * inv[:, None] * inv[None, :], A


@pytest.mark.parametrize("seed", [0, 1])
def test_lastfm_text_half_missing_equals_an_independent_computation(data_root, seed):
    data = load_mmrec(data_root / "lastfm2k", ["all-MiniLM-L6-v2"])
    X_miss, mask = simulate_missing(data.X, data.modalities, 0.5, mode="all", random_state=seed)
    imputer = FeatPropImputer(device="cpu", dtype="float64")
    imputed = imputer.fit_transform(X_miss, data.Y_train)

    P, A = _dense_topk_graph(data.Y_train, 20)
    np.testing.assert_array_equal(imputer.graph_.toarray(), A)
    expected = propagate_reference(P, X_miss.astype(np.float64), np.isnan(X_miss), 3)
    # Rows no observed value reaches within 3 steps take the column mean (the fallback).
    step = (A > 0) + np.eye(len(A))  # float: BLAS products (counts of walks stay exact)
    reach = step @ step @ step
    reached = (reach[:, ~mask.any(axis=1)] > 0).any(axis=1)
    expected[mask.any(axis=1) & ~reached] = np.nanmean(X_miss.astype(np.float64), axis=0)
    np.testing.assert_allclose(imputed, expected, rtol=1e-6, atol=1e-7)

    rows = mask.any(axis=1)
    centre = data.X[~rows].mean(axis=0)
    assert centred_cosine(imputed[rows], data.X[rows], centre) == pytest.approx(
        centred_cosine(expected[rows], data.X[rows], centre), abs=1e-6)
    mean_fill = np.broadcast_to(centre, data.X[rows].shape)
    assert abs(centred_cosine(mean_fill, data.X[rows], centre)) < 1e-6
