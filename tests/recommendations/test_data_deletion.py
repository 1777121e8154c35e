"""Deleting a user's data: what goes, what stays, its effect on serving at once, the audit record,
the GraphQL mutation (manage), the command, and Personalize's CreateDataDeletionJob (botocore Stubber)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.test import Client

from catalog.models import DatasetGroup, EndUser, Interaction
from recommendations import services, serving
from recommendations.backends import aws
from recommendations.data_deletion import AUDIT_LOGGER, user_data_delete
from recommendations.models import (
    Campaign,
    DataDeletionStatus,
    PersonalizeDatasetGroup,
    PersonalizeStatus,
    RecommendationRecord,
    Solution,
    UserDataDeletion,
)
from recommendations.personalize_tasks import personalize_data_deletion_task
from tests.auth import issue_key, scoped_client
from tests.factories import EndUserFactory, InteractionFactory, ItemFactory

pytestmark = pytest.mark.django_db

GROUP_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset-group/shop"
JOB_ARN = "arn:aws:personalize:us-east-1:123456789012:data-deletion-job/shop-delete"
ROLE_ARN = "arn:aws:iam::123456789012:role/PersonalizeRole"
BUCKET = "recsite-data"
DELETE = (
    "mutation($u: String!) { deleteUserData(userId: $u) { userId datasetGroup requestedBy profileDeleted "
    "interactionsDeleted recommendationRecordsDeleted personalizeStatus } }"
)


def at(second: int) -> datetime:
    return datetime.fromtimestamp(1_790_000_000 + second, UTC)


@pytest.fixture
def shop(default_group: DatasetGroup) -> dict[str, Any]:
    """u1 with 3 events (2 in session s1), an anonymous event of s1 before sign-in, anonymous events
    under session "u1", and u2 and an anonymous session s9 that must stay."""
    items = [ItemFactory(dataset_group=default_group, item_id=f"i{n}") for n in range(6)]
    u1 = EndUserFactory(dataset_group=default_group, user_id="u1")
    u2 = EndUserFactory(dataset_group=default_group, user_id="u2")

    def event(user: EndUser | None, session: str, item: int, second: int) -> Interaction:
        return InteractionFactory(
            dataset_group=default_group, user=user, session_id=session, item=items[item], timestamp=at(second)
        )

    event(u1, "s1", 0, 1), event(u1, "s1", 1, 2), event(u1, "", 2, 3)
    event(None, "s1", 3, 0)  # u1 before signing in
    event(None, "u1", 4, 4)  # counted as u1's while u1 is unknown (sessionId == userId)
    kept = [event(u2, "s2", 0, 5).pk, event(None, "s9", 1, 6).pk, event(u2, "s1-other", 5, 7).pk]
    return {"group": default_group, "kept": kept}


def test_deletion_removes_the_profile_and_every_event_of_the_user_and_keeps_the_rest(
    shop: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # when u1's data is deleted
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        deletion = user_data_delete(
            dataset_group=shop["group"], user_id="u1", requested_by="staff user ana", requested_via="admin"
        )
    # then the profile and the five events that are u1's are gone; u2's and the other session's stay
    assert not EndUser.objects.filter(user_id="u1").exists()
    assert sorted(Interaction.objects.values_list("pk", flat=True)) == sorted(shop["kept"])
    assert (deletion.profile_deleted, deletion.interactions_deleted) == (True, 5)
    # and the audit record says who, how and what, as does the audit log
    row = UserDataDeletion.objects.get()
    assert (row.user_id, row.requested_by, row.requested_via, row.dataset_group_name) == (
        "u1",
        "staff user ana",
        "admin",
        "default",
    )
    assert row.personalize_status == DataDeletionStatus.NOT_NEEDED and row.is_finished
    (line,) = [r.getMessage() for r in caplog.records if r.name == AUDIT_LOGGER]
    assert "user='u1'" in line and "by='staff user ana'" in line and "interactions=5" in line
    # and asking again finds nothing, and is recorded too
    again = user_data_delete(
        dataset_group=shop["group"], user_id="u1", requested_by="x", requested_via="command"
    )
    assert (again.profile_deleted, again.interactions_deleted) == (False, 0)
    assert UserDataDeletion.objects.count() == 2


def test_only_the_named_group_is_touched(shop: dict[str, Any]) -> None:
    other = DatasetGroup.objects.create(name="other")
    twin = EndUserFactory(dataset_group=other, user_id="u1")
    InteractionFactory(dataset_group=other, user=twin, item=ItemFactory(dataset_group=other), timestamp=at(1))
    user_data_delete(dataset_group=shop["group"], user_id="u1", requested_by="t", requested_via="command")
    assert EndUser.objects.filter(dataset_group=other, user_id="u1").exists()
    assert Interaction.objects.filter(dataset_group=other).count() == 1


def deployed(group: DatasetGroup, recipe: str, capture: Any) -> Campaign:
    solution = Solution.objects.filter(name=recipe).first() or services.solution_create(
        dataset_group=group, name=recipe, recipe=recipe
    )
    with capture(execute=True):
        version = services.solution_version_create(solution=solution)
    version.refresh_from_db()
    assert version.status == "ACTIVE", version.failure_reason
    return services.campaign_create(name=recipe, solution_version=version)


def item_ids(served: serving.ServedList) -> list[str]:
    return [item.item_id for item in served.items]


def test_the_users_influence_on_their_recommendations_and_segments_ends_at_once(
    demo: DatasetGroup, django_capture_on_commit_callbacks: Any
) -> None:
    # given trained personalization and item-affinity campaigns and an active user
    personal = deployed(demo, "aws-user-personalization", django_capture_on_commit_callbacks)
    affinity = deployed(demo, "aws-item-affinity", django_capture_on_commit_callbacks)
    user = EndUser.objects.filter(dataset_group=demo).annotate(n=Count("interactions")).order_by("-n").first()
    user_id = user.user_id
    favourite = user.interactions.values_list("item__item_id", flat=True)[0]

    def recommended(who: str) -> list[str]:
        return item_ids(serving.recommendation_list(campaign_name=personal.name, user_id=who, num_results=10))

    def segment(size: int) -> list[str]:
        found = serving.user_segment(item_id=favourite, num_results=size, campaign_name=affinity.name)
        return found.user_ids

    stranger = recommended("never-seen-user")
    assert recommended(user_id) != stranger  # their history shapes their list
    size = segment(500).index(user_id) + 1  # a segment the user is the last member of
    assert segment(size)[-1] == user_id
    assert RecommendationRecord.objects.filter(user_id=user_id).exists()
    # when their data is deleted (no retraining)
    deletion = user_data_delete(
        dataset_group=demo, user_id=user_id, requested_by="t", requested_via="command"
    )
    assert deletion.recommendation_records_deleted >= 1
    assert not RecommendationRecord.objects.filter(user_id=user_id).exists()
    # then the records of what they were shown are gone, their next request is served as a
    # stranger's, and they leave the segments the model still holds them in (the segment still full)
    assert recommended(user_id) == stranger
    after = segment(size)
    assert user_id not in after and len(after) == size


# --- GraphQL ---------------------------------------------------------------------------------------


def call(client: Client, user_id: str) -> dict[str, Any]:
    body = json.dumps({"query": DELETE, "variables": {"u": user_id}})
    return client.post("/graphql/", body, content_type="application/json").json()


def test_delete_user_data_needs_manage_and_records_the_api_key(shop: dict[str, Any]) -> None:
    # given callers without credentials, and with a key that may only read recommendations and track
    anonymous = call(Client(), "u1")
    limited = call(scoped_client("recommend", "track"), "u1")
    # then they are refused and nothing is deleted
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert limited["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert EndUser.objects.filter(user_id="u1").exists() and not UserDataDeletion.objects.exists()
    # when a manage key asks
    key = issue_key("manage", name="privacy-desk")
    answer = call(Client(HTTP_AUTHORIZATION=f"Bearer {key.token}"), "u1")
    # then the data is gone and the answer (and audit record) names the key
    assert answer == {
        "data": {
            "deleteUserData": {
                "userId": "u1",
                "datasetGroup": "default",
                "requestedBy": f"api key {key.api_key.key_id} (privacy-desk)",
                "profileDeleted": True,
                "interactionsDeleted": 5,
                "recommendationRecordsDeleted": 0,
                "personalizeStatus": None,
            }
        }
    }
    assert UserDataDeletion.objects.get().requested_via == "graphql"


def test_a_staff_session_is_recorded_by_username(shop: dict[str, Any], admin_client: Client) -> None:
    admin_client.get("/admin/")  # the CSRF cookie
    token = admin_client.cookies["csrftoken"].value
    body = json.dumps({"query": DELETE, "variables": {"u": "u1"}})
    answer = admin_client.post(
        "/graphql/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token
    ).json()
    assert answer["data"]["deleteUserData"]["requestedBy"] == "staff user admin", answer


def test_the_admin_lists_the_audit_log_and_never_edits_or_deletes_it(
    shop: dict[str, Any], admin_client: Client
) -> None:
    row = user_data_delete(
        dataset_group=shop["group"], user_id="u1", requested_by="t", requested_via="command"
    )
    listing = admin_client.get("/admin/recommendations/userdatadeletion/")
    assert listing.status_code == 200 and b"u1" in listing.content
    assert admin_client.get("/admin/recommendations/userdatadeletion/add/").status_code == 403
    delete_page = f"/admin/recommendations/userdatadeletion/{row.pk}/delete/"
    assert admin_client.post(delete_page, {"post": "yes"}).status_code == 403
    assert UserDataDeletion.objects.filter(pk=row.pk).exists()


# --- the command -----------------------------------------------------------------------------------


def test_the_command_deletes_and_says_what_it_removed(shop: dict[str, Any]) -> None:
    out = io.StringIO()
    call_command("delete_user_data", "--user-id", "u1", stdout=out)
    assert "Deleted user 'u1' of 'default': profile deleted, 5 interactions" in out.getvalue()
    row = UserDataDeletion.objects.get()
    assert row.requested_via == "command" and row.requested_by.startswith("command line (")
    with pytest.raises(CommandError, match="nowhere"):
        call_command("delete_user_data", "--user-id", "u1", "--dataset-group", "nowhere", stdout=out)


# --- Amazon Personalize ----------------------------------------------------------------------------


@pytest.fixture
def on_personalize(
    shop: dict[str, Any], settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[DatasetGroup]:
    """The default group provisioned on Personalize; fake credentials, fresh clients, polls at once."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIDTESTTESTTESTTEST",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings.AWS_REGION = "us-east-1"
    settings.PERSONALIZE_ROLE_ARN = ROLE_ARN
    settings.PERSONALIZE_S3_BUCKET = BUCKET
    settings.PERSONALIZE_S3_PREFIX = "recsite"
    settings.PERSONALIZE_KMS_KEY_ARN = ""
    settings.PERSONALIZE_EAGER_POLLS = 1
    for setting in aws.ENDPOINT_SETTINGS.values():
        setattr(settings, setting, "")
    aws.clear_client_cache()
    PersonalizeDatasetGroup.objects.create(
        dataset_group=shop["group"], name="shop", dataset_group_arn=GROUP_ARN, status=PersonalizeStatus.ACTIVE
    )
    yield shop["group"]
    aws.clear_client_cache()


