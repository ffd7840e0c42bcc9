"""The FeatProp paper's baseline imputers: column mean, a constant (zeros), uniform random."""

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from .._validation import FillValue
from ._base import FILL_STRATEGIES, BaseImputer, fill_row


class BaselineImputer(BaseImputer):
    """Fill missing item features with a constant rule: the FeatProp paper's baselines.

    Parameters
    ----------
    strategy : {"mean", "constant", "random"}, default="mean"
        ``"mean"``: the column mean of the observed values (computed in float64);
        ``"constant"``: ``fill_value`` (the paper's "zeros" baseline is the default
        ``fill_value=0``); ``"random"``: independent draws from the uniform distribution on
        [0, 1), as in the paper.
    fill_value : float, default=0.0
        The value of ``strategy="constant"`` (NaN leaves the entries missing). Ignored by the
        other strategies.
    random_state : int, RandomState instance or None, default=None
        Seeds the ``"random"`` draws. The same seed gives the same draws at every
        :meth:`transform` call. Ignored by the other strategies, which draw nothing.

    Attributes
    ----------
    statistics_ : ndarray of shape (n_features,)
        The fill value of each column (NaN for ``"random"``, which has none).
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    See Also
    --------
    FeatPropImputer : imputation by propagation over the co-interaction graph.
    sklearn.impute.SimpleImputer : mean, median, most-frequent and constant fills.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm import BaselineImputer
    >>> X = np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 6.0]])
    >>> BaselineImputer(strategy="mean").fit_transform(X)
    array([[1., 5.],
           [3., 4.],
           [2., 6.]])
    >>> BaselineImputer(strategy="constant").fit_transform(X)
    array([[1., 0.],
           [3., 4.],
           [0., 6.]])
    """

    _parameter_constraints: dict = {
        **BaseImputer._parameter_constraints,
        "strategy": [StrOptions(set(FILL_STRATEGIES) | {"random"})],
        "fill_value": [FillValue()],
        "random_state": ["random_state"],
    }

    def __init__(self, strategy="mean", fill_value=0.0, random_state=None):
        self.strategy = strategy
        self.fill_value = fill_value
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the fill values.

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            Item features, ``np.nan`` (or the mask) marking missing entries.
        y : Ignored
            Not used, present for API consistency (an interaction matrix may be passed).

        Returns
        -------
        self : BaselineImputer
            The fitted imputer.
        """
        X = self._validate_X(X, reset=True, lazy=True)
        scan = self._scan(X)
        if self.strategy == "random":
            self.statistics_ = np.full(X.shape[1], np.nan)
        else:
            self.statistics_ = fill_row(self.strategy, self.fill_value, scan.means, np.float64)
        return self

    def transform(self, X):
        """Fill the missing entries of ``X``.

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            Item features with missing entries.

        Returns
        -------
        X_imputed : ndarray of shape (n_items, n_features)
            ``X`` with missing entries filled; observed entries unchanged.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        missing = np.isnan(X)
        out = np.array(X, copy=True)
        if self.strategy == "random":
            out[missing] = uniform_fill(check_random_state(self.random_state), X.shape,
                                        out.dtype)[missing]
        else:
            out[missing] = np.broadcast_to(self.statistics_.astype(out.dtype), X.shape)[missing]
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self.strategy == "random":
            tags.non_deterministic = self.random_state is None
        return tags


def uniform_fill(rng, shape, dtype):
    """Uniform draws on [0, 1) in ``dtype``, one per entry (so that an item's fill does not
    depend on the others' masks). A float64 draw rounded to a narrower float can reach 1.0;
    such draws become the largest value below 1 instead, keeping the interval half-open."""
    draws = rng.uniform(0.0, 1.0, size=shape).astype(dtype)
    draws[draws >= 1] = np.nextafter(np.array(1, dtype), np.array(0, dtype))
    return draws
