"""End to end over real HTTP: the `personalize` backend's boto3 code path against Recsite's own endpoint.

Two dataset groups on one live server. `default` plays Amazon Personalize: a campaign trained by
the local engine and an event tracker. `shop` is a deployment on the Personalize backend whose
campaign ARN and trackingId name them, with boto3's endpoints pointed at the live server's
Personalize-compatible endpoint. Its GraphQL recommendations go out through GetRecommendations
and its putEvents through the outbox's PutEvents, both real boto3 requests over HTTP.
"""

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from catalog.models import DatasetGroup, EndUser, ForwardState, Interaction, Item
from recommendations import services
from recommendations.models import (
    Campaign,
    CampaignBackend,
    CampaignStatus,
    EventTracker,
    SolutionVersion,
    SolutionVersionStatus,
)
from recommendations.reasons import label_cache_clear
from recommendations.tracking import event_tracker_create

pytestmark = pytest.mark.django_db(transaction=True)

ARN = "arn:aws:personalize:us-east-1:123456789012"
RECOMMEND = """query Feed($user: String!, $campaign: String!) {
  recommendations(userId: $user, campaign: $campaign, numResults: 10) {
    items { itemId item { itemId metadata } }
  }
}"""
PUT_EVENTS = """mutation Put($tracking: String!, $user: String!, $events: [EventInput!]!) {
  putEvents(trackingId: $tracking, sessionId: "s-1", userId: $user, events: $events) { eventsRecorded }
}"""


def graphql(query: str, **variables: Any) -> dict[str, Any]:
    response = Client().post(
        "/graphql/", json.dumps({"query": query, "variables": variables}), content_type="application/json"
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
def aws_at_live_server(aws_sandbox: None, settings: Any, live_server: Any) -> None:
    """boto3's personalize-runtime and personalize-events clients sent to the live server."""
    settings.RECSITE_COMPAT_ACCEPT_ANY_CREDENTIALS = True
    settings.PERSONALIZE_RUNTIME_ENDPOINT_URL = f"{live_server.url}/personalize"
    settings.PERSONALIZE_EVENTS_ENDPOINT_URL = f"{live_server.url}/personalize"
    label_cache_clear()


@pytest.fixture
def shop_on_personalize(demo: DatasetGroup, django_capture_on_commit_callbacks: Callable) -> DatasetGroup:
    """`default` trained and tracked locally; `shop`, a copy of its catalog served from its ARNs."""
    solution = services.solution_create(dataset_group=demo, name="feed", recipe="aws-user-personalization")
    with django_capture_on_commit_callbacks(execute=True):
        version = services.solution_version_create(solution=solution)
    version.refresh_from_db()
    assert version.status == SolutionVersionStatus.ACTIVE, version.failure_reason
    services.campaign_create(name="feed", solution_version=version, backend=CampaignBackend.LOCAL)
    aws_side = event_tracker_create(dataset_group=demo, name="aws-side")

    shop = DatasetGroup.objects.create(name="shop")
    Item.objects.bulk_create(
        Item(dataset_group=shop, item_id=item.item_id, metadata=item.metadata)
        for item in Item.objects.filter(dataset_group=demo)
    )
    remote = services.solution_create(dataset_group=shop, name="shop-feed", recipe="aws-user-personalization")
    remote_version = SolutionVersion.objects.create(
        solution=remote, status=SolutionVersionStatus.ACTIVE, personalize_arn=f"{ARN}:solution/feed/1"
    )
    # The campaign as deploying to Personalize leaves it (its ARN names `default`'s local campaign)
    Campaign.objects.create(
        dataset_group=shop,
        name="shop-feed",
        solution_version=remote_version,
        backend=CampaignBackend.PERSONALIZE,
        personalize_arn=f"{ARN}:campaign/feed",
        status=CampaignStatus.ACTIVE,
    )
    tracker = event_tracker_create(dataset_group=shop, name="shop-web")
    EventTracker.objects.filter(pk=tracker.pk).update(
        backend=CampaignBackend.PERSONALIZE,
        personalize_arn=f"{ARN}:event-tracker/aws-side",
        personalize_tracking_id=aws_side.tracking_id,
    )
    return shop


def test_recommendations_and_events_go_through_boto3_to_the_compatible_endpoint(
    aws_at_live_server: None, shop_on_personalize: DatasetGroup, demo: DatasetGroup
) -> None:
    # Given a user of the trained shop, served once locally and once through boto3
    user = EndUser.objects.filter(dataset_group=demo).order_by("user_id").first().user_id
    local = graphql(RECOMMEND, user=user, campaign="feed")["recommendations"]["items"]
    remote = graphql(RECOMMEND, user=user, campaign="shop-feed")["recommendations"]["items"]
    # Then the Personalize path answers the same items, joined with the shop's own catalog rows
    assert [item["itemId"] for item in remote] == [item["itemId"] for item in local]
    assert all(item["item"]["itemId"] == item["itemId"] and item["item"]["metadata"] for item in remote)

    # When the shop tracks five views of items the list did not hold
    shown = {item["itemId"] for item in remote}
    viewed = list(
        Item.objects.filter(dataset_group=demo)
        .exclude(item_id__in=shown)
        .values_list("item_id", flat=True)[:5]
    )
    events = [
        {"eventType": "click", "sentAt": 1_790_000_000 + n, "itemId": item_id, "eventId": f"roundtrip-{n}"}
        for n, item_id in enumerate(viewed)
    ]
    tracking_id = EventTracker.objects.get(dataset_group=shop_on_personalize).tracking_id
    recorded = graphql(PUT_EVENTS, tracking=tracking_id, user=user, events=events)["putEvents"]
    assert recorded["eventsRecorded"] == 5

    # Then the outbox forwarded them once each through PutEvents, and marked them sent
    shop_events = Interaction.objects.filter(dataset_group=shop_on_personalize)
    assert sorted(shop_events.values_list("forward_state", flat=True)) == [ForwardState.SENT] * 5
    arrived = Interaction.objects.filter(dataset_group=demo, event_id__startswith="roundtrip-")
    assert sorted(arrived.values_list("event_id", flat=True)) == [f"roundtrip-{n}" for n in range(5)]
    assert set(arrived.values_list("user__user_id", flat=True)) == {user}
    # And the next recommendations through boto3 reflect them without retraining
    after = graphql(RECOMMEND, user=user, campaign="shop-feed")["recommendations"]["items"]
    assert [item["itemId"] for item in after] != [item["itemId"] for item in remote]
    local_after = graphql(RECOMMEND, user=user, campaign="feed")["recommendations"]["items"]
    assert [item["itemId"] for item in after] == [item["itemId"] for item in local_after]
