"""Inspection of fitted models: what their representations rely on."""

from ._modalities import modality_ranking

__all__ = ["modality_ranking"]
