"""Admin forms of the catalog: metadata typed by the dataset schema, schema editing, CSV import.

Metadata fields are built from the dataset group's schema, so an operator edits an item's
`RELEASE_YEAR` as a number and its `GENRES` as text; on save the values go through
`catalog.services.metadata_clean`, the same check imports and the put APIs use, and any
refusal is shown on the field it concerns.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django import forms
from django.core.exceptions import ValidationError

from catalog.errors import MetadataError
from catalog.models import DatasetGroup, DatasetImportJob, DatasetSchema, EndUser, Item
from catalog.schemas import (
    DatasetType,
    FieldKind,
    FieldSpec,
    SchemaError,
    fields_from_json,
    format_value,
    validate_fields,
)
from catalog.services import metadata_clean

__all__ = [
    "METADATA_FIELD_PREFIX",
    "DatasetImportForm",
    "DatasetSchemaForm",
    "EndUserForm",
    "ItemForm",
    "MetadataModelForm",
    "metadata_field_name",
    "metadata_form_class",
    "metadata_form_field",
]

METADATA_FIELD_PREFIX = "metadata__"
FIELD_KEYS = ("name", "kind", "avro_type", "nullable")
INTEGER_AVRO_TYPES = ("int", "long")
BOOLEAN_CHOICES = [("", "(no value)"), ("true", "true"), ("false", "false")]


def metadata_field_name(name: str) -> str:
    """The form field name of a metadata field (prefixed so it never clashes with a model field)."""
    return f"{METADATA_FIELD_PREFIX}{name}"


def _parse_boolean_choice(value: str) -> bool:
    return value == "true"


def metadata_form_field(spec: FieldSpec) -> forms.Field:
    """A form field for one metadata field of a schema, required when the field is not nullable."""
    required = not spec.nullable
    avro_note = "" if spec.avro_type == spec.kind else spec.avro_type
    notes = ", ".join(note for note in (avro_note, "" if spec.nullable else "required") if note)
    kind_note = f"{spec.kind} ({notes})" if notes else str(spec.kind)
    common: dict[str, Any] = {"label": spec.name, "required": required}
    match spec.kind:
        case FieldKind.CATEGORICAL:
            return forms.CharField(
                **common,
                help_text=f"{kind_note}. Several values are joined by | (for example Comedy|Drama).",
                widget=forms.TextInput(attrs={"class": "vLargeTextField"}),
            )
        case FieldKind.NUMERICAL if spec.avro_type in INTEGER_AVRO_TYPES:
            return forms.IntegerField(
                **common,
                help_text=f"{kind_note}: a whole number.",
                error_messages={
                    "invalid": "Enter a whole number; this field is an Avro " + spec.avro_type + "."
                },
            )
        case FieldKind.NUMERICAL:
            return forms.FloatField(
                **common,
                help_text=f"{kind_note}: a number.",
                error_messages={
                    "invalid": "Enter a finite number; this field is an Avro " + spec.avro_type + "."
                },
            )
        case FieldKind.TEXTUAL:
            return forms.CharField(
                **common, help_text=f"{kind_note}: free text.", widget=forms.Textarea(attrs={"rows": 4})
            )
        case FieldKind.BOOLEAN:
            return forms.TypedChoiceField(
                **common,
                choices=BOOLEAN_CHOICES,
                coerce=_parse_boolean_choice,
                empty_value=None,
                help_text=f"{kind_note}: true or false.",
            )
        case _:
            return forms.CharField(**common, help_text=f"{kind_note}.")


def _initial_value(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if spec.kind is FieldKind.BOOLEAN:
        return format_value(value) if isinstance(value, bool) else str(value).lower()
    if spec.kind is FieldKind.CATEGORICAL and isinstance(value, list):
        return format_value(value)
    return value


class MetadataModelForm(forms.ModelForm):
    """Base of the item and end-user forms: one typed form field per metadata field of the schema.

    Concrete classes are built per dataset group by `metadata_form_class`; `cleaned_metadata`
    holds the typed metadata (as `metadata_clean` returns it) once the form is valid.
    """

    dataset_group: ClassVar[DatasetGroup]
    dataset_type: ClassVar[DatasetType]
    metadata_specs: ClassVar[list[FieldSpec] | None] = None
    id_field: ClassVar[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cleaned_metadata: dict[str, Any] = {}
        if self.instance.pk is None:
            self.instance.dataset_group = self.dataset_group
        stored = self.instance.metadata or {}
        for spec in self.metadata_specs or []:
            name = metadata_field_name(spec.name)
            if name in self.fields and spec.name in stored:
                self.initial.setdefault(name, _initial_value(spec, stored[spec.name]))

    def clean(self) -> dict[str, Any]:
        """Check the metadata as an import would and refuse an id already taken in the group."""
        cleaned_data = super().clean()
        if self.metadata_specs is None:
            raise ValidationError(
                f"The {self.dataset_type} dataset of group {self.dataset_group} has no schema yet; "
                "import a CSV or define the schema first.",
                code="no_schema",
            )
        self._check_id_unique(cleaned_data)
        values = {
            spec.name: cleaned_data.get(metadata_field_name(spec.name))
            for spec in self.metadata_specs
            if metadata_field_name(spec.name) not in self.errors
        }
        try:
            self.cleaned_metadata = metadata_clean(specs=self.metadata_specs, values=values)
        except MetadataError as error:
            message = str(error).removeprefix(f"field {error.field}: ")
            field = metadata_field_name(error.field)
            self.add_error(field if field in self.fields else None, message)
        return cleaned_data

    def _check_id_unique(self, cleaned_data: Mapping[str, Any]) -> None:
        external_id = cleaned_data.get(self.id_field)
        if self.id_field not in self.fields or not external_id:
            return
        taken = (
            self._meta.model.objects.filter(dataset_group=self.dataset_group, **{self.id_field: external_id})
            .exclude(pk=self.instance.pk)
            .exists()
        )
        if taken:
            noun = self._meta.model._meta.verbose_name
            self.add_error(
                self.id_field,
                f"An {noun} with id {external_id!r} already exists in group {self.dataset_group}.",
            )


class ItemForm(MetadataModelForm):
    """An item: its id, creation time and the items schema's metadata fields."""

    dataset_type = DatasetType.ITEMS
    id_field = "item_id"

    class Meta:
        model = Item
        fields = ["item_id", "creation_timestamp"]


