"""GraphQL mutations for filters: createFilter and deleteFilter (Personalize's CreateFilter / DeleteFilter).

Resolvers only call `recommendations.filtering`; an invalid expression raises FilterSyntaxError /
FilterError (BAD_USER_INPUT, the message names the position and what was expected or the field) and
an unknown name FilterNotFoundError (NOT_FOUND).
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from catalog.models import DEFAULT_DATASET_GROUP
from catalog.selectors import dataset_group_get
from recommendations import filtering
from recommendations.models import Filter

__all__ = ["FilterMutation", "FilterType"]

GroupArgument = Annotated[
    str | None, strawberry.argument(description="The dataset group; `default` when omitted.")
]


@strawberry.type(name="Filter", description="A business rule in Personalize's filter expression language.")
class FilterType:
    """A filter: name, expression, status, dataset group and the placeholders requests must fill."""

    name: str
    expression: str
    status: str
    dataset_group: str
    placeholders: list[str] = strawberry.field(
        description="Placeholder names (without $) that filterValues fill, e.g. GENRE for $GENRE."
    )

    @classmethod
    def from_model(cls, instance: Filter, dataset_group: str | None = None) -> FilterType:
        """The GraphQL view of a filter."""
        return cls(
            name=instance.name,
            expression=instance.expression,
            status=instance.status,
            dataset_group=dataset_group or instance.dataset_group.name,
            placeholders=list(filtering.filter_placeholders(filter=instance)),
        )


@strawberry.type
class FilterMutation:
    """Filter mutations (merged into the root Mutation)."""

    @strawberry.mutation(description="Create a filter (Personalize's CreateFilter); checked at once.")
    def create_filter(self, name: str, expression: str, dataset_group: GroupArgument = None) -> FilterType:
        """CreateFilter: refused with the position and what was expected when the expression is invalid."""
        group = dataset_group_get(name=dataset_group or DEFAULT_DATASET_GROUP)
        created = filtering.filter_create(dataset_group=group, name=name, expression=expression)
        return FilterType.from_model(created, group.name)

    @strawberry.mutation(description="Delete a filter (Personalize's DeleteFilter); returns it.")
    def delete_filter(self, name: str) -> FilterType:
        """DeleteFilter."""
        found = filtering.filter_get(name=name)
        group = found.dataset_group.name
        return FilterType.from_model(filtering.filter_delete(name=name), group)
