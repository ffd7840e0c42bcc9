"""skmm's VBPRRecommender side by side with Cornac's VBPR on Last.fm 2K.

Same split (the dataset's x_label train/test), same features, same hyper-parameters, same
evaluation (full ranking over all items, training interactions excluded, users with test
interactions). Prints Recall@20, NDCG@20 and training time per seed for both.

Cornac 3.0.1's VBPR adds ``feat_diff.mm(Bp)``, shape (batch, 1), to terms of shape (batch,),
so its loss is summed over a batch x batch matrix: every user-item difference of the batch is
paired with every other item's visual bias difference. ``cornac-fixed`` reruns it with that
one product squeezed to (batch,), which is the VBPR objective; it patches ``Tensor.mm`` for
products with a one-column right factor only while Cornac trains.

    python benchmarks/vbpr_vs_cornac.py [--data-root PATH] [--seeds 3] [--epochs 50]
"""

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np

from _machine import data_root
from skmm import VBPRRecommender
from skmm.datasets import load_mmrec
from skmm.metrics import ndcg_at_k, recall_at_k

HYPER = dict(k=10, k2=10, batch_size=100, learning_rate=0.005, lambda_w=0.01, lambda_b=0.01,
             lambda_e=0.0)


@contextlib.contextmanager
def _squeeze_column_products():
    import torch

    mm = torch.Tensor.mm

    def squeezed(self, other):
        out = mm(self, other)
        return out.squeeze(1) if other.dim() == 2 and other.shape[1] == 1 else out

    torch.Tensor.mm = squeezed
    try:
        yield
    finally:
        torch.Tensor.mm = mm


def cornac_fixed_scores(X, Y_train, epochs, seed):
    with _squeeze_column_products():
        return cornac_scores(X, Y_train, epochs, seed)


def cornac_scores(X, Y_train, epochs, seed):
    """Train Cornac's VBPR and return its (n_items, n_users) scores in our item/user order."""
    import cornac
    from cornac.data import Dataset, ImageModality

    coo = Y_train.tocoo()
    triples = [(str(u), str(i), 1.0) for u, i in zip(coo.col, coo.row)]
    train = Dataset.from_uir(triples, seed=seed)
    image = ImageModality(features=X, ids=[str(i) for i in range(X.shape[0])])
    image.build(id_map=train.iid_map)
    train.add_modalities(item_image=image)
    model = cornac.models.VBPR(n_epochs=epochs, seed=seed, verbose=False, use_gpu=False,
                               **HYPER)
    tic = time.perf_counter()
    model.fit(train)
    seconds = time.perf_counter() - tic
    scores = np.full(Y_train.shape, -np.inf, dtype=np.float32)
    items = np.array([int(raw) for raw in train.iid_map.keys()])
    for raw_user, u in train.uid_map.items():
        scores[items, int(raw_user)] = model.score(u)[list(train.iid_map.values())]
    return scores, seconds


def skmm_scores(X, Y_train, epochs, seed):
    model = VBPRRecommender(n_factors=HYPER["k"], n_content_factors=HYPER["k2"],
                            reg_weight=HYPER["lambda_w"], bias_reg=HYPER["lambda_b"],
                            projection_reg=HYPER["lambda_e"], lr=HYPER["learning_rate"],
                            batch_size=HYPER["batch_size"], max_epochs=epochs, device="cpu",
                            random_state=seed)
    tic = time.perf_counter()
    model.fit(X, Y_train)
    return model.decision_function(X), time.perf_counter() - tic


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", default=str(data_root()))
    parser.add_argument("--modalities", nargs="+", default=["all-MiniLM-L6-v2", "vggish"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=50)
    args = parser.parse_args()

    data = load_mmrec(Path(args.data_root) / "lastfm2k", args.modalities)
    print(f"Last.fm 2K, features {args.modalities} ({data.X.shape[1]}-d), {args.epochs} "
          f"epochs, hyper-parameters {HYPER}")
    print(f"{'library':>12} {'seed':>4} {'Recall@20':>10} {'NDCG@20':>8} {'train s':>8}")
    runners = {"skmm": skmm_scores, "cornac": cornac_scores, "cornac-fixed": cornac_fixed_scores}
    results = {name: [] for name in runners}
    for seed in range(args.seeds):
        for name, fn in runners.items():
            scores, seconds = fn(data.X, data.Y_train, args.epochs, seed)
            rec = recall_at_k(data.Y_test, scores, k=20, exclude=data.Y_train)
            ndcg = ndcg_at_k(data.Y_test, scores, k=20, exclude=data.Y_train)
            results[name].append((rec, ndcg, seconds))
            print(f"{name:>12} {seed:>4} {rec:>10.4f} {ndcg:>8.4f} {seconds:>8.1f}", flush=True)
    print("\nmean +- std over seeds")
    for name, rows in results.items():
        r = np.array(rows)
        print(f"{name:>12} Recall@20 {r[:, 0].mean():.4f} +- {r[:, 0].std():.4f}  "
              f"NDCG@20 {r[:, 1].mean():.4f} +- {r[:, 1].std():.4f}  "
              f"train {r[:, 2].mean():.1f}s")


if __name__ == "__main__":
    main()
