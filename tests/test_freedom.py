"""FREEDOMRecommender: the estimator's wiring, its warm-start contract and its learning.

The graphs and the module are tested against dense numpy references in
``test_freedom_module.py``; here the fitted estimator's scores are recomputed from those
references and the fitted parameters, and training is spied on.
"""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skmm import FeatPropImputer
from skmm.datasets import make_multimodal, simulate_missing
from skmm.freedom import FREEDOMRecommender
from skmm.freedom import _estimator as freedom_estimator
from skmm.metrics import ndcg_at_k, recall_at_k

from .conftest import requires_cuda
from .test_freedom_module import dense_bipartite, dense_graph
from .test_vbpr import _warm_split as warm_split  # holds out interactions, items stay

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(n_factors=16, batch_size=256, max_epochs=4, device="cpu")


def planted(n_items=200, n_users=120, dims=(12, 8), density=0.08, seed=0, **kwargs):
    data = make_multimodal(n_items, n_users, dims, density=density, modality_noise=0.3,
                           random_state=seed, **kwargs)
    return data.X, data.Y


def pairs_of(Y):
    coo = sp.coo_matrix(Y)
    return set(zip(coo.col.tolist(), coo.row.tolist()))  # (user, item)


@pytest.fixture(scope="module")
def fitted():
    X, Y = planted(seed=1)
    # Two items and one user without any interaction: allowed, and still scored.
    Y = sp.vstack([Y, sp.csr_matrix((2, Y.shape[1]))]).tocsr()
    Y = sp.hstack([Y, sp.csr_matrix((Y.shape[0], 1))]).tocsr()
    X = np.vstack([X, np.random.default_rng(5).normal(size=(2, X.shape[1]))]).astype(np.float32)
    model = FREEDOMRecommender([12, 8], modality_weights=[0.3, 0.7], n_neighbors=4,
                               random_state=0, **FAST).fit(X, Y)
    return model, X, Y


# ----------------------------------------------------------------------------- the model

def test_decision_function_is_the_freedom_formula(fitted):
    """Scores recomputed densely from X, the trained interactions and the fitted embeddings:
    ``M`` from the features (weights 0.3/0.7), ``Â`` from y minus the validation split."""
    model, X, Y = fitted
    M = dense_graph([X[:, :12], X[:, 12:]], 4, [0.3, 0.7])
    Y_fit = (model.interactions_ - model.validation_interactions_).toarray()
    A = dense_bipartite(Y_fit.T)
    E_u = model.module_.user_embedding.weight.detach().double().numpy()
    E_i = model.module_.item_id_embedding.weight.detach().double().numpy()
    x = np.vstack([E_u, E_i])
    layers = [x, A @ x, A @ (A @ x)]
    mean = sum(layers) / 3
    U, V = mean[:Y.shape[1]], mean[Y.shape[1]:] + M @ E_i
    np.testing.assert_allclose(model.decision_function(X), V @ U.T, atol=2e-5)
    # The user without interactions is E_u / 3 of its initial draw; the items without
    # interactions are their own E_i / 3 plus their neighbours' average.
    np.testing.assert_allclose(U[-1], E_u[-1] / 3)
    np.testing.assert_allclose(V[-2:], E_i[-2:] / 3 + (M @ E_i)[-2:], atol=1e-6)


def test_any_number_of_modalities():
    X, Y = planted(dims=(6, 5, 4), seed=2)
    for modalities in (None, [15], [6, 5, 4]):
        model = FREEDOMRecommender(modalities, n_neighbors=3, random_state=0,
                                   **FAST).fit(X, Y)
        n_blocks = 1 if modalities is None else len(modalities)
        assert model.modalities_ == ((15,) if modalities is None else tuple(modalities))
        assert len(model.module_.features) == n_blocks
        expected = dense_graph(np.split(X, np.cumsum(model.modalities_)[:-1], axis=1), 3,
                               [1 / n_blocks] * n_blocks)
        np.testing.assert_allclose(model.module_.item_graph.to_dense().numpy(), expected,
                                   atol=1e-7)
        assert np.isfinite(model.decision_function(X)).all()


