"""The item-item co-interaction graph that FeatProp propagates over.

Two items are linked when users interacted with both. The graph is built sparsely, one block of
item rows at a time, so that memory is bounded by the block's co-interaction counts and never by
an ``n_items x n_items`` dense array (the official FeatProp code materialises that array).

Where the time goes, and why the code looks the way it does (1M items, 10M interactions):

* The counts ``C[block] = Y[block] @ Y.T`` are a sparse product; scipy's kernel is single-threaded
  but releases the GIL, so blocks run on ``torch.get_num_threads()`` Python threads.
* Keeping the top ``k`` of every row is one in-place ``np.sort`` of a packed int64 key per block
  (row, then count descending, then column ascending), followed by reading the first ``k + 1``
  slots of each row. Sorting keys is ~10x faster than ``argsort`` plus gathers, and no Python
  loop runs over rows.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from ._sparsetools import spgemm_into
from ._validation import check_interactions

__all__ = ["cointeraction_graph", "normalize_adjacency"]

# Co-interaction products (sum of the block's users' degrees, an upper bound on the block's
# count entries) per block when ``batch_size`` is None. Each worker thread holds buffers of
# 24 bytes per product (int32 column and count, two int64 sort arrays): ~100 MB at 4M. Blocks
# of 2M-16M products build the 1M-item benchmark graph equally fast; smaller ones sort in cache.
_BLOCK_WORK = 1 << 22

_INT32_MAX = np.iinfo(np.int32).max


def cointeraction_graph(Y, n_neighbors=20, *, symmetric=False, weighting="binary",
                        batch_size=None):
    """Build the top-k item-item co-interaction graph.

    Row ``i`` of the result links item ``i`` to the ``n_neighbors`` other items that share the
    most users with it. Pairs that share no user are never linked, even when an item has fewer
    than ``n_neighbors`` co-interacted items; ties at the cut go to the smaller item index.

    Parameters
    ----------
    Y : {array-like, sparse matrix} of shape (n_items, n_users)
        Interactions, items as rows. Any non-zero value counts as one interaction.
    n_neighbors : int, default=20
        Edges kept per item (row).
    symmetric : bool, default=False
        If True, keep the union of both directions (``max(A, A.T)``); the paper keeps the
        directed top-k graph.
    weighting : {"binary", "count"}, default="binary"
        ``"binary"`` gives every kept edge weight 1 (the paper: counts only rank neighbours);
        ``"count"`` keeps the co-interaction count as the weight.
    batch_size : int or None, default=None
        Item rows whose co-interaction counts are computed at once. None sizes blocks by their
        work (about 4 million co-interaction products each). The result does not depend on it.
        Blocks are processed on ``torch.get_num_threads()`` threads, each holding one block.

    Returns
    -------
    A : scipy.sparse.csr_matrix of shape (n_items, n_items), dtype float32
        The adjacency matrix, without self-loops, with sorted indices.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.graph import cointeraction_graph
    >>> Y = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0]])  # 4 items x 3 users
    >>> cointeraction_graph(Y, n_neighbors=1).toarray()
    array([[0., 1., 0., 0.],
           [1., 0., 0., 0.],
           [1., 0., 0., 0.],
           [0., 0., 0., 0.]], dtype=float32)
    """
    if weighting not in ("binary", "count"):
        raise ValueError(f"weighting must be 'binary' or 'count', got {weighting!r}.")
    if int(n_neighbors) < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}.")
    Y = check_interactions(Y, Y.shape[0] if hasattr(Y, "shape") else len(Y), name="Y")
    n_items = Y.shape[0]
    k = int(n_neighbors)

    # int32 counts are exact (float32 is not beyond 2**24 shared users); int32 indices halve the
    # index traffic of the product, and every array handed to the kernel must share one dtype.
    idx = np.int32 if max(Y.nnz, n_items, Y.shape[1]) < _INT32_MAX else np.int64
    Yi = sp.csr_matrix((np.ones(Y.nnz, np.int32), Y.indices.astype(idx, copy=False),
                        Y.indptr.astype(idx, copy=False)), shape=Y.shape)
    Yt = Yi.T.tocsr()
    Yt.indptr, Yt.indices = Yt.indptr.astype(idx, copy=False), Yt.indices.astype(idx, copy=False)

    blocks = list(_row_blocks(Yi, batch_size))
    # Each worker thread reuses its own buffers across blocks: a fresh 100 MB array costs more
    # in page faults than the passes that fill it (measured ~10x), so nothing block-sized is
    # allocated per block. They are freed with ``scratch`` before the matrix is assembled.
    scratch = threading.local()
    buf_size = max([work for _, _, work in blocks] + [1])

    def topk_block(block):
        start, stop, work = block
        buf = _buffers(scratch, buf_size, idx)
        indptr, cols, counts = _spgemm(Yi, Yt, start, stop, work, buf)
        return _topk_per_row(indptr, cols, counts, start, n_items, k, buf)

    n_threads = min(_n_threads(), len(blocks))
    if n_threads > 1:
        with ThreadPoolExecutor(n_threads) as pool:
            parts = list(pool.map(topk_block, blocks))  # in block order: deterministic
    else:
        parts = [topk_block(b) for b in blocks]

    # The blocks' kept entries are already in CSR order (rows ascending, columns ascending), so
    # the matrix is assembled directly rather than through a COO conversion.
    indices = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, idx)
    indptr = np.zeros(n_items + 1, idx if len(indices) < _INT32_MAX else np.int64)
    if parts:
        np.cumsum(np.concatenate([p[0] for p in parts]), out=indptr[1:])
    if weighting == "binary":
        data = np.ones(len(indices), np.float32)
    else:
        data = np.concatenate([p[2] for p in parts]).astype(np.float32)
    # Free the blocks, the buffers and the integer copies of Y before the union of both
    # directions, the build's largest step (on 5M items: about 0.8 GB less at the peak).
    parts = scratch = Yi = Yt = None
    A = sp.csr_matrix((data, indices, indptr), shape=(n_items, n_items))
    A.has_sorted_indices = True
    if symmetric:
        # Counts are symmetric, so the union keeps each pair's single weight.
        A = A.maximum(A.T).tocsr()
        A.sort_indices()
    return A


def _n_threads():
    """Worker threads for the graph build: torch's setting, so one knob controls both."""
    try:
        import torch

        return max(int(torch.get_num_threads()), 1)
    except ImportError:  # pragma: no cover - torch is a dependency
        return max(len(os.sched_getaffinity(0)), 1)


