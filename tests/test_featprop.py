"""FeatPropImputer against an independent dense reference and against PyG."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from skmm import FeatPropImputer, simulate_missing

from ._imputer_checks import check_new_item_rule
from .conftest import random_interactions, requires_cuda


def reference_featprop(X, Y, k, n_iter, normalization="sym", symmetric=False,
                       weighting="binary", fallback="mean"):
    """The FeatProp rules written out densely, one row and one step at a time."""
    Yb = (np.asarray(Y.todense() if sp.issparse(Y) else Y) != 0).astype(float)
    C = Yb @ Yb.T
    n = C.shape[0]
    A = np.zeros((n, n))
    for i in range(n):
        candidates = sorted((-C[i, j], j) for j in range(n) if j != i and C[i, j] > 0)
        for neg_count, j in candidates[:k]:
            A[i, j] = 1.0 if weighting == "binary" else -neg_count
    if symmetric:
        A = np.maximum(A, A.T)
    deg = A.sum(axis=1)
    P = np.zeros_like(A)
    for i in range(n):
        for j in range(n):
            if A[i, j]:
                P[i, j] = (A[i, j] / np.sqrt(deg[i] * deg[j]) if normalization == "sym"
                           else A[i, j] / deg[i])
    missing = np.isnan(X)
    Z = np.where(missing, 0.0, X)
    has_value = ~missing
    for _ in range(n_iter):
        Z = P @ Z
        Z[~missing] = X[~missing]
        has_value = has_value | ((A > 0).astype(float) @ has_value.astype(float) > 0)
    pending = missing & ~has_value
    if fallback == "mean":
        Z[pending] = np.broadcast_to(np.nanmean(X, axis=0), X.shape)[pending]
    elif fallback == "constant":
        Z[pending] = 0.0
    else:
        Z[pending] = np.nan
    return Z, A


def _features(n_items, n_features, seed):
    return np.random.default_rng(seed).normal(size=(n_items, n_features))


@pytest.mark.parametrize("normalization", ["sym", "rw"])
@pytest.mark.parametrize("weighting", ["binary", "count"])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("mask", ["rows", "entries"])
def test_matches_dense_reference(normalization, weighting, symmetric, mask):
    n_items, n_users = 60, 25
    Y = random_interactions(n_items, n_users, 0.12, seed=1, n_isolated=4, n_blocks=3)
    X = _features(n_items, 6, seed=2)
    if mask == "rows":
        X_miss, _ = simulate_missing(X, [4, 2], rate=0.5, mode="all", random_state=3)
    else:
        X_miss = X.copy()
        X_miss[np.random.default_rng(4).random(X.shape) < 0.4] = np.nan
    # Every isolated item misses something, so the fallback path is exercised.
    X_miss[-4:, :2] = np.nan
    k, n_iter = 3, 4
    expected, A = reference_featprop(X_miss, Y, k, n_iter, normalization, symmetric, weighting)
    imputer = FeatPropImputer(n_neighbors=k, n_iter=n_iter, normalization=normalization,
                              symmetric=symmetric, weighting=weighting, device="cpu")
    got = imputer.fit_transform(X_miss, Y)
    np.testing.assert_allclose(imputer.graph_.toarray(), A)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    observed = ~np.isnan(X_miss)
    assert np.array_equal(got[observed], X_miss[observed])
    n_missing = int(np.isnan(X_miss).sum())
    assert imputer.n_propagated_ + imputer.n_fallback_ == n_missing
    assert imputer.n_fallback_ >= 8  # at least the isolated items' entries


def test_equivalent_to_torch_geometric():
    torch = pytest.importorskip("torch")
    pyg = pytest.importorskip("torch_geometric.transforms")
    from torch_geometric.data import Data

    Y = random_interactions(80, 30, 0.15, seed=5, n_isolated=3, n_blocks=2)
    X = _features(80, 5, seed=6)
    X_miss, mask = simulate_missing(X, [3, 2], rate=0.4, mode="one", random_state=7)
    n_iter = 12
    imputer = FeatPropImputer(n_neighbors=6, n_iter=n_iter, symmetric=True, fallback="constant",
                              dtype="float64", device="cpu")
    ours = imputer.fit_transform(X_miss, Y)
    A = imputer.graph_.tocoo()
    # Row i of our graph pulls from column j: in PyG that is a message from j to i.
    data = Data(x=torch.from_numpy(np.nan_to_num(X_miss)),
                edge_index=torch.from_numpy(np.vstack([A.col, A.row]).astype(np.int64)),
                edge_weight=torch.ones(A.nnz, dtype=torch.float64), num_nodes=80)
    theirs = pyg.FeaturePropagation(torch.from_numpy(mask), num_iterations=n_iter)(data).x
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-10)


def _connected_interactions(n_items, seed):
    """Each user links two consecutive items (a chain), plus random extra interactions."""
    rng = np.random.default_rng(seed)
    Y = np.zeros((n_items, n_items - 1))
    for u in range(n_items - 1):
        Y[u, u] = Y[u + 1, u] = 1
    Y[rng.random(Y.shape) < 0.05] = 1
    return sp.csr_matrix(Y)


def _dirichlet_energy(P, Z):
    return float(np.trace(Z.T @ (Z - P @ Z)))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), rate=st.floats(0.1, 0.9), n_iter=st.integers(1, 8))
def test_dirichlet_energy_does_not_increase(seed, rate, n_iter):
    n_items = 25
    Y = _connected_interactions(n_items, seed)
    X = _features(n_items, 3, seed)
    X_miss, _ = simulate_missing(X, [3], rate=rate, random_state=seed)
    assume(not np.isnan(X_miss).all())
    energies = []
    for steps in (n_iter, n_iter + 1):
        imp = FeatPropImputer(n_neighbors=n_items, n_iter=steps, symmetric=True,
                              fallback="constant", dtype="float64", device="cpu")
        Z = imp.fit_transform(X_miss, Y)
        A = imp.graph_.toarray()
        d = A.sum(axis=1)
        P = A / np.sqrt(np.outer(d, d))
        energies.append(_dirichlet_energy(P, Z))
    assert energies[1] <= energies[0] + 1e-9 * max(1.0, abs(energies[0]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), batch_size=st.integers(1, 70),
       rate=st.floats(0.0, 1.0), mode=st.sampled_from(["all", "one"]))
def test_observed_entries_unchanged_and_batch_size_invariant(seed, batch_size, rate, mode):
    Y = random_interactions(50, 20, 0.2, seed=seed, n_isolated=2, n_blocks=2)
    X = _features(50, 4, seed).astype(np.float32)
    X_miss, _ = simulate_missing(X, [2, 2], rate=rate, mode=mode, random_state=seed)
    X_miss = X_miss.astype(np.float32)
    assume(not np.isnan(X_miss).all(axis=0).any())
    base = FeatPropImputer(n_neighbors=4, device="cpu").fit(X_miss, Y)
    batched = FeatPropImputer(n_neighbors=4, device="cpu", batch_size=batch_size).fit(X_miss, Y)
    assert (base.graph_ != batched.graph_).nnz == 0
    out = batched.transform(X_miss)
    np.testing.assert_array_equal(out, base.transform(X_miss))
    observed = ~np.isnan(X_miss)
    assert out.dtype == np.float32
    assert np.array_equal(out[observed], X_miss[observed])  # bit-identical
    assert not np.isnan(out).any()


def test_fallbacks_and_no_graph():
    Y = random_interactions(30, 10, 0.3, seed=0, n_isolated=5)
    X = _features(30, 3, seed=1)
    X[-5:] = np.nan  # isolated items: nothing can reach them
    X[0, 0] = np.nan
    means = np.nanmean(X, axis=0)
    out = FeatPropImputer(device="cpu").fit_transform(X, Y)
    np.testing.assert_allclose(out[-5:], np.tile(means, (5, 1)))
    left_missing = FeatPropImputer(fallback="constant", fill_value=np.nan, device="cpu")
    assert np.isnan(left_missing.fit_transform(X, Y)[-5:]).all()
    assert (FeatPropImputer(fallback="constant", device="cpu").fit_transform(X, Y)[-5:] == 0).all()
    # Without interactions there is no graph: everything takes the fallback.
    with pytest.warns(UserWarning, match="got no y"):
        imp = FeatPropImputer(device="cpu").fit(X)
    assert imp.graph_ is None and imp.n_propagated_ == 0
    np.testing.assert_allclose(imp.transform(X)[0, 0], means[0])
    # n_iter=0 propagates nothing.
    assert FeatPropImputer(n_iter=0, device="cpu").fit(X, Y).n_propagated_ == 0


def test_masked_array_equals_nan_input():
    Y = random_interactions(40, 15, 0.2, seed=3)
    X = _features(40, 4, seed=3)
    X_nan, mask = simulate_missing(X, [2, 2], 0.3, random_state=0)
    masked = np.ma.MaskedArray(X, mask=mask)
    a = FeatPropImputer(device="cpu").fit_transform(X_nan, Y)
    b = FeatPropImputer(device="cpu").fit_transform(masked, Y)
    np.testing.assert_array_equal(a, b)


def test_new_items_use_nearest_fitted_items():
    Y = random_interactions(40, 15, 0.2, seed=8)
    X = _features(40, 4, seed=8)
    X_fit, _ = simulate_missing(X, [2, 2], 0.3, mode="one", random_state=8)
    imp = FeatPropImputer(n_neighbors=3, device="cpu").fit(X_fit, Y)
    completed = imp.transform(X_fit)
    new = _features(5, 4, seed=9)
    new[0, 2:] = np.nan
    new[1, :2] = np.nan
    new[2] = np.nan
    assert imp.n_donors_ == 3
    out = check_new_item_rule(imp, completed, new, partial_rows=(0, 1), empty_rows=(2,))
    np.testing.assert_array_equal(out[3:], new[3:])


class _RidgeOnInteractions(BaseEstimator):
    """A minimal downstream model: predicts an item's interactions from its features."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, X, Y):
        assert not np.isnan(X).any()
        self.ridge_ = Ridge(alpha=self.alpha).fit(X, Y.toarray())
        return self

    def score(self, X, Y):
        assert not np.isnan(X).any()
        return self.ridge_.score(X, Y.toarray())


