"""The admin pages of the Personalize side: dataset groups, import jobs and batch jobs, read-only."""

from typing import Any

import pytest
from django.test import Client

from catalog.models import DatasetGroup
from recommendations.models import (
    BatchJob,
    BatchJobKind,
    CampaignBackend,
    PersonalizeDatasetGroup,
    PersonalizeImportJob,
    PersonalizeStatus,
    Solution,
    SolutionVersion,
)

pytestmark = pytest.mark.django_db

ACCOUNT = "arn:aws:personalize:us-east-1:123456789012"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """The admin login is created per test; a cheap hasher keeps that from dominating the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def personalize_rows(default_group: DatasetGroup) -> dict[str, Any]:
    """A provisioned group, a finished and a failed import job, a failed batch job on Personalize."""
    group = PersonalizeDatasetGroup.objects.create(
        dataset_group=default_group,
        name="default",
        dataset_group_arn=f"{ACCOUNT}:dataset-group/default",
        status=PersonalizeStatus.ACTIVE,
    )
    done = PersonalizeImportJob.objects.create(
        personalize_group=group,
        dataset_type="items",
        job_name="default-items-full-ok",
        rows=120,
        personalize_arn=f"{ACCOUNT}:dataset-import-job/default-items-full-ok",
        status=PersonalizeStatus.ACTIVE,
    )
    failed = PersonalizeImportJob.objects.create(
        personalize_group=group,
        dataset_type="interactions",
        job_name="default-interactions-full-bad",
        personalize_arn=f"{ACCOUNT}:dataset-import-job/default-interactions-full-bad",
        status=PersonalizeStatus.FAILED,
        failure_reason="Column TIMESTAMP is not in epoch seconds",
    )
    solution = Solution.objects.create(dataset_group=default_group, name="recs", recipe="aws-sims")
    version = SolutionVersion.objects.create(
        solution=solution, status="ACTIVE", personalize_arn=f"{ACCOUNT}:solution/recs/1"
    )
    batch = BatchJob.objects.create(
        kind=BatchJobKind.SEGMENT,
        backend=CampaignBackend.PERSONALIZE,
        name="nightly-segments",
        solution_version=version,
        input_path="s3://bucket/in.json",
        output_path="s3://bucket/out/",
        personalize_arn=f"{ACCOUNT}:batch-segment-job/nightly-segments",
        status=PersonalizeStatus.FAILED,
        failure_reason="Input file has more than 500 lines",
    )
    return {"group": group, "done": done, "failed": failed, "batch": batch}


def test_import_jobs_list_filters_by_status_and_shows_the_failure_reason(
    admin_client: Client, personalize_rows: dict[str, Any]
) -> None:
    # Given a finished and a failed import job / When an operator lists the failed ones
    page = admin_client.get(
        "/admin/recommendations/personalizeimportjob/", {"status__exact": "CREATE FAILED"}
    ).content.decode()
    # Then only the failed job is listed, with Personalize's reason
    assert "default-interactions-full-bad" in page
    assert "Column TIMESTAMP is not in epoch seconds" in page
    assert "default-items-full-ok" not in page


def test_personalize_pages_show_status_reason_and_arns_read_only(
    admin_client: Client, personalize_rows: dict[str, Any]
) -> None:
    # Given rows of each kind
    group, failed, batch = personalize_rows["group"], personalize_rows["failed"], personalize_rows["batch"]
    pages = {
        f"/admin/recommendations/personalizedatasetgroup/{group.pk}/change/": group.dataset_group_arn,
        f"/admin/recommendations/personalizeimportjob/{failed.pk}/change/": failed.personalize_arn,
        f"/admin/recommendations/batchjob/{batch.pk}/change/": batch.personalize_arn,
    }
    for url, arn in pages.items():
        # When an operator opens the page
        response = admin_client.get(url)
        page = response.content.decode()
        # Then it shows the ARN, with no form to edit it
        assert response.status_code == 200
        assert arn in page
        assert 'name="personalize_arn"' not in page and 'name="dataset_group_arn"' not in page
    batch_page = admin_client.get(f"/admin/recommendations/batchjob/{batch.pk}/change/").content.decode()
    assert "Input file has more than 500 lines" in batch_page
    # And the batch job list filters by status too
    listed = admin_client.get(
        "/admin/recommendations/batchjob/", {"status__exact": "ACTIVE"}
    ).content.decode()
    assert "nightly-segments" not in listed
    # And none of them can be added by hand
    for model in ("personalizedatasetgroup", "personalizeimportjob", "batchjob"):
        assert admin_client.get(f"/admin/recommendations/{model}/add/").status_code == 403
