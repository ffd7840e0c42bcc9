import numpy as np
import pytest

from skmm import BaselineImputer


def _X():
    X = np.random.default_rng(0).normal(size=(20, 3))
    X[::3, 0] = np.nan
    X[1::4, 2] = np.nan
    return X


def test_mean_and_zeros():
    X = _X()
    means = np.nanmean(X, axis=0)
    out = BaselineImputer(strategy="mean").fit_transform(X)
    miss = np.isnan(X)
    np.testing.assert_allclose(out[miss], np.broadcast_to(means, X.shape)[miss])
    assert np.array_equal(out[~miss], X[~miss])
    assert (BaselineImputer(strategy="zeros").fit_transform(X)[miss] == 0).all()


def test_random_is_uniform_unit_interval_and_seeded():
    X = np.full((2000, 2), np.nan)
    X[0] = 5.0
    a = BaselineImputer(strategy="random", random_state=1).fit_transform(X)
    b = BaselineImputer(strategy="random", random_state=1).fit_transform(X)
    c = BaselineImputer(strategy="random", random_state=2).fit_transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    fill = a[1:]
    assert fill.min() >= 0 and fill.max() < 1
    assert abs(fill.mean() - 0.5) < 0.03 and abs(fill.var() - 1 / 12) < 0.01
    assert (a[0] == 5.0).all()


def test_mean_refuses_empty_column():
    X = _X()
    X[:, 1] = np.nan
    with pytest.raises(ValueError, match="no observed value"):
        BaselineImputer(strategy="mean").fit(X)
    with pytest.raises(ValueError, match="strategy"):
        BaselineImputer(strategy="median").fit(_X())
