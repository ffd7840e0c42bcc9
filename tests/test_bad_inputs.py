"""Bad input at every public entry point gets a clear error that names the argument.

Organised by the kind of argument: shapes, dtypes, values, types, files and devices. Each case
asserts the exception type and that the message names the argument (a regex). The regression
tests at the end are inputs that used to return a silently wrong answer.
"""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skmm import BaselineImputer, FeatPropImputer, MILKRecommender, VBPRRecommender
from skmm.graph import cointeraction_graph
from skmm.datasets import load_mmrec, make_multimodal, new_item_split, simulate_missing
from skmm.metrics import evaluate_factors, make_topk_scorer, ndcg_at_k, recall_at_k
from skmm.milk import EnvironmentSampler, MILKLoss, MILKModule
from skmm.propagation import column_groups, propagate_features

DATA = make_multimodal(60, 30, (4, 4), density=0.15, random_state=0)
X, Y = DATA.X, DATA.Y
X_MISS, _ = simulate_missing(X, DATA.modalities, 0.3, random_state=0)
P = sp.identity(60, format="csr")
MISSING = np.isnan(X_MISS)
RNG = np.random.default_rng(0)
U, V = RNG.normal(size=(30, 3)), RNG.normal(size=(60, 3))


def _vbpr():
    return VBPRRecommender(max_epochs=1, n_factors=2, n_content_factors=2, device="cpu",
                           random_state=0).fit(X, Y)


def _milk():
    return MILKRecommender(DATA.modalities, embedding_dim=2, max_epochs=1, device="cpu",
                           random_state=0).fit(X_MISS, Y)


FITTED = {}


def fitted(name):
    if name not in FITTED:
        FITTED[name] = {"vbpr": _vbpr, "milk": _milk}[name]()
    return FITTED[name]


def _fp(**params):
    return lambda: FeatPropImputer(device="cpu", **params).fit(X_MISS, Y)


