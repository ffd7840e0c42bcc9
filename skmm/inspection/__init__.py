"""Diagnostics that tell, before imputing, whether a graph imputer can help."""

from ._homophily import feature_homophily

__all__ = ["feature_homophily"]
