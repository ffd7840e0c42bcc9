"""The base of every skmm recommender: fitting, seeding, devices, and ranking, written once.

A recommender is a factor model: the score of item ``i`` for user ``u`` is ``U[u] @ V[i]``.
Subclasses provide the model and its objective:

* ``_fit(X, Y, seed=..., device=...)`` trains (through :meth:`BaseRecommender._train`, the one
  BPR path) and returns the model's fitted attributes;
* ``_factors(X, items, device)`` returns the user factors ``U`` and the factors ``V`` of the
  rows of ``X`` as tensors on ``device``.

Everything else lives here, once: the shared parameters, the validation of ``X`` and ``y``,
the seed of a fit, the device policy, and ``decision_function`` / ``recommend`` / ``predict`` /
``score`` over the blocked top-k engine of :mod:`skmm.ranking`.

**Which rows are fitted items.** Items are the samples, so ``X`` at prediction is a matrix of
item rows. A row is recognised as a fitted item when its content is bit-identical to that
item's row in the ``X`` given to ``fit`` (compared by a 128-bit BLAKE2 digest of the row).
Transductive (warm-start) models score fitted items only, and refuse a row they cannot
identify; content models (MILK) score any row, and treat the rows they recognise as the fitted
items they are, so that ``exclude_seen`` leaves out what a user already interacted with.

**Devices.** Fitted state lives on the CPU, so an estimator trained on a GPU pickles and
unpickles anywhere. Scoring runs on ``device`` (resolved at each call: ``"auto"`` is CUDA when
available), with a copy of the model on that device cached outside the estimator's state (it
is never pickled, and does not change results).
"""

import copy
import threading
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._bpr import BPRBatches, BPRLoss, BPRNet
from ._rows import RowIndex
from ._random import seeded_global_generator
from ._validation import (
    Int,
    Real,
    check_interactions,
    check_users,
    interaction_target_tags,
    resolve_device,
    validate_features,
)
from .metrics._ranking import evaluate_factors
from .ranking import factor_topk_per_user

# Items scored at once by decision_function: bounds the device memory of a large catalogue.
_ITEM_CHUNK = 1 << 16


