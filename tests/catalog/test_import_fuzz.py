"""Fuzzing the CSV importer: any bytes are a clean import or a clean DatasetImportError, all or nothing.

Three generators: raw random bytes; Personalize-shaped files whose cells are drawn from values
that break parsers (huge and negative numbers, milliseconds, NaN, long ids, quotes, newlines, NUL,
non-UTF-8 bytes); and such files with a few bytes flipped, cut or inserted. Each example runs
against a catalog that already holds data, inside a savepoint rolled back afterwards, and checks:

- the import either returns a report or raises DatasetImportError naming the file (and, when it
  names a line, a line of the file; when it names a column, a column of the header) — nothing else;
- a refused import leaves every catalog table exactly as it was (row counts and schemas);
- an accepted FULL import holds exactly the file's rows as the bulk-imported interactions.

Examples per test: `RECSITE_FUZZ_EXAMPLES` (tests/fuzzing.py).
"""

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import transaction
from hypothesis import given
from hypothesis import strategies as st

from catalog.errors import DatasetImportError
from catalog.importing import dataset_import
from catalog.models import DatasetSchema, EndUser, Interaction, Item, RecordSource
from tests.fuzzing import fuzz_settings

pytestmark = pytest.mark.django_db

INTERACTIONS_HEADER = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
ITEMS_HEADER = ["ITEM_ID", "CREATION_TIMESTAMP", "PRICE", "GENRES"]

NASTY_TEXT = [
    "",
    " ",
    "x" * 256,
    "x" * 257,
    'a"b',
    "a,b",
    "line\nbreak",
    "\r",
    "nul\x00byte",
    "é",
    "\ufeff",
    "a|b|c",
    "|",
    "NaN",
    "-",
]
NASTY_NUMBERS = [
    "0",
    "-1",
    "1700000000",
    "1700000000000",  # milliseconds
    "1700000000000000",  # microseconds
    "99999999999",
    "100000000001",
    "253402300800",  # the year 10000
    "-62135596801",  # before the year 1
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "1e3",
    "17e8",
    "1.5",
    "nan",
    "NaN",
    "inf",
    "-Infinity",
    "1e309",
    "0x10",
    "1_000",
    " 12",
    "",
]


def cell() -> st.SearchStrategy[str]:
    """One CSV cell: a nasty value, a plain number, or short random text."""
    return st.one_of(
        st.sampled_from(NASTY_TEXT),
        st.sampled_from(NASTY_NUMBERS),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.text(max_size=12),
    )


def good_interaction(n: int) -> list[str]:
    return [f"u{n % 7}", f"i{n % 11}", str(1_700_000_000 + n), "click", str(n % 3)]


@st.composite
def interaction_rows(draw: st.DrawFn) -> list[list[str]]:
    """Mostly valid rows, some cells replaced by nasty ones (and, now and then, a row too short/long)."""
    rows = []
    for n in range(draw(st.integers(min_value=0, max_value=8))):
        row = good_interaction(n)
        for column in draw(st.lists(st.integers(0, len(row) - 1), max_size=2)):
            row[column] = draw(cell())
        if draw(st.integers(0, 20)) == 0:
            row = row[: draw(st.integers(0, len(row)))] + draw(st.lists(cell(), max_size=1))
        rows.append(row)
    return rows


@st.composite
def item_rows(draw: st.DrawFn) -> list[list[str]]:
    rows = []
    for n in range(draw(st.integers(min_value=0, max_value=8))):
        row = [f"i{n}", str(1_600_000_000 + n), f"{n}.5", "Comedy|Drama"]
        for column in draw(st.lists(st.integers(0, len(row) - 1), max_size=2)):
            row[column] = draw(cell())
        rows.append(row)
    return rows