CASES = {
    # ----------------------------------------------------------------------------- shapes
    "shape/featprop-y-rows": (lambda: FeatPropImputer().fit(X_MISS, Y[:-1]), ValueError, "y"),
    "shape/vbpr-y-rows": (lambda: VBPRRecommender().fit(X, Y[:-1]), ValueError, "y"),
    "shape/propagate-P": (lambda: propagate_features(P[:50], X_MISS, MISSING, 2), ValueError,
                          "P must be a square"),
    "shape/propagate-missing": (lambda: propagate_features(P, X_MISS, MISSING[:, :3], 2),
                                ValueError, "missing"),
    "shape/score-users": (lambda: fitted("vbpr").score(X, Y[:, :3]), ValueError, "y"),
    "shape/factors": (lambda: evaluate_factors(Y, U, V[:, :2]), ValueError, "factors"),
    "shape/metric": (lambda: recall_at_k(Y, np.zeros((60, 3))), ValueError, "Y_true"),
    "shape/modalities-sum": (lambda: simulate_missing(X, [2, 2], 0.5), ValueError,
                             "modalities"),
    "shape/milk-modalities": (lambda: MILKRecommender([3, 3]).fit(X, Y), ValueError,
                              "modalities"),
    "shape/X-features": (lambda: fitted("milk").decision_function(X[:, :5]), ValueError, "X"),
    "shape/X-1d": (lambda: BaselineImputer().fit(X[0]), ValueError, "X"),
    # ----------------------------------------------------------------------------- dtypes
    "dtype/complex-y": (lambda: FeatPropImputer().fit(X_MISS, Y.astype(complex)), TypeError,
                        "y"),
    "dtype/complex-X": (lambda: BaselineImputer().fit(X.astype(complex)), ValueError, "X"),
    "dtype/complex-scores": (lambda: ndcg_at_k(Y, np.zeros((60, 30), complex)), TypeError,
                             "scores"),
    "dtype/string-X": (lambda: VBPRRecommender().fit(np.full((60, 8), "a"), Y), ValueError,
                       "X"),
    "dtype/object-y": (lambda: VBPRRecommender().fit(X, np.full((60, 30), None)), TypeError,
                       "y"),
    "dtype/propagate-dtype": (lambda: propagate_features(P, X_MISS, MISSING, 1, dtype="int8"),
                              ValueError, "dtype"),
    "dtype/float32-range": (
        lambda: FeatPropImputer(device="cpu").fit(
            np.where(MISSING, np.nan, X_MISS.astype(np.float64) * 1e300), Y),
        ValueError, "dtype"),
    # ----------------------------------------------------------------------------- values
    "value/negative-y": (lambda: FeatPropImputer().fit(X_MISS, -Y), ValueError, "y"),
    "value/n_neighbors-0": (lambda: FeatPropImputer(n_neighbors=0).fit(X_MISS, Y), ValueError,
                            "n_neighbors"),
    "value/n_neighbors-float": (lambda: FeatPropImputer(n_neighbors=2.5).fit(X_MISS, Y),
                                ValueError, "n_neighbors"),
    "value/n_neighbors-str": (lambda: FeatPropImputer(n_neighbors="3").fit(X_MISS, Y),
                              ValueError, "n_neighbors"),
    "value/n_neighbors-bool": (lambda: FeatPropImputer(n_neighbors=True).fit(X_MISS, Y),
                               ValueError, "n_neighbors"),
    "value/symmetric-str": (lambda: FeatPropImputer(symmetric="no").fit(X_MISS, Y),
                            ValueError, "symmetric"),
    "value/column_batch_size-0": (lambda: FeatPropImputer(column_batch_size=0).fit(X_MISS, Y),
                                  ValueError, "column_batch_size"),
    "value/propagate-n_iter-neg": (lambda: propagate_features(P, X_MISS, MISSING, -1),
                                   ValueError, "n_iter"),
    "value/propagate-n_iter-frac": (lambda: propagate_features(P, X_MISS, MISSING, 1.5),
                                    ValueError, "n_iter"),
    "value/propagate-column_batch_size": (
        lambda: propagate_features(P, X_MISS, MISSING, 1, column_batch_size=0), ValueError,
        "column_batch_size"),
    "value/column_groups": (lambda: column_groups(10, 4, column_batch_size=-1), ValueError,
                            "column_batch_size"),
    "value/exclude_seen-str": (lambda: fitted("vbpr").recommend(X, exclude_seen="no"),
                               ValueError, "exclude_seen"),
    "value/recommend-k": (lambda: fitted("milk").recommend(X, k=0), ValueError, "k"),
    "value/users": (lambda: fitted("vbpr").recommend(X, users=[0, 30]), ValueError, "users"),
    "value/batch_size": (lambda: VBPRRecommender(batch_size=0).fit(X, Y), ValueError,
                         "batch_size"),
    "value/fill_value-inf": (lambda: BaselineImputer("constant", fill_value=np.inf).fit(X),
                             ValueError, "fill_value"),
    "value/make_multimodal-n_factors": (lambda: make_multimodal(20, 10, n_factors=0),
                                        ValueError, "n_factors"),
    "value/rate": (lambda: simulate_missing(X, DATA.modalities, 1.5), ValueError, "rate"),
    "value/split-size": (lambda: new_item_split(Y, test_size=1.0), ValueError, "test_size"),
    "value/alpha": (lambda: EnvironmentSampler(2, "cyclic", 0.0, RNG), ValueError, "alpha"),
    "value/reg_weight": (lambda: MILKLoss(reg_weight=-1), ValueError, "reg_weight"),
    "value/n_factors-huge": (lambda: VBPRRecommender(n_factors=10**10, device="cpu").fit(X, Y),
                             ValueError, "n_factors"),
    "value/scorer-k": (lambda: make_topk_scorer("ndcg", k=0), ValueError, "k"),
    "value/infinite-X": (lambda: BaselineImputer().fit(np.where(MISSING, np.inf, X_MISS)),
                         ValueError, "X"),
    # ----------------------------------------------------------------------------- types
    "type/modalities-str": (lambda: simulate_missing(X, "44", 0.5), ValueError, "modalities"),
    "type/modalities-strs": (lambda: MILKRecommender(("4", "4")).fit(X, Y), TypeError,
                             "modalities"),
    "type/modalities-floats": (lambda: MILKRecommender((4.0, 4)).fit(X, Y), TypeError,
                               "modalities"),
    "type/milk-module-modalities": (lambda: MILKModule(5, "21", 3), TypeError, "modalities"),
    "type/rng-int": (lambda: EnvironmentSampler(2, "cyclic", 0.1, 3), TypeError, "rng"),
    "type/y-none": (lambda: VBPRRecommender().fit(X, None), ValueError, "y"),
    "type/y-scalar": (lambda: FeatPropImputer().fit(X_MISS, 3), ValueError, "y"),
    "type/graph-Y-none": (lambda: cointeraction_graph(None), TypeError, "Y"),
    "type/load_mmrec-modalities-str": (lambda: load_mmrec(".", "img"), (TypeError, ValueError),
                                       "modalities"),
    # ----------------------------------------------------------------------------- devices
    "device/featprop": (lambda: FeatPropImputer(device="nonsense").fit(X_MISS, Y), ValueError,
                        "device"),
    "device/vbpr": (lambda: VBPRRecommender(device="nonsense").fit(X, Y), ValueError,
                    "device"),
    "device/evaluate_factors": (lambda: evaluate_factors(Y, U, V, device="nonsense"),
                                ValueError, "device"),
    "device/propagate": (lambda: propagate_features(P, X_MISS, MISSING, 1, device="tpu"),
                         ValueError, "device"),
    "device/type": (lambda: FeatPropImputer(device=3).fit(X_MISS, Y), (TypeError, ValueError),
                    "device"),
}
if not torch.cuda.is_available():
    CASES["device/cuda-without-gpu"] = (
        lambda: evaluate_factors(Y, U, V, device="cuda"), ValueError, "device")
    CASES["device/cuda-estimator"] = (
        lambda: FeatPropImputer(device="cuda").fit(X_MISS, Y), ValueError, "device")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_raises_a_clear_error(case):
    call, kind, match = CASES[case]
    with pytest.raises(kind, match=match):
        call()


