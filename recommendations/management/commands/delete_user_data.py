"""`manage.py delete_user_data --user-id U [--dataset-group G] [--wait]`: delete an end user's data."""

import getpass
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.errors import CatalogError
from catalog.models import DEFAULT_DATASET_GROUP
from catalog.selectors import dataset_group_get
from recommendations.data_deletion import user_data_delete
from recommendations.errors import RecommendationError
from recommendations.models import DataDeletionStatus, UserDataDeletion
from recommendations.personalize_tasks import personalize_data_deletion_task

__all__ = ["Command"]


class Command(BaseCommand):
    """Delete a user's profile, interactions and recommendation records; on Personalize, a deletion job."""

    help = (
        "Delete an end user's profile, interactions (their sessions' anonymous events included) and "
        "recommendation records at once, and start CreateDataDeletionJob when the group is on Personalize. "
        "Audit-logged (admin: User data deletions)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--user-id, --dataset-group and --wait."""
        parser.add_argument("--user-id", required=True, help="The end user's id (USER_ID).")
        parser.add_argument("--dataset-group", default=DEFAULT_DATASET_GROUP, help="Dataset group name.")
        parser.add_argument(
            "--wait", action="store_true", help="On Personalize, wait until the deletion job ends."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Delete, print what was removed, and where Personalize's job stands."""
        try:
            group = dataset_group_get(name=options["dataset_group"])
            deletion = user_data_delete(
                dataset_group=group,
                user_id=options["user_id"],
                requested_by=f"command line ({_os_user()})",
                requested_via="command",
            )
        except (CatalogError, RecommendationError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Deleted user {deletion.user_id!r} of {group.name!r}: "
            f"profile {'deleted' if deletion.profile_deleted else 'not found'}, "
            f"{deletion.interactions_deleted} interactions, "
            f"{deletion.recommendation_records_deleted} recommendation records "
            f"(audit record {deletion.pk})."
        )
        if deletion.personalize_status == DataDeletionStatus.NOT_NEEDED:
            return
        if options["wait"]:
            self._wait(deletion)
        deletion.refresh_from_db()
        if deletion.personalize_status == DataDeletionStatus.FAILED:
            raise CommandError(f"Personalize's data deletion job failed: {deletion.failure_reason}")
        self.stdout.write(
            f"Personalize: data deletion job {deletion.personalize_job_name} is {deletion.personalize_status}"
            + ("" if deletion.is_finished else " (it can take up to a day; the admin shows its status)")
        )

    def _wait(self, deletion: UserDataDeletion) -> None:
        """Re-read the row until the job ends; in-process (no broker) run the idempotent task meanwhile."""
        seconds = int(getattr(settings, "PERSONALIZE_POLL_SECONDS", 60))
        last = None
        while True:
            deletion.refresh_from_db()
            if deletion.personalize_status != last:
                last = deletion.personalize_status
                self.stdout.write(f"  Personalize's data deletion job is {last}")
            if deletion.is_finished:
                return
            if personalize_data_deletion_task.app.conf.task_always_eager:
                personalize_data_deletion_task.delay(deletion.pk)
                deletion.refresh_from_db()
                if deletion.is_finished:
                    continue
            time.sleep(seconds)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
