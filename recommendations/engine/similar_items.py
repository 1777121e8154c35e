"""`aws-similar-items`: related items from co-occurrence (item factors) blended with item metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recommendations.engine.base import InteractionData, Recommendation
from recommendations.engine.features import l2_normalize_rows
from recommendations.engine.registry import register
from recommendations.engine.user_personalization import LowRankEaseRecipe, parse_float, top_n

__all__ = ["SimilarItems"]


@register
class SimilarItems(LowRankEaseRecipe):
    """Cosine of low-rank EASE item factors blended with cosine of metadata (one-hot + TF-IDF) vectors.

    The metadata share is `metadata_weight` for well-known items and grows to 1 as the query
    item's interaction count falls below `cold_item_threshold`, so an item without interactions
    is matched on its categories and text alone. Unknown items get popular items.
    """

    name: ClassVar[str] = "aws-similar-items"
    default_hyperparameters: ClassVar[dict[str, str]] = {
        **LowRankEaseRecipe.default_hyperparameters,
        "metadata_weight": "0.3",
    }

    def __init__(self, hyperparameters: dict[str, str] | None = None, *, seed: int = 42) -> None:
        super().__init__(hyperparameters, seed=seed)
        self.metadata_weight = parse_float(self.hyperparameters, "metadata_weight", 0.0, 1.0)

    def fit(self, data: InteractionData) -> None:
        """Fit the item factors and keep unit-length embeddings and metadata rows."""
        super().fit(data)
        embedding = self.factors * np.sqrt(self.shrink)[None, :]
        norms = np.linalg.norm(embedding, axis=1)
        embedding = embedding / np.maximum(norms, 1e-12)[:, None]
        embedding[norms <= 1e-12] = 0.0
        self.embedding = np.ascontiguousarray(embedding, dtype=np.float32)
        if data.item_features is not None and data.item_features.shape[0] == data.n_items:
            self.metadata = l2_normalize_rows(data.item_features)
        else:
            self.metadata = sp.csr_matrix((data.n_items, 0), dtype=np.float32)

    def similar(
        self, item: int, *, n: int, candidates: np.ndarray | None = None, now: int | None = None
    ) -> Recommendation:
        """Items most like `item` (never the item itself); popular items for an unknown item."""
        self._check_fitted()
        if not 0 <= item < self.n_items:
            scores = self.popularity.astype(np.float32, copy=True)
        else:
            scores = self.item_scores(int(item))
            scores[item] = -np.inf
        if candidates is not None:
            scores[~np.asarray(candidates, dtype=bool)] = -np.inf
        index, score = top_n(scores, n)
        return Recommendation(index, score)

    def item_scores(self, item: int) -> np.ndarray:
        """Blended similarity of every item to one known item (popularity breaks ties, very lightly)."""
        collaborative = self.embedding @ self.embedding[item]
        share = self.metadata_weight
        if self.metadata.shape[1] and self.metadata[item].nnz:
            meta = np.asarray((self.metadata @ self.metadata[item].T).todense()).ravel().astype(np.float32)
            if self.cold_item_threshold > 0:
                coldness = 1.0 - min(1.0, self.item_count[item] / self.cold_item_threshold)
                share = max(share, coldness)
        else:
            meta, share = np.zeros(self.n_items, dtype=np.float32), 0.0
        if not np.any(self.embedding[item]):
            share = 1.0 if share > 0 else 0.0
        scores = (1.0 - share) * collaborative + share * meta
        peak = float(self.popularity.max()) if len(self.popularity) else 0.0
        if peak > 0:
            scores = scores + 1e-4 * (self.popularity / peak)
        return scores.astype(np.float32)

    def _save(self, folder: Path) -> dict[str, Any]:
        state = super()._save(folder)
        np.save(folder / "embedding.npy", self.embedding)
        sp.save_npz(folder / "metadata.npz", self.metadata)
        return state

    def _load(self, folder: Path, state: dict[str, Any], *, mmap: bool) -> None:
        super()._load(folder, state, mmap=mmap)
        self.embedding = np.load(folder / "embedding.npy", mmap_mode="r" if mmap else None)
        self.metadata = sp.csr_matrix(sp.load_npz(folder / "metadata.npz"))
