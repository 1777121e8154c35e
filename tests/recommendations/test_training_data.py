"""Training data built from the database: indices, features, event options, group isolation."""

from datetime import UTC, datetime

import numpy as np
import pytest

from catalog.models import DatasetGroup
from catalog.schemas import RESERVED_FIELDS, DatasetType, FieldKind, FieldSpec
from catalog.services import dataset_schema_save
from recommendations.training_data import MinimumDataError, minimum_data_check, training_data_build
from tests.factories import DatasetGroupFactory, EndUserFactory, InteractionFactory, ItemFactory

pytestmark = pytest.mark.django_db


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(1_700_000_000 + seconds, UTC)


def tiny_catalog(group: DatasetGroup) -> dict[str, object]:
    """Three items with every metadata kind, two users, events incl. an anonymous one."""
    items = RESERVED_FIELDS[DatasetType.ITEMS]
    dataset_schema_save(
        dataset_group=group,
        dataset_type=DatasetType.ITEMS,
        fields=[
            items["ITEM_ID"],
            items["CREATION_TIMESTAMP"],
            FieldSpec("GENRES", FieldKind.CATEGORICAL),
            FieldSpec("PRICE", FieldKind.NUMERICAL, "double"),
            FieldSpec("IN_STOCK", FieldKind.BOOLEAN, "boolean"),
            FieldSpec("DESCRIPTION", FieldKind.TEXTUAL),
        ],
    )
    dataset_schema_save(
        dataset_group=group,
        dataset_type=DatasetType.USERS,
        fields=[RESERVED_FIELDS[DatasetType.USERS]["USER_ID"], FieldSpec("COUNTRY", FieldKind.CATEGORICAL)],
    )
    a = ItemFactory(
        dataset_group=group,
        item_id="A",
        creation_timestamp=at(-100),
        metadata={
            "GENRES": "Comedy|Drama",
            "PRICE": 10.0,
            "IN_STOCK": True,
            "DESCRIPTION": "a <b>funny</b> film",
        },
    )
    b = ItemFactory(dataset_group=group, item_id="B", metadata={"GENRES": "Drama", "PRICE": 30.0})
    c = ItemFactory(dataset_group=group, item_id="C", metadata={"DESCRIPTION": "a sad film"})
    alice = EndUserFactory(dataset_group=group, user_id="alice", metadata={"COUNTRY": "DE"})
    bob = EndUserFactory(dataset_group=group, user_id="bob", metadata={"COUNTRY": "FR"})
    InteractionFactory(dataset_group=group, user=alice, item=b, event_type="click", timestamp=at(10))
    InteractionFactory(
        dataset_group=group, user=alice, item=a, event_type="purchase", event_value=5, timestamp=at(20)
    )
    InteractionFactory(dataset_group=group, user=bob, item=b, event_type="click", timestamp=at(30))
    InteractionFactory(dataset_group=group, user=None, session_id="s1", item=c, timestamp=at(40))
    return {"items": (a, b, c), "users": (alice, bob)}


def test_indices_follow_primary_keys_and_anonymous_events_are_left_out(default_group: DatasetGroup) -> None:
    # Given a tiny catalog with one anonymous event
    tiny_catalog(default_group)
    # When the training data is built
    training = training_data_build(dataset_group=default_group)
    data = training.data
    # Then users and items are indexed in key order, and only the three identified events remain
    assert list(training.item_ids) == ["A", "B", "C"]
    assert list(training.user_ids) == ["alice", "bob"]
    assert (data.n_users, data.n_items) == (2, 3)
    assert sorted(zip(data.user.tolist(), data.item.tolist(), data.timestamp.tolist(), strict=True)) == [
        (0, 0, 1_700_000_020),
        (0, 1, 1_700_000_010),
        (1, 1, 1_700_000_030),
    ]
    assert set(data.event_types) == {"click", "purchase"}
    assert (training.interactions_count, training.users_count, training.items_count) == (3, 2, 2)


