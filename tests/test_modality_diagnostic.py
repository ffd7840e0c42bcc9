"""skmm.inspection.modality_ranking: each modality's projection alone against the equal mix."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.pipeline import make_pipeline

from skmm import FeatPropImputer, MILKRecommender
from skmm.datasets import make_multimodal, simulate_missing
from skmm.inspection import modality_ranking

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DUIF = {"environments": "none", "invariance_weight": 0.0, "alignment_weight": 0.0}


@pytest.fixture(scope="module")
def fitted():
    data = make_multimodal(260, 120, (12, 6), density=0.06, random_state=3)
    model = MILKRecommender(data.modalities, max_epochs=8, validation_fraction=0.0,
                            device="cpu", random_state=0).fit(data.X[:200], data.Y[:200])
    return data, model


def _reference_metrics(Y, scores, k, exclude=None):
    """NDCG@k and Recall@k by hand: every user with a positive sorts the rows by score
    (ties to the lower row), drops the excluded ones, and counts the hits of the top k."""
    Y = np.asarray(Y.todense()) > 0
    excluded = np.zeros_like(Y) if exclude is None else np.asarray(exclude.todense()) > 0
    ndcg, recall = [], []
    for u in np.flatnonzero(Y.any(axis=0)):
        order = [i for i in np.argsort(-scores[:, u], kind="stable") if not excluded[i, u]]
        hits = Y[order[:k], u]
        n_pos = Y[:, u].sum()
        dcg = sum(1 / np.log2(r + 2) for r in np.flatnonzero(hits))
        ideal = sum(1 / np.log2(r + 2) for r in range(min(n_pos, k, Y.shape[0])))
        ndcg.append(dcg / ideal)
        recall.append(hits.sum() / n_pos)
    return np.mean(ndcg), np.mean(recall)


def _numpy_projections(model, X, X_train):
    """Each modality's projection from the module's weights, in numpy: blocks L2-normalised
    row-wise, a missing block replaced by the mean of the normalised observed training
    blocks, then ``W_m z + b_m``."""
    edges = np.concatenate(([0], np.cumsum(model.modalities_)))
    P = []
    for m, enc in enumerate(model.module_.encoders):
        a, b = edges[m], edges[m + 1]
        normalise = lambda B: B / np.linalg.norm(B, axis=1, keepdims=True)  # noqa: E731
        train = X_train[:, a:b].astype(np.float64)
        train = normalise(train[~np.isnan(train).any(axis=1)])
        Z = X[:, a:b].astype(np.float64)
        missing = np.isnan(Z).any(axis=1)
        Z[missing] = 0.0
        Z[~missing] = normalise(Z[~missing])
        Z[missing] = train.mean(axis=0)
        W = enc.weight.detach().numpy().astype(np.float64)
        P.append(Z @ W.T + enc.bias.detach().numpy())
    return P


@pytest.mark.parametrize("rows", ["new items", "fitted items"])
def test_matches_numpy_from_the_module_weights(fitted, rows):
    data, model = fitted
    if rows == "new items":  # held out, a third of them missing one modality
        X, _ = simulate_missing(data.X[200:], data.modalities, 0.35, mode="one",
                                random_state=1)
        Y, exclude = data.Y[200:], None
    else:  # fitted items: each user's fitted interactions are excluded from the ranking
        X, Y = data.X[:200], sp.random(200, 120, density=0.05, random_state=2, format="csr")
        exclude = data.Y[:200]
    got = modality_ranking(model, X, Y, k=7)
    P = _numpy_projections(model, X, data.X[:200])
    U = model.module_.user_embedding.weight.detach().numpy().astype(np.float64)
    assert got.names == ["modality_0", "modality_1", "mix"]
    for j, V in enumerate([*P, np.mean(P, axis=0)]):
        ndcg, recall = _reference_metrics(Y, V @ U.T, 7, exclude)
        np.testing.assert_allclose([got.ndcg[j], got.recall[j]], [ndcg, recall], atol=1e-6)


def test_mix_is_what_evaluate_reports(fitted):
    data, model = fitted
    got = modality_ranking(model, data.X[200:], data.Y[200:], k=10,
                           metrics=["recall", "ndcg", "hit_rate"])
    expected = model.evaluate(data.X[200:], data.Y[200:], metrics=("recall", "ndcg",
                                                                   "hit_rate"), k=10)
    for metric, value in expected.items():
        assert got[metric][-1] == pytest.approx(value, abs=1e-12)
    assert got.k == 10 and set(got) == {"names", "k", "recall", "ndcg", "hit_rate"}


def test_pipeline_transforms_before_the_model(fitted):
    data, _ = fitted
    pipe = make_pipeline(FeatPropImputer(), MILKRecommender(
        data.modalities, max_epochs=4, validation_fraction=0.0, device="cpu", random_state=0))
    pipe.fit(data.X[:200], data.Y[:200])
    X_new, _ = simulate_missing(data.X[200:], data.modalities, 0.5, mode="one",
                                random_state=0)
    through = modality_ranking(pipe, X_new, data.Y[200:], modality_names=("a", "b"))
    direct = modality_ranking(pipe[-1], pipe[:-1].transform(X_new), data.Y[200:],
                              modality_names=("a", "b"))
    assert through.names == ["a", "b", "mix"]
    np.testing.assert_array_equal(through.ndcg, direct.ndcg)
    np.testing.assert_array_equal(through.recall, direct.recall)


def _planted(seed):
    """Modality ``signal`` is a noisy linear map of the latent taste factors that also make
    the interactions; modality ``noise`` is Gaussian noise drawn independently of all of
    them, so it carries no information about any item's interactions."""
    data = make_multimodal(500, 200, (16,), density=0.04, modality_noise=0.2, popularity=0.0,
                           random_state=seed)
    noise = np.random.default_rng(seed + 100).normal(size=(500, 16)).astype(np.float32)
    return np.hstack([data.X, noise]), data.Y


