"""Ordering inputs of the catalog's list fields (strawberry-django order types).

`ordering` takes a list of these one-of inputs, applied in the given order; the
database id is always appended as the last tie-breaker so pages are stable.
"""

import strawberry_django
from django.db.models import OrderBy
from strawberry import auto

from catalog.models import EndUser, Interaction, Item

__all__ = ["InteractionOrder", "ItemOrder", "UserOrder"]


@strawberry_django.order_type(Item, name="ItemOrder", description="One sort key of items.")
class ItemOrder:
    """Sort keys of the `items` field."""

    item_id: auto
    creation_timestamp: auto


@strawberry_django.order_type(EndUser, name="UserOrder", description="One sort key of users.")
class UserOrder:
    """Sort keys of the `users` field."""

    user_id: auto


@strawberry_django.order_type(
    Interaction, name="InteractionOrder", description="One sort key of interactions."
)
class InteractionOrder:
    """Sort keys of the `interactions` field."""

    timestamp: auto
    event_type: auto
    event_value: auto
    session_id: auto

    @strawberry_django.order_field(description="The external id of the event's item.")
    def item_id(self, value: auto, prefix: str) -> list[OrderBy]:
        """Sort by the external item id (never the database key)."""
        return [value.resolve(f"{prefix}item__item_id")]

    @strawberry_django.order_field(description="The external id of the event's user.")
    def user_id(self, value: auto, prefix: str) -> list[OrderBy]:
        """Sort by the external user id (never the database key)."""
        return [value.resolve(f"{prefix}user__user_id")]
