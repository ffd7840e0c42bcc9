"""GraphImputerCV: GraphImputer with its settings chosen by masked recovery, sharing the work.

A grid search over :class:`GraphImputer` (``GridSearchCV`` with
:func:`~skmm.metrics.make_imputation_scorer`) rebuilds the co-interaction graph and reruns
the propagation from scratch for every setting and every hidden copy. Most of that work is
the same for many settings, and this estimator does it once:

* **one neighbour list per similarity**: the top-``max(n_neighbors)`` lists
  (:func:`~skmm.graph.neighbour_lists`) give the graph of every ``k`` as their first ``k``
  entries (:func:`~skmm.graph.graph_from_neighbours`), the very graph
  :func:`~skmm.graph.cointeraction_graph` builds;
* **one propagation per graph and hidden copy** for all step counts: the reset propagation
  runs ``max(n_iter)`` steps and the hidden rows are read off after every step (the
  propagation engine's ``snapshot``), which is what a run of that many steps returns;
* **one operator per graph** for every hidden copy: the normalised adjacency, the
  diffusion-rewired graph of PPR / heat (its rows for every row missing in any hidden copy;
  each row depends on its own seed only) or the official operator;
* **the scores** read only the hidden rows (the hidden entries and their centres are
  prepared once per copy).

Each score equals the scorer's, call for call: the same hidden copies (one generator, the same
draws), the same arithmetic on the same operands.

Why one module of this length: the sharing above only pays if grid, hidden copies, operators
and scoring are planned together, and the estimator's docstring (the grid, the protocol, the
results layout, about a third of the lines) documents all of it in one place.
"""

import copy
import warnings
from numbers import Integral
from numbers import Real as _Real

import numpy as np
import scipy.sparse as sp
import torch
from scipy.stats import rankdata
from sklearn.base import _fit_context
from sklearn.utils import check_array
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from .._validation import (Int, Real, check_block_sizes, check_interactions,
                           masked_to_nan, resolve_device)
from ..datasets._missing import hide_observed
from ..diffusion import _paper_graph_from_counts, neighbour_mean
from ..graph import SIMILARITIES, graph_from_neighbours, neighbour_lists
from ..metrics._imputation import _HiddenEntries, _uniform_average
from ..metrics._scorer import _IMPUTATION_METRICS, check_n_bins, item_degrees
from .._propagator import ColumnPropagator, reachability_steps
from ..propagation import _run
from ._base import BaseTransductiveImputer, fill_row
from ._graph import _DTYPES, METHODS, GraphImputer

# The GraphImputer parameters that are not searched: passed through to every setting.
_PASSTHROUGH = ("symmetric", "tol", "prune_tol", "rank", "paper_compat", "fallback",
                "fill_value", "device", "dtype")
# What each method's setting holds besides method, similarity and n_neighbors.
_EXTRA = {"neighmean": (), "multihop": ("n_iter",), "ppr": ("alpha", "n_iter"),
          "heat": ("t", "n_iter")}


