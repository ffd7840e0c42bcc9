"""Synthetic multimodal catalogues with planted taste structure."""

import numpy as np
import scipy.sparse as sp
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import validate_params

from .._validation import Int, Real, check_block_sizes


@validate_params(
    {
        "n_items": [Int(1)],
        "n_users": [Int(1)],
        "modalities": ["array-like"],
        "density": [Real(0, 1, closed="right")],
        "n_factors": [Int(1)],
        "modality_noise": [Real(0, None), "array-like"],
        "popularity": [Real(None, None)],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_multimodal(n_items=1000, n_users=500, modalities=(64, 32), density=0.02, *,
                    n_factors=8, modality_noise=0.5, popularity=1.0, random_state=None):
    """Generate items, users and interactions that share a latent taste space.

    Each item has a latent factor vector; each modality is a noisy random linear map of it, so
    every modality carries (partial, noisy) signal about the item. Users have latent factors
    too and interact with the items they score highest on, so the interactions carry the same
    signal and items liked by the same users have similar features.

    Parameters
    ----------
    n_items, n_users : int, default=1000, 500
        Catalogue and user-base sizes.
    modalities : sequence of int, default=(64, 32)
        Feature dimension of each modality.
    density : float in (0, 1], default=0.02
        Fraction of the item x user matrix that is an interaction (each user gets at least one).
    n_factors : int, default=8
        Dimension of the latent taste space.
    modality_noise : float or sequence of float, default=0.5
        Noise standard deviation relative to the signal, per modality: 0 makes features an
        exact linear function of the latent factors, large values drown the signal.
    popularity : float, default=1.0
        Scale of a per-item popularity bias added to every user's scores, making item degrees
        skewed like real catalogues (0 removes it).
    random_state : int, RandomState instance or None, default=None
        Seeds every draw.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``X`` (n_items, sum(modalities)) float32 features, ``Y`` binary CSR (n_items, n_users)
        interactions, ``modalities`` (block sizes), ``item_factors`` and ``user_factors``.

    Examples
    --------
    >>> from skmm.datasets import make_multimodal
    >>> data = make_multimodal(200, 100, (16, 8), density=0.05, random_state=0)
    >>> data.X.shape, data.Y.shape, data.modalities
    ((200, 24), (200, 100), [16, 8])
    """
    rng = check_random_state(random_state)
    sizes = list(check_block_sizes(modalities))
    noise = np.asarray(modality_noise, dtype=float)
    if noise.ndim > 1 or (noise.ndim == 1 and noise.size != len(sizes)) or (noise < 0).any() \
            or not np.isfinite(noise).all():
        raise ValueError(f"modality_noise must be a non-negative number or one per modality "
                         f"({len(sizes)}), got {modality_noise!r}.")
    noise = np.broadcast_to(noise, (len(sizes),))
    if n_items * n_users > 1 << 28:
        raise ValueError(f"n_items * n_users = {n_items * n_users} exceeds what this generator "
                         f"handles (it scores every user-item pair densely): at most 2**28.")
    V = rng.normal(size=(n_items, n_factors))
    U = rng.normal(size=(n_users, n_factors))
    bias = popularity * rng.normal(size=n_items)
    blocks = []
    for d, s in zip(sizes, noise):
        W = rng.normal(size=(n_factors, d)) / np.sqrt(n_factors)
        signal = V @ W
        blocks.append(signal + s * signal.std() * rng.normal(size=signal.shape))
    X = np.hstack(blocks).astype(np.float32)

    # Each user takes their top-scoring items; Gumbel noise makes the choice stochastic.
    per_user = max(1, int(round(density * n_items)))
    scores = (U @ V.T) / np.sqrt(n_factors) + bias + rng.gumbel(size=(n_users, n_items))
    top = np.argpartition(-scores, per_user - 1, axis=1)[:, :per_user]
    users = np.repeat(np.arange(n_users), per_user)
    Y = sp.csr_matrix((np.ones(users.size, np.float32), (top.ravel(), users)),
                      shape=(n_items, n_users))
    return Bunch(X=X, Y=Y, modalities=sizes, item_factors=V, user_factors=U)
