"""Feature propagation: fill missing entries by diffusing observed values over a graph.

Only the rows that miss something are iterated. With ``R`` those rows and ``K`` the fully
observed ones, one step of ``Z <- P Z`` followed by resetting the observed entries is, on ``R``,

    Z_R <- where(missing_R, P_RR Z_R + P_RK X_K, X_R)

and ``P_RK X_K`` does not change between steps, so it is computed once. This gives the same
result as re-propagating every row (what the official code and PyG do) for far less work when
few rows miss values.

How the loop is kept fast on a CPU, where a sparse-times-dense product is bound by memory
traffic rather than arithmetic:

* Columns propagate independently. When the iterated rows are few enough, the features are
  processed in column blocks narrow enough for ``z``, the next ``z`` and the inflow ``b`` of
  every worker thread to stay in the last-level cache across all steps, instead of streaming
  them from memory once per step. The blocks run on ``torch.get_num_threads()`` threads with
  scipy's single-threaded kernel (it releases the GIL): a block needs no synchronisation
  between steps, unlike a multi-threaded product per step, whose barrier costs a scheduler
  time slice per call when another process holds a core (measured: 40 steps on Amazon Baby
  went from 0.3 s to 3-10 s that way on a busy 2-core machine).
* Otherwise (tall matrices, memory-bound anyway) each step is one multi-threaded ``addmm``
  (``b + P_RR z``) into a buffer allocated once: no fresh output per step (page faults on a new
  100 MB array cost as much as the product) and no separate add.
* Rows that miss every feature (the FeatProp protocol) need no reset at all; the ``where`` only
  touches the rows that have observed entries. Starting from zeros, the first step of such rows
  is exactly the inflow ``P_RK X_K``, so it is not computed.
* ``P_RK X_K`` reads ``X`` in place where it can: no copy of the observed rows.
"""

import functools
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp
import torch

try:  # the kernel behind scipy's ``csr @ dense``: y += A x, single-threaded, GIL released
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - a future scipy may move it; ``@`` still works
    _csr_matvecs = None

__all__ = ["propagate_features"]

# Below this many columns per block the sparse product loses more to short rows than it gains
# from the cache, so a matrix too tall for the cache runs unblocked (memory-bound).
_MIN_WIDTH = 32


@functools.lru_cache(maxsize=None)
def _cache_bytes():
    """What the column blocks of all threads may use: 3/8 of the last-level CPU cache (Linux
    sysfs), or 12 MiB when unknown. On a 32 MB L3 (Amazon Baby, 2 threads) 1/4 to 3/8 ran
    fastest; 3/4 was 10-45% slower (the other cores' data and the inflow need room too)."""
    try:
        sizes = []
        for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
            if (index / "type").read_text().strip() in ("Data", "Unified"):
                text = (index / "size").read_text().strip().upper()
                scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
                sizes.append(int(text.rstrip("KM")) * scale)
        return max(sizes) * 3 // 8
    except (OSError, ValueError):
        return 12 << 20


def _n_threads():
    return max(int(torch.get_num_threads()), 1)


def _to_torch_csr(indptr, indices, data, shape, device, dtype):
    with warnings.catch_warnings():
        # torch flags all sparse CSR support as beta; the ops used here are stable in practice.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        idx = _index_dtype(len(indices), *shape)
        return torch.sparse_csr_tensor(
            torch.from_numpy(np.asarray(indptr, dtype=idx)),
            torch.from_numpy(np.asarray(indices, dtype=idx)),
            torch.from_numpy(np.asarray(data, dtype=dtype)),
            size=shape,
            check_invariants=False,
        ).to(device)


def _index_dtype(*sizes):
    """int32 indices when they fit: half the index traffic, taken as they are by the kernels."""
    return np.int32 if max(sizes) < np.iinfo(np.int32).max else np.int64


def _empty(shape, dtype, device):
    """An uninitialised tensor; on the CPU allocated by numpy, which asks the kernel for huge
    pages on large arrays (fewer page faults and TLB misses in the products' row gathers)."""
    if device.type == "cpu":
        return torch.from_numpy(np.empty(shape, dtype))
    return torch.empty(shape, dtype=torch.from_numpy(np.zeros(0, dtype)).dtype, device=device)


