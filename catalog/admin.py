"""The operators' admin for the catalog: dataset groups, schemas, the three datasets and imports.

Item and end-user metadata is edited as typed form fields built from the group's dataset
schema (see `catalog.forms`), and list filters are built per categorical schema field.
Interactions are view-only: they arrive through imports and the events API.
"""

import json
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from django.contrib import admin, messages
from django.db.models import Count, Model, OuterRef, QuerySet, Subquery
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from catalog import services
from catalog.errors import DatasetGroupNotFoundError
from catalog.forms import (
    DatasetImportForm,
    DatasetSchemaForm,
    EndUserForm,
    ItemForm,
    MetadataModelForm,
    metadata_field_name,
    metadata_form_class,
)
from catalog.models import (
    DEFAULT_DATASET_GROUP,
    DatasetGroup,
    DatasetImportJob,
    DatasetSchema,
    EndUser,
    Interaction,
    Item,
)
from catalog.schemas import DatasetType, FieldKind, FieldSpec, SchemaError, avro_schema_json, format_value
from catalog.selectors import categorical_value_q, dataset_group_get, dataset_schema_fields

__all__ = [
    "CategoricalMetadataFilter",
    "DatasetGroupAdmin",
    "DatasetImportJobAdmin",
    "DatasetSchemaAdmin",
    "EndUserAdmin",
    "InteractionAdmin",
    "ItemAdmin",
    "MetadataRecordAdmin",
    "categorical_metadata_filters",
]

GROUP_FILTER_PARAM = "dataset_group__id__exact"
SUMMARY_LENGTH = 80


def _count_of(model: type[Model], foreign_key: str) -> Coalesce:
    """A correlated count of `model` rows pointing at the outer row (evaluated per shown row only)."""
    counts = (
        model.objects.filter(**{foreign_key: OuterRef("pk")})
        .order_by()
        .values(foreign_key)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts), 0)


class CategoricalMetadataFilter(admin.SimpleListFilter):
    """Rows whose categorical metadata field holds the chosen value (one value of a `|` multi-value).

    Concrete filters are built per field name by `categorical_metadata_filters`.
    """

    field_name: ClassVar[str]
    group_ids: ClassVar[tuple[int, ...]]
    max_choices: ClassVar[int] = 200
    max_rows_scanned: ClassVar[int] = 10_000

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        """The distinct single values of the field, split at `|`, in order."""
        raw_values = (
            model_admin.model.objects.filter(dataset_group__in=self.group_ids)
            .annotate(_value=KT(f"metadata__{self.field_name}"))
            .exclude(_value=None)
            .order_by()
            .values_list("_value", flat=True)
            .distinct()[: self.max_rows_scanned]
        )
        values: set[str] = set()
        for raw in raw_values:
            values.update(part for part in str(raw).split("|") if part)
            if len(values) >= self.max_choices:
                break
        return [(value, value) for value in sorted(values)[: self.max_choices]]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        """Keep rows where the chosen value is one of the field's `|`-joined values, exactly."""
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(
            categorical_value_q(field=self.field_name, value=value), dataset_group__in=self.group_ids
        )


def categorical_metadata_filters(
    *, dataset_type: DatasetType, dataset_group_id: str | None = None
) -> list[type[CategoricalMetadataFilter]]:
    """One list filter per categorical field of the schemas of `dataset_type` (one group's if given)."""
    schemas = DatasetSchema.objects.filter(dataset_type=dataset_type).order_by("dataset_group_id")
    if dataset_group_id is not None:
        if not dataset_group_id.isdigit():
            return []
        schemas = schemas.filter(dataset_group_id=int(dataset_group_id))
    groups_by_field: dict[str, list[int]] = {}
    for schema in schemas:
        try:
            specs = schema.field_specs
        except (KeyError, TypeError, ValueError):
            continue
        for spec in specs:
            if spec.is_metadata and spec.kind is FieldKind.CATEGORICAL:
                groups_by_field.setdefault(spec.name, []).append(schema.dataset_group_id)
    return [
        type(
            f"{name}CategoricalFilter",
            (CategoricalMetadataFilter,),
            {
                "title": name,
                "parameter_name": f"metadata_{name}",
                "field_name": name,
                "group_ids": tuple(group_ids),
                "__module__": __name__,
            },
        )
        for name, group_ids in groups_by_field.items()
    ]


