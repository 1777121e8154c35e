"""Named bad inputs in CSV imports (issue 6): each is refused with file, line, column and reason, or
handled as docs/migrating-from-personalize.md ("Bad input") says; a refused file writes nothing."""

import time
from pathlib import Path

import pytest

from catalog.errors import DatasetImportError
from catalog.importing import dataset_import
from catalog.models import DatasetSchema, EndUser, Interaction, Item
from catalog.schemas import FieldKind, FieldSpec
from catalog.selectors import dataset_group_get
from catalog.services import dataset_schema_save

pytestmark = pytest.mark.django_db

HEADER = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE"


def rows(count: int, start: int = 1_700_000_000) -> list[str]:
    return [f"u{n % 9},i{n % 13},{start + n},click,{n % 4}" for n in range(count)]


def write_bytes(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def state() -> tuple[int, int, int, int]:
    return (
        Interaction.objects.count(),
        Item.objects.count(),
        EndUser.objects.count(),
        DatasetSchema.objects.count(),
    )


def refused(path: Path, **kwargs: object) -> DatasetImportError:
    """Import `path` as interactions (or as kwargs say); it must fail and change nothing."""
    before = state()
    with pytest.raises(DatasetImportError) as raised:
        dataset_import(**(kwargs or {"interactions": path}))
    assert state() == before
    return raised.value


@pytest.fixture
def imported(tmp_path: Path, default_group: object) -> None:
    """A catalog that already holds 40 imported interactions, so "nothing changed" means something."""
    dataset_import(interactions=write_bytes(tmp_path / "first.csv", [HEADER, *rows(40)]))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "1700000000000",
            "1700000000000 looks like milliseconds (or a finer unit); Personalize wants Unix "
            "timestamps in seconds",
        ),
        ("1700000000000000", "looks like milliseconds"),
        ("-1", "-1 is before 1970"),
        ("99999999999999999999999", "looks like milliseconds"),
    ],
)
def test_timestamps_that_are_not_seconds_are_refused_naming_the_row(
    tmp_path: Path, imported: None, value: str, message: str
) -> None:
    # given a 3,000-row file (the fast reader's path) whose row at line 2,500 is not in seconds
    lines = [HEADER, *rows(3000)]
    lines[2499] = f"u1,i1,{value},click,1"
    # when imported, then refused at that line and column, saying why, and nothing changed
    error = refused(write_bytes(tmp_path / "ms.csv", lines))
    assert (error.line, error.column) == (2500, "TIMESTAMP")
    assert message in str(error)


def test_item_creation_timestamps_in_milliseconds_are_refused(tmp_path: Path, imported: None) -> None:
    path = write_bytes(
        tmp_path / "items.csv", ["ITEM_ID,CREATION_TIMESTAMP", "i1,1700000000", "i2,1700000000123"]
    )
    error = refused(path, items=path)
    assert (error.line, error.column) == (3, "CREATION_TIMESTAMP")
    assert "looks like milliseconds" in str(error)


def test_future_timestamps_are_imported_as_given(tmp_path: Path, default_group: object) -> None:
    # given interactions stamped a year ahead (a generated file, or a clock set wrong at export)
    ahead = int(time.time()) + 365 * 86400
    dataset_import(interactions=write_bytes(tmp_path / "future.csv", [HEADER, *rows(5, start=ahead)]))
    # then they are stored as given: imports are history the operator prepared (Personalize takes them too)
    stamps = sorted(int(t.timestamp()) for t in Interaction.objects.values_list("timestamp", flat=True))
    assert stamps == [ahead + n for n in range(5)]


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity", "1e309"])
def test_non_finite_event_values_are_refused(tmp_path: Path, imported: None, value: str) -> None:
    lines = [HEADER, *rows(5)]
    lines[3] = f"u1,i1,1700000000,click,{value}"
    error = refused(write_bytes(tmp_path / "nan.csv", lines))
    assert (error.line, error.column) == (4, "EVENT_VALUE")
    assert "not a finite number" in str(error)


