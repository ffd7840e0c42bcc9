"""The item-item co-interaction graph that FeatProp propagates over.

Two items are linked when users interacted with both. Row ``i`` keeps the ``k`` other items most
similar to ``i`` under one of several similarities (the raw co-count of the FeatProp paper, or
a normalised one from item-kNN collaborative filtering). Memory is bounded by the output and
a few dense arrays of ``n_items`` entries per thread, never by an ``n_items x n_items`` array
(the official FeatProp code materialises that array) nor by the co-interaction counts.

Where the time goes, and why the code looks the way it does (1M items, 10M interactions):

* One fused kernel (:mod:`skmm._graph_kernel`, compiled by numba) builds each row: it
  accumulates the row's co-interaction counts (or weighted sums) in a dense per-thread
  accumulator, keeps the ``k`` best in a heap, and resets the accumulator, without writing the
  sparse product anywhere. The former sparse product (scipy's private ``csr_matmat``) plus
  numpy selection spent most of its time writing and re-reading the product's hundreds of
  millions of entries, most of them count-1 pairs that never make the cut.
* Rows are independent: tasks of rows of about equal work run on ``torch.get_num_threads()``
  Python threads (the kernel releases the GIL), handed out as threads become free. Python
  threads rather than numba's ``parallel=True``: the thread count follows torch's setting with
  no global state to restore, concurrent calls from several threads are safe on every numba
  threading layer, and a serial kernel compiles faster (no parfor passes).
* The kernel adds the terms of every sum in the order scipy's product did, and computes every
  ranking key by the same float64 operations as :meth:`_Similarity.value`: the graph is the
  same, bit for bit, as before the kernel.

Why one module of this length: graph construction is one concept with one fast path. The six
similarities share the kernel and the tie rule, and differ only in their per-item factors and
a line of key computation; only the compiled kernel lives apart, so that numba is imported
(about a second) when a graph is built, not whenever this module is.
"""

import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ._validation import check_interactions

__all__ = ["NeighbourLists", "cointeraction_graph", "graph_from_neighbours", "neighbour_lists",
           "normalize_adjacency", "SIMILARITIES"]

#: The neighbour similarities of :func:`cointeraction_graph`.
SIMILARITIES = ("count", "cosine", "asymmetric_cosine", "jaccard", "tfidf", "bm25")
_COUNT_BASED = ("count", "cosine", "asymmetric_cosine", "jaccard")  # functions of c, d_i, d_j
_SHRINKABLE = ("cosine", "asymmetric_cosine", "jaccard", "tfidf")  # those with a denominator
_WEIGHTINGS = ("binary", "count", "similarity")

# Parallel tasks per thread when ``batch_size`` is None (see _chunks).
_TASKS_PER_THREAD = 8

_INT32_MAX = np.iinfo(np.int32).max

_K = [Interval(Integral, 1, None, closed="left")]
_BATCH = [Interval(Integral, 1, None, closed="left"), None]
_SIM_PARAMS = {
    "similarity": [StrOptions(set(SIMILARITIES))],
    "shrink": [Interval(Real, 0, None, closed="left")],
    "asymmetric_alpha": [Interval(Real, 0, 1, closed="both"), None],
    "bm25_k1": [Interval(Real, 0, None, closed="left"), None],
    "bm25_b": [Interval(Real, 0, 1, closed="both"), None],
    "batch_size": _BATCH,
}


# ------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------

@validate_params(
    {"Y": ["array-like", "sparse matrix"], "n_neighbors": _K, "symmetric": ["boolean"],
     "weighting": [StrOptions(set(_WEIGHTINGS))], **_SIM_PARAMS},
    prefer_skip_nested_validation=True)
