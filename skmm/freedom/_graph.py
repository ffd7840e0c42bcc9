"""FREEDOM's two graphs: the frozen item-item kNN graph and the (pruned) user-item graph.

Zhou and Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
Recommendation", ACM MM 2023. The numbers follow MMRec's ``FREEDOM`` (the authors' code):

* :func:`item_knn_graph` - per modality, each item's ``k`` most cosine-similar items (itself
  normally among them), every kept entry ``1 / (k + 1e-7)``; the modality graphs mixed with
  weights summing to one. Built once from the raw features and never updated ("frozen").
* :func:`user_item_adjacency` - the symmetrically normalised bipartite graph ``D^-1/2 A D^-1/2``
  of the training interactions, users first, then items.
* :class:`EdgePruner` - "degree-sensitive edge pruning": each epoch keeps a random subset of the
  interactions, drawn without replacement with probability proportional to
  ``1 / sqrt(d_u d_i)``, and normalises the kept graph on its own degrees.

Node order in the bipartite graphs is MMRec's: users ``0 .. n_users - 1``, then items
``n_users .. n_users + n_items - 1``. Interactions come in skmm's orientation, ``Y`` of shape
(n_items, n_users).
"""

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

# The one import of the blocked exact top-k engine (it ranks ``U @ V.T`` row by row in bounded
# memory, lower index first among ties); when it moves to a public module, change this line.
from ..metrics._ranking import factor_topk_per_user
from .._validation import check_block_sizes, check_interactions

__all__ = ["EdgePruner", "item_knn_graph", "knn_neighbors", "user_item_adjacency"]

# MMRec adds this to every degree before inverting it (an isolated node gets 0, not inf).
DEGREE_EPS = 1e-7

# Score of an (ordinary item, all-zero item) pair under zero_rows="rank_first": above any
# cosine (at most 1 up to rounding), so all-zero items rank first, as MMRec's NaNs do.
_ZERO_ROW_SCORE = 2.0


def _sparse(indices, values, shape, device):
    """A coalesced torch sparse COO tensor (duplicate entries summed)."""
    return torch.sparse_coo_tensor(indices, values, shape, device=device,
                                   check_invariants=False).coalesce()


def _as_device(device):
    return torch.device("cpu") if device is None else torch.device(device)


