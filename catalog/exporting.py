"""Export a dataset group as Amazon Personalize CSV files plus their Avro schemas.

The output imports into Personalize as it is, and export → import → export gives
identical bytes: rows keep their stored order and values their canonical text.
"""

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db.models import Q

from catalog.models import DatasetGroup, EndUser, Interaction, Item, RecordSource
from catalog.schemas import RESERVED_FIELDS, DatasetType, FieldSpec, avro_schema_json, format_value
from catalog.selectors import dataset_group_get, dataset_schema_fields

__all__ = [
    "DEFAULT_INTERACTIONS_FIELDS",
    "ExportReport",
    "ExportScope",
    "dataset_csv_write",
    "dataset_export",
    "dataset_fields",
]

DEFAULT_INTERACTIONS_FIELDS = [
    RESERVED_FIELDS[DatasetType.INTERACTIONS][name]
    for name in ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE")
]
CHUNK = 20_000


@dataclass
class ExportReport:
    """Files written and rows per dataset; anonymous events are not exportable."""

    files: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    skipped_anonymous: int = 0

    def summary(self) -> str:
        """Human-readable lines, as the export command prints them."""
        lines = [
            f"Wrote {path}" + (f" ({self.rows[path.stem]} rows)" if path.stem in self.rows else "")
            for path in self.files
        ]
        if self.skipped_anonymous:
            lines.append(
                f"Left out {self.skipped_anonymous} events without a user id or item id "
                "(Personalize's CSV needs both)."
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class ExportScope:
    """Which rows an export writes: everything by default, or only what changed (incremental imports).

    Items and users count as changed when updated after `changed_since`; interactions when their id
    is in (`interactions_after_id`, `interactions_through_id`], their source is one of
    `interaction_sources` and their `forward_state` one of `interaction_forward_states` (exports to
    Personalize leave out events the outbox streams there, which Personalize keeps apart from bulk data).
    """

    changed_since: datetime | None = None
    interactions_after_id: int | None = None
    interactions_through_id: int | None = None
    interaction_sources: tuple[str, ...] | None = None
    interaction_forward_states: tuple[int, ...] | None = None


def dataset_fields(*, group: DatasetGroup, dataset_type: DatasetType) -> list[FieldSpec] | None:
    """The exported columns of a dataset (interactions default to the required ones); None: no dataset."""
    fields = dataset_schema_fields(dataset_group=group, dataset_type=dataset_type)
    if fields is None and dataset_type is DatasetType.INTERACTIONS:
        return DEFAULT_INTERACTIONS_FIELDS
    return fields


def dataset_csv_write(
    *,
    group: DatasetGroup,
    dataset_type: DatasetType,
    path: Path,
    scope: ExportScope | None = None,
    report: ExportReport | None = None,
) -> int | None:
    """Write one dataset's Personalize CSV to `path`; its row count (None: the group has no such data)."""
    fields = dataset_fields(group=group, dataset_type=dataset_type)
    if fields is None:
        return None
    rows = _ROWS[dataset_type](group, fields, report or ExportReport(), scope or ExportScope())
    return _write_csv(path, [spec.name for spec in fields], rows)


def dataset_export(*, dataset_group: str = "default", out: Path) -> ExportReport:
    """Write interactions.csv, items.csv, users.csv and `<dataset>_schema.json` to `out`."""
    group = dataset_group_get(name=dataset_group)
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    for dataset_type in DatasetType:
        fields = dataset_fields(group=group, dataset_type=dataset_type)
        if fields is None:
            continue
        csv_path = out / f"{dataset_type}.csv"
        rows = dataset_csv_write(group=group, dataset_type=dataset_type, path=csv_path, report=report)
        report.rows[dataset_type.value] = rows or 0
        schema_path = out / f"{dataset_type}_schema.json"
        schema_path.write_text(avro_schema_json(dataset_type, fields), encoding="utf-8")
        report.files += [csv_path, schema_path]
    return report


def _write_csv(path: Path, header: list[str], rows: Iterable[list[str]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _epoch(moment: Any) -> str:
    return "" if moment is None else str(int(moment.timestamp()))


def _item_rows(
    group: DatasetGroup, fields: list[FieldSpec], report: ExportReport, scope: ExportScope
) -> Iterator[list[str]]:
    items = Item.objects.filter(dataset_group=group).exclude(source=RecordSource.IMPLICIT).order_by("pk")
    if scope.changed_since is not None:
        items = items.filter(updated_at__gt=scope.changed_since)
    for item_id, created_at, metadata in items.values_list(
        "item_id", "creation_timestamp", "metadata"
    ).iterator(chunk_size=CHUNK):
        reserved = {"ITEM_ID": item_id, "CREATION_TIMESTAMP": _epoch(created_at)}
        yield [
            reserved[spec.name] if spec.is_reserved else format_value(metadata.get(spec.name))
            for spec in fields
        ]


def _user_rows(
    group: DatasetGroup, fields: list[FieldSpec], report: ExportReport, scope: ExportScope
) -> Iterator[list[str]]:
    users = EndUser.objects.filter(dataset_group=group).exclude(source=RecordSource.IMPLICIT).order_by("pk")
    if scope.changed_since is not None:
        users = users.filter(updated_at__gt=scope.changed_since)
    for user_id, metadata in users.values_list("user_id", "metadata").iterator(chunk_size=CHUNK):
        yield [user_id if spec.is_reserved else format_value(metadata.get(spec.name)) for spec in fields]


def _interaction_rows(
    group: DatasetGroup, fields: list[FieldSpec], report: ExportReport, scope: ExportScope
) -> Iterator[list[str]]:
    interactions = Interaction.objects.filter(dataset_group=group).order_by("pk")
    if scope.interactions_after_id is not None:
        interactions = interactions.filter(pk__gt=scope.interactions_after_id)
    if scope.interactions_through_id is not None:
        interactions = interactions.filter(pk__lte=scope.interactions_through_id)
    if scope.interaction_sources is not None:
        interactions = interactions.filter(source__in=scope.interaction_sources)
    if scope.interaction_forward_states is not None:
        interactions = interactions.filter(forward_state__in=scope.interaction_forward_states)
    incomplete = Q(user__isnull=True) | Q(item__isnull=True)
    report.skipped_anonymous = interactions.filter(incomplete).count()
    columns = interactions.exclude(incomplete).values_list(
        "user__user_id",
        "item__item_id",
        "timestamp",
        "event_type",
        "event_value",
        "impression",
        "recommendation_id",
        "properties",
    )
    for (
        user_id,
        item_id,
        timestamp,
        event_type,
        event_value,
        impression,
        recommendation_id,
        properties,
    ) in columns.iterator(chunk_size=CHUNK):
        reserved = {
            "USER_ID": user_id,
            "ITEM_ID": item_id,
            "TIMESTAMP": _epoch(timestamp),
            "EVENT_TYPE": event_type,
            "EVENT_VALUE": format_value(event_value),
            "IMPRESSION": format_value(impression or None),
            "RECOMMENDATION_ID": recommendation_id,
        }
        yield [
            reserved[spec.name] if spec.is_reserved else format_value(properties.get(spec.name))
            for spec in fields
        ]


_ROWS = {
    DatasetType.INTERACTIONS: _interaction_rows,
    DatasetType.ITEMS: _item_rows,
    DatasetType.USERS: _user_rows,
}
