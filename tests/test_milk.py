import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from skmm import FeatPropImputer, MILKRecommender
from skmm.datasets import load_mmrec, new_item_split, simulate_missing
from skmm.metrics import ndcg_at_k
from skmm.milk import EnvironmentSampler, MILKLoss, MILKModule
from skmm.milk import _estimator as milk_estimator
from skmm._bpr import BPRBatches, training_pairs
from skorch.dataset import Dataset
from skmm.milk._module import alignment_loss, invariance_penalty


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def planted(n_items=600, n_users=300, dims=(24, 16), n_factors=8, noise=0.5, per_user=20,
            seed=0):
    """Items and users share latent factors; each modality is a noisy linear map of the item
    factors; every user interacts with their ``per_user`` top-scoring items."""
    rng = np.random.default_rng(seed)
    V = rng.normal(size=(n_items, n_factors))
    U = rng.normal(size=(n_users, n_factors))
    blocks = []
    for d in dims:
        S = V @ rng.normal(size=(n_factors, d))
        blocks.append(S + noise * S.std() * rng.normal(size=S.shape))
    X = np.hstack(blocks).astype(np.float32)
    scores = U @ V.T + 0.5 * rng.gumbel(size=(n_users, n_items))
    top = np.argsort(-scores, axis=1)[:, :per_user]
    Y = sp.csr_matrix((np.ones(top.size, np.float32),
                       (top.ravel(), np.repeat(np.arange(n_users), per_user))),
                      shape=(n_items, n_users))
    return X, Y


def cold_split(X, Y, n_test, seed):
    """Hold out ``n_test`` random items as new items; drop users left without training data."""
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    users = Y[train].getnnz(axis=0) > 0
    return X[train], Y[train][:, users], X[test], Y[test][:, users]


def random_ndcg(Y_test, k):
    """Expected NDCG@k of a uniformly random ranking, averaged over users with a positive."""
    n_items = Y_test.shape[0]
    n_pos = Y_test.getnnz(axis=0)
    n_pos = n_pos[n_pos > 0]
    disc = 1 / np.log2(np.arange(min(k, n_items)) + 2)
    idcg = np.cumsum(disc)[np.minimum(n_pos, len(disc)) - 1]
    return float(np.mean(n_pos / n_items * disc.sum() / idcg))


FAST = dict(embedding_dim=16, batch_size=256, max_epochs=60, validation_interval=1, device="cpu")
DUIF = dict(environments="none", invariance_weight=0.0, alignment_weight=0.0)


# ----------------------------------------------------------------------------- environments

def _rolled(row, base):
    return any(np.allclose(row, np.roll(base, s)) for s in range(len(base)))


@pytest.mark.parametrize("M", [2, 3, 5])
def test_cyclic_environments(M):
    sampler = EnvironmentSampler(M, "cyclic", 0.5, np.random.default_rng(0))
    w = sampler.draw()
    assert w.shape == (M + 1, M)
    np.testing.assert_allclose(w[0], np.full(M, 1 / M))
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
    assert (w >= 0).all()
    for s in range(M):
        np.testing.assert_allclose(w[1 + s], np.roll(w[1], s))
    # Each modality dominates exactly one shifted environment.
    np.testing.assert_array_equal(np.sort(w[1:].argmax(axis=1)), np.arange(M))
    assert not np.allclose(sampler.draw()[1], w[1])  # redrawn every minibatch


def test_independent_fixed_and_none_environments():
    ind = EnvironmentSampler(3, "independent", 0.5, np.random.default_rng(0)).draw()
    assert ind.shape == (4, 3)
    np.testing.assert_allclose(ind[0], 1 / 3)
    np.testing.assert_allclose(ind.sum(axis=1), 1.0, rtol=1e-6)
    assert not _rolled(ind[2], ind[1])  # independent draws, not shifts

    fixed = EnvironmentSampler(3, "fixed", 0.5, np.random.default_rng(0))
    first = fixed.draw()
    np.testing.assert_array_equal(first, fixed.draw())
    for s in range(3):
        np.testing.assert_allclose(first[1 + s], np.roll(first[1], s))

    none = EnvironmentSampler(4, "none", 0.5, np.random.default_rng(0)).draw()
    np.testing.assert_allclose(none, np.full((1, 4), 0.25))


