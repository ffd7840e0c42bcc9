"""Simulated missing modalities, following the FeatProp and MILK protocols."""

import numpy as np
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import StrOptions, validate_params

from .._validation import Int, Real, check_block_sizes, masked_to_nan


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
        "stratify": ["array-like", None],
        "n_bins": [Int(1)],
    },
    prefer_skip_nested_validation=True,
)
def hide_observed(X, modalities=None, fraction=0.1, mode="auto", random_state=None, *,
                  stratify=None, n_bins=5):
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
    stratify : array-like of shape (n_items,) or None, default=None
        A value per item, typically its degree (interaction count,
        ``np.diff(csr_matrix(y).indptr)``), by which to stratify: the hidden units of each
        block then follow the distribution of this value over the block's *truly missing*
        units, as real missingness often depends on popularity. None: uniform hiding. Exactly:

        1. A unit is an observed (item, block) pair in mode ``"modality"``, an observed entry
           in mode ``"entry"`` (its block that of its column). The units are walked in one
           uniformly random order, and the eligible ones are those of the unstratified
           draw: all of them, except in mode ``"modality"`` with several blocks, where an
           item's unit is eligible unless it is the item's last observed block in the walk
           (that block is kept).
        2. The ``round(fraction * n_units)`` units to hide are shared among the blocks in
           proportion to their numbers of observed units.
        3. For each block, the truly missing units (the item's block wholly missing in mode
           ``"modality"``; each missing entry in mode ``"entry"``) give the bin edges: the
           distinct values among the ``j / n_bins`` quantiles, ``j = 1 .. n_bins - 1``, of
           ``stratify`` over them (the smallest value ``v`` with ``F(v) >= j / n_bins``).
           Bin ``j`` holds the values in ``(edge[j-1], edge[j]]``, the last bin those above
           the last edge. The block's count is shared among the bins in proportion to their
           share of the truly missing units. A block without truly missing units is one
           bin (uniform hiding).
        4. Each share is rounded by largest remainders (ties to the lower bin or block) and
           capped at the eligible units there; what a cap leaves is shared again, in the
           same proportions, among the bins (blocks) with room left, then, once those with a
           positive share are full (a bin with no truly missing unit, or with none left to
           hide), in proportion to the room left.
        5. In each bin the first eligible units in the walk are hidden.

        So the hidden set is reproducible by ``random_state``; truly missing entries are never
        hidden, and an item's last observed block is kept, as without ``stratify``.
    n_bins : int, default=5
        The number of quantile bins of ``stratify`` (fewer where quantiles coincide).

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
    if stratify is not None:
        stratify = _check_stratify(stratify, n_items)
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
        if stratify is not None:
            # Truly missing units: the (item, block) pairs with nothing observed.
            missing = [np.ones(n_items, dtype=np.intp) * (counts[:, b] == 0)
                       for b in range(len(sizes))]
            n_units = np.bincount(blocks, minlength=len(sizes))
            order = _stratified(order, items, blocks, n_units, stratify, missing, n_hide,
                                n_bins)
        units = np.zeros(counts.shape, dtype=bool)
        units[items[order[:n_hide]], blocks[order[:n_hide]]] = True
        hidden = np.repeat(units, sizes, axis=1) & observed
    else:
        flat = np.flatnonzero(observed)
        n_hide = int(round(fraction * flat.size))
        hidden = np.zeros(X.shape, dtype=bool)
        if stratify is None:
            hidden.flat[rng.choice(flat, size=n_hide, replace=False)] = True
        else:
            order = rng.permutation(flat.size)
            col_block = np.repeat(np.arange(len(sizes)), sizes)
            items, blocks = flat // n_features, col_block[flat % n_features]
            # Truly missing units: each missing entry, counted per item and block.
            missing = [np.asarray(sizes[b] - counts[:, b]) for b in range(len(sizes))]
            n_units = np.bincount(blocks, minlength=len(sizes))
            order = _stratified(order, items, blocks, n_units, stratify, missing, n_hide,
                                n_bins)
            hidden.flat[flat[order]] = True
    emptied = np.flatnonzero(observed.any(axis=0) & ~(observed & ~hidden).any(axis=0))
    if emptied.size:
        raise ValueError(f"fraction={fraction!r} hides every observed value of column "
                         f"{int(emptied[0])}: an imputer would have nothing to impute it "
                         f"from. Use a smaller fraction.")
    X[hidden] = np.nan
    return X, hidden