def test_features_are_copied_not_changed():
    X, Y = planted(seed=3)
    before = X.copy()
    model = FREEDOMRecommender([12, 8], modality_loss_weight=0.5, random_state=0,
                               **FAST).fit(X, Y)
    np.testing.assert_array_equal(X, before)
    # The modality terms fine-tune the copies.
    assert not np.allclose(model.module_.features[0].detach().numpy(), X[:, :12])


# ----------------------------------------------------------------------------- training

def _spy(monkeypatch):
    """Record every trained batch and every epoch's pruned graph."""
    seen = {"batches": [], "graphs": []}
    get_loss = freedom_estimator._FREEDOMNet.get_loss
    on_epoch_begin = freedom_estimator._PruneEachEpoch.on_epoch_begin

    def spy_loss(self, y_pred, y_true, X=None, training=False):
        seen["batches"].append(tuple(X[key].numpy().copy() for key in ("users", "pos", "neg")))
        return get_loss(self, y_pred, y_true, X=X, training=training)

    def spy_epoch(self, net, **kwargs):
        on_epoch_begin(self, net, **kwargs)
        seen["graphs"].append(net.train_adj_.coalesce())

    monkeypatch.setattr(freedom_estimator._FREEDOMNet, "get_loss", spy_loss)
    monkeypatch.setattr(freedom_estimator._PruneEachEpoch, "on_epoch_begin", spy_epoch)
    return seen


def _graph_pairs(A, n_users):
    idx = A.indices().numpy()
    upper = idx[0] < n_users
    return set(zip(idx[0, upper].tolist(), (idx[1, upper] - n_users).tolist()))


def test_validation_split_holds_out_interactions_never_trained_on(monkeypatch):
    X, Y = planted(seed=4)
    seen = _spy(monkeypatch)
    model = FREEDOMRecommender([12, 8], random_state=0, **FAST).fit(X, Y)
    val = model.validation_interactions_
    n_users = Y.shape[1]
    # Interactions, not items: per user round(10%) of their interactions (at least one kept),
    # and the items with held-out interactions keep training interactions of other users.
    n = Y.getnnz(axis=0)
    np.testing.assert_array_equal(val.getnnz(axis=0), np.minimum(n - 1, np.floor(0.1 * n + 0.5)))
    assert not (val - val.multiply(Y)).nnz  # a subset of y
    fit_part = Y - val
    items = np.flatnonzero(val.getnnz(axis=1))
    assert (fit_part[items].getnnz(axis=1) > 0).mean() > 0.9
    held = pairs_of(val)
    trained = set()
    for users, pos, neg in seen["batches"]:
        trained |= set(zip(users.tolist(), pos.tolist()))
        # Negatives: items with training interactions, never a training positive of the user.
        assert np.isin(neg, np.flatnonzero(fit_part.getnnz(axis=1))).all()
        assert not set(zip(users.tolist(), neg.tolist())) & pairs_of(fit_part)
    assert trained == pairs_of(fit_part) and not trained & held
    assert len(seen["graphs"]) == model.n_epochs_
    for A in seen["graphs"] + [model.module_.adjacency]:
        edges = _graph_pairs(A, n_users)
        assert edges <= pairs_of(fit_part) and not edges & held
    assert _graph_pairs(model.module_.adjacency, n_users) == pairs_of(fit_part)