def test_pipeline_and_grid_search():
    Y = random_interactions(80, 20, 0.2, seed=11)
    X = _features(80, 6, seed=11)
    X_miss, _ = simulate_missing(X, [3, 3], 0.3, random_state=11)
    pipe = Pipeline([("impute", FeatPropImputer(device="cpu")), ("model", _RidgeOnInteractions())])
    pipe.fit(X_miss, Y)
    direct = FeatPropImputer(device="cpu").fit_transform(X_miss, Y)
    np.testing.assert_array_equal(pipe.named_steps["impute"].transform(X_miss), direct)
    search = GridSearchCV(pipe, {"impute__n_neighbors": [2, 5], "impute__n_iter": [1, 3]},
                          cv=KFold(3, shuffle=True, random_state=0))
    search.fit(X_miss, Y)
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_clone_and_pickle_round_trip():
    Y = random_interactions(40, 15, 0.2, seed=12)
    X_miss, _ = simulate_missing(_features(40, 4, 12), [2, 2], 0.4, random_state=12)
    imp = FeatPropImputer(n_neighbors=5, symmetric=True, device="cpu")
    assert clone(imp).get_params() == imp.get_params()
    imp.fit(X_miss, Y)
    restored = pickle.loads(pickle.dumps(imp))
    np.testing.assert_array_equal(restored.transform(X_miss), imp.transform(X_miss))
    new = X_miss[:5] + 1.0
    np.testing.assert_array_equal(restored.transform(new), imp.transform(new))


