import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import ndcg_score

from skmm.metrics import (
    evaluate_factors,
    hit_rate_at_k,
    make_topk_scorer,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from skmm import ranking as _ranking

FUNCS = {"recall": recall_at_k, "ndcg": ndcg_at_k, "precision": precision_at_k,
         "hit_rate": hit_rate_at_k}


def reference(Y_true, scores, k, metric, exclude=None):
    """Plain numpy, one user at a time, straight from the MMRec definitions."""
    Y = np.asarray(Y_true) != 0
    S = np.array(scores, dtype=np.float64)
    if exclude is not None:
        S[np.asarray(exclude) != 0] = -np.inf
    values = []
    for u in range(Y.shape[1]):
        pos = np.flatnonzero(Y[:, u])
        if pos.size == 0:
            continue
        top = np.argsort(-S[:, u], kind="stable")[:k]
        hits = np.array([i in pos and np.isfinite(S[i, u]) for i in top], dtype=float)
        if metric == "recall":
            values.append(hits.sum() / pos.size)
        elif metric == "precision":
            values.append(hits.sum() / k)
        elif metric == "hit_rate":
            values.append(float(hits.any()))
        else:
            dcg = sum(h / np.log2(r + 2) for r, h in enumerate(hits))
            idcg = sum(1 / np.log2(r + 2) for r in range(min(k, pos.size)))
            values.append(dcg / idcg)
    return float(np.mean(values))


def _random_problem(seed, n_items=40, n_users=25, density=0.15):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n_items, n_users)) < density).astype(float)
    Y[:, 0] = 0  # a user without positives, who must be ignored
    scores = rng.normal(size=(n_items, n_users))  # continuous: no ties
    return Y, scores, rng


def test_hand_computed_example():
    # User 0: positives {0, 2}; top-2 = [0, 1] -> 1 hit at rank 0.
    # User 1: positive {1}; top-2 = [3, 1] -> 1 hit at rank 1.
    Y = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    S = np.array([[0.9, 0.1], [0.8, 0.5], [0.1, 0.3], [0.0, 0.9]])
    d1 = 1 / np.log2(3)
    assert recall_at_k(Y, S, k=2) == pytest.approx((1 / 2 + 1) / 2)
    assert precision_at_k(Y, S, k=2) == pytest.approx(0.5)
    assert hit_rate_at_k(Y, S, k=2) == pytest.approx(1.0)
    assert ndcg_at_k(Y, S, k=2) == pytest.approx((1 / (1 + d1) + d1 / 1) / 2)


