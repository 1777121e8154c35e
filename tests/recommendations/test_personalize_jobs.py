"""Personalize's long jobs as Celery tasks, every AWS call through botocore's Stubber on aws.py's clients.

The Stubber checks each request against boto3's service model and the exact parameters we expect.
`.delay()` runs a task in-process (no broker), where it re-runs its step at once; `as_worker` runs
a task's body as a worker's delivery (a message id, `is_eager` off), so a poll or backoff raises
Celery's `Retry` with its countdown (the re-sent message itself then runs in-process).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from celery.exceptions import Retry

from catalog.exporting import dataset_csv_write
from catalog.models import DatasetGroup, ForwardState, Interaction, Item, RecordSource
from catalog.schemas import DatasetType, FieldKind, FieldSpec, avro_schema_json
from catalog.services import dataset_schema_save
from recommendations.backends import aws
from recommendations.models import (
    BatchJob,
    BatchJobKind,
    Campaign,
    CampaignBackend,
    CampaignStatus,
    EventTracker,
    PersonalizeDatasetGroup,
    PersonalizeImportJob,
    PersonalizeImportMode,
    PersonalizeStatus,
    Solution,
    SolutionVersion,
    SolutionVersionStatus,
    TrainingType,
)
from recommendations.personalize_jobs import (
    personalize_campaign_create,
    personalize_campaign_update,
    personalize_import_start,
    personalize_provision_start,
    personalize_solution_version_create,
    solution_create_params,
)
from recommendations.personalize_tasks import (
    backoff_seconds,
    batch_job_task,
    personalize_import_task,
    personalize_incremental_import_task,
    personalize_provision_task,
    personalize_solution_version_task,
)
from tests.factories import EndUserFactory, InteractionFactory, ItemFactory

pytestmark = pytest.mark.django_db

ACCOUNT = "arn:aws:personalize:us-east-1:123456789012"
GROUP_ARN = f"{ACCOUNT}:dataset-group/default"
ROLE_ARN = "arn:aws:iam::123456789012:role/PersonalizeRole"
KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BUCKET = "recsite-data"
DATASET_ARNS = {
    "interactions": f"{ACCOUNT}:dataset/default/INTERACTIONS",
    "items": f"{ACCOUNT}:dataset/default/ITEMS",
}
SOLUTION_ARN = f"{ACCOUNT}:solution/shop-recs"
VERSION_ARN = f"{SOLUTION_ARN}/abc123"
CAMPAIGN_ARN = f"{ACCOUNT}:campaign/shop-home"


@pytest.fixture(autouse=True)
def fake_aws(aws_sandbox: None, settings: Any) -> None:
    """Fake AWS (aws_sandbox), a role and bucket; polls run at once."""
    settings.PERSONALIZE_ROLE_ARN = ROLE_ARN
    settings.PERSONALIZE_S3_BUCKET = BUCKET
    settings.PERSONALIZE_S3_PREFIX = "recsite"
    settings.PERSONALIZE_POLL_SECONDS = 45
    settings.PERSONALIZE_EAGER_POLLS = 10
    settings.PERSONALIZE_MAX_POLLS = 2000
    settings.PERSONALIZE_MAX_ERROR_RETRIES = 5


@pytest.fixture
def personalize() -> Iterator[Stubber]:
    """A Stubber on the personalize client aws.py hands out; every queued response must be used."""
    with Stubber(aws.personalize_client()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def s3() -> Iterator[Stubber]:
    """A Stubber on the s3 client aws.py hands out."""
    with Stubber(aws.s3_client()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def uploads() -> Iterator[list[dict[str, Any]]]:
    """Each PutObject's parameters, with the body read as text."""
    seen: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **kwargs: Any) -> None:
        body = params["Body"]
        text = body.read().decode("utf-8")
        body.seek(0)
        seen.append({**params, "Body": text})

    client = aws.s3_client()
    client.meta.events.register("before-parameter-build.s3.PutObject", capture)
    yield seen
    client.meta.events.unregister("before-parameter-build.s3.PutObject", capture)


def as_worker(task: Any, *args: Any) -> Any:
    """Run a task's body as a worker's delivery of a message would (not in-process)."""
    task.push_request(
        id="delivery-1", called_directly=False, is_eager=False, args=list(args), kwargs={}, retries=0
    )
    try:
        return task.run(*args)
    finally:
        task.pop_request()


def items_schema(group: DatasetGroup) -> None:
    """An items schema with one categorical field (Personalize needs a metadata field)."""
    dataset_schema_save(
        dataset_group=group,
        dataset_type=DatasetType.ITEMS,
        fields=[
            FieldSpec("ITEM_ID", FieldKind.ID, "string", False),
            FieldSpec("GENRE", FieldKind.CATEGORICAL, "string", True),
        ],
    )


def provisioned(group: DatasetGroup, **fields: Any) -> PersonalizeDatasetGroup:
    """The group already ACTIVE on Personalize with an interactions and an items dataset."""
    values = {
        "name": group.name,
        "dataset_group_arn": GROUP_ARN,
        "dataset_arns": dict(DATASET_ARNS),
        "status": PersonalizeStatus.ACTIVE,
        **fields,
    }
    return PersonalizeDatasetGroup.objects.create(dataset_group=group, **values)


def shop(group: DatasetGroup, events: int = 6) -> None:
    """A few items (with GENRE) and bulk-imported events."""
    items_schema(group)
    items = [ItemFactory(dataset_group=group, metadata={"GENRE": "Comedy"}) for _ in range(3)]
    users = [EndUserFactory(dataset_group=group) for _ in range(2)]
    for n in range(events):
        InteractionFactory(
            dataset_group=group,
            user=users[n % 2],
            item=items[n % 3],
            event_type="click",
            source=RecordSource.IMPORT,
        )


def csv_of(group: DatasetGroup, dataset_type: DatasetType, tmp_path: Path) -> str:
    """The catalog exporter's CSV of a whole dataset."""
    path = tmp_path / f"expected-{dataset_type}.csv"
    dataset_csv_write(group=group, dataset_type=dataset_type, path=path)
    return path.read_text(encoding="utf-8")


# --- provisioning -----------------------------------------------------------------------------------


def stub_provisioning(personalize: Stubber, group: DatasetGroup, *, group_params: dict[str, Any]) -> None:
    """Everything created and ACTIVE at once: group, two schemas and datasets, tracker."""
    personalize.add_response("create_dataset_group", {"datasetGroupArn": GROUP_ARN}, group_params)
    personalize.add_response(
        "describe_dataset_group",
        {"datasetGroup": {"name": group.name, "datasetGroupArn": GROUP_ARN, "status": "ACTIVE"}},
        {"datasetGroupArn": GROUP_ARN},
    )
    for dataset_type, fields in (
        (DatasetType.INTERACTIONS, None),
        (DatasetType.ITEMS, None),
    ):
        from catalog.exporting import dataset_fields

        fields = dataset_fields(group=group, dataset_type=dataset_type)
        personalize.add_response(
            "create_schema",
            {"schemaArn": f"{ACCOUNT}:schema/{dataset_type}"},
            {"name": ANY, "schema": avro_schema_json(dataset_type, fields)},
        )
        personalize.add_response(
            "create_dataset",
            {"datasetArn": DATASET_ARNS[dataset_type]},
            {
                "name": f"{group.name}-{dataset_type}",
                "schemaArn": f"{ACCOUNT}:schema/{dataset_type}",
                "datasetGroupArn": GROUP_ARN,
                "datasetType": dataset_type.avro_name,
            },
        )
    for arn in DATASET_ARNS.values():
        personalize.add_response(
            "describe_dataset", {"dataset": {"datasetArn": arn, "status": "ACTIVE"}}, {"datasetArn": arn}
        )
    personalize.add_response(
        "create_event_tracker",
        {"eventTrackerArn": f"{ACCOUNT}:event-tracker/abc", "trackingId": "tracking-from-aws"},
        {"name": "default-events", "datasetGroupArn": GROUP_ARN},
    )
    personalize.add_response(
        "describe_event_tracker",
        {"eventTracker": {"eventTrackerArn": f"{ACCOUNT}:event-tracker/abc", "status": "ACTIVE"}},
        {"eventTrackerArn": f"{ACCOUNT}:event-tracker/abc"},
    )


