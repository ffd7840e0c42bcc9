"""Negative sampling for pairwise (BPR) training, and the skorch iterator that uses it."""

import math

import numpy as np
import torch


class NegativeSampler:
    """Draw, for each user, an item uniformly from candidates the user has not interacted with.

    Parameters
    ----------
    Y : scipy.sparse matrix of shape (n_items, n_users)
        Interactions that must never be drawn as negatives.
    candidates : array-like of int, default=None
        Items that may be drawn (for cold-start training: the training items only, never the
        items to be predicted). None allows every item.
    """

    def __init__(self, Y, candidates=None):
        coo = Y.tocoo()
        self.n_items = Y.shape[0]
        # One sorted int64 key per interaction: membership tests are a vectorised searchsorted.
        self._keys = np.unique(coo.col.astype(np.int64) * self.n_items + coo.row)
        self.candidates = (np.arange(self.n_items) if candidates is None
                           else np.asarray(candidates, dtype=np.int64))
        if self.candidates.size == 0:
            raise ValueError("there are no candidate items to draw negatives from.")

    def is_positive(self, users, items):
        """Boolean array: True where ``(users[j], items[j])`` is an interaction."""
        keys = users.astype(np.int64) * self.n_items + items
        pos = np.searchsorted(self._keys, keys)
        pos = np.minimum(pos, len(self._keys) - 1)
        return (self._keys.size > 0) & (self._keys[pos] == keys)

    def sample(self, users, rng, max_rounds=1000):
        """One negative item per entry of ``users`` (rejection sampling, vectorised)."""
        users = np.asarray(users, dtype=np.int64)
        draw = self.candidates[rng.integers(self.candidates.size, size=users.size)]
        todo = np.arange(users.size)
        for _ in range(max_rounds):
            todo = todo[self.is_positive(users[todo], draw[todo])]
            if todo.size == 0:
                return draw
            draw[todo] = self.candidates[rng.integers(self.candidates.size, size=todo.size)]
        raise ValueError(f"could not draw negatives for {todo.size} pair(s): their users "
                         f"interacted with (almost) every candidate item.")


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
