"""Dataset import jobs run by a real Celery worker, through a real broker, on PostgreSQL."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.db import transaction

from catalog.models import DatasetGroup, DatasetImportJob, ImportMode, Interaction, JobStatus
from catalog.services import dataset_import_job_create
from catalog.tasks import run_dataset_import
from tests.integration.conftest import CeleryWorker


def with_real_worker(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test as needing PostgreSQL, a broker and committed rows (the worker is another process)."""
    for mark in (pytest.mark.postgres, pytest.mark.broker, pytest.mark.django_db(transaction=True)):
        test = mark(test)
    return test


JOB_DEADLINE = 60.0
HEADER = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE"
GOOD_ROWS = [
    "u1,i1,1700000000,view,1",
    "u1,i2,1700000060,purchase,2.5",
    "u2,i1,1700000120,view,1",
    "u3,i3,1700000180,view,3",
]


def _csv(rows: list[str], name: str = "interactions.csv") -> ContentFile:
    return ContentFile(("\n".join([HEADER, *rows]) + "\n").encode(), name=name)


def _create_job_and_commit(group: DatasetGroup, rows: list[str]) -> DatasetImportJob:
    with transaction.atomic():
        job = dataset_import_job_create(dataset_group=group, mode=ImportMode.FULL, interactions=_csv(rows))
    return job


def _wait_until_finished(job: DatasetImportJob, worker: CeleryWorker) -> DatasetImportJob:
    deadline = time.monotonic() + JOB_DEADLINE
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in (JobStatus.ACTIVE, JobStatus.FAILED):
            return job
        worker.assert_alive()
        time.sleep(0.2)
    pytest.fail(f"job {job.pk} still {job.status} after {JOB_DEADLINE:.0f}s; worker log:\n{worker.log()}")


@with_real_worker
def test_a_committed_import_job_is_run_by_the_worker(
    celery_worker: CeleryWorker, default_group: DatasetGroup
) -> None:
    # given a job created through the service with a valid 4-row interactions CSV
    # when its transaction commits and the worker runs the task
    job = _create_job_and_commit(default_group, GOOD_ROWS)
    # then the job becomes ACTIVE
    job = _wait_until_finished(job, celery_worker)
    assert job.status == JobStatus.ACTIVE, f"{job.failure_reason}\n{celery_worker.log()}"
    assert job.finished_at is not None
    assert "Imported 4 interactions" in job.report
    assert "Task catalog.tasks.run_dataset_import[" in celery_worker.log(last_lines=400)
    # and the interactions are in the database, as the CSV gave them
    stored = Interaction.objects.filter(dataset_group=default_group)
    assert sorted(
        (row.user.user_id, row.item.item_id, row.event_type, row.event_value, int(row.timestamp.timestamp()))
        for row in stored.select_related("user", "item")
    ) == [
        ("u1", "i1", "view", 1.0, 1700000000),
        ("u1", "i2", "purchase", 2.5, 1700000060),
        ("u2", "i1", "view", 1.0, 1700000120),
        ("u3", "i3", "view", 3.0, 1700000180),
    ]


@with_real_worker
def test_nothing_is_sent_before_the_transaction_commits(
    celery_worker: CeleryWorker, default_group: DatasetGroup
) -> None:
    # given a job created inside a transaction that is rolled back
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        job = dataset_import_job_create(
            dataset_group=default_group, mode=ImportMode.FULL, interactions=_csv(GOOD_ROWS)
        )
        job_id = job.pk
        raise Rollback
    # when a later job is committed and run (the worker takes tasks in order)
    later = _wait_until_finished(_create_job_and_commit(default_group, GOOD_ROWS[:3]), celery_worker)
    # then only the later job existed and ran; the rolled-back one was never sent
    assert later.status == JobStatus.ACTIVE, later.failure_reason
    assert not DatasetImportJob.objects.filter(pk=job_id).exists()
    assert "DatasetImportJob matching query does not exist" not in celery_worker.log(last_lines=400)
    assert Interaction.objects.filter(dataset_group=default_group).count() == 3


@with_real_worker
def test_a_bad_csv_fails_the_job_naming_the_line_and_writes_nothing(
    celery_worker: CeleryWorker, default_group: DatasetGroup
) -> None:
    # given a CSV whose third line has a timestamp that is not a number
    rows = [GOOD_ROWS[0], "u1,i2,yesterday,view,1", GOOD_ROWS[2]]
    # when the job commits and the worker runs it
    job = _wait_until_finished(_create_job_and_commit(default_group, rows), celery_worker)
    # then the job is CREATE FAILED, naming line 3, and no row was written
    assert job.status == JobStatus.FAILED
    assert "line 3" in job.failure_reason
    assert "TIMESTAMP" in job.failure_reason
    assert job.finished_at is not None
    assert not Interaction.objects.filter(dataset_group=default_group).exists()


@with_real_worker
def test_running_the_task_twice_for_one_job_adds_no_rows(
    celery_worker: CeleryWorker, default_group: DatasetGroup
) -> None:
    # given an import job the worker has completed
    job = _wait_until_finished(_create_job_and_commit(default_group, GOOD_ROWS), celery_worker)
    assert job.status == JobStatus.ACTIVE, job.failure_reason
    finished_at = job.finished_at
    # when the same job id is sent to the worker again (a redelivery, a double click)
    result = run_dataset_import.delay(job.pk)
    line = celery_worker.task_end_line(result.id, JOB_DEADLINE)
    # then the task succeeds without importing again: same rows, same job record
    assert "succeeded" in line, line
    assert Interaction.objects.filter(dataset_group=default_group).count() == len(GOOD_ROWS)
    job.refresh_from_db()
    assert (job.status, job.finished_at) == (JobStatus.ACTIVE, finished_at)


@pytest.mark.django_db
def test_a_test_without_the_broker_marker_runs_tasks_in_process(
    default_group: DatasetGroup,
    django_capture_on_commit_callbacks: Any,
    settings: Any,
    tmp_path: Path,
) -> None:
    # given a test not marked `broker` (in CI's second phase CELERY_BROKER_URL is set;
    # the autouse fixture in tests/conftest.py keeps such tests in-process)
    settings.MEDIA_ROOT = str(tmp_path)
    # when it creates an import job and the transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        job = dataset_import_job_create(
            dataset_group=default_group, mode=ImportMode.FULL, interactions=_csv(GOOD_ROWS)
        )
    # then the task has already run here: no broker, no worker involved
    job.refresh_from_db()
    assert job.status == JobStatus.ACTIVE, job.failure_reason
    assert Interaction.objects.filter(dataset_group=default_group).count() == len(GOOD_ROWS)
