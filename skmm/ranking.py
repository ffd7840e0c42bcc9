"""The blocked top-k ranking engine: every user's best items, exactly, in bounded memory.

For each user the items are ranked by score and the top ``k`` kept. Scores are produced in
blocks (a batch of users x a block of items), each block's own top ``k`` is merged into a
running top ``k`` per user, so a full n_users x n_items score matrix never exists beyond one
block. The recommenders' ``recommend``/``score``, the metrics of :mod:`skmm.metrics` and the
validation callbacks all rank through here.

Ties are broken the same way everywhere: among equal scores the lower item index ranks first,
whatever the blocking, so blocked and unblocked rankings are identical.

How the selection is kept cheap next to the score product (exact ranking is bound by the
``n_users x n_items x n_factors`` multiply-adds, which BLAS does at near peak):

* On the CPU a numba kernel (:func:`_select_rows`) merges each block into the running top
  ``k`` in one pass: a score is compared with its user's current ``k``-th value, 256 at a time
  in a vectorised count, and only a run that beats it is read again and inserted. Seen items
  are skipped in the same pass, not written into the block. That is what faiss's heaps do,
  with the lower-index tie rule kept; ``torch.topk`` per block plus a merge cost a multiple
  of the product.
* Elsewhere (CUDA) the blocks are cut to their own top ``k`` until every user holds ``k``
  items; later blocks are pruned by comparing chunk maxima with the thresholds, and only
  the chunks that beat them are merged (:class:`_RunningTopK`).
* The factor products of all blocks share one output buffer.

Why one module of this length: both selection paths implement one contract (tie rule,
exclusion, NaN detection), tested against each other and a reference, and the blocking that
feeds them is sized for them.
"""

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numba
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
# Whether CPU blocks go through the numba selection kernel (False: the torch path that other
# devices take; the tests run both).
_USE_KERNEL = True
# Columns per chunk whose maximum is compared with the running thresholds (_RunningTopK).
_CHUNK = 256


def _nan_error(overflow=False):
    """The one error for NaN scores (``overflow``: they came from a factor product)."""
    return ValueError("scores contain NaN; every item needs a comparable score"
                      + (" (the factors' dot products overflow)." if overflow else "."))


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


