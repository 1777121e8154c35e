"""The demo storefront in headless Chromium: a click is tracked by recsite.js and the lists change."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command

from catalog.models import DatasetGroup, Interaction
from recommendations.tracking import event_tracker_create
from tests.browser.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def storefront_shop(settings: Any, isolated_artifacts: None) -> DatasetGroup:
    """Debug on (the storefront is served only then), the small demo shop, a personalized campaign,
    a related-items campaign and the event tracker, as `make run` leaves them."""
    settings.DEBUG = True
    call_command("seed_demo", "--items", "200", "--users", "120", "--events", "4000", stdout=io.StringIO())
    for recipe in ("aws-user-personalization", "aws-sims"):
        call_command("train", "--recipe", recipe, "--deploy", stdout=io.StringIO())
    group = DatasetGroup.objects.get(name="default")
    event_tracker_create(dataset_group=group, name="web")
    return group


def shown(browser: Any, container: str) -> list[str]:
    """The item ids of a list's cards, read in one script: a re-render in between cannot stale them."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), card => card.dataset.itemId);",
        f"#{container} .product",
    )


def test_clicking_an_item_sends_a_view_and_the_recommendations_change(
    browser: Any, live_server: Any, storefront_shop: DatasetGroup, screenshot: Any
) -> None:
    from selenium.webdriver.common.by import By

    # Given a new anonymous visitor on the storefront, shown a full list
    browser.get(f"{live_server.url}/demo/")
    wait_for(browser, lambda b: len(shown(b, "recommendations")) == 12, "no recommendations shown")
    before = shown(browser, "recommendations")
    assert browser.find_element(By.ID, "tracker-missing").get_attribute("hidden") is not None
    screenshot("storefront-before")
    # When the visitor clicks the last product
    clicked = before[-1]
    browser.find_element(By.CSS_SELECTOR, f'#recommendations .product[data-item-id="{clicked}"]').click()
    # Then the related items of that product appear and the feed is asked again and changes
    wait_for(browser, lambda b: len(shown(b, "related")) > 0, "no related items after the click")
    wait_for(browser, lambda b: shown(b, "recommendations") != before, "the recommendations did not change")
    after = shown(browser, "recommendations")
    assert clicked not in shown(browser, "related")
    title = browser.find_element(By.ID, "related-title").text
    assert title == f"Customers who viewed {clicked} also viewed"
    # and the products new to the list are marked as such
    fresh = [
        card.get_attribute("data-item-id")
        for card in browser.find_elements(By.CSS_SELECTOR, "#recommendations .product.fresh")
    ]
    assert fresh and set(fresh) == set(after) - set(before)
    screenshot("storefront-after-click")
    # and the click reached the database as the session's view of that item
    session_id = browser.execute_script("return localStorage.getItem('recsite.sessionId')")
    event = Interaction.objects.get(session_id=session_id)
    assert (event.event_type, event.item.item_id, event.user_id) == ("view", clicked, None)
