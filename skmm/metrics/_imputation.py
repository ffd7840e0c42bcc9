"""How close imputed item features are to the true ones."""

import numpy as np
from sklearn.utils._param_validation import StrOptions, validate_params

from .._validation import check_block_sizes


def centred_cosine(X_imputed, X_true, centre):
    """Mean row-wise cosine between imputed and true features after subtracting ``centre``.

    With ``centre`` the mean of the observed rows, mean imputation scores exactly 0 and a
    perfect imputation scores 1, so the figure measures what an imputer adds over the mean.

    Parameters
    ----------
    X_imputed, X_true : ndarray of shape (n_rows, n_features)
        Imputed and true values of the same rows.
    centre : ndarray of shape (n_features,)
        Subtracted from both before the cosine.

    Returns
    -------
    score : float
        The mean cosine over rows (a row with zero norm counts as 0).
    """
    b = np.asarray(X_true, dtype=np.float64) - centre
    return _centred_cosine(X_imputed, b, np.linalg.norm(b, axis=1), centre)


def _centred_cosine(X_imputed, b, norm_b, centre):
    """:func:`centred_cosine` with the true side ``b = X_true - centre`` and its row norms
    given (computed once when many imputations of the same rows are scored)."""
    a = np.asarray(X_imputed, dtype=np.float64) - centre
    norms = np.linalg.norm(a, axis=1) * norm_b
    cos = np.divide((a * b).sum(axis=1), norms, out=np.zeros(len(a)), where=norms > 0)
    return float(cos.mean()) if len(cos) else float("nan")


_METRICS = ("centred_cosine", "mse", "mse_skill", "average_precision",
            "average_precision_gain")


@validate_params(
    {"X_true": ["array-like"], "X_imputed": ["array-like"], "X_masked": ["array-like"],
     "metric": [StrOptions(set(_METRICS))], "modalities": ["array-like", None],
     "multioutput": [StrOptions({"raw_values", "uniform_average"})]},
    prefer_skip_nested_validation=True,
)
def imputation_score(X_true, X_imputed, X_masked, *, metric="centred_cosine",
                     modalities=None, multioutput="uniform_average"):
    """How well an imputer recovered hidden entries, per modality block.

    The scored entries of a block are the *hidden* ones: missing (NaN) in ``X_masked``, the
    input the imputer saw, and known in ``X_true``. Every statistic of the baseline comes from
    ``X_masked`` alone, so hidden values never leak into it: the centre of a block is the
    column mean of its observed entries in ``X_masked``, the value the mean imputer fills in
    (computed in float64 and rounded to the precision of a float32 or float16 ``X_masked``, as
    a mean imputer's output is).

    Metrics (higher is better for all but ``"mse"``):

    * ``"centred_cosine"``: for each row with a hidden entry, the cosine between imputed and
      true values minus the centre, over the row's hidden entries of the block; the mean over
      rows (:func:`centred_cosine`, a zero-norm row counting 0). The mean imputer scores
      exactly 0, a perfect one 1. Invariant to scaling about the centre: pair it with an MSE.
    * ``"mse"``: the mean squared error over the hidden entries.
    * ``"mse_skill"``: ``1 - MSE / MSE_mean``, with ``MSE_mean`` that of the mean imputer on
      the same entries: 0 for the mean imputer, 1 for a perfect one (NaN if ``MSE_mean`` is 0).
    * ``"average_precision"``: for binary (multi-hot) blocks, each row's hidden columns ranked
      by imputed score, ``AP_r = (1/|P_r|) sum_{j in P_r} precision@rank(j)`` with ``P_r`` the
      true positives (tied scores share a threshold, as in
      :func:`sklearn.metrics.average_precision_score`), averaged over the rows with at least
      one positive; rows without are excluded.
    * ``"average_precision_gain"``: that AP minus the mean imputer's (which ranks columns by
      their observed frequency and is not 0).

    Parameters
    ----------
    X_true : array-like of shape (n_items, n_features)
        The true values (NaN where unknown: such entries are not scored).
    X_imputed : array-like of shape (n_items, n_features)
        The imputer's output for ``X_masked``; finite at the hidden entries.
    X_masked : array-like of shape (n_items, n_features)
        The imputer's input, NaN at the hidden (and at truly missing) entries.
    metric : str, default="centred_cosine"
        One of the metrics above.
    modalities : array-like of int or None, default=None
        Column-block sizes (summing to ``n_features``); None: one block.
    multioutput : {"uniform_average", "raw_values"}, default="uniform_average"
        ``"raw_values"``: one score per block (NaN for a block without scored rows);
        ``"uniform_average"``: their mean with equal weight per block, so that a wide block
        does not dominate (blocks without scored rows left out).

    Returns
    -------
    score : float or ndarray of shape (n_blocks,)

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.metrics._imputation import imputation_score  # exported as skmm.metrics later
    >>> X_true = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 1.0]])
    >>> X_masked = X_true.copy()
    >>> X_masked[3] = np.nan  # hidden; the centre is the mean of rows 0-2, (2/3, 2/3)
    >>> imputation_score(X_true, X_true, X_masked)  # perfect
    1.0
    >>> mean_imputed = np.where(np.isnan(X_masked), np.nanmean(X_masked, axis=0), X_masked)
    >>> imputation_score(X_true, mean_imputed, X_masked, metric="mse_skill")
    0.0
    """
    X_imputed = np.asarray(X_imputed, dtype=np.float64)
    scorer = _HiddenEntries(X_true, X_masked, metric=metric, modalities=modalities)
    if X_imputed.shape != scorer.shape:
        raise ValueError(f"X_true, X_imputed and X_masked must be 2-d arrays of one shape, got "
                         f"{scorer.shape}, {X_imputed.shape} and {scorer.shape}.")
    return scorer.score(X_imputed[scorer.rows], multioutput=multioutput)


