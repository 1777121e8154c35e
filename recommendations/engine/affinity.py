"""`aws-item-affinity` and `aws-item-attribute-affinity`: user segments from the personalization model."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from recommendations.engine.base import RecipeError, Recommendation
from recommendations.engine.registry import register
from recommendations.engine.user_personalization import LowRankEaseRecipe, top_n

__all__ = ["ItemAffinity", "ItemAttributeAffinity"]


class _AffinitySegments(LowRankEaseRecipe):
    """Users ranked by their mean predicted score over the masked items (recency-weighted histories)."""

    def segment(self, item_mask: np.ndarray, *, n: int) -> Recommendation:
        """The n users with the highest mean low-rank EASE score for the items in `item_mask`."""
        self._check_fitted()
        mask = np.asarray(item_mask, dtype=bool)
        if mask.shape != (self.n_items,):
            raise RecipeError(f"item_mask must be a boolean array of length {self.n_items}")
        if not mask.any():
            return Recommendation(np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32))
        columns = np.flatnonzero(mask)
        residual = np.asarray(self.inverse_residual)[columns]
        # score_uj = y_uj * r_j + x_uj * (1 - r_j), with y_u = V diag(shrink) V^T x_u.
        direction = (np.asarray(self.factors)[columns].T @ residual) * np.asarray(self.shrink)
        scores = self._user_latent() @ direction
        profiles = self.user_profiles[:, columns]
        scores += profiles @ (1.0 - residual)
        scores = (scores / len(columns)).astype(np.float32)
        active = np.diff(self.user_profiles.indptr) > 0
        scores[~active] = -np.inf  # users without events are not a segment
        index, score = top_n(scores, n)
        return Recommendation(index, score)

    def _user_latent(self) -> np.ndarray:
        latent = getattr(self, "_latent_cache", None)
        if latent is None:
            latent = np.asarray(self.user_profiles @ np.asarray(self.factors), dtype=np.float32)
            self._latent_cache = latent
        return latent


@register
class ItemAffinity(_AffinitySegments):
    """Users most likely to interact with one item (the mask holds that item)."""

    name: ClassVar[str] = "aws-item-affinity"

    def segment(self, item_mask: np.ndarray, *, n: int) -> Recommendation:
        """The n users with the highest predicted score for the single masked item."""
        if int(np.count_nonzero(item_mask)) > 1:
            raise RecipeError("aws-item-affinity segments take exactly one item")
        return super().segment(item_mask, n=n)


@register
class ItemAttributeAffinity(_AffinitySegments):
    """Users most likely to interact with items matching an attribute condition (the caller's mask)."""

    name: ClassVar[str] = "aws-item-attribute-affinity"
