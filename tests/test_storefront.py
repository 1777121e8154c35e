"""The demo storefront at /demo/: served only in debug, wired to the tracker, and its queries work.

The page's own GraphQL documents (handed to it by the view) are run here the way the page runs
them: a new anonymous visitor's feed, a click sent as putEvents, the feed again and the clicked
item's related items. What a browser does with them (rendering, recsite.js) is the browser tests'.
"""

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from catalog.models import DatasetGroup
from recommendations.storefront.views import RECOMMENDATIONS_QUERY, RELATED_ITEMS_QUERY
from recommendations.tracking import event_tracker_create

pytestmark = pytest.mark.django_db


def page_config(html: str) -> dict[str, Any]:
    """The JSON the view hands the page (json_script with id storefront-config)."""
    match = re.search(r'<script id="storefront-config" type="application/json">(.*?)</script>', html, re.S)
    assert match, "no storefront-config in the page"
    return json.loads(match.group(1))


def gql(query: str, variables: dict) -> dict:
    response = Client().post(
        "/graphql/", {"query": query, "variables": variables}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def test_the_storefront_is_not_served_with_debug_off(settings: Any) -> None:
    # Given debug off (production)
    settings.DEBUG = False
    # When the storefront is asked for
    response = Client().get("/demo/")
    # Then it does not exist
    assert response.status_code == 404


def test_the_page_loads_recsite_js_and_gets_the_endpoint_and_tracking_id(
    settings: Any, default_group: DatasetGroup
) -> None:
    # Given debug on and the default group's tracker
    settings.DEBUG = True
    tracker = event_tracker_create(dataset_group=default_group, name="web")
    # When the page is fetched
    response = Client().get("/demo/")
    html = response.content.decode()
    config = page_config(html)
    # Then it loads the snippet from Recsite's static files and knows where to send what
    assert response.status_code == 200
    assert '<script src="/static/recsite/recsite.js"></script>' in html
    assert config["endpoint"] == "http://testserver/graphql/"
    assert config["trackingId"] == tracker.tracking_id
    assert config["recommendationsQuery"] == RECOMMENDATIONS_QUERY
    assert config["relatedItemsQuery"] == RELATED_ITEMS_QUERY


def test_without_a_tracker_the_page_says_how_to_make_one(settings: Any, default_group: DatasetGroup) -> None:
    # Given debug on and no event tracker
    settings.DEBUG = True
    # When the page is fetched
    html = Client().get("/demo/").content.decode()
    # Then it has no trackingId and carries the explanation (shown by the page's script)
    assert page_config(html)["trackingId"] is None
    assert 'id="tracker-missing"' in html and "createEventTracker" in html


def test_a_click_changes_the_anonymous_visitors_recommendations(
    settings: Any, default_group: DatasetGroup, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    # Given the demo shop with the feed and related-items campaigns `make run` deploys, and a tracker
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RECSITE_ARTIFACT_CACHE = tmp_path / "cache"
    settings.RECSITE_DEFAULT_CAMPAIGN = ""
    call_command("seed_demo", "--items", "200", "--users", "120", "--events", "4000", stdout=io.StringIO())
    for recipe in ("aws-user-personalization", "aws-sims"):
        call_command("train", "--recipe", recipe, "--deploy", stdout=io.StringIO())
    tracker = event_tracker_create(dataset_group=default_group, name="web")
    visitor = {"sessionId": "storefront-session-1"}
    # When a new visitor's page loads its feed, and the visitor clicks the third item
    before = gql(RECOMMENDATIONS_QUERY, visitor)["recommendations"]
    clicked = before["items"][2]["itemId"]
    event = {
        "eventType": "view",
        "sentAt": time.time(),
        "itemId": clicked,
        "recommendationId": before["recommendationId"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        gql(
            "mutation($t: String!, $s: String!, $e: [EventInput!]!) "
            "{ putEvents(trackingId: $t, sessionId: $s, events: $e) { eventsRecorded } }",
            {"t": tracker.tracking_id, "s": visitor["sessionId"], "e": [event]},
        )
    after = gql(RECOMMENDATIONS_QUERY, visitor)["recommendations"]
    related = gql(RELATED_ITEMS_QUERY, {"itemId": clicked, "userId": None})["relatedItems"]
    # Then the feed (12 items with names to show) changes and explains itself by the click
    ids_before = [entry["itemId"] for entry in before["items"]]
    ids_after = [entry["itemId"] for entry in after["items"]]
    assert len(ids_before) == len(ids_after) == 12
    assert all(entry["item"]["metadata"]["PRODUCT_DESCRIPTION"] for entry in after["items"])
    assert ids_after != ids_before
    assert any(entry["reason"].startswith("Because you viewed") for entry in after["items"])
    # and the clicked item has six related items, itself not among them
    related_ids = [entry["itemId"] for entry in related["items"]]
    assert len(related_ids) == 6 and clicked not in related_ids
