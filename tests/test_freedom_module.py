"""FREEDOM's graphs, pruning and module against independent numpy transcriptions.

Every expected value is computed here from explicit dense matrices (the formulas of the spec,
``shared/reference/freedom.md`` sections 1.3-1.7), never read off the implementation.
"""

import copy
import itertools
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skmm.freedom import (
    EdgePruner,
    FREEDOMModule,
    bpr_logsigmoid,
    item_knn_graph,
    knn_neighbors,
    user_item_adjacency,
)

from .conftest import requires_cuda

EPS = 1e-7


# ----------------------------------------------------------------------------- references

def dense_knn(F, k, nan_first=False):
    """numpy top-k cosine neighbours: float64 cosines, lower index first among ties.

    ``nan_first``: MMRec's 0/0 = NaN similarities of all-zero rows rank above every number.
    """
    F = np.asarray(F, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        Fh = F / np.linalg.norm(F, axis=1, keepdims=True)
    S = Fh @ Fh.T
    if nan_first:
        S = np.where(np.isnan(S), np.inf, S)
    order = np.argsort(-S, axis=1, kind="stable")  # stable: lower index first among ties
    return order[:, :k]


def dense_graph(blocks, k, weights):
    n = blocks[0].shape[0]
    M = np.zeros((n, n))
    for F, w in zip(blocks, weights):
        B = np.zeros((n, n))
        np.put_along_axis(B, dense_knn(F, k), 1.0, axis=1)
        M += w * B / (k + EPS)  # the "normalised Laplacian" of a k-regular directed graph
    return M


def dense_bipartite(R):
    """D^-1/2 A D^-1/2 of A = [[0, R], [R^T, 0]], degrees + 1e-7 (R: users x items)."""
    n_users, n_items = R.shape
    A = np.zeros((n_users + n_items,) * 2)
    A[:n_users, n_users:] = R
    A[n_users:, :n_users] = R.T
    d = (A > 0).sum(1) + EPS
    return A / np.sqrt(np.outer(d, d))


def np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def np_bpr(a, p, n):
    return -np.mean(np_log_sigmoid((a * p).sum(1) - (a * n).sum(1)))


def tie_features(seed=0):
    """Rows with exact cosines (entries in {0, +-1}, four non-zeros: normalised to +-0.5,
    products exact multiples of 1/4), exact duplicates up to scale, random rows and
    near-duplicates of them: many exact ties, including ties across the top-k cut."""
    rng = np.random.default_rng(seed)
    n_exact, d = 10, 8
    E = np.zeros((n_exact, d))
    for r in range(n_exact):
        cols = rng.choice(d, 4, replace=False)
        E[r, cols] = rng.choice([-1.0, 1.0], 4)
    E[3] = 3 * E[1]  # a scaled duplicate: the same unit vector, exactly
    E[7] = E[1]
    G = rng.normal(size=(8, d))
    G[5] = G[2] + 0.03 * rng.normal(size=d)  # near-duplicate, far from float32 rounding
    return np.vstack([E, G]).astype(np.float32)


def small_interactions():
    """(n_items, n_users) = (7, 5) training interactions with a user and an item left out."""
    R = np.zeros((5, 7))  # users x items
    for u, i in [(0, 0), (0, 1), (0, 2), (0, 4), (1, 0), (1, 3), (2, 1), (2, 5), (3, 0),
                 (3, 1), (3, 2), (3, 5)]:
        R[u, i] = 1.0
    return sp.csr_matrix(R.T)  # user 4 and item 6 have no interaction


# ----------------------------------------------------------------------------- item graph

def test_knn_neighbors_match_dense_reference_with_ties():
    F = tie_features()
    k = 4
    expected = dense_knn(F, k)
    # The data exercise the tie rule: some row has a tie across the cut-off.
    Fh = F / np.linalg.norm(F, axis=1, keepdims=True)
    S = np.sort(Fh.astype(np.float64) @ Fh.T.astype(np.float64), axis=1)[:, ::-1]
    assert (S[:, k - 1] == S[:, k]).any()
    for batch_size in (None, 1, 3, 7):
        got = knn_neighbors(F, k, batch_size=batch_size).numpy()
        np.testing.assert_array_equal(got, expected)
    # Self is among its own neighbours, except for the duplicates of a lower index
    # (rows 3 and 7 equal row 1 up to scale: their first neighbour is row 1).
    got = knn_neighbors(F, 2).numpy()
    assert got[3, 0] == 1 and got[7, 0] == 1 and got[3, 1] == 3
    assert all(i in got[i] for i in range(len(F)) if i not in (3, 7))


def test_item_knn_graph_matches_dense_reference():
    rng = np.random.default_rng(1)
    blocks = [tie_features(2), rng.normal(size=(18, 5)).astype(np.float32),
              rng.normal(size=(18, 3)).astype(np.float32)]
    X = np.hstack(blocks)
    X_before = X.copy()
    k, weights = 3, (0.1, 0.6, 0.3)
    M = item_knn_graph(X, [8, 5, 3], k, weights=weights)
    assert M.layout == torch.sparse_coo and M.is_coalesced() and M.dtype == torch.float32
    np.testing.assert_allclose(M.to_dense().numpy(), dense_graph(blocks, k, weights),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(X, X_before)
    # Row sums are 1 - 1e-7 / (k + 1e-7): each modality graph averages k neighbours.
    np.testing.assert_allclose(M.to_dense().sum(1).numpy(), k / (k + EPS), rtol=1e-6)


def test_item_knn_graph_values_are_mmrec_levels():
    # Two modalities with weights (w, 1 - w): entries are w/k, (1-w)/k or 1/k (both graphs).
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 6)).astype(np.float32)
    k, w = 5, 0.1
    M = item_knn_graph(X, [2, 4], k, weights=[w, 1 - w])
    levels = np.array([w, 1 - w, 1.0]) / (k + EPS)
    vals = M.values().numpy()
    assert np.abs(vals[:, None] - levels[None, :]).min(1).max() < 1e-8
    dense = M.to_dense().numpy()
    np.testing.assert_allclose(np.diag(dense), 1 / (k + EPS), rtol=1e-6)  # self in both