@pytest.mark.parametrize(
    "params, fit_args, match",
    [
        ({}, lambda X, Y: (X, Y[:-1]), "one row per item"),
        ({}, lambda X, Y: (X, -Y), "negative"),
        ({}, lambda X, Y: (X, sp.csr_matrix(np.where(Y.toarray() > 0, np.nan, 0))), "NaN"),
        ({}, lambda X, Y: (X, Y.toarray()[:, 0]), "2-d interaction matrix"),
        ({}, lambda X, Y: (np.where(np.arange(4) == 0, np.nan, X), Y), "no observed value"),
        ({"n_neighbors": 0}, lambda X, Y: (X, Y), "n_neighbors"),
        ({"normalization": "cheb"}, lambda X, Y: (X, Y), "normalization"),
        ({"device": "tpu"}, lambda X, Y: (X, Y), "device"),
        ({"device": "gpu0"}, lambda X, Y: (X, Y), "device"),
    ],
)
def test_bad_inputs_raise_clear_errors(params, fit_args, match):
    Y = random_interactions(20, 8, 0.3, seed=0)
    X = _features(20, 4, seed=0)
    X[3, :2] = np.nan
    with pytest.raises(ValueError, match=match):
        FeatPropImputer(**params).fit(*fit_args(X, Y))


