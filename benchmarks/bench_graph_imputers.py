"""The graph-imputer family (skmm.diffusion) against the official dense recipes, side by side.

For every case and method this prints wall time (graph build included) and peak memory of one
run in a fresh process, and the largest absolute difference of the imputed rows from a
reference computed densely in another fresh process:

* ``neigh_mean`` (default: mean of the observed neighbours on skmm's graph) and
  ``neigh_mean_paper`` (the official rule on :func:`skmm.diffusion.paper_graph`), the latter
  against ``dense_neigh_mean``: the official recipe (dense co-counts, dense top-k, a mean over
  the listed rows);
* ``ppr_B`` / ``heat_B``: the official PPR / heat operator (column top-k of ``T``) from
  :func:`skmm.diffusion.paper_diffusion_operator`, propagated in float64, against
  ``dense_ppr_B`` / ``dense_heat_B``: the official recipe (dense ``np.linalg.inv`` /
  ``scipy.linalg.expm``, dense column top-k, dense ``T Z`` layers); and ``gdc_ppr_B``: the same
  operator from PyG's ``GDC`` transform (exact, float64), propagated alike;
* ``ppr_C`` / ``heat_C`` (skmm's default: row top-k of the pruned series, then reset
  propagation) and ``ppr_A`` / ``heat_A`` (unsparsified truncated series), against
  ``dense_ppr_C`` / ``dense_heat_C`` and ``dense_ppr_A`` / ``dense_heat_A``: the same
  definitions computed from the exact dense ``T`` (no truncation, no pruning), so the
  difference is the truncation and pruning error;
* ``featprop``: :class:`skmm.FeatPropImputer` (the 1M-item yardstick: each method's time and
  peak memory relative to it).

Cases: the Amazon Baby training graph (7,050 items) with 384-d N(0, 1) features at 30% and
70% of the items missing (whole rows), k = 20 (the authors' ``top_k = 20``, i.e. 19 other
items, on the paper graph), 3 layers; a synthetic 1M-item power-law graph (the FeatProp
benchmark's) with 384-d features at 30% missing, 3 layers, for the scalable methods only
(the official recipes need several dense n_items^2 arrays, and the column top-k operator
costs O(n_items^2)); there ``ppr_A`` / ``heat_A`` run one layer, as each layer is ``J - 1``
products over the whole graph. ``--quick`` runs Baby at 30% and a 100k-item power-law graph.

    python benchmarks/bench_graph_imputers.py [--data-root PATH] [--quick]
        [--cases NAME ...] [--methods NAME ...] [--cache-dir DIR]

Peak memory is the worker process's peak resident set size (inputs and libraries included).
Timings on a machine shared with other processes are noisy; the ratios within one run hold
better than absolute figures.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from _machine import RESULT_TAG, cache_folder, data_root, run_in_fresh_process
from bench_featprop import _peak_mb, max_abs_diff, prepare

K = 20  # the authors' top_k (self included); skmm's graphs use K - 1 other items
N_ITER = 3

CASES = {  # name: (name, graph, n_features, missing rate, layers), as bench_featprop.prepare
    "baby-384d-30%": ("baby-384d-30%", "baby", 384, 0.3, N_ITER),
    "baby-384d-70%": ("baby-384d-70%", "baby", 384, 0.7, N_ITER),
    "powerlaw-1M-384d-30%": ("powerlaw-1M-384d-30%", "powerlaw-1M", 384, 0.3, N_ITER),
    "powerlaw-100k-384d-30%": ("powerlaw-100k-384d-30%", "powerlaw-100k", 384, 0.3, N_ITER),
}
FULL = ["baby-384d-30%", "baby-384d-70%", "powerlaw-1M-384d-30%"]
QUICK = ["baby-384d-30%", "powerlaw-100k-384d-30%"]

SMALL_METHODS = ["featprop", "neigh_mean", "neigh_mean_paper", "dense_neigh_mean",
                 "ppr_C", "dense_ppr_C", "heat_C", "dense_heat_C",
                 "ppr_A", "dense_ppr_A", "heat_A", "dense_heat_A",
                 "ppr_B", "dense_ppr_B", "gdc_ppr_B", "heat_B", "dense_heat_B"]
# ppr_A is left out of the large case by default: one layer is J - 1 = 87 products over the
# whole graph (heat_A: 15), so its time is heat_A's times about 87 / 15.
LARGE_METHODS = ["featprop", "neigh_mean", "neigh_mean_paper", "ppr_C", "heat_C", "heat_A"]
REFERENCE = {"neigh_mean_paper": "dense_neigh_mean", "ppr_C": "dense_ppr_C",
             "heat_C": "dense_heat_C", "ppr_A": "dense_ppr_A", "heat_A": "dense_heat_A",
             "ppr_B": "dense_ppr_B", "gdc_ppr_B": "dense_ppr_B", "heat_B": "dense_heat_B"}
# Largest graph each method is run on (the others need dense n_items^2 arrays or work).
MAX_ITEMS = {name: 20_000 for name in SMALL_METHODS if name.startswith(("dense_", "gdc_"))}
MAX_ITEMS.update(ppr_B=20_000, heat_B=20_000)


# ------------------------------------------------------------------------------------------
# Workers
# ------------------------------------------------------------------------------------------

def _imputed_rows(X, rows, values, reached):
    """The imputed missing rows, unreached entries as 0 (no fallback, as the official code)."""
    out = np.where(reached, values, 0.0)
    return rows, out


def run_method(method, X, Y):
    """Impute ``X`` (NaN rows) with ``method``; returns ``(rows, values)``."""
    from skmm import FeatPropImputer
    from skmm.diffusion import (diffusion_impute, neighbour_mean, paper_diffusion_operator,
                                paper_graph, rewired_graph, transition_matrix)
    from skmm.graph import cointeraction_graph
    from skmm.propagation import propagate_features

    missing = np.isnan(X)
    rows = np.flatnonzero(missing.any(axis=1))
    if method == "featprop":
        out = FeatPropImputer(n_neighbors=K - 1, n_iter=N_ITER, fallback="constant",
                              device="cpu").fit_transform(X, Y)
        return rows, out[rows]
    if method == "neigh_mean":
        return _imputed_rows(X, *neighbour_mean(cointeraction_graph(Y, K - 1), X))
    if method == "neigh_mean_paper":
        return _imputed_rows(X, *neighbour_mean(paper_graph(Y, K), X, paper_compat=True))
    kernel, form = method.split("_")[-2:]
    X0 = np.nan_to_num(X)
    if form == "C":
        H = transition_matrix(cointeraction_graph(Y, K - 1))
        W, _ = rewired_graph(H, rows, kernel=kernel, n_neighbors=K - 1)
        return _imputed_rows(X, *propagate_features(W, X0, missing, N_ITER))
    if form == "A":
        H = transition_matrix(cointeraction_graph(Y, K - 1))
        n_iter = N_ITER if X.shape[0] <= 20_000 else 1
        return _imputed_rows(X, *diffusion_impute(H, X, missing, n_iter, kernel=kernel))
    if method.startswith("gdc_"):
        T = gdc_operator(paper_graph(Y, K), K)
    else:
        T, _ = paper_diffusion_operator(paper_graph(Y, K), kernel=kernel)
    return _imputed_rows(X, *propagate_features(T, X0, missing, N_ITER, dtype=np.float64))


def gdc_operator(A, k):
    """PyG's GDC (exact PPR, alpha 0.1) with the official settings: a row-normalised A + I
    (self weight 2 where listed, as the official H), column top-k, column normalisation."""
    import warnings

    import scipy.sparse as sp
    import torch
    from torch_geometric.data import Data
    from torch_geometric.transforms import GDC

    coo = sp.coo_matrix(A)
    data = Data(edge_index=torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)),
                edge_attr=torch.from_numpy(coo.data.astype(np.float64)), num_nodes=A.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = GDC(self_loop_weight=1, normalization_in="row", normalization_out="col",
                  diffusion_kwargs={"method": "ppr", "alpha": 0.1},
                  sparsification_kwargs={"method": "topk", "k": k, "dim": 0}, exact=True)(data)
    i, w = out.edge_index.numpy(), out.edge_attr.numpy()
    return sp.csr_matrix((w, (i[0], i[1])), shape=A.shape)


def dense_method(method, X, Y):
    """The dense references: the official recipes (``_B``, ``neigh_mean``) and the exact-T
    versions of skmm's own forms (``_A``, ``_C``)."""
    import scipy.linalg

    from skmm.diffusion import transition_matrix
    from skmm.graph import cointeraction_graph

    missing = np.isnan(X)
    rows = np.flatnonzero(missing.any(axis=1))
    Xt = np.where(missing, 0.0, X).astype(np.float64)
    n = X.shape[0]
    if method in ("dense_neigh_mean", "dense_ppr_B", "dense_heat_B"):
        # get_item_item: dense co-counts, top K per row (ties to the smaller index).
        R = Y.astype(np.float32)
        C = (R @ R.T).toarray()
        top = np.argsort(-C, axis=1, kind="stable")[:, :K]
        del C
        A = np.zeros((n, n))
        np.put_along_axis(A, top, 1.0, axis=1)
        if method == "dense_neigh_mean":
            return rows, (A[rows] @ Xt) / K
        At = A + np.eye(n)
        c = 1.0 / np.sqrt(At[0].sum())
        H = c * At * c
        del A, At
        if method == "dense_ppr_B":
            T = 0.1 * np.linalg.inv(np.eye(n) - 0.9 * H)
        else:
            T = scipy.linalg.expm(-5.0 * (np.eye(n) - H))
        del H
        T = _dense_column_top_k(T, K)
        Z = Xt.copy()
        for _ in range(N_ITER):
            Z = np.where(missing, T @ Z, Xt)
        return rows, Z[rows]
    kernel, form = method.split("_")[-2:]
    H = transition_matrix(cointeraction_graph(Y, K - 1)).toarray()
    T = (0.1 * np.linalg.inv(np.eye(n) - 0.9 * H) if kernel == "ppr"
         else scipy.linalg.expm(-5.0 * (np.eye(n) - H)))
    del H
    if form == "C":  # exact rows, top K - 1 others, row-normalised
        S = T[rows]
        S[np.arange(rows.size), rows] = 0.0
        top = np.argsort(-S, axis=1, kind="stable")[:, :K - 1]
        vals = np.take_along_axis(S, top, axis=1)
        W = np.zeros((n, n))
        W[rows[:, None], top] = vals / np.maximum(vals.sum(axis=1, keepdims=True), 1e-300)
        T = W
    Z = Xt.copy()
    for _ in range(N_ITER):
        Z = np.where(missing, T @ Z, Xt)
    return rows, Z[rows]


