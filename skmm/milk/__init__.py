"""MILK: multimodality invariant learning for new-item recommendation."""

from ._estimator import MILKRecommender
from ._module import EnvironmentSampler, MILKLoss, MILKModule

__all__ = ["EnvironmentSampler", "MILKLoss", "MILKModule", "MILKRecommender"]