def _row_blocks(Y, batch_size):
    """Yield ``(start, stop, work)`` row ranges covering ``Y``.

    ``work`` is the number of products the block's sparse matmul performs (each of a row's users
    contributes its degree), an upper bound on the block's count entries.
    """
    n_items = Y.shape[0]
    user_degree = np.bincount(Y.indices, minlength=Y.shape[1]).astype(np.int64)
    work = np.zeros(n_items + 1, np.int64)
    np.cumsum(Y @ user_degree, out=work[1:])
    if batch_size is not None:
        step = max(int(batch_size), 1)
        stops = range(step, n_items + step, step)
    else:
        stops, start = [], 0
        while start < n_items:
            stop = int(np.searchsorted(work, work[start] + _BLOCK_WORK, side="right")) - 1
            start = min(max(stop, start + 1), n_items)
            stops.append(start)
    start = 0
    for stop in stops:
        stop = min(int(stop), n_items)
        yield start, stop, int(work[stop] - work[start])
        start = stop


def _buffers(scratch, size, idx):
    """This thread's reusable ``(indices, counts, key, aux)`` buffers of ``size`` entries."""
    bufs = getattr(scratch, "bufs", None)
    if bufs is None or len(bufs[0]) < size:
        scratch.bufs = bufs = (np.empty(size, idx), np.empty(size, np.int32),
                               np.empty(size, np.int64), np.empty(size, np.int64))
    return bufs


def _spgemm(Yi, Yt, start, stop, work, buf):
    """Counts ``Yi[start:stop] @ Yt`` as CSR arrays ``(indptr, indices, data)``.

    scipy's ``@`` first runs a symbolic pass only to size the output; the number of products
    ``work`` already bounds it, so the numeric kernel is called directly (about 15% faster) and
    writes into the thread's buffers. The kernel drops zero sums, so every count is positive.
    """
    idx = Yi.indices.dtype
    if work >= _INT32_MAX and idx == np.int32:  # pragma: no cover - counts overflow int32 idx
        C = (Yi[start:stop] @ Yt).tocsr()
        return C.indptr, C.indices, C.data
    lo, hi = Yi.indptr[start], Yi.indptr[stop]
    return spgemm_into(stop - start, Yi.indptr[start:stop + 1] - lo, Yi.indices[lo:hi],
                       Yi.data[lo:hi], Yt, buf[0][:max(work, 1)], buf[1][:max(work, 1)])