def expect_csv_upload(s3: Stubber, **encryption: str) -> None:
    """S3's answer to one CSV upload to BUCKET, encrypted as given (default SSE-S3)."""
    encryption = encryption or {"ServerSideEncryption": "AES256"}
    s3.add_response(
        "put_object",
        {"ETag": '"etag"'},
        {"Bucket": BUCKET, "Key": ANY, "Body": ANY, "ContentType": "text/csv", **encryption},
    )


def expect_import_job(
    personalize: Stubber,
    dataset_type: str,
    job_arn: str,
    *,
    mode: str = "FULL",
    job_name: Any = ANY,
    data_location: Any = ANY,
) -> None:
    """Personalize's answer to CreateDatasetImportJob of a dataset, checking the request's fields."""
    personalize.add_response(
        "create_dataset_import_job",
        {"datasetImportJobArn": job_arn},
        {
            "jobName": job_name,
            "datasetArn": DATASET_ARNS[dataset_type],
            "dataSource": {"dataLocation": data_location},
            "roleArn": ROLE_ARN,
            "importMode": mode,
        },
    )


def test_provision_creates_group_with_kms_key_schemas_datasets_and_tracker_and_records_arns(
    default_group: DatasetGroup, personalize: Stubber, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # Given a KMS key, a role, an items schema with metadata, and no users schema
    settings.PERSONALIZE_KMS_KEY_ARN = KMS_KEY_ARN
    items_schema(default_group)
    stub_provisioning(
        personalize,
        default_group,
        group_params={"name": "default", "kmsKeyArn": KMS_KEY_ARN, "roleArn": ROLE_ARN},
    )

    # When provisioning starts and its task runs
    with django_capture_on_commit_callbacks(execute=True):
        row = personalize_provision_start(dataset_group=default_group)

    # Then every ARN is recorded, the row is ACTIVE and the tracker carries Personalize's trackingId
    row.refresh_from_db()
    assert row.status == PersonalizeStatus.ACTIVE
    assert row.dataset_group_arn == GROUP_ARN
    assert row.schema_arns == {
        "interactions": f"{ACCOUNT}:schema/interactions",
        "items": f"{ACCOUNT}:schema/items",
    }
    assert row.dataset_arns == DATASET_ARNS
    tracker = EventTracker.objects.get(dataset_group=default_group)
    assert tracker.personalize_arn == f"{ACCOUNT}:event-tracker/abc"
    assert tracker.personalize_tracking_id == "tracking-from-aws"
    assert tracker.backend == CampaignBackend.PERSONALIZE
    assert tracker.status == CampaignStatus.ACTIVE


def test_provision_without_kms_key_sends_neither_key_nor_role(
    default_group: DatasetGroup, personalize: Stubber
) -> None:
    # Given no KMS key (the role is only valid with a key)
    items_schema(default_group)
    stub_provisioning(personalize, default_group, group_params={"name": "default"})
    row = PersonalizeDatasetGroup.objects.create(dataset_group=default_group, name="default")

    # When the task runs, then CreateDatasetGroup got the name alone (the Stubber checks it) and all is ACTIVE
    assert personalize_provision_task.delay(row.pk).get() == PersonalizeStatus.ACTIVE


def test_provision_polls_a_pending_group_with_a_countdown_and_a_second_run_calls_nothing(
    default_group: DatasetGroup, personalize: Stubber
) -> None:
    # Given a group whose creation is still pending on the first look, and only interactions
    row = PersonalizeDatasetGroup.objects.create(dataset_group=default_group, name="default")
    personalize.add_response("create_dataset_group", {"datasetGroupArn": GROUP_ARN}, {"name": "default"})
    personalize.add_response(
        "describe_dataset_group",
        {"datasetGroup": {"datasetGroupArn": GROUP_ARN, "status": "CREATE PENDING"}},
        {"datasetGroupArn": GROUP_ARN},
    )
    personalize.add_response(
        "describe_dataset_group",
        {"datasetGroup": {"datasetGroupArn": GROUP_ARN, "status": "ACTIVE"}},
        {"datasetGroupArn": GROUP_ARN},
    )
    personalize.add_response(
        "create_schema", {"schemaArn": f"{ACCOUNT}:schema/i"}, {"name": ANY, "schema": ANY}
    )
    personalize.add_response("create_dataset", {"datasetArn": DATASET_ARNS["interactions"]}, ANY_DATASET)
    personalize.add_response(
        "describe_dataset",
        {"dataset": {"status": "ACTIVE"}},
        {"datasetArn": DATASET_ARNS["interactions"]},
    )
    EventTracker.objects.create(
        dataset_group=default_group,
        name="shop-events",
        personalize_arn=f"{ACCOUNT}:event-tracker/abc",
        personalize_tracking_id="t",
    )
    personalize.add_response(
        "describe_event_tracker",
        {"eventTracker": {"status": "ACTIVE"}},
        {"eventTrackerArn": f"{ACCOUNT}:event-tracker/abc"},
    )

    # When a worker runs the task
    with pytest.raises(Retry) as caught:
        as_worker(personalize_provision_task, row.pk)

    # Then it created the group once and asked Celery to look again after the poll countdown;
    # the re-delivery finished it, reusing the tracker that already had an ARN
    assert caught.value.when == 45
    row.refresh_from_db()
    assert row.status == PersonalizeStatus.ACTIVE
    # When it runs once more, then it makes no call at all (the Stubber has nothing left to answer)
    assert personalize_provision_task.delay(row.pk).get() == PersonalizeStatus.ACTIVE


ANY_DATASET = {"name": ANY, "schemaArn": ANY, "datasetGroupArn": GROUP_ARN, "datasetType": "Interactions"}


def test_provision_reuses_a_group_that_already_exists_on_personalize(
    default_group: DatasetGroup, personalize: Stubber
) -> None:
    # Given a previous run created the group but died before recording its ARN
    row = PersonalizeDatasetGroup.objects.create(dataset_group=default_group, name="default")
    personalize.add_client_error(
        "create_dataset_group",
        service_error_code="ResourceAlreadyExistsException",
        service_message="Dataset group default already exists",
        http_status_code=400,
        expected_params={"name": "default"},
    )
    personalize.add_response(
        "list_dataset_groups",
        {
            "datasetGroups": [{"name": "other", "datasetGroupArn": f"{ACCOUNT}:dataset-group/other"}],
            "nextToken": "p2",
        },
        {},
    )
    personalize.add_response(
        "list_dataset_groups",
        {"datasetGroups": [{"name": "default", "datasetGroupArn": GROUP_ARN}]},
        {"nextToken": "p2"},
    )
    personalize.add_response(
        "describe_dataset_group",
        {"datasetGroup": {"status": "CREATE FAILED", "failureReason": "KMS key is not accessible"}},
        {"datasetGroupArn": GROUP_ARN},
    )

    # When the task runs
    status = personalize_provision_task.delay(row.pk).get()

    # Then the existing group's ARN (found on the second page) is recorded, and its failure with the reason
    row.refresh_from_db()
    assert row.dataset_group_arn == GROUP_ARN
    assert status == PersonalizeStatus.FAILED
    assert row.status == PersonalizeStatus.FAILED
    assert row.failure_reason == "KMS key is not accessible"


def test_throttling_retries_with_backoff_then_succeeds(
    default_group: DatasetGroup, personalize: Stubber
) -> None:
    # Given CreateDatasetGroup throttled twice, then answered
    row = PersonalizeDatasetGroup.objects.create(dataset_group=default_group, name="default")
    for _ in range(2):
        personalize.add_client_error(
            "create_dataset_group", service_error_code="ThrottlingException", service_message="Rate exceeded"
        )
    personalize.add_response("create_dataset_group", {"datasetGroupArn": GROUP_ARN}, {"name": "default"})
    personalize.add_response(
        "describe_dataset_group",
        {"datasetGroup": {"status": "CREATE FAILED", "failureReason": "stop here"}},
        {"datasetGroupArn": GROUP_ARN},
    )

    # When a worker runs the task
    with pytest.raises(Retry) as caught:
        as_worker(personalize_provision_task, row.pk)

    # Then it asked for a retry after the first backoff, and the retries reached the next call
    assert caught.value.when == 4
    assert backoff_seconds(1) == 8
    row.refresh_from_db()
    assert row.dataset_group_arn == GROUP_ARN
    assert row.failure_reason == "stop here"


def test_throttling_that_never_ends_is_recorded_as_a_failure(
    default_group: DatasetGroup, personalize: Stubber, settings: Any
) -> None:
    # Given at most one retry and CreateDatasetGroup throttled every time
    settings.PERSONALIZE_MAX_ERROR_RETRIES = 1
    row = PersonalizeDatasetGroup.objects.create(dataset_group=default_group, name="default")
    for _ in range(2):
        personalize.add_client_error(
            "create_dataset_group", service_error_code="ThrottlingException", service_message="Rate exceeded"
        )

    # When the task runs, then the row records that it gave up, with AWS's error
    assert personalize_provision_task.delay(row.pk).get() == PersonalizeStatus.FAILED
    row.refresh_from_db()
    assert row.status == PersonalizeStatus.FAILED
    assert "gave up after 2 attempts" in row.failure_reason
    assert "ThrottlingException: Rate exceeded" in row.failure_reason


def test_limit_exceeded_is_recorded_without_retrying(
    default_group: DatasetGroup, personalize: Stubber
) -> None:
    # Given an account with no dataset groups left
    row = PersonalizeDatasetGroup.objects.create(dataset_group=default_group, name="default")
    personalize.add_client_error(
        "create_dataset_group",
        service_error_code="LimitExceededException",
        service_message="Maximum of 5 dataset groups",
    )

    # When the task runs, then the failure is recorded at once
    assert personalize_provision_task.delay(row.pk).get() == PersonalizeStatus.FAILED
    row.refresh_from_db()
    assert (
        row.failure_reason == "CreateDatasetGroup failed: LimitExceededException: Maximum of 5 dataset groups"
    )


# --- export + import ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kms_key", ["", KMS_KEY_ARN], ids=["aes256", "kms"])
def test_full_import_uploads_the_exported_csv_encrypted_and_polls_the_job_until_active(
    default_group: DatasetGroup,
    personalize: Stubber,
    s3: Stubber,
    uploads: list[dict[str, Any]],
    settings: Any,
    tmp_path: Path,
    kms_key: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Given a provisioned group with events, and either encryption setting
    settings.PERSONALIZE_KMS_KEY_ARN = kms_key
    shop(default_group)
    provisioned(default_group)
    if kms_key:
        expect_csv_upload(s3, ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key)
    else:
        expect_csv_upload(s3)
    expect_import_job(personalize, "interactions", f"{ACCOUNT}:dataset-import-job/one")
    for status in ("CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE"):
        personalize.add_response(
            "describe_dataset_import_job",
            {"datasetImportJob": {"status": status}},
            {"datasetImportJobArn": f"{ACCOUNT}:dataset-import-job/one"},
        )

    # When a FULL import of the interactions starts and its task runs
    with django_capture_on_commit_callbacks(execute=True):
        [job] = personalize_import_start(dataset_group=default_group, dataset_types=["interactions"])

    # Then the uploaded object is the catalog's Personalize CSV, encrypted, at the recorded S3 path
    job.refresh_from_db()
    [upload] = uploads
    assert upload["Body"] == csv_of(default_group, DatasetType.INTERACTIONS, tmp_path)
    assert job.s3_path == f"s3://{BUCKET}/{upload['Key']}"
    assert upload["Key"] == f"recsite/default/imports/{job.job_name}/interactions.csv"
    assert job.rows == 6
    # And the job was polled until ACTIVE (the Stubber's three answers were all used)
    assert job.status == PersonalizeStatus.ACTIVE
    assert job.personalize_arn == f"{ACCOUNT}:dataset-import-job/one"
    assert job.interactions_through_id == Interaction.objects.order_by("-pk").first().pk


def test_full_import_leaves_out_events_the_outbox_streams_to_personalize(
    default_group: DatasetGroup,
    personalize: Stubber,
    s3: Stubber,
    uploads: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Given bulk events, an event put while the group was on the local engine (never forwarded),
    # and events the outbox sent, still has to send, or saw refused
    shop(default_group)
    provisioned(default_group)
    item = Item.objects.filter(dataset_group=default_group).first()
    user = item.interactions.first().user
    states = {
        "put-locally": ForwardState.NONE,
        "streamed": ForwardState.SENT,
        "to-stream": ForwardState.PENDING,
        "refused": ForwardState.REFUSED,
    }
    for event_type, state in states.items():
        InteractionFactory(
            dataset_group=default_group,
            user=user,
            item=item,
            event_type=event_type,
            source=RecordSource.PUT,
            forward_state=state,
        )
    expect_csv_upload(s3)
    expect_import_job(personalize, "interactions", f"{ACCOUNT}:dataset-import-job/full")
    personalize.add_response(
        "describe_dataset_import_job",
        {"datasetImportJob": {"status": "ACTIVE"}},
        {"datasetImportJobArn": f"{ACCOUNT}:dataset-import-job/full"},
    )

    # When a FULL import of the interactions runs
    with django_capture_on_commit_callbacks(execute=True):
        [job] = personalize_import_start(dataset_group=default_group, dataset_types=["interactions"])

    # Then the CSV holds the bulk events and the never-forwarded one, none that Personalize has as
    # individual records (a FULL import does not replace those: they would count twice)
    job.refresh_from_db()
    [upload] = uploads
    event_types = [line.rsplit(",", 1)[1] for line in upload["Body"].splitlines()[1:]]
    assert sorted(event_types) == ["click"] * 6 + ["put-locally"]
    assert job.rows == 7
    assert job.status == PersonalizeStatus.ACTIVE


def test_failed_import_job_records_personalize_reason_and_a_rerun_calls_nothing(
    default_group: DatasetGroup, personalize: Stubber, s3: Stubber
) -> None:
    # Given an import job whose CSV Personalize refuses
    shop(default_group)
    group = provisioned(default_group)
    job = PersonalizeImportJob.objects.create(
        personalize_group=group,
        dataset_type="items",
        import_mode=PersonalizeImportMode.FULL,
        job_name="items-full-1",
    )
    expect_csv_upload(s3)
    expect_import_job(
        personalize,
        "items",
        f"{ACCOUNT}:dataset-import-job/items",
        job_name="items-full-1",
        data_location=f"s3://{BUCKET}/recsite/default/imports/items-full-1/items.csv",
    )
    personalize.add_response(
        "describe_dataset_import_job",
        {
            "datasetImportJob": {
                "status": "CREATE FAILED",
                "failureReason": "Column GENRE is not in the schema",
            }
        },
        {"datasetImportJobArn": f"{ACCOUNT}:dataset-import-job/items"},
    )

    # When the task runs (twice: a redelivery)
    first = personalize_import_task.delay(job.pk).get()
    second = personalize_import_task.delay(job.pk).get()

    # Then the failure and Personalize's reason are recorded once; the rerun uploaded and created nothing
    job.refresh_from_db()
    assert first == second == PersonalizeStatus.FAILED
    assert job.failure_reason == "Column GENRE is not in the schema"
    assert job.rows == 3


def test_a_rerun_after_the_job_was_created_only_polls_it(
    default_group: DatasetGroup, personalize: Stubber, s3: Stubber
) -> None:
    # Given a job whose export and CreateDatasetImportJob are recorded (the worker died afterwards)
    group = provisioned(default_group)
    job = PersonalizeImportJob.objects.create(
        personalize_group=group,
        dataset_type="interactions",
        job_name="interactions-full-1",
        rows=1200,
        s3_path=f"s3://{BUCKET}/x.csv",
        personalize_arn=f"{ACCOUNT}:dataset-import-job/x",
        status=PersonalizeStatus.IN_PROGRESS,
    )
    personalize.add_response(
        "describe_dataset_import_job",
        {"datasetImportJob": {"status": "ACTIVE"}},
        {"datasetImportJobArn": f"{ACCOUNT}:dataset-import-job/x"},
    )

    # When the task is delivered again, then it only asks for the status (no upload, no create)
    assert personalize_import_task.delay(job.pk).get() == PersonalizeStatus.ACTIVE


def test_an_import_job_that_already_exists_is_found_by_name(
    default_group: DatasetGroup, personalize: Stubber, s3: Stubber
) -> None:
    # Given the export is recorded and Personalize already has a job of this name
    group = provisioned(default_group)
    job = PersonalizeImportJob.objects.create(
        personalize_group=group,
        dataset_type="interactions",
        job_name="j-1",
        rows=10,
        s3_path=f"s3://{BUCKET}/j.csv",
    )
    personalize.add_client_error(
        "create_dataset_import_job",
        service_error_code="ResourceAlreadyExistsException",
        service_message="exists",
    )
    personalize.add_response(
        "list_dataset_import_jobs",
        {
            "datasetImportJobs": [
                {"jobName": "j-1", "datasetImportJobArn": f"{ACCOUNT}:dataset-import-job/j-1"}
            ]
        },
        {"datasetArn": DATASET_ARNS["interactions"]},
    )
    personalize.add_response(
        "describe_dataset_import_job",
        {"datasetImportJob": {"status": "ACTIVE"}},
        {"datasetImportJobArn": f"{ACCOUNT}:dataset-import-job/j-1"},
    )

    # When the task runs, then the existing job is adopted and finishes
    assert personalize_import_task.delay(job.pk).get() == PersonalizeStatus.ACTIVE
    job.refresh_from_db()
    assert job.personalize_arn == f"{ACCOUNT}:dataset-import-job/j-1"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("InvalidInputException", "The role cannot read s3://recsite-data"),
        ("ResourceNotFoundException", "Dataset not found"),
    ],
)
def test_invalid_input_or_missing_dataset_fails_the_import_with_the_message(
    default_group: DatasetGroup,
    personalize: Stubber,
    code: str,
    message: str,
) -> None:
    # Given an exported job that Personalize refuses to create
    group = provisioned(default_group)
    job = PersonalizeImportJob.objects.create(
        personalize_group=group,
        dataset_type="interactions",
        job_name="j-2",
        rows=10,
        s3_path=f"s3://{BUCKET}/j.csv",
    )
    personalize.add_client_error(
        "create_dataset_import_job", service_error_code=code, service_message=message
    )

    # When a worker runs the task, then the job is CREATE FAILED with AWS's code and message, not retried
    assert as_worker(personalize_import_task, job.pk) == PersonalizeStatus.FAILED
    job.refresh_from_db()
    assert job.failure_reason == f"CreateDatasetImportJob failed: {code}: {message}"


def test_the_first_import_of_a_dataset_cannot_be_incremental(
    default_group: DatasetGroup, s3: Stubber
) -> None:
    # Given a provisioned group that never imported anything
    shop(default_group)
    group = provisioned(default_group)
    job = PersonalizeImportJob.objects.create(
        personalize_group=group,
        dataset_type="interactions",
        import_mode=PersonalizeImportMode.INCREMENTAL,
        job_name="i-1",
    )

    # When an INCREMENTAL import runs, then it fails with Personalize's rule and uploads nothing
    assert personalize_import_task.delay(job.pk).get() == PersonalizeStatus.FAILED
    job.refresh_from_db()
    assert "first import of the interactions dataset must be FULL" in job.failure_reason


def test_scheduled_incremental_import_carries_only_rows_changed_since_the_last_import(
    default_group: DatasetGroup,
    personalize: Stubber,
    s3: Stubber,
    uploads: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Given a FULL import of both datasets finished an hour ago
    shop(default_group)
    group = provisioned(default_group)
    exported_at = datetime.now(UTC) - timedelta(hours=1)
    Item.objects.filter(dataset_group=default_group).update(updated_at=exported_at - timedelta(minutes=5))
    through = Interaction.objects.order_by("-pk").first().pk
    for dataset_type in ("interactions", "items"):
        PersonalizeImportJob.objects.create(
            personalize_group=group,
            dataset_type=dataset_type,
            job_name=f"full-{dataset_type}",
            rows=6,
            exported_at=exported_at,
            interactions_through_id=through,
            status=PersonalizeStatus.ACTIVE,
        )
    # And since then: one bulk-imported event, one streamed event (the outbox's job), one item changed
    item = Item.objects.filter(dataset_group=default_group).first()
    item.metadata = {"GENRE": "Drama"}
    item.save()
    user = item.interactions.first().user
    new_event = InteractionFactory(
        dataset_group=default_group, user=user, item=item, event_type="buy", source=RecordSource.IMPORT
    )
    InteractionFactory(
        dataset_group=default_group, user=user, item=item, event_type="view", source=RecordSource.PUT
    )
    for _ in range(2):
        expect_csv_upload(s3)
    for dataset_type in ("interactions", "items"):
        expect_import_job(
            personalize, dataset_type, f"{ACCOUNT}:dataset-import-job/inc-{dataset_type}", mode="INCREMENTAL"
        )
        personalize.add_response(
            "describe_dataset_import_job",
            {"datasetImportJob": {"status": "ACTIVE"}},
            {"datasetImportJobArn": f"{ACCOUNT}:dataset-import-job/inc-{dataset_type}"},
        )

    # When beat's incremental import runs
    with django_capture_on_commit_callbacks(execute=True):
        started = personalize_incremental_import_task.delay().get()

    # Then each dataset's CSV holds only the changed rows: the bulk event and the changed item
    assert len(started) == 2
    interactions_csv, items_csv = (upload["Body"] for upload in uploads)
    timestamp = int(new_event.timestamp.timestamp())
    assert interactions_csv.splitlines() == [
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE",
        f"{user.user_id},{item.item_id},{timestamp},buy",
    ]
    assert items_csv.splitlines() == ["ITEM_ID,GENRE", f"{item.item_id},Drama"]
    jobs = PersonalizeImportJob.objects.filter(import_mode=PersonalizeImportMode.INCREMENTAL)
    assert {job.status for job in jobs} == {PersonalizeStatus.ACTIVE}
    assert {job.interactions_after_id for job in jobs} == {through}

    # When it runs again with nothing new, then no job is started
    assert personalize_incremental_import_task.delay().get() == []


# --- training and deployment --------------------------------------------------------------------------


def personalize_solution(group: DatasetGroup, **fields: Any) -> Solution:
    """A user-personalization solution with a config, not yet on Personalize."""
    values = {
        "name": "shop-recs",
        "recipe": "aws-user-personalization",
        "solution_config": {
            "eventType": "click",
            "algorithmHyperParameters": {"hidden_dimension": "64"},
            "hpoConfig": {"hpoResourceConfig": {"maxNumberOfTrainingJobs": 4, "maxParallelTrainingJobs": 2}},
        },
        "perform_hpo": True,
        "perform_auto_training": False,
        **fields,
    }
    return Solution.objects.create(dataset_group=group, **values)


def expect_training(
    personalize: Stubber,
    *,
    metrics: dict[str, Any],
    version_arn: str = VERSION_ARN,
    polls_in_progress: int = 0,
    active: dict[str, Any] | None = None,
) -> None:
    """Personalize's answers for one FULL version of SOLUTION_ARN trained to ACTIVE, then its metrics.

    The solution is ACTIVE; `polls_in_progress` DescribeSolutionVersion answers say CREATE IN_PROGRESS
    before the one saying ACTIVE (with the `active` fields).
    """
    personalize.add_response(
        "describe_solution", {"solution": {"status": "ACTIVE"}}, {"solutionArn": SOLUTION_ARN}
    )
    personalize.add_response(
        "create_solution_version",
        {"solutionVersionArn": version_arn},
        {"name": ANY, "solutionArn": SOLUTION_ARN, "trainingMode": "FULL"},
    )
    in_progress = [{"status": "CREATE IN_PROGRESS"}] * polls_in_progress
    for described in [*in_progress, {"status": "ACTIVE", **(active or {})}]:
        personalize.add_response(
            "describe_solution_version", {"solutionVersion": described}, {"solutionVersionArn": version_arn}
        )
    personalize.add_response(
        "get_solution_metrics",
        {"solutionVersionArn": version_arn, "metrics": metrics},
        {"solutionVersionArn": version_arn},
    )


def test_create_solution_request_maps_the_solution(default_group: DatasetGroup) -> None:
    # Given a solution with eventType, hyperparameters, HPO and weekly auto training
    solution = personalize_solution(default_group, perform_auto_training=True, auto_training_days=7)

    # When its CreateSolution request is built
    params = solution_create_params(solution=solution, dataset_group_arn=GROUP_ARN)

    # Then eventType is top-level, HPO numbers are strings, and auto training carries its schedule
    assert params == {
        "name": "shop-recs",
        "datasetGroupArn": GROUP_ARN,
        "recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization",
        "performHPO": True,
        "performAutoTraining": True,
        "eventType": "click",
        "solutionConfig": {
            "algorithmHyperParameters": {"hidden_dimension": "64"},
            "hpoConfig": {
                "hpoResourceConfig": {"maxNumberOfTrainingJobs": "4", "maxParallelTrainingJobs": "2"}
            },
            "autoTrainingConfig": {"schedulingExpression": "rate(7 days)"},
        },
    }


def test_solution_version_trains_on_personalize_and_records_metrics(
    default_group: DatasetGroup,
    personalize: Stubber,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Given a provisioned group and a solution not yet on Personalize
    provisioned(default_group)
    solution = personalize_solution(default_group)
    personalize.add_response(
        "create_solution",
        {"solutionArn": SOLUTION_ARN},
        solution_create_params(solution=solution, dataset_group_arn=GROUP_ARN),
    )
    expect_training(
        personalize,
        metrics={"coverage": 0.27, "normalized_discounted_cumulative_gain_at_10": 0.19},
        polls_in_progress=1,
        active={
            "trainingHours": 0.5,
            "tunedHPOParams": {"algorithmHyperParameters": {"hidden_dimension": "149"}},
        },
    )

    # When a version is created for Personalize and its task runs
    with django_capture_on_commit_callbacks(execute=True):
        version = personalize_solution_version_create(solution=solution)

    # Then the solution and version ARNs, the metrics, tuned parameters and training time are recorded
    version.refresh_from_db()
    solution.refresh_from_db()
    assert solution.personalize_arn == SOLUTION_ARN
    assert version.personalize_arn == VERSION_ARN
    assert version.status == SolutionVersionStatus.ACTIVE
    assert version.metrics == {"coverage": 0.27, "normalized_discounted_cumulative_gain_at_10": 0.19}
    assert version.tuned_hpo_params == {"algorithmHyperParameters": {"hidden_dimension": "149"}}
    assert version.training_seconds == 1800
    assert version.finished_at is not None
    # And a redelivery makes no call
    assert personalize_solution_version_task.delay(version.pk).get() == SolutionVersionStatus.ACTIVE


def test_failed_training_records_the_failure_reason(
    default_group: DatasetGroup, personalize: Stubber
) -> None:
    # Given a solution already on Personalize and a version whose training fails
    provisioned(default_group)
    solution = personalize_solution(default_group, personalize_arn=SOLUTION_ARN)
    version = SolutionVersion.objects.create(solution=solution, personalize_arn=VERSION_ARN)
    personalize.add_response(
        "describe_solution_version",
        {
            "solutionVersion": {
                "status": "CREATE FAILED",
                "failureReason": "Dataset has fewer than 25 users with at least 2 interactions each.",
            }
        },
        {"solutionVersionArn": VERSION_ARN},
    )

    # When the task runs, then the version is CREATE FAILED with Personalize's reason
    assert personalize_solution_version_task.delay(version.pk).get() == SolutionVersionStatus.FAILED
    version.refresh_from_db()
    assert version.status == SolutionVersionStatus.FAILED
    assert version.failure_reason == "Dataset has fewer than 25 users with at least 2 interactions each."


def test_training_a_solution_deleted_on_personalize_fails_with_not_found(
    default_group: DatasetGroup, personalize: Stubber
) -> None:
    # Given a solution ARN Personalize no longer knows
    provisioned(default_group)
    solution = personalize_solution(default_group, personalize_arn=SOLUTION_ARN)
    version = SolutionVersion.objects.create(solution=solution)
    personalize.add_client_error(
        "describe_solution",
        service_error_code="ResourceNotFoundException",
        service_message="Solution not found",
    )

    # When the task runs, then the version records the not-found error
    assert personalize_solution_version_task.delay(version.pk).get() == SolutionVersionStatus.FAILED
    version.refresh_from_db()
    assert version.failure_reason == "DescribeSolution failed: ResourceNotFoundException: Solution not found"


def active_version(group: DatasetGroup, arn: str = VERSION_ARN) -> SolutionVersion:
    """An ACTIVE version trained on Personalize."""
    solution = Solution.objects.filter(name="shop-recs").first() or personalize_solution(
        group, personalize_arn=SOLUTION_ARN
    )
    return SolutionVersion.objects.create(
        solution=solution, personalize_arn=arn, status=SolutionVersionStatus.ACTIVE
    )


def test_campaign_is_created_with_tps_and_exploration_and_becomes_active(
    default_group: DatasetGroup, personalize: Stubber, django_capture_on_commit_callbacks: Any
) -> None:
    # Given an ACTIVE version on Personalize
    version = active_version(default_group)
    config = {"itemExplorationConfig": {"explorationWeight": "0.1", "explorationItemAgeCutOff": "7"}}
    personalize.add_response(
        "create_campaign",
        {"campaignArn": CAMPAIGN_ARN},
        {
            "name": "shop-home",
            "solutionVersionArn": VERSION_ARN,
            "minProvisionedTPS": 2,
            "campaignConfig": config,
        },
    )
    personalize.add_response(
        "describe_campaign", {"campaign": {"status": "CREATE IN_PROGRESS"}}, {"campaignArn": CAMPAIGN_ARN}
    )
    personalize.add_response(
        "describe_campaign",
        {
            "campaign": {
                "status": "ACTIVE",
                "solutionVersionArn": VERSION_ARN,
                "minProvisionedTPS": 2,
                "campaignConfig": config,
            }
        },
        {"campaignArn": CAMPAIGN_ARN},
    )

    # When the campaign is created on Personalize
    with django_capture_on_commit_callbacks(execute=True):
        campaign = personalize_campaign_create(
            name="shop-home", solution_version=version, campaign_config=config, min_provisioned_tps=2
        )
        assert campaign.status == CampaignStatus.PENDING

    # Then it is ACTIVE with its ARN, on the Personalize backend
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE
    assert campaign.personalize_arn == CAMPAIGN_ARN
    assert campaign.backend == CampaignBackend.PERSONALIZE


def test_failed_campaign_creation_is_recorded(
    default_group: DatasetGroup, personalize: Stubber, django_capture_on_commit_callbacks: Any
) -> None:
    # Given CreateCampaign accepted but the campaign fails
    version = active_version(default_group)
    personalize.add_response(
        "create_campaign",
        {"campaignArn": CAMPAIGN_ARN},
        {"name": "shop-home", "solutionVersionArn": VERSION_ARN, "minProvisionedTPS": 1},
    )
    personalize.add_response(
        "describe_campaign",
        {"campaign": {"status": "CREATE FAILED", "failureReason": "Solution version is not ACTIVE"}},
        {"campaignArn": CAMPAIGN_ARN},
    )

    # When it is created, then the row is CREATE FAILED with the reason
    with django_capture_on_commit_callbacks(execute=True):
        campaign = personalize_campaign_create(name="shop-home", solution_version=version)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.FAILED
    assert campaign.failure_reason == "Solution version is not ACTIVE"


def test_campaign_update_deploys_a_new_version_and_the_row_follows_when_personalize_is_done(
    default_group: DatasetGroup,
    personalize: Stubber,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Given an ACTIVE Personalize campaign on version 1 and a newer ACTIVE version 2
    old = active_version(default_group)
    new = active_version(default_group, arn=f"{SOLUTION_ARN}/def456")
    campaign = Campaign.objects.create(
        dataset_group=default_group,
        name="shop-home",
        solution_version=old,
        backend=CampaignBackend.PERSONALIZE,
        personalize_arn=CAMPAIGN_ARN,
        status=CampaignStatus.ACTIVE,
    )
    deployed = {
        "status": "ACTIVE",
        "solutionVersionArn": VERSION_ARN,
        "minProvisionedTPS": 1,
        "campaignConfig": {},
    }
    personalize.add_response("describe_campaign", {"campaign": deployed}, {"campaignArn": CAMPAIGN_ARN})
    personalize.add_response(
        "update_campaign",
        {"campaignArn": CAMPAIGN_ARN},
        {"campaignArn": CAMPAIGN_ARN, "solutionVersionArn": new.personalize_arn, "minProvisionedTPS": 3},
    )
    updating = {
        **deployed,
        "latestCampaignUpdate": {"status": "UPDATE IN_PROGRESS", "solutionVersionArn": new.personalize_arn},
    }
    personalize.add_response("describe_campaign", {"campaign": updating}, {"campaignArn": CAMPAIGN_ARN})
    done = {
        **deployed,
        "solutionVersionArn": new.personalize_arn,
        "minProvisionedTPS": 3,
        "latestCampaignUpdate": {"status": "ACTIVE", "solutionVersionArn": new.personalize_arn},
    }
    personalize.add_response("describe_campaign", {"campaign": done}, {"campaignArn": CAMPAIGN_ARN})

    # When the update is asked for
    with django_capture_on_commit_callbacks(execute=True):
        personalize_campaign_update(campaign=campaign, solution_version=new, min_provisioned_tps=3)

    # Then UpdateCampaign was called once, the task polled, and the row now serves version 2
    campaign.refresh_from_db()
    assert campaign.solution_version_id == new.pk
    assert campaign.status == CampaignStatus.ACTIVE


# --- batch jobs on Personalize ---------------------------------------------------------------------------


def test_batch_inference_job_on_personalize_with_kms_and_exploration(
    default_group: DatasetGroup, personalize: Stubber, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # Given a KMS key and an ACTIVE version on Personalize
    from recommendations.batch import batch_job_create

    settings.PERSONALIZE_KMS_KEY_ARN = KMS_KEY_ARN
    version = active_version(default_group)
    personalize.add_response(
        "create_batch_inference_job",
        {"batchInferenceJobArn": f"{ACCOUNT}:batch-inference-job/nightly"},
        {
            "jobName": "nightly",
            "solutionVersionArn": VERSION_ARN,
            "numResults": 10,
            "jobInput": {
                "s3DataSource": {"path": f"s3://{BUCKET}/batch/in/users.json", "kmsKeyArn": KMS_KEY_ARN}
            },
            "jobOutput": {
                "s3DataDestination": {"path": f"s3://{BUCKET}/batch/out/", "kmsKeyArn": KMS_KEY_ARN}
            },
            "roleArn": ROLE_ARN,
            "batchInferenceJobConfig": {"itemExplorationConfig": {"explorationWeight": "0.2"}},
        },
    )
    personalize.add_response(
        "describe_batch_inference_job",
        {"batchInferenceJob": {"status": "ACTIVE"}},
        {"batchInferenceJobArn": f"{ACCOUNT}:batch-inference-job/nightly"},
    )

    # When the job is created
    with django_capture_on_commit_callbacks(execute=True):
        job = batch_job_create(
            kind=BatchJobKind.INFERENCE,
            name="nightly",
            solution_version=version,
            input_path=f"s3://{BUCKET}/batch/in/users.json",
            output_path=f"s3://{BUCKET}/batch/out/",
            num_results=10,
            job_config={"itemExplorationConfig": {"explorationWeight": 0.2}},
        )

    # Then it ran on Personalize and is ACTIVE with its ARN
    job.refresh_from_db()
    assert job.backend == CampaignBackend.PERSONALIZE
    assert job.status == PersonalizeStatus.ACTIVE
    assert job.personalize_arn == f"{ACCOUNT}:batch-inference-job/nightly"


def test_failed_batch_segment_job_records_the_reason(
    default_group: DatasetGroup, personalize: Stubber
) -> None:
    # Given a segment job already created on Personalize that fails
    version = active_version(default_group)
    job = BatchJob.objects.create(
        kind=BatchJobKind.SEGMENT,
        backend=CampaignBackend.PERSONALIZE,
        name="segments",
        solution_version=version,
        input_path=f"s3://{BUCKET}/in/items.json",
        output_path=f"s3://{BUCKET}/out/",
    )
    personalize.add_response(
        "create_batch_segment_job",
        {"batchSegmentJobArn": f"{ACCOUNT}:batch-segment-job/segments"},
        {
            "jobName": "segments",
            "solutionVersionArn": VERSION_ARN,
            "numResults": 25,
            "jobInput": {"s3DataSource": {"path": f"s3://{BUCKET}/in/items.json"}},
            "jobOutput": {"s3DataDestination": {"path": f"s3://{BUCKET}/out/"}},
            "roleArn": ROLE_ARN,
        },
    )
    personalize.add_response(
        "describe_batch_segment_job",
        {
            "batchSegmentJob": {
                "status": "CREATE FAILED",
                "failureReason": "Input file has more than 500 lines",
            }
        },
        {"batchSegmentJobArn": f"{ACCOUNT}:batch-segment-job/segments"},
    )

    # When the task runs, then the job is CREATE FAILED with the reason
    assert batch_job_task.delay(job.pk).get() == PersonalizeStatus.FAILED
    job.refresh_from_db()
    assert job.failure_reason == "Input file has more than 500 lines"


def test_missing_role_setting_fails_the_job_naming_the_setting(
    default_group: DatasetGroup, personalize: Stubber, settings: Any
) -> None:
    # Given no PERSONALIZE_ROLE_ARN
    settings.PERSONALIZE_ROLE_ARN = ""
    version = active_version(default_group)
    job = BatchJob.objects.create(
        backend=CampaignBackend.PERSONALIZE,
        name="no-role",
        solution_version=version,
        input_path=f"s3://{BUCKET}/in/u.json",
        output_path=f"s3://{BUCKET}/out/",
    )

    # When the task runs, then it fails before any AWS call, naming the setting
    assert batch_job_task.delay(job.pk).get() == PersonalizeStatus.FAILED
    job.refresh_from_db()
    assert "PERSONALIZE_ROLE_ARN" in job.failure_reason


def test_import_refuses_a_group_that_is_not_provisioned(default_group: DatasetGroup) -> None:
    # Given a group never provisioned on Personalize
    from recommendations.personalize_jobs import PersonalizeJobError

    # When an import is asked for, then the error says what to run
    with pytest.raises(PersonalizeJobError, match="personalize_provision"):
        personalize_import_start(dataset_group=default_group)


# --- weekly retraining and the beat entries ----------------------------------------------------------


def week_old_version(solution: Solution) -> SolutionVersion:
    """An ACTIVE version trained on Personalize eight days ago (so the solution is due)."""
    version = SolutionVersion.objects.create(
        solution=solution, personalize_arn=VERSION_ARN, status=SolutionVersionStatus.ACTIVE
    )
    SolutionVersion.objects.filter(pk=version.pk).update(created_at=datetime.now(UTC) - timedelta(days=8))
    return version


def test_auto_retrain_leaves_a_personalize_solution_to_its_automatic_training_and_records_its_versions(
    default_group: DatasetGroup, personalize: Stubber, django_capture_on_commit_callbacks: Any
) -> None:
    # Given a solution on Personalize with automatic training, its version a week old, a campaign
    # following it, and Personalize having started an automatic version since
    from recommendations.tasks import auto_retrain_task

    provisioned(default_group)
    solution = personalize_solution(default_group, personalize_arn=SOLUTION_ARN, perform_auto_training=True)
    old = week_old_version(solution)
    campaign = Campaign.objects.create(
        dataset_group=default_group,
        name="shop-home",
        solution_version=old,
        follows_latest=True,
        backend=CampaignBackend.PERSONALIZE,
        personalize_arn=CAMPAIGN_ARN,
    )
    auto_arn = f"{SOLUTION_ARN}/auto1"
    personalize.add_response(
        "describe_solution",
        {"solution": {"solutionArn": SOLUTION_ARN, "status": "ACTIVE", "performAutoTraining": True}},
        {"solutionArn": SOLUTION_ARN},
    )
    personalize.add_response(
        "list_solution_versions",
        {
            "solutionVersions": [
                {
                    "solutionVersionArn": auto_arn,
                    "status": "CREATE IN_PROGRESS",
                    "trainingMode": "AUTOTRAIN",
                    "trainingType": "AUTOMATIC",
                    "creationDateTime": datetime.now(UTC) - timedelta(hours=2),
                },
                {"solutionVersionArn": VERSION_ARN, "status": "ACTIVE", "trainingType": "MANUAL"},
            ]
        },
        {"solutionArn": SOLUTION_ARN},
    )
    personalize.add_response(
        "describe_solution_version",
        {"solutionVersion": {"status": "ACTIVE", "trainingHours": 1.0}},
        {"solutionVersionArn": auto_arn},
    )
    personalize.add_response(
        "get_solution_metrics",
        {"solutionVersionArn": auto_arn, "metrics": {"coverage": 0.31}},
        {"solutionVersionArn": auto_arn},
    )

    # When beat's weekly retraining runs
    with django_capture_on_commit_callbacks(execute=True):
        created = auto_retrain_task.delay().get()

    # Then no version was trained (no CreateSolutionVersion, nothing local): Personalize's own
    # version is recorded as AUTOMATIC, polled to ACTIVE with its metrics, and the campaign follows it
    [version] = SolutionVersion.objects.filter(pk__in=created)
    assert version.personalize_arn == auto_arn
    assert version.training_type == TrainingType.AUTOMATIC
    assert version.status == SolutionVersionStatus.ACTIVE
    assert version.metrics == {"coverage": 0.31}
    assert version.artifact == ""
    campaign.refresh_from_db()
    assert campaign.solution_version_id == version.pk
    # And a second run finds nothing new to record
    personalize.add_response(
        "describe_solution",
        {"solution": {"status": "ACTIVE", "performAutoTraining": True}},
        {"solutionArn": SOLUTION_ARN},
    )
    personalize.add_response(
        "list_solution_versions",
        {"solutionVersions": [{"solutionVersionArn": auto_arn}, {"solutionVersionArn": VERSION_ARN}]},
        {"solutionArn": SOLUTION_ARN},
    )
    SolutionVersion.objects.filter(pk=version.pk).update(created_at=datetime.now(UTC) - timedelta(days=8))
    assert auto_retrain_task.delay().get() == []


def test_auto_retrain_trains_a_personalize_solution_without_automatic_training_there(
    default_group: DatasetGroup, personalize: Stubber, django_capture_on_commit_callbacks: Any
) -> None:
    # Given a solution on Personalize whose automatic training is off there, due for retraining
    from recommendations.tasks import auto_retrain_task

    provisioned(default_group)
    solution = personalize_solution(default_group, personalize_arn=SOLUTION_ARN, perform_auto_training=True)
    week_old_version(solution)
    new_arn = f"{SOLUTION_ARN}/def456"
    personalize.add_response(
        "describe_solution",
        {"solution": {"status": "ACTIVE", "performAutoTraining": False}},
        {"solutionArn": SOLUTION_ARN},
    )
    expect_training(personalize, metrics={"coverage": 0.2}, version_arn=new_arn)

    # When beat's weekly retraining runs
    with django_capture_on_commit_callbacks(execute=True):
        created = auto_retrain_task.delay().get()

    # Then the new AUTOMATIC version was trained on Personalize (CreateSolutionVersion), not locally
    [version] = SolutionVersion.objects.filter(pk__in=created)
    assert (version.personalize_arn, version.training_type) == (new_arn, TrainingType.AUTOMATIC)
    assert version.status == SolutionVersionStatus.ACTIVE
    assert version.artifact == ""


def test_auto_retrain_records_an_aws_error_and_goes_on_with_the_other_solutions(
    default_group: DatasetGroup, personalize: Stubber, django_capture_on_commit_callbacks: Any
) -> None:
    # Given a Personalize solution that Personalize no longer knows
    from recommendations.tasks import auto_retrain_task

    provisioned(default_group)
    solution = personalize_solution(default_group, personalize_arn=SOLUTION_ARN, perform_auto_training=True)
    week_old_version(solution)
    personalize.add_client_error(
        "describe_solution", service_error_code="ResourceNotFoundException", service_message="gone"
    )

    # When beat's weekly retraining runs, then it creates nothing and does not fail
    with django_capture_on_commit_callbacks(execute=True):
        assert auto_retrain_task.delay().get() == []
    assert solution.versions.count() == 1


def test_beat_entries_call_no_aws_when_nothing_is_on_personalize(
    demo: DatasetGroup, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # Given a machine without AWS settings (a bare `make run`): a local solution due for
    # retraining, a local event tracker and events, and no group provisioned on Personalize
    from recommendations import services, tracking
    from recommendations.tasks import auto_retrain_task, outbox_sweep_task

    settings.AWS_REGION = ""
    settings.PERSONALIZE_ROLE_ARN = ""
    settings.PERSONALIZE_S3_BUCKET = ""
    aws.clear_client_cache()
    solution = services.solution_create(dataset_group=demo, name="pop", recipe="aws-popularity-count")
    tracking.event_tracker_create(dataset_group=demo, name="web")

    # When every beat entry runs
    with django_capture_on_commit_callbacks(execute=True):
        retrained = auto_retrain_task.delay().get()
        swept = outbox_sweep_task.delay().get()
        imported = personalize_incremental_import_task.delay().get()

    # Then the local solution was trained locally, nothing else had work, and no AWS client was
    # even built (building one needs AWS_REGION)
    [version] = SolutionVersion.objects.filter(pk__in=retrained)
    assert version.solution == solution
    assert version.status == SolutionVersionStatus.ACTIVE and version.artifact
    assert swept == imported == []
    assert aws._cached_client.cache_info().currsize == 0


# --- creating campaigns and filters on the personalize backend ----------------------------------------


def test_a_campaign_created_on_the_personalize_backend_is_pending_until_personalize_has_it_active(
    default_group: DatasetGroup,
    personalize: Stubber,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Given RECSITE_BACKEND=personalize and a version trained on Personalize
    from recommendations import services

    settings.RECSITE_BACKEND = "personalize"
    version = active_version(default_group)
    personalize.add_response(
        "create_campaign",
        {"campaignArn": CAMPAIGN_ARN},
        {"name": "shop-home", "solutionVersionArn": VERSION_ARN, "minProvisionedTPS": 1},
    )
    personalize.add_response(
        "describe_campaign", {"campaign": {"status": "CREATE IN_PROGRESS"}}, {"campaignArn": CAMPAIGN_ARN}
    )
    personalize.add_response(
        "describe_campaign",
        {"campaign": {"status": "ACTIVE", "solutionVersionArn": VERSION_ARN, "minProvisionedTPS": 1}},
        {"campaignArn": CAMPAIGN_ARN},
    )

    # When a campaign is created the way createCampaign does, without naming a backend
    with django_capture_on_commit_callbacks(execute=True):
        campaign = services.campaign_create(name="shop-home", solution_version=version)
        # Then, before Personalize answers, it is CREATE PENDING without an ARN
        assert (campaign.backend, campaign.status, campaign.personalize_arn) == (
            "personalize",
            CampaignStatus.PENDING,
            "",
        )

    # And its task ran CreateCampaign and polled it to ACTIVE
    campaign.refresh_from_db()
    assert (campaign.status, campaign.personalize_arn) == (CampaignStatus.ACTIVE, CAMPAIGN_ARN)


def test_a_personalize_campaign_needs_a_version_trained_on_personalize(
    default_group: DatasetGroup, personalize: Stubber
) -> None:
    # Given a version trained by the local engine (no Personalize ARN)
    from recommendations import services
    from recommendations.errors import SolutionConfigError

    solution = personalize_solution(default_group)
    version = SolutionVersion.objects.create(solution=solution, status=SolutionVersionStatus.ACTIVE)

    # When a Personalize campaign is asked for, then it is refused saying why, and nothing is written
    with pytest.raises(SolutionConfigError, match="trained by the local engine"):
        services.campaign_create(name="shop-home", solution_version=version, backend="personalize")
    assert not Campaign.objects.exists()


def test_a_following_personalize_campaign_is_created_with_sync_to_the_latest_version(
    default_group: DatasetGroup, personalize: Stubber, django_capture_on_commit_callbacks: Any
) -> None:
    # Given a version on Personalize
    from recommendations import services

    version = active_version(default_group)
    sync = {"syncWithLatestSolutionVersion": True}
    personalize.add_response(
        "create_campaign",
        {"campaignArn": CAMPAIGN_ARN},
        {
            "name": "shop-home",
            "solutionVersionArn": f"{SOLUTION_ARN}/$LATEST",
            "minProvisionedTPS": 1,
            "campaignConfig": sync,
        },
    )
    personalize.add_response(
        "describe_campaign",
        {
            "campaign": {
                "status": "ACTIVE",
                "solutionVersionArn": f"{SOLUTION_ARN}/newest",
                "minProvisionedTPS": 1,
                "campaignConfig": sync,
            }
        },
        {"campaignArn": CAMPAIGN_ARN},
    )

    # When a campaign following the latest version is created on Personalize
    with django_capture_on_commit_callbacks(execute=True):
        campaign = services.campaign_create(
            name="shop-home", solution_version=version, follows_latest=True, backend="personalize"
        )

    # Then CreateCampaign got Personalize's form (SolutionArn/$LATEST + syncWithLatestSolutionVersion)
    # and no UpdateCampaign was started because Personalize serves a newer version
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE
    assert campaign.follows_latest and campaign.campaign_config == sync


def test_updating_a_personalize_campaign_goes_through_update_campaign(
    default_group: DatasetGroup, personalize: Stubber, django_capture_on_commit_callbacks: Any
) -> None:
    # Given an ACTIVE Personalize campaign on version 1 and an ACTIVE version 2
    from recommendations import services

    old = active_version(default_group)
    new = active_version(default_group, arn=f"{SOLUTION_ARN}/def456")
    campaign = Campaign.objects.create(
        dataset_group=default_group,
        name="shop-home",
        solution_version=old,
        backend=CampaignBackend.PERSONALIZE,
        personalize_arn=CAMPAIGN_ARN,
    )
    deployed = {"status": "ACTIVE", "solutionVersionArn": VERSION_ARN, "minProvisionedTPS": 1}
    personalize.add_response("describe_campaign", {"campaign": deployed}, {"campaignArn": CAMPAIGN_ARN})
    personalize.add_response(
        "update_campaign",
        {"campaignArn": CAMPAIGN_ARN},
        {"campaignArn": CAMPAIGN_ARN, "solutionVersionArn": new.personalize_arn},
    )
    personalize.add_response(
        "describe_campaign",
        {"campaign": {**deployed, "solutionVersionArn": new.personalize_arn}},
        {"campaignArn": CAMPAIGN_ARN},
    )

    # When the campaign is updated the way updateCampaign and `train --deploy` do
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_update(campaign=campaign, solution_version=new)
        # Then the row still serves version 1 until Personalize is done
        assert Campaign.objects.get(pk=campaign.pk).solution_version_id == old.pk

    campaign.refresh_from_db()
    assert campaign.solution_version_id == new.pk


@pytest.mark.parametrize(
    ("final", "reason", "expected"),
    [
        ("ACTIVE", None, "ACTIVE"),
        ("CREATE FAILED", "Filter expression names a field that is not in the schema", "CREATE FAILED"),
    ],
)
def test_a_filter_created_on_personalize_is_pending_until_personalize_reports_its_status(
    default_group: DatasetGroup,
    personalize: Stubber,
    django_capture_on_commit_callbacks: Any,
    final: str,
    reason: str | None,
    expected: str,
) -> None:
    # Given a provisioned group, CreateFilter accepting the filter, and Personalize creating it
    from recommendations.filtering import filter_create
    from recommendations.models import Filter

    provisioned(default_group)
    expression = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
    filter_arn = f"{ACCOUNT}:filter/no-repeats"
    personalize.add_response(
        "create_filter",
        {"filterArn": filter_arn},
        {"name": "no-repeats", "datasetGroupArn": GROUP_ARN, "filterExpression": expression},
    )
    personalize.add_response(
        "describe_filter", {"filter": {"status": "CREATE IN_PROGRESS"}}, {"filterArn": filter_arn}
    )
    described: dict[str, Any] = {"status": final}
    if reason:
        described["failureReason"] = reason
    personalize.add_response("describe_filter", {"filter": described}, {"filterArn": filter_arn})

    # When the filter is created on Personalize
    with django_capture_on_commit_callbacks(execute=True):
        created = filter_create(
            dataset_group=default_group, name="no-repeats", expression=expression, backend="personalize"
        )
        # Then it is CREATE PENDING with its ARN until Personalize reports on it
        assert (created.status, created.personalize_arn) == ("CREATE PENDING", filter_arn)

    # And its task polled DescribeFilter to Personalize's final status, with the reason on failure
    row = Filter.objects.get(name="no-repeats")
    assert row.status == expected
    assert row.failure_reason == (reason or "")


def test_train_with_the_personalize_backend_trains_and_deploys_on_personalize(
    default_group: DatasetGroup, personalize: Stubber, settings: Any
) -> None:
    # Given a provisioned group and RECSITE_BACKEND=personalize (no broker: tasks in-process)
    import io

    from django.core.management import call_command

    settings.RECSITE_BACKEND = "personalize"
    provisioned(default_group)
    personalize.add_response(
        "create_solution",
        {"solutionArn": SOLUTION_ARN},
        {
            "name": "aws-user-personalization",
            "datasetGroupArn": GROUP_ARN,
            "recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization",
            "performHPO": False,
            "performAutoTraining": True,
            "solutionConfig": {"autoTrainingConfig": {"schedulingExpression": "rate(7 days)"}},
        },
    )
    expect_training(personalize, metrics={"normalized_discounted_cumulative_gain_at_10": 0.21})
    sync = {"syncWithLatestSolutionVersion": True}
    personalize.add_response(
        "create_campaign",
        {"campaignArn": CAMPAIGN_ARN},
        {
            "name": "aws-user-personalization",
            "solutionVersionArn": f"{SOLUTION_ARN}/$LATEST",
            "minProvisionedTPS": 1,
            "campaignConfig": sync,
        },
    )
    personalize.add_response(
        "describe_campaign",
        {"campaign": {"status": "ACTIVE", "solutionVersionArn": VERSION_ARN, "campaignConfig": sync}},
        {"campaignArn": CAMPAIGN_ARN},
    )

    # When `train --deploy` runs
    out = io.StringIO()
    call_command("train", "--recipe", "aws-user-personalization", "--deploy", stdout=out)

    # Then the version was trained on Personalize (its metrics printed) and the campaign deployed there
    version = SolutionVersion.objects.get()
    assert (version.personalize_arn, version.status, version.artifact) == (VERSION_ARN, "ACTIVE", "")
    campaign = Campaign.objects.get()
    assert (campaign.backend, campaign.status, campaign.personalize_arn) == (
        "personalize",
        CampaignStatus.ACTIVE,
        CAMPAIGN_ARN,
    )
    assert campaign.solution_version_id == version.pk
    assert "normalized_discounted_cumulative_gain_at_10" in out.getvalue()
    assert "serves version" in out.getvalue()
