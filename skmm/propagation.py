"""Feature propagation: fill missing entries by diffusing observed values over a graph.

Only the rows that miss something are iterated. With ``R`` those rows and ``K`` the fully
observed ones, one step of ``Z <- P Z`` followed by resetting the observed entries is, on ``R``,

    Z_R <- where(missing_R, P_RR Z_R + P_RK X_K, X_R)

and ``P_RK X_K`` does not change between steps, so it is computed once. This gives the same
result as re-propagating every row (what the official code and PyG do) for far less work when
few rows miss values.

Columns propagate independently, so :class:`ColumnPropagator` prepares the graph side once
(``P_RR``, ``P_RK``, ``used``) and then propagates one group of columns at a time, each group
needing only its own columns of ``X``: this bounds the working memory (about 1 GiB per group by
default), and lets :class:`~skmm.FeatPropImputer` read a memory-mapped ``X`` group by group. The
in-memory and the memory-mapped paths make the very same calls on the very same operands, so
their results are bit-identical.
"""

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import check_array
from sklearn.utils._param_validation import validate_params

from ._blockio import RowBlocks
from ._propagator import ColumnPropagator, _check_dtype, column_groups
from ._validation import Int

__all__ = ["propagate_features", "propagate_groups", "propagate_reference", "ColumnPropagator",
           "column_groups"]


@validate_params(
    {
        "P": ["sparse matrix", "array-like"],
        "X": ["array-like"],
        "missing": ["array-like"],
        "n_iter": [Int(0)],
        "device": [str, torch.device],
        "dtype": "no_validation",
        "column_batch_size": [Int(1), None],
    },
    prefer_skip_nested_validation=True,
)
def propagate_features(P, X, missing, n_iter, *, device="cpu", dtype=np.float32,
                       column_batch_size=None):
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
    column_batch_size : int or None, default=None
        Columns propagated together (see :class:`ColumnPropagator`). None sizes the groups so
        that their working arrays take about 1 GiB.

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
    X, missing, prop = _prepare(P, X, missing, n_iter, device=device, dtype=dtype,
                                column_batch_size=column_batch_size)
    values, reached = _run(prop, X, missing)
    return prop.rows, values, reached


def _prepare(P, X, missing, n_iter, *, device, dtype, column_batch_size):
    """The checks of :func:`propagate_features` and its :class:`ColumnPropagator`:
    ``(X, missing, prop)``."""
    dtype = _check_dtype(dtype)
    X = check_array(X, dtype=None, ensure_all_finite="allow-nan", input_name="X")
    n_items, n_features = X.shape
    missing = np.asarray(missing)
    if missing.shape != X.shape or missing.dtype != bool:
        raise ValueError(f"missing must be a boolean array of X's shape {X.shape}, got "
                         f"{missing.dtype} of shape {missing.shape}.")
    P = sp.csr_matrix(P)
    if P.shape != (n_items, n_items):
        raise ValueError(f"P must be a square (n_items, n_items) matrix for X's {n_items} rows, "
                         f"got shape {P.shape}.")
    if P.nnz and not np.isfinite(P.data).all():
        raise ValueError("P contains NaN or infinite weights.")
    if np.isinf(X[~missing]).any():
        raise ValueError("X contains infinity at observed entries.")
    rows = np.flatnonzero(missing.any(axis=1))
    miss_r = missing[rows]
    prop = ColumnPropagator(P, rows, miss_r.all(axis=1), n_iter, n_features=n_features,
                            device=device, dtype=dtype, column_batch_size=column_batch_size)
    return X, missing, prop


def _run(prop, X, missing, snapshot=None):
    """``(values, reached)`` of :func:`propagate_features` on ``prop.rows``; ``snapshot`` as
    in :meth:`ColumnPropagator.propagate`."""
    rows, n_features = prop.rows, X.shape[1]
    values = np.empty((rows.size, n_features), prop.dtype)
    reached = np.empty((rows.size, n_features), bool)
    if rows.size == 0:
        return values, reached
    miss_r = missing[rows]
    for c0, c1, _, _, v, r in propagate_groups(prop, RowBlocks(X),
                                               lambda a, b: miss_r[:, a:b], snapshot):
        values[:, c0:c1], reached[:, c0:c1] = v, r
    return values, reached


def propagate_groups(prop, reader, masks, snapshot=None):
    """Propagate a :class:`ColumnPropagator`'s column groups one after another.

    The one column-group loop of skmm: :func:`propagate_features` and the imputers run it.
    Each group needs only its own columns of the rows that carry weight, read through
    ``reader`` (a :class:`~skmm._blockio.RowBlocks` over ``X``, which reads a memory map
    block by block).

    Parameters
    ----------
    prop : ColumnPropagator
        The prepared graph side.
    reader : RowBlocks
        Reads ``X``.
    masks : callable
        ``masks(c0, c1)`` returns the missing mask of columns ``c0:c1`` of the rows
        ``prop.rows``, shape (n_rows, c1 - c0).
    snapshot : callable or None, default=None
        Passed to :meth:`ColumnPropagator.propagate`: called after every step.

    Yields
    ------
    c0, c1 : int
        The group's columns.
    missing : ndarray of bool, shape (n_rows, c1 - c0)
        Its missing mask.
    observed : ndarray of shape (n_partial, c1 - c0) or None
        The raw values (NaN included) of the partially observed rows ``prop.partial``.
    values : ndarray of shape (n_rows, c1 - c0)
        The rows after propagation (observed entries as given, in ``prop.dtype``).
    reached : ndarray of bool, shape (n_rows, c1 - c0)
        True where the entry is observed or some observed value reached it.
    """
    rows, partial, used = prop.rows, prop.partial, prop.used
    for c0, c1 in prop.column_groups():
        m = masks(c0, c1)
        m_p = m[partial]
        raw_p = reader.gather(rows[partial], c0, c1) if partial.size else None
        x_p = prop.known_values(raw_p, m_p) if partial.size else None
        if reader.mapped:
            # One read of the group's source rows from the file, sliced by every block.
            x_k = reader.gather(used, c0, c1)
            read_used = lambda a, b, x_k=x_k, c0=c0: x_k[:, a - c0:b - c0]  # noqa: E731
        else:
            read_used = lambda a, b: reader.X[used, a:b]  # noqa: E731
        values = prop.propagate(c0, c1, read_used, x_p, m_p, snapshot)
        yield c0, c1, m, raw_p, values, prop.reached(m)


def propagate_reference(P, X, missing, n_iter):
    """Feature propagation as the paper writes it: every row, every step, in float64.

    ``Z <- P Z`` then the observed entries reset to their values, ``n_iter`` times, from
    zeros at the missing entries. A readable reference for the fast missing-block engine
    (:func:`propagate_features` returns the same values on its rows), not for large data.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skmm.propagation import propagate_reference
    >>> P = sp.csr_matrix(np.array([[0, 1.0], [1.0, 0]]))
    >>> X = np.array([[2.0], [np.nan]])
    >>> propagate_reference(P, X, np.isnan(X), n_iter=1)
    array([[2.],
           [2.]])
    """
    P = sp.csr_matrix(P, dtype=np.float64)
    missing = np.asarray(missing, dtype=bool)
    known = np.where(missing, 0.0, np.asarray(X, dtype=np.float64))
    Z = known.copy()
    for _ in range(int(n_iter)):
        Z = P @ Z
        Z[~missing] = known[~missing]
    return Z
