"""GraphImputerCV over the authors' grid against scoring each setting separately.

The grid is the authors' (CIKM 2024 / TKDE): ``n_neighbors`` 10, 20, ..., 100 and 1 to 20
steps, 200 settings of one method (``multihop`` by default). Scoring is the self-supervised
masked recovery of :func:`skmm.metrics.make_imputation_scorer` (10% of the observed rows
hidden, centred cosine) with ``R`` hidden copies. Data: the Amazon Baby training graph (7,050
items) with 384-d N(0, 1) features, 30% of the rows missing (``bench_featprop.prepare``'s
``baby-384d-30%`` case).

It prints, per ``R``:

* ``one fit``: ``GraphImputer(method, n_neighbors=k, n_iter=L).fit(X, Y)`` at the default-like
  setting (k = 20, L = 3) and at the grid's most expensive one (k = 100, L = 20), graph build
  included;
* ``CV``: ``GraphImputerCV(methods=(method,), n_neighbors=(10, ..., 100), n_iter=(1, ..., 20),
  n_repeats=R).fit(X, Y)``, the refit of the best setting included;
* ``separate``: the 200 settings each scored by ``make_imputation_scorer(n_repeats=R)`` on a
  ``GraphImputer`` (``R`` fits per setting, what ``GridSearchCV`` with that scorer runs, its
  refit not counted). By default measured on a sample (every k at 1 and at 20 steps: 20
  settings) and extrapolated linearly in the step count per k (a fit's cost is a graph build
  plus a cost per step); ``--all-fits`` measures all 200;
* ``propagations alone`` (``multihop``): ``R`` times one 20-step ``propagate_features`` per
  graph, the work no exact search avoids (what the CV adds to it is the neighbour list, the
  hidden copies, the scoring and the refit);
* the ratios, and the largest difference between the CV's scores and the measured separate
  scores (0: the sharing changes no score).

Times are the best of ``--repeat`` runs (2 by default) in this one process, after a warm-up
fit; set ``OMP_NUM_THREADS=1`` (and the benchmark sets torch to one thread) for figures
comparable across machines. Timings on a shared machine are noisy; the ratios hold better.

    OMP_NUM_THREADS=1 python benchmarks/bench_graph_imputer_cv.py [--data-root PATH]
        [--n-repeats R ...] [--method NAME] [--all-fits] [--repeat N] [--json FILE]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import data_root
from bench_featprop import prepare

CASE = ("baby-384d-30%", "baby", 384, 0.3, None)
KS = tuple(range(10, 101, 10))
STEPS = tuple(range(1, 21))


def best_time(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        tic = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - tic)
    return best, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--n-repeats", type=int, nargs="*", default=[1, 5],
                        help="hidden copies R (default: 1 and 5)")
    parser.add_argument("--method", default="multihop",
                        choices=["neighmean", "multihop", "ppr", "heat"])
    parser.add_argument("--all-fits", action="store_true",
                        help="score all 200 settings separately (default: a sample of 20)")
    parser.add_argument("--repeat", type=int, default=2, help="best of N runs (default 2)")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args()

    import scipy.sparse as sp
    import torch

    from skmm import GraphImputer, GraphImputerCV
    from skmm.metrics import make_imputation_scorer

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="skmm-bench-gicv-") as tmp:
        cdir = prepare(CASE, data_root(args.data_root), Path(tmp))
        if cdir is None:
            sys.exit("the Amazon Baby graph (amazon_baby_graph/baby.inter) was not found")
        X = np.load(cdir / "X.npy")
        Y = sp.load_npz(Path(tmp) / "baby" / "Y.npz").tocsr()
    method = args.method
    grid_k = KS
    grid_steps = (None,) if method == "neighmean" else STEPS
    n_settings = len(grid_k) * len(grid_steps)
    print(f"GraphImputerCV vs separate fits: Amazon Baby {X.shape[0]:,} items, {X.shape[1]}-d, "
          f"{np.isnan(X).any(axis=1).mean():.0%} rows missing; method={method!r}, "
          f"{n_settings} settings (k {grid_k[0]}..{grid_k[-1]}"
          + ("" if method == "neighmean" else f", steps {STEPS[0]}..{STEPS[-1]}")
          + f"); OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads 1",
          flush=True)

    def imputer(k, steps):
        extra = {} if steps is None else {"n_iter": steps}
        return GraphImputer(method=method, n_neighbors=k, device="cpu", **extra)

    imputer(20, 3).fit(X[:500], Y[:500])  # warm-up: imports, thread pools
    one = {}
    for k, steps in ((20, 3), (100, 20)):
        steps = None if method == "neighmean" else steps
        one[(k, steps)], _ = best_time(lambda: imputer(k, steps).fit(X, Y), max(args.repeat, 3))
        print(f"  one fit k={k}" + ("" if steps is None else f", {steps} steps") +
              f": {one[(k, steps)]:.3f} s", flush=True)

    if args.all_fits or method == "neighmean":
        sample = [(k, s) for k in grid_k for s in grid_steps]
    else:
        sample = [(k, s) for k in grid_k for s in (STEPS[0], STEPS[-1])]
    floor = None
    if method == "multihop":
        # What no exact search can avoid: one 20-step propagation per graph and hidden copy.
        from skmm.datasets import hide_observed
        from skmm.graph import cointeraction_graph, normalize_adjacency
        from skmm.propagation import propagate_features

        X_h, _ = hide_observed(X, fraction=0.1, random_state=np.random.RandomState(0))
        miss = np.isnan(X_h)
        floor = 0.0
        for k in grid_k:
            P = normalize_adjacency(cointeraction_graph(Y, k), "sym")
            floor += best_time(lambda: propagate_features(P, X_h, miss, STEPS[-1]),
                               args.repeat)[0]
        print(f"  propagation alone, {STEPS[-1]} steps on each of the {len(grid_k)} graphs "
              f"(one hidden copy): {floor:.3f} s", flush=True)
    figures = []
    for R in args.n_repeats:
        extra = {} if method == "neighmean" else {"n_iter": STEPS}
        cv_s, cv = best_time(lambda: GraphImputerCV(methods=(method,), n_neighbors=KS,
                                                    n_repeats=R, device="cpu", **extra
                                                    ).fit(X, Y), args.repeat)
        scorer = make_imputation_scorer(n_repeats=R)
        measured, diffs = {}, []
        index = {(p["n_neighbors"], p.get("n_iter")): i
                 for i, p in enumerate(cv.cv_results_["params"])}
        for k, s in sample:
            tic = time.perf_counter()
            score = scorer(imputer(k, s), X, Y)
            measured[(k, s)] = time.perf_counter() - tic
            diffs.append(abs(score - cv.cv_results_["mean_test_score"][index[(k, s)]]))
        if len(sample) == n_settings:
            separate, how = sum(measured.values()), f"measured, {len(sample)} settings"
        else:
            # Linear in the step count between the measured 1 and 20 steps, per k.
            separate = 0.0
            for k in grid_k:
                t1, t20 = measured[(k, STEPS[0])], measured[(k, STEPS[-1])]
                separate += sum(t1 + (t20 - t1) * (s - STEPS[0]) / (STEPS[-1] - STEPS[0])
                                for s in STEPS)
            how = f"extrapolated from {len(sample)} measured settings (every k at 1 and 20 steps)"
        big, small = one[(100, None if method == "neighmean" else 20)], one[
            (20, None if method == "neighmean" else 3)]
        row = {"n_repeats": R, "cv_s": cv_s, "separate_s": separate, "separate_how": how,
               "one_fit_k20_s": small, "one_fit_k100_s": big, "speed_up": separate / cv_s,
               "cv_x_one_fit_k100": cv_s / big, "cv_x_one_fit_k20": cv_s / small,
               "propagation_floor_s": None if floor is None else floor * R,
               "max_abs_score_diff": float(max(diffs)), "best_params": cv.best_params_,
               "best_score": cv.best_score_}
        figures.append(row)
        print(f"\n  R={R} hidden cop{'y' if R == 1 else 'ies'}:\n"
              f"    CV fit                 {cv_s:8.2f} s   (best {cv.best_params_}, "
              f"score {cv.best_score_:.4f})\n"
              f"    {n_settings} settings separately {separate:8.2f} s   ({n_settings * R} fits; "
              f"{how})\n"
              f"    speed-up               {separate / cv_s:8.1f} x\n"
              + ("" if floor is None else
                 f"    propagations alone     {floor * R:8.2f} s   (R x one {STEPS[-1]}-step "
                 f"propagation per graph: the floor of any exact search)\n") +
              f"    CV / one fit           {cv_s / big:8.1f} x (k=100, 20 steps)   "
              f"{cv_s / small:6.1f} x (k=20, 3 steps)\n"
              f"    max |CV score - separate score| over the measured settings: "
              f"{max(diffs):.1e}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
