import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skmm.datasets import make_multimodal
from skmm.vbpr import VBPRRecommender
from skmm.vbpr._module import VBPRModule, vbpr_penalty


def _module(seed=0):
    torch.manual_seed(seed)
    feats = torch.randn(7, 5)
    return VBPRModule(4, 7, feats, n_factors=3, n_content_factors=2), feats


def test_score_is_the_vbpr_formula():
    m, f = _module()
    with torch.no_grad():
        m.item_bias.weight.normal_()
        users, items = torch.tensor([0, 3, 1]), torch.tensor([6, 2, 2])
        s_pos, _ = m(users, items, items)
        gu, gi = m.user_factors.weight.numpy(), m.item_factors.weight.numpy()
        tu, E = m.user_content_factors.weight.numpy(), m.projection.weight.numpy()
        b, bp, F = m.item_bias.weight.numpy()[:, 0], m.content_bias.weight.numpy()[0], f.numpy()
        for n, (u, i) in enumerate(zip(users.numpy(), items.numpy())):
            expected = b[i] + gu[u] @ gi[i] + tu[u] @ (E @ F[i]) + bp @ F[i]
            assert np.isclose(s_pos[n].item(), expected, atol=1e-5)
        U, V = m.factor_matrices()
        full = (U @ V.T).numpy()
        expected = (b[None, :] + F @ bp + gu @ gi.T + tu @ (F @ E.T).T)
        np.testing.assert_allclose(full, expected, atol=1e-5)
        assert np.isclose(full[3, 2], s_pos[1].item(), atol=1e-5)


def test_penalty_by_hand():
    m, _ = _module()
    users, pos, neg = torch.tensor([1, 1]), torch.tensor([0, 2]), torch.tensor([3, 0])
    with torch.no_grad():
        m.item_bias.weight.fill_(2.0)
        got = vbpr_penalty(m, users, pos, neg, reg_weight=0.5, bias_reg=0.2,
                           projection_reg=0.1).item()
    sq = lambda t: float((t.detach().numpy() ** 2).sum())  # noqa: E731
    factors = (sq(m.user_factors.weight[[1, 1]]) + sq(m.user_content_factors.weight[[1, 1]])
               + sq(m.item_factors.weight[[0, 2]]) + sq(m.item_factors.weight[[3, 0]]))
    biases = 2 * 4.0 + 2 * 4.0 / 10
    proj = sq(m.projection.weight) + sq(m.content_bias.weight)
    assert np.isclose(got, (0.5 * factors + 0.2 * biases + 0.1 * proj) / 2, rtol=1e-5)


def _warm_split(Y, frac, seed):
    coo = Y.tocoo()
    test = np.random.default_rng(seed).random(coo.nnz) < frac
    mk = lambda sel: sp.csr_matrix((coo.data[sel], (coo.row[sel], coo.col[sel])),  # noqa: E731
                                   shape=Y.shape)
    return mk(~test), mk(test)


def _recall(model, X, Y_test, k):
    recs = model.recommend(X, k=k)
    truth = Y_test.T.tocsr()
    scores = [len(set(recs[u]) & set(truth[u].indices)) / truth[u].nnz
              for u in range(truth.shape[0]) if truth[u].nnz]
    return float(np.mean(scores))


def test_learns_planted_structure_and_is_deterministic():
    data = make_multimodal(300, 200, (16, 8), density=0.08, modality_noise=0.3,
                           random_state=0)
    Y_train, Y_test = _warm_split(data.Y, 0.2, seed=0)
    model = VBPRRecommender(max_epochs=15, batch_size=256, lr=0.01, device="cpu",
                            random_state=0)
    model.fit(data.X, Y_train)
    recall = _recall(model, data.X, Y_test, 20)
    # Random ranking of the ~276 unseen items of a user finds about 20/276 of their positives.
    assert recall > 3 * 20 / 276, recall
    again = VBPRRecommender(max_epochs=15, batch_size=256, lr=0.01, device="cpu",
                            random_state=0).fit(data.X, Y_train)
    np.testing.assert_array_equal(model.decision_function(data.X),
                                  again.decision_function(data.X))
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.decision_function(data.X),
                                  model.decision_function(data.X))


def test_recommend_excludes_training_interactions():
    data = make_multimodal(100, 50, (8, 4), density=0.1, random_state=1)
    model = VBPRRecommender(max_epochs=1, device="cpu", random_state=0).fit(data.X, data.Y)
    recs = model.recommend(data.X, k=10)
    seen = data.Y.T.tocsr()
    for u in range(50):
        assert not set(recs[u]) & set(seen[u].indices)
    scores = model.decision_function(data.X)
    top = np.argsort(-scores[:, 0], kind="stable")
    unseen = [i for i in top if i not in set(seen[0].indices)]
    assert set(recs[0]) == set(unseen[:10])


def test_blocked_ranking_agrees_with_the_dense_scores():
    from skmm.metrics import ndcg_at_k

    data = make_multimodal(120, 60, (8, 4), density=0.1, random_state=2)
    Y_train, Y_test = _warm_split(data.Y, 0.3, seed=1)
    model = VBPRRecommender(max_epochs=2, device="cpu", random_state=0).fit(data.X, Y_train)
    scores = model.decision_function(data.X)
    # The blocked path's score is the dense one, from a dense reference of the same ranking.
    assert model.score(data.X, Y_test) == pytest.approx(
        ndcg_at_k(Y_test, scores, k=20, exclude=Y_train), rel=1e-6)
    all_items = model.recommend(data.X, k=120, exclude_seen=False)
    np.testing.assert_array_equal(all_items, np.argsort(-scores, axis=0, kind="stable").T)
    np.testing.assert_array_equal(model.recommend(data.X, k=5, users=[9, 2]),
                                  model.recommend(data.X, k=5)[[9, 2]])
    with pytest.raises(ValueError, match="users must be"):
        model.recommend(data.X, users=[0, 60])
    with pytest.raises(ValueError, match="fitted on 60 users"):
        model.score(data.X, Y_test[:, :10])


