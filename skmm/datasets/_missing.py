"""Simulated missing modalities, following the FeatProp and MILK protocols."""

import numpy as np
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import StrOptions, validate_params

from .._validation import Real, check_block_sizes, masked_to_nan


@validate_params(
    {
        "X": ["array-like"],
        "modalities": ["array-like"],
        "rate": [Real(0, 1)],
        "mode": [StrOptions({"all", "one"})],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def simulate_missing(X, modalities, rate, mode="all", random_state=None):
    """Remove modality blocks of a fraction of items.

    Parameters
    ----------
    X : array-like of shape (n_items, n_features)
        Complete item features, one column block per modality.
    modalities : sequence of int
        The column-block sizes, in column order; they must sum to ``n_features``.
    rate : float in [0, 1]
        Fraction of items that lose modalities (rounded to the nearest number of items).
    mode : {"all", "one"}, default="all"
        ``"all"``: each chosen item loses every modality (the FeatProp protocol).
        ``"one"``: each chosen item loses one modality drawn uniformly (the MILK protocol).
    random_state : int, RandomState instance or None, default=None
        Seeds the choice of items and modalities.

    Returns
    -------
    X_missing : ndarray of shape (n_items, n_features), float
        A copy of ``X`` with the removed entries set to NaN.
    mask : ndarray of bool, shape (n_items, n_features)
        True at the removed entries (entries already NaN in ``X`` are not included).

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.datasets import simulate_missing
    >>> X = np.arange(12.0).reshape(4, 3)
    >>> X_missing, mask = simulate_missing(X, [2, 1], rate=0.5, random_state=0)
    >>> int(np.isnan(X_missing).any(axis=1).sum()), mask.shape
    (2, (4, 3))
    """
    # A float copy (integers become float64): observed values unchanged, the input untouched.
    X = check_array(masked_to_nan(X), dtype=("float64", "float32", "float16"), copy=True,
                    ensure_all_finite="allow-nan", input_name="X")
    sizes = check_block_sizes(modalities, X.shape[1])
    rng = check_random_state(random_state)
    n_items = X.shape[0]
    n_drop = int(round(rate * n_items))
    items = rng.choice(n_items, size=n_drop, replace=False)
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    mask = np.zeros(X.shape, dtype=bool)
    if mode == "all":
        mask[items] = True
    else:
        which = rng.randint(len(sizes), size=n_drop)
        for m in range(len(sizes)):
            mask[items[which == m], bounds[m]:bounds[m + 1]] = True
    mask &= ~np.isnan(X)
    X[mask] = np.nan
    return X, mask