def test_tiny_alpha_draws_stay_valid():
    sampler = EnvironmentSampler(3, "cyclic", 1e-4, np.random.default_rng(0))
    for _ in range(50):
        w = sampler.draw()
        assert np.isfinite(w).all()
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-5)


# ----------------------------------------------------------------------------- objective

def _np_proj(module, Z):
    out, start = [], 0
    for enc, d in zip(module.encoders, module.modalities):
        W, b = enc.weight.detach().numpy(), enc.bias.detach().numpy()
        out.append(Z[:, start:start + d] @ W.T + b)
        start += d
    return np.stack(out)


def test_total_loss_by_hand():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(5, 5)).astype(np.float32)
    observed = np.ones((5, 2), dtype=bool)
    observed[1, 1] = False  # item 1 lacks modality 1: out of the alignment term
    module = MILKModule(3, (2, 3), 4, features=torch.from_numpy(Z),
                        observed=torch.from_numpy(observed))
    users, pos, neg = np.array([0, 1, 2, 0]), np.array([0, 1, 1, 3]), np.array([2, 4, 0, 4])
    weights = np.array([[0.5, 0.5], [0.9, 0.1], [0.1, 0.9]], dtype=np.float32)
    loss = MILKLoss(reg_weight=0.01, alignment_weight=0.3, invariance_weight=7.0)
    with torch.no_grad():
        parts = module(torch.from_numpy(users), torch.from_numpy(pos), torch.from_numpy(neg))
        got = loss(parts, torch.from_numpy(weights))

    U = module.user_embedding.weight.detach().numpy()[users]
    P = _np_proj(module, Z)  # (M, n_items, d)
    risks = []
    for w in weights:
        item = np.einsum("m,mnd->nd", w, P)
        s_pos, s_neg = (U * item[pos]).sum(1), (U * item[neg]).sum(1)
        risks.append(np.mean(np.log1p(np.exp(s_neg - s_pos))))
    risks = np.array(risks)
    variance = risks.var(ddof=1)
    both = np.array([0, 3])  # distinct positives {0, 1, 3} observed in both modalities
    alignment = np.mean((P[0, both] - P[1, both]) ** 2)
    mean_item = P.mean(axis=0)
    # The authors' term: reg * mean(|u|^2 + |i+|^2 + |i-|^2), not halved.
    norm = np.mean((U ** 2).sum(1) + (mean_item[pos] ** 2).sum(1)
                   + (mean_item[neg] ** 2).sum(1))
    total = risks.sum() + 0.01 * norm + 0.3 * alignment + 7.0 * variance
    np.testing.assert_allclose(got["risks"].numpy(), risks, rtol=1e-5)
    assert got["variance"].item() == pytest.approx(variance, rel=1e-4)
    assert got["alignment"].item() == pytest.approx(alignment, rel=1e-5)
    assert got["norm"].item() == pytest.approx(norm, rel=1e-5)
    assert got["loss"].item() == pytest.approx(total, rel=1e-5)


def test_alignment_skips_missing_modalities_per_pair():
    rng = np.random.default_rng(1)
    P = rng.normal(size=(3, 4, 2)).astype(np.float32)
    observed = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=bool)
    got = alignment_loss(torch.from_numpy(P), torch.from_numpy(observed)).item()
    expected = 0.0
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        items = observed[:, a] & observed[:, b]
        expected += np.mean((P[a, items] - P[b, items]) ** 2)
    assert got == pytest.approx(expected, rel=1e-5)
    # A pair no item has in full contributes nothing (not NaN).
    none = np.array([[1, 0], [0, 1]], dtype=bool)
    assert alignment_loss(torch.from_numpy(P[:2, :2]), torch.from_numpy(none)).item() == 0.0