@validate_params(
    {
        "features": ["array-like"],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "zero_rows": [StrOptions({"raise", "rank_first"})],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "device": [str, torch.device, None],
    },
    prefer_skip_nested_validation=True,
)
def knn_neighbors(features, n_neighbors=10, *, zero_rows="raise", batch_size=None,
                  device=None):
    """Each item's ``n_neighbors`` most cosine-similar items, itself included, best first.

    Cosine similarities are computed in float32 (as MMRec does: ``x / ||x||`` without epsilon,
    then dot products) and ranked in row blocks by skmm's exact blocked top-k, so no
    ``n_items x n_items`` matrix ever exists. An item's own similarity is 1, so it is normally
    its own first neighbour; a near-duplicate can tie with it or beat it by rounding. Ties are
    broken deterministically: among equal similarities the lower item index comes first.

    Parameters
    ----------
    features : array-like of shape (n_items, n_features)
        One modality's raw item features, finite.
    n_neighbors : int, default=10
        Neighbours per item (``knn_k`` in MMRec), at most ``n_items``.
    zero_rows : {"raise", "rank_first"}, default="raise"
        What to do with all-zero rows, whose cosine is undefined. ``"raise"``: a ValueError.
        ``"rank_first"`` reproduces MMRec's ordering, where ``0 / 0 = NaN`` similarities rank
        above every number: every item's list starts with the all-zero items (lower index
        first), then its cosine neighbours; an all-zero item's own list is items
        ``0 .. n_neighbors - 1`` (MMRec's is arbitrary). The graph is then mostly noise: use it
        only to reproduce FeatProp's "zeros" imputation baseline.
    batch_size : int, default=None
        Items whose similarity rows are ranked at once; None bounds a block to about 64 MiB.
        The result does not depend on it.
    device : str or torch.device, default=None
        Where to compute; None is the CPU.

    Returns
    -------
    neighbors : torch.Tensor of shape (n_items, n_neighbors), int64
        Row ``i``: the neighbours of item ``i``, by decreasing similarity.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.freedom import knn_neighbors
    >>> F = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> knn_neighbors(F, n_neighbors=2).tolist()
    [[0, 1], [1, 0], [2, 1]]
    """
    device = _as_device(device)
    F = torch.as_tensor(np.asarray(features, dtype=np.float32), device=device)
    if F.ndim != 2:
        raise ValueError(f"features must be 2-d (n_items, n_features), got shape "
                         f"{tuple(F.shape)}.")
    n_items = F.shape[0]
    if n_neighbors > n_items:
        raise ValueError(f"n_neighbors={n_neighbors} exceeds the number of items ({n_items}).")
    if not bool(torch.isfinite(F).all()):
        raise ValueError("features contain NaN or infinite values; FREEDOM needs complete "
                         "features (impute missing modalities first, e.g. with "
                         "skmm.FeatPropImputer).")
    norms = torch.linalg.vector_norm(F, dim=1, keepdim=True)
    zero = norms[:, 0] == 0
    n_zero = int(zero.sum())
    if n_zero and zero_rows == "raise":
        rows = torch.nonzero(zero)[:5, 0].tolist()
        raise ValueError(
            f"{n_zero} item(s) have an all-zero feature row (rows {rows}"
            f"{', ...' if n_zero > 5 else ''}): their cosine similarity is undefined. Impute "
            f"them, or pass zero_rows='rank_first' to reproduce MMRec's ordering (all-zero "
            f"items become everyone's first neighbours).")
    Fh = F / torch.where(zero[:, None], torch.ones_like(norms), norms)
    if not bool(torch.isfinite(Fh).all()):
        raise ValueError("features overflow float32 when normalised (a row norm is infinite); "
                         "rescale them.")
    left = right = Fh
    if n_zero:
        # One extra column scores (ordinary item, all-zero item) pairs _ZERO_ROW_SCORE, above
        # any cosine; an all-zero item scores 0 with everything, so its list is by index.
        left = torch.cat([Fh, (~zero).to(Fh.dtype)[:, None]], dim=1)
        right = torch.cat([Fh, zero.to(Fh.dtype)[:, None] * _ZERO_ROW_SCORE], dim=1)
    neighbors = torch.empty(n_items, n_neighbors, dtype=torch.int64, device=device)
    for batch, top, _ in factor_topk_per_user(left, right, np.arange(n_items), n_neighbors,
                                              user_batch_size=batch_size):
        neighbors[torch.as_tensor(batch, device=device)] = top
    return neighbors