@pytest.fixture
def stubbed() -> Iterator[tuple[Stubber, Stubber, list[dict[str, Any]]]]:
    """Stubbers on aws.py's personalize and s3 clients, and each PutObject's parameters (body as text)."""
    uploads: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **kwargs: Any) -> None:
        uploads.append({**params, "Body": params["Body"].decode("utf-8")})

    s3 = aws.s3_client()
    s3.meta.events.register("before-parameter-build.s3.PutObject", capture)
    with Stubber(aws.personalize_client()) as personalize, Stubber(s3) as s3_stub:
        yield personalize, s3_stub, uploads
        personalize.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()
    s3.meta.events.unregister("before-parameter-build.s3.PutObject", capture)


def expect_upload(s3: Stubber) -> None:
    s3.add_response(
        "put_object",
        {"ETag": '"1"'},
        {
            "Bucket": BUCKET,
            "Key": ANY,
            "Body": ANY,
            "ContentType": "text/csv",
            "ServerSideEncryption": "AES256",
        },
    )


def expect_describe(personalize: Stubber, status: str, **extra: Any) -> None:
    personalize.add_response(
        "describe_data_deletion_job",
        {"dataDeletionJob": {"dataDeletionJobArn": JOB_ARN, "status": status, **extra}},
        {"dataDeletionJobArn": JOB_ARN},
    )


