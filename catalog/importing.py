"""Import Amazon Personalize CSV files into a dataset group, all or nothing.

Every file is read and checked completely before anything is written; a bad row
raises DatasetImportError naming file, line and column. Writes happen in one
transaction: PostgreSQL gets interactions through COPY, other databases through
batched `executemany`.
"""

import csv
import io
import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice, repeat
from pathlib import Path
from typing import IO, Any

from django.core.files import File
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef
from tqdm import tqdm

from catalog.errors import DatasetImportError
from catalog.models import DatasetGroup, EndUser, ImportMode, Interaction, Item, RecordSource
from catalog.schemas import (
    MAX_ID_LENGTH,
    REQUIRED_FIELDS,
    DatasetType,
    FieldKind,
    FieldSpec,
    SchemaError,
    ValueParseError,
    infer_fields,
    parse_value,
    validate_fields,
)
from catalog.selectors import dataset_group_get, dataset_schema_fields
from catalog.services import dataset_schema_save

__all__ = ["CsvSource", "ImportReport", "dataset_import", "minimum_data_verdict"]

CsvSource = str | Path | File
"""A CSV to import: a path, or a Django File (an upload or a stored file)."""

MIN_INTERACTIONS = 1000
MIN_USERS_WITH_TWO_INTERACTIONS = 25
WRITE_BATCH = 50_000


@dataclass
class ImportReport:
    """What an import did: rows per dataset, inferred schemas, bare records, data verdict."""

    interactions: int = 0
    items: int = 0
    users: int = 0
    implicit_items: int = 0
    implicit_users: int = 0
    inferred: list[str] = field(default_factory=list)
    minimum_data: str = ""

    def summary(self) -> str:
        """Human-readable lines, as the import command prints them."""
        lines = list(self.inferred)
        lines.append(f"Imported {self.interactions} interactions, {self.items} items, {self.users} users.")
        if self.implicit_items or self.implicit_users:
            lines.append(
                f"Interactions named {self.implicit_items} items and {self.implicit_users} users "
                "without metadata; they were added as bare records."
            )
        if self.minimum_data:
            lines.append(self.minimum_data)
        return "\n".join(lines)


@dataclass
class ParsedCsv:
    """One checked CSV: its fields in header order and its typed columns."""

    dataset_type: DatasetType
    file_name: str
    fields: list[FieldSpec]
    columns: dict[str, list[Any]]
    row_count: int
    inferred: bool

    def metadata_records(self) -> list[dict[str, Any]]:
        """Per row, the non-null metadata values by field name."""
        names = [spec.name for spec in self.fields if spec.is_metadata]
        columns = [self.columns[name] for name in names]
        return (
            [
                {name: value for name, value in zip(names, values, strict=True) if value is not None}
                for values in zip(*columns, strict=True)
            ]
            if names
            else [{} for _ in range(self.row_count)]
        )


def dataset_import(
    *,
    dataset_group: str = "default",
    interactions: CsvSource | None = None,
    items: CsvSource | None = None,
    users: CsvSource | None = None,
    mode: str = ImportMode.FULL,
    progress: bool = False,
) -> ImportReport:
    """Check and import Personalize CSVs into a group; `full` replaces only the given datasets."""
    if mode not in ImportMode.values:
        raise DatasetImportError(f"mode must be one of {', '.join(ImportMode.values)}", file="--mode")
    sources = {DatasetType.INTERACTIONS: interactions, DatasetType.ITEMS: items, DatasetType.USERS: users}
    if all(source is None for source in sources.values()):
        raise DatasetImportError("give at least one of interactions, items or users", file="(no file)")
    group = dataset_group_get(name=dataset_group)
    parsed = {
        dataset_type: _parse_csv(source, dataset_type, group, progress=progress)
        for dataset_type, source in sources.items()
        if source is not None
    }
    report = ImportReport()
    with transaction.atomic():
        for csv_data in parsed.values():
            if csv_data.inferred:
                dataset_schema_save(
                    dataset_group=group, dataset_type=csv_data.dataset_type, fields=csv_data.fields
                )
                report.inferred.append(_describe_inferred(csv_data))
        full = mode == ImportMode.FULL
        if DatasetType.ITEMS in parsed:
            report.items = _write_items(group, parsed[DatasetType.ITEMS], full=full)
        if DatasetType.USERS in parsed:
            report.users = _write_users(group, parsed[DatasetType.USERS], full=full)
        if DatasetType.INTERACTIONS in parsed:
            _write_interactions(
                group, parsed[DatasetType.INTERACTIONS], full=full, report=report, progress=progress
            )
        if full:
            _delete_orphan_bare_records(group)
    if DatasetType.INTERACTIONS in parsed:
        report.minimum_data = minimum_data_verdict(dataset_group=group)
    return report