class _HiddenEntries:
    """:func:`imputation_score` in two parts: what depends on ``X_true`` and ``X_masked`` only
    (the hidden entries, the centres), prepared once, then the score of any imputation of
    them. Model selection scores many imputations of one hidden copy
    (:class:`~skmm.impute.GraphImputerCV`); ``score`` reads only the rows ``rows`` of the
    imputation (those with a hidden entry), and gives exactly what :func:`imputation_score`
    gives for a full matrix with those rows, which is this same code."""

    def __init__(self, X_true, X_masked, *, metric, modalities):
        masked_dtype = np.asarray(X_masked).dtype
        X_masked = np.asarray(X_masked, dtype=np.float64)
        # Only the hidden rows of X_true are read as float64 (the conversion is exact).
        X_true = np.asarray(X_true)
        if not np.issubdtype(X_true.dtype, np.floating):
            X_true = X_true.astype(np.float64)
        # A mean imputer fills in the float64 mean rounded to the input's precision: with the
        # centre rounded the same way it scores exactly 0 (centred cosine), not the cosine of
        # the rounding error, which on float32 data is anything in [-1, 1].
        centre_dtype = (masked_dtype if np.issubdtype(masked_dtype, np.floating)
                        and masked_dtype.itemsize < 8 else np.float64)
        if X_true.ndim != 2 or X_masked.shape != X_true.shape:
            raise ValueError(f"X_true, X_imputed and X_masked must be 2-d arrays of one shape, "
                             f"got {X_true.shape} and {X_masked.shape} (X_true, X_masked).")
        self.shape = X_true.shape
        n_features = X_true.shape[1]
        sizes = ([n_features] if modalities is None
                 else list(check_block_sizes(modalities, n_features)))
        hidden = np.isnan(X_masked) & ~np.isnan(X_true)
        self.metric = metric
        self.rows = np.flatnonzero(hidden.any(axis=1))
        self.hidden = hidden[self.rows]
        self.error = None  # raised at ``score``, after the check of the imputation
        self.blocks = []
        start = 0
        for size in sizes:
            cols = slice(start, start + size)
            start += size
            block = None
            if self.error is None:
                block = _prepare_block(X_true[:, cols], X_masked[:, cols], hidden[:, cols],
                                       start - size, centre_dtype)
                if isinstance(block, ValueError):
                    self.error, block = block, None
            if block is not None:
                # Positions of the block's rows among ``self.rows``.
                block["at"] = np.searchsorted(self.rows, block.pop("rows"))
            self.blocks.append((cols, block))

    def score(self, X_imputed_rows, *, multioutput="uniform_average"):
        """The score of an imputation whose rows ``self.rows`` are ``X_imputed_rows``."""
        X_imputed_rows = np.asarray(X_imputed_rows, dtype=np.float64)
        if not np.isfinite(X_imputed_rows[self.hidden]).all():
            raise ValueError("X_imputed must be finite at the hidden entries (missing in "
                             "X_masked, known in X_true).")
        if self.error is not None:
            raise self.error
        scores = np.array([float("nan") if block is None else
                           _block_score(block, X_imputed_rows[block["at"], cols], self.metric)
                           for cols, block in self.blocks])
        if multioutput == "raw_values":
            return scores
        return _uniform_average(scores)


