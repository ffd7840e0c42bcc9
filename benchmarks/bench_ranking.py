"""Full-ranking evaluation of a factor model in bounded memory: time and peak memory.

:func:`skmm.metrics.evaluate_factors` ranks every item for every user with a positive,
``user_factors @ item_factors.T`` in (user batch x item block) score blocks with a running
top-k merge, so memory does not grow with the number of items. This script prints, per case,
wall time, throughput and peak resident memory, on the CPU (``--device cuda``: the blocked
evaluation runs on that device, ``cuda MB`` its peak allocated CUDA memory; the
blocked-against-unblocked check stays on the CPU):

* ``small``: 10,000 users x 100,000 items; also runs the unblocked path (every user batch
  scored against all items at once, :func:`skmm.metrics._ranking.evaluate_topk`, the code path
  of the dense metric functions) and checks that both give the same top-k items for every user
  and the same per-user metric values, exactly;
* ``full``: 100,000 users x 1,000,000 items (6.4e12 multiply-adds);
* ``tiny``: 2,000 users x 20,000 items, a smoke test.

Side by side, in fresh processes of the same run: the machine's float32 GEMM rate
(``torch.mm`` at the block shape and at 4096 x 4096, best of 5: the physical limit of exact
scoring), and faiss ``IndexFlatIP`` exact search (faiss-cpu, in the bench extra; ``--no-faiss``
skips it) asked for ``k + 10`` items per user, from which each user's 10 training items are
dropped: what a faiss user does to exclude seen items, and the tool one would otherwise pick.
The top-20 lists of the first 10,000 users are compared with skmm's (same order; same set).

Data (seeded): 64-d float32 factors; items' factors standard normal; 10 random training items
per user (``exclude``) and 5 random test items per user (``Y_true``); each user's factors are
the sum of its test items' factors, so that the metrics are not all zero. k = 20; metrics
recall, NDCG, precision and hit rate.

How it measures (Linux): every case runs in a fresh Python process. ``inputs MB`` is the
resident memory once the inputs exist; ``peak MB`` the process's peak resident set size
(``VmHWM``) during the evaluation alone (the peak is reset with ``/proc/self/clear_refs``
before it starts; inputs and libraries included). ``others`` is the share of the machine's
CPU time that other processes used while the case ran: timings are only comparable where it
is near 0%.

    python benchmarks/bench_ranking.py [--threads N] [--cases tiny small full] [--no-faiss]
                                       [--user-batch-size N] [--item-batch-size N]
                                       [--device cpu] [--json PATH]

``--json PATH`` also writes the result rows (one dict per case) to ``PATH``.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np
from _machine import RESULT_TAG, run_in_fresh_process

K = 20
N_FACTORS = 64
N_TRAIN, N_TEST = 10, 5  # interactions per user
CASES = {"tiny": (2_000, 20_000), "small": (10_000, 100_000),  # n_users, n_items
         "full": (100_000, 1_000_000)}
METRICS = ("recall", "ndcg", "precision", "hit_rate")
N_COMPARED = 10_000  # users whose top-k lists are compared with faiss's


def _status_mb(field):
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in MB (None off Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return None


def _reset_peak():
    """Reset the peak RSS to the current RSS (Linux >= 4.0); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_mb():
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def make_data(n_users, n_items, seed=0):
    """Factors and (n_items, n_users) CSR train/test matrices, without float64 temporaries."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    V = rng.standard_normal((n_items, N_FACTORS), dtype=np.float32)

    def per_user(n):
        items = rng.integers(0, n_items, size=n_users * n)
        users = np.repeat(np.arange(n_users), n)
        Y = sp.csr_matrix((np.ones(items.size, np.float32), (items, users)),
                          shape=(n_items, n_users))
        Y.data[:] = 1.0  # duplicates were summed
        return Y

    Y_train, Y_test = per_user(N_TRAIN), per_user(N_TEST)
    U = np.asarray(Y_test.T @ V, dtype=np.float32)  # planted signal: sum of test items
    return U, V, Y_train, Y_test


def gemm_worker(job):
    """The machine's float32 GEMM rate (torch.mm, best of 5) at the shapes ranking uses."""
    import torch

    torch.set_num_threads(job["threads"])
    from skmm.ranking import _factor_batch_sizes

    n_users, n_items = CASES[job["case"]]
    ub, ib = _factor_batch_sizes(n_users, n_items, 4, job["user_batch_size"],
                                 job["item_batch_size"])
    rng = np.random.default_rng(0)
    rates = {}
    for name, (m, n) in {"block": (ub, ib), "4096x4096": (4096, 4096)}.items():
        A = torch.from_numpy(rng.standard_normal((m, N_FACTORS), dtype=np.float32))
        B = torch.from_numpy(rng.standard_normal((n, N_FACTORS), dtype=np.float32))
        out = torch.empty(m, n)
        torch.mm(A, B.T, out=out)
        best = np.inf
        for _ in range(5):
            tic = time.perf_counter()
            torch.mm(A, B.T, out=out)
            best = min(best, time.perf_counter() - tic)
        rates[name] = 2 * m * n * N_FACTORS / best / 1e9
    return {"gflops": rates, "shape": [ub, ib]}


