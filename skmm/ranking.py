"""The blocked top-k ranking engine: every user's best items, exactly, in bounded memory.

For each user the items are ranked by score and the top ``k`` kept. Scores are produced in
blocks (a batch of users x a block of items), each block's own top ``k`` is merged into a
running top ``k`` per user, so a full n_users x n_items score matrix never exists beyond one
block. The recommenders' ``recommend``/``score``, the metrics of :mod:`skmm.metrics` and the
validation callbacks all rank through here.

Ties are broken the same way everywhere: among equal scores the lower item index ranks first,
whatever the blocking, so blocked and unblocked rankings are identical.
"""

import numpy as np
import torch

__all__ = ["check_factors", "factor_topk_per_user", "topk_per_user"]

# Scores of this many (user, item) entries are ranked at once: 64 MiB of float32.
_BLOCK_ENTRIES = 1 << 24

# Factor models: bytes of one (user batch x item block) score block, and the item block size
# used when neither batch size is given (each user batch then gets
# _FACTOR_BLOCK_BYTES // (itemsize * _ITEM_BLOCK) users).
_FACTOR_BLOCK_BYTES = 64 << 20
_ITEM_BLOCK = 1 << 14


def _sorted_topk(scores, k):
    """Each row's ``k`` largest scores, ordered by (score descending, column ascending).

    Exact and deterministic: among equal scores the lower column wins, at the cut-off too.
    ``torch.topk`` alone breaks ties arbitrarily, so it is asked for ``k + 1`` values; where
    the ``k``-th and ``(k + 1)``-th are equal (a tie across the cut-off, rare with real-valued
    scores) the row's selection is redone exactly: every score above the ``k``-th value, then
    the leftmost of those equal to it.
    """
    n = scores.shape[1]
    if k >= n:
        values, cols = torch.sort(scores, dim=1, descending=True, stable=True)
        return values, cols
    top = torch.topk(scores, k + 1, dim=1)
    values, cols = top.values[:, :k], top.indices[:, :k]
    tied = top.values[:, k] == top.values[:, k - 1]
    if bool(tied.any()):
        rows = torch.nonzero(tied).squeeze(1)
        sub = scores[rows]
        kth = top.values[rows, k - 1:k]
        above = sub > kth
        equal = sub == kth
        need = k - above.sum(dim=1, keepdim=True)
        keep = above | (equal & (torch.cumsum(equal, dim=1) <= need))
        picked = torch.nonzero(keep)[:, 1].view(len(rows), k)  # row-major: sorted columns
        values, cols = values.clone(), cols.clone()
        values[rows] = sub.gather(1, picked)
        cols[rows] = picked
    # Order the k kept entries: by column, then (stably) by score descending.
    cols, order = torch.sort(cols, dim=1)
    values = values.gather(1, order)
    values, order = torch.sort(values, dim=1, descending=True, stable=True)
    return values, cols.gather(1, order)


def _merge_topk(values, items, block_values, block_items, k):
    """Merge a running top ``k`` with a later item block's (all its items are larger).

    Both are ordered by (score descending, item ascending) and every running item precedes
    every block item, so among equal scores position order is item order: a stable sort of
    the concatenation keeps the lower item first.
    """
    values = torch.cat([values, block_values], dim=1)
    items = torch.cat([items, block_items], dim=1)
    values, order = torch.sort(values, dim=1, descending=True, stable=True)
    return values[:, :k], items.gather(1, order[:, :k])


