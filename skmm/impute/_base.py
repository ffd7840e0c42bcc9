"""Helpers shared by the imputers: reading X under the data contract."""

import mmap
from types import SimpleNamespace

import numpy as np
from sklearn.utils import assert_all_finite
from sklearn.utils.validation import FLOAT_DTYPES, validate_data

from .._validation import masked_to_nan


def validate_features(estimator, X, *, reset):
    """Validate ``X`` (NaN or a MaskedArray marks missing) and return it with its missing mask.

    Integer input is converted to float64; float input keeps its dtype so that observed entries
    come back bit-identical.
    """
    X = masked_to_nan(X)
    X = validate_data(estimator, X, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan",
                      reset=reset, copy=False)
    return X, np.isnan(X)


def validate_features_lazy(estimator, X, *, reset):
    """Validate ``X`` like :func:`validate_features`, but without reading its values.

    No copy is made of float input (a memory map stays a view of its file) and no missing mask
    is built: the caller checks for infinite values block by block (:func:`scan_features`).
    """
    X = masked_to_nan(X)
    return validate_data(estimator, X, dtype=FLOAT_DTYPES, ensure_all_finite=False,
                         reset=reset, copy=False)


def check_no_empty_columns(missing, *, what="X"):
    """Raise if a column has no observed value: nothing could be propagated or averaged."""
    _raise_empty_columns(np.flatnonzero(missing.all(axis=0)) if missing.shape[0] else [], what)


def _raise_empty_columns(empty, what):
    empty = np.asarray(empty)
    if empty.size:
        shown = ", ".join(map(str, empty[:10])) + (", ..." if empty.size > 10 else "")
        raise ValueError(f"{what} has {empty.size} column(s) with no observed value (columns "
                         f"{shown}); every feature needs at least one observed item to impute "
                         f"from. Drop those columns first.")


# ------------------------------------------------------------------------------------------
# Reading and writing in row blocks, memory maps included
# ------------------------------------------------------------------------------------------

# Bytes per row block of a pass over X: small enough for the block and its masks to stay in
# the CPU cache while a pass applies several operations to it.
_SCAN_BYTES = 1 << 20
# Bytes per row block when gathering rows from, or writing to, a memory map.
_IO_BYTES = 16 << 20
# How far before a block a read of it may map pages of the file: a page fault maps the pages
# around it too (Linux's fault-around, 64 KiB by default), and a large folio of the page cache
# (up to 2 MiB) may be mapped whole.
_FAULT_AROUND = 2 << 20


