"""FeatPropImputer: missing modality features by propagation over the co-interaction graph."""

import os
import time
import warnings

import numpy as np
import torch
from sklearn.utils._param_validation import StrOptions

from .._blockio import (_IO_BYTES, ResultWriter, RowBlocks, check_out_file,
                        file_identity, open_result, unpack_columns)
from .._validation import FillValue, Int, check_interactions, resolve_device
from ..graph import cointeraction_graph, normalize_adjacency
from ..propagation import ColumnPropagator, column_groups, propagate_groups
from ._base import FILL_STRATEGIES, BaseTransductiveImputer, fill_row

_DTYPES = {"float32": np.float32, "float64": np.float64}


class FeatPropImputer(BaseTransductiveImputer):
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
    fallback : {"mean", "constant"}, default="mean"
        The fill policy of missing entries that no observed value reaches within ``n_iter``
        steps (isolated items, far components), and of all missing entries when ``y`` is
        None: the column mean of the observed values, or ``fill_value``. It is the fill of
        :class:`BaselineImputer` with ``strategy=fallback``.
    fill_value : float, default=0.0
        The value of ``fallback="constant"``; NaN leaves those entries missing.
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
    column_batch_size : int, default=None
        Feature columns propagated together. Columns propagate independently, so they are
        imputed in groups: the graph side is prepared once, and one group at a time holds
        working arrays of about ``4 * n_missing_rows + n_source_rows`` rows of its width
        (``n_source_rows``: the observed items linked to a missing one). None picks the fewest
        equal groups whose arrays fit in about 1 GiB. With a memory-mapped ``X`` each group is
        one more read of the observed rows from the file. An in-memory and a memory-mapped
        ``X`` give bit-identical results for the same value.
    out_file : str or path-like, default=None
        Path of a ``.npy`` file to write the imputed matrix to, instead of keeping it in
        memory (see Notes, *Catalogues larger than memory*). :meth:`fit` writes it;
        :meth:`fit_transform`, and :meth:`transform` of the fitted matrix, return it opened
        read-only as a :class:`numpy.memmap`. The path must end in ``.npy``, must not be the
        file ``X`` is read from, and an existing file is replaced only with
        ``overwrite=True``. The fitted estimator refers to the file: it pickles its path (and
        the file's identity), not its content; if the file is replaced or changed after the
        fit, the estimator refuses to use it instead of returning another result. None: the
        result is kept in memory.
    overwrite : bool, default=False
        Allow :meth:`fit` to replace an existing ``out_file``.

    Attributes
    ----------
    graph_ : scipy.sparse.csr_matrix of shape (n_items, n_items) or None
        The top-k co-interaction adjacency (before normalisation) of the fitted items; None
        when fitted without ``y``.
    statistics_ : ndarray of shape (n_features,)
        Column means of the observed values (float64), the ``"mean"`` fallback.
    n_donors_ : int
        Fitted items averaged for a new item at :meth:`transform`: ``min(n_neighbors,
        n_items)``, fixed at fit.
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
    **fit_transform and transform.** As for scikit-learn's
    :class:`~sklearn.preprocessing.TargetEncoder`, ``fit_transform(X, y)`` is not
    ``fit(X, y).transform(X_other)``: propagation needs interactions, which only :meth:`fit`
    receives, so ``fit_transform`` returns the transductive result (the propagation over the
    fitted items) and :meth:`transform` applies the new-item rule below, fixed at fit. The one
    exception is the very matrix seen in ``fit`` (same shape, dtype and missing mask,
    bit-identical observed values, compared exactly in row blocks): ``transform`` returns the
    propagated result for it, so that a ``Pipeline([("impute", FeatPropImputer()),
    ("model", VBPRRecommender())])`` scores a warm-start model on the features it was trained
    on. Any other rows are treated as new items without interactions:
    their missing entries are the mean of the ``n_donors_`` nearest fitted items by
    NaN-aware Euclidean distance over the entries the new item has (the fitted items' own
    missing entries imputed first), as :class:`~sklearn.impute.KNNImputer` does; a new item
    with no observed entry at all takes ``fallback``. :meth:`transform` never changes the
    estimator, so its result depends only on the fit, not on earlier calls. In a
    ``Pipeline([("impute", FeatPropImputer()), ("model", ...)])`` the model is thus trained on
    propagated features and scored on new items imputed from their content.

    **Without y** there is no graph and every missing entry takes ``fallback``: a
    ``UserWarning`` says so, since a Pipeline that does not pass ``y`` to the imputer would
    otherwise silently turn FeatProp into mean imputation.

    Interaction values are read as presence: any non-zero entry of ``y`` is one interaction.

    **Catalogues larger than memory.** ``X`` may be a :class:`numpy.memmap`, such as
    ``np.load("X.npy", mmap_mode="r")``: it is read in blocks of rows, never loaded whole (no
    validation step copies it; infinite values are looked for block by block). With
    ``out_file`` the result goes to a file too, written in one sequential pass, so that peak
    memory is bounded by the interaction graph, one column group's propagation arrays
    (``column_batch_size``) and a few blocks of rows, whatever the size of ``X``. The pages
    of the mapped file that a block used are unmapped after it, so they do not accumulate in
    the process's resident memory. New items given to :meth:`transform` are imputed in memory.

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
        **BaseTransductiveImputer._parameter_constraints,
        "n_neighbors": [Int(1)],
        "n_iter": [Int(0)],
        "normalization": [StrOptions({"sym", "rw"})],
        "symmetric": ["boolean"],
        "weighting": [StrOptions({"binary", "count"})],
        "fallback": [StrOptions(set(FILL_STRATEGIES))],
        "fill_value": [FillValue()],
        "device": [str, torch.device],
        "batch_size": [Int(1), None],
        "dtype": [StrOptions(set(_DTYPES))],
        "verbose": ["verbose"],
        "column_batch_size": [Int(1), None],
        "out_file": [str, os.PathLike, None],
        "overwrite": ["boolean"],
    }

    def __init__(self, n_neighbors=20, n_iter=3, normalization="sym", symmetric=False,
                 weighting="binary", fallback="mean", fill_value=0.0, device="auto",
                 batch_size=None, dtype="float32", verbose=False, column_batch_size=None,
                 out_file=None, overwrite=False):
        self.n_neighbors = n_neighbors
        self.n_iter = n_iter
        self.normalization = normalization
        self.symmetric = symmetric
        self.weighting = weighting
        self.fallback = fallback
        self.fill_value = fill_value
        self.device = device
        self.batch_size = batch_size
        self.dtype = dtype
        self.verbose = verbose
        self.column_batch_size = column_batch_size
        self.out_file = out_file
        self.overwrite = overwrite

    def _fit(self, X, y):
        X = self._validate_X(X, reset=True, lazy=True)
        n_items, n_features = X.shape
        device = resolve_device(self.device)
        dtype = _DTYPES[self.dtype]
        out_file = (None if self.out_file is None
                    else check_out_file(self.out_file, X, overwrite=self.overwrite))
        if y is None:
            warnings.warn("FeatPropImputer got no y: without interactions there is no graph, "
                          "so every missing entry takes the fallback (mean imputation). Pass "
                          "the (n_items, n_users) interaction matrix as y (in a Pipeline: "
                          "pipeline.fit(X, y)).", UserWarning, stacklevel=3)
        Y = None if y is None else check_interactions(y, n_items, name="y")
        # The result: in memory, a copy of X made during the scan; with ``out_file``, written
        # at the end (see ResultWriter).
        out = np.empty(X.shape, X.dtype) if out_file is None else None
        scan = self._scan(X, copy_to=out)
        if Y is not None and scan.rows.size and scan.absmax.max(initial=0) > np.finfo(dtype).max:
            raise ValueError(f"X has values up to {scan.absmax.max():.3g}, beyond the range of "
                             f"dtype={self.dtype!r} in which they would be propagated; use "
                             f"dtype='float64'.")
        fill = fill_row(self.fallback, self.fill_value, scan.means, X.dtype)
        tic = time.perf_counter()
        graph = None if Y is None else cointeraction_graph(
            Y, self.n_neighbors, symmetric=self.symmetric, weighting=self.weighting,
            batch_size=self.batch_size)
        build = time.perf_counter() - tic
        del Y
        prop = None
        if graph is not None and scan.rows.size:
            P = normalize_adjacency(graph, self.normalization, dtype=dtype, copy=False)
            prop = ColumnPropagator(P, scan.rows, scan.full, self.n_iter, n_features=n_features,
                                    device=device, dtype=dtype,
                                    column_batch_size=self.column_batch_size)
            del P
        groups = (prop.column_groups() if prop is not None else
                  column_groups(n_features, scan.rows.size * (X.dtype.itemsize + 1),
                                self.column_batch_size))
        tic = time.perf_counter()
        reader = RowBlocks(X, _IO_BYTES)
        writer = ResultWriter(X, reader, scan.rows, groups, out, out_file)
        n_prop, n_missing = self._write_groups(writer, prop, reader, scan, groups, fill)
        fitted = writer.finish()
        rows = scan.rows
        if self.verbose and graph is not None:
            print(f"[FeatPropImputer] graph: {graph.nnz} edges in {build:.2f}s; propagation "
                  f"of {rows.size} rows x {self.n_iter} steps in {len(groups)} column group(s) "
                  f"in {time.perf_counter() - tic:.2f}s on {device}")
        self.graph_ = graph
        self.statistics_ = scan.means
        self.n_propagated_ = n_prop
        self.n_fallback_ = n_missing - n_prop
        self.n_donors_ = min(self.n_neighbors, n_items)
        self.device_ = str(device)
        self._fit_X = fitted
        self._fit_X_identity = getattr(writer, "identity", None)
        # What identifies the fitted matrix at ``transform``: its missing mask (the values are
        # those of the result at the observed entries).
        self._fit_rows, self._fit_packed = rows, scan.packed
        self._fill = fill

    def _write_groups(self, writer, prop, reader, scan, groups, fill):
        """Impute column group after column group into ``writer``; returns the number of
        propagated and of missing entries."""
        partial = np.flatnonzero(~scan.full)
        masks = lambda c0, c1: unpack_columns(scan.packed, c0, c1)  # noqa: E731
        n_prop = n_missing = 0
        for g, (c0, c1, m, raw_p, values, reached) in enumerate(
                _groups(prop, reader, masks, groups, scan.rows, partial)):
            # The imputed rows: observed entries as they are, missing ones the fallback...
            final = writer.slab(g)
            if raw_p is not None:
                final[partial] = raw_p
            np.copyto(final, fill[c0:c1], where=m)
            n_missing += int(np.count_nonzero(m))
            if values is not None:
                # ... or, where propagation reaches them, the propagated values.
                reach = m & reached
                if not np.isfinite(values[reach]).all():
                    raise ValueError(f"propagation overflowed dtype={self.dtype!r} (X's values "
                                     f"are too large for it); use dtype='float64'.")
                np.copyto(final, values, where=reach, casting="unsafe")
                n_prop += int(np.count_nonzero(reach))
            writer.put(g, final)
        return n_prop, n_missing

    def _fitted_result(self):
        F = self._fitted_matrix()
        # The file of ``out_file`` is returned as it is, read-only; an array in memory is
        # copied, so that changing the result cannot change what ``transform`` returns.
        return F if isinstance(F, np.memmap) else F.copy()

    def _fitted_matrix(self):
        """The fitted result; a file-backed one is checked to be the file the fit wrote."""
        if self._fit_X is None:  # unpickled, and its file was gone or replaced
            return open_result(self._fit_X_file, self._fit_X_identity,
                               owner=type(self).__name__)
        if isinstance(self._fit_X, np.memmap) and self._fit_X_identity is not None:
            _check_not_changed_in_place(self._fit_X.filename, self._fit_X_identity,
                                        type(self).__name__)
        return self._fit_X

    def __getstate__(self):
        state = dict(super().__getstate__())
        F = state.get("_fit_X")
        if isinstance(F, np.memmap) and F.filename is not None:
            # The result lives in ``out_file``: pickle its path and identity, not its content.
            state["_fit_X"], state["_fit_X_file"] = None, F.filename
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        path = state.get("_fit_X_file")
        if path is not None:
            try:
                self._fit_X = open_result(path, self._fit_X_identity,
                                          owner=type(self).__name__)
            except ValueError:
                self._fit_X = None  # reported when the result is used, not while unpickling


def _groups(prop, reader, masks, groups, rows, partial):
    """The column groups of a fit: propagated, or (no graph, no missing rows) only read."""
    if prop is not None:
        yield from propagate_groups(prop, reader, masks)
        return
    for c0, c1 in groups if rows.size else []:
        raw_p = reader.gather(rows[partial], c0, c1) if partial.size else None
        yield c0, c1, masks(c0, c1), raw_p, None, None


def _check_not_changed_in_place(path, identity, owner):
    """Raise if the file the estimator maps was rewritten in place since the fit (a file
    replaced at that path leaves the estimator's own mapping, and data, intact)."""
    try:
        current = file_identity(path)
    except OSError:
        return  # unlinked or replaced: the mapping still holds the fitted data
    if current[:2] == tuple(identity[:2]) and current != tuple(identity):
        raise ValueError(f"{owner} keeps its result in {path!r}, which was modified in place "
                         f"after the fit; refit it.")
