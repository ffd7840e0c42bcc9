"""Evaluation metrics: top-k ranking quality (items as rows, users as columns)."""

from ._ranking import (
    evaluate_factors,
    hit_rate_at_k,
    make_topk_scorer,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

__all__ = [
    "evaluate_factors",
    "hit_rate_at_k",
    "make_topk_scorer",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
]
