"""`manage.py train --recipe RECIPE [--solution NAME] [--dataset-group NAME] [--config JSON] [--hpo]
[--deploy] [--campaign NAME] [--unless-deployed] [--backend local|personalize]`: train a solution
version and optionally deploy it to a campaign.

The solution is reused when it exists (same recipe), else created (default name: the recipe,
prefixed with the group when it is not `default`). Without a broker the training task runs in this
process and prints each step; with one, the command waits for the worker and prints each step it
reports. It ends with the status, the training time and the metrics table, and exits non-zero with
the failure reason when the version is CREATE FAILED. `--deploy` creates or updates the campaign
(default name: the solution's) so it serves the new version and follows later ones.

With `--backend personalize` (the default when `RECSITE_BACKEND=personalize`) the version is
trained on Amazon Personalize (CreateSolution once, CreateSolutionVersion, GetSolutionMetrics) and
`--deploy` runs CreateCampaign with `syncWithLatestSolutionVersion`, or UpdateCampaign for an
existing campaign; the command waits for each to finish, polling every `PERSONALIZE_POLL_SECONDS`.
"""

import json
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from catalog.errors import CatalogError
from catalog.models import DEFAULT_DATASET_GROUP, DatasetGroup
from catalog.selectors import dataset_group_get
from recommendations import services
from recommendations.backends.base import default_backend_name
from recommendations.errors import PersonalizeError, RecommendationError
from recommendations.management.commands._jobs import wait_for
from recommendations.management.commands.metrics import metrics_table, version_summary
from recommendations.models import (
    Campaign,
    CampaignBackend,
    CampaignStatus,
    Solution,
    SolutionVersion,
    SolutionVersionStatus,
)
from recommendations.personalize_jobs import personalize_solution_version_create
from recommendations.personalize_tasks import personalize_campaign_task, personalize_solution_version_task
from recommendations.tasks import create_solution_version_task, training_progress
from recsite.celery import app as celery_app

__all__ = ["Command"]

POLL_SECONDS = 1.0


