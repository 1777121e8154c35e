"""factory_boy factories for catalog rows."""

from datetime import UTC, datetime

import factory

from catalog.models import DatasetGroup, EndUser, Interaction, Item, RecordSource

__all__ = ["DatasetGroupFactory", "EndUserFactory", "InteractionFactory", "ItemFactory"]


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