def _dense_column_top_k(T, k, tie_tol=1e-9):
    """The official column top-k, ties within ``tie_tol`` of the cut to the smaller row index
    (skmm's rule; the official argsort is unstable), then column normalisation."""
    kth = -np.partition(-T, k - 1, axis=0)[k - 1]
    definite = T > kth + tie_tol
    tie = np.abs(T - kth) <= tie_tol
    room = k - definite.sum(axis=0)
    keep = definite | (tie & (np.cumsum(tie, axis=0) <= room))
    T = np.where(keep, T, 0.0)
    norm = T.sum(axis=0)
    norm[norm <= 0] = 1.0
    return T / norm


def worker(method, cdir, gdir):
    import scipy.sparse as sp
    import torch

    from skmm.diffusion import neighbour_mean

    torch.set_num_threads(max(int(os.environ.get("SKMM_BENCH_THREADS", "0")) or
                              torch.get_num_threads(), 1))
    X = np.load(Path(cdir) / "X.npy")
    Y = sp.load_npz(Path(gdir) / "Y.npz").tocsr()
    # Warm-up: the method itself on a tiny problem (imports, thread pools, and the numba
    # kernels' compilation, a few seconds once per process that a long-running user pays once).
    rng = np.random.default_rng(0)
    Yt = sp.csr_matrix((rng.random((60, 30)) < 0.2).astype(np.float64))
    Xt = np.where(rng.random((60, 1)) < 0.3, np.nan, rng.random((60, 4)))
    if method.startswith("dense_"):
        neighbour_mean(sp.csr_matrix(Yt @ Yt.T), Xt)
    else:
        run_method(method, Xt, Yt)
    inputs_mb = _peak_mb()
    tic = time.perf_counter()
    if method.startswith("dense_"):
        rows, values = dense_method(method, X, Y)
    else:
        rows, values = run_method(method, X, Y)
    seconds = time.perf_counter() - tic
    np.save(Path(cdir) / f"out_{method}.npy", np.asarray(values, np.float64))
    return {"seconds": seconds, "peak_mb": _peak_mb(), "inputs_mb": inputs_mb,
            "n_rows": int(len(rows))}


