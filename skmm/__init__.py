"""skmm: scikit-learn estimators for multimodal recommendation with missing item modalities.

Items are the samples: ``X`` is the (n_items, n_features) item-feature matrix, one column block
per modality, ``np.nan`` marking missing entries; interactions are a sparse (n_items, n_users)
matrix passed as ``y``.

The public names are imported on first use (PEP 562), so that ``import skmm`` and
``python -m skmm --help`` do not load torch.
"""

import importlib

__version__ = "0.1.0.dev0"

# Public name -> the submodule that defines it.
_EXPORTS = {
    "BaselineImputer": "impute",
    "FREEDOMRecommender": "freedom",
    "FeatPropImputer": "impute",
    "GraphImputer": "impute",
    "GraphImputerCV": "impute",
    "MILKRecommender": "milk",
    "VBPRRecommender": "vbpr",
    "cointeraction_graph": "graph",
    "normalize_adjacency": "graph",
    "simulate_missing": "datasets",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'skmm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
