"""The operators' dashboard: its selectors, its charts, its page and actions (train, deploy, filters).

The browser tests (tests/browser/) look at the drawn page; these check the figures behind it, the
permissions and the actions through Django's test client, on the real database.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import DatasetGroup, DatasetImportJob, EndUser, ForwardState, Interaction, Item, JobStatus
from recommendations.dashboard import charts, selectors
from recommendations.models import (
    BatchJob,
    Campaign,
    Filter,
    PersonalizeDatasetGroup,
    PersonalizeImportJob,
    PersonalizeStatus,
    Solution,
    SolutionVersion,
    SolutionVersionStatus,
)
from tests.factories import DatasetGroupFactory, EndUserFactory, InteractionFactory, ItemFactory

pytestmark = pytest.mark.django_db

END = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)  # the newest event in these tests
DASHBOARD = "/admin/dashboard/"
CHECK = "/admin/dashboard/filters/check/"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_charts() -> None:
    charts.chart_cache_clear()


def events(group: DatasetGroup, item: Any, event_type: str, *moments: datetime) -> None:
    user = EndUserFactory(dataset_group=group)
    for moment in moments:
        InteractionFactory(dataset_group=group, user=user, item=item, event_type=event_type, timestamp=moment)


@pytest.fixture
def shop(default_group: DatasetGroup) -> dict[str, Any]:
    """Events at known hours: a view-heavy item, a trending item, an old one outside a 7-day window."""
    steady, rising, old = (ItemFactory(item_id=name) for name in ("steady", "rising", "old"))
    events(default_group, steady, "view", *(END - timedelta(hours=h) for h in (0, 0, 30, 30, 31, 40)))
    events(default_group, steady, "purchase", END - timedelta(hours=30))
    events(default_group, rising, "view", END, END - timedelta(minutes=10), END - timedelta(hours=2))
    events(default_group, rising, "cart", END - timedelta(hours=3))
    events(default_group, old, "view", END - timedelta(days=9))
    return {"group": default_group, "steady": steady, "rising": rising, "old": old}


# --- selectors ---------------------------------------------------------------------------------


def test_the_window_ends_on_the_hour_after_the_newest_event_and_counts_each_hour(shop: dict) -> None:
    # Given events up to END (12:30) and one nine days before
    # When the 7-day window and its hourly counts are read
    window = selectors.dashboard_window(dataset_group=shop["group"], days=7, now=END + timedelta(days=30))
    series = selectors.events_per_hour(dataset_group=shop["group"], window=window)
    # Then the window is the 168 hours up to 13:00 and each event sits in its own hour
    assert (window.start, window.end) == (
        datetime(2026, 3, 3, 13, tzinfo=UTC),
        datetime(2026, 3, 10, 13, tzinfo=UTC),
    )
    assert len(series.hours) == 168
    assert list(series.counts) == ["view", "cart", "purchase"]  # largest total first
    assert series.totals == {"view": 9, "cart": 1, "purchase": 1}  # the 9-day-old view is outside
    last = series.hours.index(datetime(2026, 3, 10, 12, tzinfo=UTC))
    assert series.counts["view"][last] == 4 and series.counts["view"][last - 30] == 2
    assert series.counts["purchase"][last - 30] == 1 and sum(series.counts["purchase"]) == 1


def test_the_window_ignores_events_dated_after_now(shop: dict) -> None:
    # Given an event a client dated in the future
    events(shop["group"], shop["old"], "view", END + timedelta(days=400))
    # When the window is taken at END
    window = selectors.dashboard_window(dataset_group=shop["group"], now=END)
    # Then it still ends at END's hour
    assert window.end == datetime(2026, 3, 10, 13, tzinfo=UTC)


def test_more_event_types_than_drawn_are_summed_as_other(default_group: DatasetGroup) -> None:
    # Given ten event types, the first with the most events
    item = ItemFactory()
    for index in range(10):
        events(default_group, item, f"type-{index}", *[END] * (20 - index))
    # When the hourly series are read
    window = selectors.dashboard_window(dataset_group=default_group, now=END)
    series = selectors.events_per_hour(dataset_group=default_group, window=window)
    # Then the eight largest are drawn and the two smallest are one "other" series
    assert list(series.counts) == [f"type-{i}" for i in range(8)] + ["other"]
    assert series.totals["other"] == 12 + 11


def test_top_items_rank_by_events_in_the_window_and_trending_by_growth_over_the_last_day(shop: dict) -> None:
    # Given the shop's events
    window = selectors.dashboard_window(dataset_group=shop["group"], now=END)
    # When the top and trending items are read
    top = selectors.top_items(dataset_group=shop["group"], window=window)
    trending = selectors.trending_items(dataset_group=shop["group"], window=window)
    # Then top counts every event of the window (not the old item's), most first
    assert [(item.item_id, item.events) for item in top] == [("steady", 7), ("rising", 4)]
    # and trending compares the last 24 hours with the 24 before: steady fell (2 vs 5), rising grew
    assert [(item.item_id, item.current, item.previous, item.increase) for item in trending] == [
        ("rising", 4, 0, 4)
    ]


def test_solutions_come_with_their_versions_newest_first_and_campaigns_with_what_they_serve(
    default_group: DatasetGroup,
) -> None:
    # Given a solution with a failed and two active versions, one without versions, and a campaign
    trained = Solution.objects.create(dataset_group=default_group, name="recs", recipe="aws-sims")
    Solution.objects.create(dataset_group=default_group, name="fresh", recipe="aws-popularity-count")
    first = SolutionVersion.objects.create(
        solution=trained, status=SolutionVersionStatus.ACTIVE, metrics={"coverage": 0.5, "bad": "x"}
    )
    failed = SolutionVersion.objects.create(
        solution=trained, status=SolutionVersionStatus.FAILED, failure_reason="too little data"
    )
    second = SolutionVersion.objects.create(solution=trained, status=SolutionVersionStatus.ACTIVE)
    Campaign.objects.create(dataset_group=default_group, name="shop", solution_version=first)
    other_group = DatasetGroupFactory()
    Solution.objects.create(dataset_group=other_group, name="elsewhere", recipe="aws-sims")
    # When the panels are read
    with CaptureQueriesContext(connection) as queries:
        solutions = selectors.solution_rows(dataset_group=default_group)
        campaigns = selectors.campaign_rows(dataset_group=default_group)
    # Then each takes one query; solutions are by name, versions newest first, numbers-only metrics
    assert len(queries.captured_queries) == 2
    assert [s.name for s in solutions] == ["fresh", "recs"]
    assert solutions[0].versions == [] and solutions[0].latest is None
    assert [v.pk for v in solutions[1].versions] == [second.pk, failed.pk, first.pk]
    assert [v.pk for v in solutions[1].active_versions] == [second.pk, first.pk]
    assert solutions[1].versions[2].metrics == {"coverage": 0.5}
    assert solutions[1].versions[1].failure_reason == "too little data"
    # and the campaign names the version it serves
    assert [(c.name, c.solution_name, c.version_pk, c.status, c.backend) for c in campaigns] == [
        ("shop", "recs", first.pk, "ACTIVE", "local")
    ]


def test_the_outbox_backlog_counts_pending_rows_per_group_and_dataset(shop: dict) -> None:
    # Given pending events and a pending item in the default group, a sent event, and another group
    Interaction.objects.filter(item=shop["rising"]).update(forward_state=ForwardState.PENDING)
    Interaction.objects.filter(item=shop["old"]).update(forward_state=ForwardState.SENT)
    Item.objects.filter(pk=shop["steady"].pk).update(forward_state=ForwardState.PENDING)
    other = DatasetGroupFactory(name="eu")
    EndUserFactory(dataset_group=other)
    EndUser.objects.filter(dataset_group=other).update(forward_state=ForwardState.PENDING)
    # When the backlog is read
    with CaptureQueriesContext(connection) as queries:
        backlog = selectors.outbox_backlog()
    # Then one query gives each group's pending rows per dataset, with the oldest event's time
    assert len(queries.captured_queries) == 1
    assert [(row.dataset_group, row.dataset, row.pending) for row in backlog] == [
        ("default", "interactions", 4),
        ("default", "items", 1),
        ("eu", "users", 1),
    ]
    assert backlog[0].oldest == END - timedelta(hours=3)


def test_failed_jobs_list_every_kind_newest_first_and_at_most_twenty(default_group: DatasetGroup) -> None:
    # Given failures of each kind (and successes that must not show)
    solution = Solution.objects.create(dataset_group=default_group, name="recs", recipe="aws-sims")
    ok = SolutionVersion.objects.create(solution=solution, status=SolutionVersionStatus.ACTIVE)
    for minute in range(20):
        SolutionVersion.objects.create(
            solution=solution,
            status=SolutionVersionStatus.FAILED,
            failure_reason=f"failure {minute}",
            finished_at=END - timedelta(days=1, minutes=minute),
        )
    remote = PersonalizeDatasetGroup.objects.create(dataset_group=default_group, name="default")
    PersonalizeImportJob.objects.create(
        personalize_group=remote,
        dataset_type="items",
        job_name="items-bad",
        status=PersonalizeStatus.FAILED,
        failure_reason="bad CSV",
        finished_at=END,
    )
    BatchJob.objects.create(
        name="nightly",
        solution_version=ok,
        input_path="in.json",
        output_path="out/",
        status=PersonalizeStatus.FAILED,
        failure_reason="no input",
        finished_at=END - timedelta(minutes=1),
    )
    csv_import = DatasetImportJob.objects.create(
        dataset_group=default_group,
        status=JobStatus.FAILED,
        failure_reason="no ITEM_ID column",
        finished_at=END - timedelta(minutes=2),
    )
    # When the failures are read
    with CaptureQueriesContext(connection) as queries:
        failed = selectors.failed_jobs()
    # Then one query gives the 20 newest across kinds, each with its reason and admin page
    assert len(queries.captured_queries) == 1
    assert len(failed) == 20
    assert [(job.kind, job.name, job.failure_reason) for job in failed[:4]] == [
        ("Personalize import", "items-bad", "bad CSV"),
        ("batch job", "nightly", "no input"),
        ("CSV import", str(csv_import.pk), "no ITEM_ID column"),
        ("solution version", "recs", "failure 0"),
    ]
    assert failed[-1].failure_reason == "failure 16"
    assert {job.dataset_group for job in failed} == {"default"}
    assert failed[0].admin_url_name == "admin:recommendations_personalizeimportjob_change"


# --- charts ------------------------------------------------------------------------------------


def test_charts_write_client_text_as_escaped_text_never_as_markup_or_mathtext() -> None:
    # Given item ids a client chose
    hostile = [
        selectors.ItemCount(pk=1, item_id='<script>alert("x")</script>', events=3),
        selectors.ItemCount(pk=2, item_id="$5 off $", events=2),
    ]
    # When the top items chart is drawn
    svg = str(charts.top_items_chart(hostile, 7))
    # Then the ids are text nodes, escaped, and the dollar signs are literal
    assert "<script" not in svg
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in svg or '&lt;script&gt;alert("x")' in svg
    assert ">$5 off $<" in svg
    assert svg.startswith('<svg class="recsite-chart" data-chart="top-items"')
    assert len(re.findall(r'<g id="top-items-bar-\d+"', svg)) == 2


def test_empty_panels_say_there_is_nothing_rather_than_drawing_empty_axes() -> None:
    # Given no events and no trained version
    window = selectors.DashboardWindow(start=END - timedelta(days=1), end=END, newest_event=None)
    empty = selectors.EventSeries(hours=window.hours, counts={}, totals={})
    # When the charts are drawn
    # Then each says why it is empty
    assert "No events in this window" in charts.events_chart(empty)
    assert "No item grew in the last day" in charts.trending_items_chart([])
    assert "No trained version with metrics yet" in charts.metrics_chart([])


# --- the page and its actions ------------------------------------------------------------------


def staff(*permissions: str) -> Client:
    user = get_user_model().objects.create_user("operator", password="pw", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_the_dashboard_is_for_staff_with_view_permissions(admin_client: Client) -> None:
    # Given an anonymous visitor, a staff member without permissions and a superuser
    # When each asks for the dashboard and the check endpoint
    # Then the visitor is sent to the login, the staff member is refused, the superuser served
    anonymous = Client().get(DASHBOARD)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    assert staff().get(DASHBOARD).status_code == 403
    assert admin_client.get(DASHBOARD).status_code == 200
    check = Client().post(CHECK, {"datasetGroup": 1, "expression": "x"}, content_type="application/json")
    assert check.status_code == 403 and "error" in check.json()


def test_the_admin_index_links_the_dashboard_for_those_who_may_see_it(admin_client: Client) -> None:
    # Given a superuser and a staff member with no recommendations permissions
    # When each opens the admin index
    # Then only the superuser sees the dashboard and filter links
    html = admin_client.get("/admin/").content.decode()
    assert 'href="/admin/dashboard/"' in html and 'href="/admin/dashboard/filters/new/"' in html
    assert "/admin/dashboard/" not in staff().get("/admin/").content.decode()


def test_the_page_shows_every_panel_with_unique_ids_and_a_fixed_number_of_queries(
    admin_client: Client, shop: dict
) -> None:
    # Given the shop
    # When the dashboard is fetched, then again after many more events
    with CaptureQueriesContext(connection) as first:
        response = admin_client.get(DASHBOARD, {"days": 3})
    html = response.content.decode()
    events(shop["group"], ItemFactory(), "view", *[END - timedelta(minutes=m) for m in range(200)])
    charts.chart_cache_clear()
    with CaptureQueriesContext(connection) as second:
        admin_client.get(DASHBOARD, {"days": 3})
    # Then the same queries serve both (no query per row), every panel is there with its chart,
    assert len(first.captured_queries) == len(second.captured_queries) <= 16
    for panel in ("events", "top-items", "trending-items", "solutions", "campaigns", "outbox", "failed"):
        assert f'id="panel-{panel}"' in html
    for name in ("events", "top-items", "trending-items", "metrics"):
        assert f'data-chart="{name}"' in html
    # and the four inline SVGs share the page without one id appearing twice
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    assert "11 events from 2026-03-07 13:00 to 2026-03-10 13:00 UTC" in html


def test_the_group_and_window_come_from_the_query_and_an_unknown_group_is_404(
    admin_client: Client, shop: dict
) -> None:
    # Given a second, empty group
    DatasetGroupFactory(name="eu")
    # When each group is shown, and one that does not exist
    eu = admin_client.get(DASHBOARD, {"group": "eu", "days": "999"}).content.decode()
    missing = admin_client.get(DASHBOARD, {"group": "nope"})
    # Then the empty group says it has no events, the window is capped at 30 days, unknown is 404
    assert "the group has no events yet" in eu and '<option value="30" selected>' in eu
    assert missing.status_code == 404


@pytest.fixture
def demo_campaign(default_group: DatasetGroup, settings: Any, tmp_path: Any) -> Campaign:
    """The small demo shop with a deployed popularity campaign (two versions trained)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RECSITE_ARTIFACT_CACHE = tmp_path / "cache"
    call_command("seed_demo", "--items", "60", "--users", "40", "--events", "1500", stdout=io.StringIO())
    call_command("train", "--recipe", "aws-popularity-count", "--deploy", stdout=io.StringIO())
    return Campaign.objects.get(name="aws-popularity-count")


