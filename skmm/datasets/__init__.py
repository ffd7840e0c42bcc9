"""Datasets and missing-modality simulation."""

from ._missing import hide_observed, simulate_missing
from ._mmrec import load_mmrec
from ._split import interaction_split, new_item_split
from ._synthetic import make_multimodal
from ._text import encode_texts, original_item_ids, write_text_modality

__all__ = ["encode_texts", "hide_observed", "interaction_split", "load_mmrec", "make_multimodal",
           "new_item_split", "original_item_ids", "simulate_missing", "write_text_modality"]
