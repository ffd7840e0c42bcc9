"""Negative sampling for pairwise (BPR) training, and the skorch iterator that uses it."""

import math

import numpy as np
import torch


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
        if self.candidates.size == 0:
            raise ValueError("there are no training items to draw negatives from.")
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
    epochs, so each epoch draws fresh negatives while the whole run stays reproducible.

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
