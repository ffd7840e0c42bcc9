"""Input checks shared by every public function and estimator: the data contract in one place.

Items are the samples: ``X`` is (n_items, n_features) with ``np.nan`` for missing entries and
the interactions ``Y`` are (n_items, n_users), items as rows, so that scikit-learn slices both
together.

Parameters are declared with scikit-learn's constraints (``validate_params`` on functions,
``_parameter_constraints`` on estimators); :class:`Int` and :class:`Real` are its ``Interval``
without the surprises (``True`` is not the integer 1 here). The ``check_*`` functions below
validate data arguments, one function per kind of argument, and are used everywhere.
"""

import numbers

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils._param_validation import Interval


class Int(Interval):
    """``Interval(Integral, low, high)``, bounds included, that refuses booleans.

    ``numbers.Integral`` counts ``True`` as the integer 1, so scikit-learn's interval accepts
    ``n_neighbors=True``; an argument named as a count never means a boolean.
    """

    def __init__(self, low, high=None):
        closed = {(False, False): "both", (True, False): "right", (False, True): "left",
                  (True, True): "neither"}[(low is None, high is None)]
        super().__init__(numbers.Integral, low, high, closed=closed)

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


class Real(Interval):
    """``Interval(Real, ...)`` that refuses booleans (NaN is outside every interval)."""

    def __init__(self, low, high=None, *, closed="both"):
        super().__init__(numbers.Real, low, high, closed=closed)

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


class FillValue(Real):
    """A finite real number or NaN: the ``fill_value`` of a fill policy (NaN leaves the
    entries missing)."""

    def __init__(self):
        super().__init__(None, None)

    def is_satisfied_by(self, val):
        return (isinstance(val, numbers.Real) and not isinstance(val, (bool, np.bool_))
                and (np.isnan(val) or np.isfinite(val)))

    def __str__(self):
        return "a finite float or NaN"


def validate_features(estimator, X, *, reset, **check_params):
    """scikit-learn's ``validate_data`` for the item features ``X``, masked arrays as NaN.

    scikit-learn's own messages say what is wrong but not always which argument ("Complex
    data not supported"); here every ``ValueError`` names ``X``.
    """
    from sklearn.utils.validation import validate_data

    try:
        return validate_data(estimator, masked_to_nan(X), reset=reset, **check_params)
    except ValueError as exc:
        message = str(exc)
        if "X" in message.split():
            raise
        raise ValueError(f"X: {message}") from None


def masked_to_nan(X):
    """Return ``X`` with the masked entries of a ``numpy.ma.MaskedArray`` set to NaN.

    Anything else is returned unchanged, so that ``validate_data`` sees one representation of
    missingness.
    """
    if isinstance(X, np.ma.MaskedArray):
        data = np.asarray(X.data)
        if not np.issubdtype(data.dtype, np.floating):
            data = data.astype(np.float64)
        return np.where(np.ma.getmaskarray(X), np.nan, data)
    return X


