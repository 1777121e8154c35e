"""Deleting a user's data: here at once, on Amazon Personalize by a CreateDataDeletionJob; audit-logged.

`user_data_delete` is what `deleteUserData` (GraphQL, manage scope) and `manage.py delete_user_data`
call. In one transaction it removes the user's profile and interactions
(`catalog.services.end_user_data_delete`: their events, their sessions' anonymous events, anonymous
events under a sessionId equal to their userId) and the records of what was recommended to them,
and writes a `UserDataDeletion` row — the audit record: who asked, through what, when, what was
removed — also logged on the `recsite.audit` logger.

Their influence on served recommendations ends at once: serving reads a user's history from the
database on every request (so there is none), trending counts recent events per request, filters
read interactions per request, and segments leave out users deleted after the model was trained.
This process's popular lists and filter catalog checks are cleared; other processes refresh them
within their lifetimes (POPULAR_CACHE_SECONDS, RECSITE_FILTER_CATALOG_CHECK_SECONDS).

When the group is provisioned on Personalize, the row is PENDING and, once committed,
`personalize_data_deletion_task` runs `user_data_deletion_step` until Personalize's job ends: upload a
one-column `USER_ID` CSV to S3 (server-side encrypted), CreateDataDeletionJob (found by its name
instead when a previous run died after creating it), DescribeDataDeletionJob until COMPLETED or
FAILED. Personalize says its job "can take up to a day"; until then it still uses the data.
"""

from __future__ import annotations

import csv
import io
import logging
import secrets

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.models import DatasetGroup
from catalog.services import end_user_data_delete
from recommendations.backends.aws import aws_call, personalize_client, s3_client, s3_server_side_encryption
from recommendations.errors import PersonalizeAlreadyExistsError, PersonalizeConfigError, RecommendationError
from recommendations.models import (
    DataDeletionStatus,
    PersonalizeDatasetGroup,
    RecommendationRecord,
    UserDataDeletion,
)
from recommendations.personalize_jobs import MAX_NAME_LENGTH, Step

__all__ = [
    "AUDIT_LOGGER",
    "user_data_delete",
    "user_data_deletion_fail",
    "user_data_deletion_step",
    "user_ids_deleted_since",
]

AUDIT_LOGGER = "recsite.audit"
audit_log = logging.getLogger(AUDIT_LOGGER)


def user_data_delete(
    *, dataset_group: DatasetGroup, user_id: str, requested_by: str, requested_via: str
) -> UserDataDeletion:
    """Delete the user's profile, interactions and recommendation records; start Personalize's job.

    Safe to repeat (a second call finds nothing and records that). Returns the audit row.
    """
    if not user_id or len(user_id) > 256:
        raise RecommendationError("userId must be 1 to 256 characters")
    personalize = PersonalizeDatasetGroup.objects.filter(dataset_group=dataset_group).first()
    on_personalize = personalize is not None and bool(personalize.dataset_group_arn)
    with transaction.atomic():
        removed = end_user_data_delete(dataset_group=dataset_group, user_id=user_id)
        records, _ = RecommendationRecord.objects.filter(
            campaign__dataset_group=dataset_group, user_id=user_id
        ).delete()
        deletion = UserDataDeletion.objects.create(
            dataset_group=dataset_group,
            dataset_group_name=dataset_group.name,
            user_id=user_id,
            requested_by=requested_by[:200],
            requested_via=requested_via[:20],
            profile_deleted=removed.profile_deleted,
            interactions_deleted=removed.interactions_deleted,
            recommendation_records_deleted=records,
            personalize_status=(
                DataDeletionStatus.PENDING if on_personalize else DataDeletionStatus.NOT_NEEDED
            ),
        )
        if on_personalize:
            from recommendations.personalize_tasks import personalize_data_deletion_task

            name = f"{personalize.name[: MAX_NAME_LENGTH - 20]}-delete-{deletion.pk}-{secrets.token_hex(3)}"
            UserDataDeletion.objects.filter(pk=deletion.pk).update(personalize_job_name=name)
            deletion.personalize_job_name = name
            transaction.on_commit(lambda: personalize_data_deletion_task.delay(deletion.pk))
        transaction.on_commit(_forget_cached_counts)
    audit_log.info(
        "user data deleted: user=%r group=%r by=%r via=%s profile=%s interactions=%d "
        "recommendation_records=%d personalize=%s deletion=%d",
        user_id,
        dataset_group.name,
        requested_by,
        requested_via,
        removed.profile_deleted,
        removed.interactions_deleted,
        records,
        deletion.personalize_status or "not needed",
        deletion.pk,
    )
    return deletion


def _forget_cached_counts() -> None:
    """This process's aggregates that may still count the user's events (other processes: their TTLs)."""
    from recommendations.backends.local import popular_cache_clear
    from recommendations.filtering import filter_cache_clear

    popular_cache_clear()
    filter_cache_clear()


