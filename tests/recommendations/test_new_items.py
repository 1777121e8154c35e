"""Cold start: items created after training are explored (reason "New item") when the campaign explores."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import DatasetGroup, EndUser, Item
from recommendations import services
from recommendations.filtering import filter_create
from recommendations.models import Campaign
from recommendations.serving import recommendation_list

pytestmark = pytest.mark.django_db

EXPLORING = {"itemExplorationConfig": {"explorationWeight": "0.5", "explorationItemAgeCutOff": "30"}}
NOT_EXPLORING = {"itemExplorationConfig": {"explorationWeight": "0", "explorationItemAgeCutOff": "30"}}


@pytest.fixture(autouse=True)
def fresh_catalog_checks(settings: Any) -> None:
    settings.RECSITE_FILTER_CATALOG_CHECK_SECONDS = 0.0
    settings.RECSITE_DEFAULT_CAMPAIGN = ""


@pytest.fixture
def campaign(demo: DatasetGroup, django_capture_on_commit_callbacks: Any) -> Campaign:
    """A user-personalization campaign trained on the demo shop (before any new item exists)."""
    solution = services.solution_create(
        dataset_group=demo, name="aws-user-personalization", recipe="aws-user-personalization"
    )
    with django_capture_on_commit_callbacks(execute=True):
        version = services.solution_version_create(solution=solution)
    version.refresh_from_db()
    assert version.status == "ACTIVE", version.failure_reason
    return services.campaign_create(name="personal", solution_version=version)


def configured(campaign: Campaign, config: dict) -> Campaign:
    return services.campaign_update(campaign=Campaign.objects.get(pk=campaign.pk), campaign_config=config)


def new_item(group: DatasetGroup, item_id: str, days_old: float = 0.0, **metadata: Any) -> Item:
    created = datetime.now(UTC) - timedelta(days=days_old)
    return Item.objects.create(
        dataset_group=group, item_id=item_id, creation_timestamp=created, metadata=metadata
    )


def active_user(group: DatasetGroup) -> str:
    user = (
        EndUser.objects.filter(dataset_group=group)
        .annotate(n=Count("interactions"))
        .filter(n__gte=8)
        .order_by("user_id")
        .first()
    )
    return user.user_id


def test_a_new_item_is_recommended_with_reason_new_item_when_the_campaign_explores(
    demo: DatasetGroup, campaign: Campaign
) -> None:
    # Given an exploring campaign and an item created after its version was trained
    configured(campaign, EXPLORING)
    new_item(demo, "brand-new")
    # When a user asks for recommendations through the API
    body = (
        Client()
        .post(
            "/graphql/",
            {
                "query": "query($u: String) { recommendations(userId: $u, numResults: 10, campaign: "
                '"personal") { items { itemId reason } } }',
                "variables": {"u": active_user(demo)},
            },
            content_type="application/json",
        )
        .json()
    )
    items = body["data"]["recommendations"]["items"]
    # Then the new item is there, explained as new, and the list is still 10 long without duplicates
    assert len(items) == 10
    assert len({item["itemId"] for item in items}) == 10
    by_id = {item["itemId"]: item["reason"] for item in items}
    assert "brand-new" in by_id
    assert by_id["brand-new"].startswith("New item")


def test_explored_new_items_take_a_share_of_slots_proportional_to_the_weight(
    demo: DatasetGroup, campaign: Campaign
) -> None:
    # Given an exploring campaign (weight 0.5) and many new items, one too old and one bare record
    configured(campaign, EXPLORING)
    for k in range(12):
        new_item(demo, f"new-{k}")
    new_item(demo, "old-import", days_old=90)
    Item.objects.create(dataset_group=demo, item_id="bare-record")
    user_id = active_user(demo)
    # When asking twice for 10 items
    first = recommendation_list(campaign_name="personal", user_id=user_id, num_results=10)
    second = recommendation_list(campaign_name="personal", user_id=user_id, num_results=10)
    ids = [item.item_id for item in first.items]
    explored = [item.item_id for item in first.items if item.explanation.kind.value == "new"]
    new_ids = {f"new-{k}" for k in range(12)} | {"bare-record"}
    # Then half of the slots are new items, never the one older than the cut-off, the same each time
    assert len(ids) == 10 == len(set(ids))
    assert len([i for i in ids if i in new_ids]) == 5
    assert set(explored) >= {i for i in ids if i in new_ids}
    assert "old-import" not in ids
    assert ids == [item.item_id for item in second.items]


def test_no_new_item_when_the_exploration_weight_is_zero(demo: DatasetGroup, campaign: Campaign) -> None:
    # Given a campaign that does not explore, and a new item
    configured(campaign, NOT_EXPLORING)
    user_id = active_user(demo)
    before = recommendation_list(campaign_name="personal", user_id=user_id, num_results=10)
    new_item(demo, "brand-new")
    # When asking for recommendations
    after = recommendation_list(campaign_name="personal", user_id=user_id, num_results=10)
    # Then nothing changes
    assert [item.item_id for item in after.items] == [item.item_id for item in before.items]
    assert "brand-new" not in {item.item_id for item in after.items}


def test_a_filter_and_exclude_item_ids_drop_new_items(demo: DatasetGroup, campaign: Campaign) -> None:
    # Given an exploring campaign, two new items and a filter excluding one of them by category
    configured(campaign, EXPLORING)
    new_item(demo, "new-hidden", CATEGORY_L1="hidden-category")
    new_item(demo, "new-shown", CATEGORY_L1="shown-category")
    new_item(demo, "new-excluded", CATEGORY_L1="shown-category")
    filter_create(
        dataset_group=demo,
        name="no-hidden",
        expression='EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("hidden-category")',
    )
    user_id = active_user(demo)
    # When asking with the filter and excluding one item
    with CaptureQueriesContext(connection) as queries:
        served = recommendation_list(
            campaign_name="personal",
            user_id=user_id,
            num_results=10,
            filter_name="no-hidden",
            exclude_item_ids=["new-excluded"],
        )
    ids = [item.item_id for item in served.items]
    # Then only the new item passing both is explored, and the list stays full
    assert "new-shown" in ids
    assert "new-hidden" not in ids
    assert "new-excluded" not in ids
    assert len(ids) == 10 == len(set(ids))
    # And the new items were read with one query (none per item)
    item_reads = [q["sql"] for q in queries.captured_queries if 'FROM "catalog_item"' in q["sql"]]
    assert len([sql for sql in item_reads if '"catalog_item"."creation_timestamp"' in sql]) == 1


def test_only_recipes_that_explore_mix_new_items(
    demo: DatasetGroup, django_capture_on_commit_callbacks: Any
) -> None:
    # Given a popularity campaign with an exploration config and a new item
    solution = services.solution_create(dataset_group=demo, name="popular", recipe="aws-popularity-count")
    with django_capture_on_commit_callbacks(execute=True):
        version = services.solution_version_create(solution=solution)
    version.refresh_from_db()
    services.campaign_create(name="popular", solution_version=version, campaign_config=EXPLORING)
    new_item(demo, "brand-new")
    # When asking for recommendations
    served = recommendation_list(campaign_name="popular", user_id=active_user(demo), num_results=10)
    # Then the popularity recipe (no exploration) never shows it
    assert "brand-new" not in {item.item_id for item in served.items}
