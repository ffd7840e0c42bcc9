"""Model selection under the data contract: items are the samples, ``y`` is sparse.

scikit-learn's :class:`~sklearn.model_selection.GridSearchCV` and
:class:`~sklearn.model_selection.RandomizedSearchCV` take skmm estimators as they are.
:func:`sklearn.model_selection.cross_validate` and
:func:`~sklearn.model_selection.cross_val_score` refuse a sparse ``y`` in their own argument
checks, so this module provides the same two functions for an (n_items, n_users) interaction
matrix, plus the splitter and scorers of the two kinds of validation:

* **cold start** (new items, content models such as MILK): folds over items, any
  scikit-learn splitter, scored with :func:`skmm.metrics.make_topk_scorer`;
* **warm start** (VBPR, FREEDOM, and graph imputers, which need every item): one split that
  keeps all items (:class:`AllItemsSplit`), interactions held out with
  :func:`skmm.datasets.interaction_split` and scored with
  :func:`skmm.metrics.make_warm_start_scorer`.
"""

from ._split import AllItemsSplit
from ._validation import cross_val_score, cross_validate

__all__ = ["AllItemsSplit", "cross_val_score", "cross_validate"]
