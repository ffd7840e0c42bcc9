"""The fused top-k co-interaction kernel of :mod:`skmm.graph`, compiled with numba.

One pass per item row ``i`` does what a sparse product ``Y[i] @ Y.T`` followed by a top-k
selection would, without materialising the product:

1. **Gustavson accumulation.** For every user ``u`` of ``i`` and every item ``j`` of ``u``,
   ``acc[j] += left[u] * right[u, j]`` in a dense per-thread accumulator of ``n_items`` entries;
   the first time ``acc[j]`` leaves zero, ``j`` is appended to a *touched* list. Terms are
   added in the order scipy's ``csr_matmat`` adds them (users in ``Y``'s CSR order, items in
   ``Y.T``'s), so float sums are bit for bit those of the former product.
2. **Selection.** Every touched ``j`` but ``i`` itself gets its ranking key (the similarity
   transform, per candidate) and competes for a heap of the ``k`` best in the total order *key
   descending, then column ascending* (ties go to the lower item index). A candidate that is
   not better than the heap's worst is rejected with one comparison, so on long rows the heap
   is rarely touched. The accumulator entry is reset as it is read: after the row the
   accumulator is all zeros again, at a cost proportional to the row's candidates, not to
   ``n_items``.
3. **Output.** The heap is sorted in place (rank order, or column order for a CSR graph) into
   the row's slots of the preallocated output.

**Streamed factors.** A key that needs the candidate's factor ``b[j]`` reads it once per
candidate; nearly every product is a new candidate on sparse catalogues (24.9 M candidates for
26.2 M products on 40,000 rows of the 1M-item case), so this is one random read of an
``n_items`` array per product. Once ``b`` and the accumulator no longer fit in the last-level
cache (1M items: 8 MB + 4 MB), those reads miss, and the caller passes ``b_stream``, the
factor per entry of ``Y.T``: the factor of a new candidate is then copied from a stream read
in order, at the price of one more array of ``nnz`` floats (the 1M cosine: 22.8 s -> 16.1 s).
While ``b`` fits in the cache, the gather is faster (Baby, 200k items: 10-18%). The keys are
the same either way.

Rows are independent, so the caller runs chunks of rows as parallel tasks (the kernel releases
the GIL); each worker thread owns its accumulator, touched list and heap. The result does not
depend on the chunking or the number of threads.

Zero terms are skipped: every term is a product of non-negative weights, so a sum is zero only
if all its terms are, and such pairs (zero similarity) are never candidates; scipy's kernel
dropped the same entries as zero sums.

Only two signatures are compiled in practice (int32 indices, with int32 counts or float64
weighted sums); int64 indices compile on first use with catalogues beyond 2**31 entries.
"""

import numpy as np
from numba import njit

# Ranking keys (see skmm.graph._Similarity.rank_key): each mirrors the numpy expression of
# the former implementation operation by operation, so that keys, and thus ties, are identical.
MODE_COUNT = 0  # c
MODE_RATIO = 1  # c * c / b_j  (cosine without shrinkage: the row's factor drops out)
MODE_SQRT = 2  # v / (sqrt(a_i * b_j) + lam)  (cosine, tfidf with shrinkage)
MODE_PRODUCT = 3  # v / (a_i * b_j + lam)  (asymmetric cosine: a = d ** alpha, b = d ** (1-alpha))
MODE_JACCARD = 4  # v / (a_i + b_j - v + lam)
MODE_SUM = 5  # v itself (tfidf without shrinkage, bm25: the column factor is in the sum)


@njit(inline="always")
def _key(mode, v, ai, bj, lam):
    x = np.float64(v)
    if mode == MODE_COUNT or mode == MODE_SUM:
        return x
    if mode == MODE_RATIO:
        return x * x / bj
    if mode == MODE_SQRT:
        return x / (np.sqrt(ai * bj) + lam)
    if mode == MODE_PRODUCT:
        return x / (ai * bj + lam)
    return x / (ai + bj - x + lam)  # MODE_JACCARD


@njit(inline="always")
def _worse(key_a, col_a, key_b, col_b):
    """Whether entry a ranks below entry b: smaller key, or equal key and larger column."""
    return key_a < key_b or (key_a == key_b and col_a > col_b)


