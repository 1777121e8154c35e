"""`manage.py train` and `manage.py metrics` on the seeded demo shop."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.models import DatasetGroup
from recommendations.models import Campaign, SolutionVersion, SolutionVersionStatus

pytestmark = pytest.mark.django_db

PERSONALIZE_METRICS = {
    "coverage",
    "mean_reciprocal_rank_at_25",
    "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_10",
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5",
    "precision_at_10",
    "precision_at_25",
}
SEGMENT_RECIPES = {"aws-item-affinity", "aws-item-attribute-affinity"}


def registered_recipes() -> list[str]:
    from recommendations.engine.registry import RECIPES, recipe_class

    recipe_class("aws-sims")  # imports every recipe module
    return sorted(RECIPES)


def train(*args: str) -> str:
    out = io.StringIO()
    call_command("train", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("recipe", registered_recipes())
def test_every_recipe_trains_to_active_with_personalize_metrics(demo: DatasetGroup, recipe: str) -> None:
    # Given the demo shop
    # When the recipe is trained through the command
    output = train("--recipe", recipe)
    # Then the version is ACTIVE with its counts, and metrics are named as Personalize names them
    version = SolutionVersion.objects.get(solution__name=recipe)
    assert version.status == SolutionVersionStatus.ACTIVE, version.failure_reason
    assert version.interactions_count == 4000
    assert version.training_seconds is not None and version.artifact
    if recipe in SEGMENT_RECIPES:
        assert version.metrics == {}
    else:
        assert set(version.metrics) == PERSONALIZE_METRICS
        assert all(0.0 <= value <= 1.0 for value in version.metrics.values())
        assert "normalized_discounted_cumulative_gain_at_10" in output
    assert f"version {version.pk}: ACTIVE" in output


def test_train_deploy_creates_a_following_campaign_and_metrics_lists_versions(demo: DatasetGroup) -> None:
    # Given a trained and deployed solution
    train("--recipe", "aws-popularity-count", "--deploy")
    # When trained again
    train("--recipe", "aws-popularity-count")
    # Then the campaign follows the newest version, and `metrics` prints both versions
    versions = list(SolutionVersion.objects.filter(solution__name="aws-popularity-count").order_by("pk"))
    campaign = Campaign.objects.get(name="aws-popularity-count")
    assert campaign.follows_latest and campaign.solution_version == versions[-1]
    out = io.StringIO()
    call_command("metrics", "--solution", "aws-popularity-count", stdout=out)
    assert out.getvalue().count("ACTIVE") == 2 and "precision_at_25" in out.getvalue()


def test_too_little_data_fails_with_personalizes_message(default_group: DatasetGroup) -> None:
    # Given a demo with too few events
    call_command("seed_demo", "--items", "50", "--users", "20", "--events", "300", stdout=io.StringIO())
    # When training
    with pytest.raises(CommandError) as error:
        train("--recipe", "aws-sims")
    # Then the command and the version carry Personalize's message
    assert "Create failed. Dataset has fewer than 1000 interactions." in str(error.value)
    version = SolutionVersion.objects.get(solution__name="aws-sims")
    assert version.status == SolutionVersionStatus.FAILED
    assert version.failure_reason.startswith("Create failed. Dataset has fewer than 1000 interactions.")


def test_bad_config_names_the_key_and_what_is_allowed(demo: DatasetGroup) -> None:
    # Given a config with an unknown key, then a bad hyperparameter
    # When training, Then the command refuses with the key and the allowed values
    with pytest.raises(CommandError, match=r"unknown key 'eventTypo' \(allowed: eventType, "):
        train("--recipe", "aws-sims", "--config", '{"eventTypo": "click"}')
    with pytest.raises(CommandError, match="popularity_discount_factor"):
        train(
            "--recipe",
            "aws-sims",
            "--config",
            '{"algorithmHyperParameters": {"popularity_discount_factor": "7"}}',
        )
    with pytest.raises(CommandError, match="unknown recipe 'aws-nope'"):
        train("--recipe", "aws-nope")
    assert not SolutionVersion.objects.exists()


def test_unless_deployed_trains_only_the_first_time(demo: DatasetGroup) -> None:
    # Given a first run that trains and deploys the popularity campaign
    first = train("--recipe", "aws-popularity-count", "--deploy", "--unless-deployed")
    assert "Created campaign 'aws-popularity-count'" in first
    # When the same command runs again (as `make run` does on every start)
    second = train("--recipe", "aws-popularity-count", "--deploy", "--unless-deployed")
    # Then nothing is trained and the campaign keeps its version
    version = Campaign.objects.get(name="aws-popularity-count").solution_version_id
    assert second.strip() == f"Campaign 'aws-popularity-count' already serves version {version}."
    assert SolutionVersion.objects.filter(solution__name="aws-popularity-count").count() == 1
