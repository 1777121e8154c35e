"""`manage.py personalize_provision [--dataset-group G] [--name N] [--wait]`: a group on Personalize."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from catalog.errors import CatalogError
from catalog.models import DEFAULT_DATASET_GROUP
from catalog.selectors import dataset_group_get
from recommendations.errors import PersonalizeError, RecommendationError
from recommendations.management.commands._jobs import wait_for
from recommendations.models import PersonalizeDatasetGroup
from recommendations.personalize_jobs import personalize_provision_start
from recommendations.personalize_tasks import personalize_provision_task

__all__ = ["Command"]


class Command(BaseCommand):
    """Create the dataset group, schemas, datasets and event tracker on Personalize (safe to run again)."""

    help = "Provision a dataset group on Amazon Personalize and record its ARNs."

    def add_arguments(self, parser: CommandParser) -> None:
        """--dataset-group, --name and --wait."""
        parser.add_argument("--dataset-group", default=DEFAULT_DATASET_GROUP, help="Dataset group name.")
        parser.add_argument("--name", help="Name on Personalize (default: the dataset group's name).")
        parser.add_argument("--wait", action="store_true", help="Wait until ACTIVE or CREATE FAILED.")

    def handle(self, *args: Any, **options: Any) -> None:
        """Start (or continue) provisioning and report the status."""
        try:
            group = dataset_group_get(name=options["dataset_group"])
            with transaction.atomic():
                row = personalize_provision_start(dataset_group=group, name=options["name"])
        except (RecommendationError, CatalogError, PersonalizeError) as error:
            raise CommandError(str(error)) from None
        if options["wait"]:
            row = wait_for(
                model=PersonalizeDatasetGroup,
                pk=row.pk,
                rerun=lambda: personalize_provision_task.delay(row.pk),
                write=self.stdout.write,
            )
        row.refresh_from_db()
        self.stdout.write(
            f"{row}: {row.progress or row.failure_reason or 'datasets ' + ', '.join(row.dataset_arns)}"
        )
        if row.status == "CREATE FAILED":
            raise CommandError(f"provisioning failed: {row.failure_reason}")
