"""Dataset schemas: the typed columns of the interactions, items and users datasets.

A schema is an ordered list of fields (the CSV header order). Reserved fields follow
Amazon Personalize; every other field is metadata of one kind: categorical (multi-values
joined by `|`), numerical, textual (items only) or boolean. This module parses and
formats values, infers a schema from a CSV sample and renders the Avro JSON that
Personalize's `CreateSchema` accepts. It imports nothing from Django.
"""

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "AVRO_NAMESPACE",
    "MAX_CATEGORICAL_VALUE_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_TEXTUAL_LENGTH",
    "MILLISECONDS_THRESHOLD",
    "REQUIRED_FIELDS",
    "RESERVED_FIELDS",
    "DatasetType",
    "FieldKind",
    "FieldSpec",
    "SchemaError",
    "ValueParseError",
    "avro_schema",
    "avro_schema_json",
    "fields_from_json",
    "fields_to_json",
    "format_value",
    "infer_fields",
    "parse_value",
    "validate_fields",
]

AVRO_NAMESPACE = "com.amazonaws.personalize.schema"
MAX_ID_LENGTH = 256
MAX_CATEGORICAL_VALUE_LENGTH = 1000
MAX_TEXTUAL_LENGTH = 20_000
MAX_METADATA_FIELDS = {"interactions": 5, "items": 100, "users": 25}


class DatasetType(StrEnum):
    """The three datasets of a dataset group, as Personalize names them (lower case)."""

    INTERACTIONS = "interactions"
    ITEMS = "items"
    USERS = "users"

    @property
    def avro_name(self) -> str:
        """The Avro record name Personalize requires for this dataset type."""
        return self.value.capitalize()


class FieldKind(StrEnum):
    """What a field holds; decides parsing, Avro type, forms and filter operators."""

    ID = "id"
    TIMESTAMP = "timestamp"
    STRING = "string"
    IMPRESSION = "impression"
    CATEGORICAL = "categorical"
    NUMERICAL = "numerical"
    TEXTUAL = "textual"
    BOOLEAN = "boolean"


NUMERIC_AVRO_TYPES = ("int", "long", "float", "double")
INTEGER_AVRO_TYPES = ("int", "long")
INTEGER_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
"""Avro's int (32-bit) and long (64-bit): a value outside its field's range is refused."""
MILLISECONDS_THRESHOLD = 100_000_000_000
"""Unix times above this (the year 5138 in seconds) only make sense as milliseconds: refused, since
Personalize wants seconds (1700000000000 is 2023 in milliseconds, the year 55840 in seconds)."""


class SchemaError(ValueError):
    """A schema definition that Personalize would refuse."""


class ValueParseError(ValueError):
    """A CSV or API value that does not fit its field."""


@dataclass(frozen=True)
class FieldSpec:
    """One column of a dataset: its name, kind, Avro type and whether it may be empty."""

    name: str
    kind: FieldKind
    avro_type: str = "string"
    nullable: bool = True

    @property
    def is_reserved(self) -> bool:
        """True for Personalize's reserved keywords (USER_ID, TIMESTAMP, ...)."""
        return self.name in ALL_RESERVED_NAMES

    @property
    def is_metadata(self) -> bool:
        """True for the deployment's own fields (stored in a record's metadata)."""
        return not self.is_reserved

    def avro_field(self) -> dict[str, Any]:
        """This field as an entry of an Avro record's `fields` list."""
        field: dict[str, Any] = {
            "name": self.name,
            "type": ["null", self.avro_type] if self.nullable else self.avro_type,
        }
        if self.kind is FieldKind.CATEGORICAL:
            field["categorical"] = True
        elif self.kind is FieldKind.TEXTUAL:
            field["textual"] = True
        return field


def _reserved(*specs: tuple[str, FieldKind, str, bool]) -> dict[str, FieldSpec]:
    return {name: FieldSpec(name, kind, avro, nullable) for name, kind, avro, nullable in specs}


