"""Datasets and missing-modality simulation."""

from ._missing import simulate_missing
from ._mmrec import load_mmrec
from ._split import interaction_split, new_item_split
from ._synthetic import make_multimodal

__all__ = ["interaction_split", "load_mmrec", "make_multimodal", "new_item_split",
           "simulate_missing"]