def test_on_personalize_a_deletion_job_is_started_with_a_user_id_csv_and_followed_to_completion(
    on_personalize: DatasetGroup,
    stubbed: tuple[Stubber, Stubber, list[dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    personalize, s3, uploads = stubbed
    row_name_probe = "shop-delete-"
    # given Personalize accepts the job and reports it in progress at first
    expect_upload(s3)
    personalize.add_response(
        "create_data_deletion_job",
        {"dataDeletionJobArn": JOB_ARN},
        {
            "jobName": _ANY_NAME,
            "datasetGroupArn": GROUP_ARN,
            "dataSource": {"dataLocation": _ANY_NAME},
            "roleArn": ROLE_ARN,
        },
    )
    expect_describe(personalize, "IN_PROGRESS")
    # when the user's data is deleted (the task runs in-process once the transaction commits)
    with django_capture_on_commit_callbacks(execute=True):
        deletion = user_data_delete(
            dataset_group=on_personalize, user_id="u1", requested_by="t", requested_via="command"
        )
    # then the local data is gone at once, and Personalize got a one-column USER_ID CSV, encrypted
    assert not EndUser.objects.filter(user_id="u1").exists()
    (upload,) = uploads
    assert upload["Body"] == "USER_ID\nu1\n"
    row = UserDataDeletion.objects.get(pk=deletion.pk)
    assert row.personalize_job_name.startswith(row_name_probe)
    assert upload["Key"] == f"recsite/shop/deletions/{row.personalize_job_name}/users.csv"
    assert row.s3_path == f"s3://{BUCKET}/{upload['Key']}"
    assert (row.personalize_arn, row.personalize_status) == (JOB_ARN, DataDeletionStatus.IN_PROGRESS)
    # and when the task runs again (a poll), it only describes the job, which has completed
    expect_describe(personalize, "COMPLETED", numDeleted=5)
    personalize_data_deletion_task.delay(deletion.pk)
    row.refresh_from_db()
    assert row.personalize_status == DataDeletionStatus.COMPLETED and row.finished_at is not None
    # and a further delivery makes no call at all
    personalize_data_deletion_task.delay(deletion.pk)


class _AnyName:
    """Matches any value (the job name carries the row id and a random part)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __repr__(self) -> str:
        return "<any name>"


_ANY_NAME = _AnyName()


def test_a_job_created_by_a_run_that_died_is_found_by_name_and_a_failure_is_recorded(
    on_personalize: DatasetGroup, stubbed: tuple[Stubber, Stubber, list[dict[str, Any]]]
) -> None:
    personalize, _s3, _uploads = stubbed
    # given a deletion whose CSV was uploaded and whose job was created, but the ARN never recorded
    deletion = user_data_delete(
        dataset_group=on_personalize, user_id="u1", requested_by="t", requested_via="x"
    )
    UserDataDeletion.objects.filter(pk=deletion.pk).update(s3_path=f"s3://{BUCKET}/k.csv")
    personalize.add_client_error(
        "create_data_deletion_job", "ResourceAlreadyExistsException", "already exists", 400
    )
    personalize.add_response(
        "list_data_deletion_jobs",
        {"dataDeletionJobs": [{"jobName": deletion.personalize_job_name, "dataDeletionJobArn": JOB_ARN}]},
        {"datasetGroupArn": GROUP_ARN},
    )
    expect_describe(personalize, "FAILED", failureReason="Role cannot read the bucket")
    # when the task runs
    personalize_data_deletion_task.delay(deletion.pk)
    # then it adopts the existing job (no second upload) and records Personalize's reason
    deletion.refresh_from_db()
    assert deletion.personalize_arn == JOB_ARN
    assert deletion.personalize_status == DataDeletionStatus.FAILED
    assert deletion.failure_reason == "Role cannot read the bucket"


def test_the_command_reports_a_failed_personalize_job(
    on_personalize: DatasetGroup,
    stubbed: tuple[Stubber, Stubber, list[dict[str, Any]]],
    settings: Any,
) -> None:
    _personalize, s3, _uploads = stubbed
    settings.PERSONALIZE_ROLE_ARN = ""  # a configuration error: recorded, not retried
    expect_upload(s3)
    with pytest.raises(CommandError, match="PERSONALIZE_ROLE_ARN"):
        call_command("delete_user_data", "--user-id", "u1", "--wait", stdout=io.StringIO())
    row = UserDataDeletion.objects.get()
    assert row.personalize_status == DataDeletionStatus.FAILED
    assert not EndUser.objects.filter(user_id="u1").exists()  # the local deletion stands
