"""
===================================
Grid search on a Dask cluster
===================================

Run a :class:`~sklearn.model_selection.GridSearchCV` over a
``FeatPropImputer -> MILKRecommender`` pipeline on a ``dask.distributed`` cluster: connect a
:class:`~distributed.Client` to the cluster's scheduler, send the data to every worker once
with ``scatter``, and let joblib hand the cross-validation fits to the workers. The results
are identical to those of the same search run in this process.

Set the environment variable ``SKMM_DASK_SCHEDULER`` to the address of a running scheduler
(for instance ``tcp://scheduler:8786``) to run on that cluster; without it, the example starts
a :class:`~distributed.LocalCluster` of two worker processes on this machine. It needs the
``distributed`` package (``pip install "skmm[dask]"``). See :ref:`scaling` for the details.
"""

# %%
# Data and search
# ---------------
#
# A synthetic catalogue of 500 items with two modalities, a third of the items missing one of
# them, and a grid over the number of graph neighbours of FeatProp and the alignment weight of
# MILK, evaluated by 3-fold cross-validation over items (cold-start NDCG@20). Every random
# draw is seeded: the folds, and MILK's initialisation, sampling and environments through
# ``random_state``. That is what makes a distributed run reproduce a local one.

import os
import time

import joblib
import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
import torch
from distributed import Client, LocalCluster
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from skmm import FeatPropImputer, MILKRecommender, simulate_missing
from skmm.datasets import make_multimodal

torch.set_num_threads(1)  # like the workers, for the local run below

data = make_multimodal(
    n_items=500, n_users=250, modalities=(64, 32), density=0.03, random_state=0
)
X, _ = simulate_missing(data.X, data.modalities, rate=0.3, mode="one", random_state=0)
# The very objects passed to fit are the ones scattered: keep Y as the CSR matrix it is.
Y = sp.csr_matrix(data.Y)

pipe = Pipeline(
    [
        ("impute", FeatPropImputer(device="cpu")),
        (
            "milk",
            MILKRecommender(
                data.modalities,
                embedding_dim=32,
                batch_size=512,
                max_epochs=5,
                device="cpu",
                random_state=0,
            ),
        ),
    ]
)
grid = {
    "impute__n_neighbors": [5, 20],
    "milk__alignment_weight": [0.0, 0.5],
}
search = GridSearchCV(pipe, grid, cv=KFold(3, shuffle=True, random_state=0))

# %%
# Connect to the cluster
# ----------------------
#
# On a real cluster the scheduler runs somewhere (``dask scheduler``) and the workers connect
# to it (``dask worker tcp://scheduler:8786 --nthreads 1``); the client only needs the
# scheduler's address. Each worker runs one fit at a time on one torch thread: parallelism
# comes from worker *processes*, and a fit computes exactly as it does in this process
# (``dask worker`` sets ``OMP_NUM_THREADS=1`` in its worker processes by default).
#
# Worker processes started from a script re-import that script (Python's ``spawn`` start
# method), so code that starts or uses a local cluster belongs under the
# ``if __name__ == "__main__":`` guard. The gallery runs this file as ``__main__``.

if __name__ == "__main__":
    address = os.environ.get("SKMM_DASK_SCHEDULER")
    if address:
        client = Client(address)
    else:
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env={"OMP_NUM_THREADS": "1"},
        )
        client = Client(cluster)
    client.wait_for_workers(1, timeout=120)
    print(f"scheduler {client.scheduler.address}")
    print("torch threads per worker:", client.run(torch.get_num_threads))

# %%
# Scatter the data, search on the workers
# ---------------------------------------
#
# ``GridSearchCV`` submits one task per (candidate, fold), each with ``X`` and ``Y`` as
# arguments. ``scatter=[X, Y]`` sends both to every worker **once**, when the backend starts;
# joblib then recognises them among the tasks' arguments and passes a reference to the
# worker's copy instead of the data. Without it, joblib ships each argument larger than a
# kilobyte to a worker at every ``Parallel`` call, and the workers copy it between each other
# as tasks need it; with a large interaction matrix, that traffic dominates. The estimator
# (unfitted, small) still travels with each task, and each task slices its fold from the
# worker's copy. (Dask's Active Memory Manager may later drop copies that no waiting task
# needs; a worker then fetches the data from another worker, not from the client. See
# :ref:`scaling` to keep them.)

if __name__ == "__main__":
    print(f"X: {X.shape}, Y: {Y.shape} with {Y.nnz} interactions")
    start = time.perf_counter()
    with joblib.parallel_backend("dask", scatter=[X, Y]):
        remote = clone(search).set_params(n_jobs=-1).fit(X, Y)
    remote_time = time.perf_counter() - start
    n_fits = len(remote.cv_results_["params"]) * remote.n_splits_
    print(f"{n_fits} fits on the cluster in {remote_time:.1f} s")
    print(f"best: {remote.best_params_}, NDCG@20 {remote.best_score_:.4f}")

# %%
# The same search in this process
# -------------------------------
#
# Run locally with the same seeds, the search gives the same fold scores bit for bit: each fit
# receives the same data (pickling preserves every bit), draws the same random numbers and
# computes on one thread in the same order, wherever it runs. ``best_estimator_`` is refitted
# in this process in both cases.
#
# On a problem this small, and a local cluster on a small machine, the cluster is no faster
# than this process: starting the workers and shipping tasks costs about as much as the fits.
# Distribution pays off with many candidates, long fits and several machines.

if __name__ == "__main__":
    start = time.perf_counter()
    local = clone(search).set_params(n_jobs=1).fit(X, Y)
    print(f"{n_fits} fits in this process in {time.perf_counter() - start:.1f} s")
    for key in ("mean_test_score", "std_test_score"):
        assert np.array_equal(remote.cv_results_[key], local.cv_results_[key]), key
    assert remote.best_params_ == local.best_params_
    print("cluster and local results are identical")

# %%
# The cross-validation results
# ----------------------------
#
# Mean cold-start NDCG@20 over the folds (one standard deviation as error bars) for each
# alignment weight, one line per number of FeatProp neighbours.

if __name__ == "__main__":
    results = remote.cv_results_
    weights = grid["milk__alignment_weight"]
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for shift, n_neighbors in zip((-0.05, 0.05), grid["impute__n_neighbors"]):
        rows = [
            np.flatnonzero(
                (results["param_impute__n_neighbors"] == n_neighbors)
                & (results["param_milk__alignment_weight"] == weight)
            )[0]
            for weight in weights
        ]
        ax.errorbar(
            np.arange(len(weights)) + shift,
            results["mean_test_score"][rows],
            yerr=results["std_test_score"][rows],
            marker="o",
            capsize=3,
            label=f"FeatProp, {n_neighbors} neighbours",
        )
    ax.set_xticks(np.arange(len(weights)), [str(w) for w in weights])
    ax.set(
        xlabel="MILK alignment weight",
        ylabel="NDCG@20 (3-fold CV, new items)",
        title="Grid search on the Dask cluster",
    )
    ax.legend()
    plt.show()

# %%
# Close the client (and the local cluster, if this example started one). A client connected
# to a shared scheduler leaves it, and its workers, running.

if __name__ == "__main__":
    client.close()
    if not address:
        cluster.close()
