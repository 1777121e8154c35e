"""The outbox to Amazon Personalize: events, items and users written here reach Personalize once.

A dataset group whose event tracker is on Personalize (`EventTracker.backend == "personalize"`)
stores what putEvents / putItems / putUsers / the admin write with `forward_state = PENDING`
(catalog.models.ForwardState). Nothing is sent inside the request: once the transaction commits,
`outbox_flush_on_commit` enqueues `outbox_forward_task`, which calls `outbox_forward`:

- events are grouped by (userId, sessionId) into `PutEvents` calls of at most 10 events, each with
  a stable `eventId` (the client's, else `recsite-<row id>`), so a resend after a crash is the same
  event to Personalize, which does not train on later duplicates;
- changed items and users go out in `PutItems` / `PutUsers` calls of at most 10 records, to the
  group's Items / Users dataset (found from the tracker's ARN with DescribeEventTracker and
  ListDatasets, once per process);
- a row is marked SENT only after AWS accepted its call; a call AWS refuses as invalid is split
  into single records and the one it still refuses is marked REFUSED (logged, never retried), so
  one bad event cannot block the rest; any other failure stops the run and leaves the remaining
  rows PENDING (throttling and outages are retried by the task with exponential backoff);
- rows are claimed so that two runs never send the same row: on PostgreSQL with
  `SELECT ... FOR UPDATE SKIP LOCKED` in a transaction that ends after the rows are marked (a
  killed worker's transaction rolls back and its rows are pending again); on databases without row
  locks (SQLite) one sender per group holds a lease on the dataset group row, renewed while it
  sends, which a dead sender's successor takes over once it expires;
- `outbox_sweep_task` (beat, every `RECSITE_OUTBOX_SWEEP_SECONDS`) re-enqueues every group that
  still has pending rows, so a broker outage, a killed worker or an AWS outage loses nothing.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from catalog.models import DatasetGroup, EndUser, ForwardState, Interaction, Item
from catalog.schemas import DatasetType
from catalog.selectors import dataset_schema_fields
from recommendations.errors import PersonalizeError, PersonalizeInvalidInputError
from recommendations.models import CampaignBackend, EventTracker, PersonalizeDatasetGroup

__all__ = [
    "MAX_RECORDS_PER_CALL",
    "ForwardReport",
    "catalog_change_mark_pending",
    "connect_signals",
    "outbox_flush_on_commit",
    "outbox_forward",
    "outbox_groups_pending",
    "outbox_retry_countdown",
    "personalize_event",
    "personalize_properties",
    "stable_event_id",
]

logger = logging.getLogger(__name__)

MAX_RECORDS_PER_CALL = 10
"""PutEvents, PutItems and PutUsers take at most 10 events / records per call."""

EVENT_ID_PREFIX = "recsite-"
BROKER_DOWN_PAUSE_SECONDS = 10.0
"""After a failed enqueue, a process leaves the group's flushes to the sweep for this long."""


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


