"""Top-k ranking metrics over users, items as rows (the MMRec definitions).

Every function ranks, for each user, the rows (items) of a score matrix or of a factor model's
scores, keeps the top ``k`` and compares them with the user's positives. The ranking itself is
:mod:`skmm.ranking`'s blocked engine (exact, ties to the lower item index, bounded memory);
this module turns its top ``k`` into Recall, NDCG, precision and hit rate.
"""

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.utils._param_validation import StrOptions, validate_params

from .._validation import Int, check_interactions, resolve_device
from ..ranking import _all_finite, check_factors, factor_topk_per_user, topk_per_user

METRICS = ("recall", "ndcg", "precision", "hit_rate")


def _evaluate(Y_true, ranked, *, k, metrics):
    """Per-user metrics from ``ranked(users)``, an iterator of (batch, top, values)."""
    n_items, n_users = Y_true.shape
    truth = sp.csr_matrix(Y_true.T)
    n_pos = np.diff(truth.indptr)
    users = np.flatnonzero(n_pos > 0)
    k_eff = min(k, n_items)
    discount = 1.0 / np.log2(np.arange(k_eff) + 2.0)
    ideal = np.concatenate(([0.0], np.cumsum(discount)))
    out = {m: [] for m in metrics}
    for batch, top, values in ranked(users):
        top = top.cpu().numpy()
        finite = torch.isfinite(values).cpu().numpy()
        sub = truth[batch]
        sub.sort_indices()
        # Membership of each top item among the user's positives: one sorted key per
        # (row in batch, item), looked up with searchsorted.
        row = np.arange(len(batch), dtype=np.int64)
        keys = np.repeat(row, np.diff(sub.indptr)) * n_items + sub.indices
        query = row[:, None] * n_items + top
        if keys.size:
            at = np.minimum(np.searchsorted(keys, query), keys.size - 1)
            hits = (keys[at] == query) & finite
        else:
            hits = np.zeros(top.shape, dtype=bool)
        n_hit = hits.sum(axis=1)
        pos = n_pos[batch]
        if "recall" in out:
            out["recall"].append(n_hit / pos)
        if "precision" in out:
            out["precision"].append(n_hit / k)
        if "hit_rate" in out:
            out["hit_rate"].append((n_hit > 0).astype(np.float64))
        if "ndcg" in out:
            dcg = hits @ discount
            out["ndcg"].append(dcg / ideal[np.minimum(pos, k_eff)])
    result = {m: np.concatenate(v) if v else np.zeros(0) for m, v in out.items()}
    result["users"] = users
    return result


def evaluate_topk(Y_true, score_fn, *, k, exclude=None, metrics=METRICS, device=None,
                  batch_size=None):
    """Per-user top-k metrics for the users with at least one positive.

    Parameters
    ----------
    Y_true : scipy.sparse matrix of shape (n_items, n_users)
        Binary positives, items as rows.
    score_fn : callable
        ``score_fn(users)`` -> float tensor (len(users), n_items).
    k : int
        Cut-off.
    exclude : scipy.sparse matrix of shape (n_items, n_users), default=None
        Items never recommended to a user (their scores become ``-inf``).
    metrics : sequence of str, default=all
        Any of ``"recall"``, ``"ndcg"``, ``"precision"``, ``"hit_rate"``.
    device : torch.device, default=None
        Device of the score batches.
    batch_size : int, default=None
        Users per batch.

    Returns
    -------
    values : dict
        ``"users"``: the evaluated users; one float64 array per metric, aligned with them.
    """
    n_items = Y_true.shape[0]
    excl = None if exclude is None else sp.csr_matrix(exclude.T)
    return _evaluate(Y_true, lambda users: topk_per_user(
        score_fn, users, n_items, k, exclude=excl, device=device, batch_size=batch_size),
        k=k, metrics=metrics)


