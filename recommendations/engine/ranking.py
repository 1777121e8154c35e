"""`aws-personalized-ranking`: the user-personalization scores applied to a caller's list of items."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from recommendations.engine.base import History, RecipeError, Recommendation
from recommendations.engine.registry import register
from recommendations.engine.user_personalization import UserPersonalization

__all__ = ["MAX_RANK_ITEMS", "PersonalizedRanking"]

MAX_RANK_ITEMS = 500  # Personalize's inputList cap; enforced by the API layer, not here


@register
class PersonalizedRanking(UserPersonalization):
    """Re-rank up to 500 items for a user; unknown items (-1 or out of range) go last with a NaN score."""

    name: ClassVar[str] = "aws-personalized-ranking"

    def rank(self, history: History, items: np.ndarray, *, now: int | None = None) -> Recommendation:
        """The given items best first; unknown ones last, unscored (NaN), in their input order."""
        items = np.asarray(items, dtype=np.int64)
        if items.ndim != 1:
            raise RecipeError("items must be a one-dimensional array of item indices")
        known = (items >= 0) & (items < self.n_items)
        known_positions = np.flatnonzero(known)
        scores = self.scores(history)
        known_scores = scores[items[known_positions]].astype(np.float32)
        order = np.lexsort((known_positions, -known_scores))  # ties keep input order
        ranked = np.concatenate((items[known_positions[order]], items[~known]))
        ranked_scores = np.concatenate(
            (known_scores[order], np.full(int((~known).sum()), np.nan, dtype=np.float32))
        )
        return Recommendation(
            ranked.astype(np.int32), ranked_scores, {"known": np.arange(len(ranked)) < len(order)}
        )