def test_variance_penalty_is_unbiased_and_zero_for_one_environment():
    r = torch.tensor([0.2, 0.5, 0.9, 0.4])
    assert invariance_penalty(r).item() == pytest.approx(np.var(r.numpy(), ddof=1))
    assert invariance_penalty(torch.tensor([0.7])).item() == 0.0


def test_user_embeddings_start_from_n_0_01():
    torch.manual_seed(0)
    w = MILKModule(20_000, (3, 3), 8).user_embedding.weight.detach().numpy()
    assert w.mean() == pytest.approx(0.0, abs=2e-3)
    assert w.std() == pytest.approx(0.1, rel=0.02)


# ----------------------------------------------------------------------------- sampling

def test_negatives_are_training_items_the_user_never_interacted_with():
    rng = np.random.default_rng(0)
    Y = sp.csr_matrix((rng.random((60, 30)) < 0.3).astype(np.float32))
    train = np.arange(40)  # items 40..59 play validation and new items
    Y_train = sp.csr_matrix(Y.multiply(np.r_[np.ones(40), np.zeros(20)][:, None]))
    pairs, sampler = training_pairs(Y_train, train)
    assert len(pairs) == Y_train.nnz
    dense = Y.toarray()
    batches = BPRBatches(Dataset(pairs, None), 64, sampler, np.random.default_rng(2))
    epochs = []
    for _ in range(3):
        negs = []
        for batch, _ in batches:
            u, p, n = (batch[key].numpy() for key in ("users", "pos", "neg"))
            assert dense[p, u].all() and not dense[n, u].any()  # never any positive
            assert np.isin(n, train).all()
            negs.append(n)
        epochs.append(np.concatenate(negs))
    assert not np.array_equal(epochs[0], epochs[1])  # fresh negatives every epoch


def test_sampler_handles_users_with_a_single_allowed_negative():
    Y = np.ones((6, 2), dtype=np.float32)
    Y[4, 0] = 0  # user 0 may only get item 4; user 1 interacted with everything
    pairs, sampler = training_pairs(sp.csr_matrix(Y), np.arange(6))
    assert len(pairs) == 5 and (pairs[:, 0] == 0).all()  # user 1's six pairs are dropped
    assert (sampler.sample(pairs[:, 0], np.random.default_rng(0)) == 4).all()


def test_fit_never_samples_validation_items(monkeypatch):
    seen = {}

    def spy(Y, candidates=None):
        pairs, sampler = training_pairs(Y, candidates)
        seen.update(Y=Y, candidates=np.asarray(candidates), pairs=pairs, sampler=sampler)
        return pairs, sampler

    monkeypatch.setattr(milk_estimator, "training_pairs", spy)
    X, Y = planted(200, 80, seed=3)
    Y = Y.tolil()
    Y[190:] = 0  # items without interactions never enter training
    Y = Y.tocsr()
    model = MILKRecommender([24, 16], validation_fraction=0.2, random_state=0,
                            **{**FAST, "max_epochs": 2}).fit(X, Y)
    val = model.validation_items_
    active = np.flatnonzero(Y.getnnz(axis=1) > 0)
    assert val.size == round(0.2 * active.size) and np.isin(val, active).all()
    assert not np.isin(val, seen["candidates"]).any()
    assert not np.isin(np.arange(190, 200), seen["candidates"]).any()
    assert seen["Y"][val].nnz == 0  # their interactions are held out of training
    negs = seen["sampler"].sample(seen["pairs"][:, 0], np.random.default_rng(0))
    assert np.isin(negs, seen["candidates"]).all()


# ----------------------------------------------------------------------------- estimator

@pytest.fixture(scope="module")
def small():
    X, Y = planted(300, 120, seed=1)
    X_tr, Y_tr, X_te, Y_te = cold_split(X, Y, 60, seed=1)
    X_miss, _ = simulate_missing(X_te, [24, 16], 0.5, mode="one", random_state=0)
    model = MILKRecommender([24, 16], random_state=0, **{**FAST, "max_epochs": 8}).fit(
        X_tr, Y_tr)
    return dict(model=model, X_tr=X_tr, Y_tr=Y_tr, X_te=X_te, Y_te=Y_te, X_miss=X_miss)