def test_bad_inputs():
    data = make_multimodal(50, 20, (4, 4), density=0.2, random_state=0)
    with pytest.raises(ValueError, match="one row per item"):
        VBPRRecommender(device="cpu").fit(data.X, data.Y[:-1])
    with pytest.raises(ValueError, match="no interactions"):
        VBPRRecommender(device="cpu").fit(data.X, sp.csr_matrix(data.Y.shape))
    X = data.X.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        VBPRRecommender(device="cpu").fit(X, data.Y)
    model = VBPRRecommender(max_epochs=1, device="cpu", random_state=0).fit(data.X, data.Y)
    # Rows recognised: a subset scores as those items (to float32 rounding: a product over 2
    # rows may take another BLAS kernel, and summation order, than one over 50).
    np.testing.assert_allclose(model.decision_function(data.X[[7, 3]]),
                               model.decision_function(data.X)[[7, 3]], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="warm-start"):
        model.decision_function(data.X[:10] + 1)
    with pytest.raises(ValueError, match="'k' parameter of recommend"):
        model.recommend(data.X, k=0)


def test_fit_leaves_the_global_torch_generator_alone():
    data = make_multimodal(60, 40, (8, 4), density=0.1, random_state=0)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    VBPRRecommender(max_epochs=1, device="cpu", random_state=0).fit(data.X, data.Y)
    torch.testing.assert_close(torch.rand(3), expected)


def test_epochs_equal_numpy_gradients_and_adam(monkeypatch):
    """Three full-batch epochs of VBPR against its objective's gradients derived by hand and
    torch's Adam written in numpy, from the same initial weights and triples."""
    from skorch.dataset import Dataset

    from skmm._bpr import BPRBatches, training_pairs
    from skmm._random import seeded_global_generator
    from skmm.vbpr import _estimator as vbpr_estimator

    data = make_multimodal(40, 25, (4, 3), density=0.15, random_state=3)
    seen = {}

    def spy(Y, candidates=None):
        seen["pairs"], seen["sampler"] = training_pairs(Y, candidates)
        return seen["pairs"], seen["sampler"]

    monkeypatch.setattr(vbpr_estimator, "training_pairs", spy)
    lr, reg, breg, preg, seed = 0.01, 0.1, 0.2, 0.05, 4
    model = VBPRRecommender(n_factors=3, n_content_factors=2, reg_weight=reg, bias_reg=breg,
                            projection_reg=preg, lr=lr, batch_size=10_000, max_epochs=3,
                            device="cpu", random_state=seed).fit(data.X, data.Y)
    F = data.X.astype(np.float64)
    with seeded_global_generator(seed):
        init = VBPRModule(25, 40, torch.from_numpy(data.X), 3, 2)
    p = {k: v.double().numpy() for k, v in init.state_dict().items() if k != "features"}
    batches = BPRBatches(Dataset(seen["pairs"], None), 10_000, seen["sampler"],
                         np.random.default_rng(seed))
    state = {}
    for t in range(1, 4):
        (batch, _), = list(batches)
        u, i, j = (batch[key].numpy() for key in ("users", "pos", "neg"))
        B = len(u)
        gu, tu = p["user_factors.weight"][u], p["user_content_factors.weight"][u]
        E, beta = p["projection.weight"], p["content_bias.weight"][0]

        def score(items):
            return (p["item_bias.weight"][items, 0] + F[items] @ beta
                    + (gu * p["item_factors.weight"][items]).sum(1)
                    + (tu * (F[items] @ E.T)).sum(1))

        g = 1 / (1 + np.exp(-(score(j) - score(i)))) / B  # d mean softplus(s_neg - s_pos)
        grads = {k: np.zeros_like(v) for k, v in p.items()}
        gi_pos, gi_neg = p["item_factors.weight"][i], p["item_factors.weight"][j]
        np.add.at(grads["user_factors.weight"], u, g[:, None] * (gi_neg - gi_pos) + reg * gu / B)
        np.add.at(grads["user_content_factors.weight"], u,
                  g[:, None] * ((F[j] - F[i]) @ E.T) + reg * tu / B)
        np.add.at(grads["item_factors.weight"], i, -g[:, None] * gu + reg * gi_pos / B)
        np.add.at(grads["item_factors.weight"], j, g[:, None] * gu + reg * gi_neg / B)
        b = p["item_bias.weight"][:, 0]
        np.add.at(grads["item_bias.weight"][:, 0], i, -g + breg * b[i] / B)
        np.add.at(grads["item_bias.weight"][:, 0], j, g + breg * b[j] / 10 / B)
        grads["projection.weight"] = tu.T @ (g[:, None] * (F[j] - F[i])) + preg * E / B
        grads["content_bias.weight"] = ((g[:, None] * (F[j] - F[i])).sum(0)
                                        + preg * beta / B)[None]
        for name, grad in grads.items():  # torch.optim.Adam, defaults, no weight decay
            m, v = state.get(name, (0.0, 0.0))
            m, v = 0.9 * m + 0.1 * grad, 0.999 * v + 0.001 * grad ** 2
            state[name] = (m, v)
            p[name] = p[name] - lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    got = model.module_.state_dict()
    for name in p:
        np.testing.assert_allclose(got[name].double().numpy(), p[name], rtol=1e-4, atol=1e-6,
                                   err_msg=name)
