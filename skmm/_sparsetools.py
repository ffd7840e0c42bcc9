"""The two scipy sparse kernels skmm calls directly, behind one small compatibility layer.

scipy's public operators wrap C++ kernels that skmm's hot loops want without the wrapper:

* ``csr_matvecs`` (``y += A @ x`` for a CSR ``A`` and a dense ``x``) accumulates into an
  existing output, so a propagation step needs no fresh array and no separate add, and it
  releases the GIL, so column blocks run on threads.
* ``csr_matmat`` (``C = A @ B`` for CSR operands) writes into caller-owned buffers, skipping
  the symbolic pass that ``@`` runs only to size its output.

They live in the private module ``scipy.sparse._sparsetools``, which a future scipy may move or
change. Every call goes through this module: where the kernels are missing (or ``_USE_KERNELS``
is switched off, as the tests do) the same results come from scipy's public operators, only
slower. ``tests/test_sparsetools.py`` checks that both paths agree exactly.
"""

import numpy as np
import scipy.sparse as sp

try:
    from scipy.sparse._sparsetools import csr_matmat as _csr_matmat
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - depends on the scipy release
    _csr_matmat = _csr_matvecs = None

#: Whether the private kernels are used; False forces the public fallback everywhere.
_USE_KERNELS = _csr_matmat is not None and _csr_matvecs is not None


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


def spgemm_into(n_rows, indptr, indices, data, B, out_indices, out_data):
    """``A @ B`` for a CSR ``A`` given by its arrays and a CSR matrix ``B``, into buffers.

    Parameters
    ----------
    n_rows : int
        Rows of ``A``; its columns are ``B``'s rows.
    indptr, indices, data : ndarray
        The CSR arrays of ``A`` (``indptr`` starting at 0), in ``B``'s index and value dtypes.
    B : scipy.sparse.csr_matrix
        The right operand.
    out_indices, out_data : ndarray
        Buffers of at least as many entries as the product's multiply-adds (an upper bound on
        its non-zeros), in the index and value dtypes of the operands.

    Returns
    -------
    indptr, indices, data : ndarray
        The product's CSR arrays (``indices`` and ``data`` are views of the buffers on the
        kernel path). Entries that sum to zero are dropped; within a row, columns come in the
        kernel's order (first appearance), the same on both paths.
    """
    if not _USE_KERNELS:
        C = sp.csr_matrix((data, indices, indptr), shape=(n_rows, B.shape[0])) @ B
        C.eliminate_zeros()
        return C.indptr, C.indices, C.data
    out_indptr = np.empty(n_rows + 1, B.indices.dtype)
    _csr_matmat(n_rows, B.shape[1], indptr, indices, data, B.indptr, B.indices, B.data,
                out_indptr, out_indices, out_data)
    nnz = int(out_indptr[-1])
    return out_indptr, out_indices[:nnz], out_data[:nnz]
