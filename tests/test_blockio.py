"""scan_features: the one pass over X that every imputer's fit starts with."""

import numpy as np
import pytest

from skmm import _blockio
from skmm._blockio import scan_features


def _reference(X):
    """What the scan must return, computed plainly on a float64 copy of the whole matrix."""
    m = np.isnan(X)
    x = np.where(m, 0.0, X.astype(np.float64))
    sums = np.zeros(X.shape[1])
    for row in x:  # float64 additions row after row: np.nanmean's order
        sums += row
    rows = np.flatnonzero(m.any(axis=1))
    return dict(rows=rows, packed=np.packbits(m[rows], axis=1), full=m[rows].all(axis=1),
                n_missing=m.sum(axis=0), sums=sums,
                absmax=np.abs(x).max(axis=0, initial=0.0))


def _assert_scan(scan, X):
    for name, expected in _reference(X).items():
        got = getattr(scan, name)
        assert got.shape == expected.shape, name
        # Bit for bit, the sign of zero included.
        if got.dtype.kind == "f":
            np.testing.assert_array_equal(got.view(np.uint64), expected.view(np.uint64), name)
        else:
            np.testing.assert_array_equal(got, expected, name)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(_blockio, "_SCAN_BYTES", 500)  # many blocks, one row at least


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(300, 17), (1, 3), (5, 1), (0, 4)])
def test_scan_matches_a_plain_reference(small_blocks, dtype, shape, layout):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal(shape) * 100).astype(dtype)
    if X.size:
        X[rng.random(shape) < 0.2] = np.nan
        X[rng.random(shape[0]) < 0.3] = np.nan  # whole rows
        X[0, 0] = -0.0
    X = {"C": X, "F": np.asfortranarray(X), "strided": X[::2]}[layout]
    before = X.copy()
    copy = np.empty_like(X)
    scan = scan_features(X, copy_to=copy)
    _assert_scan(scan, X)
    np.testing.assert_array_equal(copy, X)
    np.testing.assert_array_equal(X, before)  # not mutated


def test_scan_keeps_overflowing_sums_and_refuses_infinities(small_blocks):
    X = np.array([[1e308, 1.0], [1e308, np.nan]])
    scan = scan_features(X)  # a sum may overflow: the column means deal with it
    assert scan.sums[0] == np.inf and scan.sums[1] == 1.0
    for bad in (np.inf, -np.inf):
        X = np.ones((200, 3), np.float32)
        X[150, 1] = bad
        with pytest.raises(ValueError, match="infinity"):
            scan_features(X, estimator_name="FeatPropImputer")
