"""Model selection under the data contract: cold-start folds over items, warm-start holdout."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.model_selection import cross_validate as sklearn_cross_validate
from sklearn.pipeline import make_pipeline

from skmm import FeatPropImputer, MILKRecommender, VBPRRecommender
from skmm.datasets import interaction_split, make_multimodal, simulate_missing
from skmm.metrics import make_topk_scorer, make_warm_start_scorer
from skmm.model_selection import AllItemsSplit, cross_val_score, cross_validate

DATA = make_multimodal(120, 60, (6, 4), density=0.1, random_state=0)
MILK = MILKRecommender(DATA.modalities, embedding_dim=4, max_epochs=2, device="cpu",
                       random_state=0)
VBPR = dict(max_epochs=2, n_content_factors=2, device="cpu", random_state=0)


def test_scikit_learn_refuses_sparse_y_and_skmm_does_not():
    with pytest.raises(ValueError, match="'y' parameter of cross_validate"):
        sklearn_cross_validate(MILK, DATA.X, DATA.Y, cv=3)
    out = cross_validate(MILK, DATA.X, DATA.Y, cv=3, return_train_score=True)
    assert set(out) == {"test_score", "train_score", "fit_time", "score_time"}
    assert out["test_score"].shape == (3,)


def test_cross_validate_equals_a_hand_written_loop_over_item_folds():
    cv = KFold(3, shuffle=True, random_state=0)
    scorer = make_topk_scorer("recall", k=10)
    expected = []
    for train, test in cv.split(DATA.X):
        model = clone(MILK).fit(DATA.X[train], DATA.Y[train])
        expected.append(scorer(model, DATA.X[test], DATA.Y[test]))
    got = cross_val_score(MILK, DATA.X, DATA.Y, cv=cv, scoring=scorer)
    np.testing.assert_array_equal(got, expected)
    # The same folds through GridSearchCV, which accepts a sparse y itself.
    search = GridSearchCV(MILK, {"embedding_dim": [4]}, cv=cv, scoring=scorer).fit(DATA.X,
                                                                                   DATA.Y)
    np.testing.assert_allclose([search.cv_results_[f"split{i}_test_score"][0]
                                for i in range(3)], expected)


def test_interaction_split_partitions_the_interactions():
    Y_train, Y_test = interaction_split(DATA.Y, test_size=0.25, random_state=3)
    assert (Y_train.multiply(Y_test)).nnz == 0
    assert ((Y_train + Y_test) != DATA.Y).nnz == 0
    assert 0.15 < Y_test.nnz / DATA.Y.nnz < 0.35
    again = interaction_split(DATA.Y, test_size=0.25, random_state=3)
    assert (again[1] != Y_test).nnz == 0


def test_warm_start_grid_search_holds_out_interactions_not_items():
    Y_train, Y_val = interaction_split(DATA.Y, test_size=0.2, random_state=0)
    scorer = make_warm_start_scorer(Y_val, "recall", k=10)
    grid = {"n_factors": [2, 6]}
    search = GridSearchCV(VBPRRecommender(**VBPR), grid, scoring=scorer, cv=AllItemsSplit(),
                          refit=False).fit(DATA.X, Y_train)
    for params, score in zip(search.cv_results_["params"],
                             search.cv_results_["mean_test_score"]):
        model = VBPRRecommender(**{**VBPR, **params}).fit(DATA.X, Y_train)
        expected = model.evaluate(DATA.X, Y_val, metrics=("recall",), k=10)["recall"]
        assert score == pytest.approx(expected)
        # Training interactions are excluded from the ranking: scoring the training matrix
        # itself finds none of them.
        assert model.evaluate(DATA.X, Y_train, metrics=("recall",))["recall"] == 0.0


def test_warm_start_scorer_through_a_pipeline():
    X_miss, _ = simulate_missing(DATA.X, DATA.modalities, 0.3, random_state=0)
    Y_train, Y_val = interaction_split(DATA.Y, test_size=0.2, random_state=0)
    pipe = make_pipeline(FeatPropImputer(device="cpu"), VBPRRecommender(**VBPR))
    pipe.fit(X_miss, Y_train)
    got = make_warm_start_scorer(Y_val, "ndcg")(pipe, X_miss, Y_train)
    completed = pipe[0].transform(X_miss)
    assert got == pytest.approx(pipe[-1].evaluate(completed, Y_val, metrics=("ndcg",))["ndcg"])


def test_all_items_split_and_bad_arguments():
    assert AllItemsSplit(3).get_n_splits() == 3
    assert len(list(AllItemsSplit(2).split(np.zeros((4, 1))))) == 2
    with pytest.raises(ValueError, match="n_splits"):
        AllItemsSplit(0)
    with pytest.raises(ValueError, match="metric"):
        make_warm_start_scorer(DATA.Y, "auc")
    with pytest.raises(ValueError, match="test_size"):
        interaction_split(DATA.Y, test_size=0)
    with pytest.raises(ValueError, match="y"):
        cross_validate(MILK, DATA.X, sp.csr_matrix(DATA.Y)[:10], cv=2)
