"""Which sub-fields a query selects below the field being resolved (fragments included)."""

from strawberry.types import Info
from strawberry.types.nodes import SelectedField, Selection

__all__ = ["selected_paths"]


def selected_paths(info: Info) -> frozenset[str]:
    """The dotted paths of the fields selected below the current field, e.g. `items.item.metadata`.

    Fragment spreads and inline fragments are followed; paths use field names, not aliases.
    """
    paths: set[str] = set()
    for field in info.selected_fields:
        _collect(field.selections, "", paths)
    return frozenset(paths)


def _collect(selections: list[Selection], prefix: str, paths: set[str]) -> None:
    for selection in selections:
        if isinstance(selection, SelectedField):
            path = f"{prefix}{selection.name}"
            paths.add(path)
            _collect(selection.selections, f"{path}.", paths)
        else:  # a fragment spread or an inline fragment: its fields belong to this level
            _collect(selection.selections, prefix, paths)
