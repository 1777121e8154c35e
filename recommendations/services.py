"""Writes of the recommendations app: solutions, solution versions, campaigns (keyword-only, typed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from catalog.models import DatasetGroup
from recommendations.errors import SolutionConfigError
from recommendations.models import (
    Campaign,
    CampaignBackend,
    CampaignStatus,
    Solution,
    SolutionVersion,
    SolutionVersionStatus,
    TrainingMode,
    TrainingType,
    auto_training_days,
    campaign_config_clean,
)
from recommendations.row_cache import row_cache_clear

__all__ = [
    "UPDATE_MODE_RECIPES",
    "campaign_create",
    "campaign_update",
    "campaigns_follow_version",
    "solution_create",
    "solution_version_create",
]

UPDATE_MODE_RECIPES = ("aws-user-personalization",)


def _validation_message(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())
    return "; ".join(error.messages)


def _full_clean(instance: Solution | Campaign) -> None:
    try:
        instance.full_clean()
    except ValidationError as error:
        raise SolutionConfigError(_validation_message(error)) from None


def solution_create(
    *,
    dataset_group: DatasetGroup,
    name: str,
    recipe: str,
    solution_config: Mapping[str, Any] | None = None,
    perform_hpo: bool = False,
    perform_auto_training: bool = True,
    auto_training_interval_days: int | None = None,
) -> Solution:
    """Create a solution (CreateSolution); raises SolutionConfigError naming the bad key or value."""
    config = dict(solution_config or {})
    days = auto_training_interval_days or auto_training_days(config) or 7
    solution = Solution(
        dataset_group=dataset_group,
        name=name,
        recipe=recipe,
        solution_config=config,
        perform_hpo=perform_hpo,
        perform_auto_training=perform_auto_training,
        auto_training_days=days,
    )
    _full_clean(solution)
    solution.save()
    return solution


def solution_version_create(
    *,
    solution: Solution,
    training_mode: str = TrainingMode.FULL,
    training_type: str = TrainingType.MANUAL,
) -> SolutionVersion:
    """Create a version (CREATE PENDING) and enqueue its training once the transaction commits."""
    from recommendations.tasks import create_solution_version_task

    if training_mode not in TrainingMode.values:
        raise SolutionConfigError(f"trainingMode must be one of {', '.join(TrainingMode.values)}")
    if training_mode == TrainingMode.UPDATE:
        if solution.recipe not in UPDATE_MODE_RECIPES:
            raise SolutionConfigError(
                f"trainingMode UPDATE is only for {', '.join(UPDATE_MODE_RECIPES)}, not {solution.recipe}"
            )
        if not solution.versions.filter(
            status=SolutionVersionStatus.ACTIVE, training_mode=TrainingMode.FULL
        ).exists():
            raise SolutionConfigError("trainingMode UPDATE needs an ACTIVE version trained with FULL first")
    version = SolutionVersion.objects.create(
        solution=solution,
        training_mode=training_mode,
        training_type=training_type,
        solution_config=solution.solution_config,
    )
    transaction.on_commit(lambda: create_solution_version_task.delay(version.pk))
    return version


def campaign_create(
    *,
    name: str,
    solution_version: SolutionVersion,
    campaign_config: Mapping[str, Any] | None = None,
    follows_latest: bool | None = None,
    backend: str | None = None,
    min_provisioned_tps: int = 1,
) -> Campaign:
    """Create a campaign serving an ACTIVE version (CreateCampaign); `backend` defaults to `RECSITE_BACKEND`.

    The local backend deploys at once (ACTIVE). On `personalize` the version must have been trained
    there; the campaign is CREATE PENDING (no ARN yet, so it answers UNAVAILABLE) and, once the
    transaction commits, its task runs CreateCampaign (`minProvisionedTPS`, `campaignConfig`) and
    polls until Personalize reports ACTIVE or CREATE FAILED with the reason. A Personalize campaign
    that follows the latest version does it Personalize's way, `syncWithLatestSolutionVersion`.
    """
    from recommendations.backends.base import default_backend_name

    backend = backend or default_backend_name()
    if backend not in CampaignBackend.values:
        choices = ", ".join(CampaignBackend.values)
        raise SolutionConfigError(f"backend must be one of {choices}, not {backend!r}")
    config = campaign_config_clean(campaign_config)
    follows = (
        bool(config.get("syncWithLatestSolutionVersion", False)) if follows_latest is None else follows_latest
    )
    on_personalize = backend == CampaignBackend.PERSONALIZE
    if on_personalize:
        _personalize_deployable(solution_version, min_provisioned_tps)
        if follows:
            config["syncWithLatestSolutionVersion"] = True
    campaign = Campaign(
        dataset_group_id=solution_version.solution.dataset_group_id,
        name=name,
        solution_version=solution_version,
        campaign_config=config,
        follows_latest=follows,
        backend=backend,
        status=CampaignStatus.PENDING if on_personalize else CampaignStatus.ACTIVE,
    )
    _full_clean(campaign)
    campaign.save()
    if on_personalize:
        from recommendations.personalize_tasks import personalize_campaign_task

        transaction.on_commit(
            lambda: personalize_campaign_task.delay(campaign.pk, min_provisioned_tps=min_provisioned_tps)
        )
    return campaign


def _personalize_deployable(version: SolutionVersion, min_provisioned_tps: int | None) -> None:
    """Refuse what CreateCampaign / UpdateCampaign would: a version not on Personalize, TPS below 1."""
    if not version.personalize_arn:
        raise SolutionConfigError(
            f"solution version {version.pk} was trained by the local engine, not on Amazon Personalize: "
            "train the solution there first (manage.py train --backend personalize) or deploy it locally"
        )
    if min_provisioned_tps is not None and min_provisioned_tps < 1:
        raise SolutionConfigError("minProvisionedTPS must be at least 1")


def campaign_update(
    *,
    campaign: Campaign,
    solution_version: SolutionVersion | None = None,
    campaign_config: Mapping[str, Any] | None = None,
    follows_latest: bool | None = None,
) -> Campaign:
    """Deploy another ACTIVE version and/or change the config (UpdateCampaign); web processes swap lazily.

    A campaign on Personalize is updated there (`personalize_jobs.personalize_campaign_update`): the
    row moves to the new version and config only once Personalize has finished the update.
    """
    if campaign.backend == CampaignBackend.PERSONALIZE:
        from recommendations.personalize_jobs import personalize_campaign_update

        config = campaign_config
        if follows_latest is not None:
            config = {**(campaign.campaign_config if config is None else config)}
            config["syncWithLatestSolutionVersion"] = follows_latest
        return personalize_campaign_update(
            campaign=campaign, solution_version=solution_version, campaign_config=config
        )
    if solution_version is not None:
        campaign.solution_version = solution_version
    if campaign_config is not None:
        campaign.campaign_config = campaign_config_clean(campaign_config)
        if follows_latest is None and "syncWithLatestSolutionVersion" in campaign.campaign_config:
            follows_latest = bool(campaign.campaign_config["syncWithLatestSolutionVersion"])
    if follows_latest is not None:
        campaign.follows_latest = follows_latest
    _full_clean(campaign)
    campaign.status = CampaignStatus.ACTIVE
    campaign.save()
    return campaign


def campaigns_follow_version(*, version: SolutionVersion) -> int:
    """Point every `follows_latest` campaign of the version's solution at it (if newer); returns how many."""
    if version.status != SolutionVersionStatus.ACTIVE:
        return 0
    updated = Campaign.objects.filter(
        follows_latest=True,
        solution_version__solution_id=version.solution_id,
        solution_version_id__lt=version.pk,
    ).update(solution_version=version, updated_at=timezone.now())
    row_cache_clear()  # a queryset update sends no signal
    return updated
