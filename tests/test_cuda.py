"""What must hold on a CUDA device (skipped without one; ``make bench-gpu`` runs them).

Training on the GPU draws the same batches (numpy generators) from the same initial weights
(built on the CPU), so its results match the CPU's up to float summation order; scoring and
ranking a fitted model on the GPU give the CPU's results; a model fitted on the GPU pickles
and scores on a machine without one (its fitted state lives on the CPU).
"""

import pickle

import numpy as np
import pytest
import torch

from skmm import FeatPropImputer, MILKRecommender, VBPRRecommender
from skmm.datasets import interaction_split, make_multimodal, simulate_missing
from skmm.metrics import evaluate_factors

from .conftest import requires_cuda

DATA = make_multimodal(300, 120, (16, 8), density=0.06, random_state=0)


def _models(device):
    return {
        "vbpr": VBPRRecommender(max_epochs=3, batch_size=256, device=device, random_state=0),
        "milk": MILKRecommender(DATA.modalities, embedding_dim=16, max_epochs=3,
                                batch_size=256, device=device, random_state=0),
    }


@requires_cuda
@pytest.mark.parametrize("name", ["vbpr", "milk"])
def test_recommender_trained_on_cuda_matches_cpu_and_unpickles_on_cpu(name):
    Y_train, Y_test = interaction_split(DATA.Y, 0.2, random_state=0)
    cpu = _models("cpu")[name].fit(DATA.X, Y_train)
    gpu = _models("cuda")[name].fit(DATA.X, Y_train)
    assert gpu.device_.startswith("cuda")
    assert all(p.device.type == "cpu" for p in gpu.module_.parameters())
    np.testing.assert_allclose(gpu.decision_function(DATA.X), cpu.decision_function(DATA.X),
                               rtol=1e-3, atol=1e-4)
    restored = pickle.loads(pickle.dumps(gpu))
    restored.set_params(device="cpu")
    np.testing.assert_allclose(restored.decision_function(DATA.X),
                               gpu.decision_function(DATA.X), rtol=1e-5, atol=1e-6)


@requires_cuda
@pytest.mark.parametrize("name", ["vbpr", "milk"])
def test_scoring_on_cuda_equals_cpu_for_one_fitted_model(name):
    Y_train, Y_test = interaction_split(DATA.Y, 0.2, random_state=1)
    model = _models("cpu")[name].fit(DATA.X, Y_train)
    on_cpu = model.recommend(DATA.X, k=10), model.score(DATA.X, Y_test)
    model.set_params(device="cuda")
    on_gpu = model.recommend(DATA.X, k=10), model.score(DATA.X, Y_test)
    # Float scores may differ in the last bits between devices, and so the order of near-ties.
    assert np.mean(on_cpu[0] == on_gpu[0]) > 0.95
    assert on_gpu[1] == pytest.approx(on_cpu[1], abs=1e-3)


@requires_cuda
def test_ranking_engine_on_cuda_keeps_the_tie_rule():
    rng = np.random.default_rng(0)
    U = rng.integers(-2, 3, size=(200, 4)).astype(np.float32)  # integer scores: many ties
    V = rng.integers(-2, 3, size=(5000, 4)).astype(np.float32)
    Y = (rng.random((5000, 200)) < 0.01).astype(np.float32)
    cpu = evaluate_factors(Y, U, V, k=20, per_user=True, metrics=("ndcg", "recall"))
    gpu = evaluate_factors(Y, U, V, k=20, per_user=True, metrics=("ndcg", "recall"),
                           device="cuda", item_batch_size=777)
    for key in ("ndcg", "recall"):
        np.testing.assert_array_equal(gpu[key], cpu[key])  # integer scores: exact everywhere


@requires_cuda
def test_featprop_on_cuda_matches_cpu():
    X_miss, _ = simulate_missing(DATA.X, DATA.modalities, 0.5, random_state=0)
    cpu = FeatPropImputer(device="cpu").fit_transform(X_miss, DATA.Y)
    gpu = FeatPropImputer(device="cuda").fit_transform(X_miss, DATA.Y)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-6)
    assert torch.cuda.is_available()
