"""Importing and exporting Personalize CSVs: counts, errors with file/line/column, atomicity."""

import os
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from catalog.errors import DatasetImportError
from catalog.exporting import dataset_export
from catalog.importing import dataset_import
from catalog.models import DatasetSchema, EndUser, Interaction, Item, RecordSource
from catalog.schemas import FieldKind, FieldSpec
from catalog.selectors import dataset_group_get, dataset_schema_fields
from catalog.services import dataset_group_create
from tests.factories import InteractionFactory

ML_100K = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ml-100k-personalize"

pytestmark = pytest.mark.django_db


@pytest.fixture
def ml_100k() -> Path:
    """The MovieLens-100K Personalize CSVs shipped in ../shared (required in CI)."""
    if not ML_100K.exists():
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{ML_100K} is missing")
        pytest.skip("../shared/datasets is not beside this checkout")
    return ML_100K


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def interactions_csv(tmp_path: Path, rows: int, *, name: str = "interactions.csv") -> Path:
    lines = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE"]
    lines += [f"u{n % 40},i{n % 70},{1_700_000_000 + n},view,{n % 5}" for n in range(rows)]
    return write(tmp_path / name, lines)


def catalog_counts() -> tuple[int, int, int, int]:
    return (
        Interaction.objects.count(),
        Item.objects.count(),
        EndUser.objects.count(),
        DatasetSchema.objects.count(),
    )


def test_movielens_imports_with_the_right_counts_and_round_trips(ml_100k: Path, tmp_path: Path) -> None:
    # given MovieLens-100K in Personalize's CSV format
    # when it is imported
    report = dataset_import(
        interactions=ml_100k / "interactions.csv", items=ml_100k / "items.csv", users=ml_100k / "users.csv"
    )
    # then every row arrived, genres are a categorical multi-value field
    assert (report.interactions, report.items, report.users) == (100_000, 1_682, 943)
    assert (Interaction.objects.count(), Item.objects.count(), EndUser.objects.count()) == (
        100_000,
        1_682,
        943,
    )
    genres = next(
        s
        for s in dataset_schema_fields(dataset_group=dataset_group_get(), dataset_type="items")
        if s.name == "GENRES"
    )
    assert genres.kind is FieldKind.CATEGORICAL
    assert Item.objects.get(item_id="1").metadata["GENRES"] == "Animation|Children's|Comedy"
    assert "enough to train" in report.minimum_data
    # and export → import → export gives identical bytes, equal to the source modulo line endings
    first, second = tmp_path / "first", tmp_path / "second"
    dataset_export(out=first)
    dataset_import(
        interactions=first / "interactions.csv", items=first / "items.csv", users=first / "users.csv"
    )
    dataset_export(out=second)
    for name in (
        "interactions.csv",
        "items.csv",
        "users.csv",
        "items_schema.json",
        "users_schema.json",
        "interactions_schema.json",
    ):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    source = (ml_100k / "items.csv").read_bytes().replace(b"\r\n", b"\n")
    assert (first / "items.csv").read_bytes() == source
    assert Interaction.objects.count() == 100_000


def test_a_bad_row_at_line_5000_is_named_and_nothing_changes(tmp_path: Path) -> None:
    # given a catalog that already holds data
    dataset_import(interactions=interactions_csv(tmp_path, 1200, name="good.csv"))
    before = catalog_counts()
    # and a 6,000-row file whose line 5,000 has an unparsable timestamp
    path = interactions_csv(tmp_path, 6000, name="bad.csv")
    lines = path.read_text().splitlines()
    lines[4999] = "u1,i1,yesterday,view,1"
    write(path, lines)
    # when it is imported in FULL mode
    with pytest.raises(DatasetImportError) as raised:
        dataset_import(interactions=path)
    # then the error names the file, line 5,000 and the column, and nothing changed
    assert (raised.value.line, raised.value.column) == (5000, "TIMESTAMP")
    assert "bad.csv, line 5000, column TIMESTAMP" in str(raised.value)
    assert catalog_counts() == before


@pytest.mark.parametrize(
    ("lines", "line", "column", "message"),
    [
        (
            ["USER_ID,ITEM_ID,TIMESTAMP", "u1,i1,1700000000", "u1,i2"],
            3,
            None,
            "has 2 columns; the header has 3",
        ),
        (["USER_ID,ITEM_ID,TIMESTAMP", "u1,i1,17e8"], 2, "TIMESTAMP", "not a Unix timestamp"),
        (["USER_ID,ITEM_ID,TIMESTAMP", f"u1,{'x' * 257},1700000000"], 2, "ITEM_ID", "limit is 256"),
        (["USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE", "u1,i1,1700000000,inf"], 2, "EVENT_VALUE", "finite"),
        (["USER_ID,ITEM_ID", "u1,i1"], 1, None, r"lacks the required column\(s\) TIMESTAMP"),
        (["USER_ID,ITEM_ID,TIMESTAMP,ITEM_ID", "u1,i1,1,i2"], 1, "ITEM_ID", "appears twice"),
        (["USER_ID,ITEM_ID,TIMESTAMP", ",i1,1700000000"], 2, "USER_ID", "required"),
    ],
)
def test_bad_rows_are_refused_naming_line_and_column(
    tmp_path: Path, lines: list[str], line: int, column: str | None, message: str
) -> None:
    with pytest.raises(DatasetImportError, match=message) as raised:
        dataset_import(interactions=write(tmp_path / "in.csv", lines))
    assert (raised.value.file, raised.value.line, raised.value.column) == (
        str(tmp_path / "in.csv"),
        line,
        column,
    )
    assert catalog_counts() == (0, 0, 0, 0)