@validate_params(
    {
        "Y_true": ["array-like", "sparse matrix"],
        "user_factors": ["array-like"],
        "item_factors": ["array-like"],
        "k": [Int(1)],
        "exclude": ["array-like", "sparse matrix", None],
        "metrics": [StrOptions(set(METRICS)), list, tuple],
        "per_user": ["boolean"],
        "device": [str, torch.device, None],
        "user_batch_size": [Int(1), None],
        "item_batch_size": [Int(1), None],
    },
    prefer_skip_nested_validation=True,
)
def evaluate_factors(Y_true, user_factors, item_factors, *, k=20, exclude=None,
                     metrics=("recall", "ndcg"), per_user=False, device=None,
                     user_batch_size=None, item_batch_size=None):
    """Top-k metrics of a factor model over full rankings, in bounded memory.

    The score of item ``i`` for user ``u`` is ``user_factors[u] @ item_factors[i]``. Every
    user with a positive in ``Y_true`` ranks all the items; the metrics are those of
    :func:`recall_at_k`, :func:`ndcg_at_k`, :func:`precision_at_k` and
    :func:`hit_rate_at_k` on the score matrix ``item_factors @ user_factors.T``, which is never
    built: scores exist one block of ``user_batch_size`` users x ``item_batch_size`` items at
    a time, and each block's top ``k`` is merged into a running top ``k`` per user. Memory
    beyond the inputs is about one score block plus ``O(user_batch_size * k)``, whatever the
    number of items: ranking 1,000,000 items for 100,000 users needs little more than the
    factors themselves.

    Among equal scores the lower item index ranks first, so the result does not depend on
    the block sizes.

    Parameters
    ----------
    Y_true : {array-like, sparse matrix} of shape (n_items, n_users)
        Positives, items as rows; any non-zero value is a positive.
    user_factors : array-like or torch.Tensor of shape (n_users, n_factors)
        One row per user (column of ``Y_true``).
    item_factors : array-like or torch.Tensor of shape (n_items, n_factors)
        One row per item (row of ``Y_true``).
    k : int, default=20
        Cut-off (at most ``n_items`` items are ranked).
    exclude : {array-like, sparse matrix} of shape (n_items, n_users), default=None
        Items never recommended to a user (e.g. their training interactions): their scores
        become ``-inf`` before ranking. They still count in the user's positives when also in
        ``Y_true``.
    metrics : sequence of {"recall", "ndcg", "precision", "hit_rate"}, \
            default=("recall", "ndcg")
        The metrics to compute.
    per_user : bool, default=False
        Return every evaluated user's values instead of their means.
    device : str or torch.device, default=None
        Where the scores are computed; None keeps the factors' device (CPU for arrays).
    user_batch_size : int, default=None
        Users per batch. None: ``_FACTOR_BLOCK_BYTES // (itemsize * item_batch_size)``, i.e. a
        score block of at most 64 MiB (1,024 users of 16,384 float32 scores).
    item_batch_size : int, default=None
        Items per block (capped at ``n_items``). None: 16,384 when ``user_batch_size`` is None
        too, else as many items as keep the block at 64 MiB.

    Returns
    -------
    values : dict
        One entry per metric: the mean over users with a positive in ``Y_true`` (NaN, with an
        ``UndefinedMetricWarning``, when there is none). With ``per_user=True``, one float64
        array per metric and ``"users"``, the indices of the users they belong to.

    Notes
    -----
    The factors are used in float64 when either of them is float64, else in float32. Peak
    memory beyond the factors and the sparse matrices is about one score block
    (``user_batch_size * item_batch_size * itemsize`` bytes) plus ``O(user_batch_size * k)``
    for the running top k. Time is dominated by the ``n_users * n_items * n_factors``
    multiply-adds: on the CPU the selection reads each score once in a compiled pass
    (:mod:`skmm.ranking`), so exact ranking runs near the machine's matrix-product rate.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skmm.metrics import evaluate_factors
    >>> rng = np.random.default_rng(0)
    >>> U, V = rng.normal(size=(50, 8)), rng.normal(size=(1000, 8))  # users, items
    >>> Y_test = sp.random(1000, 50, density=0.01, random_state=0)
    >>> Y_train = sp.random(1000, 50, density=0.02, random_state=1)
    >>> full = evaluate_factors(Y_test, U, V, k=10, exclude=Y_train)
    >>> blocked = evaluate_factors(Y_test, U, V, k=10, exclude=Y_train, item_batch_size=64)
    >>> full == blocked
    True
    >>> sorted(full)
    ['ndcg', 'recall']
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(dict.fromkeys(metrics))
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"metrics must be a non-empty sequence of {list(METRICS)}, got "
                         f"{metrics!r}.")
    device = None if device is None else resolve_device(device)
    U = check_factors(user_factors, "user_factors", device)
    V = check_factors(item_factors, "item_factors", device)
    if U.device != V.device:
        raise ValueError(f"user_factors and item_factors are on different devices ({U.device} "
                         f"and {V.device}); pass device=.")
    if U.shape[1] != V.shape[1]:
        raise ValueError(f"user_factors and item_factors must have the same number of "
                         f"columns (factors), got {U.shape[1]} and {V.shape[1]}.")
    dtype = torch.float64 if torch.float64 in (U.dtype, V.dtype) else torch.float32
    U, V = U.to(dtype), V.to(dtype)
    for t, name in ((U, "user_factors"), (V, "item_factors")):
        if not _all_finite(t):
            raise ValueError(f"{name} contains NaN or infinite values.")
    n_items, n_users = V.shape[0], U.shape[0]
    Y = check_interactions(Y_true, n_items, name="Y_true")
    if Y.shape[1] != n_users:
        raise ValueError(f"Y_true has {Y.shape[1]} user columns but user_factors has "
                         f"{n_users} rows.")
    excl = None
    if exclude is not None:
        exclude = check_interactions(exclude, n_items, name="exclude")
        if exclude.shape != Y.shape:
            raise ValueError(f"exclude must have the shape of Y_true {Y.shape}, got "
                             f"{exclude.shape}.")
        excl = sp.csr_matrix(exclude.T)
    with torch.no_grad():
        result = _evaluate(Y, lambda users: factor_topk_per_user(
            U, V, users, k, exclude=excl, user_batch_size=user_batch_size,
            item_batch_size=item_batch_size), k=k, metrics=metrics)
    if per_user:
        return result
    if result["users"].size == 0:
        warnings.warn(f"{', '.join(m + '@k' for m in metrics)} undefined: no user has a "
                      f"positive in Y_true.", UndefinedMetricWarning, stacklevel=3)
        return {m: float("nan") for m in metrics}
    return {m: float(result[m].mean()) for m in metrics}


def _check_inputs(Y_true, scores, exclude):
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-d (n_items, n_users), got shape {scores.shape}.")
    if not np.issubdtype(scores.dtype, np.number) or np.iscomplexobj(scores):
        raise TypeError(f"scores must be real numbers, got dtype {scores.dtype}.")
    shape = Y_true.shape if sp.issparse(Y_true) else np.shape(Y_true)
    if tuple(shape) != scores.shape:
        raise ValueError(f"Y_true and scores must have the same shape (n_items, n_users); got "
                         f"{tuple(shape)} and {scores.shape}.")
    Y = check_interactions(Y_true, scores.shape[0], name="Y_true")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN.")
    if exclude is not None:
        exclude = check_interactions(exclude, scores.shape[0], name="exclude")
        if exclude.shape != scores.shape:
            raise ValueError(f"exclude must have the shape of scores {scores.shape}, got "
                             f"{exclude.shape}.")
    return Y, scores, exclude


def _mean_metric(metric, Y_true, scores, k, exclude):
    Y, scores, exclude = _check_inputs(Y_true, scores, exclude)
    dtype = np.float64 if scores.dtype == np.float64 else np.float32

    def score_fn(users):
        return torch.from_numpy(np.ascontiguousarray(scores[:, users].T, dtype=dtype))

    values = evaluate_topk(Y, score_fn, k=k, exclude=exclude, metrics=(metric,))[metric]
    return _mean(values, metric)


def _mean(values, metric):
    if values.size == 0:
        warnings.warn(f"{metric}@k is undefined: no user has a positive in Y_true.",
                      UndefinedMetricWarning, stacklevel=4)
        return float("nan")
    return float(values.mean())


_METRIC_PARAMS = {
    "Y_true": ["array-like", "sparse matrix"],
    "scores": ["array-like"],
    "k": [Int(1)],
    "exclude": ["array-like", "sparse matrix", None],
}

_DOC = """{title}

    Items are rows: for each user (column) the rows of ``scores`` are ranked and the top ``k``
    compared with the user's positives in ``Y_true``. {definition} The result is the mean over
    users with at least one positive; users without one are left out.

    Parameters
    ----------
    Y_true : {{array-like, sparse matrix}} of shape (n_items, n_users)
        Positives, items as rows; any non-zero value is a positive.
    scores : array-like of shape (n_items, n_users)
        Higher is better. ``-inf`` is allowed; NaN is not. Among equal scores the
        lower item (row) index ranks first.
    k : int, default=20
        Cut-off (at most ``n_items`` items are ranked).
    exclude : {{array-like, sparse matrix}} of shape (n_items, n_users), default=None
        Items never recommended to a user (e.g. their training interactions): their scores
        become ``-inf`` before ranking. They still count in the user's positives when also in
        ``Y_true``.

    Returns
    -------
    score : float
        The mean over users; NaN (with an ``UndefinedMetricWarning``) when no user has a
        positive.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.metrics import {name}
    >>> Y_true = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])  # 4 items x 2 users
    >>> scores = np.array([[0.9, 0.1], [0.8, 0.5], [0.1, 0.3], [0.0, 0.9]])
    >>> round({name}(Y_true, scores, k=2), 4)
    {example}
    """


@validate_params(_METRIC_PARAMS, prefer_skip_nested_validation=True)
def recall_at_k(Y_true, scores, *, k=20, exclude=None):
    return _mean_metric("recall", Y_true, scores, k, exclude)


@validate_params(_METRIC_PARAMS, prefer_skip_nested_validation=True)
def ndcg_at_k(Y_true, scores, *, k=20, exclude=None):
    return _mean_metric("ndcg", Y_true, scores, k, exclude)


@validate_params(_METRIC_PARAMS, prefer_skip_nested_validation=True)
def precision_at_k(Y_true, scores, *, k=20, exclude=None):
    return _mean_metric("precision", Y_true, scores, k, exclude)


@validate_params(_METRIC_PARAMS, prefer_skip_nested_validation=True)
def hit_rate_at_k(Y_true, scores, *, k=20, exclude=None):
    return _mean_metric("hit_rate", Y_true, scores, k, exclude)


recall_at_k.__doc__ = _DOC.format(
    title="Recall@k: the fraction of a user's positives found in their top k.",
    definition="Recall is ``hits / n_positives`` (MMRec; not capped at ``k``).",
    name="recall_at_k", example="0.75")
ndcg_at_k.__doc__ = _DOC.format(
    title="NDCG@k: discounted cumulative gain of the top k, normalised by the ideal one.",
    definition="Gains are binary and discounted by ``log2(rank + 2)`` (rank from 0); the ideal "
               "DCG places ``min(k, n_positives)`` positives first (MMRec). With binary "
               "relevance and no ties it equals :func:`sklearn.metrics.ndcg_score` on the "
               "transposed matrices restricted to users with a positive.",
    name="ndcg_at_k", example="0.622")
precision_at_k.__doc__ = _DOC.format(
    title="Precision@k: the fraction of the top k that are positives.",
    definition="Precision is ``hits / k`` even when fewer than ``k`` items exist (MMRec).",
    name="precision_at_k", example="0.5")
hit_rate_at_k.__doc__ = _DOC.format(
    title="Hit rate@k: whether a user's top k contains at least one positive.",
    definition="A user scores 1 with at least one hit, else 0.",
    name="hit_rate_at_k", example="1.0")

METRIC_FUNCTIONS = {"recall": recall_at_k, "ndcg": ndcg_at_k, "precision": precision_at_k,
                    "hit_rate": hit_rate_at_k}
