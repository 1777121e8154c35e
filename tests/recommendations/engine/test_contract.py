"""The shared recipe contract: every registered recipe, on the planted data.

Each recipe answers some of recommend / rank / similar / segment and raises
UnsupportedQueryError for the rest. Whatever it answers: int32 indices and float32 scores of the
same length, at most n of them, in range, never repeated, scores non-increasing (unscored
entries, if any, last), candidate masks respected, identical after a second fit with the same
seed and after a save → memory-mapped load round trip; empty histories and items with no
interactions are answered without error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from recommendations.engine.base import (
    History,
    InteractionData,
    Recipe,
    Recommendation,
    UnsupportedQueryError,
)
from recommendations.engine.registry import recipe_class

N = 8
NEW_ITEM = 40  # no interactions in the planted data
Query = Callable[[Recipe, InteractionData], Recommendation]


def user_history(data: InteractionData, user: int) -> History:
    """The user's events, oldest first."""
    events = np.flatnonzero(data.user == user)
    events = events[np.argsort(data.timestamp[events], kind="stable")]
    return History(data.item[events].astype(np.int32), data.timestamp[events].astype(np.int64))


def even_items(data: InteractionData) -> np.ndarray:
    """Candidate mask: even item indices only."""
    return np.arange(data.n_items) % 2 == 0


RANK_ITEMS = np.array([3, 17, NEW_ITEM, 0, 25, 12, 31], dtype=np.int32)

QUERIES: dict[str, Query] = {
    "recommend": lambda r, d: r.recommend(user_history(d, 5), n=N),
    "recommend_empty_history": lambda r, d: r.recommend(History.empty(), n=N),
    "recommend_candidates": lambda r, d: r.recommend(user_history(d, 6), n=N, candidates=even_items(d)),
    "rank": lambda r, d: r.rank(user_history(d, 7), RANK_ITEMS),
    "rank_empty_history": lambda r, d: r.rank(History.empty(), RANK_ITEMS),
    "similar": lambda r, d: r.similar(2, n=N),
    "similar_new_item": lambda r, d: r.similar(NEW_ITEM, n=N),
    "similar_candidates": lambda r, d: r.similar(12, n=N, candidates=even_items(d)),
    "segment": lambda r, d: r.segment(np.arange(d.n_items) == 2, n=N),
}


def fitted(name: str, data: InteractionData, seed: int = 7) -> Recipe:
    """A recipe with default hyperparameters fitted on the data."""
    recipe = recipe_class(name)(seed=seed)
    recipe.fit(data)
    return recipe


def answer(recipe: Recipe, data: InteractionData, query: str) -> Recommendation | None:
    """The recipe's answer, or None when it does not support that kind of query."""
    try:
        return QUERIES[query](recipe, data)
    except UnsupportedQueryError:
        return None


def answers(recipe: Recipe, data: InteractionData) -> dict[str, Recommendation | None]:
    """Every query's answer (None = unsupported)."""
    return {query: answer(recipe, data, query) for query in QUERIES}


@pytest.fixture(scope="module")
def fitted_answers(
    planted_data: InteractionData,
) -> dict[str, tuple[Recipe, dict[str, Recommendation | None]]]:
    """Per recipe name: a fitted recipe and its answers (filled lazily)."""
    return {}


def recipe_and_answers(cache: dict, name: str, data: InteractionData) -> tuple[Recipe, dict]:
    """Fit once per module and recipe."""
    if name not in cache:
        recipe = fitted(name, data)
        cache[name] = (recipe, answers(recipe, data))
    return cache[name]


def assert_same(a: dict[str, Recommendation | None], b: dict[str, Recommendation | None]) -> None:
    """Identical supported queries, indices and scores."""
    assert a.keys() == b.keys()
    for query in a:
        assert (a[query] is None) == (b[query] is None), query
        if a[query] is not None:
            np.testing.assert_array_equal(
                np.asarray(a[query].index), np.asarray(b[query].index), err_msg=query
            )
            np.testing.assert_array_equal(
                np.asarray(a[query].score), np.asarray(b[query].score), err_msg=query
            )


def test_recipe_answers_at_least_one_kind_of_query(recipe_name, planted_data, fitted_answers):
    # given a fitted recipe / when every kind of query is asked
    _, results = recipe_and_answers(fitted_answers, recipe_name, planted_data)
    # then it supports at least one of them
    assert any(result is not None for result in results.values())


def test_supported_or_each_query_kind_all_unsupported(recipe_name, planted_data, fitted_answers):
    # given a fitted recipe, when asked each kind of query in its variants
    _, results = recipe_and_answers(fitted_answers, recipe_name, planted_data)
    # then a kind is either answered in every variant or refused in every variant
    for kind in ("recommend", "rank", "similar", "segment"):
        variants = [results[q] is None for q in results if q.startswith(kind)]
        assert len(set(variants)) == 1, f"{recipe_name} answers some {kind} queries and refuses others"


def supported(results: dict[str, Recommendation | None], names: list[str]) -> dict[str, Recommendation]:
    """The answered queries among `names`."""
    return {q: results[q] for q in names if results[q] is not None}