def test_non_numeric_x_raises():
    with pytest.raises(ValueError):
        FeatPropImputer().fit(np.array([["a", "b"], ["c", "d"]]))


def test_wrong_feature_count_at_transform():
    imp = FeatPropImputer(device="cpu").fit(_features(10, 3, 0), random_interactions(10, 4, 0.5, 0))
    with pytest.raises(ValueError, match="features"):
        imp.transform(_features(4, 5, 0))


def test_cuda_device_unavailable_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="CUDA"):
        FeatPropImputer(device="cuda").fit(_features(5, 2, 0))


@requires_cuda
def test_cuda_matches_cpu():
    Y = random_interactions(300, 100, 0.05, seed=13, n_isolated=5)
    X_miss, _ = simulate_missing(_features(300, 16, 13), [8, 8], 0.5, random_state=13)
    cpu = FeatPropImputer(device="cpu").fit_transform(X_miss, Y)
    gpu_imp = FeatPropImputer(device="cuda").fit(X_miss, Y)
    np.testing.assert_allclose(gpu_imp.transform(X_miss), cpu, atol=1e-5)
    restored = pickle.loads(pickle.dumps(gpu_imp))
    assert restored.device_.startswith("cuda")
    np.testing.assert_allclose(restored.transform(X_miss), cpu, atol=1e-5)


# ------------------------------------------------------------------------------------------
# Memory-mapped input and output (out-of-core FeatProp)
# ------------------------------------------------------------------------------------------

def _memmap_problem(tmp_path, mode, dtype, n_items=400, n_features=37, seed=21):
    Y = random_interactions(n_items, 120, 0.04, seed=seed, n_isolated=5, n_blocks=2)
    X = _features(n_items, n_features, seed).astype(dtype)
    rng = np.random.default_rng(seed + 1)
    if mode == "rows":
        X[rng.random(n_items) < 0.3] = np.nan
    else:
        X[rng.random(X.shape) < 0.3] = np.nan
    np.save(tmp_path / "X.npy", X)
    return X, np.load(tmp_path / "X.npy", mmap_mode="r"), Y


@pytest.fixture
def small_blocks(monkeypatch):
    """Row blocks of a few rows, so that the block-wise passes really run in many blocks."""
    import skmm._blockio as blockio
    import skmm.impute._base as base
    import skmm.impute._featprop as fp

    # Each module's own binding of the block sizes (the fitted-matrix check lives in _base).
    for module in (blockio, base):
        monkeypatch.setattr(module, "_SCAN_BYTES", 1000)
    for module in (blockio, fp):
        monkeypatch.setattr(module, "_IO_BYTES", 3000)


