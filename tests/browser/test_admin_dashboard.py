"""The admin in headless Chromium: login, the dashboard's charts from the demo data, the filter form.

Expected figures are counted here with plain ORM queries, not with the dashboard's selectors, so a
chart that draws the wrong series, misses an event type or ranks items wrongly fails.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import UTC, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Count, Max

from catalog.models import DatasetGroup, Interaction
from recommendations.models import Filter, Solution
from tests.browser.conftest import admin_login, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_shop(admin_user: Any, isolated_artifacts: None) -> DatasetGroup:
    """The small demo shop with two solutions: user-personalization trained twice, popularity once."""
    call_command("seed_demo", "--items", "200", "--users", "120", "--events", "4000", stdout=io.StringIO())
    for recipe in ("aws-user-personalization", "aws-popularity-count", "aws-user-personalization"):
        call_command("train", "--recipe", recipe, "--deploy", stdout=io.StringIO())
    return DatasetGroup.objects.get(name="default")


def chart(browser: Any, name: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, f'svg.recsite-chart[data-chart="{name}"]')


def texts(element: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [text.get_attribute("textContent").strip() for text in element.find_elements(By.TAG_NAME, "text")]


def test_a_wrong_password_is_refused_and_the_right_one_shows_the_dashboard_link(
    browser: Any, live_server: Any, admin_user: Any, screenshot: Any
) -> None:
    from selenium.webdriver.common.by import By

    # Given the admin login page
    # When a wrong password is sent
    admin_login(browser, live_server.url, password="not-the-password")
    # Then the form says so and nobody is signed in
    error = wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".errornote"), "no login error")
    assert "correct username and password" in error[0].text
    # When the right password is sent
    admin_login(browser, live_server.url)
    # Then the admin index links the dashboard and the filter form, and the link leads there
    link = wait_for(
        browser,
        lambda b: b.find_elements(By.CSS_SELECTOR, "#recsite-dashboard-link a"),
        "the admin index has no dashboard link",
    )
    assert [a.text for a in link] == ["Dashboard", "Create a filter"]
    screenshot("admin-index")
    link[0].click()
    wait_for(browser, lambda b: b.find_elements(By.ID, "panel-events"), "the dashboard did not open")
    assert browser.current_url == f"{live_server.url}/admin/dashboard/"


def test_the_dashboard_draws_the_demo_shops_events_items_and_metrics(
    browser: Any, live_server: Any, demo_shop: DatasetGroup, screenshot: Any
) -> None:
    from selenium.webdriver.common.by import By

    # Given the demo shop's last 7 days of events, counted directly
    newest = Interaction.objects.aggregate(newest=Max("timestamp"))["newest"].astimezone(UTC)
    end = newest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    window = Interaction.objects.filter(timestamp__gte=end - timedelta(days=7), timestamp__lt=end)
    per_type = dict(window.values_list("event_type").annotate(n=Count("id")))
    per_item = Counter(window.values_list("item__item_id", flat=True))
    # When the signed-in operator opens the dashboard
    admin_login(browser, live_server.url, next_path="/admin/dashboard/")
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "svg.recsite-chart"), "no chart drawn")
    screenshot("dashboard")

    # Then the events chart has one drawn line per event type, over the window's 168 hours,
    # each named in the legend with its count
    events = chart(browser, "events")
    assert events.size["width"] > 600 and events.size["height"] > 150
    series = events.find_elements(By.CSS_SELECTOR, 'g[id^="events-series-"] path')
    assert len(series) == len(per_type) == 3
    for path in series:
        assert len(re.findall(r"[ML]", path.get_attribute("d"))) == 7 * 24
    legend = texts(events)
    for event_type, count in per_type.items():
        assert f"{event_type} ({count:,})" in legend
    # and the top items chart has ten bars, the first for the item with the most events
    top = chart(browser, "top-items")
    assert len(top.find_elements(By.CSS_SELECTOR, 'g[id^="top-items-bar-"]')) == 10
    most = max(per_item.values())
    labels = texts(top)
    first = next(label for label in labels if label in per_item)
    assert per_item[first] == most and f"{most:,}" in labels
    # and the trending chart draws a bar per trending row listed beside it
    trending_rows = browser.find_elements(By.CSS_SELECTOR, "#panel-trending-items tbody tr")
    trending_bars = chart(browser, "trending-items").find_elements(
        By.CSS_SELECTOR, 'g[id^="trending-items-bar-"]'
    )
    assert len(trending_bars) == len(trending_rows) > 0
    # and the metrics chart has a line per solution, with a marker per trained version
    metrics = chart(browser, "metrics")
    lines = metrics.find_elements(
        By.CSS_SELECTOR, 'g[id^="metrics-normalized_discounted_cumulative_gain_at_10-series-"]'
    )
    markers = sorted(len(line.find_elements(By.TAG_NAME, "use")) for line in lines)
    assert markers == [1, 2]
    assert {"aws-user-personalization", "aws-popularity-count"} <= set(texts(metrics))
    # and the campaigns table names each campaign with its status, backend and served version
    rows = {
        row.get_attribute("data-campaign"): row.text
        for row in browser.find_elements(By.CSS_SELECTOR, "#campaigns-table tbody tr")
    }
    newest_version = Solution.objects.get(name="aws-user-personalization").versions.first()
    assert f"aws-user-personalization v{newest_version.pk}" in rows["aws-user-personalization"]
    assert "ACTIVE" in rows["aws-user-personalization"] and "local" in rows["aws-user-personalization"]


def test_the_filter_form_shows_where_a_bad_expression_breaks_as_it_is_typed(
    browser: Any, live_server: Any, demo_shop: DatasetGroup, screenshot: Any
) -> None:
    from selenium.webdriver.common.by import By

    # Given the operator on the filter form
    admin_login(browser, live_server.url, next_path="/admin/dashboard/filters/new/")
    expression = wait_for(browser, lambda b: b.find_element(By.ID, "id_expression"), "no filter form")
    browser.find_element(By.ID, "id_name").send_keys("no-purchased")
    # When an expression that stops short is typed
    expression.send_keys("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN")
    # Then, without submitting, the form shows the position, a caret under it and what was expected
    # (a check may fire on a pause in typing: wait for the answer about the whole text)
    message = wait_for(
        browser,
        lambda b: "position 48 " in (text := b.find_element(By.ID, "expression-check").text) and text,
        "no validation message for the whole expression",
    )
    assert message.startswith("position 48 (line 1, column 48): expected (")
    caret = browser.find_element(By.CSS_SELECTOR, "#expression-check pre.caret").text
    assert caret.splitlines()[-1] == " " * 47 + "^"
    expected = browser.find_element(By.CSS_SELECTOR, "#expression-check .expected").text
    assert expected.startswith("Expected: (")
    assert expression.get_attribute("aria-invalid") == "true"
    screenshot("filter-invalid")
    # When the expression is finished
    expression.send_keys(' ("purchase")')
    # Then the check turns valid
    wait_for(
        browser,
        lambda b: b.find_elements(By.CSS_SELECTOR, "#expression-check.valid"),
        "the finished expression was not accepted",
    )
    assert browser.find_element(By.ID, "expression-check").text == "Valid: filters ItemID"
    # When the form is submitted
    browser.find_element(By.CSS_SELECTOR, "#filter-form [type=submit]").click()
    # Then the filter exists and the dashboard says so
    wait_for(browser, lambda b: b.find_elements(By.ID, "panel-events"), "no dashboard after saving")
    assert (
        "Filter no-purchased created (ACTIVE)." in browser.find_element(By.CSS_SELECTOR, ".messagelist").text
    )
    saved = Filter.objects.get(name="no-purchased")
    assert saved.expression == 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
