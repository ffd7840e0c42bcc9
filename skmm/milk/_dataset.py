"""Training pairs with fresh negatives, served to skorch in shuffled minibatches."""

import math

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class ColdStartNegatives:
    """Draw, per (user, positive) pair, an item uniformly from the user's allowed negatives.

    A user's allowed negatives are the ``candidates`` (the training items) they have not
    interacted with. Items outside ``candidates`` (validation items, the items to be
    predicted) are never drawn, so no content of a new item reaches training through the
    sampler.

    Parameters
    ----------
    Y : scipy.sparse matrix of shape (n_items, n_users)
        Interactions that must never be drawn as negatives.
    candidates : array-like of int
        Items that may be drawn.
    """

    def __init__(self, Y, candidates):
        coo = Y.tocoo()
        self.n_items = Y.shape[0]
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


class NegativeSamplingDataset(Dataset):
    """(user, positive item, negative item) triples of the training interactions.

    Indexed by an array of pair positions, it returns a whole minibatch, drawing the negatives
    at that moment: every epoch sees fresh negatives, and the run is reproducible because
    ``rng`` is consumed in the same order every time.

    Parameters
    ----------
    Y : scipy.sparse matrix of shape (n_items, n_users)
        Training interactions (rows of validation and prediction items empty).
    candidates : array-like of int
        The training items: negatives are drawn from these only.
    rng : numpy.random.Generator
        Draws the negatives.

    Attributes
    ----------
    users, items : ndarray of int64, shape (n_pairs,)
        The user and positive item of every pair whose user has an allowed negative.
    n_dropped : int
        Pairs left out because their user interacted with every training item.
    """

    def __init__(self, Y, candidates, rng):
        self.sampler = ColdStartNegatives(Y, candidates)
        self.rng = rng
        coo = Y.tocoo()
        keep = self.sampler.has_negative(coo.col)
        self.users = coo.col[keep].astype(np.int64)
        self.items = coo.row[keep].astype(np.int64)
        self.n_dropped = int((~keep).sum())

    def __len__(self):
        return self.users.size

    def __getitem__(self, index):
        users = self.users[index]
        neg = self.sampler.sample(np.atleast_1d(users), self.rng)
        batch = {"users": torch.from_numpy(np.atleast_1d(users)),
                 "pos": torch.from_numpy(np.atleast_1d(self.items[index])),
                 "neg": torch.from_numpy(neg)}
        # skorch unpacks (X, y); BPR has no target.
        return batch, torch.zeros(neg.size)


class ShuffledBatches(Sampler):
    """Yields one array of pair positions per minibatch, in a fresh random order every epoch.

    Used as a ``DataLoader`` sampler with ``batch_size=None``, so that a minibatch is fetched
    (and its negatives drawn) in one vectorised call instead of one call per pair.

    Parameters
    ----------
    n_pairs : int
        Size of the dataset.
    batch_size : int
        Pairs per minibatch; the last one may be smaller.
    rng : numpy.random.Generator
        Shuffles the pairs.
    """

    def __init__(self, n_pairs, batch_size, rng):
        self.n_pairs = int(n_pairs)
        self.batch_size = int(batch_size)
        self.rng = rng

    def __len__(self):
        return math.ceil(self.n_pairs / self.batch_size)

    def __iter__(self):
        order = self.rng.permutation(self.n_pairs)
        for start in range(0, self.n_pairs, self.batch_size):
            yield order[start:start + self.batch_size]