def minimum_data_verdict(*, dataset_group: DatasetGroup) -> str:
    """Personalize's minimum-data check on a group's interactions, as one sentence."""
    interactions = Interaction.objects.filter(dataset_group=dataset_group)
    total = interactions.count()
    active_users = (
        interactions.filter(user__isnull=False)
        .values("user")
        .annotate(events=Count("id"))
        .filter(events__gte=2)
        .count()
    )
    counts = (
        f"{total} interactions (at least {MIN_INTERACTIONS} needed), {active_users} users with "
        f"at least 2 interactions (at least {MIN_USERS_WITH_TWO_INTERACTIONS} needed)"
    )
    if total < MIN_INTERACTIONS:
        return f"Minimum data: {counts}. Training would fail: Dataset has fewer than 1000 interactions."
    if active_users < MIN_USERS_WITH_TWO_INTERACTIONS:
        return (
            f"Minimum data: {counts}. Training would fail: Create failed. Dataset has fewer than "
            "25 users with at least 2 interactions each."
        )
    return f"Minimum data: {counts}: enough to train."


# --- reading and checking -------------------------------------------------------------------


@contextmanager
def _open_text(source: CsvSource) -> Iterator[tuple[str, IO[str]]]:
    if isinstance(source, str | Path):
        name = str(source)
        try:
            binary: IO[bytes] = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as error:
            raise DatasetImportError(f"cannot open: {error.strerror}", file=name) from None
    else:
        name = Path(source.name or "upload.csv").name
        source.open("rb")
        binary = source.file
    try:
        yield name, io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    finally:
        binary.close()


