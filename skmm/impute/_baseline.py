"""The FeatProp paper's baseline imputers: zeros, column mean, uniform random."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.impute import SimpleImputer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import check_no_empty_columns, validate_features


class BaselineImputer(TransformerMixin, BaseEstimator):
    """Fill missing item features with a constant rule: the FeatProp paper's baselines.

    Parameters
    ----------
    strategy : {"mean", "zeros", "random"}, default="mean"
        ``"mean"``: the column mean of the observed values (scikit-learn's
        :class:`~sklearn.impute.SimpleImputer`); ``"zeros"``: 0; ``"random"``: independent
        draws from the uniform distribution on [0, 1), as in the paper.
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

    Examples
    --------
    >>> import numpy as np
    >>> from skmm import BaselineImputer
    >>> X = np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 6.0]])
    >>> BaselineImputer(strategy="mean").fit_transform(X)
    array([[1., 5.],
           [3., 4.],
           [2., 6.]])
    """

    _parameter_constraints: dict = {
        "strategy": [StrOptions({"mean", "zeros", "random"})],
        "random_state": ["random_state"],
    }

    def __init__(self, strategy="mean", random_state=None):
        self.strategy = strategy
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
        X, missing = validate_features(self, X, reset=True)
        if self.strategy == "mean":
            check_no_empty_columns(missing)
            self.statistics_ = SimpleImputer(strategy="mean").fit(X).statistics_
        elif self.strategy == "zeros":
            self.statistics_ = np.zeros(X.shape[1])
        else:
            self.statistics_ = np.full(X.shape[1], np.nan)
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
        X, missing = validate_features(self, X, reset=False)
        out = np.array(X, copy=True)
        if self.strategy == "random":
            rng = check_random_state(self.random_state)
            # Draw for every entry so that an item's fill does not depend on the others' masks.
            draws = rng.uniform(0.0, 1.0, size=X.shape).astype(out.dtype)
            out[missing] = draws[missing]
        else:
            out[missing] = np.broadcast_to(self.statistics_.astype(out.dtype), X.shape)[missing]
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.required = False
        if self.strategy == "random":
            tags.non_deterministic = self.random_state is None
        return tags
