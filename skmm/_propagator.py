"""The fast feature-propagation engine: the missing-block loop, column group by group.

The algorithm and its public entry points are in :mod:`skmm.propagation`; this module is the
engine they run (:class:`ColumnPropagator`), with what it does for speed.

How the loop is kept fast on a CPU, where a sparse-times-dense product is bound by memory
traffic rather than arithmetic:

* Columns propagate independently. When the iterated rows are few enough, the features are
  processed in column blocks narrow enough for ``z``, the next ``z`` and the inflow ``b`` of
  every worker thread to stay in the last-level cache across all steps, instead of streaming
  them from memory once per step. The blocks run on ``torch.get_num_threads()`` threads with
  a compiled single-threaded kernel (:mod:`skmm._spmm`, which releases the GIL and adds the
  inflow ``b`` as it sums each row, so a step is one pass): a block needs no synchronisation
  between steps, unlike a multi-threaded product per step, whose barrier costs a scheduler
  time slice per call when another process holds a core (measured: 40 steps on Amazon Baby
  went from 0.3 s to 3-10 s that way on a busy 2-core machine).
* Otherwise (tall matrices, memory-bound anyway) each step runs the same kernel on the whole
  width, its rows split into chunks of equal nonzeros shared by the threads, into a buffer
  allocated once: no fresh output per step (page faults on a new 100 MB array cost as much as
  the product). On the 1M-item case (300,000 rows, 3.7M stored entries, 384 columns, 2
  threads) a step took 0.70-0.81 s against 1.78-1.95 s for torch's multi-threaded ``addmm``,
  which the loop used before; on a GPU the loop is still ``addmm``.
* Every output entry is summed in the kernel's one order whichever path, block width or
  number of threads runs it: the CPU results do not depend on the cache size.
* Rows that miss every feature (the FeatProp protocol) need no reset at all; the ``where`` only
  touches the rows that have observed entries. Starting from zeros, the first step of such rows
  is exactly the inflow ``P_RK X_K``, so it is not computed.
* ``P_RK X_K`` reads only the observed rows that carry weight (``used``), gathered per block.

Why one module of this length: the memory-traffic tricks above are interlocked (the blocking
decides the threads, the buffers and which rows are gathered); split, each piece would need
the others' invariants restated.
"""

import functools
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils._param_validation import validate_parameter_constraints, validate_params

from ._spmm import spmm_plus
from ._validation import Int, resolve_device

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


def _check_dtype(dtype):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}.")
    return dtype


# Bytes that one column group's propagation arrays may take when ``column_batch_size`` is None.
_GROUP_BYTES = 1 << 30


