"""The MILK scoring module, its training objective and its mixing environments.

Bai et al., "Multimodality Invariant Learning for Multimedia-Based New Item Recommendation",
SIGIR 2024. Every function here is pure given its inputs, so each term of the objective can be
checked by hand.
"""

import numpy as np
import torch
from sklearn.utils._param_validation import StrOptions, validate_parameter_constraints
from torch import nn
from torch.nn import functional as F

from .._validation import Int, Real, check_block_sizes

ENVIRONMENTS = ("cyclic", "independent", "fixed", "none")


class EnvironmentSampler:
    """Draw the modality-mixing weights of one minibatch's environments.

    Every row of a draw is one environment: non-negative weights over the ``n_modalities``
    projected representations, summing to one. Row 0 is always the equal weighting ``1/M``
    used at inference.

    Parameters
    ----------
    n_modalities : int
        ``M``, the number of modalities.
    environments : {"cyclic", "independent", "fixed", "none"}
        ``"cyclic"`` (MILK): ``theta ~ Dirichlet(alpha)`` drawn per minibatch and its ``M - 1``
        cyclic shifts, so each modality dominates one environment; ``M + 1`` rows.
        ``"independent"``: ``M`` independent Dirichlet draws per minibatch (the paper's
        "without cyclic shift" ablation); ``M + 1`` rows. ``"fixed"``: one ``theta`` drawn when
        the sampler is built, then shifted cyclically, the same rows for every minibatch (the
        "fixed weights" ablation); ``M + 1`` rows. ``"none"``: the equal weighting alone.
    alpha : float
        Concentration of the symmetric Dirichlet: small values give near one-hot mixes.
    rng : numpy.random.Generator
        Source of the Dirichlet draws.
    """

    def __init__(self, n_modalities, environments, alpha, rng):
        validate_parameter_constraints(
            {"n_modalities": [Int(1)], "environments": [StrOptions(set(ENVIRONMENTS))],
             "alpha": [Real(0, None, closed="neither")], "rng": [np.random.Generator]},
            {"n_modalities": n_modalities, "environments": environments, "alpha": alpha,
             "rng": rng}, caller_name="EnvironmentSampler")
        self.n_modalities = int(n_modalities)
        self.environments = environments
        self.alpha = float(alpha)
        self.rng = rng
        self.theta = self._dirichlet(1)[0] if environments == "fixed" else None

    def _dirichlet(self, n):
        theta = self.rng.dirichlet(np.full(self.n_modalities, self.alpha), size=n)
        # Tiny alphas can underflow a whole draw to zeros (numpy then returns NaN); such a draw
        # is one-hot in the limit, so take the modality with the largest mass.
        bad = ~np.isfinite(theta).all(axis=1) | (theta.sum(axis=1) <= 0)
        if bad.any():
            theta[bad] = np.eye(self.n_modalities)[self.rng.integers(self.n_modalities,
                                                                     size=bad.sum())]
        return theta

    def draw(self):
        """Weights of one minibatch's environments, shape (n_environments, n_modalities)."""
        M = self.n_modalities
        rows = [np.full((1, M), 1.0 / M)]
        if self.environments in ("cyclic", "fixed"):
            theta = self._dirichlet(1)[0] if self.theta is None else self.theta
            rows.append(np.stack([np.roll(theta, s) for s in range(M)]))
        elif self.environments == "independent":
            rows.append(self._dirichlet(M))
        return np.concatenate(rows).astype(np.float32)


