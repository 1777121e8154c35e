"""personalize-events through a real boto3 client against the live server: events count at once."""

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from catalog.models import DatasetGroup, EndUser, Interaction, Item
from recommendations.models import Campaign, EventTracker
from recommendations.tracking import event_tracker_create
from tests.recommendations.compat.conftest import campaign_arn, dataset_arn

SENT_AT = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def tracker(demo: DatasetGroup) -> EventTracker:
    return event_tracker_create(dataset_group=demo, name="web")


def test_put_events_changes_the_next_recommendations_for_that_user(
    deploy: Callable[..., Campaign],
    demo: DatasetGroup,
    tracker: EventTracker,
    runtime: BaseClient,
    events: BaseClient,
) -> None:
    # Given a campaign and a user nobody has seen, who gets popular (and new) items
    deploy("aws-user-personalization")
    arn = campaign_arn("aws-user-personalization")
    before = runtime.get_recommendations(campaignArn=arn, userId="newcomer", numResults=10)["itemList"]
    assert any(item["reason"][0].startswith("Popular") for item in before)
    assert not any(item["reason"][0].startswith("Because you viewed") for item in before)
    viewed = list(
        Item.objects.filter(dataset_group=demo).order_by("item_id").values_list("item_id", flat=True)[:3]
    )
    # When boto3 sends three views of that user with the tracker's trackingId
    events.put_events(
        trackingId=tracker.tracking_id,
        userId="newcomer",
        sessionId="session-1",
        eventList=[
            {
                "eventId": f"e-{n}",
                "eventType": "view",
                "itemId": item_id,
                "sentAt": SENT_AT,
                "properties": json.dumps({"device": "mobile"}),
            }
            for n, item_id in enumerate(viewed)
        ],
    )
    # Then they are stored (with their properties), and the very next request is personalized by them
    stored = Interaction.objects.filter(user__user_id="newcomer").order_by("event_id")
    assert [e.item.item_id for e in stored] == viewed
    assert {e.timestamp for e in stored} == {SENT_AT} and stored[0].properties == {"DEVICE": "mobile"}
    after = runtime.get_recommendations(campaignArn=arn, userId="newcomer", numResults=10)["itemList"]
    assert [i["itemId"] for i in after] != [i["itemId"] for i in before]
    assert any(item["reason"][0].startswith("Because you viewed") for item in after)


def test_put_items_and_put_users_write_the_catalog_of_the_dataset_arn(
    demo: DatasetGroup, events: BaseClient
) -> None:
    # When boto3 puts an item and a user, properties as JSON text in camelCase, as Personalize takes them
    events.put_items(
        datasetArn=dataset_arn("default", "ITEMS"),
        items=[
            {
                "itemId": "brand-new",
                "properties": json.dumps({"categoryL1": "Books", "price": 12.5, "brand": "Acme"}),
            }
        ],
    )
    events.put_users(
        datasetArn=dataset_arn("default", "USERS"),
        users=[{"userId": "shopper-1", "properties": json.dumps({"membership": "gold"})}],
    )
    # Then both exist with their metadata in the schema's field names
    item = Item.objects.get(dataset_group=demo, item_id="brand-new")
    assert item.metadata["CATEGORY_L1"] == "Books" and item.metadata["PRICE"] == 12.5
    assert item.creation_timestamp is not None
    assert EndUser.objects.get(dataset_group=demo, user_id="shopper-1").metadata["MEMBERSHIP"] == "gold"


def test_events_errors_carry_personalize_codes(
    demo: DatasetGroup, tracker: EventTracker, events: BaseClient, unchecked_events: BaseClient
) -> None:
    event = {"eventType": "view", "itemId": "item-1", "sentAt": SENT_AT}
    # When the trackingId was never issued, Then ResourceNotFoundException (404)
    with pytest.raises(ClientError) as unknown_tracker:
        events.put_events(trackingId="not-a-tracker", sessionId="s", eventList=[event])
    # When 11 events are sent (past boto3's own check), Then InvalidInputException (400)
    with pytest.raises(ClientError) as too_many:
        unchecked_events.put_events(trackingId=tracker.tracking_id, sessionId="s", eventList=[event] * 11)
    # When properties are not a JSON object, or a property is not in the schema
    with pytest.raises(ClientError) as bad_properties:
        events.put_events(
            trackingId=tracker.tracking_id, sessionId="s", eventList=[{**event, "properties": "[1]"}]
        )
    with pytest.raises(ClientError) as unknown_field:
        events.put_items(
            datasetArn=dataset_arn("default", "ITEMS"),
            items=[{"itemId": "x", "properties": json.dumps({"colour": "red"})}],
        )
    # When the dataset ARN names an unknown group, or the wrong dataset
    with pytest.raises(ClientError) as unknown_group:
        events.put_items(datasetArn=dataset_arn("nope", "ITEMS"), items=[{"itemId": "x"}])
    with pytest.raises(ClientError) as wrong_dataset:
        events.put_users(datasetArn=dataset_arn("default", "ITEMS"), users=[{"userId": "x"}])
    codes = [
        (e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"])
        for e in (unknown_tracker, too_many, bad_properties, unknown_field, unknown_group, wrong_dataset)
    ]
    assert codes == [
        ("ResourceNotFoundException", 404),
        ("InvalidInputException", 400),
        ("InvalidInputException", 400),
        ("InvalidInputException", 400),
        ("ResourceNotFoundException", 404),
        ("InvalidInputException", 400),
    ]
    assert "colour" in unknown_field.value.response["Error"]["Message"]
    # And nothing was written by any of them
    assert not Interaction.objects.filter(session_id="s").exists()
    assert not Item.objects.filter(item_id="x").exists() and not EndUser.objects.filter(user_id="x").exists()
