"""Reads of the catalog (HackSoft-style selectors, keyword-only)."""

from collections.abc import Sequence

from django.db.models import CharField, Func, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Concat, StrIndex
from django.db.models.lookups import GreaterThan

from catalog.errors import DatasetGroupNotFoundError
from catalog.models import DEFAULT_DATASET_GROUP, DatasetGroup, DatasetSchema, EndUser, Interaction, Item
from catalog.schemas import DatasetType, FieldSpec

__all__ = [
    "categorical_value_q",
    "dataset_group_get",
    "dataset_schema_fields",
    "end_user_list",
    "interaction_count_subquery",
    "interaction_list",
    "item_list",
    "item_pks_by_id",
    "items_by_id",
]


def dataset_group_get(*, name: str = DEFAULT_DATASET_GROUP) -> DatasetGroup:
    """The named dataset group; `default` always exists (it is created on first use)."""
    if name == DEFAULT_DATASET_GROUP:
        return DatasetGroup.objects.get_or_create(name=name)[0]
    try:
        return DatasetGroup.objects.get(name=name)
    except DatasetGroup.DoesNotExist:
        raise DatasetGroupNotFoundError(name) from None


def dataset_schema_fields(
    *, dataset_group: DatasetGroup, dataset_type: DatasetType
) -> list[FieldSpec] | None:
    """The group's schema for one dataset, or None when none has been defined yet."""
    schema = DatasetSchema.objects.filter(dataset_group=dataset_group, dataset_type=dataset_type).first()
    return schema.field_specs if schema else None


def item_list(*, dataset_group: DatasetGroup) -> QuerySet[Item]:
    """All items of a group (unevaluated, for the optimizer and pagination)."""
    return Item.objects.filter(dataset_group=dataset_group)


def item_pks_by_id(*, dataset_group_id: int, item_ids: Sequence[str]) -> dict[str, int]:
    """{external item id: primary key} of the given ids that exist in the group (one query)."""
    if not item_ids:
        return {}
    rows = Item.objects.filter(dataset_group_id=dataset_group_id, item_id__in=list(item_ids))
    return dict(rows.values_list("item_id", "pk"))


def items_by_id(
    *, dataset_group_id: int, item_ids: Sequence[str], interaction_count: bool = False
) -> dict[str, Item]:
    """{external item id: row} of the given ids that exist in the group (one query).

    With `interaction_count`, each row carries `interaction_count` as the GraphQL `Item` type reads it.
    """
    if not item_ids:
        return {}
    rows = Item.objects.filter(dataset_group_id=dataset_group_id, item_id__in=list(item_ids)).order_by()
    if interaction_count:
        rows = rows.annotate(interaction_count=interaction_count_subquery())
    return {row.item_id: row for row in rows}


def interaction_count_subquery() -> Subquery:
    """An item's interaction count as a correlated COUNT(*) on the (item, timestamp) index.

    `Count("interactions")` joins every event of the page's items and groups the rows by all
    selected item columns (metadata included); the subquery counts index entries per item instead
    (~4x faster for a page of popular items on SQLite).
    """
    events = (
        Interaction.objects.filter(item=OuterRef("pk"))
        .order_by()
        .annotate(n=Func(template="COUNT(*)", output_field=IntegerField()))
        .values("n")[:1]
    )
    return Subquery(events, output_field=IntegerField())


def end_user_list(*, dataset_group: DatasetGroup) -> QuerySet[EndUser]:
    """All end users of a group."""
    return EndUser.objects.filter(dataset_group=dataset_group)


def interaction_list(*, dataset_group: DatasetGroup, user_id: str | None = None) -> QuerySet[Interaction]:
    """A group's interactions, newest first, optionally of one user (by external id)."""
    interactions = Interaction.objects.filter(dataset_group=dataset_group)
    if user_id is not None:
        interactions = interactions.filter(user__user_id=user_id)
    return interactions.order_by("-timestamp", "-id")


def categorical_value_q(*, field: str, value: str, column: str = "metadata") -> Q:
    """Rows whose categorical `field` holds `value` as one of its `|`-joined values, exactly.

    "Action|Comedy" matches "Comedy"; "Comedy Drama" and "comedy" do not. The test is
    `STRPOS('|' || value || '|', '|Comedy|') > 0`: exact on SQLite and PostgreSQL alike
    (no LIKE wildcards, no case folding).
    """
    padded = Concat(Value("|"), KeyTextTransform(field, column), Value("|"), output_field=CharField())
    return Q(GreaterThan(StrIndex(padded, Value(f"|{value}|")), 0))