def user_ids_deleted_since(*, dataset_group_id: int, since: object) -> set[str]:
    """User ids whose data was deleted at or after `since` (a datetime; None: ever) in the group."""
    deletions = UserDataDeletion.objects.filter(dataset_group_id=dataset_group_id)
    if since is not None:
        deletions = deletions.filter(requested_at__gte=since)
    return set(deletions.values_list("user_id", flat=True))


# --- Amazon Personalize: CreateDataDeletionJob ----------------------------------------------------------


def _setting(name: str) -> str:
    value = (getattr(settings, name, "") or "").strip()
    if not value:
        raise PersonalizeConfigError(name, "is not set; the Personalize backend needs it")
    return value


def _csv_of(user_id: str) -> bytes:
    """Personalize's deletion input: one USER_ID column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["USER_ID"])
    writer.writerow([user_id])
    return buffer.getvalue().encode("utf-8")


def _s3_key(deletion: UserDataDeletion, group_name: str) -> str:
    prefix = (getattr(settings, "PERSONALIZE_S3_PREFIX", "recsite") or "").strip("/")
    parts = [prefix, group_name, "deletions", deletion.personalize_job_name, "users.csv"]
    return "/".join(part for part in parts if part)


def _update(deletion: UserDataDeletion, **fields: object) -> None:
    for name, value in fields.items():
        setattr(deletion, name, value)
    UserDataDeletion.objects.filter(pk=deletion.pk).update(**fields)


def _find_job(dataset_group_arn: str, job_name: str) -> dict | None:
    client = personalize_client()
    token: str | None = None
    while True:
        extra = {"nextToken": token} if token else {}
        page = aws_call(client, "list_data_deletion_jobs", datasetGroupArn=dataset_group_arn, **extra)
        for entry in page.get("dataDeletionJobs") or []:
            if entry.get("jobName") == job_name:
                return entry
        token = page.get("nextToken")
        if not token:
            return None


def user_data_deletion_step(*, deletion_id: int) -> Step:
    """Upload the USER_ID CSV (once), CreateDataDeletionJob (once), record the job's status."""
    deletion = UserDataDeletion.objects.get(pk=deletion_id)
    if deletion.is_finished:
        return Step(deletion.personalize_status)
    personalize = PersonalizeDatasetGroup.objects.filter(dataset_group_id=deletion.dataset_group_id).first()
    if personalize is None or not personalize.dataset_group_arn:
        raise RecommendationError(f"dataset group {deletion.dataset_group_name!r} is not on Personalize")
    if not deletion.s3_path:
        bucket = _setting("PERSONALIZE_S3_BUCKET")
        key = _s3_key(deletion, personalize.name)
        aws_call(
            s3_client(),
            "put_object",
            Bucket=bucket,
            Key=key,
            Body=_csv_of(deletion.user_id),
            ContentType="text/csv",
            **s3_server_side_encryption(),
        )
        _update(deletion, s3_path=f"s3://{bucket}/{key}")
    client = personalize_client()
    if not deletion.personalize_arn:
        try:
            response = aws_call(
                client,
                "create_data_deletion_job",
                jobName=deletion.personalize_job_name,
                datasetGroupArn=personalize.dataset_group_arn,
                dataSource={"dataLocation": deletion.s3_path},
                roleArn=_setting("PERSONALIZE_ROLE_ARN"),
            )
        except PersonalizeAlreadyExistsError:  # created by a run that died before recording it
            found = _find_job(personalize.dataset_group_arn, deletion.personalize_job_name)
            if found is None:
                raise
            response = found
        _update(deletion, personalize_arn=response["dataDeletionJobArn"])
    described = aws_call(client, "describe_data_deletion_job", dataDeletionJobArn=deletion.personalize_arn)
    job = described["dataDeletionJob"]
    status = str(job.get("status") or "").upper()
    if status == DataDeletionStatus.COMPLETED:
        _update(deletion, personalize_status=status, failure_reason="", finished_at=timezone.now())
        return Step(status, detail=f"{job.get('numDeleted', 0)} records deleted on Personalize")
    if status == DataDeletionStatus.FAILED:
        reason = job.get("failureReason") or "Personalize reports FAILED"
        _update(deletion, personalize_status=status, failure_reason=reason, finished_at=timezone.now())
        return Step(status, detail=reason)
    now = DataDeletionStatus.IN_PROGRESS if status == "IN_PROGRESS" else DataDeletionStatus.PENDING
    _update(deletion, personalize_status=now)
    return Step(now, waiting=True, detail=f"Personalize reports {status or 'no status'}")


def user_data_deletion_fail(*, deletion_id: int, reason: str) -> None:
    """Record that Personalize's deletion job failed, with the reason (the local deletion stands)."""
    UserDataDeletion.objects.filter(pk=deletion_id).update(
        personalize_status=DataDeletionStatus.FAILED, failure_reason=reason, finished_at=timezone.now()
    )
    audit_log.error("user data deletion %d failed on Personalize: %s", deletion_id, reason)