class _RunningTopK:
    """Each user's best ``k`` items so far, fed item block by item block in item order.

    A block is first cut to its own top ``k`` (:func:`_sorted_topk`) and merged, until every
    user holds ``k`` items. From then on only scores above a user's current ``k``-th value can
    enter (an equal score loses the tie: its item index is larger than every item held), and
    after the first few blocks such scores are rare: about ``k * block / items_seen`` per user
    and block. So a block is not ranked at all. The maxima of its ``_CHUNK``-wide column
    chunks (one cheap pass over the block) are compared with the thresholds, and only the
    chunks that beat them are read and merged, instead of a ``torch.topk`` of every block.
    This is the path of devices other than the CPU; its speed there is not benchmarked here
    (no GPU was available), and on the CPU the kernel of :class:`_CPUTopK` is faster.
    """

    def __init__(self, k, exclude, device):
        self.k = k
        self.values = self.items = None
        self.device = device
        if exclude is not None:
            coo = exclude.tocoo()
            order = np.argsort(coo.col, kind="stable")
            self.ex_rows = coo.row[order].astype(np.int64)
            self.ex_cols = coo.col[order].astype(np.int64)
        else:
            self.ex_cols = None

    def add(self, scores, start, pool=None, owned=False):
        """Merge the block ``scores`` (users x items ``start:start + width``)."""
        if self.ex_cols is not None:
            lo, hi = np.searchsorted(self.ex_cols, [start, start + scores.shape[1]])
            if hi > lo:
                dev = scores.device if self.device is None else self.device
                if not owned:
                    scores = scores.clone()
                scores[torch.as_tensor(self.ex_rows[lo:hi], device=dev),
                       torch.as_tensor(self.ex_cols[lo:hi] - start, device=dev)] = -torch.inf
        if self.k == 0:
            if self.values is None:
                self.values = scores.new_empty((scores.shape[0], 0))
                self.items = torch.zeros((scores.shape[0], 0), dtype=torch.int64,
                                         device=scores.device)
            return
        if self.values is None or self.values.shape[1] < self.k:
            block_values, block_cols = _sorted_topk(scores, min(self.k, scores.shape[1]))
            block_items = block_cols + start if start else block_cols
            if self.values is None:
                self.values, self.items = block_values, block_items
            else:
                self.values, self.items = _merge_topk(self.values, self.items, block_values,
                                                      block_items, self.k)
            return
        found = self._candidates(scores, start)
        if found:
            self._merge(found)

    def check_nan(self, checked):
        """Without a scan of every block, a NaN ranked first is the NaN that topk saw."""
        if not checked and self.k and bool(torch.isnan(self.values[:, :1]).any()):
            raise _nan_error(overflow=True)

    def _candidates(self, scores, start):
        """The block's scores above their row's threshold, as two row-major lists.

        Returns ``[(rows, items, values), ...]``: the candidates of the full ``_CHUNK``-wide
        chunks, then those of the narrower tail chunk (larger items), each ordered by row,
        then item.
        """
        n_rows, width = scores.shape
        kth = self.values[:, -1:]
        n_full = width // _CHUNK
        found = []
        if n_full:
            chunks = scores[:, :n_full * _CHUNK].view(n_rows, n_full, _CHUNK)
            maxima = chunks.amax(2)
            if bool(torch.isnan(maxima).any()):  # amax propagates NaN: it sees every NaN
                raise _nan_error(overflow=True)
            rows, chunk_ids = torch.nonzero(maxima > kth).unbind(1)  # row-major
            if len(rows):
                picked = chunks[rows, chunk_ids]  # (hits, _CHUNK)
                hit, col = torch.nonzero(picked > kth[rows]).unbind(1)  # columns ascend
                found.append((rows[hit], chunk_ids[hit] * _CHUNK + col + start,
                              picked[hit, col]))
        if width > n_full * _CHUNK:
            tail = scores[:, n_full * _CHUNK:]
            if bool(torch.isnan(tail).any()):
                raise _nan_error(overflow=True)
            rows, col = torch.nonzero(tail > kth).unbind(1)
            if len(rows):
                found.append((rows, col + (n_full * _CHUNK + start), tail[rows, col]))
        return found

    def _merge(self, found):
        """Merge the candidate lists of :meth:`_candidates` into the running top k.

        Each touched row gets a row of its ``k`` held entries, then its candidates in item
        order, padded with ``-inf``; :func:`_sorted_topk` of these rows is the new top k. The
        held entries are ordered by (score descending, item ascending), their items are all
        smaller than the candidates', and padding follows everything, so among equal scores
        position order is item order and the lower item wins, as in a ranking of all items.
        (A pad never displaces a real entry: each row holds ``k`` entries before any pad.)
        """
        k, n_rows = self.k, self.values.shape[0]
        dev = self.values.device
        counts = [torch.bincount(rows, minlength=n_rows) for rows, _, _ in found]
        total = counts[0] if len(counts) == 1 else counts[0] + counts[1]
        touched = torch.nonzero(total).squeeze(1)
        local = torch.full((n_rows,), -1, dtype=torch.int64, device=dev)
        local[touched] = torch.arange(len(touched), device=dev)
        width = k + int(total.max())
        values = self.values.new_full((len(touched), width), -torch.inf)
        items = self.items.new_zeros((len(touched), width))
        values[:, :k] = self.values[touched]
        items[:, :k] = self.items[touched]
        before = None  # candidates of the same row in earlier lists
        for (rows, cand_items, cand_values), count in zip(found, counts):
            first = torch.cumsum(count, 0) - count
            rank = torch.arange(len(rows), device=dev) - first[rows] + k
            if before is not None:
                rank += before[rows]
            values[local[rows], rank] = cand_values
            items[local[rows], rank] = cand_items
            before = count
        top_values, cols = _sorted_topk(values, k)
        self.values[touched] = top_values
        self.items[touched] = items.gather(1, cols)