def check_interactions(Y, n_items, *, name="y"):
    """Validate an interaction matrix and return it as a binary CSR matrix.

    Parameters
    ----------
    Y : {array-like, sparse matrix} of shape (n_items, n_users)
        Interactions, items as rows. Any non-zero value counts as one interaction.
    n_items : int
        The number of rows that ``Y`` must have (the number of samples of ``X``).
    name : str, default="y"
        The argument's name in error messages.

    Returns
    -------
    Y : scipy.sparse.csr_matrix of shape (n_items, n_users), dtype float32
        Ones where an item and a user interacted; explicit zeros removed.
    """
    if Y is None:
        raise ValueError(f"This estimator requires y to be passed, but the target y is None: "
                         f"pass the (n_items, n_users) interaction matrix as {name}.")
    if sp.issparse(Y):
        Y = sp.csr_matrix(Y)
    else:
        try:
            arr = np.asarray(Y)
        except (TypeError, ValueError) as exc:  # ragged lists, exotic containers
            raise ValueError(f"{name} could not be read as a 2-d array of interactions: "
                             f"{exc}") from None
        if arr.dtype.kind in "USV":
            raise TypeError(f"{name} must hold numeric interaction values, got dtype "
                            f"{arr.dtype}.")
        if arr.dtype == object:
            # Wording shared with scikit-learn's label checks, which look for it.
            raise TypeError(f"Unknown label type: {name} must hold numeric interaction values, "
                            f"got dtype object.")
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-d interaction matrix of shape (n_items, "
                             f"n_users) with items as rows; got an array of shape {arr.shape}.")
        Y = sp.csr_matrix(arr)
    if not (np.issubdtype(Y.dtype, np.number) or Y.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got dtype {Y.dtype}.")
    if np.issubdtype(Y.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real interaction values, got dtype {Y.dtype}.")
    if Y.shape[0] != n_items:
        raise ValueError(f"{name} must have one row per item: X has {n_items} rows (items) but "
                         f"{name} has shape {Y.shape}. Pass interactions as (n_items, n_users), "
                         f"items as rows (transpose a user x item matrix).")
    data = Y.data
    if data.size and not np.isfinite(data.astype(np.float64, copy=False)).all():
        raise ValueError(f"{name} contains NaN or infinite interaction values.")
    if data.size and (data < 0).any():
        raise ValueError(f"{name} contains negative interaction values; interactions must be "
                         f"non-negative (any positive value counts as an interaction).")
    # Zeros are dropped in the input's own dtype: a tiny positive count (1e-50) is an
    # interaction, and casting to float32 first would make it a zero.
    if not Y.has_canonical_format or (Y.data == 0).any():
        Y = Y.copy()  # never change the caller's matrix
        Y.sum_duplicates()
        Y.eliminate_zeros()
    return sp.csr_matrix((np.ones(Y.nnz, np.float32), Y.indices.copy(), Y.indptr.copy()),
                         shape=Y.shape)


def resolve_device(device, *, name="device"):
    """Turn a ``device`` parameter into a ``torch.device``.

    ``"auto"`` picks CUDA when it is available and the CPU otherwise. An unknown string, or a
    CUDA device on a machine without one, raises ``ValueError``.
    """
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"{name}={device!r} is not a valid torch device; expected 'auto', "
                             f"'cpu', 'cuda' or 'cuda:N'.") from exc
    else:
        raise TypeError(f"{name} must be a string or a torch.device, got {type(device).__name__}.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={device!r} asks for CUDA but no CUDA device is available; use "
                         f"'auto' or 'cpu'.")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{name}={device!r}: only 'cpu' and 'cuda' devices are supported.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{name}={device!r}: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s).")
    return dev


def check_users(users, n_users, *, name="users"):
    """Validate user indices (columns of the fitted ``y``); None means every user."""
    if users is None:
        return np.arange(n_users)
    arr = np.asarray(users)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise ValueError(f"{name} must be a 1-d array of user indices, got {users!r}.")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_users):
        raise ValueError(f"{name} must be indices in [0, {n_users}), got values from "
                         f"{arr.min()} to {arr.max()}.")
    return arr


def check_block_sizes(modalities, n_features=None, *, name="modalities"):
    """Validate column-block sizes and return them as a tuple of ints summing to n_features
    (any sum when ``n_features`` is None).

    Only a sequence of integers is accepted: a string (``"21"``), strings (``("6", "4")``),
    floats or booleans are refused rather than converted, since each conversion would be a
    guess.
    """
    if isinstance(modalities, (str, bytes)) or not _is_sequence(modalities):
        raise TypeError(f"{name} must be a sequence of positive integer block sizes (e.g. "
                        f"[384, 128]), got {modalities!r}.")
    sizes = tuple(modalities)
    bad = [m for m in sizes if isinstance(m, (bool, np.bool_))
           or not isinstance(m, numbers.Integral)]
    if bad:
        raise TypeError(f"{name} must list integer block sizes, got {list(sizes)} (the entries "
                        f"{bad} are not integers).")
    sizes = tuple(int(m) for m in sizes)
    if not sizes or any(m < 1 for m in sizes):
        raise ValueError(f"{name} must list positive column-block sizes, got {list(sizes)}.")
    if n_features is not None and sum(sizes) != n_features:
        raise ValueError(f"{name}={list(sizes)} sums to {sum(sizes)} but X has {n_features} "
                         f"features; the block sizes must add up to the number of columns.")
    return sizes


def _is_sequence(obj):
    return hasattr(obj, "__len__") and hasattr(obj, "__iter__") and np.ndim(obj) == 1


def interaction_target_tags(tags, *, required):
    """Declare ``y`` an (n_items, n_users) interaction matrix in scikit-learn estimator tags.

    One output per user, never negative: scikit-learn's common checks then pass a valid 2-d
    matrix instead of a 1-d label vector.
    """
    tags.target_tags.required = required
    tags.target_tags.multi_output = True
    tags.target_tags.single_output = False
    tags.target_tags.positive_only = True
    return tags