def test_single_modality_and_default_weights():
    X = tie_features(4)
    M1 = item_knn_graph(X, None, 3).to_dense().numpy()
    np.testing.assert_allclose(M1, dense_graph([X], 3, [1.0]), rtol=1e-6)
    M2 = item_knn_graph(X, [4, 4], 3).to_dense().numpy()  # None: equal weights
    np.testing.assert_allclose(M2, dense_graph([X[:, :4], X[:, 4:]], 3, [0.5, 0.5]),
                               rtol=1e-6, atol=1e-9)


def test_zero_rows_raise_by_default():
    X = tie_features()
    X[4] = 0
    with pytest.raises(ValueError, match="all-zero feature row.*rows \\[4\\].*rank_first"):
        item_knn_graph(X, None, 3)
    with pytest.raises(ValueError, match="all-zero"):
        knn_neighbors(X, 3)


def test_zero_rows_rank_first_reproduces_mmrec_ordering():
    X = tie_features()
    X[[4, 11]] = 0
    k = 4
    got = knn_neighbors(X, k, zero_rows="rank_first").numpy()
    np.testing.assert_array_equal(got, dense_knn(X, k, nan_first=True))
    np.testing.assert_array_equal(got[4], np.arange(k))
    # MMRec's own computation (x / ||x|| without epsilon, torch.topk ranking NaN first) gives
    # the same neighbour sets on the ordinary rows of tie-free data (its order among the NaNs,
    # and its zero rows' lists, are arbitrary).
    X = np.random.default_rng(8).normal(size=(20, 5)).astype(np.float32)
    X[[4, 11, 12]] = 0
    got = knn_neighbors(X, k, zero_rows="rank_first").numpy()
    t = torch.as_tensor(X)
    Fh = t.div(torch.norm(t, p=2, dim=-1, keepdim=True))
    mmrec = torch.topk(Fh @ Fh.T, k, dim=-1).indices.numpy()
    for i in set(range(len(X))) - {4, 11, 12}:
        assert set(mmrec[i]) == set(got[i])
        assert set(got[i][:3]) == {4, 11, 12}


