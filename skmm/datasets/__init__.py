"""Datasets and missing-modality simulation."""

from ._missing import simulate_missing
from ._mmrec import load_mmrec
from ._synthetic import make_multimodal

__all__ = ["load_mmrec", "make_multimodal", "simulate_missing"]
