"""Scorers for model selection: ``scorer(estimator, X, y)`` callables for ``scoring=``."""

import copy

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_array
from sklearn.utils._param_validation import StrOptions, validate_params

from .._validation import Int, Real, check_block_sizes, check_interactions, masked_to_nan
from ..datasets._missing import hide_observed
from ._imputation import imputation_score
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


_IMPUTATION_METRICS = ("centred_cosine", "neg_mse", "mse_skill", "average_precision",
                       "average_precision_gain")


@validate_params(
    {"modalities": ["array-like", None],
     "mode": [StrOptions({"auto", "modality", "entry"})],
     "fraction": [Real(0, 1, closed="neither")],
     "metric": [StrOptions(set(_IMPUTATION_METRICS) | {"mse"})],
     "n_repeats": [Int(1)],
     "random_state": [Int(0, 2**32 - 1), np.random.RandomState],
     "stratify": [StrOptions({"degree"}), None],
     "n_bins": [Int(1)]},
    prefer_skip_nested_validation=True,
)
def make_imputation_scorer(modalities=None, *, mode="auto", fraction=0.1,
                           metric="centred_cosine", n_repeats=1, random_state=0,
                           stratify=None, n_bins=5):
    """A self-supervised scorer ``scorer(estimator, X, y)`` for selecting an imputer.

    Imputers have no labels to be validated on, and graph imputers are transductive: they
    impute the items they are fitted on, so there is no held-out data to call ``transform``
    on. The scorer makes its own validation data. It hides a random part of the *observed*
    entries of ``X`` in the same way as the real missingness
    (:func:`skmm.datasets.hide_observed`: whole modality blocks of items, or single entries),
    fits a **clone** of the estimator on the hidden copy with ``fit_transform(X_hidden, y)``,
    and scores how well the hidden values were recovered with
    :func:`~skmm.metrics.imputation_score`, whose baseline statistics come from ``X_hidden``
    alone.

    **Why hiding inside the scorer is free of leakage.** The values scored are known (they are
    observed in ``X``) but were never shown to the model that imputed them: the clone sees
    only ``X_hidden``, fitted from scratch, so none of its statistics (the graph's fallback
    means, a centre) can contain them. The already fitted ``estimator`` handed in by
    :class:`~sklearn.model_selection.GridSearchCV` saw them, which is why it is not used:
    only its parameters are. The truly missing entries are never hidden or scored, so no
    ground truth beyond ``X`` is needed.

    **Same entries for every candidate.** The hidden entries depend only on ``random_state``,
    the missing mask of ``X`` and the arguments, so every candidate of a grid is scored on the
    same entries and the comparison is paired.

    **Use with a grid search.** The scorer refits, so it needs the whole catalogue: pass
    ``cv=AllItemsSplit()`` (:class:`skmm.model_selection.AllItemsSplit`, train = test = all
    items) and fit the search on ``(X, y)`` with ``y`` the interactions::

        search = GridSearchCV(FeatPropImputer(), {"n_neighbors": [10, 20]},
                              scoring=make_imputation_scorer([64, 32]), cv=AllItemsSplit())
        search.fit(X, Y)

    The fit of each candidate on the fold is then only the refit target, and
    ``search.best_estimator_`` is fitted on the real ``X``. Each call costs ``n_repeats`` fits.

    Parameters
    ----------
    modalities : sequence of int or None, default=None
        The column-block sizes of ``X``, summing to ``n_features``; None: one block. Blocks
        are hidden as units in mode ``"modality"`` and scored separately, then averaged with
        equal weight, so that a wide block does not dominate.
    mode : {"auto", "modality", "entry"}, default="auto"
        How to hide: see :func:`skmm.datasets.hide_observed` (``"auto"``: whole blocks when
        the real missingness of ``X`` is by whole blocks, else entries).
    fraction : float in (0, 1), default=0.1
        The part of the observed blocks (or entries) hidden. Keep it small: selection then
        runs at a missing rate close to the real one.
    metric : {"centred_cosine", "neg_mse", "mse_skill", "average_precision", \
"average_precision_gain"}, default="centred_cosine"
        The recovery score of :func:`~skmm.metrics.imputation_score`, greater being better as
        scikit-learn scorers require: ``"neg_mse"`` is minus the mean squared error (like
        scikit-learn's ``"neg_mean_squared_error"``; ``"mse"`` is refused, since a scorer
        must not reward errors). Average precision needs binary (multi-hot) blocks.
    n_repeats : int, default=1
        Independent hidings, each a fit; the score is their mean.
    random_state : int or RandomState instance, default=0
        Seeds the hiding. A RandomState is copied at every call, so that every call (every
        candidate) hides the same entries; None is refused for the same reason.
    stratify : {"degree"} or None, default=None
        ``"degree"``: hide by degree strata, so that the degrees (interaction counts, from
        ``y``) of the hidden items follow those of each block's truly missing items
        (:func:`skmm.datasets.hide_observed` with ``stratify`` the degrees); the scorer then
        needs ``y``. None: uniform hiding.
    n_bins : int, default=5
        With ``stratify``, the number of degree quantile bins (``n_bins`` of
        :func:`~skmm.datasets.hide_observed`); 1 is uniform hiding. Without ``stratify`` it
        must stay at its default (it would have no effect).

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None)`` -> float, greater is better. Picklable.

    See Also
    --------
    skmm.datasets.hide_observed : the hiding, as a function.
    skmm.metrics.imputation_score : the metrics.
    skmm.model_selection.AllItemsSplit : the splitter to use with it.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skmm import FeatPropImputer
    >>> from skmm.datasets import make_multimodal, simulate_missing
    >>> from skmm.metrics import make_imputation_scorer
    >>> from skmm.model_selection import AllItemsSplit
    >>> data = make_multimodal(120, 60, (6, 4), density=0.1, random_state=0)
    >>> X, _ = simulate_missing(data.X, data.modalities, rate=0.3, mode="one", random_state=0)
    >>> scorer = make_imputation_scorer(data.modalities, fraction=0.1)
    >>> scorer
    make_imputation_scorer(modalities=[6, 4], mode='auto', fraction=0.1, \
metric='centred_cosine', n_repeats=1, random_state=0, stratify=None, n_bins=5)
    >>> search = GridSearchCV(FeatPropImputer(device="cpu"), {"n_neighbors": [5, 10]},
    ...                       scoring=scorer, cv=AllItemsSplit()).fit(X, data.Y)
    >>> sorted(search.best_params_)
    ['n_neighbors']
    >>> bool(-1 <= search.best_score_ <= 1)
    True
    """
    if metric == "mse":
        raise ValueError("metric='mse' is not a scorer (greater must be better): use "
                         "metric='neg_mse', minus the mean squared error.")
    check_n_bins(n_bins, stratify)
    if modalities is not None:
        modalities = list(check_block_sizes(modalities))
    if isinstance(random_state, np.random.RandomState):
        random_state = copy.deepcopy(random_state)  # later use of the caller's must not count
    return _ImputationScorer(modalities, mode, fraction, metric, n_repeats, random_state,
                             stratify, n_bins)


