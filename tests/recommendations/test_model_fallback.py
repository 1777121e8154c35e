"""A missing or corrupt model artifact: the campaign serves an earlier version or popular items, loudly."""

import logging
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from catalog.models import DatasetGroup, EndUser
from recommendations import selectors, services
from recommendations.fallback import FALLBACK_NOTE
from recommendations.models import Campaign, Solution, SolutionVersion
from recommendations.serving import personalized_ranking, recommendation_list, related_item_list

pytestmark = pytest.mark.django_db


def train(solution: Solution, capture: Any) -> SolutionVersion:
    with capture(execute=True):
        version = services.solution_version_create(solution=solution)
    version.refresh_from_db()
    assert version.status == "ACTIVE", version.failure_reason
    return version


def break_artifact(version: SolutionVersion) -> None:
    """Overwrite every array of the version's artifact with bytes numpy cannot read."""
    folder = Path(settings.MEDIA_ROOT) / version.artifact
    arrays = list(folder.rglob("*.npy"))
    assert arrays
    for array in arrays:
        array.write_bytes(b"not an array")
    selectors.model_cache_clear()


def user_of(group: DatasetGroup) -> str:
    users = EndUser.objects.filter(dataset_group=group).order_by("user_id")
    return users.values_list("user_id", flat=True)[3]


def test_a_broken_newest_version_is_stood_in_for_by_the_previous_one(
    demo: DatasetGroup, django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a campaign that served version 1 and now serves version 2
    solution = services.solution_create(dataset_group=demo, name="feed", recipe="aws-user-personalization")
    first = train(solution, django_capture_on_commit_callbacks)
    campaign = services.campaign_create(name="feed", solution_version=first)
    user = user_of(demo)
    by_first = [item.item_id for item in recommendation_list(campaign_name="feed", user_id=user).items]
    second = train(solution, django_capture_on_commit_callbacks)
    services.campaign_update(campaign=campaign, solution_version=second)
    # When version 2's artifact turns out corrupt
    break_artifact(second)
    with caplog.at_level(logging.ERROR, logger="recommendations.selectors"):
        served = recommendation_list(campaign_name="feed", user_id=user)
    # Then version 1 answers, the failure is logged with its cause and shown on the campaign
    assert [item.item_id for item in served.items] == by_first
    assert any(f"solution version {second.pk} cannot be loaded" in r.getMessage() for r in caplog.records)
    reason = Campaign.objects.get(pk=campaign.pk).failure_reason
    assert f"solution version {second.pk} cannot be loaded" in reason
    assert f"serving version {first.pk}" in reason


def test_with_no_loadable_model_the_popular_list_answers_and_recovers_later(
    demo: DatasetGroup, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given user, related-items and ranking campaigns whose only versions' artifacts are broken
    versions = {}
    for recipe in ("aws-user-personalization", "aws-sims", "aws-personalized-ranking"):
        solution = services.solution_create(dataset_group=demo, name=recipe, recipe=recipe)
        versions[recipe] = train(solution, django_capture_on_commit_callbacks)
        services.campaign_create(name=recipe, solution_version=versions[recipe])
    healthy = recommendation_list(campaign_name="aws-user-personalization", user_id=user_of(demo))
    for version in versions.values():
        break_artifact(version)
    user = user_of(demo)
    # When each is asked
    feed = recommendation_list(campaign_name="aws-user-personalization", user_id=user, num_results=5)
    related = related_item_list(campaign_name="aws-sims", item_id="item-00001", num_results=5)
    wanted = [item.item_id for item in healthy.items[:6]]
    ranked = personalized_ranking(campaign_name="aws-personalized-ranking", user_id=user, item_ids=wanted)
    # Then each answers from the popular list, saying personalization is unavailable
    for served in (feed, related):
        assert len(served.items) == 5 and all(item.score is None for item in served.items)
        assert all(text.endswith(f"({FALLBACK_NOTE})") for text in served.reasons())
    assert "item-00001" not in [item.item_id for item in related.items]
    assert sorted(item.item_id for item in ranked.items) == sorted(wanted)
    assert "serving the popular list" in Campaign.objects.get(name="aws-sims").failure_reason
    # When the artifact is good again (a new version is trained) and the retry time has passed
    monkeypatch.setattr(selectors, "MODEL_RETRY_SECONDS", 0.0)
    solution = Solution.objects.get(name="aws-user-personalization")
    fresh = train(solution, django_capture_on_commit_callbacks)
    SolutionVersion.objects.filter(pk=versions["aws-user-personalization"].pk).update(artifact=fresh.artifact)
    # Then the version's own model answers again and the campaign's note is cleared
    again = recommendation_list(campaign_name="aws-user-personalization", user_id=user, num_results=5)
    assert all(item.score is not None for item in again.items)
    assert Campaign.objects.get(name="aws-user-personalization").failure_reason == ""
