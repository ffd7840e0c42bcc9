"""MILKRecommender: new-item recommendation robust to missing modalities, trained via skorch."""

import copy
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import unpack_data
from torch.utils.data import DataLoader

from .._random import seeded_global_generator
from .._validation import (
    check_block_sizes,
    check_interactions,
    check_users,
    interaction_target_tags,
    masked_to_nan,
    resolve_device,
)
from ..metrics._ranking import _check_k, factor_ndcg, factor_topk_per_user
from ._dataset import NegativeSamplingDataset, ShuffledBatches
from ._module import ENVIRONMENTS, EnvironmentSampler, MILKLoss, MILKModule

# Items projected at once when scoring: bounds the device memory of a large catalogue.
_ITEM_CHUNK = 1 << 16


class _MILKNet(NeuralNet):
    """skorch net whose training step draws the minibatch's environments before the loss."""

    def __init__(self, *args, environments=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.environments = environments

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, _ = unpack_data(batch)
        weights = torch.as_tensor(self.environments.draw(), device=self.device)
        parts = self.infer(Xi, **fit_params)
        terms = self.criterion_(parts, weights)
        terms["loss"].backward()
        self.history.record_batch("train_variance", terms["variance"].item())
        self.history.record_batch("train_alignment", terms["alignment"].item())
        return {"loss": terms["loss"], "y_pred": parts}


class _ColdStartValidation(Callback):
    """Record the NDCG@k of held-out items ranked among themselves, every ``interval`` epochs."""

    def __init__(self, features, Y_val, k, interval=1, name="valid_ndcg"):
        self.features = features
        self.Y_val = Y_val
        self.k = k
        self.interval = interval
        self.name = name

    def on_train_begin(self, net, **kwargs):
        self.features_ = self.features.to(net.device)
        self.best_ = -np.inf

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) % self.interval:
            return
        module = net.module_
        was_training = module.training
        module.eval()
        with torch.no_grad():
            items = module.item_representation(self.features_)
            users = module.user_embedding.weight
            value = factor_ndcg(self.Y_val, users, items, k=self.k, warn=False)
        module.train(was_training)
        net.history.record(self.name, float(value))
        # PrintLog highlights keys ending in "_best".
        net.history.record(self.name + "_best", bool(value > self.best_))
        self.best_ = max(self.best_, value)

    def on_train_end(self, net, **kwargs):
        self.features_ = None


class _ValidatedEarlyStopping(EarlyStopping):
    """skorch's early stopping, counting only the epochs that were validated: with validation
    every ``n`` epochs, ``patience`` is a number of validations (as in the paper)."""

    def on_epoch_end(self, net, **kwargs):
        if self.monitor in net.history[-1]:
            super().on_epoch_end(net, **kwargs)