def cointeraction_graph(Y, n_neighbors=20, *, similarity="count", shrink=0.0,
                        asymmetric_alpha=None, bm25_k1=None, bm25_b=None, symmetric=False,
                        weighting="binary", batch_size=None):
    r"""Build the top-k item-item co-interaction graph.

    Row ``i`` of the result links item ``i`` to the ``n_neighbors`` other items most similar to
    it. Pairs that share no user are never linked, even when an item has fewer than
    ``n_neighbors`` co-interacted items, and neither are pairs of zero similarity. Ranking is
    within a row; ties go to the smaller item index.

    With :math:`c_{ij}` the number of users of both items, :math:`d_i = c_{ii}` the number of
    users of item ``i``, :math:`n_u` the number of items of user ``u``, :math:`N` the number of
    items and :math:`\lambda` = ``shrink``, the similarities are:

    * ``"count"`` (the FeatProp paper): :math:`s_{ij} = c_{ij}`.
    * ``"cosine"``: :math:`s_{ij} = c_{ij} / (\sqrt{d_i d_j} + \lambda)`.
    * ``"asymmetric_cosine"`` (Aiolli, RecSys 2013), with :math:`a` = ``asymmetric_alpha``:
      :math:`s_{ij} = c_{ij} / (d_i^{a} d_j^{1-a} + \lambda)`. ``a = 0.5`` is the cosine,
      ``a = 1`` ranks like the count (:math:`P(j \mid i)`), ``a = 0`` is :math:`P(i \mid j)`.
    * ``"jaccard"``: :math:`s_{ij} = c_{ij} / (d_i + d_j - c_{ij} + \lambda)`.
    * ``"tfidf"`` (implicit's ``TFIDFRecommender`` on binary data): with
      :math:`w_u = \mathrm{idf}_u^2`, :math:`\mathrm{idf}_u = \ln N - \ln(1 + n_u)`,
      :math:`S_{ij} = \sum_{u \in U_i \cap U_j} w_u` and :math:`q_i = S_{ii}`:
      :math:`s_{ij} = S_{ij} / (\sqrt{q_i q_j} + \lambda)`.
    * ``"bm25"`` (implicit's ``BM25Recommender`` on binary data), with :math:`K_1` =
      ``bm25_k1``, :math:`B` = ``bm25_b``, :math:`L_i = (1 - B) + B d_i / \bar d` (:math:`\bar
      d` the mean item degree) and :math:`f_i = (K_1 + 1) / (K_1 L_i + 1)`:
      :math:`s_{ij} = f_i f_j S_{ij}`.

    ``shrink`` (Dacrema et al.) penalises pairs of little support; it applies to the
    similarities with a denominator (cosine, asymmetric cosine, Jaccard, TF-IDF).

    Exactness of the ranking: ``"count"`` compares integers. ``"cosine"`` without shrinkage
    ranks row ``i`` by :math:`c_{ij}^2 / d_j`, one correctly rounded float64 division of exact
    integers, and ``"jaccard"`` without shrinkage by :math:`s_{ij}` itself, likewise: for item
    degrees below :math:`2^{17}` (cosine) or :math:`2^{25}` (Jaccard) two different exact values
    never round to the same float, so order and ties are exact. The other cases rank by the
    float64 value of the formula, computed the same way whatever ``batch_size`` or the number of
    threads: deterministic, and exact up to float64 rounding of the similarity. ``tfidf``
    without shrinkage and ``bm25`` rank row ``i`` by :math:`\sum_u w_u g_j` (users in
    increasing order, :math:`g_j = q_j^{-1/2}` or :math:`f_j`), summed by the kernel
    itself, and :math:`s_{ij} = g_i \sum_u w_u g_j`: the two directions of a pair may then
    differ in the last bits of float64 (the symmetric union keeps the larger).

    Parameters
    ----------
    Y : {array-like, sparse matrix} of shape (n_items, n_users)
        Interactions, items as rows. Any non-zero value counts as one interaction.
    n_neighbors : int, default=20
        Edges kept per item (row), at most; values above ``n_items - 1`` keep every
        co-interacted item.
    similarity : str, default="count"
        How neighbours are ranked (formulas above): one of ``"count"``, ``"cosine"``,
        ``"asymmetric_cosine"``, ``"jaccard"``, ``"tfidf"``, ``"bm25"``.
    shrink : float, default=0.0
        The shrinkage term :math:`\lambda \ge 0` added to the denominator. Must be 0 for
        ``"count"`` and ``"bm25"``, which have none.
    asymmetric_alpha : float in [0, 1] or None, default=None
        The exponent :math:`a` of ``"asymmetric_cosine"`` (None means 0.5). Only for that
        similarity.
    bm25_k1, bm25_b : float or None, default=None
        :math:`K_1 \ge 0` and :math:`B \in [0, 1]` of ``"bm25"`` (None means implicit's
        ``BM25Recommender`` defaults, 1.2 and 0.75). Only for that similarity.
    symmetric : bool, default=False
        If True, keep the union of both directions (``max(A, A.T)``); the paper keeps the
        directed top-k graph. Every similarity but the asymmetric cosine is symmetric, so the
        union keeps each pair's single weight; for the asymmetric cosine it keeps the larger of
        the two directions' weights.
    weighting : {"binary", "count", "similarity"}, default="binary"
        ``"binary"`` gives every kept edge weight 1 (the paper: counts only rank neighbours);
        ``"count"`` keeps the co-interaction count :math:`c_{ij}` as the weight (not available
        for ``"tfidf"``/``"bm25"``, whose product computes :math:`S_{ij}` only);
        ``"similarity"`` keeps :math:`s_{ij}` (in float32).
    batch_size : int or None, default=None
        Item rows per parallel task. None makes about 8 tasks per thread of about equal work
        (co-interaction products). The result does not depend on it. Tasks run on
        ``torch.get_num_threads()`` threads, each holding an accumulator of ``n_items``
        entries.

    Returns
    -------
    A : scipy.sparse.csr_matrix of shape (n_items, n_items), dtype float32
        The adjacency matrix, without self-loops, with sorted indices.

    See Also
    --------
    neighbour_lists : Each item's ranked neighbours, built once for a grid over ``k``.

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
    >>> A = cointeraction_graph(Y, n_neighbors=1, similarity="jaccard", weighting="similarity")
    >>> A.toarray().round(3)  # item 2 shares 1 of 3 users with item 0
    array([[0.   , 0.5  , 0.   , 0.   ],
           [0.5  , 0.   , 0.   , 0.   ],
           [0.333, 0.   , 0.   , 0.   ],
           [0.   , 0.   , 0.   , 0.   ]], dtype=float32)
    """
    _reject_bool(n_neighbors=n_neighbors, batch_size=batch_size)
    Y = _check_Y(Y)
    sim = _similarity(Y, similarity, shrink, asymmetric_alpha, bm25_k1, bm25_b)
    _check_weighting(weighting, sim)
    k = min(int(n_neighbors), max(Y.shape[0] - 1, 0))
    indptr, cols, vals = _top_neighbours(Y, k, sim, batch_size, by_column=True)
    return _adjacency(indptr, cols, vals, sim, Y.shape[0], symmetric, weighting)