class _ImputationScorer:
    """Picklable ``scorer(estimator, X, y)``: hide, refit a clone, score the hidden entries."""

    def __init__(self, modalities, mode, fraction, metric, n_repeats, random_state,
                 stratify=None, n_bins=5):
        self.modalities = modalities
        self.mode = mode
        self.fraction = fraction
        self.metric = metric
        self.n_repeats = n_repeats
        self.random_state = random_state
        self.stratify = stratify
        self.n_bins = n_bins
        self.__name__ = metric

    def __call__(self, estimator, X, y=None):
        X = check_array(masked_to_nan(X), dtype=("float64", "float32"),
                        ensure_all_finite="allow-nan", input_name="X")
        # A fresh generator per call, from the same seed: every call hides the same entries.
        rng = (copy.deepcopy(self.random_state)
               if isinstance(self.random_state, np.random.RandomState)
               else np.random.RandomState(self.random_state))
        degree = None if self.stratify is None else item_degrees(y, X.shape[0])
        scores = []
        for _ in range(self.n_repeats):
            X_hidden, _ = hide_observed(X, self.modalities, fraction=self.fraction,
                                        mode=self.mode, random_state=rng, stratify=degree,
                                        n_bins=self.n_bins)
            model = clone(estimator)
            if "out_file" in model.get_params(deep=False):
                # The imputation of the hidden copy stays in memory; the user's file is the
                # search's refit target and must not be replaced by a scoring fit.
                model.set_params(out_file=None)
            X_imputed = np.asarray(model.fit_transform(X_hidden, y))
            metric = "mse" if self.metric == "neg_mse" else self.metric
            score = imputation_score(X, X_imputed, X_hidden, metric=metric,
                                     modalities=self.modalities)
            scores.append(-score if self.metric == "neg_mse" else score)
        return float(np.mean(scores))

    def __repr__(self):
        # A RandomState's own repr is its address, which differs between equal copies.
        seed = (self.random_state if not isinstance(self.random_state, np.random.RandomState)
                else "RandomState(...)")
        return (f"make_imputation_scorer(modalities={self.modalities!r}, mode={self.mode!r}, "
                f"fraction={self.fraction!r}, metric={self.metric!r}, "
                f"n_repeats={self.n_repeats!r}, random_state={seed!s}, "
                f"stratify={self.stratify!r}, n_bins={self.n_bins!r})")


def check_n_bins(n_bins, stratify):
    """Refuse an ``n_bins`` that would be ignored (no ``stratify``)."""
    if stratify is None and n_bins != 5:
        raise ValueError(f"n_bins={n_bins!r} only applies with stratify='degree'; without "
                         f"stratify the hiding is uniform (leave n_bins at 5).")


def item_degrees(y, n_items):
    """Each item's interaction count (distinct users), the ``stratify="degree"`` values."""
    if y is None:
        raise ValueError("stratify='degree' hides by the items' interaction counts, which "
                         "come from y: pass the (n_items, n_users) interactions as y.")
    return np.diff(check_interactions(y, n_items, name="y").indptr)
