"""Which fitted item a row of content is: the recognition behind warm-start scoring.

Items are the samples, so a recommender's prediction methods receive item rows. A row is a
fitted item when its content is bit-identical to that item's row in the ``X`` given to
``fit``: rows are compared by a 128-bit BLAKE2 digest of their raw bytes (a collision between
different rows has probability about 2**-128 per pair).
"""

import hashlib

import numpy as np
import scipy.sparse as sp


class RowIndex:
    """Which fitted items a row of content is: 128-bit digests of the fitted rows.

    A row is each fitted item whose row it equals bit for bit (several when fitted items share
    their content). When the whole matrix is the fitted one, row for row, row ``i`` is item
    ``i`` alone, duplicates or not.
    """

    def __init__(self, X):
        self.digests = _row_digests(X)
        self.order = np.argsort(self.digests, kind="stable")
        self.sorted = self.digests[self.order]

    def match(self, X):
        """``(items, matches)``: per row the one fitted item it is (-1 when none or several),
        and the sparse (n_rows, n_fitted) matrix of every match."""
        digests = _row_digests(X)
        n, n_fitted = len(digests), len(self.digests)
        if digests.shape == self.digests.shape and np.array_equal(digests, self.digests):
            items = np.arange(n)
            return items, sp.csr_matrix((np.ones(n, np.float32), items, np.arange(n + 1)),
                                        shape=(n, n_fitted))
        lo = np.searchsorted(self.sorted, digests, side="left")
        counts = np.searchsorted(self.sorted, digests, side="right") - lo
        starts = np.zeros(n, np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        positions = np.arange(counts.sum()) + np.repeat(lo - starts, counts)
        indptr = np.concatenate(([0], np.cumsum(counts)))
        matches = sp.csr_matrix((np.ones(positions.size, np.float32), self.order[positions],
                                 indptr), shape=(n, n_fitted))
        items = np.full(n, -1, np.int64)
        items[counts == 1] = self.order[lo[counts == 1]]
        return items, matches


def _row_digests(X):
    """One 16-byte BLAKE2b digest of the raw bytes of each row of a float32 matrix."""
    X = np.ascontiguousarray(X)
    return np.array([hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in X],
                    dtype="S16")