def _metadata_summary(metadata: dict[str, Any] | None) -> str:
    text = ", ".join(f"{name}={format_value(value)}" for name, value in (metadata or {}).items())
    return Truncator(text).chars(SUMMARY_LENGTH)


class MetadataRecordAdmin(admin.ModelAdmin):
    """Shared admin of items and end users: schema-typed metadata fields, filters and counts.

    The add form uses the `default` dataset group unless `?dataset_group=NAME` is given (the
    changelist's group filter is carried over too); the group cannot change afterwards.
    """

    form_base: ClassVar[type[MetadataModelForm]]
    dataset_type: ClassVar[DatasetType]
    id_field: ClassVar[str]
    extra_fields: ClassVar[tuple[str, ...]] = ()
    interaction_foreign_key: ClassVar[str]

    list_select_related = ("dataset_group",)
    list_per_page = 50
    search_help_text = "Part of an id."

    # ---- changelist -----------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        """Rows with their interaction count (a correlated count, computed for shown rows only)."""
        return (
            super()
            .get_queryset(request)
            .annotate(interaction_count=_count_of(Interaction, self.interaction_foreign_key))
        )

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        """The group filter, then one filter per categorical field of the schema(s) in view."""
        return [
            "dataset_group",
            "source",
            *categorical_metadata_filters(
                dataset_type=self.dataset_type, dataset_group_id=request.GET.get(GROUP_FILTER_PARAM)
            ),
        ]

    @admin.display(description="metadata")
    def metadata_summary(self, obj: Item | EndUser) -> str:
        """The first metadata values, truncated."""
        return _metadata_summary(obj.metadata)

    @admin.display(description="interactions", ordering="interaction_count")
    def interactions(self, obj: Item | EndUser) -> int:
        """How many interactions name this record."""
        return getattr(obj, "interaction_count", 0)

    @admin.display(description="stored metadata (JSON)")
    def stored_metadata(self, obj: Item | EndUser) -> SafeString:
        """The metadata exactly as stored, typed."""
        return format_html("<pre>{}</pre>", json.dumps(obj.metadata or {}, indent=2, ensure_ascii=False))

    # ---- which group and schema a form is for ------------------------------------------------

    def requested_dataset_group(self, request: HttpRequest) -> DatasetGroup:
        """The group a new record goes to: `?dataset_group=NAME`, the changelist filter, or `default`."""
        name = request.GET.get("dataset_group")
        if name:
            return dataset_group_get(name=name)
        preserved = dict(parse_qsl(request.GET.get("_changelist_filters", "")))
        group_id = preserved.get(GROUP_FILTER_PARAM, "")
        if group_id.isdigit():
            group = DatasetGroup.objects.filter(pk=int(group_id)).first()
            if group is not None:
                return group
        return dataset_group_get(name=DEFAULT_DATASET_GROUP)

    def _form_context(
        self, request: HttpRequest, obj: Model | None
    ) -> tuple[DatasetGroup, list[FieldSpec] | None]:
        group = obj.dataset_group if obj is not None else self.requested_dataset_group(request)
        cache: dict[int, list[FieldSpec] | None] = request.__dict__.setdefault("_catalog_schema_specs", {})
        if group.pk not in cache:
            cache[group.pk] = dataset_schema_fields(dataset_group=group, dataset_type=self.dataset_type)
        return group, cache[group.pk]

    # ---- forms ---------------------------------------------------------------------------------

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        """The add form, or back to the list with a message when the requested group does not exist."""
        try:
            self.requested_dataset_group(request)
        except DatasetGroupNotFoundError as error:
            self.message_user(request, f"Cannot add: {error}.", messages.ERROR)
            return HttpResponseRedirect(
                reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
            )
        return super().add_view(request, form_url, extra_context)

    def get_form(
        self, request: HttpRequest, obj: Model | None = None, change: bool = False, **kwargs: Any
    ) -> type:
        """A form with one typed field per metadata field of the record's group schema."""
        group, specs = self._form_context(request, obj)
        kwargs["form"] = metadata_form_class(self.form_base, dataset_group=group, specs=specs)
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        """The group and source always; the id too once the record exists (it is its identity)."""
        readonly = ["dataset_group", "source", "updated_at", "stored_metadata"]
        return [*readonly, self.id_field] if obj is not None else readonly

    def get_fieldsets(self, request: HttpRequest, obj: Model | None = None) -> list[tuple[str | None, dict]]:
        """The record's own fields, then its metadata fields in schema order."""
        group, specs = self._form_context(request, obj)
        main = ["dataset_group", self.id_field, *self.extra_fields]
        if obj is not None:
            main += ["source", "updated_at"]
        metadata_names = [metadata_field_name(spec.name) for spec in specs or [] if spec.is_metadata]
        if obj is not None and not self.has_change_permission(request, obj):
            metadata_names = []
        extra = ["stored_metadata"] if obj is not None else []
        return [
            (None, {"fields": main}),
            (
                "Metadata",
                {
                    "fields": [*metadata_names, *extra],
                    "description": self._metadata_description(group, specs, adding=obj is None),
                },
            ),
        ]

    def _metadata_description(
        self, group: DatasetGroup, specs: list[FieldSpec] | None, *, adding: bool
    ) -> str:
        if specs is None:
            schema_url = reverse("admin:catalog_datasetschema_add")
            text = format_html(
                "The {} dataset of group <strong>{}</strong> has no schema yet: "
                '<a href="{}?dataset_group={}&amp;dataset_type={}">define one</a> or import a CSV.',
                self.dataset_type,
                group,
                schema_url,
                group.pk,
                self.dataset_type,
            )
        else:
            text = format_html(
                "Fields of the {} schema of dataset group <strong>{}</strong>; values are checked as an "
                "import checks them.",
                self.dataset_type,
                group,
            )
        if not adding:
            return text
        others = (
            DatasetGroup.objects.exclude(pk=group.pk).order_by("name").values_list("name", flat=True)[:20]
        )
        if not others:
            return text
        links = format_html_join(
            ", ", '<a href="?dataset_group={}">{}</a>', ((name, name) for name in others)
        )
        return format_html("{} To add to another group: {}.", text, links)

    # ---- saving through the services -----------------------------------------------------------

    def upsert(self, *, obj: Any, form: MetadataModelForm) -> Model:
        """Write the record through the catalog service; implemented per model."""
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        """Save through `item_upsert` / `end_user_upsert`, as the put APIs do."""
        record = self.upsert(obj=obj, form=form)
        obj.pk = record.pk
        obj.refresh_from_db()


