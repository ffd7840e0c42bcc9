"""Datasets and missing-modality simulation."""

from ._missing import simulate_missing

__all__ = ["simulate_missing"]