def test_pruning_is_redrawn_every_epoch_from_the_seed(monkeypatch):
    X, Y = planted(seed=4)
    seen = _spy(monkeypatch)
    params = dict(validation_fraction=0.0, random_state=3, **FAST)
    FREEDOMRecommender([12, 8], **params).fit(X, Y)
    first = seen["graphs"][:]
    FREEDOMRecommender([12, 8], **params).fit(X, Y)
    second = seen["graphs"][len(first):]
    n_keep = int(Y.nnz * (1 - 0.8))
    edge_sets = [_graph_pairs(A, Y.shape[1]) for A in first]
    assert all(len(e) == n_keep for e in edge_sets)
    assert len({frozenset(e) for e in edge_sets}) == len(edge_sets)  # a new draw each epoch
    for a, b in zip(first, second):  # the same draws for the same seed
        assert torch.equal(a.indices(), b.indices()) and torch.equal(a.values(), b.values())
    seen["graphs"].clear()
    full = FREEDOMRecommender([12, 8], edge_dropout=0.0, **params).fit(X, Y)
    for A in seen["graphs"]:
        assert torch.equal(A.to_dense(), full.module_.adjacency.to_dense())


def test_early_stopping_restores_the_best_epoch():
    X, Y = planted(300, 150, density=0.1, seed=2)
    model = FREEDOMRecommender([12, 8], patience=2, lr=0.05, random_state=0,
                               **{**FAST, "max_epochs": 80}).fit(X, Y)
    curve = np.array(model.history_[:, "valid_recall"])
    # Strict improvement: the first maximum is the best epoch; MMRec's patience is exceeded.
    assert model.n_epochs_ < 80 and model.best_epoch_ == curve.argmax() + 1
    assert model.n_epochs_ - model.best_epoch_ == 3
    val = model.validation_interactions_
    recomputed = recall_at_k(val, model.decision_function(X), k=20,
                             exclude=model.interactions_ - val)
    assert recomputed == pytest.approx(curve.max(), rel=1e-6)
    assert recomputed > curve[-1]  # the last epoch's weights were not kept


def test_y_val_replaces_the_internal_split():
    X, Y = planted(seed=5)
    Y_train, Y_val = warm_split(Y, 0.15, seed=0)
    # A user with validation interactions but none in training: left out, as MMRec does.
    Y_train = Y_train.tolil()
    Y_train[:, 7] = 0
    Y_train = Y_train.tocsr()
    Y_train.eliminate_zeros()
    model = FREEDOMRecommender([12, 8], random_state=0, **FAST).fit(X, Y_train, y_val=Y_val)
    expected = Y_val.tolil()
    expected[:, 7] = 0
    assert pairs_of(model.validation_interactions_) == pairs_of(expected.tocsr())
    assert model.n_pairs_ == Y_train.nnz
    assert _graph_pairs(model.module_.adjacency, Y.shape[1]) == pairs_of(Y_train)
    curve = np.array(model.history_[:, "valid_recall"])
    assert recall_at_k(model.validation_interactions_, model.decision_function(X),
                       exclude=Y_train) == pytest.approx(curve.max(), rel=1e-6)
    with pytest.raises(ValueError, match="y_val has 5 user columns"):
        FREEDOMRecommender([12, 8], **FAST).fit(X, Y_train, y_val=Y_val[:, :5])


def test_without_validation_trains_max_epochs():
    X, Y = planted(seed=5)
    model = FREEDOMRecommender([12, 8], validation_fraction=0.0, random_state=0,
                               **FAST).fit(X, Y)
    assert model.n_epochs_ == model.best_epoch_ == 4
    assert model.validation_interactions_.nnz == 0 and model.n_pairs_ == Y.nnz
    assert "valid_recall" not in model.history_[-1]


# ----------------------------------------------------------------------------- determinism

def test_same_seed_same_scores_other_seed_other_scores():
    X, Y = planted(seed=6)
    torch.manual_seed(1)
    a = FREEDOMRecommender([12, 8], random_state=7, **FAST).fit(X, Y)
    torch.manual_seed(2)
    state = torch.random.get_rng_state()
    b = clone(a).fit(X, Y)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator untouched
    np.testing.assert_array_equal(a.decision_function(X), b.decision_function(X))
    np.testing.assert_array_equal(a.history_[:, "train_loss"], b.history_[:, "train_loss"])
    c = clone(a).set_params(random_state=8).fit(X, Y)
    assert not np.allclose(a.decision_function(X), c.decision_function(X))