@validate_params(
    {
        "X": ["array-like"],
        "modalities": ["array-like", None],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "weights": ["array-like", None],
        "zero_rows": [StrOptions({"raise", "rank_first"})],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "device": [str, torch.device, None],
    },
    prefer_skip_nested_validation=True,
)
def item_knn_graph(X, modalities=None, n_neighbors=10, *, weights=None, zero_rows="raise",
                   batch_size=None, device=None):
    """FREEDOM's frozen item-item graph ``M``: per-modality kNN graphs, mixed.

    For every modality block ``m`` of ``X``, row ``i`` of graph ``G_m`` has an entry
    ``1 / (n_neighbors + 1e-7)`` at each of the ``n_neighbors`` items most cosine-similar to
    ``i`` (:func:`knn_neighbors`; item ``i`` itself normally among them). That value is MMRec's
    "normalised Laplacian" ``D^-1/2 B D^-1/2`` of the directed k-regular graph ``B``: it uses
    the row degree ``k + 1e-7`` on both sides, so ``M @ H`` averages each item's neighbours.
    The result is ``M = sum_m weights[m] * G_m``; an edge found in several modalities gets the
    sum of their weights.

    Parameters
    ----------
    X : array-like of shape (n_items, n_features)
        Raw item features, one column block per modality, complete (no NaN).
    modalities : sequence of int, default=None
        Column-block sizes, summing to ``n_features``; None is one block.
    n_neighbors : int, default=10
        Neighbours per item and modality (MMRec's ``knn_k``).
    weights : sequence of float, default=None
        One non-negative weight per modality, summing to 1; None weighs them equally. MMRec's
        ``mm_image_weight = w`` is ``weights=(w, 1 - w)`` for blocks (image, text); its
        default is ``(0.1, 0.9)``.
    zero_rows : {"raise", "rank_first"}, default="raise"
        All-zero feature rows: an error, or MMRec's ordering (see :func:`knn_neighbors`).
    batch_size : int, default=None
        Items ranked at once (see :func:`knn_neighbors`); the result does not depend on it.
    device : str or torch.device, default=None
        Where to compute and return the graph; None is the CPU.

    Returns
    -------
    M : torch.Tensor of shape (n_items, n_items)
        Sparse COO, coalesced, float32, on ``device``; ``n_neighbors`` entries per row and
        modality.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.freedom import item_knn_graph
    >>> X = np.array([[1.0, 0.0, 1.0], [0.9, 0.1, 1.0], [0.0, 1.0, 1.0]])
    >>> M = item_knn_graph(X, modalities=[2, 1], n_neighbors=2, weights=[0.1, 0.9])
    >>> M.to_dense().round(decimals=4)
    tensor([[0.5000, 0.5000, 0.0000],
            [0.5000, 0.5000, 0.0000],
            [0.4500, 0.5000, 0.0500]])
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d (n_items, n_features), got shape {X.shape}.")
    sizes = (X.shape[1],) if modalities is None else check_block_sizes(modalities, X.shape[1])
    weights = _check_weights(weights, len(sizes))
    device = _as_device(device)
    n_items = X.shape[0]
    rows = torch.arange(n_items, device=device).repeat_interleave(n_neighbors)
    indices, values = [], []
    start = 0
    for size, weight in zip(sizes, weights):
        nbrs = knn_neighbors(X[:, start:start + size], n_neighbors, zero_rows=zero_rows,
                             batch_size=batch_size, device=device)
        start += size
        indices.append(torch.stack([rows, nbrs.reshape(-1)]))
        # weight / (k + 1e-7) in float64, then float32: MMRec's value to float32 rounding.
        values.append(torch.full((rows.numel(),), weight / (n_neighbors + DEGREE_EPS),
                                 dtype=torch.float64, device=device))
    # Coalescing in float64 sums an edge shared by several modalities before rounding.
    M = _sparse(torch.cat(indices, dim=1), torch.cat(values), (n_items, n_items), device)
    return torch.sparse_coo_tensor(M.indices(), M.values().to(torch.float32), M.shape,
                                   is_coalesced=True, check_invariants=False)


def _check_weights(weights, n_modalities):
    if weights is None:
        return (1.0 / n_modalities,) * n_modalities
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size != n_modalities:
        raise ValueError(f"weights must give one weight per modality ({n_modalities}), got "
                         f"{w.size}.")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be finite and non-negative, got {w.tolist()}.")
    if not np.isclose(w.sum(), 1.0, rtol=0, atol=1e-6):
        raise ValueError(f"weights must sum to 1, got {w.tolist()} (sum {w.sum():.6g}).")
    return tuple(float(v) for v in w)


def _inv_sqrt_degree(nodes, n_nodes):
    """``(deg + 1e-7) ** -0.5`` per node, float64, from a list of edge endpoints."""
    deg = torch.bincount(nodes, minlength=n_nodes).to(torch.float64)
    return (deg + DEGREE_EPS).rsqrt()


def _bipartite(users, items, n_users, n_items):
    """Symmetric (n_users + n_items)^2 graph of edges (users, items), normalised on its degrees.

    Each edge gets ``1 / sqrt((d_u + 1e-7)(d_i + 1e-7))`` (degrees of these edges, computed in
    float64 and rounded to float32 once) in both directions.
    """
    device = users.device
    values = _inv_sqrt_degree(users, n_users)[users] * _inv_sqrt_degree(items, n_items)[items]
    values = values.to(torch.float32)
    shifted = items + n_users
    indices = torch.stack([torch.cat([users, shifted]), torch.cat([shifted, users])])
    n = n_users + n_items
    return _sparse(indices, torch.cat([values, values]), (n, n), device)


def _edges(Y, device):
    """(users, items) int64 tensors of the binarised interactions ``Y`` (n_items, n_users)."""
    if not sp.issparse(Y):
        Y = np.asarray(Y)
    if Y.ndim != 2:
        raise ValueError(f"Y must be a 2-d (n_items, n_users) interaction matrix, got shape "
                         f"{Y.shape}.")
    Y = check_interactions(Y, Y.shape[0], name="Y")
    coo = Y.T.tocoo()  # (n_users, n_items): MMRec's edge order, by user
    order = np.lexsort((coo.col, coo.row))
    users = torch.as_tensor(coo.row[order].astype(np.int64), device=device)
    items = torch.as_tensor(coo.col[order].astype(np.int64), device=device)
    return users, items, Y.shape[1], Y.shape[0]


@validate_params(
    {"Y": ["array-like", "sparse matrix"], "device": [str, torch.device, None]},
    prefer_skip_nested_validation=True,
)
def user_item_adjacency(Y, *, device=None):
    """The normalised user-item graph ``Â = D^-1/2 A D^-1/2`` of FREEDOM and LightGCN.

    ``A = [[0, R], [R^T, 0]]`` with ``R = Y.T`` binarised (users x items), so
    ``Â[u, n_users + i] = Â[n_users + i, u] = 1 / sqrt((d_u + 1e-7)(d_i + 1e-7))``. There are no
    self-loops; a user or item without interactions has an all-zero row.

    Parameters
    ----------
    Y : {array-like, sparse matrix} of shape (n_items, n_users)
        Training interactions, items as rows; any non-zero value is one interaction.
    device : str or torch.device, default=None
        Where to return the graph; None is the CPU.

    Returns
    -------
    A_hat : torch.Tensor of shape (n_users + n_items, n_users + n_items)
        Sparse COO, coalesced, float32; users first, then items.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.freedom import user_item_adjacency
    >>> Y = np.array([[1, 1], [1, 0]])  # 2 items x 2 users
    >>> user_item_adjacency(Y).to_dense().round(decimals=4)
    tensor([[0.0000, 0.0000, 0.5000, 0.7071],
            [0.0000, 0.0000, 0.7071, 0.0000],
            [0.5000, 0.7071, 0.0000, 0.0000],
            [0.7071, 0.0000, 0.0000, 0.0000]])
    """
    users, items, n_users, n_items = _edges(Y, _as_device(device))
    return _bipartite(users, items, n_users, n_items)


class EdgePruner:
    """FREEDOM's degree-sensitive edge pruning, redrawn every epoch.

    Every interaction ``e = (u, i)`` gets the weight ``w_e = 1 / sqrt((d_u + 1e-7)(d_i + 1e-7))``
    (degrees of the full training graph), so edges between rarely-interacting users and items
    are likely kept and edges at hubs pruned first. :meth:`sample` keeps
    ``K = int(n_edges * (1 - edge_dropout))`` distinct edges drawn as sequential sampling
    without replacement with probability proportional to ``w_e`` (MMRec's
    ``torch.multinomial(w, K, replacement=False)``), and returns the kept graph normalised on
    its own degrees (:func:`user_item_adjacency` of the kept edges). ``edge_dropout = 0``
    returns the full graph.

    The draw is a Gumbel-top-K: the ``K`` largest ``log w_e - log E_e`` with ``E_e``
    i.i.d. standard exponential (``-log E`` is a standard Gumbel). It has exactly the
    distribution of sequential sampling without replacement, has no cap on the number of
    edges (``torch.multinomial`` allows 2^24 categories), and takes its randomness only from
    the generator it is given.

    Parameters
    ----------
    Y : {array-like, sparse matrix} of shape (n_items, n_users)
        Training interactions, items as rows; binarised.
    edge_dropout : float, default=0.8
        Fraction of the edges **removed** per draw (MMRec's ``dropout``), in [0, 1).
    device : str or torch.device, default=None
        Where the graphs are built and returned; None is the CPU.

    Attributes
    ----------
    users, items : torch.Tensor of shape (n_edges,)
        The edges, ordered by user then item.
    weights : torch.Tensor of shape (n_edges,), float64
        The sampling weights ``w_e``.
    n_keep : int
        Edges kept per draw, ``K``.
    adjacency : torch.Tensor
        The full normalised graph ``Â``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.freedom import EdgePruner
    >>> Y = np.array([[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])  # 4 items x 3 users
    >>> pruner = EdgePruner(Y, edge_dropout=0.5)
    >>> pruner.n_keep
    3
    >>> A = pruner.sample(np.random.default_rng(0))
    >>> A.shape, A._nnz()
    (torch.Size([7, 7]), 6)
    """

    @validate_params(
        {
            "Y": ["array-like", "sparse matrix"],
            "edge_dropout": [Interval(Real, 0, 1, closed="left")],
            "device": [str, torch.device, None],
        },
        prefer_skip_nested_validation=True,
    )
    def __init__(self, Y, edge_dropout=0.8, *, device=None):
        self.device = _as_device(device)
        self.users, self.items, self.n_users, self.n_items = _edges(Y, self.device)
        self.edge_dropout = float(edge_dropout)
        self.n_edges = int(self.users.numel())
        # MMRec's count, float rounding included (int(10 * (1 - 0.8)) is 1, not 2).
        self.n_keep = int(self.n_edges * (1.0 - self.edge_dropout))
        self.weights = (_inv_sqrt_degree(self.users, self.n_users)[self.users]
                        * _inv_sqrt_degree(self.items, self.n_items)[self.items])
        self._log_weights = self.weights.log()
        self.adjacency = _bipartite(self.users, self.items, self.n_users, self.n_items)

    def sample_edges(self, generator):
        """Positions (into :attr:`users` / :attr:`items`) of one draw's kept edges, sorted.

        Parameters
        ----------
        generator : numpy.random.Generator or torch.Generator
            The draw's only source of randomness; a torch generator must be on the pruner's
            device.
        """
        if isinstance(generator, np.random.Generator):
            e = torch.as_tensor(generator.standard_exponential(self.n_edges), device=self.device)
        elif isinstance(generator, torch.Generator):
            if generator.device.type != self.device.type:
                raise ValueError(f"generator is on {generator.device}, the pruner on "
                                 f"{self.device}; pass a generator on the pruner's device.")
            e = torch.empty(self.n_edges, dtype=torch.float64, device=self.device)
            e.exponential_(generator=generator)
        else:
            raise TypeError(f"generator must be a numpy.random.Generator or a torch.Generator, "
                            f"got {type(generator).__name__}.")
        keys = self._log_weights - e.log()
        keep = torch.topk(keys, self.n_keep, sorted=False).indices
        return torch.sort(keep).values

    def sample(self, generator):
        """One epoch's pruned graph ``Ã`` (the full ``Â`` when ``edge_dropout == 0``).

        Parameters
        ----------
        generator : numpy.random.Generator or torch.Generator
            Source of the draw (see :meth:`sample_edges`).

        Returns
        -------
        A_tilde : torch.Tensor of shape (n_users + n_items, n_users + n_items)
            Sparse COO, coalesced, float32, symmetric with ``2 * n_keep`` entries, normalised
            on the kept edges' degrees.
        """
        if self.edge_dropout == 0:
            return self.adjacency
        keep = self.sample_edges(generator)
        return _bipartite(self.users[keep], self.items[keep], self.n_users, self.n_items)