RESERVED_FIELDS: dict[DatasetType, dict[str, FieldSpec]] = {
    DatasetType.INTERACTIONS: _reserved(
        ("USER_ID", FieldKind.ID, "string", False),
        ("ITEM_ID", FieldKind.ID, "string", False),
        ("TIMESTAMP", FieldKind.TIMESTAMP, "long", False),
        ("EVENT_TYPE", FieldKind.STRING, "string", False),
        ("EVENT_VALUE", FieldKind.NUMERICAL, "float", True),
        ("IMPRESSION", FieldKind.IMPRESSION, "string", True),
        ("RECOMMENDATION_ID", FieldKind.STRING, "string", True),
    ),
    DatasetType.ITEMS: _reserved(
        ("ITEM_ID", FieldKind.ID, "string", False),
        ("CREATION_TIMESTAMP", FieldKind.TIMESTAMP, "long", True),
    ),
    DatasetType.USERS: _reserved(("USER_ID", FieldKind.ID, "string", False)),
}
REQUIRED_FIELDS: dict[DatasetType, tuple[str, ...]] = {
    DatasetType.INTERACTIONS: ("USER_ID", "ITEM_ID", "TIMESTAMP"),
    DatasetType.ITEMS: ("ITEM_ID",),
    DatasetType.USERS: ("USER_ID",),
}
ALL_RESERVED_NAMES = frozenset(
    {"USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION"}
    | {"RECOMMENDATION_ID", "CREATION_TIMESTAMP", "EVENT_ATTRIBUTION_SOURCE"}
)

TRUE_WORDS = frozenset({"true"})
FALSE_WORDS = frozenset({"false"})


def parse_value(spec: FieldSpec, raw: str) -> Any:
    """Parse one CSV cell for `spec`; empty means null. Raises ValueParseError."""
    if raw == "":
        if spec.nullable:
            return None
        raise ValueParseError("a value is required")
    match spec.kind:
        case FieldKind.ID:
            if len(raw) > MAX_ID_LENGTH:
                raise ValueParseError(f"id is {len(raw)} characters long; the limit is {MAX_ID_LENGTH}")
            return raw
        case FieldKind.TIMESTAMP:
            return parse_epoch_seconds(raw)
        case FieldKind.NUMERICAL:
            return parse_number(raw, spec.avro_type)
        case FieldKind.BOOLEAN:
            word = raw.lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueParseError(f"{raw!r} is not a boolean (write true or false)")
        case FieldKind.IMPRESSION:
            ids = raw.split("|")
            if any(len(item_id) > MAX_ID_LENGTH for item_id in ids):
                raise ValueParseError(f"an impression id is longer than {MAX_ID_LENGTH} characters")
            return ids
        case FieldKind.CATEGORICAL:
            too_long = [v for v in raw.split("|") if len(v) > MAX_CATEGORICAL_VALUE_LENGTH]
            if too_long:
                raise ValueParseError(
                    f"categorical value of {len(too_long[0])} characters; the limit is "
                    f"{MAX_CATEGORICAL_VALUE_LENGTH}"
                )
            return raw
        case FieldKind.TEXTUAL:
            if len(raw) > MAX_TEXTUAL_LENGTH:
                raise ValueParseError(f"text of {len(raw)} characters; the limit is {MAX_TEXTUAL_LENGTH}")
            return raw
        case _:
            if len(raw) > MAX_ID_LENGTH:
                raise ValueParseError(f"value is {len(raw)} characters long; the limit is {MAX_ID_LENGTH}")
            return raw


