import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import ndcg_score

from skmm.metrics import (
    hit_rate_at_k,
    make_topk_scorer,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from skmm.metrics import _ranking

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
    with pytest.raises(ValueError, match="k must be"):
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
    with pytest.raises(ValueError, match="metric must be one of"):
        make_topk_scorer("auc")
    with pytest.raises(TypeError, match="metric must be"):
        make_topk_scorer(3)
    with pytest.raises(ValueError, match="k must be"):
        make_topk_scorer("ndcg", k=0)


def test_no_warning_on_valid_input():
    Y, S, _ = _random_problem(9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ndcg_at_k(Y, S, k=3)
