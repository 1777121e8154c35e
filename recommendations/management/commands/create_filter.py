"""`manage.py create_filter --name N --expression "..." [--dataset-group G]`: CreateFilter from the shell."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.errors import CatalogError
from catalog.models import DEFAULT_DATASET_GROUP
from catalog.selectors import dataset_group_get
from recommendations.errors import RecommendationError
from recommendations.filtering import filter_create, filter_placeholders

__all__ = ["Command"]


class Command(BaseCommand):
    """Create a filter; an invalid expression exits non-zero with the position and what was expected."""

    help = "Create a filter from a Personalize filter expression."

    def add_arguments(self, parser: CommandParser) -> None:
        """--name, --expression and --dataset-group."""
        parser.add_argument("--name", required=True, help="Filter name (unique across dataset groups).")
        parser.add_argument("--expression", required=True, help='e.g. EXCLUDE ItemID WHERE Items.X IN ("y")')
        parser.add_argument("--dataset-group", default=DEFAULT_DATASET_GROUP, help="Dataset group name.")

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the filter and print it."""
        try:
            group = dataset_group_get(name=options["dataset_group"])
            created = filter_create(
                dataset_group=group, name=options["name"], expression=options["expression"]
            )
        except (RecommendationError, CatalogError) as error:
            raise CommandError(str(error)) from None
        placeholders = ", ".join(f"${name}" for name in filter_placeholders(filter=created)) or "none"
        self.stdout.write(
            f"Filter {created.name} ({created.status}) in dataset group {group.name}\n"
            f"  expression: {created.expression}\n"
            f"  placeholders: {placeholders}"
        )
