"""
=====================================================
Normalisations, graph direction and propagation steps
=====================================================

:class:`~skmm.FeatPropImputer` has three knobs that shape the propagation itself:

* ``normalization``: ``"sym"`` (:math:`D^{-1/2} A D^{-1/2}`, the paper) or ``"rw"``
  (:math:`D^{-1} A`, a weighted average of the neighbours);
* ``symmetric``: the paper's directed top-k graph, or the union of both directions;
* ``n_iter``: the number of propagation steps.

This example looks at what each one does to the graph and to the imputation quality, on a
dense and on a sparse, popularity-skewed synthetic catalogue.
"""

# %%
# Two catalogues
# --------------
#
# Both have 3,000 items and 1,500 users. The dense one has 20 interactions per item on
# average; the sparse one a quarter of that, with a strong popularity bias, so that many
# items have few or no interactions, like real catalogues.

import matplotlib.pyplot as plt
import numpy as np

from skmm import (
    FeatPropImputer,
    cointeraction_graph,
    normalize_adjacency,
    simulate_missing,
)
from skmm.datasets import make_multimodal
from skmm.metrics._imputation import centred_cosine

catalogues = {
    "dense": make_multimodal(
        3000, 1500, (64, 32), density=0.02, popularity=1.0, random_state=0
    ),
    "sparse, skewed": make_multimodal(
        3000, 1500, (64, 32), density=0.005, popularity=2.0, random_state=0
    ),
}
for name, data in catalogues.items():
    item_degree = np.diff(data.Y.indptr)
    print(
        f"{name:>15}: {data.Y.nnz} interactions, median item degree "
        f"{np.median(item_degree):.0f}, "
        f"{np.sum(item_degree == 0)} items without any"
    )

# %%
# Directed or symmetric graph
# ---------------------------
#
# :func:`~skmm.cointeraction_graph` keeps, for each item, the 20 items that share the most
# users with it. In the **directed** graph (the paper's) every item has out-degree 20, unless
# it shares users with fewer than 20 items. The **symmetric** graph adds the reverse of every
# edge: an item also pulls values from the items that chose it, so popular items, chosen by
# many, get many more edges.

fig, axes = plt.subplots(
    1, 2, figsize=(11, 3.8), layout="constrained", sharey=True
)
for ax, (name, data) in zip(axes, catalogues.items()):
    directed = cointeraction_graph(data.Y, n_neighbors=20)
    symmetric = cointeraction_graph(data.Y, n_neighbors=20, symmetric=True)
    bins = np.arange(0, 121, 4)
    ax.hist(
        np.clip(np.diff(symmetric.indptr), 0, 120),
        bins=bins,
        alpha=0.6,
        label="symmetric",
        color="tab:orange",
    )
    ax.hist(
        np.clip(np.diff(directed.indptr), 0, 120),
        bins=bins,
        histtype="step",
        linewidth=2,
        label="directed (out-degree)",
        color="tab:blue",
    )
    ax.set(
        title=f"{name} catalogue",
        xlabel="edges per item (clipped at 120)",
        yscale="log",
    )
axes[0].set_ylabel("items")
axes[0].legend()
plt.show()

# %%
# The two normalisations
# ----------------------
#
# :func:`~skmm.normalize_adjacency` turns the adjacency ``A`` into the propagation matrix
# ``P``, with ``D`` the row sums of ``A``. A row of ``P`` says how much an item takes from each
# neighbour. With ``"rw"`` the weights sum to one, so a propagated value is a weighted
# average. With ``"sym"`` the weight of neighbour ``j`` is :math:`1 / \sqrt{d_i d_j}`, so the
# row sum is one only when the neighbours have the item's own degree: it is below one for an
# item among high-degree neighbours and above one among low-degree neighbours. On the
# directed graph of the dense catalogue, where nearly every item has degree 20, that is almost
# always the case and the two normalisations coincide; on the symmetric graph they differ.

data = catalogues["dense"]
fig, axes = plt.subplots(
    1, 2, figsize=(11, 3.6), layout="constrained", sharey=True
)
for ax, symmetric in zip(axes, (False, True)):
    A = cointeraction_graph(data.Y, n_neighbors=20, symmetric=symmetric)
    for normalization, color in (("sym", "tab:red"), ("rw", "tab:green")):
        P = normalize_adjacency(A, normalization)
        row_sums = np.asarray(P.sum(axis=1)).ravel()
        row_sums = row_sums[
            np.diff(A.indptr) > 0
        ]  # isolated items have an empty row
        ax.hist(
            row_sums,
            bins=np.linspace(0, 2, 41),
            alpha=0.6,
            color=color,
            label=f'"{normalization}"',
        )
    ax.set(
        title=f"{'symmetric' if symmetric else 'directed'} graph, dense catalogue",
        xlabel="row sum of P",
        yscale="log",
    )