@dataclass(frozen=True, eq=False)
class NeighbourLists:
    """Each item's top neighbours in rank order, from :func:`neighbour_lists`.

    Row ``i`` is ``indices[indptr[i]:indptr[i + 1]]``, best neighbour first, in the builder's
    own total order (similarity descending, then item index ascending), so that the first ``k``
    entries of every row are exactly the neighbours of :func:`cointeraction_graph` with
    ``n_neighbors=k``. Memory: about 12 bytes per stored neighbour.

    Attributes
    ----------
    indptr : ndarray of shape (n_items + 1,), dtype int64
        Row boundaries.
    indices : ndarray of shape (n_stored,)
        Neighbour item indices, row by row, in rank order.
    similarities : ndarray of shape (n_stored,), dtype float32
        :math:`s_{ij}` of each stored neighbour (see :func:`cointeraction_graph`).
    counts : ndarray of shape (n_stored,), dtype int32, or None
        Co-interaction counts :math:`c_{ij}`; None for ``"tfidf"`` and ``"bm25"``.
    similarity : str
        The similarity the lists were ranked by.
    max_neighbors : int
        Neighbours held per row, at most (``n_items - 1`` if more were asked for).
    """

    indptr: np.ndarray
    indices: np.ndarray
    similarities: np.ndarray
    counts: object
    similarity: str
    max_neighbors: int

    @property
    def n_items(self):
        """Number of items (rows)."""
        return len(self.indptr) - 1


@validate_params(
    {"Y": ["array-like", "sparse matrix"], "max_neighbors": _K, **_SIM_PARAMS},
    prefer_skip_nested_validation=True)
def neighbour_lists(Y, max_neighbors=100, *, similarity="count", shrink=0.0,
                    asymmetric_alpha=None, bm25_k1=None, bm25_b=None, batch_size=None):
    """Build, once, each item's top ``max_neighbors`` neighbours ordered by rank.

    One build serves a whole grid over ``k``: :func:`graph_from_neighbours` turns the lists into
    the graph of :func:`cointeraction_graph` for any ``n_neighbors <= max_neighbors``, exactly.
    It costs about what one :func:`cointeraction_graph` call at ``k = max_neighbors`` costs, and
    memory O(n_items * max_neighbors).

    Parameters
    ----------
    Y : {array-like, sparse matrix} of shape (n_items, n_users)
        Interactions, items as rows. Any non-zero value counts as one interaction.
    max_neighbors : int, default=100
        Neighbours kept per item, at most (clipped to ``n_items - 1``).
    similarity, shrink, asymmetric_alpha, bm25_k1, bm25_b, batch_size
        As in :func:`cointeraction_graph`.

    Returns
    -------
    neighbours : NeighbourLists

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.graph import cointeraction_graph, graph_from_neighbours, neighbour_lists
    >>> Y = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 1, 1]])
    >>> lists = neighbour_lists(Y, 3, similarity="cosine")
    >>> lists.indices[lists.indptr[0]:lists.indptr[1]]  # item 0's neighbours, best first
    array([3, 1, 2], dtype=int32)
    >>> A = graph_from_neighbours(lists, 2)
    >>> bool((A != cointeraction_graph(Y, 2, similarity="cosine")).nnz == 0)
    True
    """
    _reject_bool(max_neighbors=max_neighbors, batch_size=batch_size)
    Y = _check_Y(Y)
    sim = _similarity(Y, similarity, shrink, asymmetric_alpha, bm25_k1, bm25_b)
    k = min(int(max_neighbors), max(Y.shape[0] - 1, 0))
    indptr, cols, vals = _top_neighbours(Y, k, sim, batch_size, by_column=False)
    rows = _entry_rows(indptr)
    return NeighbourLists(
        indptr=indptr, indices=cols,
        similarities=sim.value(vals, cols, rows).astype(np.float32),
        counts=vals.astype(np.int32) if sim.name in _COUNT_BASED else None,
        similarity=sim.name, max_neighbors=k)


