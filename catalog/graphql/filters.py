"""Filter inputs of the catalog's list fields (strawberry-django filter types).

Every lookup is on external ids and Personalize's fields; each behaves the same on
SQLite and PostgreSQL (no LIKE, whose case rules differ between them).
"""

import math
import re
from datetime import UTC, datetime

import strawberry
import strawberry_django
from django.db.models import F, Q, Value
from django.db.models.functions import Left
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual, LessThan, LessThanOrEqual
from strawberry import UNSET

from catalog.errors import InvalidArgumentError
from catalog.models import EndUser, Interaction, Item
from catalog.schemas import MAX_CATEGORICAL_VALUE_LENGTH, MAX_ID_LENGTH
from catalog.selectors import categorical_value_q

__all__ = [
    "EpochRange",
    "IdLookup",
    "InteractionFilter",
    "ItemFilter",
    "MetadataMatch",
    "UserFilter",
    "epoch_range_q",
    "id_lookup_q",
    "metadata_match_q",
]

MAX_IN_LIST = 1000
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


@strawberry.input(description="Match a string id: exactly, any of a list, or by prefix (case-sensitive).")
class IdLookup:
    """Exact, any-of or prefix match on a string id."""

    exact: str | None = UNSET
    in_list: list[str] | None = UNSET
    starts_with: str | None = UNSET


@strawberry.input(description="A time range in epoch seconds; give any of the bounds.")
class EpochRange:
    """Bounds on a timestamp, in Unix epoch seconds."""

    gt: float | None = UNSET
    gte: float | None = UNSET
    lt: float | None = UNSET
    lte: float | None = UNSET


@strawberry.input(
    description=(
        "Match a categorical metadata field: true when one of its `|`-separated values "
        "equals `value` exactly (case-sensitive)."
    )
)
class MetadataMatch:
    """One categorical value of one metadata field, e.g. {field: "GENRES", value: "Comedy"}."""

    field: str
    value: str


def _given(value: object) -> bool:
    return value is not UNSET and value is not None


def id_lookup_q(path: str, lookup: IdLookup) -> Q:
    """The Q for an IdLookup on the string column at `path` (same semantics on every database)."""
    q = Q()
    if _given(lookup.exact):
        q &= Q(Exact(F(path), lookup.exact))
    if _given(lookup.in_list):
        values = list(lookup.in_list)  # type: ignore[arg-type]
        if len(values) > MAX_IN_LIST:
            raise InvalidArgumentError(f"inList takes at most {MAX_IN_LIST} values; got {len(values)}")
        q &= Q(**{f"{path}__in": values})
    if _given(lookup.starts_with):
        prefix = str(lookup.starts_with)
        if len(prefix) > MAX_ID_LENGTH:
            raise InvalidArgumentError(f"startsWith is longer than {MAX_ID_LENGTH} characters")
        if prefix:
            q &= Q(Exact(Left(F(path), len(prefix)), Value(prefix)))
    return q


def _moment(name: str, seconds: float) -> datetime:
    try:
        if not math.isfinite(seconds):
            raise ValueError
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidArgumentError(f"{name}: {seconds!r} is not a usable epoch-seconds timestamp") from None


def epoch_range_q(path: str, bounds: EpochRange) -> Q:
    """The Q for an EpochRange on the DateTimeField at `path`."""
    q = Q()
    for name, lookup in (
        ("gt", GreaterThan),
        ("gte", GreaterThanOrEqual),
        ("lt", LessThan),
        ("lte", LessThanOrEqual),
    ):
        seconds = getattr(bounds, name)
        if _given(seconds):
            q &= Q(lookup(F(path), _moment(name, seconds)))
    return q


def metadata_match_q(path: str, matches: list[MetadataMatch]) -> Q:
    """The Q for categorical matches on the JSON column at `path` (all must hold).

    The stored value "Action|Comedy" matches "Comedy"; "Comedy Drama" does not.
    """
    if len(matches) > MAX_IN_LIST:
        raise InvalidArgumentError(f"metadata takes at most {MAX_IN_LIST} conditions")
    q = Q()
    for match in matches:
        if not FIELD_NAME.match(match.field):
            raise InvalidArgumentError(f"metadata field {match.field!r} is not a schema field name")
        if not match.value or "|" in match.value or len(match.value) > MAX_CATEGORICAL_VALUE_LENGTH:
            raise InvalidArgumentError(
                f"metadata value for {match.field} must be one non-empty categorical value without '|'"
            )
        q &= categorical_value_q(field=match.field, value=match.value, column=path)
    return q


@strawberry_django.filter_type(Item, name="ItemFilter", description="Filters on items.")
class ItemFilter:
    """Filters of the `items` field."""

    @strawberry_django.filter_field(description="Match the external item id.")
    def item_id(self, value: IdLookup, prefix: str) -> Q:
        """Filter by external item id."""
        return id_lookup_q(f"{prefix}item_id", value)

    @strawberry_django.filter_field(description="Creation time range in epoch seconds.")
    def creation_timestamp(self, value: EpochRange, prefix: str) -> Q:
        """Filter by creation time."""
        return epoch_range_q(f"{prefix}creation_timestamp", value)

    @strawberry_django.filter_field(description="Categorical metadata values; a list means all must match.")
    def metadata(self, value: list[MetadataMatch], prefix: str) -> Q:
        """Filter by categorical metadata values."""
        return metadata_match_q(f"{prefix}metadata", value)


@strawberry_django.filter_type(EndUser, name="UserFilter", description="Filters on users.")
class UserFilter:
    """Filters of the `users` field."""

    @strawberry_django.filter_field(description="Match the external user id.")
    def user_id(self, value: IdLookup, prefix: str) -> Q:
        """Filter by external user id."""
        return id_lookup_q(f"{prefix}user_id", value)

    @strawberry_django.filter_field(description="Categorical metadata values; a list means all must match.")
    def metadata(self, value: list[MetadataMatch], prefix: str) -> Q:
        """Filter by categorical metadata values."""
        return metadata_match_q(f"{prefix}metadata", value)


@strawberry_django.filter_type(Interaction, name="InteractionFilter", description="Filters on interactions.")
class InteractionFilter:
    """Filters of the `interactions` field."""

    @strawberry_django.filter_field(description="Match the event type.")
    def event_type(self, value: IdLookup, prefix: str) -> Q:
        """Filter by event type."""
        return id_lookup_q(f"{prefix}event_type", value)

    @strawberry_django.filter_field(description="Event time range in epoch seconds.")
    def timestamp(self, value: EpochRange, prefix: str) -> Q:
        """Filter by event time."""
        return epoch_range_q(f"{prefix}timestamp", value)

    @strawberry_django.filter_field(description="Match the external item id.")
    def item_id(self, value: IdLookup, prefix: str) -> Q:
        """Filter by the external id of the event's item."""
        return id_lookup_q(f"{prefix}item__item_id", value)

    @strawberry_django.filter_field(description="Match the session id.")
    def session_id(self, value: IdLookup, prefix: str) -> Q:
        """Filter by session id."""
        return id_lookup_q(f"{prefix}session_id", value)
