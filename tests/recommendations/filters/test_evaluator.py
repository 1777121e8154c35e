"""The numpy evaluator: Personalize's semantics over column arrays, without a database."""

import numpy as np
import pytest

from catalog.schemas import FieldKind
from recommendations.errors import FilterError
from recommendations.filters.evaluator import (
    CategoricalColumn,
    EvaluationInput,
    NumericColumn,
    RecentInteractions,
    filter_mask,
    recent_per_event_type,
)
from recommendations.filters.parser import Dataset, parse_filter_expression

KINDS = {
    Dataset.ITEMS: {
        "GENRE": FieldKind.CATEGORICAL,
        "CATEGORY_L1": FieldKind.CATEGORICAL,
        "CATEGORY_L2": FieldKind.CATEGORICAL,
        "PRICE": FieldKind.NUMERICAL,
    },
    Dataset.USERS: {"AGE": FieldKind.NUMERICAL, "TIER": FieldKind.CATEGORICAL},
}
# item:        0          1               2        3          4
GENRE = ["Comedy", "Action|Comedy", "Drama", None, "Comedy Drama"]
CATEGORY_L1 = ["watch", "watch", "shoe", "shoe", "watch"]
CATEGORY_L2 = ["luxury", "sport", "boot", None, "luxury"]
PRICE = [10, 25.5, None, 40, "5"]


def items(**overrides: object) -> EvaluationInput:
    base = dict(
        n_rows=5,
        columns={
            "GENRE": CategoricalColumn.from_values(GENRE),
            "CATEGORY_L1": CategoricalColumn.from_values(CATEGORY_L1),
            "CATEGORY_L2": CategoricalColumn.from_values(CATEGORY_L2),
            "PRICE": NumericColumn.from_values(PRICE),
        },
        kinds=KINDS,
    )
    base.update(overrides)
    return EvaluationInput(**base)


def passing(text: str, inp: EvaluationInput | None = None) -> list[int]:
    return np.flatnonzero(filter_mask(parse_filter_expression(text), inp or items())).tolist()


def test_categorical_in_matches_each_pipe_joined_value_exactly() -> None:
    # Given items whose GENRE is "Comedy", "Action|Comedy", "Comedy Drama" ... / When filtered on Comedy
    # Then both single- and multi-valued Comedy items pass; "Comedy Drama" is another value; case matters
    assert passing('INCLUDE ItemID WHERE Items.GENRE IN ("Comedy")') == [0, 1]
    assert passing('INCLUDE ItemID WHERE Items.GENRE IN ("comedy")') == []


def test_not_in_never_matches_a_missing_value() -> None:
    # Given item 3 without GENRE / When NOT IN is applied
    # Then items holding another value pass, the item without a value does not (as in SQL)
    assert passing('INCLUDE ItemID WHERE Items.GENRE NOT IN ("Comedy")') == [2, 4]
    assert passing('EXCLUDE ItemID WHERE Items.GENRE NOT IN ("Comedy")') == [0, 1, 3]


def test_numeric_comparisons_skip_missing_values() -> None:
    # Given prices 10, 25.5, missing, 40, "5" / When compared
    assert passing("INCLUDE ItemID WHERE Items.PRICE < 26") == [0, 1, 4]
    assert passing("INCLUDE ItemID WHERE Items.PRICE >= 25.5") == [1, 3]
    assert passing("INCLUDE ItemID WHERE Items.PRICE = 40") == [3]
    assert passing("INCLUDE ItemID WHERE Items.PRICE != 40") == [0, 1, 4]
    assert passing("INCLUDE ItemID WHERE Items.PRICE <= 10") == [0, 4]
    assert passing("INCLUDE ItemID WHERE Items.PRICE > 10") == [1, 3]
    assert passing("INCLUDE ItemID WHERE Items.PRICE IN (10, 40)") == [0, 3]


