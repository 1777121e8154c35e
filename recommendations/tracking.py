"""Real-time ingestion: event trackers, PutEvents, PutItems and PutUsers as Amazon Personalize has them.

Every call is validated whole before anything is written (a rejected call writes nothing) and
written in one transaction, committed before the service returns, so the very next
recommendation request, in any process, reads the new events from the database.

- `put_events`: 1-10 events of one session (and optionally one user); duplicates by `eventId`
  (already stored, or repeated within the call) are ignored and counted. Unknown item and user
  ids get bare catalog records (`RecordSource.IMPLICIT`), as imports do. When a call carries both
  `sessionId` and `userId`, the session's earlier anonymous events are attributed to the user at
  once (one UPDATE), so they count in the user's next recommendations.
- `put_items` / `put_users`: 1-10 records whose `properties` (camelCase keys, as Personalize maps
  `numberOfRatings` to `NUMBER_OF_RATINGS`) are checked against the dataset schema.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, connection, transaction

from catalog.errors import MetadataError
from catalog.models import DatasetGroup, EndUser, ForwardState, Interaction, Item, RecordSource
from catalog.schemas import MAX_ID_LENGTH, MILLISECONDS_THRESHOLD, DatasetType, FieldSpec
from catalog.selectors import dataset_schema_fields
from catalog.services import end_user_upsert, item_upsert, metadata_clean
from recommendations.errors import (
    EventTrackerExistsError,
    EventTrackerNotFoundError,
    TrackingInputError,
)
from recommendations.models import CampaignBackend, EventTracker
from recommendations.outbox import outbox_flush_on_commit

__all__ = [
    "MAX_EVENTS_PER_CALL",
    "MAX_EVENT_PROPERTIES_LENGTH",
    "MAX_FUTURE_SECONDS",
    "MAX_IMPRESSION_IDS",
    "MAX_ITEM_PROPERTIES_LENGTH",
    "MAX_RECOMMENDATION_ID_LENGTH",
    "MAX_RECORDS_PER_CALL",
    "MAX_USER_PROPERTIES_LENGTH",
    "MILLISECONDS_THRESHOLD",
    "PutEventsResult",
    "PutRecordsResult",
    "TrackedEvent",
    "TrackedRecord",
    "event_tracker_create",
    "event_tracker_get",
    "property_field_name",
    "put_events",
    "put_items",
    "put_users",
]

MAX_EVENTS_PER_CALL = 10
MAX_RECORDS_PER_CALL = 10
MAX_IMPRESSION_IDS = 25
MAX_RECOMMENDATION_ID_LENGTH = 40
MAX_EVENT_PROPERTIES_LENGTH = 1024
MAX_ITEM_PROPERTIES_LENGTH = 32_000
MAX_USER_PROPERTIES_LENGTH = 24_000
MAX_FUTURE_SECONDS = 600
"""putEvents refuses a sentAt further ahead of the server's clock than this (clients' clocks drift a
little; an event from the far future would stay a user's newest one, and weigh most, until then).
Imports and putItems' creationTimestamp accept future times: see docs/graphql-api.md, "Bad input"."""

FORBIDDEN_EVENT_PROPERTIES = (
    "userId",
    "sessionId",
    "eventType",
    "timestamp",
    "recommendationId",
    "impression",
)
_FORBIDDEN_KEYS = {name.lower(): name for name in FORBIDDEN_EVENT_PROPERTIES}
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass(frozen=True)
class TrackedEvent:
    """One event of a PutEvents call, with Personalize's fields (`sent_at` in epoch seconds)."""

    event_type: str
    sent_at: float
    item_id: str | None = None
    event_value: float | None = None
    event_id: str | None = None
    impression: Sequence[str] | None = None
    recommendation_id: str | None = None
    properties: Mapping[str, Any] | str | None = None


@dataclass(frozen=True)
class TrackedRecord:
    """One item or user of a PutItems / PutUsers call: its id and its properties (JSON object or text)."""

    record_id: str
    properties: Mapping[str, Any] | str | None = None


