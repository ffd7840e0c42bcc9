"""FREEDOMRecommender: FREEDOM trained through skorch, under the items-as-samples data contract."""

import numpy as np
import scipy.sparse as sp
import torch
from skorch.callbacks import Callback
from sklearn.utils._param_validation import StrOptions

from .._bpr import BPRNet, RankingValidation, ValidatedEarlyStopping, training_pairs
from .._validation import Int, Real, check_block_sizes, check_interactions
from ..base import BaseRecommender
from ._graph import EdgePruner, _check_weights, item_knn_graph
from ._module import FREEDOMModule


class _FREEDOMNet(BPRNet):
    """BPR net whose every batch runs FREEDOM's forward over the epoch's pruned graph.

    ``train_adj_`` is the epoch's ``Ã``, set by :class:`_PruneEachEpoch` before the epoch's
    first batch; the loss is the module's own (BPR plus the weighted modality BPR terms).
    """

    def __init__(self, *args, modality_loss_weight=1e-5, **kwargs):
        super().__init__(*args, **kwargs)
        self.modality_loss_weight = modality_loss_weight

    def infer(self, x, **fit_params):
        # The whole graph is propagated for every batch, as the reference does: each batch's
        # loss depends on the current parameters through all of it.
        return self.module_(self.train_adj_)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        return self.module_.loss(y_pred, *self.batch_tensors(X),
                                 modality_loss_weight=self.modality_loss_weight)


class _PruneEachEpoch(Callback):
    """Draw the epoch's pruned user-item graph before its first batch (MMRec's
    ``pre_epoch_processing``), from one generator seeded by the fit."""

    def __init__(self, pruner, rng):
        self.pruner = pruner
        self.rng = rng

    def on_epoch_begin(self, net, **kwargs):
        net.train_adj_ = self.pruner.sample(self.rng)