def _check_stratify(stratify, n_items):
    try:
        values = np.asarray(stratify, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"stratify must be an array of one number per item (e.g. its "
                         f"interaction count), got {stratify!r}.") from None
    if values.shape != (n_items,) or not np.isfinite(values).all():
        raise ValueError(f"stratify must be a finite array of shape (n_items,) = "
                         f"({n_items},), one number per item (e.g. its interaction count); "
                         f"got shape {values.shape}" + (
                             "" if values.shape != (n_items,) else " with non-finite values")
                         + ".")
    return values


def _stratified(order, items, blocks, n_units, value, missing, n_hide, n_bins):
    """The units to hide, stratified (see :func:`hide_observed`'s ``stratify``), in walk
    order. ``order``: the eligible units in the walk; ``items`` / ``blocks``: each unit's
    item and block; ``n_units``: the observed units per block; ``missing[b]``: per item, its
    truly missing units in block ``b``."""
    n_blocks = len(missing)
    blk = blocks[order]
    per_block = _allocate(n_hide, n_units, np.bincount(blk, minlength=n_blocks))
    stratum = np.empty(order.size, dtype=np.intp)
    quota = []
    for b in range(n_blocks):
        at = np.flatnonzero(blk == b)
        weights = missing[b]
        edges = np.zeros(0)
        if weights.sum() > 0:
            qs = np.arange(1, n_bins) / n_bins
            edges = np.unique(_weighted_quantiles(value, weights, qs))
        bins = np.searchsorted(edges, value[items[order[at]]], side="left")
        share = np.ones(1, dtype=np.int64)
        if weights.sum() > 0:
            share = np.bincount(np.searchsorted(edges, value, side="left"), weights=weights,
                                minlength=edges.size + 1).round().astype(np.int64)
        stratum[at] = len(quota) + bins
        quota.extend(_allocate(per_block[b], share,
                               np.bincount(bins, minlength=edges.size + 1)))
    quota = np.asarray(quota, dtype=np.intp)
    # The first ``quota`` units of each stratum in walk order.
    by = np.argsort(stratum, kind="stable")
    starts = np.searchsorted(stratum[by], np.arange(quota.size))
    rank = np.empty(order.size, dtype=np.intp)
    rank[by] = np.arange(order.size) - starts[stratum[by]]
    return order[rank < quota[stratum]]


def _weighted_quantiles(values, weights, qs):
    """For each q, the smallest value v with (weight of values <= v) >= q * total weight."""
    o = np.argsort(values, kind="stable")
    cw = np.cumsum(weights[o])
    return values[o][np.searchsorted(cw, qs * cw[-1], side="left")]


def _allocate(n, weights, caps):
    """``n`` shared in proportion to the integer ``weights`` by largest remainders (ties to
    the lower index), capped at ``caps``: what a cap leaves is shared again among the others
    with room, in proportion to ``weights``, then, once those of positive weight are full, to
    the room left. Exact integer arithmetic; needs ``n <= caps.sum()``."""
    weights = np.asarray(weights, dtype=np.int64)
    caps = np.asarray(caps, dtype=np.int64)
    alloc = np.zeros(caps.size, dtype=np.int64)
    while alloc.sum() < n:
        left = n - int(alloc.sum())
        room = caps - alloc
        w = np.where(room > 0, weights, 0)
        if not (w > 0).any():
            w = room
        add, rest = np.divmod(w * left, w.sum())
        extra = np.lexsort((np.arange(w.size), -np.where(w > 0, rest, -1)))
        add[extra[:left - int(add.sum())]] += 1
        alloc = np.minimum(alloc + add, caps)
    return alloc
