"""`manage.py demo_setup [--url URL] [--admin-password-file F]`: the demo's event tracker and filters, once.

`make run` calls it after seeding and training. It creates, unless they exist, the dataset group's
event tracker (`web`) and the filters the GraphiQL examples use (`docs/graphql-examples.graphql`),
then prints what a newcomer needs: where the admin, GraphiQL and the demo storefront are, the
login, the `trackingId`, and three GraphQL documents to paste into GraphiQL. Running it again
changes nothing and prints the same.
"""

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.errors import CatalogError
from catalog.models import DEFAULT_DATASET_GROUP, DatasetGroup
from catalog.selectors import dataset_group_get
from recommendations.errors import RecommendationError
from recommendations.filtering import filter_create
from recommendations.models import EventTracker, Filter
from recommendations.tracking import event_tracker_create

__all__ = ["DEMO_FILTERS", "DEMO_TRACKER", "Command", "demo_setup"]

DEMO_TRACKER = "web"

# The filters docs/graphql-examples.graphql uses (names and expressions are part of those examples).
DEMO_FILTERS = {
    "by-category": "INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ($CATEGORY) | "
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")',
    "same-category": "INCLUDE ItemID WHERE Items.CATEGORY_L1 IN CurrentItem.CATEGORY_L1",
    "cheap": "INCLUDE ItemID WHERE Items.PRICE < 20",
}


def demo_setup(*, dataset_group: DatasetGroup) -> tuple[EventTracker, list[str]]:
    """The group's event tracker (created as `web` when it has none) and the demo filters created now.

    A filter whose name is taken is left as it is; one the group's schemas cannot take (a catalog
    without CATEGORY_L1 or PRICE) is skipped.
    """
    tracker = EventTracker.objects.filter(dataset_group=dataset_group).first()
    if tracker is None:
        tracker = event_tracker_create(dataset_group=dataset_group, name=DEMO_TRACKER)
    created = []
    for name, expression in DEMO_FILTERS.items():
        if Filter.objects.filter(name=name).exists():
            continue
        try:
            filter_create(dataset_group=dataset_group, name=name, expression=expression)
        except RecommendationError:
            continue
        created.append(name)
    return tracker, created


def _queries(tracking_id: str) -> list[str]:
    """Three documents to paste into GraphiQL: a filtered feed, putEvents, related items."""
    sent_at = int(time.time())
    return [
        '{ recommendations(userId: "user-00001", numResults: 5, filter: "by-category", '
        'filterValues: [{name: "CATEGORY", values: ["Books"]}]) '
        "{ recommendationId items { itemId reason } } }",
        f'mutation {{ putEvents(trackingId: "{tracking_id}", sessionId: "session-1", userId: "user-00001", '
        f'events: [{{eventType: "view", itemId: "item-00042", sentAt: {sent_at}}}]) {{ eventsRecorded }} }}',
        '{ relatedItems(itemId: "item-00042", numResults: 5) { items { itemId reason } } }',
    ]


class Command(BaseCommand):
    """Create the demo's event tracker and filters once, then print where everything is."""

    help = "Create the demo's event tracker and example filters (once) and print how to try the API."

    def add_arguments(self, parser: CommandParser) -> None:
        """--url, --admin-password-file and --dataset-group."""
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="where the server will listen")
        parser.add_argument(
            "--admin-password-file", type=Path, help="file holding the password of the `admin` login"
        )
        parser.add_argument("--dataset-group", default=DEFAULT_DATASET_GROUP, help="Dataset group name.")

    def handle(self, *args: Any, **options: Any) -> None:
        """Set the demo up and print the summary."""
        try:
            group = dataset_group_get(name=options["dataset_group"])
            tracker, created = demo_setup(dataset_group=group)
        except (CatalogError, RecommendationError) as error:
            raise CommandError(str(error)) from None
        if created:
            self.stdout.write(f"Created the filters {', '.join(created)}.")
        url = options["url"].rstrip("/")
        password_file: Path | None = options["admin_password_file"]
        if password_file is not None and password_file.is_file() and password_file.read_text().strip():
            login = f"admin / {password_file.read_text().strip()}"
        else:
            login = "your superuser (manage.py changepassword <username> to reset it)"
        lines = [
            "",
            f"  Admin       {url}/admin/   login: {login}",
            f"  GraphiQL    {url}/graphql/   (an example of every operation in the ▶ menu)",
            f"  Storefront  {url}/demo/",
            f"  trackingId  {tracker.tracking_id}",
            "",
            "  Paste into GraphiQL:",
            "",
        ]
        for query in _queries(tracker.tracking_id):
            lines += [query, ""]
        self.stdout.write("\n".join(lines))
