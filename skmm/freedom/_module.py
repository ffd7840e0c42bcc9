"""The FREEDOM torch module: LightGCN over the user-item graph plus a frozen item-item branch.

Zhou and Shen, ACM MM 2023, as MMRec's ``FREEDOM`` computes it. With ``E_u``, ``E_i`` the user
and item ID embeddings, ``M`` the frozen item-item graph and ``adj`` a normalised user-item
graph (pruned in training, full at inference)::

    H       = M^n_item_layers E_i                    # item-item branch, on the ID embeddings
    X_0     = [E_u; E_i];  X_l = adj X_(l-1)          # LightGCN, l = 1 .. n_layers
    X_bar   = mean(X_0, ..., X_n_layers)
    u_final = X_bar[:n_users];  i_final = X_bar[n_users:] + H

Scores are ``u_final @ i_final.T``. Item features never enter a score: they shape the model
through ``M`` (built from them once) and through the auxiliary "modality BPR" terms of the loss,
which contrast the user vectors with the projections ``P_m = F_m W_m^T + b_m`` of the
(trainable) raw features.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["FREEDOMModule", "bpr_logsigmoid"]


def bpr_logsigmoid(anchor, pos, neg):
    """BPR loss of a batch, ``-mean(log sigmoid(<a, p> - <a, n>))``, row-wise dot products.

    ``F.logsigmoid`` is numerically stable for large score gaps (MMRec's ``bpr_loss``).
    """
    pos_scores = (anchor * pos).sum(dim=1)
    neg_scores = (anchor * neg).sum(dim=1)
    return -F.logsigmoid(pos_scores - neg_scores).mean()


def _check_sparse(A, shape, name):
    if not isinstance(A, torch.Tensor) or A.layout != torch.sparse_coo:
        raise TypeError(f"{name} must be a torch sparse COO tensor, got "
                        f"{type(A).__name__ if not isinstance(A, torch.Tensor) else A.layout}.")
    if tuple(A.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(A.shape)}.")
    return A.coalesce().to(torch.float32)


class FREEDOMModule(nn.Module):
    """FREEDOM's parameters, forward pass and loss, for any number of modalities.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the ID embedding tables.
    features : sequence of array-like, each of shape (n_items, d_m)
        The raw features of each modality (at least one). They are **copied** into trainable
        parameters (MMRec's ``nn.Embedding.from_pretrained(feat, freeze=False)``): the modality
        BPR terms fine-tune the copies, the inputs are never modified.
    item_graph : torch.Tensor of shape (n_items, n_items)
        The frozen item-item graph ``M`` (:func:`~skmm.freedom.item_knn_graph`), sparse COO.
    adjacency : torch.Tensor of shape (n_users + n_items, n_users + n_items)
        The full normalised user-item graph ``Â`` (:func:`~skmm.freedom.user_item_adjacency`),
        sparse COO, used by :meth:`final_factors`.
    n_factors : int, default=64
        Width of the ID embeddings and of the feature projections (MMRec's ``embedding_size``
        and ``feat_embed_dim``, which must be equal).
    n_item_layers : int, default=1
        Multiplications by ``M`` in the item-item branch (``n_mm_layers``).
    n_layers : int, default=2
        LightGCN layers over the user-item graph (``n_ui_layers``).

    Attributes
    ----------
    user_embedding, item_id_embedding : torch.nn.Embedding
        ``E_u`` (n_users, n_factors) and ``E_i`` (n_items, n_factors), Xavier-uniform.
    features : torch.nn.ParameterList
        The trainable copies ``F_m`` of the raw features.
    projections : torch.nn.ModuleList
        ``Linear(d_m, n_factors)`` per modality, torch's default initialisation.
    item_graph, adjacency : torch.Tensor
        Buffers (moved by ``.to(device)``, pickled with the module, not in ``state_dict``).

    Notes
    -----
    Initial values come from torch's global generator (like every ``nn.Module``): build the
    module under :func:`skmm._random.seeded_global_generator` for a reproducible,
    thread-safe initialisation. Parameters are created in MMRec's order (user, item, then one
    projection per modality).
    """

    def __init__(self, n_users, n_items, features, item_graph, adjacency, *, n_factors=64,
                 n_item_layers=1, n_layers=2):
        super().__init__()
        for name, value, low in (("n_users", n_users, 1), ("n_items", n_items, 1),
                                 ("n_factors", n_factors, 1),
                                 ("n_item_layers", n_item_layers, 0),
                                 ("n_layers", n_layers, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.n_item_layers, self.n_layers = int(n_item_layers), int(n_layers)
        if isinstance(features, (np.ndarray, torch.Tensor)) or not len(features):
            raise TypeError("features must be a non-empty sequence of (n_items, d_m) arrays, "
                            "one per modality.")
        copies = []
        for m, f in enumerate(features):
            # Always a copy (torch.as_tensor would share the caller's float32 array): the
            # copies are trained, the caller's features never change.
            if isinstance(f, torch.Tensor):
                t = f.detach().to(torch.float32).clone()
            else:
                t = torch.tensor(np.asarray(f), dtype=torch.float32)
            if t.ndim != 2 or t.shape[0] != self.n_items or t.shape[1] < 1:
                raise ValueError(f"features[{m}] must have shape ({self.n_items}, d_m), got "
                                 f"{tuple(t.shape)}.")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"features[{m}] contains NaN or infinite values.")
            copies.append(t)
        self.register_buffer("item_graph", _check_sparse(item_graph, (self.n_items,) * 2,
                                                         "item_graph"), persistent=False)
        n_nodes = self.n_users + self.n_items
        self.register_buffer("adjacency", _check_sparse(adjacency, (n_nodes,) * 2, "adjacency"),
                             persistent=False)

        self.user_embedding = nn.Embedding(self.n_users, n_factors)
        self.item_id_embedding = nn.Embedding(self.n_items, n_factors)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_id_embedding.weight)
        self.features = nn.ParameterList([nn.Parameter(t) for t in copies])
        self.projections = nn.ModuleList([nn.Linear(t.shape[1], n_factors) for t in copies])

    @property
    def n_modalities(self):
        """Number of modalities (feature blocks), ``M >= 1``."""
        return len(self.features)

    def forward(self, adj):
        """Final user and item representations over the user-item graph ``adj``.

        Parameters
        ----------
        adj : torch.Tensor of shape (n_users + n_items, n_users + n_items)
            Sparse normalised user-item graph: the epoch's pruned ``Ã`` in training, the full
            ``Â`` (:attr:`adjacency`) at inference.

        Returns
        -------
        user_final : torch.Tensor of shape (n_users, n_factors)
        item_final : torch.Tensor of shape (n_items, n_factors)
        """
        h = self.item_id_embedding.weight
        for _ in range(self.n_item_layers):
            h = torch.sparse.mm(self.item_graph, h)
        x = torch.cat([self.user_embedding.weight, self.item_id_embedding.weight], dim=0)
        total = x
        for _ in range(self.n_layers):
            x = torch.sparse.mm(adj, x)
            total = total + x
        mean = total / (self.n_layers + 1)
        return mean[:self.n_users], mean[self.n_users:] + h

    def projected_features(self, m, items=None):
        """``P_m = F_m W_m^T + b_m`` for modality ``m`` (rows ``items``, default all)."""
        f = self.features[m] if items is None else self.features[m][items]
        return self.projections[m](f)

    def loss(self, final, users, pos, neg, *, modality_loss_weight):
        """FREEDOM's batch loss from :meth:`forward`'s output.

        ``BPR(u_f[users], i_f[pos], i_f[neg]) + modality_loss_weight * sum_m BPR(u_f[users],
        P_m[pos], P_m[neg])``, BPR as in :func:`bpr_logsigmoid`. ``modality_loss_weight`` is
        MMRec's ``reg_weight``: it weighs the modality terms and is not an L2 penalty (there
        is none). With ``modality_loss_weight == 0`` the modality terms are not computed, so
        the features and projections get no gradient (``None``) and an optimiser leaves them
        unchanged, exactly as MMRec's all-zero gradients do under Adam.

        Parameters
        ----------
        final : tuple of torch.Tensor
            ``(user_final, item_final)`` from :meth:`forward`.
        users, pos, neg : torch.Tensor of shape (batch,), int64
            The batch's users, positive items and negative items.
        modality_loss_weight : float
            Weight of the modality BPR terms, >= 0.

        Returns
        -------
        loss : torch.Tensor, scalar
        """
        if not modality_loss_weight >= 0:
            raise ValueError(f"modality_loss_weight must be >= 0, got {modality_loss_weight!r}.")
        user_final, item_final = final
        u = user_final[users]
        loss = bpr_logsigmoid(u, item_final[pos], item_final[neg])
        if modality_loss_weight == 0:
            return loss
        # Small batches of a large catalogue project only their own rows (the same values
        # and gradients); otherwise every item, as MMRec does: a gather of most rows then
        # costs more than it saves (measured on Last.fm 2K).
        rows = torch.cat([pos, neg])
        gather = 2 * rows.numel() <= self.n_items
        modality = 0.0
        for m in range(self.n_modalities):
            if gather:
                p_pos, p_neg = self.projected_features(m, rows).split([len(pos), len(neg)])
            else:
                P = self.projected_features(m)
                p_pos, p_neg = P[pos], P[neg]
            modality = modality + bpr_logsigmoid(u, p_pos, p_neg)
        return loss + modality_loss_weight * modality

    @torch.no_grad()
    def final_factors(self):
        """``(user_final, item_final)`` over the full graph ``Â``, for ranking.

        One pass over the whole graph gives every user's and item's factors; scores are
        ``user_final @ item_final.T`` (rank them with skmm's blocked top-k rather than
        forming the product). Computed without gradients; call it once per evaluation.
        """
        return self.forward(self.adjacency)