def to_csv(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


@st.composite
def mutated(draw: st.DrawFn, data: st.SearchStrategy[bytes]) -> bytes:
    """A CSV with up to three bytes replaced, deleted or inserted, or cut short."""
    raw = bytearray(draw(data))
    for _ in range(draw(st.integers(0, 3))):
        if not raw:
            break
        at = draw(st.integers(0, len(raw) - 1))
        match draw(st.sampled_from(["replace", "delete", "insert", "cut"])):
            case "replace":
                raw[at] = draw(st.integers(0, 255))
            case "delete":
                del raw[at]
            case "insert":
                raw.insert(at, draw(st.sampled_from([0, 10, 13, 34, 44, 0xC3, 0xFF, 0xFE])))
            case "cut":
                del raw[at:]
    return bytes(raw)


def catalog_state() -> tuple[int, ...]:
    return (
        Interaction.objects.count(),
        Interaction.objects.filter(source=RecordSource.IMPORT).count(),
        Item.objects.count(),
        EndUser.objects.count(),
        DatasetSchema.objects.count(),
    )


@contextmanager
def rolled_back() -> Iterator[None]:
    """Run one example in a savepoint that is always rolled back: every example sees the same catalog."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


@pytest.fixture
def existing_catalog(tmp_path: Path, default_group: object) -> Path:
    """A catalog with 30 imported interactions (schema inferred) and a fuzz file path."""
    seed = tmp_path / "seed.csv"
    seed.write_bytes(to_csv(INTERACTIONS_HEADER, [good_interaction(n) for n in range(30)]))
    dataset_import(interactions=seed)
    return tmp_path / "fuzz.csv"


def import_checked(path: Path, content: bytes, *, dataset: str) -> None:
    """Import `content` as `dataset`; check the outcome is clean and all-or-nothing."""
    path.write_bytes(content)
    with rolled_back():
        before = catalog_state()
        try:
            report = dataset_import(**{dataset: path})
        except DatasetImportError as error:
            # then a clean error that says where, and nothing written
            assert error.file == str(path), error
            assert str(error).startswith(f"{path}"), error
            assert error.line is None or 1 <= error.line <= len(content.splitlines()) + 1, error
            if error.column is not None:
                header = content.splitlines()[0].decode("utf-8", "replace")
                assert error.column in header and "\n" not in error.column, error
            assert catalog_state() == before, (error, content)
            return
        # or a clean import: FULL mode holds exactly the file's rows as bulk-imported records
        if dataset == "interactions":
            assert report.interactions == Interaction.objects.filter(source=RecordSource.IMPORT).count()
        else:  # a file may name an item twice: its last row wins
            stored = Item.objects.filter(source=RecordSource.IMPORT).count()
            assert 0 < stored <= report.items or report.items == stored == 0


@given(content=st.one_of(st.binary(max_size=300), mutated(st.binary(max_size=300))))
@fuzz_settings(60)
def test_random_bytes_import_cleanly_or_are_refused_cleanly(existing_catalog: Path, content: bytes) -> None:
    # given random bytes, with or without a valid header in front / when imported / then clean
    import_checked(existing_catalog, content, dataset="interactions")
    with_header = b"USER_ID,ITEM_ID,TIMESTAMP\n" + content
    import_checked(existing_catalog, with_header, dataset="interactions")


@given(
    content=st.one_of(
        interaction_rows().map(lambda rows: to_csv(INTERACTIONS_HEADER, rows)),
        mutated(interaction_rows().map(lambda rows: to_csv(INTERACTIONS_HEADER, rows))),
    )
)
@fuzz_settings(120)
def test_interaction_files_import_cleanly_or_are_refused_cleanly(
    existing_catalog: Path, content: bytes
) -> None:
    # given an interactions CSV with nasty cells or mangled bytes / when imported / then clean
    import_checked(existing_catalog, content, dataset="interactions")


@given(
    content=st.one_of(
        item_rows().map(lambda rows: to_csv(ITEMS_HEADER, rows)),
        mutated(item_rows().map(lambda rows: to_csv(ITEMS_HEADER, rows))),
    )
)
@fuzz_settings(80)
def test_item_files_import_cleanly_or_are_refused_cleanly(existing_catalog: Path, content: bytes) -> None:
    # given an items CSV (schema inferred from it) with nasty cells / when imported / then clean
    import_checked(existing_catalog, content, dataset="items")
