"""Trending freshness through the real /graphql/ view: putEvents move an item up on the next request.

Serving answers a trending campaign as of the wall clock (`time.time()` in selectors), adding the
events recorded since training from the database; nothing is retrained. The clock is frozen here,
after the demo's last event (catalog.demo.DEMO_END), at a fractional second so that events sent in
the same second as the request are covered too.
"""

import time
from types import SimpleNamespace
from typing import Any

import pytest

from catalog.demo import DEMO_END
from catalog.models import DatasetGroup, Item
from recommendations import selectors, services
from recommendations.models import Campaign, Solution
from recommendations.reasons import label_cache_clear
from recommendations.selectors import model_cache_clear
from tests.auth import manage_client

pytestmark = pytest.mark.django_db

NOW = DEMO_END.timestamp() + 27 * 86400 + 0.75  # "today", weeks after the demo's newest event
TRENDING = '{ recommendations(campaign: "trending", numResults: 25) { items { itemId score reason } } }'
PUT_EVENTS = (
    "mutation($t: String!, $s: String!, $u: String, $e: [EventInput!]!) { putEvents(trackingId: $t, "
    "sessionId: $s, userId: $u, events: $e) { eventsRecorded } }"
)


@pytest.fixture(autouse=True)
def clean_caches(settings: Any) -> None:
    settings.RECSITE_DEFAULT_CAMPAIGN = ""
    model_cache_clear()
    label_cache_clear()


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serving's clock reads NOW (the model cache keeps its monotonic clock)."""
    monkeypatch.setattr(selectors, "time", SimpleNamespace(time=lambda: NOW, monotonic=time.monotonic))


@pytest.fixture
def solution_config() -> dict | None:
    """The trending solution's solutionConfig (none: every event type counts)."""
    return None


@pytest.fixture
def trending(
    demo: DatasetGroup, django_capture_on_commit_callbacks: Any, solution_config: dict | None
) -> Campaign:
    """A campaign named "trending" serving an aws-trending-now version trained on the demo shop."""
    solution = Solution.objects.filter(name="trending").first() or services.solution_create(
        dataset_group=demo, name="trending", recipe="aws-trending-now", solution_config=solution_config
    )
    with django_capture_on_commit_callbacks(execute=True):
        version = services.solution_version_create(solution=solution)
    version.refresh_from_db()
    assert version.status == "ACTIVE", version.failure_reason
    return services.campaign_create(name="trending", solution_version=version)


def gql(query: str, variables: dict | None = None) -> dict:
    response = manage_client().post(  # as a manage-scoped API key: every operation
        "/graphql/", {"query": query, "variables": variables or {}}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def trending_items() -> list[dict]:
    return gql(TRENDING)["recommendations"]["items"]


def put_burst(tracking_id: str, item_id: str, sent_at: list[float], event_type: str = "view") -> None:
    """One event on `item_id` per visitor (distinct sessions and users), at the given times."""
    for n, at in enumerate(sent_at):
        recorded = gql(
            PUT_EVENTS,
            {
                "t": tracking_id,
                "s": f"burst-{event_type}-session-{n}",
                "u": f"burst-{event_type}-user-{n}",
                "e": [{"eventType": event_type, "sentAt": at, "itemId": item_id}],
            },
        )["putEvents"]["eventsRecorded"]
        assert recorded == 1


def test_put_events_make_an_item_trend_on_the_next_request(
    demo: DatasetGroup, trending: Campaign, frozen_clock: None
) -> None:
    # Given a trending campaign trained on the demo shop, an event tracker, and today's list
    tracking_id = gql('mutation { createEventTracker(name: "web") { trackingId } }')["createEventTracker"][
        "trackingId"
    ]
    before = trending_items()
    ids_before = [item["itemId"] for item in before]
    target = (
        Item.objects.filter(dataset_group=demo).exclude(item_id__in=ids_before).order_by("item_id").first()
    )
    assert target is not None
    control = ids_before[0]  # the head of the list, which gets no new events
    # When six visitors view the item in the current interval, the last ones in the request's second
    put_burst(tracking_id, target.item_id, [NOW - 600, NOW - 60, NOW - 1, NOW - 0.5, NOW - 0.25, NOW])
    after = trending_items()
    # Then the very next answer (no retraining) leads with that item, scored by its six new events
    # (three of them were sent within the request's own second, after int(now))
    assert (after[0]["itemId"], after[0]["score"]) == (target.item_id, 6.0)
    assert after[0]["reason"] == f"Trending now in {target.metadata['CATEGORY_L1']}"
    assert all(item["reason"].startswith("Trending now") for item in after)
    # And the items without new events keep their order: the former head is now second
    ids_after = [item["itemId"] for item in after]
    assert ids_after[1] == control
    assert ids_after[1:] == ids_before[:-1]
    assert [item["score"] for item in after[1:]] == [item["score"] for item in before[:-1]]


def test_events_outside_the_two_intervals_do_not_trend(
    demo: DatasetGroup, trending: Campaign, frozen_clock: None
) -> None:
    # Given a trending campaign (2-hour intervals) and today's list
    tracking_id = gql('mutation { createEventTracker(name: "web") { trackingId } }')["createEventTracker"][
        "trackingId"
    ]
    ids_before = [item["itemId"] for item in trending_items()]
    target = (
        Item.objects.filter(dataset_group=demo).exclude(item_id__in=ids_before).order_by("item_id").first()
    )
    # When the views were sent five hours ago, before the previous interval began
    put_burst(tracking_id, target.item_id, [NOW - 5 * 3600 + n for n in range(6)])
    # Then the list is unchanged
    assert [item["itemId"] for item in trending_items()] == ids_before


WEIGHTED = {
    "eventsConfig": {
        "eventParametersList": [
            {"eventType": "purchase", "weight": 1.0},
            {"eventType": "view", "weight": 0.1},
        ]
    }
}


@pytest.mark.parametrize("solution_config", [WEIGHTED])
def test_request_time_events_are_weighted_as_the_solution_says(
    demo: DatasetGroup, trending: Campaign, frozen_clock: None
) -> None:
    # Given a trending solution that weighs a purchase 1 and a view 0.1, and today's list
    tracking_id = gql('mutation { createEventTracker(name: "web") { trackingId } }')["createEventTracker"][
        "trackingId"
    ]
    ids_before = [item["itemId"] for item in trending_items()]
    viewed, bought = (
        Item.objects.filter(dataset_group=demo).exclude(item_id__in=ids_before).order_by("item_id")[:2]
    )
    # When one item gets six views and another two purchases in the current interval
    put_burst(tracking_id, viewed.item_id, [NOW - 60 + n for n in range(6)])
    put_burst(tracking_id, bought.item_id, [NOW - 30, NOW - 20], event_type="purchase")
    after = trending_items()
    # Then the events count with the solution's weights: 2 x 1 ahead of 6 x 0.1
    assert (after[0]["itemId"], after[0]["score"]) == (bought.item_id, 2.0)
    assert after[1]["itemId"] == viewed.item_id
    assert after[1]["score"] == pytest.approx(0.6, rel=1e-5)