def test_decision_function_by_hand_with_normalisation_and_mean_fill(small):
    model, X = small["model"], small["X_miss"]
    Z = X.astype(np.float64).copy()
    for a, b in [(0, 24), (24, 40)]:
        block = Z[:, a:b]
        missing = np.isnan(block).any(axis=1)
        block[~missing] /= np.linalg.norm(block[~missing], axis=1, keepdims=True)
        block[missing] = model.fill_values_[a:b]
    # fill_values_ is the mean of the normalised observed training rows.
    Xtr = small["X_tr"][:, :24].astype(np.float64)
    np.testing.assert_allclose(model.fill_values_[:24],
                               (Xtr / np.linalg.norm(Xtr, axis=1, keepdims=True)).mean(0),
                               rtol=1e-4, atol=1e-6)
    items = _np_proj(model.module_, Z).mean(axis=0)
    users = model.module_.user_embedding.weight.detach().numpy()
    np.testing.assert_allclose(model.decision_function(X), items @ users.T, rtol=1e-4,
                               atol=1e-5)


def test_zero_fill_and_masked_arrays(small):
    X_tr, Y_tr, X = small["X_tr"], small["Y_tr"], small["X_miss"]
    zeros = MILKRecommender([24, 16], fill="constant", random_state=0,
                            **{**FAST, "max_epochs": 2}).fit(X_tr, Y_tr)
    assert not zeros.fill_values_.any()
    masked = np.ma.masked_invalid(np.where(np.isnan(X), 7.0, X))
    masked.mask = np.isnan(X)
    np.testing.assert_array_equal(zeros.decision_function(masked), zeros.decision_function(X))
    # Without missing entries, fill plays no role: same training, same scores.
    mean = MILKRecommender([24, 16], fill="mean", random_state=0,
                           **{**FAST, "max_epochs": 2}).fit(X_tr, Y_tr)
    np.testing.assert_array_equal(zeros.decision_function(small["X_te"]),
                                  mean.decision_function(small["X_te"]))


def test_recommend_predict_and_score_agree_with_decision_function(small):
    model, X, Y = small["model"], small["X_miss"], small["Y_te"]
    scores = model.decision_function(X)
    assert scores.shape == (60, Y.shape[1])
    recs = model.recommend(X, k=5)
    np.testing.assert_array_equal(recs, np.argsort(-scores, axis=0, kind="stable")[:5].T)
    np.testing.assert_array_equal(model.recommend(X, k=5, users=[3, 0]), recs[[3, 0]])
    assert model.recommend(X, k=500).shape == (Y.shape[1], 60)
    pred = model.predict(X)
    assert sp.issparse(pred) and pred.dtype == bool and pred.shape == (60, Y.shape[1])
    np.testing.assert_array_equal(pred.getnnz(axis=0), 20)
    assert pred[recs[7, 0], 7]
    assert model.score(X, Y) == pytest.approx(ndcg_at_k(Y, scores, k=20), rel=1e-6)


def test_early_stopping_restores_the_best_epoch():
    X, Y = planted(300, 120, seed=2)
    model = MILKRecommender([24, 16], patience=2, lr=0.03, random_state=0,
                            **{**FAST, "max_epochs": 40}).fit(X, Y)
    curve = np.array(model.history_[:, "valid_ndcg"])
    assert model.n_epochs_ < 40 and model.best_epoch_ == curve.argmax() + 1
    assert model.n_epochs_ - model.best_epoch_ == 2
    assert _validation_ndcg(model, X, Y) == pytest.approx(curve.max(), rel=1e-6)
    no_val = MILKRecommender([24, 16], validation_fraction=0.0, random_state=0,
                             **{**FAST, "max_epochs": 3}).fit(X, Y)
    assert no_val.n_epochs_ == 3 and no_val.validation_items_.size == 0


