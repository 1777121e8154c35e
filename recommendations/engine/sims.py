"""`aws-sims`: item-to-item similarity from co-interactions (users who interacted with both items).

similarity(i → j) = C[i, j] / count[j] ** popularity_discount_factor, where C counts distinct
users who interacted with both items and count[j] the distinct users of j: a factor of 0 ranks
the most popular co-interacted items first, 1 the most specific ones (P(i | j)), 0.5 (the
default) balances the two. Pairs with fewer than `min_cointeraction_count` co-interactions are
not neighbours. Personalize's featurization hyperparameters drop outlier users (history-length
percentiles) from the counts, and keep items outside the interaction-count percentiles from
being anyone's neighbour (they can still be queried: a best-seller gets its specific neighbours,
but best-sellers do not crowd every other item's list).

The top `n_neighbours` neighbours per item are stored as (n_items, k) arrays, so `similar` is
O(k); items with too few neighbours, unknown items and new items are filled with popular items
(`extras["popular_fallback"]` marks them). `recommend` sums the neighbours of the user's recent
history, newest events weighted most.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recommendations.engine.base import History, InteractionData, Recipe, Recommendation
from recommendations.engine.hyperparameters import (
    HyperParameter,
    default_hyperparameters,
    parse_hyperparameters,
)
from recommendations.engine.popularity import distinct_user_counts, popular_fill
from recommendations.engine.registry import register

__all__ = ["Sims"]

SPECS = (
    HyperParameter("popularity_discount_factor", "float", "0.5", 0.0, 1.0, tunable=True),
    HyperParameter("min_cointeraction_count", "int", "3", 0, 10, tunable=True),
    HyperParameter("min_user_history_length_percentile", "float", "0.005", 0.0, 1.0),
    HyperParameter("max_user_history_length_percentile", "float", "0.995", 0.0, 1.0),
    HyperParameter("min_item_interaction_count_percentile", "float", "0.01", 0.0, 1.0),
    HyperParameter("max_item_interaction_count_percentile", "float", "0.9", 0.0, 1.0),
)
BLOCK_NNZ = 20_000_000  # co-interaction entries computed per block of query items


def _binary_matrix(data: InteractionData) -> sp.csr_matrix:
    matrix = sp.csr_matrix(
        (np.ones(len(data.user), dtype=np.float32), (data.user, data.item)),
        shape=(data.n_users, data.n_items),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _row_top_k(block: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a CSR block: the k largest entries (ties to the lower column), padded with -1 / 0."""
    n_rows = block.shape[0]
    rows = np.repeat(np.arange(n_rows), np.diff(block.indptr))
    order = np.lexsort((block.indices, -block.data, rows))
    rows, cols, vals = rows[order], block.indices[order], block.data[order]
    first = np.searchsorted(rows, np.arange(n_rows))
    rank = np.arange(len(rows)) - first[rows]
    keep = rank < k
    index = np.full((n_rows, k), -1, dtype=np.int32)
    score = np.zeros((n_rows, k), dtype=np.float32)
    index[rows[keep], rank[keep]] = cols[keep]
    score[rows[keep], rank[keep]] = vals[keep]
    return index, score