@pytest.mark.django_db(transaction=True)  # training runs when the view's transaction commits
def test_train_makes_a_new_version_and_deploy_moves_the_campaign_to_the_chosen_one(
    admin_client: Client, demo_campaign: Campaign
) -> None:
    # Given a deployed campaign and its solution
    solution = demo_campaign.solution_version.solution
    serving = demo_campaign.solution_version_id
    # When the operator trains a new version (tasks run in-process here)
    response = admin_client.post(
        f"/admin/dashboard/solutions/{solution.pk}/train/", {"days": "3"}, follow=True
    )
    # Then a version is trained and the dashboard says so, keeping the window
    newest = solution.versions.first()
    assert newest.pk != serving and newest.status == SolutionVersionStatus.ACTIVE
    assert response.redirect_chain[-1][0] == "/admin/dashboard/?group=default&days=3"
    assert f"Solution {solution.name}: version {newest.pk} is ACTIVE." in response.content.decode()
    # and the campaign, which follows the latest version (train --deploy), moved to it
    demo_campaign.refresh_from_db()
    assert demo_campaign.solution_version_id == newest.pk
    # When the operator deploys the previous version again (a rollback)
    url = f"/admin/dashboard/campaigns/{demo_campaign.pk}/deploy/"
    response = admin_client.post(url, {"version": serving}, follow=True)
    # Then the campaign serves it
    demo_campaign.refresh_from_db()
    assert demo_campaign.solution_version_id == serving
    assert f"Campaign aws-popularity-count: now serves version {serving}." in response.content.decode()
    # and deploying it once more changes nothing and says so
    again = admin_client.post(url, {"version": serving}, follow=True).content.decode()
    assert f"Campaign aws-popularity-count: already serves version {serving}." in again