def test_pickle_round_trip_keeps_the_graphs_and_the_scores(fitted):
    model, X, Y = fitted
    scores = model.decision_function(X)  # fills the scoring cache, which is not pickled
    restored = pickle.loads(pickle.dumps(model))
    assert "_scoring" not in model.__getstate__()
    for name in ("item_graph", "adjacency"):
        assert name not in restored.module_.state_dict()  # non-persistent buffers ...
        assert torch.equal(getattr(restored.module_, name).to_dense(),  # ... still pickled
                           getattr(model.module_, name).to_dense())
    np.testing.assert_array_equal(restored.decision_function(X), scores)
    np.testing.assert_array_equal(restored.recommend(X), model.recommend(X))
    assert all(t.device.type == "cpu" for t in restored.module_.state_dict().values())
    assert restored.module_.item_graph.device.type == "cpu"


# ----------------------------------------------------------------------------- scoring contract

def test_recommend_predict_score_contract():
    X, Y = planted(60, 30, density=0.2, seed=7)
    Y = Y.tolil()
    Y[:-2, 4] = 1  # user 4 has seen all items but the last two
    Y = Y.tocsr()
    model = FREEDOMRecommender([12, 8], n_neighbors=3, random_state=0, **FAST).fit(X, Y)
    scores = model.decision_function(X)
    recs = model.recommend(X, k=5)
    seen = Y.T.tocsr()
    for u in range(Y.shape[1]):
        allowed = np.setdiff1d(np.arange(60), seen[u].indices)
        best = allowed[np.argsort(-scores[allowed, u], kind="stable")][:5]
        np.testing.assert_array_equal(recs[u, :len(best)], best)
        assert (recs[u, len(best):] == -1).all()
    assert (recs[4, 2:] == -1).all() and set(recs[4, :2]) == {58, 59}
    np.testing.assert_array_equal(model.recommend(X, k=5, users=[9, 2]), recs[[9, 2]])
    everything = model.recommend(X, k=60, exclude_seen=False)
    np.testing.assert_array_equal(everything, np.argsort(-scores, axis=0, kind="stable").T)
    # Rows are recognised by content: a subset, reordered, scores as those items.
    # (To float32 rounding: a product over 2 rows may take another BLAS kernel, and so
    # another summation order, than one over 60; seen with OMP_NUM_THREADS=1.)
    np.testing.assert_allclose(model.decision_function(X[[7, 3]]), scores[[7, 3]],
                               rtol=1e-5, atol=1e-7)
    pred = model.predict(X)
    assert pred.shape == (60, 30) and pred.dtype == bool
    top20 = model.recommend(X)  # predict marks each user's top k (= 20)
    np.testing.assert_array_equal(pred.getnnz(axis=0), (top20 >= 0).sum(axis=1))
    assert pred[top20[7, 0], 7] and pred.getnnz(axis=0)[4] == 2
    Y_test = warm_split(Y, 0.3, seed=1)[1]
    assert model.score(X, Y_test) == pytest.approx(
        ndcg_at_k(Y_test, scores, k=20, exclude=Y), rel=1e-6)


def test_score_warns_about_users_without_training_interactions(fitted):
    model, X, Y = fitted
    held = sp.lil_matrix(Y.shape)
    held[0, Y.shape[1] - 1] = 1  # the user without interactions
    held[1, 0] = 1
    with pytest.warns(UserWarning, match="1 user.* no training interaction"):
        model.score(X, held.tocsr())


# ----------------------------------------------------------------------------- bad input

