"""Read and check one Personalize CSV into typed Arrow columns, or say exactly what is wrong.

Two readers, one set of rules. The fast reader parses with Apache Arrow's C++ CSV
reader and checks the bulky column kinds (ids, timestamps, numbers, short strings)
with vectorised compute functions. Whenever it meets anything it does not accept —
a syntax error, a quoted newline, a value that fails a check — the exact reader
reads the file again with Python's csv module and `schemas.parse_value`, and either
raises a DatasetImportError naming file, line and column, or returns the values
(its rules are the reference; the fast reader is only ever stricter).
"""

import csv
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from django.core.files import File
from tqdm import tqdm

from catalog.errors import DatasetImportError
from catalog.schemas import (
    INTEGER_RANGES,
    MAX_ID_LENGTH,
    MILLISECONDS_THRESHOLD,
    REQUIRED_FIELDS,
    RESERVED_FIELDS,
    DatasetType,
    FieldKind,
    FieldSpec,
    SchemaError,
    ValueParseError,
    infer_fields,
    parse_value,
    validate_fields,
)

__all__ = ["CsvSource", "ParsedCsv", "read_dataset_csv"]

NUL = "\x00"
"""PostgreSQL's text and jsonb cannot hold it; a cell containing it is refused on every database."""

CsvSource = str | Path | File
"""A CSV to import: a path, or a Django File (an upload or a stored file)."""


@dataclass
class ParsedCsv:
    """One checked CSV: its fields in header order and a typed Arrow column per field."""

    dataset_type: DatasetType
    file_name: str
    fields: list[FieldSpec]
    columns: dict[str, pa.Array]
    row_count: int
    inferred: bool

    def values(self, name: str) -> list[Any]:
        """One column as Python values (None for empty)."""
        return self.columns[name].to_pylist()

    def metadata_records(self) -> list[dict[str, Any]]:
        """Per row, the non-null metadata values by field name."""
        names = [spec.name for spec in self.fields if spec.is_metadata]
        if not names:
            return [{} for _ in range(self.row_count)]
        columns = [self.values(name) for name in names]
        return [
            {name: value for name, value in zip(names, row, strict=True) if value is not None}
            for row in zip(*columns, strict=True)
        ]


def read_dataset_csv(
    source: CsvSource, dataset_type: DatasetType, existing: list[FieldSpec] | None, *, progress: bool = False
) -> ParsedCsv:
    """Read, check and type a CSV against the dataset's schema (inferred when `existing` is None)."""
    with _open_binary(source) as (name, binary):
        header = _read_header(binary, name, source)
    _check_header(header, dataset_type, existing, name)
    fast = _read_fast(source, header)
    if fast is not None:
        reserved = RESERVED_FIELDS[dataset_type]
        values = [
            raw.to_pylist() if existing is None and column not in reserved else []
            for column, raw in zip(header, fast, strict=True)
        ]
        fields = _fields_for(dataset_type, header, existing, values, name)
        columns = _typed_fast(fields, fast)
        if columns is not None:
            return ParsedCsv(dataset_type, name, fields, columns, len(fast[0]), existing is None)
    rows, lines = _read_exact(source, len(header), name, progress=progress)
    raw_columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in header]
    fields = _fields_for(dataset_type, header, existing, raw_columns, name)
    columns = {
        spec.name: _typed_exact(spec, raw, lines, name) for spec, raw in zip(fields, raw_columns, strict=True)
    }
    return ParsedCsv(dataset_type, name, fields, columns, len(rows), existing is None)


def _fields_for(
    dataset_type: DatasetType,
    header: list[str],
    existing: list[FieldSpec] | None,
    raw_columns: Sequence[Sequence[str]],
    name: str,
) -> list[FieldSpec]:
    """The fields in header order: from the schema, or inferred from the values."""
    if existing is not None:
        by_name = {spec.name: spec for spec in existing}
        return [by_name[column] for column in header]
    fields = infer_fields(dataset_type, header, raw_columns)
    try:
        validate_fields(dataset_type, fields)
    except SchemaError as error:
        raise DatasetImportError(str(error), file=name, line=1) from None
    return fields


# --- opening and the header ------------------------------------------------------------------


@contextmanager
def _open_binary(source: CsvSource) -> Iterator[tuple[str, IO[bytes]]]:
    if isinstance(source, str | Path):
        name = str(source)
        try:
            binary: IO[bytes] = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as error:
            raise DatasetImportError(f"cannot open: {error.strerror}", file=name) from None
    else:
        name = Path(source.name or "upload.csv").name
        source.open("rb")
        binary = source.file
    try:
        yield name, binary
    finally:
        binary.close()


