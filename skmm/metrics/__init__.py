"""Evaluation metrics: top-k ranking quality (items as rows, users as columns), imputation
quality, and scorers for model selection."""

from ._ranking import (
    evaluate_factors,
    hit_rate_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from ._imputation import centred_cosine, imputation_score
from ._scorer import make_imputation_scorer, make_topk_scorer, make_warm_start_scorer

__all__ = [
    "centred_cosine",
    "imputation_score",
    "evaluate_factors",
    "hit_rate_at_k",
    "make_imputation_scorer",
    "make_topk_scorer",
    "make_warm_start_scorer",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
]
