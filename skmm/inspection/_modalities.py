"""How well each modality alone ranks held-out items, for a fitted MILK."""

import numpy as np
import torch
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch
from sklearn.utils._param_validation import validate_params
from sklearn.utils.validation import check_is_fitted

from .._validation import Int, check_interactions, resolve_device
from ..base import _ITEM_CHUNK
from ..metrics._ranking import METRICS, evaluate_factors
from ..milk import MILKRecommender
from ..milk._estimator import _fill, _normalise_blocks

#: The name of the equal mix, MILK's inference representation, in the result.
MIX = "mix"


@validate_params(
    {
        "estimator": [MILKRecommender, Pipeline],
        "X": ["array-like"],
        "y": ["array-like", "sparse matrix"],
        "k": [Int(1)],
        "metrics": [list, tuple],
        "modality_names": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def modality_ranking(estimator, X, y, *, k=20, metrics=("ndcg", "recall"),
                     modality_names=None):
    """How well each modality alone ranks the items ``X``, against the equal mix.

    A fitted :class:`~skmm.MILKRecommender` represents an item by the equal mix
    ``(1/M) sum_m P_m(x_m)`` of its modalities' projections. This ranks the rows of ``X``
    for every user once with each projection ``P_m(x_m)`` alone as the item representation,
    and once with the mix, and reports the top-``k`` metrics of each ranking against the
    held-out interactions ``y``: a modality whose projection alone ranks far below the mix
    (or near chance) is weak, and MILK's environments, which score items under mixes
    dominated by one modality, then train on it.

    Parameters
    ----------
    estimator : MILKRecommender or Pipeline
        A fitted MILK, or a fitted :class:`~sklearn.pipeline.Pipeline` whose last step is
        one; the steps before it transform ``X`` first (e.g. an imputer).
    X : array-like of shape (n_items, n_features)
        The items to rank, typically held-out new items with every modality observed. A row
        missing modality ``m`` (a NaN in its block) is represented in that modality by the
        projection of MILK's fill value, as at prediction.
    y : {array-like, sparse matrix} of shape (n_items, n_users)
        Their held-out interactions with the fitted users.
    k : int, default=20
        Cut-off of the metrics.
    metrics : sequence of {"recall", "ndcg", "precision", "hit_rate"}, \
            default=("ndcg", "recall")
        The metrics, as :func:`skmm.metrics.evaluate_factors` computes them.
    modality_names : sequence of str, default=None
        A name for each modality, in column order; None names them ``modality_0``,
        ``modality_1``, ...

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``names``: the modality names then ``"mix"``; one float array per metric, aligned
        with ``names`` (the mean over users with a positive in ``y``); ``k``.

    Notes
    -----
    Each user ranks the rows of ``X`` only, and rows recognised as fitted items lose the
    user's fitted interactions, as in :meth:`MILKRecommender.evaluate`: the ``"mix"`` entry
    is exactly what ``evaluate`` reports. A per-user ranking does not change when every item
    representation is scaled by the same positive factor, so ``P_m`` alone ranks as the
    environment that puts all its weight on modality ``m`` does.

    Examples
    --------
    >>> from skmm import MILKRecommender
    >>> from skmm.datasets import make_multimodal
    >>> from skmm.inspection import modality_ranking
    >>> data = make_multimodal(300, 100, (16, 8), density=0.05, random_state=0)
    >>> model = MILKRecommender(data.modalities, max_epochs=5, device="cpu",
    ...                         random_state=0).fit(data.X[:250], data.Y[:250])
    >>> result = modality_ranking(model, data.X[250:], data.Y[250:], k=10,
    ...                           modality_names=["text", "audio"])
    >>> result.names
    ['text', 'audio', 'mix']
    >>> result.ndcg.shape, result.recall.shape
    ((3,), (3,))
    """
    metrics = tuple(dict.fromkeys(metrics))
    if not metrics or any(m not in METRICS for m in metrics):
        raise ValueError(f"metrics must be a non-empty sequence of {list(METRICS)}, got "
                         f"{metrics!r}.")
    milk, X = _final_milk(estimator, X)
    X, _, matches = milk._items(X)
    names = _modality_names(modality_names, len(milk.modalities_))
    Y = check_interactions(y, X.shape[0], name="y")
    if Y.shape[1] != milk.n_users_:
        raise ValueError(f"y has {Y.shape[1]} user columns but the model was fitted on "
                         f"{milk.n_users_} users.")
    U, P = _projections(milk, X)
    seen = (matches @ milk.interactions_).tocsr()
    # Each projection alone, then the equal mix (MILK's item representation).
    values = [evaluate_factors(Y, U, V, k=k, exclude=seen, metrics=metrics)
              for V in (*P, P.mean(dim=0))]
    return Bunch(names=names + [MIX], k=k,
                 **{m: np.array([v[m] for v in values]) for m in metrics})


def _final_milk(estimator, X):
    """The fitted MILK at the end of ``estimator`` and ``X`` as it receives it."""
    if isinstance(estimator, Pipeline):
        milk = estimator.steps[-1][1]
        if not isinstance(milk, MILKRecommender):
            raise TypeError(f"The 'estimator' parameter of modality_ranking must be a "
                            f"MILKRecommender or a Pipeline ending in one; the Pipeline ends "
                            f"in {type(milk).__name__}.")
        check_is_fitted(milk)
        if len(estimator.steps) > 1:
            X = estimator[:-1].transform(X)
        return milk, X
    check_is_fitted(estimator)
    return estimator, X


def _modality_names(names, n_modalities):
    if names is None:
        return [f"modality_{m}" for m in range(n_modalities)]
    names = list(names)
    if (len(names) != n_modalities or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names) or MIX in names):
        raise ValueError(f"modality_names must be {n_modalities} distinct strings (one per "
                         f"modality of the model), none of them {MIX!r}, got {names!r}.")
    return names


def _projections(milk, X):
    """User embeddings (n_users, d) and each modality's projections (M, n_items, d) of the
    rows of ``X``, preprocessed as MILK preprocesses them (normalised, missing blocks
    filled), on the model's scoring device."""
    Z, observed = _normalise_blocks(X, milk.modalities_)
    Z = _fill(Z, observed, milk.modalities_, milk.fill_values_)
    device = resolve_device(milk.device)
    module = milk._device_module(device)
    with torch.no_grad():
        parts = [module.project(torch.from_numpy(Z[s:s + _ITEM_CHUNK]).to(device))
                 for s in range(0, Z.shape[0], _ITEM_CHUNK)]
        P = (torch.cat(parts, dim=1) if parts else
             torch.zeros(len(milk.modalities_), 0, module.user_embedding.embedding_dim,
                         device=device))
    return module.user_embedding.weight.detach(), P