def faiss_worker(job):
    """faiss ``IndexFlatIP`` exact search, asked for ``K + N_TRAIN`` items so that the top
    ``K`` after dropping each user's training items is complete (what a faiss user does to
    exclude seen items), then that filtering."""
    import faiss
    import torch

    torch.set_num_threads(job["threads"])
    faiss.omp_set_num_threads(job["threads"])
    n_users, n_items = CASES[job["case"]]
    U, V, Y_train, Y_test = make_data(n_users, n_items)
    res = {"inputs_mb": _status_mb("VmRSS")}
    index = faiss.IndexFlatIP(N_FACTORS)
    index.add(V[:1000])
    index.search(U[:10], K)  # warm-up
    index.reset()
    res["peak_reset"] = _reset_peak()
    tic = time.perf_counter()
    index.add(V)
    _, found = index.search(U, K + N_TRAIN)
    train = Y_train.T.tocsr()
    top = np.empty((n_users, K), np.int64)
    for u in range(n_users):  # drop seen items, keep the first K
        row = found[u]
        top[u] = row[~np.isin(row, train.indices[train.indptr[u]:train.indptr[u + 1]])][:K]
    res["faiss_s"] = time.perf_counter() - tic
    res["faiss_peak_mb"] = _peak_mb()
    np.save(job["out"], top)
    return res


