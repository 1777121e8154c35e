"""Catalog models: Personalize's dataset group and its three datasets.

Every row belongs to exactly one dataset group; external ids (`item_id`, `user_id`)
are unique within their group only. Metadata fields live in a JSON column typed by
the group's `DatasetSchema`.
"""

from django.core.validators import RegexValidator
from django.db import models

from catalog.schemas import MAX_ID_LENGTH, DatasetType, FieldSpec, fields_from_json

__all__ = [
    "DEFAULT_DATASET_GROUP",
    "DatasetGroup",
    "DatasetImportJob",
    "DatasetSchema",
    "EndUser",
    "ForwardState",
    "ImportMode",
    "Interaction",
    "Item",
    "JobStatus",
    "RecordSource",
]

DEFAULT_DATASET_GROUP = "default"


class ForwardState(models.IntegerChoices):
    """Whether a row has been forwarded to Amazon Personalize (the outbox, recommendations/outbox.py).

    Only rows written through putEvents / putItems / putUsers / the admin while the group's event
    tracker is on Personalize become PENDING; bulk imports reach Personalize through dataset import
    jobs and stay NONE, as does everything of a group on the local engine.
    """

    NONE = 0, "Not forwarded"
    PENDING = 1, "Waiting to be sent to Personalize"
    SENT = 2, "Accepted by Personalize"
    REFUSED = 3, "Refused by Personalize as invalid; not retried"


def _forward_state_field() -> models.PositiveSmallIntegerField:
    # db_default too, so plain-SQL inserts (COPY imports, putEvents) that do not name the column get NONE.
    return models.PositiveSmallIntegerField(
        choices=ForwardState.choices,
        default=ForwardState.NONE,
        db_default=ForwardState.NONE,
        editable=False,
    )


class DatasetGroup(models.Model):
    """Personalize's unit of isolation: one catalog; nothing crosses groups."""

    name = models.CharField(
        max_length=63,
        unique=True,
        validators=[RegexValidator(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$", "Letters, digits, - and _ only.")],
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Who forwards the group's outbox to Personalize now, on databases without row locks (SQLite).
    outbox_lease_token = models.CharField(max_length=32, blank=True, default="", editable=False)
    outbox_lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DatasetSchema(models.Model):
    """The ordered, typed columns of one dataset of a group (its CSV header)."""

    dataset_group = models.ForeignKey(DatasetGroup, on_delete=models.CASCADE, related_name="schemas")
    dataset_type = models.CharField(max_length=16, choices=[(t.value, t.avro_name) for t in DatasetType])
    fields = models.JSONField(help_text="Ordered field list: name, kind, avro_type, nullable.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset_group", "dataset_type"], name="one_schema_per_dataset"),
        ]
        ordering = ["dataset_group_id", "dataset_type"]

    def __str__(self) -> str:
        return f"{self.dataset_group} / {self.dataset_type}"

    @property
    def field_specs(self) -> list[FieldSpec]:
        """The fields as typed specs."""
        return fields_from_json(self.fields)

    @property
    def metadata_specs(self) -> list[FieldSpec]:
        """The deployment's own fields (not Personalize's reserved ones)."""
        return [spec for spec in self.field_specs if spec.is_metadata]


class RecordSource(models.TextChoices):
    """How a record arrived; a FULL import replaces only bulk-imported records."""

    IMPORT = "import", "Bulk import"
    PUT = "put", "Put API / event tracker"
    IMPLICIT = "implicit", "Named by an interaction"


class Item(models.Model):
    """A catalog item (Personalize's Items dataset)."""

    dataset_group = models.ForeignKey(DatasetGroup, on_delete=models.CASCADE, related_name="items")
    item_id = models.CharField("item id", max_length=MAX_ID_LENGTH)
    creation_timestamp = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=8, choices=RecordSource.choices, default=RecordSource.PUT)
    updated_at = models.DateTimeField(auto_now=True)
    forward_state = _forward_state_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset_group", "item_id"], name="item_id_unique_in_group"),
        ]
        # The filters' catalog version reads the group's newest updated_at: an index look-up.
        indexes = [
            models.Index(fields=["dataset_group", "updated_at"], name="item_group_updated"),
            models.Index(
                fields=["dataset_group", "id"],
                name="item_forward_pending",
                condition=models.Q(forward_state=ForwardState.PENDING),
            ),
        ]
        ordering = ["item_id"]

    def __str__(self) -> str:
        return self.item_id


