"""MILK against the DUIF-like content baseline on Last.fm 2K, the paper's new-item protocol.

Per seed: 20% of the items become new items (10% validation, 10% test) and lose all their
interactions from training (:func:`skmm.datasets.new_item_split`). Models are fitted on the
training + validation items with ``validation_fraction`` = the validation share, so early
stopping ranks as many held-out items as the protocol's validation split (drawn by the
estimator from the same items). Test: each user ranks the test items only; Recall@20 and
NDCG@20 are averaged over users with a test item.

* FTMT: all modalities in training; 50% of the test items each lose one random modality.
* MTMT: additionally 30% of the training (and validation) items each lose one modality.

Models (text all-MiniLM-L6-v2 384-d + VGGish 128-d):

* ``milk``: MILKRecommender defaults (paper's Clothing settings: alpha 0.1, invariance 50,
  alignment 0.05; per-epoch validation, patience 3);
* ``milk-p30``: the same with patience 30 epochs, validated every epoch;
* ``milk-paper``: the paper's schedule, validation every 10 epochs and patience 3 validations
  (``validation_interval=10``; what ``python -m skmm reproduce milk`` uses for every model);
* ``milk-paper-1000``: the same with the paper's budget of up to 1000 epochs (skmm's default
  ``max_epochs`` is 200);
* ``milk-inv0``: MILK without the variance penalty (environments and alignment kept);
* ``milk-inv0.5``, ``milk-inv5``: MILK with a lighter variance penalty;
* ``duif``: ``environments="none", invariance_weight=0, alignment_weight=0``.

Missing modalities are filled with the training mean (``fill="mean"``, the paper) and, for
``milk`` and ``duif``, with zeros. ``complete`` columns score the same FTMT models on the test
items with every modality present.

    python benchmarks/milk_lastfm.py [--seeds 5] [--first-seed 0] [--data-root PATH]
        [--out milk_lastfm.csv] [--threads N] [--models NAME ...] [--settings FTMT MTMT]
"""

import argparse
import csv
import sys
import time

import numpy as np

from _machine import data_root

MODELS = {
    "milk": {},
    "milk-p30": {"patience": 30},
    "milk-paper": {"validation_interval": 10, "patience": 3},
    "milk-paper-1000": {"validation_interval": 10, "patience": 3, "max_epochs": 1000},
    "milk-inv0": {"invariance_weight": 0.0},
    "milk-inv0.5": {"invariance_weight": 0.5},
    "milk-inv5": {"invariance_weight": 5.0},
    "duif": {"environments": "none", "invariance_weight": 0.0, "alignment_weight": 0.0},
}
ZERO_FILL = ("milk", "duif")


def run(root, seeds, out, models=tuple(MODELS), settings=("FTMT", "MTMT"), first_seed=0):
    from skmm import MILKRecommender
    from skmm.datasets import load_mmrec, new_item_split, simulate_missing
    from skmm.metrics import ndcg_at_k, recall_at_k

    data = load_mmrec(root / "lastfm2k", ["all-MiniLM-L6-v2", "vggish"])
    Y = (data.Y_train + data.Y_val + data.Y_test).tocsr()
    Y.data[:] = 1.0
    rows = []
    for seed in range(first_seed, first_seed + seeds):
        train, val, test = new_item_split(Y, test_size=0.1, val_size=0.1, random_state=seed)
        fit_items = np.union1d(train, val)
        users = Y[fit_items].getnnz(axis=0) > 0
        Y_fit, Y_test = Y[fit_items][:, users], Y[test][:, users]
        X_test, _ = simulate_missing(data.X[test], data.modalities, 0.5, mode="one",
                                     random_state=seed)
        X_train = {"FTMT": data.X[fit_items],
                   "MTMT": simulate_missing(data.X[fit_items], data.modalities, 0.3,
                                            mode="one", random_state=1000 + seed)[0]}
        for setting, X_fit in X_train.items():
            if setting not in settings:
                continue
            for name in models:
                params = MODELS[name]
                for fill in ("mean", "constant") if name in ZERO_FILL else ("mean",):
                    tic = time.perf_counter()
                    model = MILKRecommender(
                        data.modalities, fill=fill, random_state=seed,
                        validation_fraction=val.size / fit_items.size, **params)
                    model.fit(X_fit, Y_fit)
                    scores = model.decision_function(X_test)
                    full = model.decision_function(data.X[test])
                    row = {
                        "setting": setting, "model": name, "fill": fill, "seed": seed,
                        "recall@20": recall_at_k(Y_test, scores, k=20),
                        "ndcg@20": ndcg_at_k(Y_test, scores, k=20),
                        "complete recall@20": recall_at_k(Y_test, full, k=20),
                        "complete ndcg@20": ndcg_at_k(Y_test, full, k=20),
                        "epochs": model.n_epochs_, "best epoch": model.best_epoch_,
                        "seconds": round(time.perf_counter() - tic, 1),
                    }
                    rows.append(row)
                    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in row.items()), flush=True)
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def summarize(rows):
    metrics = ("recall@20", "ndcg@20", "complete ndcg@20", "epochs")
    groups = {}
    for r in rows:
        groups.setdefault((r["setting"], r["model"], r["fill"]), []).append(r)
    print(f"\n{'setting':8} {'model':10} {'fill':6} "
          + " ".join(f"{m:>20}" for m in metrics) + "  seeds")
    for (setting, model, fill), members in groups.items():
        cells = []
        for m in metrics:
            v = np.array([r[m] for r in members], dtype=float)
            cells.append(f"{v.mean():.4f} ± {v.std():.4f}" if m != "epochs"
                         else f"{v.mean():.1f} ± {v.std():.1f}")
        seeds = ",".join(str(r["seed"]) for r in members)
        print(f"{setting:8} {model:10} {fill:6} " + " ".join(f"{c:>20}" for c in cells)
              + f"  {seeds}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + seeds - 1 (to split a run)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="milk_lastfm.csv")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads; 1 avoids slowdowns on a busy machine")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--settings", nargs="+", choices=["FTMT", "MTMT"],
                        default=["FTMT", "MTMT"])
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    summarize(run(data_root(args.data_root), args.seeds, args.out, args.models, args.settings,
                  args.first_seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
