"""The item-item graph builder against a dense transcription of its rules, the neighbour lists
against the builder, and the argument checks of every public function of skmm.graph."""

from fractions import Fraction
from math import log, log1p, sqrt

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import skmm.graph as graph
from skmm.graph import (
    SIMILARITIES,
    NeighbourLists,
    cointeraction_graph,
    graph_from_neighbours,
    neighbour_lists,
    normalize_adjacency,
)


# ------------------------------------------------------------------------------------------
# A dense reference, one pair at a time
# ------------------------------------------------------------------------------------------


def _pair_values(Y, similarity, shrink=0.0, alpha=0.5, k1=1.2, b=0.75):
    """Support c_ij and ranking value of every pair, written out from the documented formulas.

    Count, cosine and Jaccard without shrinkage are exact rationals (Fractions; the cosine is
    ranked by its square). The other similarities are float64, each sum of user weights taken
    in increasing user order, as documented.
    """
    Yb = (np.asarray(Y.todense() if sp.issparse(Y) else Y) != 0).astype(int)
    n, n_users = Yb.shape
    users = [set(np.flatnonzero(Yb[i])) for i in range(n)]
    d = [len(u) for u in users]
    n_u = Yb.sum(axis=0)
    idf = [log(n) - log1p(n_u[u]) for u in range(n_users)]
    w = [x * x for x in idf]
    S = lambda i, j: sum((w[u] for u in sorted(users[i] & users[j])), 0.0)  # noqa: E731
    mean_d = sum(d) / n
    f = [(k1 + 1) / (k1 * ((1 - b) + b * d[i] / mean_d) + 1) for i in range(n)]
    c, s = {}, {}
    for i in range(n):
        for j in range(n):
            cij = len(users[i] & users[j])
            if i == j or cij == 0:
                continue
            c[i, j] = cij
            if similarity == "count":
                s[i, j] = Fraction(cij)
            elif similarity == "cosine" and shrink == 0:
                s[i, j] = Fraction(cij * cij, d[i] * d[j])
            elif similarity == "cosine":
                s[i, j] = cij / (sqrt(d[i] * d[j]) + shrink)
            elif similarity == "jaccard" and shrink == 0:
                s[i, j] = Fraction(cij, d[i] + d[j] - cij)
            elif similarity == "jaccard":
                s[i, j] = cij / (d[i] + d[j] - cij + shrink)
            elif similarity == "asymmetric_cosine":
                s[i, j] = cij / (d[i] ** alpha * d[j] ** (1 - alpha) + shrink)
            elif similarity == "tfidf":
                s[i, j] = S(i, j) / (sqrt(S(i, i) * S(j, j)) + shrink)
            elif similarity == "bm25":
                s[i, j] = S(i, j) * (f[i] * f[j])
    return c, s


def reference_graph(Y, k, similarity="count", symmetric=False, weighting="binary", **params):
    """Dense adjacency: per row, the k best positive-similarity pairs, ties to the smaller j."""
    n = Y.shape[0]
    c, s = _pair_values(Y, similarity, **params)
    A = np.zeros((n, n))
    for i in range(n):
        ranked = sorted((-s[i, j], j) for (r, j) in s if r == i and s[i, j] > 0)
        for _, j in ranked[:k]:
            value = s[i, j]
            if isinstance(value, Fraction):  # cosine ranks by its square
                value = sqrt(value) if similarity == "cosine" else float(value)
            A[i, j] = {"binary": 1.0, "count": c[i, j], "similarity": value}[weighting]
    return np.maximum(A, A.T) if symmetric else A


def _catalogue(seed, n_items=90, n_users=60):
    """Items of very different popularity (normalised similarities then differ from counts),
    isolated items, and rows much longer than k, so that the heap of the k best is refilled."""
    rng = np.random.default_rng(seed)
    popularity = rng.pareto(1.5, n_items) + 0.05
    p = np.clip(popularity / popularity.max() * 0.6, 0.01, 0.6)
    Y = (rng.random((n_items, n_users)) < p[:, None]).astype(float)
    Y[-3:] = 0
    return sp.csr_matrix(Y)


