"""Dataset schema parsing, inference and Avro rendering."""

import pytest

from catalog.schemas import (
    DatasetType,
    FieldKind,
    FieldSpec,
    SchemaError,
    ValueParseError,
    avro_schema,
    format_value,
    infer_fields,
    parse_value,
    validate_fields,
)


def test_inference_follows_the_design_rules() -> None:
    # given an items CSV with numeric-looking ids, a year, pipe genres, titles and a flag
    header = ["ITEM_ID", "RELEASE_YEAR", "GENRES", "TITLE", "PRICE", "ON_SALE", "BRAND"]
    rows = [
        ["1", "1995", "Animation|Comedy", "Toy Story and friends", "9.5", "true", "acme"],
        ["2", "1995", "Action", "GoldenEye the movie", "12", "false", "acme"],
        ["3", "", "Thriller", "Four Rooms at night", "3.25", "true", "zenith"],
    ]
    # when the schema is inferred
    fields = {
        spec.name: spec for spec in infer_fields(DatasetType.ITEMS, header, list(zip(*rows, strict=True)))
    }
    # then ids stay strings and each metadata column gets its kind
    assert fields["ITEM_ID"] == FieldSpec("ITEM_ID", FieldKind.ID, "string", nullable=False)
    assert (fields["RELEASE_YEAR"].kind, fields["RELEASE_YEAR"].avro_type) == (FieldKind.NUMERICAL, "int")
    assert fields["RELEASE_YEAR"].nullable is True
    assert fields["PRICE"].avro_type == "double"
    assert fields["GENRES"].kind is FieldKind.CATEGORICAL
    assert fields["TITLE"].kind is FieldKind.TEXTUAL
    assert fields["ON_SALE"].kind is FieldKind.BOOLEAN
    assert fields["BRAND"].kind is FieldKind.CATEGORICAL


def test_only_one_textual_field_is_inferred_and_never_for_users() -> None:
    header = ["USER_ID", "BIO"]
    rows = [["1", "likes long walks"], ["2", "reads every night"]]
    assert (
        infer_fields(DatasetType.USERS, header, list(zip(*rows, strict=True)))[1].kind
        is FieldKind.CATEGORICAL
    )
    items = infer_fields(
        DatasetType.ITEMS, ["ITEM_ID", "TITLE", "BLURB"], [["1"], ["a long title"], ["a long blurb here"]]
    )
    assert [spec.kind for spec in items[1:]] == [FieldKind.TEXTUAL, FieldKind.CATEGORICAL]


def test_avro_schema_matches_personalize_format() -> None:
    fields = infer_fields(DatasetType.ITEMS, ["ITEM_ID", "GENRES"], [["1"], ["A|B"]])
    assert avro_schema(DatasetType.ITEMS, fields) == {
        "type": "record",
        "name": "Items",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "GENRES", "type": ["null", "string"], "categorical": True},
        ],
        "version": "1.0",
    }


@pytest.mark.parametrize(
    ("spec", "raw", "message"),
    [
        (FieldSpec("TIMESTAMP", FieldKind.TIMESTAMP, "long", False), "yesterday", "Unix timestamp"),
        (FieldSpec("ITEM_ID", FieldKind.ID, "string", False), "x" * 257, "limit is 256"),
        (FieldSpec("ITEM_ID", FieldKind.ID, "string", False), "", "required"),
        (FieldSpec("PRICE", FieldKind.NUMERICAL, "double", True), "nan", "finite"),
        (FieldSpec("YEAR", FieldKind.NUMERICAL, "int", True), "19.5", "integer"),
        (FieldSpec("FLAG", FieldKind.BOOLEAN, "boolean", True), "yes", "boolean"),
    ],
)
def test_bad_values_are_refused_with_the_reason(spec: FieldSpec, raw: str, message: str) -> None:
    with pytest.raises(ValueParseError, match=message):
        parse_value(spec, raw)


def test_values_round_trip_through_csv_text() -> None:
    assert format_value(3.0) == "3"
    assert format_value(0.1) == "0.1"
    assert format_value(True) == "true"
    assert format_value(["a", "b"]) == "a|b"
    assert format_value(None) == ""
    spec = FieldSpec("EVENT_VALUE", FieldKind.NUMERICAL, "float", True)
    assert format_value(parse_value(spec, "4.25")) == "4.25"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([FieldSpec("GENRES", FieldKind.CATEGORICAL)], "needs the field"),
        (
            [
                FieldSpec("ITEM_ID", FieldKind.ID, "string", False),
                FieldSpec("A_B", FieldKind.CATEGORICAL),
                FieldSpec("AB", FieldKind.CATEGORICAL),
            ],
            "clash",
        ),
        (
            [
                FieldSpec("ITEM_ID", FieldKind.ID, "string", False),
                FieldSpec("T1", FieldKind.TEXTUAL),
                FieldSpec("T2", FieldKind.TEXTUAL),
            ],
            "one textual",
        ),
        (
            [FieldSpec("ITEM_ID", FieldKind.ID, "string", False), FieldSpec("USER_ID", FieldKind.ID)],
            "reserved",
        ),
    ],
)
def test_invalid_schemas_are_refused(fields: list[FieldSpec], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        validate_fields(DatasetType.ITEMS, fields)