class Command(BaseCommand):
    """Create (or reuse) a solution, train a version, print its metrics, optionally deploy it."""

    help = "Train a solution version with a Personalize recipe and print its offline metrics."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--recipe", required=True, help="Personalize recipe, e.g. aws-user-personalization"
        )
        parser.add_argument("--solution", help="solution name (created when missing; default: the recipe)")
        parser.add_argument(
            "--dataset-group", default=DEFAULT_DATASET_GROUP, help="dataset group to train on"
        )
        parser.add_argument("--config", help='solutionConfig as JSON, e.g. \'{"eventType": "purchase"}\'')
        parser.add_argument("--hpo", action="store_true", help="perform hyperparameter optimisation")
        parser.add_argument("--deploy", action="store_true", help="deploy the version to a campaign")
        parser.add_argument("--campaign", help="campaign to deploy to (default: the solution's name)")
        parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for a worker")
        parser.add_argument(
            "--backend",
            choices=("local", "personalize"),
            help="where to train and deploy (default: RECSITE_BACKEND)",
        )
        parser.add_argument(
            "--unless-deployed",
            action="store_true",
            help="do nothing when the campaign already serves an ACTIVE version (for `make run`)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            group = dataset_group_get(name=options["dataset_group"])
        except CatalogError as error:
            raise CommandError(str(error)) from None
        config = self._config(options["config"])
        solution = self._solution(group, options, config)
        campaign_name = options["campaign"] or solution.name
        if options["unless_deployed"] and self._serving(campaign_name):
            return
        backend = options["backend"] or default_backend_name()
        on_personalize = backend == CampaignBackend.PERSONALIZE
        where = " on Amazon Personalize" if on_personalize else ""
        self.stdout.write(
            f"Training {solution.name} ({solution.recipe}) on dataset group {group.name!r}{where}..."
        )
        started = time.perf_counter()
        if on_personalize:
            version = self._train_on_personalize(solution)
        else:
            with training_progress(lambda step: self.stdout.write(f"  {step}...")):
                with transaction.atomic():
                    version = services.solution_version_create(solution=solution)
                version = self._wait(version, options["timeout"])
        self.stdout.write(version_summary(version) + f" (wall {time.perf_counter() - started:.1f} s)")
        if version.status != SolutionVersionStatus.ACTIVE:
            raise CommandError(f"{version.status}: {version.failure_reason or 'no reason recorded'}")
        self.stdout.write("Offline metrics (holdout of 10% of users):")
        self.stdout.write(metrics_table(version.metrics))
        if options["deploy"] or options["campaign"]:
            self._deploy(version, campaign_name, backend)

    def _train_on_personalize(self, solution: Solution) -> SolutionVersion:
        """A version trained on Personalize, waited for (its task re-run in-process without a broker)."""
        try:
            with transaction.atomic():
                version = personalize_solution_version_create(solution=solution)
        except (RecommendationError, PersonalizeError) as error:
            raise CommandError(str(error)) from None
        return wait_for(
            model=SolutionVersion,
            pk=version.pk,
            rerun=lambda: personalize_solution_version_task.apply(args=[version.pk]),
            write=self.stdout.write,
        )

    def _config(self, raw: str | None) -> dict[str, Any] | None:
        if raw is None:
            return None
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as error:
            raise CommandError(f"--config is not valid JSON: {error}") from None
        if not isinstance(config, dict):
            raise CommandError("--config must be a JSON object (Personalize's solutionConfig)")
        return config

    def _solution(
        self, group: DatasetGroup, options: dict[str, Any], config: dict[str, Any] | None
    ) -> Solution:
        recipe = options["recipe"]
        name = options["solution"] or (
            recipe if group.name == DEFAULT_DATASET_GROUP else f"{group.name}-{recipe}"
        )
        existing = Solution.objects.filter(name=name).select_related("dataset_group").first()
        if existing is None:
            try:
                solution = services.solution_create(
                    dataset_group=group,
                    name=name,
                    recipe=recipe,
                    solution_config=config,
                    perform_hpo=options["hpo"],
                )
            except RecommendationError as error:
                raise CommandError(str(error)) from None
            self.stdout.write(f"Created solution {name!r}.")
            return solution
        if existing.dataset_group_id != group.pk:
            raise CommandError(f"solution {name!r} belongs to dataset group {existing.dataset_group.name!r}")
        if existing.recipe != recipe:
            raise CommandError(
                f"solution {name!r} uses {existing.recipe}, not {recipe}; choose another --solution"
            )
        if config is not None and config != existing.solution_config:
            raise CommandError(
                f"solution {name!r} exists with another solutionConfig "
                f"({json.dumps(existing.solution_config)}); choose another --solution"
            )
        if options["hpo"] and not existing.perform_hpo:
            raise CommandError(f"solution {name!r} exists without HPO; choose another --solution for --hpo")
        return existing

    def _wait(self, version: SolutionVersion, timeout: float) -> SolutionVersion:
        """The finished version: at once when the task ran in-process, else polled with progress."""
        version.refresh_from_db()
        if not version.is_finished and celery_app.conf.task_always_eager:
            # Inside an outer transaction on_commit has not fired yet; the task is idempotent.
            create_solution_version_task.apply(args=[version.pk])
            version.refresh_from_db()
        if version.is_finished or celery_app.conf.task_always_eager:
            return version
        deadline = time.monotonic() + timeout
        shown = ""
        while not version.is_finished:
            if time.monotonic() > deadline:
                raise CommandError(f"version {version.pk} still {version.status} after {timeout:.0f} s")
            step = f"{version.status}: {version.progress}" if version.progress else version.status
            if step != shown:
                self.stdout.write(f"  {step}")
                shown = step
            time.sleep(POLL_SECONDS)
            version.refresh_from_db()
        return version

    def _serving(self, name: str) -> bool:
        """True (and says so) when campaign `name` already serves an ACTIVE version."""
        campaign = Campaign.objects.filter(
            name=name, solution_version__status=SolutionVersionStatus.ACTIVE
        ).first()
        if campaign is not None:
            self.stdout.write(f"Campaign {name!r} already serves version {campaign.solution_version_id}.")
        return campaign is not None

    def _deploy(self, version: SolutionVersion, name: str, backend: str) -> None:
        campaign = Campaign.objects.filter(name=name).first()
        try:
            with transaction.atomic():
                if campaign is None:
                    campaign = services.campaign_create(
                        name=name, solution_version=version, follows_latest=True, backend=backend
                    )
                    created = True
                else:
                    campaign = services.campaign_update(campaign=campaign, solution_version=version)
                    created = False
        except (RecommendationError, PersonalizeError) as error:
            raise CommandError(str(error)) from None
        if campaign.backend == CampaignBackend.PERSONALIZE:
            self._wait_campaign(campaign, version)
        elif created:
            self.stdout.write(f"Created campaign {name!r} serving version {version.pk}.")
        else:
            self.stdout.write(f"Campaign {name!r} now serves version {version.pk}.")

    def _wait_campaign(self, campaign: Campaign, version: SolutionVersion) -> None:
        """Wait until Personalize has the campaign ACTIVE on the version (CreateCampaign / UpdateCampaign)."""
        eager = bool(celery_app.conf.task_always_eager)
        rerun_kwargs = (
            {} if campaign.solution_version_id == version.pk else {"solution_version_id": version.pk}
        )
        seconds = float(getattr(settings, "PERSONALIZE_POLL_SECONDS", 60))
        earlier_failure = campaign.failure_reason
        last, just_ran = None, False
        while True:
            campaign.refresh_from_db()
            state = (campaign.status, campaign.solution_version_id == version.pk)
            if state != last:
                self.stdout.write(f"  campaign {campaign.name} is {campaign.status} on Amazon Personalize")
                last = state
            failed_now = campaign.failure_reason and campaign.failure_reason != earlier_failure
            if campaign.status == CampaignStatus.FAILED or failed_now:
                raise CommandError(
                    f"campaign {campaign.name!r}: {campaign.failure_reason or campaign.status}"
                )
            if campaign.status == CampaignStatus.ACTIVE and campaign.solution_version_id == version.pk:
                self.stdout.write(
                    f"Campaign {campaign.name!r} serves version {version.pk} on Amazon Personalize."
                )
                return
            if eager and not just_ran:
                personalize_campaign_task.apply(args=[campaign.pk], kwargs=rerun_kwargs)
                just_ran = True
                continue
            time.sleep(seconds)
            just_ran = False