@register
class Sims(Recipe):
    """Item-to-item collaborative filtering with Personalize's SIMS hyperparameters."""

    name = "aws-sims"
    default_hyperparameters = default_hyperparameters(SPECS)
    n_neighbours: ClassVar[int] = 100
    history_window: ClassVar[int] = 50  # newest distinct history items used by `recommend`
    history_decay: ClassVar[float] = 0.9  # weight of the k-th newest item: decay ** k

    def __init__(self, hyperparameters: dict[str, str] | None = None, *, seed: int = 42) -> None:
        super().__init__(hyperparameters, seed=seed)
        self.params = parse_hyperparameters(SPECS, self.hyperparameters)

    def _training_matrices(self, data: InteractionData) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(users x items) binary matrices: all items of the kept users, and only the kept items."""
        matrix = _binary_matrix(data)
        p = self.params
        lengths = np.diff(matrix.indptr)
        active = lengths > 0
        if active.any():
            low, high = np.quantile(
                lengths[active],
                [p["min_user_history_length_percentile"], p["max_user_history_length_percentile"]],
            )
            keep_users = active & (lengths >= low) & (lengths <= high)
            matrix = sp.csr_matrix(sp.diags(keep_users.astype(np.float32)) @ matrix)
            matrix.eliminate_zeros()
        counts = np.diff(matrix.tocsc().indptr)
        seen = counts > 0
        neighbour_matrix = matrix
        if seen.any():
            low, high = np.quantile(
                counts[seen],
                [p["min_item_interaction_count_percentile"], p["max_item_interaction_count_percentile"]],
            )
            keep_items = seen & (counts >= low) & (counts <= high)
            neighbour_matrix = sp.csr_matrix(matrix @ sp.diags(keep_items.astype(np.float32)))
            neighbour_matrix.eliminate_zeros()
        return matrix, neighbour_matrix

    def fit(self, data: InteractionData) -> None:
        """Count co-interactions block by block and keep each item's top neighbours."""
        n_items = data.n_items
        counts = distinct_user_counts(data)
        known = np.flatnonzero(counts > 0)
        self.popularity = counts
        self.order = known[np.lexsort((known, -counts[known]))].astype(np.int32)

        matrix, neighbour_matrix = self._training_matrices(data)
        by_item = sp.csr_matrix(matrix.T)  # (n_items, n_users): every item can be queried
        item_counts = np.diff(by_item.indptr).astype(np.float64)
        discount = np.zeros(n_items, dtype=np.float32)
        has_users = item_counts > 0
        discount[has_users] = item_counts[has_users] ** -self.params["popularity_discount_factor"]
        min_count = max(1, self.params["min_cointeraction_count"])
        k = max(1, min(self.n_neighbours, n_items - 1))
        self.neighbours = np.full((n_items, k), -1, dtype=np.int32)
        self.scores = np.zeros((n_items, k), dtype=np.float32)
        user_lengths = np.diff(neighbour_matrix.indptr).astype(np.float64)
        work = by_item @ user_lengths  # co-interaction products each item's row generates
        start = 0
        while start < n_items:
            stop = start + 1
            budget = work[start]
            while stop < n_items and budget + work[stop] <= BLOCK_NNZ:
                budget += work[stop]
                stop += 1
            block = sp.csr_matrix(by_item[start:stop] @ neighbour_matrix)  # (block, n_items) co-interactions
            rows = np.repeat(np.arange(start, stop), np.diff(block.indptr))
            block.data[(block.indices == rows) | (block.data < min_count)] = 0  # no self-pairs
            block.eliminate_zeros()
            block = sp.csr_matrix(block @ sp.diags(discount))
            block.eliminate_zeros()
            if block.nnz:
                index, score = _row_top_k(block, k)
                self.neighbours[start:stop] = index
                self.scores[start:stop] = score
            start = stop

    def similar(
        self, item: int, *, n: int, candidates: np.ndarray | None = None, now: int | None = None
    ) -> Recommendation:
        """Top neighbours of the item, then popular items for the rest (unknown items: popular only)."""
        item = int(item)
        if 0 <= item < len(self.neighbours):
            index, score = np.asarray(self.neighbours[item]), np.asarray(self.scores[item])
            keep = index >= 0
            if candidates is not None:
                keep &= np.asarray(candidates, dtype=bool)[np.maximum(index, 0)]
            index, score = index[keep][:n], score[keep][:n]
            exclude = np.append(index, item)
        else:
            index, score = np.empty(0, np.int32), np.empty(0, np.float32)
            exclude = index
        return self._with_fallback(index, score, n, candidates, exclude)

    def recommend(
        self, history: History, *, n: int, candidates: np.ndarray | None = None, now: int | None = None
    ) -> Recommendation:
        """Sum of the neighbour scores of the newest distinct history items (newest weighted most)."""
        items = np.asarray(history.item, dtype=np.int64)
        items = items[(items >= 0) & (items < len(self.neighbours))][::-1]  # newest first
        if len(items):
            _, first = np.unique(items, return_index=True)
            items = items[np.sort(first)][: self.history_window]
        if len(items) == 0:
            return self._with_fallback(np.empty(0, np.int32), np.empty(0, np.float32), n, candidates, None)
        weights = self.history_decay ** np.arange(len(items), dtype=np.float32)
        neighbours = np.asarray(self.neighbours[items])
        contribution = np.asarray(self.scores[items]) * weights[:, None]
        valid = neighbours >= 0
        flat, values = neighbours[valid], contribution[valid]
        unique, inverse = np.unique(flat, return_inverse=True)
        totals = np.bincount(inverse, weights=values, minlength=len(unique)).astype(np.float32)
        if candidates is not None:
            keep = np.asarray(candidates, dtype=bool)[unique]
            unique, totals = unique[keep], totals[keep]
        order = np.lexsort((unique, -totals))[:n]
        index, score = unique[order].astype(np.int32), totals[order]
        return self._with_fallback(index, score, n, candidates, index)

    def _with_fallback(
        self,
        index: np.ndarray,
        score: np.ndarray,
        n: int,
        candidates: np.ndarray | None,
        exclude: np.ndarray | None,
    ) -> Recommendation:
        fill = popular_fill(np.asarray(self.order), n - len(index), candidates, exclude)
        fallback = np.concatenate([np.zeros(len(index), bool), np.ones(len(fill), bool)])
        return Recommendation(
            np.concatenate([index, fill]).astype(np.int32),
            np.concatenate([score, np.zeros(len(fill), np.float32)]).astype(np.float32),
            extras={"popular_fallback": fallback},
        )

    def _save(self, folder: Path) -> dict[str, Any]:
        for name in ("popularity", "order", "neighbours", "scores"):
            np.save(folder / f"{name}.npy", getattr(self, name))
        return {}

    def _load(self, folder: Path, state: dict[str, Any], *, mmap: bool) -> None:
        mode = "r" if mmap else None
        for name in ("popularity", "order", "neighbours", "scores"):
            setattr(self, name, np.load(folder / f"{name}.npy", mmap_mode=mode))
