"""Fuzzing putEvents through the real /graphql/ view: no 500, and a refused call writes nothing.

Hypothesis draws the mutation's variables from values that break validators: ids of every length
(0, 256, 257, huge), wrong JSON types, NaN and infinities (Python's json writes them and the view's
decoder reads them), milliseconds, negative and far-future sentAt, 0 to 12 events, repeated
eventIds, impressions and properties of every shape. Each call goes anonymously (putEvents is
public) through the same view a browser reaches, and:

- the answer is JSON and never a 500; an error has a contract code (BAD_USER_INPUT, NOT_FOUND...);
- a refused call leaves interactions, items and users exactly as they were (no bare records either);
- an accepted call stored `eventsRecorded` new interactions, and recorded + ignored = events sent.

Examples: `RECSITE_FUZZ_EXAMPLES` (tests/fuzzing.py), default 150.
"""

import json
import math
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from hypothesis import event, given
from hypothesis import strategies as st

from catalog.models import DatasetGroup, EndUser, Interaction, Item
from catalog.schemas import FieldKind, FieldSpec
from recommendations.models import EventTracker
from recommendations.tracking import event_tracker_create
from tests.factories import save_schemas
from tests.fuzzing import fuzz_settings

pytestmark = pytest.mark.django_db

PUT_EVENTS = """
mutation Put($trackingId: String!, $sessionId: String!, $userId: String, $events: [EventInput!]!) {
  putEvents(trackingId: $trackingId, sessionId: $sessionId, userId: $userId, events: $events) {
    __typename eventsRecorded duplicatesIgnored
  }
}
"""
CODES = {"BAD_USER_INPUT", "NOT_FOUND", "UNAUTHENTICATED", "FORBIDDEN", "UNAVAILABLE", "RATE_LIMITED"}


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` about nine times in ten, else `bad`: enough calls get past the first check."""
    return st.integers(0, 9).flatmap(lambda n: bad if n == 9 else good)


def ids() -> st.SearchStrategy[Any]:
    """Mostly plausible ids; now and then empty, at or past the 256 limit, or not a string."""
    return mostly(
        st.sampled_from(["u1", "item-1", "item-2", "e1", "e2", "click"]) | st.text(min_size=1, max_size=10),
        st.sampled_from(["", "x" * 256, "x" * 257, "y" * 5000, " ", "é" * 256, "\ufeff"])
        | st.sampled_from([None, 7, 2.5, True, [], {}, ["a"]]),
    )


PROPERTY_KEYS = ["device", "userId", "colour", "", "DEVICE", "dev_ice"]
NOW = float(int(time.time()))
"""Fixed once per run: strategies must draw the same way on every replay."""


def seconds() -> st.SearchStrategy[Any]:
    now = NOW
    return mostly(
        st.floats(min_value=1_500_000_000, max_value=now),
        st.sampled_from(
            [
                now,
                now + 60,  # a little ahead: accepted
                now + 3600,  # an hour ahead: refused
                1_700_000_000_000,  # milliseconds
                1e11 + 1,
                -1.0,
                0,
                math.nan,
                math.inf,
                -math.inf,
                1e308,
                2**63,
            ]
        ),
    ) | st.sampled_from(["1700000000", None, True, [], {}])


def properties() -> st.SearchStrategy[Any]:
    json_values = st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=6,
    )
    return mostly(
        st.none() | st.fixed_dictionaries({"device": st.sampled_from(["ios", "web"])}),
        st.fixed_dictionaries({"device": st.sampled_from(["ios", "web", "x" * 1100, 3, None])})
        | st.dictionaries(st.sampled_from(PROPERTY_KEYS), json_values)
        | st.sampled_from(['{"device": "ios"}', "{", "[1]", "null", '{"device": NaN}'])
        | json_values,
    )


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {"eventType": draw(ids()), "sentAt": draw(seconds())}
    optional = {
        "itemId": ids(),
        "eventValue": mostly(st.floats(-1e6, 1e6), st.floats() | st.integers(-(2**70), 2**70) | st.just("1")),
        "eventId": st.sampled_from(["e1", "e2", "e3"]) | ids(),
        "impression": mostly(st.lists(ids(), min_size=1, max_size=3), st.lists(ids(), max_size=27) | ids()),
        "recommendationId": st.one_of(ids(), st.sampled_from(["r" * 40, "r" * 41])),
        "properties": properties(),
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
        event[name] = draw(optional[name])
    return event


@st.composite
def calls(draw: st.DrawFn, tracking_id: str) -> dict[str, Any]:
    variables: dict[str, Any] = {
        "trackingId": draw(mostly(st.just(tracking_id), ids())),
        "sessionId": draw(ids()),
        "events": draw(
            mostly(st.lists(events(), min_size=1, max_size=4), st.lists(events(), max_size=12) | events())
        ),
    }
    if draw(st.booleans()):
        variables["userId"] = draw(ids())
    return variables


def counts() -> tuple[int, int, int]:
    return Interaction.objects.count(), Item.objects.count(), EndUser.objects.count()


@pytest.fixture
def tracker(default_group: DatasetGroup) -> EventTracker:
    save_schemas(default_group, interactions=[FieldSpec("DEVICE", FieldKind.CATEGORICAL, "string")])
    return event_tracker_create(dataset_group=default_group, name="fuzz")


@given(data=st.data())
@fuzz_settings(150)
def test_put_events_payloads_never_get_a_500_and_refusals_write_nothing(
    tracker: EventTracker, data: st.DataObject
) -> None:
    # given a putEvents call with drawn variables
    variables = data.draw(calls(tracker.tracking_id))
    body = json.dumps({"query": PUT_EVENTS, "variables": variables})  # NaN and Infinity as JS literals
    cache.clear()  # the rate limit counts per test, not per example
    before = counts()
    # when it is POSTed anonymously to /graphql/
    response = Client().post("/graphql/", body, content_type="application/json")
    # then JSON, never a 500
    assert response.status_code != 500, (variables, response.content[:500])
    answer = response.json()
    assert isinstance(answer, dict), answer
    errors = answer.get("errors") or []
    for error in errors:
        assert error.get("extensions", {}).get("code") in CODES, (variables, error)
        assert isinstance(error.get("message"), str) and error["message"], error
    # (--hypothesis-show-statistics shows how many calls got through)
    event(f"refused {errors[0]['extensions']['code']}" if errors else "accepted")
    if errors:
        # and a refused call wrote nothing at all
        assert counts() == before, (variables, errors)
        return
    # and an accepted one stored exactly what it says
    result = answer["data"]["putEvents"]
    sent = variables["events"] if isinstance(variables["events"], list) else [variables["events"]]
    assert result["eventsRecorded"] + result["duplicatesIgnored"] == len(sent), (variables, result)
    assert Interaction.objects.count() == before[0] + result["eventsRecorded"], (variables, result)