@validate_params(
    {"n_features": [Int(0)], "per_column_bytes": [Int(0)], "column_batch_size": [Int(1), None]},
    prefer_skip_nested_validation=True,
)
def column_groups(n_features, per_column_bytes, column_batch_size=None):
    """Split ``n_features`` columns into consecutive ``(start, stop)`` groups.

    Parameters
    ----------
    n_features : int
        Number of columns.
    per_column_bytes : int
        Working memory one column of a group needs.
    column_batch_size : int or None, default=None
        Columns per group (the last group may be narrower). None: as few groups as keep
        ``per_column_bytes`` times their width within 1 GiB, of equal width rounded up to
        whole SIMD vectors (16 columns).

    Returns
    -------
    groups : list of (int, int)
        Column ranges covering ``0:n_features`` in order.

    Examples
    --------
    >>> from skmm.propagation import column_groups
    >>> column_groups(40, 4, column_batch_size=16)
    [(0, 16), (16, 32), (32, 40)]
    >>> column_groups(40, 4)
    [(0, 40)]
    """
    d = int(n_features)
    if column_batch_size is not None:
        w = int(column_batch_size)
    else:
        widest = max(_GROUP_BYTES // max(int(per_column_bytes), 1), 1)
        n_groups = -(-d // widest)
        w = -(-d // n_groups)
        if w < d:
            w = min(-(-w // 16) * 16, d)
    w = max(min(w, d), 1)
    return [(c0, min(c0 + w, d)) for c0 in range(0, d, w)]


class ColumnPropagator:
    """Feature propagation over a fixed graph and fixed missing rows, one column group at a time.

    Columns propagate independently, so the features can be processed in groups of columns:
    the graph side (``P`` split into ``P_RR`` and ``P_RK``, the known rows that feed the
    missing ones) is prepared once, and each group then needs only its own columns of the
    known rows that carry weight (``used``), of the partially observed missing rows, and of the
    mask. This is what lets :class:`~skmm.FeatPropImputer` read a memory-mapped ``X`` in
    bounded memory; in memory the same code runs, so both give the same numbers.

    Parameters
    ----------
    P : scipy.sparse matrix of shape (n_items, n_items)
        Normalised propagation matrix.
    rows : ndarray of int, shape (n_rows,)
        The rows with a missing entry, ascending.
    full : ndarray of bool, shape (n_rows,)
        True for the rows that miss every feature (the FeatProp protocol).
    n_iter : int
        Propagation steps.
    n_features : int
        Number of columns of ``X``.
    device, dtype :
        As in :func:`propagate_features`.
    column_batch_size : int or None
        Columns per group. None: groups as equal as possible, multiples of 16 columns wide,
        whose arrays (about ``4 * n_rows + n_used + n_partial`` rows of ``dtype`` values) fit
        in 1 GiB.
        The grouping is a function of the problem's sizes only, never of where ``X`` lives.
    """

    def __init__(self, P, rows, full, n_iter, *, n_features, device="cpu", dtype=np.float32,
                 column_batch_size=None):
        validate_parameter_constraints(
            {"n_iter": [Int(0)], "n_features": [Int(0)], "column_batch_size": [Int(1), None]},
            {"n_iter": n_iter, "n_features": n_features, "column_batch_size": column_batch_size},
            caller_name="ColumnPropagator")
        self.dtype = _check_dtype(dtype)
        self.device = resolve_device(device)
        self.n_iter = int(n_iter)
        self.n_features = int(n_features)
        self.rows = rows
        self.n_threads = _n_threads()
        P = sp.csr_matrix(P)
        n_items = P.shape[0]
        P_rr, P_rk = _split_rows(P, rows)
        # Rows of R with observed entries: the only ones the reset has to touch. Their
        # observed values are the starting point; every missing entry starts at zero.
        self.partial = np.flatnonzero(~np.asarray(full, bool))
        self.touches_known = np.diff(P_rk.indptr) > 0
        # The inflow P_RK X_K reads only the known rows that carry weight: gathered into a
        # contiguous operand, and P_RK's columns renumbered to positions in ``used``.
        self.used = np.flatnonzero(np.bincount(P_rk.indices, minlength=n_items))
        remap = np.zeros(n_items, P_rk.indices.dtype)
        remap[self.used] = np.arange(self.used.size, dtype=remap.dtype)
        self.P_rk = SimpleNamespace(indptr=P_rk.indptr, indices=remap[P_rk.indices],
                                    data=P_rk.data.astype(self.dtype, copy=False),
                                    shape=(rows.size, self.used.size), nnz=P_rk.nnz)
        self.P_rr = SimpleNamespace(indptr=P_rr.indptr, indices=P_rr.indices, shape=P_rr.shape,
                                    data=P_rr.data.astype(self.dtype, copy=False),
                                    nnz=P_rr.nnz)
        self.column_batch_size = column_batch_size
        self._torch = None
        self._reach_one = None

    @property
    def n_rows(self):
        return self.rows.size

    def column_groups(self):
        """The ``(start, stop)`` column ranges to propagate, in order."""
        per_column = (4 * self.n_rows + self.used.size + self.partial.size) * self.dtype.itemsize
        return column_groups(self.n_features, per_column, self.column_batch_size)

    def known_values(self, x, m):
        """The starting values of the partially observed rows: their values ``x`` in
        ``dtype``, with the missing entries (mask ``m``) set to 0."""
        x = np.nan_to_num(x, nan=0.0).astype(self.dtype, copy=False)
        x[m] = 0
        return x

    def propagate(self, c0, c1, read_used, x_p, m_p, snapshot=None):
        """Propagate columns ``c0:c1``.

        Parameters
        ----------
        c0, c1 : int
            The column range.
        read_used : callable
            ``read_used(a, b)`` returns ``X[used, a:b]`` (any float dtype, any layout) for
            ``c0 <= a < b <= c1``.
        x_p : ndarray of shape (n_partial, c1 - c0) or None
            :meth:`known_values` of the partially observed missing rows (None if there are
            none).
        m_p : ndarray of bool, shape (n_partial, c1 - c0)
            Their missing mask.
        snapshot : callable or None, default=None
            Called as ``snapshot(step, a, b, z)`` after every step ``step = 1 .. n_iter``,
            with ``z`` the values of columns ``a:b`` of all rows after that step (a numpy
            array in the CPU block loop, a torch tensor on the device otherwise; read it, do
            not keep or change it). The values after ``step`` steps are those a propagation
            with ``n_iter=step`` returns, bit for bit: the loop does not depend on ``n_iter``.
            Column blocks may call it from several threads at once, on disjoint columns.
            Model selection reads every step count off one run
            (:class:`~skmm.impute.GraphImputerCV`).

        Returns
        -------
        values : ndarray of shape (n_rows, c1 - c0), dtype ``dtype``
        """
        n_rows, dtype, width = self.n_rows, self.dtype, c1 - c0
        if self.n_iter == 0:
            values = np.zeros((n_rows, width), dtype)
            if self.partial.size:
                values[self.partial] = x_p
            return values
        block = (_block_width(n_rows, width, dtype.itemsize, self.n_threads)
                 if self.device.type == "cpu" else None)
        if block is not None:
            return self._propagate_in_blocks(c0, c1, read_used, x_p, m_p, block, snapshot)
        if self.device.type == "cpu":
            return self._propagate_tall(c0, c1, read_used, x_p, m_p, snapshot)
        return self._propagate_whole(c0, c1, read_used, x_p, m_p, snapshot)

    def reached(self, m):
        """Which entries of the column group with missing mask ``m`` (n_rows x width) are
        observed or reached by some observed value within ``n_iter`` steps."""
        if self.partial.size == 0:
            # Every row misses everything: one reachability vector serves every column.
            if self._reach_one is None:
                self._reach_one = _reachability(self.P_rr, self.touches_known,
                                                np.ones((self.n_rows, 1), bool), True,
                                                self.n_iter)
            return np.repeat(self._reach_one, m.shape[1], axis=1)
        return _reachability(self.P_rr, self.touches_known, m, False, self.n_iter)

    def _propagate_in_blocks(self, c0, c1, read_used, x_p, m_p, width, snapshot=None):
        """The CPU loop on cache-sized column blocks, each block on one thread for all steps."""
        P_rr, P_rk, partial, n_iter, dtype = (self.P_rr, self.P_rk, self.partial, self.n_iter,
                                              self.dtype)
        n_rows = self.n_rows
        values = np.empty((n_rows, c1 - c0), dtype)

        def run(a):
            cols = slice(a - c0, min(a + width, c1) - c0)
            b = np.zeros((n_rows, cols.stop - cols.start), dtype)
            if P_rk.nnz:
                _spmm_plus(P_rk, np.ascontiguousarray(read_used(a, a + b.shape[1]), dtype=dtype),
                           b, b)
            a1 = a + b.shape[1]
            if partial.size:
                x_c, m_c = x_p[:, cols], m_p[:, cols]
                z0 = np.zeros_like(b)
                z0[partial] = x_c

                def reset(nxt):
                    nxt[partial] = np.where(m_c, nxt[partial], x_c)
            else:
                z0 = reset = None

            z = _iterate(n_iter, b, z0, lambda z, out: _spmm_plus(P_rr, z, b, out), reset,
                         lambda: np.empty_like(b),
                         None if snapshot is None else lambda step, z: snapshot(step, a, a1, z))
            values[:, cols] = z

        starts = range(c0, c1, width)
        if self.n_threads > 1 and len(starts) > 1:
            with ThreadPoolExecutor(min(self.n_threads, len(starts))) as pool:
                list(pool.map(run, starts))
        else:
            for a in starts:
                run(a)
        return values

    def _propagate_tall(self, c0, c1, read_used, x_p, m_p, snapshot=None):
        """The CPU loop on the whole group at once, every step's rows shared by the threads."""
        P_rr, P_rk, partial, dtype = self.P_rr, self.P_rk, self.partial, self.dtype
        shape = (self.n_rows, c1 - c0)
        n_tasks = 4 * self.n_threads if self.n_threads > 1 else 1  # balances uneven rows
        pool = ThreadPoolExecutor(self.n_threads) if n_tasks > 1 else None

        def product(M, x, b, out):  # out = b + M x, row chunks in parallel
            bounds = _row_chunks(M.indptr, n_tasks)

            def run(c):
                r0, r1 = bounds[c], bounds[c + 1]
                spmm_plus(M.indptr[r0:r1 + 1], M.indices, M.data, x, b[r0:r1], out[r0:r1])

            if pool is None:
                run(0)
            else:
                list(pool.map(run, range(n_tasks)))

        try:
            b = np.zeros(shape, dtype)
            if P_rk.nnz:
                product(P_rk, np.ascontiguousarray(read_used(c0, c1), dtype=dtype), b, b)
            if partial.size:
                z0 = np.zeros(shape, dtype)
                z0[partial] = x_p

                def reset(nxt):
                    nxt[partial] = np.where(m_p, nxt[partial], x_p)
            else:
                z0 = reset = None

            return _iterate(self.n_iter, b, z0, lambda z, out: product(P_rr, z, b, out), reset,
                            lambda: np.empty(shape, dtype),
                            None if snapshot is None else
                            lambda step, z: snapshot(step, c0, c1, z))
        finally:
            if pool is not None:
                pool.shutdown()

    def _torch_operands(self):
        """``P_RR`` and ``P_RK`` as torch CSR tensors on the device, built once."""
        if self._torch is None:
            P_rr, P_rk = self.P_rr, self.P_rk
            self._torch = (
                _to_torch_csr(P_rr.indptr, P_rr.indices, P_rr.data, P_rr.shape, self.device,
                              self.dtype),
                _to_torch_csr(P_rk.indptr, P_rk.indices, P_rk.data, P_rk.shape, self.device,
                              self.dtype) if P_rk.nnz else None,
            )
        return self._torch

    def _propagate_whole(self, c0, c1, read_used, x_p, m_p, snapshot=None):
        """The loop on the whole group at once on the device: one product per step."""
        device, dtype, partial = self.device, self.dtype, self.partial
        shape = (self.n_rows, c1 - c0)
        P_rr, P_rk = self._torch_operands()
        b = _empty(shape, dtype, device)
        if P_rk is None:
            b.zero_()
        else:
            x_k = np.ascontiguousarray(read_used(c0, c1), dtype=dtype)
            torch.mm(P_rk, torch.from_numpy(x_k).to(device), out=b)
            del x_k
        if partial.size:
            part = torch.from_numpy(partial).to(device)
            x_c = torch.from_numpy(x_p).to(device)
            m_c = torch.from_numpy(np.ascontiguousarray(m_p)).to(device)
            z0 = _empty(shape, dtype, device).zero_()
            z0.index_copy_(0, part, x_c)

            def reset(nxt):
                nxt.index_copy_(0, part, torch.where(m_c, nxt.index_select(0, part), x_c))
        else:
            z0 = reset = None

        z = _iterate(self.n_iter, b, z0, lambda z, out: torch.addmm(b, P_rr, z, out=out), reset,
                     lambda: _empty(shape, dtype, device),
                     None if snapshot is None else lambda step, z: snapshot(step, c0, c1, z))
        return z.cpu().numpy()


def _iterate(n_iter, b, z0, product, reset, empty, snapshot):
    """The reset propagation's steps, shared by the three loops: ``z <- b + P_RR z`` by
    ``product(z, out)``, then ``reset(out)`` puts the observed entries back (None: every row
    misses everything, so nothing to reset). One spare buffer from ``empty()`` is reused.

    ``z0`` is the starting ``z`` (the observed values, zeros elsewhere), or None when every row
    misses everything: from zeros the first step is ``b`` exactly (``P_RR 0 = 0``), so its
    product is skipped and ``b`` itself, only read, is the first ``z``. ``snapshot(step, z)``
    is called after every step ``1 .. n_iter``. Returns the last ``z``.
    """
    if z0 is None:
        z, first = b, 2
        if snapshot is not None and n_iter:
            snapshot(1, z)
    else:
        z, first = z0, 1
    spare = None
    for step in range(first, n_iter + 1):
        nxt = spare if spare is not None else empty()
        product(z, nxt)
        if reset is not None:
            reset(nxt)
        spare = z if z is not b else None
        z = nxt
        if snapshot is not None:
            snapshot(step, z)
    return z


def _reachability(P_rr, touches_known, miss_r, all_missing, n_iter):
    """Which missing entries some observed value reaches within ``n_iter`` steps.

    Values cannot tell (they may cancel or underflow), so the edge pattern is walked with
    indicator vectors clipped to 1, once per distinct column mask rather than per column.
    ``touches_known`` flags the rows with an edge into a fully observed row.
    """
    walk = _ReachWalk(P_rr, touches_known, miss_r, all_missing)
    for _ in range(n_iter):
        walk.step()
    return walk.expand()


def reachability_steps(P_rr, touches_known, miss_r, all_missing, n_iter, rows=None):
    """What :func:`_reachability` returns after ``0, 1, ..., n_iter`` steps, one array per
    step (a generator): the rows ``rows`` (positions among the propagated rows; None: all)
    of the reached mask that a propagation of that many steps reports."""
    walk = _ReachWalk(P_rr, touches_known, miss_r, all_missing)
    for step in range(n_iter + 1):
        if step:
            walk.step()
        yield walk.expand(rows)


class _ReachWalk:
    """The reachability walk of :func:`_reachability`, one step at a time."""

    def __init__(self, P_rr, touches_known, miss_r, all_missing):
        n_rows, self.n_features = miss_r.shape
        if all_missing or (miss_r == miss_r[:, :1]).all():
            # One mask shared by every column (always so under the FeatProp protocol, where
            # whole rows are missing): no search for distinct columns.
            pattern_missing, self.inverse = miss_r[:, :1], None
        else:
            packed = np.packbits(miss_r, axis=0)
            patterns, inverse = np.unique(packed, axis=1, return_inverse=True)
            self.inverse = np.asarray(inverse).ravel()
            pattern_missing = np.unpackbits(patterns, axis=0, count=n_rows).astype(bool)
        self.A_rr = sp.csr_matrix((np.ones(P_rr.nnz, np.float32), P_rr.indices, P_rr.indptr),
                                  shape=P_rr.shape)
        self.touches_known = touches_known
        # An edge into a fully observed row reaches every column at the first step.
        self.reach = ~pattern_missing

    def step(self):
        step = (self.A_rr @ self.reach.astype(np.float32)) > 0
        self.reach = self.reach | step | self.touches_known[:, None]

    def expand(self, rows=None):
        reach = self.reach if rows is None else self.reach[rows]
        if self.inverse is None:
            return np.repeat(reach, self.n_features, axis=1)
        return reach[:, self.inverse]


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


def _row_chunks(indptr, n_chunks):
    """``n_chunks + 1`` ascending row bounds splitting a CSR matrix into consecutive chunks of
    about equal stored entries (a chunk may be empty; a row is never split)."""
    n_rows = indptr.shape[0] - 1
    bounds = np.searchsorted(indptr, np.linspace(0, indptr[-1], n_chunks + 1)).clip(0, n_rows)
    bounds[0], bounds[-1] = 0, n_rows
    return np.maximum.accumulate(bounds)


def _spmm_plus(M, x, b, out):
    """``out = b + M @ x`` for CSR arrays ``M`` and C-contiguous ``x``, ``b``, ``out`` of one
    dtype (``b`` may be ``out``)."""
    spmm_plus(M.indptr, M.indices, M.data, x, b, out)
