"""Pairwise (BPR) training, once for every recommender: pairs, negatives, batches, loss, net.

Every skmm recommender learns from (user, positive item, negative item) triples:

* :func:`training_pairs` lists the (user, item) interactions that can be trained on;
* :class:`NegativeSampler` draws one negative per pair, uniformly among the candidate items the
  user has not interacted with;
* :class:`BPRBatches` is skorch's ``iterator_train``: each epoch it shuffles the pairs and draws
  fresh negatives from one numpy generator, so a run is reproducible from its seed;
* :func:`bpr_loss` is the mean ``softplus(s_neg - s_pos)``;
* :class:`BPRNet` is the skorch net they train with. Models extend it through skorch's
  documented hook, ``get_loss``.
"""

import math
import warnings

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping

from .metrics._ranking import evaluate_factors


def training_pairs(Y, candidates=None):
    """The (user, item) pairs of ``Y`` that can be trained on, and their negative sampler.

    A user whose interactions cover every candidate item has no negative to contrast them
    with: their pairs are left out. When no pair is left at all, a ``UserWarning`` says so and
    the pairs are empty (the model then keeps its initial weights).

    Parameters
    ----------
    Y : scipy.sparse matrix of shape (n_items, n_users)
        Binary training interactions.
    candidates : array-like of int, default=None
        Items that may be drawn as negatives; None allows every item.

    Returns
    -------
    pairs : ndarray of int64, shape (n_pairs, 2)
        User and positive item of each pair, in the order of ``Y.tocoo()``.
    sampler : NegativeSampler
        Draws the negatives.
    """
    sampler = NegativeSampler(Y, candidates)
    coo = Y.tocoo()
    keep = sampler.has_negative(coo.col)
    pairs = np.stack([coo.col[keep], coo.row[keep]], axis=1).astype(np.int64)
    if coo.nnz and not len(pairs):
        warnings.warn("no negative can be drawn: every user interacted with every candidate "
                      "item, so BPR has nothing to contrast and the model keeps its initial "
                      "weights.", UserWarning, stacklevel=3)
    return pairs, sampler


class NegativeSampler:
    """Draw, per (user, positive) pair, an item uniformly from the user's allowed negatives.

    A user's allowed negatives are the ``candidates`` (the training items) they have not
    interacted with. Items outside ``candidates`` (validation items, the items to be
    predicted) are never drawn, so no content of a new item reaches training through the
    sampler.

    Parameters
    ----------
    Y : scipy.sparse matrix of shape (n_items, n_users)
        Interactions that must never be drawn as negatives.
    candidates : array-like of int, default=None
        Items that may be drawn; None allows every item.
    """

    def __init__(self, Y, candidates=None):
        coo = Y.tocoo()
        self.n_items = Y.shape[0]
        if candidates is None:
            candidates = np.arange(self.n_items)
        self.candidates = np.unique(np.asarray(candidates, dtype=np.int64))
        # One sorted int64 key per (user, item) interaction: membership is a searchsorted.
        self._keys = np.unique(coo.col.astype(np.int64) * self.n_items + coo.row)
        in_candidates = np.isin(coo.row, self.candidates)
        self.n_positive_candidates = np.bincount(coo.col[in_candidates],
                                                 minlength=Y.shape[1])

    def has_negative(self, users):
        """True where the user has at least one allowed negative."""
        return self.n_positive_candidates[users] < self.candidates.size

    def is_positive(self, users, items):
        """Boolean array: True where ``(users[j], items[j])`` is an interaction."""
        if self._keys.size == 0:
            return np.zeros(len(users), dtype=bool)
        keys = users.astype(np.int64) * self.n_items + items
        pos = np.minimum(np.searchsorted(self._keys, keys), self._keys.size - 1)
        return self._keys[pos] == keys

    def sample(self, users, rng, rejection_rounds=20):
        """One negative per entry of ``users``; every user must have an allowed negative."""
        users = np.asarray(users, dtype=np.int64)
        draw = self.candidates[rng.integers(self.candidates.size, size=users.size)]
        todo = np.arange(users.size)
        for _ in range(rejection_rounds):
            todo = todo[self.is_positive(users[todo], draw[todo])]
            if todo.size == 0:
                return draw
            draw[todo] = self.candidates[rng.integers(self.candidates.size, size=todo.size)]
        todo = todo[self.is_positive(users[todo], draw[todo])]
        # Users with almost every candidate as a positive: draw from their complement exactly.
        # A rejected draw leaves the accepted one uniform, so switching method keeps it uniform.
        for user in np.unique(users[todo]):
            rows = todo[users[todo] == user]
            lo, hi = np.searchsorted(self._keys, [user * self.n_items,
                                                  (user + 1) * self.n_items])
            seen = self._keys[lo:hi] - user * self.n_items
            allowed = np.setdiff1d(self.candidates, seen, assume_unique=True)
            if allowed.size == 0:
                raise ValueError(f"user {user} interacted with every training item: no "
                                 f"negative can be drawn.")
            draw[rows] = allowed[rng.integers(allowed.size, size=rows.size)]
        return draw