def test_documented_watch_example_applies_only_when_the_current_user_is_over_18() -> None:
    # Given the documented luxury-watch filter
    text = (
        'INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("watch") AND Items.CATEGORY_L2 IN ("luxury") '
        "IF CurrentUser.AGE > 18"
    )
    # When the user is 30, 16, unknown age, or there is no user
    adult = passing(text, items(current_user={"AGE": 30}))
    minor = passing(text, items(current_user={"AGE": 16}))
    unknown = passing(text, items(current_user={}))
    anonymous = passing(text, items())
    # Then only the adult's list is limited to luxury watches; otherwise the part does not apply
    assert adult == [0, 4]
    assert minor == unknown == anonymous == [0, 1, 2, 3, 4]


def test_if_with_several_current_user_conditions_needs_all_of_them() -> None:
    # Given a gate 18 < AGE < 30 on an EXCLUDE / When users of 25 and 40 ask
    text = "EXCLUDE ItemID WHERE Items.PRICE < 20 IF CurrentUser.AGE > 18 AND CurrentUser.AGE < 30"
    # Then only the 25-year-old loses the cheap items
    assert passing(text, items(current_user={"AGE": "25"})) == [1, 2, 3]
    assert passing(text, items(current_user={"AGE": 40})) == [0, 1, 2, 3, 4]


def test_categorical_gate_on_current_user() -> None:
    # Given a gate on a categorical user field / When gold and silver users ask
    text = 'INCLUDE ItemID WHERE Items.CATEGORY_L2 IN ("luxury") IF CurrentUser.TIER IN ("gold")'
    # Then the gold user gets luxury only
    assert passing(text, items(current_user={"TIER": "gold|early"})) == [0, 4]
    assert passing(text, items(current_user={"TIER": "silver"})) == [0, 1, 2, 3, 4]


def test_placeholders_take_the_request_values_and_parse_numbers_for_numeric_fields() -> None:
    # Given placeholders on a categorical and a numeric field / When values are given
    genre = passing(
        "INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)", items(filter_values={"GENRE": ["Drama", "Action"]})
    )
    cheap = passing("INCLUDE ItemID WHERE Items.PRICE <= $PRICE", items(filter_values={"PRICE": ["10"]}))
    # Then they act as literals
    assert genre == [1, 2]
    assert cheap == [0, 4]


def test_a_missing_include_placeholder_is_an_error_a_missing_exclude_placeholder_drops_the_part() -> None:
    # Given the documented genre include and an exclusion by category placeholder
    include = parse_filter_expression("INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)")
    exclude = parse_filter_expression("EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ($CATEGORY)")
    # When no values are given (or an empty list)
    with pytest.raises(FilterError, match=r"filter value \$GENRE is required"):
        filter_mask(include, items(filter_values={"GENRE": []}))
    mask = filter_mask(exclude, items())
    # Then the INCLUDE refuses, the EXCLUDE is not applied
    assert mask.all()


def test_bad_placeholder_values_are_errors() -> None:
    # Given a numeric placeholder / When it gets text, or several values for a comparison / Then errors
    expression = parse_filter_expression("INCLUDE ItemID WHERE Items.PRICE < $PRICE")
    with pytest.raises(FilterError, match=r"\$PRICE: 'cheap' is not a number"):
        filter_mask(expression, items(filter_values={"PRICE": ["cheap"]}))
    with pytest.raises(FilterError, match="exactly one value"):
        filter_mask(expression, items(filter_values={"PRICE": ["1", "2"]}))


def test_parts_joined_by_pipe_are_include_union_minus_exclude_union_in_any_order() -> None:
    # Given two includes and an exclude, written in two orders
    a = 'INCLUDE ItemID WHERE Items.GENRE IN ("Drama") | INCLUDE ItemID WHERE Items.PRICE > 30'
    b = 'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("shoe") AND Items.CATEGORY_L2 NOT IN ("boot")'
    # When evaluated
    first = passing(f"{a} | {b}")
    second = passing(f"{b} | {a}")
    # Then (Drama or price > 30) minus (shoes that are not boots, with a known L2)
    assert first == second == [2, 3]
    assert passing(b) == [0, 1, 2, 3, 4]  # item 3 has no L2: NOT IN does not match it, nothing excluded