def test_validation_interval_counts_patience_in_validations():
    X, Y = planted(300, 120, seed=2)
    model = MILKRecommender([24, 16], patience=2, lr=0.03, random_state=0,
                            **{**FAST, "max_epochs": 60, "validation_interval": 3}).fit(X, Y)
    epochs = np.array(model.history_[:, "epoch"])
    validated = [row["epoch"] for row in model.history_ if "valid_ndcg" in row]
    np.testing.assert_array_equal(validated, epochs[epochs % 3 == 0])
    curve = np.array(model.history_[:, "valid_ndcg"])
    assert model.best_epoch_ == 3 * (curve.argmax() + 1)
    # Stopped after two validations (six epochs) without improvement.
    assert model.n_epochs_ < 60 and model.n_epochs_ - model.best_epoch_ == 6
    assert _validation_ndcg(model, X, Y) == pytest.approx(curve.max(), rel=1e-6)
    # Epochs after the last validation are trained but not kept.
    short = MILKRecommender([24, 16], random_state=0,
                            **{**FAST, "max_epochs": 6, "validation_interval": 4}).fit(X, Y)
    assert short.n_epochs_ == 6 and short.best_epoch_ == 4
    assert _validation_ndcg(short, X, Y) == pytest.approx(short.history_[3, "valid_ndcg"],
                                                          rel=1e-6)


def _validation_ndcg(model, X, Y):
    """NDCG@k of the model's own validation items ranked among themselves. Not ``score``:
    those items are fitted rows, whose interactions in y ``score`` would exclude as seen."""
    val = model.validation_items_
    return ndcg_at_k(Y[val], model.decision_function(X[val]), k=model.k)


def test_verbose_prints_progress(capsys):
    X, Y = planted(150, 60, seed=0)
    MILKRecommender([24, 16], verbose=1, random_state=0, **{**FAST, "max_epochs": 2}).fit(X, Y)
    out = capsys.readouterr().out
    assert "valid_ndcg" in out and "train_loss" in out


@pytest.mark.parametrize("environments", ["independent", "fixed", "none"])
def test_ablations_train(environments):
    X, Y = planted(150, 60, dims=(8, 8, 8), seed=0)
    model = MILKRecommender([8, 8, 8], environments=environments, random_state=0,
                            **{**FAST, "max_epochs": 2}).fit(X, Y)
    assert np.isfinite(model.decision_function(X)).all()


def test_same_seed_same_result_and_pickle_roundtrip(small):
    X_tr, Y_tr, X = small["X_tr"], small["Y_tr"], small["X_miss"]
    params = dict(random_state=7, **{**FAST, "max_epochs": 3})
    a = MILKRecommender([24, 16], **params).fit(X_tr, Y_tr)
    b = clone(a).fit(X_tr, Y_tr)
    np.testing.assert_array_equal(a.decision_function(X), b.decision_function(X))
    c = MILKRecommender([24, 16], **{**params, "random_state": 8}).fit(X_tr, Y_tr)
    assert not np.allclose(a.decision_function(X), c.decision_function(X))
    restored = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(restored.decision_function(X), a.decision_function(X))
    assert all(p.device.type == "cpu" for p in a.module_.parameters())
    assert a.module_.features.numel() == 0  # training data is not carried around


