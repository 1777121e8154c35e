"""`aws-user-personalization`: low-rank EASE over a recency-weighted history plus a next-item model.

The model is fitted once; a user's score is computed at request time from the history as stored
then, so an event written after training changes the next answer without refitting.

Scores blend two parts, each scaled to a maximum of 1:

- a low-rank EASE (Steck 2019) item-item model: the Gram matrix X^T X is replaced by its top
  `hidden_dimension` eigenpairs (randomized SVD of X), so B = I - P / diag(P) with
  P = (X^T X + lambda I)^-1 never materialises; a request costs one (n_items x k) mat-vec.
  The history vector weights each item by its newest occurrence, halving every
  `recency_half_life` events (Personalize's `recency_mask`).
- a sparse next-item model: how often item j followed item i within `sequence_window` events,
  row-normalised, read from the user's `sequence_length` newest events, weighted `sequence_weight`.

Items with fewer than `cold_item_threshold` interactions borrow factors from item metadata
(mean factors of warm items sharing each feature), so new items can be recommended. Users
without history get recency-weighted popularity. Exploration of young items follows the
campaign's `explorationWeight` / `explorationItemAgeCutOff`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recommendations.engine.base import (
    History,
    InteractionData,
    Recipe,
    RecipeError,
    Recommendation,
)
from recommendations.engine.features import (
    binary_user_item,
    feature_centroid_factors,
    prune_rows,
    randomized_svd,
    recency_weights,
    user_position_from_end,
)
from recommendations.engine.registry import register

__all__ = [
    "LowRankEaseRecipe",
    "ScoreScales",
    "UserPersonalization",
    "parse_bool",
    "parse_float",
    "parse_int",
    "top_n",
]

DAY = 86_400
_MAX_LEVERAGE = 0.98  # keeps 1 / (1 - leverage) bounded for very popular items
# Blended scores lie in [-1, 1 + sequence_weight] (each part is scaled to a maximum |score| of 1 and the
# next-item part is non-negative), so this puts items without any evidence after every item with some.
NO_EVIDENCE_SCORE = -2.0


@dataclass(frozen=True)
class ScoreScales:
    """The factors `scored` multiplied the collaborative and the next-item parts by (for `explain`)."""

    collaborative: float
    sequence: float


def parse_int(hyperparameters: dict[str, str], name: str, low: int, high: int) -> int:
    """An integer hyperparameter in [low, high], or a RecipeError naming it."""
    raw = str(hyperparameters[name]).strip()
    try:
        number = float(raw)
    except ValueError:
        raise RecipeError(f"hyperparameter {name} must be an integer, got {raw!r}") from None
    if not number.is_integer() or not low <= number <= high:
        raise RecipeError(f"hyperparameter {name} must be an integer in [{low}, {high}], got {raw!r}")
    return int(number)


def parse_float(hyperparameters: dict[str, str], name: str, low: float, high: float) -> float:
    """A number hyperparameter in [low, high], or a RecipeError naming it."""
    raw = str(hyperparameters[name]).strip()
    try:
        value = float(raw)
    except ValueError:
        raise RecipeError(f"hyperparameter {name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise RecipeError(f"hyperparameter {name} must be a number in [{low}, {high}], got {raw!r}")
    return value


def parse_bool(hyperparameters: dict[str, str], name: str) -> bool:
    """A `true`/`false` hyperparameter (any case), or a RecipeError naming it."""
    raw = str(hyperparameters[name]).strip().lower()
    if raw not in ("true", "false"):
        raise RecipeError(f"hyperparameter {name} must be true or false, got {hyperparameters[name]!r}")
    return raw == "true"


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the n largest finite scores, best first (ties: lower index first)."""
    best = _best_first(scores, _largest(scores, n))
    return best.astype(np.int32), scores[best].astype(np.float32)


