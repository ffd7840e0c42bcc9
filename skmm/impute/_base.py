"""The base of the skmm imputers: the data contract, the fill policies and their statistics.

Modelled on scikit-learn's ``_BaseImputer``: one place for the tags (NaN allowed, ``y``
optional), masked-array input, the empty-column policy, the column statistics behind every
``"mean"`` fill, the feature names (so that ``set_output(transform="pandas")`` works) and the
fill policies, spelled as scikit-learn spells them: ``strategy`` (or ``fallback``) in
``{"mean", "constant", ...}`` with a ``fill_value``.
"""

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import FLOAT_DTYPES

from .._blockio import RowBlocks, scan_features
from .._validation import validate_features

#: The fill policies shared by the imputers (``strategy`` / ``fallback`` values).
FILL_STRATEGIES = ("mean", "constant")


class BaseImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Base class of the skmm imputers. Not meant to be used directly.

    ``transform`` returns an array of the input's float dtype with the same columns, so the
    output's feature names are the input's (``get_feature_names_out``).
    """

    _parameter_constraints: dict = {}

    def _validate_X(self, X, *, reset, lazy=False):
        """Validate ``X`` (NaN or a MaskedArray marks missing).

        Integer input becomes float64; float input keeps its dtype, so that observed entries
        come back bit-identical. ``lazy``: no copy and no scan of the values (a memory map
        stays a view of its file); the caller then checks for infinities block by block
        (:func:`~skmm._blockio.scan_features`).
        """
        return validate_features(self, X, dtype=FLOAT_DTYPES, reset=reset, copy=False,
                                 ensure_all_finite=False if lazy else "allow-nan")

    def _scan(self, X, *, copy_to=None):
        """One pass over ``X``: masks, statistics, infinities refused, empty columns refused."""
        scan = scan_features(X, copy_to=copy_to, estimator_name=type(self).__name__)
        check_observed_columns(scan.n_missing, X.shape[0])
        scan.means = column_means(X, scan)
        return scan

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.required = False
        return tags


def check_observed_columns(n_missing, n_rows, *, what="X"):
    """Raise if a column has no observed value: there is nothing to impute it from."""
    empty = np.flatnonzero(np.asarray(n_missing) >= n_rows) if n_rows else np.zeros(0, int)
    if empty.size:
        shown = ", ".join(map(str, empty[:10])) + (", ..." if empty.size > 10 else "")
        raise ValueError(f"{what} has {empty.size} column(s) with no observed value (columns "
                         f"{shown}); every feature needs at least one observed item to impute "
                         f"from. Drop those columns first.")


def column_means(X, scan):
    """Mean of the observed values of each column, in float64, from a :func:`scan_features`.

    The sums are float64 additions in row order (those of ``np.nanmean`` on a float64 copy).
    A column whose sum overflows (values near the float64 maximum) is summed again scaled by
    ``2**-1000``, exactly, so that its mean is finite whenever its values are.
    """
    counts = X.shape[0] - scan.n_missing
    with np.errstate(invalid="ignore", divide="ignore"):
        means = scan.sums / counts
    overflow = np.flatnonzero(~np.isfinite(means) & (counts > 0))
    if overflow.size:
        scale = 2.0 ** -1000  # a power of two: the scaling itself rounds nothing
        sums = np.zeros(overflow.size)
        for _, _, xb in RowBlocks(X):
            block = np.asarray(xb[:, overflow], dtype=np.float64) * scale
            sums += np.nansum(block, axis=0)
        means[overflow] = sums / counts[overflow] / scale
    return means


def fill_row(strategy, fill_value, means, dtype):
    """The value every missing entry of each column takes under a fill policy."""
    if strategy == "mean":
        return means.astype(dtype)
    if np.isfinite(fill_value) and abs(fill_value) > np.finfo(dtype).max:
        raise ValueError(f"fill_value={fill_value!r} does not fit the dtype of X ({dtype}).")
    return np.full(means.shape, fill_value, dtype)
