"""Imputers for missing item modality features."""

from ._baseline import BaselineImputer
from ._featprop import FeatPropImputer

__all__ = ["BaselineImputer", "FeatPropImputer"]