@contextmanager
def _open_text(source: CsvSource) -> Iterator[tuple[str, IO[str]]]:
    with _open_binary(source) as (name, binary):
        yield name, io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")


def _read_header(binary: IO[bytes], name: str, source: CsvSource) -> list[str]:
    first_line = binary.readline()
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetImportError("is not UTF-8 text (save the CSV as UTF-8)", file=name, line=1) from None
    try:
        header = next(csv.reader([text]), None)
    except csv.Error as error:  # e.g. a bare carriage return inside the header line
        raise DatasetImportError(f"malformed CSV header: {error}", file=name, line=1) from None
    if not header:
        raise DatasetImportError("the file is empty; expected a header row", file=name, line=1)
    if any("\n" in column or "\r" in column for column in header):
        raise DatasetImportError(
            "malformed CSV header: a quoted column name runs past the end of the line", file=name, line=1
        )
    return header


def _check_header(
    header: list[str], dataset_type: DatasetType, existing: list[FieldSpec] | None, name: str
) -> None:
    duplicates = sorted({column for column in header if header.count(column) > 1})
    if duplicates:
        raise DatasetImportError(
            "column appears twice in the header", file=name, line=1, column=duplicates[0]
        )
    missing = [column for column in REQUIRED_FIELDS[dataset_type] if column not in header]
    if missing:
        raise DatasetImportError(
            f"the header lacks the required column(s) {', '.join(missing)}", file=name, line=1
        )
    if existing is None:
        return
    known = [spec.name for spec in existing]
    for column in header:
        if column not in known:
            raise DatasetImportError(
                f"is not a field of the {dataset_type} schema ({', '.join(known)})",
                file=name,
                line=1,
                column=column,
            )
    required_missing = [spec.name for spec in existing if not spec.nullable and spec.name not in header]
    if required_missing:
        raise DatasetImportError(
            f"the schema's non-nullable field(s) {', '.join(required_missing)} are missing", file=name, line=1
        )


# --- the fast reader (Arrow) -----------------------------------------------------------------