class EndUserForm(MetadataModelForm):
    """An end user: its id and the users schema's metadata fields."""

    dataset_type = DatasetType.USERS
    id_field = "user_id"

    class Meta:
        model = EndUser
        fields = ["user_id"]


def metadata_form_class(
    base: type[MetadataModelForm], *, dataset_group: DatasetGroup, specs: Sequence[FieldSpec] | None
) -> type[MetadataModelForm]:
    """A subclass of `base` for one dataset group, declaring one form field per metadata field."""
    metadata = [spec for spec in specs or [] if spec.is_metadata]
    attrs: dict[str, Any] = {
        "dataset_group": dataset_group,
        "metadata_specs": list(metadata) if specs is not None else None,
        "__module__": __name__,
    }
    attrs.update({metadata_field_name(spec.name): metadata_form_field(spec) for spec in metadata})
    return type(f"{base.__name__}For{dataset_group.pk}", (base,), attrs)


FIELDS_HELP = (
    "The ordered field list (the CSV header order) as JSON: a list of objects with "
    '"name", "kind" (id, timestamp, string, impression, categorical, numerical, textual, boolean), '
    '"avro_type" (string, int, long, float, double, boolean) and "nullable". Example: '
    '[{"name": "ITEM_ID", "kind": "id", "avro_type": "string", "nullable": false}, '
    '{"name": "GENRES", "kind": "categorical", "avro_type": "string", "nullable": true}]'
)