@pytest.mark.parametrize("metric", sorted(FUNCS))
@pytest.mark.parametrize("k", [1, 3, 10, 40, 55])
def test_matches_numpy_reference(metric, k):
    Y, S, _ = _random_problem(k)
    got = FUNCS[metric](sp.csr_matrix(Y), S, k=k)
    assert got == pytest.approx(reference(Y, S, k, metric), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("metric", sorted(FUNCS))
def test_exclude_matches_reference_and_hides_items(metric):
    Y, S, rng = _random_problem(1)
    exclude = (rng.random(Y.shape) < 0.3).astype(float)
    got = FUNCS[metric](Y, S, k=5, exclude=sp.csr_matrix(exclude))
    assert got == pytest.approx(reference(Y, S, 5, metric, exclude), rel=1e-6)
    # Excluding every positive leaves nothing to find.
    assert FUNCS[metric](Y, S, k=5, exclude=Y) == 0.0


def test_excluded_items_never_count_even_when_few_items_remain():
    Y = np.array([[1.0], [1.0], [0.0]])
    S = np.array([[3.0], [2.0], [1.0]])
    exclude = np.array([[1.0], [1.0], [0.0]])
    # k=3 > the one item left: the excluded positives sit at -inf and are no hits.
    assert recall_at_k(Y, S, k=3, exclude=exclude) == 0.0


@pytest.mark.parametrize("k", [1, 2, 5, 10, 40])
def test_ndcg_equals_sklearn_for_binary_relevance_without_ties(k):
    # Same gains, discount and ideal DCG (truncated at k, i.e. over min(k, n_pos) positives),
    # so the definitions coincide for every user with a positive, whatever their count.
    Y, S, _ = _random_problem(10 + k)
    users = Y.sum(axis=0) > 0
    expected = ndcg_score(Y[:, users].T, S[:, users].T, k=k)
    assert ndcg_at_k(Y, S, k=k) == pytest.approx(expected, rel=1e-9)


def test_graded_relevance_is_binarised_unlike_sklearn():
    Y, S, rng = _random_problem(3)
    graded = Y * rng.integers(1, 5, size=Y.shape)
    users = Y.sum(axis=0) > 0
    ours = ndcg_at_k(graded, S, k=5)
    assert ours == pytest.approx(ndcg_score(Y[:, users].T, S[:, users].T, k=5))
    assert ours != pytest.approx(ndcg_score(graded[:, users].T, S[:, users].T, k=5))


def test_sklearn_differs_when_users_without_positives_are_included():
    # sklearn averages them in as 0; the MMRec convention leaves them out.
    Y, S, _ = _random_problem(4)
    assert ndcg_at_k(Y, S, k=5) > ndcg_score(Y.T, S.T, k=5)


def test_batched_over_users_gives_the_same_result(monkeypatch):
    Y, S, _ = _random_problem(5, n_items=60, n_users=70)
    full = [f(Y, S, k=7) for f in FUNCS.values()]
    monkeypatch.setattr(_ranking, "_BLOCK_ENTRIES", 60 * 3)  # 3 users per batch
    assert [f(Y, S, k=7) for f in FUNCS.values()] == pytest.approx(full)


def test_torch_and_float64_scores():
    Y, S, _ = _random_problem(6)
    expected = ndcg_at_k(Y, S, k=5)
    assert ndcg_at_k(Y, torch.from_numpy(S), k=5) == pytest.approx(expected)
    assert ndcg_at_k(Y, S.astype(np.float32), k=5) == pytest.approx(expected)


def test_no_positive_user_gives_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(recall_at_k(np.zeros((4, 3)), np.ones((4, 3)), k=2))


@pytest.mark.parametrize("bad_k", [0, -1, 2.5, True])
def test_bad_k(bad_k):
    with pytest.raises(ValueError, match="'k' parameter"):
        ndcg_at_k(np.eye(3), np.eye(3), k=bad_k)


def test_bad_inputs():
    Y, S, _ = _random_problem(7)
    with pytest.raises(ValueError, match="same shape"):
        ndcg_at_k(Y[:-1], S, k=3)
    with pytest.raises(ValueError, match="same shape"):
        ndcg_at_k(Y.T, S, k=3)
    S_nan = S.copy()
    S_nan[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ndcg_at_k(Y, S_nan, k=3)
    with pytest.raises(ValueError, match="2-d"):
        ndcg_at_k(Y, S[:, 0], k=3)
    with pytest.raises(ValueError, match="exclude"):
        ndcg_at_k(Y, S, k=3, exclude=np.ones((Y.shape[0], 2)))


class _FixedScores:
    def __init__(self, scores):
        self.scores = scores

    def decision_function(self, X):
        return self.scores[X.ravel()]


def test_make_topk_scorer():
    Y, S, _ = _random_problem(8)
    est = _FixedScores(S)
    rows = np.arange(10, 30)[:, None]  # X holds item indices here
    for name, func in FUNCS.items():
        scorer = make_topk_scorer(name, k=4)
        assert scorer(est, rows, Y[10:30]) == pytest.approx(func(Y[10:30], S[10:30], k=4))
        assert scorer.__name__ == f"{name}_at_4"
    restored = pickle.loads(pickle.dumps(make_topk_scorer("ndcg", k=4)))
    assert restored(est, rows, Y[10:30]) == pytest.approx(ndcg_at_k(Y[10:30], S[10:30], k=4))
    custom = make_topk_scorer(lambda Y, S, k: float(k), k=3)
    assert custom(est, rows, Y[10:30]) == 3.0
    with pytest.raises(ValueError, match="'metric' parameter of make_topk_scorer"):
        make_topk_scorer("auc")
    with pytest.raises(TypeError, match="'metric' parameter"):
        make_topk_scorer(3)
    with pytest.raises(ValueError, match="'k' parameter"):
        make_topk_scorer("ndcg", k=0)


def test_no_warning_on_valid_input():
    Y, S, _ = _random_problem(9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ndcg_at_k(Y, S, k=3)


# ------------------------------------------------------------------------------------------
# Full ranking of factor models in user batches x item blocks (evaluate_factors)
# ------------------------------------------------------------------------------------------

def _ref_topk(S, k, exclude=None):
    """Top-k per user of an (n_users, n_items) score matrix: lower item index wins ties."""
    S = np.array(S, dtype=np.float64)
    if exclude is not None:
        S[np.asarray(exclude) != 0] = -np.inf
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def _factor_problem(seed, n_users=23, n_items=37, n_factors=3, tied=True, density=0.15):
    """Factors with small integer entries (exact scores, many ties) or continuous ones."""
    rng = np.random.default_rng(seed)
    if tied:
        U = rng.integers(-2, 3, size=(n_users, n_factors)).astype(np.float32)
        V = rng.integers(-2, 3, size=(n_items, n_factors)).astype(np.float32)
    else:
        U = rng.normal(size=(n_users, n_factors))
        V = rng.normal(size=(n_items, n_factors))
    Y = (rng.random((n_items, n_users)) < density).astype(float)
    Y[:, 0] = 0  # users without positives are left out
    Y[:, 5] = 0
    exclude = (rng.random((n_items, n_users)) < 0.3).astype(float)
    return U, V, Y, exclude


def _collect(gen):
    users, items, values = [], [], []
    for batch, top, val in gen:
        users.append(batch)
        items.append(top.cpu().numpy())
        values.append(val.cpu().numpy())
    return np.concatenate(users), np.concatenate(items), np.concatenate(values)


@pytest.mark.parametrize("n_cols", [1, 2, 5, 9, 50])
@pytest.mark.parametrize("k", [1, 2, 4, 9, 12])
def test_sorted_topk_breaks_ties_by_lower_index(n_cols, k):
    rng = np.random.default_rng(n_cols * 100 + k)
    S = rng.integers(0, 3, size=(40, n_cols)).astype(np.float32)
    S[rng.random(S.shape) < 0.2] = -np.inf
    values, cols = _ranking._sorted_topk(torch.from_numpy(S), min(k, n_cols))
    expected = _ref_topk(S, k)
    np.testing.assert_array_equal(cols.numpy(), expected)
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(S, expected, axis=1))


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("item_batch_size", [1, 3, 4, 7, 10, 36, 37, 100])
@pytest.mark.parametrize("user_batch_size", [1, 5, None])
def test_blocked_topk_equals_reference(selection, tied, item_batch_size, user_batch_size):
    U, V, Y, exclude = _factor_problem(1 if tied else 2, tied=tied)
    S = U @ V.T  # (n_users, n_items); exact for the integer factors
    users = np.arange(U.shape[0])
    excl = sp.csr_matrix(exclude.T)
    for k in (1, 5, 12, 37, 50):  # k beyond a block, k = n_items, k > n_items
        got_users, items, values = _collect(_ranking.factor_topk_per_user(
            torch.from_numpy(U), torch.from_numpy(V), users, k, exclude=excl,
            user_batch_size=user_batch_size, item_batch_size=item_batch_size))
        np.testing.assert_array_equal(got_users, users)
        expected = _ref_topk(S, k, exclude.T)
        assert items.shape == (U.shape[0], min(k, V.shape[0]))
        np.testing.assert_array_equal(items, expected)
        ref_values = np.take_along_axis(np.where(exclude.T != 0, -np.inf, S), expected, axis=1)
        if tied:
            np.testing.assert_array_equal(values, ref_values)
        else:
            np.testing.assert_allclose(values, ref_values, rtol=1e-12)
        # The unblocked path (one block of all items) gives the same ranking.
        _, unblocked, _ = _collect(_ranking.topk_per_user(
            lambda u: torch.from_numpy(S[u]), users, V.shape[0], k, exclude=excl))
        np.testing.assert_array_equal(unblocked, expected)


@pytest.fixture(params=["kernel", "torch"])
def selection(request, monkeypatch):
    """Both selection paths of the ranking engine on the CPU: the numba kernel (the CPU's)
    and the torch chunk-pruning path (other devices'), the latter with narrow chunks so that
    blocks span several chunks and a tail."""
    if request.param == "torch":
        monkeypatch.setattr(_ranking, "_USE_KERNEL", False)
        monkeypatch.setattr(_ranking, "_CHUNK", 8)
    return request.param


@pytest.mark.parametrize("item_batch_size", [5, 64, 300, 700, 2000])
def test_blocked_topk_equals_reference_on_wide_blocks(selection, item_batch_size):
    # Blocks wider than the kernel's chunk (256 scores), ties everywhere (integer factors),
    # excluded items inside every chunk, exclusions given unsorted and duplicated, users whose
    # k exceeds their non-excluded items.
    rng = np.random.default_rng(7)
    n_users, n_items = 40, 2000
    U = rng.integers(-2, 3, size=(n_users, 3)).astype(np.float32)
    V = rng.integers(-2, 3, size=(n_items, 3)).astype(np.float32)
    excluded = rng.random((n_users, n_items)) < 0.05
    excluded[:3, :] = True
    excluded[:3, rng.choice(n_items, 4, replace=False)] = False  # 4 allowed items, k = 9
    r, c = np.nonzero(excluded)
    order = rng.permutation(len(r))
    r, c = np.concatenate([r[order], r[:50]]), np.concatenate([c[order], c[:50]])
    excl = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n_users, n_items))
    excl.has_sorted_indices = False
    S = (U.astype(np.float64) @ V.T.astype(np.float64))
    for k in (1, 9, 20):
        users, items, values = _collect(_ranking.factor_topk_per_user(
            torch.from_numpy(U), torch.from_numpy(V), np.arange(n_users), k, exclude=excl,
            user_batch_size=16, item_batch_size=item_batch_size))
        expected = _ref_topk(S, k, excluded)
        np.testing.assert_array_equal(items, expected)
        np.testing.assert_array_equal(
            values, np.take_along_axis(np.where(excluded, -np.inf, S), expected, axis=1))


