"""Offline quality of every recipe that answers `recommend`, through the engine's own harness.

Usage: .venv/bin/python benchmarks/quality.py [INTER_FILE] [--hyperparameters k=v,...] [--tune N]

The split, the requests and the metrics are `recommendations.engine.evaluate` (PROTOCOL.md);
this script only loads a RecBole .inter file, passes the external user ids (so the split is
reference.py's), and times each recipe's fit and requests. aws-popularity-count is the
popularity baseline of the same run. `--tune N` picks aws-user-personalization's
hyperparameters with `evaluate.tune` over N settings on the validation split (never the test
users), then scores the choice on the test users.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommendations.engine.base import History, InteractionData, Recipe, Recommendation
from recommendations.engine.evaluate import HPO_OBJECTIVE, evaluate, tune
from recommendations.engine.popularity import PopularityCount
from recommendations.engine.ranking import PersonalizedRanking
from recommendations.engine.sims import Sims
from recommendations.engine.trending import TrendingNow
from recommendations.engine.user_personalization import UserPersonalization

__all__ = ["TimedRecipe", "load_inter", "main", "tuning_candidates"]

DEFAULT_PATH = "/work/shared/datasets/ml-100k/ml-100k.inter"
RECIPES: tuple[type[Recipe], ...] = (
    PopularityCount,
    UserPersonalization,
    PersonalizedRanking,
    Sims,
    TrendingNow,
)


def load_inter(path: str) -> tuple[InteractionData, np.ndarray]:
    """Events of a RecBole .inter file (user, item, rating, timestamp; header) and the external user ids."""
    users, items, times = [], [], []
    with open(path, encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            users.append(fields[0])
            items.append(fields[1])
            times.append(float(fields[3]))
    user_ids, user = np.unique(np.array(users), return_inverse=True)
    item_ids, item = np.unique(np.array(items), return_inverse=True)
    data = InteractionData(
        user=user.astype(np.int32),
        item=item.astype(np.int32),
        timestamp=np.array(times).astype(np.int64),
        n_users=len(user_ids),
        n_items=len(item_ids),
    )
    return data, user_ids


class TimedRecipe:
    """A recipe that records its fit seconds and each `recommend` call's seconds (for evaluate)."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.fit_seconds = 0.0
        self.request_seconds: list[float] = []

    def fit(self, data: InteractionData) -> None:
        """Fit the wrapped recipe, timed."""
        start = time.perf_counter()
        self.recipe.fit(data)
        self.fit_seconds = time.perf_counter() - start

    def recommend(self, history: History, **options: Any) -> Recommendation:
        """Answer with the wrapped recipe, timed."""
        start = time.perf_counter()
        result = self.recipe.recommend(history, **options)
        self.request_seconds.append(time.perf_counter() - start)
        return result


def tuning_candidates(budget: int) -> list[dict[str, str]]:
    """The defaults, then one hyperparameter changed at a time over `hpo_grid` (first `budget`)."""
    defaults = dict(UserPersonalization.default_hyperparameters)
    moves = (
        {**defaults, name: value}
        for name, values in UserPersonalization.hpo_grid.items()
        for value in values
        if value != defaults[name]
    )
    return list(itertools.islice(itertools.chain([defaults], moves), budget))


def main() -> None:
    """Evaluate every recipe that recommends; print one metrics column per recipe."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH)
    parser.add_argument("--hyperparameters", default="", help="aws-user-personalization name=value,...")
    parser.add_argument("--tune", type=int, default=0, help="settings tried by evaluate.tune (0: no HPO)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    args = parser.parse_args()
    threadpool_limits(args.threads)
    chosen = dict(p.split("=", 1) for p in args.hyperparameters.split(",") if p)

    data, user_ids = load_inter(args.path)
    print(f"{args.path}: {len(data.user)} interactions, {data.n_users} users, {data.n_items} items")
    if args.tune:
        start = time.perf_counter()
        chosen, trials = tune(UserPersonalization, data, tuning_candidates(args.tune), user_ids=user_ids)
        for hyperparameters, metrics in trials:
            changed = {
                k: v
                for k, v in hyperparameters.items()
                if v != UserPersonalization.default_hyperparameters[k]
            }
            print(f"  trial {changed or 'defaults'}: validation {HPO_OBJECTIVE} {metrics[HPO_OBJECTIVE]:.4f}")
        print(f"tuned in {time.perf_counter() - start:.1f} s: {chosen}")

    results: dict[str, dict[str, float]] = {}
    for recipe_class in RECIPES:
        options = chosen if recipe_class in (UserPersonalization, PersonalizedRanking) else {}
        timed: list[TimedRecipe] = []

        def factory(
            recipe_class: type[Recipe] = recipe_class,
            options: dict[str, str] = options,
            timed: list[TimedRecipe] = timed,
        ) -> TimedRecipe:
            timed.append(TimedRecipe(recipe_class(options)))
            return timed[-1]

        metrics = evaluate(factory, data, user_ids=user_ids)  # type: ignore[arg-type]
        metrics["fit seconds"] = timed[0].fit_seconds
        metrics["request ms p50"] = float(np.median(timed[0].request_seconds) * 1000)
        results[recipe_class.name] = metrics

    print(f"aws-user-personalization hyperparameters: {UserPersonalization(chosen).hyperparameters}")
    names = list(results)
    print(f"{'metric':44s}" + "".join(f"{name:>27s}" for name in names))
    for metric in results[names[0]]:
        digits = 3 if metric in ("fit seconds", "request ms p50") else 4
        print(f"{metric:44s}" + "".join(f"{results[name][metric]:27.{digits}f}" for name in names))


if __name__ == "__main__":
    main()