SIM_CASES = [
    ("count", {}), ("cosine", {}), ("cosine", {"shrink": 2.0}),
    ("asymmetric_cosine", {"asymmetric_alpha": 0.2}),
    ("asymmetric_cosine", {"asymmetric_alpha": 0.8, "shrink": 1.0}),
    ("jaccard", {}), ("jaccard", {"shrink": 0.5}), ("tfidf", {}), ("tfidf", {"shrink": 0.3}),
    ("bm25", {}), ("bm25", {"bm25_k1": 3.0, "bm25_b": 0.3}),
]
SIM_IDS = [s + "".join(f"-{k}={v}" for k, v in p.items()) for s, p in SIM_CASES]


def _ref_params(params):
    names = {"asymmetric_alpha": "alpha", "bm25_k1": "k1", "bm25_b": "b", "shrink": "shrink"}
    return {names[k]: v for k, v in params.items()}


def _weightings(similarity):
    return ["binary", "similarity"] + (["count"] if similarity not in ("tfidf", "bm25") else [])


@pytest.mark.parametrize("similarity,params", SIM_CASES, ids=SIM_IDS)
@pytest.mark.parametrize("symmetric", [False, True], ids=["directed", "symmetric"])
def test_matches_dense_reference(similarity, params, symmetric):
    # The long rows of the 200-item catalogue, and k = 1, 2, make most candidates compete for
    # a full heap.
    for seed, k, n_items in [(0, 3, 90), (1, 7, 90), (2, 1, 200), (3, 2, 200)]:
        Y = _catalogue(seed, n_items=n_items, n_users=150 if n_items > 100 else 60)
        for weighting in _weightings(similarity):
            A = cointeraction_graph(Y, k, similarity=similarity, symmetric=symmetric,
                                    weighting=weighting, **params)
            expected = reference_graph(Y, k, similarity, symmetric, weighting,
                                       **_ref_params(params))
            np.testing.assert_array_equal(A.toarray() != 0, expected != 0)
            np.testing.assert_allclose(A.toarray(), expected, rtol=1e-6)
            assert A.dtype == np.float32 and A.has_sorted_indices
            assert A.diagonal().sum() == 0


def test_ties_go_to_the_smaller_index_for_every_similarity():
    # Items 1..4 are identical (same users), so they tie under every similarity in row 0.
    Y = np.zeros((7, 6))
    Y[0, :3] = 1
    Y[1:5, 0] = Y[1:5, 5] = 1
    Y[5, 1:3] = 1
    Y[6, 4] = 1
    for similarity in SIMILARITIES:
        A = cointeraction_graph(Y, 2, similarity=similarity).toarray()
        # Item 5 is best under all of them; of the four tied items, the first.
        np.testing.assert_array_equal(A[0], [0, 1, 0, 0, 0, 1, 0])
        assert A[6].sum() == 0 and A[:, 6].sum() == 0  # no shared user: never an edge


def test_cosine_ranks_exactly_at_true_ties():
    # c/sqrt(d_j) ties exactly for (c, d_j) = (1, 1), (2, 4), (3, 9): a float product or
    # quotient can misorder them; the c^2/d_j key keeps them tied, so the smaller index wins.
    n_users = 20
    Y = np.zeros((4, n_users))
    Y[0, :3] = 1                          # item 0: users 0, 1, 2
    Y[1, [0, 1, 2, 10, 11, 12, 13, 14, 15]] = 1  # c=3, d=9
    Y[2, [0, 1, 16, 17]] = 1              # c=2, d=4
    Y[3, [2]] = 1                         # c=1, d=1
    for k, expected in [(1, [1, 0, 0]), (2, [1, 1, 0]), (3, [1, 1, 1])]:
        A = cointeraction_graph(Y, k, similarity="cosine").toarray()
        np.testing.assert_array_equal(A[0, 1:], expected)