def test_metadata_becomes_one_hot_tf_idf_scaled_and_boolean_features(default_group: DatasetGroup) -> None:
    # Given items with categorical multi-values, text, numbers and booleans
    tiny_catalog(default_group)
    # When the training data is built
    data = training_data_build(dataset_group=default_group).data
    names = list(data.item_feature_names)
    features = data.item_features.toarray()
    # Then each categorical value is its own column, text is TF-IDF of words without tags
    assert {
        "GENRES=Comedy",
        "GENRES=Drama",
        "PRICE",
        "IN_STOCK",
        "DESCRIPTION:funny",
        "DESCRIPTION:sad",
    } <= set(names)
    assert not any("<b>" in name or name == "DESCRIPTION:b" for name in names)
    column = {name: features[:, names.index(name)] for name in names}
    assert column["GENRES=Comedy"].tolist() == [1, 0, 0]
    assert column["GENRES=Drama"].tolist() == [1, 1, 0]
    assert column["PRICE"].tolist() == [0.0, 1.0, 0.0]  # min-max scaled; missing is 0
    assert column["IN_STOCK"].tolist() == [1, 0, 0]
    text = features[:, [i for i, name in enumerate(names) if name.startswith("DESCRIPTION:")]]
    assert np.allclose(np.linalg.norm(text[[0, 2]], axis=1), 1.0)
    assert column["DESCRIPTION:funny"][0] > column["DESCRIPTION:film"][0] > 0  # rarer word weighs more
    assert list(data.user_feature_names) == ["COUNTRY=DE", "COUNTRY=FR"]
    # Creation: the given timestamp, else the oldest event, else the newest event (a new item)
    assert data.item_creation.tolist() == [1_699_999_900, 1_700_000_010, 1_700_000_030]


def test_event_type_option_keeps_only_that_type(default_group: DatasetGroup) -> None:
    # Given clicks and a purchase
    tiny_catalog(default_group)
    # When training on purchases only, or weighting clicks by 0.5
    purchases = training_data_build(
        dataset_group=default_group, solution_config={"eventType": "purchase"}
    ).data
    weighted = training_data_build(
        dataset_group=default_group,
        solution_config={
            "eventsConfig": {
                "eventParametersList": [
                    {"eventType": "click", "weight": 0.5},
                    {"eventType": "purchase", "weight": 1},
                ]
            }
        },
    ).data
    # Then only the purchase trains, or every event trains with its type's weight
    assert purchases.item.tolist() == [0]
    assert sorted(weighted.weights.tolist()) == [0.5, 0.5, 1.0]


def test_minimum_data_check_uses_personalizes_message(default_group: DatasetGroup) -> None:
    # Given three events
    tiny_catalog(default_group)
    # When checked
    with pytest.raises(MinimumDataError) as error:
        minimum_data_check(training_data_build(dataset_group=default_group))
    # Then Personalize's message is given
    assert str(error.value).startswith("Create failed. Dataset has fewer than 1000 interactions.")


def test_dataset_groups_never_mix(default_group: DatasetGroup) -> None:
    # Given two groups with the same ids
    tiny_catalog(default_group)
    other = DatasetGroupFactory(name="other")
    tiny_catalog(other)
    InteractionFactory(
        dataset_group=other,
        user=other.end_users.get(user_id="bob"),
        item=other.items.get(item_id="C"),
        timestamp=at(50),
    )
    # When each group's data is built
    default_data = training_data_build(dataset_group=default_group)
    other_data = training_data_build(dataset_group=other)
    # Then each holds its own rows only
    assert set(default_data.item_pks) == set(default_group.items.values_list("pk", flat=True))
    assert set(other_data.item_pks) == set(other.items.values_list("pk", flat=True))
    assert (default_data.interactions_count, other_data.interactions_count) == (3, 4)