class GraphImputerCV(BaseTransductiveImputer):
    """:class:`GraphImputer` with built-in selection of its method, graph and step count.

    In the style of :class:`~sklearn.linear_model.RidgeCV`: every setting of a grid over
    ``methods``, ``similarities``, ``n_neighbors``, ``n_iter``, ``alphas`` (PPR) and ``ts``
    (heat) is scored by masked recovery, exactly as
    :func:`~skmm.metrics.make_imputation_scorer` scores a :class:`GraphImputer` (hide part of
    the observed entries of ``X``, impute, compare with the hidden values), and the best one is
    refitted on the real ``X`` and ``y``. The graph-side work is shared instead of repeated per
    setting:

    * one top-``max(n_neighbors)`` neighbour list per similarity serves every ``k`` (the first
      ``k`` entries of each row are the graph of ``n_neighbors=k``);
    * one run of ``max(n_iter)`` reset steps per graph and hidden copy gives the imputations
      of every step count (read off after each step);
    * the operator of ``"multihop"``, ``"ppr"`` and ``"heat"`` is built once per graph (and
      ``alpha`` or ``t``) for all hidden copies. PPR and heat cannot share it across ``k``:
      their rewired rows depend on ``k`` through the graph and through the entries kept per
      row, so they are computed once per ``k``, from the one neighbour list. ``"neighmean"``
      is one sparse product per graph and hidden copy.

    With ``n_repeats`` hidden copies and the default grid that is, per similarity, one
    neighbour list, 10 graphs, and 10 x ``n_repeats`` propagations of 20 steps per method,
    where a grid search runs 200 graph builds and 200 x ``n_repeats`` propagations per method.

    **Same scores as the scorer.** ``cv_results_["split<r>_test_score"]`` of a setting is
    what ``make_imputation_scorer(modalities, mode=mode, fraction=fraction, metric=metric,
    n_repeats=1, ...)`` gives for the ``r``-th hidden copy, and ``mean_test_score`` what the
    scorer with ``n_repeats`` gives for ``GraphImputer(**params)``, bit for bit: the copies
    are drawn in the same order from the same generator, and every imputation is computed on
    the same operands by the same code (the neighbour-list graph is the graph
    :func:`~skmm.graph.cointeraction_graph` builds; a step of a longer run is the run of that
    many steps).

    Read more in the :ref:`User Guide <featprop>`.

    Parameters
    ----------
    methods : sequence of {"neighmean", "multihop", "ppr", "heat"}, \
default=("neighmean", "multihop", "ppr", "heat")
        The methods searched (see :class:`GraphImputer`).
    n_neighbors : sequence of int, default=(10, 20, ..., 100)
        The graph sizes searched (:class:`GraphImputer`'s ``n_neighbors``), each >= 1. The
        default is the authors' grid of ``top_k``.
    n_iter : sequence of int, default=(1, 2, ..., 20)
        The step counts searched for ``"multihop"``, ``"ppr"`` and ``"heat"``, each >= 0 (the
        authors' grid of layers). Not used by ``"neighmean"``.
    similarities : sequence of str, default=("count",)
        The neighbour similarities searched (:class:`GraphImputer`'s ``similarity``).
    alphas : sequence of float, default=(0.1,)
        The teleport probabilities searched for ``"ppr"``, each in (0, 1].
    ts : sequence of float, default=(5.0,)
        The diffusion times searched for ``"heat"``, each >= 0.
    modalities : sequence of int or None, default=None
        Column-block sizes of ``X``, as in :func:`~skmm.metrics.make_imputation_scorer`: hidden
        as units in mode ``"modality"``, scored per block and averaged with equal weight.
    mode : {"auto", "modality", "entry"}, default="auto"
        How the observed entries are hidden (:func:`skmm.datasets.hide_observed`).
    fraction : float in (0, 1), default=0.1
        The part of the observed blocks (or entries) hidden per copy.
    metric : {"centred_cosine", "neg_mse", "mse_skill", "average_precision", \
"average_precision_gain"}, default="centred_cosine"
        The recovery score, greater being better (:func:`~skmm.metrics.imputation_score`).
    n_repeats : int, default=5
        Hidden copies, each scored for every setting; the score is their mean. (The scorer's
        default is 1; several copies give ``std_test_score`` a meaning and a steadier choice,
        at a cost of one propagation per copy.)
    random_state : int or RandomState instance, default=0
        Seeds the hiding, as in :func:`~skmm.metrics.make_imputation_scorer`; a RandomState
        is copied, so that every fit hides the same entries. None is refused.
    selection : {"best", "one_se"}, default="best"
        How the setting is chosen from ``cv_results_`` (which does not depend on it).
        ``"best"``: the largest ``mean_test_score``. ``"one_se"``: the one-standard-error rule,
        preferring fewer steps and a smaller graph where the scores cannot tell them apart:
        among the settings whose ``mean_test_score`` is at least ``m - s / sqrt(n_repeats)``,
        with ``m`` and ``s`` the ``mean_test_score`` and ``std_test_score`` of the best
        setting (``s`` the standard deviation over the hidden copies, as reported, so
        ``s / sqrt(n_repeats)`` is the standard error of ``m``), the simplest: the fewest
        ``n_iter`` (``"neighmean"``, one neighbour average, counting as one step), then the
        fewest ``n_neighbors``, then the method in the fixed order ``"neighmean"``,
        ``"multihop"``, ``"ppr"``, ``"heat"``, then grid order (similarity in the order of
        ``similarities``, then ``alphas`` / ``ts`` as given). With ``n_repeats=1`` the
        standard error is 0 and the rule picks the simplest of the settings tied with the
        best.
    per_block : bool, default=False
        Choose one setting per modality block (the blocks of ``modalities``; one block when
        None), each on the block's own score, as :class:`~sklearn.linear_model.RidgeCV`'s
        ``alpha_per_target`` chooses one ``alpha`` per target. The graph and the propagation
        work column by column, so the blocks share the search's work: the per-block scores
        are those the pooled score averages (per copy, a block's score is its term in
        :func:`~skmm.metrics.imputation_score`'s ``multioutput="raw_values"``). The refit
        fits, per block, ``GraphImputer(**best_params_[b])`` on that block's columns alone;
        up to float rounding this is the block's columns of that setting fitted on all of
        ``X`` (bit for bit where every block is missing on the same rows; otherwise a fit on
        all of ``X`` also propagates the rows that miss only another block, which reorders
        some sums). ``selection`` applies per block.
    stratify : {"degree"} or None, default=None
        ``"degree"``: hide by degree strata, as :func:`~skmm.metrics.make_imputation_scorer`
        with ``stratify="degree"`` does (the hidden items' interaction counts follow those of
        each block's truly missing items; :func:`skmm.datasets.hide_observed`); needs ``y``.
        None: uniform hiding.
    n_bins : int, default=5
        With ``stratify``, the number of degree quantile bins, as in the scorer; without
        ``stratify`` it must stay at its default.
    symmetric, tol, prune_tol, rank, paper_compat, fallback, fill_value, device, dtype
        Passed to every :class:`GraphImputer` setting, as there. With ``paper_compat=True``
        the graphs are the authors' (:func:`~skmm.diffusion.paper_graph`, built from one
        count-ranked neighbour list), ``similarities`` must be ``("count",)`` and every ``k``
        at most ``n_items``.

    Attributes
    ----------
    cv_results_ : dict of ndarray
        One entry per setting, in grid order, as :class:`~sklearn.model_selection.GridSearchCV`
        lays it out: ``params`` (the settings' dicts), ``param_<name>`` (masked arrays; masked
        where the setting has no such parameter, e.g. ``param_n_iter`` for ``"neighmean"``),
        ``split<r>_test_score`` (hidden copy ``r``), ``mean_test_score``,
        ``std_test_score`` (over copies) and ``rank_test_score`` (1 is best; equal scores
        share the smaller rank; NaN scores rank last). With ``per_block=True`` also, for each
        block ``b``, the same four for the block's own score, suffixed ``_block<b>``:
        ``split<r>_test_score_block<b>``, ``mean_test_score_block<b>``,
        ``std_test_score_block<b>`` and ``rank_test_score_block<b>`` (as
        :class:`~sklearn.model_selection.GridSearchCV` suffixes a metric's name).
        ``mean_reached_fraction``: the share of the hidden entries that the setting's graph
        reaches, mean over copies (the others take the ``fallback`` and are scored as such,
        not dropped; 0 at ``n_iter=0``, 1 with ``paper_compat=True``, whose rules have no
        fallback).
    best_index_ : int
        The index of the chosen setting. With ``selection="best"`` the largest
        ``mean_test_score``; among equal scores the first in grid order (so the smaller ``k``
        and fewer steps, with ascending grids). With ``"one_se"`` see ``selection``.
    best_params_ : dict
        The chosen setting: ``method``, ``similarity``, ``n_neighbors``, and ``n_iter``,
        ``alpha`` or ``t`` where the method has them.
    best_score_ : float
        Its ``mean_test_score``. With ``selection="best"`` the maximum over the grid, hence
        optimistic: for an unbiased estimate of recovery, score the chosen setting on fresh
        hidden copies. With ``"one_se"`` the chosen (simpler) setting's own score, within
        one standard error below the maximum ``cv_results_["mean_test_score"].max()``.

        With ``per_block=True``, ``best_index_`` and ``best_score_`` are ndarrays of shape
        ``(n_blocks,)`` and ``best_params_`` a list of ``n_blocks`` dicts: block ``b``'s
        setting, its index and its ``mean_test_score_block<b>``.
    reached_fraction_ : float or ndarray of shape (n_blocks,)
        ``cv_results_["mean_reached_fraction"]`` of the chosen setting (per block with
        ``per_block=True``): how much of the chosen imputation comes from the graph.
    best_estimator_ : GraphImputer or list of GraphImputer
        ``GraphImputer(**passthrough, **best_params_)`` fitted on ``X`` and ``y``, with
        ``passthrough`` the parameters listed above; :meth:`transform` is its ``transform``.
        With ``per_block=True`` a list: block ``b``'s ``GraphImputer(**passthrough,
        **best_params_[b])`` fitted on ``X[:, block b]`` and ``y``; :meth:`transform` puts
        their ``transform`` of each block's columns side by side (so new items take the
        new-item rule block by block, from the block's own columns).
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    See Also
    --------
    GraphImputer : the estimator whose settings are searched.
    skmm.metrics.make_imputation_scorer : the scoring protocol, for any search.

    Notes
    -----
    **Why one list per parameter**, not a ``param_grid``: the methods do not share their
    parameters (``n_iter`` is not NeighMean's, ``alpha`` only PPR's, ``t`` only heat's), so a
    product of one grid dict would repeat settings that differ only in a parameter the method
    ignores; the lists give each method its own product, once, as RidgeCV's ``alphas`` give
    its path. The parameters that are not searched are passed through, and another parameter
    can still be searched around this estimator.

    **Grid order** (that of ``cv_results_`` and of the tie rules): by method in the order of
    ``methods``, then similarity, then ``k``, then ``alpha`` (PPR) or ``t`` (heat), then
    ``n_iter``, each in the order given.

    **Cost.** Per similarity one neighbour-list build at ``max(n_neighbors)`` (about one
    :func:`~skmm.graph.cointeraction_graph` call at that ``k``); per ``k`` one slice, and per
    method and ``alpha`` / ``t`` one operator; per such operator and hidden copy one
    propagation of ``max(n_iter)`` steps over the rows that miss something (truly missing or
    hidden; hidden rows are simply more missing rows, the truly missing ones propagate too
    but are not scored). The refit of a propagated setting reuses its graph and operator
    (their rows cover every row missing in ``X``) and only propagates. Memory: the neighbour
    list (about 12 bytes per neighbour), the operator in use and that of the best setting so
    far, and per propagation the hidden rows' values after every step (``max(n_iter)`` x
    hidden rows x ``n_features`` values of ``dtype``).

    **Without y** there is no graph: every setting takes the fallback, all scores are equal
    and the first setting is chosen, with a ``UserWarning``.

    Examples
    --------
    >>> from skmm import GraphImputerCV
    >>> from skmm.datasets import make_multimodal, simulate_missing
    >>> data = make_multimodal(120, 60, (6, 4), density=0.1, random_state=0)
    >>> X, _ = simulate_missing(data.X, data.modalities, rate=0.3, mode="one", random_state=0)
    >>> cv = GraphImputerCV(methods=("neighmean", "multihop"), n_neighbors=(5, 10),
    ...                     n_iter=(1, 2, 3), modalities=data.modalities, n_repeats=2,
    ...                     device="cpu").fit(X, data.Y)
    >>> len(cv.cv_results_["params"])  # 2 neighmean settings, 2 x 3 multihop settings
    8
    >>> sorted(cv.best_params_) in (["method", "n_neighbors", "similarity"],
    ...                             ["method", "n_iter", "n_neighbors", "similarity"])
    True
    >>> cv.transform(X).shape
    (120, 10)
    """

    _parameter_constraints: dict = {
        **{name: GraphImputer._parameter_constraints[name] for name in _PASSTHROUGH},
        "methods": ["array-like"],
        "n_neighbors": ["array-like"],
        "n_iter": ["array-like"],
        "similarities": ["array-like"],
        "alphas": ["array-like"],
        "ts": ["array-like"],
        "modalities": ["array-like", None],
        "mode": [StrOptions({"auto", "modality", "entry"})],
        "fraction": [Real(0, 1, closed="neither")],
        "metric": [StrOptions(set(_IMPUTATION_METRICS))],
        "n_repeats": [Int(1)],
        "random_state": [Int(0, 2**32 - 1), np.random.RandomState],
        "selection": [StrOptions({"best", "one_se"})],
        "per_block": ["boolean"],
        "stratify": [StrOptions({"degree"}), None],
        "n_bins": [Int(1)],
    }

    def __init__(self, methods=METHODS, n_neighbors=tuple(range(10, 101, 10)),
                 n_iter=tuple(range(1, 21)), similarities=("count",), alphas=(0.1,),
                 ts=(5.0,), *, modalities=None, mode="auto", fraction=0.1,
                 metric="centred_cosine", n_repeats=5, random_state=0, selection="best",
                 per_block=False, stratify=None, n_bins=5, symmetric=False,
                 tol=1e-4, prune_tol=1e-4, rank="value", paper_compat=False, fallback="mean",
                 fill_value=0.0, device="auto", dtype="float32"):
        self.methods = methods
        self.n_neighbors = n_neighbors
        self.n_iter = n_iter
        self.similarities = similarities
        self.alphas = alphas
        self.ts = ts
        self.modalities = modalities
        self.mode = mode
        self.fraction = fraction
        self.metric = metric
        self.n_repeats = n_repeats
        self.random_state = random_state
        self.selection = selection
        self.per_block = per_block
        self.stratify = stratify
        self.n_bins = n_bins
        self.symmetric = symmetric
        self.tol = tol
        self.prune_tol = prune_tol
        self.rank = rank
        self.paper_compat = paper_compat
        self.fallback = fallback
        self.fill_value = fill_value
        self.device = device
        self.dtype = dtype

    # --------------------------------------------------------------------------------------

    def _grid(self):
        """The checked grid lists, by parameter name."""
        methods = _check_list("methods", self.methods, lambda v: isinstance(v, str)
                              and v in METHODS, f"one of {METHODS}")
        sims = _check_list("similarities", self.similarities, lambda v: isinstance(v, str)
                           and v in SIMILARITIES, f"one of {SIMILARITIES}")
        ks = _check_list("n_neighbors", self.n_neighbors, lambda v: _is_int(v) and v >= 1,
                         "integers >= 1")
        steps = [0]
        if any(m != "neighmean" for m in methods):
            steps = _check_list("n_iter", self.n_iter, lambda v: _is_int(v) and v >= 0,
                                "integers >= 0")
        alphas = ts = [None]
        if "ppr" in methods:
            alphas = _check_list("alphas", self.alphas, lambda v: _is_real(v) and 0 < v <= 1,
                                 "numbers in (0, 1]")
        if "heat" in methods:
            ts = _check_list("ts", self.ts, lambda v: _is_real(v) and v >= 0, "numbers >= 0")
        return {"methods": methods, "similarities": sims, "n_neighbors": [int(k) for k in ks],
                "n_iter": [int(s) for s in steps], "alphas": [float(a) for a in alphas
                                                              if a is not None] or [None],
                "ts": [float(t) for t in ts if t is not None] or [None]}

    def _settings(self, grid):
        """Every setting in grid order, as a dict of the searched parameters."""
        out = []
        for method in grid["methods"]:
            for sim in grid["similarities"]:
                for k in grid["n_neighbors"]:
                    variants = {"ppr": [("alpha", a) for a in grid["alphas"]],
                                "heat": [("t", t) for t in grid["ts"]]}.get(method, [None])
                    for variant in variants:
                        base = {"method": method, "similarity": sim, "n_neighbors": k}
                        if variant is not None:
                            base[variant[0]] = variant[1]
                        if method == "neighmean":
                            out.append(base)
                        else:
                            out.extend({**base, "n_iter": s} for s in grid["n_iter"])
        return out

    def _imputer(self, params):
        return GraphImputer(**{name: getattr(self, name) for name in _PASSTHROUGH}, **params)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Score every setting on hidden copies of ``X``, then refit the best on ``X``.

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            Item features, ``np.nan`` (or the mask) marking missing entries.
        y : {array-like, sparse matrix} of shape (n_items, n_users), default=None
            Interactions, items as rows. None: no graph (see Notes).

        Returns
        -------
        self : GraphImputerCV
            The fitted estimator.
        """
        if self.metric == "mse":  # not offered, as in make_imputation_scorer
            raise ValueError("metric='mse' is not a score (greater must be better): use "
                             "metric='neg_mse'.")
        grid = self._grid()
        settings = self._settings(grid)
        Xv = self._validate_X(X, reset=True)  # n_features_in_, feature names
        # As the scorer reads X: float64 or float32, NaN for missing.
        Xs = check_array(masked_to_nan(X), dtype=("float64", "float32"),
                         ensure_all_finite="allow-nan", input_name="X")
        n_items = Xs.shape[0]
        if self.modalities is not None:
            check_block_sizes(self.modalities, Xs.shape[1])
        if self.paper_compat and grid["similarities"] != ["count"]:
            raise ValueError(f"paper_compat=True builds the authors' co-count graph: "
                             f"similarities must be ('count',), got {self.similarities!r}.")
        for params in settings:
            try:
                self._imputer(params)._check_compat(n_items)
            except ValueError as exc:
                raise ValueError(f"The setting {params} cannot be fitted: {exc}") from None
        check_n_bins(self.n_bins, self.stratify)
        Y = None if y is None else check_interactions(y, n_items, name="y")
        degree = None if self.stratify is None else item_degrees(Y, n_items)
        if Y is None:
            warnings.warn("GraphImputerCV got no y: without interactions there is no graph, so "
                          "every setting takes the fallback (mean imputation) and scores the "
                          "same; the first setting is chosen. Pass the (n_items, n_users) "
                          "interaction matrix as y.", UserWarning, stacklevel=2)
        copies = self._hidden_copies(Xs, degree)
        n_blocks = 1 if self.modalities is None else len(self.modalities)
        # The score of each setting on each copy, and its per-block scores (those the score
        # averages).
        scores = _Scores(len(settings), len(copies), n_blocks)
        index = {_key(p): i for i, p in enumerate(settings)}
        if Y is None:
            for r, c in enumerate(copies):
                for i in range(len(settings)):
                    scores.put(i, r, c.score((c.base, c._share(np.zeros_like(c.miss)))))
        kept = None
        if Y is not None:
            kept = self._score_all(Y, grid, settings, index, copies, scores)
        self._results(settings, scores)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the no-y warning was given above
            if self.per_block:
                # Each block imputed alone with its setting: the graph and the propagation
                # are column by column, so these are the block's columns of a fit on all of
                # X with that setting.
                self.best_estimator_ = [
                    self._imputer(params).fit(Xv[:, cols], y)
                    for params, cols in zip(self.best_params_, self._block_slices())]
                return self
            best = self._imputer(self.best_params_)
            if kept is not None and kept[0] == self.best_index_:
                # The chosen setting's graph and operator, built during the search (the
                # operator's rows include every row missing in X): the refit only propagates.
                best._validate_params()
                best._fit(X, y, prepared=kept[2])
            else:
                best.fit(X, y)
        self.best_estimator_ = best
        return self

    def _hidden_copies(self, Xs, degree):
        """The ``n_repeats`` hidden copies, drawn as the scorer draws them, each prepared for
        scoring."""
        rng = (copy.deepcopy(self.random_state)
               if isinstance(self.random_state, np.random.RandomState)
               else np.random.RandomState(self.random_state))
        modalities = None if self.modalities is None else list(self.modalities)
        metric = "mse" if self.metric == "neg_mse" else self.metric
        copies = []
        for _ in range(self.n_repeats):
            X_hidden, _ = hide_observed(Xs, modalities, fraction=self.fraction, mode=self.mode,
                                        random_state=rng, stratify=degree,
                                        n_bins=self.n_bins)
            copies.append(_Copy(self._imputer({}), Xs, X_hidden, metric, modalities,
                                self.metric == "neg_mse"))
        return copies

    def _score_all(self, Y, grid, settings, index, copies, scores):
        device = resolve_device(self.device)
        dtype = _DTYPES[self.dtype]
        methods, ks = grid["methods"], grid["n_neighbors"]
        k_max = max(ks)
        # Rows of the operators: every row missing something in some hidden copy.
        union = np.unique(np.concatenate([c.rows for c in copies]))
        degree = np.diff(Y.indptr)
        kept = None  # (index, key, (graph, operator)) of the best propagated setting so far
        for sim in grid["similarities"]:
            lists = neighbour_lists(Y, k_max, similarity=sim)
            for k in ks:
                if self.paper_compat:
                    A = _paper_graph_from_counts(
                        graph_from_neighbours(lists, k, weighting="count"), degree, k)
                else:
                    A = graph_from_neighbours(lists, k, symmetric=self.symmetric)
                for method in methods:
                    base = {"method": method, "similarity": sim, "n_neighbors": k}
                    if method == "neighmean":
                        i = index[_key(base)]
                        for r, c in enumerate(copies):
                            c._check_range(dtype)
                            rows, values, reached = neighbour_mean(
                                A, c.X_hidden, paper_compat=self.paper_compat, dtype=dtype)
                            scores.put(i, r, c.score(c.assemble(rows, values, reached)))
                        continue
                    variants = {"ppr": [{"alpha": a} for a in grid["alphas"]],
                                "heat": [{"t": t} for t in grid["ts"]]}.get(method, [{}])
                    for variant in variants:
                        params = {**base, **variant}
                        P, wdtype = self._imputer(params)._operator(A, union, device, dtype)
                        at = [index[_key({**params, "n_iter": s})] for s in grid["n_iter"]]
                        for r, c in enumerate(copies):
                            for i, value in zip(at, c.score_steps(P, grid["n_iter"], device,
                                                                  wdtype)):
                                scores.put(i, r, value)
                        kept = _keep_if_best(kept, at, scores.total, (A, (P, wdtype)))
                        del P
        return kept

    def _results(self, settings, scores):
        n = len(settings)
        results = {"params": settings}
        names = [name for name in ("method", "similarity", "n_neighbors", "alpha", "t",
                                   "n_iter") if any(name in p for p in settings)]
        for name in names:
            col = np.ma.MaskedArray(np.empty(n, object), mask=True)
            for i, p in enumerate(settings):
                if name in p:
                    col[i] = p[name]
            results[f"param_{name}"] = col
        # The share of the hidden entries that the setting's graph values reach (the others
        # take the fallback and are scored as such), mean over the copies.
        results["mean_reached_fraction"] = scores.reached.mean(axis=1)
        tables = [("", scores.total)]
        if self.per_block:
            tables += [(f"_block{b}", scores.blocks[:, :, b])
                       for b in range(scores.blocks.shape[2])]
        chosen = []
        for suffix, table in tables:
            for r in range(table.shape[1]):
                results[f"split{r}_test_score{suffix}"] = table[:, r].copy()
            # The scorer's own mean over its repeats: np.mean of the list of per-copy scores.
            mean = np.array([float(np.mean(list(row))) for row in table])
            std = table.std(axis=1)
            results[f"mean_test_score{suffix}"] = mean
            results[f"std_test_score{suffix}"] = std
            finite = np.where(np.isnan(mean), -np.inf, mean)
            results[f"rank_test_score{suffix}"] = rankdata(-finite, method="min").astype(
                np.int32)
            if suffix == "" and self.per_block:
                continue  # the choice is per block
            if np.isnan(mean).all():
                where = f" of block {suffix[6:]}" if suffix else ""
                warnings.warn(f"Every setting scored NaN{where} (no hidden entry was scored: "
                              f"raise fraction); the first setting is chosen.", UserWarning,
                              stacklevel=3)
                chosen.append((0, float(mean[0])))
            else:
                best = _select(self.selection, mean, std, table.shape[1], settings)
                chosen.append((best, float(mean[best])))
        self.cv_results_ = results
        if self.per_block:
            self.best_index_ = np.array([i for i, _ in chosen], dtype=np.intp)
            self.best_params_ = [dict(settings[i]) for i, _ in chosen]
            self.best_score_ = np.array([score for _, score in chosen])
            self.reached_fraction_ = results["mean_reached_fraction"][self.best_index_]
        else:
            (best, score), = chosen
            self.best_index_ = best
            self.best_params_ = dict(settings[best])
            self.best_score_ = score
            self.reached_fraction_ = float(results["mean_reached_fraction"][best])

    def _block_slices(self):
        sizes = [self.n_features_in_] if self.modalities is None else list(self.modalities)
        bounds = np.concatenate(([0], np.cumsum(sizes)))
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

    # --------------------------------------------------------------------------------------

    # fit_transform is the base's: ``fit``, then the best estimator's fitted result.

    def _fitted_matrix(self):
        if self.per_block:
            return np.hstack([est._fitted_matrix() for est in self.best_estimator_])
        return self.best_estimator_._fitted_matrix()

    def transform(self, X):
        """Impute ``X`` with the best setting (:meth:`GraphImputer.transform`).

        Parameters
        ----------
        X : array-like or numpy.ma.MaskedArray of shape (n_items, n_features)
            The fitted items (their graph imputation) or new items.

        Returns
        -------
        X_imputed : ndarray of shape (n_items, n_features)
            ``X`` with missing entries filled; observed entries unchanged.
        """
        check_is_fitted(self)
        if not self.per_block:
            return self.best_estimator_.transform(X)
        X = self._validate_X(X, reset=False)
        return np.hstack([est.transform(X[:, cols])
                          for est, cols in zip(self.best_estimator_, self._block_slices())])


class _Copy:
    """One hidden copy of ``X``: what :class:`GraphImputer` ``fit_transform`` prepares from it
    (the fallback fill, the rows to impute), and the scoring of its hidden rows."""

    def __init__(self, imputer, X_true, X_hidden, metric, modalities, negate):
        self.X_hidden = X_hidden
        self.paper_compat = imputer.paper_compat
        out = np.empty(X_hidden.shape, X_hidden.dtype)
        scan = imputer._scan(X_hidden, copy_to=out)
        self.absmax = scan.absmax.max(initial=0) if scan.rows.size else 0.0
        self.dtype_name = imputer.dtype
        fill = fill_row(imputer.fallback, imputer.fill_value, scan.means, X_hidden.dtype)
        self.rows = scan.rows  # the rows with a missing entry: those a GraphImputer imputes
        # What propagate_features derives from X and its mask before it propagates (X_hidden
        # is already checked: float, no infinity), once for every operator.
        self.missing = np.isnan(X_hidden)
        self.full = self.missing[self.rows].all(axis=1)
        self.entries = _HiddenEntries(X_true, X_hidden, metric=metric, modalities=modalities)
        self.negate = negate
        hrows = self.entries.rows  # the rows with a hidden entry, all among ``self.rows``
        self.at = np.searchsorted(self.rows, hrows)
        self.miss = np.isnan(X_hidden[hrows])
        # The result of a GraphImputer on the hidden rows before the graph's values: observed
        # entries as given, the fallback everywhere else.
        self.base = X_hidden[hrows]
        np.copyto(self.base, fill, where=self.miss)

    def score(self, taken):
        """``(score, per-block scores, reached share)`` of an imputation of the hidden rows,
        given as ``(rows_values, share)`` (see :meth:`_take`)."""
        rows_values, share = taken
        raw = self.entries.score(rows_values, multioutput="raw_values")
        value = _uniform_average(raw)  # what the scorer's imputation_score returns
        return (-value, -raw, share) if self.negate else (value, raw, share)

    def _check_range(self, wdtype):
        if self.absmax > np.finfo(wdtype).max:
            raise ValueError(f"X has values up to {self.absmax:.3g}, beyond the range of "
                             f"dtype={self.dtype_name!r} in which they would be imputed; use "
                             f"dtype='float64'.")

    def assemble(self, rows, values, reached):
        """The hidden rows of a GraphImputer's result from its graph values on ``rows``."""
        at = np.searchsorted(rows, self.entries.rows)
        return self._take(values[at], reached[at])

    def _take(self, values, reached):
        """``(hidden rows imputed, share)``: the graph's values where they reach a hidden
        entry, the fallback elsewhere; ``share`` is the fraction of the hidden entries
        reached (1 for the official rules, which have no fallback)."""
        out = self.base.copy()
        # The official rules have no fallback: their value stands wherever it is.
        take = self.miss if self.paper_compat else self.miss & reached
        if not np.isfinite(values[take]).all():
            raise ValueError(f"the imputation overflowed dtype={self.dtype_name!r} (X's values "
                             f"are too large for it); use dtype='float64'.")
        np.copyto(out, values, where=take, casting="unsafe")
        return out, self._share(take)

    def _share(self, take):
        hidden = self.entries.hidden  # the hidden entries, on the hidden rows
        return float(take[hidden].sum() / hidden.sum()) if hidden.any() else np.nan

    def score_steps(self, P, steps, device, wdtype):
        """The scores after each step count of ``steps``, from one propagation over ``P``."""
        self._check_range(wdtype)
        n_max = max(steps)
        X, missing = self.X_hidden, self.missing
        # The propagator of propagate_features(P, X, missing, n_max, dtype=wdtype), as built
        # there.
        prop = ColumnPropagator(sp.csr_matrix(P), self.rows, self.full, n_max,
                                n_features=X.shape[1], device=device, dtype=wdtype)
        at = self.at
        snaps = np.zeros((n_max + 1, at.size, X.shape[1]), prop.dtype)
        at_t = [None]

        def snapshot(step, a, b, z):
            if isinstance(z, torch.Tensor):
                if at_t[0] is None or at_t[0].device != z.device:
                    at_t[0] = torch.from_numpy(at).to(z.device)
                snaps[step, :, a:b] = z.index_select(0, at_t[0]).cpu().numpy()
            else:
                snaps[step, :, a:b] = z[at]

        if n_max:
            _run(prop, X, missing, snapshot)
        # Step 0 (no propagation): the observed values, zeros at the missing entries; only the
        # missing entries are read, and those that are not reached take the fallback.
        miss_rows = missing[prop.rows]
        reach = list(reachability_steps(prop.P_rr, prop.touches_known, miss_rows,
                                        prop.partial.size == 0, n_max, rows=at))
        return [self.score(self._take(snaps[s], reach[s])) for s in steps]


