"""Reads of the dashboard: one bounded query per panel (keyword-only, typed).

Time windows end at the group's newest event (never later than now), rounded up to the hour, so a
catalog whose events stopped some time ago (an import, the demo shop) still shows its last days;
on a live shop the newest event is a moment ago and the window is simply the last days. Hours are
UTC. Each panel's query is bounded: by the window and a LIMIT, never by the size of the catalog.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import NotSupportedError
from django.db.models import (
    CharField,
    Count,
    F,
    Func,
    Min,
    Q,
    Value,
)
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from catalog.models import DatasetGroup, DatasetImportJob, EndUser, ForwardState, Interaction, Item, JobStatus
from recommendations.models import (
    BatchJob,
    Campaign,
    PersonalizeImportJob,
    PersonalizeStatus,
    Solution,
    SolutionVersion,
    SolutionVersionStatus,
)

__all__ = [
    "CHART_METRICS",
    "MAX_DAYS",
    "BacklogRow",
    "CampaignRow",
    "DashboardWindow",
    "EventSeries",
    "FailedJob",
    "ItemCount",
    "SolutionRow",
    "TrendingItem",
    "VersionPoint",
    "campaign_rows",
    "dashboard_window",
    "events_per_hour",
    "failed_jobs",
    "outbox_backlog",
    "solution_rows",
    "top_items",
    "trending_items",
]

MAX_DAYS = 30
MAX_EVENT_TYPES = 8  # series drawn; the rest are summed into "other"
MAX_VERSIONS = 500
MAX_CAMPAIGNS = 200
MAX_FAILED_JOBS = 20
TREND_INTERVAL = timedelta(days=1)
# Metrics drawn over time, as Personalize names them, with the short name the chart shows.
CHART_METRICS = (
    ("normalized_discounted_cumulative_gain_at_10", "NDCG@10"),
    ("precision_at_10", "precision@10"),
    ("coverage", "coverage"),
)


@dataclass(frozen=True)
class DashboardWindow:
    """The hours the event panels cover: [start, end), end on an hour boundary (UTC)."""

    start: datetime
    end: datetime
    newest_event: datetime | None

    @property
    def hours(self) -> list[datetime]:
        """Each hour's start, oldest first."""
        count = int((self.end - self.start) / timedelta(hours=1))
        return [self.start + timedelta(hours=i) for i in range(count)]

    @property
    def days(self) -> int:
        """Length in days."""
        return round((self.end - self.start) / timedelta(days=1))


@dataclass(frozen=True)
class EventSeries:
    """Events per hour for each event type (the largest `MAX_EVENT_TYPES`, the rest as "other")."""

    hours: list[datetime]
    counts: dict[str, list[int]]  # event type -> one count per hour, largest total first
    totals: dict[str, int]

    @property
    def total(self) -> int:
        """Events in the window."""
        return sum(self.totals.values())


@dataclass(frozen=True)
class ItemCount:
    """An item and its events in the window."""

    pk: int
    item_id: str
    events: int


@dataclass(frozen=True)
class TrendingItem:
    """An item whose events grew most from the previous day to the last day of the window."""

    pk: int
    item_id: str
    current: int
    previous: int

    @property
    def increase(self) -> int:
        """Events in the last day minus events in the day before."""
        return self.current - self.previous


@dataclass(frozen=True)
class VersionPoint:
    """One solution version as the solutions panel shows it."""

    pk: int
    status: str
    training_type: str
    created_at: datetime
    metrics: dict[str, float]
    failure_reason: str


@dataclass
class SolutionRow:
    """A solution with its versions, newest first (at most the newest `MAX_VERSIONS` of the group)."""

    pk: int
    name: str
    recipe: str
    versions: list[VersionPoint] = field(default_factory=list)

    @property
    def active_versions(self) -> list[VersionPoint]:
        """ACTIVE versions, newest first: what a campaign can deploy."""
        return [v for v in self.versions if v.status == SolutionVersionStatus.ACTIVE]

    @property
    def latest(self) -> VersionPoint | None:
        """The newest version, whatever its status."""
        return self.versions[0] if self.versions else None