def parse_epoch_seconds(raw: str) -> int:
    """Parse a Unix timestamp in whole seconds, as Personalize wants (1970 to MILLISECONDS_THRESHOLD)."""
    try:
        seconds = int(raw)
    except ValueError:
        raise ValueParseError(f"{raw!r} is not a Unix timestamp in whole seconds") from None
    if seconds > MILLISECONDS_THRESHOLD:
        raise ValueParseError(
            f"{raw} looks like milliseconds (or a finer unit); Personalize wants Unix timestamps in seconds"
        )
    if seconds < 0:
        raise ValueParseError(f"{raw} is before 1970; Personalize wants Unix timestamps in seconds")
    return seconds


def parse_number(raw: str, avro_type: str) -> int | float:
    """Parse a finite number of the given Avro numeric type."""
    number: int | float
    try:
        number = int(raw) if avro_type in INTEGER_AVRO_TYPES else float(raw)
    except ValueError:
        expected = "an integer" if avro_type in INTEGER_AVRO_TYPES else "a number"
        raise ValueParseError(f"{raw!r} is not {expected}") from None
    if avro_type in INTEGER_AVRO_TYPES:
        low, high = INTEGER_RANGES[avro_type]
        if not low <= number <= high:
            raise ValueParseError(f"{raw} is outside the range of an Avro {avro_type} ({low} to {high})")
        return number
    if not math.isfinite(number):
        raise ValueParseError(f"{raw!r} is not a finite number")
    return number


def format_value(value: Any) -> str:
    """Format a stored value as Personalize's CSV expects it (null is empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, list):
        return "|".join(value)
    return str(value)


def validate_fields(dataset_type: DatasetType, fields: Sequence[FieldSpec]) -> None:
    """Check a field list the way Personalize's CreateSchema does. Raises SchemaError."""
    names = [spec.name for spec in fields]
    missing = [name for name in REQUIRED_FIELDS[dataset_type] if name not in names]
    if missing:
        raise SchemaError(f"the {dataset_type} schema needs the field(s) {', '.join(missing)}")
    seen: dict[str, str] = {}
    for spec in fields:
        key = "".join(ch for ch in spec.name.upper() if ch.isalnum())
        if not spec.name or not spec.name.replace("_", "").isalnum():
            raise SchemaError(f"field name {spec.name!r} must be letters, digits and underscores")
        if key in seen:
            raise SchemaError(f"field names {seen[key]!r} and {spec.name!r} clash (Personalize ignores _)")
        seen[key] = spec.name
        reserved = RESERVED_FIELDS[dataset_type].get(spec.name)
        if spec.name in ALL_RESERVED_NAMES and reserved is None:
            raise SchemaError(f"{spec.name} is reserved and not part of the {dataset_type} dataset")
        if reserved is not None and (spec.kind, spec.avro_type) != (reserved.kind, reserved.avro_type):
            raise SchemaError(f"{spec.name} is reserved with type {reserved.avro_type}")
        if spec.is_metadata:
            _validate_metadata_field(dataset_type, spec)
    metadata = [spec for spec in fields if spec.is_metadata]
    if len(metadata) > MAX_METADATA_FIELDS[dataset_type]:
        raise SchemaError(
            f"{len(metadata)} metadata fields; the {dataset_type} dataset allows "
            f"{MAX_METADATA_FIELDS[dataset_type]}"
        )
    if sum(spec.kind is FieldKind.TEXTUAL for spec in metadata) > 1:
        raise SchemaError("the items dataset allows one textual field")


def _validate_metadata_field(dataset_type: DatasetType, spec: FieldSpec) -> None:
    allowed = {
        FieldKind.CATEGORICAL: ("string",),
        FieldKind.TEXTUAL: ("string",),
        FieldKind.NUMERICAL: NUMERIC_AVRO_TYPES,
        FieldKind.BOOLEAN: ("boolean",),
    }
    if spec.kind not in allowed:
        raise SchemaError(f"field {spec.name}: kind must be categorical, numerical, textual or boolean")
    if spec.avro_type not in allowed[spec.kind]:
        raise SchemaError(f"field {spec.name}: a {spec.kind} field cannot have Avro type {spec.avro_type}")
    if spec.kind is FieldKind.TEXTUAL and dataset_type is not DatasetType.ITEMS:
        raise SchemaError(f"field {spec.name}: textual fields exist only in the items dataset")


