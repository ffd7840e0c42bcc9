"""VBPRRecommender: VBPR trained through skorch, under the items-as-samples data contract."""

import numpy as np
import torch

from .._bpr import BPRNet, training_pairs
from .._validation import Int, Real
from ..base import BaseRecommender
from ._module import VBPRModule, vbpr_penalty


class _VBPRNet(BPRNet):
    """BPR plus VBPR's regulariser, scaled like the mean BPR loss."""

    def __init__(self, *args, reg_weight=0.01, bias_reg=0.01, projection_reg=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.reg_weight = reg_weight
        self.bias_reg = bias_reg
        self.projection_reg = projection_reg

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        if training:
            penalty = vbpr_penalty(self.module_, *self.batch_tensors(X),
                                   reg_weight=self.reg_weight, bias_reg=self.bias_reg,
                                   projection_reg=self.projection_reg)
            loss = loss + penalty / X["users"].shape[0]
        return loss


class VBPRRecommender(BaseRecommender):
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
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and negative sampling. With an int, results are
        identical across runs on the CPU.
    verbose : int, default=0
        Print skorch's per-epoch table when positive.

    Attributes
    ----------
    module_ : VBPRModule
        The trained factors and the fitted content, on the CPU.
    history_ : skorch.History
        Per-epoch training loss (``train_loss``) and durations.
    n_epochs_ : int
        Epochs run (0 when ``y`` leaves no negative to draw: the initial weights are kept).
    best_epoch_ : int
        The epoch whose weights were kept: the last one (VBPR does not stop early).
    interactions_ : scipy.sparse.csr_matrix of shape (n_items, n_users)
        The training interactions, excluded by :meth:`recommend`, :meth:`predict` and
        :meth:`score`.
    n_items_, n_users_ : int
        Catalogue and user-base sizes seen in :meth:`fit`.
    n_pairs_ : int
        Training interactions used (those of users with at least one possible negative).
    device_ : str
        The device training ran on.
    n_features_in_ : int
        Number of features seen during :term:`fit`.

    See Also
    --------
    MILKRecommender : a content model for new (cold-start) items.

    Notes
    -----
    **Input.** ``fit(X, y)`` takes complete item content (impute missing modalities first,
    e.g. with :class:`FeatPropImputer` in a :class:`~sklearn.pipeline.Pipeline`) and the
    training interactions, items as rows.

    **Warm start.** VBPR learns an ID factor per item, so it scores the items it was fitted
    on, for the users it was fitted on. The rows of ``X`` given to :meth:`decision_function`,
    :meth:`recommend`, :meth:`predict` and :meth:`score` must be fitted items, recognised by
    their content (bit-identical rows of the fitted ``X``, in any order or subset); any other
    row raises ``ValueError``, as does a row whose content several fitted items share unless
    ``X`` is the whole fitted matrix in order. Evaluate it by holding out interactions, not
    items.

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
        **BaseRecommender._parameter_constraints,
        "n_factors": [Int(1)],
        "n_content_factors": [Int(1)],
        "reg_weight": [Real(0, None)],
        "bias_reg": [Real(0, None)],
        "projection_reg": [Real(0, None)],
    }
    _transductive = True

    def __init__(self, n_factors=10, n_content_factors=10, reg_weight=0.01, bias_reg=0.01,
                 projection_reg=0.0, lr=0.005, batch_size=100, max_epochs=50, k=20,
                 device="auto", random_state=None, verbose=0):
        super().__init__(lr=lr, batch_size=batch_size, max_epochs=max_epochs, k=k,
                         device=device, random_state=random_state, verbose=verbose)
        self.n_factors = n_factors
        self.n_content_factors = n_content_factors
        self.reg_weight = reg_weight
        self.bias_reg = bias_reg
        self.projection_reg = projection_reg

    def _fit(self, X, Y, *, seed, device):
        pairs, sampler = training_pairs(Y)
        n_items, n_users = Y.shape
        # Training draws from the numpy generator alone: shuffling and negatives.
        trainer = self._train(
            lambda: VBPRModule(n_users, n_items, torch.from_numpy(X), self.n_factors,
                               self.n_content_factors),
            pairs, sampler, np.random.default_rng(seed), seed=seed, device=device,
            net=_VBPRNet, reg_weight=self.reg_weight, bias_reg=self.bias_reg,
            projection_reg=self.projection_reg)
        return {**self._training_summary(trainer), "n_items_": n_items,
                "n_pairs_": len(pairs)}

    def _factors(self, X, items, device):
        # Factors of every fitted item, once per device; the rows of X select theirs.
        U, V = self._scoring.get(device, "factors", lambda: self._device_module(
            device).factor_matrices())
        return U, V[torch.as_tensor(items, device=device)]
