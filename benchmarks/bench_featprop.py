"""FeatProp speed and memory: skmm against the paper's dense recipe and PyG, side by side.

For every case this prints graph-build and propagation wall time and peak memory of

* ``skmm``: ``FeatPropImputer(n_neighbors=20, symmetric=True, fallback="constant").fit_transform``
  (graph build included), plus ``skmm graph`` = :func:`skmm.cointeraction_graph` alone;
* ``dense``: the paper's recipe as the official code runs it (co-interaction counts made dense,
  ``torch.topk`` on the dense ``n_items x n_items`` matrix, every row re-propagated each step),
  with its defects corrected densely (self-loops excluded before the top-k, zero-count fillers
  dropped, ties to the smaller index) so that its graph is ours; skipped where the dense
  matrix does not fit in memory;
* ``pyg``: ``torch_geometric.transforms.FeaturePropagation`` on skmm's graph and the same mask.
  PyG is given the graph for free: its build time is not counted.

and the largest absolute difference of each output from skmm's. Cases: the Amazon Baby training
graph (``amazon_baby_graph/baby.inter``, ``x_label == 0``) with 4096-d and 384-d random features
at 30% and 70% missing (whole rows, the FeatProp protocol), 40 steps; a synthetic power-law graph
(1M items, 500k users, 10M interactions) with 384-d features at 30% missing, 3 steps.

How it measures (Linux):

* Each (case, method) runs in a fresh Python process, so that peak memory is that method's:
  ``peak MB`` is the process's peak resident set size (``VmHWM``), inputs and libraries
  included; ``inputs MB`` is that peak just before the method starts (inputs loaded, a tiny
  warm-up run done), and ``build peak`` the peak at the end of the graph build.
* Times are wall-clock seconds of one run (``--repeat N``: the best of N, for every method).
  ``build s`` for skmm is the time inside ``cointeraction_graph`` during ``fit_transform``;
  ``propagate s`` is the rest of ``fit_transform`` (validation, normalisation, propagation,
  fallback, bookkeeping).
* Memory bandwidth: a 1 GiB float32 array copy (numpy, one thread; torch, all threads), counting
  the bytes read plus the bytes written. The propagation loop's rate counts only its compulsory
  traffic per step as written (read ``z`` and the inflow term, write the next ``z``: three
  ``n_missing_rows x n_features`` arrays, plus the ``P_RR`` matrix), divided by the time of one
  step (from timing ``propagate_features`` with ``L`` steps and with 1 step). skmm keeps column
  blocks in cache across steps, so this can exceed the copy bandwidth: it is what the loop
  delivers against what a memory-bound loop would need.
* What the loop actually moves: every stored entry of ``P_RR`` reads one neighbour's row of
  ``z`` (``nnz(P_RR) x n_features`` values per step, from cache when the column block fits,
  else from memory). ``gathered GB/s`` is that volume per second; ``ceiling`` is the share of
  copy bandwidth the compulsory count would reach if those rows arrived at exactly the copy
  bandwidth (compulsory bytes / gathered bytes): a loop whose gathers run at copy speed sits
  at its ceiling, and only gathers served faster than memory (from cache) rise above it.

    python benchmarks/bench_featprop.py [--data-root PATH] [--quick] [--repeat N]
        [--cases NAME ...] [--methods skmm-graph skmm dense pyg] [--cache-dir DIR]
        [--device cpu] [--json PATH]

``--device cuda``: the ``skmm`` method's imputer and its ``propagate_features`` timings run on
that device (the graph build stays on the CPU; the other methods are unchanged, and the copy
bandwidth is still the host's). ``--json PATH`` also writes the summary rows to ``PATH``.

Other engineers' processes on the same machine distort timings: run it on a quiet machine.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from _machine import (RESULT_TAG, cache_folder, cpu_busy_s, data_root, peak_rss_mb,
                      run_in_fresh_process)

K = 20  # n_neighbors, the paper's default

# Cases: (name, graph, n_features, missing rate, propagation steps)
FULL_CASES = [
    ("baby-4096d-30%", "baby", 4096, 0.3, 40),
    ("baby-4096d-70%", "baby", 4096, 0.7, 40),
    ("baby-384d-30%", "baby", 384, 0.3, 40),
    ("baby-384d-70%", "baby", 384, 0.7, 40),
    ("powerlaw-1M-384d-30%", "powerlaw-1M", 384, 0.3, 3),
]
QUICK_CASES = [
    ("baby-384d-30%", "baby", 384, 0.3, 40),
    ("powerlaw-100k-384d-30%", "powerlaw-100k", 384, 0.3, 3),
]
POWERLAW = {  # n_items, n_users, n_interactions
    "powerlaw-1M": (1_000_000, 500_000, 10_000_000),
    "powerlaw-100k": (100_000, 50_000, 1_000_000),
}


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------

def powerlaw_interactions(n_items, n_users, n_interactions, item_exponent=0.7,
                          user_exponent=0.5, seed=0):
    """A synthetic (n_items, n_users) binary CSR matrix with Zipf-like popularity.

    The item of popularity rank ``r`` is drawn with probability proportional to
    ``r ** -item_exponent`` (users likewise); ranks are given to random ids. (item, user) pairs
    are drawn independently, duplicates dropped, and topped up until ``n_interactions``
    distinct pairs exist. The default exponents give item and user degree Gini coefficients of
    about 0.58 and 0.37, close to the Amazon Baby graph's 0.56 and 0.33. Vectorised: one
    multinomial per side and a sort per round, no Python loop over interactions.
    """
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    item_ids = rng.permutation(n_items).astype(np.int64)
    user_ids = rng.permutation(n_users).astype(np.int64)
    p_item = np.arange(1, n_items + 1, dtype=np.float64) ** -item_exponent
    p_user = np.arange(1, n_users + 1, dtype=np.float64) ** -user_exponent
    p_item /= p_item.sum()
    p_user /= p_user.sum()
    keys = np.zeros(0, np.int64)
    while keys.size < n_interactions:
        m = int((n_interactions - keys.size) * 1.05) + 1000
        items = np.repeat(item_ids, rng.multinomial(m, p_item))
        users = np.repeat(user_ids, rng.multinomial(m, p_user))
        rng.shuffle(users)  # independent pairing
        keys = np.union1d(keys, items * n_users + users)
    if keys.size > n_interactions:
        keys = np.sort(rng.choice(keys, n_interactions, replace=False))
    items, users = np.divmod(keys, n_users)
    return sp.csr_matrix((np.ones(keys.size, np.float32), (items, users)),
                         shape=(n_items, n_users))


def _gini(x):
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = x.size
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum())) if x.sum() else 0.0


def graph_stats(Y):
    item_deg = np.diff(Y.indptr)
    user_deg = np.bincount(Y.indices, minlength=Y.shape[1]).astype(np.int64)
    return (f"{Y.shape[0]:,} items, {Y.shape[1]:,} users, {Y.nnz:,} interactions; degree Gini "
            f"items {_gini(item_deg):.2f} / users {_gini(user_deg):.2f}; max degree items "
            f"{item_deg.max():,} / users {user_deg.max():,}; co-interaction products "
            f"{int((user_deg ** 2).sum()):,}")


def prepare(case, data_root, cache):
    """Write ``Y.npz`` and ``X.npy`` (features with NaN rows) for a case; None if no data."""
    import scipy.sparse as sp

    from skmm.datasets import load_mmrec, simulate_missing

    name, graph, n_features, rate, _ = case
    gdir = cache / graph
    gdir.mkdir(parents=True, exist_ok=True)
    y_path = gdir / "Y.npz"
    if not y_path.exists():
        if graph == "baby":
            folder = Path(data_root) / "amazon_baby_graph"
            if not (folder / "baby.inter").is_file():
                return None
            Y = load_mmrec(folder, []).Y_train
        else:
            tic = time.perf_counter()
            Y = powerlaw_interactions(*POWERLAW[graph])
            print(f"  generated {graph} in {time.perf_counter() - tic:.1f} s", flush=True)
        sp.save_npz(y_path, Y.tocsr(), compressed=False)
        print(f"  {graph}: {graph_stats(Y.tocsr())}", flush=True)
    cdir = cache / name
    cdir.mkdir(exist_ok=True)
    x_path = cdir / "X.npy"
    if not x_path.exists():
        n_items = sp.load_npz(y_path).shape[0]
        X = np.random.default_rng(0).standard_normal((n_items, n_features), dtype=np.float32)
        X_miss, _ = simulate_missing(X, [n_features], rate, mode="all", random_state=0)
        del X
        np.save(x_path, X_miss.astype(np.float32, copy=False))
    return cdir


# ------------------------------------------------------------------------------------------
# Workers: one (case, method) per fresh process
# ------------------------------------------------------------------------------------------

_peak_mb = peak_rss_mb  # the name the workers below (and bench_graph_imputers) use


def _tiny_problem(n_features):
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    Y = sp.random(200, 100, density=0.05, random_state=0, format="csr", dtype=np.float32)
    X = rng.standard_normal((200, n_features), dtype=np.float32)
    X[rng.random(200) < 0.3] = np.nan
    return X, Y


def worker(method, cdir, graph_dir, n_iter, repeat, device="cpu"):
    import scipy.sparse as sp
    import torch

    cdir, graph_dir = Path(cdir), Path(graph_dir)
    res = {}
    if method == "skmm-graph":
        from skmm.graph import cointeraction_graph

        Y = sp.load_npz(graph_dir / "Y.npz").tocsr()
        cointeraction_graph(_tiny_problem(4)[1], K, symmetric=True)  # warm-up
        res["inputs_mb"] = _peak_mb()
        times = []
        for _ in range(repeat):
            tic = time.perf_counter()
            A = cointeraction_graph(Y, K, symmetric=True)
            times.append(time.perf_counter() - tic)
            del A
        res.update(build_s=min(times), prop_s=0.0, total_s=min(times), peak_mb=_peak_mb())
        return res

    X = np.load(cdir / "X.npy")
    n_features = X.shape[1]
    if method == "skmm":
        import skmm.impute._featprop as fp
        from skmm import FeatPropImputer
        from skmm._propagator import _split_rows
        from skmm.graph import normalize_adjacency
        from skmm.propagation import propagate_features

        Y = sp.load_npz(graph_dir / "Y.npz").tocsr()
        make = lambda: FeatPropImputer(n_neighbors=K, n_iter=n_iter, symmetric=True,  # noqa
                                       fallback="constant", device=device)
        make().fit_transform(*_tiny_problem(n_features))  # warm-up
        res["inputs_mb"] = _peak_mb()
        build = {}
        original = fp.cointeraction_graph

        def timed_graph(*args, **kwargs):
            tic = time.perf_counter()
            A = original(*args, **kwargs)
            build["s"] = time.perf_counter() - tic
            build["peak_mb"] = _peak_mb()
            return A

        fp.cointeraction_graph = timed_graph
        best = None
        for _ in range(repeat):
            imp = make()
            tic = time.perf_counter()
            out = imp.fit_transform(X, Y)
            total = time.perf_counter() - tic
            if best is None or total < best[0]:
                best = (total, build["s"])
        fp.cointeraction_graph = original
        res.update(total_s=best[0], build_s=best[1], prop_s=best[0] - best[1],
                   peak_mb=_peak_mb(), build_peak_mb=build["peak_mb"])
        np.save(cdir / "out_skmm.npy", out)
        sp.save_npz(cdir / "graph.npz", imp.graph_, compressed=False)
        del out

        # The propagation proper, and its loop: seconds per step from L steps and 1 step (the
        # first step of fully missing rows is the inflow term itself, so 1 step has no loop).
        P = normalize_adjacency(imp.graph_)
        missing = np.isnan(X)
        rows = np.flatnonzero(missing.any(axis=1))
        nnz_rr = _split_rows(P, rows)[0].nnz

        def best_of(steps, n):
            times = []
            for _ in range(n):
                tic = time.perf_counter()
                propagate_features(P, X, missing, steps, device=device)
                times.append(time.perf_counter() - tic)
            return min(times)

        reps = 3 if rows.size * n_features < 50_000_000 else 2
        t_full, t_one = best_of(n_iter, reps), best_of(1, reps)
        per_step = (t_full - t_one) / max(n_iter - 1, 1)
        step_bytes = 3 * rows.size * n_features * 4 + nnz_rr * 8 + (rows.size + 1) * 4
        res.update(propagate_features_s=t_full, per_step_s=per_step, step_bytes=step_bytes,
                   gather_bytes=nnz_rr * n_features * 4, n_rows=int(rows.size),
                   nnz_rr=int(nnz_rr))
        return res

    A = sp.load_npz(cdir / "graph.npz").tocsr()  # skmm's graph
    missing = torch.from_numpy(np.isnan(X))
    if method == "pyg":
        import warnings

        import torch_geometric.transforms as T
        from torch_geometric.data import Data

        warnings.filterwarnings("ignore")

        def run_pyg(X, A, missing, steps):
            coo = A.tocoo()
            # Row i of our graph pulls from column j: in PyG a message from j to i.
            data = Data(x=torch.from_numpy(np.nan_to_num(X)),
                        edge_index=torch.from_numpy(np.vstack([coo.col, coo.row]).astype(np.int64)),
                        num_nodes=A.shape[0])
            tic = time.perf_counter()
            out = T.FeaturePropagation(missing, num_iterations=steps)(data).x
            return out, time.perf_counter() - tic

        Xt, Yt = _tiny_problem(n_features)
        from skmm.graph import cointeraction_graph

        run_pyg(Xt, cointeraction_graph(Yt, K, symmetric=True),
                torch.from_numpy(np.isnan(Xt)), 2)  # warm-up
        res["inputs_mb"] = _peak_mb()
        times = []
        for _ in range(repeat):
            out, seconds = run_pyg(X, A, missing, n_iter)
            times.append(seconds)
        res.update(build_s=None, prop_s=min(times), total_s=min(times), peak_mb=_peak_mb())
        np.save(cdir / "out_pyg.npy", out.numpy())
        return res

    if method == "dense":
        Y = sp.load_npz(graph_dir / "Y.npz").tocsr()
        Xt, Yt = _tiny_problem(n_features)
        dense_featprop(Xt, Yt, 2)  # warm-up
        res["inputs_mb"] = _peak_mb()
        best = None
        for _ in range(repeat):
            out, build_s, prop_s, build_peak = dense_featprop(X, Y, n_iter)
            if best is None or build_s + prop_s < best[0] + best[1]:
                best = (build_s, prop_s, build_peak)
        res.update(build_s=best[0], prop_s=best[1], total_s=best[0] + best[1],
                   peak_mb=_peak_mb(), build_peak_mb=best[2])
        np.save(cdir / "out_dense.npy", out.numpy())
        return res
    raise ValueError(method)


def dense_featprop(X, Y, n_iter):
    """The official code's recipe: dense counts, dense ``torch.topk``, all rows every step.

    As in sisinflab/Graph-Missing-Modalities (impute.py, method ``feat_prop``): the count matrix
    ``(Y Y^T).toarray()`` goes through ``torch.topk``, the kept edges weigh 1, ``D^-1/2 A D^-1/2``
    normalises, and each step multiplies every row and resets the observed rows. Its defects
    are corrected with dense operations so that the graph equals skmm's (``symmetric=True``):
    the diagonal is excluded before the top-k, ties at the cut go to the smaller index, and
    zero-count pairs are never edges.
    """
    import torch

    tic = time.perf_counter()
    C = torch.from_numpy((Y @ Y.T).toarray().astype(np.float32, copy=False))
    C.fill_diagonal_(-1.0)  # never a neighbour of itself
    kth = torch.topk(C, K, dim=1).values[:, -1:].clamp_(min=0)
    above = C > kth
    tied = (C == kth) & (C > 0)
    room = K - above.sum(dim=1, keepdim=True)
    keep = above | (tied & (torch.cumsum(tied, dim=1, dtype=torch.int32) <= room))
    del C, above, tied
    A = keep.to(torch.float32)
    del keep
    A = torch.maximum(A, A.T)  # the union of both directions (symmetric=True)
    deg = A.sum(dim=1)
    inv = deg.pow(-0.5)
    inv.masked_fill_(torch.isinf(inv), 0.0)
    P = (inv[:, None] * A * inv[None, :]).to_sparse_csr()
    del A
    build_s = time.perf_counter() - tic
    build_peak = _peak_mb()

    tic = time.perf_counter()
    missing_rows = np.isnan(X).any(axis=1)
    known = torch.from_numpy(np.flatnonzero(~missing_rows))
    x0 = torch.from_numpy(np.nan_to_num(X))
    x = x0.clone()
    for _ in range(n_iter):
        x = P @ x
        x[known] = x0[known]  # reset the observed rows
    return x, build_s, time.perf_counter() - tic, build_peak


def bandwidth_worker(n_bytes):
    import torch

    n = n_bytes // 4
    src = np.ones(n, np.float32)
    dst = np.zeros(n, np.float32)

    def best(fn, k=5):
        times = []
        for _ in range(k):
            tic = time.perf_counter()
            fn()
            times.append(time.perf_counter() - tic)
        return 2 * src.nbytes / min(times) / 1e9

    s, d = torch.from_numpy(src), torch.from_numpy(dst)
    return {"numpy_1thread_gbs": best(lambda: np.copyto(dst, src)),
            "torch_gbs": best(lambda: d.copy_(s)), "torch_threads": torch.get_num_threads()}


# ------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------

def wait_until_quiet(max_wait):
    """Wait (at most ``max_wait`` s) until other processes use under 10% of the CPUs for 4 s."""
    n_cpu, deadline, calm = os.cpu_count() or 1, time.monotonic() + max_wait, 0
    while time.monotonic() < deadline:
        before = cpu_busy_s()
        if before is None:
            return
        time.sleep(2)
        calm = calm + 1 if (cpu_busy_s() - before) / (2 * n_cpu) < 0.1 else 0
        if calm >= 2:
            return


def run_worker(args, timeout=3600, max_wait=0):
    """Run one job in a fresh process (see :func:`_machine.run_in_fresh_process`), after
    waiting up to ``max_wait`` s for a quiet machine."""
    if max_wait:
        wait_until_quiet(max_wait)
    return run_in_fresh_process(__file__, args, timeout=timeout)


def max_abs_diff(a_path, b_path, chunk=1 << 16):
    a, b = np.load(a_path, mmap_mode="r"), np.load(b_path, mmap_mode="r")
    if a.shape != b.shape:
        return float("inf")
    worst = 0.0
    for s in range(0, a.shape[0], chunk):
        d = np.abs(np.asarray(a[s:s + chunk], np.float64)
                   - np.asarray(b[s:s + chunk], np.float64))
        if np.isnan(d).any():
            return float("nan")
        worst = max(worst, float(d.max(initial=0.0)))
    return worst


def dense_fits(n_items):
    """The dense recipe holds a few n_items^2 float32/bool arrays at once (counts, masks)."""
    import psutil

    need = 14 * n_items ** 2  # float32 counts + bool masks + int32 cumsum + float32 adjacency
    return need < 0.7 * psutil.virtual_memory().available, need


def pyg_fits(n_items, n_features, nnz):
    import psutil

    need = 6 * n_items * n_features * 4 + 60 * nnz
    return need < 0.7 * psutil.virtual_memory().available, need


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        job = json.loads(sys.argv[2])
        if job["method"] == "bandwidth":
            out = bandwidth_worker(job["bytes"])
        else:
            out = worker(job["method"], job["cdir"], job["gdir"], job["n_iter"], job["repeat"],
                         job.get("device", "cpu"))
        print(RESULT_TAG + json.dumps(out), flush=True)
        return

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=data_root, default=data_root(),
                        help="real datasets (default: $SKMM_DATA, else ../shared/data)")
    parser.add_argument("--quick", action="store_true",
                        help="a small run: Baby 384-d at 30%% and a 100k-item power-law graph")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per method and case; the best is reported (default 1)")
    names = ", ".join(dict.fromkeys(c[0] for c in FULL_CASES + QUICK_CASES))
    parser.add_argument("--cases", nargs="*", default=None,
                        help="case names to run, of: " + names.replace("%", "%%"))
    parser.add_argument("--methods", nargs="*", default=["skmm-graph", "skmm", "dense", "pyg"],
                        help="of: skmm-graph skmm dense pyg (pyg needs skmm in the same run)")
    parser.add_argument("--wait-quiet", type=float, default=120, metavar="SECONDS",
                        help="before each run, wait up to this long for other processes to "
                             "leave the CPUs idle (default 120; 0: do not wait)")
    parser.add_argument("--cache-dir", default=None,
                        help="where inputs and outputs are written (default: a temporary "
                             "folder, removed at the end)")
    parser.add_argument("--device", default="cpu",
                        help="where the skmm method propagates (default cpu; e.g. cuda)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write the summary rows to this JSON file")
    args = parser.parse_args()

    import scipy.sparse as sp
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")

    cases = QUICK_CASES if args.quick else FULL_CASES
    if args.cases:
        known = {c[0]: c for c in FULL_CASES + QUICK_CASES}
        unknown = [name for name in args.cases if name not in known]
        if unknown:
            parser.error(f"unknown case(s) {unknown}; known: {', '.join(known)}")
        cases = [known[name] for name in dict.fromkeys(args.cases)]
    with cache_folder(args.cache_dir, "skmm-bench-") as (cache, temporary):

        print(f"FeatProp benchmark: k={K}, symmetric graph, fallback zeros, float32, "
              f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
              f"threads; skmm on {args.device}", flush=True)
        bw = run_worker({"method": "bandwidth", "bytes": (256 if args.quick else 1024) << 20},
                        max_wait=args.wait_quiet)
        copy_gbs = max(bw["numpy_1thread_gbs"], bw["torch_gbs"])
        print(f"memory bandwidth (array copy, read + write bytes): numpy 1 thread "
              f"{bw['numpy_1thread_gbs']:.1f} GB/s, torch {bw['torch_threads']} threads "
              f"{bw['torch_gbs']:.1f} GB/s; reference {copy_gbs:.1f} GB/s", flush=True)

        rows, loops = [], []
        for case in cases:
            name, graph, n_features, rate, n_iter = case
            print(f"\n== {name}: {n_features}-d features, {rate:.0%} of the items missing, "
                  f"{n_iter} steps", flush=True)
            cdir = prepare(case, args.data_root, cache)
            if cdir is None:
                print(f"  skipped: no data under {args.data_root}", flush=True)
                continue
            gdir = cache / graph
            Y_shape = sp.load_npz(gdir / "Y.npz").shape
            results = {}
            for method in args.methods:
                if method == "dense":
                    ok, need = dense_fits(Y_shape[0])
                    if not ok:
                        print(f"  dense: skipped, the dense count matrix and masks need about "
                              f"{need / 1e9:,.0f} GB", flush=True)
                        continue
                if method == "pyg":
                    if "skmm" not in results or "error" in results["skmm"]:
                        print("  pyg: skipped, it needs skmm's graph", flush=True)
                        continue
                    nnz = sp.load_npz(cdir / "graph.npz").nnz
                    ok, need = pyg_fits(Y_shape[0], n_features, nnz)
                    if not ok:
                        print(f"  pyg: skipped, needs about {need / 1e9:.0f} GB", flush=True)
                        continue
                r = run_worker({"method": method, "cdir": str(cdir), "gdir": str(gdir),
                                "n_iter": n_iter, "repeat": args.repeat, "device": args.device},
                               max_wait=args.wait_quiet)
                results[method] = r
                if "error" in r:
                    print(f"  {method}: FAILED {r['error']}", flush=True)
                    continue
                out = cdir / f"out_{method}.npy"
                r["diff"] = (max_abs_diff(cdir / "out_skmm.npy", out)
                             if method in ("dense", "pyg") and out.exists() else None)
                print(f"  {method:<10} build {fmt(r['build_s'], '.2f')} s, propagate "
                      f"{r['prop_s']:.2f} s, total {r['total_s']:.2f} s, "
                      f"peak {r['peak_mb']:,.0f} MB"
                      f" (inputs {r['inputs_mb']:,.0f} MB)"
                      + (f", max |diff| {r['diff']:.2e}" if r["diff"] is not None else "")
                      + f"; other processes used {r.get('others_cpu', 0):.0%} of the CPUs",
                      flush=True)
                if method == "skmm":
                    step_gbs = r["step_bytes"] / r["per_step_s"] / 1e9 if r["per_step_s"] > 0 else 0
                    loops.append((name, r, step_gbs))
                    print(f"  skmm propagate_features alone {r['propagate_features_s']:.2f} s; "
                          f"loop {r['per_step_s'] * 1e3:.1f} ms/step over {r['n_rows']:,} rows, "
                          f"{step_gbs:.1f} GB/s of compulsory traffic = "
                          f"{step_gbs / copy_gbs:.0%} of copy bandwidth; neighbour rows gathered "
                          f"at {r['gather_bytes'] / r['per_step_s'] / 1e9:.1f} GB/s",
                          flush=True)
            ours = results.get("skmm")
            for method, r in results.items():
                if "error" in r:
                    continue
                speedup = (r["total_s"] / ours["total_s"]
                           if ours and "error" not in ours and method in ("dense", "pyg") else None)
                rows.append((name, method, r, speedup))
            if not temporary:
                continue
            for f in cdir.glob("out_*.npy"):  # keep the temporary folder small
                f.unlink()

        print("\n" + "=" * 119)
        print(f"{'case':<24}{'method':<12}{'build s':>9}{'propagate s':>13}{'total s':>9}"
              f"{'peak MB':>9}{'build peak MB':>15}{'max abs diff':>14}{'skmm speed-up':>15}"
              f"{'others':>8}")
        for name, method, r, speedup in rows:
            print(f"{name:<24}{method:<12}{fmt(r['build_s'], '.2f'):>9}{r['prop_s']:>13.2f}"
                  f"{r['total_s']:>9.2f}{r['peak_mb']:>9,.0f}"
                  f"{fmt(r.get('build_peak_mb'), ',.0f'):>15}{fmt(r.get('diff'), '.1e'):>14}"
                  f"{fmt(speedup, '.1f') + ('x' if speedup else ''):>15}"
                  f"{fmt(r.get('others_cpu'), '.0%'):>8}")
        print("-" * 119)
        print("build s: graph construction (pyg is handed skmm's graph: not counted). propagate s: "
              "the rest of the run. peak MB: the process's peak RSS, inputs included.\n"
              "speed-up: that method's total time / skmm's fit_transform total (graph build "
              "included).\nothers: share of the CPUs used by other processes during the run "
              "(timings are only comparable where it is near 0%).")
        print(f"\nMemory bandwidth, array copy: {copy_gbs:.1f} GB/s (numpy 1 thread "
              f"{bw['numpy_1thread_gbs']:.1f}, torch {bw['torch_threads']} threads "
              f"{bw['torch_gbs']:.1f}).")
        print(f"{'case':<24}{'rows iterated':>14}{'P_RR nnz':>12}{'ms/step':>9}{'MB/step':>9}"
              f"{'GB/s':>8}{'of copy bw':>12}{'gathered GB/s':>15}{'of copy bw':>12}{'ceiling':>9}")
        for name, r, gbs in loops:
            gathered = r["gather_bytes"] / r["per_step_s"] / 1e9 if r["per_step_s"] > 0 else 0
            print(f"{name:<24}{r['n_rows']:>14,}{r['nnz_rr']:>12,}{r['per_step_s'] * 1e3:>9.2f}"
                  f"{r['step_bytes'] / 1e6:>9.1f}{gbs:>8.1f}{gbs / copy_gbs:>12.0%}"
                  f"{gathered:>15.1f}{gathered / copy_gbs:>12.0%}"
                  f"{r['step_bytes'] / r['gather_bytes']:>9.0%}")
        print("GB/s: compulsory bytes of one step (read z and the inflow term, write the next z, "
              "read P_RR) / seconds per step.\ngathered GB/s: neighbour rows read per step "
              "(nnz(P_RR) x n_features x 4 bytes) / seconds per step. ceiling: compulsory / "
              "gathered bytes, the compulsory share at gathers of exactly copy speed.")
        if args.json:
            with open(args.json, "w") as fh:
                json.dump([{"case": name, "method": method, "device": args.device, **r,
                            "speedup": speedup} for name, method, r, speedup in rows], fh, indent=1)


if __name__ == "__main__":
    main()
