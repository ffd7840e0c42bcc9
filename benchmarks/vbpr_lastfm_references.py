"""Reference points for the FeatProp experiment on Last.fm 2K: VBPR with every item's features
(nothing missing) and with no content at all (every row the column mean), same settings as
``python -m skmm reproduce featprop`` (30 epochs, batch 1024, lr 0.005, seeds 0-4).

    python benchmarks/vbpr_lastfm_references.py [--data PATH] [--seeds 5]
"""

import argparse

import numpy as np
import torch

from _machine import data_root
from skmm import VBPRRecommender
from skmm import reproduce as rp
from skmm.metrics import ndcg_at_k, recall_at_k


def main():
    default = data_root() / "lastfm2k"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = rp.load_data(args.data, ["all-MiniLM-L6-v2", "vggish"])
    inputs = {"complete features": data.X,
              "no content (column means)": np.broadcast_to(data.X.mean(0), data.X.shape).copy()}
    for name, X in inputs.items():
        recall, ndcg = [], []
        for seed in range(args.seeds):
            model = VBPRRecommender(device="auto", random_state=seed, max_epochs=30,
                                    batch_size=1024, lr=0.005)
            scores = model.fit(X, data.Y_train).decision_function(X)
            recall.append(recall_at_k(data.Y_test, scores, k=20, exclude=data.Y_train))
            ndcg.append(ndcg_at_k(data.Y_test, scores, k=20, exclude=data.Y_train))
        print(f"{name}: Recall@20 {np.mean(recall):.4f} ± {np.std(recall):.4f}  "
              f"NDCG@20 {np.mean(ndcg):.4f} ± {np.std(ndcg):.4f}  "
              f"per seed {np.round(recall, 4).tolist()}", flush=True)


if __name__ == "__main__":
    main()