# ------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------

def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        job = json.loads(sys.argv[2])
        print(RESULT_TAG + json.dumps(worker(job["method"], job["cdir"], job["gdir"])),
              flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=data_root, default=data_root(),
                        help="real datasets (default: $SKMM_DATA, else ../shared/data)")
    parser.add_argument("--quick", action="store_true",
                        help="Baby at 30%% and a 100k-item power-law graph")
    parser.add_argument("--cases", nargs="*", default=None, help="of: " +
                        ", ".join(CASES).replace("%", "%%"))
    parser.add_argument("--methods", nargs="*", default=None,
                        help="of: " + " ".join(SMALL_METHODS))
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds per (case, method) run (default 1800)")
    parser.add_argument("--cache-dir", default=None,
                        help="where inputs and outputs go (default: a temporary folder)")
    args = parser.parse_args()
    names = args.cases or (QUICK if args.quick else FULL)
    unknown = [c for c in names if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}")
    with cache_folder(args.cache_dir, "skmm-bench-gi-") as (cache, temporary):
        print(f"Graph imputers: top_k={K} (skmm graphs: {K - 1} other items), {N_ITER} layers, "
              f"alpha=0.1, t=5.0, skmm defaults otherwise; {os.cpu_count()} CPUs", flush=True)
        table = []
        for name in names:
            case = CASES[name]
            print(f"\n== {name}", flush=True)
            cdir = prepare(case, args.data_root, cache)
            if cdir is None:
                print("  data not found, skipped")
                continue
            gdir = cache / case[1]
            n_items = np.load(cdir / "X.npy", mmap_mode="r").shape[0]
            methods = args.methods or (SMALL_METHODS if n_items <= 20_000 else LARGE_METHODS)
            results = {}
            for method in methods:
                if n_items > MAX_ITEMS.get(method, np.inf):
                    continue
                res = run_in_fresh_process(__file__, {"method": method, "cdir": str(cdir),
                                                      "gdir": str(gdir)}, timeout=args.timeout)
                results[method] = res
                shown = (f"{res['seconds']:.2f} s, peak {res['peak_mb']:,.0f} MB"
                         if "error" not in res else res["error"])
                print(f"  {method:18s} {shown}", flush=True)
            base = results.get("featprop", {})
            for method, res in results.items():
                ref = REFERENCE.get(method)
                diff = None
                if ref in results and "error" not in res and "error" not in results[ref]:
                    diff = max_abs_diff(cdir / f"out_{method}.npy", cdir / f"out_{ref}.npy")
                row = {"case": name, "method": method, "reference": ref if diff is not None
                       else None, "max_abs_diff": diff, **res}
                if "error" not in res and "seconds" in base:
                    row["time_x_featprop"] = res["seconds"] / base["seconds"]
                    row["mem_x_featprop"] = res["peak_mb"] / base["peak_mb"]
                table.append(row)
        print(f"\n{'case':24s} {'method':18s} {'time s':>9s} {'peak MB':>9s} {'x FP time':>9s} "
              f"{'x FP mem':>9s}  max|diff| vs reference")
        for r in table:
            if "error" in r:
                print(f"{r['case']:24s} {r['method']:18s} {r['error']}")
                continue
            diff = ("" if r["max_abs_diff"] is None
                    else f"{r['max_abs_diff']:.2e} vs {r['reference']}")
            tx = r.get("time_x_featprop")
            mx = r.get("mem_x_featprop")
            print(f"{r['case']:24s} {r['method']:18s} {r['seconds']:9.2f} {r['peak_mb']:9,.0f} "
                  f"{'' if tx is None else format(tx, '9.2f'):>9s} "
                  f"{'' if mx is None else format(mx, '9.2f'):>9s}  {diff}")


if __name__ == "__main__":
    main()