def _largest(scores: np.ndarray, size: int) -> np.ndarray:
    """Indices (any order) of the `size` largest scores; ties at the cut-off go to the lower indices.

    A strided sample's size-th largest score is a lower bound of the true cut-off, so one
    comparison pass narrows the exact selection to a few thousand candidates instead of a
    partition of the whole array.
    """
    total = len(scores)
    size = min(size, total)
    if size <= 0:
        return np.empty(0, dtype=np.int64)
    if size == total:
        return np.arange(total)
    candidates = None
    stride = int(math.sqrt(total / size))
    if stride >= 4:
        sample = scores[::stride]
        if len(sample) > size:
            bound = np.partition(sample, len(sample) - size)[len(sample) - size]
            if np.isfinite(bound):
                candidates = np.flatnonzero(scores >= bound)  # ascending: position order = index order
                if len(candidates) > total // 4:
                    candidates = None
    values = scores if candidates is None else scores[candidates]
    if len(values) > size:
        part = np.argpartition(values, len(values) - size)[len(values) - size :]
        cutoff = values[part].min()
        above = part[values[part] > cutoff]
        tied = np.flatnonzero(values == cutoff)[: size - len(above)]
        part = np.concatenate((above, tied))
    else:
        part = np.arange(len(values))
    return part if candidates is None else candidates[part]