@pytest.mark.parametrize("params", [{}, DUIF], ids=["MILK", "DUIF-like"])
def test_a_pure_noise_modality_ranks_at_chance(params):
    X, Y = _planted(0)
    model = MILKRecommender((16, 16), max_epochs=20, lr=0.01, batch_size=256,
                            validation_fraction=0.0, device="cpu", random_state=0,
                            **params).fit(X[:400], Y[:400])
    X_test, Y_test = X[400:], Y[400:]
    got = modality_ranking(model, X_test, Y_test, modality_names=["signal", "noise"])
    # The null of "no information": the noise rows of the test items are exchangeable (drawn
    # iid, independently of their interactions), so permuting them among the test items
    # leaves the metric's distribution unchanged. The signal rows are not exchangeable.
    rng = np.random.default_rng(0)
    null = {name: [] for name in ("signal", "noise")}
    for _ in range(40):
        for m, name in enumerate(null):
            shuffled = X_test.copy()
            cols = slice(16 * m, 16 * (m + 1))
            shuffled[:, cols] = X_test[rng.permutation(100), cols]
            null[name].append(modality_ranking(model, shuffled, Y_test).ndcg[m])
    # Chance level of a ranking independent of the positives: a user with p positives among
    # n items expects p/n of a hit at each rank.
    Yd = np.asarray(Y_test.todense()) > 0
    users = Yd.any(axis=0)
    p, n, k = Yd[:, users].sum(axis=0), Yd.shape[0], 20
    discount = 1 / np.log2(np.arange(k) + 2)
    chance = np.mean([discount.sum() * pi / n / discount[:min(pi, k)].sum() for pi in p])
    assert np.mean(null["noise"]) == pytest.approx(chance, abs=0.03)
    assert np.mean(null["signal"]) == pytest.approx(chance, abs=0.03)
    # The noise modality alone is a typical draw of its null (within 3 standard deviations);
    # the signal modality alone is beyond every draw of its own null, more than 5 of the
    # noise null's standard deviations above the noise modality.
    spread = np.std(null["noise"])
    assert abs(got.ndcg[1] - np.mean(null["noise"])) < 3 * spread
    assert got.ndcg[0] > max(null["signal"])
    assert got.ndcg[0] - got.ndcg[1] > 5 * spread


def test_bad_inputs(fitted):
    data, model = fitted
    X, Y = data.X[200:], data.Y[200:]
    with pytest.raises(ValueError, match="'estimator' parameter"):
        modality_ranking(FeatPropImputer(), X, Y)
    with pytest.raises(TypeError, match="Pipeline ending in one"):
        modality_ranking(make_pipeline(FeatPropImputer()), X, Y)
    with pytest.raises(ValueError, match="'k' parameter"):
        modality_ranking(model, X, Y, k=0)
    with pytest.raises(ValueError, match="metrics must be"):
        modality_ranking(model, X, Y, metrics=("auc",))
    with pytest.raises(ValueError, match="modality_names must be 2 distinct"):
        modality_ranking(model, X, Y, modality_names=["text"])
    with pytest.raises(ValueError, match="modality_names"):
        modality_ranking(model, X, Y, modality_names=["mix", "audio"])
    with pytest.raises(ValueError, match="user columns"):
        modality_ranking(model, X, Y[:, :10])
    with pytest.raises(ValueError, match="features"):
        modality_ranking(model, X[:, :5], Y)
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        modality_ranking(MILKRecommender(data.modalities), X, Y)
