"""`aws-trending-now`: items whose interactions grew most between the two most recent intervals.

Interval: Personalize's `trend_discovery_frequency` (a featureTransformationParameter there;
here a hyperparameter): "30 minutes", "1 hour", "2 hours" (default), "3 hours" or "1 day".

At a request time `now` the current interval is (now - I, now] and the previous one
(now - 2I, now - I]; an item's trend score is its (weighted) event count in the current interval
minus that in the previous one. Items rank by that increase, ties by overall popularity
(distinct users), then index; with no events in the last two intervals the list is simply the
popular items, as Personalize documents.

New events count without retraining: the fitted model keeps only the training events of its last
two intervals (a few arrays) and `trained_until`. The serving layer, at request time:

    since = model.recent_events_since(now)        # = max(trained_until, now - 2I)
    # read (item index, timestamp) of events with since < timestamp <= now from the database
    model.with_recent_events(items, timestamps).recommend(History.empty(), n=25, now=now)

`with_recent_events` returns a light copy sharing the fitted arrays, so it is safe across threads.
Without `now`, requests are answered as of `trained_until` (the newest training event).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from recommendations.engine.base import History, InteractionData, Recipe, Recommendation
from recommendations.engine.hyperparameters import (
    HyperParameter,
    default_hyperparameters,
    parse_hyperparameters,
)
from recommendations.engine.popularity import distinct_user_counts
from recommendations.engine.registry import register

__all__ = ["TREND_INTERVALS", "TrendingNow"]

TREND_INTERVALS: dict[str, int] = {
    "30 minutes": 30 * 60,
    "1 hour": 3600,
    "2 hours": 2 * 3600,
    "3 hours": 3 * 3600,
    "1 day": 86400,
}
SPECS = (HyperParameter("trend_discovery_frequency", "choice", "2 hours", choices=tuple(TREND_INTERVALS)),)


@register
class TrendingNow(Recipe):
    """Largest increase in interactions between the two most recent intervals; popular items otherwise."""

    name = "aws-trending-now"
    default_hyperparameters = default_hyperparameters(SPECS)

    def __init__(self, hyperparameters: dict[str, str] | None = None, *, seed: int = 42) -> None:
        super().__init__(hyperparameters, seed=seed)
        self.params = parse_hyperparameters(SPECS, self.hyperparameters)
        self.interval = TREND_INTERVALS[self.params["trend_discovery_frequency"]]

    def fit(self, data: InteractionData) -> None:
        """Keep the popularity order and the training events of the last two intervals."""
        self.n_items = data.n_items
        self.trained_until = int(data.timestamp.max()) if len(data.timestamp) else 0
        counts = distinct_user_counts(data)
        known = np.flatnonzero(counts > 0)
        self.popularity = counts
        self.order = known[np.lexsort((known, -counts[known]))].astype(np.int32)
        recent = data.timestamp > self.trained_until - 2 * self.interval
        self.recent_item = data.item[recent].astype(np.int32)
        self.recent_time = data.timestamp[recent].astype(np.int64)
        self.recent_weight = np.asarray(data.weights[recent], dtype=np.float32)

    def recent_events_since(self, now: int) -> int:
        """Events after this time (and up to `now`) are the ones the serving layer should pass in."""
        return max(self.trained_until, int(now) - 2 * self.interval)

    def with_recent_events(
        self, item: np.ndarray, timestamp: np.ndarray, weight: np.ndarray | None = None
    ) -> TrendingNow:
        """A copy that also counts events recorded after training (unknown item indices are ignored)."""
        item = np.asarray(item, dtype=np.int64)
        timestamp = np.asarray(timestamp, dtype=np.int64)
        weight = np.ones(len(item), np.float32) if weight is None else np.asarray(weight, np.float32)
        new = (item >= 0) & (item < self.n_items) & (timestamp > self.trained_until)
        clone = copy.copy(self)
        clone.recent_item = np.concatenate([self.recent_item, item[new].astype(np.int32)])
        clone.recent_time = np.concatenate([self.recent_time, timestamp[new]])
        clone.recent_weight = np.concatenate([self.recent_weight, weight[new]])
        return clone

    def trend_scores(self, now: int | None = None) -> np.ndarray:
        """float32 per item: events in (now-I, now] minus events in (now-2I, now-I]."""
        now = self.trained_until if now is None else int(now)
        t = self.recent_time
        current = (t > now - self.interval) & (t <= now)
        previous = (t > now - 2 * self.interval) & (t <= now - self.interval)
        w = self.recent_weight
        inc = np.bincount(self.recent_item[current], w[current], minlength=self.n_items)
        inc -= np.bincount(self.recent_item[previous], w[previous], minlength=self.n_items)
        return inc.astype(np.float32)

    def recommend(
        self, history: History, *, n: int, candidates: np.ndarray | None = None, now: int | None = None
    ) -> Recommendation:
        """Trending items first (by increase, then popularity), then the rest by popularity."""
        inc = self.trend_scores(now)
        active = np.flatnonzero(inc != 0)
        pop = np.asarray(self.popularity)
        ranked_active = active[np.lexsort((active, -pop[active], -inc[active]))]
        rising = ranked_active[inc[ranked_active] > 0]
        falling = ranked_active[inc[ranked_active] < 0]
        steady = self.order[inc[self.order] == 0]
        order = np.concatenate([rising, steady, falling]).astype(np.int32)
        if candidates is not None:
            order = order[np.asarray(candidates, dtype=bool)[order]]
        index = order[:n] if n > 0 else order[:0]
        return Recommendation(index, inc[index].astype(np.float32))

    def _save(self, folder: Path) -> dict[str, Any]:
        for name in ("popularity", "order", "recent_item", "recent_time", "recent_weight"):
            np.save(folder / f"{name}.npy", getattr(self, name))
        return {"n_items": self.n_items, "trained_until": self.trained_until}

    def _load(self, folder: Path, state: dict[str, Any], *, mmap: bool) -> None:
        mode = "r" if mmap else None
        for name in ("popularity", "order", "recent_item", "recent_time", "recent_weight"):
            setattr(self, name, np.load(folder / f"{name}.npy", mmap_mode=mode))
        self.n_items = int(state["n_items"])
        self.trained_until = int(state["trained_until"])
