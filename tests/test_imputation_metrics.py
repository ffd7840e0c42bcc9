"""imputation_score: hand-derived values, the mean imputer's zero, sklearn's AP as reference."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from skmm.metrics._imputation import centred_cosine, imputation_score


def _mean_fill(X_masked):
    return np.where(np.isnan(X_masked), np.nanmean(X_masked, axis=0), X_masked)


def _problem(seed=0, n=40, d=6, rate=0.3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X_masked = X.copy()
    X_masked[rng.random(n) < rate] = np.nan
    return X, X_masked


def test_hand_computed_values():
    X_true = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [3.0, 1.0], [0.0, 4.0]])
    X_masked = X_true.copy()
    X_masked[3:] = np.nan  # centre: mean of rows 0-2 = (1, 1)
    X_imp = X_masked.copy()
    X_imp[3] = [2.0, 1.0]  # centred (1, 0) vs true centred (2, 0): cosine 1, sq. errors 1, 0
    X_imp[4] = [1.0, 2.0]  # centred (0, 1) vs (-1, 3): cosine 3 / sqrt(10); errors 1, 4
    cos = imputation_score(X_true, X_imp, X_masked)
    assert cos == pytest.approx((1 + 3 / np.sqrt(10)) / 2)
    assert imputation_score(X_true, X_imp, X_masked, metric="mse") == pytest.approx(6 / 4)
    # Mean imputer (1, 1): squared errors 4, 0, 1, 9 -> 14/4.
    assert imputation_score(X_true, X_imp, X_masked, metric="mse_skill") == pytest.approx(
        1 - 6 / 14)


@pytest.mark.parametrize("metric, perfect, mean",
                         [("centred_cosine", 1.0, 0.0), ("mse", 0.0, None),
                          ("mse_skill", 1.0, 0.0)])
def test_perfect_and_mean_imputers(metric, perfect, mean):
    X, X_masked = _problem()
    assert imputation_score(X, X, X_masked, metric=metric) == pytest.approx(perfect)
    if mean is not None:
        assert imputation_score(X, _mean_fill(X_masked), X_masked, metric=metric) == \
            pytest.approx(mean, abs=1e-12)


def test_per_block_scores_and_their_average():
    X, X_masked = _problem(d=7)
    X_masked[:5, 4:] = np.nan  # block 2 hides more rows
    rng = np.random.default_rng(1)
    X_imp = np.where(np.isnan(X_masked), X + rng.normal(size=X.shape), X_masked)
    raw = imputation_score(X, X_imp, X_masked, modalities=[4, 3], multioutput="raw_values")
    for b, cols in enumerate([slice(0, 4), slice(4, 7)]):
        hidden = np.isnan(X_masked[:, cols]).any(axis=1)
        centre = np.nanmean(X_masked[:, cols], axis=0)
        expected = centred_cosine(X_imp[hidden, cols], X[hidden, cols], centre)
        assert raw[b] == pytest.approx(expected)
    assert imputation_score(X, X_imp, X_masked, modalities=[4, 3]) == pytest.approx(raw.mean())


def test_entry_masks_score_only_hidden_entries():
    """Within a partly hidden row only the hidden entries count: the mean imputer still
    scores 0 and a perfect imputer 1, however wrong the observed entries would look."""
    X, _ = _problem(d=5)
    rng = np.random.default_rng(2)
    X_masked = np.where(rng.random(X.shape) < 0.3, np.nan, X)
    assert imputation_score(X, X, X_masked) == pytest.approx(1.0)
    assert imputation_score(X, _mean_fill(X_masked), X_masked) == pytest.approx(0.0, abs=1e-12)
    # Truly missing entries (NaN in X_true) are not scored.
    X_true = X.copy()
    X_true[0] = np.nan
    X_masked[0] = np.nan
    X_imp = np.where(np.isnan(X_masked), 99.0, X_masked)
    X_imp[1:] = np.where(np.isnan(X_masked[1:]), X[1:], X_masked[1:])
    assert imputation_score(X_true, X_imp, X_masked, metric="mse") == 0.0


def test_block_without_hidden_rows_is_nan_and_left_out_of_the_average():
    X, X_masked = _problem(d=4)
    X_masked[:, 2:] = X[:, 2:]  # nothing hidden in block 2
    raw = imputation_score(X, X, X_masked, modalities=[2, 2], multioutput="raw_values")
    assert raw[0] == pytest.approx(1.0) and np.isnan(raw[1])
    assert imputation_score(X, X, X_masked, modalities=[2, 2]) == pytest.approx(1.0)


def _binary_problem(seed, entry_mask):
    rng = np.random.default_rng(seed)
    X = (rng.random((60, 10)) < 0.3).astype(float)
    X[:, 0] = 1.0  # a frequent tag, so the mean imputer's ranking is informative
    X[5] = 0.0  # a row without positives: excluded
    if entry_mask:
        X_masked = np.where(rng.random(X.shape) < 0.4, np.nan, X)
    else:
        X_masked = X.copy()
        X_masked[rng.random(60) < 0.4] = np.nan
        X_masked[5] = np.nan
    return X, X_masked, rng


@pytest.mark.parametrize("entry_mask", [False, True])
@pytest.mark.parametrize("decimals", [None, 1])  # rounded scores: ties
def test_average_precision_equals_sklearn_per_row(entry_mask, decimals):
    X, X_masked, rng = _binary_problem(3, entry_mask)
    scores = rng.random(X.shape)
    if decimals is not None:
        scores = np.round(scores, decimals)
    X_imp = np.where(np.isnan(X_masked), scores, X_masked)
    aps = _sklearn_row_aps(X, X_imp, X_masked)
    got = imputation_score(X, X_imp, X_masked, metric="average_precision")
    assert got == pytest.approx(np.mean(aps), abs=1e-12)
    base = _sklearn_row_aps(X, _mean_fill(X_masked), X_masked)
    gain = imputation_score(X, X_imp, X_masked, metric="average_precision_gain")
    assert gain == pytest.approx(np.mean(aps) - np.mean(base), abs=1e-12)


def _sklearn_row_aps(X, X_imp, X_masked):
    """sklearn's AP of each row's hidden entries, for the rows with a hidden positive."""
    hidden = np.isnan(X_masked)
    return [average_precision_score(X[i, h], X_imp[i, h])
            for i, h in enumerate(hidden) if h.any() and X[i, h].sum() > 0]


def test_average_precision_of_perfect_and_mean_imputers():
    X, X_masked, _ = _binary_problem(4, False)
    assert imputation_score(X, X, X_masked, metric="average_precision") == pytest.approx(1.0)
    mean = _mean_fill(X_masked)
    assert imputation_score(X, mean, X_masked, metric="average_precision_gain") == 0.0
    assert imputation_score(X, mean, X_masked, metric="average_precision") > 0


def test_bad_inputs_raise():
    X, X_masked = _problem()
    with pytest.raises(ValueError, match="one shape"):
        imputation_score(X, X[:-1], X_masked)
    bad = X.copy()
    bad[np.isnan(X_masked)] = np.nan
    with pytest.raises(ValueError, match="finite at the hidden entries"):
        imputation_score(X, bad, X_masked)
    with pytest.raises(ValueError, match="binary"):
        imputation_score(X, X, X_masked, metric="average_precision")
    X_masked2 = X_masked.copy()
    X_masked2[:, 1] = np.nan
    with pytest.raises(ValueError, match="Column 1 has no observed value"):
        imputation_score(X, X, X_masked2)
    with pytest.raises(ValueError, match="metric"):
        imputation_score(X, X, X_masked, metric="r2")
    with pytest.raises(ValueError, match="sums to"):
        imputation_score(X, X, X_masked, modalities=[2, 2])


def test_centred_cosine_unchanged():
    a = np.array([[1.0, 0.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [1.0, 1.0]])
    assert centred_cosine(a, b, np.zeros(2)) == pytest.approx(0.5)  # zero-norm row counts 0
    assert np.isnan(centred_cosine(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(2)))


def test_mean_imputer_scores_zero_on_float32_data():
    """A mean imputer fills in the float64 mean rounded to float32; the centre is rounded the
    same way, so every imputed row is exactly the centre: centred cosine and MSE skill are 0
    exactly, not the cosine of the rounding error."""
    from skmm import BaselineImputer

    X, _ = _problem(d=5)
    X = X.astype(np.float32)
    X_masked = X.copy()
    X_masked[np.random.default_rng(0).random(len(X)) < 0.3] = np.nan
    X_imp = BaselineImputer().fit_transform(X_masked)
    assert imputation_score(X, X_imp, X_masked) == 0.0
    assert imputation_score(X, X_imp, X_masked, metric="mse_skill") == 0.0