class MILKRecommender(BaseEstimator):
    """Multimodality Invariant Learning for new-item recommendation (MILK).

    MILK (Bai et al., 2024) recommends new (cold-start) items from their content alone and
    stays accurate when some of an item's modalities are missing. Each modality has a linear
    encoder into a shared space; users have ID embeddings. During training every minibatch is
    scored in several *environments* that mix the modality projections with different weights
    (the equal mix, a Dirichlet draw and its cyclic shifts, so that each modality dominates one
    environment). The objective sums the BPR risks of the environments and penalises their
    variance (cross-environment invariance, CEIM), so that preferences do not hinge on one
    modality; a cross-modality alignment term (CMAM) pulls the projections of one item's
    modalities together. At inference an item is the equal mix of its projections, a missing
    modality being filled first.

    Items are the samples: ``fit(X, y)`` learns from the interactions ``y`` of the items ``X``
    and the fitted model scores any items, in particular items never seen in training, for the
    fitted users. Cross-validation over items is cold-start validation.

    Parameters
    ----------
    modalities : sequence of int
        Column-block sizes splitting ``X`` into its ``M >= 2`` modalities, in column order;
        they must sum to ``n_features``.
    embedding_dim : int, default=64
        Dimension of the user embeddings and of the modality projections.
    alpha : float, default=0.1
        Concentration of the symmetric Dirichlet drawing the environments' mixing weights:
        small values give environments dominated by one modality (paper: searched in
        {0.01, 0.1, 1, 10, 100}; 0.01 best on Baby, 0.1 on Clothing).
    invariance_weight : float, default=50.0
        Weight of the variance of the environment risks (paper: 1000 Baby, 50 Clothing and
        TikTok).
    alignment_weight : float, default=0.05
        Weight of the cross-modality alignment (paper: 0.05 Baby and Clothing, 0.5 TikTok).
    reg_weight : float, default=1e-4
        Weight of the embedding-norm penalty of each minibatch.
    environments : {"cyclic", "independent", "fixed", "none"}, default="cyclic"
        How the mixing environments are built (see Notes). ``"cyclic"`` is MILK; the others
        are the paper's ablations. ``environments="none"`` with ``invariance_weight=0`` and
        ``alignment_weight=0`` is the DUIF-like content baseline.
    fill : {"mean", "zeros"}, default="mean"
        Value of a missing modality before its encoder, at fit and at prediction: the mean of
        the (L2-normalised) observed rows of that modality in the ``X`` given to :meth:`fit`,
        or zeros. Input without NaN (e.g. from :class:`FeatPropImputer`) is not filled.
    lr : float, default=1e-3
        Adam learning rate.
    batch_size : int, default=2048
        (user, positive, negative) triples per minibatch.
    max_epochs : int, default=200
        Most passes over the training interactions; every pass draws fresh negatives.
    patience : int, default=3
        Stop after this many validations without a better validation NDCG@k; the weights of
        the best validated epoch are restored.
    validation_interval : int, default=1
        Validate every this many epochs (epochs ``n``, ``2n``, ...). The paper validates every
        10 epochs with ``patience=3``, so that training stops 30 epochs after the best one;
        ``python -m skmm reproduce milk`` uses that schedule.
    validation_fraction : float in [0, 1), default=0.1
        Fraction of the items with interactions held out as cold-start validation items for
        early stopping: their interactions are removed from training and they are ranked
        among themselves every ``validation_interval`` epochs. 0 (or fewer than 2 validation
        items) trains for ``max_epochs`` without early stopping.
    k : int, default=20
        Cut-off of :meth:`recommend`, :meth:`predict`, :meth:`score` and of the validation
        NDCG.
    device : str or torch.device, default="auto"
        Where training and scoring run: ``"auto"`` (CUDA when available), ``"cpu"``,
        ``"cuda"`` or ``"cuda:N"``. Fitted weights are kept on the CPU, so a model trained on
        a GPU unpickles anywhere.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the validation split, shuffling, negative sampling and the
        Dirichlet draws. With an int, results are identical across runs on the CPU.
    verbose : int, default=0
        Print skorch's per-epoch table (training loss, validation NDCG, duration) when
        positive.

    Attributes
    ----------
    module_ : MILKModule
        The trained encoders and user embeddings, on the CPU.
    history_ : skorch.History
        Per-epoch training loss (``train_loss``), validation NDCG@k (``valid_ndcg``) and
        per-batch loss terms (``train_variance``, ``train_alignment``).
    best_epoch_ : int
        The epoch whose weights were kept (the last one without validation).
    n_epochs_ : int
        Epochs run.
    validation_items_ : ndarray of int
        Rows of the fitted ``X`` held out for early stopping (empty without validation).
    fill_values_ : ndarray of shape (n_features,)
        What replaces a missing modality block, in the L2-normalised feature space.
    modalities_ : tuple of int
        The validated block sizes.
    n_users_ : int
        Number of users (columns of ``y``) seen in :meth:`fit`.
    n_pairs_ : int
        Training interactions used (excluding validation items' ones).
    device_ : str
        The device training ran on.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    See Also
    --------
    FeatPropImputer : imputes missing modalities from co-interactions; its output can be
        passed to MILK in a :class:`~sklearn.pipeline.Pipeline`.
    VBPRRecommender : a warm-start content-aware recommender.

    Notes
    -----
    **Model.** Each modality block is L2-normalised row-wise, then projected by its own
    ``Linear(d_m, embedding_dim)`` (with bias, no activation). User embeddings start from
    ``N(0, 0.1^2)``. The score of user ``u`` for item ``i`` is ``u . (1/M) sum_m P_m(x_im)``.

    **Environments.** Every minibatch is scored under ``E`` weightings ``w_e`` of the
    projections, ``item_e = sum_m w_e[m] P_m(x_m)``; row 0 is always the equal weighting.
    ``"cyclic"``: ``theta ~ Dirichlet(alpha)`` per minibatch plus its ``M - 1`` cyclic shifts
    (``E = M + 1``). ``"independent"``: ``M`` independent Dirichlet draws per minibatch.
    ``"fixed"``: ``theta`` drawn once at the start of :meth:`fit`, with its shifts.
    ``"none"``: the equal weighting only (``E = 1``, so the variance term vanishes).

    **Objective** of a minibatch of (user, positive, negative) triples::

        sum_e R_e + reg_weight * N + alignment_weight * A + invariance_weight * Var_e(R_e)

    with ``R_e = mean softplus(s_neg - s_pos)`` the BPR risk in environment ``e``, ``Var`` the
    unbiased variance over environments, ``A`` the sum over modality pairs of the mean squared
    difference between the two projections of the minibatch's distinct positive items (an
    item missing either modality is left out of that pair), and ``N`` half the minibatch mean
    of ``|u|^2 + |item_pos|^2 + |item_neg|^2`` with items under equal weights.

    **Sampling.** Training uses only the items with interactions, minus the validation
    items. Each epoch draws, for every training interaction, one negative uniformly among the
    training items the user has not interacted with: never a validation item nor any item
    passed later for prediction (the official code samples from all items, leaking new-item
    content into training). Interactions of a user who interacted with every training item
    have no negative and are skipped.

    **Missing modalities.** A modality block with any NaN entry counts as missing for that
    item; it is replaced by ``fill_values_`` before its encoder and left out of the
    alignment term.

    References
    ----------
    .. [1] H. Bai, L. Wu, M. Hou, M. Cai, Z. He, Y. Zhou, R. Hong, M. Wang. "Multimodality
       Invariant Learning for Multimedia-Based New Item Recommendation". SIGIR 2024,
       arXiv:2405.15783.
    .. [2] D. Krueger et al. "Out-of-Distribution Generalization via Risk Extrapolation
       (REx)". ICML 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm import MILKRecommender
    >>> from skmm.datasets import make_multimodal, simulate_missing
    >>> data = make_multimodal(300, 100, (16, 8), density=0.05, random_state=0)
    >>> X_new, _ = simulate_missing(data.X[250:], data.modalities, 0.5, mode="one",
    ...                             random_state=0)
    >>> model = MILKRecommender(data.modalities, max_epochs=5, device="cpu", random_state=0)
    >>> model = model.fit(data.X[:250], data.Y[:250])
    >>> model.recommend(X_new, k=3).shape  # 3 of the 50 new items for each of 100 users
    (100, 3)
    >>> model.predict(X_new).shape
    (50, 100)
    """

    _parameter_constraints: dict = {
        "modalities": ["array-like"],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "invariance_weight": [Interval(Real, 0, None, closed="left")],
        "alignment_weight": [Interval(Real, 0, None, closed="left")],
        "reg_weight": [Interval(Real, 0, None, closed="left")],
        "environments": [StrOptions(set(ENVIRONMENTS))],
        "fill": [StrOptions({"mean", "zeros"})],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "validation_interval": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "k": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, modalities, embedding_dim=64, alpha=0.1, invariance_weight=50.0,
                 alignment_weight=0.05, reg_weight=1e-4, environments="cyclic", fill="mean",
                 lr=1e-3, batch_size=2048, max_epochs=200, patience=3, validation_interval=1,
                 validation_fraction=0.1, k=20, device="auto", random_state=None, verbose=0):
        self.modalities = modalities
        self.embedding_dim = embedding_dim
        self.alpha = alpha
        self.invariance_weight = invariance_weight
        self.alignment_weight = alignment_weight
        self.reg_weight = reg_weight
        self.environments = environments
        self.fill = fill
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_interval = validation_interval
        self.validation_fraction = validation_fraction
        self.k = k
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ----------------------------------------------------------------------------- fitting

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Learn encoders and user embeddings from the interactions ``y`` of the items ``X``.

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            Item content, one column block per modality; ``np.nan`` (or the mask) marks
            missing entries.
        y : {array-like, sparse matrix} of shape (n_items, n_users)
            Interactions, items as rows; any non-zero value is one interaction. A user
            (column) without interactions among these items keeps its initial embedding, so
            its scores are uninformative; such columns are allowed so that cross-validation
            over items never fails on a fold that holds all of a user's items.

        Returns
        -------
        self : MILKRecommender
            The fitted recommender.
        """
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             f"is None; pass the (n_items, n_users) interaction matrix.")
        X = self._validate_X(X, reset=True)
        sizes = check_block_sizes(self.modalities, X.shape[1])
        if len(sizes) < 2:
            raise ValueError(f"modalities={list(sizes)}: MILK needs at least two modalities; "
                             f"with one, use a plain content model.")
        Y = check_interactions(y, X.shape[0], name="y")
        if Y.nnz == 0:
            raise ValueError("y has no interactions to train on (it is empty or all zero).")
        self.modalities_ = sizes
        self.n_users_ = Y.shape[1]
        device = resolve_device(self.device)

        Z, observed = _normalise_blocks(X, sizes)
        self.fill_values_ = self._fill_values(Z, observed, sizes)
        Z = _fill(Z, observed, sizes, self.fill_values_)

        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        rng_split, rng_neg, rng_env, rng_shuffle = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))

        active = np.flatnonzero(Y.getnnz(axis=1) > 0)
        n_val = int(round(self.validation_fraction * active.size))
        n_val = min(n_val, active.size - 1)
        val = np.sort(rng_split.choice(active, size=n_val, replace=False)) if n_val >= 2 \
            else np.zeros(0, dtype=np.int64)
        train = np.setdiff1d(active, val)
        keep = np.ones(Y.shape[0], dtype=np.float32)
        keep[val] = 0.0
        Y_train = sp.csr_matrix(sp.diags(keep) @ Y)
        Y_train.eliminate_zeros()

        dataset = NegativeSamplingDataset(Y_train, train, rng_neg)
        if len(dataset) == 0:
            raise ValueError("y leaves no training interaction with a possible negative: every "
                             "user interacted with every training item, so the pairwise (BPR) "
                             "loss has nothing to compare.")

        with seeded_global_generator(seed):
            module = MILKModule(self.n_users_, sizes, self.embedding_dim,
                                features=torch.from_numpy(Z), observed=torch.from_numpy(observed))
        callbacks = []
        if val.size:
            callbacks = [
                ("cold_start_validation", _ColdStartValidation(
                    torch.from_numpy(Z[val]), Y[val], self.k, self.validation_interval)),
                ("early_stopping", _ValidatedEarlyStopping(
                    monitor="valid_ndcg", patience=self.patience, threshold=0.0,
                    threshold_mode="abs", lower_is_better=False, load_best=True)),
            ]
        net = _MILKNet(
            module,
            criterion=MILKLoss,
            criterion__reg_weight=self.reg_weight,
            criterion__alignment_weight=self.alignment_weight,
            criterion__invariance_weight=self.invariance_weight,
            optimizer=torch.optim.Adam,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            iterator_train=DataLoader,
            iterator_train__batch_size=None,
            iterator_train__sampler=ShuffledBatches(len(dataset), self.batch_size, rng_shuffle),
            iterator_train__generator=torch.Generator().manual_seed(seed),
            train_split=None,
            callbacks=callbacks,
            device=device,
            verbose=self.verbose,
            environments=EnvironmentSampler(len(sizes), self.environments, self.alpha, rng_env),
        )
        # Training draws nothing from torch's global generator: negatives, shuffling and
        # environments come from the numpy generators above, and the DataLoader's draw of a
        # worker base seed from the private generator passed to it.
        net.fit(dataset, None)

        module = net.module_.cpu()
        module.features = torch.zeros(0, X.shape[1])
        module.observed = torch.zeros(0, len(sizes), dtype=torch.bool)
        module.eval()
        self.module_ = module
        self.history_ = net.history
        self.n_epochs_ = len(net.history)
        validated = [(row["valid_ndcg"], -row["epoch"]) for row in net.history
                     if "valid_ndcg" in row]
        # The first epoch with the best NDCG: the one early stopping restored.
        self.best_epoch_ = -max(validated)[1] if validated else self.n_epochs_
        self.validation_items_ = val
        self.n_pairs_ = len(dataset)
        self.device_ = str(device)
        return self

    def _validate_X(self, X, reset):
        return validate_data(self, masked_to_nan(X), dtype=np.float32,
                             ensure_all_finite="allow-nan", reset=reset)

    def _fill_values(self, Z, observed, sizes):
        values = np.zeros(Z.shape[1], dtype=np.float32)
        if self.fill == "zeros":
            return values
        for m, (a, b) in enumerate(_bounds(sizes)):
            if not observed[:, m].any():
                raise ValueError(f"modality {m} (columns {a}:{b}) is missing for every item of "
                                 f"X, so fill='mean' has nothing to average; use fill='zeros' "
                                 f"or impute it first.")
            values[a:b] = Z[observed[:, m], a:b].mean(axis=0)
        return values

    # ----------------------------------------------------------------------------- scoring

    def _encode(self, X):
        """Item representations of ``X`` and user embeddings, as tensors on the device."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        Z, observed = _normalise_blocks(X, self.modalities_)
        Z = _fill(Z, observed, self.modalities_, self.fill_values_)
        device = resolve_device(self.device)
        module = self.module_ if device.type == "cpu" else copy.deepcopy(self.module_).to(device)
        with torch.no_grad():
            items = [module.item_representation(torch.from_numpy(Z[s:s + _ITEM_CHUNK]).to(device))
                     for s in range(0, Z.shape[0], _ITEM_CHUNK)]
            dim = module.user_embedding.embedding_dim
            items = torch.cat(items) if items else torch.zeros(0, dim, device=device)
            return items, module.user_embedding.weight.detach()

    def decision_function(self, X):
        """Scores of every item (rows of ``X``) for every fitted user.

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            Content of the items to score (new items need no interactions); NaN marks missing
            entries.

        Returns
        -------
        scores : ndarray of shape (n_items, n_users)
            Higher means more recommended. This is a dense matrix: for large catalogues use
            :meth:`recommend` or :meth:`score`, which never build it.
        """
        items, users = self._encode(X)
        out = np.empty((items.shape[0], users.shape[0]), dtype=np.float32)
        with torch.no_grad():
            for s in range(0, items.shape[0], _ITEM_CHUNK):
                out[s:s + _ITEM_CHUNK] = (items[s:s + _ITEM_CHUNK] @ users.T).cpu().numpy()
        return out

    def recommend(self, X, k=None, users=None):
        """The top-``k`` rows of ``X`` for each user, best first.

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            The candidate items.
        k : int, default=None
            Items per user (at most ``n_items``); None uses the estimator's ``k``.
        users : array-like of int, default=None
            Users (column indices of the fitted ``y``) to recommend for; None means all.

        Returns
        -------
        items : ndarray of int64, shape (n_selected_users, min(k, n_items))
            Row indices of ``X``; row ``j`` belongs to ``users[j]``.
        """
        k = self.k if k is None else _check_k(k)
        items, U = self._encode(X)
        users = check_users(users, self.n_users_)
        with torch.no_grad():
            out = [top.cpu().numpy() for _, top, _ in factor_topk_per_user(U, items, users, k)]
        return np.concatenate(out) if out else np.zeros((0, min(k, items.shape[0])), np.int64)

    def predict(self, X):
        """Which rows of ``X`` are in each user's top ``k``.

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            The candidate items.

        Returns
        -------
        recommended : scipy.sparse.csr_matrix of bool, shape (n_items, n_users)
            True where the item is among the user's top ``k`` (``min(k, n_items)`` per user).
        """
        top = self.recommend(X)
        n_items = self._n_rows(X)
        cols = np.repeat(np.arange(top.shape[0]), top.shape[1])
        return sp.csr_matrix((np.ones(top.size, dtype=bool), (top.ravel(), cols)),
                             shape=(n_items, self.n_users_))

    def score(self, X, y):
        """Mean NDCG@k of the rows of ``X`` over the users with a positive in ``y``.

        Each user ranks the rows of ``X`` only, so with held-out items this is cold-start
        evaluation (the default score of :class:`~sklearn.model_selection.GridSearchCV`).

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            The items to rank.
        y : {array-like, sparse matrix} of shape (n_items, n_users)
            Their held-out interactions with the fitted users.

        Returns
        -------
        score : float
            NDCG@k; NaN (with a warning) when no user has a positive.
        """
        items, U = self._encode(X)
        Y = check_interactions(y, items.shape[0], name="y")
        if Y.shape[1] != self.n_users_:
            raise ValueError(f"y has {Y.shape[1]} user columns but the model was fitted on "
                             f"{self.n_users_} users.")
        return factor_ndcg(Y, U, items, k=self.k)

    @staticmethod
    def _n_rows(X):
        return X.shape[0] if hasattr(X, "shape") else len(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return interaction_target_tags(tags, required=True)


def _bounds(sizes):
    edges = np.concatenate(([0], np.cumsum(sizes)))
    return list(zip(edges[:-1], edges[1:]))


def _normalise_blocks(X, sizes):
    """Row-wise L2-normalised modality blocks and which blocks are observed (no NaN)."""
    Z = np.empty(X.shape, dtype=np.float32)
    observed = np.empty((X.shape[0], len(sizes)), dtype=bool)
    for m, (a, b) in enumerate(_bounds(sizes)):
        block = X[:, a:b].astype(np.float32, copy=False)
        obs = ~np.isnan(block).any(axis=1)
        norms = np.linalg.norm(np.where(obs[:, None], block, 0.0), axis=1, keepdims=True)
        # A zero block stays zero rather than becoming NaN.
        Z[:, a:b] = np.where(obs[:, None], block / np.maximum(norms, 1e-12), np.nan)
        observed[:, m] = obs
    return Z, observed


def _fill(Z, observed, sizes, values):
    """Replace the missing blocks of ``Z`` (in place) by the matching slices of ``values``."""
    for m, (a, b) in enumerate(_bounds(sizes)):
        rows = ~observed[:, m]
        if rows.any():
            Z[rows, a:b] = values[a:b]
    return Z