def test_bad_inputs():
    X, Y = planted(40, 20, density=0.2, seed=8)
    fast = dict(FAST, max_epochs=1)
    X_nan = X.copy()
    X_nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN.*FeatPropImputer"):
        FREEDOMRecommender([12, 8], **fast).fit(X_nan, Y)
    with pytest.raises(ValueError, match="sums to 21"):
        FREEDOMRecommender([12, 9], **fast).fit(X, Y)
    with pytest.raises((TypeError, ValueError), match="'modalities' parameter"):
        FREEDOMRecommender("12", **fast).fit(X, Y)
    with pytest.raises(ValueError, match="modality_weights: weights must sum to 1"):
        FREEDOMRecommender([12, 8], modality_weights=[0.5, 0.6], **fast).fit(X, Y)
    with pytest.raises(ValueError, match="modality_weights: weights must give one weight"):
        FREEDOMRecommender([12, 8], modality_weights=[1.0], **fast).fit(X, Y)
    with pytest.raises(ValueError, match="n_neighbors=50 exceeds the number of items"):
        FREEDOMRecommender([12, 8], n_neighbors=50, **fast).fit(X, Y)
    with pytest.raises(ValueError, match="edge_dropout"):
        FREEDOMRecommender([12, 8], edge_dropout=1.0, **fast).fit(X, Y)
    with pytest.raises(ValueError, match="no interactions"):
        FREEDOMRecommender([12, 8], **fast).fit(X, sp.csr_matrix(Y.shape))
    X_zero = X.copy()
    X_zero[5, 12:] = 0
    with pytest.raises(ValueError, match="all-zero feature row"):
        FREEDOMRecommender([12, 8], **fast).fit(X_zero, Y)
    # The opt-in reproduces MMRec's ordering: the zero item is every other item's neighbour
    # (its own list is items 0, 1, 2).
    model = FREEDOMRecommender([12, 8], zero_rows="rank_first", modality_weights=[0, 1],
                               n_neighbors=3, **fast).fit(X_zero, Y)
    M = model.module_.item_graph.to_dense().numpy()
    assert (np.delete(M[:, 5], 5) > 0).all() and set(np.flatnonzero(M[5])) == {0, 1, 2}
    model = FREEDOMRecommender([12, 8], random_state=0, **fast).fit(X, Y)
    with pytest.raises(ValueError, match="warm-start"):
        model.decision_function(X[:5] + 1)
    with pytest.raises(ValueError, match="warm-start"):
        model.recommend(np.vstack([X, X[:1] * 2]))
    with pytest.raises(ValueError, match="features"):
        model.decision_function(X[:, :12])
    with pytest.raises(ValueError, match="users must be"):
        model.recommend(X, users=[0, 20])


# ----------------------------------------------------------------------------- pipelines

def test_pipeline_after_featprop_imputer():
    X, Y = planted(seed=9)
    Y_train, Y_test = warm_split(Y, 0.2, seed=0)
    X_miss, _ = simulate_missing(X, [12, 8], 0.3, mode="one", random_state=0)
    params = dict(n_neighbors=5, random_state=0, **FAST)
    pipe = Pipeline([("impute", FeatPropImputer(device="cpu")),
                     ("freedom", FREEDOMRecommender([12, 8], **params))])
    pipe.fit(X_miss, Y_train)
    # The imputer recognises its fitted matrix at transform, so the recommender recognises
    # the imputed rows as its fitted items.
    alone = FREEDOMRecommender([12, 8], **params).fit(
        FeatPropImputer(device="cpu").fit_transform(X_miss, Y_train), Y_train)
    np.testing.assert_array_equal(pipe.decision_function(X_miss), alone.decision_function(
        FeatPropImputer(device="cpu").fit_transform(X_miss, Y_train)))
    assert pipe.score(X_miss, Y_test) == pytest.approx(
        ndcg_at_k(Y_test, pipe.decision_function(X_miss), k=20, exclude=Y_train), rel=1e-6)


def warm_start_scorer(Y_heldout, k=20):
    """Recall@k of held-out interactions of the fitted items, excluding the fitted ones: with
    ``cv=[(all_items, all_items)]`` the test fold is the training fold, so ``y`` is exactly the
    training interactions."""
    def scorer(estimator, X, y):
        assert X.shape[0] == Y_heldout.shape[0], "one split of all items, in order"
        return recall_at_k(Y_heldout, estimator.decision_function(X), k=k, exclude=y)
    return scorer