@njit(nogil=True)
def _sift_down(hkey, hcol, hval, pos, size):
    """Restore the heap below ``pos``; the root holds the worst of the kept entries."""
    key, col, val = hkey[pos], hcol[pos], hval[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        right = child + 1
        if right < size and _worse(hkey[right], hcol[right], hkey[child], hcol[child]):
            child = right
        if not _worse(hkey[child], hcol[child], key, col):
            break
        hkey[pos], hcol[pos], hval[pos] = hkey[child], hcol[child], hval[child]
        pos = child
    hkey[pos], hcol[pos], hval[pos] = key, col, val


@njit(nogil=True)
def _sift_up(hkey, hcol, hval, pos):
    key, col, val = hkey[pos], hcol[pos], hval[pos]
    while pos > 0:
        parent = (pos - 1) // 2
        if not _worse(key, col, hkey[parent], hcol[parent]):
            break
        hkey[pos], hcol[pos], hval[pos] = hkey[parent], hcol[parent], hval[parent]
        pos = parent
    hkey[pos], hcol[pos], hval[pos] = key, col, val


@njit(nogil=True)
def _sort_by_column(cols, vals, size):
    """Heapsort of the first ``size`` (column, value) pairs by column ascending."""
    for start in range(size // 2 - 1, -1, -1):
        _col_sift_down(cols, vals, start, size)
    for end in range(size - 1, 0, -1):
        cols[0], cols[end] = cols[end], cols[0]
        vals[0], vals[end] = vals[end], vals[0]
        _col_sift_down(cols, vals, 0, end)


@njit(nogil=True)
def _col_sift_down(cols, vals, pos, size):
    col, val = cols[pos], vals[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and cols[child + 1] > cols[child]:
            child += 1
        if cols[child] <= col:
            break
        cols[pos], vals[pos] = cols[child], vals[child]
        pos = child
    cols[pos], vals[pos] = col, val


@njit(nogil=True)
def top_rows(start, stop, y_indptr, y_indices, left, yt_indptr, yt_indices, right, weighted, k,
             mode, a, b, b_stream, lam, by_column, acc, touched, tkey, tval, tb, hkey, hcol, hval,
             out_indptr, out_cols, out_vals, out_len):
    """Rows ``start:stop``: each row's top ``k`` co-interacted items, into preallocated output.

    Parameters
    ----------
    start, stop : int
        The rows to build.
    y_indptr, y_indices : ndarray
        CSR structure of the binary ``Y`` (items x users), one integer dtype.
    left : ndarray of float64
        Per entry of ``Y``, the user weight ``w_u`` (read only if ``weighted``).
    yt_indptr, yt_indices : ndarray
        CSR structure of ``Y.T`` (users x items), items ascending within a user.
    right : ndarray of float64
        Per entry of ``Y.T``, the item factor folded into the sum, or ones (read only if
        ``weighted``).
    weighted : bool
        Sum ``left * right`` instead of counting.
    k : int
        Neighbours kept per row, at most (at least 1).
    mode : int
        The ranking key, one of the ``MODE_*`` constants.
    a, b : ndarray of float64
        The per-item factors of the key: ``a`` for the row, ``b`` for the candidate.
    b_stream : ndarray of float32 or float64
        Empty, or ``b`` per entry of ``Y.T`` (``b[yt_indices]``; float32 where that is exact,
        as for degrees): then a candidate's ``b[j]``
        is copied from this stream, read in order, when ``j`` is first touched, instead of
        gathered from ``b`` afterwards (see "Streamed factors" in the module docstring).
    lam : float
        The shrinkage term.
    by_column : bool
        Write each row's kept entries in column order (else rank order, best first).
    acc : ndarray of n_items entries
        The calling thread's accumulator, all zeros (and left so).
    touched, tkey, tval, tb : ndarray of n_items + 1 entries
        The calling thread's touched list, and the keys, values and (if ``b_stream`` is not
        empty) streamed factors of the touched items.
    hkey, hcol, hval : ndarray of k entries
        The calling thread's heap.
    out_indptr : ndarray of int64
        Start of each row's slots in the output; a row has at least ``min(k, candidates)``.
    out_cols, out_vals : ndarray
        The output columns and values (counts or weighted sums).
    out_len : ndarray of int64
        Receives the number of entries written per row.
    """
    stream = len(b_stream) > 0
    for i in range(start, stop):
        n_touched = 0
        for p in range(y_indptr[i], y_indptr[i + 1]):
            u = y_indices[p]
            if weighted:
                w = left[p]
                if stream:
                    for q in range(yt_indptr[u], yt_indptr[u + 1]):
                        term = w * right[q]
                        if term == 0:
                            continue
                        j = yt_indices[q]
                        if acc[j] == 0:
                            touched[n_touched] = j
                            tb[n_touched] = b_stream[q]
                            n_touched += 1
                        acc[j] += term
                else:
                    for q in range(yt_indptr[u], yt_indptr[u + 1]):
                        term = w * right[q]
                        if term == 0:
                            continue
                        j = yt_indices[q]
                        touched[n_touched] = j  # kept only if j is new: no branch to mispredict
                        n_touched += acc[j] == 0
                        acc[j] += term
            elif stream:
                # A branch here, not the counter trick below: the counter makes the stores
                # wait on each acc[j] load, which costs more than the rare mispredict.
                for q in range(yt_indptr[u], yt_indptr[u + 1]):
                    j = yt_indices[q]
                    if acc[j] == 0:
                        touched[n_touched] = j
                        tb[n_touched] = b_stream[q]
                        n_touched += 1
                    acc[j] += 1
            else:
                for q in range(yt_indptr[u], yt_indptr[u + 1]):
                    j = yt_indices[q]
                    touched[n_touched] = j
                    n_touched += acc[j] == 0
                    acc[j] += 1
        # Gather the row's keys and values in touched order, resetting the accumulator: one
        # tight loop per mode, whose independent random reads (acc[j], b[j]) overlap in the
        # memory system, instead of waiting one by one inside the branchy heap loop (at 1M
        # items, acc and b miss the caches: this halves the cosine's time).
        ai = a[i]
        if mode == MODE_COUNT or mode == MODE_SUM:
            for t in range(n_touched):
                j = touched[t]
                tval[t] = acc[j]
                tkey[t] = tval[t]
                acc[j] = 0
        elif stream:
            for t in range(n_touched):
                j = touched[t]
                tval[t] = acc[j]
                tkey[t] = _key(mode, tval[t], ai, tb[t], lam)
                acc[j] = 0
        else:
            for t in range(n_touched):
                j = touched[t]
                tval[t] = acc[j]
                tkey[t] = _key(mode, tval[t], ai, b[j], lam)
                acc[j] = 0
        size = 0
        for t in range(n_touched):
            j = touched[t]
            if j == i:
                continue
            key = tkey[t]
            if size < k:
                hkey[size], hcol[size], hval[size] = key, j, tval[t]
                _sift_up(hkey, hcol, hval, size)
                size += 1
            elif _worse(hkey[0], hcol[0], key, j):
                hkey[0], hcol[0], hval[0] = key, j, tval[t]
                _sift_down(hkey, hcol, hval, 0, size)
        # Heapsort: repeatedly move the worst to the end, leaving the best first.
        for end in range(size - 1, 0, -1):
            hkey[0], hkey[end] = hkey[end], hkey[0]
            hcol[0], hcol[end] = hcol[end], hcol[0]
            hval[0], hval[end] = hval[end], hval[0]
            _sift_down(hkey, hcol, hval, 0, end)
        if by_column:
            _sort_by_column(hcol, hval, size)
        row = out_indptr[i]
        for t in range(size):
            out_cols[row + t] = hcol[t]
            out_vals[row + t] = hval[t]
        out_len[i] = size


@njit(nogil=True)
def compact(out_indptr, out_len, out_cols, out_vals):
    """Move each row's entries left so that the rows are contiguous; returns the new indptr.

    Rows start at or after their compacted position, so one forward pass moves them in place.
    """
    n_rows = len(out_len)
    indptr = np.zeros(n_rows + 1, np.int64)
    pos = 0
    for i in range(n_rows):
        start = out_indptr[i]
        if start != pos:
            for t in range(out_len[i]):
                out_cols[pos + t] = out_cols[start + t]
                out_vals[pos + t] = out_vals[start + t]
        pos += out_len[i]
        indptr[i + 1] = pos
    return indptr
