"""FeatPropImputer: missing modality features by propagation over the co-interaction graph."""

import hashlib
import time
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.impute import KNNImputer
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._validation import check_interactions, interaction_target_tags, resolve_device
from ..graph import cointeraction_graph, normalize_adjacency
from ..propagation import propagate_features
from ._base import check_no_empty_columns, validate_features

_DTYPES = {"float32": np.float32, "float64": np.float64}


class FeatPropImputer(TransformerMixin, BaseEstimator):
    """Impute missing item features by feature propagation over the co-interaction graph.

    FeatProp (Malitesta et al., 2024) links each item to the ``n_neighbors`` items that share
    the most users with it, normalises that graph, and diffuses the observed feature values into
    the missing ones for ``n_iter`` steps, resetting the observed values after every step.
    Observed entries are never changed. Masks are entry-wise: one modality block of an item may
    be missing while another is present, and each column propagates with its own known rows.

    Read more in the :ref:`User Guide <featprop>`.

    Parameters
    ----------
    n_neighbors : int, default=20
        Graph edges kept per item: the items with the largest co-interaction counts. Pairs with
        no common user are never linked; ties at the cut go to the smaller item index. For items
        seen without interactions at :meth:`transform` (new items) it is also the number of
        content neighbours averaged (see Notes).
    n_iter : int, default=3
        Propagation steps. 0 leaves every missing entry to ``fallback``.
    normalization : {"sym", "rw"}, default="sym"
        ``"sym"``: ``D^-1/2 A D^-1/2`` with ``D`` the row sums of ``A`` (the paper).
        ``"rw"``: ``D^-1 A``, so imputed values are weighted averages of neighbours' values.
    symmetric : bool, default=False
        Keep the union of both edge directions instead of the paper's directed top-k graph.
    weighting : {"binary", "count"}, default="binary"
        Edge weights: 1 for every kept edge (the paper) or the co-interaction count.
    fallback : {"mean", "zeros", "nan"}, default="mean"
        Value for missing entries that no observed value reaches within ``n_iter`` steps
        (isolated items, far components) and for all missing entries when ``y`` is None:
        the column mean of the observed values, zero, or left as NaN.
    device : str or torch.device, default="auto"
        Where the propagation runs: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``
        or ``"cuda:N"``. Fitted attributes are always CPU arrays.
    batch_size : int, default=None
        Item rows whose co-interaction counts are computed at once while building the graph;
        bounds its memory. None sizes blocks automatically. The result does not depend on it.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the propagation arithmetic. The output keeps the dtype of ``X``.
    verbose : bool, default=False
        Print the time spent building the graph and propagating.

    Attributes
    ----------
    graph_ : scipy.sparse.csr_matrix of shape (n_items, n_items) or None
        The top-k co-interaction adjacency (before normalisation) of the fitted items; None
        when fitted without ``y``.
    statistics_ : ndarray of shape (n_features,)
        Column means of the observed values, the ``"mean"`` fallback.
    n_propagated_ : int
        Missing entries of the fitted ``X`` filled by propagation.
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
    BaselineImputer : the paper's zeros / mean / random baselines.
    sklearn.impute.KNNImputer : imputation from the nearest items in feature space.

    Notes
    -----
    **Fitted items and new items.** Propagation needs interactions, which only :meth:`fit`
    receives. :meth:`transform` therefore returns the propagated result when it is given the
    very matrix seen in ``fit`` (same shape, values and missing mask: the transductive case,
    and what ``fit_transform`` returns). Any other rows are treated as new items without
    interactions: their missing entries are the mean of the ``n_neighbors`` nearest fitted items
    by NaN-aware Euclidean distance over the entries the new item has (the fitted items' own
    missing entries imputed first), as :class:`~sklearn.impute.KNNImputer` does; a new item with
    no observed entry at all takes ``fallback``. In a
    ``Pipeline([("impute", FeatPropImputer()), ("model", ...)])`` the model is thus trained on
    propagated features and scored on new items imputed from their content.

    Interaction values are read as presence: any non-zero entry of ``y`` is one interaction.

    References
    ----------
    .. [1] D. Malitesta, E. Rossi, C. Pomo, F. D. Malliaros, T. Di Noia. "Dealing with Missing
       Modalities in Multimodal Recommendation: a Feature Propagation-based Approach".
       arXiv:2403.19841, 2024.
    .. [2] E. Rossi et al. "On the Unreasonable Effectiveness of Feature Propagation in Learning
       on Graphs with Missing Node Features". LoG 2022.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skmm import FeatPropImputer
    >>> X = np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, 4.0], [5.0, np.nan]])
    >>> Y = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 1], [0, 1]]))  # 4 items x 2 users
    >>> imputer = FeatPropImputer(n_neighbors=2, normalization="rw", device="cpu")
    >>> imputer.fit_transform(X, Y)
    array([[1. , 2. ],
           [2. , 3. ],
           [3. , 4. ],
           [5. , 3.5]])
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "n_iter": [Interval(Integral, 0, None, closed="left")],
        "normalization": [StrOptions({"sym", "rw"})],
        "symmetric": ["boolean"],
        "weighting": [StrOptions({"binary", "count"})],
        "fallback": [StrOptions({"mean", "zeros", "nan"})],
        "device": [str, torch.device],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "dtype": [StrOptions(set(_DTYPES))],
        "verbose": ["verbose"],
    }

    def __init__(self, n_neighbors=20, n_iter=3, normalization="sym", symmetric=False,
                 weighting="binary", fallback="mean", device="auto", batch_size=None,
                 dtype="float32", verbose=False):
        self.n_neighbors = n_neighbors
        self.n_iter = n_iter
        self.normalization = normalization
        self.symmetric = symmetric
        self.weighting = weighting
        self.fallback = fallback
        self.device = device
        self.batch_size = batch_size
        self.dtype = dtype
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build the graph from ``y`` and impute the missing entries of ``X``.

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            Item features, ``np.nan`` (or the mask) marking missing entries.
        y : {array-like, sparse matrix} of shape (n_items, n_users), default=None
            Interactions, items as rows. None: no graph, every missing entry takes
            ``fallback``.

        Returns
        -------
        self : FeatPropImputer
            The fitted imputer.
        """
        self._fit(X, y)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        """Fit, then return ``X`` with its missing entries imputed.

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            Item features, ``np.nan`` (or the mask) marking missing entries.
        y : {array-like, sparse matrix} of shape (n_items, n_users), default=None
            Interactions, items as rows.
        **fit_params : dict
            Not used; present for API consistency.

        Returns
        -------
        X_imputed : ndarray of shape (n_items, n_features)
            ``X`` with missing entries filled; observed entries unchanged.
        """
        self.fit(X, y)
        return self._fit_X.copy()

    def _fit(self, X, y):
        X, missing = validate_features(self, X, reset=True)
        check_no_empty_columns(missing)
        device = resolve_device(self.device)
        dtype = _DTYPES[self.dtype]
        self.statistics_ = np.nanmean(np.where(missing, np.nan, X).astype(np.float64), axis=0) \
            if missing.any() else X.mean(axis=0, dtype=np.float64)

        completed = X.copy()
        n_prop = 0
        self.graph_ = None
        if y is not None:
            Y = check_interactions(y, X.shape[0], name="y")
            tic = time.perf_counter()
            self.graph_ = cointeraction_graph(Y, self.n_neighbors, symmetric=self.symmetric,
                                              weighting=self.weighting,
                                              batch_size=self.batch_size)
            build = time.perf_counter() - tic
            tic = time.perf_counter()
            P = normalize_adjacency(self.graph_, self.normalization, dtype=dtype)
            rows, values, reached = propagate_features(P, X, missing, self.n_iter,
                                                       device=device, dtype=dtype)
            fill = missing[rows] & reached
            block = completed[rows]
            block[fill] = values[fill]
            completed[rows] = block
            n_prop = int(fill.sum())
            if self.verbose:
                print(f"[FeatPropImputer] graph: {self.graph_.nnz} edges in {build:.2f}s; "
                      f"propagation of {rows.size} rows x {self.n_iter} steps in "
                      f"{time.perf_counter() - tic:.2f}s on {device}")
            pending = np.zeros_like(missing)
            pending[rows] = missing[rows] & ~reached
        else:
            pending = missing
        self._apply_fallback(completed, pending)
        self.n_propagated_ = n_prop
        self.n_fallback_ = int(pending.sum())
        self.device_ = str(device)

        self._fit_X = completed
        self._fit_fingerprint = _fingerprint(X, missing)
        # Donors for new items: the fitted items, completed.
        self._new_item_imputer = KNNImputer(
            n_neighbors=min(self.n_neighbors, X.shape[0]), keep_empty_features=True
        ).fit(completed)
        return completed

    def _apply_fallback(self, X, pending):
        if not pending.any():
            return
        if self.fallback == "mean":
            fill = np.broadcast_to(self.statistics_.astype(X.dtype), X.shape)
        elif self.fallback == "zeros":
            fill = np.zeros((1, X.shape[1]), X.dtype).repeat(X.shape[0], axis=0)
        else:
            fill = np.full((1, X.shape[1]), np.nan, X.dtype).repeat(X.shape[0], axis=0)
        X[pending] = fill[pending]

    def transform(self, X):
        """Impute the missing entries of ``X``.

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            The fitted items (returns the propagated result) or new items (imputed from their
            nearest fitted items, see Notes).

        Returns
        -------
        X_imputed : ndarray of shape (n_items, n_features)
            ``X`` with missing entries filled; observed entries unchanged.
        """
        check_is_fitted(self)
        X, missing = validate_features(self, X, reset=False)
        if _fingerprint(X, missing) == self._fit_fingerprint:
            return self._fit_X.copy()
        out = np.array(X, copy=True)
        if not missing.any():
            return out
        empty = missing.all(axis=1)
        partial = np.flatnonzero(missing.any(axis=1) & ~empty)
        if partial.size:
            donors = self._new_item_imputer.transform(X[partial].astype(np.float64))
            block = out[partial]
            block[missing[partial]] = donors[missing[partial]]
            out[partial] = block
        pending = np.zeros_like(missing)
        pending[empty] = True
        self._apply_fallback(out, pending)
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return interaction_target_tags(tags, required=False)


def _fingerprint(X, missing):
    """A digest of ``X``'s shape, dtype, missing mask and observed values."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((X.shape, X.dtype.str)).encode())
    h.update(np.packbits(missing).tobytes())
    step = max(1, (1 << 22) // max(X.shape[1], 1))
    for start in range(0, X.shape[0], step):
        sl = slice(start, start + step)
        h.update(np.ascontiguousarray(np.where(missing[sl], 0, X[sl])).tobytes())
    return h.hexdigest()