@pytest.mark.parametrize("kwargs, match", [
    ({"modalities": [8, 7]}, "sums to 15"),
    ({"weights": [0.5, 0.6], "modalities": [4, 4]}, "sum to 1"),
    ({"weights": [1.0], "modalities": [4, 4]}, "one weight per modality"),
    ({"weights": [1.5, -0.5], "modalities": [4, 4]}, "non-negative"),
    ({"n_neighbors": 19}, "exceeds the number of items"),
    ({"n_neighbors": 0}, "n_neighbors"),
    ({"zero_rows": "ignore"}, "zero_rows"),
])
def test_item_knn_graph_input_errors(kwargs, match):
    X = tie_features()
    with pytest.raises(ValueError, match=match):
        item_knn_graph(X, **kwargs)


def test_item_knn_graph_rejects_nan():
    X = tie_features()
    X[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN.*impute"):
        item_knn_graph(X)


# ----------------------------------------------------------------------------- U-I graph

def test_user_item_adjacency_matches_dense_reference():
    Y = small_interactions().toarray()
    Y[0, 0] = 3.0  # a weighted entry counts as one interaction
    A = user_item_adjacency(sp.csr_matrix(Y))
    expected = dense_bipartite((Y.T > 0).astype(float))
    np.testing.assert_allclose(A.to_dense().numpy(), expected, rtol=1e-6, atol=0)
    # Isolated user 4 and item 6 have empty rows; no self-loops.
    dense = A.to_dense().numpy()
    assert not dense[4].any() and not dense[5 + 6].any() and not np.diag(dense).any()
    np.testing.assert_array_equal(user_item_adjacency(Y).to_dense(), A.to_dense())


# ----------------------------------------------------------------------------- pruning

def hub_graph():
    """Edges (u, i): user 0 is a hub (items 0-3), item 0 a hub (users 0-2), (3, 4) a leaf
    pair: sampling weights 1/sqrt(12), 1/2 (x3), 1/sqrt(3) (x2), 1."""
    R = np.zeros((4, 5))
    for u, i in [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (2, 0), (3, 4)]:
        R[u, i] = 1
    return sp.csr_matrix(R.T)


def exact_inclusion(w, K):
    """Inclusion probability of each category in K sequential draws without replacement,
    probability proportional to w: enumerate every ordered sequence."""
    pi = np.zeros(len(w))
    for seq in itertools.permutations(range(len(w)), K):
        p, rest = 1.0, w.sum()
        for s in seq:
            p *= w[s] / rest
            rest -= w[s]
        pi[list(seq)] += p
    return pi


def test_pruner_weights_and_kept_count():
    pruner = EdgePruner(hub_graph(), edge_dropout=0.5)
    assert pruner.n_edges == 7 and pruner.n_keep == 3
    R = hub_graph().toarray().T
    du, di = R.sum(1), R.sum(0)
    u, i = pruner.users.numpy(), pruner.items.numpy()
    np.testing.assert_allclose(pruner.weights.numpy(), 1 / np.sqrt((du[u] + EPS) * (di[i] + EPS)))
    # MMRec's count, int(|E| * (1 - dropout)), float rounding included: int(10 * 0.2...) = 1.
    Y10 = sp.csr_matrix(np.ones((2, 5)))  # 10 edges
    assert EdgePruner(Y10, edge_dropout=0.8).n_keep == int(10 * (1 - 0.8)) == 1


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_pruner_distribution_is_sequential_weighted_without_replacement(kind):
    pruner = EdgePruner(hub_graph(), edge_dropout=0.5)
    w = pruner.weights.numpy()
    K = pruner.n_keep
    exact = exact_inclusion(w, K)
    n = 20000
    tol = 5 * np.sqrt(exact * (1 - exact) / n)
    # The test separates the right sampler from plausible wrong ones: uniform, and weighted
    # with replacement, are both far outside the tolerance.
    q = w / w.sum()
    assert np.abs(K / len(w) - exact).max() > 3 * tol.max()
    assert np.abs((1 - (1 - q) ** K) - exact).max() > 3 * tol.max()
    gen = np.random.default_rng(0) if kind == "numpy" else torch.Generator().manual_seed(0)
    counts = np.zeros(len(w))
    for _ in range(n):
        keep = pruner.sample_edges(gen).numpy()
        assert len(np.unique(keep)) == K  # without replacement
        counts[keep] += 1
    np.testing.assert_array_less(np.abs(counts / n - exact), tol)


def test_pruned_graph_is_renormalised_symmetric_bipartite():
    Y = small_interactions()
    pruner = EdgePruner(Y, edge_dropout=0.5)
    rng = np.random.default_rng(7)
    for _ in range(5):
        keep = pruner.sample_edges(np.random.default_rng(rng.integers(1 << 30)))
        assert keep.numel() == pruner.n_keep == int(12 * 0.5)
        R = np.zeros((5, 7))
        R[pruner.users[keep].numpy(), pruner.items[keep].numpy()] = 1
        assert R.sum() == pruner.n_keep
    A = pruner.sample(np.random.default_rng(11))
    keep = pruner.sample_edges(np.random.default_rng(11))
    R = np.zeros((5, 7))
    R[pruner.users[keep].numpy(), pruner.items[keep].numpy()] = 1
    dense = A.to_dense().numpy()
    np.testing.assert_allclose(dense, dense_bipartite(R), rtol=1e-6, atol=0)
    np.testing.assert_array_equal(dense, dense.T)
    assert A._nnz() == 2 * pruner.n_keep


def test_pruner_determinism_and_zero_dropout():
    Y = small_interactions()
    pruner = EdgePruner(Y, edge_dropout=0.6)

    def draw(seed, kind):
        g = np.random.default_rng(seed) if kind == "numpy" else torch.Generator().manual_seed(seed)
        return pruner.sample(g).to_dense()

    for kind in ("numpy", "torch"):
        assert torch.equal(draw(3, kind), draw(3, kind))
        assert any(not torch.equal(draw(3, kind), draw(s, kind)) for s in range(4, 10))
    full = EdgePruner(Y, edge_dropout=0.0)
    assert full.sample(np.random.default_rng(0)) is full.adjacency
    np.testing.assert_allclose(full.adjacency.to_dense().numpy(),
                               dense_bipartite(Y.toarray().T), rtol=1e-6)
    with pytest.raises(ValueError, match="edge_dropout"):
        EdgePruner(Y, edge_dropout=1.0)
    with pytest.raises(TypeError, match="generator"):
        pruner.sample(0)


# ----------------------------------------------------------------------------- module

def make_module(n_modalities=2, n_layers=2, n_item_layers=1, n_factors=4, seed=0):
    Y = small_interactions()
    rng = np.random.default_rng(seed)
    blocks = [rng.normal(size=(7, d)).astype(np.float32) for d in (4, 6, 3)[:n_modalities]]
    weights = np.full(n_modalities, 1 / n_modalities) if n_modalities != 2 else [0.1, 0.9]
    M = item_knn_graph(np.hstack(blocks), [b.shape[1] for b in blocks], 3, weights=weights)
    A = user_item_adjacency(Y)
    torch.manual_seed(seed)
    module = FREEDOMModule(5, 7, blocks, M, A, n_factors=n_factors, n_layers=n_layers,
                           n_item_layers=n_item_layers)
    return module, blocks, M, A, Y


def np_forward(module, M, A, n_layers, n_item_layers):
    Eu = module.user_embedding.weight.detach().double().numpy()
    Ei = module.item_id_embedding.weight.detach().double().numpy()
    M, A = M.to_dense().double().numpy(), A.to_dense().double().numpy()
    H = Ei
    for _ in range(n_item_layers):
        H = M @ H
    X = [np.vstack([Eu, Ei])]
    for _ in range(n_layers):
        X.append(A @ X[-1])
    mean = np.mean(X, axis=0)
    return mean[:len(Eu)], mean[len(Eu):] + H


@pytest.mark.parametrize("n_layers, n_item_layers", [(2, 1), (0, 0), (3, 2)])
def test_forward_matches_numpy(n_layers, n_item_layers):
    module, _, M, A, Y = make_module(n_layers=n_layers, n_item_layers=n_item_layers)
    u_f, i_f = module(A)
    eu, ei = np_forward(module, M, A, n_layers, n_item_layers)
    np.testing.assert_allclose(u_f.detach().numpy(), eu, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(i_f.detach().numpy(), ei, rtol=1e-5, atol=1e-7)
    # With a pruned graph, and at inference with the stored full graph.
    At = EdgePruner(Y, edge_dropout=0.5).sample(np.random.default_rng(0))
    eu, ei = np_forward(module, M, At, n_layers, n_item_layers)
    np.testing.assert_allclose(module(At)[1].detach().numpy(), ei, rtol=1e-5, atol=1e-7)
    uf, itf = module.final_factors()
    assert not uf.requires_grad and torch.equal(itf, module(A)[1].detach())


@pytest.mark.parametrize("n_modalities", [1, 2, 3])
@pytest.mark.parametrize("batch", [6, 1])  # 1: the path projecting only the batch's rows
def test_loss_matches_numpy(n_modalities, batch):
    module, _, M, A, _ = make_module(n_modalities=n_modalities)
    users = torch.tensor([0, 1, 2, 3, 0, 3])[:batch]
    pos = torch.tensor([0, 3, 5, 2, 4, 1])[:batch]
    neg = torch.tensor([6, 2, 0, 4, 6, 6])[:batch]
    weight = 0.1
    loss = module.loss(module(A), users, pos, neg, modality_loss_weight=weight)
    eu, ei = np_forward(module, M, A, 2, 1)
    u = eu[users.numpy()]
    expected = np_bpr(u, ei[pos.numpy()], ei[neg.numpy()])
    for m in range(n_modalities):
        Fm = module.features[m].detach().double().numpy()
        W = module.projections[m].weight.detach().double().numpy()
        b = module.projections[m].bias.detach().double().numpy()
        P = Fm @ W.T + b
        expected += weight * np_bpr(u, P[pos.numpy()], P[neg.numpy()])
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(bpr_logsigmoid(torch.tensor(u), torch.tensor(ei[pos.numpy()]),
                                              torch.tensor(ei[neg.numpy()])).item(),
                               np_bpr(u, ei[pos.numpy()], ei[neg.numpy()]), rtol=1e-12)


def test_bpr_logsigmoid_is_stable_for_large_gaps():
    a = torch.tensor([[1.0]])
    assert bpr_logsigmoid(a, torch.tensor([[-200.0]]), torch.tensor([[0.0]])).item() == \
        pytest.approx(200.0)


def test_gradients_reach_the_parameters_the_spec_says():
    module, blocks, M, A, _ = make_module()
    users, pos, neg = torch.tensor([0, 1, 3]), torch.tensor([0, 3, 2]), torch.tensor([6, 2, 4])
    module.loss(module(A), users, pos, neg, modality_loss_weight=0.5).backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        if name.endswith("bias"):
            # b_m cancels in <u, P_pos> - <u, P_neg>: its gradient is zero up to rounding (in
            # MMRec too). The biases affect no loss and no score; Adam, which normalises
            # gradients, may still move them by that rounding noise.
            np.testing.assert_allclose(p.grad.numpy(), 0, atol=1e-7)
        else:
            assert p.grad.abs().sum() > 0, name
    # Features: only the rows of the batch's items get a gradient.
    rows = np.flatnonzero(module.features[1].grad.abs().sum(1).numpy())
    np.testing.assert_array_equal(rows, np.unique(np.r_[pos.numpy(), neg.numpy()]))


def test_projecting_only_the_batch_rows_gives_the_same_gradients():
    # One pair of a 7-item catalogue takes the path that projects only the batch's rows.
    module, _, _, A, _ = make_module()
    users, pos, neg = torch.tensor([0, 1, 3]), torch.tensor([0, 3, 2]), torch.tensor([6, 2, 4])
    for j in range(3):
        module.loss(module(A), users[j:j + 1], pos[j:j + 1], neg[j:j + 1],
                    modality_loss_weight=0.5).backward()
    pair = {name: p.grad.clone() for name, p in module.named_parameters()}
    module.zero_grad()
    for j in range(3):  # the same loss with every item projected, indexed afterwards
        b = slice(j, j + 1)
        uf, itf = module(A)
        u = uf[users[b]]
        loss = bpr_logsigmoid(u, itf[pos[b]], itf[neg[b]])
        for m in range(module.n_modalities):
            P = module.projected_features(m)
            loss = loss + 0.5 * bpr_logsigmoid(u, P[pos[b]], P[neg[b]])
        loss.backward()
    for name, p in module.named_parameters():
        np.testing.assert_allclose(pair[name].numpy(), p.grad.numpy(), rtol=1e-5, atol=1e-9,
                                   err_msg=name)


def test_item_branch_carries_gradient_to_neighbours():
    # With an empty user-item graph, an item's ID embedding gets a gradient only as itself
    # (layer 0) or as a kNN neighbour (through M) of a batch item.
    module, _, M, _, _ = make_module()
    empty = torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0),
                                    (12, 12))
    pos, neg = torch.tensor([0]), torch.tensor([6])
    module.loss(module(empty), torch.tensor([1]), pos, neg,
                modality_loss_weight=0.0).backward()
    Md = M.to_dense().numpy()
    reached = (Md[[0, 6]].sum(0) > 0) | np.isin(np.arange(7), [0, 6])
    has_grad = module.item_id_embedding.weight.grad.abs().sum(1).numpy() > 0
    np.testing.assert_array_equal(has_grad, reached)
    assert reached.sum() > 2  # some item is reached through M only


