"""Writes to the catalog (HackSoft-style services, keyword-only)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.files import File
from django.db import transaction

from catalog.errors import DatasetImportError, MetadataError
from catalog.models import (
    DatasetGroup,
    DatasetImportJob,
    DatasetSchema,
    EndUser,
    Interaction,
    Item,
    RecordSource,
)
from catalog.schemas import (
    DatasetType,
    FieldKind,
    FieldSpec,
    SchemaError,
    ValueParseError,
    fields_to_json,
    format_value,
    parse_value,
    validate_fields,
)
from catalog.selectors import dataset_schema_fields

__all__ = [
    "EndUserDataDeleted",
    "dataset_group_create",
    "dataset_import_job_create",
    "dataset_schema_save",
    "end_user_data_delete",
    "end_user_upsert",
    "item_upsert",
    "metadata_clean",
]


def dataset_group_create(*, name: str) -> DatasetGroup:
    """Create a dataset group (a separate catalog)."""
    group = DatasetGroup(name=name)
    group.full_clean()
    group.save()
    return group


def dataset_schema_save(
    *, dataset_group: DatasetGroup, dataset_type: DatasetType, fields: Sequence[FieldSpec]
) -> DatasetSchema:
    """Create or replace a dataset's schema after Personalize's checks (raises SchemaError)."""
    validate_fields(dataset_type, fields)
    schema, _ = DatasetSchema.objects.update_or_create(
        dataset_group=dataset_group, dataset_type=dataset_type, defaults={"fields": fields_to_json(fields)}
    )
    return schema


def metadata_clean(*, specs: Sequence[FieldSpec], values: Mapping[str, Any]) -> dict[str, Any]:
    """Check metadata against the schema's fields and return it typed; raises MetadataError.

    Values may be typed (from forms, JSON) or strings (as in CSV); unknown names are refused.
    """
    by_name = {spec.name: spec for spec in specs if spec.is_metadata}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise MetadataError(unknown[0], f"is not in the schema (known: {', '.join(by_name) or 'none'})")
    cleaned: dict[str, Any] = {}
    for name, spec in by_name.items():
        value = values.get(name)
        raw = value if isinstance(value, str) else format_value(value)
        try:
            parsed = parse_value(spec, raw)
        except ValueParseError as error:
            raise MetadataError(name, str(error)) from None
        if parsed is not None:
            cleaned[name] = parsed
    return cleaned


def _metadata_specs(dataset_group: DatasetGroup, dataset_type: DatasetType) -> list[FieldSpec]:
    specs = dataset_schema_fields(dataset_group=dataset_group, dataset_type=dataset_type)
    if specs is None:
        raise SchemaError(f"the {dataset_type} dataset has no schema yet; import a CSV or define one")
    return specs


@transaction.atomic
def item_upsert(
    *,
    dataset_group: DatasetGroup,
    item_id: str,
    metadata: Mapping[str, Any],
    creation_timestamp: float | None = None,
    source: RecordSource = RecordSource.PUT,
) -> Item:
    """Create or update one item, its metadata checked against the items schema."""
    cleaned = metadata_clean(specs=_metadata_specs(dataset_group, DatasetType.ITEMS), values=metadata)
    created_at = datetime.fromtimestamp(creation_timestamp, UTC) if creation_timestamp is not None else None
    item, _ = Item.objects.update_or_create(
        dataset_group=dataset_group,
        item_id=_checked_id("itemId", item_id),
        defaults={"metadata": cleaned, "creation_timestamp": created_at, "source": source},
    )
    return item


@transaction.atomic
def end_user_upsert(
    *,
    dataset_group: DatasetGroup,
    user_id: str,
    metadata: Mapping[str, Any],
    source: RecordSource = RecordSource.PUT,
) -> EndUser:
    """Create or update one end user, the metadata checked against the users schema."""
    cleaned = metadata_clean(specs=_metadata_specs(dataset_group, DatasetType.USERS), values=metadata)
    user, _ = EndUser.objects.update_or_create(
        dataset_group=dataset_group,
        user_id=_checked_id("userId", user_id),
        defaults={"metadata": cleaned, "source": source},
    )
    return user


def _checked_id(field: str, value: str) -> str:
    try:
        return parse_value(FieldSpec(field, FieldKind.ID, "string", nullable=False), value)
    except ValueParseError as error:
        raise MetadataError(field, str(error)) from None


def dataset_import_job_create(
    *,
    dataset_group: DatasetGroup,
    mode: str,
    interactions: File | None = None,
    items: File | None = None,
    users: File | None = None,
) -> DatasetImportJob:
    """Store the uploaded CSVs on a new job and enqueue its import once the job is committed."""
    from catalog.tasks import run_dataset_import

    if not any((interactions, items, users)):
        raise DatasetImportError("give at least one of interactions, items or users", file="(no file)")
    job = DatasetImportJob(dataset_group=dataset_group, mode=mode)
    for field_name, upload in (
        ("interactions_file", interactions),
        ("items_file", items),
        ("users_file", users),
    ):
        if upload is not None:
            getattr(job, field_name).save(Path(upload.name or "upload.csv").name, upload, save=False)
    job.save()
    transaction.on_commit(lambda: run_dataset_import.delay(job.pk))
    return job


@dataclass(frozen=True)
class EndUserDataDeleted:
    """What `end_user_data_delete` removed."""

    profile_deleted: bool
    interactions_deleted: int


@transaction.atomic
def end_user_data_delete(*, dataset_group: DatasetGroup, user_id: str) -> EndUserDataDeleted:
    """Delete a user's profile and every interaction that is theirs (one transaction).

    Theirs: the events recorded with their userId; the anonymous events of the sessions they used
    (the same person before signing in); and anonymous events whose sessionId equals their userId,
    which serving would otherwise count as theirs (Personalize's rule for an unknown userId).
    """
    user = EndUser.objects.filter(dataset_group=dataset_group, user_id=user_id).first()
    anonymous = Interaction.objects.filter(dataset_group=dataset_group, user__isnull=True)
    theirs = anonymous.filter(session_id=user_id) if user_id else anonymous.none()
    if user is not None:
        sessions = Interaction.objects.filter(user=user).exclude(session_id="").values("session_id")
        theirs = theirs | anonymous.filter(session_id__in=sessions)
    # The anonymous events first: the sessions are read from the user's own events.
    deleted, _ = theirs.delete()
    if user is not None:
        own, _ = Interaction.objects.filter(user=user).delete()
        deleted += own
        user.delete()
    return EndUserDataDeleted(profile_deleted=user is not None, interactions_deleted=deleted)