def worker(job):
    if job.get("method") == "gemm":
        return gemm_worker(job)
    if job.get("method") == "faiss":
        return faiss_worker(job)
    import torch

    torch.set_num_threads(job["threads"])
    from skmm.metrics import evaluate_factors
    from skmm.metrics._ranking import evaluate_topk
    from skmm.ranking import _factor_batch_sizes, factor_topk_per_user, topk_per_user

    n_users, n_items = CASES[job["case"]]
    tic = time.perf_counter()
    U, V, Y_train, Y_test = make_data(n_users, n_items)
    res = {"data_s": time.perf_counter() - tic, "inputs_mb": _status_mb("VmRSS"),
           "threads": torch.get_num_threads(),
           "factor_mb": (U.nbytes + V.nbytes) / 1e6,
           "sparse_mb": sum(Y.data.nbytes + Y.indices.nbytes + Y.indptr.nbytes
                            for Y in (Y_train, Y_test)) / 1e6}
    ub, ib = _factor_batch_sizes(n_users, n_items, 4, job["user_batch_size"],
                                 job["item_batch_size"])
    res.update(user_batch_size=ub, item_batch_size=ib, block_mb=ub * ib * 4 / 1e6)
    device = job.get("device", "cpu")
    res["device"] = device
    # Warm-up on a tiny problem (thread pools, MKL kernels; the CUDA context), then reset the
    # peak.
    evaluate_factors(Y_test[:1000, :50], U[:50], V[:1000], k=K, exclude=Y_train[:1000, :50],
                     device=device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    res["peak_reset"] = _reset_peak()
    res["before_mb"] = _status_mb("VmRSS")

    tic = time.perf_counter()
    blocked = evaluate_factors(Y_test, U, V, k=K, exclude=Y_train, metrics=METRICS,
                               per_user=True, user_batch_size=job["user_batch_size"],
                               item_batch_size=job["item_batch_size"], device=device)
    res["blocked_s"] = time.perf_counter() - tic  # numpy results: the device has finished
    res["blocked_peak_mb"] = _peak_mb()
    if device.startswith("cuda"):
        res["cuda_mb"] = torch.cuda.max_memory_allocated() / 1e6
    res["n_evaluated"] = int(blocked["users"].size)
    if job.get("out"):  # the top-k lists of the first users, to compare with faiss's
        import scipy.sparse as sp

        users = np.arange(min(n_users, N_COMPARED))
        top = np.concatenate([t.numpy() for _, t, _ in factor_topk_per_user(
            torch.from_numpy(U), torch.from_numpy(V), users, K,
            exclude=sp.csr_matrix(Y_train.T), user_batch_size=job["user_batch_size"],
            item_batch_size=job["item_batch_size"])])
        np.save(job["out"], top)
    res["means"] = {m: float(blocked[m].mean()) for m in METRICS}

    if job["compare"]:
        Ut, Vt = torch.from_numpy(U), torch.from_numpy(V)

        def score_fn(users):
            return Ut[torch.as_tensor(users)] @ Vt.T

        _reset_peak()
        tic = time.perf_counter()
        unblocked = evaluate_topk(Y_test, score_fn, k=K, exclude=Y_train, metrics=METRICS)
        res["unblocked_s"] = time.perf_counter() - tic
        res["unblocked_peak_mb"] = _peak_mb()
        res["metrics_identical"] = bool(
            np.array_equal(blocked["users"], unblocked["users"])
            and all(np.array_equal(blocked[m], unblocked[m]) for m in METRICS))
        # Top-k items of every user, both ways.
        import scipy.sparse as sp

        users = np.arange(n_users)
        excl = sp.csr_matrix(Y_train.T)
        with torch.no_grad():
            a = np.concatenate([t.numpy() for _, t, _ in factor_topk_per_user(
                Ut, Vt, users, K, exclude=excl, user_batch_size=job["user_batch_size"],
                item_batch_size=job["item_batch_size"])])
            b = np.concatenate([t.numpy() for _, t, _ in topk_per_user(
                score_fn, users, n_items, K, exclude=excl)])
        res["topk_identical"] = bool(np.array_equal(a, b))
        res["topk_users_differing"] = int((a != b).any(axis=1).sum())
    return res


# ------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------

def run_worker(job, timeout):
    env = dict(os.environ, OMP_NUM_THREADS=str(job["threads"]),
               MKL_NUM_THREADS=str(job["threads"]))
    return run_in_fresh_process(__file__, job, timeout=timeout, env=env)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(RESULT_TAG + json.dumps(worker(json.loads(sys.argv[2]))), flush=True)
        return

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads (default: all cores, %(default)s here)")
    parser.add_argument("--cases", nargs="*", default=["small", "full"], choices=list(CASES))
    parser.add_argument("--user-batch-size", type=int, default=None)
    parser.add_argument("--item-batch-size", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=4 * 3600,
                        help="seconds allowed per case (default 4 h)")
    parser.add_argument("--device", default="cpu",
                        help="where the blocked evaluation runs (default cpu; e.g. cuda)")
    parser.add_argument("--no-faiss", action="store_true",
                        help="skip the faiss comparison (it needs faiss-cpu: the bench extra)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write the result rows to this JSON file")
    args = parser.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")

    print(f"Full-ranking benchmark: evaluate_factors, k={K}, {N_FACTORS}-d float32 factors, "
          f"{N_TRAIN} excluded (training) and {N_TEST} test items per user; "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} threads, "
          f"device {args.device}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    rows = []
    for case in args.cases:
        n_users, n_items = CASES[case]
        print(f"\n== {case}: {n_users:,} users x {n_items:,} items "
              f"({n_users * n_items * N_FACTORS:.1e} multiply-adds)", flush=True)
        job = {"case": case, "threads": args.threads, "compare": case == "small",
               "user_batch_size": args.user_batch_size, "item_batch_size": args.item_batch_size,
               "device": args.device}
        tmp = tempfile.mkdtemp(prefix="bench_ranking_")
        g = run_worker({**job, "method": "gemm"}, args.timeout)
        job["out"] = os.path.join(tmp, "skmm.npy")
        r = run_worker(job, args.timeout)
        if "error" in r:
            print(f"  FAILED: {r['error']}", flush=True)
            continue
        rows.append((case, r))
        r["gemm"] = g.get("gflops", {})
        if not args.no_faiss:
            f = run_worker({**job, "method": "faiss", "out": os.path.join(tmp, "faiss.npy")},
                           args.timeout)
            if "error" in f:
                print(f"  faiss FAILED: {f['error']}", flush=True)
            else:
                r["faiss"] = f
                a = np.load(job["out"])
                b = np.load(os.path.join(tmp, "faiss.npy"))[:len(a)]
                f["same_order"] = int((a == b).all(axis=1).sum())
                f["same_set"] = int((np.sort(a, 1) == np.sort(b, 1)).all(axis=1).sum())
        shutil.rmtree(tmp, ignore_errors=True)
        n_scores = r["n_evaluated"] * n_items
        r["ns_per_score"] = r["blocked_s"] / n_scores * 1e9
        r["gmacs"] = n_scores * N_FACTORS / r["blocked_s"] / 1e9
        print(f"  inputs: factors {r['factor_mb']:,.0f} MB, sparse train/test "
              f"{r['sparse_mb']:,.0f} MB, process RSS {r['inputs_mb']:,.0f} MB "
              f"(made in {r['data_s']:.1f} s)", flush=True)
        print(f"  blocks: {r['user_batch_size']:,} users x {r['item_batch_size']:,} items "
              f"({r['block_mb']:,.0f} MB of float32 scores)", flush=True)
        print(f"  blocked (evaluate_factors): {r['blocked_s']:,.1f} s for {r['n_evaluated']:,} "
              f"users, {r['ns_per_score']:.2f} ns/score, {r['gmacs']:.1f} GMAC/s; peak RSS "
              f"{r['blocked_peak_mb']:,.0f} MB (RSS before {r['before_mb']:,.0f} MB"
              + ("" if r["peak_reset"] else ", peak not reset: includes the data set-up")
              + ")" + (f"; CUDA peak {r['cuda_mb']:,.0f} MB" if "cuda_mb" in r else ""),
              flush=True)
        print("  means: " + ", ".join(f"{m}@{K} {v:.4f}" for m, v in r["means"].items()),
              flush=True)
        if "unblocked_s" in r:
            print(f"  unblocked (all items per user batch): {r['unblocked_s']:,.1f} s, peak RSS "
                  f"{r['unblocked_peak_mb']:,.0f} MB", flush=True)
            print(f"  blocked == unblocked: top-{K} items identical for every user: "
                  f"{r['topk_identical']} ({r['topk_users_differing']} users differ); per-user "
                  f"metrics identical: {r['metrics_identical']}", flush=True)
        flops = 2 * n_users * n_items * N_FACTORS
        gemm = ", ".join(f"{v:.1f} GFLOP/s at {k}" for k, v in r["gemm"].items())
        print(f"  machine GEMM rate (torch.mm, best of 5): {gemm}", flush=True)
        print(f"  skmm evaluate_factors (ranking + seen-item exclusion + 4 metrics): "
              f"{r['blocked_s']:,.1f} s, {flops / r['blocked_s'] / 1e9:.1f} GFLOP/s", flush=True)
        if "faiss" in r:
            f = r["faiss"]
            print(f"  faiss IndexFlatIP (add + search k={K + N_TRAIN} + drop seen items): "
                  f"{f['faiss_s']:,.1f} s, {flops / f['faiss_s'] / 1e9:.1f} GFLOP/s, peak RSS "
                  f"{f['faiss_peak_mb']:,.0f} MB; others used {f['others_cpu']:.0%} of the CPUs",
                  flush=True)
            n_cmp = min(n_users, N_COMPARED)
            print(f"  faiss time / skmm time: {f['faiss_s'] / r['blocked_s']:.2f}x; same top-{K} "
                  f"in the same order for {f['same_order']:,} of the first {n_cmp:,} users, "
                  f"same set for {f['same_set']:,} (faiss breaks exact ties arbitrarily)",
                  flush=True)
        print(f"  other processes used {r['others_cpu']:.0%} of the CPUs; load average "
              f"{r['load'][0]:.1f} -> {r['load'][1]:.1f}", flush=True)

    print("\n" + "=" * 100)
    print(f"{'case':<8}{'users':>9}{'items':>11}{'time s':>10}{'ns/score':>10}{'GMAC/s':>8}"
          f"{'inputs MB':>11}{'peak MB':>9}{'unblocked s':>13}{'identical':>11}")
    for case, r in rows:
        n_users, n_items = CASES[case]
        same = ("-" if "topk_identical" not in r
                else str(r["topk_identical"] and r["metrics_identical"]))
        unb = f"{r['unblocked_s']:.1f}" if "unblocked_s" in r else "-"
        print(f"{case:<8}{n_users:>9,}{n_items:>11,}{r['blocked_s']:>10.1f}"
              f"{r['ns_per_score']:>10.2f}{r['gmacs']:>8.1f}{r['inputs_mb']:>11,.0f}"
              f"{r['blocked_peak_mb']:>9,.0f}{unb:>13}{same:>11}")
    print("-" * 100)
    print("peak MB: peak RSS of the evaluation's process (inputs and libraries included). "
          "ns/score: wall time per (user, item) score, all threads together.")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{"case": case, **r} for case, r in rows], fh, indent=1)


if __name__ == "__main__":
    main()
