"""Celery tasks of the catalog: they take ids, are safe to run twice and record their outcome."""

from celery import shared_task
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from catalog.errors import CatalogError
from catalog.importing import dataset_import
from catalog.models import DatasetImportJob, JobStatus

__all__ = ["run_dataset_import"]

TRANSIENT_ERRORS = (OperationalError, InterfaceError)
FINISHED = (JobStatus.ACTIVE, JobStatus.FAILED)


@shared_task(bind=True, acks_late=True, max_retries=3)
def run_dataset_import(self, job_id: int) -> str:
    """Run a DatasetImportJob; the import and the job's final status commit together."""
    job = DatasetImportJob.objects.select_related("dataset_group").get(pk=job_id)
    if job.status in FINISHED:
        return job.status
    DatasetImportJob.objects.filter(pk=job_id, status=JobStatus.PENDING).update(status=JobStatus.IN_PROGRESS)
    try:
        with transaction.atomic():
            # A second delivery of the same job waits here, then finds it finished.
            job = DatasetImportJob.objects.select_for_update().select_related("dataset_group").get(pk=job_id)
            if job.status in FINISHED:
                return job.status
            report = dataset_import(
                dataset_group=job.dataset_group.name,
                interactions=job.interactions_file or None,
                items=job.items_file or None,
                users=job.users_file or None,
                mode=job.mode,
            )
            _finish(job, JobStatus.ACTIVE, report=report.summary())
    except CatalogError as error:
        _finish(job, JobStatus.FAILED, failure_reason=str(error))
    except TRANSIENT_ERRORS as error:
        if self.request.retries >= self.max_retries:
            _finish(job, JobStatus.FAILED, failure_reason=f"database unavailable: {error}")
            raise
        raise self.retry(exc=error, countdown=2 ** (self.request.retries + 2)) from error
    except DatabaseError as error:
        _finish(job, JobStatus.FAILED, failure_reason=f"database refused the import: {error}")
    return job.status


def _finish(job: DatasetImportJob, status: JobStatus, *, report: str = "", failure_reason: str = "") -> None:
    job.status = status
    job.report = report
    job.failure_reason = failure_reason
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "report", "failure_reason", "finished_at"])