@admin.register(Item)
class ItemAdmin(MetadataRecordAdmin):
    """Items: search by id, filter by group and categorical metadata, typed metadata fields."""

    form_base = ItemForm
    form = ItemForm
    dataset_type = DatasetType.ITEMS
    id_field = "item_id"
    extra_fields = ("creation_timestamp",)
    interaction_foreign_key = "item"
    list_display = ("item_id", "dataset_group", "metadata_summary", "interactions", "source", "updated_at")
    search_fields = ("item_id",)

    def upsert(self, *, obj: Item, form: MetadataModelForm) -> Item:
        """Create or update the item with `item_upsert`."""
        created = obj.creation_timestamp.timestamp() if obj.creation_timestamp else None
        return services.item_upsert(
            dataset_group=obj.dataset_group,
            item_id=obj.item_id,
            metadata=form.cleaned_metadata,
            creation_timestamp=created,
        )


@admin.register(EndUser)
class EndUserAdmin(MetadataRecordAdmin):
    """End users: search by id, filter by group and categorical metadata, typed metadata fields."""

    form_base = EndUserForm
    form = EndUserForm
    dataset_type = DatasetType.USERS
    id_field = "user_id"
    interaction_foreign_key = "user"
    list_display = ("user_id", "dataset_group", "metadata_summary", "interactions", "source", "updated_at")
    search_fields = ("user_id",)

    def upsert(self, *, obj: EndUser, form: MetadataModelForm) -> EndUser:
        """Create or update the end user with `end_user_upsert`."""
        return services.end_user_upsert(
            dataset_group=obj.dataset_group, user_id=obj.user_id, metadata=form.cleaned_metadata
        )


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    """Interactions, view only: they arrive through imports and the events API."""

    list_display = (
        "timestamp",
        "event_type",
        "user_or_session",
        "item_link",
        "event_value",
        "dataset_group",
        "source",
    )
    list_display_links = ("timestamp",)
    list_filter = ("event_type", "dataset_group", "source")
    list_select_related = ("dataset_group", "user", "item")
    search_fields = ("=user__user_id", "=item__item_id", "=session_id")
    search_help_text = "An exact user id, item id or session id."
    date_hierarchy = "timestamp"
    show_full_result_count = False
    list_per_page = 100
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Never: events come from imports and putEvents."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Interaction | None = None) -> bool:
        """Never: the event log is immutable."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Interaction | None = None) -> bool:
        """Never: delete a user, an item or a dataset group instead."""
        return False

    @admin.display(description="user / session", ordering="user__user_id")
    def user_or_session(self, obj: Interaction) -> str:
        """The user id, or the session of an anonymous visitor."""
        if obj.user is not None:
            return obj.user.user_id
        return f"session {obj.session_id}" if obj.session_id else "-"

    @admin.display(description="item", ordering="item__item_id")
    def item_link(self, obj: Interaction) -> str:
        """The item id."""
        return obj.item.item_id if obj.item is not None else "-"


@admin.register(DatasetGroup)
class DatasetGroupAdmin(admin.ModelAdmin):
    """Dataset groups with the size of each dataset; `default` cannot be deleted."""

    list_display = ("name", "items", "end_users", "interactions", "schemas_summary", "created_at")
    search_fields = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[DatasetGroup]:
        """Groups with their three counts (correlated subqueries; groups are few)."""
        return (
            super()
            .get_queryset(request)
            .annotate(
                item_count=_count_of(Item, "dataset_group"),
                end_user_count=_count_of(EndUser, "dataset_group"),
                interaction_count=_count_of(Interaction, "dataset_group"),
            )
            .prefetch_related("schemas")
        )

    def get_readonly_fields(self, request: HttpRequest, obj: DatasetGroup | None = None) -> list[str]:
        """The name is the group's identity (commands and the API use it): fixed once created."""
        return ["name", "created_at"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: DatasetGroup | None = None) -> bool:
        """Any group but `default`."""
        if obj is not None and obj.name == DEFAULT_DATASET_GROUP:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: DatasetGroup, form: ModelForm, change: bool) -> None:
        """Create through `dataset_group_create`."""
        if change:
            return
        group = services.dataset_group_create(name=obj.name)
        obj.pk = group.pk
        obj.refresh_from_db()

    @admin.display(description="items", ordering="item_count")
    def items(self, obj: DatasetGroup) -> int:
        """Items in the group."""
        return obj.item_count

    @admin.display(description="end users", ordering="end_user_count")
    def end_users(self, obj: DatasetGroup) -> int:
        """End users in the group."""
        return obj.end_user_count

    @admin.display(description="interactions", ordering="interaction_count")
    def interactions(self, obj: DatasetGroup) -> int:
        """Interactions in the group."""
        return obj.interaction_count

    @admin.display(description="schemas")
    def schemas_summary(self, obj: DatasetGroup) -> str:
        """Which datasets have a schema."""
        return ", ".join(sorted(schema.dataset_type for schema in obj.schemas.all())) or "-"


