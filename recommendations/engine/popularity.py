"""`aws-popularity-count`: the same most popular items (by distinct users) for everyone.

Also the shared helpers other recipes use for their popular-items fallback: `distinct_user_counts`
and `top_n` (deterministic top-n with a candidate mask; ties go to the lower index).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recommendations.engine.base import History, InteractionData, Recipe, Recommendation
from recommendations.engine.registry import register

__all__ = ["PopularityCount", "distinct", "distinct_user_counts", "popular_fill", "top_n"]


def distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based; numpy 2's hash-based np.unique is ~100x slower on int64 keys)."""
    ordered = np.sort(np.asarray(values), kind="stable")
    if len(ordered) == 0:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def distinct_user_counts(data: InteractionData) -> np.ndarray:
    """float32 per item: how many distinct users interacted with it."""
    pairs = distinct(data.user.astype(np.int64) * data.n_items + data.item.astype(np.int64))
    return np.bincount(pairs % data.n_items, minlength=data.n_items).astype(np.float32)


def top_n(
    scores: np.ndarray, n: int, candidates: np.ndarray | None = None, exclude: np.ndarray | None = None
) -> Recommendation:
    """The n best-scoring indices (finite scores only), best first; ties go to the lower index."""
    scores = np.asarray(scores, dtype=np.float32)
    valid = np.isfinite(scores)
    if candidates is not None:
        valid &= np.asarray(candidates, dtype=bool)
    if exclude is not None and len(exclude):
        valid[np.asarray(exclude)] = False
    pool = np.flatnonzero(valid)
    if n <= 0 or len(pool) == 0:
        return Recommendation(np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32))
    pool_scores = scores[pool]
    if len(pool) > n:
        kth = np.partition(pool_scores, len(pool) - n)[len(pool) - n]
        above = pool_scores > kth
        ties = np.flatnonzero(pool_scores == kth)[: n - int(above.sum())]
        keep = np.concatenate([np.flatnonzero(above), ties])
        pool, pool_scores = pool[keep], pool_scores[keep]
    order = np.lexsort((pool, -pool_scores))
    return Recommendation(pool[order].astype(np.int32), pool_scores[order].astype(np.float32))


def popular_fill(
    order: np.ndarray, n: int, candidates: np.ndarray | None = None, exclude: np.ndarray | None = None
) -> np.ndarray:
    """The first n items of a popularity `order` that are candidates and not excluded."""
    if n <= 0:
        return np.empty(0, dtype=np.int32)
    head = order[: n + (0 if exclude is None else len(exclude))]
    for chunk in (head, order):  # the short head is usually enough: O(n), not O(items)
        keep = np.ones(len(chunk), dtype=bool)
        if candidates is not None:
            keep &= np.asarray(candidates, dtype=bool)[chunk]
        if exclude is not None and len(exclude):
            keep &= ~np.isin(chunk, exclude)
        picked = chunk[keep][:n]
        if len(picked) == n or chunk is order:
            return picked.astype(np.int32)
    return np.empty(0, dtype=np.int32)  # unreachable


@register
class PopularityCount(Recipe):
    """Most popular items by distinct users; ignores the user's history."""

    name = "aws-popularity-count"
    default_hyperparameters: dict[str, str] = {}

    def fit(self, data: InteractionData) -> None:
        """Count distinct users per item; items nobody interacted with are never recommended."""
        counts = distinct_user_counts(data)
        known = np.flatnonzero(counts > 0)
        order = known[np.lexsort((known, -counts[known]))]
        self.order = order.astype(np.int32)
        self.counts = counts

    def recommend(
        self, history: History, *, n: int, candidates: np.ndarray | None = None, now: int | None = None
    ) -> Recommendation:
        """The n most popular candidate items (the same for every user)."""
        index = popular_fill(self.order, n, candidates)
        return Recommendation(index, np.asarray(self.counts[index], dtype=np.float32))

    def _save(self, folder: Path) -> dict[str, Any]:
        np.save(folder / "order.npy", self.order)
        np.save(folder / "counts.npy", self.counts)
        return {}

    def _load(self, folder: Path, state: dict[str, Any], *, mmap: bool) -> None:
        mode = "r" if mmap else None
        self.order = np.load(folder / "order.npy", mmap_mode=mode)
        self.counts = np.load(folder / "counts.npy", mmap_mode=mode)