class MILKModule(nn.Module):
    """Per-modality linear encoders of item content and user ID embeddings.

    An item's representation in an environment with weights ``w`` is
    ``sum_m w[m] * encoder_m(x_m)``; at inference ``w = 1/M``. A user scores an item by the
    inner product of their embedding with that representation.

    Parameters
    ----------
    n_users : int
        Rows of the user embedding table.
    modalities : sequence of int
        Feature dimension of each modality, in column order.
    embedding_dim : int
        Dimension of the user embeddings and of every projection.
    features : torch.Tensor of shape (n_items, n_features), default=None
        Preprocessed (filled, L2-normalised) content of the training items, looked up by index
        during training. Not part of the state dict: it is data, not a parameter.
    observed : torch.Tensor of bool, shape (n_items, n_modalities), default=None
        Which modalities of the training items were observed; the alignment term skips the
        filled ones.
    """

    def __init__(self, n_users, modalities, embedding_dim, features=None, observed=None):
        super().__init__()
        validate_parameter_constraints(
            {"n_users": [Int(0)], "embedding_dim": [Int(1)]},
            {"n_users": n_users, "embedding_dim": embedding_dim}, caller_name="MILKModule")
        self.modalities = check_block_sizes(modalities)
        self.encoders = nn.ModuleList(nn.Linear(d, embedding_dim) for d in self.modalities)
        self.user_embedding = nn.Embedding(n_users, embedding_dim)
        nn.init.normal_(self.user_embedding.weight, std=0.1)
        n_features = sum(self.modalities)
        if features is None:
            features = torch.zeros(0, n_features)
        if observed is None:
            observed = torch.ones(features.shape[0], len(self.modalities), dtype=torch.bool)
        self.register_buffer("features", torch.as_tensor(features, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("observed", torch.as_tensor(observed, dtype=torch.bool),
                             persistent=False)

    def project(self, x):
        """Per-modality projections of preprocessed content ``x``: shape (M, n, embedding_dim)."""
        blocks = torch.split(x, self.modalities, dim=1)
        return torch.stack([enc(b) for enc, b in zip(self.encoders, blocks)])

    def item_representation(self, x):
        """Inference representation of preprocessed content: the equal-weight mix."""
        return self.project(x).mean(dim=0)

    def forward(self, users, pos, neg):
        """The pieces of a training batch's objective.

        Returns
        -------
        parts : dict
            ``users`` (B, d) user embeddings; ``pos`` and ``neg`` (M, B, d) projections of the
            positive and negative items; ``unique_pos`` (M, U, d) projections of the batch's
            distinct positive items and ``unique_observed`` (U, M) their observed modalities.
        """
        unique, inverse = torch.unique(pos, return_inverse=True)
        proj_unique = self.project(self.features[unique])
        return {
            "users": self.user_embedding(users),
            "pos": proj_unique[:, inverse],
            "neg": self.project(self.features[neg]),
            "unique_pos": proj_unique,
            "unique_observed": self.observed[unique],
        }


def mix(projections, weights):
    """Environment representations ``sum_m w[e, m] * p[m]``: (M, n, d), (E, M) -> (E, n, d)."""
    return torch.einsum("em,mnd->end", weights, projections)


def bpr_risks(users, pos, neg, weights):
    """Mean BPR loss ``softplus(s_neg - s_pos)`` of the batch in each environment, shape (E,)."""
    s_pos = (mix(pos, weights) * users).sum(-1)
    s_neg = (mix(neg, weights) * users).sum(-1)
    return F.softplus(s_neg - s_pos).mean(dim=1)


def invariance_penalty(risks):
    """Unbiased variance of the environment risks (V-REx); 0 with a single environment."""
    if risks.numel() < 2:
        return risks.sum() * 0.0
    return risks.var(unbiased=True)


def alignment_loss(projections, observed):
    """Cross-modality alignment: MSE between the projections of each pair of modalities.

    Parameters
    ----------
    projections : torch.Tensor of shape (M, n, d)
        Per-modality projections of distinct items.
    observed : torch.Tensor of bool, shape (n, M)
        An item enters the pair (a, b) only when both of its modalities a and b were observed.

    Returns
    -------
    loss : torch.Tensor, scalar
        Sum over pairs ``a < b`` of the mean squared difference over the pair's items and
        dimensions; a pair with no item contributes 0.
    """
    M = projections.shape[0]
    total = projections.sum() * 0.0
    for a in range(M):
        for b in range(a + 1, M):
            both = observed[:, a] & observed[:, b]
            if both.any():
                total = total + F.mse_loss(projections[a, both], projections[b, both])
    return total


def embedding_penalty(users, pos, neg):
    """The batch mean of ``|u|^2 + |i_pos|^2 + |i_neg|^2``, items as equal-weight mixes (the
    authors' term; skmm before 0.1 halved it)."""
    squared = users.pow(2).sum(-1) + pos.mean(0).pow(2).sum(-1) + neg.mean(0).pow(2).sum(-1)
    return squared.mean()


class MILKLoss(nn.Module):
    """The MILK objective of a batch given its environments' weights.

    ``sum_e risk_e + reg_weight * norm + alignment_weight * alignment
    + invariance_weight * variance(risks)``.

    Parameters
    ----------
    reg_weight, alignment_weight, invariance_weight : float
        Weights of the embedding-norm penalty, the cross-modality alignment and the
        cross-environment invariance penalty.
    """

    def __init__(self, reg_weight=1e-4, alignment_weight=0.05, invariance_weight=50.0):
        super().__init__()
        validate_parameter_constraints(
            {name: [Real(0, None)]
             for name in ("reg_weight", "alignment_weight", "invariance_weight")},
            {"reg_weight": reg_weight, "alignment_weight": alignment_weight,
             "invariance_weight": invariance_weight}, caller_name="MILKLoss")
        self.reg_weight = reg_weight
        self.alignment_weight = alignment_weight
        self.invariance_weight = invariance_weight

    def forward(self, parts, weights):
        """Return a dict with the ``loss`` and each of its terms (tensors)."""
        risks = bpr_risks(parts["users"], parts["pos"], parts["neg"], weights)
        variance = invariance_penalty(risks)
        alignment = (alignment_loss(parts["unique_pos"], parts["unique_observed"])
                     if self.alignment_weight else risks.sum() * 0.0)
        norm = embedding_penalty(parts["users"], parts["pos"], parts["neg"])
        loss = (risks.sum() + self.reg_weight * norm + self.alignment_weight * alignment
                + self.invariance_weight * variance)
        return {"loss": loss, "risks": risks, "variance": variance, "alignment": alignment,
                "norm": norm}