class EndUser(models.Model):
    """A person the recommendations are for (Personalize's Users dataset); not a login."""

    dataset_group = models.ForeignKey(DatasetGroup, on_delete=models.CASCADE, related_name="end_users")
    user_id = models.CharField("user id", max_length=MAX_ID_LENGTH)
    metadata = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=8, choices=RecordSource.choices, default=RecordSource.PUT)
    updated_at = models.DateTimeField(auto_now=True)
    forward_state = _forward_state_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset_group", "user_id"], name="user_id_unique_in_group"),
        ]
        indexes = [
            models.Index(
                fields=["dataset_group", "id"],
                name="enduser_forward_pending",
                condition=models.Q(forward_state=ForwardState.PENDING),
            ),
        ]
        ordering = ["user_id"]
        verbose_name = "end user"

    def __str__(self) -> str:
        return self.user_id


class Interaction(models.Model):
    """One event of a user (or an anonymous session) with an item."""

    # The event table is append-heavy: its foreign keys are enforced by the services that write
    # it and by Django's cascades, not by per-row database triggers (which doubled import time),
    # and are served by the composite indexes below rather than one index each.
    dataset_group = models.ForeignKey(
        DatasetGroup,
        on_delete=models.CASCADE,
        related_name="interactions",
        db_constraint=False,
        db_index=False,
    )
    user = models.ForeignKey(
        EndUser,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="interactions",
        db_constraint=False,
        db_index=False,
    )
    session_id = models.CharField(max_length=MAX_ID_LENGTH, blank=True, default="")
    item = models.ForeignKey(
        Item,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="interactions",
        db_constraint=False,
        db_index=False,
    )
    event_type = models.CharField(max_length=MAX_ID_LENGTH, blank=True, default="")
    event_value = models.FloatField(null=True, blank=True)
    timestamp = models.DateTimeField()
    event_id = models.CharField(max_length=MAX_ID_LENGTH, null=True, blank=True)  # noqa: DJ001 - null = no id, unique otherwise
    impression = models.JSONField(default=list, blank=True)
    recommendation_id = models.CharField(max_length=MAX_ID_LENGTH, blank=True, default="")
    properties = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=8, choices=RecordSource.choices, default=RecordSource.PUT)
    forward_state = _forward_state_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["dataset_group", "event_id"],
                condition=models.Q(event_id__isnull=False),
                name="event_id_unique_in_group",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-timestamp"], name="interaction_user_newest"),
            models.Index(fields=["item", "timestamp"], name="interaction_item_since"),
            models.Index(
                fields=["dataset_group", "session_id", "-timestamp"],
                name="interaction_session_newest",
                condition=~models.Q(session_id=""),
            ),
            models.Index(fields=["dataset_group", "timestamp"], name="interaction_group_time"),
            # The outbox reads a group's unsent events in order: a small index of pending rows only.
            models.Index(
                fields=["dataset_group", "id"],
                name="interaction_forward_pending",
                condition=models.Q(forward_state=ForwardState.PENDING),
            ),
        ]
        ordering = ["-timestamp", "-id"]

    def __str__(self) -> str:
        return f"{self.event_type or 'event'} {self.item_id} by {self.user_id or self.session_id}"


class ImportMode(models.TextChoices):
    """Personalize's import modes: FULL replaces bulk data, INCREMENTAL upserts by id."""

    FULL = "full", "Full"
    INCREMENTAL = "incremental", "Incremental"


class JobStatus(models.TextChoices):
    """Personalize's job states."""

    PENDING = "CREATE PENDING"
    IN_PROGRESS = "CREATE IN_PROGRESS"
    ACTIVE = "ACTIVE"
    FAILED = "CREATE FAILED"


class DatasetImportJob(models.Model):
    """A CSV import run by a Celery task (like Personalize's CreateDatasetImportJob)."""

    dataset_group = models.ForeignKey(DatasetGroup, on_delete=models.CASCADE, related_name="import_jobs")
    mode = models.CharField(max_length=12, choices=ImportMode.choices, default=ImportMode.INCREMENTAL)
    interactions_file = models.FileField(upload_to="imports/", blank=True)
    items_file = models.FileField(upload_to="imports/", blank=True)
    users_file = models.FileField(upload_to="imports/", blank=True)
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.PENDING)
    failure_reason = models.TextField(blank=True)
    report = models.TextField(blank=True, help_text="What the import did, as the command prints it.")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import #{self.pk} into {self.dataset_group} ({self.status})"
