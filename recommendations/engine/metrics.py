"""Amazon Personalize's offline metrics, exactly as ../shared/eval/PROTOCOL.md defines them.

Relevance is binary. For a ranked list, rank r (1 = top) has gain 1/log2(1 + r); NDCG@K divides
by the ideal DCG of min(K, |relevant|) hits at the top. Precision@K divides hits by K even when
fewer than K items were recommended. MRR@25 is 1/rank of the first hit in the top 25 (0 if
none). Coverage is distinct recommended items / distinct items in the data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "KS",
    "MAX_K",
    "coverage",
    "hit_matrix",
    "ndcg_at_k",
    "personalize_metrics",
    "precision_at_k",
    "reciprocal_rank",
]

KS = (5, 10, 25)
MAX_K = 25
_DISCOUNT = 1.0 / np.log2(np.arange(2, MAX_K + 2, dtype=np.float64))  # rank 1..25
_IDEAL = np.concatenate([[0.0], np.cumsum(_DISCOUNT)])  # ideal DCG for 0..25 hits


def hit_matrix(
    recommended: Sequence[np.ndarray], relevant: Sequence[np.ndarray], k: int = MAX_K
) -> np.ndarray:
    """Boolean (n_users, k): whether the item at each rank of each user's list is relevant."""
    hits = np.zeros((len(recommended), k), dtype=bool)
    for row, (top, rel) in enumerate(zip(recommended, relevant, strict=True)):
        top = np.asarray(top)[:k]
        hits[row, : len(top)] = np.isin(top, np.asarray(rel))
    return hits


def precision_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """Per user: hits in the top k / k."""
    return hits[:, :k].sum(axis=1) / k


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per user: DCG of the top k / ideal DCG of min(k, |relevant|) hits (0 when nothing is relevant)."""
    dcg = hits[:, :k].astype(np.float64) @ _DISCOUNT[:k]
    ideal = _IDEAL[np.minimum(np.asarray(n_relevant), k)]
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def reciprocal_rank(hits: np.ndarray) -> np.ndarray:
    """Per user: 1 / rank of the first hit (0 when there is none)."""
    any_hit = hits.any(axis=1)
    first = hits.argmax(axis=1)
    return np.where(any_hit, 1.0 / (first + 1), 0.0)


def coverage(recommended: Sequence[np.ndarray], n_items: int, k: int = MAX_K) -> float:
    """Distinct items in the users' top-k lists / distinct items in the data."""
    if n_items <= 0:
        return 0.0
    lists = [np.asarray(top)[:k] for top in recommended]
    seen = np.unique(np.concatenate(lists)) if lists else np.empty(0)
    return float(len(seen)) / n_items


def personalize_metrics(
    recommended: Sequence[np.ndarray], relevant: Sequence[np.ndarray], n_items: int
) -> dict[str, float]:
    """All of Personalize's metrics, averaged over users, named as Personalize names them."""
    relevant = [np.unique(np.asarray(rel)) for rel in relevant]
    hits = hit_matrix(recommended, relevant, MAX_K)
    n_relevant = np.array([len(rel) for rel in relevant], dtype=np.int64)
    out: dict[str, float] = {"coverage": coverage(recommended, n_items)}
    if len(relevant) == 0:
        zero = {
            f"{name}_at_{k}": 0.0
            for k in KS
            for name in ("precision", "normalized_discounted_cumulative_gain")
        }
        return {**out, **zero, "mean_reciprocal_rank_at_25": 0.0}
    out["mean_reciprocal_rank_at_25"] = float(reciprocal_rank(hits).mean())
    for k in KS:
        out[f"normalized_discounted_cumulative_gain_at_{k}"] = float(ndcg_at_k(hits, n_relevant, k).mean())
        out[f"precision_at_{k}"] = float(precision_at_k(hits, k).mean())
    return dict(sorted(out.items()))
