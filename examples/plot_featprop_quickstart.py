"""
====================
FeatProp quick start
====================

Fill missing item modalities with :class:`~skmm.FeatPropImputer`: generate a synthetic
multimodal catalogue, remove the features of half of its items, impute them by propagation
over the co-interaction graph, and compare with the baselines of the FeatProp paper. Last,
impute *new* items, which come without interactions.
"""

# %%
# A synthetic catalogue
# ---------------------
#
# :func:`~skmm.datasets.make_multimodal` draws items and users from a shared latent taste
# space. Each item has two modalities (a 64-d and a 32-d feature vector, both noisy views of
# its latent factors) and users interact with the items they like, so items that share users
# also have similar features: the premise of FeatProp.
#
# Items are the samples: ``X`` has one row per item, and the interactions ``Y`` are an
# item x user sparse matrix (see :ref:`data_contract`).

import matplotlib.pyplot as plt
import numpy as np

from skmm import BaselineImputer, FeatPropImputer, simulate_missing
from skmm.datasets import make_multimodal
from skmm.metrics._imputation import centred_cosine

data = make_multimodal(
    n_items=2000, n_users=1000, modalities=(64, 32), density=0.02, random_state=0
)
print(
    f"X: {data.X.shape}, Y: {data.Y.shape} with {data.Y.nnz} interactions, "
    f"modalities {data.modalities}"
)

# %%
# Remove the modalities of half of the items
# ------------------------------------------
#
# :func:`~skmm.simulate_missing` follows the paper's protocol: a fraction of the items loses
# *all* its modalities. Missing entries become ``np.nan``; ``mask`` marks them.

X_missing, mask = simulate_missing(
    data.X, data.modalities, rate=0.5, random_state=0
)
missing_items = mask.any(axis=1)
print(f"{missing_items.sum()} of {len(missing_items)} items lost their features")

# %%
# Impute
# ------
#
# ``fit_transform`` builds the top-20 co-interaction graph from ``Y``, propagates the observed
# features over it for 3 steps (the paper's defaults) and returns the completed matrix.
# Observed entries come back unchanged.

imputer = FeatPropImputer(n_neighbors=20, n_iter=3, device="cpu")
X_imputed = imputer.fit_transform(X_missing, data.Y)

assert not np.isnan(X_imputed).any()
assert np.array_equal(X_imputed[~mask], data.X[~mask])
print(f"graph: {imputer.graph_.shape[0]} items, {imputer.graph_.nnz} edges")
print(
    f"missing entries filled by propagation: {imputer.n_propagated_}, "
    f"by the fallback (column mean): {imputer.n_fallback_}"
)

# %%
# The few entries that took the fallback belong to items without interactions: they are
# isolated in the graph and propagation cannot reach them. Let us look at the graph itself.
# Each item keeps its 20 strongest co-interaction partners (out-degree 20, or fewer when it
# shares users with fewer items); how often an item is *chosen* (its in-degree) is far more
# skewed: popular items are everyone's neighbour.

A = imputer.graph_
out_degree = np.diff(A.indptr)
in_degree = np.bincount(A.indices, minlength=A.shape[0])

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
axes[0].hist(out_degree, bins=np.arange(0, 22) - 0.5, color="tab:blue")
axes[0].set(
    title="Out-degree (edges kept per item)", xlabel="out-degree", ylabel="items"
)
axes[1].hist(in_degree, bins=50, color="tab:orange")
axes[1].set(
    title="In-degree (times chosen as a neighbour)",
    xlabel="in-degree",
    ylabel="items",
    yscale="log",
)
fig.suptitle("The directed top-20 co-interaction graph")
plt.show()

# %%
# How good is the imputation?
# ---------------------------
#
# We compare the imputed rows with the true features using the *centred cosine*: the cosine
# between imputed and true rows after subtracting the mean of the observed rows. Mean
# imputation scores exactly 0 and a perfect imputation 1, so the score measures what an
# imputer adds over the column means. The root-mean-square error tells the same story in
# absolute terms.

