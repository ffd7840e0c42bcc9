"""FeatPropImputer: missing modality features by propagation over the co-interaction graph."""

import os
import tempfile
import time
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.impute import KNNImputer
from sklearn.utils import assert_all_finite
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._validation import check_interactions, interaction_target_tags, resolve_device
from ..graph import cointeraction_graph, normalize_adjacency
from ..propagation import ColumnPropagator, column_groups
from ._base import (_IO_BYTES, _SCAN_BYTES, RowBlocks, check_no_empty_columns_counts,
                    scan_features, unpack_columns, validate_features_lazy)

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
        memory (see Notes, *Catalogues larger than memory*). :meth:`fit` writes it (replacing
        a file already there); :meth:`fit_transform`, and :meth:`transform` of the fitted
        matrix, return it opened read-only as a :class:`numpy.memmap`. The fitted estimator
        refers to the file: it pickles its path, not its content, and needs the file to stay
        there. None: the result is kept in memory.

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
    very matrix seen in ``fit`` (same shape, dtype and missing mask, bit-identical observed
    values; compared exactly, not by a hash: the transductive case, and what
    ``fit_transform`` returns). Any other rows are treated as new items without interactions:
    their missing entries are the mean of the ``n_neighbors`` nearest fitted items by
    NaN-aware Euclidean distance over the entries the new item has (the fitted items' own
    missing entries imputed first), as :class:`~sklearn.impute.KNNImputer` does; a new item
    with no observed entry at all takes ``fallback``. In a
    ``Pipeline([("impute", FeatPropImputer()), ("model", ...)])`` the model is thus trained on
    propagated features and scored on new items imputed from their content.

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
        "column_batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "out_file": [str, os.PathLike, None],
    }

    def __init__(self, n_neighbors=20, n_iter=3, normalization="sym", symmetric=False,
                 weighting="binary", fallback="mean", device="auto", batch_size=None,
                 dtype="float32", verbose=False, column_batch_size=None, out_file=None):
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
        self.column_batch_size = column_batch_size
        self.out_file = out_file

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build the graph from ``y`` and impute the missing entries of ``X``.

        Parameters
        ----------
        X : array-like, numpy.ma.MaskedArray or numpy.memmap of shape (n_items, n_features)
            Item features, ``np.nan`` (or the mask) marking missing entries. A memory map
            (``np.load(path, mmap_mode="r")``) is read in blocks, never loaded whole.
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
        X : array-like, numpy.ma.MaskedArray or numpy.memmap of shape (n_items, n_features)
            Item features, ``np.nan`` (or the mask) marking missing entries.
        y : {array-like, sparse matrix} of shape (n_items, n_users), default=None
            Interactions, items as rows.
        **fit_params : dict
            Not used; present for API consistency.

        Returns
        -------
        X_imputed : ndarray or numpy.memmap of shape (n_items, n_features)
            ``X`` with missing entries filled; observed entries unchanged. With ``out_file``,
            the file opened read-only as a memory map.
        """
        self.fit(X, y)
        return self._fitted_result()

    def _fitted_result(self):
        F = self._fit_X
        # The file of ``out_file`` is returned as it is, read-only; an array in memory is
        # copied, so that changing the result cannot change what ``transform`` returns.
        return F if isinstance(F, np.memmap) else F.copy()

    def _fit(self, X, y):
        X = validate_features_lazy(self, X, reset=True)
        n_items, n_features = X.shape
        device = resolve_device(self.device)
        dtype = _DTYPES[self.dtype]
        Y = check_interactions(y, n_items, name="y") if y is not None else None
        # The result: in memory, a copy of X made during the scan; with ``out_file``, written
        # at the end (see _Writer).
        out = np.empty(X.shape, X.dtype) if self.out_file is None else None
        scan = scan_features(X, copy_to=out, estimator_name=type(self).__name__)
        check_no_empty_columns_counts(scan.n_missing, n_items)
        self.statistics_ = scan.sums / (n_items - scan.n_missing)
        rows, partial = scan.rows, np.flatnonzero(~scan.full)

        self.graph_, prop = None, None
        if Y is not None:
            tic = time.perf_counter()
            self.graph_ = cointeraction_graph(Y, self.n_neighbors, symmetric=self.symmetric,
                                              weighting=self.weighting,
                                              batch_size=self.batch_size)
            del Y
            build = time.perf_counter() - tic
            if rows.size:
                P = normalize_adjacency(self.graph_, self.normalization, dtype=dtype,
                                        copy=False)
                prop = ColumnPropagator(P, rows, scan.full, self.n_iter,
                                        n_features=n_features, device=device, dtype=dtype,
                                        column_batch_size=self.column_batch_size)
                del P
        groups = (prop.column_groups() if prop is not None else
                  column_groups(n_features, rows.size * (X.dtype.itemsize + 1),
                                self.column_batch_size))

        tic = time.perf_counter()
        reader = RowBlocks(X, _IO_BYTES)
        fill_row = self._fallback_row(n_features, X.dtype)
        writer = _Writer(X, reader, rows, groups, out, self.out_file)
        n_prop = n_missing = 0
        for g, (c0, c1) in enumerate(groups):
            if not rows.size:
                break
            m = unpack_columns(scan.packed, c0, c1)
            raw_p = reader.gather(rows[partial], c0, c1) if partial.size else None
            # The imputed rows: observed entries as they are, missing ones the fallback...
            final = writer.slab(g)
            if raw_p is not None:
                final[partial] = raw_p
            np.copyto(final, fill_row[c0:c1], where=m)
            n_missing += int(np.count_nonzero(m))
            if prop is not None:
                # ... or, where propagation reaches them, the propagated values.
                m_p = m[partial]
                x_p = prop.known_values(raw_p, m_p) if partial.size else None
                if reader.mapped:
                    x_k = reader.gather(prop.used, c0, c1)
                    read_used = lambda a, b, x_k=x_k, c0=c0: x_k[:, a - c0:b - c0]  # noqa
                else:
                    read_used = lambda a, b: X[prop.used, a:b]  # noqa: E731
                values = prop.propagate(c0, c1, read_used, x_p, m_p)
                read_used = x_k = x_p = None
                fill = m & prop.reached(m)
                np.copyto(final, values, where=fill, casting="unsafe")
                n_prop += int(np.count_nonzero(fill))
                del values, fill
            writer.put(g, final)
            del final, m, raw_p
        self._fit_X = writer.finish()
        if self.verbose and self.graph_ is not None:
            print(f"[FeatPropImputer] graph: {self.graph_.nnz} edges in {build:.2f}s; "
                  f"propagation of {rows.size} rows x {self.n_iter} steps in "
                  f"{len(groups)} column group(s) in {time.perf_counter() - tic:.2f}s on "
                  f"{device}")
        self.n_propagated_ = n_prop
        self.n_fallback_ = n_missing - n_prop
        self.device_ = str(device)
        # What identifies the fitted matrix at ``transform``: its missing mask (the values are
        # those of ``_fit_X`` at the observed entries).
        self._fit_rows, self._fit_packed = rows, scan.packed
        self._new_item_imputer = None  # built from _fit_X at the first new item
        return self._fit_X

    def _fallback_row(self, n_features, dtype):
        if self.fallback == "mean":
            return self.statistics_.astype(dtype)
        return np.full(n_features, 0 if self.fallback == "zeros" else np.nan, dtype)

    def transform(self, X):
        """Impute the missing entries of ``X``.

        Parameters
        ----------
        X : array-like, numpy.ma.MaskedArray or numpy.memmap of shape (n_items, n_features)
            The fitted items (returns the propagated result) or new items (imputed from their
            nearest fitted items, see Notes).

        Returns
        -------
        X_imputed : ndarray or numpy.memmap of shape (n_items, n_features)
            ``X`` with missing entries filled; observed entries unchanged. For the fitted
            matrix with ``out_file``, the file opened read-only as a memory map.
        """
        check_is_fitted(self)
        X = validate_features_lazy(self, X, reset=False)
        if self._is_fitted_matrix(X):
            return self._fitted_result()
        # New items: imputed in memory.
        out = np.array(X, copy=True)
        assert_all_finite(out, allow_nan=True, estimator_name=type(self).__name__,
                          input_name="X")
        missing = np.isnan(out)
        if not missing.any():
            return out
        empty = missing.all(axis=1)
        partial = np.flatnonzero(missing.any(axis=1) & ~empty)
        if partial.size:
            donors = self._donor_imputer().transform(out[partial].astype(np.float64))
            block = out[partial]
            block[missing[partial]] = donors[missing[partial]]
            out[partial] = block
        if empty.any():
            out[empty] = self._fallback_row(out.shape[1], out.dtype)
        return out

    def _is_fitted_matrix(self, X):
        """Whether ``X`` is the matrix seen in ``fit``: same shape and dtype, same missing
        mask, bit-identical observed values. Read in row blocks, stopping at the first
        difference; exact, where a hash would only be probably right."""
        F = self._fit_X
        if X.shape != F.shape or X.dtype != F.dtype:
            return False
        rows, packed = self._fit_rows, self._fit_packed
        as_bits = np.dtype(f"u{X.dtype.itemsize}")
        fitted = RowBlocks(F, _SCAN_BYTES)
        for s, e, xb in RowBlocks(X, _SCAN_BYTES):
            mb = np.isnan(xb)
            r = np.flatnonzero(mb.any(axis=1))
            p0, p1 = np.searchsorted(rows, [s, e])
            if r.size != p1 - p0 or not np.array_equal(r + s, rows[p0:p1]):
                return False
            if r.size and not np.array_equal(np.packbits(mb[r], axis=1), packed[p0:p1]):
                return False
            differ = (np.ascontiguousarray(xb).view(as_bits)
                      != np.ascontiguousarray(F[s:e]).view(as_bits))
            fitted.release(s, e)
            if (differ & ~mb).any():
                return False
        return True

    def _donor_imputer(self):
        """The KNN imputer over the completed fitted items, built at the first new item."""
        imputer = getattr(self, "_new_item_imputer", None)
        if imputer is None:
            imputer = KNNImputer(n_neighbors=min(self.n_neighbors, self._fit_X.shape[0]),
                                 keep_empty_features=True, copy=False).fit(self._fit_X)
            self._new_item_imputer = imputer
        return imputer

    def __getstate__(self):
        state = dict(super().__getstate__())
        if "_new_item_imputer" in state:
            state["_new_item_imputer"] = None  # rebuilt on demand: no second copy of _fit_X
        F = state.get("_fit_X")
        if isinstance(F, np.memmap) and F.filename is not None:
            # The result lives in ``out_file``: pickle its path, not its gigabytes.
            state["_fit_X"], state["_fit_X_file"] = None, F.filename
        return state

    def __setstate__(self, state):
        state = dict(state)
        path = state.pop("_fit_X_file", None)
        super().__setstate__(state)
        if path is not None:
            self._fit_X = np.load(path, mmap_mode="r")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return interaction_target_tags(tags, required=False)


class _Writer:
    """Where the imputed rows go.

    In memory: straight into the output, a copy of ``X``. With ``out_file``: each column
    group's imputed rows go to a temporary file, then the output file is written in one
    sequential pass of row blocks (``X``'s rows with the imputed rows put in), with plain file
    writes: no page of either file is mapped into the process, and no page of the output is
    written twice (scattering each column group into the output's rows would rewrite most of
    its pages once per group).
    """

    def __init__(self, X, reader, rows, groups, out, out_file):
        self.X, self.reader, self.rows, self.groups = X, reader, rows, groups
        self.out_file = None if out_file is None else os.fspath(out_file)
        self.out = out  # in memory: already a copy of X
        if self.out_file is not None:
            # Written beside the destination and renamed over it at the end: a map of an older
            # result at that path keeps its own (unlinked) file instead of seeing it truncated.
            folder = os.path.dirname(os.path.abspath(self.out_file))
            self.store = tempfile.TemporaryFile(dir=folder)
            widths = [c1 - c0 for c0, c1 in groups]
            self.offsets = np.cumsum([0] + widths) * rows.size * X.dtype.itemsize

    def slab(self, g):
        """A new array for the imputed rows of column group ``g``."""
        c0, c1 = self.groups[g]
        return np.empty((self.rows.size, c1 - c0), self.X.dtype)

    def put(self, g, final):
        c0, c1 = self.groups[g]
        if self.out_file is None:
            self.out[self.rows, c0:c1] = final
        else:
            self.store.seek(int(self.offsets[g]))
            self.store.write(memoryview(np.ascontiguousarray(final)).cast("B"))

    def _read_stored(self, g, p0, p1):
        """Rows ``p0:p1`` of the imputed rows of column group ``g``, from the temporary file."""
        c0, c1 = self.groups[g]
        block = np.empty((p1 - p0, c1 - c0), self.X.dtype)
        _read_into(self.store, block, int(self.offsets[g]) + p0 * (c1 - c0) * block.itemsize)
        return block

    def finish(self):
        if self.out_file is None:
            return self.out
        X, rows = self.X, self.rows
        folder = os.path.dirname(os.path.abspath(self.out_file))
        fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=".skmm-", suffix=".npy.tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.lib.format.write_array_header_1_0(fh, {
                    "descr": np.lib.format.dtype_to_descr(X.dtype), "fortran_order": False,
                    "shape": X.shape})
                ranges = self.reader.ranges()
                bounds = np.searchsorted(rows, [s for s, _ in ranges] + [X.shape[0]])
                buf = np.empty((self.reader.step, X.shape[1]), X.dtype)
                for (s, e), p0, p1 in zip(ranges, bounds[:-1], bounds[1:]):
                    block = buf[:e - s]
                    block[...] = X[s:e]
                    self.reader.release(s, e)
                    if p1 > p0:
                        local = rows[p0:p1] - s
                        for g, (c0, c1) in enumerate(self.groups):
                            block[local, c0:c1] = self._read_stored(g, p0, p1)
                    fh.write(memoryview(block).cast("B"))
            os.replace(tmp_path, self.out_file)
        except BaseException:
            if os.path.exists(tmp_path):
                os.remove(tmp_path)
            raise
        finally:
            self.store.close()
        return np.load(self.out_file, mmap_mode="r")


def _read_into(fh, array, offset):
    """Fill the C-contiguous ``array`` with the bytes of the file ``fh`` from ``offset``."""
    view = memoryview(array).cast("B")
    fh.seek(offset)
    done = 0
    while done < len(view):
        n = fh.readinto(view[done:])
        if not n:
            raise OSError("unexpected end of the temporary file")
        done += n
