"""personalize-events over Recsite's tracking services: PutEvents, PutItems and PutUsers.

PutEvents takes the `trackingId` that `createEventTracker` issued; PutItems / PutUsers name the
dataset group by `datasetArn` (`arn:aws:personalize:<region>:<account>:dataset/<group>/ITEMS`).
`properties` arrive as JSON text, as boto3 sends them; `sentAt` as epoch seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalog.models import DatasetGroup
from catalog.selectors import dataset_group_get
from recommendations import tracking
from recommendations.compat.protocol import Fields, dataset_arn_group

__all__ = ["put_events", "put_items", "put_users"]

NO_CONTENT: Mapping[str, Any] = {}


def _event(event: Fields) -> tracking.TrackedEvent:
    event.object("metricAttribution")  # accepted (a type check), not used by the local engine
    return tracking.TrackedEvent(
        event_type=event.string("eventType", required=True) or "",
        sent_at=event.number("sentAt", required=True) or 0.0,
        item_id=event.string("itemId"),
        event_value=event.number("eventValue"),
        event_id=event.string("eventId"),
        impression=event.strings("impression"),
        recommendation_id=event.string("recommendationId", max_length=tracking.MAX_RECOMMENDATION_ID_LENGTH),
        properties=event.json_text("properties", max_length=tracking.MAX_EVENT_PROPERTIES_LENGTH),
    )


def put_events(body: Fields) -> Mapping[str, Any]:
    """PutEvents: 1-10 events of a session, committed before the answer."""
    tracking_id = body.string("trackingId", required=True) or ""
    events = body.objects("eventList", required=True, max_items=tracking.MAX_EVENTS_PER_CALL)
    tracking.put_events(
        tracking_id=tracking_id,
        session_id=body.string("sessionId", required=True) or "",
        user_id=body.string("userId"),
        events=[_event(event) for event in events],
    )
    return NO_CONTENT


def _records(body: Fields, member: str, id_name: str, limit: int) -> list[tracking.TrackedRecord]:
    return [
        tracking.TrackedRecord(
            record_id=record.string(id_name, required=True) or "",
            properties=record.json_text("properties", max_length=limit),
        )
        for record in body.objects(member, required=True, max_items=tracking.MAX_RECORDS_PER_CALL)
    ]


def _group(body: Fields, dataset_type: str) -> DatasetGroup:
    """The dataset group a datasetArn names (an unknown one is ResourceNotFoundException)."""
    return dataset_group_get(
        name=dataset_arn_group(body.string("datasetArn", required=True) or "", dataset_type)
    )


def put_items(body: Fields) -> Mapping[str, Any]:
    """PutItems: create or update 1-10 items of the dataset group the datasetArn names."""
    group = _group(body, "ITEMS")
    items = _records(body, "items", "itemId", tracking.MAX_ITEM_PROPERTIES_LENGTH)
    tracking.put_items(dataset_group=group, items=items)
    return NO_CONTENT


def put_users(body: Fields) -> Mapping[str, Any]:
    """PutUsers: create or update 1-10 users of the dataset group the datasetArn names."""
    group = _group(body, "USERS")
    users = _records(body, "users", "userId", tracking.MAX_USER_PROPERTIES_LENGTH)
    tracking.put_users(dataset_group=group, users=users)
    return NO_CONTENT