def test_blocked_topk_nan_raises_on_both_paths(selection):
    U = torch.ones((4, 2))
    V = torch.ones((600, 2))
    V[450, 0] = torch.nan  # in a later block, below no threshold: still caught
    with pytest.raises(ValueError, match="NaN"):
        list(_ranking.factor_topk_per_user(U, V, np.arange(4), 3, item_batch_size=300))
    # A NaN score that is excluded is not a score at all.
    excl = sp.csr_matrix((np.ones(4), (np.arange(4), np.full(4, 450))), shape=(4, 600))
    _, items, _ = _collect(_ranking.factor_topk_per_user(U, V, np.arange(4), 3, exclude=excl,
                                                         item_batch_size=300))
    np.testing.assert_array_equal(items, np.tile([0, 1, 2], (4, 1)))


@pytest.mark.parametrize("item_batch_size", [1, 4, 7, 16, 37, 64])
@pytest.mark.parametrize("k", [1, 5, 8, 40])
def test_evaluate_factors_equals_dense_metrics_exactly(item_batch_size, k):
    U, V, Y, exclude = _factor_problem(3)
    S = V @ U.T  # (n_items, n_users), as the dense metric functions take it
    got = evaluate_factors(sp.csr_matrix(Y), U, V, k=k, exclude=exclude, metrics=METRIC_NAMES,
                           item_batch_size=item_batch_size, user_batch_size=4)
    for metric, func in FUNCS.items():
        assert got[metric] == func(Y, S, k=k, exclude=exclude)
        # Ties included: the ranking is the stable (lower index first) one.
        assert got[metric] == pytest.approx(reference(Y, S, k, metric, exclude), rel=1e-12)
    per_user = evaluate_factors(Y, U, V, k=k, exclude=exclude, metrics=METRIC_NAMES,
                                per_user=True, item_batch_size=item_batch_size)
    unblocked = evaluate_factors(Y, U, V, k=k, exclude=exclude, metrics=METRIC_NAMES,
                                 per_user=True, item_batch_size=V.shape[0],
                                 user_batch_size=U.shape[0])
    np.testing.assert_array_equal(per_user["users"], np.flatnonzero(Y.sum(axis=0) > 0))
    for metric in METRIC_NAMES:
        np.testing.assert_array_equal(per_user[metric], unblocked[metric])


