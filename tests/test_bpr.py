import numpy as np
import pytest
import scipy.sparse as sp
from skorch.dataset import Dataset

from skmm._bpr import BPRBatches, NegativeSampler

from .conftest import random_interactions


def test_negatives_are_never_positives_and_stay_in_candidates():
    Y = random_interactions(60, 30, 0.4, seed=0)
    candidates = np.arange(40)  # items 40..59 play the new items: never drawn
    sampler = NegativeSampler(Y, candidates)
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(30), 50)
    neg = sampler.sample(users, rng)
    assert np.isin(neg, candidates).all()
    dense = Y.toarray()
    assert not dense[neg, users].any()
    # The draw is uniform over a user's allowed candidates.
    allowed = np.flatnonzero(dense[:40, 0] == 0)
    draws = sampler.sample(np.zeros(20_000, np.int64), rng)
    counts = np.bincount(draws, minlength=40)
    expected = 20_000 / allowed.size
    assert counts[allowed].min() > 0.8 * expected and counts[allowed].max() < 1.2 * expected
    assert counts.sum() == counts[allowed].sum()


def test_sampler_refuses_impossible_users():
    Y = sp.csr_matrix(np.ones((3, 2)))
    sampler = NegativeSampler(Y)
    assert not sampler.has_negative(np.array([0, 1])).any()
    with pytest.raises(ValueError, match="interacted with every training item"):
        sampler.sample(np.array([0, 1]), np.random.default_rng(0))


def test_batches_draw_fresh_negatives_each_epoch_reproducibly():
    Y = random_interactions(50, 20, 0.3, seed=1)
    coo = Y.tocoo()
    pairs = np.stack([coo.col, coo.row], axis=1)

    def epochs(seed):
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(2):  # skorch builds a new iterator each epoch, sharing the rng
            batches = list(BPRBatches(Dataset(pairs, None), 32, NegativeSampler(Y), rng))
            out.append(np.concatenate([b[0]["neg"].numpy() for b in batches]))
            assert sum(len(b[1]) for b in batches) == len(pairs)
        return out

    first, second = epochs(0)
    assert not np.array_equal(first, second)
    again = epochs(0)
    np.testing.assert_array_equal(first, again[0])
    np.testing.assert_array_equal(second, again[1])
