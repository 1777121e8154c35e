"""createEventTracker, putEvents, putItems and putUsers through the real /graphql/ view and the real DB."""

import json
from typing import Any

import pytest

from catalog.models import DatasetGroup, EndUser, Interaction, Item
from catalog.schemas import RESERVED_FIELDS, DatasetType, FieldKind, FieldSpec
from catalog.services import dataset_schema_save
from recommendations.models import EventTracker
from recommendations.tracking import event_tracker_create
from tests.auth import manage_client
from tests.factories import save_schemas

pytestmark = pytest.mark.django_db

NOW = 1_790_000_000.0
PUT_EVENTS = """
mutation Put($trackingId: String!, $sessionId: String!, $userId: String, $events: [EventInput!]!) {
  putEvents(trackingId: $trackingId, sessionId: $sessionId, userId: $userId, events: $events) {
    __typename eventsRecorded duplicatesIgnored sessionEventsAttributed
  }
}
"""


def graphql(query: str, **variables: Any) -> dict[str, Any]:
    """POST one operation; the HTTP status is always 200 for GraphQL-level errors."""
    response = manage_client().post(  # as a manage-scoped API key: every operation
        "/graphql/", json.dumps({"query": query, "variables": variables}), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def error_of(body: dict[str, Any]) -> tuple[str, str]:
    assert body.get("data") in (None, {}) or all(v is None for v in body["data"].values()), body
    (error,) = body["errors"]
    return error["extensions"]["code"], error["message"]


@pytest.fixture
def tracker(default_group: DatasetGroup) -> EventTracker:
    save_schemas(default_group, interactions=[FieldSpec("DEVICE", FieldKind.CATEGORICAL, "string")])
    return event_tracker_create(dataset_group=default_group, name="web")


@pytest.fixture
def catalog_schemas(default_group: DatasetGroup) -> DatasetGroup:
    dataset_schema_save(
        dataset_group=default_group,
        dataset_type=DatasetType.ITEMS,
        fields=[
            RESERVED_FIELDS[DatasetType.ITEMS]["ITEM_ID"],
            FieldSpec("GENRE", FieldKind.CATEGORICAL, "string"),
            FieldSpec("NUMBER_OF_PAGES", FieldKind.NUMERICAL, "int"),
        ],
    )
    dataset_schema_save(
        dataset_group=default_group,
        dataset_type=DatasetType.USERS,
        fields=[
            RESERVED_FIELDS[DatasetType.USERS]["USER_ID"],
            FieldSpec("MEMBERSHIP", FieldKind.CATEGORICAL, "string"),
        ],
    )
    return default_group


def event(n: int = 0, **fields: Any) -> dict[str, Any]:
    return {"eventType": "click", "sentAt": NOW + n, "itemId": f"item-{n}", **fields}


# --- createEventTracker -------------------------------------------------------------------------


CREATE = (
    "mutation($name: String!, $group: String) { createEventTracker(name: $name, datasetGroup: $group) "
    "{ __typename name trackingId datasetGroup } }"
)


def test_create_event_tracker_returns_the_tracking_id(default_group: DatasetGroup) -> None:
    # When a tracker is created for the default group
    body = graphql(CREATE, name="web")
    # Then it answers with the stored tracker's trackingId
    created = body["data"]["createEventTracker"]
    tracker = EventTracker.objects.get(name="web")
    assert created == {
        "__typename": "EventTracker",
        "name": "web",
        "trackingId": tracker.tracking_id,
        "datasetGroup": "default",
    }


def test_create_event_tracker_in_an_unknown_group_is_not_found(default_group: DatasetGroup) -> None:
    code, message = error_of(graphql(CREATE, name="web", group="nope"))
    assert (code, message) == ("NOT_FOUND", "dataset group 'nope' does not exist")
    assert not EventTracker.objects.exists()


def test_a_second_tracker_for_a_group_is_bad_user_input(tracker: EventTracker) -> None:
    code, message = error_of(graphql(CREATE, name="app"))
    assert code == "BAD_USER_INPUT"
    assert "already has the event tracker 'web'" in message


# --- putEvents ----------------------------------------------------------------------------------


def test_put_events_commits_events_before_answering(tracker: EventTracker) -> None:
    # Given an anonymous event of the session
    graphql(PUT_EVENTS, trackingId=tracker.tracking_id, sessionId="s1", events=[event(0)])
    # When the signed-in user sends events with every field, one repeating an eventId
    body = graphql(
        PUT_EVENTS,
        trackingId=tracker.tracking_id,
        sessionId="s1",
        userId="u1",
        events=[
            event(
                1,
                eventValue=4.5,
                eventId="e1",
                impression=["item-1", "item-9"],
                recommendationId="r1",
                properties={"device": "ios"},
            ),
            event(2, eventId="e1"),
        ],
    )
    # Then the answer counts them, and they are in the database, the session's event now the user's
    assert body == {
        "data": {
            "putEvents": {
                "__typename": "PutEventsResult",
                "eventsRecorded": 1,
                "duplicatesIgnored": 1,
                "sessionEventsAttributed": 1,
            }
        }
    }
    stored = Interaction.objects.get(event_id="e1")
    assert (stored.user.user_id, stored.item.item_id, stored.event_value) == ("u1", "item-1", 4.5)
    assert (stored.impression, stored.recommendation_id, stored.properties) == (
        ["item-1", "item-9"],
        "r1",
        {"DEVICE": "ios"},
    )
    assert set(Interaction.objects.values_list("user__user_id", flat=True)) == {"u1"}


def test_an_unknown_tracking_id_is_not_found(tracker: EventTracker) -> None:
    code, message = error_of(graphql(PUT_EVENTS, trackingId="nope", sessionId="s1", events=[event()]))
    assert (code, message) == ("NOT_FOUND", "no event tracker has trackingId 'nope'")
    assert not Interaction.objects.exists()


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([event(n) for n in range(11)], "events: must hold 1 to 10 events, got 11"),
        (
            [event(0), event(1), event(2), {"eventType": "click", "sentAt": 1_700_000_000_000}],
            "events[3].sentAt: 1700000000000 looks like milliseconds; Personalize wants seconds",
        ),
        ([event(0, impression=[f"i{n}" for n in range(26)])], "events[0].impression: must list 1 to 25"),
        ([event(0, itemId="x" * 257)], "events[0].itemId: must be 1 to 256 characters long, got 257"),
        ([event(0, properties={"colour": "red"})], "events[0].properties.colour: maps to COLOUR"),
    ],
)
def test_put_events_refusals_are_bad_user_input_naming_the_field_and_write_nothing(
    tracker: EventTracker, events: list[dict[str, Any]], message: str
) -> None:
    body = graphql(PUT_EVENTS, trackingId=tracker.tracking_id, sessionId="s1", userId="u1", events=events)
    code, text = error_of(body)
    assert code == "BAD_USER_INPUT"
    assert text.startswith(message), text
    assert (Interaction.objects.count(), Item.objects.count(), EndUser.objects.count()) == (0, 0, 0)


