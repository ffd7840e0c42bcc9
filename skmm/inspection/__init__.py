"""Diagnostics: whether a method can help on your data, and what a fitted model relies on.

* :func:`feature_homophily`: before imputing, whether items linked in the co-interaction graph
  have similar features (a graph imputer can only help where they do);
* :func:`modality_ranking`: for a fitted MILK, how well each modality alone ranks held-out
  items against the equal mix.
"""

from ._homophily import feature_homophily
from ._modalities import modality_ranking

__all__ = ["feature_homophily", "modality_ranking"]
