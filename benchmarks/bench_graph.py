"""Item-item graph build: skmm against implicit's item-kNN, side by side, at equal output.

For every case and similarity this times, in fresh processes and with the same number of
threads (2 by default, the machine's cores):

* ``skmm``: ``skmm.graph.cointeraction_graph(Y, k, similarity=...)`` (directed, binary);
* ``implicit``: its item-kNN with the same similarity, ``K = k + 1`` (it keeps the item itself):
  ``ItemItemRecommender`` for ``count``, ``CosineRecommender`` for ``cosine``,
  ``TFIDFRecommender`` for ``tfidf``, ``BM25Recommender(K1=1.2, B=0.75)`` for ``bm25``;
* ``skmm-before`` (``--before PATH``, count only): the same call on another checkout of skmm,
  e.g. ``git worktree add /tmp/skmm-before <commit>``, for time and memory before a change.

**Equal output.** Each row's neighbour set of implicit (self and zero scores dropped, the best
``k`` by its score) is compared with skmm's. A row that differs is a *tie* row when every item
in the difference has the same similarity as skmm's ``k``-th neighbour (exactly for counts,
within 1e-9 relative for float similarities, which implicit accumulates in another order):
implicit breaks ties by heap order, skmm by the smaller index. Any other difference is reported
as a *mismatch*.

**Measurements.** Wall time of the build alone (inputs loaded, a tiny warm-up call done), the
median over ``--repeat`` fresh processes per method, run alternately (method by method inside
each repetition) so that the machine's load hits every method alike; ``ratio`` is implicit's
median over skmm's (above 1: skmm is faster). ``peak MB`` is the process's peak resident set
size (``VmHWM``: inputs and libraries included), ``inputs MB`` that peak before the build.
``others`` is the share of the machine's CPU time that other processes used during the run.

Cases: the Amazon Baby graph (training split of ``amazon_baby_graph/baby.inter``,
``x_label == 0``), and synthetic power-law catalogues (``bench_featprop.powerlaw_interactions``)
of 200k items / 100k users / 2M interactions and 1M items / 500k users / 10M interactions.

    python benchmarks/bench_graph.py [--data-root PATH] [--cases baby powerlaw-200k powerlaw-1M]
        [--similarities count cosine tfidf bm25] [--k 20] [--repeat 3] [--threads 2]
        [--before PATH] [--cache-dir DIR]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import RESULT_TAG, run_in_fresh_process
from _machine import peak_rss_mb as _peak_mb
from bench_featprop import graph_stats, powerlaw_interactions, wait_until_quiet

CASES = {  # name: None (real data) or (n_items, n_users, n_interactions)
    "baby": None,
    "powerlaw-200k": (200_000, 100_000, 2_000_000),
    "powerlaw-1M": (1_000_000, 500_000, 10_000_000),
}
IMPLICIT = {"count": "ItemItemRecommender", "cosine": "CosineRecommender",
            "tfidf": "TFIDFRecommender", "bm25": "BM25Recommender"}


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------

def prepare(case, data_root, cache):
    """Write the case's ``Y.npz`` (items x users, binary CSR) once; None if no data."""
    import scipy.sparse as sp

    path = cache / case / "Y.npz"
    if path.exists():
        return path
    if CASES[case] is None:
        from skmm.datasets import load_mmrec

        folder = Path(data_root) / "amazon_baby_graph"
        if not (folder / "baby.inter").is_file():
            return None
        Y = load_mmrec(folder, []).Y_train.tocsr()
    else:
        Y = powerlaw_interactions(*CASES[case]).tocsr()
    Y.data[:] = 1.0
    path.parent.mkdir(parents=True, exist_ok=True)
    sp.save_npz(path, Y, compressed=False)
    print(f"  {case}: {graph_stats(Y)}", flush=True)
    return path


# ------------------------------------------------------------------------------------------
# Workers: one (case, method, similarity) per fresh process
# ------------------------------------------------------------------------------------------

