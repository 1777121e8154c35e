"""Solution → version → campaign lifecycle: validation, the training task, follow-latest, auto-training."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from catalog.models import DatasetGroup
from recommendations import services
from recommendations.artifacts import artifact_save, model_load
from recommendations.engine.registry import recipe_class
from recommendations.errors import SolutionConfigError
from recommendations.models import Solution, SolutionVersion, SolutionVersionStatus, TrainingType
from recommendations.tasks import _claim, auto_retrain_task, create_solution_version_task
from recommendations.training_data import training_data_build
from tests.factories import DatasetGroupFactory

pytestmark = pytest.mark.django_db


def trained(solution: Solution, capture: object) -> SolutionVersion:
    with capture(execute=True):
        version = services.solution_version_create(solution=solution)
    version.refresh_from_db()
    return version


@pytest.mark.parametrize(
    ("recipe", "config", "message"),
    [
        ("aws-nope", {}, "unknown recipe 'aws-nope'"),
        ("aws-sims", {"eventTypo": "x"}, "unknown key 'eventTypo' (allowed: eventType, eventValueThreshold"),
        (
            "aws-sims",
            {"eventsConfig": {"eventParametersList": [{"eventType": "view", "weight": 3}]}},
            "between 0 and 1",
        ),
        ("aws-sims", {"hpoConfig": {"hpoResourceConfig": {"maxNumberOfTrainingJobs": "99"}}}, "from 1 to 40"),
        ("aws-sims", {"autoTrainingConfig": {"schedulingExpression": "rate(90 days)"}}, "N from 1 to 30"),
    ],
)
def test_solution_create_refuses_bad_recipe_or_config(
    default_group: DatasetGroup, recipe: str, config: dict, message: str
) -> None:
    # Given a bad recipe or solutionConfig, When creating a solution, Then the error names it
    with pytest.raises(SolutionConfigError) as error:
        services.solution_create(dataset_group=default_group, name="s", recipe=recipe, solution_config=config)
    assert message in str(error.value)
    assert not Solution.objects.exists()


def test_campaign_config_is_checked_and_versions_must_be_active(
    demo: DatasetGroup, django_capture_on_commit_callbacks: object
) -> None:
    # Given an ACTIVE and a failed version
    solution = services.solution_create(dataset_group=demo, name="pop", recipe="aws-popularity-count")
    active = trained(solution, django_capture_on_commit_callbacks)
    failed = SolutionVersion.objects.create(solution=solution, status=SolutionVersionStatus.FAILED)
    # When deploying, Then only ACTIVE versions and valid exploration settings are accepted
    with pytest.raises(SolutionConfigError, match="only ACTIVE deploys"):
        services.campaign_create(name="c", solution_version=failed)
    with pytest.raises(
        SolutionConfigError, match="explorationWeight is '2'; it must be a number from 0 to 1"
    ):
        services.campaign_create(
            name="c",
            solution_version=active,
            campaign_config={"itemExplorationConfig": {"explorationWeight": "2"}},
        )
    campaign = services.campaign_create(
        name="c",
        solution_version=active,
        campaign_config={"itemExplorationConfig": {"explorationWeight": 0.1}},
    )
    assert campaign.campaign_config == {"itemExplorationConfig": {"explorationWeight": "0.1"}}
    assert campaign.dataset_group == demo


def test_task_is_idempotent(demo: DatasetGroup, django_capture_on_commit_callbacks: object) -> None:
    # Given a trained version
    solution = services.solution_create(dataset_group=demo, name="sims", recipe="aws-sims")
    version = trained(solution, django_capture_on_commit_callbacks)
    assert version.status == SolutionVersionStatus.ACTIVE
    # When the task is delivered again
    result = create_solution_version_task.apply(args=[version.pk]).get()
    # Then nothing is retrained
    again = SolutionVersion.objects.get(pk=version.pk)
    assert result == SolutionVersionStatus.ACTIVE
    assert (again.finished_at, again.metrics, again.artifact) == (
        version.finished_at,
        version.metrics,
        version.artifact,
    )


def test_config_that_became_invalid_fails_the_version_with_the_reason(
    demo: DatasetGroup, django_capture_on_commit_callbacks: object
) -> None:
    # Given a solution whose stored config was edited around the checks
    solution = services.solution_create(dataset_group=demo, name="sims", recipe="aws-sims")
    Solution.objects.filter(pk=solution.pk).update(
        solution_config={"algorithmHyperParameters": {"min_cointeraction_count": "-4"}}
    )
    solution.refresh_from_db()
    # When trained
    version = trained(solution, django_capture_on_commit_callbacks)
    # Then the version is CREATE FAILED with the recipe's message
    assert version.status == SolutionVersionStatus.FAILED
    assert "min_cointeraction_count" in version.failure_reason


def test_new_active_version_is_deployed_to_following_campaigns_only(
    demo: DatasetGroup, django_capture_on_commit_callbacks: object
) -> None:
    # Given two campaigns on version 1, one following the latest
    solution = services.solution_create(dataset_group=demo, name="pop", recipe="aws-popularity-count")
    first = trained(solution, django_capture_on_commit_callbacks)
    following = services.campaign_create(name="following", solution_version=first, follows_latest=True)
    pinned = services.campaign_create(name="pinned", solution_version=first)
    # When version 2 becomes ACTIVE
    second = trained(solution, django_capture_on_commit_callbacks)
    # Then only the following campaign serves it
    following.refresh_from_db()
    pinned.refresh_from_db()
    assert (following.solution_version, pinned.solution_version) == (second, first)


def test_auto_training_creates_versions_when_the_newest_is_older_than_the_interval(
    demo: DatasetGroup, django_capture_on_commit_callbacks: object
) -> None:
    # Given a fresh auto-training solution, an old one and one with auto-training off
    fresh = services.solution_create(dataset_group=demo, name="fresh", recipe="aws-popularity-count")
    old = services.solution_create(
        dataset_group=demo,
        name="old",
        recipe="aws-popularity-count",
        solution_config={"autoTrainingConfig": {"schedulingExpression": "rate(2 days)"}},
    )
    off = services.solution_create(
        dataset_group=demo, name="off", recipe="aws-popularity-count", perform_auto_training=False
    )
    for solution in (fresh, old, off):
        trained(solution, django_capture_on_commit_callbacks)
    SolutionVersion.objects.filter(solution__in=[old, off]).update(
        created_at=timezone.now() - timedelta(days=3)
    )
    # When the beat task runs
    with django_capture_on_commit_callbacks(execute=True):
        created = auto_retrain_task.apply().get()
    # Then only the old solution gets a new AUTOMATIC version, trained to ACTIVE
    assert old.auto_training_days == 2
    (version,) = SolutionVersion.objects.filter(pk__in=created)
    assert version.solution == old and version.training_type == TrainingType.AUTOMATIC
    assert version.status == SolutionVersionStatus.ACTIVE


def test_solution_and_campaign_names_are_unique_across_groups(default_group: DatasetGroup) -> None:
    # Given a solution in one group
    services.solution_create(dataset_group=default_group, name="same", recipe="aws-sims")
    # When another group uses the name, Then it is refused
    with pytest.raises(SolutionConfigError, match="already exists"):
        services.solution_create(
            dataset_group=DatasetGroupFactory(name="other"), name="same", recipe="aws-sims"
        )


def test_admin_shows_solutions_versions_campaigns_and_runs_their_actions(
    demo: DatasetGroup, admin_client: object, django_capture_on_commit_callbacks: object
) -> None:
    # Given a trained, deployed solution
    call_command("train", "--recipe", "aws-popularity-count", "--deploy", stdout=io.StringIO())
    solution = Solution.objects.get()
    version = solution.versions.get()
    campaign = solution.versions.get().campaigns.get()
    # When an operator opens the pages, Then they render with the metrics
    for url in (
        f"/admin/recommendations/solution/{solution.pk}/change/",
        f"/admin/recommendations/solutionversion/{version.pk}/change/",
        f"/admin/recommendations/campaign/{campaign.pk}/change/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200
    page = admin_client.get(f"/admin/recommendations/solutionversion/{version.pk}/change/").content.decode()
    assert "normalized_discounted_cumulative_gain_at_10" in page
    # When the "create a new solution version" then "deploy latest" actions run
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/recommendations/solution/",
            {"action": "create_solution_version", "_selected_action": [solution.pk]},
        )
    newest = solution.versions.order_by("-pk").first()
    campaign.follows_latest = False
    campaign.save()
    campaign.solution_version = version  # it followed the new version; pin it back to the first
    campaign.save()
    admin_client.post(
        "/admin/recommendations/campaign/",
        {"action": "deploy_latest_active_version", "_selected_action": [campaign.pk]},
    )
    # Then a new ACTIVE version exists and the campaign serves it
    campaign.refresh_from_db()
    assert newest.status == SolutionVersionStatus.ACTIVE and newest != version
    assert campaign.solution_version == newest


def test_versions_numbered_alike_in_two_databases_keep_their_own_artifacts(demo: DatasetGroup) -> None:
    # Given two fitted models saved for the same version id (two databases sharing one storage)
    training = training_data_build(dataset_group=demo)
    popular = recipe_class("aws-popularity-count")({}, seed=1)
    popular.fit(training.data)
    similar = recipe_class("aws-sims")({}, seed=1)
    similar.fit(training.data)
    first = artifact_save(version_id=7, recipe=popular, training=training)
    second = artifact_save(version_id=7, recipe=similar, training=training)
    # Then neither overwrote the other: each name loads the model saved under it
    assert first != second
    assert model_load(name=first, version_id=7).recipe.name == "aws-popularity-count"
    assert model_load(name=second, version_id=7).recipe.name == "aws-sims"


def test_a_redelivered_task_takes_over_a_training_whose_worker_died(demo: DatasetGroup) -> None:
    # Given a version a worker claimed a minute ago and then died with (IN_PROGRESS, message unacked)
    solution = services.solution_create(dataset_group=demo, name="pop", recipe="aws-popularity-count")
    version = SolutionVersion.objects.create(solution=solution)
    SolutionVersion.objects.filter(pk=version.pk).update(
        status=SolutionVersionStatus.IN_PROGRESS, started_at=timezone.now() - timedelta(minutes=1)
    )
    # When the same message arrives again as a fresh delivery, it is left to the (live) worker
    assert _claim(version.pk) is None
    # But when the broker redelivers it (it does so only when its holder is gone), it is trained
    claimed = _claim(version.pk, redelivered=True)
    assert claimed is not None and claimed.status == SolutionVersionStatus.IN_PROGRESS
    assert timezone.now() - claimed.started_at < timedelta(seconds=5)