class _Scores:
    """The score table: ``total[setting, copy]``, the scorer's score, and
    ``blocks[setting, copy, block]``, the per-block scores it averages."""

    def __init__(self, n_settings, n_copies, n_blocks):
        self.total = np.full((n_settings, n_copies), np.nan)
        self.blocks = np.full((n_settings, n_copies, n_blocks), np.nan)
        self.reached = np.full((n_settings, n_copies), np.nan)

    def put(self, i, r, score):
        self.total[i, r], self.blocks[i, r], self.reached[i, r] = score


def _keep_if_best(kept, at, scores, prepared):
    """``kept``, or the settings ``at`` with their graph and operator where one is better by
    the final choice's rule (the largest mean score, then the first in grid order): the refit
    of the chosen setting then reuses them."""
    for i in at:
        mean = float(np.mean(list(scores[i])))
        key = (-np.inf if np.isnan(mean) else mean, -i)
        if kept is None or key > kept[1]:
            kept = (i, key, prepared)
    return kept


def _complexity(params):
    """The one-standard-error rule's order of simplicity of a setting (smaller is simpler):
    fewer propagation steps (NeighMean, one neighbour average, counts as one step), then
    fewer neighbours, then the method in the fixed order of ``METHODS`` (``"neighmean"``,
    ``"multihop"``, ``"ppr"``, ``"heat"``); the caller breaks the remaining ties by grid
    order (similarity in the order of ``similarities``, then ``alpha`` / ``t`` as given)."""
    steps = 1 if params["method"] == "neighmean" else params["n_iter"]
    return (steps, params["n_neighbors"], METHODS.index(params["method"]))


