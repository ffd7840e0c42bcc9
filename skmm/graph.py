"""The item-item co-interaction graph that FeatProp propagates over.

Two items are linked when users interacted with both. The graph is built sparsely, one block of
item rows at a time, so that memory is bounded by the block's co-interaction counts and never by
an ``n_items x n_items`` dense array (the official FeatProp code materialises that array).
"""

import numpy as np
import scipy.sparse as sp

from ._validation import check_interactions

__all__ = ["cointeraction_graph", "normalize_adjacency"]

# Co-interaction entries computed per block when ``batch_size`` is None: about 16 bytes each
# while a block is sorted, so this bounds the builder's working memory to a few hundred MB.
_BLOCK_WORK = 1 << 24


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
        work (about 16 million co-interaction entries each). The result does not depend on it.

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
    # int32 counts are exact, unlike float32 beyond 2**24 shared users.
    Yi = Y.astype(np.int32)
    Yt = Yi.T.tocsr()

    rows, cols, vals = [], [], []
    for start, stop in _row_blocks(Yi, batch_size):
        block = (Yi[start:stop] @ Yt).tocsr()
        r, c, v = _topk_per_row(block, start, int(n_neighbors))
        rows.append(r + start)
        cols.append(c)
        vals.append(v)
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    vals = np.concatenate(vals) if vals else np.zeros(0, np.int32)
    data = np.ones(len(vals), np.float32) if weighting == "binary" else vals.astype(np.float32)
    A = sp.csr_matrix((data, (rows, cols)), shape=(n_items, n_items))
    if symmetric:
        # Counts are symmetric, so the union keeps each pair's single weight.
        A = A.maximum(A.T).tocsr()
    A.sort_indices()
    return A


def _row_blocks(Y, batch_size):
    """Yield ``(start, stop)`` row ranges covering ``Y``."""
    n_items = Y.shape[0]
    if batch_size is not None:
        step = max(int(batch_size), 1)
        for start in range(0, n_items, step):
            yield start, min(start + step, n_items)
        return
    # Work of row i = entries of its count row before merging: sum of its users' degrees.
    user_degree = np.asarray(Y.sum(axis=0)).ravel().astype(np.int64)
    work = np.cumsum(Y @ user_degree)
    start = 0
    while start < n_items:
        base = work[start - 1] if start else 0
        stop = int(np.searchsorted(work, base + _BLOCK_WORK, side="right"))
        stop = min(max(stop, start + 1), n_items)
        yield start, stop
        start = stop


def _topk_per_row(block, start, k):
    """Keep, per row of a CSR count block, the ``k`` largest counts off the diagonal.

    Vectorised over the block: one sort by (row, -count, column) replaces a per-row loop.
    Returns local row ids, column ids and counts of the kept entries.
    """
    n_rows = block.shape[0]
    indptr = block.indptr
    row = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(indptr))
    col = block.indices.astype(np.int64, copy=False)
    cnt = block.data
    keep = (col != row + start) & (cnt > 0)
    row, col, cnt = row[keep], col[keep], cnt[keep]

    per_row = np.bincount(row, minlength=n_rows)
    crowded = per_row > k
    if not crowded.any():
        return row, col, cnt
    sel = crowded[row]
    easy = ~sel
    r, c, v = row[sel], col[sel], cnt[sel]

    n_cols = block.shape[1]
    max_cnt = int(v.max())
    # One int64 key ordering by row, then by descending count, then by ascending column.
    span = (max_cnt + 1) * n_cols
    if n_rows * span < np.iinfo(np.int64).max // 2:
        key = r * span + (max_cnt - v.astype(np.int64)) * n_cols + c
        order = np.argsort(key, kind="stable")
    else:  # pragma: no cover - astronomically large blocks
        order = np.lexsort((c, -v.astype(np.int64), r))
    r, c, v = r[order], c[order], v[order]
    counts = np.bincount(r, minlength=n_rows)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(len(r)) - first[r]
    top = rank < k
    return (np.concatenate((row[easy], r[top])), np.concatenate((col[easy], c[top])),
            np.concatenate((cnt[easy], v[top])))


def normalize_adjacency(A, normalization="sym", *, dtype=np.float32):
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

    Returns
    -------
    P : scipy.sparse.csr_matrix of dtype ``dtype``
        Rows of items without edges stay zero.
    """
    if normalization not in ("sym", "rw"):
        raise ValueError(f"normalization must be 'sym' or 'rw', got {normalization!r}.")
    A = sp.csr_matrix(A, dtype=np.float64)
    deg = np.asarray(A.sum(axis=1)).ravel()
    inv = np.zeros_like(deg)
    nz = deg > 0
    row = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    if normalization == "sym":
        inv[nz] = deg[nz] ** -0.5
        data = A.data * inv[row] * inv[A.indices]
    else:
        inv[nz] = 1.0 / deg[nz]
        data = A.data * inv[row]
    P = sp.csr_matrix((data.astype(dtype), A.indices.copy(), A.indptr.copy()),
                      shape=A.shape)
    return P