def test_non_finite_and_out_of_range_numeric_metadata_is_refused(
    tmp_path: Path, default_group: object
) -> None:
    # given an items schema with a double PRICE and an int STOCK
    dataset_schema_save(
        dataset_group=dataset_group_get(),
        dataset_type="items",
        fields=[
            FieldSpec("ITEM_ID", FieldKind.ID, "string", nullable=False),
            FieldSpec("PRICE", FieldKind.NUMERICAL, "double"),
            FieldSpec("STOCK", FieldKind.NUMERICAL, "int"),
        ],
    )
    for line, message, column in [
        ("i2,NaN,1", "'NaN' is not a finite number", "PRICE"),
        ("i2,Infinity,1", "is not a finite number", "PRICE"),
        ("i2,1.5,2147483648", "2147483648 is outside the range of an Avro int", "STOCK"),
        ("i2,1.5,-99999999999999999999", "outside the range of an Avro int", "STOCK"),
    ]:
        path = write_bytes(tmp_path / "items.csv", ["ITEM_ID,PRICE,STOCK", "i1,2.5,3", line])
        error = refused(path, items=path)
        assert (error.line, error.column) == (3, column), error
        assert message in str(error)


def test_an_inferred_long_column_refuses_numbers_beyond_64_bits(
    tmp_path: Path, default_group: object
) -> None:
    path = write_bytes(tmp_path / "users.csv", ["USER_ID,POINTS", "u1,5", "u2,99999999999999999999"])
    error = refused(path, users=path)
    assert (error.line, error.column) == (3, "POINTS")
    assert "outside the range of an Avro long" in str(error)


def test_oversized_ids_are_refused_and_256_characters_are_accepted(
    tmp_path: Path, default_group: object
) -> None:
    longest = "u" * 256
    dataset_import(users=write_bytes(tmp_path / "ok.csv", ["USER_ID", longest]))
    assert EndUser.objects.get().user_id == longest
    path = write_bytes(tmp_path / "long.csv", ["USER_ID", "u1", "u" * 257])
    error = refused(path, users=path)
    assert (error.line, error.column) == (3, "USER_ID")
    assert "id is 257 characters long; the limit is 256" in str(error)


@pytest.mark.parametrize(
    ("encoding", "bad_line"),
    [("latin-1", 3000), ("cp1252", 3000), ("utf-16", 1)],
)
def test_files_that_are_not_utf8_are_refused_with_the_first_bad_line(
    tmp_path: Path, imported: None, encoding: str, bad_line: int
) -> None:
    # given a large file in another encoding whose only non-ASCII text is at line 3,000
    lines = [HEADER, *rows(3500)]
    lines[2999] = "José,i1,1700000000,click,1"
    error = refused(write_bytes(tmp_path / "other.csv", lines, encoding=encoding))
    # then the error says it is not UTF-8 and where the first undecodable line is
    assert "is not UTF-8 text (save the CSV as UTF-8)" in str(error)
    assert error.line == bad_line


def test_a_nul_character_is_refused_naming_line_and_column(tmp_path: Path, imported: None) -> None:
    # PostgreSQL's text cannot hold NUL: refused on every database, so a file behaves the same on both
    lines = [HEADER, *rows(5)]
    lines[2] = "u1,i\x001,1700000000,click,1"
    error = refused(write_bytes(tmp_path / "nul.csv", lines))
    assert (error.line, error.column) == (3, "ITEM_ID")
    assert "NUL character" in str(error)


@pytest.mark.parametrize(
    ("first_line", "message"),
    [
        ('USER_ID,ITEM_ID,"TIMESTAMP', "a quoted column name runs past the end of the line"),
        ("USER_ID,ITEM_ID\r,TIMESTAMP", "malformed CSV header"),
    ],
)
def test_a_malformed_header_is_refused_at_line_1(
    tmp_path: Path, imported: None, first_line: str, message: str
) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes((first_line + "\nu1,i1,1700000000\n").encode())
    error = refused(path)
    assert error.line == 1 and message in str(error)


def test_unknown_event_types_and_repeated_rows_are_imported_as_given(
    tmp_path: Path, default_group: object
) -> None:
    # given any event type (EVENT_TYPE is a free string in Personalize) and a row repeated verbatim
    lines = [
        HEADER,
        "u1,i1,1700000000,never-seen-before,1",
        "u1,i1,1700000000,click,1",
        "u1,i1,1700000000,click,1",
    ]
    path = write_bytes(tmp_path / "types.csv", lines)
    dataset_import(interactions=path)
    # then every row is stored: bulk files carry no eventId to deduplicate by
    assert sorted(Interaction.objects.values_list("event_type", flat=True)) == [
        "click",
        "click",
        "never-seen-before",
    ]
    # and a FULL import of the same file again replaces rather than doubles them
    dataset_import(interactions=path)
    assert Interaction.objects.count() == 3
