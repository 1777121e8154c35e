"""Solutions, solution versions and campaigns, named and stated as Amazon Personalize names them.

A `Solution` is a recipe plus its training configuration (`solution_config`, Personalize's
`solutionConfig` keys). Each training run is a `SolutionVersion` (CREATE PENDING → CREATE
IN_PROGRESS → ACTIVE | CREATE FAILED) holding its metrics and the artifact folder in Django
storage. A `Campaign` serves one ACTIVE version; with `follows_latest` it moves to each new ACTIVE
version of the same solution (Personalize's `syncWithLatestSolutionVersion`).
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from catalog.models import DatasetGroup
from recommendations.errors import SolutionConfigError

__all__ = [
    "CAMPAIGN_CONFIG_KEYS",
    "DEFAULT_EXPLORATION_ITEM_AGE_CUT_OFF",
    "DEFAULT_EXPLORATION_WEIGHT",
    "SOLUTION_CONFIG_KEYS",
    "BatchJob",
    "BatchJobKind",
    "Campaign",
    "CampaignBackend",
    "CampaignStatus",
    "DataDeletionStatus",
    "EventTracker",
    "Filter",
    "FilterStatus",
    "PersonalizeDatasetGroup",
    "PersonalizeImportJob",
    "PersonalizeImportMode",
    "PersonalizeStatus",
    "RecommendationRecord",
    "Solution",
    "SolutionVersion",
    "SolutionVersionStatus",
    "TrainingMode",
    "TrainingType",
    "UserDataDeletion",
    "auto_training_days",
    "campaign_config_clean",
    "exploration_settings",
    "hpo_training_jobs",
    "solution_config_clean",
    "solution_hyperparameters",
]

NAME_VALIDATOR = RegexValidator(
    r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$", "Letters, digits, - and _ only, starting with a letter or digit."
)
SOLUTION_CONFIG_KEYS = (
    "eventType",
    "eventValueThreshold",
    "eventsConfig",
    "algorithmHyperParameters",
    "featureTransformationParameters",
    "hpoConfig",
    "autoTrainingConfig",
)
HPO_CONFIG_KEYS = ("hpoObjective", "hpoResourceConfig", "algorithmHyperParameterRanges")
MAX_HPO_TRAINING_JOBS = 40
CAMPAIGN_CONFIG_KEYS = (
    "itemExplorationConfig",
    "enableMetadataWithRecommendations",
    "syncWithLatestSolutionVersion",
)
EXPLORATION_KEYS = ("explorationWeight", "explorationItemAgeCutOff")
DEFAULT_EXPLORATION_WEIGHT = 0.3
DEFAULT_EXPLORATION_ITEM_AGE_CUT_OFF = 30.0
AUTO_TRAINING_RATE = re.compile(r"^rate\((\d+) days?\)$")
MIN_AUTO_TRAINING_DAYS, MAX_AUTO_TRAINING_DAYS = 1, 30


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise SolutionConfigError(f"{where} must be an object of string values, got {value!r}")
    if len(value) > 100:
        raise SolutionConfigError(f"{where} has {len(value)} entries; at most 100 are allowed")
    return {
        str(key): str(item).lower() if isinstance(item, bool) else str(item) for key, item in value.items()
    }


def solution_config_clean(*, recipe: str, solution_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a solutionConfig for a recipe (keys, events, hyperparameters, HPO); raise SolutionConfigError."""
    from recommendations.engine.base import RecipeError
    from recommendations.engine.events import event_selection
    from recommendations.engine.registry import recipe_class

    config = dict(solution_config or {})
    unknown = sorted(set(config) - set(SOLUTION_CONFIG_KEYS))
    if unknown:
        raise SolutionConfigError(
            f"solutionConfig has unknown key {unknown[0]!r} (allowed: {', '.join(SOLUTION_CONFIG_KEYS)})"
        )
    try:
        cls = recipe_class(recipe)
    except RecipeError as error:
        raise SolutionConfigError(str(error)) from None
    for key in ("algorithmHyperParameters", "featureTransformationParameters"):
        if key in config:
            config[key] = _string_map(config[key], f"solutionConfig.{key}")
    try:
        event_selection(event_type=config.get("eventType"), solution_config=config)
        cls(solution_hyperparameters(config))
    except RecipeError as error:
        raise SolutionConfigError(f"solutionConfig: {error}") from None
    if "hpoConfig" in config:
        _hpo_config_check(config["hpoConfig"])
    if "autoTrainingConfig" in config:
        auto_training_days(config)
    return config