# --------------------------------------------------------------------------------- files

def _mmrec_folder(tmp_path, inter_lines, features=None):
    (tmp_path / "d.inter").write_text("userID\titemID\tx_label\n" + "\n".join(inter_lines) +
                                      "\n")
    if features is not None:
        np.save(tmp_path / "f.npy", features, allow_pickle=True)
    return tmp_path


@pytest.mark.parametrize("lines, match", [
    (["0\t1\t0", "1\tx\t0"], r"d\.inter: line 3, column 'itemID': 'x' is not an integer"),
    (["0\t1\t0", "1\t2"], r"d\.inter: line 3 has 2 field\(s\).*'x_label'"),
    (["0\t1\t0", "1\t100000000000\t0"], "item ids go up to 100000000000"),
])
def test_load_mmrec_names_the_file_and_line(tmp_path, lines, match):
    with pytest.raises(ValueError, match=match):
        load_mmrec(_mmrec_folder(tmp_path, lines))


def test_load_mmrec_refuses_pickled_feature_files(tmp_path):
    folder = _mmrec_folder(tmp_path, ["0\t0\t0", "1\t1\t0"],
                           np.array([{"a": 1}, {"b": 2}], dtype=object))
    with pytest.raises(ValueError, match=r"f\.npy.*not a numeric"):
        load_mmrec(folder, ["f"])


def test_load_mmrec_missing_modality_lists_the_files(tmp_path):
    folder = _mmrec_folder(tmp_path, ["0\t0\t0"], np.zeros((1, 2)))
    with pytest.raises(FileNotFoundError, match=r"modalities=\['img'\].*\['f'\]"):
        load_mmrec(folder, ["img"])