def _parse_csv(
    source: CsvSource, dataset_type: DatasetType, group: DatasetGroup, *, progress: bool
) -> ParsedCsv:
    with _open_text(source) as (name, text):
        reader = csv.reader(text, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise DatasetImportError("the file is empty; expected a header row", file=name, line=1)
            rows, lines = _read_rows(reader, len(header), name, progress=progress)
        except UnicodeDecodeError:
            raise DatasetImportError(
                "is not UTF-8 text (save the CSV as UTF-8)", file=name, line=_first_undecodable_line(source)
            ) from None
        except csv.Error as error:
            raise DatasetImportError(f"malformed CSV: {error}", file=name, line=reader.line_num) from None
    existing = dataset_schema_fields(dataset_group=group, dataset_type=dataset_type)
    fields = _header_fields(header, dataset_type, existing, name, rows)
    columns = _typed_columns(fields, rows, lines, name)
    return ParsedCsv(dataset_type, name, fields, columns, len(rows), inferred=existing is None)


def _first_undecodable_line(source: CsvSource) -> int:
    """The 1-based line of the first bytes that are not UTF-8 (the decoder reads ahead in blocks)."""
    with _open_text(source) as (_, text):
        for number, line in enumerate(text.buffer, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def _read_rows(reader: Any, width: int, name: str, *, progress: bool) -> tuple[list[list[str]], list[int]]:
    rows: list[list[str]] = []
    lines: list[int] = []
    for row in tqdm(reader, desc=f"Reading {name}", unit=" rows", disable=None if progress else True):
        if len(row) != width:
            if not row:
                continue
            raise DatasetImportError(
                f"has {len(row)} columns; the header has {width}", file=name, line=reader.line_num
            )
        rows.append(row)
        lines.append(reader.line_num)
    return rows, lines


def _header_fields(
    header: list[str],
    dataset_type: DatasetType,
    existing: list[FieldSpec] | None,
    name: str,
    rows: Sequence[Sequence[str]],
) -> list[FieldSpec]:
    duplicates = sorted({column for column in header if header.count(column) > 1})
    if duplicates:
        raise DatasetImportError(
            "column appears twice in the header", file=name, line=1, column=duplicates[0]
        )
    missing = [column for column in REQUIRED_FIELDS[dataset_type] if column not in header]
    if missing:
        raise DatasetImportError(
            f"the header lacks the required column(s) {', '.join(missing)}", file=name, line=1
        )
    if existing is None:
        fields = infer_fields(dataset_type, header, rows)
        try:
            validate_fields(dataset_type, fields)
        except SchemaError as error:
            raise DatasetImportError(str(error), file=name, line=1) from None
        return fields
    by_name = {spec.name: spec for spec in existing}
    for column in header:
        if column not in by_name:
            raise DatasetImportError(
                f"is not a field of the {dataset_type} schema ({', '.join(by_name)})",
                file=name,
                line=1,
                column=column,
            )
    required_missing = [spec.name for spec in existing if not spec.nullable and spec.name not in header]
    if required_missing:
        raise DatasetImportError(
            f"the schema's non-nullable field(s) {', '.join(required_missing)} are missing", file=name, line=1
        )
    return [by_name[column] for column in header]


def _typed_columns(
    fields: list[FieldSpec], rows: list[list[str]], lines: list[int], name: str
) -> dict[str, list[Any]]:
    raw_columns = list(zip(*rows, strict=True)) if rows else [() for _ in fields]
    columns: dict[str, list[Any]] = {}
    for spec, raw in zip(fields, raw_columns, strict=True):
        try:
            columns[spec.name] = _convert_column(spec, raw)
        except _BadValue as bad:
            raise DatasetImportError(
                bad.message, file=name, line=lines[bad.index], column=spec.name
            ) from None
    return columns


class _BadValue(Exception):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


def _convert_column(spec: FieldSpec, raw: Sequence[str]) -> list[Any]:
    """Typed values of one column: a fast path for the bulky kinds, exact errors otherwise."""
    fast = _FAST_CONVERTERS.get(spec.kind)
    if fast is not None:
        try:
            return fast(spec, raw)
        except (ValueError, OverflowError):
            pass  # the exact per-value check below finds and names the bad value
    values = []
    for index, value in enumerate(raw):
        try:
            values.append(parse_value(spec, value))
        except ValueParseError as error:
            raise _BadValue(index, f"{error} (value {_shorten(value)})") from None
    return values


def _fast_ids(spec: FieldSpec, raw: Sequence[str]) -> list[str]:
    if not all(0 < len(value) <= MAX_ID_LENGTH for value in raw):
        raise ValueError
    return list(raw)


def _fast_strings(spec: FieldSpec, raw: Sequence[str]) -> list[str | None]:
    if not all(len(value) <= MAX_ID_LENGTH for value in raw) or (not spec.nullable and "" in raw):
        raise ValueError
    return [value or None for value in raw]


def _fast_timestamps(spec: FieldSpec, raw: Sequence[str]) -> list[int | None]:
    if spec.nullable:
        return [int(value) if value else None for value in raw]
    return list(map(int, raw))


def _fast_numbers(spec: FieldSpec, raw: Sequence[str]) -> list[float | int | None]:
    number = int if spec.avro_type in ("int", "long") else float
    values = [number(value) if value else None for value in raw]
    if not spec.nullable and None in values:
        raise ValueError
    if number is float and not all(math.isfinite(value) for value in values if value is not None):
        raise ValueError
    return values


_FAST_CONVERTERS: dict[FieldKind, Callable[[FieldSpec, Sequence[str]], list[Any]]] = {
    FieldKind.ID: _fast_ids,
    FieldKind.STRING: _fast_strings,
    FieldKind.TIMESTAMP: _fast_timestamps,
    FieldKind.NUMERICAL: _fast_numbers,
}


def _shorten(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _describe_inferred(csv_data: ParsedCsv) -> str:
    described = ", ".join(
        f"{spec.name} {spec.kind}" + (f" ({spec.avro_type})" if spec.kind is FieldKind.NUMERICAL else "")
        for spec in csv_data.fields
        if spec.is_metadata
    )
    source = f"No {csv_data.dataset_type} schema yet; inferred from {csv_data.file_name}"
    return f"{source}: {described or 'no metadata'}."


# --- writing ---------------------------------------------------------------------------------


def _epoch_to_datetime(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _write_items(group: DatasetGroup, csv_data: ParsedCsv, *, full: bool) -> int:
    if full:
        Item.objects.filter(dataset_group=group, source=RecordSource.IMPORT).update(
            metadata={}, creation_timestamp=None, source=RecordSource.IMPLICIT
        )
    created = csv_data.columns.get("CREATION_TIMESTAMP") or [None] * csv_data.row_count
    records = {
        item_id: Item(
            dataset_group=group,
            item_id=item_id,
            creation_timestamp=_epoch_to_datetime(created_at),
            metadata=metadata,
            source=RecordSource.IMPORT,
        )
        for item_id, created_at, metadata in zip(
            csv_data.columns["ITEM_ID"], created, csv_data.metadata_records(), strict=True
        )
    }
    Item.objects.bulk_create(
        records.values(),
        batch_size=5000,
        update_conflicts=True,
        unique_fields=["dataset_group", "item_id"],
        update_fields=["creation_timestamp", "metadata", "source", "updated_at"],
    )
    return csv_data.row_count


def _write_users(group: DatasetGroup, csv_data: ParsedCsv, *, full: bool) -> int:
    if full:
        EndUser.objects.filter(dataset_group=group, source=RecordSource.IMPORT).update(
            metadata={}, source=RecordSource.IMPLICIT
        )
    records = {
        user_id: EndUser(dataset_group=group, user_id=user_id, metadata=metadata, source=RecordSource.IMPORT)
        for user_id, metadata in zip(csv_data.columns["USER_ID"], csv_data.metadata_records(), strict=True)
    }
    EndUser.objects.bulk_create(
        records.values(),
        batch_size=5000,
        update_conflicts=True,
        unique_fields=["dataset_group", "user_id"],
        update_fields=["metadata", "source", "updated_at"],
    )
    return csv_data.row_count


def _ensure_bare_records(
    model: type[Item] | type[EndUser], group: DatasetGroup, external_ids: set[str]
) -> tuple[dict[str, int], int]:
    """Map external ids to primary keys, adding bare records for ids the group lacks."""
    id_field = "item_id" if model is Item else "user_id"
    known = dict(model.objects.filter(dataset_group=group).values_list(id_field, "pk"))
    missing = external_ids - known.keys()
    if missing:
        model.objects.bulk_create(
            [
                model(dataset_group=group, source=RecordSource.IMPLICIT, **{id_field: value})
                for value in missing
            ],
            batch_size=5000,
        )
        known = dict(model.objects.filter(dataset_group=group).values_list(id_field, "pk"))
    return known, len(missing)


INTERACTION_COLUMNS = (
    ("dataset_group_id", "int8"),
    ("user_id", "int8"),
    ("session_id", "text"),
    ("item_id", "int8"),
    ("event_type", "text"),
    ("event_value", "float8"),
    ("timestamp", "timestamptz"),
    ("impression", "jsonb"),
    ("recommendation_id", "text"),
    ("properties", "jsonb"),
    ("source", "text"),
)


def _write_interactions(
    group: DatasetGroup, csv_data: ParsedCsv, *, full: bool, report: ImportReport, progress: bool
) -> None:
    columns = csv_data.columns
    user_pks, report.implicit_users = _ensure_bare_records(EndUser, group, set(columns["USER_ID"]))
    item_pks, report.implicit_items = _ensure_bare_records(Item, group, set(columns["ITEM_ID"]))
    if full:
        Interaction.objects.filter(dataset_group=group, source=RecordSource.IMPORT).delete()
    count = csv_data.row_count

    def column(name: str, default: Any = None) -> Sequence[Any]:
        return columns[name] if name in columns else repeat(default, count)

    rows = zip(
        repeat(group.pk, count),
        map(user_pks.__getitem__, columns["USER_ID"]),
        repeat("", count),
        map(item_pks.__getitem__, columns["ITEM_ID"]),
        (event_type or "" for event_type in column("EVENT_TYPE")),
        column("EVENT_VALUE"),
        map(_epoch_to_datetime, columns["TIMESTAMP"]),
        (impression or [] for impression in column("IMPRESSION")),
        (recommendation_id or "" for recommendation_id in column("RECOMMENDATION_ID")),
        csv_data.metadata_records(),
        repeat(RecordSource.IMPORT.value, count),
        strict=True,
    )
    with tqdm(
        total=count, desc="Writing interactions", unit=" rows", disable=None if progress else True
    ) as bar:
        for written in _insert_interactions(rows):
            bar.update(written)
    report.interactions = count


def _insert_interactions(rows: Iterator[tuple[Any, ...]]) -> Iterator[int]:
    """Insert rows in batches (binary COPY on PostgreSQL), yielding how many each batch wrote."""
    table = Interaction._meta.db_table
    column_list = ", ".join(name for name, _ in INTERACTION_COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({column_list}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([pg_type for _, pg_type in INTERACTION_COLUMNS])
                while batch := list(islice(rows, WRITE_BATCH)):
                    for row in batch:
                        copy.write_row(row)
                    yield len(batch)
            return
        placeholders = ", ".join(["%s"] * len(INTERACTION_COLUMNS))
        sql = f"INSERT INTO {table} ({column_list}) VALUES ({placeholders})"
        while batch := list(islice(map(_json_columns_as_text, rows), WRITE_BATCH)):
            cursor.executemany(sql, batch)
            yield len(batch)


def _json_columns_as_text(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """SQLite and other drivers take JSON as text and datetimes as naive UTC."""
    group, user, session, item, event_type, value, moment, impression, recommendation, properties, source = (
        row
    )
    return (
        group,
        user,
        session,
        item,
        event_type,
        value,
        str(moment.replace(tzinfo=None)),
        json.dumps(impression) if impression else "[]",
        recommendation,
        json.dumps(properties) if properties else "{}",
        source,
    )


def _delete_orphan_bare_records(group: DatasetGroup) -> None:
    """After a FULL import, drop bare records that no interaction names any more."""
    for model, field_name in ((Item, "item"), (EndUser, "user")):
        referenced = Interaction.objects.filter(**{field_name: OuterRef("pk")})
        model.objects.filter(dataset_group=group, source=RecordSource.IMPLICIT).exclude(
            Exists(referenced)
        ).delete()
