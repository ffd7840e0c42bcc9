"""Training pairs with fresh negatives, served to skorch in shuffled minibatches."""

import math

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .._sampling import NegativeSampler


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
        self.sampler = NegativeSampler(Y, candidates)
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