@dataclass(frozen=True)
class PutEventsResult:
    """What a PutEvents call stored: new events, ignored duplicates, anonymous events attributed."""

    events_recorded: int
    duplicates_ignored: int
    session_events_attributed: int = 0
    items_created: int = 0
    user_created: bool = False


@dataclass(frozen=True)
class PutRecordsResult:
    """What a PutItems / PutUsers call stored: records written, of which new."""

    records_written: int
    records_created: int
    record_ids: list[str] = field(default_factory=list)


# --- trackers --------------------------------------------------------------------------------


def event_tracker_create(*, dataset_group: DatasetGroup, name: str) -> EventTracker:
    """Create the group's event tracker (CreateEventTracker); a group has at most one.

    The tracker lives on the `RECSITE_BACKEND` backend (provisioning creates it on Personalize).
    """
    existing = EventTracker.objects.filter(dataset_group=dataset_group).first()
    if existing is not None:
        raise EventTrackerExistsError(
            f"dataset group {dataset_group.name!r} already has the event tracker {existing.name!r}; "
            "a dataset group has one event tracker"
        )
    if EventTracker.objects.filter(name=name).exists():
        raise EventTrackerExistsError(f"an event tracker named {name!r} already exists")
    from recommendations.backends.base import default_backend_name

    tracker = EventTracker(dataset_group=dataset_group, name=name, backend=default_backend_name())
    try:
        tracker.full_clean()
    except Exception as error:  # ValidationError: show the field messages
        messages = getattr(error, "message_dict", {"name": [str(error)]})
        text = "; ".join(f"{key}: {' '.join(values)}" for key, values in messages.items())
        raise EventTrackerExistsError(f"event tracker {name!r} refused: {text}") from None
    try:
        with transaction.atomic():
            tracker.save()
    except IntegrityError:  # a concurrent create won the race
        raise EventTrackerExistsError(
            f"dataset group {dataset_group.name!r} already has an event tracker, or {name!r} is taken"
        ) from None
    return tracker


def event_tracker_get(*, tracking_id: str) -> EventTracker:
    """The tracker with this tracking id (raises EventTrackerNotFoundError)."""
    if not tracking_id or len(tracking_id) > MAX_ID_LENGTH:
        raise EventTrackerNotFoundError(tracking_id or "")
    try:
        return EventTracker.objects.select_related("dataset_group").get(tracking_id=tracking_id)
    except EventTracker.DoesNotExist:
        raise EventTrackerNotFoundError(tracking_id) from None


# --- validation helpers ----------------------------------------------------------------------