def test_pipeline_with_featprop_and_grid_search_over_items():
    X, Y = planted(240, 100, seed=4)
    X_miss, _ = simulate_missing(X, [24, 16], 0.3, mode="one", random_state=0)
    pipe = Pipeline([("impute", FeatPropImputer(device="cpu")),
                     ("milk", MILKRecommender([24, 16], random_state=0,
                                              **{**FAST, "max_epochs": 3}))])
    pipe.fit(X_miss[:200], Y[:200])
    assert pipe.predict(X_miss[200:]).shape == (40, 100)
    search = GridSearchCV(pipe, {"milk__alignment_weight": [0.0, 0.05]},
                          cv=KFold(3, shuffle=True, random_state=0))
    search.fit(X_miss, Y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and (scores > 0).all()
    restored = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(restored.decision_function(X_miss[:10]),
                                  search.best_estimator_.decision_function(X_miss[:10]))


# ----------------------------------------------------------------------------- learning

@pytest.fixture(scope="module")
def ftmt_two_modalities():
    """NDCG@20 on new items, half of them missing one modality, over three seeds."""
    milk, duif, chance = [], [], []
    for seed in range(3):
        X, Y = planted(seed=seed)
        X_tr, Y_tr, X_te, Y_te = cold_split(X, Y, 180, seed)
        X_ftmt, _ = simulate_missing(X_te, [24, 16], 0.5, mode="one", random_state=seed)
        m = MILKRecommender([24, 16], random_state=seed, **FAST).fit(X_tr, Y_tr)
        d = MILKRecommender([24, 16], random_state=seed, **FAST, **DUIF).fit(X_tr, Y_tr)
        milk.append(m.score(X_ftmt, Y_te))
        duif.append(d.score(X_ftmt, Y_te))
        chance.append(random_ndcg(Y_te, 20))
    return np.array(milk), np.array(duif), np.array(chance)


def test_ranks_new_items_far_above_random(ftmt_two_modalities):
    milk, duif, chance = ftmt_two_modalities
    assert (milk > 3 * chance).all(), (milk, chance)
    assert (duif > 3 * chance).all(), (duif, chance)


def test_ftmt_close_to_duif_baseline(ftmt_two_modalities):
    # A broken MILK (wrong mixing, exploding penalty) falls far behind its own ablation. The
    # paper's stronger claim (MILK >= DUIF-like) did not hold here when measured: MILK
    # 0.435/0.441/0.460 vs DUIF-like 0.438/0.445/0.459 (seeds 0-2), a tie; it is reported in
    # the issue notes and docs, not asserted.
    milk, duif, _ = ftmt_two_modalities
    assert milk.mean() >= 0.95 * duif.mean(), (milk, duif)


def test_three_modalities_learn():
    X, Y = planted(dims=(24, 16, 8), seed=0)
    X_tr, Y_tr, X_te, Y_te = cold_split(X, Y, 180, 0)
    X_ftmt, _ = simulate_missing(X_te, [24, 16, 8], 0.5, mode="one", random_state=0)
    m = MILKRecommender([24, 16, 8], random_state=0, **FAST).fit(X_tr, Y_tr)
    assert m.score(X_ftmt, Y_te) > 3 * random_ndcg(Y_te, 20)
    # MILK does NOT beat the DUIF-like baseline here (0.536 vs 0.573 when written): see the
    # report; this test only checks that M = 3 trains.


# ----------------------------------------------------------------------------- bad input

def test_bad_inputs():
    X, Y = planted(100, 40, seed=0)
    est = MILKRecommender([24, 16], random_state=0, **{**FAST, "max_epochs": 1})
    with pytest.raises(ValueError, match="modalities=.*sums to 30 but X has 40"):
        clone(est).set_params(modalities=[20, 10]).fit(X, Y)
    with pytest.raises(TypeError, match="modalities"):
        clone(est).set_params(modalities=40).fit(X, Y)
    with pytest.raises(ValueError, match="one row per item"):
        est.fit(X, Y[:-1])
    with pytest.raises(ValueError, match="no interactions"):
        est.fit(X, sp.csr_matrix(Y.shape))
    with pytest.raises(ValueError, match="requires y"):
        est.fit(X, None)
    with pytest.raises(ValueError, match="2-d interaction matrix"):
        est.fit(X, np.ones(100))
    X_inf = X.copy()
    X_inf[3, 5] = np.inf
    with pytest.raises(ValueError, match="X.*infinity"):
        est.fit(X_inf, Y)
    X_gone = X.copy()
    X_gone[:, 24:] = np.nan
    with pytest.raises(ValueError, match="modality 1 .*missing for every item"):
        est.fit(X_gone, Y)
    for name, value in [("k", 0), ("alpha", 0.0), ("environments", "cycle"),
                        ("fill", "median"), ("validation_fraction", 1.0)]:
        with pytest.raises(ValueError, match=name):
            clone(est).set_params(**{name: value}).fit(X, Y)
    with pytest.warns(UserWarning, match="no negative can be drawn"):
        assert est.fit(X[:5], np.ones((5, 2))).n_epochs_ == 0

    model = clone(est).fit(X, Y)
    with pytest.raises(ValueError, match="'k' parameter of recommend"):
        model.recommend(X, k=0)
    with pytest.raises(ValueError, match="users must be"):
        model.recommend(X, users=[0, 40])
    with pytest.raises(ValueError, match="40 features"):
        model.decision_function(X[:, :30])
    with pytest.raises(ValueError, match="infinity"):
        model.decision_function(X_inf)
    with pytest.raises(ValueError, match="fitted on 40 users"):
        model.score(X, Y[:, :10])


def test_covered_common_properties(small):
    """What the checks above cannot reach, on valid data: order/subset invariance of the
    scores, idempotent fit, read-only input, unchanged parameters."""
    model, X = small["model"], small["X_miss"]
    scores = model.decision_function(X)
    perm = np.random.default_rng(0).permutation(X.shape[0])
    np.testing.assert_allclose(model.decision_function(X[perm]), scores[perm], rtol=1e-6)
    np.testing.assert_allclose(model.decision_function(X[:7]), scores[:7], rtol=1e-6)
    X_tr, Y_tr = small["X_tr"].copy(), small["Y_tr"].copy()
    X_tr.setflags(write=False)
    est = MILKRecommender([24, 16], random_state=0, **{**FAST, "max_epochs": 2})
    params = est.get_params()
    first = est.fit(X_tr, Y_tr).decision_function(X)
    assert est.get_params() == params
    np.testing.assert_array_equal(est.fit(X_tr, Y_tr).decision_function(X), first)
    np.testing.assert_array_equal(X_tr, small["X_tr"])


# ----------------------------------------------------------------------------- real data

@pytest.mark.realdata
def test_lastfm_ftmt_far_above_random(data_root):
    data = load_mmrec(data_root / "lastfm2k", ["all-MiniLM-L6-v2", "vggish"])
    Y = (data.Y_train + data.Y_val + data.Y_test).tocsr()
    train, val, test = new_item_split(Y, test_size=0.1, val_size=0.1, random_state=0)
    fit_items = np.union1d(train, val)
    users = Y[fit_items].getnnz(axis=0) > 0
    X_test, _ = simulate_missing(data.X[test], data.modalities, 0.5, mode="one",
                                 random_state=0)
    model = MILKRecommender(data.modalities, max_epochs=30, device="cpu", random_state=0,
                            validation_fraction=val.size / fit_items.size)
    model.fit(data.X[fit_items], Y[fit_items][:, users])
    Y_test = Y[test][:, users]
    ndcg = model.score(X_test, Y_test)
    assert ndcg > 2 * random_ndcg(Y_test, 20), ndcg


def test_users_without_interactions_keep_their_initial_embedding():
    """A fold of items can hold all of a user's items: fit works, that user is not trained."""
    X, Y = planted(100, 50, seed=3)
    Y = sp.hstack([Y, sp.csr_matrix((100, 3))]).tocsr()
    est = MILKRecommender([24, 16], max_epochs=1, validation_fraction=0, device="cpu",
                          random_state=0)
    one = est.fit(X, Y).module_.user_embedding.weight.detach().clone()
    three = est.set_params(max_epochs=3).fit(X, Y).module_.user_embedding.weight.detach()
    assert est.n_users_ == Y.shape[1]
    empty = np.flatnonzero(Y.getnnz(axis=0) == 0)
    trained = np.flatnonzero(Y.getnnz(axis=0) > 0)
    assert set(empty) >= {Y.shape[1] - 3, Y.shape[1] - 2, Y.shape[1] - 1}
    torch.testing.assert_close(three[empty], one[empty], rtol=0, atol=0)
    assert not torch.allclose(three[trained], one[trained])


def test_default_schedule_is_the_papers():
    """Validation every 10 epochs by default (the paper's schedule): with 25 epochs, epochs
    10 and 20 are validated and the weights of the better of the two are kept."""
    X, Y = planted(150, 60, seed=0)
    params = {k: v for k, v in FAST.items() if k != "validation_interval"}
    model = MILKRecommender([24, 16], random_state=0, **{**params, "max_epochs": 25}).fit(X, Y)
    validated = [row["epoch"] for row in model.history_ if "valid_ndcg" in row]
    assert validated == [10, 20] and model.n_epochs_ == 25
    curve = [row["valid_ndcg"] for row in model.history_ if "valid_ndcg" in row]
    assert model.best_epoch_ == validated[int(np.argmax(curve))]


def _adam(params, grads, state, lr, t, b1=0.9, b2=0.999, eps=1e-8):
    """torch.optim.Adam's update (defaults, no weight decay), in numpy."""
    for name, g in grads.items():
        m, v = state.setdefault(name, (np.zeros_like(g), np.zeros_like(g)))
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        state[name] = (m, v)
        params[name] = params[name] - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)