def test_asymmetric_cosine_limits():
    Y = _catalogue(3)
    cos = cointeraction_graph(Y, 5, similarity="cosine", weighting="similarity")
    half = cointeraction_graph(Y, 5, similarity="asymmetric_cosine", asymmetric_alpha=0.5,
                               weighting="similarity")
    assert (cos != half).nnz == 0
    # a = 1 divides by d_i only, a row constant: the same neighbours as raw counts.
    one = cointeraction_graph(Y, 5, similarity="asymmetric_cosine", asymmetric_alpha=1.0)
    assert (one != cointeraction_graph(Y, 5)).nnz == 0


def test_zero_similarity_pairs_are_never_edges():
    # User 0 interacted with every item but the last: idf = ln N - ln N = 0, so pairs that
    # share only user 0 have tf-idf and BM25 similarity 0.
    Y = np.zeros((5, 4))
    Y[:4, 0] = 1
    Y[0, 1] = Y[1, 1] = 1
    Y[4, 3] = 1
    for similarity in ("tfidf", "bm25"):
        A = cointeraction_graph(Y, 4, similarity=similarity).toarray()
        expected = np.zeros((5, 5))
        expected[0, 1] = expected[1, 0] = 1
        np.testing.assert_array_equal(A, expected)
    assert cointeraction_graph(Y, 4).toarray()[2, 3] == 1  # they do share a user


def test_default_is_the_count_graph_and_unchanged():
    Y = _catalogue(4)
    base = cointeraction_graph(Y, 6)
    assert (base != cointeraction_graph(Y, 6, similarity="count")).nnz == 0
    np.testing.assert_array_equal(base.toarray(), reference_graph(Y, 6))
    counts = cointeraction_graph(Y, 6, weighting="count")
    assert (counts != cointeraction_graph(Y, 6, weighting="similarity")).nnz == 0


def test_tiny_positive_interactions_count():
    Y = sp.csr_matrix(np.array([[1e-50, 1e-50], [1e-50, 0.0], [0.0, 3.0]]))
    np.testing.assert_array_equal(cointeraction_graph(Y, 1).toarray(),
                                  [[0, 1, 0], [1, 0, 0], [1, 0, 0]])


def test_n_neighbors_beyond_the_catalogue_is_clipped():
    Y = _catalogue(5, n_items=30)
    assert (cointeraction_graph(Y, 10**12) != cointeraction_graph(Y, 29)).nnz == 0
    lists = neighbour_lists(Y, 10**12)
    assert lists.max_neighbors == 29
    assert (graph_from_neighbours(lists, 10**6) != cointeraction_graph(Y, 29)).nnz == 0


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_independent_of_blocks_sub_blocks_and_threads(similarity, monkeypatch):
    Y = _catalogue(6, n_items=120, n_users=80)
    base = cointeraction_graph(Y, 5, similarity=similarity, weighting="similarity")
    variants = [{"batch_size": 1}, {"batch_size": 7}, {"batch_size": 1000}]
    results = [cointeraction_graph(Y, 5, similarity=similarity, weighting="similarity", **v)
               for v in variants]
    monkeypatch.setattr(graph, "_TASKS_PER_THREAD", 37)  # many small tasks per thread
    before = torch.get_num_threads()
    for n_threads in (1, 2):
        torch.set_num_threads(n_threads)
        try:
            results.append(cointeraction_graph(Y, 5, similarity=similarity,
                                               weighting="similarity"))
        finally:
            torch.set_num_threads(before)
    for A in results:
        np.testing.assert_array_equal(A.indptr, base.indptr)
        np.testing.assert_array_equal(A.indices, base.indices)
        np.testing.assert_array_equal(A.data, base.data)


# ------------------------------------------------------------------------------------------
# The fused kernel against a dense numpy reference, on catalogues with many ties
# ------------------------------------------------------------------------------------------