@validate_params(
    {"neighbours": [NeighbourLists], "n_neighbors": _K, "symmetric": ["boolean"],
     "weighting": [StrOptions(set(_WEIGHTINGS))]},
    prefer_skip_nested_validation=True)
def graph_from_neighbours(neighbours, n_neighbors, *, symmetric=False, weighting="binary"):
    """The top-``n_neighbors`` graph from ranked neighbour lists, without recomputing them.

    The result equals ``cointeraction_graph(Y, n_neighbors, ...)`` with the lists' similarity
    parameters, bit for bit: each row keeps the first ``n_neighbors`` entries of its list.

    Parameters
    ----------
    neighbours : NeighbourLists
        From :func:`neighbour_lists`.
    n_neighbors : int
        Edges kept per item, at most ``neighbours.max_neighbors`` (any value when the lists
        hold every co-interacted item, ``max_neighbors == n_items - 1``).
    symmetric : bool, default=False
        As in :func:`cointeraction_graph`.
    weighting : {"binary", "count", "similarity"}, default="binary"
        As in :func:`cointeraction_graph`.

    Returns
    -------
    A : scipy.sparse.csr_matrix of shape (n_items, n_items), dtype float32

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.graph import graph_from_neighbours, neighbour_lists
    >>> lists = neighbour_lists(np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1]]), 2)
    >>> graph_from_neighbours(lists, 1, weighting="count").toarray()
    array([[0., 1., 0.],
           [1., 0., 0.],
           [1., 0., 0.]], dtype=float32)
    """
    _reject_bool(n_neighbors=n_neighbors)
    lists = neighbours
    n_items = lists.n_items
    if n_neighbors > lists.max_neighbors and lists.max_neighbors < n_items - 1:
        raise ValueError(f"n_neighbors={n_neighbors} exceeds the neighbours held per item "
                         f"(max_neighbors={lists.max_neighbors}); rebuild the lists with "
                         f"neighbour_lists(Y, max_neighbors={n_neighbors}).")
    if weighting == "count" and lists.counts is None:
        raise ValueError(_COUNT_WEIGHTING_MSG.format(similarity=lists.similarity))
    k = min(int(n_neighbors), lists.max_neighbors)
    # The first k entries of every row, then columns ascending within rows (CSR order).
    lengths = np.diff(lists.indptr)
    take = np.minimum(lengths, k)
    pos = np.arange(take.sum()) + np.repeat(lists.indptr[:-1] - _offsets(take), take)
    rows = np.repeat(np.arange(n_items, dtype=np.int64), take)
    order = np.argsort(rows * max(n_items, 1) + lists.indices[pos])
    pos = pos[order]
    indptr = np.zeros(n_items + 1, np.int64)
    np.cumsum(take, out=indptr[1:])
    data = {"binary": None,
            "count": None if lists.counts is None else lists.counts[pos],
            "similarity": lists.similarities[pos]}[weighting]
    return _assemble(indptr, lists.indices[pos], data, n_items, symmetric)


# ------------------------------------------------------------------------------------------
# Argument checks
# ------------------------------------------------------------------------------------------

_COUNT_WEIGHTING_MSG = ("weighting='count' is not available with similarity={similarity!r}: its "
                        "sparse product sums user weights, not co-counts. Use "
                        "weighting='similarity' or 'binary'.")


def _reject_bool(**params):
    """``validate_params`` accepts True as an int (bool is an Integral): refuse it."""
    for name, value in params.items():
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be an int, got the bool {value!r}.")


def _check_Y(Y):
    """``Y`` as a binary CSR matrix (:func:`~skmm._validation.check_interactions`, the one
    check of interaction matrices), its rows the items."""
    if Y is None or isinstance(Y, (str, bytes)) or np.isscalar(Y):
        raise TypeError(f"Y must be an (n_items, n_users) interaction matrix, got {Y!r}.")
    shape = getattr(Y, "shape", None)
    if shape is not None:
        n_items = shape[0] if len(shape) else 0
    else:
        n_items = len(Y) if hasattr(Y, "__len__") else 0
    return check_interactions(Y, n_items, name="Y")


