"""factory_boy factories for catalog rows, and dataset schemas for tests."""

from datetime import UTC, datetime

import factory

from catalog.models import DatasetGroup, EndUser, Interaction, Item, RecordSource
from catalog.schemas import RESERVED_FIELDS, DatasetType, FieldSpec
from catalog.services import dataset_schema_save

__all__ = ["DatasetGroupFactory", "EndUserFactory", "InteractionFactory", "ItemFactory", "save_schemas"]


class DatasetGroupFactory(factory.django.DjangoModelFactory):
    """A dataset group with a unique name."""

    class Meta:
        model = DatasetGroup
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"group-{n}")


class ItemFactory(factory.django.DjangoModelFactory):
    """An item in the `default` group unless told otherwise."""

    class Meta:
        model = Item

    dataset_group = factory.SubFactory(DatasetGroupFactory, name="default")
    item_id = factory.Sequence(lambda n: f"item-{n}")
    metadata = factory.LazyFunction(dict)
    source = RecordSource.IMPORT


class EndUserFactory(factory.django.DjangoModelFactory):
    """An end user in the `default` group unless told otherwise."""

    class Meta:
        model = EndUser

    dataset_group = factory.SubFactory(DatasetGroupFactory, name="default")
    user_id = factory.Sequence(lambda n: f"user-{n}")
    metadata = factory.LazyFunction(dict)
    source = RecordSource.IMPORT


class InteractionFactory(factory.django.DjangoModelFactory):
    """An event of a user with an item, both in the same group."""

    class Meta:
        model = Interaction

    dataset_group = factory.SubFactory(DatasetGroupFactory, name="default")
    user = factory.SubFactory(EndUserFactory, dataset_group=factory.SelfAttribute("..dataset_group"))
    item = factory.SubFactory(ItemFactory, dataset_group=factory.SelfAttribute("..dataset_group"))
    event_type = "view"
    timestamp = factory.Sequence(lambda n: datetime.fromtimestamp(1_700_000_000 + n * 60, UTC))
    source = RecordSource.IMPORT


def save_schemas(
    group: DatasetGroup,
    *,
    interactions: list[FieldSpec],
    items: list[FieldSpec] | None = None,
    users: list[FieldSpec] | None = None,
) -> DatasetGroup:
    """Save the group's schemas (items and users only when given): Personalize's required fields first."""
    required = {
        DatasetType.INTERACTIONS: ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"),
        DatasetType.ITEMS: ("ITEM_ID", "CREATION_TIMESTAMP"),
        DatasetType.USERS: ("USER_ID",),
    }
    own = {DatasetType.INTERACTIONS: interactions, DatasetType.ITEMS: items, DatasetType.USERS: users}
    for dataset_type, names in required.items():
        if own[dataset_type] is None:
            continue
        fields = [RESERVED_FIELDS[dataset_type][name] for name in names]
        fields += own[dataset_type]
        dataset_schema_save(dataset_group=group, dataset_type=dataset_type, fields=fields)
    return group