centre = data.X[~missing_items].mean(axis=0)
imputers = {
    "zeros": BaselineImputer(strategy="constant", fill_value=0.0),
    "mean": BaselineImputer(strategy="mean"),
    "random": BaselineImputer(strategy="random", random_state=0),
    "FeatProp": FeatPropImputer(device="cpu"),
}
scores, rmse, completed = {}, {}, {}
for name, est in imputers.items():
    completed[name] = est.fit_transform(X_missing, data.Y)
    scores[name] = centred_cosine(
        completed[name][missing_items], data.X[missing_items], centre
    )
    rmse[name] = np.sqrt(np.mean((completed[name][mask] - data.X[mask]) ** 2))
    print(
        f"{name:>9}: centred cosine {scores[name]:6.3f}   RMSE {rmse[name]:.3f}"
    )

colors = {
    "zeros": "tab:gray",
    "mean": "tab:green",
    "random": "tab:purple",
    "FeatProp": "tab:blue",
}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
names = list(imputers)
axes[0].bar(names, [scores[n] for n in names], color=[colors[n] for n in names])
axes[0].axhline(0, color="black", lw=0.8)
axes[0].set(title="Centred cosine (higher is better)", ylabel="centred cosine")
axes[1].bar(names, [rmse[n] for n in names], color=[colors[n] for n in names])
axes[1].set(title="RMSE on the missing entries (lower is better)", ylabel="RMSE")
fig.suptitle("50% of the items missing all modalities")
plt.show()

# %%
# Feature by feature, the mean baseline puts every missing item at the same value, while
# FeatProp recovers a good part of each item's own signal from its neighbours:

feature = 0
truth = data.X[missing_items, feature]
fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
ax.scatter(
    truth,
    completed["FeatProp"][missing_items, feature],
    s=8,
    alpha=0.5,
    color=colors["FeatProp"],
    label="FeatProp",
)
ax.scatter(
    truth,
    completed["mean"][missing_items, feature],
    s=8,
    alpha=0.5,
    color=colors["mean"],
    label="mean",
)
lims = [truth.min(), truth.max()]
ax.plot(lims, lims, color="black", lw=0.8, ls="--", label="perfect")
r = np.corrcoef(truth, completed["FeatProp"][missing_items, feature])[0, 1]
ax.set(
    xlabel="true value",
    ylabel="imputed value",
    title=f"Feature {feature} of the missing items (FeatProp: r = {r:.2f})",
)
ax.legend()
plt.show()

# %%
# New items
# ---------
#
# Propagation needs interactions, and only ``fit`` receives them. Rows that ``transform`` has
# not seen are treated as **new items** without interactions: each missing entry becomes the
# mean over the nearest fitted items, by distance over the features the new item *does* have
# (see :ref:`featprop_new_items`). Here 10% of the catalogue is held out, the imputer is
# fitted on the rest, and each held-out item loses one of its two modalities (``mode="one"``),
# keeping the other for the distance.

rng = np.random.default_rng(0)
held_out = np.zeros(data.X.shape[0], dtype=bool)
held_out[rng.choice(data.X.shape[0], size=200, replace=False)] = True

fitted = FeatPropImputer(device="cpu").fit(
    X_missing[~held_out], data.Y[~held_out]
)
X_new, new_mask = simulate_missing(
    data.X[held_out], data.modalities, rate=1.0, mode="one", random_state=0
)
new_rows = new_mask.any(axis=1)
X_new_imputed = fitted.transform(X_new)
# The column means of the fitted items' observed values: what mean imputation would give.
knn_score = centred_cosine(
    X_new_imputed[new_rows], data.X[held_out][new_rows], fitted.statistics_
)
print(
    f"new items: {new_rows.sum()} with one modality missing; "
    f"centred cosine of the imputed rows {knn_score:.3f} (mean imputation: 0)"
)

# %%
# Under the FeatProp protocol, where an item loses *all* its modalities, a new item has no
# content left to compare: ``transform`` gives it the fallback (the column means). The
# :ref:`user guide <featprop>` explains the graph, the normalisations and the fallback in
# detail; :ref:`sphx_glr_auto_examples_plot_featprop_missing_rates.py` varies the missing
# rate.
