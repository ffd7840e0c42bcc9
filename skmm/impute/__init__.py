"""Imputers for missing item modality features, on one base (:class:`BaseImputer`)."""

from ._base import BaseImputer, BaseTransductiveImputer
from ._baseline import BaselineImputer
from ._featprop import FeatPropImputer
from ._graph import GraphImputer
from ._graph_cv import GraphImputerCV

__all__ = ["BaseImputer", "BaseTransductiveImputer", "BaselineImputer", "FeatPropImputer",
           "GraphImputer", "GraphImputerCV"]
