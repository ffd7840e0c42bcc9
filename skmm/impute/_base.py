"""Helpers shared by the imputers: reading X under the data contract."""

import numpy as np
from sklearn.utils.validation import FLOAT_DTYPES, validate_data

from .._validation import masked_to_nan


def validate_features(estimator, X, *, reset):
    """Validate ``X`` (NaN or a MaskedArray marks missing) and return it with its missing mask.

    Integer input is converted to float64; float input keeps its dtype so that observed entries
    come back bit-identical.
    """
    X = masked_to_nan(X)
    X = validate_data(estimator, X, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan",
                      reset=reset, copy=False)
    return X, np.isnan(X)


def check_no_empty_columns(missing, *, what="X"):
    """Raise if a column has no observed value: nothing could be propagated or averaged."""
    empty = np.flatnonzero(missing.all(axis=0))
    if missing.shape[0] and empty.size:
        shown = ", ".join(map(str, empty[:10])) + (", ..." if empty.size > 10 else "")
        raise ValueError(f"{what} has {empty.size} column(s) with no observed value (columns "
                         f"{shown}); every feature needs at least one observed item to impute "
                         f"from. Drop those columns first.")
