"""MILKRecommender speed and memory: training throughput, epoch time, full-ranking time.

Cases:

* ``lastfm2k``: the real Last.fm 2K catalogue (1,425 items x 1,858 users, text 384-d + VGGish
  128-d), every interaction used for training, default hyper-parameters (batch 2048, dim 64);
  early stopping off so that every case runs the same number of epochs.
* ``synthetic``: 100,000 items x 50,000 users x 2,000,000 interactions (popularity-skewed items,
  every user with at least one), random 384-d + 128-d features.

For each case, in a fresh Python process (so that peak memory is that case's):

* ``pairs/s``: training interactions per second of training (each gets one fresh negative),
  from skorch's per-epoch timer (validation not included: there is none here);
* ``s/epoch``: mean epoch time;
* ``rank s``: :meth:`~skmm.MILKRecommender.recommend` of the top 20 over all items for every
  user (batched ``torch.topk``, never a full users x items matrix);
* ``score s``: :meth:`~skmm.MILKRecommender.score` (NDCG@20) against 10% of the interactions;
* ``valid s``: one epoch's cold-start validation (10% of items ranked among themselves), the
  cost early stopping adds to each epoch;
* ``peak MB``: the process's peak resident set size (VmHWM), inputs included, and
  ``inputs MB`` the peak before fitting.

    python benchmarks/bench_milk.py [--data-root PATH] [--epochs N] [--device DEV] [--threads N]
                                    [--quick] [--json PATH]

``--json PATH`` also writes the result rows (one dict per case) to ``PATH``.

Other processes on the same machine distort timings: run it on a quiet machine.
"""

import argparse
import json
import sys
import time

import numpy as np

from _machine import RESULT_TAG, data_root, peak_rss_mb, run_in_fresh_process


def _lastfm(root):
    from skmm.datasets import load_mmrec

    data = load_mmrec(root / "lastfm2k", ["all-MiniLM-L6-v2", "vggish"])
    Y = (data.Y_train + data.Y_val + data.Y_test).tocsr()
    Y.data[:] = 1.0
    return data.X, Y, data.modalities


def _synthetic(n_items, n_users, nnz, seed=0):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_items, 512), dtype=np.float32)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    users = np.concatenate([np.arange(n_users), rng.integers(n_users, size=nnz - n_users)])
    items = rng.choice(n_items, size=nnz, p=popularity)
    Y = sp.csr_matrix((np.ones(nnz, np.float32), (items, users)), shape=(n_items, n_users))
    Y.sum_duplicates()
    Y.data[:] = 1.0
    return X, Y, [384, 128]


def run_case(case, root, epochs, device, quick):
    import torch

    from skmm import MILKRecommender

    if case == "lastfm2k":
        X, Y, modalities = _lastfm(root)
    else:
        sizes = (10_000, 5_000, 200_000) if quick else (100_000, 50_000, 2_000_000)
        X, Y, modalities = _synthetic(*sizes)
    inputs_mb = peak_rss_mb()
    rng = np.random.default_rng(1)
    held = rng.random(Y.nnz) < 0.1
    coo = Y.tocoo()
    Y_held = type(Y)((coo.data[held], (coo.row[held], coo.col[held])), shape=Y.shape)

    model = MILKRecommender(modalities, max_epochs=epochs, validation_fraction=0.0,
                            device=device, random_state=0)
    tic = time.perf_counter()
    model.fit(X, Y)
    fit_s = time.perf_counter() - tic
    durations = np.array(model.history_[:, "dur"])
    fit_peak = peak_rss_mb()

    tic = time.perf_counter()
    top = model.recommend(X, k=20)
    rank_s = time.perf_counter() - tic
    assert top.shape == (Y.shape[1], 20)
    tic = time.perf_counter()
    ndcg = model.score(X, Y_held)
    score_s = time.perf_counter() - tic

    # One epoch's early-stopping check as fit runs it with validation_fraction=0.1: encode the
    # validation items, rank them for every user, NDCG@20.
    val = np.sort(rng.choice(Y.shape[0], size=Y.shape[0] // 10, replace=False))
    tic = time.perf_counter()
    model.evaluate(X[val], Y_held[val], metrics=("ndcg",), k=20)  # the same encoding + ranking
    valid_s = time.perf_counter() - tic

    return {
        "case": case, "items": Y.shape[0], "users": Y.shape[1], "pairs": int(model.n_pairs_),
        "epochs": len(durations), "pairs/s": model.n_pairs_ * len(durations) / durations.sum(),
        "s/epoch": float(durations.mean()), "fit s": fit_s, "rank s": rank_s,
        "score s": score_s, "valid s": valid_s, "ndcg@20": ndcg,
        "inputs MB": inputs_mb, "fit peak MB": fit_peak, "peak MB": peak_rss_mb(),
        "device": model.device_, "threads": torch.get_num_threads(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="a 10x smaller synthetic case")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write the result rows to this JSON file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:  # one case, in the fresh process run_in_fresh_process started
        job = json.loads(args.worker)
        if job["threads"]:
            import torch

            torch.set_num_threads(job["threads"])
        result = run_case(job["case"], data_root(job["root"]), job["epochs"], job["device"],
                          job["quick"])
        print(RESULT_TAG + json.dumps(result))
        return 0

    root = data_root(args.data_root)
    cases = ["synthetic"]
    if (root / "lastfm2k").is_dir():
        cases.insert(0, "lastfm2k")
    else:
        print(f"lastfm2k not found under {root}: skipped (set SKMM_DATA or --data-root)")
    rows = []
    for case in cases:
        job = {"case": case, "root": str(root), "epochs": args.epochs, "device": args.device,
               "quick": args.quick, "threads": args.threads}
        res = run_in_fresh_process(__file__, job, timeout=7200)
        if "error" in res:
            print(f"{case} failed: {res['error']}")
            continue
        rows.append(res)
    cols = ["case", "items", "users", "pairs", "epochs", "pairs/s", "s/epoch", "valid s",
            "rank s", "score s", "inputs MB", "fit peak MB", "peak MB", "device", "threads",
            "others_cpu"]
    print("  ".join(f"{c:>11}" for c in cols))
    for r in rows:
        cells = [f"{r[c]:.3g}" if isinstance(r.get(c), float) else str(r.get(c)) for c in cols]
        print("  ".join(f"{c:>11}" for c in cells))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
