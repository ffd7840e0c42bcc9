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


@validate_params(
    {"y_holdout": ["array-like", "sparse matrix"],
     "metric": [StrOptions({"recall", "ndcg", "precision", "hit_rate"})], "k": [Int(1)]},
    prefer_skip_nested_validation=True,
)
def make_warm_start_scorer(y_holdout, metric="ndcg", k=20):
    """A scorer for warm-start models: held-out interactions of the fitted items.

    A warm-start model (:class:`~skmm.VBPRRecommender`, ``FREEDOMRecommender``) scores the
    items it was fitted on, so it is validated on interactions held out of its training
    ``y`` (:func:`skmm.datasets.interaction_split`), not on held-out items: item-wise K-fold
    would ask it to rank items it has never seen. The scorer ranks the rows of ``X`` with the
    training interactions excluded (``estimator.evaluate``) and compares them with
    ``y_holdout``; the ``y`` it is called with is the training matrix, and is not used.

    Use it with a splitter that keeps every item, :class:`skmm.model_selection.AllItemsSplit`:
    ``GridSearchCV(model, grid, scoring=make_warm_start_scorer(Y_val), cv=AllItemsSplit())``
    fitted on ``(X, Y_train)``.

    Parameters
    ----------
    y_holdout : {array-like, sparse matrix} of shape (n_items, n_users)
        The held-out interactions of the items and users of ``fit``.
    metric : {"ndcg", "recall", "precision", "hit_rate"}, default="ndcg"
        The metric.
    k : int, default=20
        Cut-off.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)`` -> float, higher is better.

    Examples
    --------
    >>> from skmm import VBPRRecommender
    >>> from skmm.datasets import interaction_split, make_multimodal
    >>> from skmm.metrics import make_warm_start_scorer
    >>> data = make_multimodal(100, 50, (4, 4), density=0.1, random_state=0)
    >>> Y_train, Y_val = interaction_split(data.Y, test_size=0.2, random_state=0)
    >>> model = VBPRRecommender(max_epochs=2, device="cpu", random_state=0)
    >>> scorer = make_warm_start_scorer(Y_val, "recall", k=10)
    >>> 0 <= scorer(model.fit(data.X, Y_train), data.X, Y_train) <= 1
    True
    """
    return _WarmStartScorer(y_holdout, metric, k)


class _WarmStartScorer:
    """Picklable ``scorer(estimator, X, y)`` on fixed held-out interactions."""

    def __init__(self, y_holdout, metric, k):
        self.y_holdout = y_holdout
        self.metric = metric
        self.k = k
        self.__name__ = f"warm_start_{metric}_at_{k}"

    def __call__(self, estimator, X, y=None):
        if not hasattr(estimator, "evaluate") and hasattr(estimator, "steps"):
            # A Pipeline: its transformers prepare X for the final recommender.
            X, estimator = estimator[:-1].transform(X), estimator[-1]
        return float(estimator.evaluate(X, self.y_holdout, metrics=(self.metric,),
                                        k=self.k)[self.metric])

    def __repr__(self):
        return f"make_warm_start_scorer(metric={self.metric!r}, k={self.k})"