def _id(path: str, value: Any, *, required: bool, limit: int = MAX_ID_LENGTH) -> str | None:
    if value is None:
        if required:
            raise TrackingInputError(path, "is required")
        return None
    if not isinstance(value, str):
        raise TrackingInputError(path, f"must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= limit:
        raise TrackingInputError(path, f"must be 1 to {limit} characters long, got {len(value)}")
    return value


def _number(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TrackingInputError(path, f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise TrackingInputError(path, f"must be a finite number, got {value!r}")
    return number


def _sent_at(path: str, value: Any, *, now: float | None = None) -> datetime:
    """Epoch seconds as a UTC datetime; with `now`, at most MAX_FUTURE_SECONDS ahead of it."""
    seconds = _number(path, value)
    shown = str(int(seconds)) if seconds.is_integer() else repr(seconds)
    if seconds > MILLISECONDS_THRESHOLD:
        raise TrackingInputError(path, f"{shown} looks like milliseconds; Personalize wants seconds")
    if seconds < 0:
        raise TrackingInputError(path, f"{shown} is before 1970; give Unix epoch seconds")
    if now is not None and seconds > now + MAX_FUTURE_SECONDS:
        raise TrackingInputError(
            path,
            f"{shown} is {(seconds - now) / 60:,.0f} minutes ahead of the server's clock ({int(now)}); "
            f"an event may be at most {MAX_FUTURE_SECONDS // 60} minutes in the future",
        )
    return datetime.fromtimestamp(seconds, UTC)


def property_field_name(key: str) -> str:
    """The SCREAMING_SNAKE schema field a camelCase key names: numberOfRatings → NUMBER_OF_RATINGS."""
    return _CAMEL_BOUNDARY.sub("_", key).upper()


def _alphanumeric(name: str) -> str:
    return "".join(ch for ch in name.upper() if ch.isalnum())


def _properties_object(path: str, value: Any, limit: int) -> dict[str, Any]:
    """The properties as a dict, its compact JSON no longer than `limit` characters."""
    if value is None:
        return {}
    if isinstance(value, str):
        text = value
        if len(text) > limit:
            raise TrackingInputError(path, f"is {len(text)} characters of JSON; the limit is {limit}")
        try:
            value = json.loads(text)
        except ValueError:
            raise TrackingInputError(path, "is not valid JSON") from None
        if not isinstance(value, dict):
            raise TrackingInputError(path, "must be a JSON object")
        return value
    if not isinstance(value, Mapping):
        raise TrackingInputError(path, f"must be a JSON object, got {type(value).__name__}")
    try:
        length = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError):
        raise TrackingInputError(path, "must hold only JSON values (finite numbers)") from None
    if length > limit:
        raise TrackingInputError(path, f"is {length} characters of JSON; the limit is {limit}")
    return dict(value)


def _schema_values(
    path: str,
    properties: Mapping[str, Any],
    specs: Sequence[FieldSpec],
    dataset: str,
    *,
    reserved: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Map camelCase keys to schema fields; return (metadata by field name, reserved values by field)."""
    by_name = {spec.name: spec for spec in specs if spec.is_metadata}
    by_letters = {_alphanumeric(name): name for name in by_name}
    reserved = reserved or {}
    metadata: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in properties.items():
        where = f"{path}.{key}"
        if not isinstance(key, str) or not key:
            raise TrackingInputError(where, "property names must be non-empty strings")
        name = property_field_name(key)
        if name in reserved:
            extra[reserved[name]] = value
            continue
        field_name = name if name in by_name else by_letters.get(_alphanumeric(key))
        if field_name is None:
            known = ", ".join(by_name) or "none"
            raise TrackingInputError(
                where, f"maps to {name}, which is not a field of the {dataset} schema (fields: {known})"
            )
        if isinstance(value, (dict, list)) and not (
            isinstance(value, list) and all(isinstance(part, str) for part in value)
        ):
            raise TrackingInputError(where, "must be a string, number or boolean (or a list of strings)")
        if field_name in metadata:
            raise TrackingInputError(where, f"names {field_name} a second time")
        metadata[field_name] = value
    try:
        cleaned = metadata_clean(specs=specs, values=metadata)
    except MetadataError as error:
        original = next((k for k in properties if property_field_name(k) == error.field), error.field)
        message = str(error).removeprefix(f"field {error.field}: ")
        raise TrackingInputError(f"{path}.{original}", f"{error.field} {message}") from None
    return cleaned, extra


def _specs(dataset_group: DatasetGroup, dataset_type: DatasetType) -> list[FieldSpec]:
    return dataset_schema_fields(dataset_group=dataset_group, dataset_type=dataset_type) or []


# --- PutEvents -------------------------------------------------------------------------------


@dataclass
class _Checked:
    index: int
    event_type: str
    timestamp: datetime
    item_id: str | None
    event_value: float | None
    event_id: str | None
    impression: list[str]
    recommendation_id: str
    properties: dict[str, Any]


def _check_event(index: int, event: TrackedEvent, specs: list[FieldSpec] | None, now: float) -> _Checked:
    at = f"events[{index}]"
    event_type = _id(f"{at}.eventType", event.event_type, required=True)
    timestamp = _sent_at(f"{at}.sentAt", event.sent_at, now=now)
    item_id = _id(f"{at}.itemId", event.item_id, required=False)
    value = None if event.event_value is None else _number(f"{at}.eventValue", event.event_value)
    event_id = _id(f"{at}.eventId", event.event_id, required=False)
    recommendation_id = _id(
        f"{at}.recommendationId", event.recommendation_id, required=False, limit=MAX_RECOMMENDATION_ID_LENGTH
    )
    impression: list[str] = []
    if event.impression is not None:
        ids = list(event.impression)
        if not 1 <= len(ids) <= MAX_IMPRESSION_IDS:
            raise TrackingInputError(
                f"{at}.impression", f"must list 1 to {MAX_IMPRESSION_IDS} item ids, got {len(ids)}"
            )
        impression = [_id(f"{at}.impression[{n}]", item, required=True) or "" for n, item in enumerate(ids)]
    properties: dict[str, Any] = {}
    if event.properties is not None:
        raw = _properties_object(f"{at}.properties", event.properties, MAX_EVENT_PROPERTIES_LENGTH)
        for key in raw:
            forbidden = _FORBIDDEN_KEYS.get(str(key).lower())
            if forbidden:
                raise TrackingInputError(
                    f"{at}.properties.{key}", f"{forbidden} is an event field, not a property"
                )
        if raw:
            properties, _ = _schema_values(f"{at}.properties", raw, specs or [], "interactions")
    return _Checked(
        index,
        event_type or "",
        timestamp,
        item_id,
        value,
        event_id,
        impression,
        recommendation_id or "",
        properties,
    )


_INTERACTION_COLUMNS = (
    "dataset_group_id",
    "user_id",
    "session_id",
    "item_id",
    "event_type",
    "event_value",
    "timestamp",
    "event_id",
    "impression",
    "recommendation_id",
    "properties",
    "source",
)
_tracker_groups: dict[str, int] = {}
"""Dataset group pk by tracking id, per process: a tracker never changes group; each call re-checks
that the tracker still exists in its first query, so a deleted tracker is still NOT_FOUND."""


def _prep(model: type[Interaction] | type[Item] | type[EndUser], name: str, value: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def _known(
    tracking_id: str,
    group_id: int,
    *,
    user_id: str | None,
    session_id: str,
    item_ids: Sequence[str],
    event_ids: Sequence[str],
) -> tuple[bool, dict[str, int], dict[str, int], set[str], int, bool]:
    """In one round trip: (tracker still there, user pk by id, item pk by id, stored event ids,
    the session's anonymous events when a user is given, the tracker forwards to Personalize)."""
    tracker_table = EventTracker._meta.db_table
    parts = [f"SELECT 't', backend, dataset_group_id FROM {tracker_table} WHERE tracking_id = %s"]
    params: list[Any] = [tracking_id]

    def part(kind: str, table: str, column: str, pk: str, values: Sequence[str]) -> None:
        marks = ", ".join(["%s"] * len(values))
        where = f"dataset_group_id = %s AND {column} IN ({marks})"
        parts.append(f"SELECT '{kind}', {column}, {pk} FROM {table} WHERE {where}")
        params.extend([group_id, *values])

    interactions = Interaction._meta.db_table
    if user_id is not None:
        part("u", EndUser._meta.db_table, "user_id", "id", [user_id])
        # `NOT session_id = ''` restates the session index's condition for prepared statements'
        # generic plans (without it they scan the group's whole user_id IS NULL range).
        parts.append(
            f"SELECT 's', '', COUNT(*) FROM {interactions} "
            "WHERE dataset_group_id = %s AND session_id = %s AND NOT session_id = '' AND user_id IS NULL"
        )
        params.extend([group_id, session_id])
    if item_ids:
        part("i", Item._meta.db_table, "item_id", "id", item_ids)
    if event_ids:
        part("e", interactions, "event_id", "0", event_ids)
    found = False
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    events: set[str] = set()
    anonymous = 0
    forwarding = False
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        for kind, external_id, pk in cursor.fetchall():
            if kind == "u":
                users[external_id] = pk
            elif kind == "i":
                items[external_id] = pk
            elif kind == "e":
                events.add(external_id)
            elif kind == "s":
                anonymous = pk
            else:
                found = pk == group_id
                forwarding = external_id == CampaignBackend.PERSONALIZE
    return found, users, items, events, anonymous, forwarding


def _bare_records(model: type[Item] | type[EndUser], group_id: int, missing: Sequence[str]) -> dict[str, int]:
    """Create bare (IMPLICIT) records for ids the group lacks; their primary keys by id."""
    id_field = "item_id" if model is Item else "user_id"
    table = model._meta.db_table
    columns = ["dataset_group_id", id_field, "metadata", "source", "updated_at"]
    if model is Item:
        columns.append("creation_timestamp")
    now = _prep(model, "updated_at", datetime.now(UTC))
    metadata = _prep(model, "metadata", {})
    row = ["%s"] * len(columns)
    params: list[Any] = []
    for value in missing:
        params.extend([group_id, value, metadata, RecordSource.IMPLICIT.value, now])
        if model is Item:
            params.append(None)
    values = ", ".join(f"({', '.join(row)})" for _ in missing)
    pks: dict[str, int] = {}
    with connection.cursor() as cursor:
        # ON CONFLICT DO NOTHING: a concurrent call may create the same id first; read those back.
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} "
            f"ON CONFLICT (dataset_group_id, {id_field}) DO NOTHING RETURNING {id_field}, id",
            params,
        )
        pks.update(cursor.fetchall())
        others = [value for value in missing if value not in pks]
        if others:
            marks = ", ".join(["%s"] * len(others))
            cursor.execute(
                f"SELECT {id_field}, id FROM {table} WHERE dataset_group_id = %s AND {id_field} IN ({marks})",
                [group_id, *others],
            )
            pks.update(cursor.fetchall())
    return pks


def _insert_events(
    group_id: int,
    user_pk: int | None,
    session: str,
    rows: list[tuple[_Checked, int | None]],
    forwarding: bool = False,
) -> int:
    """Insert the events in one statement; how many were stored (a concurrent call may have
    stored the same eventId first: that event is skipped and not counted). Events of a tracker
    on Personalize are stored PENDING for the outbox; others take the column's default (NONE)."""
    source = RecordSource.PUT.value
    table = Interaction._meta.db_table
    columns = _INTERACTION_COLUMNS + (("forward_state",) if forwarding else ())
    if connection.vendor == "postgresql":
        # One array per column: a dozen parameters whatever the number of events, so psycopg
        # caches the statement's parsing (it does not past 50 parameters).
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) "
            "SELECT %s, %s, %s, item, event_type, event_value, at, event_id, impression::jsonb, "
            f"recommendation_id, properties::jsonb, %s{', %s' if forwarding else ''} "
            "FROM unnest(%s::bigint[], %s::text[], "
            "%s::float8[], %s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[]) AS event("
            "item, event_type, event_value, at, event_id, impression, recommendation_id, properties) "
            "ON CONFLICT DO NOTHING RETURNING 1"
        )
        params: list[Any] = [
            group_id,
            user_pk,
            session,
            source,
            *([ForwardState.PENDING.value] if forwarding else []),
            [item_pk for _, item_pk in rows],
            [event.event_type for event, _ in rows],
            [event.event_value for event, _ in rows],
            [event.timestamp for event, _ in rows],
            [event.event_id for event, _ in rows],
            [json.dumps(event.impression) for event, _ in rows],
            [event.recommendation_id for event, _ in rows],
            [json.dumps(event.properties) for event, _ in rows],
        ]
    else:
        empty_list = _prep(Interaction, "impression", [])
        empty_dict = _prep(Interaction, "properties", {})
        params = []
        for event, item_pk in rows:
            params.extend(
                [
                    group_id,
                    user_pk,
                    session,
                    item_pk,
                    event.event_type,
                    event.event_value,
                    _prep(Interaction, "timestamp", event.timestamp),
                    event.event_id,
                    _prep(Interaction, "impression", event.impression) if event.impression else empty_list,
                    event.recommendation_id,
                    _prep(Interaction, "properties", event.properties) if event.properties else empty_dict,
                    source,
                    *([ForwardState.PENDING.value] if forwarding else []),
                ]
            )
        row = f"({', '.join(['%s'] * len(columns))})"
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES {', '.join([row] * len(rows))} ON CONFLICT DO NOTHING RETURNING 1"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return len(cursor.fetchall())