def _check_weighting(weighting, sim):
    if weighting == "count" and sim.name not in _COUNT_BASED:
        raise ValueError(_COUNT_WEIGHTING_MSG.format(similarity=sim.name))


# ------------------------------------------------------------------------------------------
# Similarities: the value of a pair, and the key that ranks it inside its row
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Similarity:
    """One similarity, with the per-item (and per-user) quantities its formula needs.

    ``vals`` below are what the sparse product delivers for an entry: the co-count
    :math:`c_{ij}` (count-based similarities) or a weighted sum (``"tfidf"``/``"bm25"``):
    :math:`\\sum_u w_u g_j` when the column factor ``g`` is folded into the product (its
    right operand holds :math:`g_j` instead of 1), so that the sum is already the ranking key
    and no per-entry gather is needed, else :math:`S_{ij}`. ``rows`` are the entries' global
    row indices.
    """

    name: str
    shrink: float
    alpha: float
    degree: np.ndarray  # d_i as float64 (exact: degrees are < 2**53)
    user_weight: object = None  # w_u = idf_u ** 2, for the weighted product
    item_factor: object = None  # q_i (tfidf) or f_i (bm25)
    column_factor: object = None  # g_j folded into the product: q_j ** -0.5 (tfidf) or f_j

    @property
    def folded(self):
        """Whether the product's sums already carry the column factor."""
        return self.column_factor is not None

    @property
    def weighted(self):
        """Whether the product sums user weights (else it counts co-interactions)."""
        return self.user_weight is not None

    def kernel_key(self):
        """The ranking key of the kernel: ``(mode, a, b, shrink)`` (skmm/_graph_kernel.py).

        Larger keys are better; equal keys tie, and ties go to the smaller column. The key of
        ``(i, j)`` is computed from ``a[i]`` and ``b[j]`` by the same float64 operations, in
        the same order, as :meth:`value`, so that ranks and ties equal those of the values.
        ``count`` ranks by the count itself. The cosine without shrinkage ranks by
        :math:`c^2 / d_j`: the row's own :math:`1/\\sqrt{d_i}` drops out, and one correctly
        rounded division of exact integers keeps order and ties exact (see
        cointeraction_graph). Folded sums :math:`\\sum_u w_u g_j` are their own key (the row's
        factor :math:`g_i` drops out).
        """
        from . import _graph_kernel as kernel

        d, lam = self.degree, self.shrink
        if self.name == "count":
            return kernel.MODE_COUNT, d, d, 0.0
        if self.name == "cosine" and lam == 0:
            return kernel.MODE_RATIO, d, d, 0.0
        if self.name == "cosine":
            return kernel.MODE_SQRT, d, d, lam
        if self.name == "asymmetric_cosine":
            # Per item, the powers value() takes per entry (the same numpy expression).
            return kernel.MODE_PRODUCT, d ** self.alpha, d ** (1 - self.alpha), lam
        if self.name == "jaccard":
            return kernel.MODE_JACCARD, d, d, lam
        if self.folded:
            return kernel.MODE_SUM, d, d, 0.0
        f = self.item_factor
        return kernel.MODE_SQRT, f, f, lam  # tfidf with shrinkage

    def value(self, vals, cols, rows):
        """The similarity :math:`s_{ij}` in float64 (formulas in cointeraction_graph)."""
        v = vals.astype(np.float64)
        d, lam = self.degree, self.shrink
        if self.name == "count":
            return v
        if self.name == "cosine":
            return v / (np.sqrt(d[rows] * d[cols]) + lam)
        if self.name == "asymmetric_cosine":
            return v / (d[rows] ** self.alpha * d[cols] ** (1 - self.alpha) + lam)
        if self.name == "jaccard":
            return v / (d[rows] + d[cols] - v + lam)
        if self.folded:  # s_ij = g_i * sum_u w_u g_j
            return v * self.column_factor[rows]
        f = self.item_factor
        if self.name == "tfidf":
            return v / (np.sqrt(f[rows] * f[cols]) + lam)
        return v * (f[rows] * f[cols])  # bm25