METRIC_NAMES = ("recall", "ndcg", "precision", "hit_rate")


def test_dense_metrics_break_ties_by_lower_index():
    U, V, Y, exclude = _factor_problem(4)
    S = V @ U.T
    for metric, func in FUNCS.items():
        for k in (1, 3, 10):
            assert func(Y, S, k=k, exclude=exclude) == pytest.approx(
                reference(Y, S, k, metric, exclude), rel=1e-12)


def test_evaluate_factors_continuous_scores_and_default_blocks(monkeypatch):
    U, V, Y, exclude = _factor_problem(5, n_users=60, n_items=300, n_factors=8, tied=False)
    S = V @ U.T
    expected = {m: FUNCS[m](Y, S, k=10, exclude=exclude) for m in METRIC_NAMES}
    got = evaluate_factors(Y, U, V, k=10, exclude=exclude, metrics=METRIC_NAMES)
    assert got == expected
    # Automatic sizes from a tiny budget: 64-item blocks, 2 users per batch (float64).
    monkeypatch.setattr(_ranking, "_FACTOR_BLOCK_BYTES", 64 * 2 * 8)
    monkeypatch.setattr(_ranking, "_ITEM_BLOCK", 64)
    assert _ranking._factor_batch_sizes(60, 300, 8, None, None) == (2, 64)
    assert _ranking._factor_batch_sizes(60, 300, 8, 4, None) == (4, 32)
    assert _ranking._factor_batch_sizes(60, 300, 8, None, 16) == (8, 16)
    assert _ranking._factor_batch_sizes(60, 30, 4, None, None) == (8, 30)  # 256 entries
    assert _ranking._factor_batch_sizes(3, 30, 4, None, None) == (3, 30)
    assert evaluate_factors(Y, U, V, k=10, exclude=exclude, metrics=METRIC_NAMES) == expected


