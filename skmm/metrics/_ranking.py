"""Top-k ranking metrics over users, items as rows (the MMRec definitions).

Every function ranks, for each user, the rows (items) of a score matrix, keeps the top ``k``
and compares them with the user's positives. Users are processed in batches with
``torch.topk``, so a full n_users x n_items score matrix never exists at once beyond what the
caller passes in.
"""

import warnings
from numbers import Integral

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.exceptions import UndefinedMetricWarning

from .._validation import check_interactions

METRICS = ("recall", "ndcg", "precision", "hit_rate")

# Scores of this many (user, item) entries are ranked at once: 64 MiB of float32.
_BLOCK_ENTRIES = 1 << 24


def _check_k(k, name="k"):
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {k!r}.")
    return int(k)


def user_batches(n_users, n_items, batch_size=None):
    """Consecutive user index ranges sized so that a batch's scores stay bounded."""
    if batch_size is None:
        batch_size = max(1, _BLOCK_ENTRIES // max(n_items, 1))
    for start in range(0, n_users, batch_size):
        yield np.arange(start, min(start + batch_size, n_users))


def topk_per_user(score_fn, users, n_items, k, *, exclude=None, device=None, batch_size=None):
    """Yield ``(batch_users, top_items, top_scores)`` batch by batch, best first.

    Parameters
    ----------
    score_fn : callable
        ``score_fn(users)`` with ``users`` an int64 ndarray returns a float tensor of shape
        (len(users), n_items) on ``device``.
    users : ndarray of int
        The users to rank for.
    n_items : int
        Number of items (columns of each score batch).
    k : int
        Cut-off; ``min(k, n_items)`` items are returned per user.
    exclude : scipy.sparse.csr_matrix of shape (n_users, n_items), default=None
        Entries that get score ``-inf`` (never recommended before any other item).
    device : torch.device, default=None
        Where masks are built; defaults to the scores' device.
    batch_size : int, default=None
        Users per batch; None bounds a batch to about 16 million scores.
    """
    k_eff = min(k, n_items)
    if batch_size is None:
        batch_size = max(1, _BLOCK_ENTRIES // max(n_items, 1))
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        scores = score_fn(batch)
        dev = scores.device if device is None else device
        if torch.isnan(scores).any():
            raise ValueError("scores contain NaN; every item needs a comparable score.")
        if exclude is not None:
            rows, cols = exclude[batch].nonzero()
            if rows.size:
                scores = scores.clone()
                scores[torch.as_tensor(rows, device=dev), torch.as_tensor(cols, device=dev)] = \
                    -torch.inf
        top = torch.topk(scores, k_eff, dim=1)
        yield batch, top.indices, top.values


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
    n_items, n_users = Y_true.shape
    truth = sp.csr_matrix(Y_true.T)
    n_pos = np.diff(truth.indptr)
    users = np.flatnonzero(n_pos > 0)
    excl = None if exclude is None else sp.csr_matrix(exclude.T)
    k_eff = min(k, n_items)
    discount = 1.0 / np.log2(np.arange(k_eff) + 2.0)
    ideal = np.concatenate(([0.0], np.cumsum(discount)))
    out = {m: [] for m in metrics}
    for batch, top, values in topk_per_user(score_fn, users, n_items, k, exclude=excl,
                                            device=device, batch_size=batch_size):
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


def _check_inputs(Y_true, scores, exclude):
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-d (n_items, n_users), got shape {scores.shape}.")
    if not np.issubdtype(scores.dtype, np.number):
        raise TypeError(f"scores must be numeric, got dtype {scores.dtype}.")
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
    k = _check_k(k)
    Y, scores, exclude = _check_inputs(Y_true, scores, exclude)
    dtype = np.float64 if scores.dtype == np.float64 else np.float32

    def score_fn(users):
        return torch.from_numpy(np.ascontiguousarray(scores[:, users].T, dtype=dtype))

    values = evaluate_topk(Y, score_fn, k=k, exclude=exclude, metrics=(metric,))[metric]
    return _mean(values, metric)


def _mean(values, metric):
    if values.size == 0:
        warnings.warn(f"{metric}@k is undefined: no user has a positive in Y_true.",
                      UndefinedMetricWarning, stacklevel=3)
        return float("nan")
    return float(values.mean())


_DOC = """{title}

    Items are rows: for each user (column) the rows of ``scores`` are ranked and the top ``k``
    compared with the user's positives in ``Y_true``. {definition} The result is the mean over
    users with at least one positive; users without one are left out.

    Parameters
    ----------
    Y_true : {{array-like, sparse matrix}} of shape (n_items, n_users)
        Positives, items as rows; any non-zero value is a positive.
    scores : array-like of shape (n_items, n_users)
        Higher is better. ``-inf`` is allowed; NaN is not. Ties are broken arbitrarily.
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


def recall_at_k(Y_true, scores, *, k=20, exclude=None):
    return _mean_metric("recall", Y_true, scores, k, exclude)


def ndcg_at_k(Y_true, scores, *, k=20, exclude=None):
    return _mean_metric("ndcg", Y_true, scores, k, exclude)


def precision_at_k(Y_true, scores, *, k=20, exclude=None):
    return _mean_metric("precision", Y_true, scores, k, exclude)


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

_FUNCTIONS = {"recall": recall_at_k, "ndcg": ndcg_at_k, "precision": precision_at_k,
              "hit_rate": hit_rate_at_k}


def make_topk_scorer(metric="ndcg", k=20):
    """A scorer ``scorer(estimator, X, Y)`` for model selection with a top-k metric.

    The scorer ranks the rows of ``X`` (held-out items) for every user with
    ``estimator.decision_function(X)`` and averages ``metric`` over the users with a positive
    in ``Y``. Pass it as ``scoring`` to :class:`~sklearn.model_selection.GridSearchCV` or
    :func:`~sklearn.model_selection.cross_val_score`; with folds over items this is
    cold-start validation.

    Parameters
    ----------
    metric : {"ndcg", "recall", "precision", "hit_rate"} or callable, default="ndcg"
        A metric name, or a function ``metric(Y_true, scores, *, k)`` returning a float.
    k : int, default=20
        Cut-off.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, Y)`` -> float, higher is better.

    Examples
    --------
    >>> from skmm.metrics import make_topk_scorer
    >>> scorer = make_topk_scorer("recall", k=10)
    >>> scorer.__name__
    'recall_at_10'
    """
    k = _check_k(k)
    if isinstance(metric, str):
        if metric not in _FUNCTIONS:
            raise ValueError(f"metric must be one of {sorted(_FUNCTIONS)} or a callable, got "
                             f"{metric!r}.")
        name, func = metric, _FUNCTIONS[metric]
    elif callable(metric):
        name, func = getattr(metric, "__name__", "metric"), metric
    else:
        raise TypeError(f"metric must be a string or a callable, got {type(metric).__name__}.")

    return _TopKScorer(func, k, f"{name}_at_{k}")


class _TopKScorer:
    """A picklable ``scorer(estimator, X, Y)`` (joblib workers of a grid search pickle it)."""

    def __init__(self, func, k, name):
        self.func = func
        self.k = k
        self.__name__ = name

    def __call__(self, estimator, X, Y):
        return float(self.func(Y, estimator.decision_function(X), k=self.k))

    def __repr__(self):
        return f"make_topk_scorer({self.__name__!r})"