def solution_hyperparameters(config: Mapping[str, Any]) -> dict[str, str]:
    """algorithmHyperParameters and featureTransformationParameters as one recipe hyperparameter map."""
    return {
        **dict(config.get("featureTransformationParameters") or {}),
        **dict(config.get("algorithmHyperParameters") or {}),
    }


def hpo_training_jobs(config: Mapping[str, Any], default: int = 12) -> int:
    """hpoConfig.hpoResourceConfig.maxNumberOfTrainingJobs (the tuning budget), or `default`."""
    resource = (config.get("hpoConfig") or {}).get("hpoResourceConfig") or {}
    raw = resource.get("maxNumberOfTrainingJobs")
    return default if raw is None else int(raw)


def _hpo_config_check(hpo: Any) -> None:
    if not isinstance(hpo, Mapping):
        raise SolutionConfigError("solutionConfig.hpoConfig must be an object")
    unknown = sorted(set(hpo) - set(HPO_CONFIG_KEYS))
    if unknown:
        raise SolutionConfigError(
            f"solutionConfig.hpoConfig has unknown key {unknown[0]!r} (allowed: {', '.join(HPO_CONFIG_KEYS)})"
        )
    resource = hpo.get("hpoResourceConfig") or {}
    if not isinstance(resource, Mapping):
        raise SolutionConfigError("solutionConfig.hpoConfig.hpoResourceConfig must be an object")
    for key in ("maxNumberOfTrainingJobs", "maxParallelTrainingJobs"):
        if key not in resource:
            continue
        raw = resource[key]
        try:
            number = int(str(raw))
        except ValueError:
            number = 0
        limit = MAX_HPO_TRAINING_JOBS if key == "maxNumberOfTrainingJobs" else 10
        if not 1 <= number <= limit:
            raise SolutionConfigError(
                f"solutionConfig.hpoConfig.hpoResourceConfig.{key} is {raw!r}; it must be an integer "
                f"from 1 to {limit}"
            )


def auto_training_days(config: Mapping[str, Any]) -> int | None:
    """Days of autoTrainingConfig.schedulingExpression `rate(N days)` (1-30), or None when not given."""
    auto = config.get("autoTrainingConfig")
    if auto is None:
        return None
    expression = auto.get("schedulingExpression") if isinstance(auto, Mapping) else None
    match = AUTO_TRAINING_RATE.match(str(expression or "").strip())
    days = int(match.group(1)) if match else 0
    if not MIN_AUTO_TRAINING_DAYS <= days <= MAX_AUTO_TRAINING_DAYS:
        raise SolutionConfigError(
            f"solutionConfig.autoTrainingConfig.schedulingExpression is {expression!r}; it must be "
            f"'rate(N days)' with N from {MIN_AUTO_TRAINING_DAYS} to {MAX_AUTO_TRAINING_DAYS}"
        )
    return days