def _ranked_blocks(block_fn, users, n_items, k, *, exclude, user_batch_size,
                   item_batch_size, device=None, owned=False, check_nan=True):
    """Yield ``(batch_users, top_items, top_scores)``: the blocked top-k engine.

    ``block_fn(batch, start, stop)`` returns the scores of items ``start:stop`` for the users
    of ``batch``, a tensor of shape (len(batch), stop - start). ``exclude`` is a CSR matrix of
    shape (n_users, n_items) whose entries are set to ``-inf``. ``owned``: the blocks are fresh
    tensors that may be written to in place (otherwise they are copied before masking).
    ``check_nan``: scan every block for NaN; without it a NaN is still caught when it reaches
    a user's top k (``torch.topk`` ranks NaN above everything), unless it was masked.
    """
    k_eff = min(k, n_items)
    for ustart in range(0, len(users), user_batch_size):
        batch = users[ustart:ustart + user_batch_size]
        if exclude is not None:
            coo = exclude[batch].tocoo()
            order = np.argsort(coo.col, kind="stable")
            ex_rows, ex_cols = coo.row[order].astype(np.int64), coo.col[order].astype(np.int64)
        values = items = None
        for start in range(0, max(n_items, 1), item_batch_size):  # one empty block if none
            stop = min(start + item_batch_size, n_items)
            scores = block_fn(batch, start, stop)
            dev = scores.device if device is None else device
            if check_nan and bool(torch.isnan(scores).any()):
                raise ValueError("scores contain NaN; every item needs a comparable score.")
            if exclude is not None:
                lo, hi = np.searchsorted(ex_cols, [start, stop])
                if hi > lo:
                    if not owned:
                        scores = scores.clone()
                    scores[torch.as_tensor(ex_rows[lo:hi], device=dev),
                           torch.as_tensor(ex_cols[lo:hi] - start, device=dev)] = -torch.inf
            block_values, block_cols = _sorted_topk(scores, min(k_eff, stop - start))
            del scores  # before the next block is computed: one block alive at a time
            if not check_nan and bool(torch.isnan(block_values[:, :1]).any()):
                raise ValueError("scores contain NaN; every item needs a comparable score "
                                 "(the factors' dot products overflow).")
            block_items = block_cols + start if start else block_cols
            if values is None:
                values, items = block_values, block_items
            else:
                values, items = _merge_topk(values, items, block_values, block_items, k_eff)
        yield batch, items, values


def topk_per_user(score_fn, users, n_items, k, *, exclude=None, device=None, batch_size=None):
    """Yield ``(batch_users, top_items, top_scores)`` batch by batch, best first.

    Among equal scores the lower item index ranks first.

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
    if batch_size is None:
        batch_size = max(1, _BLOCK_ENTRIES // max(n_items, 1))
    return _ranked_blocks(lambda batch, start, stop: score_fn(batch), users, n_items, k,
                          exclude=exclude, user_batch_size=batch_size,
                          item_batch_size=max(n_items, 1), device=device)


def _factor_batch_sizes(n_users, n_items, itemsize, user_batch_size, item_batch_size):
    """(users per batch, items per block) for one score block of ``_FACTOR_BLOCK_BYTES``."""
    entries = max(1, _FACTOR_BLOCK_BYTES // itemsize)
    if item_batch_size is None:
        item_batch_size = (_ITEM_BLOCK if user_batch_size is None
                           else max(1, entries // user_batch_size))
    item_batch_size = max(1, min(item_batch_size, n_items))
    if user_batch_size is None:
        user_batch_size = max(1, entries // item_batch_size)
    return max(1, min(user_batch_size, n_users)), item_batch_size


def check_factors(factors, name, device=None):
    """A 2-d real factor matrix (array-like or tensor) as a detached tensor on ``device``."""
    if isinstance(factors, torch.Tensor):
        t = factors.detach()
    else:
        arr = np.asarray(factors)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                       or arr.dtype == np.bool_):
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}.")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-d (n, n_factors), got shape {tuple(t.shape)}.")
    if t.is_complex():
        raise TypeError(f"{name} must be real, got dtype {t.dtype}.")
    if device is not None:
        t = t.to(device)
    return t


def _all_finite(t, chunk_entries=1 << 22):
    """``torch.isfinite(t).all()`` by row chunks: its temporaries are several times ``t``."""
    rows = max(1, chunk_entries // max(t.shape[1], 1))
    return all(bool(torch.isfinite(t[s:s + rows]).all()) for s in range(0, t.shape[0], rows))


def factor_topk_per_user(user_factors, item_factors, users, k, *, exclude=None,
                         user_batch_size=None, item_batch_size=None):
    """Yield ``(batch_users, top_items, top_scores)`` for ``user_factors @ item_factors.T``.

    The blocked counterpart of :func:`topk_per_user` for validated float tensors on one
    device: scores exist one (user batch x item block) block at a time (see
    :func:`evaluate_factors` for the sizes). Same output, same tie rule.
    """
    n_items = item_factors.shape[0]
    user_batch_size, item_batch_size = _factor_batch_sizes(
        max(len(users), 1), n_items, item_factors.element_size(), user_batch_size,
        item_batch_size)
    dev = item_factors.device
    state = {}

    def block_fn(batch, start, stop):
        if state.get("batch") is not batch:  # gather a batch's user rows once
            state["batch"] = batch
            state["U"] = user_factors[torch.as_tensor(batch, device=dev)]
        return state["U"] @ item_factors[start:stop].T

    return _ranked_blocks(block_fn, users, n_items, k, exclude=exclude,
                          user_batch_size=user_batch_size, item_batch_size=item_batch_size,
                          owned=True, check_nan=False)