def _similarity(Y, name, shrink, alpha, k1, b):
    """Check the similarity's parameters and precompute what its formula needs."""
    for param, value in (("asymmetric_alpha", alpha), ("bm25_k1", k1), ("bm25_b", b)):
        owner = "asymmetric_cosine" if param == "asymmetric_alpha" else "bm25"
        if value is not None and name != owner:
            raise ValueError(f"{param} applies to similarity={owner!r} only, got "
                             f"similarity={name!r}.")
    if shrink != 0 and name not in _SHRINKABLE:
        raise ValueError(f"shrink applies to similarities with a denominator "
                         f"{list(_SHRINKABLE)}; similarity={name!r} has none, so shrink must "
                         f"be 0, got {shrink!r}.")
    n_items = Y.shape[0]
    degree = np.diff(Y.indptr).astype(np.float64)
    alpha = 0.5 if alpha is None else float(alpha)
    if name == "asymmetric_cosine" and alpha == 0.5:
        name = "cosine"  # the same ranking, computed the cosine's exact way
    if name not in ("tfidf", "bm25"):
        return _Similarity(name, float(shrink), alpha, degree)
    users = np.bincount(Y.indices, minlength=Y.shape[1])
    idf = np.log(n_items) - np.log1p(users)  # implicit's idf: ln N - ln(1 + n_u)
    user_weight = idf * idf
    if name == "tfidf":
        # q_i = sum of w_u over i's users, the squared norm of i's tf-idf vector.
        # bincount adds in entry order (users ascending), as the product does for S_ii.
        factor = np.bincount(np.repeat(np.arange(n_items), np.diff(Y.indptr)),
                             weights=user_weight[Y.indices], minlength=n_items)
    else:
        k1 = 1.2 if k1 is None else float(k1)
        b = 0.75 if b is None else float(b)
        mean = degree.mean() if n_items else 1.0
        length_norm = (1.0 - b) + b * degree / (mean if mean > 0 else 1.0)
        factor = (k1 + 1.0) / (k1 * length_norm + 1.0)
    if name == "bm25":
        column = factor
    elif shrink == 0:  # tfidf: 1/sqrt(q_j); q_j = 0 only if every w_u of j is 0 (no entries)
        column = np.divide(1.0, np.sqrt(factor), out=np.zeros_like(factor), where=factor > 0)
    else:  # shrinkage does not factor: the plain sums, and the formula per entry
        column = None
    return _Similarity(name, float(shrink), alpha, degree, user_weight, factor, column)


# ------------------------------------------------------------------------------------------
# The build: one fused numba kernel (skmm/_graph_kernel.py), rows in parallel
# ------------------------------------------------------------------------------------------

def _top_neighbours(Y, k, sim, batch_size, *, by_column):
    """Each row's top ``k`` neighbours: ``(indptr, cols, vals)`` with int64 ``indptr``.

    Within a row, entries come in rank order, or in column order if ``by_column`` (the CSR
    order of the graph). ``vals`` are the co-counts (int32) or the weighted sums (float64) of
    the kept pairs.
    """
    from . import _graph_kernel as kernel  # numba is imported (0.5-1 s) only for a build

    n_items, n_users = Y.shape
    # One index dtype for every array handed to the kernel: one compiled signature per value
    # dtype (a few seconds each), and int32 halves the index traffic.
    idx = np.int32 if max(Y.nnz, n_items, n_users) < _INT32_MAX else np.int64
    y_indptr = Y.indptr.astype(idx, copy=False)
    y_indices = Y.indices.astype(idx, copy=False)
    # Y.T in CSR (items ascending within each user): the order in which scipy's product added
    # the terms, kept so that weighted sums are bit for bit the former ones.
    right = (np.repeat(sim.column_factor, np.diff(Y.indptr)) if sim.folded else
             np.ones(Y.nnz))
    Yt = sp.csr_matrix((right, Y.indices, Y.indptr), shape=Y.shape).T.tocsr()
    yt_indptr, yt_indices = Yt.indptr.astype(idx, copy=False), Yt.indices.astype(idx, copy=False)
    if sim.weighted:
        left, right, vdtype = sim.user_weight[Y.indices], Yt.data, np.float64
    else:  # counts: the kernel adds ones and reads no weights
        left = right = np.zeros(0)
        vdtype = np.int32
    del Yt

    # Products per row (each of its users contributes its degree): an upper bound on the row's
    # candidates (self included), so a row needs at most min(k, work) output slots.
    user_degree = np.diff(yt_indptr).astype(np.int64)
    work = np.zeros(n_items + 1, np.int64)
    np.cumsum(sp.csr_matrix((np.ones(Y.nnz, np.int64), Y.indices, Y.indptr), shape=Y.shape)
              @ user_degree, out=work[1:])
    slots = np.minimum(np.diff(work), k)
    out_indptr = np.zeros(n_items + 1, np.int64)
    np.cumsum(slots, out=out_indptr[1:])
    out_cols = np.empty(int(out_indptr[-1]), idx)
    out_vals = np.empty(int(out_indptr[-1]), vdtype)
    out_len = np.zeros(n_items, np.int64)
    if k == 0 or n_items == 0:
        return np.zeros(n_items + 1, np.int64), out_cols[:0], out_vals[:0]

    mode, a, b, lam = sim.kernel_key()
    # The candidate factor from a stream per entry of Y.T once the gather from b would miss the
    # cache (skmm/_graph_kernel.py, "Streamed factors"); the same keys either way.
    stream = (mode not in (kernel.MODE_COUNT, kernel.MODE_SUM)
              and n_items * (np.dtype(vdtype).itemsize + b.itemsize) > _cache_bytes())
    # Degrees, the usual factors, are exact in float32 (below 2**24): half the stream.
    narrow = stream and bool(np.array_equal(b.astype(np.float32), b))
    b_stream = (b.astype(np.float32 if narrow else np.float64)[yt_indices] if stream else
                np.zeros(0, np.float32))
    n_threads = _n_threads()
    chunks = _chunks(work, batch_size, n_threads)
    scratch = threading.local()

    def build(chunk):
        # Each worker thread allocates its accumulator, touched list and heap once and reuses
        # them for every task it takes (the kernel leaves the accumulator zeroed).
        bufs = getattr(scratch, "bufs", None)
        if bufs is None:
            scratch.bufs = bufs = (np.zeros(n_items, vdtype), np.empty(n_items + 1, idx),
                                   np.empty(n_items + 1), np.empty(n_items + 1, vdtype),
                                   np.empty(n_items + 1 if stream else 0, b_stream.dtype),
                                   np.empty(k), np.empty(k, idx), np.empty(k, vdtype))
        kernel.top_rows(chunk[0], chunk[1], y_indptr, y_indices, left, yt_indptr, yt_indices,
                        right, sim.weighted, k, mode, a, b, b_stream, lam, by_column, *bufs,
                        out_indptr, out_cols, out_vals, out_len)

    tasks = list(zip(chunks[:-1], chunks[1:]))
    n_threads = min(n_threads, len(tasks))
    if n_threads > 1:
        # The kernel releases the GIL; the pool hands tasks out as threads become free, so a
        # thread slowed by another process takes fewer of them. Rows are independent: the
        # result does not depend on the tasks or the threads.
        with ThreadPoolExecutor(n_threads) as pool:
            for _ in pool.map(build, tasks):
                pass
    else:
        for task in tasks:
            build(task)
    if np.array_equal(out_len, slots):  # every row filled its slots (the usual case)
        return out_indptr, out_cols, out_vals
    indptr = kernel.compact(out_indptr, out_len, out_cols, out_vals)
    nnz = int(indptr[-1])
    # Copies, so that the over-allocated buffers are freed.
    return indptr, out_cols[:nnz].copy(), out_vals[:nnz].copy()


