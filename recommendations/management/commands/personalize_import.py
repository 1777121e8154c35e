"""`manage.py personalize_import [--mode full|incremental] [--dataset D ...] [--wait]`: S3 export + import."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from catalog.errors import CatalogError
from catalog.models import DEFAULT_DATASET_GROUP
from catalog.selectors import dataset_group_get
from recommendations.errors import PersonalizeError, RecommendationError
from recommendations.management.commands._jobs import wait_for
from recommendations.models import PersonalizeImportJob
from recommendations.personalize_jobs import personalize_import_start
from recommendations.personalize_tasks import personalize_import_task

__all__ = ["Command"]


class Command(BaseCommand):
    """Export the group's datasets to S3 (encrypted) and import them into Personalize."""

    help = "Export datasets as Personalize CSV to S3 and start CreateDatasetImportJob for each."

    def add_arguments(self, parser: CommandParser) -> None:
        """--dataset-group, --mode, --dataset and --wait."""
        parser.add_argument("--dataset-group", default=DEFAULT_DATASET_GROUP, help="Dataset group name.")
        parser.add_argument("--mode", choices=["full", "incremental"], default="full", help="importMode.")
        parser.add_argument(
            "--dataset",
            action="append",
            choices=["interactions", "items", "users"],
            help="Only these datasets.",
        )
        parser.add_argument(
            "--wait", action="store_true", help="Wait until each job is ACTIVE or CREATE FAILED."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Start the import jobs and report their status."""
        try:
            group = dataset_group_get(name=options["dataset_group"])
            with transaction.atomic():
                jobs = personalize_import_start(
                    dataset_group=group, mode=options["mode"].upper(), dataset_types=options["dataset"]
                )
        except (RecommendationError, CatalogError, PersonalizeError) as error:
            raise CommandError(str(error)) from None
        failed = []
        for job in jobs:
            if options["wait"]:
                wait_for(
                    model=PersonalizeImportJob,
                    pk=job.pk,
                    rerun=lambda job=job: personalize_import_task.delay(job.pk),
                    write=self.stdout.write,
                )
            job.refresh_from_db()
            rows = "" if job.rows is None else f", {job.rows} rows"
            self.stdout.write(
                f"{job.job_name}: {job.status}{rows} {job.s3_path} {job.failure_reason}".rstrip()
            )
            if job.status == "CREATE FAILED":
                failed.append(job.job_name)
        if failed:
            raise CommandError(f"import failed: {', '.join(failed)}")