def campaign_config_clean(campaign_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a campaignConfig (itemExplorationConfig etc.); values keep Personalize's string form."""
    config = dict(campaign_config or {})
    unknown = sorted(set(config) - set(CAMPAIGN_CONFIG_KEYS))
    if unknown:
        raise SolutionConfigError(
            f"campaignConfig has unknown key {unknown[0]!r} (allowed: {', '.join(CAMPAIGN_CONFIG_KEYS)})"
        )
    for key in ("enableMetadataWithRecommendations", "syncWithLatestSolutionVersion"):
        if key in config and not isinstance(config[key], bool):
            raise SolutionConfigError(f"campaignConfig.{key} must be true or false, got {config[key]!r}")
    exploration = config.get("itemExplorationConfig")
    if exploration is not None:
        if not isinstance(exploration, Mapping):
            raise SolutionConfigError("campaignConfig.itemExplorationConfig must be an object")
        unknown = sorted(set(exploration) - set(EXPLORATION_KEYS))
        if unknown:
            raise SolutionConfigError(
                f"campaignConfig.itemExplorationConfig has unknown key {unknown[0]!r} "
                f"(allowed: {', '.join(EXPLORATION_KEYS)})"
            )
        config["itemExplorationConfig"] = {key: str(value) for key, value in exploration.items()}
        exploration_settings(config)
    return config


def exploration_settings(campaign_config: Mapping[str, Any] | None) -> tuple[float, float]:
    """(explorationWeight 0-1, explorationItemAgeCutOff days ≥ 1) with Personalize's defaults (0.3, 30)."""
    exploration = (campaign_config or {}).get("itemExplorationConfig") or {}
    weight = _number(exploration, "explorationWeight", DEFAULT_EXPLORATION_WEIGHT)
    if not 0.0 <= weight <= 1.0:
        raise SolutionConfigError(
            "campaignConfig.itemExplorationConfig.explorationWeight is "
            f"{exploration['explorationWeight']!r}; it must be a number from 0 to 1"
        )
    cut_off = _number(exploration, "explorationItemAgeCutOff", DEFAULT_EXPLORATION_ITEM_AGE_CUT_OFF)
    if cut_off < 1:
        raise SolutionConfigError(
            "campaignConfig.itemExplorationConfig.explorationItemAgeCutOff is "
            f"{exploration['explorationItemAgeCutOff']!r}; it must be a number of days, at least 1"
        )
    return weight, cut_off


def _number(mapping: Mapping[str, Any], key: str, default: float) -> float:
    if key not in mapping:
        return default
    try:
        value = float(str(mapping[key]))
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise SolutionConfigError(
            f"campaignConfig.itemExplorationConfig.{key} is {mapping[key]!r}; not a number"
        )
    return value


class Solution(models.Model):
    """A recipe and its training configuration for one dataset group (Personalize's CreateSolution)."""

    dataset_group = models.ForeignKey(DatasetGroup, on_delete=models.CASCADE, related_name="solutions")
    name = models.CharField(max_length=63, unique=True, validators=[NAME_VALIDATOR])
    recipe = models.CharField(
        max_length=63, help_text="Personalize recipe name, e.g. aws-user-personalization."
    )
    solution_config = models.JSONField(default=dict, blank=True, help_text="Personalize's solutionConfig.")
    perform_hpo = models.BooleanField("perform HPO", default=False)
    perform_auto_training = models.BooleanField(
        default=True,
        help_text="Train a new version every `auto training days` (Personalize's default: on, 7).",
    )
    auto_training_days = models.PositiveSmallIntegerField(
        default=7,
        validators=[MinValueValidator(MIN_AUTO_TRAINING_DAYS), MaxValueValidator(MAX_AUTO_TRAINING_DAYS)],
    )
    personalize_arn = models.CharField(
        "Personalize ARN", max_length=256, blank=True, help_text="Set once created on Amazon Personalize."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def scheduling_expression(self) -> str:
        """Personalize's autoTrainingConfig.schedulingExpression for this solution."""
        return f"rate({self.auto_training_days} days)"

    def clean(self) -> None:
        """Validate the recipe and solution_config the way CreateSolution does."""
        try:
            self.solution_config = solution_config_clean(
                recipe=self.recipe, solution_config=self.solution_config
            )
        except SolutionConfigError as error:
            field = "recipe" if str(error).startswith("unknown recipe") else "solution_config"
            raise ValidationError({field: str(error)}) from None


class SolutionVersionStatus(models.TextChoices):
    """Personalize's solution version states."""

    PENDING = "CREATE PENDING"
    IN_PROGRESS = "CREATE IN_PROGRESS"
    ACTIVE = "ACTIVE"
    FAILED = "CREATE FAILED"


class TrainingMode(models.TextChoices):
    """Personalize's trainingMode: FULL retrains; UPDATE refreshes a FULL version with new items."""

    FULL = "FULL"
    UPDATE = "UPDATE"


class TrainingType(models.TextChoices):
    """Personalize's trainingType: who asked for the version."""

    MANUAL = "MANUAL"
    AUTOMATIC = "AUTOMATIC"


class SolutionVersion(models.Model):
    """One training run of a solution: status, metrics and the model artifact."""

    solution = models.ForeignKey(Solution, on_delete=models.CASCADE, related_name="versions")
    status = models.CharField(
        max_length=20, choices=SolutionVersionStatus.choices, default=SolutionVersionStatus.PENDING
    )
    failure_reason = models.TextField(blank=True)
    progress = models.CharField(max_length=200, blank=True, help_text="The current training step.")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When a worker claimed the version.")
    training_mode = models.CharField(max_length=8, choices=TrainingMode.choices, default=TrainingMode.FULL)
    training_type = models.CharField(max_length=10, choices=TrainingType.choices, default=TrainingType.MANUAL)
    solution_config = models.JSONField(
        default=dict, blank=True, help_text="The config this version trained with."
    )
    tuned_hpo_params = models.JSONField(default=dict, blank=True, help_text="Hyperparameters chosen by HPO.")
    metrics = models.JSONField(
        default=dict, blank=True, help_text="Personalize's offline metrics (holdout fit)."
    )
    artifact = models.CharField(
        max_length=255, blank=True, help_text="Folder of the model in Django storage."
    )
    training_seconds = models.FloatField(null=True, blank=True)
    interactions_count = models.PositiveBigIntegerField(null=True, blank=True)
    users_count = models.PositiveIntegerField(null=True, blank=True)
    items_count = models.PositiveIntegerField(null=True, blank=True)
    personalize_arn = models.CharField(
        "Personalize ARN", max_length=256, blank=True, help_text="Set once created on Amazon Personalize."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["solution", "status", "-created_at"], name="version_solution_latest")]

    def __str__(self) -> str:
        return f"{self.solution.name} v{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        """True once ACTIVE or CREATE FAILED."""
        return self.status in (SolutionVersionStatus.ACTIVE, SolutionVersionStatus.FAILED)


class CampaignBackend(models.TextChoices):
    """Which engine answers a campaign's requests."""

    LOCAL = "local", "Local engine"
    PERSONALIZE = "personalize", "Amazon Personalize"


class CampaignStatus(models.TextChoices):
    """Personalize's campaign states (the local backend deploys at once)."""

    PENDING = "CREATE PENDING"
    IN_PROGRESS = "CREATE IN_PROGRESS"
    ACTIVE = "ACTIVE"
    FAILED = "CREATE FAILED"


class Campaign(models.Model):
    """A real-time endpoint serving one ACTIVE solution version (Personalize's CreateCampaign)."""

    dataset_group = models.ForeignKey(DatasetGroup, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=63, unique=True, validators=[NAME_VALIDATOR])
    solution_version = models.ForeignKey(SolutionVersion, on_delete=models.PROTECT, related_name="campaigns")
    follows_latest = models.BooleanField(
        default=False,
        help_text="Deploy each new ACTIVE version of the solution (syncWithLatestSolutionVersion).",
    )
    campaign_config = models.JSONField(default=dict, blank=True, help_text="Personalize's campaignConfig.")
    backend = models.CharField(max_length=16, choices=CampaignBackend.choices, default=CampaignBackend.LOCAL)
    personalize_arn = models.CharField(
        "Personalize ARN", max_length=256, blank=True, help_text="Set once created on Amazon Personalize."
    )
    status = models.CharField(max_length=20, choices=CampaignStatus.choices, default=CampaignStatus.ACTIVE)
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Check the config and that the version is ACTIVE and of the campaign's dataset group."""
        try:
            self.campaign_config = campaign_config_clean(self.campaign_config)
        except SolutionConfigError as error:
            raise ValidationError({"campaign_config": str(error)}) from None
        version = self.solution_version if self.solution_version_id else None
        if version is None:
            return
        if version.status != SolutionVersionStatus.ACTIVE:
            raise ValidationError(
                {"solution_version": f"version {version.pk} is {version.status}; only ACTIVE deploys"}
            )
        if self.dataset_group_id and version.solution.dataset_group_id != self.dataset_group_id:
            raise ValidationError({"solution_version": "the version belongs to another dataset group"})


class FilterStatus(models.TextChoices):
    """Personalize's filter states (a local filter is checked and ACTIVE at creation; one on Personalize
    is CREATE PENDING until Personalize reports it ACTIVE or CREATE FAILED)."""

    PENDING = "CREATE PENDING"
    IN_PROGRESS = "CREATE IN_PROGRESS"
    ACTIVE = "ACTIVE"
    FAILED = "CREATE FAILED"
    DELETE_PENDING = "DELETE PENDING"


class Filter(models.Model):
    """A business rule in Personalize's filter expression language (CreateFilter)."""

    dataset_group = models.ForeignKey(DatasetGroup, on_delete=models.CASCADE, related_name="filters")
    name = models.CharField(max_length=63, unique=True, validators=[NAME_VALIDATOR])
    expression = models.TextField(help_text="Personalize's filter expression, e.g. EXCLUDE ItemID WHERE ...")
    status = models.CharField(max_length=20, choices=FilterStatus.choices, default=FilterStatus.ACTIVE)
    failure_reason = models.TextField(blank=True)
    backend = models.CharField(max_length=16, choices=CampaignBackend.choices, default=CampaignBackend.LOCAL)
    personalize_arn = models.CharField(
        "Personalize ARN", max_length=256, blank=True, help_text="Set once created on Amazon Personalize."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def _tracking_id() -> str:
    return secrets.token_hex(18)


class EventTracker(models.Model):
    """Receives a dataset group's real-time events (CreateEventTracker); one per group, as in Personalize."""

    dataset_group = models.OneToOneField(DatasetGroup, on_delete=models.CASCADE, related_name="event_tracker")
    name = models.CharField(max_length=63, unique=True, validators=[NAME_VALIDATOR])
    tracking_id = models.CharField(max_length=64, unique=True, default=_tracking_id, editable=False)
    status = models.CharField(max_length=20, choices=CampaignStatus.choices, default=CampaignStatus.ACTIVE)
    backend = models.CharField(max_length=16, choices=CampaignBackend.choices, default=CampaignBackend.LOCAL)
    personalize_arn = models.CharField(
        "Personalize ARN", max_length=256, blank=True, help_text="Set once created on Amazon Personalize."
    )
    personalize_tracking_id = models.CharField(
        max_length=64, blank=True, help_text="The trackingId Amazon Personalize issued for this tracker."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RecommendationRecord(models.Model):
    """One answered request, so events can point back to it by `recommendationId` (impressions)."""

    recommendation_id = models.CharField(max_length=40, unique=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recommendation_records")
    user_id = models.CharField(max_length=256, blank=True)
    session_id = models.CharField(max_length=256, blank=True)
    item_ids = models.JSONField(default=list, help_text="The external item ids returned, in order.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.recommendation_id


# --- Amazon Personalize: the remote side of a dataset group, its import jobs, batch jobs ---------------


class PersonalizeStatus(models.TextChoices):
    """The states Recsite records for Personalize resources and jobs (Personalize's own words)."""

    PENDING = "CREATE PENDING"
    IN_PROGRESS = "CREATE IN_PROGRESS"
    ACTIVE = "ACTIVE"
    FAILED = "CREATE FAILED"


class PersonalizeDatasetGroup(models.Model):
    """A dataset group as provisioned on Amazon Personalize: the ARNs of its group, schemas and datasets."""

    dataset_group = models.OneToOneField(DatasetGroup, on_delete=models.CASCADE, related_name="personalize")
    name = models.CharField(max_length=63, help_text="The dataset group's name on Personalize.")
    dataset_group_arn = models.CharField("dataset group ARN", max_length=256, blank=True)
    schema_arns = models.JSONField(
        default=dict, blank=True, help_text="Schema ARN per dataset type (interactions, items, users)."
    )
    dataset_arns = models.JSONField(default=dict, blank=True, help_text="Dataset ARN per dataset type.")
    status = models.CharField(
        max_length=20, choices=PersonalizeStatus.choices, default=PersonalizeStatus.PENDING
    )
    failure_reason = models.TextField(blank=True)
    progress = models.CharField(max_length=200, blank=True, help_text="What provisioning waits for now.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "Personalize dataset group"

    def __str__(self) -> str:
        return f"{self.name} on Personalize ({self.status})"

    @property
    def is_finished(self) -> bool:
        """True once ACTIVE or CREATE FAILED."""
        return self.status in (PersonalizeStatus.ACTIVE, PersonalizeStatus.FAILED)


class PersonalizeImportMode(models.TextChoices):
    """CreateDatasetImportJob's importMode."""

    FULL = "FULL"
    INCREMENTAL = "INCREMENTAL"


class PersonalizeImportJob(models.Model):
    """One dataset's export to S3 and its CreateDatasetImportJob, with the rows it carried."""

    personalize_group = models.ForeignKey(
        PersonalizeDatasetGroup, on_delete=models.CASCADE, related_name="import_jobs"
    )
    dataset_type = models.CharField(max_length=16, help_text="interactions, items or users.")
    import_mode = models.CharField(
        max_length=12, choices=PersonalizeImportMode.choices, default=PersonalizeImportMode.FULL
    )
    job_name = models.CharField(max_length=63, unique=True)
    s3_path = models.CharField("S3 path", max_length=256, blank=True, help_text="s3://bucket/key of the CSV.")
    rows = models.PositiveBigIntegerField(null=True, blank=True, help_text="Rows written to the CSV.")
    changed_since = models.DateTimeField(
        null=True, blank=True, help_text="INCREMENTAL: items/users updated after this were exported."
    )
    interactions_after_id = models.BigIntegerField(
        null=True, blank=True, help_text="INCREMENTAL: interactions with a larger id were exported."
    )
    interactions_through_id = models.BigIntegerField(
        null=True, blank=True, help_text="The largest interaction id the export could include."
    )
    exported_at = models.DateTimeField(null=True, blank=True, help_text="When the export read the database.")
    personalize_arn = models.CharField("Personalize ARN", max_length=256, blank=True)
    status = models.CharField(
        max_length=20, choices=PersonalizeStatus.choices, default=PersonalizeStatus.PENDING
    )
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "Personalize import job"

    def __str__(self) -> str:
        return self.job_name

    @property
    def is_finished(self) -> bool:
        """True once ACTIVE or CREATE FAILED."""
        return self.status in (PersonalizeStatus.ACTIVE, PersonalizeStatus.FAILED)


class BatchJobKind(models.TextChoices):
    """Personalize's two batch jobs."""

    INFERENCE = "inference", "Batch inference"
    SEGMENT = "segment", "Batch segment"


class BatchJob(models.Model):
    """A batch inference or segment job: JSON-lines in, JSON-lines out, on S3 or in local storage."""

    kind = models.CharField(max_length=10, choices=BatchJobKind.choices, default=BatchJobKind.INFERENCE)
    backend = models.CharField(max_length=16, choices=CampaignBackend.choices, default=CampaignBackend.LOCAL)
    name = models.CharField(max_length=63, unique=True, validators=[NAME_VALIDATOR])
    solution_version = models.ForeignKey(SolutionVersion, on_delete=models.PROTECT, related_name="batch_jobs")
    filter = models.ForeignKey(Filter, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    num_results = models.PositiveIntegerField(default=25)
    job_config = models.JSONField(
        default=dict, blank=True, help_text="batchInferenceJobConfig (e.g. itemExplorationConfig)."
    )
    input_path = models.CharField(
        max_length=256, help_text="s3://bucket/key (Personalize) or a storage name (local) of the input."
    )
    output_path = models.CharField(
        max_length=256,
        help_text="s3://bucket/folder/ (Personalize) or a storage name (local) for the output.",
    )
    personalize_arn = models.CharField("Personalize ARN", max_length=256, blank=True)
    status = models.CharField(
        max_length=20, choices=PersonalizeStatus.choices, default=PersonalizeStatus.PENDING
    )
    failure_reason = models.TextField(blank=True)
    records = models.PositiveIntegerField(null=True, blank=True, help_text="Input lines answered (local).")
    errors = models.PositiveIntegerField(null=True, blank=True, help_text="Input lines that failed (local).")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()}, {self.status})"

    @property
    def is_finished(self) -> bool:
        """True once ACTIVE or CREATE FAILED."""
        return self.status in (PersonalizeStatus.ACTIVE, PersonalizeStatus.FAILED)


# --- Data deletion: the audit record of each request, and its Personalize job ---------------------------


class DataDeletionStatus(models.TextChoices):
    """Where the deletion stands on Amazon Personalize (CreateDataDeletionJob's own words)."""

    NOT_NEEDED = "", "Not on Personalize"
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class UserDataDeletion(models.Model):
    """One deletion of a user's data: who asked, when, what was removed here, and Personalize's job.

    The local deletion is done when the row exists; the row stays as the audit record (it keeps the
    user id, nothing else of the user's).
    """

    dataset_group = models.ForeignKey(
        DatasetGroup, on_delete=models.SET_NULL, null=True, blank=True, related_name="user_data_deletions"
    )
    dataset_group_name = models.CharField(max_length=63, help_text="Kept if the group is deleted later.")
    user_id = models.CharField("user id", max_length=256)
    requested_by = models.CharField(
        max_length=200, help_text="Who asked: an API key, a staff user or the command line's OS user."
    )
    requested_via = models.CharField(max_length=20, help_text="graphql, command or admin.")
    requested_at = models.DateTimeField(auto_now_add=True, db_index=True)
    profile_deleted = models.BooleanField(default=False, help_text="Whether a user profile existed.")
    interactions_deleted = models.PositiveIntegerField(default=0)
    recommendation_records_deleted = models.PositiveIntegerField(default=0)
    personalize_status = models.CharField(
        max_length=12, choices=DataDeletionStatus.choices, default=DataDeletionStatus.NOT_NEEDED, blank=True
    )
    personalize_job_name = models.CharField(max_length=63, blank=True)
    personalize_arn = models.CharField("Personalize ARN", max_length=256, blank=True)
    s3_path = models.CharField("S3 path", max_length=256, blank=True, help_text="The USER_ID CSV.")
    failure_reason = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When Personalize's job ended.")

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["dataset_group", "-requested_at"], name="deletion_group_newest")]

    def __str__(self) -> str:
        return f"user {self.user_id} of {self.dataset_group_name} ({self.requested_at:%Y-%m-%d %H:%M})"

    @property
    def is_finished(self) -> bool:
        """True when nothing is left to do on Personalize (not needed, COMPLETED or FAILED)."""
        return self.personalize_status in (
            DataDeletionStatus.NOT_NEEDED,
            DataDeletionStatus.COMPLETED,
            DataDeletionStatus.FAILED,
        )
