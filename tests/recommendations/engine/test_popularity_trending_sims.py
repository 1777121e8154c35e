"""Behaviour of aws-popularity-count, aws-trending-now and aws-sims on planted structure, and of the
solution options they share (hyperparameter maps, eventType / eventsConfig / eventValueThreshold)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recommendations.engine.base import History, InteractionData, RecipeError
from recommendations.engine.events import apply_event_selection, event_selection, event_weights
from recommendations.engine.hyperparameters import HyperParameter, parse_hyperparameters
from recommendations.engine.popularity import PopularityCount, top_n
from recommendations.engine.sims import Sims
from recommendations.engine.trending import TrendingNow

HOUR = 3600
ITEMS_PER_GENRE = 10  # as in conftest's planted data: 4 genres of 10 items, then 2 new items
N_ITEMS = 42


def genre_of(item: int) -> int:
    """The planted genre of an interacted item."""
    return item // ITEMS_PER_GENRE


def data_from(user, item, timestamp, n_users=None, n_items=None, **extra) -> InteractionData:
    """InteractionData from plain lists."""
    user, item = np.asarray(user, np.int32), np.asarray(item, np.int32)
    return InteractionData(
        user=user,
        item=item,
        timestamp=np.asarray(timestamp, np.int64),
        n_users=n_users or int(user.max()) + 1,
        n_items=n_items or int(item.max()) + 1,
        **extra,
    )


# --- aws-popularity-count --------------------------------------------------------------------


def test_popularity_counts_distinct_users_not_events():
    # given item 0 clicked 5 times by one user, item 1 once each by 3 users, item 2 by 2 users
    data = data_from([0] * 5 + [1, 2, 3, 1, 2], [0] * 5 + [1, 1, 1, 2, 2], range(10), n_items=4)
    recipe = PopularityCount()
    recipe.fit(data)
    # when anyone asks
    result = recipe.recommend(History.empty(), n=10)
    # then the order is by distinct users, items nobody touched are left out
    assert result.index.tolist() == [1, 2, 0]
    assert result.score.tolist() == [3.0, 2.0, 1.0]


def test_popularity_ignores_history_and_respects_candidates(planted_data):
    # given the planted data, where the first items of each genre are the most popular
    recipe = PopularityCount()
    recipe.fit(planted_data)
    # then two different users get the same list
    a = recipe.recommend(History(np.array([1, 2], np.int32), np.array([0, 1])), n=5)
    b = recipe.recommend(History.empty(), n=5)
    assert a.index.tolist() == b.index.tolist()
    assert {i % ITEMS_PER_GENRE for i in a.index} <= {0, 1, 2}
    # and a candidate mask keeps only allowed items, still in popularity order
    genre_two = np.arange(planted_data.n_items) // ITEMS_PER_GENRE == 2
    c = recipe.recommend(History.empty(), n=3, candidates=genre_two)
    assert all(genre_of(i) == 2 for i in c.index)
    assert (np.diff(c.score) <= 0).all()


def test_top_n_breaks_ties_by_lower_index_and_skips_masked():
    # given tied scores / then lower indices win and excluded or -inf entries never appear
    scores = np.array([1.0, 3.0, 3.0, -np.inf, 3.0, 2.0], np.float32)
    assert top_n(scores, 2).index.tolist() == [1, 2]
    assert top_n(scores, 10, exclude=np.array([2])).index.tolist() == [1, 4, 5, 0]
    assert top_n(scores, 10, candidates=scores < 3).index.tolist() == [5, 0]


# --- aws-trending-now ------------------------------------------------------------------------


def trending_data() -> InteractionData:
    """Item 0: very popular long ago; item 1: 2 → 6 events between the last two hours; item 2: steady."""
    end = 1_000_000 * HOUR
    users, items, times = [], [], []
    for u in range(30):  # item 0: 30 users, all 2 days ago
        users.append(u), items.append(0), times.append(end - 48 * HOUR)
    for k in range(2):  # item 1: previous hour
        users.append(40 + k), items.append(1), times.append(end - HOUR - 600)
    for k in range(6):  # item 1: last hour
        users.append(50 + k), items.append(1), times.append(end - 600 + k)
    for k in range(3):  # item 2: 3 in each of the last two hours
        users.append(60 + k), items.append(2), times.append(end - HOUR - 100)
        users.append(70 + k), items.append(2), times.append(end - 100 + k)
    users.append(80), items.append(3), times.append(end)  # item 3: one new event at the very end
    return data_from(users, items, times, n_users=90, n_items=6)


def test_trending_picks_the_item_whose_last_interval_jumped():
    # given a one-hour trend interval and an item that went from 2 to 6 events
    recipe = TrendingNow({"trend_discovery_frequency": "1 hour"})
    recipe.fit(trending_data())
    # when asked at the time of the newest event
    result = recipe.recommend(History.empty(), n=4)
    # then that item leads (increase 4), then the new item (increase 1), then steady items by popularity
    assert result.index.tolist() == [1, 3, 0, 2]
    assert result.score.tolist() == [4.0, 1.0, 0.0, 0.0]


def test_trending_counts_new_events_without_retraining():
    # given a fitted model and, later, a burst of events on item 2 recorded after training
    recipe = TrendingNow({"trend_discovery_frequency": "1 hour"})
    data = trending_data()
    recipe.fit(data)
    now = int(data.timestamp.max()) + 1800
    since = recipe.recent_events_since(now)
    assert since == recipe.trained_until
    new_items = np.array([2] * 10 + [5], np.int32)
    new_times = np.full(11, now - 60, np.int64)
    # when the serving layer passes those events in
    result = recipe.with_recent_events(new_items, new_times).recommend(History.empty(), n=3, now=now)
    # then item 2 trends first, without a new fit; and the model itself is unchanged
    assert result.index[0] == 2
    assert recipe.recommend(History.empty(), n=1, now=now).index[0] != 2


def test_trending_falls_back_to_popular_items_when_the_last_two_intervals_are_empty():
    # given a request long after the last event
    recipe = TrendingNow({"trend_discovery_frequency": "30 minutes"})
    data = trending_data()
    recipe.fit(data)
    result = recipe.recommend(History.empty(), n=3, now=int(data.timestamp.max()) + 10 * 86400)
    # then the list is simply the most popular items (distinct users), scored 0
    assert result.index.tolist() == [0, 1, 2]
    assert result.score.tolist() == [0.0, 0.0, 0.0]


def test_trending_interval_names_are_case_insensitive_and_validated():
    # given Personalize's spelling in another case / then it is accepted
    assert TrendingNow({"trend_discovery_frequency": "1 Day"}).interval == 86400
    assert TrendingNow().interval == 2 * HOUR  # Personalize's default: 2 hours
    # and an unknown interval names the hyperparameter, value and choices
    with pytest.raises(RecipeError, match=r"trend_discovery_frequency.*'5 minutes'.*'30 minutes'"):
        TrendingNow({"trend_discovery_frequency": "5 minutes"})


# --- aws-sims --------------------------------------------------------------------------------


def test_sims_neighbours_come_from_the_same_genre(planted_data):
    # given users who mostly stick to one genre
    recipe = Sims({"min_cointeraction_count": "2"})
    recipe.fit(planted_data)
    # when asked for items similar to popular items of each genre
    for item in (0, 11, 22, 33):
        result = recipe.similar(item, n=5)
        # then the neighbours (not fallback) share its genre and never include the item itself
        neighbours = result.index[~result.extras["popular_fallback"]]
        assert len(neighbours) >= 3
        assert item not in result.index.tolist()
        assert sum(genre_of(i) == genre_of(item) for i in neighbours) >= len(neighbours) - 1


def test_sims_co_interacted_items_are_each_others_top_neighbours():
    # given items 0 and 1 always taken together by 5 users, item 2 taken by everyone
    users = [u for u in range(5) for _ in range(3)] + list(range(5, 15))
    items = [i for _ in range(5) for i in (0, 1, 2)] + [2] * 10
    data = data_from(users, items, range(len(users)), n_items=4)
    recipe = Sims({"min_cointeraction_count": "3", "max_item_interaction_count_percentile": "1.0"})
    recipe.fit(data)
    # then 0 and 1 are each other's top neighbour (the discount pushes the popular item 2 down)
    assert recipe.similar(0, n=1).index.tolist() == [1]
    assert recipe.similar(1, n=1).index.tolist() == [0]
    # and with no popularity discount the co-interaction count alone decides (ties to lower index)
    plain = Sims(
        {
            "min_cointeraction_count": "3",
            "popularity_discount_factor": "0",
            "max_item_interaction_count_percentile": "1.0",
        }
    )
    plain.fit(data)
    assert plain.similar(0, n=2).index.tolist() == [1, 2]


def test_sims_min_cointeraction_count_drops_weak_pairs():
    # given items 0 and 1 shared by only 2 users
    data = data_from([0, 0, 1, 1, 2], [0, 1, 0, 1, 3], range(5), n_items=4)
    strict = Sims({"min_cointeraction_count": "3", "max_item_interaction_count_percentile": "1.0"})
    strict.fit(data)
    loose = Sims({"min_cointeraction_count": "2", "max_item_interaction_count_percentile": "1.0"})
    loose.fit(data)
    # then at 3 item 1 is not a neighbour (only a popular fallback), at 2 it is
    assert strict.similar(0, n=1).extras["popular_fallback"].tolist() == [True]
    assert loose.similar(0, n=1).index.tolist() == [1]
    assert loose.similar(0, n=1).extras["popular_fallback"].tolist() == [False]


def test_sims_new_and_unknown_items_get_popular_items(planted_data):
    # given an item nobody interacted with, and an index outside the model
    recipe = Sims()
    recipe.fit(planted_data)
    popular = PopularityCount()
    popular.fit(planted_data)
    for item in (N_ITEMS - 1, N_ITEMS + 5, -1):
        result = recipe.similar(item, n=5)
        # then the answer is the popular items, flagged as fallback
        assert result.index.tolist() == popular.recommend(History.empty(), n=5).index.tolist()
        assert result.extras["popular_fallback"].all()


def test_sims_recommend_follows_the_recent_history(planted_data):
    # given a history that moved from genre 0 to genre 3
    recipe = Sims({"min_cointeraction_count": "1"})
    recipe.fit(planted_data)
    history = History(np.array([0, 1, 2, 30, 31, 32], np.int32), np.arange(6, dtype=np.int64))
    # when recommending / then genre 3 leads, scores non-increasing
    result = recipe.recommend(history, n=6)
    assert genre_of(int(result.index[0])) == 3
    assert (np.diff(result.score) <= 0).all()


def test_sims_hyperparameters_are_validated():
    # given out-of-range or malformed values / then the error names hyperparameter, value and range
    with pytest.raises(RecipeError, match=r"popularity_discount_factor.*'1.5'.*\[0, 1\]"):
        Sims({"popularity_discount_factor": "1.5"})
    with pytest.raises(RecipeError, match=r"min_cointeraction_count.*'2.5'.*integer in \[0, 10\]"):
        Sims({"min_cointeraction_count": "2.5"})


# --- hyperparameter maps ---------------------------------------------------------------------

SPECS = (
    HyperParameter("hidden_dimension", "int", "149", 32, 256, tunable=True),
    HyperParameter("rate", "float", "0.5", 0.0, 1.0),
    HyperParameter("recency_mask", "bool", "true"),
    HyperParameter("mode", "choice", "fast", choices=("fast", "Slow Mode")),
)


def test_parse_hyperparameters_types_and_defaults():
    # given a Personalize-style string map with some values / then types are parsed, defaults filled
    parsed = parse_hyperparameters(
        SPECS, {"hidden_dimension": "64", "recency_mask": "False", "mode": "slow  mode"}
    )
    assert parsed == {"hidden_dimension": 64, "rate": 0.5, "recency_mask": False, "mode": "Slow Mode"}
    assert parse_hyperparameters(SPECS, {"hidden_dimension": 100.0, "rate": 1})["hidden_dimension"] == 100


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"hidden_dimension": "16"},
            r"'hidden_dimension' has value '16'; it must be an integer in \[32, 256\]",
        ),
        ({"hidden_dimension": "abc"}, r"'hidden_dimension' has value 'abc'"),
        ({"rate": "nan"}, r"'rate' has value 'nan'; it must be a number in \[0, 1\]"),
        ({"recency_mask": "maybe"}, r"'recency_mask' has value 'maybe'; it must be true or false"),
        ({"mode": "medium"}, r"'mode' has value 'medium'; it must be one of 'fast', 'Slow Mode'"),
        ({"hiden_dimension": "64"}, r"unknown hyperparameter 'hiden_dimension' \(known: "),
    ],
)
def test_parse_hyperparameters_errors_name_the_problem(raw, message):
    with pytest.raises(RecipeError, match=message):
        parse_hyperparameters(SPECS, raw)


# --- eventType / eventsConfig / eventValueThreshold -----------------------------------------


def typed_events() -> tuple[InteractionData, np.ndarray]:
    """Six events: click, PURCHASE, view, click, purchase, click with values 1, 20, 5, 12, 3, nan."""
    data = data_from(
        [0, 0, 1, 1, 2, 2],
        [0, 1, 2, 3, 4, 5],
        range(6),
        event_type=np.array([0, 1, 2, 0, 3, 0], np.int16),
        event_types=("click", "PURCHASE", "view", "purchase"),
    )
    return data, np.array([1.0, 20.0, 5.0, 12.0, 3.0, np.nan])


def weights_for(selection, data, values) -> list[float]:
    return event_weights(
        selection, event_type=data.event_type, event_types=data.event_types, event_value=values, n_events=6
    ).tolist()


def test_no_event_options_train_on_everything():
    data, values = typed_events()
    selection = event_selection()
    assert selection.is_trivial
    assert apply_event_selection(data, selection, values) is data


def test_event_type_keeps_one_type_case_insensitively():
    # given eventType "Purchase" and types spelled "PURCHASE" and "purchase" in the data
    data, values = typed_events()
    # then only purchase events train, with weight 1
    assert weights_for(event_selection(event_type="Purchase"), data, values) == [0, 1, 0, 0, 1, 0]


def test_event_value_threshold_keeps_values_at_or_above_it():
    # given a solution-wide threshold of 5 / then values ≥ 5 stay; events without a value go
    data, values = typed_events()
    selection = event_selection(solution_config={"eventValueThreshold": "5"})
    assert weights_for(selection, data, values) == [0, 1, 1, 1, 0, 0]
    # and combined with eventType, both apply
    both = event_selection(event_type="click", solution_config={"eventValueThreshold": "10"})
    assert weights_for(both, data, values) == [0, 0, 0, 1, 0, 0]


def test_events_config_weights_listed_types_with_their_own_thresholds():
    # given purchases at weight 1 and clicks at 0.25 with a click threshold of 10
    data, values = typed_events()
    selection = event_selection(
        solution_config={
            "eventValueThreshold": "2",
            "eventsConfig": {
                "eventParametersList": [
                    {"eventType": "purchase", "weight": 1.0},
                    {"eventType": "Click", "eventValueThreshold": 10, "weight": 0.25},
                ]
            },
        }
    )
    # then views (unlisted) are dropped, clicks need ≥ 10, purchases the solution-wide ≥ 2
    assert weights_for(selection, data, values) == [0, 1.0, 0, 0.25, 1.0, 0]
    # and applying it drops weight-0 events and stores the weights
    applied = apply_event_selection(data, selection, values)
    assert applied.item.tolist() == [1, 3, 4]
    assert applied.weight.tolist() == [1.0, 0.25, 1.0]
    assert applied.n_items == data.n_items and applied.event_types == data.event_types


def test_apply_event_selection_multiplies_existing_weights():
    data, values = typed_events()
    weighted = dataclasses.replace(data, weight=np.full(6, 2.0, np.float32))
    applied = apply_event_selection(weighted, event_selection(event_type="view"), values)
    assert applied.weight.tolist() == [2.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {
                "event_type": "click",
                "solution_config": {"eventsConfig": {"eventParametersList": [{"eventType": "a"}]}},
            },
            "either eventType or solutionConfig.eventsConfig",
        ),
        (
            {"solution_config": {"eventValueThreshold": "high"}},
            r"eventValueThreshold must be a number, got 'high'",
        ),
        ({"solution_config": {"eventsConfig": {"eventParametersList": []}}}, "non-empty list"),
        ({"solution_config": {"eventsConfig": [{"eventType": "a"}]}}, "eventParametersList"),
        (
            {"solution_config": {"eventsConfig": {"eventParametersList": [{"eventType": "a", "weight": 2}]}}},
            r"eventParametersList\[0\].weight is 2; it must be between 0 and 1",
        ),
        (
            {
                "solution_config": {
                    "eventsConfig": {"eventParametersList": [{"eventType": "a"}, {"eventType": "A"}]}
                }
            },
            r"eventParametersList\[1\].eventType 'A' is listed twice",
        ),
        (
            {"solution_config": {"eventsConfig": {"eventParametersList": [{"weight": 1}]}}},
            r"eventParametersList\[0\].eventType must be a non-empty event type name",
        ),
        (
            {"solution_config": {"eventsConfig": {"eventParametersList": [{"eventType": "a", "wieght": 1}]}}},
            r"unknown field 'wieght'",
        ),
        (
            {
                "solution_config": {
                    "eventsConfig": {"eventParametersList": [{"eventType": f"t{k}"} for k in range(11)]}
                }
            },
            "11 entries; at most 10",
        ),
    ],
)
def test_bad_event_options_raise_clear_errors(kwargs, message):
    with pytest.raises(RecipeError, match=message):
        event_selection(**kwargs)
