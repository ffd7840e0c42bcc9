"""Simulated missing modalities, following the FeatProp and MILK protocols."""

from numbers import Real

import numpy as np
from sklearn.utils import check_random_state

from .._validation import check_block_sizes, masked_to_nan


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
    X = np.array(masked_to_nan(X), dtype=np.float64 if not np.issubdtype(
        np.asarray(X).dtype, np.floating) else None, copy=True)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d (n_items, n_features), got shape {X.shape}.")
    sizes = check_block_sizes(modalities, X.shape[1])
    if not isinstance(rate, Real) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be a number in [0, 1], got {rate!r}.")
    if mode not in ("all", "one"):
        raise ValueError(f"mode must be 'all' or 'one', got {mode!r}.")
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