def test_zero_modality_weight_detaches_features():
    module, blocks, _, A, _ = make_module()
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    opt = torch.optim.Adam(module.parameters(), lr=0.1)
    users, pos, neg = torch.tensor([0, 1, 3]), torch.tensor([0, 3, 2]), torch.tensor([6, 2, 4])
    for _ in range(3):
        opt.zero_grad()
        final = module(A)
        loss = module.loss(final, users, pos, neg, modality_loss_weight=0.0)
        assert loss.item() == pytest.approx(
            bpr_logsigmoid(final[0][users], final[1][pos], final[1][neg]).item())
        loss.backward()
        opt.step()
    for name, p in module.named_parameters():
        moved = not torch.equal(p.detach(), before[name])
        assert moved == name.startswith(("user_embedding", "item_id_embedding")), name
    # The input features are copies: never modified, even when the copies train.
    module2, blocks2, _, _, _ = make_module(seed=5)
    kept = [b.copy() for b in blocks2]
    opt = torch.optim.Adam(module2.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        module2.loss(module2(A), users, pos, neg, modality_loss_weight=1.0).backward()
        opt.step()
    assert not torch.equal(module2.features[0].detach(), torch.as_tensor(kept[0]))
    for b, k in zip(blocks2, kept):
        np.testing.assert_array_equal(b, k)
    # A torch tensor given as features is copied too.
    t = torch.as_tensor(kept[0]).clone()
    module3 = FREEDOMModule(5, 7, [t], item_knn_graph(kept[0], None, 2), A, n_factors=4)
    with torch.no_grad():
        module3.features[0].add_(1.0)
    assert torch.equal(t, torch.as_tensor(kept[0]))
    with pytest.raises(ValueError, match="modality_loss_weight"):
        module3.loss(module3(A), users, pos, neg, modality_loss_weight=-1.0)


def test_module_initialisation_and_buffers():
    module, blocks, M, A, _ = make_module(n_factors=8)
    b_u = np.sqrt(6 / (5 + 8))  # xavier_uniform bound
    b_i = np.sqrt(6 / (7 + 8))
    assert module.user_embedding.weight.abs().max() <= b_u
    assert module.item_id_embedding.weight.abs().max() <= b_i
    for m, f in enumerate(blocks):
        np.testing.assert_array_equal(module.features[m].detach().numpy(), f)
        lin = module.projections[m]
        assert lin.weight.shape == (8, f.shape[1])
        assert lin.weight.abs().max() <= 1 / np.sqrt(f.shape[1])
    # Graphs are buffers: moved and pickled with the module, not in the state dict.
    assert not any(k.startswith(("item_graph", "adjacency")) for k in module.state_dict())
    clone = pickle.loads(pickle.dumps(module))
    for a, b in zip(module.final_factors(), clone.final_factors()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"features": []}, TypeError, "non-empty sequence"),
    ({"features": [np.zeros((6, 3))]}, ValueError, r"features\[0\] must have shape \(7"),
    ({"n_factors": 0}, ValueError, "n_factors"),
    ({"n_layers": -1}, ValueError, "n_layers"),
    ({"item_graph": np.eye(7)}, TypeError, "item_graph"),
])
def test_module_input_errors(kwargs, error, match):
    Y = small_interactions()
    X = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    args = {"features": [X], "item_graph": item_knn_graph(X, None, 2),
            "adjacency": user_item_adjacency(Y)}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        FREEDOMModule(5, 7, args.pop("features"), args.pop("item_graph"), args.pop("adjacency"),
                      **args)


