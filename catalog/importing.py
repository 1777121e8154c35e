"""Import Amazon Personalize CSV files into a dataset group, all or nothing.

Every file is read and checked completely (`csv_reading`) before anything is written;
a bad row raises DatasetImportError naming file, line and column. Writes happen in one
transaction. Interactions are converted column-wise with Arrow and reach PostgreSQL
through `COPY` (CSV), other databases through batched `executemany`.
"""

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone
from tqdm import tqdm

from catalog.csv_reading import CsvSource, ParsedCsv, read_dataset_csv
from catalog.errors import DatasetImportError
from catalog.models import DatasetGroup, EndUser, ImportMode, Interaction, Item, RecordSource
from catalog.schemas import DatasetType, FieldKind
from catalog.selectors import dataset_group_get, dataset_schema_fields
from catalog.services import dataset_schema_save

__all__ = ["CsvSource", "ImportReport", "dataset_import", "minimum_data_verdict"]

MIN_INTERACTIONS = 1000
MIN_USERS_WITH_TWO_INTERACTIONS = 25
WRITE_BATCH = 100_000
BULK_LOAD_ROWS = 100_000
ANALYZE_ROWS = 10_000
"""An import of at least this many rows refreshes the planner's statistics afterwards."""
"""A FULL import of at least this many interactions rebuilds the event indexes on PostgreSQL."""


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
        dataset_type: read_dataset_csv(
            source,
            dataset_type,
            dataset_schema_fields(dataset_group=group, dataset_type=dataset_type),
            progress=progress,
        )
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
    if sum(csv_data.row_count for csv_data in parsed.values()) >= ANALYZE_ROWS:
        _refresh_planner_statistics()
    if DatasetType.INTERACTIONS in parsed:
        report.minimum_data = minimum_data_verdict(dataset_group=group)
    return report


def _refresh_planner_statistics() -> None:
    """ANALYZE the catalog tables after a bulk load, so the planner picks their indexes at once."""
    with connection.cursor() as cursor:
        for model in (Interaction, Item, EndUser):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


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


# --- writing ---------------------------------------------------------------------------------


def _describe_inferred(csv_data: ParsedCsv) -> str:
    described = ", ".join(
        f"{spec.name} {spec.kind}" + (f" ({spec.avro_type})" if spec.kind is FieldKind.NUMERICAL else "")
        for spec in csv_data.fields
        if spec.is_metadata
    )
    source = f"No {csv_data.dataset_type} schema yet; inferred from {csv_data.file_name}"
    return f"{source}: {described or 'no metadata'}."