@dataclass
class ForwardReport:
    """What one outbox run did: rows sent and refused, calls made, and why it stopped early."""

    events_sent: int = 0
    items_sent: int = 0
    users_sent: int = 0
    refused: int = 0
    calls: int = 0
    more: bool = False
    """Pending rows remain after the run's row budget (the task continues in a new run)."""
    busy: bool = False
    """Another sender holds the group's lease (databases without row locks)."""
    skipped: list[str] = field(default_factory=list)
    """Why some rows were left pending without a call (tracker not provisioned, no dataset)."""

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (the task's result)."""
        return asdict(self)


# --- Personalize's request shapes ------------------------------------------------------------


def stable_event_id(row: Interaction) -> str:
    """The eventId PutEvents gets for a row: the client's own, else one derived from the row's key."""
    return row.event_id or f"{EVENT_ID_PREFIX}{row.pk}"


def _camel_case(name: str) -> str:
    """NUMBER_OF_RATINGS → numberOfRatings (Personalize maps camelCase keys back to schema fields)."""
    words = [word for word in name.split("_") if word]
    if not words:
        return name
    return words[0].lower() + "".join(word[:1].upper() + word[1:].lower() for word in words[1:])


def personalize_properties(values: dict[str, Any], extra: dict[str, Any] | None = None) -> str | None:
    """Stored metadata (schema field → value) as Personalize's `properties` JSON text, or None if empty."""
    properties: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        properties[_camel_case(name)] = "|".join(value) if isinstance(value, list) else value
    properties.update(extra or {})
    if not properties:
        return None
    return json.dumps(properties, separators=(",", ":"), ensure_ascii=False)


def personalize_event(row: Interaction) -> dict[str, Any]:
    """One stored interaction as a PutEvents `eventList` entry (`row.item` loaded)."""
    event: dict[str, Any] = {
        "eventId": stable_event_id(row),
        "eventType": row.event_type,
        "sentAt": row.timestamp,
    }
    if row.item_id is not None:
        event["itemId"] = row.item.item_id
    if row.event_value is not None:
        event["eventValue"] = float(row.event_value)
    if row.impression:
        event["impression"] = [str(item_id) for item_id in row.impression]
    if row.recommendation_id:
        event["recommendationId"] = row.recommendation_id
    properties = personalize_properties(row.properties or {})
    if properties is not None:
        event["properties"] = properties
    return event


# --- where rows go ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """The group's tracker on Personalize: the trackingId PutEvents needs and the tracker's ARN."""

    group_id: int
    tracking_id: str
    tracker_arn: str


def _target(group_id: int) -> _Target | None:
    row = (
        EventTracker.objects.filter(dataset_group_id=group_id, backend=CampaignBackend.PERSONALIZE)
        .values_list("personalize_tracking_id", "personalize_arn")
        .first()
    )
    if row is None:
        return None
    return _Target(group_id, row[0], row[1])


_dataset_arns: dict[tuple[str, str], str] = {}
"""Dataset ARN by (tracker ARN, dataset type), per process: a dataset never moves."""


def _dataset_arn(target: _Target, dataset_type: DatasetType) -> str | None:
    """The ARN of the group's Items or Users dataset on Personalize (None when it has none): as
    provisioning recorded it, else found from the tracker's ARN (DescribeEventTracker, ListDatasets)."""
    from recommendations.backends.aws import aws_call, personalize_client

    stored = (
        PersonalizeDatasetGroup.objects.filter(dataset_group_id=target.group_id)
        .values_list("dataset_arns", flat=True)
        .first()
    )
    if stored and stored.get(dataset_type.value):
        return stored[dataset_type.value]  # recorded by provisioning (personalize_jobs)
    if not target.tracker_arn:
        return None
    key = (target.tracker_arn, dataset_type.value)
    if key not in _dataset_arns:
        client = personalize_client()
        tracker = aws_call(client, "describe_event_tracker", eventTrackerArn=target.tracker_arn)
        group_arn = tracker["eventTracker"]["datasetGroupArn"]
        params: dict[str, Any] = {"datasetGroupArn": group_arn}
        while True:
            page = aws_call(client, "list_datasets", **params)
            for dataset in page.get("datasets", []):
                kind = str(dataset.get("datasetType", "")).lower()
                _dataset_arns[(target.tracker_arn, kind)] = dataset["datasetArn"]
            if not page.get("nextToken"):
                break
            params["nextToken"] = page["nextToken"]
    return _dataset_arns.get(key)


# --- the three kinds of rows -----------------------------------------------------------------


class _Kind:
    """How one kind of row is read, sent and marked."""

    model: type[models.Model]
    counter: str

    def pending(self, group_id: int) -> models.QuerySet:
        return self.model.objects.filter(
            dataset_group_id=group_id, forward_state=ForwardState.PENDING
        ).order_by("id")

    def calls(self, target: _Target, rows: list[Any]) -> Iterable[tuple[str, dict[str, Any], list[Any]]]:
        """(operation, parameters, the rows it carries) per call; raises _Skip when it cannot send."""
        raise NotImplementedError

    def mark(self, rows: Sequence[Any], state: ForwardState) -> int:
        """Mark the rows unless they changed since they were read (a change is pending again)."""
        guard = Q()
        for row in rows:
            guard |= Q(pk=row.pk, updated_at=row.updated_at)
        return self.model.objects.filter(guard, forward_state=ForwardState.PENDING).update(
            forward_state=state
        )


class _Skip(Exception):
    """These rows cannot be sent yet (e.g. the group has no Items dataset on Personalize)."""


class _Events(_Kind):
    model = Interaction
    counter = "events_sent"

    def pending(self, group_id: int) -> models.QuerySet:
        return super().pending(group_id).select_related("user", "item")

    def calls(self, target: _Target, rows: list[Any]) -> Iterable[tuple[str, dict[str, Any], list[Any]]]:
        if not target.tracking_id:
            raise _Skip("the event tracker has no Personalize trackingId yet (not provisioned)")
        sessions: dict[tuple[str | None, str], list[Interaction]] = {}
        for row in rows:
            user_id = row.user.user_id if row.user_id is not None else None
            session_id = row.session_id or user_id or f"{EVENT_ID_PREFIX}{row.pk}"
            sessions.setdefault((user_id, session_id), []).append(row)
        for (user_id, session_id), events in sessions.items():
            for start in range(0, len(events), MAX_RECORDS_PER_CALL):
                chunk = events[start : start + MAX_RECORDS_PER_CALL]
                params: dict[str, Any] = {
                    "trackingId": target.tracking_id,
                    "sessionId": session_id,
                    "eventList": [personalize_event(row) for row in chunk],
                }
                if user_id is not None:
                    params["userId"] = user_id
                yield "put_events", params, chunk

    def mark(self, rows: Sequence[Any], state: ForwardState) -> int:
        # Events never change once stored: their ids are enough.
        return Interaction.objects.filter(
            pk__in=[row.pk for row in rows], forward_state=ForwardState.PENDING
        ).update(forward_state=state)


class _Records(_Kind):
    """Items (PutItems) or users (PutUsers)."""

    def __init__(self, model: type[Item] | type[EndUser]) -> None:
        self.model = model
        self.is_items = model is Item
        self.counter = "items_sent" if self.is_items else "users_sent"
        self.dataset_type = DatasetType.ITEMS if self.is_items else DatasetType.USERS

    def calls(self, target: _Target, rows: list[Any]) -> Iterable[tuple[str, dict[str, Any], list[Any]]]:
        dataset_arn = _dataset_arn(target, self.dataset_type)
        if dataset_arn is None:
            raise _Skip(f"the dataset group has no {self.dataset_type} dataset on Personalize (yet)")
        with_creation = False
        if self.is_items:
            group = DatasetGroup(pk=target.group_id)
            specs = dataset_schema_fields(dataset_group=group, dataset_type=self.dataset_type) or []
            with_creation = any(spec.name == "CREATION_TIMESTAMP" for spec in specs)
        for start in range(0, len(rows), MAX_RECORDS_PER_CALL):
            chunk = rows[start : start + MAX_RECORDS_PER_CALL]
            records = []
            for row in chunk:
                extra = {}
                if with_creation and row.creation_timestamp is not None:
                    extra["creationTimestamp"] = int(row.creation_timestamp.timestamp())
                record: dict[str, Any] = {("itemId" if self.is_items else "userId"): row.external_id}
                properties = personalize_properties(row.metadata or {}, extra)
                if properties is not None:
                    record["properties"] = properties
                records.append(record)
            if self.is_items:
                yield "put_items", {"datasetArn": dataset_arn, "items": records}, chunk
            else:
                yield "put_users", {"datasetArn": dataset_arn, "users": records}, chunk

    def pending(self, group_id: int) -> models.QuerySet:
        id_field = "item_id" if self.is_items else "user_id"
        return super().pending(group_id).annotate(external_id=models.F(id_field))


_KINDS: tuple[_Kind, ...] = (_Events(), _Records(Item), _Records(EndUser))


# --- sending ---------------------------------------------------------------------------------


def _send(
    operation: str,
    params: dict[str, Any],
    rows: list[Any],
    outcome: _Outcome,
    before_call: Callable[[], None],
) -> None:
    """One call; its rows join `outcome.accepted` once AWS accepted it. A call refused as invalid is
    retried one record at a time, and a single record still refused joins `outcome.refused`. Other
    errors propagate (the rows stay PENDING)."""
    from recommendations.backends.aws import aws_call, personalize_events_client

    before_call()
    outcome.calls += 1
    try:
        aws_call(personalize_events_client(), operation, **params)
    except PersonalizeInvalidInputError as error:
        list_key = next(key for key in ("eventList", "items", "users") if key in params)
        if len(rows) > 1:
            for record, row in zip(params[list_key], rows, strict=True):
                _send(operation, {**params, list_key: [record]}, [row], outcome, before_call)
            return
        logger.warning(
            "Personalize refused %s record %s; not retried: %s", operation, params[list_key], error
        )
        outcome.refused.extend(rows)
        return
    outcome.accepted.extend(rows)


@dataclass
class _Outcome:
    calls: int = 0
    accepted: list[Any] = field(default_factory=list)
    refused: list[Any] = field(default_factory=list)


def _send_rows(
    kind: _Kind, target: _Target, rows: list[Any], report: ForwardReport, before_call: Callable[[], None]
) -> PersonalizeError | _Skip | None:
    """Send claimed rows and mark what AWS answered (one UPDATE per state for the whole chunk); the
    error that stopped the run, if any (the calls accepted before it are marked SENT all the same)."""
    outcome = _Outcome()
    failure: PersonalizeError | _Skip | None = None
    try:
        for operation, params, chunk in kind.calls(target, rows):
            _send(operation, params, chunk, outcome, before_call)
    except (PersonalizeError, _Skip) as error:
        failure = error
    report.calls += outcome.calls
    if outcome.accepted:
        sent = kind.mark(outcome.accepted, ForwardState.SENT)
        setattr(report, kind.counter, getattr(report, kind.counter) + sent)
    if outcome.refused:
        report.refused += kind.mark(outcome.refused, ForwardState.REFUSED)
    return failure


def _row_locks() -> bool:
    return bool(connection.features.has_select_for_update_skip_locked)


def _drain(
    kind: _Kind, target: _Target, report: ForwardReport, budget: int, before_call: Callable[[], None]
) -> int:
    """Send the kind's pending rows in claimed chunks until none or the budget is left; the budget left."""
    chunk_rows = max(1, int(_setting("RECSITE_OUTBOX_CHUNK_ROWS", 100)))
    locked = _row_locks()
    while budget > 0:
        # With row locks, the claim lasts until the chunk's rows are marked (COMMIT); a crash rolls back.
        with transaction.atomic() if locked else nullcontext():
            pending = kind.pending(target.group_id)
            if locked:
                pending = pending.select_for_update(skip_locked=True, of=("self",))
            rows = list(pending[: min(chunk_rows, budget)])
            if not rows:
                return budget
            failure = _send_rows(kind, target, rows, report, before_call)
        budget -= len(rows)
        if isinstance(failure, _Skip):
            report.skipped.append(f"{kind.model._meta.verbose_name_plural}: {failure}")
            return budget
        if failure is not None:
            raise failure
    return budget


def _has_pending(group_id: int) -> bool:
    return any(kind.pending(group_id).exists() for kind in _KINDS)


def _forward_all(
    target: _Target, report: ForwardReport, max_rows: int, before_call: Callable[[], None]
) -> None:
    budget = max_rows
    for kind in _KINDS:
        budget = _drain(kind, target, report, budget, before_call)
        if budget <= 0:
            report.more = _has_pending(target.group_id)
            return


# --- the lease (databases without row locks) -------------------------------------------------


class _LeaseLostError(PersonalizeError):
    """The sender's lease expired and another sender took the group over: stop without sending."""


def _lease_acquire(group_id: int) -> str | None:
    """Take the group's outbox lease if it is free or expired; its token, or None when it is held."""
    token = uuid.uuid4().hex
    now = timezone.now()
    seconds = float(_setting("RECSITE_OUTBOX_LEASE_SECONDS", 300))
    taken = (
        DatasetGroup.objects.filter(pk=group_id)
        .filter(Q(outbox_lease_expires_at__isnull=True) | Q(outbox_lease_expires_at__lt=now))
        .update(outbox_lease_token=token, outbox_lease_expires_at=now + timedelta(seconds=seconds))
    )
    return token if taken else None


def _lease_renew(group_id: int, token: str) -> None:
    """Extend the lease before a call (raises _LeaseLostError if another sender took the group over)."""
    seconds = float(_setting("RECSITE_OUTBOX_LEASE_SECONDS", 300))
    renewed = DatasetGroup.objects.filter(pk=group_id, outbox_lease_token=token).update(
        outbox_lease_expires_at=timezone.now() + timedelta(seconds=seconds)
    )
    if not renewed:
        raise _LeaseLostError("another sender took over this group's outbox", code="LeaseLost")


class _LeaseKeeper:
    """Renews the lease before a call once half of it is used (a write per call would cost a commit)."""

    def __init__(self, group_id: int, token: str) -> None:
        self.group_id, self.token = group_id, token
        self.renewed_at = time.monotonic()

    def __call__(self) -> None:
        half = float(_setting("RECSITE_OUTBOX_LEASE_SECONDS", 300)) / 2
        if time.monotonic() - self.renewed_at >= half:
            _lease_renew(self.group_id, self.token)
            self.renewed_at = time.monotonic()


def _lease_release(group_id: int, token: str) -> None:
    DatasetGroup.objects.filter(pk=group_id, outbox_lease_token=token).update(
        outbox_lease_token="", outbox_lease_expires_at=None
    )


# --- services and selectors ------------------------------------------------------------------


def outbox_forward(*, dataset_group_id: int, max_rows: int | None = None) -> ForwardReport:
    """Send the group's pending events, items and users to Personalize (at most `max_rows` rows).

    Raises PersonalizeError (PersonalizeRetryableError for throttling and outages) when a call
    fails; what AWS accepted before is marked SENT, the rest stays PENDING.
    """
    report = ForwardReport()
    target = _target(dataset_group_id)
    if target is None:
        report.skipped.append("the dataset group's event tracker is not on Personalize")
        return report
    if max_rows is None:
        max_rows = int(_setting("RECSITE_OUTBOX_MAX_ROWS_PER_RUN", 5000))
    if _row_locks():
        _forward_all(target, report, max_rows, lambda: None)
        return report
    while True:
        token = _lease_acquire(dataset_group_id)
        if token is None:
            report.busy = True
            return report
        try:
            _forward_all(target, report, max_rows, _LeaseKeeper(dataset_group_id, token))
        except _LeaseLostError:
            report.busy = True
            return report
        finally:
            _lease_release(dataset_group_id, token)
        # A row committed while the lease was held may have found it busy: look once more.
        if report.more or report.skipped or not _has_pending(dataset_group_id):
            return report


def outbox_groups_pending() -> list[int]:
    """Ids of the dataset groups on Personalize that have unsent events, items or users."""
    on_personalize = EventTracker.objects.filter(backend=CampaignBackend.PERSONALIZE)
    pending = Q()
    for kind in _KINDS:
        pending |= Exists(
            kind.model.objects.filter(dataset_group_id=OuterRef("pk"), forward_state=ForwardState.PENDING)
        )
    return list(
        DatasetGroup.objects.filter(pk__in=on_personalize.values("dataset_group_id"))
        .filter(pending)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def outbox_retry_countdown(retries: int) -> float:
    """Seconds before retry number `retries + 1`: exponential (base * 2**retries, capped), half jittered."""
    base = float(_setting("RECSITE_OUTBOX_RETRY_BASE_SECONDS", 2.0))
    cap = float(_setting("RECSITE_OUTBOX_RETRY_MAX_SECONDS", 300.0))
    ceiling = min(cap, base * 2 ** max(0, retries))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


_flush_due: dict[int, float] = {}
"""Per process: when the flush this process last enqueued for a group will run (monotonic clock), or
until when it does not try again after the broker refused one."""


def _enqueue_flush(dataset_group_id: int) -> None:
    from recommendations.tasks import outbox_forward_task

    delay = float(_setting("RECSITE_OUTBOX_FLUSH_DELAY_SECONDS", 1.0))
    if outbox_forward_task.app.conf.task_always_eager:
        # In-process (no broker): run now; throw=False lets Celery replay the task's retries here.
        outbox_forward_task.apply((dataset_group_id,), throw=False)
        return
    now = time.monotonic()
    due = _flush_due.get(dataset_group_id)
    if due is not None and now < due - min(0.25, delay / 2):
        return  # a flush this process queued has not started yet: it will read this commit's rows
    try:
        outbox_forward_task.apply_async((dataset_group_id,), countdown=delay or None, retry=False)
    except Exception as error:  # the broker is down: the rows are committed, the sweep sends them later
        logger.warning(
            "outbox flush of group %s not enqueued (the sweep will send it): %r", dataset_group_id, error
        )
        # Do not make every following request wait for the broker's connection timeout.
        _flush_due[dataset_group_id] = now + BROKER_DOWN_PAUSE_SECONDS
        return
    _flush_due[dataset_group_id] = now + delay


def outbox_flush_on_commit(*, dataset_group_id: int) -> None:
    """Once the current transaction commits, have the group's pending rows forwarded (a task).

    Within `RECSITE_OUTBOX_FLUSH_DELAY_SECONDS` one queued flush serves all the commits of a
    process; a failure to enqueue never fails the caller (the rows are committed; the sweep sends
    them).
    """

    def enqueue_outbox_flush() -> None:
        _enqueue_flush(dataset_group_id)

    transaction.on_commit(enqueue_outbox_flush, robust=True)


def catalog_change_mark_pending(
    sender: type[Item] | type[EndUser], instance: Item | EndUser, raw: bool = False, **kwargs: Any
) -> None:
    """post_save of an Item / EndUser: mark it PENDING when its group's tracker is on Personalize."""
    if raw:
        return
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and set(update_fields) <= {"forward_state"}:
        return
    on_personalize = EventTracker.objects.filter(
        dataset_group_id=OuterRef("dataset_group_id"), backend=CampaignBackend.PERSONALIZE
    )
    marked = (
        sender.objects.filter(pk=instance.pk)
        .filter(Exists(on_personalize))
        .update(forward_state=ForwardState.PENDING)
    )
    if marked:
        instance.forward_state = ForwardState.PENDING
        outbox_flush_on_commit(dataset_group_id=instance.dataset_group_id)


def connect_signals() -> None:
    """Connect the catalog-change receivers (from RecommendationsConfig.ready)."""
    from django.db.models.signals import post_save

    for model in (Item, EndUser):
        post_save.connect(catalog_change_mark_pending, sender=model, dispatch_uid=f"outbox-{model.__name__}")