def propagate_features(P, X, missing, n_iter, *, device="cpu", dtype=np.float32):
    """Propagate observed feature values over ``P`` into the missing entries.

    Parameters
    ----------
    P : scipy.sparse matrix of shape (n_items, n_items)
        Normalised propagation matrix; row ``i`` says from which items ``i`` takes values.
    X : ndarray of shape (n_items, n_features)
        Features; the values at ``missing`` are ignored.
    missing : ndarray of bool, shape (n_items, n_features)
        True where an entry is missing. Masks are entry-wise: each column propagates with its
        own set of known rows.
    n_iter : int
        Propagation steps.
    device : torch.device or str, default="cpu"
        Where the sparse products run. On the CPU they use ``torch.get_num_threads()`` threads.
    dtype : numpy dtype, default=np.float32
        Arithmetic precision.

    Returns
    -------
    rows : ndarray of int64, shape (n_rows,)
        The rows that had missing entries, ascending.
    values : ndarray of shape (n_rows, n_features), dtype ``dtype``
        Those rows after propagation; their observed entries are the input values.
    reached : ndarray of bool, shape (n_rows, n_features)
        True where the entry is observed or some observed value reached it within ``n_iter``
        steps. Entries with False hold 0 and need a fallback.
    """
    n_items, n_features = X.shape
    dtype = np.dtype(dtype)
    device = torch.device(device)
    n_iter = int(n_iter)
    missing = np.asarray(missing, dtype=bool)
    rows = np.flatnonzero(missing.any(axis=1))
    if rows.size == 0:
        return rows, np.zeros((0, n_features), dtype), np.zeros((0, n_features), bool)
    miss_r = missing[rows]
    # Rows of R with observed entries: the only ones the reset has to touch. Their observed
    # values are the starting point; every missing entry starts at zero.
    partial = np.flatnonzero(~miss_r.all(axis=1))
    x_p = None
    if partial.size:
        x_p = np.nan_to_num(X[rows[partial]], nan=0.0).astype(dtype, copy=False)
        x_p[miss_r[partial]] = 0
    P_rr, P_rk = _split_rows(sp.csr_matrix(P), rows)

    n_threads = _n_threads()
    width = (_block_width(rows.size, n_features, dtype.itemsize, n_threads)
             if device.type == "cpu" else None)
    if n_iter == 0:
        values = np.zeros((rows.size, n_features), dtype)
        if partial.size:
            values[partial] = x_p
    elif width is not None:
        values = _propagate_in_blocks(P_rr, P_rk, X, partial, x_p, miss_r, n_iter, dtype,
                                      width, n_threads)
    else:
        values = _propagate_whole(P_rr, P_rk, X, partial, x_p, miss_r, n_iter, dtype, device)
    reached = _reachability(P_rr, P_rk, miss_r, partial.size == 0, n_iter)
    return rows, values, reached


def _split_rows(P, rows):
    """``P[rows]`` split by column into ``P_RR`` (columns renumbered to positions in ``rows``)
    and ``P_RK`` (columns kept as item ids, so it reads ``X`` in place).

    Returned as plain CSR arrays (``indptr``, ``indices``, ``data``, ``shape``, ``nnz``), all
    indices in one dtype: a scipy constructor would scan and possibly re-cast them.
    """
    n_items = P.shape[0]
    P_r = P[rows]
    idx = _index_dtype(n_items, P_r.nnz)
    pos = np.full(n_items, -1, idx)
    pos[rows] = np.arange(rows.size, dtype=idx)
    col_pos = pos[P_r.indices]
    in_r = col_pos >= 0
    cum = np.zeros(P_r.nnz + 1, idx)
    np.cumsum(in_r, out=cum[1:])
    indptr_r = P_r.indptr.astype(idx, copy=False)
    indptr_rr = cum[indptr_r]
    out_r = ~in_r
    nnz_rr = int(cum[-1])
    P_rr = SimpleNamespace(indptr=indptr_rr, indices=col_pos[in_r], data=P_r.data[in_r],
                           shape=(rows.size, rows.size), nnz=nnz_rr)
    P_rk = SimpleNamespace(indptr=indptr_r - indptr_rr,
                           indices=P_r.indices[out_r].astype(idx, copy=False),
                           data=P_r.data[out_r], shape=(rows.size, n_items),
                           nnz=P_r.nnz - nnz_rr)
    return P_rr, P_rk