def _topk_per_row(indptr, cols, counts, start, n_cols, k, buf):
    """Keep, per row of a CSR count block, the ``k`` largest counts off the diagonal.

    Returns the number of kept entries per row, and their columns (ascending within each row)
    and counts, in row order.

    Vectorised over the block: one in-place sort of an int64 key that orders by row, then by
    descending count, then by ascending column. After it the best entries of row ``r`` occupy
    the first slots of its (unchanged) segment ``indptr[r]:indptr[r+1]``. The diagonal (the
    item's own degree) is the row's largest count, so it sits among the first ``k + 1`` slots
    unless ``k + 1`` other items tie with it; reading ``k + 1`` slots, dropping the diagonal and
    keeping ``k`` is therefore exact.
    """
    n_rows = len(indptr) - 1
    lengths = np.diff(indptr)
    if len(cols) == 0:
        return np.zeros(n_rows, np.int64), cols[:0], counts[:0]
    max_cnt = int(counts.max())
    # key = row * span + (max_cnt - count) * n_cols + column orders by (row, -count, column).
    span = (max_cnt + 1) * n_cols
    if n_rows * span < (1 << 62):
        m = len(cols)
        key, aux = buf[2][:m], buf[3][:m]
        np.multiply(counts, -n_cols, out=key, dtype=np.int64)
        key += cols
        # + row * span + max_cnt * n_cols, without np.repeat's fresh array: the cumsum of
        # steps placed at the row starts.
        aux[:] = 0
        aux[0] = max_cnt * n_cols
        starts = indptr[1:-1]
        np.add.at(aux, starts[starts < m], span)  # add.at: empty rows repeat a start
        np.cumsum(aux, out=aux)
        key += aux
        key.sort()  # in place; keys are distinct, so stability is irrelevant
        take = np.minimum(lengths, k + 1)
        pos = np.arange(take.sum()) + np.repeat(indptr[:-1] - _offsets(take), take)
        row, rest = np.divmod(key[pos], span)
        neg, col = np.divmod(rest, n_cols)
        cnt = max_cnt - neg
    else:  # pragma: no cover - astronomically large counts x columns: same order, slower
        row = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)
        order = np.lexsort((cols, -counts.astype(np.int64), row))
        take = np.minimum(lengths, k + 1)
        pos = np.arange(take.sum()) + np.repeat(indptr[:-1] - _offsets(take), take)
        row, col, cnt = row[order[pos]], cols[order[pos]].astype(np.int64), counts[order[pos]]
    off_diag = col != row + start
    row, col, cnt = row[off_diag], col[off_diag], cnt[off_diag]
    per_row = np.bincount(row, minlength=n_rows)
    rank = np.arange(len(row)) - np.repeat(_offsets(per_row), per_row)
    top = rank < k
    row, col, cnt = row[top], col[top], cnt[top]
    # CSR order: columns ascending within each row (the sort left them by count).
    order = np.argsort(row * n_cols + col)
    per_row = np.bincount(row, minlength=n_rows)
    return per_row, col[order].astype(cols.dtype), cnt[order].astype(np.int32)


def _offsets(lengths):
    """Start of each segment when segments of ``lengths`` are laid end to end."""
    out = np.zeros(len(lengths), np.int64)
    np.cumsum(lengths[:-1], out=out[1:])
    return out


def normalize_adjacency(A, normalization="sym", *, dtype=np.float32, copy=True):
    """Normalise an adjacency matrix for propagation.

    Parameters
    ----------
    A : scipy.sparse matrix of shape (n_items, n_items)
        Non-negative edge weights; row ``i`` lists the items that ``i`` pulls values from.
    normalization : {"sym", "rw"}, default="sym"
        ``"sym"`` is ``D^-1/2 A D^-1/2`` with ``D`` the row sums of ``A`` on both sides (the
        paper's rule, also for a directed graph); ``"rw"`` is ``D^-1 A``, row-stochastic, so a
        propagated value is a weighted average of its neighbours' values.
    dtype : numpy dtype, default=np.float32
        The dtype of the result (the degrees are computed in float64 either way).
    copy : bool, default=True
        If False, the result shares ``A``'s index arrays (``indices``, ``indptr``) when ``A`` is
        a CSR matrix, instead of copying them: less memory on a large graph, but changing the
        structure of one then changes the other.

    Returns
    -------
    P : scipy.sparse.csr_matrix of dtype ``dtype``
        Rows of items without edges stay zero.
    """
    if normalization not in ("sym", "rw"):
        raise ValueError(f"normalization must be 'sym' or 'rw', got {normalization!r}.")
    A = sp.csr_matrix(A)
    n_rows = A.shape[0]
    lengths = np.diff(A.indptr)
    deg = np.zeros(n_rows)
    nonempty = lengths > 0
    if A.nnz:
        deg[nonempty] = np.add.reduceat(A.data[:A.nnz].astype(np.float64),
                                        A.indptr[:-1][nonempty])
    inv = np.zeros_like(deg)
    nz = deg > 0
    inv[nz] = deg[nz] ** -0.5 if normalization == "sym" else 1.0 / deg[nz]
    data = np.empty(A.nnz, dtype)
    # In chunks of about a million entries, so that the float64 temporaries stay in cache
    # instead of costing a fresh 300 MB array each on a large graph (2.1 s -> 0.3 s at 38M).
    bounds = np.searchsorted(A.indptr, np.arange(0, A.nnz, 1 << 20), side="right") - 1
    bounds = np.unique(np.append(bounds, n_rows))
    for r0, r1 in zip(bounds[:-1], bounds[1:]):
        s, e = A.indptr[r0], A.indptr[r1]
        chunk = A.data[s:e].astype(np.float64)
        chunk *= np.repeat(inv[r0:r1], lengths[r0:r1])
        if normalization == "sym":
            chunk *= inv[A.indices[s:e]]
        data[s:e] = chunk
    if copy:
        return sp.csr_matrix((data, A.indices.copy(), A.indptr.copy()), shape=A.shape)
    P = sp.csr_matrix(A.shape, dtype=dtype)  # set directly: the constructor may re-cast
    P.data, P.indices, P.indptr = data, A.indices, A.indptr
    return P