def test_evaluate_factors_inputs_and_dtypes():
    U, V, Y, exclude = _factor_problem(6, tied=False)
    expected = evaluate_factors(Y, U, V, k=5)
    assert set(expected) == {"recall", "ndcg"}
    assert evaluate_factors(Y, torch.from_numpy(U), torch.from_numpy(V), k=5) == expected
    as32 = evaluate_factors(sp.coo_matrix(Y), U.astype(np.float32), V.astype(np.float32), k=5)
    assert as32 == pytest.approx(expected)
    assert evaluate_factors(Y, U, V, k=5, metrics="ndcg", device="cpu") == \
        {"ndcg": expected["ndcg"]}
    assert evaluate_factors(Y, U, V, k=5, exclude=sp.csc_matrix(exclude)) == \
        evaluate_factors(Y, U, V, k=5, exclude=exclude)


def test_evaluate_factors_k_beyond_n_items():
    # k > n_items: every item is ranked; precision still divides by k (as the dense path).
    U, V, Y, exclude = _factor_problem(7, n_items=6)
    S = V @ U.T
    got = evaluate_factors(Y, U, V, k=9, exclude=exclude, metrics=METRIC_NAMES,
                           item_batch_size=4)
    for metric, func in FUNCS.items():
        assert got[metric] == func(Y, S, k=9, exclude=exclude)
    per_user = evaluate_factors(Y, U, V, k=9, metrics=("recall",), per_user=True,
                                item_batch_size=2)
    np.testing.assert_array_equal(per_user["recall"], 1.0)


