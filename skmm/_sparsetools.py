"""The one scipy sparse kernel skmm calls directly, behind a small compatibility layer.

scipy's public operators wrap C++ kernels that the propagation loop wants without the wrapper:
``csr_matvecs`` (``y += A @ x`` for a CSR ``A`` and a dense ``x``) accumulates into an existing
output, so a propagation step needs no fresh array and no separate add, and it releases the
GIL, so column blocks run on threads. (The graph build and the diffusion rows, which used
``csr_matmat`` here, now run compiled kernels of their own: numba.)

It lives in the private module ``scipy.sparse._sparsetools``, which a future scipy may move or
change. Every call goes through this module: where the kernels are missing (or ``_USE_KERNELS``
is switched off, as the tests do) the same results come from scipy's public operators, only
slower. ``tests/test_sparsetools.py`` checks that both paths agree exactly.
"""

import numpy as np
import scipy.sparse as sp

try:
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - depends on the scipy release
    _csr_matvecs = None

#: Whether the private kernel is used; False forces the public fallback everywhere.
_USE_KERNELS = _csr_matvecs is not None


def spmm_add(indptr, indices, data, shape, x, y):
    """``y += A @ x`` in place, for the CSR arrays of ``A`` and C-contiguous 2-d ``x``, ``y``.

    ``indptr`` and ``indices`` share one integer dtype, ``data``, ``x`` and ``y`` one float
    dtype. The products are summed in CSR order on both paths, so they agree bit for bit.
    """
    if _USE_KERNELS:
        _csr_matvecs(shape[0], shape[1], x.shape[1], indptr, indices, data, x.ravel(),
                     y.ravel())
        return
    # scipy's public ``A @ x`` sums each row from zero, so adding ``y`` afterwards would round
    # differently. Prepending ``y`` as the first term of every row, ``[I | A] @ [y; x]``,
    # makes the public product perform the kernel's additions in the kernel's order.
    n_rows, n_cols = shape
    indptr = np.asarray(indptr)
    starts = indptr[:-1]
    aug = sp.csr_matrix(
        (np.insert(data, starts, np.ones(n_rows, data.dtype)),
         np.insert(np.asarray(indices) + n_rows, starts, np.arange(n_rows)).astype(indptr.dtype),
         indptr + np.arange(n_rows + 1, dtype=indptr.dtype)),
        shape=(n_rows, n_rows + n_cols))
    y[...] = aug @ np.vstack([y, x])