class BPRBatches:
    """skorch ``iterator_train``: shuffled (user, positive, negative) batches.

    skorch creates the iterator anew every epoch; the ``rng`` it receives persists across
    epochs, so each epoch shuffles the pairs and draws all its negatives afresh (in that
    order, from that one generator) while the whole run stays reproducible.

    Parameters
    ----------
    dataset : skorch.dataset.Dataset
        Its ``X`` is an int array of shape (n_pairs, 2): user and positive item of each pair.
    batch_size : int
        Pairs per batch.
    sampler : NegativeSampler
        Draws the negatives.
    rng : numpy.random.Generator
        Shuffles pairs and draws negatives.
    shuffle : bool, default=True
        Shuffle the pairs every epoch.
    """

    def __init__(self, dataset, batch_size, sampler, rng, shuffle=True):
        self.pairs = np.asarray(dataset.X)
        self.batch_size = batch_size
        self.sampler = sampler
        self.rng = rng
        self.shuffle = shuffle

    def __len__(self):
        return math.ceil(len(self.pairs) / self.batch_size)

    def __iter__(self):
        pairs = self.pairs[self.rng.permutation(len(self.pairs))] if self.shuffle else self.pairs
        users = torch.from_numpy(pairs[:, 0].astype(np.int64))
        pos = torch.from_numpy(pairs[:, 1].astype(np.int64))
        neg = torch.from_numpy(self.sampler.sample(pairs[:, 0], self.rng))
        for start in range(0, len(pairs), self.batch_size):
            sl = slice(start, start + self.batch_size)
            yield ({"users": users[sl], "pos": pos[sl], "neg": neg[sl]},
                   torch.zeros(users[sl].shape[0]))


def bpr_loss(s_pos, s_neg):
    """Mean BPR loss ``softplus(s_neg - s_pos) = -log sigmoid(s_pos - s_neg)`` of a batch."""
    return torch.nn.functional.softplus(s_neg - s_pos).mean()


class BPRLoss(torch.nn.Module):
    """:func:`bpr_loss` as skorch's criterion: ``y_pred`` is ``(s_pos, s_neg)``."""

    def forward(self, y_pred, y_true=None):
        s_pos, s_neg = y_pred
        return bpr_loss(s_pos, s_neg)


class StopTraining(KeyboardInterrupt):
    """Raised by :class:`ValidatedEarlyStopping` to end training.

    skorch's callbacks stop the epoch loop by raising ``KeyboardInterrupt``; this subclass
    tells that planned stop apart from a user's Ctrl-C.
    """


class ValidatedEarlyStopping(EarlyStopping):
    """skorch's early stopping, counting only the epochs that were validated.

    With validation every ``n`` epochs, ``patience`` is a number of validations (MILK's paper
    schedule); it stops by raising :class:`StopTraining`.
    """

    def on_epoch_end(self, net, **kwargs):
        if self.monitor not in net.history[-1]:
            return
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt:
            raise StopTraining from None


class RankingValidation(Callback):
    """Record a top-k metric of held-out interactions every ``interval`` epochs.

    Parameters
    ----------
    factors : callable
        ``factors(module, device)`` returns ``(U, V)``, the user factors and the factors of
        the validation items, scored as ``U @ V.T``.
    Y_val : scipy.sparse matrix of shape (n_val_items, n_users)
        Held-out interactions, rows aligned with ``V``.
    k : int
        Cut-off.
    metric : {"ndcg", "recall"}, default="ndcg"
        The recorded metric.
    exclude : scipy.sparse matrix of shape (n_val_items, n_users), default=None
        Interactions never ranked (the training ones, for a warm-start model).
    interval : int, default=1
        Validate at epochs ``interval``, ``2 * interval``, ...
    name : str, default="valid_ndcg"
        History key of the value; ``name + "_best"`` flags improvements for skorch's log.
    """

    def __init__(self, factors, Y_val, k, metric="ndcg", exclude=None, interval=1,
                 name="valid_ndcg"):
        self.factors = factors
        self.Y_val = Y_val
        self.k = k
        self.metric = metric
        self.exclude = exclude
        self.interval = interval
        self.name = name

    def on_train_begin(self, net, **kwargs):
        self.best_ = -np.inf

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) % self.interval:
            return
        module = net.module_
        was_training = module.training
        module.eval()
        with torch.no_grad():
            U, V = self.factors(module, net.device)
            values = evaluate_factors(self.Y_val, U, V, k=self.k, exclude=self.exclude,
                                      metrics=(self.metric,), per_user=True)[self.metric]
        module.train(was_training)
        value = float(values.mean()) if values.size else float("nan")
        net.history.record(self.name, value)
        net.history.record(self.name + "_best", bool(value > self.best_))
        self.best_ = max(self.best_, value)


class BPRNet(NeuralNet):
    """The skorch net of every skmm recommender: BPR batches in, a re-raised interrupt out.

    Models add their own terms by overriding :meth:`get_loss` (skorch's documented hook), which
    receives the batch as ``X`` (``users``, ``pos``, ``neg`` tensors). skorch's ``partial_fit``
    swallows ``KeyboardInterrupt`` and returns a half-trained net; this net records the
    interrupt in ``interrupted_`` so that the estimator can raise it again instead of using
    that net (see :meth:`skmm.base.BaseRecommender.fit`).
    """

    interrupted_ = False

    def fit_loop(self, X, y=None, **fit_params):
        self.interrupted_ = False
        try:
            return super().fit_loop(X, y, **fit_params)
        except StopTraining:
            raise
        except KeyboardInterrupt:
            self.interrupted_ = True
            raise

    def batch_tensors(self, X):
        """The batch's ``(users, pos, neg)`` index tensors on the net's device."""
        return tuple(X[key].to(self.device) for key in ("users", "pos", "neg"))
