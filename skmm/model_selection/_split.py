"""A cross-validation splitter for models that need every item in every fit."""

import numpy as np
from sklearn.model_selection import BaseCrossValidator

from .._validation import Int


class AllItemsSplit(BaseCrossValidator):
    """``n_splits`` splits that each train and test on all the items.

    Item-wise K-fold does not fit a warm-start (transductive) model: it scores only the items
    it was fitted on, and a graph imputer builds its graph over every item. Such models are
    validated on held-out *interactions* (or held-out feature entries) of the same items, which
    the scorer carries (:func:`skmm.metrics.make_warm_start_scorer`); the splitter then only
    has to hand every item to both ``fit`` and the scorer. With several splits, the scorer
    decides what differs between them (e.g. its own seeds); by default there is one.

    Parameters
    ----------
    n_splits : int, default=1
        Number of (identical) splits.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.model_selection import AllItemsSplit
    >>> [(train.tolist(), test.tolist()) for train, test in AllItemsSplit().split(np.zeros((3, 2)))]
    [([0, 1, 2], [0, 1, 2])]
    """

    def __init__(self, n_splits=1):
        if not Int(1).is_satisfied_by(n_splits):
            raise ValueError(f"n_splits must be an int >= 1, got {n_splits!r}.")
        self.n_splits = n_splits

    def split(self, X, y=None, groups=None):
        """Yield ``(all_items, all_items)`` ``n_splits`` times."""
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        items = np.arange(n)
        for _ in range(self.n_splits):
            yield items, items

    def get_n_splits(self, X=None, y=None, groups=None):
        """The number of splits."""
        return self.n_splits

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover - unused
        raise NotImplementedError