def test_deploy_refuses_a_version_of_another_solution_and_a_failed_one(
    admin_client: Client, demo_campaign: Campaign
) -> None:
    # Given another solution's version and a failed version of the campaign's own solution
    stranger = SolutionVersion.objects.create(
        solution=Solution.objects.create(
            dataset_group=demo_campaign.dataset_group, name="other", recipe="aws-sims"
        ),
        status=SolutionVersionStatus.ACTIVE,
    )
    failed = SolutionVersion.objects.create(
        solution=demo_campaign.solution_version.solution, status=SolutionVersionStatus.FAILED
    )
    serving = demo_campaign.solution_version_id
    url = f"/admin/dashboard/campaigns/{demo_campaign.pk}/deploy/"
    # When the operator posts each
    foreign = admin_client.post(url, {"version": stranger.pk}, follow=True).content.decode()
    broken = admin_client.post(url, {"version": failed.pk}, follow=True).content.decode()
    # Then nothing changes and each refusal says why
    demo_campaign.refresh_from_db()
    assert demo_campaign.solution_version_id == serving
    assert "Campaign aws-popularity-count: choose a version of aws-popularity-count." in foreign
    assert f"version {failed.pk} is CREATE FAILED; only ACTIVE deploys" in broken


def test_actions_need_post_and_their_permission(admin_client: Client, demo_campaign: Campaign) -> None:
    # Given a staff member who may view but not change solutions or campaigns
    client = staff("view_solution", "view_campaign")
    solution = demo_campaign.solution_version.solution
    versions = solution.versions.count()
    # When they try to train and deploy, and someone GETs the train URL
    train = client.post(f"/admin/dashboard/solutions/{solution.pk}/train/")
    deploy = client.post(f"/admin/dashboard/campaigns/{demo_campaign.pk}/deploy/", {"version": 1})
    page = client.get(DASHBOARD).content.decode()
    # Then both are refused, nothing is trained, and the page offers neither button
    assert (train.status_code, deploy.status_code) == (403, 403)
    assert solution.versions.count() == versions
    assert 'name="train"' not in page and 'name="deploy"' not in page
    assert admin_client.get(f"/admin/dashboard/solutions/{solution.pk}/train/").status_code == 405


