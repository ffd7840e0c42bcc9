"""The sparse-times-dense kernel of the propagation loop, compiled with numba.

One propagation step is ``out = b + A @ z`` for the CSR block ``A = P_RR`` and a dense ``z``.
Library operators fit it badly: scipy's public ``A @ z`` allocates a fresh output and sums
each row from zero, so a step would need a new array and a separate add; torch's
multi-threaded sparse product synchronises its threads on every call, which on a busy 2-core
machine costs a scheduler time slice per step (see :mod:`skmm._propagator`). skmm used
scipy's private C++ kernel ``csr_matvecs`` for this before; this kernel replaces it and is
faster, most likely because numba compiles the loop over a row's columns for the host CPU's
vector instructions, a scipy wheel for a baseline x86-64 (not profiled; Amazon Baby, the
4,935-row block of 70% missing, 96-column blocks: ``propagate_features`` 0.405 s -> 0.221 s
in one process, with four terms per pass below), and fuses the add of ``b``, which saves a
copy per step.

Every output entry is summed in one fixed order, ``b`` first and then the row's terms in CSR
order, with separate multiplies and adds (numba does not contract them into fused
multiply-adds unless asked to): the same float result as scipy's kernel and as its public
operator fed ``[I | A] @ [b; z]`` (``tests/test_spmm.py`` checks both, bit for bit).

The kernel releases the GIL, so column blocks run on threads. It compiles on first use for
each (index dtype, float dtype) pair, about a second each.
"""

from numba import njit


@njit(nogil=True, cache=False)
def _spmm_plus(indptr, indices, data, x, b, out):  # pragma: no cover - compiled
    n_rows = indptr.shape[0] - 1
    width = x.shape[1]
    for i in range(n_rows):
        for k in range(width):
            out[i, k] = b[i, k]
        p, stop = indptr[i], indptr[i + 1]
        # Four terms per pass over the row: a quarter of the loads and stores of out[i]
        # (which the compiler cannot keep in registers, as x might alias it), the additions
        # still one after another in CSR order.
        while p + 3 < stop:
            a0, a1, a2, a3 = data[p], data[p + 1], data[p + 2], data[p + 3]
            j0, j1, j2, j3 = indices[p], indices[p + 1], indices[p + 2], indices[p + 3]
            for k in range(width):
                out[i, k] = (((out[i, k] + a0 * x[j0, k]) + a1 * x[j1, k]) + a2 * x[j2, k]
                             + a3 * x[j3, k])
            p += 4
        while p < stop:
            a, j = data[p], indices[p]
            for k in range(width):
                out[i, k] += a * x[j, k]
            p += 1


def spmm_plus(indptr, indices, data, x, b, out):
    """``out = b + A @ x`` for the CSR arrays of ``A``; ``b`` may be ``out`` (``out += A @ x``).

    ``indptr`` and ``indices`` share one integer dtype; ``data``, ``x``, ``b`` and ``out`` one
    float dtype; ``x``, ``b`` and ``out`` are C-contiguous 2-d arrays, ``x`` not sharing memory
    with ``out``. A private helper: the callers guarantee these, nothing is checked.
    """
    _spmm_plus(indptr, indices, data, x, b, out)