def _read_fast(source: CsvSource, header: list[str]) -> list[pa.Array] | None:
    """All columns as non-null Arrow strings, or None if Arrow's reader refuses the file."""
    read = pa_csv.ReadOptions(column_names=header, skip_rows=1, block_size=1 << 22)
    convert = pa_csv.ConvertOptions(
        column_types={column: pa.string() for column in header},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        with _open_binary(source) as (_, binary):
            table = pa_csv.read_csv(binary, read_options=read, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError):
        return None
    return [table.column(index).combine_chunks() for index in range(table.num_columns)]


def _typed_fast(fields: list[FieldSpec], raw_columns: list[pa.Array]) -> dict[str, pa.Array] | None:
    """Typed columns when every value passes; None sends the file to the exact reader."""
    columns = {}
    for spec, raw in zip(fields, raw_columns, strict=True):
        if pc.any(pc.match_substring(raw, NUL)).as_py():
            return None
        try:
            typed = _FAST_KINDS[spec.kind](spec, raw) if spec.kind in _FAST_KINDS else _python_kind(spec, raw)
        except (pa.ArrowInvalid, ValueParseError, OverflowError):
            return None
        if typed is None:
            return None
        columns[spec.name] = typed
    return columns


def _empty_to_null(spec: FieldSpec, raw: pa.Array) -> pa.Array | None:
    """Empty strings become nulls; None when a non-nullable column has an empty value."""
    empty = pc.equal(raw, "")
    if not pc.any(empty).as_py():
        return raw
    if not spec.nullable:
        return None
    return pc.if_else(empty, pa.scalar(None, pa.string()), raw)


def _fast_id(spec: FieldSpec, raw: pa.Array) -> pa.Array | None:
    lengths = pc.utf8_length(raw)
    if len(raw) and (pc.min(lengths).as_py() < 1 or pc.max(lengths).as_py() > MAX_ID_LENGTH):
        return None
    return raw


def _fast_string(spec: FieldSpec, raw: pa.Array) -> pa.Array | None:
    if len(raw) and pc.max(pc.utf8_length(raw)).as_py() > MAX_ID_LENGTH:
        return None
    return _empty_to_null(spec, raw)


def _within(values: pa.Array, low: int, high: int) -> bool:
    """Every non-null value lies in [low, high] (an all-null column does too)."""
    bounds = pc.min_max(values).as_py()
    return bounds["min"] is None or (low <= bounds["min"] and bounds["max"] <= high)


def _fast_timestamp(spec: FieldSpec, raw: pa.Array) -> pa.Array | None:
    values = _empty_to_null(spec, raw)
    if values is None:
        return None
    seconds = pc.cast(values, pa.int64())
    # milliseconds and times before 1970: the exact reader says which value and why
    return seconds if _within(seconds, 0, MILLISECONDS_THRESHOLD) else None


def _fast_number(spec: FieldSpec, raw: pa.Array) -> pa.Array | None:
    values = _empty_to_null(spec, raw)
    if values is None:
        return None
    if spec.avro_type in INTEGER_RANGES:
        integers = pc.cast(values, pa.int64())
        return integers if _within(integers, *INTEGER_RANGES[spec.avro_type]) else None
    numbers = pc.cast(values, pa.float64())
    if pc.any(pc.invert(pc.is_finite(numbers))).as_py():
        return None
    return numbers


def _python_kind(spec: FieldSpec, raw: pa.Array) -> pa.Array:
    """Rarer kinds (categorical, textual, boolean, impression) go through parse_value."""
    return pa.array([parse_value(spec, value) for value in raw.to_pylist()], type=_arrow_type(spec))


_FAST_KINDS = {
    FieldKind.ID: _fast_id,
    FieldKind.STRING: _fast_string,
    FieldKind.TIMESTAMP: _fast_timestamp,
    FieldKind.NUMERICAL: _fast_number,
}


def _arrow_type(spec: FieldSpec) -> pa.DataType:
    if spec.kind is FieldKind.TIMESTAMP or (
        spec.kind is FieldKind.NUMERICAL and spec.avro_type in ("int", "long")
    ):
        return pa.int64()
    if spec.kind is FieldKind.NUMERICAL:
        return pa.float64()
    if spec.kind is FieldKind.BOOLEAN:
        return pa.bool_()
    if spec.kind is FieldKind.IMPRESSION:
        return pa.list_(pa.string())
    return pa.string()


# --- the exact reader (csv module) -----------------------------------------------------------


def _read_exact(
    source: CsvSource, width: int, name: str, *, progress: bool
) -> tuple[list[list[str]], list[int]]:
    """Non-blank rows after the header with the line each starts on; wrong widths are errors."""
    rows: list[list[str]] = []
    lines: list[int] = []
    with _open_text(source) as (_, text):
        reader = csv.reader(text, strict=True)
        try:
            next(reader)
            with tqdm(desc=f"Checking {name}", unit=" rows", disable=None if progress else True) as bar:
                while True:
                    first_line = reader.line_num + 1
                    row = next(reader, None)
                    if row is None:
                        break
                    if not row:
                        continue
                    if len(row) != width:
                        raise DatasetImportError(
                            f"has {len(row)} columns; the header has {width}", file=name, line=first_line
                        )
                    rows.append(row)
                    lines.append(first_line)
                    bar.update()
        except UnicodeDecodeError:
            raise DatasetImportError(
                "is not UTF-8 text (save the CSV as UTF-8)", file=name, line=_first_undecodable_line(source)
            ) from None
        except csv.Error as error:
            raise DatasetImportError(f"malformed CSV: {error}", file=name, line=reader.line_num) from None
    return rows, lines


def _first_undecodable_line(source: CsvSource) -> int:
    """The 1-based line of the first bytes that are not UTF-8 (the decoder reads ahead in blocks)."""
    with _open_binary(source) as (_, binary):
        for number, line in enumerate(binary, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def _typed_exact(spec: FieldSpec, raw: Sequence[str], lines: Sequence[int], name: str) -> pa.Array:
    values = []
    for index, value in enumerate(raw):
        if NUL in value:
            raise DatasetImportError(
                "holds a NUL character (\\x00), which the database cannot store",
                file=name,
                line=lines[index],
                column=spec.name,
            )
        try:
            values.append(parse_value(spec, value))
        except ValueParseError as error:
            raise DatasetImportError(
                f"{error} (value {_shorten(value)})", file=name, line=lines[index], column=spec.name
            ) from None
    return pa.array(values, type=_arrow_type(spec))


def _shorten(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")
