"""
=======================================================
MILK's robustness curve and a per-modality diagnostic
=======================================================

MILK (:class:`~skmm.MILKRecommender`) is trained so that its scores of new items hold up
when a modality is missing. One point does not show whether that pays: this example
measures it as a curve. Each model is trained once on complete items, then scores the new
items while the share of them missing a modality goes from 0 to 100%, for each modality
in turn, alone and behind a :class:`~skmm.FeatPropImputer`.

Then :func:`~skmm.inspection.modality_ranking` shows how well each modality's projection
alone ranks the new items, against the equal mix MILK uses: it tells when one modality is
weak. The catalogue below is built with one strong and one weak modality, as on Last.fm 2K
(text tags strong, audio features weak), where ``python -m skmm reproduce milk-robustness``
runs the full protocol.
"""

# %%
# A catalogue with a strong and a weak modality
# ---------------------------------------------
#
# :func:`~skmm.datasets.make_multimodal` makes each modality a noisy linear view of the
# items' latent taste factors; ``modality_noise`` sets the noise per modality relative to
# the signal. ``"text"`` is nearly clean (0.3), ``"audio"`` mostly noise (3.0). The
# per-item popularity bias is off: no content model can learn it.

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.pipeline import make_pipeline

from skmm import FeatPropImputer, MILKRecommender
from skmm.datasets import make_multimodal, new_item_split
from skmm.inspection import modality_ranking
from skmm.metrics import ndcg_at_k

# One torch thread: the models are tiny, and on a busy 2-core machine a second thread only
# adds synchronisation.
torch.set_num_threads(1)

names = ["text", "audio"]
data = make_multimodal(
    n_items=600,
    n_users=300,
    modalities=(32, 16),
    density=0.04,
    modality_noise=(0.3, 3.0),
    popularity=0.0,
    random_state=0,
)
print(f"X: {data.X.shape}, Y: {data.Y.shape} with {data.Y.nnz} interactions")

# %%
# Fit once, score at every share
# ------------------------------
#
# Per seed, :func:`~skmm.datasets.new_item_split` holds out 20% of the items as new items
# (the models never see their interactions). MILK (its defaults) and the DUIF-like baseline
# (MILK without environments, invariance and alignment) are fitted once on the other items,
# with all their modalities, a larger step than the paper's for this small catalogue, and
# early stopping on validation items they hold out themselves.
#
# For each modality, the new items that lose it at a share are the first of a random
# permutation, so the items missing it at 25% are among those missing it at 50%. Alone, a
# model fills a missing modality with the training mean; behind FeatProp, a new item (which
# has no interactions to propagate over) takes the mean of its nearest fitted items over the
# modality it still has. The training items are complete, so the imputer leaves them as they
# are and the pipeline's model is trained on the same features: fitting the pipeline is
# fitting the model.

shares = [0.0, 0.25, 0.5, 0.75, 1.0]
seeds = [0, 1]
common = dict(lr=0.01, batch_size=512, max_epochs=60, validation_interval=2, device="cpu")
models = {
    "MILK": {},
    "DUIF-like": dict(environments="none", invariance_weight=0.0, alignment_weight=0.0),
}
curves = {}  # (modality lost, model) -> NDCG@20 per seed and share
alone = {}  # model -> modality_ranking's NDCG@20 per seed

for seed in seeds:
    train, _, test = new_item_split(data.Y, test_size=0.2, val_size=0.0, random_state=seed)
    X_test, Y_test = data.X[test], data.Y[test]
    for model_name, params in models.items():
        pipeline = make_pipeline(
            FeatPropImputer(),
            MILKRecommender(data.modalities, random_state=seed, **common, **params),
        )
        pipeline.fit(data.X[train], data.Y[train])
        milk = pipeline[-1]
        alone.setdefault(model_name, []).append(
            modality_ranking(milk, X_test, Y_test, modality_names=names).ndcg
        )
        for m, lost in enumerate(names):
            order = np.random.default_rng([seed, m]).permutation(len(test))
            cols = slice(sum(data.modalities[:m]), sum(data.modalities[: m + 1]))
            for share in shares:
                X_share = X_test.copy()
                X_share[order[: round(share * len(test))], cols] = np.nan
                for label, estimator in ((model_name, milk),
                                         (f"{model_name} + FeatProp", pipeline)):
                    ndcg = ndcg_at_k(Y_test, estimator.decision_function(X_share), k=20)
                    curves.setdefault((lost, label), {}).setdefault(share, []).append(ndcg)
        print(f"seed {seed} {model_name:>9}: {milk.n_epochs_} epochs")

# %%
# The curves
# ----------
#
# One panel per modality lost; each point is the mean NDCG@20 over the seeds and its error
# bar one standard deviation (the seed-to-seed spread). The legend sits above the panels.

labels = ["MILK", "MILK + FeatProp", "DUIF-like", "DUIF-like + FeatProp"]
colors = {"MILK": "tab:blue", "DUIF-like": "tab:orange"}
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True, layout="constrained")
for ax, lost in zip(axes, names):
    for j, label in enumerate(labels):
        values = curves[lost, label]
        ax.errorbar(
            [100 * s + 1.2 * (j - 1.5) for s in shares],  # side by side by a point
            [np.mean(values[s]) for s in shares],
            yerr=[np.std(values[s]) for s in shares],
            marker="o",
            capsize=3,
            color=colors[label.split(" + ")[0]],
            linestyle="--" if "FeatProp" in label else "-",
            label=label,
        )
    ax.set(title=f"{lost} lost", xlabel=f"new items missing {lost} (%)")
    ax.set_xticks([0, 25, 50, 75, 100])
axes[0].set_ylabel("NDCG@20 over the new items")
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncol=4,
           fontsize="small", frameon=False)
fig.supxlabel(f"error bars: ± 1 standard deviation over {len(seeds)} seeds", fontsize="small")
plt.show()

# %%
# Losing the strong text modality costs both models most of their accuracy, more the larger
# the share: the weak audio modality cannot stand in for it. Losing the weak audio modality
# costs little, or nothing: at 100% every new item takes the same fill, which shifts each
# user's scores by a constant, so the items are ranked by the text projection alone. Which
# model loses less is what to read off your own data; on Last.fm 2K see the reproduction
# page.

for lost in names:
    for label in labels:
        full, none = np.mean(curves[lost, label][0.0]), np.mean(curves[lost, label][1.0])
        print(f"{lost:>5} lost | {label:<20} | 0%: {full:.3f}  100%: {none:.3f}  "
              f"relative drop {1 - none / full:+.0%}")

# %%
# Which modality carries the ranking?
# -----------------------------------
#
# :func:`~skmm.inspection.modality_ranking` ranks the complete new items once with each
# modality's projection alone as the item representation, and once with the equal mix. A
# modality that ranks far below the mix is weak: here the audio projection alone ranks far
# below the text one, by construction, and the mix ranks no better than text alone: the
# weak modality dilutes it. That is why the curve of the lost audio stays flat.

for model_name, values in alone.items():
    mean = np.mean(values, axis=0)
    cells = "  ".join(f"{n}: {v:.3f}" for n, v in zip(names + ["mix"], mean))
    print(f"{model_name:>9} NDCG@20 | {cells}")