def _epoch_to_datetime(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _write_items(group: DatasetGroup, csv_data: ParsedCsv, *, full: bool) -> int:
    if full:
        Item.objects.filter(dataset_group=group, source=RecordSource.IMPORT).update(
            metadata={}, creation_timestamp=None, source=RecordSource.IMPLICIT, updated_at=timezone.now()
        )
    created = (
        csv_data.values("CREATION_TIMESTAMP")
        if "CREATION_TIMESTAMP" in csv_data.columns
        else [None] * csv_data.row_count
    )
    records = {
        item_id: Item(
            dataset_group=group,
            item_id=item_id,
            creation_timestamp=_epoch_to_datetime(created_at),
            metadata=metadata,
            source=RecordSource.IMPORT,
        )
        for item_id, created_at, metadata in zip(
            csv_data.values("ITEM_ID"), created, csv_data.metadata_records(), strict=True
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
            metadata={}, source=RecordSource.IMPLICIT, updated_at=timezone.now()
        )
    records = {
        user_id: EndUser(dataset_group=group, user_id=user_id, metadata=metadata, source=RecordSource.IMPORT)
        for user_id, metadata in zip(csv_data.values("USER_ID"), csv_data.metadata_records(), strict=True)
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
    model: type[Item] | type[EndUser], group: DatasetGroup, external_ids: pa.Array
) -> tuple[pa.Array, int]:
    """Primary keys for external ids, adding bare records for ids the group lacks."""
    id_field = "item_id" if model is Item else "user_id"
    wanted = pc.unique(external_ids)

    def known() -> tuple[pa.Array, pa.Array]:
        rows = model.objects.filter(dataset_group=group).values_list(id_field, "pk")
        ids, pks = zip(*rows, strict=True) if rows else ((), ())
        return pa.array(ids, pa.string()), pa.array(pks, pa.int64())

    known_ids, known_pks = known()
    absent = pc.filter(wanted, pc.invert(pc.is_in(wanted, value_set=known_ids)))
    missing = pc.take(absent, pc.sort_indices(absent))
    if len(missing):
        count = len(missing)
        bare = pa.table(
            {
                "dataset_group_id": pa.repeat(group.pk, count),
                id_field: missing,
                "metadata": pa.repeat("{}", count),
                "source": pa.repeat(RecordSource.IMPLICIT.value, count),
                "updated_at": pa.repeat(str(connection.ops.adapt_datetimefield_value(timezone.now())), count),
            }
        )
        for _ in _insert_rows(model._meta.db_table, bare):
            pass
        known_ids, known_pks = known()
    return pc.take(known_pks, pc.index_in(external_ids, value_set=known_ids)), len(missing)


def _write_interactions(
    group: DatasetGroup, csv_data: ParsedCsv, *, full: bool, report: ImportReport, progress: bool
) -> None:
    columns = csv_data.columns
    count = csv_data.row_count
    user_pks, report.implicit_users = _ensure_bare_records(EndUser, group, columns["USER_ID"])
    item_pks, report.implicit_items = _ensure_bare_records(Item, group, columns["ITEM_ID"])

    def constant(value: object) -> pa.Array:
        return pa.repeat(value, count)

    def text_or_empty(name: str) -> pa.Array:
        return pc.fill_null(columns[name], "") if name in columns else constant("")

    table = pa.table(
        {
            "dataset_group_id": constant(group.pk),
            "user_id": user_pks,
            "session_id": constant(""),
            "item_id": item_pks,
            "event_type": text_or_empty("EVENT_TYPE"),
            "event_value": columns.get("EVENT_VALUE", pa.nulls(count, pa.float64())),
            # Naive UTC text: Django's format on SQLite; PostgreSQL reads it in the UTC session zone.
            "timestamp": pc.cast(pc.cast(columns["TIMESTAMP"], pa.timestamp("s")), pa.string()),
            "impression": _json_texts(csv_data, "IMPRESSION", "[]"),
            "recommendation_id": text_or_empty("RECOMMENDATION_ID"),
            "properties": _properties_json(csv_data),
            "source": constant(RecordSource.IMPORT.value),
        }
    )
    bulk_load = full and count >= BULK_LOAD_ROWS and connection.vendor == "postgresql"
    with _secondary_indexes_rebuilt(Interaction._meta.db_table, enabled=bulk_load):
        if full:
            Interaction.objects.filter(dataset_group=group, source=RecordSource.IMPORT).delete()
        with tqdm(
            total=count, desc="Writing interactions", unit=" rows", disable=None if progress else True
        ) as bar:
            for written in _insert_rows(Interaction._meta.db_table, table):
                bar.update(written)
    report.interactions = count


def _json_texts(csv_data: ParsedCsv, name: str, empty: str) -> pa.Array:
    if name not in csv_data.columns:
        return pa.repeat(empty, csv_data.row_count)
    return pa.array([json.dumps(value) if value else empty for value in csv_data.values(name)], pa.string())


def _properties_json(csv_data: ParsedCsv) -> pa.Array:
    if not any(spec.is_metadata for spec in csv_data.fields):
        return pa.repeat("{}", csv_data.row_count)
    return pa.array(
        [json.dumps(record) if record else "{}" for record in csv_data.metadata_records()], pa.string()
    )


def _insert_rows(sql_table: str, table: pa.Table) -> Iterator[int]:
    """Insert an Arrow table's rows in batches (CSV COPY on PostgreSQL), yielding batch sizes.

    Columns are named as the SQL table's; strings are always quoted in the CSV, so an empty
    string stays empty and a null (unquoted, empty) becomes NULL.
    """
    column_list = ", ".join(table.column_names)
    batches = table.to_batches(max_chunksize=WRITE_BATCH)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            csv_options = pa_csv.WriteOptions(include_header=False)
            with cursor.cursor.copy(f"COPY {sql_table} ({column_list}) FROM STDIN (FORMAT csv)") as copy:
                for batch in batches:
                    buffer = io.BytesIO()
                    pa_csv.write_csv(batch, buffer, csv_options)
                    copy.write(buffer.getvalue())
                    yield batch.num_rows
            return
        placeholders = ", ".join(["%s"] * table.num_columns)
        for batch in batches:
            rows = zip(*(column.to_pylist() for column in batch.columns), strict=True)
            cursor.executemany(f"INSERT INTO {sql_table} ({column_list}) VALUES ({placeholders})", rows)
            yield batch.num_rows


@contextmanager
def _secondary_indexes_rebuilt(table: str, *, enabled: bool) -> Iterator[None]:
    """PostgreSQL bulk load: drop the table's secondary indexes, load, then build them again.

    Building an index once is about three times faster than updating it row by row. The
    DROP locks the table until the import commits, so readers of interactions wait:
    only large FULL imports take this path (see BULK_LOAD_ROWS).
    """
    if not enabled:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = %s AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            [table],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            cursor.execute(definition)


def _delete_orphan_bare_records(group: DatasetGroup) -> None:
    """After a FULL import, drop bare records that no interaction names any more."""
    for model, field_name in ((Item, "item"), (EndUser, "user")):
        referenced = Interaction.objects.filter(**{field_name: OuterRef("pk")})
        model.objects.filter(dataset_group=group, source=RecordSource.IMPLICIT).exclude(
            Exists(referenced)
        ).delete()
