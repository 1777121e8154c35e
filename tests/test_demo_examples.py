"""The five-minute demo: what `make run` sets up, the queries it prints, and the GraphiQL examples.

The database is built the way `make run` builds it (seed_demo, `train --deploy --unless-deployed`
for every recipe of the Makefile, demo_setup), on a smaller demo shop; then every example document
GraphiQL opens with, and every query `make run` prints, is sent through /graphql/ as a newcomer
would send it.
"""

import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from graphql import OperationDefinitionNode, parse

from catalog.models import DatasetGroup, Interaction, Item
from recommendations.management.commands.demo_setup import DEMO_FILTERS
from recommendations.models import Campaign, EventTracker, Filter

pytestmark = pytest.mark.django_db

ROOT = Path(settings.BASE_DIR)
EXAMPLES = ROOT / "docs" / "graphql-examples.graphql"


def makefile_demo_recipes() -> list[str]:
    """The recipes `make run` deploys, read from the Makefile so the test follows it."""
    text = (ROOT / "Makefile").read_text()
    match = re.search(r"^DEMO_RECIPES := ((?:.*\\\n)*.*)$", text, re.M)
    assert match, "DEMO_RECIPES not found in the Makefile"
    return match.group(1).replace("\\\n", " ").split()


@pytest.fixture
def make_run_database(default_group: DatasetGroup, settings: Any, tmp_path: Path) -> str:
    """A database set up as `make run` sets it up (a smaller shop); demo_setup's output."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RECSITE_ARTIFACT_CACHE = tmp_path / "cache"
    settings.RECSITE_DEFAULT_CAMPAIGN = ""
    call_command("seed_demo", "--items", "200", "--users", "120", "--events", "4000", stdout=io.StringIO())
    for recipe in makefile_demo_recipes():
        call_command("train", "--recipe", recipe, "--deploy", "--unless-deployed", stdout=io.StringIO())
    password_file = tmp_path / "admin-password"
    password_file.write_text("demo-password\n")
    get_user_model().objects.create_superuser("admin", "admin@localhost", "demo-password")
    output = io.StringIO()
    call_command(
        "demo_setup",
        "--url",
        "http://127.0.0.1:8011",
        "--admin-password-file",
        str(password_file),
        stdout=output,
    )
    return output.getvalue()


@pytest.fixture
def admin_client_on_demo(make_run_database: str) -> Client:
    """The admin's browser (logged in, as in GraphiQL after the admin login)."""
    browser = Client()
    browser.force_login(get_user_model().objects.get(username="admin"))
    return browser


def gql(client: Client, document: str, operation: str | None = None, variables: dict | None = None) -> dict:
    """POST one document (one named operation of it) to /graphql/; the decoded answer."""
    body: dict[str, Any] = {"query": document, "variables": variables or {}}
    if operation:
        body["operationName"] = operation
    response = client.post("/graphql/", body, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def lists_in(data: Any) -> list[list]:
    """Every `items` / `userIds` list anywhere in an answer."""
    found: list[list] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("items", "userIds") and isinstance(value, list):
                found.append(value)
            else:
                found += lists_in(value)
    elif isinstance(data, list):
        for value in data:
            found += lists_in(value)
    return found


def test_make_run_leaves_campaigns_a_tracker_and_filters_once_and_prints_where_they_are(
    make_run_database: str,
) -> None:
    # Given the database `make run` sets up
    # When its campaigns, tracker and filters are read
    campaigns = set(Campaign.objects.values_list("name", flat=True))
    tracker = EventTracker.objects.get()
    # Then each recipe has its campaign, the group its tracker, and the examples' filters exist
    assert campaigns == set(makefile_demo_recipes()) and len(campaigns) == 8
    assert tracker.name == "web" and tracker.dataset_group.name == "default"
    assert set(Filter.objects.values_list("name", flat=True)) == set(DEMO_FILTERS)
    # and the summary names the login, GraphiQL, the storefront and the trackingId
    assert "Created the filters by-category, same-category, cheap." in make_run_database
    assert "http://127.0.0.1:8011/admin/   login: admin / demo-password" in make_run_database
    assert "http://127.0.0.1:8011/graphql/" in make_run_database
    assert "http://127.0.0.1:8011/demo/" in make_run_database
    assert f"trackingId  {tracker.tracking_id}" in make_run_database
    # When `make run` runs again
    again = io.StringIO()
    call_command("demo_setup", stdout=again)
    # Then nothing new is created and the same trackingId is printed (no "Created" line)
    assert EventTracker.objects.count() == 1 and Filter.objects.count() == len(DEMO_FILTERS)
    assert tracker.tracking_id in again.getvalue() and "Created" not in again.getvalue()


def test_the_three_printed_queries_run_as_pasted(
    admin_client_on_demo: Client, make_run_database: str
) -> None:
    # Given the three documents `make run` prints (one per line after "Paste into GraphiQL")
    pasted = make_run_database.split("Paste into GraphiQL:")[1]
    documents = [line for line in pasted.splitlines() if line.startswith(("{", "mutation"))]
    assert len(documents) == 3
    events_before = Interaction.objects.count()
    # When each is sent as it is
    answers = [gql(admin_client_on_demo, document) for document in documents]
    # Then none fails: the filtered feed holds only Books, the event is stored, related items come back
    assert all("errors" not in answer for answer in answers), answers
    feed = answers[0]["data"]["recommendations"]["items"]
    categories = set(
        Item.objects.filter(item_id__in=[i["itemId"] for i in feed]).values_list(
            "metadata__CATEGORY_L1", flat=True
        )
    )
    assert len(feed) == 5 and categories == {"Books"}
    assert answers[1]["data"]["putEvents"]["eventsRecorded"] == 1
    assert Interaction.objects.count() == events_before + 1
    assert len(answers[2]["data"]["relatedItems"]["items"]) == 5


def test_every_graphiql_example_runs_in_order_on_the_make_run_database(
    admin_client_on_demo: Client, django_capture_on_commit_callbacks: Any
) -> None:
    # Given the example document GraphiQL opens with, and the trackingId `make run` printed
    document = EXAMPLES.read_text()
    operations = [d.name.value for d in parse(document).definitions if isinstance(d, OperationDefinitionNode)]
    tracking_id = EventTracker.objects.get().tracking_id
    # Then it covers every operation the issue asks for
    assert {
        "Recommendations",
        "RelatedItems",
        "PersonalizedRanking",
        "PutEvents",
        "UserSegment",
        "CreateFilter",
    } <= set(operations)
    # When each operation is run once, in the order of the file, as from GraphiQL's ▶ menu
    # (each request commits, and what it queued on commit, training included, runs in-process)
    answers = {}
    for name in operations:
        with django_capture_on_commit_callbacks(execute=True):
            variables = {"trackingId": tracking_id} if name == "PutEvents" else {}
            answers[name] = gql(admin_client_on_demo, document, name, variables)
    # Then each answers without errors, and each list it asks for is non-empty
    for name, answer in answers.items():
        if name == "CreateEventTracker":  # the group's one tracker exists: the answer says which
            assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
            assert "'web'" in answer["errors"][0]["message"]
            continue
        assert "errors" not in answer, (name, answer)
        assert all(lists_in(answer["data"])), (name, answer)
    feed = answers["Recommendations"]["data"]["recommendations"]["items"]
    assert {i["promotionName"] for i in feed} >= {"under-20"}
    assert answers["PutEvents"]["data"]["putEvents"]["eventsRecorded"] == 2
    assert Campaign.objects.get(name="my-feed").solution_version.status == "ACTIVE"
    assert not Filter.objects.filter(name="not-bought").exists()