@pytest.mark.parametrize("mode", ["rows", "entries"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("column_batch_size", [None, 5, 16])
@pytest.mark.parametrize("engine", ["blocks", "tall", "torch"])
def test_memmap_equals_in_memory_exactly(tmp_path, small_blocks, monkeypatch, mode, dtype,
                                         column_batch_size, engine):
    import skmm._propagator as propagation

    if engine != "blocks":  # the loop that tall matrices take: row chunks on threads
        monkeypatch.setattr(propagation, "_block_width", lambda *args: None)
    if engine == "torch":  # the device loop (one torch product per step), run on the CPU
        monkeypatch.setattr(propagation.ColumnPropagator, "_propagate_tall",
                            propagation.ColumnPropagator._propagate_whole)
    X, X_map, Y = _memmap_problem(tmp_path, mode, dtype)
    params = dict(n_neighbors=5, n_iter=4, device="cpu", column_batch_size=column_batch_size)
    expected = FeatPropImputer(**params).fit_transform(X, Y)
    # A memory map in, the result in memory.
    got = FeatPropImputer(**params).fit_transform(X_map, Y)
    assert type(got) is np.ndarray
    np.testing.assert_array_equal(got, expected)
    # A memory map in, the result in a file.
    out_file = tmp_path / "X_imputed.npy"
    imp = FeatPropImputer(out_file=out_file, **params)
    got = imp.fit_transform(X_map, Y)
    assert isinstance(got, np.memmap) and not got.flags.writeable
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.load(out_file), expected)
    observed = ~np.isnan(X)
    assert np.array_equal(got[observed].view(f"u{X.itemsize}"),
                          X[observed].view(f"u{X.itemsize}"))  # bit-identical
    # transform recognises the fitted matrix, mapped or in memory.
    np.testing.assert_array_equal(imp.transform(X_map), expected)
    np.testing.assert_array_equal(imp.transform(X), expected)
    reference = FeatPropImputer(**params).fit(X, Y)
    assert (imp.n_propagated_, imp.n_fallback_) == (reference.n_propagated_,
                                                    reference.n_fallback_)
    np.testing.assert_array_equal(imp.statistics_, reference.statistics_)
    new = X[:9] + 0.5
    np.testing.assert_array_equal(imp.transform(new), reference.transform(new))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.npy", "X_imputed.npy"]


def test_memmap_result_pickles_as_a_path(tmp_path):
    X, X_map, Y = _memmap_problem(tmp_path, "rows", np.float32, n_items=300, n_features=64)
    imp = FeatPropImputer(n_neighbors=5, device="cpu", out_file=str(tmp_path / "out.npy"))
    imp.fit(X_map, Y)
    new = X[:6] + 1.0
    expected_new = imp.transform(new)
    blob = pickle.dumps(imp)
    assert len(blob) < X.nbytes / 4  # the result stays in its file
    restored = pickle.loads(blob)
    assert isinstance(restored._fit_X, np.memmap)
    np.testing.assert_array_equal(restored.transform(X_map), imp.transform(X_map))
    np.testing.assert_array_equal(restored.transform(new), expected_new)


def test_out_file_refit_leaves_earlier_results_intact(tmp_path):
    X, X_map, Y = _memmap_problem(tmp_path, "rows", np.float32)
    imp = FeatPropImputer(n_neighbors=5, device="cpu", out_file=tmp_path / "out.npy",
                          overwrite=True)
    first = imp.fit_transform(X_map, Y)
    kept = np.array(first)
    second = imp.fit_transform(X_map[:200], Y[:200])  # the same path, a new file
    assert second.shape == (200, X.shape[1])
    np.testing.assert_array_equal(first, kept)  # the old map still reads its own data


def test_memmap_with_infinity_raises(tmp_path):
    X, _, Y = _memmap_problem(tmp_path, "rows", np.float32)
    X[7, 3] = np.inf
    np.save(tmp_path / "X_inf.npy", X)
    with pytest.raises(ValueError, match="infinity"):
        FeatPropImputer(device="cpu").fit(np.load(tmp_path / "X_inf.npy", mmap_mode="r"), Y)
    with pytest.raises(ValueError, match="infinity"):
        FeatPropImputer(device="cpu").fit(X, Y)
    imp = FeatPropImputer(device="cpu").fit(np.where(np.isinf(X), 0, X), Y)
    with pytest.raises(ValueError, match="infinity"):
        imp.transform(X)


def test_row_blocks_release_pages_without_losing_data(tmp_path):
    from skmm._blockio import RowBlocks

    X = _features(1000, 16, 0)
    np.save(tmp_path / "X.npy", X)
    for mode, mapped in [("r", True), ("r+", True), ("c", False)]:
        X_map = np.load(tmp_path / "X.npy", mmap_mode=mode)
        blocks = RowBlocks(np.asarray(X_map), block_bytes=1000)
        assert blocks.mapped is mapped
        seen = np.concatenate([np.array(b) for _, _, b in blocks])
        np.testing.assert_array_equal(seen, X)
        np.testing.assert_array_equal(X_map, X)  # readable after the pages were released
        idx = np.array([0, 5, 400, 999])
        np.testing.assert_array_equal(blocks.gather(idx, 3, 9), X[idx, 3:9])
    assert not RowBlocks(X).mapped


def test_fitted_matrix_is_recognised_exactly():
    Y = random_interactions(40, 15, 0.2, seed=8)
    X, _ = simulate_missing(_features(40, 4, 8), [2, 2], 0.3, random_state=8)
    imp = FeatPropImputer(n_neighbors=3, device="cpu").fit(X, Y)
    fitted = imp.transform(X)
    # Another NaN bit pattern at the missing entries: still the fitted matrix.
    other_nan = X.copy()
    other_nan.view(np.uint64)[np.isnan(X)] = 0x7FF8_0000_0000_0001
    np.testing.assert_array_equal(imp.transform(other_nan), fitted)
    # One observed value changed, or one more entry missing: new items.
    for change in ("value", "mask"):
        X2 = X.copy()
        i, j = np.argwhere(~np.isnan(X))[5]
        X2[i, j] = np.nextafter(X[i, j], np.inf) if change == "value" else np.nan
        assert not np.array_equal(imp.transform(X2), fitted, equal_nan=True)


def test_transform_never_changes_the_estimator_nor_depends_on_call_history():
    """Regression: the new-item rule was cached with the n_neighbors of its first use, so
    that after set_params or a pickle round trip identical estimators disagreed."""
    Y = random_interactions(40, 15, 0.2, seed=8)
    X, _ = simulate_missing(_features(40, 4, 8), [2, 2], 0.3, mode="one", random_state=8)
    new = X[:5] + 1.0
    a = FeatPropImputer(n_neighbors=3, device="cpu").fit(X, Y)
    state = {k: v for k, v in a.__dict__.items()}
    first = a.transform(new)
    assert a.__dict__.keys() == state.keys()
    assert all(a.__dict__[k] is v for k, v in state.items())
    # b sees other calls and a set_params/refit cycle before the same transform.
    b = FeatPropImputer(n_neighbors=7, device="cpu").fit(X, Y)
    b.transform(new)
    b.set_params(n_neighbors=3).fit(X, Y)
    np.testing.assert_array_equal(b.transform(new), first)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)).transform(new), first)
    # The rule is fixed at fit: changing a parameter without refitting changes nothing.
    a.set_params(n_neighbors=10)
    np.testing.assert_array_equal(a.transform(new), first)


def test_column_batch_size_does_not_change_results():
    Y = random_interactions(200, 60, 0.06, seed=3, n_isolated=3, n_blocks=2)
    X = _features(200, 50, 3)
    X[np.random.default_rng(3).random(X.shape) < 0.3] = np.nan
    expected = FeatPropImputer(n_neighbors=6, n_iter=5, device="cpu").fit_transform(X, Y)
    for size in (1, 7, 16, 50, 1000):
        got = FeatPropImputer(n_neighbors=6, n_iter=5, device="cpu",
                              column_batch_size=size).fit_transform(X, Y)
        np.testing.assert_array_equal(got, expected)
