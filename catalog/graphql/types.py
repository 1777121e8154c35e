"""GraphQL output types of the catalog (Item, User, Interaction) and shared inputs.

Only external ids and Personalize's fields are exposed: never database primary keys,
never `fields="__all__"`. Timestamps are epoch seconds (Float), as Personalize has them.
"""

import strawberry
import strawberry_django
from django.db.models import F
from strawberry.scalars import JSON

from catalog.graphql.fields import ColumnField, EpochSecondsField, epoch_seconds
from catalog.models import EndUser, Interaction, Item
from catalog.selectors import interaction_count_subquery

__all__ = [
    "InteractionType",
    "ItemType",
    "PaginationInput",
    "UserType",
    "epoch_seconds",
]


@strawberry.input(
    description="Offset/limit paging; limit defaults to and may not exceed the configured sizes."
)
class PaginationInput:
    """Offset/limit paging of a list field."""

    offset: int = 0
    limit: int | None = None


@strawberry_django.type(
    Item, name="Item", field_cls=ColumnField, description="A catalog item (Personalize's Items dataset)."
)
class ItemType:
    """A catalog item, by its external item id."""

    item_id: str
    metadata: JSON = strawberry_django.field(
        field_cls=ColumnField, description="The item's metadata fields, by schema field name."
    )
    interaction_count: int | None = strawberry_django.field(
        annotate=interaction_count_subquery(),
        description="How many interactions name this item.",
    )

    creation_timestamp: float | None = strawberry_django.field(
        field_cls=EpochSecondsField, description="Creation time in epoch seconds."
    )


@strawberry_django.type(
    EndUser, name="User", field_cls=ColumnField, description="An end user (Personalize's Users dataset)."
)
class UserType:
    """An end user, by its external user id."""

    user_id: str
    metadata: JSON = strawberry_django.field(
        field_cls=ColumnField, description="The user's metadata fields, by schema field name."
    )


@strawberry_django.type(
    Interaction, name="Interaction", field_cls=ColumnField, description="One event of a user with an item."
)
class InteractionType:
    """An interaction (Personalize's Interactions dataset row)."""

    event_type: str
    event_value: float | None
    event_id: str | None
    properties: JSON
    item: ItemType | None
    user: UserType | None

    @strawberry_django.field(annotate={"external_user_id": F("user__user_id")})
    def user_id(self, root: Interaction) -> str | None:
        """The external user id, or null for an anonymous session's event."""
        if hasattr(root, "external_user_id"):  # annotated by the optimizer: no extra query
            return root.external_user_id
        return root.user.user_id if root.user_id is not None else None

    @strawberry_django.field(annotate={"external_item_id": F("item__item_id")})
    def item_id(self, root: Interaction) -> str | None:
        """The external item id, or null for an event without an item."""
        if hasattr(root, "external_item_id"):
            return root.external_item_id
        return root.item.item_id if root.item_id is not None else None

    @strawberry_django.field(only=["session_id"])
    def session_id(self, root: Interaction) -> str | None:
        """The session the event happened in, or null."""
        return root.session_id or None

    timestamp: float = strawberry_django.field(
        field_cls=EpochSecondsField, description="When the event happened, in epoch seconds."
    )

    @strawberry_django.field(only=["impression"])
    def impression(self, root: Interaction) -> list[str]:
        """The item ids the user was shown with this event."""
        return [str(item_id) for item_id in root.impression or []]

    @strawberry_django.field(only=["recommendation_id"])
    def recommendation_id(self, root: Interaction) -> str | None:
        """The recommendation list the event's item came from, or null."""
        return root.recommendation_id or None
