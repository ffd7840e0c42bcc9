"""VBPR: a warm-start content-aware BPR recommender."""

from ._estimator import VBPRRecommender

__all__ = ["VBPRRecommender"]
