"""Hyper-parameter searches over skmm estimators on a dask.distributed cluster.

A search run under ``joblib.parallel_backend("dask", scatter=[X, Y])`` on a local cluster of
two worker *processes* must give exactly the results of the same search run in this process:
the estimators and data travel to the workers by pickling, and the models are seeded.
"""

import os
import threading

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import randint
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV
from sklearn.pipeline import Pipeline

from skmm import FeatPropImputer, MILKRecommender
from skmm.datasets import make_multimodal, simulate_missing

distributed = pytest.importorskip("distributed")
import dask  # noqa: E402  (a dependency of distributed)

# One torch (OpenMP / MKL / OpenBLAS) thread per worker process. distributed's default
# ``pre-spawn-environ`` already sets these, but the test must not depend on a default: they are
# set before the workers are spawned and passed to the nanny, and the fixture checks the result.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

# Seconds before a step counts as hung: starting the cluster imports torch in two fresh
# processes, which takes a while on a busy 2-core machine; each search takes a few seconds.
START_TIMEOUT = 120
SEARCH_TIMEOUT = 120

MODALITIES = (24, 16)
MILK = dict(embedding_dim=16, batch_size=256, max_epochs=3, device="cpu", random_state=0)


def _within(seconds, func, *args):
    """Run ``func(*args)`` in a daemon thread; fail instead of hanging past ``seconds``.

    (pytest-timeout is not a test dependency.) Joblib's backend setting is thread-local, so
    ``func`` must enter ``parallel_backend`` itself.
    """
    out = {}

    def target():
        try:
            out["value"] = func(*args)
        except BaseException as exc:  # re-raised in the calling thread
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{getattr(func, '__name__', func)} did not finish within {seconds} s")
    if "error" in out:
        raise out["error"]
    return out["value"]


# The local run uses one torch thread like the workers, so both compute in the same order.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def client():
    def start():
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v
                              for k, v in ONE_THREAD.items()}):
            cluster = distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                env=ONE_THREAD)
        return cluster, distributed.Client(cluster, timeout=START_TIMEOUT)

    # The nanny writes its pre-spawn variables into this process's environment too: restore it
    # afterwards, for the tests that run next.
    environ = dict(os.environ)
    cluster, client = _within(START_TIMEOUT, start)
    try:
        client.wait_for_workers(2, timeout=START_TIMEOUT)
        threads = client.run(torch.get_num_threads)
        assert sorted(threads.values()) == [1, 1], threads
        yield client
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)
        os.environ.clear()
        os.environ.update(environ)


@pytest.fixture(scope="module")
def data():
    d = make_multimodal(240, 100, MODALITIES, density=0.05, random_state=0)
    X, _ = simulate_missing(d.X, d.modalities, 0.3, mode="one", random_state=0)
    # y must be the very object listed in scatter (joblib matches scattered data by identity),
    # and GridSearchCV passes a CSR matrix through unchanged: make it CSR up front.
    return X, sp.csr_matrix(d.Y)


def _pipeline(**milk):
    return Pipeline([("impute", FeatPropImputer(device="cpu")),
                     ("milk", MILKRecommender(MODALITIES, **{**MILK, **milk}))])


def _fit_on_dask(search, X, Y):
    with joblib.parallel_backend("dask", scatter=[X, Y]):
        return search.fit(X, Y)


def _assert_same_results(local, remote):
    # Exactly equal, not approximately: every fit runs the same float operations in the same
    # order in both runs. The data are unpickled bit for bit, every random draw comes from
    # random_state (MILK seeds numpy and torch from it, KFold and the parameter sampler are
    # seeded and run in this process), and torch runs on one thread here and on the workers,
    # so no reduction is split differently. The fold scores are then averaged by the same
    # numpy code on the same values.
    for key in ("mean_test_score", "std_test_score", "rank_test_score",
                *(f"split{i}_test_score" for i in range(3))):
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key],
                                      err_msg=key)
    assert remote.cv_results_["params"] == local.cv_results_["params"]
    assert remote.best_params_ == local.best_params_
    assert remote.best_score_ == local.best_score_


def test_grid_search_on_dask_equals_local(client, data):
    X, Y = data
    grid = {"impute__n_neighbors": [5, 20], "milk__alignment_weight": [0.0, 0.05]}

    def search():
        return GridSearchCV(_pipeline(), grid, cv=KFold(3, shuffle=True, random_state=0))

    local = search().set_params(n_jobs=1).fit(X, Y)
    remote = _within(SEARCH_TIMEOUT, _fit_on_dask, search().set_params(n_jobs=-1), X, Y)
    assert np.isfinite(local.cv_results_["mean_test_score"]).all()
    _assert_same_results(local, remote)
    # The refitted pipeline (refit runs in this process) predicts like the local one.
    np.testing.assert_array_equal(remote.best_estimator_.decision_function(X[:10]),
                                  local.best_estimator_.decision_function(X[:10]))


def test_randomized_search_over_featprop_on_dask_equals_local(client, data):
    X, Y = data
    # FeatProp's parameters, scored by the cold-start NDCG@20 of a cheap downstream model
    # (MILK without environments nor alignment, i.e. a DUIF-like content model).
    distributions = {"impute__n_neighbors": randint(2, 40),
                     "impute__n_iter": [1, 2, 3, 5],
                     "impute__normalization": ["sym", "rw"]}

    def search():
        return RandomizedSearchCV(
            _pipeline(environments="none", invariance_weight=0.0, alignment_weight=0.0),
            distributions, n_iter=4, cv=KFold(3, shuffle=True, random_state=0),
            random_state=0)

    local = search().set_params(n_jobs=1).fit(X, Y)
    remote = _within(SEARCH_TIMEOUT, _fit_on_dask, search().set_params(n_jobs=-1), X, Y)
    _assert_same_results(local, remote)


def test_scattered_data_is_held_once_by_every_worker(client, data):
    X, Y = data

    def holdings(X, Y, dask_worker=None):
        # Nested, so cloudpickle sends it by value (tests/ is not importable on the workers).
        values = list(dask_worker.data.values())
        n_X = sum(isinstance(v, np.ndarray) and v.shape == X.shape
                  and np.array_equal(v, X, equal_nan=True) for v in values)
        n_Y = sum(sp.issparse(v) and v.shape == Y.shape and (v != Y).nnz == 0
                  for v in values)
        return n_X, n_Y

    def fit_and_look():
        with joblib.parallel_backend("dask", scatter=[X, Y]):
            search = GridSearchCV(_pipeline(), {"milk__alignment_weight": [0.0, 0.05]},
                                  cv=KFold(3, shuffle=True, random_state=0), n_jobs=-1)
            search.fit(X, Y)
            # Still inside the context, whose backend holds the scattered futures: scatter
            # broadcast X and Y once to every worker, under one key each, and the tasks used
            # those copies instead of carrying the data along.
            return search, client.run(holdings, X, Y)

    # The Active Memory Manager (on by default) drops the broadcast replicas that no waiting
    # task needs, within seconds: stop it, or whether a worker still holds its copy after the
    # search depends on timing (see docs/user_guide/scaling.rst).
    client.amm.stop()
    try:
        search, held = _within(SEARCH_TIMEOUT, fit_and_look)
    finally:
        client.amm.start()
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert len(held) == 2
    assert all(counts == (1, 1) for counts in held.values()), held
