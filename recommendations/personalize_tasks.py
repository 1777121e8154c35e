"""Celery tasks driving Amazon Personalize's long jobs and the batch jobs; each takes ids, JSON-only.

Every task runs one idempotent step of `personalize_jobs` (or `batch`) and:

- when the resource is still being created on Personalize, retries itself after
  `PERSONALIZE_POLL_SECONDS` (`self.retry(countdown=...)`; no worker sleeps in a loop) until
  `PERSONALIZE_MAX_POLLS` polls, then records that it gave up waiting;
- on a transient failure (throttling, 5xx, timeouts, a database hiccup) retries with exponential
  backoff (`failures` counts consecutive ones) up to `PERSONALIZE_MAX_ERROR_RETRIES`;
- on any other failure records it on the row (CREATE FAILED and the reason) and returns.

Delivered twice, a task repeats no AWS creation: the step reuses the recorded ARN or finds the
resource by name. Without a broker (tasks run in-process, where a Celery retry would run at once
and be raised to the caller) a task re-runs its step at once, without sleeping: at most
`PERSONALIZE_EAGER_POLLS` looks at a job still in progress, which it then leaves in progress;
running the task again (the management commands' `--wait`) continues it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction

from catalog.errors import CatalogError
from recommendations.errors import PersonalizeError, PersonalizeRetryableError, RecommendationError
from recommendations.models import PersonalizeImportMode, PersonalizeStatus
from recommendations.personalize_jobs import (
    Step,
    batch_job_personalize_step,
    campaign_deploy_step,
    campaign_fail,
    dataset_group_fail,
    dataset_group_provision_step,
    filter_fail,
    filter_status_step,
    import_job_fail,
    import_job_step,
    incremental_import_candidates,
    personalize_import_start,
    solution_version_fail,
    solution_version_step,
)

__all__ = [
    "backoff_seconds",
    "batch_job_task",
    "personalize_campaign_task",
    "personalize_data_deletion_task",
    "personalize_filter_task",
    "personalize_import_task",
    "personalize_incremental_import_task",
    "personalize_provision_task",
    "personalize_solution_version_task",
]

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (PersonalizeRetryableError, OperationalError, InterfaceError)
FINAL_ERRORS = (PersonalizeError, RecommendationError, CatalogError)
# Celery's own bound on retries; polls stop earlier at PERSONALIZE_MAX_POLLS.
TASK_MAX_RETRIES = 100_000


def _int_setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def backoff_seconds(failures: int) -> int:
    """Countdown before retry number `failures + 1` after a transient error: 4, 8, 16 ... at most 300 s."""
    return min(300, 2 ** (min(failures, 10) + 2))


def _advance(task: Any, failures: int, step: Callable[[], Step], fail: Callable[[str], None]) -> str:
    """Run one step; poll or back off (a Celery retry with a countdown), or record the failure.

    In-process (no broker, `is_eager`) a retry would run at once inside the caller, and Celery would
    raise it to the caller: the step is simply run again, without sleeping, a bounded number of times.
    """
    in_process = bool(task.request.is_eager)
    polls = 0
    while True:
        try:
            outcome = step()
        except TRANSIENT_ERRORS as error:
            if failures >= _int_setting("PERSONALIZE_MAX_ERROR_RETRIES", 5):
                fail(f"gave up after {failures + 1} attempts: {error}")
                return PersonalizeStatus.FAILED
            logger.warning("%s: transient error, retrying: %s", task.name, error)
            if in_process:
                failures += 1
                continue
            raise task.retry(
                exc=error, countdown=backoff_seconds(failures), kwargs=_kwargs(task, failures + 1)
            ) from error
        except FINAL_ERRORS as error:
            fail(str(error))
            return PersonalizeStatus.FAILED
        except Exception as error:
            fail(f"internal error: {type(error).__name__}: {error}")
            raise
        if not outcome.waiting:
            return outcome.status
        if in_process:
            polls += 1
            if polls >= _int_setting("PERSONALIZE_EAGER_POLLS", 5):
                return outcome.status  # left in progress: running the task again continues it
            continue
        if (task.request.retries or 0) >= _int_setting("PERSONALIZE_MAX_POLLS", 2000):
            fail(f"gave up waiting after {task.request.retries} polls: {outcome.detail or outcome.status}")
            return PersonalizeStatus.FAILED
        raise task.retry(countdown=_int_setting("PERSONALIZE_POLL_SECONDS", 60), kwargs=_kwargs(task, 0))


def _kwargs(task: Any, failures: int) -> dict[str, Any]:
    return {**(task.request.kwargs or {}), "failures": failures}


@shared_task(bind=True, acks_late=True, max_retries=TASK_MAX_RETRIES)
def personalize_provision_task(self: Any, personalize_group_id: int, failures: int = 0) -> str:
    """Provision a dataset group on Personalize: group, schemas, datasets, event tracker; record ARNs."""
    return _advance(
        self,
        failures,
        lambda: dataset_group_provision_step(personalize_group_id=personalize_group_id),
        lambda reason: dataset_group_fail(personalize_group_id=personalize_group_id, reason=reason),
    )


@shared_task(bind=True, acks_late=True, max_retries=TASK_MAX_RETRIES)
def personalize_import_task(self: Any, import_job_id: int, failures: int = 0) -> str:
    """Export one dataset to S3, import it into Personalize (CreateDatasetImportJob); record the outcome."""
    return _advance(
        self,
        failures,
        lambda: import_job_step(import_job_id=import_job_id),
        lambda reason: import_job_fail(import_job_id=import_job_id, reason=reason),
    )


@shared_task(bind=True, acks_late=True, max_retries=TASK_MAX_RETRIES)
def personalize_solution_version_task(self: Any, version_id: int, failures: int = 0) -> str:
    """Train a version on Personalize (CreateSolution once, CreateSolutionVersion); record its metrics."""
    return _advance(
        self,
        failures,
        lambda: solution_version_step(version_id=version_id),
        lambda reason: solution_version_fail(version_id=version_id, reason=reason),
    )


@shared_task(bind=True, acks_late=True, max_retries=TASK_MAX_RETRIES)
def personalize_campaign_task(
    self: Any,
    campaign_id: int,
    solution_version_id: int | None = None,
    campaign_config: dict[str, Any] | None = None,
    min_provisioned_tps: int | None = None,
    failures: int = 0,
) -> str:
    """Deploy a campaign on Personalize (CreateCampaign, or UpdateCampaign to the wanted version/config)."""
    return _advance(
        self,
        failures,
        lambda: campaign_deploy_step(
            campaign_id=campaign_id,
            solution_version_id=solution_version_id,
            campaign_config=campaign_config,
            min_provisioned_tps=min_provisioned_tps,
        ),
        lambda reason: campaign_fail(campaign_id=campaign_id, reason=reason),
    )


@shared_task(bind=True, acks_late=True, max_retries=TASK_MAX_RETRIES)
def personalize_filter_task(self: Any, filter_id: int, failures: int = 0) -> str:
    """Watch a filter CreateFilter made until Personalize reports it ACTIVE or CREATE FAILED."""
    return _advance(
        self,
        failures,
        lambda: filter_status_step(filter_id=filter_id),
        lambda reason: filter_fail(filter_id=filter_id, reason=reason),
    )


@shared_task(bind=True, acks_late=True, max_retries=TASK_MAX_RETRIES)
def batch_job_task(self: Any, batch_job_id: int, failures: int = 0) -> str:
    """Run a batch inference/segment job: locally (input file → output file) or on Personalize."""
    from recommendations.batch import batch_job_fail, batch_job_local_run
    from recommendations.models import BatchJob, CampaignBackend

    backend = BatchJob.objects.filter(pk=batch_job_id).values_list("backend", flat=True).first()
    if backend is None:
        return "missing"
    step = (
        (lambda: batch_job_personalize_step(batch_job_id=batch_job_id))
        if backend == CampaignBackend.PERSONALIZE
        else (lambda: batch_job_local_run(batch_job_id=batch_job_id))
    )
    return _advance(
        self, failures, step, lambda reason: batch_job_fail(batch_job_id=batch_job_id, reason=reason)
    )


@shared_task(bind=True, acks_late=True, max_retries=TASK_MAX_RETRIES)
def personalize_data_deletion_task(self: Any, deletion_id: int, failures: int = 0) -> str:
    """Delete a user's data on Personalize (CSV to S3, CreateDataDeletionJob) and follow it to its end."""
    from recommendations.data_deletion import user_data_deletion_fail, user_data_deletion_step

    return _advance(
        self,
        failures,
        lambda: user_data_deletion_step(deletion_id=deletion_id),
        lambda reason: user_data_deletion_fail(deletion_id=deletion_id, reason=reason),
    )


@shared_task(acks_late=True)
def personalize_incremental_import_task() -> list[int]:
    """Beat: an INCREMENTAL import of each Personalize dataset with rows changed since its last import."""
    started: list[int] = []
    for group, dataset_types in incremental_import_candidates():
        with transaction.atomic():
            jobs = personalize_import_start(
                dataset_group=group, mode=PersonalizeImportMode.INCREMENTAL, dataset_types=dataset_types
            )
        started += [job.pk for job in jobs]
    return started
