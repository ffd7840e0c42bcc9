"""VBPRRecommender: VBPR trained through skorch, under the items-as-samples data contract."""

from numbers import Integral, Real

import numpy as np
import torch
from skorch import NeuralNet
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from .._random import seeded_global_generator
from .._sampling import BPRBatches, NegativeSampler
from .._validation import (
    check_interactions,
    check_users,
    interaction_target_tags,
    masked_to_nan,
    resolve_device,
)
from ..metrics._ranking import _check_k, factor_ndcg, factor_topk_per_user
from ._module import VBPRModule, vbpr_penalty


class _BPRLoss(torch.nn.Module):
    """Mean BPR loss ``softplus(s_neg - s_pos)`` of a batch of (positive, negative) scores."""

    def forward(self, y_pred, y_true=None):
        s_pos, s_neg = y_pred
        return torch.nn.functional.softplus(s_neg - s_pos).mean()


class _VBPRNet(NeuralNet):
    """skorch net adding VBPR's regulariser, scaled like the mean BPR loss, to training steps."""

    def __init__(self, *args, reg_weight=0.01, bias_reg=0.01, projection_reg=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.reg_weight = reg_weight
        self.bias_reg = bias_reg
        self.projection_reg = projection_reg

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        if training:
            penalty = vbpr_penalty(self.module_, X["users"].to(self.device),
                                   X["pos"].to(self.device), X["neg"].to(self.device),
                                   reg_weight=self.reg_weight, bias_reg=self.bias_reg,
                                   projection_reg=self.projection_reg)
            loss = loss + penalty / X["users"].shape[0]
        return loss


class VBPRRecommender(BaseEstimator):
    """Visual Bayesian Personalized Ranking: ID factors plus projected item content.

    VBPR (He and McAuley, 2016) scores user ``u`` and item ``i`` as
    ``b_i + gamma_u . gamma_i + theta_u . (E f_i) + beta' . f_i`` with ``f_i`` the item's
    (complete) content vector, and learns all parameters with the BPR pairwise loss. It is a
    warm-start model: it ranks the items it was fitted on, for the users it was fitted on. In
    the FeatProp experiment it is the downstream model trained on imputed features.

    The objective and hyper-parameters mirror Cornac's ``VBPR`` (``k``, ``k2``, ``lambda_w``,
    ``lambda_b``, ``lambda_e``, ``learning_rate``) so that results can be compared directly.

    Parameters
    ----------
    n_factors : int, default=10
        Dimension of the ID factors ``gamma`` (Cornac's ``k``).
    n_content_factors : int, default=10
        Dimension of the content factors ``theta`` (Cornac's ``k2``).
    reg_weight : float, default=0.01
        L2 weight of the user and item factors (Cornac's ``lambda_w``).
    bias_reg : float, default=0.01
        L2 weight of the positive item's bias, a tenth of it for the negative item's bias
        (Cornac's ``lambda_b``).
    projection_reg : float, default=0.0
        L2 weight of the content projection ``E`` and content bias ``beta'`` (``lambda_e``).
    lr : float, default=0.005
        Adam learning rate.
    batch_size : int, default=100
        (user, positive, negative) triples per step.
    max_epochs : int, default=50
        Passes over the training interactions; each draws fresh negatives.
    k : int, default=20
        Cut-off of :meth:`recommend`, :meth:`predict` and :meth:`score` (NDCG@k).
    device : str or torch.device, default="auto"
        Where training and scoring run (``"auto"``: CUDA when available).
    random_state : int or None, default=None
        Seeds initialisation, shuffling and negative sampling.
    verbose : int, default=0
        Print skorch's per-epoch table when positive.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained net; ``net_.module_`` holds the factors, ``net_.history`` the losses.
    interactions_ : scipy.sparse.csr_matrix of shape (n_items, n_users)
        The training interactions, excluded from rankings by :meth:`score`.
    n_items_, n_users_ : int
        Catalogue and user-base sizes seen in :meth:`fit`.
    n_features_in_ : int
        Number of features seen during :term:`fit`.

    Examples
    --------
    >>> from skmm import VBPRRecommender
    >>> from skmm.datasets import make_multimodal
    >>> data = make_multimodal(200, 100, (8, 8), density=0.05, random_state=0)
    >>> model = VBPRRecommender(max_epochs=2, device="cpu", random_state=0)
    >>> model.fit(data.X, data.Y).recommend(data.X, k=3).shape
    (100, 3)
    """

    _parameter_constraints: dict = {
        "n_factors": [Interval(Integral, 1, None, closed="left")],
        "n_content_factors": [Interval(Integral, 1, None, closed="left")],
        "reg_weight": [Interval(Real, 0, None, closed="left")],
        "bias_reg": [Interval(Real, 0, None, closed="left")],
        "projection_reg": [Interval(Real, 0, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "k": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, n_factors=10, n_content_factors=10, reg_weight=0.01, bias_reg=0.01,
                 projection_reg=0.0, lr=0.005, batch_size=100, max_epochs=50, k=20,
                 device="auto", random_state=None, verbose=0):
        self.n_factors = n_factors
        self.n_content_factors = n_content_factors
        self.reg_weight = reg_weight
        self.bias_reg = bias_reg
        self.projection_reg = projection_reg
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.k = k
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        return interaction_target_tags(tags, required=True)

    def _validate_X(self, X, reset):
        X = validate_data(self, masked_to_nan(X), dtype=np.float32, reset=reset)
        return X

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train on the interactions ``y`` of the items ``X``.

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
            Complete item content (impute missing modalities first, e.g. with
            :class:`FeatPropImputer` in a :class:`~sklearn.pipeline.Pipeline`).
        y : {array-like, sparse matrix} of shape (n_items, n_users)
            Training interactions, items as rows.

        Returns
        -------
        self : VBPRRecommender
            The fitted recommender.
        """
        X = self._validate_X(X, reset=True)
        Y = check_interactions(y, X.shape[0], name="y")
        if Y.nnz == 0:
            raise ValueError("y has no interactions to train on.")
        device = resolve_device(self.device)
        seed = np.random.RandomState(self.random_state).randint(2**31 - 1) \
            if not isinstance(self.random_state, Integral) else int(self.random_state)
        rng = np.random.default_rng(seed)
        coo = Y.tocoo()
        pairs = np.stack([coo.col, coo.row], axis=1).astype(np.int64)  # (user, item)
        self.n_items_, self.n_users_ = Y.shape
        self.interactions_ = Y
        self.net_ = _VBPRNet(
            VBPRModule,
            module__n_users=self.n_users_,
            module__n_items=self.n_items_,
            module__features=torch.from_numpy(X),
            module__n_factors=self.n_factors,
            module__n_content_factors=self.n_content_factors,
            criterion=_BPRLoss,
            optimizer=torch.optim.Adam,
            lr=self.lr,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            iterator_train=BPRBatches,
            iterator_train__sampler=NegativeSampler(Y),
            iterator_train__rng=rng,
            train_split=None,
            reg_weight=self.reg_weight,
            bias_reg=self.bias_reg,
            projection_reg=self.projection_reg,
            device=device,
            verbose=self.verbose,
        )
        # The module's initial weights come from torch's global generator, seeded for this fit
        # only (see seeded_global_generator); training draws from the numpy generator alone.
        # skorch's fit is initialize() followed by partial_fit().
        with seeded_global_generator(seed):
            self.net_.initialize()
        self.net_.partial_fit(pairs, None)
        return self

    def _check_items(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        if X.shape[0] != self.n_items_:
            raise ValueError(f"VBPR is a warm-start model: X must hold the {self.n_items_} "
                             f"fitted items, in order; got {X.shape[0]} rows.")
        return X

    def _factors(self, X):
        """User and item factor matrices whose product is :meth:`decision_function`'s
        transpose, as float32 tensors on the model's device."""
        module = self.net_.module_
        dev = next(module.parameters()).device
        with torch.no_grad():
            return module.factor_matrices(torch.from_numpy(X).to(dev))

    def decision_function(self, X):
        """Scores of every item (rows) for every user (columns).

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
            The fitted items' content.

        Returns
        -------
        scores : ndarray of shape (n_items, n_users)
            Higher means more recommended.
        """
        X = self._check_items(X)
        U, V = self._factors(X)
        with torch.no_grad():
            return (V @ U.T).cpu().numpy()

    def recommend(self, X, k=None, users=None, exclude_seen=True):
        """The top-``k`` items of each user, best first.

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
            The fitted items' content.
        k : int, default=None
            How many items per user; None uses the estimator's ``k``.
        users : array-like of int, default=None
            The users to recommend for; None means all.
        exclude_seen : bool, default=True
            Leave out each user's training interactions.

        Returns
        -------
        items : ndarray of int64, shape (n_selected_users, min(k, n_items))
            Row indices of ``X``, best first; among equal scores the lower index first.
        """
        X = self._check_items(X)
        k = self.k if k is None else _check_k(k)
        users = check_users(users, self.n_users_)
        U, V = self._factors(X)
        exclude = self.interactions_.T.tocsr() if exclude_seen else None
        with torch.no_grad():
            out = [top.cpu().numpy() for _, top, _ in factor_topk_per_user(
                U, V, users, k, exclude=exclude)]
        return np.concatenate(out) if out else np.zeros((0, min(k, self.n_items_)), np.int64)

    def score(self, X, y):
        """Mean NDCG@k over users with a positive in ``y``, training interactions excluded.

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
            The fitted items' content.
        y : {array-like, sparse matrix} of shape (n_items, n_users)
            Held-out interactions of the same items and users.

        Returns
        -------
        score : float
            NDCG@k over each user's full ranking, computed block by block (the score matrix
            is never built); NaN, with a warning, when no user has a positive in ``y``.
        """
        X = self._check_items(X)
        Y = check_interactions(y, X.shape[0], name="y")
        if Y.shape[1] != self.n_users_:
            raise ValueError(f"y has {Y.shape[1]} user columns but the model was fitted on "
                             f"{self.n_users_} users.")
        U, V = self._factors(X)
        return factor_ndcg(Y, U, V, k=self.k, exclude=self.interactions_)