axes[0].set_ylabel("items")
axes[0].legend()
plt.show()

# %%
# Imputation quality
# ------------------
#
# Half of the items lose both modalities. For every combination of graph and normalisation we
# vary ``n_iter`` and score the imputed rows with the centred cosine (0 for mean imputation,
# 1 for a perfect one) and the RMSE on the missing entries. ``n_iter=0`` would propagate
# nothing and leave every missing entry to the column-mean fallback.

n_iters = [1, 2, 3, 5, 10, 20, 40]
configs = {
    ("directed", "sym"): dict(color="tab:blue", ls="-", marker="o"),
    ("directed", "rw"): dict(color="tab:cyan", ls="--", marker="x"),
    ("symmetric", "sym"): dict(color="tab:red", ls="-", marker="o"),
    ("symmetric", "rw"): dict(color="tab:orange", ls="--", marker="x"),
}
results = {}
for name, data in catalogues.items():
    X_missing, mask = simulate_missing(
        data.X, data.modalities, rate=0.5, random_state=0
    )
    rows = mask.any(axis=1)
    centre = data.X[~rows].mean(axis=0)
    for graph, normalization in configs:
        cos, err = [], []
        for n_iter in n_iters:
            imputer = FeatPropImputer(
                n_iter=n_iter,
                normalization=normalization,
                symmetric=graph == "symmetric",
                device="cpu",
            )
            X_imputed = imputer.fit_transform(X_missing, data.Y)
            cos.append(centred_cosine(X_imputed[rows], data.X[rows], centre))
            err.append(np.sqrt(np.mean((X_imputed[mask] - data.X[mask]) ** 2)))
        results[name, graph, normalization] = cos, err

fig, axes = plt.subplots(
    2, 2, figsize=(11, 7.5), layout="constrained", sharex=True
)
for col, name in enumerate(catalogues):
    for (graph, normalization), style in configs.items():
        cos, err = results[name, graph, normalization]
        label = f'{graph} graph, "{normalization}"'
        axes[0, col].plot(n_iters, cos, label=label, **style)
        axes[1, col].plot(n_iters, err, label=label, **style)
    axes[0, col].set(
        title=f"{name} catalogue, 50% missing",
        ylabel="centred cosine (higher is better)",
    )
    axes[1, col].set(
        xlabel="n_iter", ylabel="RMSE (lower is better)", xscale="log"
    )
    axes[1, col].set_xticks(n_iters, [str(n) for n in n_iters])
    for ax in axes[:, col]:
        ax.grid(alpha=0.3)
axes[0, 0].legend()
plt.show()

for key, (cos, err) in results.items():
    best = int(np.argmax(cos))
    what = f"{key[0]}, {key[1]} graph, {key[2]!r}:"
    print(
        f"{what:<40} best {cos[best]:.3f} (n_iter={n_iters[best]:>2}), "
        f"n_iter=3: {cos[2]:.3f}"
    )

# %%
# What to take from it
# --------------------
#
# * On the **directed** graph the two normalisations give the same curve on the dense
#   catalogue (nearly every item has degree 20, so :math:`1/\sqrt{d_i d_j} = 1/d_i`) and
#   almost the same on the sparse one. The choice matters once degrees vary widely, as on the
#   symmetric graph.
# * The **symmetric** graph imputes better, clearly so on the dense catalogue: every item also
#   pulls values from the items that chose it as a neighbour, so it has more sources. There,
#   ``"sym"`` gives the best direction (centred cosine) and ``"rw"`` the best scale (RMSE): a
#   weighted average stays within the range of the observed values, a degree-weighted sum
#   need not.
# * On the directed graph **more steps hurt** here: the best score comes after a single step,
#   from the direct neighbours, and later steps mix in values from further away. On the
#   symmetric graph the score rises for two or three steps and then levels off (``"sym"``) or
#   declines slightly (``"rw"``). The paper's ``n_iter=3`` is a reasonable default, not the
#   optimum everywhere.
# * On the sparse catalogue everything scores lower: many of the missing items have no
#   interactions at all and take the fallback whatever the settings.
#
# These are synthetic catalogues; tune ``n_neighbors``, ``n_iter``, ``symmetric`` and
# ``normalization`` on your own data, for example with
# :class:`~sklearn.model_selection.GridSearchCV` on a pipeline (see :ref:`data_contract`).