def test_grid_search_with_a_warm_start_scorer():
    X, Y = planted(seed=10)
    Y_train, Y_test = warm_split(Y, 0.2, seed=0)
    base = FREEDOMRecommender([12, 8], random_state=0, **FAST)
    grid = {"n_layers": [1, 2], "n_neighbors": [3, 8]}
    everything = np.arange(X.shape[0])
    search = GridSearchCV(base, grid, cv=[(everything, everything)],
                          scoring=warm_start_scorer(Y_test)).fit(X, Y_train)
    for params, score in zip(search.cv_results_["params"],
                             search.cv_results_["mean_test_score"]):
        alone = clone(base).set_params(**params).fit(X, Y_train)
        assert score == recall_at_k(Y_test, alone.decision_function(X), exclude=Y_train)
    assert search.best_estimator_.get_params()["n_layers"] == search.best_params_["n_layers"]
    np.testing.assert_array_equal(
        search.best_estimator_.decision_function(X),
        clone(base).set_params(**search.best_params_).fit(X, Y_train).decision_function(X))


# ----------------------------------------------------------------------------- learning

def test_learns_planted_structure_better_than_popularity():
    """Held-out Recall@20 against two baselines computed here: popularity (training degree)
    and the exact expectation of a random ranking. The margin over popularity is three
    standard errors of the per-user paired difference."""
    data = make_multimodal(400, 300, (16, 8), density=0.1, modality_noise=0.3,
                           popularity=0.3, random_state=0)
    Y_train, Y_test = warm_split(data.Y, 0.2, seed=0)
    model = FREEDOMRecommender(data.modalities, n_factors=32, batch_size=512, lr=0.01,
                               patience=10, max_epochs=100, device="cpu",
                               random_state=0).fit(data.X, Y_train)
    assert model.n_epochs_ < 100  # stopped early
    users = np.flatnonzero(Y_test.getnnz(axis=0))

    def per_user_recall(scores):
        scores = np.where(Y_train.toarray() > 0, -np.inf, scores)
        top = np.argsort(-scores, axis=0, kind="stable")[:20]
        truth = Y_test.toarray() > 0
        return np.array([truth[top[:, u], u].sum() / truth[:, u].sum() for u in users])

    freedom = per_user_recall(model.decision_function(data.X))
    degree = np.asarray(Y_train.sum(axis=1), dtype=np.float64)
    popularity = per_user_recall(np.repeat(degree, Y_train.shape[1], axis=1))
    diff = freedom - popularity
    margin = 3 * diff.std(ddof=1) / np.sqrt(diff.size)
    assert diff.mean() > margin, (freedom.mean(), popularity.mean(), margin)
    candidates = Y_train.shape[0] - Y_train.getnnz(axis=0)[users]
    chance = np.mean(20 / candidates)
    assert freedom.mean() > 2 * chance, (freedom.mean(), chance)


# ----------------------------------------------------------------------------- devices

@requires_cuda
def test_cuda_fit_keeps_its_state_on_the_cpu():
    X, Y = planted(seed=11)
    params = dict(random_state=0, **{**FAST, "device": "cuda"})
    gpu = FREEDOMRecommender([12, 8], **params).fit(X, Y)
    assert gpu.device_.startswith("cuda")
    assert all(t.device.type == "cpu" for t in gpu.module_.state_dict().values())
    assert gpu.module_.item_graph.device.type == "cpu"
    scores = gpu.decision_function(X)
    restored = pickle.loads(pickle.dumps(gpu)).set_params(device="cpu")
    np.testing.assert_allclose(restored.decision_function(X), scores, atol=1e-5)
    # Same seed, same draws (the generators are numpy's): CPU and CUDA differ only by the
    # order of floating-point sums.
    cpu = FREEDOMRecommender([12, 8], **{**params, "device": "cpu"}).fit(X, Y)
    np.testing.assert_allclose(cpu.decision_function(X), scores, atol=1e-3)