# --- filters -----------------------------------------------------------------------------------


def check(client: Client, group: DatasetGroup, expression: Any) -> Any:
    return client.post(
        CHECK, {"datasetGroup": group.pk, "expression": expression}, content_type="application/json"
    )


def test_the_check_answers_the_parsers_position_and_expected_tokens(
    admin_client: Client, default_group: DatasetGroup
) -> None:
    # Given an expression cut short on its second line
    text = (
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase") |\nINCLUDE ItemID WHERE Items.PRICE >'
    )
    # When it is checked
    answer = check(admin_client, default_group, text).json()
    # Then the answer locates it and lists what could come next
    assert answer["valid"] is False
    assert (answer["position"], answer["line"], answer["column"]) == (len(text) + 1, 2, 35)
    assert answer["expected"] == ["a number", "$PLACEHOLDER", "CurrentItem.FIELD"]
    assert answer["message"].startswith(f"position {len(text) + 1} (line 2, column 35): expected a number")


def test_the_check_locates_schema_errors_and_accepts_a_valid_expression(
    admin_client: Client, default_group: DatasetGroup
) -> None:
    # Given the demo-like items schema is absent: Items.GENRE is an unknown field
    # When an expression naming it is checked, then a valid one with a placeholder
    unknown = check(admin_client, default_group, "INCLUDE ItemID WHERE Items.GENRE IN ($G)").json()
    valid = check(admin_client, default_group, "EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($T)").json()
    # Then the unknown field is located by position, line and column, and the valid one named
    assert unknown["valid"] is False and "GENRE" in unknown["message"]
    assert (unknown["position"], unknown["line"], unknown["column"]) == (22, 1, 22)
    assert valid == {
        "valid": True,
        "message": "Valid: filters ItemID; values to pass: T",
        "target": "ItemID",
        "placeholders": ["T"],
    }