def worker(method, similarity, y_path, k, threads, out_path):
    import scipy.sparse as sp

    Y = sp.load_npz(y_path).tocsr().astype(np.float32)
    tiny = sp.random(300, 100, density=0.05, random_state=0, format="csr", dtype=np.float32)
    tiny.data[:] = 1.0
    if method in ("skmm", "skmm-before"):
        import torch

        from skmm.graph import cointeraction_graph

        torch.set_num_threads(threads)
        kwargs = {} if similarity == "count" else {"similarity": similarity}
        cointeraction_graph(tiny, k, **kwargs)  # warm-up
        inputs = _peak_mb()
        tic = time.perf_counter()
        A = cointeraction_graph(Y, k, **kwargs)
        seconds = time.perf_counter() - tic
    else:
        import implicit.nearest_neighbours as nn

        def build(X):
            cls = getattr(nn, IMPLICIT[similarity])
            extra = {"K1": 1.2, "B": 0.75} if similarity == "bm25" else {}
            model = cls(K=k + 1, num_threads=threads, **extra)
            model.fit(X, show_progress=False)  # implicit takes users x items
            return model.similarity

        build(tiny.T.tocsr().astype(np.float64))  # warm-up
        user_items = Y.T.tocsr().astype(np.float64)  # implicit's input, made outside the timing
        inputs = _peak_mb()
        tic = time.perf_counter()
        A = build(user_items)
        seconds = time.perf_counter() - tic
    res = {"seconds": seconds, "peak_mb": _peak_mb(), "inputs_mb": inputs}
    if out_path:
        sp.save_npz(out_path, sp.csr_matrix(A), compressed=False)
    return res


# ------------------------------------------------------------------------------------------
# Equal output
# ------------------------------------------------------------------------------------------

def _pair_similarity(Y, rows, cols, similarity):
    """skmm's formula for arbitrary pairs (float64), in batches (binary ``Y``)."""
    n_items = Y.shape[0]
    d = np.diff(Y.indptr).astype(np.float64)
    user_deg = np.bincount(Y.indices, minlength=Y.shape[1])
    idf = np.log(n_items) - np.log1p(user_deg)
    w = idf * idf
    q = Y @ w
    f = 2.2 / (1.2 * (0.25 + 0.75 * d / d.mean()) + 1.0)  # bm25, K1 = 1.2, B = 0.75
    out = np.empty(len(rows))
    for s in range(0, len(rows), 1 << 18):
        r, c = rows[s:s + (1 << 18)], cols[s:s + (1 << 18)]
        shared = Y[r].multiply(Y[c]).tocsr()
        cnt = np.asarray(shared.sum(axis=1)).ravel()
        S = shared @ w
        out[s:s + len(r)] = {
            "count": lambda: cnt,
            "cosine": lambda: cnt / np.sqrt(d[r] * d[c]),
            "tfidf": lambda: S / np.sqrt(q[r] * q[c]),
            "bm25": lambda: S * f[r] * f[c],
        }[similarity]()
    return out