@dataclass(frozen=True)
class CampaignRow:
    """A campaign, its status and backend, and the version it serves."""

    pk: int
    name: str
    status: str
    backend: str
    follows_latest: bool
    failure_reason: str
    solution_pk: int
    solution_name: str
    version_pk: int
    version_status: str
    version_created_at: datetime
    version_metrics: dict[str, float]


@dataclass(frozen=True)
class BacklogRow:
    """Rows of one dataset of one group waiting in the outbox for Personalize."""

    dataset_group: str
    dataset: str  # interactions, items or users
    pending: int
    oldest: datetime | None  # the oldest pending event's time, or the oldest pending record's change


@dataclass(frozen=True)
class FailedJob:
    """A job that ended CREATE FAILED, with Personalize's (or the engine's) reason."""

    kind: str  # solution version, Personalize import, batch job, CSV import, campaign
    pk: int
    name: str
    dataset_group: str
    failure_reason: str
    at: datetime

    @property
    def admin_url_name(self) -> str:
        """The admin change view of the job's row."""
        return FAILED_JOB_ADMIN_URLS[self.kind]


FAILED_JOB_ADMIN_URLS = {
    "solution version": "admin:recommendations_solutionversion_change",
    "Personalize import": "admin:recommendations_personalizeimportjob_change",
    "batch job": "admin:recommendations_batchjob_change",
    "CSV import": "admin:catalog_datasetimportjob_change",
    "campaign": "admin:recommendations_campaign_change",
}


