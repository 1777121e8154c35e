"""Local batch jobs: Personalize's JSON-lines input answered by a trained model, Personalize's output."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import Count

from catalog.models import DatasetGroup, EndUser, Item
from recommendations import services
from recommendations.batch import batch_job_create, filter_values_parse
from recommendations.filtering import filter_create
from recommendations.models import (
    BatchJobKind,
    CampaignBackend,
    PersonalizeStatus,
    Solution,
    SolutionVersion,
)
from recommendations.personalize_jobs import PersonalizeJobError
from recommendations.personalize_tasks import batch_job_task
from recommendations.selectors import campaign_rank, campaign_recommend, campaign_segment

pytestmark = pytest.mark.django_db


def trained(group: DatasetGroup, recipe: str, capture: Any) -> SolutionVersion:
    """An ACTIVE version of `recipe` trained on the demo shop."""
    solution = Solution.objects.filter(name=recipe).first() or services.solution_create(
        dataset_group=group, name=recipe, recipe=recipe
    )
    with capture(execute=True):
        version = services.solution_version_create(solution=solution)
    version.refresh_from_db()
    assert version.status == "ACTIVE", version.failure_reason
    return version


def input_file(name: str, lines: list[Any]) -> str:
    """Store a JSON-lines input file (strings are written as they are) and return its storage name."""
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    return default_storage.save(f"batch-input/{name}.json", ContentFile(text.encode()))


def output_lines(job: Any) -> list[dict[str, Any]]:
    job.refresh_from_db()
    with default_storage.open(job.output_path, "rb") as handle:
        return [json.loads(line) for line in handle.read().decode().splitlines()]


def test_local_batch_inference_writes_personalize_output_for_users_and_bad_lines(
    demo: DatasetGroup, django_capture_on_commit_callbacks: Any
) -> None:
    # Given a trained user-personalization campaign and an input with a user, a ranking and two bad lines
    # (this recipe does not rank: Personalize takes itemList only with personalized-ranking)
    version = trained(demo, "aws-user-personalization", django_capture_on_commit_callbacks)
    campaign = services.campaign_create(name="home", solution_version=version)
    user = EndUser.objects.filter(dataset_group=demo).annotate(n=Count("interactions")).order_by("-n").first()
    candidates = list(Item.objects.filter(dataset_group=demo).values_list("item_id", flat=True)[:5])
    path = input_file(
        "users",
        [
            {"userId": user.user_id},
            {"userId": user.user_id, "itemList": candidates},
            {"sessionId": "nobody"},
            "this is not json",
        ],
    )

    # When a local batch inference job for 10 results runs
    with django_capture_on_commit_callbacks(execute=True):
        job = batch_job_create(
            kind=BatchJobKind.INFERENCE,
            name="nightly",
            solution_version=version,
            input_path=path,
            num_results=10,
        )

    # Then each line has Personalize's output shape, and the lists are what the campaign serves
    lines = output_lines(job)
    assert job.backend == CampaignBackend.LOCAL
    assert job.status == PersonalizeStatus.ACTIVE
    assert (job.records, job.errors) == (4, 3)
    served = campaign_recommend(campaign=campaign, user_id=user.user_id, num_results=10)
    assert lines[0] == {
        "input": {"userId": user.user_id},
        "output": {
            "recommendedItems": [item.item_id for item in served.items],
            "scores": [round(item.score, 7) for item in served.items],
        },
        "error": None,
    }
    assert lines[1]["output"] is None and "does not rank" in lines[1]["error"]
    assert lines[2]["output"] is None and "userId" in lines[2]["error"]
    assert lines[3]["input"] == "this is not json" and lines[3]["error"].startswith("not a JSON object")

    # When the task is delivered again, then the finished job is left as it is
    assert batch_job_task.delay(job.pk).get() == PersonalizeStatus.ACTIVE


def test_local_batch_ranking_reorders_the_item_list(
    demo: DatasetGroup, django_capture_on_commit_callbacks: Any
) -> None:
    # Given a trained personalized-ranking version and a ranking line
    version = trained(demo, "aws-personalized-ranking", django_capture_on_commit_callbacks)
    campaign = services.campaign_create(name="ranking", solution_version=version)
    user = EndUser.objects.filter(dataset_group=demo).first()
    candidates = list(Item.objects.filter(dataset_group=demo).values_list("item_id", flat=True)[:6])
    path = input_file("ranking", [{"userId": user.user_id, "itemList": candidates}])

    # When the batch job runs
    with django_capture_on_commit_callbacks(execute=True):
        job = batch_job_create(
            kind=BatchJobKind.INFERENCE, name="rank", solution_version=version, input_path=path
        )

    # Then the output keeps the input and lists the same items in the campaign's order, with scores
    [line] = output_lines(job)
    ranked = campaign_rank(campaign=campaign, user_id=user.user_id, item_ids=candidates)
    assert line["input"] == {"userId": user.user_id, "itemList": candidates}
    assert line["output"]["recommendedItems"] == [item.item_id for item in ranked.items]
    assert sorted(line["output"]["recommendedItems"]) == sorted(candidates)
    assert len(line["output"]["scores"]) == 6
    assert line["error"] is None


def test_local_batch_inference_applies_the_filter_with_personalize_filter_values(
    demo: DatasetGroup, django_capture_on_commit_callbacks: Any
) -> None:
    # Given a trained campaign and a filter keeping one category, by a placeholder
    version = trained(demo, "aws-user-personalization", django_capture_on_commit_callbacks)
    category = Item.objects.filter(dataset_group=demo).values_list("metadata__CATEGORY_L2", flat=True).first()
    shown = filter_create(
        dataset_group=demo,
        name="only-category",
        expression="INCLUDE ItemID WHERE Items.CATEGORY_L2 IN ($CAT)",
    )
    user = EndUser.objects.filter(dataset_group=demo).first()
    path = input_file("filtered", [{"userId": user.user_id, "filterValues": {"CAT": json.dumps(category)}}])

    # When the job runs with the filter
    with django_capture_on_commit_callbacks(execute=True):
        job = batch_job_create(
            kind=BatchJobKind.INFERENCE,
            name="filtered",
            solution_version=version,
            input_path=path,
            filter=shown,
            num_results=5,
        )

    # Then every recommended item is of that category
    [line] = output_lines(job)
    items = line["output"]["recommendedItems"]
    assert len(items) == 5
    categories = set(
        Item.objects.filter(dataset_group=demo, item_id__in=items).values_list(
            "metadata__CATEGORY_L2", flat=True
        )
    )
    assert categories == {category}


def test_local_batch_segment_writes_recommended_users(
    demo: DatasetGroup, django_capture_on_commit_callbacks: Any
) -> None:
    # Given a trained item-affinity version and an input naming a known item and an unknown one
    version = trained(demo, "aws-item-affinity", django_capture_on_commit_callbacks)
    campaign = services.campaign_create(name="affinity", solution_version=version)
    item = Item.objects.filter(dataset_group=demo).annotate(n=Count("interactions")).order_by("-n").first()
    path = input_file("items", [{"itemId": item.item_id}, {"itemId": "never-seen"}])

    # When a local batch segment job for 7 users runs
    with django_capture_on_commit_callbacks(execute=True):
        job = batch_job_create(
            kind=BatchJobKind.SEGMENT,
            name="segments",
            solution_version=version,
            input_path=path,
            num_results=7,
        )

    # Then the segment is the campaign's, and an unknown item gets no users
    first, second = output_lines(job)
    expected = campaign_segment(campaign=campaign, item_ids=[item.item_id], num_results=7).user_ids
    assert first == {
        "input": {"itemId": item.item_id},
        "output": {"recommendedUsers": expected},
        "error": None,
    }
    assert len(expected) == 7
    assert second["output"] == {"recommendedUsers": []}


def test_batch_job_refuses_bad_arguments(demo: DatasetGroup, django_capture_on_commit_callbacks: Any) -> None:
    # Given a trained version
    version = trained(demo, "aws-popularity-count", django_capture_on_commit_callbacks)

    # When asked for more than 500 results, a missing input, an unknown config key or S3 paths on Personalize
    with pytest.raises(PersonalizeJobError, match="numResults"):
        batch_job_create(
            kind="inference", name="a", solution_version=version, input_path="x", num_results=501
        )
    with pytest.raises(PersonalizeJobError, match="does not exist"):
        batch_job_create(
            kind="inference", name="b", solution_version=version, input_path="batch-input/none.json"
        )
    with pytest.raises(PersonalizeJobError, match="unknown key"):
        batch_job_create(
            kind="inference", name="c", solution_version=version, input_path="x", job_config={"bogus": 1}
        )
    with pytest.raises(PersonalizeJobError, match="s3://"):
        batch_job_create(
            kind="inference",
            name="d",
            solution_version=version,
            input_path="local.json",
            output_path="out/",
            backend=CampaignBackend.PERSONALIZE,
        )


def test_filter_values_are_read_in_personalize_quoting() -> None:
    # Given Personalize's batch filterValues, then each becomes a list of plain values
    assert filter_values_parse({"GENRE": '"horror","comedy"', "N": "5"}) == {
        "GENRE": ["horror", "comedy"],
        "N": ["5"],
    }
    assert filter_values_parse(None) == {}


def test_batch_inference_command_writes_the_output_file(
    demo: DatasetGroup, django_capture_on_commit_callbacks: Any, tmp_path: Any
) -> None:
    # Given a trained popularity solution and an input file on disk
    from django.core.management import CommandError, call_command

    trained(demo, "aws-popularity-count", django_capture_on_commit_callbacks)
    source = tmp_path / "users.json"
    source.write_text('{"userId": "someone"}\n')
    target = tmp_path / "out.json"
    out = io.StringIO()

    # When the command runs
    call_command(
        "batch_inference",
        "--solution",
        "aws-popularity-count",
        "--input",
        str(source),
        "--output",
        str(target),
        "--num-results",
        "3",
        stdout=out,
    )

    # Then the output file holds Personalize's output line and the command says so
    [line] = [json.loads(text) for text in target.read_text().splitlines()]
    assert line["input"] == {"userId": "someone"}
    assert len(line["output"]["recommendedItems"]) == 3
    assert f"Wrote {target} (1 lines, 0 with an error)" in out.getvalue()

    # When the input does not exist, then it exits non-zero naming the file
    with pytest.raises(CommandError, match="does not exist"):
        call_command(
            "batch_inference", "--solution", "aws-popularity-count", "--input", "nope", "--output", "x"
        )
