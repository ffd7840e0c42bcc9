"""cross_validate and cross_val_score for an (n_items, n_users) sparse interaction matrix."""

import time

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.utils._param_validation import HasMethods, validate_params


def _rows(A, idx):
    """Rows ``idx`` of an array, sparse matrix or DataFrame (items are the samples)."""
    if hasattr(A, "iloc"):
        return A.iloc[idx]
    if sp.issparse(A):
        return A.tocsr()[idx]
    return np.asarray(A)[idx]


def _fit_and_score(estimator, X, y, train, test, scorer, return_train_score):
    tic = time.perf_counter()
    estimator.fit(_rows(X, train), _rows(y, train))
    fit_time = time.perf_counter() - tic
    tic = time.perf_counter()
    result = {"test_score": scorer(estimator, _rows(X, test), _rows(y, test))}
    result["score_time"] = time.perf_counter() - tic
    result["fit_time"] = fit_time
    if return_train_score:
        result["train_score"] = scorer(estimator, _rows(X, train), _rows(y, train))
    result["estimator"] = estimator
    return result


@validate_params(
    {
        "estimator": [HasMethods("fit")],
        "X": ["array-like", "sparse matrix"],
        "y": ["array-like", "sparse matrix"],
        "scoring": [str, callable, None],
        "cv": ["cv_object"],
        "n_jobs": [int, None],
        "return_train_score": ["boolean"],
        "return_estimator": ["boolean"],
    },
    prefer_skip_nested_validation=False,
)
def cross_validate(estimator, X, y, *, scoring=None, cv=None, n_jobs=None,
                   return_train_score=False, return_estimator=False):
    """Evaluate an estimator by cross-validation over items, ``y`` an interaction matrix.

    The same as :func:`sklearn.model_selection.cross_validate` for one scorer, except that
    ``y`` may be a sparse (n_items, n_users) matrix (scikit-learn's own function refuses it):
    each fold fits a clone on the training items' rows of ``X`` and ``y`` and scores it on the
    test items' rows. With folds over items this is cold-start validation; for warm-start
    models use ``cv=AllItemsSplit()`` and a scorer that holds out interactions
    (:func:`skmm.metrics.make_warm_start_scorer`).

    Parameters
    ----------
    estimator : estimator
        Cloned for every fold.
    X : {array-like, sparse matrix} of shape (n_items, n_features)
        Item features.
    y : {array-like, sparse matrix} of shape (n_items, n_users)
        Interactions, items as rows.
    scoring : str, callable or None, default=None
        A scorer ``scorer(estimator, X, y)``, a scikit-learn scorer name, or None for the
        estimator's ``score`` method.
    cv : int, cross-validation generator or iterable, default=None
        As in scikit-learn (None: 5-fold over items; not stratified, ``y`` is not a label).
    n_jobs : int, default=None
        Folds fitted in parallel with joblib.
    return_train_score : bool, default=False
        Also score each fold on its training items.
    return_estimator : bool, default=False
        Also return the fitted estimator of each fold.

    Returns
    -------
    scores : dict of ndarray
        ``test_score``, ``fit_time``, ``score_time`` (one entry per fold), and
        ``train_score`` / ``estimator`` when asked for.

    Examples
    --------
    >>> from skmm import MILKRecommender
    >>> from skmm.datasets import make_multimodal
    >>> from skmm.model_selection import cross_validate
    >>> data = make_multimodal(120, 60, (4, 4), density=0.1, random_state=0)
    >>> model = MILKRecommender(data.modalities, max_epochs=2, device="cpu", random_state=0)
    >>> cross_validate(model, data.X, data.Y, cv=3)["test_score"].shape
    (3,)
    """
    n_x, n_y = X.shape[0] if hasattr(X, "shape") else len(X), y.shape[0] if hasattr(
        y, "shape") else len(y)
    if n_x != n_y:
        raise ValueError(f"X and y must have one row per item: X has {n_x} rows, y {n_y}.")
    cv = check_cv(cv, y=None, classifier=False)
    scorer = check_scoring(estimator, scoring=scoring)
    folds = Parallel(n_jobs=n_jobs)(
        delayed(_fit_and_score)(clone(estimator), X, y, train, test, scorer,
                                return_train_score)
        for train, test in cv.split(X))
    keys = ["test_score", "fit_time", "score_time"] + (["train_score"] if return_train_score
                                                       else [])
    out = {key: np.array([fold[key] for fold in folds]) for key in keys}
    if return_estimator:
        out["estimator"] = [fold["estimator"] for fold in folds]
    return out


def cross_val_score(estimator, X, y, *, scoring=None, cv=None, n_jobs=None):
    """The ``test_score`` of :func:`cross_validate`: one score per fold.

    Parameters
    ----------
    estimator, X, y
        As in :func:`cross_validate`: the estimator cloned for every fold, the
        (n_items, n_features) item features, the (n_items, n_users) interactions.
    scoring : str, callable or None, default=None
        As in :func:`cross_validate`.
    cv : int, cross-validation generator or iterable, default=None
        As in :func:`cross_validate`.
    n_jobs : int, default=None
        Folds fitted in parallel with joblib.

    Returns
    -------
    scores : ndarray of shape (n_splits,)
        The test score of each fold.
    """
    return cross_validate(estimator, X, y, scoring=scoring, cv=cv, n_jobs=n_jobs)["test_score"]