def _chunks(work, batch_size, n_threads):
    """Row boundaries of the build's tasks, int64, ascending from 0 to ``n_items``.

    ``batch_size`` rows per task if given; else tasks of about equal work (products), about
    ``_TASKS_PER_THREAD`` per thread, so that a thread slowed by other processes delays the
    build by one small task, not by a fixed share of the rows.
    """
    n_items = len(work) - 1
    if batch_size is not None:
        bounds = np.arange(0, n_items + int(batch_size), int(batch_size))
    else:
        n_tasks = max(min(n_items, _TASKS_PER_THREAD * n_threads), 1)
        targets = np.linspace(0, work[-1], n_tasks + 1)[1:-1]
        bounds = np.concatenate([[0], np.searchsorted(work, targets), [n_items]])
    return np.unique(np.clip(bounds, 0, n_items)).astype(np.int64)


def _adjacency(indptr, cols, vals, sim, n_items, symmetric, weighting):
    """The float32 CSR graph from column-ordered top-k rows."""
    if weighting == "binary":
        data = None
    elif weighting == "count":
        data = vals
    else:
        data = sim.value(vals, cols, _entry_rows(indptr))
    return _assemble(indptr, cols, data, n_items, symmetric)


def _assemble(indptr, cols, data, n_items, symmetric):
    """CSR matrix from rows already in CSR order; ``data`` None means binary weights."""
    idx = cols.dtype if len(cols) < _INT32_MAX else np.int64
    data = np.ones(len(cols), np.float32) if data is None else data.astype(np.float32)
    A = sp.csr_matrix((data, cols.astype(idx, copy=False), indptr.astype(idx)),
                      shape=(n_items, n_items))
    A.has_sorted_indices = True
    if symmetric:
        # For symmetric similarities the union keeps each pair's single weight.
        A = A.maximum(A.T).tocsr()
        A.sort_indices()
    return A


def _entry_rows(indptr):
    """Row index of every entry of a CSR structure."""
    return np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))


def _cache_bytes():
    """The size of the largest CPU cache (Linux sysfs), or 8 MiB where it cannot be read."""
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as f:
                text = f.read().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            sizes.append(int(text.rstrip("KMG")) * scale)
        except (OSError, ValueError):
            continue
    return max(sizes, default=8 << 20)


