"""Named bad inputs to putEvents through /graphql/ (issue 6): future and millisecond sentAt, NaN and
infinite values, oversized ids, unknown event types and duplicates; a refused call writes nothing.
The handling is documented in docs/graphql-api.md ("Bad input")."""

import json
import time
from typing import Any

import pytest
from django.test import Client

from catalog.models import DatasetGroup, EndUser, Interaction, Item
from recommendations.models import EventTracker
from recommendations.tracking import MAX_FUTURE_SECONDS, event_tracker_create

pytestmark = pytest.mark.django_db

PUT_EVENTS = """
mutation Put($trackingId: String!, $sessionId: String!, $userId: String, $events: [EventInput!]!) {
  putEvents(trackingId: $trackingId, sessionId: $sessionId, userId: $userId, events: $events) {
    eventsRecorded duplicatesIgnored
  }
}
"""


@pytest.fixture
def tracker(default_group: DatasetGroup) -> EventTracker:
    return event_tracker_create(dataset_group=default_group, name="web")


def put(tracker: EventTracker, events: list[dict[str, Any]], **variables: Any) -> dict[str, Any]:
    """POST putEvents anonymously (a public operation), as a browser does; NaN goes as a JS literal."""
    body = json.dumps(
        {
            "query": PUT_EVENTS,
            "variables": {
                "trackingId": tracker.tracking_id,
                "sessionId": "s1",
                "events": events,
                **variables,
            },
        }
    )
    response = Client().post("/graphql/", body, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def counts() -> tuple[int, int, int]:
    return Interaction.objects.count(), Item.objects.count(), EndUser.objects.count()


def refusal(tracker: EventTracker, events: list[dict[str, Any]], **variables: Any) -> str:
    """The call must be refused as BAD_USER_INPUT and write nothing; its message."""
    before = counts()
    answer = put(tracker, events, **variables)
    (error,) = answer["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert counts() == before
    return error["message"]


def click(at: float, **fields: Any) -> dict[str, Any]:
    return {"eventType": "click", "sentAt": at, "itemId": "item-1", **fields}


def test_a_sent_at_minutes_ahead_is_accepted_and_an_hour_ahead_is_refused(tracker: EventTracker) -> None:
    now = time.time()
    # given a client clock a few minutes fast: accepted
    assert put(tracker, [click(now + 120)])["data"]["putEvents"]["eventsRecorded"] == 1
    # when an event is more than MAX_FUTURE_SECONDS ahead (after a valid one)
    message = refusal(tracker, [click(now), click(now + MAX_FUTURE_SECONDS + 3600)])
    # then the call is refused naming the event, and how far ahead it is
    assert message.startswith("events[1].sentAt: "), message
    assert "minutes ahead of the server's clock" in message
    assert f"at most {MAX_FUTURE_SECONDS // 60} minutes in the future" in message


def test_a_sent_at_in_milliseconds_says_so(tracker: EventTracker) -> None:
    message = refusal(tracker, [click(time.time() * 1000)])
    assert "looks like milliseconds; Personalize wants seconds" in message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_event_values_are_refused(tracker: EventTracker, value: float) -> None:
    message = refusal(tracker, [click(time.time()), click(time.time(), eventValue=value)])
    # refused by GraphQL's Float before the resolver (the service refuses them too: test_tracking.py)
    assert "[1].eventValue: Float cannot represent non numeric value" in message, message


@pytest.mark.parametrize(
    ("events", "variables", "path"),
    [
        (
            [click(1_790_000_000, itemId="i" * 257)],
            {},
            "events[0].itemId: must be 1 to 256 characters long, got 257",
        ),
        ([click(1_790_000_000)], {"userId": "u" * 257}, "userId: must be 1 to 256 characters long, got 257"),
        ([click(1_790_000_000)], {"sessionId": "s" * 10_000}, "sessionId: must be 1 to 256 characters long"),
        ([click(1_790_000_000, eventId="e" * 257)], {}, "events[0].eventId: must be 1 to 256"),
        ([{"eventType": "t" * 257, "sentAt": 1_790_000_000}], {}, "events[0].eventType: must be 1 to 256"),
    ],
)
def test_oversized_ids_are_refused_naming_the_field(
    tracker: EventTracker, events: list[dict[str, Any]], variables: dict[str, Any], path: str
) -> None:
    assert refusal(tracker, events, **variables).startswith(path)


def test_unknown_event_types_are_stored_as_personalize_stores_them(tracker: EventTracker) -> None:
    # given event types no schema or solution names
    answer = put(
        tracker, [click(1_790_000_000, eventType="wishlist-add"), click(1_790_000_001, eventType="Zoom")]
    )
    # then both are stored as sent (EVENT_TYPE is a free string; solutions pick the types they train on)
    assert answer["data"]["putEvents"]["eventsRecorded"] == 2
    assert sorted(Interaction.objects.values_list("event_type", flat=True)) == ["Zoom", "wishlist-add"]


def test_a_repeated_event_id_is_stored_once_and_counted(tracker: EventTracker) -> None:
    # given a browser that retries a batch after a timeout (same eventIds)
    batch = [click(1_790_000_000, eventId="e-1"), click(1_790_000_001, eventId="e-2")]
    first = put(tracker, batch)["data"]["putEvents"]
    again = put(tracker, [*batch, click(1_790_000_002, eventId="e-3")])["data"]["putEvents"]
    # then the retry stores only the new event and says how many it ignored
    assert first == {"eventsRecorded": 2, "duplicatesIgnored": 0}
    assert again == {"eventsRecorded": 1, "duplicatesIgnored": 2}
    assert Interaction.objects.count() == 3
