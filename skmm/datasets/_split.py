"""Splitting items into training and new (cold-start) items."""

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import validate_params

from .._validation import Real, check_interactions


@validate_params(
    {
        "Y": ["array-like", "sparse matrix"],
        "test_size": [Real(0, 1, closed="left")],
        "val_size": [Real(0, 1, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def new_item_split(Y, test_size=0.1, val_size=0.1, random_state=None):
    """Choose new items for validation and test, the MILK cold-start protocol.

    The chosen items lose all their interactions from training: a model sees only the
    training items' interactions and must rank the new items from their content alone.

    Parameters
    ----------
    Y : {array-like, sparse matrix} of shape (n_items, n_users)
        Interactions, items as rows (only the number of rows is used).
    test_size, val_size : float in [0, 1), default=0.1
        Fractions of all items that become test and validation new items (rounded to whole
        items); together below 1.
    random_state : int, RandomState instance or None, default=None
        Seeds the choice.

    Returns
    -------
    train_items, val_items, test_items : ndarray of int
        Sorted, disjoint item indices covering all items.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.datasets import new_item_split
    >>> train, val, test = new_item_split(np.zeros((10, 3)), random_state=0)
    >>> len(train), len(val), len(test)
    (8, 1, 1)
    """
    n_items = Y.shape[0] if hasattr(Y, "shape") else len(Y)
    n_test = int(round(test_size * n_items))
    n_val = int(round(val_size * n_items))
    if n_test + n_val >= n_items:
        raise ValueError(f"test_size + val_size leaves no training item ({n_items} items).")
    order = check_random_state(random_state).permutation(n_items)
    test = np.sort(order[:n_test])
    val = np.sort(order[n_test:n_test + n_val])
    train = np.sort(order[n_test + n_val:])
    return train, val, test


@validate_params(
    {
        "Y": ["array-like", "sparse matrix"],
        "test_size": [Real(0, 1, closed="neither")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def interaction_split(Y, test_size=0.2, random_state=None):
    """Hold out a random share of the interactions, keeping every item: warm-start evaluation.

    A warm-start (transductive) model such as :class:`~skmm.VBPRRecommender` or
    :class:`~skmm.FREEDOMRecommender` scores the items it was fitted on, so it is evaluated
    on held-out *interactions* of those items, not on held-out items: fit on ``Y_train``,
    score on ``Y_test`` (training interactions excluded from the ranking).

    Parameters
    ----------
    Y : {array-like, sparse matrix} of shape (n_items, n_users)
        Interactions, items as rows; any non-zero value is one interaction.
    test_size : float in (0, 1), default=0.2
        Fraction of the interactions held out, each drawn independently.
    random_state : int, RandomState instance or None, default=None
        Seeds the draw.

    Returns
    -------
    Y_train, Y_test : scipy.sparse.csr_matrix of shape (n_items, n_users)
        Binary, disjoint, summing to the binarised ``Y``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.datasets import interaction_split
    >>> Y_train, Y_test = interaction_split(np.ones((4, 5)), test_size=0.2, random_state=0)
    >>> Y_train.nnz + Y_test.nnz
    20
    """
    Y = check_interactions(Y, Y.shape[0] if hasattr(Y, "shape") else len(Y), name="Y")
    coo = Y.tocoo()
    test = check_random_state(random_state).random_sample(coo.nnz) < test_size
    part = lambda sel: sp.csr_matrix((coo.data[sel], (coo.row[sel], coo.col[sel])),  # noqa
                                     shape=Y.shape)
    return part(~test), part(test)