def test_unknown_columns_and_wrong_types_are_checked_against_an_existing_schema(tmp_path: Path) -> None:
    # given an items schema inferred from a first import (YEAR is an int)
    dataset_import(
        items=write(tmp_path / "items.csv", ["ITEM_ID,YEAR,GENRES", "i1,1995,Comedy", "i2,1996,Drama"])
    )
    # when a later file has a column the schema lacks, or a word where YEAR needs a number
    with pytest.raises(DatasetImportError, match="not a field of the items schema") as unknown:
        dataset_import(items=write(tmp_path / "more.csv", ["ITEM_ID,COLOR", "i3,red"]), mode="incremental")
    with pytest.raises(DatasetImportError, match="'soon' is not an integer") as wrong:
        dataset_import(
            items=write(tmp_path / "late.csv", ["ITEM_ID,YEAR,GENRES", "i3,1997,", "i4,soon,Drama"]),
            mode="incremental",
        )
    # then both name where, and the catalog still holds the first two items only
    assert (unknown.value.line, unknown.value.column) == (1, "COLOR")
    assert (wrong.value.line, wrong.value.column) == (3, "YEAR")
    assert sorted(Item.objects.values_list("item_id", flat=True)) == ["i1", "i2"]


def test_non_utf8_files_are_refused_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1700000000\nJosé,i2,1700000001\n".encode("latin-1"))
    with pytest.raises(DatasetImportError, match="not UTF-8") as raised:
        dataset_import(interactions=path)
    assert raised.value.line == 3


def test_interactions_naming_unknown_items_and_users_add_bare_records(tmp_path: Path) -> None:
    # given items with metadata for i1 only
    dataset_import(items=write(tmp_path / "items.csv", ["ITEM_ID,GENRES", "i1,Comedy|Drama"]))
    # when interactions name i1 and i2 and two users
    report = dataset_import(
        interactions=write(
            tmp_path / "in.csv", ["USER_ID,ITEM_ID,TIMESTAMP", "u1,i1,1700000000", "u2,i2,1700000005"]
        )
    )
    # then i2 and both users exist as bare records, and i1 keeps its metadata
    assert (report.implicit_items, report.implicit_users) == (1, 2)
    assert Item.objects.get(item_id="i2").source == RecordSource.IMPLICIT
    assert Item.objects.get(item_id="i1").metadata == {"GENRES": "Comedy|Drama"}
    assert Interaction.objects.get(item__item_id="i2").user.user_id == "u2"


def test_full_replaces_bulk_data_and_incremental_upserts(tmp_path: Path) -> None:
    # given imported items x1, x2 and i1 (i1 is named by the interactions), and a tracked event
    dataset_import(items=write(tmp_path / "a.csv", ["ITEM_ID,PRICE", "x1,10", "x2,20", "i1,5"]))
    dataset_import(interactions=interactions_csv(tmp_path, 5))
    put_event = InteractionFactory(source=RecordSource.PUT)
    # when an incremental import updates x2 and adds x3
    dataset_import(items=write(tmp_path / "b.csv", ["ITEM_ID,PRICE", "x2,25", "x3,30"]), mode="incremental")
    # then x1 is kept, x2 updated and x3 added
    prices = dict(Item.objects.filter(item_id__startswith="x").values_list("item_id", "metadata__PRICE"))
    assert prices == {"x1": 10, "x2": 25, "x3": 30}
    # when a full interactions import arrives, it replaces the bulk events but keeps the tracked one
    dataset_import(interactions=interactions_csv(tmp_path, 3, name="again.csv"))
    assert Interaction.objects.filter(source=RecordSource.IMPORT).count() == 3
    assert Interaction.objects.filter(pk=put_event.pk).exists()
    # when a full items import holds only x3
    dataset_import(items=write(tmp_path / "c.csv", ["ITEM_ID,PRICE", "x3,31"]))
    # then unreferenced bulk items are gone and i1, still named by events, stays as a bare record
    assert sorted(Item.objects.filter(item_id__startswith="x").values_list("item_id", flat=True)) == ["x3"]
    assert Item.objects.get(item_id="x3").metadata == {"PRICE": 31}
    bare = Item.objects.get(item_id="i1")
    assert (bare.metadata, bare.source) == ({}, RecordSource.IMPLICIT)


