"""The base of the skmm imputers: the data contract, the fill policies and their statistics.

Modelled on scikit-learn's ``_BaseImputer``: one place for the tags (NaN allowed, ``y``
optional), masked-array input, the empty-column policy, the column statistics behind every
``"mean"`` fill, the feature names (so that ``set_output(transform="pandas")`` works) and the
fill policies, spelled as scikit-learn spells them: ``strategy`` (or ``fallback``) in
``{"mean", "constant", ...}`` with a ``fill_value``.
"""

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.impute import KNNImputer
from sklearn.utils.validation import FLOAT_DTYPES, check_is_fitted

from .._blockio import _SCAN_BYTES, RowBlocks, scan_features
from .._validation import interaction_target_tags, validate_features

#: The fill policies shared by the imputers (``strategy`` / ``fallback`` values).
FILL_STRATEGIES = ("mean", "constant")


class BaseImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Base class of the skmm imputers. Not meant to be used directly.

    ``transform`` returns an array of the input's float dtype with the same columns, so the
    output's feature names are the input's (``get_feature_names_out``).
    """

    _parameter_constraints: dict = {}

    def _validate_X(self, X, *, reset, lazy=False):
        """Validate ``X`` (NaN or a MaskedArray marks missing).

        Integer input becomes float64; float input keeps its dtype, so that observed entries
        come back bit-identical. ``lazy``: no copy and no scan of the values (a memory map
        stays a view of its file); the caller then checks for infinities block by block
        (:func:`~skmm._blockio.scan_features`).
        """
        return validate_features(self, X, dtype=FLOAT_DTYPES, reset=reset, copy=False,
                                 ensure_all_finite=False if lazy else "allow-nan")

    def _scan(self, X, *, copy_to=None):
        """One pass over ``X``: masks, statistics, infinities refused, empty columns refused."""
        scan = scan_features(X, copy_to=copy_to, estimator_name=type(self).__name__)
        check_observed_columns(scan.n_missing, X.shape[0])
        scan.means = column_means(X, scan)
        return scan

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.required = False
        return tags


class BaseTransductiveImputer(BaseImputer):
    """Base class of the graph imputers, whose fit needs the interactions ``y``.

    ``fit_transform(X, y)`` is the transductive result over the fitted items, which
    :meth:`fit` computes and keeps (subclasses implement ``_fit(X, y)``, setting ``_fit_X``,
    ``_fit_rows``, ``_fit_packed``, ``_fill`` and ``n_donors_``). :meth:`transform` returns
    that result for the very matrix seen in ``fit`` (:func:`is_fitted_matrix`) and applies
    the new-item rule (:func:`impute_new_items`) to any other rows, so that, as for
    scikit-learn's :class:`~sklearn.preprocessing.TargetEncoder`, ``fit_transform`` is not
    ``fit().transform()`` on new data. ``transform`` never changes the estimator.
    """

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build the graph from ``y`` and impute the missing entries of ``X``.

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            Item features, ``np.nan`` (or the mask) marking missing entries (a memory map
            where the estimator says it reads one in blocks).
        y : {array-like, sparse matrix} of shape (n_items, n_users), default=None
            Interactions, items as rows. None: no graph, every missing entry takes
            ``fallback`` (with a warning).

        Returns
        -------
        self : object
            The fitted imputer.
        """
        self._fit(X, y)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        """Fit, then return ``X`` with its missing entries imputed over the graph.

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
        X_imputed : ndarray or numpy.memmap of shape (n_items, n_features)
            ``X`` with missing entries filled; observed entries unchanged (a read-only memory
            map where the estimator writes its result to a file).
        """
        return self.fit(X, y)._fitted_result()

    def transform(self, X):
        """Impute the missing entries of ``X``.

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            The fitted items (returns the fitted result) or new items (imputed from their
            nearest fitted items, see the estimator's Notes).

        Returns
        -------
        X_imputed : ndarray or numpy.memmap of shape (n_items, n_features)
            ``X`` with missing entries filled; observed entries unchanged.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False, lazy=True)
        F = self._fitted_matrix()
        if is_fitted_matrix(X, F, self._fit_rows, self._fit_packed):
            return self._fitted_result()
        return impute_new_items(self, X, F, self.n_donors_, self._fill)

    def _fitted_matrix(self):
        """The fitted result as kept (subclasses keeping it in a file check the file)."""
        return self._fit_X

    def _fitted_result(self):
        """What ``fit_transform`` returns: a copy, so that changing it cannot change what
        ``transform`` returns."""
        return self._fitted_matrix().copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        return interaction_target_tags(tags, required=False)


def check_observed_columns(n_missing, n_rows, *, what="X"):
    """Raise if a column has no observed value: there is nothing to impute it from."""
    empty = np.flatnonzero(np.asarray(n_missing) >= n_rows) if n_rows else np.zeros(0, int)
    if empty.size:
        shown = ", ".join(map(str, empty[:10])) + (", ..." if empty.size > 10 else "")
        raise ValueError(f"{what} has {empty.size} column(s) with no observed value (columns "
                         f"{shown}); every feature needs at least one observed item to impute "
                         f"from. Drop those columns first.")


def column_means(X, scan):
    """Mean of the observed values of each column, in float64, from a :func:`scan_features`.

    The sums are float64 additions in row order (those of ``np.nanmean`` on a float64 copy).
    A column whose sum overflows (values near the float64 maximum) is summed again scaled by
    ``2**-1000``, exactly, so that its mean is finite whenever its values are.
    """
    counts = X.shape[0] - scan.n_missing
    with np.errstate(invalid="ignore", divide="ignore"):
        means = scan.sums / counts
    overflow = np.flatnonzero(~np.isfinite(means) & (counts > 0))
    if overflow.size:
        scale = 2.0 ** -1000  # a power of two: the scaling itself rounds nothing
        sums = np.zeros(overflow.size)
        for _, _, xb in RowBlocks(X):
            block = np.asarray(xb[:, overflow], dtype=np.float64) * scale
            sums += np.nansum(block, axis=0)
        means[overflow] = sums / counts[overflow] / scale
    return means


def fill_row(strategy, fill_value, means, dtype):
    """The value every missing entry of each column takes under a fill policy."""
    if strategy == "mean":
        return means.astype(dtype)
    if np.isfinite(fill_value) and abs(fill_value) > np.finfo(dtype).max:
        raise ValueError(f"fill_value={fill_value!r} does not fit the dtype of X ({dtype}).")
    return np.full(means.shape, fill_value, dtype)


def impute_new_items(estimator, X, F, n_donors, fill):
    """The new-item rule of the graph imputers, for rows that were not fitted.

    Items without interactions cannot be placed on the graph: their missing entries are the
    mean of the ``n_donors`` nearest rows of the fitted result ``F`` by NaN-aware Euclidean
    distance over the entries the new item has, as :class:`~sklearn.impute.KNNImputer` does;
    an item with no observed entry at all takes ``fill`` (the fallback row). ``X`` is
    validated by ``estimator`` (``reset=False``); nothing is cached on it, so the result
    depends on the fit only, never on earlier calls.
    """
    out = np.array(X, copy=True)
    # Infinite observed values are refused (scikit-learn's message), NaN marks missing.
    estimator._validate_X(out, reset=False)
    missing = np.isnan(out)
    if not missing.any():
        return out
    empty = missing.all(axis=1)
    partial = np.flatnonzero(missing.any(axis=1) & ~empty)
    if partial.size:
        donors = KNNImputer(n_neighbors=n_donors, keep_empty_features=True, copy=False).fit(F)
        block = out[partial]
        filled = donors.transform(block.astype(np.float64))
        block[missing[partial]] = filled[missing[partial]]
        out[partial] = block
    if empty.any():
        out[empty] = fill.astype(out.dtype)
    return out


def is_fitted_matrix(X, F, rows, packed):
    """Whether ``X`` is the matrix seen in ``fit``: same shape and dtype as the result ``F``,
    the same missing mask (``rows`` and ``packed`` of :func:`~skmm._blockio.scan_features`),
    bit-identical observed values. Read in row blocks, stopping at the first difference;
    exact, where a hash would only be probably right."""
    if X.shape != F.shape or X.dtype != F.dtype:
        return False
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
