"""Domain errors of the catalog; each names what is wrong and where."""

__all__ = [
    "CatalogError",
    "DatasetGroupNotFoundError",
    "DatasetImportError",
    "InvalidArgumentError",
    "MetadataError",
]


class CatalogError(ValueError):
    """Base class of catalog errors that a caller can show to the user as they are."""


class DatasetGroupNotFoundError(CatalogError):
    """The named dataset group does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"dataset group {name!r} does not exist")
        self.name = name


class MetadataError(CatalogError):
    """A metadata value that does not fit the dataset schema."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field {field}: {message}")
        self.field = field


class DatasetImportError(CatalogError):
    """A CSV that cannot be imported; names file, line and column when known."""

    def __init__(
        self, message: str, *, file: str, line: int | None = None, column: str | None = None
    ) -> None:
        where = file
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {message}")
        self.file = file
        self.line = line
        self.column = column


class InvalidArgumentError(CatalogError):
    """An API argument whose value is out of range or malformed (a BAD_USER_INPUT error)."""
