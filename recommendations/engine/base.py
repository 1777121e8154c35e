"""The engine's shared vocabulary: training data as index arrays, and the Recipe contract.

The engine imports no Django. Users and items are dense indices (0..n-1) assigned by
the caller; every recipe takes an `InteractionData`, is fitted once, and answers
queries with index arrays. Artifacts are plain `.npy`/`.json` files in a folder so
web processes can memory-map and share them.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

__all__ = [
    "History",
    "InteractionData",
    "Recipe",
    "RecipeError",
    "Recommendation",
    "UnsupportedQueryError",
]


class RecipeError(ValueError):
    """A recipe was given options or data it cannot work with (message says which)."""


class UnsupportedQueryError(RecipeError):
    """The recipe does not answer this kind of query (e.g. `segment` on a SIMS model)."""


@dataclass(frozen=True)
class InteractionData:
    """Training data: one entry per event, plus optional metadata matrices.

    `weight` is the event's weight after the solution's eventType / eventsConfig /
    eventValueThreshold were applied (events with weight 0 are already dropped).
    Feature matrices are row-aligned with the user and item indices (one-hot
    categorical values, TF-IDF text, scaled numbers), built by the caller.
    """

    user: np.ndarray  # int32, shape (n_events,)
    item: np.ndarray  # int32, shape (n_events,)
    timestamp: np.ndarray  # int64 epoch seconds, shape (n_events,)
    n_users: int
    n_items: int
    weight: np.ndarray | None = None  # float32, shape (n_events,); None means all 1.0
    event_type: np.ndarray | None = None  # int16 codes into `event_types`
    event_types: tuple[str, ...] = ()
    item_features: sp.csr_matrix | None = None  # (n_items, n_item_features)
    item_feature_names: tuple[str, ...] = ()  # e.g. "GENRES=Comedy", "DESCRIPTION:word"
    user_features: sp.csr_matrix | None = None  # (n_users, n_user_features)
    user_feature_names: tuple[str, ...] = ()
    item_creation: np.ndarray | None = None  # int64 epoch seconds per item; -1 when unknown

    def __post_init__(self) -> None:
        n = len(self.user)
        if len(self.item) != n or len(self.timestamp) != n:
            raise RecipeError("user, item and timestamp arrays must have the same length")
        if self.weight is not None and len(self.weight) != n:
            raise RecipeError("weight must have one entry per event")

    @property
    def weights(self) -> np.ndarray:
        """Per-event weights (ones when none were given)."""
        return self.weight if self.weight is not None else np.ones(len(self.user), dtype=np.float32)

    def user_item_matrix(self) -> sp.csr_matrix:
        """Summed event weights as a (n_users, n_items) CSR matrix."""
        matrix = sp.csr_matrix(
            (self.weights.astype(np.float32), (self.user, self.item)), shape=(self.n_users, self.n_items)
        )
        matrix.sum_duplicates()
        return matrix


@dataclass(frozen=True)
class History:
    """A user's events as stored at request time, oldest first (item indices may repeat)."""

    item: np.ndarray  # int32 item indices; unknown items are left out by the caller
    timestamp: np.ndarray  # int64 epoch seconds
    weight: np.ndarray | None = None

    @classmethod
    def empty(cls) -> History:
        """No history: a new or anonymous user."""
        return cls(np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64))


@dataclass(frozen=True)
class Recommendation:
    """Top items (or users, for segments), best first, with their scores."""

    index: np.ndarray  # int32
    score: np.ndarray  # float32, same length, non-increasing
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. {"exploration": bool array}


class Recipe(ABC):
    """A trainable model named as Personalize names its recipe.

    Subclasses set `name` and `default_hyperparameters` (Personalize-style string maps),
    implement `fit`, the queries they support and `_save`/`_load`. `candidates` is a
    boolean mask over items (True = may be returned); results never repeat an index.
    """

    name: ClassVar[str]
    default_hyperparameters: ClassVar[dict[str, str]] = {}

    def __init__(self, hyperparameters: dict[str, str] | None = None, *, seed: int = 42) -> None:
        self.hyperparameters = {**self.default_hyperparameters, **(hyperparameters or {})}
        unknown = sorted(set(self.hyperparameters) - set(self.default_hyperparameters))
        if unknown:
            known = ", ".join(sorted(self.default_hyperparameters)) or "none"
            raise RecipeError(f"{self.name} has no hyperparameter {unknown[0]!r} (known: {known})")
        self.seed = seed

    @abstractmethod
    def fit(self, data: InteractionData) -> None:
        """Train on the data; afterwards the query methods work."""

    def recommend(
        self, history: History, *, n: int, candidates: np.ndarray | None = None, now: int | None = None
    ) -> Recommendation:
        """Top-n items for a user with this history (items in the history may be returned)."""
        raise UnsupportedQueryError(f"{self.name} does not recommend items for users")

    def rank(self, history: History, items: np.ndarray, *, now: int | None = None) -> Recommendation:
        """The given items re-ordered for a user, best first."""
        raise UnsupportedQueryError(f"{self.name} does not rank items")

    def similar(
        self, item: int, *, n: int, candidates: np.ndarray | None = None, now: int | None = None
    ) -> Recommendation:
        """Items related to one item."""
        raise UnsupportedQueryError(f"{self.name} does not find related items")

    def segment(self, item_mask: np.ndarray, *, n: int) -> Recommendation:
        """Users most likely to interact with the items in the mask (one item or an attribute match)."""
        raise UnsupportedQueryError(f"{self.name} does not build user segments")

    def save(self, folder: Path) -> None:
        """Write the fitted model as .npy arrays and a recipe.json into `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"recipe": self.name, "hyperparameters": self.hyperparameters, "seed": self.seed}
        meta["state"] = self._save(folder)
        (folder / "recipe.json").write_text(json.dumps(meta, indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = True) -> Recipe:
        """Read a model written by `save`; arrays are memory-mapped when `mmap`."""
        meta = json.loads((folder / "recipe.json").read_text())
        recipe = cls(meta["hyperparameters"], seed=meta["seed"])
        recipe._load(folder, meta["state"], mmap=mmap)
        return recipe

    @abstractmethod
    def _save(self, folder: Path) -> dict[str, Any]:
        """Write arrays into folder; return small JSON-able state."""

    @abstractmethod
    def _load(self, folder: Path, state: dict[str, Any], *, mmap: bool) -> None:
        """Restore what `_save` wrote."""
