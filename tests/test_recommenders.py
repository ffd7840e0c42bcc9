"""What MILK and VBPR share: seeds alone decide results (not torch's global generator, not
threads), and the same scoring contract."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from skmm import MILKRecommender, VBPRRecommender
from skmm.datasets import make_multimodal

DATA = make_multimodal(150, 80, (12, 8), density=0.08, random_state=0)


def _milk(seed):
    return MILKRecommender(DATA.modalities, embedding_dim=8, batch_size=128, max_epochs=4,
                           device="cpu", random_state=seed)


def _vbpr(seed):
    return VBPRRecommender(n_factors=4, n_content_factors=4, batch_size=64, max_epochs=2,
                           device="cpu", random_state=seed)


@pytest.mark.parametrize("make", [_milk, _vbpr], ids=["milk", "vbpr"])
def test_global_generator_neither_matters_nor_changes(make):
    torch.manual_seed(1)
    first = make(0).fit(DATA.X, DATA.Y).decision_function(DATA.X)
    torch.manual_seed(2)
    state = torch.random.get_rng_state()
    second = make(0).fit(DATA.X, DATA.Y).decision_function(DATA.X)
    np.testing.assert_array_equal(first, second)
    assert torch.equal(torch.random.get_rng_state(), state)
    other = make(1).fit(DATA.X, DATA.Y).decision_function(DATA.X)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("make", [_milk, _vbpr], ids=["milk", "vbpr"])
def test_concurrent_fits_in_threads_match_sequential_ones(make):
    seeds = [0, 1, 2, 0, 1, 2]
    expected = {s: make(s).fit(DATA.X, DATA.Y).decision_function(DATA.X) for s in set(seeds)}
    with ThreadPoolExecutor(len(seeds)) as pool:
        got = list(pool.map(lambda s: make(s).fit(DATA.X, DATA.Y).decision_function(DATA.X),
                            seeds))
    for seed, scores in zip(seeds, got):
        np.testing.assert_array_equal(scores, expected[seed])


@pytest.mark.parametrize("make", [_milk, _vbpr], ids=["milk", "vbpr"])
def test_score_without_positives_is_nan_with_a_warning(make):
    import scipy.sparse as sp
    from sklearn.exceptions import UndefinedMetricWarning

    model = make(0).fit(DATA.X, DATA.Y)
    with pytest.warns(UndefinedMetricWarning, match="no user has a positive"):
        assert np.isnan(model.score(DATA.X, sp.csr_matrix(DATA.Y.shape)))