def _select(selection, mean, std, n_repeats, settings):
    """The index of the chosen setting, from the settings' mean and std (over the
    ``n_repeats`` hidden copies) of their scores; not every score NaN.

    ``"best"``: the largest mean, the first in grid order among equal ones. ``"one_se"``: of
    the settings whose mean is at least ``best - std[best] / sqrt(n_repeats)`` (the best
    setting's standard error), the simplest by :func:`_complexity`, then the first in grid
    order. NaN means are never chosen."""
    finite = np.where(np.isnan(mean), -np.inf, mean)
    best = int(np.argmax(finite))  # the first of equal maxima: grid order
    if selection == "best":
        return best
    threshold = mean[best] - std[best] / np.sqrt(n_repeats)
    within = np.flatnonzero(finite >= threshold)
    return int(min(within, key=lambda i: (_complexity(settings[i]), i)))


def _key(params):
    return tuple(sorted(params.items()))


def _is_int(v):
    return isinstance(v, (Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v):
    return (isinstance(v, (_Real, np.floating, np.integer)) and not isinstance(v, (bool, np.bool_))
            and np.isfinite(v))


def _check_list(name, values, ok, what):
    """``values`` as a list, checked: a non-empty sequence of distinct valid values."""
    if isinstance(values, str) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a non-empty sequence of {what}, got {values!r}.")
    out = list(np.asarray(values, dtype=object).ravel()) if isinstance(values, np.ndarray) \
        else list(values)
    if not out:
        raise ValueError(f"{name} must be a non-empty sequence of {what}, got an empty one.")
    bad = [v for v in out if not ok(v)]
    if bad:
        raise ValueError(f"{name} must be a sequence of {what}; got {bad[0]!r} in {values!r}.")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} has repeated values ({values!r}): each setting must appear "
                         f"once in the grid.")
    return out