def test_out_file_must_be_npy_and_never_the_input(tmp_path):
    np.save(tmp_path / "X.npy", X_MISS)
    X_map = np.load(tmp_path / "X.npy", mmap_mode="r")
    with pytest.raises(ValueError, match="out_file.*must name a .npy file"):
        FeatPropImputer(device="cpu", out_file=tmp_path / "out.csv").fit(X_map, Y)
    with pytest.raises(ValueError, match="out_file.*is the file X is read from"):
        FeatPropImputer(device="cpu", out_file=tmp_path / "X.npy",
                        overwrite=True).fit(X_map, Y)
    np.testing.assert_array_equal(np.load(tmp_path / "X.npy"), X_MISS)  # the input survives
    (tmp_path / "other.npy").write_bytes(b"precious")
    with pytest.raises(ValueError, match="already exists; pass overwrite=True"):
        FeatPropImputer(device="cpu", out_file=tmp_path / "other.npy").fit(X_map, Y)
    assert (tmp_path / "other.npy").read_bytes() == b"precious"


def test_restored_estimator_refuses_a_replaced_result_file(tmp_path):
    out = tmp_path / "out.npy"
    first = FeatPropImputer(device="cpu", out_file=out).fit(X_MISS, Y)
    blob = pickle.dumps(first)
    # Another fit reuses the path: the restored first estimator must not return its result.
    FeatPropImputer(n_iter=1, device="cpu", out_file=out, overwrite=True).fit(X_MISS[:, :4],
                                                                              Y)
    restored = pickle.loads(blob)
    with pytest.raises(ValueError, match="replaced or changed after the fit"):
        restored.transform(X_MISS)
    # The estimator still in memory maps its own (now unlinked) file and still works.
    assert first.transform(X_MISS).shape == X_MISS.shape


# --------------------------------------------------------------------------------- accepted

def test_valid_inputs_that_used_to_be_refused():
    # Negative-stride views and a RandomState instance.
    model = VBPRRecommender(max_epochs=1, device="cpu",
                            random_state=np.random.RandomState(0)).fit(X[::-1], Y[::-1])
    assert model.decision_function(X[::-1]).shape == (60, 30)


# --------------------------------------------------------------------------------- regressions

def test_tiny_positive_interactions_are_interactions():
    """y was cast to float32 before zeros were dropped: 1e-50 became 0 and edges vanished."""
    tiny = Y.astype(np.float64) * 1e-50
    a = FeatPropImputer(device="cpu").fit(X_MISS, Y)
    b = FeatPropImputer(device="cpu").fit(X_MISS, tiny)
    assert b.graph_.nnz == a.graph_.nnz > 0
    np.testing.assert_array_equal(a.transform(X_MISS), b.transform(X_MISS))


def test_recommend_never_pads_with_a_seen_item():
    """A user with fewer unseen items than k got seen items as padding."""
    Y_dense = np.zeros((6, 2))
    Y_dense[:5, 0] = 1  # user 0 saw 5 of the 6 items
    Y_dense[0, 1] = 1
    X6 = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    model = VBPRRecommender(max_epochs=1, device="cpu", random_state=0).fit(
        X6, sp.csr_matrix(Y_dense))
    recs = model.recommend(X6, k=3)
    np.testing.assert_array_equal(recs[0], [5, -1, -1])
    assert 0 not in recs[1] and (recs[1] >= 0).all()
    pred = model.predict(X6)
    assert pred[:, 0].nnz == 1 and pred[5, 0]


def test_warm_start_model_refuses_rows_it_cannot_identify():
    """VBPR scored any X with the fitted row count as if it were the fitted items."""
    model = fitted("vbpr")
    with pytest.raises(ValueError, match="warm-start"):
        model.decision_function(X + 1.0)
    perm = np.random.default_rng(0).permutation(60)
    np.testing.assert_array_equal(model.decision_function(X[perm]),
                                  model.decision_function(X)[perm])