class SchemaFieldsJSONField(forms.CharField):
    """A JSON textarea holding a schema's field list; cleans to the list of field dicts."""

    widget = forms.Textarea(attrs={"rows": 20, "cols": 90, "spellcheck": "false", "class": "vLargeTextField"})

    def prepare_value(self, value: Any) -> Any:
        """Show stored field lists as indented JSON; leave submitted text as typed."""
        if isinstance(value, list):
            return json.dumps(value, indent=2)
        return value

    def to_python(self, value: Any) -> Any:
        """Parse the JSON text; the result is checked further by the form."""
        if isinstance(value, list):
            return value
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValidationError(
                f"Invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}.",
                code="invalid_json",
            ) from None


def _entries_to_specs(entries: Any) -> list[FieldSpec]:
    """Turn parsed JSON into field specs with messages that name the offending entry."""
    if not isinstance(entries, list) or not entries:
        raise ValidationError("The schema needs a non-empty JSON list of fields.", code="not_a_list")
    for position, entry in enumerate(entries, start=1):
        where = f"field {position}"
        if not isinstance(entry, dict):
            raise ValidationError(f"{where} must be a JSON object with name and kind.", code="bad_entry")
        if isinstance(entry.get("name"), str):
            where = f"field {entry['name']}"
        unknown = sorted(set(entry) - set(FIELD_KEYS))
        if unknown:
            raise ValidationError(f"{where}: unknown key(s) {', '.join(unknown)}.", code="bad_entry")
        for key, kind in (("name", str), ("kind", str)):
            if not isinstance(entry.get(key), kind):
                raise ValidationError(f"{where}: {key!r} is required and must be a string.", code="bad_entry")
        if "avro_type" in entry and not isinstance(entry["avro_type"], str):
            raise ValidationError(f"{where}: 'avro_type' must be a string.", code="bad_entry")
        if "nullable" in entry and not isinstance(entry["nullable"], bool):
            raise ValidationError(f"{where}: 'nullable' must be true or false.", code="bad_entry")
        if entry["kind"] not in {kind.value for kind in FieldKind}:
            kinds = ", ".join(kind.value for kind in FieldKind)
            raise ValidationError(f"{where}: kind {entry['kind']!r} is not one of {kinds}.", code="bad_kind")
    return fields_from_json(entries)


class DatasetSchemaForm(forms.ModelForm):
    """A dataset schema with its field list edited as JSON and checked as CreateSchema would."""

    fields = SchemaFieldsJSONField(help_text=FIELDS_HELP)

    class Meta:
        model = DatasetSchema
        fields = ["dataset_group", "dataset_type", "fields"]

    def clean(self) -> dict[str, Any]:
        """Validate the field list for the dataset type; keep the specs in `cleaned_specs`."""
        cleaned_data = super().clean()
        self.cleaned_specs: list[FieldSpec] = []
        entries = cleaned_data.get("fields")
        dataset_type = cleaned_data.get("dataset_type") or self.instance.dataset_type
        if entries is None or "fields" in self.errors or not dataset_type:
            return cleaned_data
        try:
            specs = _entries_to_specs(entries)
            validate_fields(DatasetType(dataset_type), specs)
        except ValidationError as error:
            self.add_error("fields", error)
        except SchemaError as error:
            self.add_error("fields", f"Invalid schema: {error}.")
        else:
            self.cleaned_specs = specs
        return cleaned_data


class DatasetImportForm(forms.ModelForm):
    """The Import CSV page: Personalize-format files for any of the three datasets and a mode."""

    class Meta:
        model = DatasetImportJob
        fields = ["dataset_group", "mode", "interactions_file", "items_file", "users_file"]
        help_texts = {
            "mode": "Full replaces the bulk-imported records of the datasets whose files are given; "
            "incremental adds and updates by id.",
            "interactions_file": "USER_ID,ITEM_ID,TIMESTAMP[,EVENT_TYPE,EVENT_VALUE,...]",
            "items_file": "ITEM_ID[,CREATION_TIMESTAMP] and metadata columns; multi-values joined by |.",
            "users_file": "USER_ID and metadata columns; multi-values joined by |.",
        }

    def clean(self) -> dict[str, Any]:
        """Require at least one file."""
        cleaned_data = super().clean()
        if not any(cleaned_data.get(name) for name in ("interactions_file", "items_file", "users_file")):
            raise ValidationError("Choose at least one CSV file to import.", code="no_file")
        return cleaned_data
