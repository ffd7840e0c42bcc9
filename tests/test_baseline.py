import numpy as np
import pytest

import scipy.sparse as sp

from skmm import BaselineImputer, FeatPropImputer


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
    assert (BaselineImputer(strategy="constant").fit_transform(X)[miss] == 0).all()


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


@pytest.mark.parametrize("make", [
    lambda: BaselineImputer(strategy="mean"),
    lambda: FeatPropImputer(n_neighbors=2, device="cpu"),
], ids=["baseline", "featprop"])
def test_set_output_pandas_keeps_names_and_values(make):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3))
    X[rng.random(X.shape) < 0.3] = np.nan
    X[0] = 1.0
    frame = pd.DataFrame(X, columns=["text_0", "text_1", "audio_0"])
    Y = sp.csr_matrix((rng.random((12, 5)) < 0.4).astype(float))
    imp = make().set_output(transform="pandas")
    out = imp.fit_transform(frame, Y)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(frame.columns)
    np.testing.assert_array_equal(imp.get_feature_names_out(), frame.columns)
    np.testing.assert_array_equal(out.to_numpy(), make().fit_transform(X, Y))


def test_random_fill_stays_below_one_in_narrow_dtypes():
    """Regression: float64 draws rounded to float16 reached 1.0 although documented [0, 1)."""
    X = np.full((400, 50), np.nan, dtype=np.float16)
    X[0] = 0.5
    out = BaselineImputer(strategy="random", random_state=0).fit_transform(X)
    assert out.dtype == np.float16 and (out >= 0).all() and (out < 1).all()


def test_mean_is_exact_for_values_near_the_float64_maximum():
    big = np.finfo(np.float64).max / 2
    X = np.array([[big, 1.0], [big, np.nan], [np.nan, 3.0]])
    out = BaselineImputer(strategy="mean").fit_transform(X)
    assert np.isfinite(out).all() and out[2, 0] == big and out[1, 1] == 2.0