class FREEDOMRecommender(BaseRecommender):
    """FREEDOM: a frozen item-item graph and a denoised user-item graph (warm start).

    FREEDOM (Zhou and Shen, ACM MM 2023) is the downstream recommender of the FeatProp paper:
    the items' (imputed, complete) features build, once, a k-nearest-neighbour item-item graph
    per modality, mixed and then **frozen**; the ID embeddings of users and items are
    propagated LightGCN-style over the user-item graph, whose edges are **pruned** at random
    every epoch (edges between high-degree nodes first), and each item adds the average of its
    neighbours' ID embeddings over the frozen graph. Training is BPR, plus small "modality
    BPR" terms that contrast the user vectors with projections of the (fine-tuned) features.
    The numbers follow MMRec's ``FREEDOM``, the authors' reference code.

    It is a warm-start model: it scores the items it was fitted on, for the users it was
    fitted on. Items in ``X`` without interactions in ``y`` are allowed (they are ranked).

    Parameters
    ----------
    modalities : sequence of int, default=None
        Column-block sizes splitting ``X`` into its ``M >= 1`` modalities, in column order,
        summing to ``n_features`` (``load_mmrec(...).modalities``). Each block gets its own
        kNN graph, projection and modality BPR term. None: ``X`` is one modality.
    n_factors : int, default=64
        Width of the ID embeddings and of the feature projections (MMRec's
        ``embedding_size`` and ``feat_embed_dim``, which must be equal).
    n_neighbors : int, default=10
        Neighbours per item in each modality's graph, the item itself included (``knn_k``).
    modality_weights : sequence of float, default=None
        Weight of each modality's graph in the mix, non-negative, summing to 1; None weighs
        them equally. MMRec's ``mm_image_weight = w`` is ``(w, 1 - w)`` for blocks (image,
        text), by default ``(0.1, 0.9)``.
    n_item_layers : int, default=1
        Multiplications by the item-item graph (``n_mm_layers``).
    n_layers : int, default=2
        LightGCN layers over the user-item graph (``n_ui_layers``).
    edge_dropout : float in [0, 1), default=0.8
        Fraction of the training interactions **removed** from the graph each epoch
        (MMRec's ``dropout``): 0.8 keeps 20%. 0 trains on the full graph.
    modality_loss_weight : float, default=1e-5
        Weight of the modality BPR terms (MMRec's ``reg_weight``; not an L2 penalty: FREEDOM
        has none). 0 leaves the features and projections untrained.
    zero_rows : {"raise", "rank_first"}, default="raise"
        All-zero feature rows have no cosine similarity: ``"raise"`` refuses them;
        ``"rank_first"`` reproduces MMRec's NaN ordering (every item's neighbour list starts
        with the all-zero items), for reproducing FeatProp's "zeros" baseline only (see
        :func:`skmm.freedom.knn_neighbors`).
    lr : float, default=1e-3
        Adam learning rate (``learning_rate``; no weight decay, constant rate).
    batch_size : int, default=2048
        (user, positive, negative) triples per step (``train_batch_size``).
    max_epochs : int, default=1000
        Most passes over the training interactions (``epochs``).
    patience : int, default=20
        MMRec's ``stopping_step``: training stops at the ``patience + 1``-th consecutive
        epoch whose validation Recall@k is not strictly above the best so far, and the best
        epoch's weights are restored.
    validation_fraction : float in [0, 1), default=0.1
        Without ``y_val``: the share of each user's interactions held out (never trained on)
        to early-stop on their Recall@k, as MMRec validates on its own split of interactions.
        A user with ``n`` interactions gives ``min(n - 1, floor(fraction * n + 0.5))`` of
        them. 0, or no user giving any, trains for ``max_epochs`` without validation.
    k : int, default=20
        Cut-off of the validation Recall@k and of :meth:`recommend`, :meth:`predict` and
        :meth:`score` (``topk``; MMRec validates on Recall@20).
    device : str or torch.device, default="auto"
        Where the graphs are built, training and scoring run (``"auto"``: CUDA when
        available). Fitted state is kept on the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the validation split, the per-epoch pruning, shuffling and
        negative sampling. With an int, results are identical across runs on the CPU.
    verbose : int, default=0
        Print skorch's per-epoch table (training loss, validation recall) when positive.

    Attributes
    ----------
    module_ : FREEDOMModule
        The trained embeddings, fine-tuned features and projections, and the two graphs
        (the frozen item graph and the normalised training graph ``Â``), on the CPU.
    history_ : skorch.History
        Per-epoch training loss (``train_loss``), validation Recall@k (``valid_recall``) and
        durations.
    n_epochs_ : int
        Epochs run.
    best_epoch_ : int
        The epoch whose weights were kept: the best validated one (the last without
        validation).
    validation_interactions_ : scipy.sparse.csr_matrix of shape (n_items, n_users)
        The interactions early stopping scored (held out of ``y``, or ``y_val`` restricted
        to users with training interactions); empty without validation.
    interactions_ : scipy.sparse.csr_matrix of shape (n_items, n_users)
        All of ``y``, excluded by :meth:`recommend`, :meth:`predict` and :meth:`score`
        (held-out validation interactions included).
    modalities_ : tuple of int
        The validated block sizes.
    n_items_, n_users_ : int
        Catalogue and user-base sizes seen in :meth:`fit`.
    n_pairs_ : int
        Interactions trained on.
    device_ : str
        The device training ran on.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    See Also
    --------
    FeatPropImputer : completes missing modalities; FREEDOM needs complete features.
    VBPRRecommender : another warm-start content-aware recommender.

    Notes
    -----
    **Model.** With ``E_u``, ``E_i`` the ID embeddings, ``M`` the frozen item graph and ``A``
    the normalised user-item graph (the epoch's pruned ``Ã`` in training, the full ``Â`` when
    scoring)::

        H = M^n_item_layers E_i;  X_0 = [E_u; E_i];  X_l = A X_(l-1);  X = mean(X_0..X_L)
        u_final = X[users];  i_final = X[items] + H;  score(u, i) = u_final . i_final

    The features never enter a score directly: they build ``M`` (at fit, frozen; new feature
    values need a refit) and shape the users through the loss ``BPR(u, i+, i-) +
    modality_loss_weight * sum_m BPR(u, P_m(i+), P_m(i-))``, ``P_m = F_m W_m^T + b_m`` with
    ``F_m`` a trainable **copy** of the modality's features (the input is never changed).
    See :ref:`freedom` for the graphs' exact values.

    **Training.** Each epoch draws the pruned graph (``int(|E| (1 - edge_dropout))`` edges
    kept, without replacement, with probability proportional to ``1 / sqrt(d_u d_i)``, then
    re-normalised), shuffles the training interactions and draws, per interaction, one
    negative uniformly among the items with training interactions that the user has not
    interacted with. Every batch propagates the whole graph.

    **Validation and what is kept.** Early stopping ranks, for every user with held-out
    interactions, all items but their training ones, on the full graph ``Â``. Improvement
    is strict and unrounded (MMRec rounds metrics to 4 decimals first). The best epoch's
    weights are restored, so :meth:`decision_function` is the validated model; MMRec
    reports the best epoch's metrics but keeps the last epoch's weights. The held-out
    interactions of ``validation_fraction`` reach neither the graphs nor the BPR pairs; they
    are still excluded by :meth:`recommend`, being part of ``y``.

    **Users without training interactions** keep ``E_u / (n_layers + 1)`` of their random
    initialisation: their scores are noise. They are left out of validation; :meth:`score`
    warns when ``y`` holds positives of theirs (MMRec leaves them out of evaluation).

    **Warm start.** The rows of ``X`` given to :meth:`decision_function`,
    :meth:`recommend`, :meth:`predict` and :meth:`score` must be fitted items, recognised by
    their content (bit-identical rows of the fitted ``X``, in any order or subset); any other
    row raises ``ValueError``. Evaluate it by holding out interactions, not items: an
    item-KFold's test items would be unfitted rows, with no ID embedding, no place in either
    graph and no training interaction, which a warm-start model cannot score.

    **Determinism.** CPU results depend on the seed alone. On CUDA, sparse products sum in
    another order, so results differ from the CPU's (and may vary slightly between runs).

    References
    ----------
    .. [1] X. Zhou and Z. Shen. "A Tale of Two Graphs: Freezing and Denoising Graph
       Structures for Multimodal Recommendation". ACM MM 2023, arXiv:2211.06924.
    .. [2] D. Malitesta, E. Rossi, C. Pomo, F. D. Malliaros, T. Di Noia. "Dealing with
       Missing Modalities in Multimodal Recommendation: a Feature Propagation-based
       Approach". arXiv:2403.19841, 2024.

    Examples
    --------
    >>> from skmm import FREEDOMRecommender
    >>> from skmm.datasets import make_multimodal
    >>> data = make_multimodal(200, 100, (16, 8), density=0.05, random_state=0)
    >>> model = FREEDOMRecommender(data.modalities, max_epochs=3, device="cpu",
    ...                            random_state=0)
    >>> model.fit(data.X, data.Y).recommend(data.X, k=3).shape
    (100, 3)
    >>> model.decision_function(data.X).shape  # (n_items, n_users)
    (200, 100)
    """

    _parameter_constraints: dict = {
        **BaseRecommender._parameter_constraints,
        "modalities": ["array-like", None],
        "n_factors": [Int(1)],
        "n_neighbors": [Int(1)],
        "modality_weights": ["array-like", None],
        "n_item_layers": [Int(0)],
        "n_layers": [Int(0)],
        "edge_dropout": [Real(0, 1, closed="left")],
        "modality_loss_weight": [Real(0, None)],
        "zero_rows": [StrOptions({"raise", "rank_first"})],
        "patience": [Int(0)],
        "validation_fraction": [Real(0, 1, closed="left")],
    }
    _transductive = True

    def __init__(self, modalities=None, n_factors=64, n_neighbors=10, modality_weights=None,
                 n_item_layers=1, n_layers=2, edge_dropout=0.8, modality_loss_weight=1e-5,
                 zero_rows="raise", lr=1e-3, batch_size=2048, max_epochs=1000, patience=20,
                 validation_fraction=0.1, k=20, device="auto", random_state=None, verbose=0):
        self.modalities = modalities
        self.n_factors = n_factors
        self.n_neighbors = n_neighbors
        self.modality_weights = modality_weights
        self.n_item_layers = n_item_layers
        self.n_layers = n_layers
        self.edge_dropout = edge_dropout
        self.modality_loss_weight = modality_loss_weight
        self.zero_rows = zero_rows
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.k = k
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y, y_val=None):
        """Build the item graph from ``X`` and train on the interactions ``y``.

        Parameters
        ----------
        X : array-like of shape (n_items, n_features)
            Complete item features, one column block per modality (impute missing
            modalities first, e.g. with :class:`FeatPropImputer` in a
            :class:`~sklearn.pipeline.Pipeline`). Every item to be scored later must be here.
        y : {array-like, sparse matrix} of shape (n_items, n_users)
            Training interactions, items as rows; any non-zero value is one interaction.
        y_val : {array-like, sparse matrix} of shape (n_items, n_users), default=None
            Validation interactions for early stopping (MMRec's validation split): all of
            ``y`` is then trained on and ``validation_fraction`` is not used. Entries of
            users without interactions in ``y`` are ignored, as MMRec ignores them.

        Returns
        -------
        self : FREEDOMRecommender
            The fitted recommender.
        """
        return super().fit(X, y, y_val=y_val)

    def _fit(self, X, Y, *, seed, device, y_val=None):
        sizes = ((X.shape[1],) if self.modalities is None
                 else check_block_sizes(self.modalities, X.shape[1]))
        try:
            weights = _check_weights(self.modality_weights, len(sizes))
        except ValueError as exc:
            raise ValueError(f"modality_weights: {exc}") from None
        if self.n_neighbors > X.shape[0]:
            raise ValueError(f"n_neighbors={self.n_neighbors} exceeds the number of items: X "
                             f"has n_samples={X.shape[0]} rows (items).")
        rng_split, rng_batches, rng_prune = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
        Y_fit, Y_val = self._validation_split(Y, y_val, rng_split)
        n_items, n_users = Y.shape
        M = item_knn_graph(X, sizes, self.n_neighbors, weights=weights, zero_rows=self.zero_rows,
                           device=device)
        # Both graphs and the pairs come from the trained interactions only: held-out
        # validation interactions never reach training.
        pruner = EdgePruner(Y_fit, self.edge_dropout, device=device)
        pairs, sampler = training_pairs(Y_fit, np.flatnonzero(Y_fit.getnnz(axis=1)))
        blocks = np.split(X, np.cumsum(sizes)[:-1], axis=1)
        callbacks = [("prune", _PruneEachEpoch(pruner, rng_prune))]
        if Y_val.nnz:
            callbacks += [
                ("validation", RankingValidation(
                    lambda module, device: module.final_factors(), Y_val, self.k,
                    metric="recall", exclude=Y_fit, name="valid_recall")),
                # MMRec stops once the count of non-improving epochs exceeds stopping_step.
                ("early_stopping", ValidatedEarlyStopping(
                    monitor="valid_recall", patience=self.patience + 1, threshold=0.0,
                    threshold_mode="abs", lower_is_better=False, load_best=True)),
            ]
        trainer = self._train(
            lambda: FREEDOMModule(n_users, n_items, blocks, M, pruner.adjacency,
                                  n_factors=self.n_factors, n_item_layers=self.n_item_layers,
                                  n_layers=self.n_layers),
            pairs, sampler, rng_batches, seed=seed, device=device, net=_FREEDOMNet,
            callbacks=callbacks, modality_loss_weight=self.modality_loss_weight,
            # One fused kernel per step instead of a chain of per-tensor ops: the trainable
            # feature copies make the parameters large (5x faster steps measured on the CPU).
            optimizer__fused=True)
        return {**self._training_summary(trainer), "modalities_": sizes, "n_items_": n_items,
                "n_pairs_": len(pairs), "validation_interactions_": Y_val}

    def _validation_split(self, Y, y_val, rng):
        """``(Y_fit, Y_val)``: the interactions trained on and those early stopping scores."""
        if y_val is not None:
            Y_val = check_interactions(y_val, Y.shape[0], name="y_val")
            if Y_val.shape[1] != Y.shape[1]:
                raise ValueError(f"y_val has {Y_val.shape[1]} user columns but y has "
                                 f"{Y.shape[1]}.")
            # Users without training interactions are not evaluated (MMRec's
            # filter_out_cod_start_users).
            Y_val = sp.csr_matrix(Y_val @ sp.diags((Y.getnnz(axis=0) > 0).astype(np.float32)))
            Y_val.eliminate_zeros()
            return Y, Y_val
        coo = Y.T.tocoo()  # by user
        n = np.bincount(coo.row, minlength=Y.shape[1])
        n_val = np.minimum(n - 1, np.floor(self.validation_fraction * n + 0.5)).astype(np.int64)
        # A random rank of each interaction within its user: the lowest n_val are held out.
        order = np.lexsort((rng.random(coo.nnz), coo.row))
        rank = np.empty(coo.nnz, np.int64)
        starts = np.concatenate(([0], np.cumsum(n)[:-1]))
        rank[order] = np.arange(coo.nnz) - np.repeat(starts, n)
        held = rank < n_val[coo.row]
        make = lambda sel: sp.csr_matrix(  # noqa: E731
            (np.ones(sel.sum(), np.float32), (coo.col[sel], coo.row[sel])), shape=Y.shape)
        return make(~held), make(held)

    # ------------------------------------------------------------------ scoring

    def _factors(self, X, items, device):
        # One full-graph pass gives every fitted item's factors, once per device.
        U, V = self._scoring.get(device, "factors",
                                 lambda: self._device_module(device).final_factors())
        return U, V[torch.as_tensor(items, device=device)]