# ----------------------------------------------------------------------------- real data, CUDA

def test_item_graph_on_lastfm_matches_mmrec_transcription(data_root):
    from skmm.datasets import load_mmrec

    data = load_mmrec(data_root / "lastfm2k", ["vggish", "all-MiniLM-L6-v2"])
    k, w = 10, 0.1
    M = item_knn_graph(data.X, data.modalities, k, weights=[w, 1 - w]).to_dense()
    # MMRec's get_knn_adj_mat: dense float32 cosine, torch.topk, every entry 1/k, mixed.
    expected = torch.zeros_like(M)
    start = 0
    for size, weight in zip(data.modalities, (w, 1 - w)):
        t = torch.as_tensor(data.X[:, start:start + size])
        start += size
        Fh = t.div(torch.norm(t, p=2, dim=-1, keepdim=True))
        knn = torch.topk(Fh @ Fh.T, k, dim=-1).indices
        B = torch.zeros_like(M).scatter_(1, knn, 1.0)
        expected += weight * B / (k + EPS)
    np.testing.assert_allclose(M.numpy(), expected.numpy(), rtol=1e-6, atol=1e-9)


@requires_cuda
def test_cuda_matches_cpu():
    X = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    M = item_knn_graph(X, [2, 4], 3, weights=[0.1, 0.9])
    M_cuda = item_knn_graph(X, [2, 4], 3, weights=[0.1, 0.9], device="cuda")
    assert M_cuda.device.type == "cuda"
    np.testing.assert_allclose(M_cuda.cpu().to_dense().numpy(), M.to_dense().numpy(),
                               rtol=1e-6)
    Y = small_interactions()
    pruner, pruner_cuda = EdgePruner(Y, 0.5), EdgePruner(Y, 0.5, device="cuda")
    # The same numpy draws keep the same edges on either device.
    A = pruner.sample(np.random.default_rng(4)).to_dense()
    A_cuda = pruner_cuda.sample(np.random.default_rng(4)).cpu().to_dense()
    np.testing.assert_allclose(A_cuda.numpy(), A.numpy(), rtol=1e-6)
    g = torch.Generator(device="cuda").manual_seed(0)
    assert pruner_cuda.sample_edges(g).numel() == pruner.n_keep
    with pytest.raises(ValueError, match="generator is on"):
        pruner_cuda.sample_edges(torch.Generator().manual_seed(0))
    module = make_module()[0]
    on_cuda = copy.deepcopy(module).to("cuda")
    for a, b in zip(module.final_factors(), on_cuda.final_factors()):
        np.testing.assert_allclose(b.cpu().numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