def test_evaluate_factors_without_positives_warns():
    U, V, _, _ = _factor_problem(8)
    Y = np.zeros((V.shape[0], U.shape[0]))
    with pytest.warns(UndefinedMetricWarning, match="recall@k, ndcg@k undefined") as record:
        got = evaluate_factors(Y, U, V, k=3)
    assert len(record) == 1 and record[0].filename == __file__
    assert np.isnan(got["recall"]) and np.isnan(got["ndcg"])
    per_user = evaluate_factors(Y, U, V, k=3, per_user=True)
    assert per_user["users"].size == 0 and per_user["ndcg"].size == 0


def test_evaluate_factors_nan_scores_raise():
    # Finite factors whose dot product is inf - inf = NaN.
    U = np.array([[1e30, 1e30]], dtype=np.float32)
    V = np.array([[1.0, 0.0], [1e30, -1e30], [0.0, 1.0]], dtype=np.float32)
    Y = np.array([[1.0], [0.0], [0.0]])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_factors(Y, U, V, k=1, item_batch_size=2)
    # A NaN on an excluded entry is never ranked.
    got = evaluate_factors(Y, U, V, k=1, exclude=np.array([[0], [1], [0]]))
    assert got["recall"] == 1.0


@pytest.mark.parametrize("name", ["user_batch_size", "item_batch_size"])
@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_evaluate_factors_bad_batch_sizes(name, bad):
    U, V, Y, _ = _factor_problem(9)
    with pytest.raises(ValueError, match=name):
        evaluate_factors(Y, U, V, k=3, **{name: bad})


def test_evaluate_factors_bad_arguments():
    U, V, Y, exclude = _factor_problem(10)
    with pytest.raises(ValueError, match="'k' parameter"):
        evaluate_factors(Y, U, V, k=0)
    with pytest.raises(ValueError, match="metrics must be"):
        evaluate_factors(Y, U, V, metrics=("auc",))
    with pytest.raises(ValueError, match="metrics must be"):
        evaluate_factors(Y, U, V, metrics=())
    with pytest.raises(ValueError, match="same number of columns"):
        evaluate_factors(Y, U, V[:, :2])
    with pytest.raises(ValueError, match="2-d"):
        evaluate_factors(Y, U[:, 0], V)
    with pytest.raises(TypeError, match="numeric"):
        evaluate_factors(Y, U.astype(object), V)
    with pytest.raises(ValueError, match="user columns"):
        evaluate_factors(Y[:, :-1], U, V)
    with pytest.raises(ValueError, match="one row per item"):
        evaluate_factors(Y[:-1], U, V)
    with pytest.raises(ValueError, match="exclude"):
        evaluate_factors(Y, U, V, exclude=exclude[:, :-1])
    bad = U.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="user_factors contains NaN or infinite"):
        evaluate_factors(Y, bad, V)
    bad = V.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="item_factors contains NaN or infinite"):
        evaluate_factors(Y, U, bad)


def test_all_finite_checks_every_chunk():
    t = torch.zeros(10, 3)
    assert _ranking._all_finite(t, chunk_entries=6)
    t[9, 2] = np.inf
    assert not _ranking._all_finite(t, chunk_entries=6)
    assert _ranking._all_finite(torch.zeros(0, 3))


def test_topk_of_half_precision_scores_takes_the_torch_path():
    # numba has no float16/bfloat16: such CPU scores are ranked by the torch path, same rule.
    rng = np.random.default_rng(3)
    S = rng.integers(0, 4, size=(12, 300)).astype(np.float32)  # exact in bfloat16, many ties
    users = np.arange(12)
    for dtype in (torch.float16, torch.bfloat16):
        items = np.concatenate([top.numpy() for _, top, _ in _ranking.topk_per_user(
            lambda u: torch.from_numpy(S[u]).to(dtype), users, S.shape[1], 7)])
        np.testing.assert_array_equal(items, _ref_topk(S, 7))
