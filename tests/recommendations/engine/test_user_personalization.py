"""aws-user-personalization and aws-personalized-ranking on the planted data (given/when/then)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from recommendations.engine.base import History, InteractionData, Recipe, RecipeError
from recommendations.engine.ranking import PersonalizedRanking
from recommendations.engine.user_personalization import UserPersonalization

from .conftest import DAY, ITEMS_PER_GENRE, START, genre_of

NEW_ITEMS = (40, 41)  # no interactions, genre metadata 0 and 1, created at START + 9 days


def fitted(cls: type[Recipe], data: InteractionData, **hyperparameters: str) -> Recipe:
    recipe = cls(hyperparameters or None, seed=3)
    recipe.fit(data)
    return recipe


def genre_history(genre: int, n: int = 5, start: int = START) -> History:
    items = np.arange(n, dtype=np.int32) + genre * ITEMS_PER_GENRE
    return History(items, start + np.arange(n, dtype=np.int64) * 60)


def test_an_event_after_training_changes_the_next_answer_without_refitting(planted_data):
    # Given a model fitted once and a user who has only watched genre 0
    recipe = fitted(UserPersonalization, planted_data)
    history = genre_history(0)
    before = recipe.recommend(history, n=5)
    # When new events for genre 2 are appended to the stored history (no refit)
    newer = History(
        np.concatenate([history.item, [20, 21, 22, 23, 24, 25]]).astype(np.int32),
        np.concatenate([history.timestamp, START + 9 * DAY + np.arange(6)]).astype(np.int64),
    )
    after = recipe.recommend(newer, n=5)
    # Then the answer moves towards genre 2
    assert not np.array_equal(before.index, after.index)
    assert sum(genre_of(int(i)) == 0 for i in before.index) >= 4
    assert sum(genre_of(int(i)) == 2 for i in after.index if i < 40) >= 3


def test_a_user_without_history_gets_the_most_popular_items(planted_data):
    # Given a fitted model with popularity decay switched off
    recipe = fitted(UserPersonalization, planted_data, popularity_half_life_days="0")
    # When a brand-new user asks
    result = recipe.recommend(History.empty(), n=5)
    # Then the items are the five with the most events, most popular first
    counts = np.bincount(planted_data.item, minlength=planted_data.n_items)
    assert set(result.index.tolist()) == set(np.argsort(-counts, kind="stable")[:5].tolist())
    assert np.all(np.diff(result.score) <= 0)


def test_exploration_flags_young_items_only_when_weighted(planted_data):
    # Given a genre-0 user and two young items without interactions (created 1 day before the newest event)
    recipe = fitted(UserPersonalization, planted_data)
    history = genre_history(0)
    now = START + 10 * DAY
    # When the campaign explores with weight 0.8, and when it does not
    explored = recipe.recommend(
        history, n=15, now=now, exploration_weight=0.8, exploration_item_age_cutoff_days=3
    )
    plain = recipe.recommend(history, n=15, now=now, exploration_weight=0.0)
    # Then the young items appear and are flagged, and nothing is flagged without exploration
    flagged = set(explored.index[explored.extras["exploration"]].tolist())
    assert flagged and flagged <= set(NEW_ITEMS)
    assert not plain.extras["exploration"].any()
    # And the answer is deterministic for the seed
    again = recipe.recommend(
        history, n=15, now=now, exploration_weight=0.8, exploration_item_age_cutoff_days=3
    )
    assert np.array_equal(again.index, explored.index)
    # And items older than the cut-off are never flagged
    strict = recipe.recommend(history, n=15, now=now + 30 * DAY, exploration_weight=0.8)
    assert not strict.extras["exploration"].any()


def test_a_new_item_with_metadata_is_recommended_to_its_genre(planted_data):
    # Given new item 41 (no interactions) whose metadata says genre 1
    recipe = fitted(UserPersonalization, planted_data)
    # When a genre-1 fan and a genre-3 fan ask for every item
    fan = recipe.recommend(genre_history(1), n=planted_data.n_items)
    other = recipe.recommend(genre_history(3), n=planted_data.n_items)
    # Then item 41 ranks higher for the genre-1 fan
    assert list(fan.index).index(41) < list(other.index).index(41)


def test_ranking_puts_unknown_items_last_unscored_in_input_order(planted_data):
    # Given a ranking model and a list mixing known items with -1 and out-of-range indices
    recipe = fitted(PersonalizedRanking, planted_data)
    items = np.array([35, -1, 2, 999, 1, 0, -1], dtype=np.int64)
    # When a genre-0 user's list is ranked
    result = recipe.rank(genre_history(0, n=3), items)
    # Then the known items come first, best first, and the unknown ones last with NaN scores
    assert sorted(result.index[:4].tolist()) == [0, 1, 2, 35]
    assert result.index[3] == 35
    assert result.index[4:].tolist() == [-1, 999, -1]
    assert np.isnan(result.score[4:]).all() and np.isfinite(result.score[:4]).all()
    assert np.all(np.diff(result.score[:4]) <= 0)


def test_save_and_memory_mapped_load_answer_the_same(planted_data, tmp_path: Path):
    # Given a fitted ranking model (it answers recommend and rank)
    recipe = fitted(PersonalizedRanking, planted_data, hidden_dimension="8")
    history = genre_history(2)
    # When it is saved and loaded back memory-mapped
    recipe.save(tmp_path / "model")
    loaded = PersonalizedRanking.load(tmp_path / "model")
    # Then both answer identically
    for a, b in (
        (recipe.recommend(history, n=10), loaded.recommend(history, n=10)),
        (recipe.rank(history, np.arange(12)), loaded.rank(history, np.arange(12))),
    ):
        assert np.array_equal(a.index, b.index)
        np.testing.assert_allclose(a.score, b.score, rtol=1e-6)
    assert loaded.hyperparameters["hidden_dimension"] == "8"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("hidden_dimension", "many"),
        ("regularization", "-1"),
        ("recency_mask", "maybe"),
        ("sequence_window", "0"),
    ],
)
def test_bad_hyperparameters_are_rejected_by_name(name, value):
    # Given / When a hyperparameter map with one bad value / Then the error names it
    with pytest.raises(RecipeError, match=name):
        UserPersonalization({name: value})


def test_tune_searches_the_grid_within_its_budget(planted_data):
    # Given a fake objective that prefers 32 factors and no sequence model
    calls = []

    def objective(cls, hyperparameters, data, seed):
        calls.append(hyperparameters)
        return (hyperparameters["hidden_dimension"] == "32") + (hyperparameters["sequence_weight"] == "0")

    # When tuning with a budget of 10 fits
    best = UserPersonalization.tune(planted_data, 10, evaluate=objective)
    # Then it found both preferences without exceeding the budget
    assert best["hidden_dimension"] == "32" and best["sequence_weight"] == "0"
    assert len(calls) <= 10


def test_tune_runs_on_the_validation_split(planted_data):
    # Given the real objective (NDCG@10 on the validation split) / When tuning with 2 fits
    best = UserPersonalization.tune(planted_data, 2)
    # Then a usable hyperparameter map comes back
    UserPersonalization(best).fit(planted_data)


def test_items_without_interactions_or_metadata_rank_after_every_item_with_evidence(planted_data):
    # Given two catalogue items nobody interacted with and without metadata (no item features)
    data = dataclasses.replace(planted_data, item_features=None)
    recipe = fitted(UserPersonalization, data)
    # When a genre-0 user asks for the whole catalogue, and a new user too
    everything = recipe.recommend(genre_history(0), n=data.n_items)
    cold_start = recipe.recommend(History.empty(), n=data.n_items)
    # Then both items come last, below every item with interactions (even negatively scored ones)
    for result in (everything, cold_start):
        assert set(result.index[-len(NEW_ITEMS) :].tolist()) == set(NEW_ITEMS)
        assert result.score[-1] < result.score[: -len(NEW_ITEMS)].min()
    # And only exploration can lift them: with it (they are young) they are shown and flagged
    explored = recipe.recommend(
        genre_history(0),
        n=10,
        now=START + 10 * DAY,
        exploration_weight=1.0,
        exploration_item_age_cutoff_days=3,
    )
    assert set(NEW_ITEMS) <= set(explored.index[explored.extras["exploration"]].tolist())


def test_items_nobody_interacted_with_do_not_change_the_factors_of_the_others(planted_data):
    # Given the same events, once with the catalogue's two untouched items and once without them
    data = dataclasses.replace(planted_data, item_features=None, item_creation=None)
    smaller = dataclasses.replace(data, n_items=data.n_items - len(NEW_ITEMS))
    full, compact = fitted(UserPersonalization, data), fitted(UserPersonalization, smaller)
    # When the same user asks both models
    history = genre_history(1)
    with_extra = full.recommend(history, n=10)
    without = compact.recommend(history, n=10)
    # Then the answers are the same (the SVD's random draw ignores empty columns)
    assert with_extra.index.tolist() == without.index.tolist()
    np.testing.assert_allclose(with_extra.score, without.score, rtol=1e-4, atol=1e-5)
