"""Checks shared by the tests of the graph imputers (BaseTransductiveImputer's contract)."""

import numpy as np
from sklearn.metrics.pairwise import nan_euclidean_distances


def check_new_item_rule(imputer, completed, new, partial_rows, empty_rows=()):
    """``imputer.transform(new)`` follows the new-item rule: each row of ``partial_rows``
    takes the mean of its ``n_donors_`` nearest rows of ``completed`` (NaN-aware Euclidean
    distance, ties to the smaller index) at its missing entries and keeps its observed ones;
    each row of ``empty_rows`` (nothing observed) takes the fallback. Returns the output."""
    out = imputer.transform(new)
    for i in partial_rows:
        d = nan_euclidean_distances(new[i:i + 1], completed).ravel()
        nearest = np.argsort(d, kind="stable")[:imputer.n_donors_]
        missing = np.isnan(new[i])
        np.testing.assert_allclose(out[i, missing], completed[nearest][:, missing].mean(axis=0))
        np.testing.assert_array_equal(out[i, ~missing], new[i, ~missing])
    for i in empty_rows:
        np.testing.assert_allclose(out[i], imputer.statistics_)  # nothing observed: fallback
    return out