def _shared_mapping(a):
    """``(mmap, base address)`` when ``a`` is a view of a shared memory map, else None.

    Private (copy-on-write, ``mode="c"``) maps are left alone: dropping their pages would drop
    the caller's changes.
    """
    obj = a
    while obj is not None:
        if isinstance(obj, np.memmap) and obj.mode == "c":
            return None
        if isinstance(obj, mmap.mmap):
            if not hasattr(obj, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
                return None  # pragma: no cover - not Linux / old Python
            try:
                base = np.frombuffer(obj, np.uint8, count=1).__array_interface__["data"][0]
            except (TypeError, ValueError):  # pragma: no cover - a closed or empty map
                return None
            return obj, base
        obj = getattr(obj, "base", None)
    return None


class RowBlocks:
    """Visit a 2-d array in blocks of rows, without holding more than one block of a memory map.

    For an array in memory this is plain slicing. For a view of a memory-mapped file, the pages
    of each block are unmapped from the process once the block has been used
    (``madvise(MADV_DONTNEED)``): the data stay in the file and in the kernel's page cache,
    where they may be reclaimed, but they no longer count in this process's resident memory,
    so a pass over a file larger than memory holds one block at a time. Written pages of a
    shared map are kept (they are written back to the file by the kernel).
    """

    def __init__(self, X, block_bytes=_SCAN_BYTES):
        self.X = X
        self.mapping = _shared_mapping(X)
        row_bytes = max(X.shape[1] * X.dtype.itemsize, 1) if X.ndim == 2 else X.dtype.itemsize
        self.step = max(1, int(block_bytes) // row_bytes)

    @property
    def mapped(self):
        return self.mapping is not None

    def ranges(self):
        n = self.X.shape[0]
        return [(s, min(s + self.step, n)) for s in range(0, n, self.step)]

    def release(self, start, stop):
        """Unmap the pages of rows ``start:stop`` (no-op for arrays in memory)."""
        if self.mapping is None or stop <= start:
            return
        mm, base = self.mapping
        block = self.X[start:stop]
        if block.flags.c_contiguous:
            lo = block.__array_interface__["data"][0] - base
            hi = lo + block.nbytes
        else:  # rows are not contiguous in the file: release the whole map
            lo, hi = 0, len(mm)
        page = mmap.PAGESIZE
        # A page fault maps the pages around it too (see _FAULT_AROUND), so reading a block
        # can map again a few pages of the one before it: the range starts that much earlier.
        lo = max((lo - _FAULT_AROUND) // page * page, 0)
        hi = min(-(-hi // page) * page, len(mm))
        if hi > lo:
            mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def __iter__(self):
        """Yield ``(start, stop, X[start:stop])``; the block's pages are released after it."""
        for s, e in self.ranges():
            yield s, e, self.X[s:e]
            self.release(s, e)

    def gather(self, idx, c0, c1, dtype=None):
        """``X[idx, c0:c1]`` for sorted row indices ``idx``, as a new C-contiguous array."""
        X = self.X
        if self.mapping is None:
            out = X[idx, c0:c1]
            return out if dtype is None else out.astype(dtype, copy=False)
        out = np.empty((idx.size, c1 - c0), X.dtype if dtype is None else dtype)
        if idx.size == 0:
            return out
        bounds = np.searchsorted(idx, [s for s, _ in self.ranges()] + [X.shape[0]])
        for (s, e), p0, p1 in zip(self.ranges(), bounds[:-1], bounds[1:]):
            if p1 > p0:
                out[p0:p1] = X[idx[p0:p1], c0:c1]
            self.release(s, e)
        return out


def scan_features(X, *, copy_to=None, estimator_name=None):
    """One pass over ``X`` in row blocks: its missing entries, column sums and infinities.

    Returns a namespace with ``rows`` (ascending indices of the rows with a missing entry),
    ``packed`` (their missing masks, ``np.packbits(..., axis=1)``), ``full`` (which of them
    miss every feature), ``n_missing`` (missing entries per column) and ``sums`` (float64 sums
    of the observed values per column). Raises ``ValueError`` on an infinite value, with
    scikit-learn's message. Nothing of the size of ``X`` is allocated, and a memory-mapped
    ``X`` is read one block at a time. ``copy_to``, an array of ``X``'s shape, receives a copy
    of each block while it is in the CPU cache.
    """
    n, d = X.shape
    sums = None
    n_missing = np.zeros(d, np.intp)
    rows, packed, full = [], [], []
    for s, e, xb in RowBlocks(X, _SCAN_BYTES):
        if copy_to is not None:
            copy_to[s:e] = xb
        mb = np.isnan(xb)
        row_missing = mb.any(axis=1)
        if row_missing.any():
            r = np.flatnonzero(row_missing)
            mr = mb[r]
            rows.append(r + s)
            packed.append(np.packbits(mr, axis=1))
            full.append(mr.all(axis=1))
            n_missing += mr.sum(axis=0)
        # Column sums in float64, row after row, NaN counting as 0: the very additions, in
        # the same order, of ``np.nanmean`` on a float64 copy of X, without that copy. The
        # running sums ride along as the first row of the block's float64 buffer.
        k = 0 if sums is None else 1
        buf = np.empty((e - s + k, d))
        if k:
            buf[0] = sums
        buf[k:] = xb
        if row_missing.any():
            np.copyto(buf[k:], 0.0, where=mb)
        sums = np.add.reduce(buf, axis=0)
        # An infinite observed value makes its column's sum infinite or NaN, and float64 sums
        # of float32 values never overflow: only then are the values looked at (float64 input
        # whose sum overflows gets here too, and passes).
        if not np.isfinite(sums).all() and np.isinf(xb).any():
            assert_all_finite(xb, allow_nan=True, estimator_name=estimator_name,
                              input_name="X")
    concat = (lambda parts, dtype, width=None:  # noqa: E731
              np.concatenate(parts) if parts else np.zeros((0,) if width is None
                                                           else (0, width), dtype))
    return SimpleNamespace(rows=concat(rows, np.intp), packed=concat(packed, np.uint8,
                                                                     -(-d // 8)),
                           full=concat(full, bool), n_missing=n_missing, sums=sums)


def check_no_empty_columns_counts(n_missing, n_rows, *, what="X"):
    """:func:`check_no_empty_columns` from the number of missing entries per column."""
    if n_rows:
        _raise_empty_columns(np.flatnonzero(np.asarray(n_missing) >= n_rows), what)


def unpack_columns(packed, c0, c1):
    """Columns ``c0:c1`` of a mask stored with ``np.packbits(mask, axis=1)``, as bool."""
    b0, b1 = c0 // 8, -(-c1 // 8)
    bits = np.unpackbits(packed[:, b0:b1], axis=1)
    return bits[:, c0 - 8 * b0:c1 - 8 * b0].view(bool)