def test_a_non_finite_sent_at_is_refused_before_any_resolver_runs(tracker: EventTracker) -> None:
    # Given a client that serialises NaN (Python's json does; the view's decoder accepts it)
    body = graphql(
        PUT_EVENTS, trackingId=tracker.tracking_id, sessionId="s1", events=[event(0, sentAt=float("nan"))]
    )
    # Then GraphQL's Float coercion refuses it as the request's fault
    code, message = error_of(body)
    assert code == "BAD_USER_INPUT"
    assert "sentAt" in message
    assert not Interaction.objects.exists()


# --- putItems / putUsers ------------------------------------------------------------------------


PUT_ITEMS = """
mutation($items: [ItemInput!]!) { putItems(items: $items) { __typename itemsWritten itemsCreated itemIds } }
"""
PUT_USERS = """
mutation($users: [UserInput!]!) { putUsers(users: $users) { __typename usersWritten usersCreated userIds } }
"""


def test_put_items_and_users_store_schema_checked_records(catalog_schemas: DatasetGroup) -> None:
    # When items and users are put with camelCase properties
    items = graphql(
        PUT_ITEMS,
        items=[
            {"itemId": "b1", "properties": {"genre": "Crime|Drama", "numberOfPages": 320}},
            {"itemId": "b2", "properties": '{"genre": "Poetry"}'},
        ],
    )
    users = graphql(PUT_USERS, users=[{"userId": "u1", "properties": {"membership": "gold"}}])
    # Then they are stored under the schema's field names
    assert items["data"]["putItems"] == {
        "__typename": "PutItemsResult",
        "itemsWritten": 2,
        "itemsCreated": 2,
        "itemIds": ["b1", "b2"],
    }
    assert users["data"]["putUsers"]["usersCreated"] == 1
    assert Item.objects.get(item_id="b1").metadata == {"GENRE": "Crime|Drama", "NUMBER_OF_PAGES": 320}
    assert EndUser.objects.get(user_id="u1").metadata == {"MEMBERSHIP": "gold"}
    assert Item.objects.get(item_id="b2").metadata == {"GENRE": "Poetry"}


def test_put_items_with_a_value_outside_the_schema_is_bad_user_input_and_writes_nothing(
    catalog_schemas: DatasetGroup,
) -> None:
    body = graphql(
        PUT_ITEMS,
        items=[
            {"itemId": "ok", "properties": {"genre": "Crime"}},
            {"itemId": "bad", "properties": {"numberOfPages": 1.5}},
        ],
    )
    code, message = error_of(body)
    assert code == "BAD_USER_INPUT"
    assert message.startswith("items[1].properties.numberOfPages: NUMBER_OF_PAGES")
    assert not Item.objects.exists()
