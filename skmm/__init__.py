"""skmm: scikit-learn estimators for multimodal recommendation with missing item modalities.

Items are the samples: ``X`` is the (n_items, n_features) item-feature matrix, one column block
per modality, ``np.nan`` marking missing entries; interactions are a sparse (n_items, n_users)
matrix passed as ``y``.
"""

from .datasets import simulate_missing
from .graph import cointeraction_graph, normalize_adjacency
from .impute import BaselineImputer, FeatPropImputer
from .vbpr import VBPRRecommender
from .milk import MILKRecommender

__version__ = "0.1.0.dev0"

__all__ = [
    "BaselineImputer",
    "FeatPropImputer",
    "cointeraction_graph",
    "normalize_adjacency",
    "simulate_missing",
    "VBPRRecommender",
    "MILKRecommender",
    "__version__",
]