@admin.register(DatasetSchema)
class DatasetSchemaAdmin(admin.ModelAdmin):
    """Dataset schemas: the field list edited as JSON, checked as CreateSchema checks it."""

    form = DatasetSchemaForm
    list_display = (
        "__str__",
        "dataset_group",
        "dataset_type",
        "field_count",
        "metadata_fields",
        "updated_at",
    )
    list_filter = ("dataset_group", "dataset_type")
    list_select_related = ("dataset_group",)

    def get_readonly_fields(self, request: HttpRequest, obj: DatasetSchema | None = None) -> list[str]:
        """Group and dataset type are fixed once the schema exists; the Avro JSON is derived."""
        return ["dataset_group", "dataset_type", "avro_schema", "updated_at"] if obj is not None else []

    def get_fieldsets(
        self, request: HttpRequest, obj: DatasetSchema | None = None
    ) -> list[tuple[str | None, dict]]:
        """Identity and field list; on change also the rendered Avro schema."""
        fieldsets: list[tuple[str | None, dict]] = [
            (None, {"fields": ["dataset_group", "dataset_type", "fields"]})
        ]
        if obj is not None:
            fieldsets.append(
                ("Avro schema (as CreateSchema takes it)", {"fields": ["avro_schema", "updated_at"]})
            )
        return fieldsets

    def save_model(self, request: HttpRequest, obj: DatasetSchema, form: ModelForm, change: bool) -> None:
        """Save through `dataset_schema_save`."""
        schema = services.dataset_schema_save(
            dataset_group=obj.dataset_group,
            dataset_type=DatasetType(obj.dataset_type),
            fields=form.cleaned_specs,
        )
        obj.pk = schema.pk
        obj.refresh_from_db()

    @admin.display(description="fields")
    def field_count(self, obj: DatasetSchema) -> int:
        """Number of fields."""
        return len(obj.fields or [])

    @admin.display(description="metadata fields")
    def metadata_fields(self, obj: DatasetSchema) -> str:
        """The metadata fields with their kinds."""
        try:
            specs = obj.metadata_specs
        except (KeyError, TypeError, ValueError):
            return "(unreadable)"
        return (
            Truncator(", ".join(f"{spec.name} ({spec.kind})" for spec in specs)).chars(SUMMARY_LENGTH) or "-"
        )

    @admin.display(description="Avro JSON")
    def avro_schema(self, obj: DatasetSchema) -> SafeString:
        """The Avro schema JSON rendered from the field list."""
        try:
            text = avro_schema_json(DatasetType(obj.dataset_type), obj.field_specs)
        except (KeyError, TypeError, ValueError, SchemaError) as error:
            text = f"(cannot render: {error})"
        return format_html("<pre>{}</pre>", text)