def compare(Y, skmm_path, implicit_path, k, similarity):
    """Rows identical / differing only by ties / mismatched, skmm against implicit."""
    import scipy.sparse as sp

    n = Y.shape[0]
    A = sp.load_npz(skmm_path).tocsr()
    B = sp.load_npz(implicit_path).tocsr()
    B.setdiag(0)
    B.eliminate_zeros()
    # implicit's best k per row (K = k + 1 kept self unless k + 1 others tie with it).
    rows_b = np.repeat(np.arange(n), np.diff(B.indptr))
    order = np.lexsort((B.indices, -B.data, rows_b))
    rank = np.arange(len(order)) - np.repeat(B.indptr[:-1], np.diff(B.indptr))
    keep = order[rank < k]
    keys_b = np.sort(rows_b[keep] * n + B.indices[keep])
    rows_a = np.repeat(np.arange(n), np.diff(A.indptr))
    keys_a = rows_a * n + A.indices
    only_a = np.setdiff1d(keys_a, keys_b, assume_unique=True)
    only_b = np.setdiff1d(keys_b, keys_a, assume_unique=True)
    diff = np.concatenate([only_a, only_b])
    bad_rows = np.unique(diff // n)
    if not len(bad_rows):
        return {"rows": n, "identical": n, "ties": 0, "mismatch": 0}
    # skmm's k-th (smallest kept) similarity of each differing row: the value at the cut.
    a_rows, a_cols = np.divmod(keys_a[np.isin(rows_a, bad_rows)], n)
    a_val = _pair_similarity(Y, a_rows, a_cols, similarity)
    cut = np.full(n, np.inf)
    np.minimum.at(cut, a_rows, a_val)
    d_rows, d_cols = np.divmod(diff, n)
    d_val = _pair_similarity(Y, d_rows, d_cols, similarity)
    tol = 0 if similarity == "count" else 1e-9
    tied = np.abs(d_val - cut[d_rows]) <= tol * np.abs(cut[d_rows])
    sizes_equal = np.diff(A.indptr)[bad_rows] == np.bincount(keys_b // n, minlength=n)[bad_rows]
    row_ok = np.ones(n, bool)
    np.logical_and.at(row_ok, d_rows, tied)
    ties = int((row_ok[bad_rows] & sizes_equal).sum())
    return {"rows": n, "identical": n - len(bad_rows), "ties": ties,
            "mismatch": len(bad_rows) - ties}


# ------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------

def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        job = json.loads(sys.argv[2])
        print(RESULT_TAG + json.dumps(worker(**job)), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("SKMM_DATA", "../shared/data"))
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--similarities", nargs="*", default=list(IMPLICIT),
                        choices=list(IMPLICIT))
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--before", default=None,
                        help="a checkout of skmm before the change, timed on count")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--max-wait", type=float, default=60,
                        help="seconds to wait for a quiet machine before each case")
    args = parser.parse_args()
    if args.repeat < 1 or args.k < 1 or args.threads < 1:
        parser.error("--repeat, --k and --threads must be >= 1")
    import scipy.sparse as sp

    cache = Path(args.cache_dir or tempfile.mkdtemp(prefix="skmm_bench_graph_"))
    # skmm is imported from the checkout holding this script (or --before), not from wherever
    # the environment installed it.
    env = {"skmm": dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
           "implicit": None}
    if args.before:
        env["skmm-before"] = dict(os.environ, PYTHONPATH=str(Path(args.before).resolve()))
    print(f"bench_graph: k={args.k}, {args.threads} threads, {args.repeat} fresh processes per "
          f"method, {os.cpu_count()} CPUs; cache {cache}", flush=True)
    table = []
    for case in args.cases:
        y_path = prepare(case, args.data_root, cache)
        if y_path is None:
            print(f"{case}: no data under {args.data_root}, skipped", flush=True)
            continue
        wait_until_quiet(args.max_wait)
        methods = [(m, s) for s in args.similarities for m in ("skmm", "implicit")]
        if args.before:
            methods.insert(1, ("skmm-before", "count"))
        runs = {m: [] for m in methods}
        for rep in range(args.repeat):
            for method, sim in methods:
                out = cache / case / f"{method}-{sim}.npz" if rep == 0 else None
                job = {"method": method, "similarity": sim, "y_path": str(y_path),
                       "k": args.k, "threads": args.threads,
                       "out_path": str(out) if out else None}
                res = run_in_fresh_process(
                    __file__, job, timeout=3600, env=env[method])
                if "error" in res:
                    print(f"  {case} {method} {sim}: {res['error']}", flush=True)
                    continue
                runs[(method, sim)].append(res)
                print(f"  {case} rep {rep + 1} {method:<11} {sim:<7} {res['seconds']:8.3f} s  "
                      f"peak {res['peak_mb']:7,.0f} MB (build +"
                      f"{res['peak_mb'] - res['inputs_mb']:,.0f})  "
                      f"others {res.get('others_cpu', 0):.0%}",
                      flush=True)
        Y = sp.load_npz(y_path).tocsr()
        for sim in args.similarities:
            med = {m: float(np.median([r["seconds"] for r in runs[(m, s)]]))
                   for m, s in methods if s == sim and runs[(m, s)]}
            if "skmm" not in med or "implicit" not in med:
                continue
            check = compare(Y, cache / case / f"skmm-{sim}.npz",
                            cache / case / f"implicit-{sim}.npz", args.k, sim)
            for m, s in methods:
                if s != sim or not runs[(m, s)]:
                    continue
                rs = runs[(m, s)]
                table.append((case, sim, m, med[m], med["implicit"] / med[m],
                              max(r["peak_mb"] for r in rs), max(r["inputs_mb"] for r in rs),
                              float(np.median([r.get("others_cpu", 0.0) for r in rs])),
                              check if m == "skmm" else None))
    print()
    print(f"{'case':<14}{'similarity':<11}{'method':<12}{'median s':>9}{'ratio':>7}"
          f"{'peak MB':>9}{'inputs MB':>10}{'build MB':>9}{'others':>7}  equal output (rows: "
          f"identical / ties / mismatch)")
    for case, sim, m, sec, ratio, peak, inputs, others, check in table:
        eq = (f"{check['identical']:,} / {check['ties']:,} / {check['mismatch']:,} of "
              f"{check['rows']:,}") if check else ""
        print(f"{case:<14}{sim:<11}{m:<12}{sec:>9.3f}{ratio:>7.2f}{peak:>9,.0f}{inputs:>10,.0f}"
              f"{peak - inputs:>9,.0f}{others:>7.0%}  {eq}")
    print("ratio: implicit's median time over the method's (above 1: faster than implicit). "
          "build MB: peak minus inputs (what the build added). others: median share of the "
          "machine's CPU used by other processes during a run.")


if __name__ == "__main__":
    main()