def put_events(
    *, tracking_id: str, session_id: str, user_id: str | None = None, events: Sequence[TrackedEvent]
) -> PutEventsResult:
    """Record 1-10 events of a session (PutEvents); all checked first, then written all or nothing.

    Plain SQL, no model instances: one read (tracker, user, items, stored eventIds, the session's
    anonymous events), then one INSERT of the events, committed before returning. Bare records for
    unknown ids and the session merge (when it has anonymous events) join that INSERT in one
    transaction.
    """
    group_id = _tracker_groups.get(tracking_id)
    group: DatasetGroup | None = None
    if group_id is None:
        tracker = event_tracker_get(tracking_id=tracking_id)
        group = tracker.dataset_group
        group_id = group.pk
    session = _id("sessionId", session_id, required=True) or ""
    user = _id("userId", user_id, required=False)
    events = list(events)
    if not 1 <= len(events) <= MAX_EVENTS_PER_CALL:
        raise TrackingInputError("events", f"must hold 1 to {MAX_EVENTS_PER_CALL} events, got {len(events)}")
    specs = None
    if any(e.properties for e in events):
        specs = _specs(group or DatasetGroup.objects.get(pk=group_id), DatasetType.INTERACTIONS)
    now = time.time()
    checked = [_check_event(index, event, specs, now) for index, event in enumerate(events)]

    unique: list[_Checked] = []
    seen: dict[str, None] = {}
    for event in checked:
        if event.event_id is not None:
            if event.event_id in seen:
                continue
            seen[event.event_id] = None
        unique.append(event)
    item_ids = list(dict.fromkeys(e.item_id for e in unique if e.item_id is not None))
    found, users, items, stored, anonymous, forwarding = _known(
        tracking_id, group_id, user_id=user, session_id=session, item_ids=item_ids, event_ids=list(seen)
    )
    if not found:
        _tracker_groups.pop(tracking_id, None)
        raise EventTrackerNotFoundError(tracking_id)
    _tracker_groups[tracking_id] = group_id
    if stored:
        unique = [event for event in unique if event.event_id is None or event.event_id not in stored]
    user_created = user is not None and user not in users
    missing_items = [
        item_id
        for item_id in dict.fromkeys(e.item_id for e in unique if e.item_id is not None)
        if item_id not in items
    ]
    merge = user is not None and anonymous > 0
    # The usual call writes one INSERT, atomic and durable on its own (autocommit saves the BEGIN
    # and COMMIT round trips); bare records or a session merge make several writes, done together.
    several_writes = user_created or bool(missing_items) or merge
    with transaction.atomic() if several_writes else nullcontext():
        user_pk: int | None = None
        if user is not None:
            if user_created:
                users.update(_bare_records(EndUser, group_id, [user]))
            user_pk = users[user]
        if missing_items:
            items.update(_bare_records(Item, group_id, missing_items))
        recorded = 0
        if unique:
            recorded = _insert_events(
                group_id,
                user_pk,
                session,
                [(e, items[e.item_id] if e.item_id is not None else None) for e in unique],
                forwarding,
            )
            if forwarding and recorded:
                outbox_flush_on_commit(dataset_group_id=group_id)
        attributed = 0
        if merge:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {Interaction._meta.db_table} SET user_id = %s WHERE dataset_group_id = %s "
                    "AND session_id = %s AND NOT session_id = '' AND user_id IS NULL",
                    [user_pk, group_id, session],
                )
                attributed = cursor.rowcount
    return PutEventsResult(
        events_recorded=recorded,
        duplicates_ignored=len(checked) - recorded,
        session_events_attributed=attributed,
        items_created=len(missing_items),
        user_created=user_created,
    )


