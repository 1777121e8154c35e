"""GraphQL mutations of real-time ingestion: createEventTracker, putEvents, putItems, putUsers.

Shapes follow Amazon Personalize's PutEvents / PutItems / PutUsers (DESIGN.md §3); resolvers only
turn inputs into `recommendations.tracking` calls, which validate everything and raise
`TrackingInputError` (BAD_USER_INPUT) or `EventTrackerNotFoundError` (NOT_FOUND) naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from catalog.models import DEFAULT_DATASET_GROUP
from catalog.selectors import dataset_group_get
from recommendations import tracking
from recommendations.models import EventTracker

__all__ = [
    "EventInput",
    "EventTrackerType",
    "ItemInput",
    "PutEventsResult",
    "PutItemsResult",
    "PutUsersResult",
    "TrackingMutation",
    "UserInput",
]


@strawberry.type(name="EventTracker", description="Receives a dataset group's real-time events.")
class EventTrackerType:
    """An event tracker: its name, the trackingId putEvents takes and its dataset group."""

    name: str
    tracking_id: str
    dataset_group: str
    status: str

    @classmethod
    def from_model(cls, tracker: EventTracker) -> EventTrackerType:
        """The GraphQL view of a tracker."""
        return cls(
            name=tracker.name,
            tracking_id=tracker.tracking_id,
            dataset_group=tracker.dataset_group.name,
            status=tracker.status,
        )


@strawberry.input(description="One event, as in Personalize's PutEvents (sentAt in epoch seconds).")
class EventInput:
    """One event of a putEvents call."""

    event_type: str = strawberry.field(description="The event type, e.g. click (1-256 characters).")
    sent_at: float = strawberry.field(description="When it happened, in Unix epoch seconds (not ms).")
    item_id: str | None = None
    event_value: float | None = None
    event_id: str | None = strawberry.field(
        default=None, description="Events repeating a stored eventId are ignored."
    )
    impression: list[str] | None = strawberry.field(
        default=None, description="The 1-25 item ids the user was shown."
    )
    recommendation_id: str | None = strawberry.field(
        default=None, description="The recommendationId of the list the item came from (≤ 40 chars)."
    )
    properties: JSON | None = strawberry.field(
        default=None,
        description="Interactions metadata; camelCase keys name schema fields (numberOfRatings → "
        "NUMBER_OF_RATINGS); at most 1024 characters of JSON.",
    )


def _event_from_input(cls: type[EventInput], value: Mapping[str, Any], context: object) -> EventInput:
    """Build an EventInput straight from the coerced GraphQL value (keys are GraphQL names).

    Every field is a scalar graphql-core has already coerced (JSON passes through unchanged), so
    Strawberry's generic per-field conversion, about a quarter of a 10-event putEvents request's
    CPU, is not needed; `recommendations.tracking` validates the values.
    """
    return cls(
        event_type=value["eventType"],
        sent_at=value["sentAt"],
        item_id=value.get("itemId"),
        event_value=value.get("eventValue"),
        event_id=value.get("eventId"),
        impression=value.get("impression"),
        recommendation_id=value.get("recommendationId"),
        properties=value.get("properties"),
    )


EventInput.__strawberry_definition__.from_input = _event_from_input  # type: ignore[attr-defined]


@strawberry.input(description="One item, as in Personalize's PutItems.")
class ItemInput:
    """One item of a putItems call."""

    item_id: str
    properties: JSON | None = strawberry.field(
        default=None,
        description="Items metadata; camelCase keys name schema fields (creationTimestamp sets "
        "CREATION_TIMESTAMP); at most 32000 characters of JSON.",
    )


@strawberry.input(description="One user, as in Personalize's PutUsers.")
class UserInput:
    """One user of a putUsers call."""

    user_id: str
    properties: JSON | None = strawberry.field(
        default=None,
        description="Users metadata; camelCase keys name schema fields; at most 24000 characters of JSON.",
    )


@strawberry.type(description="What a putEvents call stored; it is committed when this returns.")
class PutEventsResult:
    """Counts of a putEvents call."""

    events_recorded: int
    duplicates_ignored: int = strawberry.field(description="Events whose eventId was already stored.")
    session_events_attributed: int = strawberry.field(
        description="Earlier anonymous events of the session now attributed to userId."
    )


@strawberry.type(description="What a putItems call stored.")
class PutItemsResult:
    """Counts and ids of a putItems call."""

    items_written: int
    items_created: int
    item_ids: list[str]


@strawberry.type(description="What a putUsers call stored.")
class PutUsersResult:
    """Counts and ids of a putUsers call."""

    users_written: int
    users_created: int
    user_ids: list[str]


GroupArgument = Annotated[
    str | None, strawberry.argument(description="The dataset group; `default` when omitted.")
]


@strawberry.type
class TrackingMutation:
    """Event tracker and ingestion mutations (merged into the root Mutation)."""

    @strawberry.mutation(description="Create the dataset group's event tracker (one per group).")
    def create_event_tracker(
        self,
        name: str,
        dataset_group: GroupArgument = None,
    ) -> EventTrackerType:
        """CreateEventTracker."""
        group = dataset_group_get(name=dataset_group or DEFAULT_DATASET_GROUP)
        return EventTrackerType.from_model(tracking.event_tracker_create(dataset_group=group, name=name))

    @strawberry.mutation(description="Record 1-10 events of a session (Personalize's PutEvents).")
    def put_events(
        self, tracking_id: str, session_id: str, events: list[EventInput], user_id: str | None = None
    ) -> PutEventsResult:
        """PutEvents: validated whole, committed before returning, counted on the next request."""
        result = tracking.put_events(
            tracking_id=tracking_id,
            session_id=session_id,
            user_id=user_id,
            events=[
                tracking.TrackedEvent(
                    event_type=event.event_type,
                    sent_at=event.sent_at,
                    item_id=event.item_id,
                    event_value=event.event_value,
                    event_id=event.event_id,
                    impression=event.impression,
                    recommendation_id=event.recommendation_id,
                    properties=event.properties,
                )
                for event in events
            ],
        )
        return PutEventsResult(
            events_recorded=result.events_recorded,
            duplicates_ignored=result.duplicates_ignored,
            session_events_attributed=result.session_events_attributed,
        )

    @strawberry.mutation(description="Create or replace 1-10 items (Personalize's PutItems).")
    def put_items(
        self,
        items: list[ItemInput],
        dataset_group: GroupArgument = None,
    ) -> PutItemsResult:
        """PutItems: checked against the items schema, all or nothing."""
        group = dataset_group_get(name=dataset_group or DEFAULT_DATASET_GROUP)
        records = [tracking.TrackedRecord(item.item_id, item.properties) for item in items]
        result = tracking.put_items(dataset_group=group, items=records)
        return PutItemsResult(
            items_written=result.records_written,
            items_created=result.records_created,
            item_ids=result.record_ids,
        )

    @strawberry.mutation(description="Create or replace 1-10 users (Personalize's PutUsers).")
    def put_users(
        self,
        users: list[UserInput],
        dataset_group: GroupArgument = None,
    ) -> PutUsersResult:
        """PutUsers: checked against the users schema, all or nothing."""
        group = dataset_group_get(name=dataset_group or DEFAULT_DATASET_GROUP)
        records = [tracking.TrackedRecord(user.user_id, user.properties) for user in users]
        result = tracking.put_users(dataset_group=group, users=records)
        return PutUsersResult(
            users_written=result.records_written,
            users_created=result.records_created,
            user_ids=result.record_ids,
        )