def test_steps_equal_a_numpy_bpr_content_model(monkeypatch):
    """MILK without environments and penalties is a BPR content model: u . mean_m(W_m x_m + b_m).
    Three epochs (one batch each) against gradients derived by hand and Adam in numpy."""
    from skmm._random import seeded_global_generator

    X, Y = planted(80, 40, seed=5)
    sizes, lr, seed, epochs = (24, 16), 0.01, 3, 3
    seen = {}

    def spy(Y, candidates=None):
        seen["pairs"], seen["sampler"] = training_pairs(Y, candidates)
        return seen["pairs"], seen["sampler"]

    monkeypatch.setattr(milk_estimator, "training_pairs", spy)
    model = MILKRecommender(list(sizes), embedding_dim=6, lr=lr, batch_size=10_000,
                            max_epochs=epochs, validation_fraction=0.0, reg_weight=0.0, **DUIF,
                            device="cpu", random_state=seed).fit(X, Y)
    # The same initial weights, pairs and batches, from the fit's seed (their construction is
    # tested elsewhere: this test checks the objective, its gradients and the optimiser).
    Z = np.concatenate([b / np.linalg.norm(b, axis=1, keepdims=True)
                        for b in np.split(X.astype(np.float64), [sizes[0]], axis=1)], axis=1)
    with seeded_global_generator(seed):
        init = MILKModule(Y.shape[1], sizes, 6)
    p = {k: v.double().numpy() for k, v in init.state_dict().items()}
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[1])
    batches = BPRBatches(Dataset(seen["pairs"], None), 10_000, seen["sampler"], rng)
    blocks = np.split(Z, [sizes[0]], axis=1)
    state = {}
    for t in range(1, epochs + 1):
        (batch, _), = list(batches)
        u, i, j = (batch[key].numpy() for key in ("users", "pos", "neg"))
        enc = lambda items: sum(blocks[m][items] @ p[f"encoders.{m}.weight"].T  # noqa: E731
                                + p[f"encoders.{m}.bias"] for m in range(2)) / 2
        U, Vp, Vn = p["user_embedding.weight"][u], enc(i), enc(j)
        g = 1 / (1 + np.exp(-((U * Vn).sum(1) - (U * Vp).sum(1)))) / len(u)  # d softplus / B
        grads = {"user_embedding.weight": np.zeros_like(p["user_embedding.weight"])}
        np.add.at(grads["user_embedding.weight"], u, g[:, None] * (Vn - Vp))
        dV_pos, dV_neg = -g[:, None] * U, g[:, None] * U
        for m in range(2):
            grads[f"encoders.{m}.weight"] = (dV_pos.T @ blocks[m][i] + dV_neg.T @ blocks[m][j]) / 2
            # A bias shifts the positive and the negative score alike: its exact gradient is
            # zero, so Adam only amplifies rounding noise there (in torch as in numpy).
            np.testing.assert_allclose(dV_pos.sum(0) + dV_neg.sum(0), 0, atol=1e-12)
        _adam(p, grads, state, lr, t)
    got = {k: v.double().numpy() for k, v in model.module_.state_dict().items()}
    for name in grads:
        np.testing.assert_allclose(got[name], p[name], rtol=1e-4, atol=1e-6, err_msg=name)