@admin.register(DatasetImportJob)
class DatasetImportJobAdmin(admin.ModelAdmin):
    """Import jobs: the Import CSV page starts one; a job is then read-only (status, report, failure)."""

    form = DatasetImportForm
    list_display = ("__str__", "dataset_group", "mode", "status", "created_at", "finished_at", "failure")
    list_filter = ("status", "mode", "dataset_group")
    list_select_related = ("dataset_group",)
    add_fieldsets = [
        (None, {"fields": ["dataset_group", "mode", "interactions_file", "items_file", "users_file"]})
    ]
    view_fieldsets = [
        (None, {"fields": ["dataset_group", "mode", "status", "created_at", "finished_at"]}),
        ("Files", {"fields": ["interactions_file", "items_file", "users_file"]}),
        ("Outcome", {"fields": ["failure_reason", "report_text"]}),
    ]
    readonly_fields = ("report_text",)

    def has_change_permission(self, request: HttpRequest, obj: DatasetImportJob | None = None) -> bool:
        """Never: a job records what happened."""
        return False

    def get_fieldsets(
        self, request: HttpRequest, obj: DatasetImportJob | None = None
    ) -> list[tuple[str | None, dict]]:
        """Upload fields on the Import CSV page; the outcome on a job's page."""
        return self.add_fieldsets if obj is None else self.view_fieldsets

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """The `default` group unless the query string names one."""
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("dataset_group", dataset_group_get(name=DEFAULT_DATASET_GROUP).pk)
        return initial

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        """The Import CSV page."""
        return super().add_view(request, form_url, {"title": "Import CSV", **(extra_context or {})})

    def save_model(self, request: HttpRequest, obj: DatasetImportJob, form: ModelForm, change: bool) -> None:
        """Start the import through `dataset_import_job_create` (it runs after the commit)."""
        data = form.cleaned_data
        job = services.dataset_import_job_create(
            dataset_group=data["dataset_group"],
            mode=data["mode"],
            interactions=data.get("interactions_file") or None,
            items=data.get("items_file") or None,
            users=data.get("users_file") or None,
        )
        obj.pk = job.pk
        obj.refresh_from_db()

    def response_add(
        self, request: HttpRequest, obj: DatasetImportJob, post_url_continue: str | None = None
    ) -> HttpResponse:
        """Go to the job's page, where its status and report show."""
        self.message_user(request, f"Started {obj}; reload its page to follow it.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:catalog_datasetimportjob_change", args=[obj.pk]))

    @admin.display(description="failure reason")
    def failure(self, obj: DatasetImportJob) -> str:
        """The failure reason, truncated."""
        return Truncator(obj.failure_reason).chars(SUMMARY_LENGTH)

    @admin.display(description="report")
    def report_text(self, obj: DatasetImportJob) -> SafeString:
        """The import's report as the command prints it."""
        return format_html("<pre>{}</pre>", obj.report or "-")