def test_shapes_dtypes_ranges_and_no_repeats(recipe_name, planted_data, fitted_answers):
    # given a fitted recipe and its answers to every query it supports
    _, results = recipe_and_answers(fitted_answers, recipe_name, planted_data)
    for query, result in supported(results, list(QUERIES)).items():
        index, score = np.asarray(result.index), np.asarray(result.score)
        # then indices are int32, scores float32, one score per index, 1-D
        assert index.dtype == np.int32 and score.dtype == np.float32, query
        assert index.ndim == 1 and score.shape == index.shape, query
        # and never repeated, in range, at most n
        assert len(np.unique(index)) == len(index), query
        bound = planted_data.n_users if query.startswith("segment") else planted_data.n_items
        assert ((index >= 0) & (index < bound)).all(), query
        if query.startswith("rank"):
            assert sorted(index.tolist()) == sorted(RANK_ITEMS.tolist()), query
        else:
            assert len(index) <= N, query
        # and scores are non-increasing, with any unscored (non-finite) entries last
        finite = np.isfinite(score)
        n_finite = int(finite.sum())
        assert finite[:n_finite].all(), f"{query}: unscored entries must come last"
        assert (np.diff(score[:n_finite]) <= 0).all(), query
        # and extras arrays, if any, are aligned with the indices
        for key, value in result.extras.items():
            if isinstance(value, np.ndarray) and value.ndim == 1:
                assert len(value) == len(index), f"{query}: extras[{key!r}]"


def test_returns_something_for_known_unknown_and_empty(recipe_name, planted_data, fitted_answers):
    # given a fitted recipe, a user with no history or an item with no interactions
    _, results = recipe_and_answers(fitted_answers, recipe_name, planted_data)
    names = ["recommend", "recommend_empty_history", "similar", "similar_new_item"]
    for query, result in supported(results, names).items():
        # then it still recommends something (e.g. popular items), not an empty list
        assert len(result.index) > 0, query


def test_candidate_mask_is_respected(recipe_name, planted_data, fitted_answers):
    # given a mask that allows only even item indices
    _, results = recipe_and_answers(fitted_answers, recipe_name, planted_data)
    for query, result in supported(results, ["recommend_candidates", "similar_candidates"]).items():
        index = np.asarray(result.index)
        # then only allowed items come back, and there are some
        assert (index % 2 == 0).all(), query
        assert len(index) > 0, query


def test_candidate_mask_with_no_candidates_returns_nothing(recipe_name, planted_data, fitted_answers):
    # given a mask that allows nothing
    recipe, _ = recipe_and_answers(fitted_answers, recipe_name, planted_data)
    nothing = np.zeros(planted_data.n_items, dtype=bool)
    for call in (
        lambda: recipe.recommend(user_history(planted_data, 5), n=N, candidates=nothing),
        lambda: recipe.similar(2, n=N, candidates=nothing),
    ):
        try:
            result = call()
        except UnsupportedQueryError:
            continue
        # then the answer is empty
        assert len(result.index) == 0


def test_n_limits_the_answer(recipe_name, planted_data, fitted_answers):
    # given a fitted recipe, when asked for 3 results
    recipe, _ = recipe_and_answers(fitted_answers, recipe_name, planted_data)
    for call in (
        lambda: recipe.recommend(user_history(planted_data, 5), n=3),
        lambda: recipe.similar(2, n=3),
        lambda: recipe.segment(np.arange(planted_data.n_items) == 2, n=3),
    ):
        try:
            result = call()
        except UnsupportedQueryError:
            continue
        # then at most 3 come back
        assert len(result.index) <= 3


def test_two_fits_with_the_same_seed_give_identical_answers(recipe_name, planted_data, fitted_answers):
    # given two recipes fitted with the same seed on the same data
    _, first = recipe_and_answers(fitted_answers, recipe_name, planted_data)
    second = answers(fitted(recipe_name, planted_data), planted_data)
    # then every answer is identical
    assert_same(first, second)


def test_save_then_memory_mapped_load_gives_identical_answers(
    recipe_name, planted_data, fitted_answers, tmp_path: Path
):
    # given a fitted recipe saved to a folder
    recipe, before = recipe_and_answers(fitted_answers, recipe_name, planted_data)
    recipe.save(tmp_path / "model")
    # when it is loaded back with memory-mapped arrays
    loaded = recipe_class(recipe_name).load(tmp_path / "model", mmap=True)
    # then it is the same recipe and answers exactly as before
    assert loaded.name == recipe_name and loaded.hyperparameters == recipe.hyperparameters
    assert_same(before, answers(loaded, planted_data))


def test_unsupported_queries_raise_unsupported_query_error(recipe_name, planted_data, fitted_answers):
    # given a fitted recipe
    recipe, results = recipe_and_answers(fitted_answers, recipe_name, planted_data)
    # then each query it does not answer raises UnsupportedQueryError (answer() would have let others through)
    for query, result in results.items():
        if result is None:
            with pytest.raises(UnsupportedQueryError):
                QUERIES[query](recipe, planted_data)


def test_unknown_hyperparameter_is_rejected(recipe_name):
    # given a hyperparameter name no recipe has / then construction fails with a RecipeError naming it
    from recommendations.engine.base import RecipeError

    with pytest.raises(RecipeError, match="no_such_hyperparameter"):
        recipe_class(recipe_name)({"no_such_hyperparameter": "1"})