def test_dataset_groups_never_mix(tmp_path: Path) -> None:
    # given the same ids imported into two groups
    dataset_group_create(name="shop-b")
    path = write(tmp_path / "items.csv", ["ITEM_ID,GENRES", "i1,Comedy"])
    dataset_import(items=path)
    dataset_import(items=write(tmp_path / "b.csv", ["ITEM_ID,GENRES", "i1,Drama"]), dataset_group="shop-b")
    # when group default is fully re-imported without i1
    dataset_import(items=write(tmp_path / "c.csv", ["ITEM_ID,GENRES", "i9,Horror"]))
    # then shop-b is untouched
    assert Item.objects.get(dataset_group__name="shop-b", item_id="i1").metadata == {"GENRES": "Drama"}
    assert not Item.objects.filter(dataset_group__name="default", item_id="i1").exists()


def test_minimum_data_verdict_uses_personalizes_message(tmp_path: Path) -> None:
    report = dataset_import(interactions=interactions_csv(tmp_path, 30))
    assert "Dataset has fewer than 1000 interactions" in report.minimum_data
    assert "30 interactions" in report.minimum_data


def test_inference_is_reported_and_stored(tmp_path: Path) -> None:
    report = dataset_import(users=write(tmp_path / "users.csv", ["USER_ID,AGE,GENDER", "1,24,M", "2,53,F"]))
    assert "AGE numerical (int), GENDER categorical" in report.inferred[0]
    fields = dataset_schema_fields(dataset_group=dataset_group_get(), dataset_type="users")
    assert fields[1] == FieldSpec("AGE", FieldKind.NUMERICAL, "int", nullable=True)
    assert EndUser.objects.get(user_id="2").metadata == {"AGE": 53, "GENDER": "F"}


def test_the_commands_report_and_fail_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given a good and a bad file
    good = interactions_csv(tmp_path, 10)
    bad = write(
        tmp_path / "bad.csv", ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE", "u1,i1,noon,view,"]
    )
    # when imported and exported from the command line
    call_command("import_dataset", "--interactions", str(good))
    assert "Imported 10 interactions" in capsys.readouterr().out
    with pytest.raises(CommandError, match=r"bad.csv, line 2, column TIMESTAMP.*\nNothing was imported"):
        call_command("import_dataset", "--interactions", str(bad))
    call_command("export_dataset", "--out", str(tmp_path / "out"))
    # then the export holds the ten events and their schema
    assert len((tmp_path / "out" / "interactions.csv").read_text().splitlines()) == 11
    assert '"name": "Interactions"' in (tmp_path / "out" / "interactions_schema.json").read_text()
    with pytest.raises(CommandError, match="dataset group 'nope' does not exist"):
        call_command("export_dataset", "--out", str(tmp_path / "x"), "--dataset-group", "nope")


def test_quoted_newlines_keep_line_numbers_exact(tmp_path: Path) -> None:
    # given an items file whose first description spans two lines and whose row on line 5 is bad
    path = tmp_path / "items.csv"
    path.write_text(
        'ITEM_ID,PRICE,DESCRIPTION\ni1,10,"two\nlines"\ni2,11,plain text here\ni3,x,more words here\n',
        encoding="utf-8",
    )
    dataset_import(
        items=write(tmp_path / "schema.csv", ["ITEM_ID,PRICE,DESCRIPTION", "i0,1,some words here"])
    )
    # when it is imported
    with pytest.raises(DatasetImportError) as raised:
        dataset_import(items=path, mode="incremental")
    # then the error names line 5 (the file's physical line), not the fourth record
    assert (raised.value.line, raised.value.column) == (5, "PRICE")


def test_values_the_fast_reader_refuses_are_read_by_the_exact_rules(tmp_path: Path) -> None:
    # given timestamps with a leading space (Python's int() accepts them, Arrow's cast does not)
    spaced = write(
        tmp_path / "spaced.csv", ["USER_ID,ITEM_ID,TIMESTAMP", "u1,i1, 1700000000", "u2,i2,1700000001"]
    )
    # when imported, then the rows arrive with the same values either way
    report = dataset_import(interactions=spaced)
    assert report.interactions == 2
    stamps = sorted(
        int(moment.timestamp()) for moment in Interaction.objects.values_list("timestamp", flat=True)
    )
    assert stamps == [1_700_000_000, 1_700_000_001]


def test_a_bulk_import_refreshes_the_planners_statistics(tmp_path: Path) -> None:
    # given a file of 12,000 interactions
    path = interactions_csv(tmp_path, 12_000)
    # when it is imported
    dataset_import(interactions=path)
    # then the database has row statistics for the interactions table (so it uses its indexes)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'catalog_interaction'")
            assert cursor.fetchone()[0] >= 10_000
        else:
            cursor.execute("SELECT stat FROM sqlite_stat1 WHERE idx = 'interaction_user_newest'")
            assert int(cursor.fetchone()[0].split()[0]) == 12_000