@numba.njit(nogil=True, cache=False)
def _insert(values, items, r, c, s, item):  # pragma: no cover - compiled
    """Insert score ``s`` of ``item`` into row ``r`` (``c`` held), after every held score
    at least as large; the last entry drops out when the row is full. Returns the count."""
    k = values.shape[1]
    i = c if c < k else k - 1
    while i > 0 and values[r, i - 1] < s:
        values[r, i] = values[r, i - 1]
        items[r, i] = items[r, i - 1]
        i -= 1
    values[r, i] = s
    items[r, i] = item
    return c + 1 if c < k else c


@numba.njit(nogil=True, cache=False)
def _count_above(seg, kth):  # pragma: no cover - compiled
    """How many scores of ``seg`` are above ``kth`` or NaN (branch-free, vectorised)."""
    n = 0
    for q in range(seg.shape[0]):
        if not (seg[q] <= kth):
            n += 1
    return n


@numba.njit(nogil=True, cache=False)
def _select_rows(scores, start, row_lo, row_hi, values, items, counts, ex_indptr, ex_cols,
                 ex_pos):  # pragma: no cover - compiled; covered through _CPUTopK
    """Merge rows ``row_lo:row_hi`` of a score block into the running top ``k``, in place.

    A score enters while its row holds fewer than ``k`` items, or when it beats the row's
    ``k``-th value; it is inserted after every held score at least as large. The blocks
    arrive in item order, so among equal scores the held item, the smaller, stays first.
    Once a row is full its scores are scanned ``_CHUNK`` at a time with a branch-free test
    ("any score above the threshold, or NaN?") that the compiler vectorises; only a chunk
    that passes is read again one score at a time. Excluded items (row ``r``'s sorted
    columns ``ex_cols[ex_pos[r]:ex_indptr[r + 1]]``) score ``-inf``: the scan stops at each.
    Returns True where a NaN was seen.
    """
    k = values.shape[1]
    width = scores.shape[1]
    nan = False
    for r in range(row_lo, row_hi):
        c = counts[r]
        p = ex_pos[r]
        stop = ex_indptr[r + 1]
        j = 0
        while j < width:
            # The next excluded column of this block bounds the run scanned without checks.
            end = width
            if p < stop and ex_cols[p] < start + width:
                end = ex_cols[p] - start
            while j < end and c < k:  # filling: every score enters
                s = scores[r, j]
                if s != s:
                    nan = True
                else:
                    c = _insert(values, items, r, c, s, start + j)
                j += 1
            while j < end:
                n = min(_CHUNK, end - j)
                seg = scores[r, j:j + n]  # a slice: the compiler vectorises the count
                if _count_above(seg, values[r, k - 1]):
                    for q in range(n):
                        s = seg[q]
                        if s != s:
                            nan = True
                        elif s > values[r, k - 1]:
                            c = _insert(values, items, r, c, s, start + j + q)
                j += n
            if end < width:  # the excluded item: -inf enters only while filling
                if c < k:
                    c = _insert(values, items, r, c, -np.inf, start + end)
                p += 1
                j = end + 1
        counts[r] = c
        ex_pos[r] = p
    return nan


