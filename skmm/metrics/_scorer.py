"""Scorers for model selection: ``scorer(estimator, X, y)`` callables for ``scoring=``."""

from sklearn.utils._param_validation import StrOptions, validate_params

from .._validation import Int
from ._ranking import METRIC_FUNCTIONS


@validate_params(
    {"metric": [StrOptions(set(METRIC_FUNCTIONS)), callable], "k": [Int(1)]},
    prefer_skip_nested_validation=True,
)
def make_topk_scorer(metric="ndcg", k=20):
    """A scorer ``scorer(estimator, X, Y)`` for model selection with a top-k metric.

    The scorer ranks the rows of ``X`` (held-out items) for every user with
    ``estimator.decision_function(X)`` and averages ``metric`` over the users with a positive
    in ``Y``. Pass it as ``scoring`` to :class:`~sklearn.model_selection.GridSearchCV` or
    :func:`~sklearn.model_selection.cross_val_score`; with folds over items this is
    cold-start validation.

    Parameters
    ----------
    metric : {"ndcg", "recall", "precision", "hit_rate"} or callable, default="ndcg"
        A metric name, or a function ``metric(Y_true, scores, *, k)`` returning a float.
    k : int, default=20
        Cut-off.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, Y)`` -> float, higher is better.

    Examples
    --------
    >>> from skmm.metrics import make_topk_scorer
    >>> scorer = make_topk_scorer("recall", k=10)
    >>> scorer.__name__
    'recall_at_10'
    """
    if isinstance(metric, str):
        name, func = metric, METRIC_FUNCTIONS[metric]
    else:
        name, func = getattr(metric, "__name__", "metric"), metric

    return _TopKScorer(func, k, f"{name}_at_{k}")


class _TopKScorer:
    """A picklable ``scorer(estimator, X, Y)`` (joblib workers of a grid search pickle it)."""

    def __init__(self, func, k, name):
        self.func = func
        self.k = k
        self.__name__ = name

    def __call__(self, estimator, X, Y):
        return float(self.func(Y, estimator.decision_function(X), k=self.k))

    def __repr__(self):
        return f"make_topk_scorer({self.__name__!r})"