class HourBucket(Func):
    """The UTC hour of a timestamp as text, `YYYY-MM-DD HH`, computed by the database itself.

    Django's TruncHour calls a Python function per row on SQLite; over a week of a busy shop's
    events that alone took most of a second, while SQLite's own substr is free (Django stores
    datetimes there as UTC text `YYYY-MM-DD HH:MM:SS`).
    """

    output_field = CharField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        """SQLite: the first 13 characters of the stored text."""
        return super().as_sql(compiler, connection, template="substr(%(expressions)s, 1, 13)", **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        """PostgreSQL: to_char in UTC."""
        template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24')"
        return super().as_sql(compiler, connection, template=template, **extra)

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        """Only SQLite and PostgreSQL are supported databases."""
        raise NotSupportedError(f"HourBucket is not implemented for {connection.vendor}")


def _hour_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H")


def dashboard_window(
    *, dataset_group: DatasetGroup, days: int = 7, now: datetime | None = None
) -> DashboardWindow:
    """The `days` (1-`MAX_DAYS`) up to the group's newest event no later than `now` (an index look-up)."""
    days = min(max(int(days), 1), MAX_DAYS)
    now = now or timezone.now()
    newest = (
        Interaction.objects.filter(dataset_group=dataset_group, timestamp__lte=now)
        .order_by("-timestamp")
        .values_list("timestamp", flat=True)
        .first()
    )
    anchor = (newest or now).astimezone(UTC)
    end = anchor.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return DashboardWindow(start=end - timedelta(days=days), end=end, newest_event=newest)


def _window_events(dataset_group: DatasetGroup, start: datetime, end: datetime) -> Any:
    return Interaction.objects.filter(
        dataset_group=dataset_group, timestamp__gte=start, timestamp__lt=end
    ).order_by()


def events_per_hour(*, dataset_group: DatasetGroup, window: DashboardWindow) -> EventSeries:
    """Events per UTC hour by event type in the window (one grouped query on the group/time index)."""
    hours = window.hours
    limit = len(hours) * MAX_EVENT_TYPES * 4  # bounded even when clients invent event types
    rows = (
        _window_events(dataset_group, window.start, window.end)
        .annotate(hour=HourBucket("timestamp"))
        .values_list("hour", "event_type")
        .annotate(events=Count("id"))
        .order_by("hour", "event_type")[:limit]
    )
    position = {_hour_key(hour): i for i, hour in enumerate(hours)}
    per_type: dict[str, list[int]] = defaultdict(lambda: [0] * len(hours))
    for hour, event_type, events in rows:
        index = position.get(hour)
        if index is not None:
            per_type[event_type or "(no type)"][index] += events
    ranked = sorted(per_type, key=lambda name: (-sum(per_type[name]), name))
    counts = {name: per_type[name] for name in ranked[:MAX_EVENT_TYPES]}
    if len(ranked) > MAX_EVENT_TYPES:
        other = [0] * len(hours)
        for name in ranked[MAX_EVENT_TYPES:]:
            other = [a + b for a, b in zip(other, per_type[name], strict=True)]
        counts["other"] = other
    return EventSeries(hours=hours, counts=counts, totals={name: sum(c) for name, c in counts.items()})


def _external_item_ids(pks: list[int]) -> dict[int, str]:
    """Catalog ids of a few items by primary key (one look-up; joining before grouping doubles the cost)."""
    return dict(Item.objects.filter(pk__in=pks).values_list("pk", "item_id")) if pks else {}


def top_items(*, dataset_group: DatasetGroup, window: DashboardWindow, limit: int = 10) -> list[ItemCount]:
    """The items with the most events in the window, most first (a grouped query with LIMIT `limit`,
    then the catalog ids of those items)."""
    rows = list(
        _window_events(dataset_group, window.start, window.end)
        .filter(item__isnull=False)
        .values_list("item_id")
        .annotate(events=Count("id"))
        .order_by("-events", "item_id")[:limit]
    )
    ids = _external_item_ids([pk for pk, _events in rows])
    return [ItemCount(pk=pk, item_id=ids.get(pk, str(pk)), events=events) for pk, events in rows]


def trending_items(
    *, dataset_group: DatasetGroup, window: DashboardWindow, limit: int = 10
) -> list[TrendingItem]:
    """Items whose events grew most from the day before to the window's last day, ranked as
    aws-trending-now ranks them (increase, then events); only items that grew (a grouped query on
    the last two days with LIMIT `limit`, then the catalog ids of those items)."""
    split = window.end - TREND_INTERVAL
    rows = list(
        _window_events(dataset_group, split - TREND_INTERVAL, window.end)
        .filter(item__isnull=False)
        .values_list("item_id")
        .annotate(
            current=Count("id", filter=Q(timestamp__gte=split)),
            previous=Count("id", filter=Q(timestamp__lt=split)),
        )
        .annotate(increase=F("current") - F("previous"))
        .filter(increase__gt=0)
        .order_by("-increase", "-current", "item_id")[:limit]
    )
    ids = _external_item_ids([row[0] for row in rows])
    return [
        TrendingItem(pk=pk, item_id=ids.get(pk, str(pk)), current=current, previous=previous)
        for pk, current, previous, _increase in rows
    ]


def _metrics(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {
        key: float(number)
        for key, number in value.items()
        if isinstance(number, int | float) and math.isfinite(number)
    }


def solution_rows(*, dataset_group: DatasetGroup) -> list[SolutionRow]:
    """The group's solutions (those without versions too) with their newest `MAX_VERSIONS` versions
    across the group, newest first (one LEFT JOIN query)."""
    rows = (
        Solution.objects.filter(dataset_group=dataset_group)
        .values_list(
            "pk",
            "name",
            "recipe",
            "versions__pk",
            "versions__status",
            "versions__training_type",
            "versions__created_at",
            "versions__metrics",
            "versions__failure_reason",
        )
        .order_by(F("versions__created_at").desc(nulls_first=True), "-versions__pk")[:MAX_VERSIONS]
    )
    solutions: dict[int, SolutionRow] = {}
    for pk, name, recipe, v_pk, status, training_type, created_at, metrics, reason in rows:
        solution = solutions.setdefault(pk, SolutionRow(pk=pk, name=name, recipe=recipe))
        if v_pk is not None:
            solution.versions.append(
                VersionPoint(
                    pk=v_pk,
                    status=status,
                    training_type=training_type,
                    created_at=created_at,
                    metrics=_metrics(metrics),
                    failure_reason=reason or "",
                )
            )
    return sorted(solutions.values(), key=lambda solution: solution.name)


def campaign_rows(*, dataset_group: DatasetGroup) -> list[CampaignRow]:
    """The group's campaigns (at most `MAX_CAMPAIGNS`, by name) with the version each serves (one query)."""
    rows = (
        Campaign.objects.filter(dataset_group=dataset_group)
        .order_by("name")
        .values_list(
            "pk",
            "name",
            "status",
            "backend",
            "follows_latest",
            "failure_reason",
            "solution_version__solution_id",
            "solution_version__solution__name",
            "solution_version_id",
            "solution_version__status",
            "solution_version__created_at",
            "solution_version__metrics",
        )[:MAX_CAMPAIGNS]
    )
    return [
        CampaignRow(
            pk=pk,
            name=name,
            status=status,
            backend=backend,
            follows_latest=follows,
            failure_reason=reason,
            solution_pk=solution_pk,
            solution_name=solution_name,
            version_pk=version_pk,
            version_status=version_status,
            version_created_at=version_created_at,
            version_metrics=_metrics(metrics),
        )
        for (
            pk,
            name,
            status,
            backend,
            follows,
            reason,
            solution_pk,
            solution_name,
            version_pk,
            version_status,
            version_created_at,
            metrics,
        ) in rows
    ]


def outbox_backlog() -> list[BacklogRow]:
    """Rows waiting for Personalize (forward_state PENDING) per group and dataset, every group
    (one UNION query over the outbox's partial indexes); empty when nothing waits."""
    pending = Q(forward_state=ForwardState.PENDING)

    def part(model: Any, dataset: str, moment: str) -> Any:
        return (
            model.objects.filter(pending)
            .order_by()
            .values_list("dataset_group__name")
            .annotate(
                dataset=Value(dataset, output_field=CharField()),
                pending=Count("id"),
                oldest=Min(moment),
            )
        )

    rows = part(Interaction, "interactions", "timestamp").union(
        part(Item, "items", "updated_at"), part(EndUser, "users", "updated_at"), all=True
    )
    return sorted(
        (BacklogRow(dataset_group=g, dataset=d, pending=n, oldest=o) for g, d, n, o in rows),
        key=lambda row: (row.dataset_group, row.dataset),
    )


def failed_jobs() -> list[FailedJob]:
    """The newest `MAX_FAILED_JOBS` failures of every group: solution versions, Personalize imports,
    batch jobs, CSV imports and campaigns that ended CREATE FAILED (one UNION query)."""
    text = CharField()

    def part(queryset: Any, kind: str, name: Any, group: str, at: Any) -> Any:
        return (
            queryset.order_by()
            .annotate(
                job_kind=Value(kind, output_field=text),
                label=Cast(name, output_field=text),
                group=F(group),
                at=at,
            )
            .values_list("job_kind", "pk", "label", "group", "failure_reason", "at")
        )

    failed = SolutionVersionStatus.FAILED
    parts = [
        part(
            SolutionVersion.objects.filter(status=failed),
            "solution version",
            F("solution__name"),
            "solution__dataset_group__name",
            Coalesce("finished_at", "created_at"),
        ),
        part(
            PersonalizeImportJob.objects.filter(status=PersonalizeStatus.FAILED),
            "Personalize import",
            F("job_name"),
            "personalize_group__dataset_group__name",
            Coalesce("finished_at", "created_at"),
        ),
        part(
            BatchJob.objects.filter(status=PersonalizeStatus.FAILED),
            "batch job",
            F("name"),
            "solution_version__solution__dataset_group__name",
            Coalesce("finished_at", "created_at"),
        ),
        part(
            DatasetImportJob.objects.filter(status=JobStatus.FAILED),
            "CSV import",
            Cast("pk", output_field=CharField()),
            "dataset_group__name",
            Coalesce("finished_at", "created_at"),
        ),
        part(
            Campaign.objects.filter(status=failed),
            "campaign",
            F("name"),
            "dataset_group__name",
            F("updated_at"),
        ),
    ]
    rows = parts[0].union(*parts[1:], all=True).order_by("-at", "job_kind", "-pk")[:MAX_FAILED_JOBS]
    return [
        FailedJob(kind=kind, pk=pk, name=label, dataset_group=group, failure_reason=reason, at=at)
        for kind, pk, label, group, reason, at in rows
    ]
