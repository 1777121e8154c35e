"""GraphQL inputs of the recommendation API (filter values, promotions)."""

from collections.abc import Sequence

import strawberry

from recommendations.errors import RecommendationError

__all__ = ["FilterValueInput", "PromotionInput", "filter_values_map"]


@strawberry.input(description="A value list for one `$NAME` placeholder of a filter expression.")
class FilterValueInput:
    """One placeholder's values: `{name: "GENRE", values: ["Comedy"]}` fills `$GENRE`."""

    name: str = strawberry.field(description="The placeholder's name without `$`, e.g. GENRE.")
    values: list[str] = strawberry.field(description="The values the placeholder stands for.")


@strawberry.input(description="Items to promote in a recommendation list (Personalize's `promotions[0]`).")
class PromotionInput:
    """A promotion: a share of the list taken from the items passing a filter."""

    name: str = strawberry.field(description="Returned as `promotionName` on the promoted items.")
    percent_promoted_items: int = strawberry.field(description="1-100: the share of `numResults` promoted.")
    filter: str = strawberry.field(description="The filter (by name) promoted items must pass.")
    filter_values: list[FilterValueInput] | None = strawberry.field(
        default=None, description="Values for the promotion filter's placeholders."
    )


def filter_values_map(values: Sequence[FilterValueInput] | None) -> dict[str, list[str]] | None:
    """The input list as `{name: values}`; a leading `$` is tolerated, a repeated name is refused."""
    if not values:
        return None
    mapped: dict[str, list[str]] = {}
    for entry in values:
        name = entry.name[1:] if entry.name.startswith("$") else entry.name
        if not name or len(name) > 50 or not name.replace("_", "a").isalnum():
            raise RecommendationError(f"filterValues name {entry.name!r} must be letters, digits and _ (≤50)")
        if name in mapped:
            raise RecommendationError(f"filterValues names {name!r} twice")
        if any(len(value) > 1000 for value in entry.values):
            raise RecommendationError(f"filterValues {name!r}: each value may have at most 1000 characters")
        mapped[name] = list(entry.values)
    return mapped