def _dense_ranking(Y, similarity, **params):
    """``(support, key, value)`` of every pair as dense (n, n) arrays, from the documented
    formulas in numpy. Sums of user weights are accumulated one user at a time in increasing
    user order (the documented order), so float keys, and therefore ties, are exact."""
    with np.errstate(divide="ignore", invalid="ignore"):  # pairs without support: unused
        return _dense_ranking_values(Y, similarity, **params)


def _dense_ranking_values(Y, similarity, shrink=0.0, alpha=0.5, k1=1.2, b=0.75):
    Yb = (Y.toarray() != 0).astype(np.float64)
    n = Yb.shape[0]
    c = Yb @ Yb.T  # exact: small integers
    d = Yb.sum(axis=1)
    if similarity in ("tfidf", "bm25"):
        idf = np.log(n) - np.log1p(Yb.sum(axis=0))
        w = idf * idf
        S = np.zeros((n, n))
        for u in range(Yb.shape[1]):
            S += np.outer(Yb[:, u], Yb[:, u] * w[u])
        q = np.diag(S).copy()
        if similarity == "bm25":
            g = (k1 + 1) / (k1 * ((1 - b) + b * d / d.mean()) + 1)
        else:
            g = np.divide(1.0, np.sqrt(q), out=np.zeros(n), where=q > 0)
        folded = np.zeros((n, n))  # sum_u w_u g_j, each term w_u * g_j
        for u in range(Yb.shape[1]):
            folded += np.outer(Yb[:, u], Yb[:, u] * (w[u] * g))
        support = S > 0
        if similarity == "tfidf" and shrink:
            value = S / (np.sqrt(np.outer(q, q)) + shrink)
            return support, value, value
        return support, folded, g[:, None] * folded
    support = c > 0
    if similarity == "count":
        return support, c, c
    if similarity == "cosine":
        value = c / (np.sqrt(np.outer(d, d)) + shrink)
        return support, (c * c / d[None, :] if shrink == 0 else value), value
    if similarity == "jaccard":
        value = c / (d[:, None] + d[None, :] - c + shrink)
        return support, value, value
    value = c / (np.outer(d ** alpha, d ** (1 - alpha)) + shrink)  # asymmetric cosine
    return support, value, value


