"""The catalog's GraphQL Query fields: items, users and interactions of one dataset group.

Resolvers only parse arguments and call `catalog.selectors`; they return unevaluated
QuerySets, to which strawberry-django applies `filters` and `ordering` and the
DjangoOptimizerExtension adds `only`/`select_related`, so a page costs a constant
number of queries. Paging is `CatalogListField.apply_pagination`, declared once here.
"""

from typing import Annotated, Any, TypeVar

import strawberry
import strawberry_django
from django.conf import settings
from django.db.models import QuerySet
from strawberry import UNSET
from strawberry_django.fields.field import StrawberryDjangoField

from catalog.errors import InvalidArgumentError
from catalog.graphql.filters import InteractionFilter, ItemFilter, UserFilter
from catalog.graphql.orders import InteractionOrder, ItemOrder, UserOrder
from catalog.graphql.types import InteractionType, ItemType, PaginationInput, UserType
from catalog.models import DEFAULT_DATASET_GROUP, DatasetGroup
from catalog.selectors import dataset_group_get, end_user_list, interaction_list, item_list

__all__ = ["CatalogListField", "Query", "page_bounds"]

_QS = TypeVar("_QS", bound=QuerySet)

GroupArgument = Annotated[
    str | None, strawberry.argument(description="The dataset group to read; `default` when omitted.")
]


def page_bounds(pagination: Any) -> tuple[int, int]:
    """The (offset, limit) a list field serves; raises InvalidArgumentError beyond the cap.

    No pagination or no limit means RECSITE_GRAPHQL_DEFAULT_PAGE_SIZE rows. A limit above
    RECSITE_GRAPHQL_MAX_PAGE_SIZE is refused (BAD_USER_INPUT naming the cap) rather than
    silently clamped, so a client never mistakes a short page for the end of the list.
    """
    default_size: int = settings.RECSITE_GRAPHQL_DEFAULT_PAGE_SIZE
    max_size: int = settings.RECSITE_GRAPHQL_MAX_PAGE_SIZE
    offset = getattr(pagination, "offset", 0) or 0
    limit = getattr(pagination, "limit", None)
    if limit is None or limit is UNSET:
        limit = default_size
    if offset < 0:
        raise InvalidArgumentError(f"pagination offset must be 0 or more; got {offset}")
    if limit < 0:
        raise InvalidArgumentError(f"pagination limit must be 0 or more; got {limit}")
    if limit > max_size:
        raise InvalidArgumentError(f"pagination limit {limit} is above the maximum page size of {max_size}")
    return offset, limit


class CatalogListField(StrawberryDjangoField):
    """A list field paged by `page_bounds`, with the primary key as the last tie-breaker."""

    def apply_pagination(
        self,
        queryset: _QS,
        pagination: object | None = None,
        *,
        related_field_id: str | None = None,
    ) -> _QS:
        """Slice the filtered, ordered queryset to the requested page."""
        if related_field_id is not None:  # nested use: keep strawberry-django's window paging
            return super().apply_pagination(queryset, pagination, related_field_id=related_field_id)
        offset, limit = page_bounds(pagination)
        ordering = list(queryset.query.order_by) or list(queryset.model._meta.ordering)
        if "pk" not in ordering and "-pk" not in ordering:
            queryset = queryset.order_by(*ordering, "pk")
        return queryset[offset : offset + limit]


def _group(name: str | None) -> DatasetGroup:
    return dataset_group_get(name=name or DEFAULT_DATASET_GROUP)


@strawberry.type
class Query:
    """Catalog reads; every field is scoped to one dataset group."""

    @strawberry_django.field(description="One item by its external id, or null when unknown.")
    def item(
        self,
        item_id: str,
        dataset_group: GroupArgument = DEFAULT_DATASET_GROUP,
    ) -> ItemType | None:
        """One item of the group by its external id."""
        return item_list(dataset_group=_group(dataset_group)).filter(item_id=item_id)  # type: ignore[return-value]

    @strawberry_django.field(
        field_cls=CatalogListField,
        filters=ItemFilter,
        ordering=ItemOrder,
        description="A page of the group's items.",
    )
    def items(
        self,
        dataset_group: GroupArgument = DEFAULT_DATASET_GROUP,
        filters: ItemFilter | None = UNSET,
        ordering: list[ItemOrder] | None = UNSET,
        pagination: PaginationInput | None = UNSET,
    ) -> list[ItemType]:
        """A page of the group's items (filters, ordering and paging are applied by the field)."""
        return item_list(dataset_group=_group(dataset_group))  # type: ignore[return-value]

    @strawberry_django.field(description="One user by its external id, or null when unknown.")
    def user(
        self,
        user_id: str,
        dataset_group: GroupArgument = DEFAULT_DATASET_GROUP,
    ) -> UserType | None:
        """One end user of the group by its external id."""
        return end_user_list(dataset_group=_group(dataset_group)).filter(user_id=user_id)  # type: ignore[return-value]

    @strawberry_django.field(
        field_cls=CatalogListField,
        filters=UserFilter,
        ordering=UserOrder,
        description="A page of the group's users.",
    )
    def users(
        self,
        dataset_group: GroupArgument = DEFAULT_DATASET_GROUP,
        filters: UserFilter | None = UNSET,
        ordering: list[UserOrder] | None = UNSET,
        pagination: PaginationInput | None = UNSET,
    ) -> list[UserType]:
        """A page of the group's end users."""
        return end_user_list(dataset_group=_group(dataset_group))  # type: ignore[return-value]

    @strawberry_django.field(
        field_cls=CatalogListField,
        filters=InteractionFilter,
        ordering=InteractionOrder,
        description="A page of the group's interactions, newest first unless ordered otherwise.",
    )
    def interactions(
        self,
        dataset_group: GroupArgument = DEFAULT_DATASET_GROUP,
        user_id: Annotated[str | None, strawberry.argument(description="Only this user's events.")] = None,
        filters: InteractionFilter | None = UNSET,
        ordering: list[InteractionOrder] | None = UNSET,
        pagination: PaginationInput | None = UNSET,
    ) -> list[InteractionType]:
        """A page of the group's interactions, newest first unless ordered otherwise."""
        return interaction_list(dataset_group=_group(dataset_group), user_id=user_id)  # type: ignore[return-value]