def _best_first(scores: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The finite-scored entries of `index` ordered by score, best first (ties: lower index first)."""
    values = scores[index]
    finite = np.isfinite(values)
    if not finite.all():
        index, values = index[finite], values[finite]
    return index[np.lexsort((index, -values))]


class LowRankEaseRecipe(Recipe):
    """Shared fit, scoring and storage of the low-rank EASE + next-item model (subclassed per recipe)."""

    name: ClassVar[str] = "low-rank-ease"
    default_hyperparameters: ClassVar[dict[str, str]] = {
        "hidden_dimension": "64",
        "regularization": "200",
        "recency_mask": "true",
        "recency_half_life": "40",
        "sequence_weight": "0.5",
        "sequence_window": "5",
        "sequence_length": "5",
        "sequence_max_successors": "200",
        "cold_item_threshold": "5",
        "popularity_half_life_days": "30",
        "min_user_history_length_percentile": "0.0",
        "max_user_history_length_percentile": "0.99",
    }
    hpo_grid: ClassVar[dict[str, tuple[str, ...]]] = {
        "hidden_dimension": ("32", "64", "128", "256"),
        "regularization": ("50", "200", "800"),
        "recency_half_life": ("10", "40", "160"),
        "sequence_weight": ("0", "0.25", "0.5", "1"),
    }

    def __init__(self, hyperparameters: dict[str, str] | None = None, *, seed: int = 42) -> None:
        super().__init__(hyperparameters, seed=seed)
        hp = self.hyperparameters
        self.hidden_dimension = parse_int(hp, "hidden_dimension", 1, 1024)
        self.regularization = parse_float(hp, "regularization", 1e-6, 1e9)
        self.recency_mask = parse_bool(hp, "recency_mask")
        self.recency_half_life = parse_float(hp, "recency_half_life", 0.0, 1e9)
        self.sequence_weight = parse_float(hp, "sequence_weight", 0.0, 100.0)
        self.sequence_window = parse_int(hp, "sequence_window", 1, 50)
        self.sequence_length = parse_int(hp, "sequence_length", 1, 500)
        self.sequence_max_successors = parse_int(hp, "sequence_max_successors", 1, 1_000_000)
        self.cold_item_threshold = parse_int(hp, "cold_item_threshold", 0, 1_000_000)
        self.popularity_half_life_days = parse_float(hp, "popularity_half_life_days", 0.0, 1e6)
        self.min_history_pct = parse_float(hp, "min_user_history_length_percentile", 0.0, 1.0)
        self.max_history_pct = parse_float(hp, "max_user_history_length_percentile", 0.0, 1.0)
        if self.min_history_pct > self.max_history_pct:
            raise RecipeError(
                "min_user_history_length_percentile must not exceed max_user_history_length_percentile"
            )
        self._fitted = False

    # ------------------------------------------------------------------ training

    @property
    def half_life(self) -> float:
        """Recency half-life in events (0 = every event counts the same)."""
        return self.recency_half_life if self.recency_mask else 0.0

    def fit(self, data: InteractionData) -> None:
        """Factorise the user-item matrix, build the next-item model, popularity and metadata factors."""
        if data.n_items <= 0 or data.n_users <= 0:
            raise RecipeError("training data has no users or no items")
        n_users, n_items = data.n_users, data.n_items
        user = np.asarray(data.user, dtype=np.int64)
        item = np.asarray(data.item, dtype=np.int64)
        timestamp = np.asarray(data.timestamp, dtype=np.int64)
        weight = np.asarray(data.weights, dtype=np.float32)
        order = np.lexsort((timestamp, user))  # by user, then time; ties keep input order
        from_end = user_position_from_end(user, order)
        user_s, item_s, weight_s = user[order], item[order], weight[order]

        keep = self._history_length_mask(user_s, n_users)
        recency = (
            np.power(0.5, from_end / self.half_life).astype(np.float32)
            if self.half_life > 0
            else np.ones(len(from_end), dtype=np.float32)
        )
        train = binary_user_item(user_s[keep], item_s[keep], weight_s[keep], n_users, n_items)
        # Per-user recency-weighted profiles (the same vectors requests use), for segments.
        self.user_profiles = binary_user_item(user_s, item_s, weight_s * recency, n_users, n_items)

        rank = min(self.hidden_dimension, n_items, max(1, train.nnz))
        singular, factors = randomized_svd(train, rank, seed=self.seed)
        eigen = singular.astype(np.float64) ** 2
        self.shrink = (eigen / (eigen + self.regularization)).astype(np.float32)

        self.item_count = np.bincount(item, minlength=n_items).astype(np.int64)
        factors = factors.astype(np.float32)
        if data.item_features is not None and data.item_features.shape[0] == n_items:
            factors = self._impute_cold_factors(factors, data.item_features)
        self.factors = np.ascontiguousarray(factors, dtype=np.float32)
        self._refresh_leverage()

        self.transitions = self._next_item_matrix(user_s, item_s, n_items)
        self.ref_time = int(timestamp.max()) if len(timestamp) else 0
        age_days = (self.ref_time - timestamp) / DAY
        decay = (
            np.power(0.5, age_days / self.popularity_half_life_days)
            if self.popularity_half_life_days > 0
            else np.ones(len(timestamp))
        )
        self.popularity = np.bincount(item, weights=decay * weight, minlength=n_items).astype(np.float32)
        if data.item_creation is not None and len(data.item_creation) == n_items:
            self.item_creation = np.asarray(data.item_creation, dtype=np.int64)
        else:
            first_seen = np.full(n_items, np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(first_seen, item, timestamp)
            first_seen[first_seen == np.iinfo(np.int64).max] = -1
            self.item_creation = first_seen
        self.n_items, self.n_users = n_items, n_users
        self._refresh_request_state()
        self._fitted = True

    def _refresh_request_state(self) -> None:
        """Per-item facts requests need, derived once from the stored arrays (after fit and load)."""
        factors = np.asarray(self.factors)
        has_factors = np.any(factors != 0, axis=1) if factors.size else np.zeros(len(factors), dtype=bool)
        # No interaction and no metadata-borrowed factors: the model knows nothing about these items.
        self.no_evidence = np.flatnonzero((np.asarray(self.item_count) == 0) & ~has_factors)
        creation = np.asarray(self.item_creation, dtype=np.int64)
        self._by_creation = np.argsort(creation, kind="stable")
        self._creation_sorted = creation[self._by_creation]
        # Exploration noise for the k-th eligible item (the same draws as a fresh generator per request).
        self._noise = np.random.default_rng(self.seed).random(len(creation), dtype=np.float32) * np.float32(
            0.05
        )

    def _history_length_mask(self, user_sorted: np.ndarray, n_users: int) -> np.ndarray:
        """Events of users whose history length is within Personalize's percentile bounds."""
        lengths = np.bincount(user_sorted, minlength=n_users)
        active = lengths[lengths > 0]
        if len(active) == 0 or (self.min_history_pct <= 0.0 and self.max_history_pct >= 1.0):
            return np.ones(len(user_sorted), dtype=bool)
        low = np.quantile(active, self.min_history_pct) if self.min_history_pct > 0 else 0
        high = np.quantile(active, self.max_history_pct) if self.max_history_pct < 1 else np.inf
        allowed = (lengths >= low) & (lengths <= high)
        return allowed[user_sorted]

    def _impute_cold_factors(self, factors: np.ndarray, item_features: sp.csr_matrix) -> np.ndarray:
        """Blend metadata-predicted factors into items with fewer than `cold_item_threshold` interactions."""
        if self.cold_item_threshold <= 0:
            return factors
        warm = self.item_count >= self.cold_item_threshold
        if not warm.any():
            return factors
        predicted, has_features = feature_centroid_factors(sp.csr_matrix(item_features), factors, warm)
        blend = np.clip(1.0 - self.item_count / self.cold_item_threshold, 0.0, 1.0).astype(np.float32)
        blend[~has_features] = 0.0
        return (1.0 - blend)[:, None] * factors + blend[:, None] * predicted

    def _refresh_leverage(self) -> None:
        leverage = np.minimum((self.factors**2) @ self.shrink, _MAX_LEVERAGE)
        self.inverse_residual = (1.0 / (1.0 - leverage)).astype(np.float32)

    def _next_item_matrix(self, user_s: np.ndarray, item_s: np.ndarray, n_items: int) -> sp.csr_matrix:
        """Row-normalised counts of item j following item i within `sequence_window` events (weight 1/gap)."""
        total = sp.csr_matrix((n_items, n_items), dtype=np.float32)
        for gap in range(1, self.sequence_window + 1):
            if gap >= len(user_s):
                break
            same = user_s[gap:] == user_s[:-gap]
            rows, cols = item_s[:-gap][same], item_s[gap:][same]
            values = np.full(len(rows), 1.0 / gap, dtype=np.float32)
            total = total + sp.csr_matrix((values, (rows, cols)), shape=(n_items, n_items))
        total.sum_duplicates()
        total = prune_rows(total, self.sequence_max_successors)
        sums = np.asarray(total.sum(axis=1)).ravel()
        scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0).astype(np.float32)
        normalised = sp.csr_matrix(sp.diags(scale) @ total)
        normalised.indices = normalised.indices.astype(np.int32)
        normalised.indptr = normalised.indptr.astype(np.int64)
        return normalised

    # ------------------------------------------------------------------ scoring

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RecipeError(f"{self.name} must be fitted (or loaded) before it answers queries")

    def history_vector(self, history: History) -> tuple[np.ndarray, np.ndarray]:
        """Distinct known items of a history and their weights (newest occurrence, recency-weighted)."""
        items = np.asarray(history.item, dtype=np.int64)
        known = (items >= 0) & (items < self.n_items)
        weights = recency_weights(len(items), self.half_life)
        if history.weight is not None:
            weights = weights * np.asarray(history.weight, dtype=np.float32)
        items, weights = items[known], weights[known]
        if len(items) == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        reversed_items = items[::-1]
        unique, first = np.unique(reversed_items, return_index=True)
        return unique, weights[::-1][first]

    def collaborative_scores(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Low-rank EASE scores of every item for a weighted history (B has a zero diagonal); a new array."""
        history_factors = self.factors[items]
        latent = (weights @ history_factors) * self.shrink
        scores = self.factors @ latent  # the one (n_items x k) mat-vec; float32 throughout
        np.multiply(scores, self.inverse_residual, out=scores)
        # For history items the self term is removed: x_j - (x_j - y_j) / (1 - leverage_j).
        predicted = history_factors @ latent
        scores[items] = weights - (weights - predicted) * self.inverse_residual[items]
        return scores

    def sequence_scores(self, history: History) -> tuple[np.ndarray, np.ndarray] | None:
        """Next-item scores from the newest `sequence_length` events: (distinct items, scores) or None."""
        items = np.asarray(history.item, dtype=np.int64)
        items = items[(items >= 0) & (items < self.n_items)][-self.sequence_length :]
        if len(items) == 0:
            return None
        weights = recency_weights(len(items), self.sequence_length / 2.0)
        indptr, indices, data = self.transitions.indptr, self.transitions.indices, self.transitions.data
        starts, ends = indptr[items], indptr[items + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        if total == 0:
            return None
        # Positions of every successor entry of the history's rows, without a Python loop.
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        positions = offsets + np.arange(total)
        successors, slot = np.unique(indices[positions], return_inverse=True)
        values = np.bincount(slot, weights=data[positions] * np.repeat(weights, lengths))
        return successors, values.astype(np.float32)

    def scores(self, history: History) -> np.ndarray:
        """Blended score of every item (a new float32 array); popularity when the history is empty.

        Items without any evidence (see `scored`) score `NO_EVIDENCE_SCORE`, below every item with some.
        """
        return self.scored(history)[0]

    def scored(self, history: History) -> tuple[np.ndarray, ScoreScales | None]:
        """`scores` plus the factors that scaled each part (None for an empty history), for `explain`.

        Items without any evidence (no interaction, no metadata) score `NO_EVIDENCE_SCORE`, below
        every item with some.
        """
        self._check_fitted()
        items, weights = self.history_vector(history)
        scales = None
        if len(items) == 0:
            total = _scaled(np.array(self.popularity, dtype=np.float32))
        else:
            total = self.collaborative_scores(items, weights)
            collaborative_peak = _peak(total)
            _scaled(total)
            sequence_scale = 0.0
            if self.sequence_weight > 0:
                sequence = self.sequence_scores(history)
                if sequence is not None:
                    successors, values = sequence
                    peak = float(values.max())
                    if peak > 0:
                        sequence_scale = self.sequence_weight / peak
                        total[successors] += sequence_scale * values
            scales = ScoreScales(1.0 / collaborative_peak if collaborative_peak > 0 else 1.0, sequence_scale)
        total[self.no_evidence] = NO_EVIDENCE_SCORE
        return total, scales

    def explain(
        self, history: History, items: np.ndarray, *, scales: ScoreScales | None = None
    ) -> np.ndarray:
        """For each item index, the history item that adds most to its score (-1 when none adds).

        The collaborative part of item j's score is a sum over history items h of
        w_h (f_h * shrink) . f_j / (1 - leverage_j); the next-item part a sum of recency-weighted
        transition rates from h to j. Both are scaled as in `scored` (pass its `scales` to skip the
        one full scoring pass they need), so the two parts' contributions are comparable.
        """
        items = np.asarray(items, dtype=np.int64)
        answer = np.full(len(items), -1, dtype=np.int64)
        history_items, weights = self.history_vector(history)
        known = (items >= 0) & (items < self.n_items)
        if len(history_items) == 0 or not known.any():
            return answer
        if scales is None:
            scales = self.scored(history)[1]
            assert scales is not None
        targets = items[known]
        factors = np.asarray(self.factors)
        parts = (weights[:, None] * factors[history_items]) * np.asarray(self.shrink)
        contribution = (parts @ factors[targets].T) * np.asarray(self.inverse_residual)[targets]
        contribution *= np.float32(scales.collaborative)
        contribution[history_items[:, None] == targets[None, :]] = 0.0  # an item does not explain itself
        if scales.sequence > 0:
            recent = np.asarray(history.item, dtype=np.int64)
            recent = recent[(recent >= 0) & (recent < self.n_items)][-self.sequence_length :]
            recency = recency_weights(len(recent), self.sequence_length / 2.0)
            rows = np.searchsorted(history_items, recent)  # history_items is sorted and holds them all
            indptr, indices, data = self.transitions.indptr, self.transitions.indices, self.transitions.data
            order = np.argsort(targets, kind="stable")
            sorted_targets = targets[order]
            for row, item, weight in zip(rows, recent, recency, strict=True):
                successors = np.asarray(indices[indptr[item] : indptr[item + 1]])
                if len(successors) == 0:
                    continue
                slot = np.minimum(np.searchsorted(sorted_targets, successors), len(targets) - 1)
                hit = sorted_targets[slot] == successors
                values = np.asarray(data[indptr[item] : indptr[item + 1]])[hit]
                contribution[row, order[slot[hit]]] += np.float32(scales.sequence * weight) * values
        best = np.argmax(contribution, axis=0)
        positive = contribution[best, np.arange(len(targets))] > 0
        answer[np.flatnonzero(known)[positive]] = history_items[best[positive]]
        return answer

    # ------------------------------------------------------------------ storage

    _ARRAYS: ClassVar[tuple[str, ...]] = (
        "factors",
        "shrink",
        "inverse_residual",
        "popularity",
        "item_count",
        "item_creation",
    )

    def _save(self, folder: Path) -> dict[str, Any]:
        self._check_fitted()
        for name in self._ARRAYS:
            np.save(folder / f"{name}.npy", getattr(self, name))
        for prefix, matrix in (("transitions", self.transitions), ("profiles", self.user_profiles)):
            np.save(folder / f"{prefix}_indptr.npy", matrix.indptr)
            np.save(folder / f"{prefix}_indices.npy", matrix.indices)
            np.save(folder / f"{prefix}_data.npy", matrix.data)
        return {"n_items": self.n_items, "n_users": self.n_users, "ref_time": self.ref_time}

    def _load(self, folder: Path, state: dict[str, Any], *, mmap: bool) -> None:
        mode = "r" if mmap else None
        for name in self._ARRAYS:
            setattr(self, name, np.load(folder / f"{name}.npy", mmap_mode=mode))
        self.n_items, self.n_users, self.ref_time = state["n_items"], state["n_users"], state["ref_time"]
        shapes = {"transitions": (self.n_items, self.n_items), "profiles": (self.n_users, self.n_items)}
        for prefix, shape in shapes.items():
            parts = [np.load(folder / f"{prefix}_{part}.npy", mmap_mode=mode) for part in ("data", "indices")]
            indptr = np.load(folder / f"{prefix}_indptr.npy", mmap_mode=mode)
            matrix = sp.csr_matrix(shape, dtype=np.float32)
            matrix.data, matrix.indices, matrix.indptr = parts[0], parts[1], indptr
            setattr(self, "transitions" if prefix == "transitions" else "user_profiles", matrix)
        self._refresh_request_state()
        self._fitted = True

    # ------------------------------------------------------------------ tuning

    @classmethod
    def tune(
        cls,
        data: InteractionData,
        budget: int = 12,
        *,
        seed: int = 42,
        evaluate: Any = None,
        base: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """Hyperparameters chosen by a coordinate search over `hpo_grid` on a validation split of `data`.

        `evaluate(recipe_class, hyperparameters, data, seed) -> float` scores one setting (higher is
        better); the default is NDCG@10 on `holdout.validation_split` (carved from the training users).
        At most `budget` settings are fitted.
        """
        evaluate = evaluate or _validation_ndcg
        best = {**cls.default_hyperparameters, **(base or {})}
        best_score = evaluate(cls, best, data, seed)
        tried = {tuple(sorted(best.items()))}
        fits = 1
        for name, values in itertools.cycle(cls.hpo_grid.items()):
            if fits >= budget:
                break
            improved = False
            for value in values:
                candidate = {**best, name: value}
                key = tuple(sorted(candidate.items()))
                if key in tried or fits >= budget:
                    continue
                tried.add(key)
                fits += 1
                score = evaluate(cls, candidate, data, seed)
                if score > best_score:
                    best, best_score, improved = candidate, score, True
            if not improved and all(
                tuple(sorted({**best, n: v}.items())) in tried for n, vs in cls.hpo_grid.items() for v in vs
            ):
                break
        return best


def _unboosted(
    scores: np.ndarray, index: np.ndarray, eligible: np.ndarray, base_eligible: np.ndarray
) -> np.ndarray:
    """Scores of `index` before the exploration bonus (`eligible` ascending, `base_eligible` their scores)."""
    values = scores[index]
    slot = np.minimum(np.searchsorted(eligible, index), len(eligible) - 1)
    boosted = eligible[slot] == index
    values[boosted] = base_eligible[slot[boosted]]
    return values


def _peak(scores: np.ndarray) -> float:
    """The largest absolute score (0 for an empty array)."""
    return max(float(scores.max()), -float(scores.min())) if len(scores) else 0.0


def _scaled(scores: np.ndarray) -> np.ndarray:
    """Scores divided in place by their largest absolute value (unchanged when all are zero)."""
    peak = _peak(scores)
    if peak > 0:
        np.multiply(scores, np.float32(1.0 / peak), out=scores)
    return scores


def _validation_ndcg(
    recipe_class: type[LowRankEaseRecipe], hyperparameters: dict[str, str], data: InteractionData, seed: int
) -> float:
    """NDCG@10 of one setting on `holdout.validation_split` of the data (never its test users)."""
    from recommendations.engine.evaluate import HPO_OBJECTIVE, evaluate_holdout
    from recommendations.engine.holdout import validation_split

    split = validation_split(data, seed=seed)
    n_items = len(np.unique(split.train.item))
    metrics = evaluate_holdout(lambda: recipe_class(hyperparameters, seed=seed), split, n_items)
    return float(metrics[HPO_OBJECTIVE])


@register
class UserPersonalization(LowRankEaseRecipe):
    """Top-N items for a user from the history as stored at request time (`aws-user-personalization`)."""

    name: ClassVar[str] = "aws-user-personalization"

    def recommend(
        self,
        history: History,
        *,
        n: int,
        candidates: np.ndarray | None = None,
        now: int | None = None,
        exploration_weight: float = 0.0,
        exploration_item_age_cutoff_days: float = 30.0,
    ) -> Recommendation:
        """Top-n items for this history; young, rarely seen items get a bonus ∝ `exploration_weight`.

        Items without evidence (see `scores`) start from a neutral 0 when explored, so exploration is
        the only way they rise above items with evidence.
        """
        if not 0 <= exploration_weight <= 1:
            raise RecipeError("exploration_weight must be between 0 and 1")
        scores, scales = self.scored(history)  # a fresh array: masked and boosted in place
        details = {"score_scales": scales}
        if candidates is not None:
            scores[~np.asarray(candidates, dtype=bool)] = -np.inf
        if exploration_weight == 0:
            index, score = top_n(scores, n)
            return Recommendation(index, score, {"exploration": np.zeros(len(index), dtype=bool), **details})
        eligible = self.exploration_items(now, exploration_item_age_cutoff_days)
        eligible = eligible[np.isfinite(scores[eligible])]
        if len(eligible) == 0 or n <= 0:
            index, score = top_n(scores, n)
            return Recommendation(index, score, {"exploration": np.zeros(len(index), dtype=bool), **details})
        base_cut = scores[_largest(scores, n)]  # the un-boosted answer's last score is the cut-off
        threshold = base_cut.min() if np.isfinite(base_cut).sum() == n else -np.inf
        base_eligible = scores[eligible]  # a copy: the un-boosted scores of the eligible items
        start = np.where(base_eligible == NO_EVIDENCE_SCORE, np.float32(0.0), base_eligible)
        bonus = 1.0 / (1.0 + np.asarray(self.item_count)[eligible]) + self._noise[: len(eligible)]
        scores[eligible] = start + exploration_weight * bonus.astype(np.float32)
        index = _best_first(scores, _largest(scores, n))
        explored = np.isin(index, eligible, assume_unique=True)
        explored &= _unboosted(scores, index, eligible, base_eligible) < threshold
        return Recommendation(
            index.astype(np.int32), scores[index].astype(np.float32), {"exploration": explored, **details}
        )

    def exploration_items(self, now: int | None, cutoff_days: float) -> np.ndarray:
        """Ascending indices of items created within `cutoff_days` of `now` (default: newest event)."""
        self._check_fitted()
        if cutoff_days <= 0:
            raise RecipeError("exploration_item_age_cutoff_days must be positive")
        reference = self.ref_time if now is None else int(now)
        limit = max(0.0, reference - cutoff_days * DAY)  # unknown creation (-1) is never young
        start = int(np.searchsorted(self._creation_sorted, limit, side="left"))
        return np.sort(self._by_creation[start:])

    def exploration_candidates(self, now: int | None, cutoff_days: float) -> np.ndarray:
        """Boolean mask of the items created within `cutoff_days` of `now` (see `exploration_items`)."""
        mask = np.zeros(self.n_items, dtype=bool)
        mask[self.exploration_items(now, cutoff_days)] = True
        return mask