def avro_schema(dataset_type: DatasetType, fields: Sequence[FieldSpec]) -> dict[str, Any]:
    """The Avro schema (as a dict) Personalize's CreateSchema accepts for these fields."""
    return {
        "type": "record",
        "name": dataset_type.avro_name,
        "namespace": AVRO_NAMESPACE,
        "fields": [spec.avro_field() for spec in fields],
        "version": "1.0",
    }


def fields_to_json(fields: Iterable[FieldSpec]) -> list[dict[str, Any]]:
    """Serialise fields for a JSONField."""
    return [{**asdict(spec), "kind": str(spec.kind)} for spec in fields]


def fields_from_json(data: Iterable[dict[str, Any]]) -> list[FieldSpec]:
    """Deserialise fields stored by `fields_to_json`."""
    return [
        FieldSpec(
            name=entry["name"],
            kind=FieldKind(entry["kind"]),
            avro_type=entry.get("avro_type", "string"),
            nullable=entry.get("nullable", True),
        )
        for entry in data
    ]


def infer_fields(
    dataset_type: DatasetType, header: Sequence[str], columns: Sequence[Sequence[str]]
) -> list[FieldSpec]:
    """Infer a schema from a CSV header and its columns' values (see DESIGN.md's inference rules).

    Only metadata columns are looked at; reserved ones have fixed types.
    """
    reserved = RESERVED_FIELDS[dataset_type]
    fields: list[FieldSpec] = []
    textual_taken = False
    for index, name in enumerate(header):
        if name in reserved:
            fields.append(reserved[name])
            continue
        spec = _infer_metadata_field(dataset_type, name, columns[index], textual_allowed=not textual_taken)
        textual_taken = textual_taken or spec.kind is FieldKind.TEXTUAL
        fields.append(spec)
    return fields


def _infer_metadata_field(
    dataset_type: DatasetType, name: str, values: Sequence[str], *, textual_allowed: bool
) -> FieldSpec:
    present = [value for value in values if value != ""]
    nullable = True  # metadata may be missing for some records, as Personalize's schemas allow
    if present and all(value.lower() in TRUE_WORDS | FALSE_WORDS for value in present):
        return FieldSpec(name, FieldKind.BOOLEAN, "boolean", nullable)
    if present and all(_is_int(value) for value in present):
        fits_int = all(-(2**31) <= int(value) < 2**31 for value in present)
        return FieldSpec(name, FieldKind.NUMERICAL, "int" if fits_int else "long", nullable)
    if present and all(_is_finite_float(value) for value in present):
        return FieldSpec(name, FieldKind.NUMERICAL, "double", nullable)
    if textual_allowed and dataset_type is DatasetType.ITEMS and _looks_like_text(present):
        return FieldSpec(name, FieldKind.TEXTUAL, "string", nullable)
    return FieldSpec(name, FieldKind.CATEGORICAL, "string", nullable)


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def _is_finite_float(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _looks_like_text(values: Sequence[str]) -> bool:
    """Free text: mostly distinct values, mostly several words, no `|` lists."""
    if not values or any("|" in value for value in values):
        return False
    with_spaces = sum(" " in value for value in values)
    distinct_ratio = len(set(values)) / len(values)
    mean_length = sum(map(len, values)) / len(values)
    return distinct_ratio > 0.5 and with_spaces * 2 >= len(values) and mean_length >= 8


def avro_schema_json(dataset_type: DatasetType, fields: Sequence[FieldSpec]) -> str:
    """The Avro schema as the JSON text CreateSchema takes."""
    return json.dumps(avro_schema(dataset_type, fields), indent=2) + "\n"