def _tied_catalogue(seed, n_items=70, n_users=12, empty=(0, 5, 33)):
    """Few users, so that many pairs tie; some items and users without interactions."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n_items, n_users)) < rng.uniform(0.05, 0.4, n_items)[:, None])
    Y[list(empty)] = False
    Y[:, -1] = False  # a user without items
    Y[n_items // 2 + 1] = Y[n_items // 2]  # two identical items
    return sp.csr_matrix(Y.astype(np.float64))


@pytest.mark.parametrize("similarity,params", SIM_CASES, ids=SIM_IDS)
@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
@pytest.mark.parametrize("factors", ["gathered", "streamed"])
def test_kernel_matches_dense_numpy_reference(similarity, params, index_dtype, factors,
                                              monkeypatch):
    if index_dtype == "int64":  # the kernel's int64 path, as for catalogues beyond 2**31
        monkeypatch.setattr(graph, "_INT32_MAX", 0)
    # The candidate factors streamed per entry of Y.T, as when they outgrow the cache, or
    # gathered per candidate (the path of small catalogues).
    monkeypatch.setattr(graph, "_cache_bytes", lambda: 0 if factors == "streamed" else 1 << 62)
    for seed, k in [(0, 1), (1, 4), (2, 25), (3, 200)]:  # 200 > n_items: every candidate
        Y = _tied_catalogue(seed)
        support, key, value = _dense_ranking(Y, similarity, **_ref_params(params))
        lists = neighbour_lists(Y, k, similarity=similarity, **params)
        assert lists.indices.dtype == np.dtype(index_dtype)
        A = cointeraction_graph(Y, k, similarity=similarity, weighting="similarity", **params)
        for i in range(Y.shape[0]):
            cand = [j for j in np.flatnonzero(support[i]) if j != i]
            ranked = sorted(cand, key=lambda j: (-key[i, j], j))[:k]
            row = lists.indices[lists.indptr[i]:lists.indptr[i + 1]]
            np.testing.assert_array_equal(row, ranked)
            np.testing.assert_array_equal(
                lists.similarities[lists.indptr[i]:lists.indptr[i + 1]],
                value[i, ranked].astype(np.float32))
            np.testing.assert_array_equal(A.indices[A.indptr[i]:A.indptr[i + 1]],
                                          np.sort(ranked))
        if lists.counts is not None:
            rows = np.repeat(np.arange(Y.shape[0]), np.diff(lists.indptr))
            c = (Y @ Y.T).toarray()
            np.testing.assert_array_equal(lists.counts, c[rows, lists.indices])


def test_kernel_deterministic_across_threads_and_tasks(monkeypatch):
    Y = _tied_catalogue(4, n_items=300, n_users=40)
    for similarity in ("count", "tfidf"):
        base = neighbour_lists(Y, 6, similarity=similarity)
        before = torch.get_num_threads()
        results = []
        for n_threads, tasks, batch in [(1, 1, None), (2, 1, None), (3, 50, None), (2, 8, 1),
                                        (4, 8, 1000)]:
            monkeypatch.setattr(graph, "_TASKS_PER_THREAD", tasks)
            torch.set_num_threads(n_threads)
            try:
                results.append(neighbour_lists(Y, 6, similarity=similarity, batch_size=batch))
            finally:
                torch.set_num_threads(before)
        for lists in results:
            np.testing.assert_array_equal(lists.indptr, base.indptr)
            np.testing.assert_array_equal(lists.indices, base.indices)
            np.testing.assert_array_equal(lists.similarities, base.similarities)


def test_kernel_edge_cases():
    # No interactions at all, a single item, and k beyond the candidates of every row.
    for Y in (sp.csr_matrix((5, 3)), sp.csr_matrix(np.ones((1, 4))),
              sp.csr_matrix(np.eye(4))):
        A = cointeraction_graph(Y, 3)
        assert A.shape == (Y.shape[0],) * 2 and A.nnz == 0
        lists = neighbour_lists(Y, 3, similarity="bm25")
        assert len(lists.indices) == 0 and lists.indptr.tolist() == [0] * (Y.shape[0] + 1)
    A = cointeraction_graph(sp.csr_matrix(np.ones((4, 2))), 10, weighting="count")
    np.testing.assert_array_equal(A.toarray(), 2 * (1 - np.eye(4)))


# ------------------------------------------------------------------------------------------
# Neighbour lists: one build, every k
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("similarity,params", SIM_CASES, ids=SIM_IDS)
def test_neighbour_list_prefixes_equal_the_builder(similarity, params):
    Y = _catalogue(7)
    k_max = 12
    lists = neighbour_lists(Y, k_max, similarity=similarity, **params)
    assert isinstance(lists, NeighbourLists) and lists.n_items == Y.shape[0]
    assert (np.diff(lists.indptr) <= k_max).all()
    for k in range(1, k_max + 1):
        for symmetric in (False, True):
            for weighting in _weightings(similarity):
                got = graph_from_neighbours(lists, k, symmetric=symmetric, weighting=weighting)
                want = cointeraction_graph(Y, k, similarity=similarity, symmetric=symmetric,
                                           weighting=weighting, **params)
                np.testing.assert_array_equal(got.indptr, want.indptr)
                np.testing.assert_array_equal(got.indices, want.indices)
                np.testing.assert_array_equal(got.data, want.data)


@pytest.mark.parametrize("similarity", ["count", "cosine", "jaccard"])
def test_neighbour_lists_are_in_rank_order(similarity):
    Y = _catalogue(8)
    lists = neighbour_lists(Y, 10, similarity=similarity)
    _, s = _pair_values(Y, similarity)
    for i in range(lists.n_items):
        row = lists.indices[lists.indptr[i]:lists.indptr[i + 1]]
        keys = [(-s[i, j], j) for j in row]
        assert keys == sorted(keys)  # best first, ties by the smaller index
        expected = sorted((-v, j) for (r, j), v in s.items() if r == i)[:10]
        assert [j for _, j in expected] == list(row)
    if similarity == "count":
        np.testing.assert_array_equal(lists.counts, lists.similarities)


# ------------------------------------------------------------------------------------------
# Behaviour kept from test_featprop.py (graph-only tests, copied here)
# ------------------------------------------------------------------------------------------

def test_ties_and_zero_counts_in_graph():
    # Item 0 shares one user with items 1, 2 and 3 (a three-way tie) and none with item 4.
    Y = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 0, 0], [0, 0, 0]]))
    A = cointeraction_graph(Y, n_neighbors=2).toarray()
    np.testing.assert_array_equal(A[0], [0, 1, 1, 0, 0])  # the smaller indices win the tie
    assert A[4].sum() == 0 and A[:, 4].sum() == 0  # zero-count pairs are never edges
    A_many = cointeraction_graph(Y, n_neighbors=10).toarray()
    np.testing.assert_array_equal(A_many[1], [1, 0, 1, 1, 0])  # fewer than k: no filler edges
    assert np.all(np.diag(A_many) == 0)


def test_count_weighting_keeps_counts():
    Y = sp.csr_matrix(np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]]))
    A = cointeraction_graph(Y, n_neighbors=5, weighting="count").toarray()
    np.testing.assert_array_equal(A, [[0, 2, 1], [2, 0, 1], [1, 1, 0]])


# ------------------------------------------------------------------------------------------
# normalize_adjacency
# ------------------------------------------------------------------------------------------

def test_normalize_adjacency_integer_and_bool_weights():
    A = np.array([[0, 2, 1], [2, 0, 0], [1, 0, 0]])
    for normalization in ("sym", "rw"):
        ref = normalize_adjacency(sp.csr_matrix(A.astype(np.float64)), normalization)
        for dtype in (np.int64, np.int32, np.uint8):
            got = normalize_adjacency(sp.csr_matrix(A.astype(dtype)), normalization)
            np.testing.assert_array_equal(got.toarray(), ref.toarray())
    B = sp.csr_matrix(A > 0)
    d = (A > 0).sum(axis=1)
    np.testing.assert_allclose(normalize_adjacency(B).toarray(),
                               (A > 0) / np.sqrt(np.outer(d, d)), rtol=1e-6)


# ------------------------------------------------------------------------------------------
# Bad input: one case per id, the exception type and the argument named
# ------------------------------------------------------------------------------------------

_Y = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 1]])

GRAPH_BAD = {
    "n_neighbors-float": ({"n_neighbors": 2.5}, TypeError, "n_neighbors"),
    "n_neighbors-str": ({"n_neighbors": "3"}, TypeError, "n_neighbors"),
    "n_neighbors-bool": ({"n_neighbors": True}, TypeError, "n_neighbors"),
    "n_neighbors-zero": ({"n_neighbors": 0}, ValueError, "n_neighbors"),
    "n_neighbors-negative": ({"n_neighbors": -2}, ValueError, "n_neighbors"),
    "n_neighbors-None": ({"n_neighbors": None}, TypeError, "n_neighbors"),
    "symmetric-str": ({"symmetric": "no"}, TypeError, "symmetric"),
    "symmetric-int": ({"symmetric": 1}, TypeError, "symmetric"),
    "weighting-typo": ({"weighting": "bin"}, ValueError, "weighting"),
    "similarity-typo": ({"similarity": "cosin"}, ValueError, "similarity"),
    "similarity-None": ({"similarity": None}, TypeError, "similarity"),
    "batch_size-zero": ({"batch_size": 0}, ValueError, "batch_size"),
    "batch_size-negative": ({"batch_size": -3}, ValueError, "batch_size"),
    "batch_size-float": ({"batch_size": 2.5}, TypeError, "batch_size"),
    "batch_size-str": ({"batch_size": "8"}, TypeError, "batch_size"),
    "batch_size-bool": ({"batch_size": True}, TypeError, "batch_size"),
    "shrink-negative": ({"similarity": "cosine", "shrink": -1.0}, ValueError, "shrink"),
    "shrink-nan": ({"similarity": "cosine", "shrink": float("nan")}, ValueError, "shrink"),
    "shrink-inf": ({"similarity": "cosine", "shrink": float("inf")}, ValueError, "shrink"),
    "shrink-str": ({"similarity": "cosine", "shrink": "1"}, TypeError, "shrink"),
    "shrink-with-count": ({"shrink": 0.5}, ValueError, "shrink"),
    "shrink-with-bm25": ({"similarity": "bm25", "shrink": 0.5}, ValueError, "shrink"),
    "alpha-with-cosine": ({"similarity": "cosine", "asymmetric_alpha": 0.3}, ValueError,
                          "asymmetric_alpha"),
    "alpha-above-1": ({"similarity": "asymmetric_cosine", "asymmetric_alpha": 1.5},
                      ValueError, "asymmetric_alpha"),
    "k1-with-count": ({"bm25_k1": 1.0}, ValueError, "bm25_k1"),
    "k1-negative": ({"similarity": "bm25", "bm25_k1": -1.0}, ValueError, "bm25_k1"),
    "b-above-1": ({"similarity": "bm25", "bm25_b": 2.0}, ValueError, "bm25_b"),
    "count-weighting-tfidf": ({"similarity": "tfidf", "weighting": "count"}, ValueError,
                              "weighting"),
    "count-weighting-bm25": ({"similarity": "bm25", "weighting": "count"}, ValueError,
                             "weighting"),
}

Y_BAD = {
    "None": (None, (TypeError, ValueError)),
    "scalar": (3, (TypeError, ValueError)),
    "0-d": (np.array(3.0), ValueError),
    "1-d": (np.ones(4), ValueError),
    "3-d": (np.ones((2, 3, 4)), ValueError),
    "complex": (_Y.astype(complex), TypeError),
    "complex-sparse": (sp.csr_matrix(_Y.astype(complex)), TypeError),
    "object": (np.array([[1, None], [0, 1]], dtype=object), TypeError),
    "strings": (np.array([["a", "b"], ["c", "d"]]), TypeError),
    "string": ("abc", (TypeError, ValueError)),
    "ragged": ([[1, 0], [1]], ValueError),
    "negative": (np.array([[1, -1], [0, 1]]), ValueError),
    "nan": (np.array([[1, np.nan], [0, 1]]), ValueError),
    "inf": (sp.csr_matrix(np.array([[1, np.inf], [0, 1]])), ValueError),
}


@pytest.mark.parametrize("case", list(GRAPH_BAD))
def test_cointeraction_graph_bad_arguments(case):
    kwargs, exc, name = GRAPH_BAD[case]
    with pytest.raises(exc, match=name):
        cointeraction_graph(_Y, **kwargs)


@pytest.mark.parametrize("case", list(Y_BAD))
@pytest.mark.parametrize("function", ["cointeraction_graph", "neighbour_lists"])
def test_bad_interactions(case, function):
    Y, exc = Y_BAD[case]
    fn = {"cointeraction_graph": cointeraction_graph, "neighbour_lists": neighbour_lists}[function]
    with pytest.raises(exc, match="Y"):
        fn(Y, 2)


LISTS_BAD = {
    "max_neighbors-zero": ({"max_neighbors": 0}, ValueError, "max_neighbors"),
    "max_neighbors-float": ({"max_neighbors": 2.5}, TypeError, "max_neighbors"),
    "max_neighbors-bool": ({"max_neighbors": True}, TypeError, "max_neighbors"),
    "similarity-typo": ({"similarity": "Cosine"}, ValueError, "similarity"),
    "batch_size-zero": ({"batch_size": 0}, ValueError, "batch_size"),
    "shrink-with-count": ({"shrink": 1.0}, ValueError, "shrink"),
}


@pytest.mark.parametrize("case", list(LISTS_BAD))
def test_neighbour_lists_bad_arguments(case):
    kwargs, exc, name = LISTS_BAD[case]
    kwargs = {"max_neighbors": 2, **kwargs}
    with pytest.raises(exc, match=name):
        neighbour_lists(_Y, **kwargs)


FROM_BAD = {
    "neighbours-matrix": ({"neighbours": sp.csr_matrix(np.eye(4))}, TypeError, "neighbours"),
    "neighbours-None": ({"neighbours": None}, TypeError, "neighbours"),
    "n_neighbors-beyond-lists": ({"n_neighbors": 3}, ValueError, "n_neighbors"),
    "n_neighbors-zero": ({"n_neighbors": 0}, ValueError, "n_neighbors"),
    "n_neighbors-bool": ({"n_neighbors": True}, TypeError, "n_neighbors"),
    "n_neighbors-str": ({"n_neighbors": "2"}, TypeError, "n_neighbors"),
    "symmetric-str": ({"symmetric": "no"}, TypeError, "symmetric"),
    "weighting-typo": ({"weighting": "similarities"}, ValueError, "weighting"),
    "count-weighting-tfidf": ({"weighting": "count", "similarity": "tfidf"}, ValueError,
                              "weighting"),
}


@pytest.mark.parametrize("case", list(FROM_BAD))
def test_graph_from_neighbours_bad_arguments(case):
    kwargs, exc, name = dict(FROM_BAD[case][0]), FROM_BAD[case][1], FROM_BAD[case][2]
    Y = np.vstack([_Y, np.ones((4, 3))])  # 8 items: lists of 2 do not hold everything
    lists = neighbour_lists(Y, 2, similarity=kwargs.pop("similarity", "count"))
    kwargs = {"neighbours": lists, "n_neighbors": 1, **kwargs}
    with pytest.raises(exc, match=name):
        graph_from_neighbours(**kwargs)


_A = sp.csr_matrix(np.array([[0, 1.0], [1.0, 0]]))

NORMALIZE_BAD = {
    "non-square": ({"A": sp.csr_matrix(np.ones((2, 3)))}, ValueError, "A"),
    "negative": ({"A": sp.csr_matrix(np.array([[0, -1.0], [1.0, 0]]))}, ValueError, "A"),
    "nan": ({"A": sp.csr_matrix(np.array([[0, np.nan], [1.0, 0]]))}, ValueError, "A"),
    "inf": ({"A": sp.csr_matrix(np.array([[0, np.inf], [1.0, 0]]))}, ValueError, "A"),
    "dense": ({"A": np.array([[0, 1.0], [1.0, 0]])}, TypeError, "A"),
    "None": ({"A": None}, TypeError, "A"),
    "complex": ({"A": sp.csr_matrix(np.array([[0, 1j], [1, 0]]))}, TypeError, "A"),
    "normalization-typo": ({"normalization": "symm"}, ValueError, "normalization"),
    "dtype-int": ({"dtype": np.int64}, ValueError, "dtype"),
    "dtype-nonsense": ({"dtype": "nonsense"}, TypeError, "dtype"),
    "copy-str": ({"copy": "no"}, TypeError, "copy"),
}


@pytest.mark.parametrize("case", list(NORMALIZE_BAD))
def test_normalize_adjacency_bad_arguments(case):
    kwargs, exc, name = NORMALIZE_BAD[case]
    kwargs = {"A": _A, **kwargs}
    with pytest.raises(exc, match=name):
        normalize_adjacency(**kwargs)
