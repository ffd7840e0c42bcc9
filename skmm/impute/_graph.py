"""GraphImputer: the training-free graph imputers of the FeatProp family, in one estimator."""

import warnings
from numbers import Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from .._validation import FillValue, Int, check_interactions, resolve_device
from ..diffusion import (neighbour_mean, paper_diffusion_operator, paper_graph, rewired_graph,
                         transition_matrix)
from ..graph import SIMILARITIES, cointeraction_graph, normalize_adjacency
from ..propagation import propagate_features
from ._base import FILL_STRATEGIES, BaseTransductiveImputer, fill_row

_DTYPES = {"float32": np.float32, "float64": np.float64}
METHODS = ("neighmean", "multihop", "ppr", "heat")
# The official PPR / heat operator is exact but costs O(n_items**2) (paper_diffusion_operator).
_PAPER_MAX_ITEMS = 100_000


class GraphImputer(BaseTransductiveImputer):
    """Impute missing item features from the co-interaction graph: NeighMean, MultiHop, PPR, heat.

    The training-free graph imputers of the FeatProp authors (Malitesta et al., CIKM 2024 and
    TKDE) in one estimator. All four link each item to the ``n_neighbors`` items most similar
    to it by their users (:func:`~skmm.graph.cointeraction_graph`) and fill a missing entry
    from the neighbours' observed values of that column:

    * ``"neighmean"``: one hop, the mean of the neighbours that observe the entry
      (:func:`skmm.diffusion.neighbour_mean`); ``n_iter`` does not apply.
    * ``"multihop"``: feature propagation (= :class:`FeatPropImputer`): ``n_iter`` steps of
      ``Z <- D^-1/2 A D^-1/2 Z`` with the observed entries reset after each.
    * ``"ppr"`` and ``"heat"``: the same reset propagation over a diffusion-rewired graph. For
      each item that misses something, its row of the diffusion operator
      ``T = sum_l theta_l H^l`` over the transition matrix ``H = D^-1 (A + I)``
      (``theta_l = alpha (1 - alpha)^l`` for personalised PageRank, ``e^-t t^l / l!`` for the
      heat kernel) is computed as a pruned, truncated sparse series, and its ``n_neighbors``
      largest entries other than the item itself are kept and normalised to sum 1
      (:func:`skmm.diffusion.rewired_graph`): every imputation is a convex combination of
      observed values. Nothing of size ``n_items x n_items`` is formed.

    Observed entries are never changed. Masks are entry-wise: each column is imputed from the
    items that observe it. Entries that nothing observed reaches take ``fallback``.

    **Why one class.** The four methods share everything but the operator: the same graph,
    the same fit / transform contract (the transductive result of the fitted items, the
    new-item rule, the fallback), the same fitted attributes. One estimator with a ``method``
    parameter lets :class:`~sklearn.model_selection.GridSearchCV` search the method like any
    other hyper-parameter (``{"method": ["neighmean", "multihop", "ppr"], "n_neighbors":
    [10, 20]}``), and a pipeline switch between them by ``set_params``.

    Read more in the :ref:`User Guide <featprop>`.

    Parameters
    ----------
    method : {"neighmean", "multihop", "ppr", "heat"}, default="multihop"
        The imputation rule (see above).
    n_neighbors : int, default=20
        Graph edges kept per item: the items most similar to it, never itself, never an item
        it shares no user with; ties go to the smaller item index. For ``"ppr"`` and
        ``"heat"`` also the entries kept per row of the diffusion operator. With
        ``paper_compat=True`` it is the authors' ``top_k``, the item itself included (their
        ``top_k = K`` is ``n_neighbors = K - 1`` otherwise). For items seen without
        interactions at :meth:`transform` (new items), also the number of content neighbours
        averaged (see Notes).
    similarity : str, default="count"
        How neighbours are ranked: ``"count"`` (shared users, the paper), ``"cosine"``,
        ``"asymmetric_cosine"``, ``"jaccard"``, ``"tfidf"`` or ``"bm25"``, as in
        :func:`~skmm.graph.cointeraction_graph`. Edges weigh 1 whatever the ranking.
    symmetric : bool, default=False
        Keep the union of both edge directions instead of the paper's directed top-k graph.
    n_iter : int, default=3
        Propagation steps (the authors' layers) of ``"multihop"``, ``"ppr"`` and ``"heat"``;
        0 leaves every missing entry to ``fallback``. Not used by ``"neighmean"``. The default
        is the FeatProp paper's; the authors' command line defaults to 1.
    alpha : float, default=0.1
        Teleport (restart) probability of ``"ppr"``, in (0, 1]; the authors' value, never
        varied by them.
    t : float, default=5.0
        Diffusion time of ``"heat"``, >= 0; the authors' value, never varied by them.
    tol : float, default=1e-4
        Truncation error of the diffusion series of ``"ppr"`` and ``"heat"``: the first ``J``
        terms are kept, ``J`` the fewest with ``sum_{l >= J} theta_l <= tol``
        (:func:`skmm.diffusion.n_series_terms`; ``J = 88`` for PPR at ``alpha=0.1``, 16 for
        heat at ``t=5``).
    prune_tol : float, default=1e-4
        Pruning threshold of the sparse rows of the diffusion (``"ppr"``, ``"heat"``): an
        entry whose remaining contribution to the series is below it is dropped. Bounds the
        work, independently of ``n_items``; 0 computes the truncated rows exactly (their size
        may then reach ``n_items``). See :func:`skmm.diffusion.rewired_graph`.
    rank : {"value", "relative"}, default="value"
        How ``"ppr"`` and ``"heat"`` pick the entries kept per row: the largest values of
        ``T`` (GDC's rule, applied per row) or the largest relative to the diffusion mass each
        item receives from all items, which corrects for popular items
        (:func:`skmm.diffusion.rewired_graph`).
    paper_compat : bool, default=False
        Apply the official rules instead, for parity with the published numbers, where the
        spec says they misbehave: the authors' graph (:func:`skmm.diffusion.paper_graph`:
        ``n_neighbors`` entries per row, the item itself included, padded with items sharing
        no user, ties to the smaller index; requires ``similarity="count"``,
        ``symmetric=False`` and ``n_neighbors <= n_items``); ``"neighmean"`` divides by
        ``n_neighbors``, counting the item itself and missing neighbours as zeros;
        ``"multihop"`` is FeatProp on that graph; ``"ppr"`` and ``"heat"`` use the official
        operator, the column top-k of ``T`` on ``H = (A + I) / (top_k + 1)``, column-normalised
        and applied as ``T Z`` (:func:`skmm.diffusion.paper_diffusion_operator`, computed to
        1e-10 in float64 and propagated in float64 as the official code does; up to 1e5
        items). As in the official code there is no fallback: a missing entry no observed
        value reaches is 0. ``tol``, ``prune_tol``, ``rank`` and ``dtype`` do not apply to
        the official PPR and heat.
    fallback : {"mean", "constant"}, default="mean"
        The fill of missing entries that no observed value reaches (isolated items, far
        components), and of all missing entries when ``y`` is None: the column mean of the
        observed values, or ``fill_value``. It is the fill of :class:`BaselineImputer` with
        ``strategy=fallback``.
    fill_value : float, default=0.0
        The value of ``fallback="constant"``; NaN leaves those entries missing.
    device : str or torch.device, default="auto"
        Where the propagation runs: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``
        or ``"cuda:N"``. NeighMean (one sparse product) and the rows of the rewired graph are
        computed on the CPU. Fitted attributes are always CPU arrays.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the imputation arithmetic. The output keeps the dtype of ``X``.

    Attributes
    ----------
    graph_ : scipy.sparse.csr_matrix of shape (n_items, n_items) or None
        The top-k co-interaction adjacency of the fitted items (the authors' graph with
        ``paper_compat=True``), before any normalisation; None when fitted without ``y``.
    statistics_ : ndarray of shape (n_features,)
        Column means of the observed values (float64), the ``"mean"`` fallback.
    n_donors_ : int
        Fitted items averaged for a new item at :meth:`transform`: ``min(n_neighbors,
        n_items)``, fixed at fit.
    n_propagated_ : int
        Missing entries of the fitted ``X`` filled by the graph method.
    n_fallback_ : int
        Missing entries of the fitted ``X`` that took the fallback.
    device_ : str
        The device the propagation ran on.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    See Also
    --------
    FeatPropImputer : ``method="multihop"``, with out-of-memory input and output.
    BaselineImputer : the paper's zeros / mean / random baselines.
    skmm.diffusion : the operators, as functions.

    Notes
    -----
    **fit_transform and transform.** As for :class:`FeatPropImputer`: ``fit_transform(X, y)``
    returns the transductive result (the graph imputation of the fitted items); the graph
    needs interactions, which only :meth:`fit` receives, so :meth:`transform` of the very
    matrix seen in ``fit`` (same shape, dtype and missing mask, bit-identical observed
    values) returns that result, and any other rows are new items without interactions: their
    missing entries are the mean of the ``n_donors_`` nearest fitted items by NaN-aware
    Euclidean distance over the entries the new item has (the fitted items' own missing
    entries imputed first), as :class:`~sklearn.impute.KNNImputer` does; a new item with no
    observed entry at all takes ``fallback``. :meth:`transform` never changes the estimator.

    **Without y** there is no graph and every missing entry takes ``fallback``: a
    ``UserWarning`` says so. Interaction values are read as presence: any non-zero entry of
    ``y`` is one interaction.

    **In memory.** ``X`` and the result are held in memory; there is no ``out_file`` or
    memory-mapped path as in :class:`FeatPropImputer`, which is the estimator to use for
    ``method="multihop"`` on catalogues larger than memory. With default parameters,
    ``method="multihop"`` gives the same result as ``FeatPropImputer()``.

    **Accuracy of PPR and heat.** The kept rows are lower bounds of the rows of ``T``: the
    mass they miss is ``tol`` (truncation) plus what pruning dropped, known exactly per row
    (``info.error`` of :func:`~skmm.diffusion.rewired_graph`). When no cut separates
    near-equal entries, a row's weights are within ``2 e / m`` in l1 of those of the exact
    ``T`` (``e`` the missed mass, ``m`` the row's mass outside the diagonal), and ``n_iter``
    reset steps within ``n_iter`` times that of the exact imputation, in units of the largest
    observed magnitude.

    References
    ----------
    .. [1] D. Malitesta, E. Rossi, C. Pomo, T. Di Noia, F. D. Malliaros. "Do We Really Need to
       Drop Items with Missing Modalities in Multimodal Recommendation?". CIKM 2024,
       arXiv:2408.11767.
    .. [2] D. Malitesta et al. "Training-free Graph-based Imputation of Missing Modalities in
       Multimodal Recommendation". IEEE TKDE, arXiv:2602.17354.
    .. [3] J. Gasteiger, S. Weissenberger, S. Guennemann. "Diffusion Improves Graph
       Learning". NeurIPS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skmm import GraphImputer
    >>> X = np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, 4.0], [5.0, np.nan]])
    >>> Y = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 1], [0, 1]]))  # 4 items x 2 users
    >>> GraphImputer(method="neighmean", n_neighbors=2, device="cpu").fit_transform(X, Y)
    array([[1., 2.],
           [2., 3.],
           [3., 4.],
           [5., 4.]])
    >>> GraphImputer(method="ppr", n_neighbors=2, device="cpu").fit_transform(X, Y).round(3)
    array([[1.   , 2.   ],
           [1.981, 2.981],
           [3.   , 4.   ],
           [5.   , 3.419]])
    """

    _parameter_constraints: dict = {
        **BaseTransductiveImputer._parameter_constraints,
        "method": [StrOptions(set(METHODS))],
        "n_neighbors": [Int(1)],
        "similarity": [StrOptions(set(SIMILARITIES))],
        "symmetric": ["boolean"],
        "n_iter": [Int(0)],
        "alpha": [Interval(Real, 0, 1, closed="right")],
        "t": [Interval(Real, 0, None, closed="left")],
        "tol": [Interval(Real, 0, 1, closed="neither")],
        "prune_tol": [Interval(Real, 0, None, closed="left")],
        "rank": [StrOptions({"value", "relative"})],
        "paper_compat": ["boolean"],
        "fallback": [StrOptions(set(FILL_STRATEGIES))],
        "fill_value": [FillValue()],
        "device": [str, torch.device],
        "dtype": [StrOptions(set(_DTYPES))],
    }

    def __init__(self, method="multihop", n_neighbors=20, similarity="count", symmetric=False,
                 n_iter=3, alpha=0.1, t=5.0, tol=1e-4, prune_tol=1e-4, rank="value",
                 paper_compat=False, fallback="mean", fill_value=0.0, device="auto",
                 dtype="float32"):
        self.method = method
        self.n_neighbors = n_neighbors
        self.similarity = similarity
        self.symmetric = symmetric
        self.n_iter = n_iter
        self.alpha = alpha
        self.t = t
        self.tol = tol
        self.prune_tol = prune_tol
        self.rank = rank
        self.paper_compat = paper_compat
        self.fallback = fallback
        self.fill_value = fill_value
        self.device = device
        self.dtype = dtype

    def _check_compat(self, n_items):
        if not self.paper_compat:
            return
        if self.similarity != "count":
            raise ValueError(f"paper_compat=True builds the authors' co-count graph; "
                             f"similarity must be 'count', got {self.similarity!r}.")
        if self.symmetric:
            raise ValueError("paper_compat=True builds the authors' directed graph; "
                             "symmetric must be False.")
        if self.n_neighbors > n_items:
            raise ValueError(f"paper_compat=True takes n_neighbors as the authors' top_k "
                             f"(the item itself included), which needs n_neighbors <= "
                             f"n_items; got n_neighbors={self.n_neighbors} for {n_items} "
                             f"items.")
        if self.method in ("ppr", "heat") and n_items > _PAPER_MAX_ITEMS:
            raise ValueError(f"paper_compat=True computes the official column top-k "
                             f"operator, whose cost grows as n_items**2: {n_items} items "
                             f"exceed {_PAPER_MAX_ITEMS}. Use paper_compat=False (the row "
                             f"top-k form) on catalogues this large.")

    def _fit(self, X, y, prepared=None):
        """Fit; ``prepared``: ``(graph, (P, dtype))`` already built for these parameters and
        ``y`` (:class:`GraphImputerCV` hands over those of the chosen setting; ``P`` needs
        the rows of ``X`` with a missing entry, see :meth:`_operator`), else None."""
        X = self._validate_X(X, reset=True)
        n_items, n_features = X.shape
        device = resolve_device(self.device)
        dtype = _DTYPES[self.dtype]
        if y is None:
            warnings.warn("GraphImputer got no y: without interactions there is no graph, "
                          "so every missing entry takes the fallback (mean imputation). Pass "
                          "the (n_items, n_users) interaction matrix as y (in a Pipeline: "
                          "pipeline.fit(X, y)).", UserWarning, stacklevel=3)
        self._check_compat(n_items)
        Y = None if y is None else check_interactions(y, n_items, name="y")
        out = np.empty(X.shape, X.dtype)
        scan = self._scan(X, copy_to=out)  # ``out`` is now a copy of X: X is never written
        work_dtype = (np.float64 if self.paper_compat and self.method in ("ppr", "heat")
                      else dtype)
        if Y is not None and scan.rows.size and scan.absmax.max(initial=0) > np.finfo(
                work_dtype).max:
            raise ValueError(f"X has values up to {scan.absmax.max():.3g}, beyond the range of "
                             f"dtype={self.dtype!r} in which they would be imputed; use "
                             f"dtype='float64'.")
        fill = fill_row(self.fallback, self.fill_value, scan.means, X.dtype)
        graph = operator = None
        if prepared is not None and Y is not None:
            graph, operator = prepared
        elif Y is not None:
            graph = (paper_graph(Y, top_k=self.n_neighbors) if self.paper_compat else
                     cointeraction_graph(Y, self.n_neighbors, similarity=self.similarity,
                                         symmetric=self.symmetric))
        del Y
        rows = scan.rows
        missing_r = np.isnan(out[rows])
        n_missing = int(np.count_nonzero(missing_r))
        block = out[rows]
        np.copyto(block, fill, where=missing_r)
        n_prop = 0
        if graph is not None and rows.size:
            # ``values`` and ``reached`` are on ``rows`` too: the rows with a missing entry.
            _, values, reached = self._impute(graph, X, device, dtype, operator)
            # The official rules have no fallback: their value stands wherever it is.
            take = missing_r if self.paper_compat else missing_r & reached
            if not np.isfinite(values[take]).all():
                raise ValueError(f"the imputation overflowed dtype={self.dtype!r} (X's values "
                                 f"are too large for it); use dtype='float64'.")
            np.copyto(block, values, where=take, casting="unsafe")
            n_prop = int(np.count_nonzero(take))
        out[rows] = block
        self.graph_ = graph
        self.statistics_ = scan.means
        self.n_propagated_ = n_prop
        self.n_fallback_ = n_missing - n_prop
        self.n_donors_ = min(self.n_neighbors, n_items)
        self.device_ = str(torch.device("cpu") if self.method == "neighmean" else device)
        self._fit_X = out
        # What identifies the fitted matrix at ``transform``: its missing mask (the values are
        # those of the result at the observed entries).
        self._fit_rows, self._fit_packed = rows, scan.packed
        self._fill = fill

    def _impute(self, A, X, device, dtype, operator=None):
        """``(rows, values, reached)`` of the method on graph ``A``: the rows with a missing
        entry, their imputed values (observed entries as given) and which entries an observed
        value reached."""
        if self.method == "neighmean":
            return neighbour_mean(A, X, paper_compat=self.paper_compat, dtype=dtype)
        missing = np.isnan(X)
        P, dtype = (self._operator(A, np.flatnonzero(missing.any(axis=1)), device, dtype)
                    if operator is None else operator)
        return propagate_features(P, X, missing, self.n_iter, device=device, dtype=dtype)

    def _operator(self, A, rows, device, dtype):
        """``(P, dtype)``: the propagation matrix of ``"multihop"``, ``"ppr"`` or ``"heat"`` on
        graph ``A`` for imputing the rows ``rows``, and the precision to propagate in.

        Only the rows ``rows`` of ``P`` are used. They do not depend on which other rows are
        given: each rewired row is computed from its own seed alone, so a superset of rows
        gives the same rows bit for bit (:class:`GraphImputerCV` computes ``P`` once for the
        rows of every hidden copy)."""
        method, compat = self.method, self.paper_compat
        if method == "multihop":
            if compat:
                # The official FeatProp step zeroes the diagonal before normalising.
                A = A.tolil()
                A.setdiag(0)
                A = A.tocsr()
                A.eliminate_zeros()
            P = normalize_adjacency(A, "sym", dtype=dtype, copy=False)
        elif compat:
            P, _ = paper_diffusion_operator(A, kernel=method, alpha=self.alpha, t=self.t,
                                            device=device, max_items=_PAPER_MAX_ITEMS)
            dtype = np.float64  # the official operator and propagation are float64
        else:
            P, _ = rewired_graph(transition_matrix(A), rows, kernel=method, alpha=self.alpha,
                                 t=self.t, n_neighbors=self.n_neighbors, tol=self.tol,
                                 prune_tol=self.prune_tol, rank=self.rank)
        return P, dtype