# --- PutItems / PutUsers ---------------------------------------------------------------------


def _check_records(
    name: str, records: Sequence[TrackedRecord], specs: list[FieldSpec] | None, id_name: str, limit: int
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    records = list(records)
    if not 1 <= len(records) <= MAX_RECORDS_PER_CALL:
        raise TrackingInputError(name, f"must hold 1 to {MAX_RECORDS_PER_CALL} records, got {len(records)}")
    dataset = name
    if specs is None:
        raise TrackingInputError(name, f"the {dataset} dataset has no schema yet; import a CSV or define one")
    reserved = {"CREATION_TIMESTAMP": "CREATION_TIMESTAMP"} if name == "items" else {}
    checked = []
    for index, record in enumerate(records):
        at = f"{name}[{index}]"
        record_id = _id(f"{at}.{id_name}", record.record_id, required=True) or ""
        raw = _properties_object(f"{at}.properties", record.properties, limit)
        metadata, extra = _schema_values(f"{at}.properties", raw, specs, dataset, reserved=reserved)
        if "CREATION_TIMESTAMP" in extra:
            extra["CREATION_TIMESTAMP"] = _sent_at(
                f"{at}.properties.creationTimestamp", extra["CREATION_TIMESTAMP"]
            ).timestamp()
        checked.append((record_id, metadata, extra))
    return checked


def put_items(*, dataset_group: DatasetGroup, items: Sequence[TrackedRecord]) -> PutRecordsResult:
    """Create or update 1-10 items (PutItems), checked against the items schema; all or nothing.

    A new item without `creationTimestamp` is stamped now, so exploration treats it as new.
    """
    specs = dataset_schema_fields(dataset_group=dataset_group, dataset_type=DatasetType.ITEMS)
    checked = _check_records("items", items, specs, "itemId", MAX_ITEM_PROPERTIES_LENGTH)
    now = time.time()
    created = 0
    with transaction.atomic():
        existing = dict(
            Item.objects.filter(dataset_group=dataset_group, item_id__in=[c[0] for c in checked]).values_list(
                "item_id", "creation_timestamp"
            )
        )
        for item_id, metadata, extra in checked:
            created_at = extra.get("CREATION_TIMESTAMP")
            if created_at is None:
                known = existing.get(item_id)
                created_at = known.timestamp() if known is not None else now
            if item_id not in existing:
                created += 1
                existing[item_id] = datetime.fromtimestamp(created_at, UTC)
            item_upsert(
                dataset_group=dataset_group,
                item_id=item_id,
                metadata=metadata,
                creation_timestamp=created_at,
                source=RecordSource.PUT,
            )
    return PutRecordsResult(len(checked), created, [c[0] for c in checked])


def put_users(*, dataset_group: DatasetGroup, users: Sequence[TrackedRecord]) -> PutRecordsResult:
    """Create or update 1-10 end users (PutUsers), checked against the users schema; all or nothing."""
    specs = dataset_schema_fields(dataset_group=dataset_group, dataset_type=DatasetType.USERS)
    checked = _check_records("users", users, specs, "userId", MAX_USER_PROPERTIES_LENGTH)
    with transaction.atomic():
        existing = set(
            EndUser.objects.filter(
                dataset_group=dataset_group, user_id__in=[c[0] for c in checked]
            ).values_list("user_id", flat=True)
        )
        created = len({c[0] for c in checked} - existing)
        for user_id, metadata, _ in checked:
            end_user_upsert(
                dataset_group=dataset_group, user_id=user_id, metadata=metadata, source=RecordSource.PUT
            )
    return PutRecordsResult(len(checked), created, [c[0] for c in checked])
