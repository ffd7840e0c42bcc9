"""The VBPR scoring module and its BPR objective (He and McAuley, AAAI 2016)."""

import torch
from torch import nn


class VBPRModule(nn.Module):
    """Score ``(user, item)`` pairs with ID factors plus a projection of item content.

    ``score(u, i) = b_i + gamma_u . gamma_i + theta_u . (E f_i) + beta' . f_i``, where ``f_i``
    is the item's content vector, ``E`` a learned linear projection to the content-factor space
    and ``beta'`` a learned content bias.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the ID embedding tables.
    features : torch.Tensor of shape (n_items, n_features)
        Item content, kept as a buffer (not trained).
    n_factors : int
        Dimension of the ID factors ``gamma``.
    n_content_factors : int
        Dimension of the content factors ``theta`` and of ``E f``.
    """

    def __init__(self, n_users, n_items, features, n_factors=10, n_content_factors=10):
        super().__init__()
        self.register_buffer("features", torch.as_tensor(features, dtype=torch.float32))
        n_features = self.features.shape[1]
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        self.user_content_factors = nn.Embedding(n_users, n_content_factors)
        self.item_bias = nn.Embedding(n_items, 1)
        self.projection = nn.Linear(n_features, n_content_factors, bias=False)
        self.content_bias = nn.Linear(n_features, 1, bias=False)
        # Glorot-uniform factors and zero item biases, as Cornac initialises VBPR.
        for weight in (self.user_factors.weight, self.item_factors.weight,
                       self.user_content_factors.weight, self.projection.weight,
                       self.content_bias.weight):
            nn.init.xavier_uniform_(weight)
        nn.init.zeros_(self.item_bias.weight)

    def item_terms(self, items):
        """Per-item pieces of the score: (b_i + beta' . f_i, gamma_i, E f_i)."""
        f = self.features[items]
        bias = self.content_bias(f).squeeze(-1) + self.item_bias(items).squeeze(-1)
        return bias, self.item_factors(items), self.projection(f)

    def forward(self, users, pos, neg):
        """Return the positive and negative pair scores of a BPR batch."""
        gu, tu = self.user_factors(users), self.user_content_factors(users)
        out = []
        for items in (pos, neg):
            bias, gi, ef = self.item_terms(items)
            out.append(bias + (gu * gi).sum(-1) + (tu * ef).sum(-1))
        return out[0], out[1]

    def factor_matrices(self):
        """``(U, V)`` with ``U @ V.T`` the score of every user (rows) for every fitted item.

        ``U = [1, gamma_u, theta_u]`` and ``V = [b_i + beta' . f_i, gamma_i, E f_i]``: the
        score is a plain dot product, so ranking can use the blocked top-k of
        :func:`skmm.metrics.evaluate_factors` instead of a dense score matrix.
        """
        items = torch.arange(self.item_factors.num_embeddings, device=self.features.device)
        bias, gi, ef = self.item_terms(items)
        V = torch.cat([bias[:, None], gi, ef], dim=1)
        ones = torch.ones(self.user_factors.num_embeddings, 1, device=V.device, dtype=V.dtype)
        U = torch.cat([ones, self.user_factors.weight, self.user_content_factors.weight], dim=1)
        return U, V


def vbpr_penalty(module, users, pos, neg, *, reg_weight, bias_reg, projection_reg):
    """Half squared L2 norms of the parameters a batch touches, summed over the batch.

    ``reg_weight`` weighs the user and item factors, ``bias_reg`` the positive item's bias
    (the negative item's bias a tenth of it) and ``projection_reg`` the content projection and
    content bias: Cornac's VBPR regulariser, so both libraries optimise the same objective.
    """
    factors = (module.user_factors(users).pow(2).sum()
               + module.user_content_factors(users).pow(2).sum()
               + module.item_factors(pos).pow(2).sum() + module.item_factors(neg).pow(2).sum())
    biases = module.item_bias(pos).pow(2).sum() + module.item_bias(neg).pow(2).sum() / 10
    projection = module.projection.weight.pow(2).sum() + module.content_bias.weight.pow(2).sum()
    return (reg_weight * factors + bias_reg * biases + projection_reg * projection) / 2