def _uniform_average(scores):
    """The ``"uniform_average"`` of per-block scores: their mean, NaN blocks left out."""
    valid = ~np.isnan(scores)
    return float(scores[valid].mean()) if valid.any() else float("nan")


def _prepare_block(x_true, x_masked, hidden, offset, centre_dtype):
    """The hidden rows of one block, their true values, mask and centre; None without hidden
    rows; the ValueError to raise when a column has no observed value."""
    rows = np.flatnonzero(hidden.any(axis=1))
    if rows.size == 0:
        return None
    observed = ~np.isnan(x_masked)
    n_obs = observed.sum(axis=0)
    if (n_obs == 0).any():
        return ValueError(f"Column {offset + int(np.argmax(n_obs == 0))} has no observed value "
                          f"in X_masked: its centre (the mean imputer's value) is undefined.")
    centre = np.where(observed, x_masked, 0.0).sum(axis=0) / n_obs
    centre = centre.astype(centre_dtype).astype(np.float64)
    h, t = hidden[rows], np.asarray(x_true[rows], dtype=np.float64)
    # The true side of the centred cosine, as centred_cosine computes it.
    b = np.where(h, t, centre) - centre
    return {"rows": rows, "h": h, "t": t, "centre": centre, "offset": offset, "b": b,
            "norm_b": np.linalg.norm(b, axis=1)}


def _block_score(block, p, metric):
    h, t, centre, offset = block["h"], block["t"], block["centre"], block["offset"]
    mean_fill = np.broadcast_to(centre, t.shape)
    if metric == "centred_cosine":
        # Non-hidden entries set to the centre contribute nothing to either vector.
        return _centred_cosine(np.where(h, p, centre), block["b"], block["norm_b"], centre)
    if metric in ("mse", "mse_skill"):
        mse = float(((p - t) ** 2)[h].mean())
        if metric == "mse":
            return mse
        base = float(((mean_fill - t) ** 2)[h].mean())
        return 1.0 - mse / base if base > 0 else float("nan")
    labels = t[h]
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError(f"metric={metric!r} needs a binary (0/1, multi-hot) block; the block "
                         f"starting at column {offset} has other true values.")
    y = np.where(h, t, 0.0)
    scored = y.sum(axis=1) > 0
    if not scored.any():
        return float("nan")
    ap = _average_precision_rows(y[scored], p[scored], h[scored]).mean()
    if metric == "average_precision":
        return float(ap)
    base = _average_precision_rows(y[scored], mean_fill[scored], h[scored]).mean()
    return float(ap - base)


def _average_precision_rows(y, score, valid):
    """Per row, the average precision of ranking the ``valid`` columns by ``score`` against
    the 0/1 labels ``y`` (each row has a positive). Equal scores share one threshold: every
    positive of a tied group gets the precision at the group's end, as in scikit-learn."""
    s = np.where(valid, score, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")
    s = np.take_along_axis(s, order, axis=1)
    yy = np.take_along_axis(np.where(valid, y, 0.0), order, axis=1)
    m = s.shape[1]
    pos = np.broadcast_to(np.arange(m), s.shape)
    is_end = np.ones(s.shape, bool)
    is_end[:, :-1] = s[:, :-1] != s[:, 1:]
    # The end of each position's group: the first group end at or after it.
    end = np.minimum.accumulate(np.where(is_end, pos, m)[:, ::-1], axis=1)[:, ::-1]
    tp = np.cumsum(yy, axis=1)
    precision = np.take_along_axis(tp, end, axis=1) / (end + 1)
    return (yy * precision).sum(axis=1) / yy.sum(axis=1)