class BaseRecommender(BaseEstimator):
    """Base class of the skmm recommenders (factor models trained with BPR through skorch).

    Not meant to be used directly. Parameters shared by every recommender: ``lr`` (Adam's
    learning rate), ``batch_size`` (BPR triples per step), ``max_epochs``, ``k`` (cut-off of
    :meth:`recommend`, :meth:`predict` and :meth:`score`), ``device``, ``random_state`` and
    ``verbose``.

    Notes
    -----
    **An interrupted fit** (Ctrl-C, ``KeyboardInterrupt``) raises ``KeyboardInterrupt`` again
    after skorch has stopped the epoch loop: skorch alone would return a half-trained model.
    The estimator is left as it was before the call (fitted attributes are set only once
    training has finished).
    """

    _parameter_constraints: dict = {
        "lr": [Real(0, None, closed="neither")],
        "batch_size": [Int(1)],
        "max_epochs": [Int(1)],
        "k": [Int(1)],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    #: Whether the model scores only the fitted items (warm start) or any content.
    _transductive = False
    #: Whether ``X`` may hold NaN (missing modalities).
    _allow_nan = False

    def __init__(self, *, lr, batch_size, max_epochs, k, device, random_state, verbose):
        # Subclasses list every parameter in their own signature (scikit-learn's get_params
        # reads it) and hand the shared ones here.
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.k = k
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, **fit_params):
        """Train on the interactions ``y`` of the items ``X``.

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
            Item content, one column block per modality.
        y : {array-like, sparse matrix} of shape (n_items, n_users)
            Interactions, items as rows; any non-zero value is one interaction.
        **fit_params : dict
            Passed to the model's own fit (e.g. FREEDOM's ``y_val``).

        Returns
        -------
        self : object
            The fitted recommender.
        """
        X = self._validate_X(X, reset=True)
        Y = check_interactions(y, X.shape[0], name="y")
        if Y.nnz == 0:
            raise ValueError("y has no interactions to train on (it is empty or all zero).")
        attributes = self._fit(X, Y, seed=self._seed(), device=resolve_device(self.device),
                               **fit_params)
        # Only now, training complete, does the estimator change.
        for name, value in attributes.items():
            setattr(self, name, value)
        self.interactions_ = Y
        self.n_users_ = Y.shape[1]
        self._fitted_rows = RowIndex(X)
        self._scoring = _ScoringCache()
        return self

    def _seed(self):
        """The fit's seed: ``random_state`` itself when it is an int, else a draw from it."""
        if isinstance(self.random_state, (int, np.integer)):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _validate_X(self, X, reset):
        try:
            X = validate_features(self, X, dtype=np.float32, reset=reset,
                                  ensure_all_finite="allow-nan" if self._allow_nan else True)
        except ValueError as exc:
            if "NaN" not in str(exc) or self._allow_nan:
                raise
            raise ValueError(f"{exc} {type(self).__name__} needs complete item features: "
                             f"impute the missing modalities first, e.g. "
                             f"Pipeline([('impute', skmm.FeatPropImputer()), ('model', "
                             f"{type(self).__name__}(...))]).") from None
        return np.ascontiguousarray(X)  # torch.from_numpy refuses negative strides

    def _train(self, make_module, pairs, sampler, rng, *, seed, device, net=BPRNet,
               criterion=BPRLoss, callbacks=(), **net_params):
        """Train a module by BPR through skorch: the one training path of every model.

        ``make_module()`` is called with torch's global generator seeded by ``seed`` (so the
        initial weights depend on the seed only, see :mod:`skmm._random`); batches come from
        :class:`~skmm._bpr.BPRBatches` with ``rng``. With no pair to train on the module keeps
        its initial weights (``training_pairs`` has warned). Returns the trained net.
        """
        try:
            with seeded_global_generator(seed):
                module = make_module()
        except (RuntimeError, MemoryError) as exc:  # torch's allocator, impossible sizes
            raise ValueError(f"{type(self).__name__} could not build its model with "
                             f"{self._size_parameters()}: {str(exc).splitlines()[0]}") from None
        trainer = net(module, criterion=criterion, optimizer=torch.optim.Adam, lr=self.lr,
                      batch_size=self.batch_size, max_epochs=self.max_epochs,
                      iterator_train=BPRBatches, iterator_train__sampler=sampler,
                      iterator_train__rng=rng, train_split=None, callbacks=list(callbacks),
                      device=device, verbose=self.verbose, **net_params)
        trainer.initialize()
        if len(pairs):
            trainer.partial_fit(pairs, None)
        if trainer.interrupted_:
            raise KeyboardInterrupt(f"{type(self).__name__}.fit was interrupted; the estimator "
                                    f"is left as it was before the call.")
        return trainer

    def _size_parameters(self):
        """The parameters that set the model's size, for error messages."""
        params = self.get_params()
        return ", ".join(f"{k}={params[k]!r}" for k in params
                         if k.startswith("n_") or k.endswith("_dim"))

    @staticmethod
    def _training_summary(trainer):
        """Fitted attributes every model reports: the module on the CPU, history, epochs."""
        stopping = dict(trainer.callbacks_).get("early_stopping")
        n_epochs = len(trainer.history)
        # EarlyStopping(load_best=True) restored its best epoch's weights; without it the
        # weights are the last epoch's.
        best = stopping.best_epoch_ if stopping is not None and n_epochs else n_epochs
        module = trainer.module_.cpu().eval()
        return {"module_": module, "history_": trainer.history, "n_epochs_": n_epochs,
                "best_epoch_": int(best), "device_": str(trainer.device)}

    # ------------------------------------------------------------------ scoring

    def _items(self, X):
        """Validated ``X``, per row the fitted item it is (-1: none or several), and the
        sparse matrix of all its matches among the fitted items."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        items, matches = self._fitted_rows.match(X)
        if self._transductive:
            unknown = np.flatnonzero(items < 0)
            if unknown.size:
                raise ValueError(
                    f"{type(self).__name__} is a warm-start model: it scores the items it was "
                    f"fitted on, recognised by their content, but {unknown.size} row(s) of X "
                    f"(rows {', '.join(map(str, unknown[:5]))}{', ...' if unknown.size > 5 else ''}"
                    f") match no fitted item, or several identical ones. Pass rows of the "
                    f"fitted X (refit to score other items).")
        return X, items, matches

    def _device_module(self, device):
        """The fitted module on ``device``: itself on the CPU, else a cached copy."""
        if device.type == "cpu":
            return self.module_
        return self._scoring.get(device, "module",
                                 lambda: copy.deepcopy(self.module_).to(device))

    def _scores_inputs(self, X):
        """``(U, V, seen)``: user factors, factors of the rows of ``X`` (tensors on the
        scoring device) and the sparse (n_rows, n_users) fitted interactions of the rows that
        are fitted items (a row matching several identical fitted items has all of theirs)."""
        X, items, matches = self._items(X)
        device = resolve_device(self.device)
        with torch.no_grad():
            U, V = self._factors(X, items, device)
        return U, V, (matches @ self.interactions_).tocsr()

    def decision_function(self, X):
        """Scores of every row of ``X`` (items) for every fitted user.

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
            The items to score.

        Returns
        -------
        scores : ndarray of shape (n_items, n_users)
            Higher means more recommended. This is a dense matrix: for large catalogues use
            :meth:`recommend` or :meth:`score`, which never build it.
        """
        U, V, _ = self._scores_inputs(X)
        out = np.empty((V.shape[0], U.shape[0]), dtype=np.float32)
        with torch.no_grad():
            for s in range(0, V.shape[0], _ITEM_CHUNK):
                out[s:s + _ITEM_CHUNK] = (V[s:s + _ITEM_CHUNK] @ U.T).cpu().numpy()
        return out

    def recommend(self, X, k=None, users=None, exclude_seen=True):
        """The top-``k`` rows of ``X`` for each user, best first.

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
            The candidate items.
        k : int, default=None
            Items per user; None uses the estimator's ``k``.
        users : array-like of int, default=None
            Users (column indices of the fitted ``y``) to recommend for; None means all.
        exclude_seen : bool, default=True
            Leave out, for each user, the rows that are fitted items the user interacted with
            in the ``y`` given to :meth:`fit` (rows are recognised as fitted items by their
            content; new items have no such interactions).

        Returns
        -------
        items : ndarray of int64, shape (n_selected_users, min(k, n_items))
            Row indices of ``X``, best first; among equal scores the lower index first. Where
            a user has fewer than ``k`` rows left after the exclusion, the remaining slots
            hold -1: an excluded row is never returned.
        """
        k = self.k if k is None else _check_param("k", k, Int(1), "recommend")
        _check_param("exclude_seen", exclude_seen, "boolean", "recommend")
        U, V, seen = self._scores_inputs(X)
        users = check_users(users, self.n_users_)
        exclude = seen.T.tocsr() if exclude_seen else None
        k_eff = min(k, V.shape[0])
        if users.size == 0:
            return np.zeros((0, k_eff), np.int64)
        with torch.no_grad():
            parts = []
            for _, top, values in factor_topk_per_user(U, V, users, k, exclude=exclude):
                top = top.cpu().numpy()
                top[~torch.isfinite(values).cpu().numpy()] = -1  # only excluded rows are -inf
                parts.append(top)
        return np.concatenate(parts)

    def predict(self, X):
        """Which rows of ``X`` are in each user's top ``k`` (seen items excluded).

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
            The candidate items.

        Returns
        -------
        recommended : scipy.sparse.csr_matrix of bool, shape (n_items, n_users)
            True where the item is among the user's top ``k`` (as :meth:`recommend`).
        """
        top = self.recommend(X)
        cols = np.repeat(np.arange(top.shape[0]), top.shape[1])
        keep = top.ravel() >= 0
        return sp.csr_matrix((np.ones(keep.sum(), dtype=bool), (top.ravel()[keep], cols[keep])),
                             shape=(_n_rows(X), self.n_users_))

    def evaluate(self, X, y, *, metrics=("recall", "ndcg"), k=None):
        """Top-k metrics of the rows of ``X`` against held-out interactions ``y``.

        Each user ranks the rows of ``X`` only, with the fitted interactions of recognised
        rows excluded (as :meth:`recommend`), in blocks (the score matrix is never built).

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
            The items to rank.
        y : {array-like, sparse matrix} of shape (n_items, n_users)
            Their held-out interactions with the fitted users.
        metrics : sequence of {"recall", "ndcg", "precision", "hit_rate"}, \
                default=("recall", "ndcg")
            The metrics, as :func:`skmm.metrics.evaluate_factors` computes them.
        k : int, default=None
            Cut-off; None uses the estimator's ``k``.

        Returns
        -------
        values : dict
            The mean of each metric over the users with a positive in ``y`` (NaN, with an
            ``UndefinedMetricWarning``, when there is none).
        """
        k = self.k if k is None else _check_param("k", k, Int(1), "evaluate")
        U, V, seen = self._scores_inputs(X)
        Y = check_interactions(y, V.shape[0], name="y")
        if Y.shape[1] != self.n_users_:
            raise ValueError(f"y has {Y.shape[1]} user columns but the model was fitted on "
                             f"{self.n_users_} users.")
        return evaluate_factors(Y, U, V, k=k, exclude=seen, metrics=metrics)

    def score(self, X, y):
        """Mean NDCG@k of the rows of ``X`` over the users with a positive in ``y``.

        Each user ranks the rows of ``X`` only, with the fitted interactions of recognised
        rows excluded (as :meth:`recommend`). With held-out items this is cold-start
        evaluation; with the fitted items and held-out interactions, warm-start evaluation.

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
            The items to rank.
        y : {array-like, sparse matrix} of shape (n_items, n_users)
            Their held-out interactions with the fitted users.

        Returns
        -------
        score : float
            NDCG@k over each user's full ranking, computed block by block (the score matrix
            is never built); NaN, with an ``UndefinedMetricWarning``, when no user has a
            positive in ``y``.
        """
        value = self.evaluate(X, y, metrics=("ndcg",))["ndcg"]
        if self._transductive:
            Y = check_interactions(y, _n_rows(X), name="y")
            cold = (Y.getnnz(axis=0) > 0) & (self.interactions_.getnnz(axis=0) == 0)
            if cold.any():
                warnings.warn(f"{int(cold.sum())} user(s) with positives in y had no training "
                              f"interaction: their scores come from their initial embedding "
                              f"(drop their columns from y to leave them out).", UserWarning,
                              stacklevel=2)
        return value

    # ------------------------------------------------------------------ state

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_scoring", None)  # device copies are rebuilt on demand, never pickled
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "module_" in state:
            self._scoring = _ScoringCache()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self._allow_nan
        return interaction_target_tags(tags, required=True)


def _check_param(name, value, constraint, caller):
    """Validate one method argument with scikit-learn's parameter constraints."""
    from sklearn.utils._param_validation import validate_parameter_constraints

    validate_parameter_constraints({name: [constraint]}, {name: value}, caller_name=caller)
    return value


def _n_rows(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)


class _ScoringCache:
    """Per-device copies of a fitted model, kept beside (not in) the estimator's state.

    One object per fit: ``check_dict_unchanged`` sees the same object before and after a
    prediction, the copies are dropped when pickling, and a refit starts a fresh cache.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._store = {}

    def get(self, device, what, build):
        key = (str(device), what)
        with self._lock:
            if key not in self._store:
                self._store[key] = build()
            return self._store[key]