def _n_threads():
    """Worker threads for the graph build: torch's setting, so one knob controls both."""
    try:
        import torch

        return max(int(torch.get_num_threads()), 1)
    except ImportError:  # pragma: no cover - torch is a dependency
        return max(len(os.sched_getaffinity(0)), 1)


def _offsets(lengths):
    """Start of each segment when segments of ``lengths`` are laid end to end."""
    out = np.zeros(len(lengths), np.int64)
    np.cumsum(lengths[:-1], out=out[1:])
    return out


# ------------------------------------------------------------------------------------------
# Normalisation
# ------------------------------------------------------------------------------------------

@validate_params(
    {"A": ["sparse matrix"], "normalization": [StrOptions({"sym", "rw"})],
     "dtype": "no_validation", "copy": ["boolean"]},
    prefer_skip_nested_validation=True)
def normalize_adjacency(A, normalization="sym", *, dtype=np.float32, copy=True):
    """Normalise an adjacency matrix for propagation.

    Parameters
    ----------
    A : scipy.sparse matrix of shape (n_items, n_items)
        Non-negative finite edge weights (bool, integer or float); row ``i`` lists the items
        that ``i`` pulls values from.
    normalization : {"sym", "rw"}, default="sym"
        ``"sym"`` is ``D^-1/2 A D^-1/2`` with ``D`` the row sums of ``A`` on both sides (the
        paper's rule, also for a directed graph); ``"rw"`` is ``D^-1 A``, row-stochastic, so a
        propagated value is a weighted average of its neighbours' values.
    dtype : numpy floating dtype, default=np.float32
        The dtype of the result (the degrees are computed in float64 either way).
    copy : bool, default=True
        If False, the result shares ``A``'s index arrays (``indices``, ``indptr``) when ``A`` is
        a CSR matrix, instead of copying them: less memory on a large graph, but changing the
        structure of one then changes the other.

    Returns
    -------
    P : scipy.sparse.csr_matrix of dtype ``dtype``
        Rows of items without edges stay zero.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from skmm.graph import normalize_adjacency
    >>> A = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0], [0, 0, 0]]))
    >>> normalize_adjacency(A, "rw").toarray()
    array([[0. , 0.5, 0.5],
           [1. , 0. , 0. ],
           [0. , 0. , 0. ]], dtype=float32)
    """
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be a numpy floating dtype, got {dtype!r}.") from exc
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating dtype (float32 or float64), got {dtype}; an "
                         f"integer result would truncate every weight to 0.")
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square (n_items, n_items) adjacency matrix, got shape "
                         f"{A.shape}.")
    if A.dtype.kind not in "biuf":
        raise TypeError(f"A must hold real edge weights (bool, int or float), got dtype "
                        f"{A.dtype}.")
    A = sp.csr_matrix(A)
    weights = A.data[:A.nnz]
    if weights.dtype.kind == "f" and not np.isfinite(weights).all():
        raise ValueError("A contains NaN or infinite edge weights.")
    if weights.dtype.kind in "if" and (weights < 0).any():
        raise ValueError("A contains negative edge weights; normalisation needs non-negative "
                         "weights.")
    n_rows = A.shape[0]
    lengths = np.diff(A.indptr)
    deg = np.zeros(n_rows)
    nonempty = lengths > 0
    if A.nnz:
        deg[nonempty] = np.add.reduceat(A.data[:A.nnz].astype(np.float64),
                                        A.indptr[:-1][nonempty])
    inv = np.zeros_like(deg)
    nz = deg > 0
    inv[nz] = deg[nz] ** -0.5 if normalization == "sym" else 1.0 / deg[nz]
    data = np.empty(A.nnz, dtype)
    # In chunks of about a million entries, so that the float64 temporaries stay in cache
    # instead of costing a fresh 300 MB array each on a large graph (2.1 s -> 0.3 s at 38M).
    bounds = np.searchsorted(A.indptr, np.arange(0, A.nnz, 1 << 20), side="right") - 1
    bounds = np.unique(np.append(bounds, n_rows))
    for r0, r1 in zip(bounds[:-1], bounds[1:]):
        s, e = A.indptr[r0], A.indptr[r1]
        chunk = A.data[s:e].astype(np.float64)
        chunk *= np.repeat(inv[r0:r1], lengths[r0:r1])
        if normalization == "sym":
            chunk *= inv[A.indices[s:e]]
        data[s:e] = chunk
    if copy:
        return sp.csr_matrix((data, A.indices.copy(), A.indptr.copy()), shape=A.shape)
    P = sp.csr_matrix(A.shape, dtype=dtype)  # set directly: the constructor may re-cast
    P.data, P.indices, P.indptr = data, A.indices, A.indptr
    return P
