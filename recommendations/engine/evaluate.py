"""Run the offline evaluation protocol (PROTOCOL.md) for any recipe that answers `recommend`.

Fit on the holdout's training users; for each test user ask for 25 + len(history) items given
the oldest 90% of their events, drop items in that history, keep the top 25, and average
Personalize's metrics. `tune` picks hyperparameters on `validation_split` (never the test users).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from recommendations.engine.base import InteractionData, Recipe
from recommendations.engine.holdout import Holdout, holdout_split, validation_split
from recommendations.engine.metrics import MAX_K, personalize_metrics
from recommendations.engine.popularity import distinct

__all__ = ["HPO_OBJECTIVE", "evaluate", "evaluate_holdout", "tune"]

HPO_OBJECTIVE = "normalized_discounted_cumulative_gain_at_10"


def evaluate_holdout(
    recipe_factory: Callable[[], Recipe], holdout: Holdout, n_items: int
) -> dict[str, float]:
    """Fit a fresh recipe on `holdout.train` and score its top-25 lists for the test users."""
    recipe = recipe_factory()
    recipe.fit(holdout.train)
    recommended = []
    for history in holdout.history:
        seen = np.unique(history.item)
        result = recipe.recommend(history, n=MAX_K + len(seen), candidates=None)
        index = np.asarray(result.index)
        recommended.append(index[~np.isin(index, seen)][:MAX_K])
    return personalize_metrics(recommended, list(holdout.relevant), n_items)


def evaluate(
    recipe_factory: Callable[[], Recipe],
    data: InteractionData,
    *,
    seed: int = 42,
    user_ids: np.ndarray | None = None,
) -> dict[str, float]:
    """Personalize's offline metrics of a recipe on the protocol's holdout of `data`."""
    n_items = len(distinct(data.item))  # distinct items in the data, as the protocol counts them
    return evaluate_holdout(recipe_factory, holdout_split(data, seed=seed, user_ids=user_ids), n_items)


def tune(
    recipe_class: type[Recipe],
    data: InteractionData,
    candidates: Iterable[Mapping[str, str]],
    *,
    seed: int = 42,
    objective: str = HPO_OBJECTIVE,
    user_ids: np.ndarray | None = None,
) -> tuple[dict[str, str], list[tuple[dict[str, str], dict[str, float]]]]:
    """The hyperparameter map with the best `objective` on the validation split, and every trial."""
    split = validation_split(data, seed=seed, user_ids=user_ids)
    n_items = len(distinct(split.train.item))
    trials: list[tuple[dict[str, str], dict[str, float]]] = []
    for hyperparameters in candidates:
        chosen: dict[str, Any] = dict(hyperparameters)
        metrics = evaluate_holdout(lambda chosen=chosen: recipe_class(chosen, seed=seed), split, n_items)
        trials.append((chosen, metrics))
    if not trials:
        return dict(recipe_class.default_hyperparameters), trials
    best = max(range(len(trials)), key=lambda t: (trials[t][1][objective], -t))
    return trials[best][0], trials
