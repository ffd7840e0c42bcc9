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


@validate_params(
    {
        "X": ["array-like"],
        "modalities": ["array-like", None],
        "fraction": [Real(0, 1, closed="neither")],
        "mode": [StrOptions({"auto", "modality", "entry"})],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def hide_observed(X, modalities=None, fraction=0.1, mode="auto", random_state=None):
    """Hide a random part of the *observed* entries of ``X``, to score an imputer on them.

    The self-supervised counterpart of :func:`simulate_missing`: ``X`` already has real
    missing entries (NaN), and a fraction of what is observed is hidden in the same way as the
    real missingness, so that an imputer can be scored on values that are known
    (:func:`skmm.metrics.imputation_score`, :func:`skmm.metrics.make_imputation_scorer`).
    Truly missing entries are never part of the hidden set.

    Parameters
    ----------
    X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
        Item features, NaN (or the mask) marking the truly missing entries.
    modalities : sequence of int or None, default=None
        The column-block sizes, in column order, summing to ``n_features``; None: one block.
    fraction : float in (0, 1), default=0.1
        The part of the observed data to hide, rounded to the nearest count: of the observed
        (item, block) pairs in mode ``"modality"``, of the observed entries in mode
        ``"entry"``.
    mode : {"auto", "modality", "entry"}, default="auto"
        ``"modality"``: whole blocks of items. A unit is an (item, block) pair with at least
        one observed entry; hiding it hides all its observed entries. An item's last observed
        block is never hidden, so every item that had something keeps something (with a single
        block there is no other block to keep, and whole observed rows are hidden, the FeatProp
        protocol). ``"entry"``: individual observed entries, drawn uniformly.
        ``"auto"``: ``"modality"`` when the real missingness of ``X`` is by whole blocks
        (every block of every item is either fully observed or fully missing, which includes
        an ``X`` without missing entries), else ``"entry"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the draw. The hidden set depends only on ``X``'s missing mask, the arguments
        and this seed, not on the feature values.

    Returns
    -------
    X_hidden : ndarray of shape (n_items, n_features), float
        A copy of ``X`` with the hidden entries (and the truly missing ones) set to NaN;
        ``X`` itself is not changed.
    hidden_mask : ndarray of bool, shape (n_items, n_features)
        True at the hidden entries, all of them observed in ``X``.

    Raises
    ------
    ValueError
        If ``fraction`` asks for more than can be hidden: in mode ``"modality"`` with several
        blocks, more than the observed blocks beyond each item's last one; in any mode, so
        much that a column would keep no observed value (nothing to impute it from).

    See Also
    --------
    simulate_missing : remove modalities of complete data.
    skmm.metrics.make_imputation_scorer : the scorer built on this function.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.datasets import hide_observed
    >>> X = np.arange(16.0).reshape(4, 4)
    >>> X[0, 2:] = np.nan  # item 0 misses its second modality
    >>> X_hidden, hidden = hide_observed(X, [2, 2], fraction=0.3, random_state=0)
    >>> int(hidden.sum()) // 2  # round(0.3 * 7) of the 7 observed blocks, 2 columns each
    2
    >>> bool(np.isnan(X_hidden[hidden]).all() and not np.isnan(X[hidden]).any())
    True
    """
    X = check_array(masked_to_nan(X), dtype=("float64", "float32", "float16"), copy=True,
                    ensure_all_finite="allow-nan", input_name="X")
    n_items, n_features = X.shape
    sizes = (n_features,) if modalities is None else check_block_sizes(modalities, n_features)
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    observed = ~np.isnan(X)
    # (n_items, n_blocks): how many entries of each block each item observes.
    counts = np.add.reduceat(observed.astype(np.intp), bounds[:-1], axis=1)
    if mode == "auto":
        whole = (counts == 0) | (counts == np.asarray(sizes))
        mode = "modality" if whole.all() else "entry"
    rng = check_random_state(random_state)
    if mode == "modality":
        items, blocks = np.nonzero(counts > 0)  # the observed units, in row-major order
        n_hide = int(round(fraction * items.size))
        order = rng.permutation(items.size)
        if len(sizes) > 1:
            # Walking the units in random order, an item's units are hideable until only its
            # last one is left: a unit is eligible when fewer than (its item's number of
            # observed blocks - 1) units of that item came before it.
            n_blocks = (counts > 0).sum(axis=1)
            perm_items = items[order]
            first = np.lexsort((np.arange(order.size), perm_items))  # stable group by item
            rank = np.empty(order.size, dtype=np.intp)
            starts = np.searchsorted(perm_items[first], perm_items[first], side="left")
            rank[first] = np.arange(order.size) - starts
            eligible = rank < n_blocks[perm_items] - 1
            n_max = int(eligible.sum())
            if n_hide > n_max:
                raise ValueError(
                    f"fraction={fraction!r} asks to hide {n_hide} of the {items.size} observed "
                    f"(item, modality) blocks, but only {n_max} can be hidden while every item "
                    f"keeps one observed block.")
            order = order[eligible]
        units = np.zeros(counts.shape, dtype=bool)
        units[items[order[:n_hide]], blocks[order[:n_hide]]] = True
        hidden = np.repeat(units, sizes, axis=1) & observed
    else:
        flat = np.flatnonzero(observed)
        n_hide = int(round(fraction * flat.size))
        hidden = np.zeros(X.shape, dtype=bool)
        hidden.flat[rng.choice(flat, size=n_hide, replace=False)] = True
    emptied = np.flatnonzero(observed.any(axis=0) & ~(observed & ~hidden).any(axis=0))
    if emptied.size:
        raise ValueError(f"fraction={fraction!r} hides every observed value of column "
                         f"{int(emptied[0])}: an imputer would have nothing to impute it "
                         f"from. Use a smaller fraction.")
    X[hidden] = np.nan
    return X, hidden