def test_the_check_refuses_malformed_bodies_and_requires_the_csrf_token(
    default_group: DatasetGroup,
) -> None:
    # Given a superuser's session with CSRF checks on (as in a browser)
    user = get_user_model().objects.create_superuser("root", "r@x", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    # When the check is posted without a token
    # Then it is refused
    assert check(client, default_group, "INCLUDE").status_code == 403
    # When posted with the token, with bad bodies
    client.get("/admin/dashboard/filters/new/")
    token = client.cookies["csrftoken"].value
    answers = [
        client.post(CHECK, body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
        for body in ("not json", json.dumps([1]), json.dumps({"datasetGroup": 0, "expression": "x"}))
    ]
    answers.append(
        client.post(
            CHECK,
            {"datasetGroup": default_group.pk, "expression": 5},
            content_type="application/json",
            HTTP_X_CSRFTOKEN=token,
        )
    )
    # Then each is a 400 with an error, never a 500
    assert [answer.status_code for answer in answers] == [400, 400, 400, 400]
    assert all("error" in answer.json() for answer in answers)


def test_the_filter_form_creates_the_filter_or_shows_the_parsers_error(
    admin_client: Client, default_group: DatasetGroup
) -> None:
    # Given the form
    url = "/admin/dashboard/filters/new/"
    page = admin_client.get(url).content.decode()
    assert 'data-check-url="/admin/dashboard/filters/check/"' in page and "dashboard-filter.js" in page
    form = {"dataset_group": default_group.pk, "name": "no-buys"}
    # When a broken expression is submitted
    broken = admin_client.post(url, {**form, "expression": "EXCLUDE ItemID WHERE"}).content.decode()
    # Then nothing is created and the form shows where it broke
    assert not Filter.objects.exists()
    assert "position 21 (line 1, column 21): expected" in broken
    # When a valid one is submitted, then the same name again
    done = admin_client.post(
        url,
        {**form, "expression": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'},
        follow=True,
    )
    again = admin_client.post(
        url, {**form, "expression": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("view")'}
    ).content.decode()
    # Then the filter exists once, and the second attempt is refused on the name
    assert Filter.objects.get().expression.endswith('("purchase")')
    assert "Filter no-buys created (ACTIVE)." in done.content.decode()
    assert "a filter named &#x27;no-buys&#x27; already exists" in again