def _block_width(n_rows, n_features, itemsize, n_threads):
    """Columns per block so that every thread's three ``n_rows``-tall blocks fit the cache,
    with a multiple of ``n_threads`` blocks of equal width; None when even ``_MIN_WIDTH``
    columns do not fit (the whole width then runs at once)."""
    widest = _cache_bytes() // n_threads // max(3 * n_rows * itemsize, 1)
    if widest < min(_MIN_WIDTH, n_features):
        return None
    n_blocks = -(-n_features // widest)
    # Give every thread a block when the columns allow it, then equal shares per thread.
    n_blocks = max(n_blocks, min(n_threads, n_features // _MIN_WIDTH))
    if n_blocks > n_threads:
        n_blocks = -(-n_blocks // n_threads) * n_threads
    width = -(-n_features // n_blocks)
    return min(-(-width // 16) * 16, n_features)  # whole SIMD vectors per row


def _spmm_add(M, x, y):
    """``y += M @ x`` for CSR arrays ``M`` and C-contiguous ``x``, ``y`` of one dtype."""
    if _csr_matvecs is None:  # pragma: no cover
        y += sp.csr_matrix((M.data, M.indices, M.indptr), shape=M.shape) @ x
        return
    _csr_matvecs(M.shape[0], M.shape[1], x.shape[1], M.indptr, M.indices, M.data,
                 x.ravel(), y.ravel())


def _propagate_in_blocks(P_rr, P_rk, X, partial, x_p, miss_r, n_iter, dtype, width,
                         n_threads):
    """The CPU loop on cache-sized column blocks, each block on one thread for all steps."""
    n_rows, n_features = miss_r.shape
    P_rr = SimpleNamespace(indptr=P_rr.indptr, indices=P_rr.indices, shape=P_rr.shape,
                           data=P_rr.data.astype(dtype, copy=False))
    # The inflow reads, block by block, only the rows of X that carry weight: gathered into a
    # contiguous, cache-sized operand (and converted to ``dtype`` on the way).
    used = np.flatnonzero(np.bincount(P_rk.indices, minlength=X.shape[0]))
    remap = np.zeros(X.shape[0], P_rk.indices.dtype)
    remap[used] = np.arange(used.size, dtype=remap.dtype)
    P_rk = SimpleNamespace(indptr=P_rk.indptr, indices=remap[P_rk.indices],
                           data=P_rk.data.astype(dtype, copy=False),
                           shape=(n_rows, used.size))
    m_p = miss_r[partial] if partial.size else None
    values = np.empty((n_rows, n_features), dtype)

    def run(c0):
        cols = slice(c0, min(c0 + width, n_features))
        b = np.zeros((n_rows, cols.stop - c0), dtype)
        if used.size:
            _spmm_add(P_rk, np.ascontiguousarray(X[used, cols], dtype=dtype), b)
        if partial.size:
            x_c, m_c = x_p[:, cols], m_p[:, cols]
            z, steps = np.zeros_like(b), n_iter
            z[partial] = x_c
        else:
            # From zeros the first step is b exactly (P_RR 0 = 0): skip its product, and let
            # b itself be the first z (it is only read).
            z, steps = b, n_iter - 1
        spare = None
        for _ in range(steps):
            nxt = spare if spare is not None else np.empty_like(b)
            np.copyto(nxt, b)
            _spmm_add(P_rr, z, nxt)
            if partial.size:
                # Reset the observed entries; rows missing everything need no reset.
                nxt[partial] = np.where(m_c, nxt[partial], x_c)
            spare = z if z is not b else None
            z = nxt
        values[:, cols] = z

    starts = range(0, n_features, width)
    if n_threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(min(n_threads, len(starts))) as pool:
            list(pool.map(run, starts))
    else:
        for c0 in starts:
            run(c0)
    return values


def _propagate_whole(P_rr, P_rk, X, partial, x_p, miss_r, n_iter, dtype, device):
    """The loop on all columns at once: one multi-threaded product per step (CPU or GPU)."""
    n_rows, n_features = miss_r.shape
    b = _empty((n_rows, n_features), dtype, device)
    if P_rk.nnz == 0:
        b.zero_()
    else:
        indices, n_cols = P_rk.indices, X.shape[0]
        if device.type == "cpu" and X.dtype == dtype and X.flags.c_contiguous:
            # Zero-copy: the product only reads the rows its columns name, all fully
            # observed, so the missing rows of X (NaN or anything) are never touched.
            x_k = torch.from_numpy(X)
        else:
            # Convert (and move) only the rows that carry weight.
            used = np.flatnonzero(np.bincount(indices, minlength=X.shape[0]))
            remap = np.zeros(X.shape[0], indices.dtype)
            remap[used] = np.arange(used.size, dtype=remap.dtype)
            indices, n_cols = remap[indices], used.size
            x_k = torch.from_numpy(np.ascontiguousarray(X[used], dtype=dtype)).to(device)
        P_t = _to_torch_csr(P_rk.indptr, indices, P_rk.data, (n_rows, n_cols), device, dtype)
        torch.mm(P_t, x_k, out=b)
    P_rr = _to_torch_csr(P_rr.indptr, P_rr.indices, P_rr.data, P_rr.shape, device, dtype)
    if partial.size:
        part = torch.from_numpy(partial).to(device)
        x_c = torch.from_numpy(x_p).to(device)
        m_c = torch.from_numpy(miss_r[partial]).to(device)
        z, steps = _empty((n_rows, n_features), dtype, device).zero_(), n_iter
        z.index_copy_(0, part, x_c)
    else:
        # From zeros the first step is b exactly: skip it, b is the first z (only read).
        z, steps = b, n_iter - 1
    spare = None
    for _ in range(steps):
        nxt = spare if spare is not None else _empty((n_rows, n_features), dtype, device)
        torch.addmm(b, P_rr, z, out=nxt)
        if partial.size:
            # Reset the observed entries; rows missing everything need no reset.
            nxt.index_copy_(0, part, torch.where(m_c, nxt.index_select(0, part), x_c))
        spare = z if z is not b else None
        z = nxt
    return z.cpu().numpy()


def _reachability(P_rr, P_rk, miss_r, all_missing, n_iter):
    """Which missing entries some observed value reaches within ``n_iter`` steps.

    Values cannot tell (they may cancel or underflow), so the edge pattern is walked with
    indicator vectors clipped to 1, once per distinct column mask rather than per column.
    """
    n_rows, n_features = miss_r.shape
    if all_missing or (miss_r == miss_r[:, :1]).all():
        # One mask shared by every column (always so under the FeatProp protocol, where whole
        # rows are missing): no search for distinct columns.
        pattern_missing, inverse = miss_r[:, :1], None
    else:
        packed = np.packbits(miss_r, axis=0)
        patterns, inverse = np.unique(packed, axis=1, return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        pattern_missing = np.unpackbits(patterns, axis=0, count=n_rows).astype(bool)

    A_rr = sp.csr_matrix((np.ones(P_rr.nnz, np.float32), P_rr.indices, P_rr.indptr),
                         shape=P_rr.shape)
    # An edge into a fully observed row reaches every column at the first step.
    touches_known = np.diff(P_rk.indptr) > 0
    reach = ~pattern_missing
    for _ in range(n_iter):
        step = (A_rr @ reach.astype(np.float32)) > 0
        reach = reach | step | touches_known[:, None]
    if inverse is None:
        return np.repeat(reach, n_features, axis=1)
    return reach[:, inverse]