class _CPUTopK:
    """The running top ``k`` of a user batch on the CPU: :func:`_select_rows` on threads.

    The numba kernel reads each score once, where a ``torch.topk`` per block followed by a
    merge costs several passes and a sort: with it, ranking runs near the speed of the score
    product (see ``benchmarks/bench_ranking.py``). Rows are split over
    ``torch.get_num_threads()`` threads; the kernel releases the GIL.
    """

    def __init__(self, k, n_rows, dtype, exclude):
        self.values = torch.full((n_rows, k), -torch.inf, dtype=dtype)
        self.items = torch.zeros((n_rows, k), dtype=torch.int64)
        self.counts = np.zeros(n_rows, np.int64)
        if exclude is None:
            self.ex_indptr = np.zeros(n_rows + 1, np.int64)
            self.ex_cols = np.zeros(0, np.int64)
        else:
            self.ex_indptr = exclude.indptr.astype(np.int64)
            self.ex_cols = exclude.indices.astype(np.int64)
        self.ex_pos = self.ex_indptr[:-1].copy()
        n_threads = max(1, min(int(torch.get_num_threads()), n_rows // 64))
        self.bounds = np.linspace(0, n_rows, n_threads + 1).astype(np.int64)

    def add(self, scores, start, pool, owned=False):  # never writes to scores
        s = scores.contiguous().numpy()  # a no-op for the engine's own blocks
        v, it = self.values.numpy(), self.items.numpy()
        args = (self.counts, self.ex_indptr, self.ex_cols, self.ex_pos)
        spans = list(zip(self.bounds[:-1], self.bounds[1:]))
        if pool is None or len(spans) == 1:
            nans = [_select_rows(s, start, lo, hi, v, it, *args) for lo, hi in spans]
        else:
            nans = list(pool.map(lambda span: _select_rows(s, start, span[0], span[1], v, it,
                                                           *args), spans))
        if any(nans):
            raise _nan_error()


def _ranked_blocks(block_fn, users, n_items, k, *, exclude, user_batch_size,
                   item_batch_size, device=None, owned=False, check_nan=True):
    """Yield ``(batch_users, top_items, top_scores)``: the blocked top-k engine.

    ``block_fn(batch, start, stop)`` returns the scores of items ``start:stop`` for the users
    of ``batch``, a tensor of shape (len(batch), stop - start). ``exclude`` is a CSR matrix of
    shape (n_users, n_items) whose stored entries score ``-inf``. ``owned``: the blocks are
    tensors that may be written to in place (otherwise they are copied before masking); such
    a block may be overwritten by the next call. ``check_nan``: scan every block for NaN
    first; without it a NaN is still caught, unless it was masked, by the selection
    (:func:`_select_rows` on the CPU; elsewhere when it reaches a user's top k, as
    ``torch.topk`` ranks NaN above everything, or by the chunk maxima of
    :class:`_RunningTopK`).
    """
    k_eff = min(k, n_items)
    n_threads = max(int(torch.get_num_threads()), 1)
    with ThreadPoolExecutor(n_threads) if n_threads > 1 else nullcontext() as pool:
        for ustart in range(0, len(users), user_batch_size):
            batch = users[ustart:ustart + user_batch_size]
            excl = None
            if exclude is not None:
                excl = exclude[batch]
                excl.sum_duplicates()  # sorted, unique columns per row
            top = None
            for start in range(0, max(n_items, 1), item_batch_size):  # one empty block if none
                stop = min(start + item_batch_size, n_items)
                scores = block_fn(batch, start, stop)
                if check_nan and bool(torch.isnan(scores).any()):
                    raise _nan_error()
                if top is None:
                    top = (_CPUTopK(k_eff, len(batch), scores.dtype, excl)
                           if scores.device.type == "cpu" and _USE_KERNEL and k_eff
                           and scores.dtype in (torch.float32, torch.float64)
                           else _RunningTopK(k_eff, excl, device))
                top.add(scores, start, pool, owned)
                del scores  # before the next block is computed: one block alive at a time
            if isinstance(top, _RunningTopK):
                top.check_nan(check_nan)
            yield batch, top.items, top.values


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
        n = len(batch) * (stop - start)
        if state.get("out") is None or state["out"].numel() < n:
            # One buffer for every block: a fresh block-sized array per product costs page
            # faults comparable to the product itself on the CPU.
            state["out"] = item_factors.new_empty(n)
        out = state["out"][:n].view(len(batch), stop - start)
        return torch.mm(state["U"], item_factors[start:stop].T, out=out)

    return _ranked_blocks(block_fn, users, n_items, k, exclude=exclude,
                          user_batch_size=user_batch_size, item_batch_size=item_batch_size,
                          owned=True, check_nan=False)