def test_or_and_and_with_parentheses() -> None:
    # Given (Drama OR Comedy) AND price < 20 / When evaluated
    assert passing(
        'INCLUDE ItemID WHERE (Items.GENRE IN ("Drama") OR Items.GENRE IN ("Comedy")) AND Items.PRICE < 20'
    ) == [0]
    # And without parentheses AND binds first: Drama OR (Comedy AND price < 20)
    assert passing(
        'INCLUDE ItemID WHERE Items.GENRE IN ("Drama") OR Items.GENRE IN ("Comedy") AND Items.PRICE < 20'
    ) == [0, 2]


def history(*events: tuple[int, str]) -> RecentInteractions:
    return RecentInteractions.from_rows(list(events))


def test_documented_click_stream_exclusion_matches_event_types_without_case() -> None:
    # Given a user who clicked item 0, STREAMED item 1 and purchased item 2
    inp = items(interactions=history((0, "click"), (1, "STREAM"), (2, "purchase"), (-1, "click")))
    # When the documented exclusion applies / Then those clicked or streamed are gone
    assert passing('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")', inp) == [2, 3, 4]
    assert passing('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")', inp) == [0, 1, 2]
    assert passing('INCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("click")', inp) == [1, 2]


def test_documented_genre_include_minus_click_stream_exclusion() -> None:
    # Given the documented two-part filter and a user who streamed item 1
    text = (
        "INCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | "
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")'
    )
    inp = items(interactions=history((1, "stream")), filter_values={"GENRE": ["Comedy"]})
    # When evaluated / Then Comedy items the user has not streamed
    assert passing(text, inp) == [0]


def test_interaction_conditions_see_only_the_newest_events_per_event_type() -> None:
    # Given 3 clicks (newest first) and a view, with a limit of 2 per event type
    recent = recent_per_event_type(history((0, "click"), (1, "CLICK"), (2, "view"), (3, "click")), limit=2)
    # When the exclusion of clicked items applies
    mask = filter_mask(
        parse_filter_expression('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")'),
        items(interactions=recent),
    )
    # Then the oldest click (item 3) no longer counts; the view is kept
    assert np.flatnonzero(mask).tolist() == [2, 3, 4]
    assert recent.row.tolist() == [0, 1, 2]


def test_current_item_conditions_compare_with_the_item_being_viewed() -> None:
    # Given the documented related-items filter and a current item (Comedy, price 30)
    text = "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE"
    current = {"GENRE": "Comedy|Drama", "PRICE": 30}
    # When evaluated / Then cheaper items sharing one of its genres
    assert passing(text, items(current_item=current)) == [0, 1]
    assert passing("EXCLUDE ItemID WHERE Items.GENRE IN CurrentItem.GENRE", items(current_item=current)) == [
        3,
        4,
    ]
    # And a current item without the field matches nothing
    assert passing("INCLUDE ItemID WHERE Items.GENRE IN CurrentItem.GENRE", items(current_item={})) == []


def test_current_item_filters_need_a_current_item() -> None:
    # Given a CurrentItem filter / When no current item is given / Then an error says why
    with pytest.raises(FilterError, match="needs a current item"):
        passing("EXCLUDE ItemID WHERE Items.GENRE IN CurrentItem.GENRE")


def test_user_segment_filters_work_over_user_columns() -> None:
    # Given users with ages and tiers (UserID filter)
    inp = EvaluationInput(
        n_rows=4,
        columns={
            "AGE": NumericColumn.from_values([17, 30, None, 45]),
            "TIER": CategoricalColumn.from_values(["gold", "silver", "gold", None]),
        },
        kinds=KINDS,
        filter_values={"AGE": ["18"], "MEMBERSHIP": ["gold"]},
    )
    # When the documented segment filters apply
    members = filter_mask(parse_filter_expression("INCLUDE UserID WHERE Users.TIER IN ($MEMBERSHIP)"), inp)
    adults = filter_mask(parse_filter_expression("EXCLUDE UserID WHERE Users.AGE < $AGE"), inp)
    # Then gold users, and everyone but the 17-year-old
    assert np.flatnonzero(members).tolist() == [0, 2]
    assert np.flatnonzero(adults).tolist() == [1, 2, 3]
