"""Celery tasks of the recommendations app: train solution versions, retrain on a schedule.

`create_solution_version_task` takes a version id, is safe to deliver twice and records its
outcome on the version row:

1. claim the version (row lock; a finished version, or one a live worker holds, returns at once;
   one left IN_PROGRESS by a dead worker for `RECSITE_TRAINING_STALE_SECONDS` is taken over);
2. read the group's events (`training_data`), check Personalize's minimum data;
3. with `perform_hpo`, tune on a validation split carved from the holdout's training users;
4. offline metrics from a fit on Personalize's holdout (90% of users): recipes that `recommend`
   are scored directly; related-items recipes (`aws-similar-items`) are scored by recommending
   the items related to each test user's newest event; segment recipes
   (`aws-item-affinity`, `aws-item-attribute-affinity`) answer no per-user lists and store no metrics;
5. fit on ALL the data (the model a campaign serves), save the artifact, mark ACTIVE and move
   `follows_latest` campaigns to it.

Recipe and data errors fail the version with their message; transient database errors retry
with backoff (the version goes back to CREATE PENDING meanwhile).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Max
from django.utils import timezone

from catalog.errors import CatalogError
from recommendations.artifacts import artifact_save
from recommendations.engine.base import History, InteractionData, Recipe, RecipeError, Recommendation
from recommendations.engine.evaluate import evaluate
from recommendations.engine.holdout import holdout_split
from recommendations.engine.registry import recipe_class
from recommendations.errors import RecommendationError
from recommendations.models import (
    Solution,
    SolutionVersion,
    SolutionVersionStatus,
    TrainingType,
    hpo_training_jobs,
    solution_hyperparameters,
)
from recommendations.training_data import TrainingData, minimum_data_check, training_data_build

__all__ = [
    "TRAINING_SEED",
    "auto_retrain_task",
    "create_solution_version_task",
    "offline_metrics",
    "outbox_forward_task",
    "outbox_sweep_task",
    "training_progress",
]

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError)
DOMAIN_ERRORS = (RecipeError, RecommendationError, CatalogError)
TRAINING_SEED = 42
_progress_listener: ContextVar[Callable[[str], None] | None] = ContextVar("training_progress", default=None)


@contextmanager
def training_progress(listener: Callable[[str], None]) -> Iterator[None]:
    """Call `listener(step)` for each training step run in-process within the block (for commands)."""
    token = _progress_listener.set(listener)
    try:
        yield
    finally:
        _progress_listener.reset(token)


def _progress(version_id: int, step: str) -> None:
    SolutionVersion.objects.filter(pk=version_id).update(progress=step)
    listener = _progress_listener.get()
    if listener is not None:
        listener(step)


def _claim(version_id: int, *, redelivered: bool = False) -> SolutionVersion | None:
    """Mark the version IN_PROGRESS under a row lock; None when it is finished or being trained.

    A version IN_PROGRESS is left to its worker unless it started over RECSITE_TRAINING_STALE_SECONDS
    ago, or this message is `redelivered`: the broker hands an unacknowledged task out again only
    when the worker holding it died (or after the visibility timeout), so nobody trains it anymore.
    """
    stale = timedelta(seconds=getattr(settings, "RECSITE_TRAINING_STALE_SECONDS", 3600))
    with transaction.atomic():
        version = (
            SolutionVersion.objects.select_for_update()
            .select_related("solution__dataset_group")
            .get(pk=version_id)
        )
        if version.is_finished:
            return None
        in_progress = version.status == SolutionVersionStatus.IN_PROGRESS
        fresh = version.started_at and timezone.now() - version.started_at < stale
        if in_progress and fresh and not redelivered:
            return None
        version.status = SolutionVersionStatus.IN_PROGRESS
        version.started_at = timezone.now()
        version.progress = "starting"
        version.save(update_fields=["status", "started_at", "progress"])
    return version


@shared_task(bind=True, acks_late=True, max_retries=3)
def create_solution_version_task(self: Any, version_id: int) -> str:
    """Train a SolutionVersion (CREATE PENDING → CREATE IN_PROGRESS → ACTIVE | CREATE FAILED)."""
    try:
        version = _claim(version_id, redelivered=bool((self.request.delivery_info or {}).get("redelivered")))
    except TRANSIENT_ERRORS as error:
        raise self.retry(exc=error, countdown=2 ** (self.request.retries + 2)) from error
    if version is None:
        return SolutionVersion.objects.values_list("status", flat=True).get(pk=version_id)
    try:
        outcome = _train(version)
    except DOMAIN_ERRORS as error:
        _fail(version, str(error))
        return SolutionVersionStatus.FAILED
    except TRANSIENT_ERRORS as error:
        if self.request.retries >= self.max_retries:
            _fail(version, f"database unavailable: {error}")
            raise
        SolutionVersion.objects.filter(pk=version.pk).update(
            status=SolutionVersionStatus.PENDING, progress=f"retrying after: {error}", started_at=None
        )
        raise self.retry(exc=error, countdown=2 ** (self.request.retries + 2)) from error
    except Exception as error:
        _fail(version, f"internal error while training: {type(error).__name__}: {error}")
        raise
    return _finish(version, outcome)


def _train(version: SolutionVersion) -> dict[str, Any]:
    """Read, check, tune, evaluate, fit and save; returns the fields to record."""
    started = time.perf_counter()
    solution = version.solution
    config = version.solution_config or solution.solution_config
    cls = recipe_class(solution.recipe)
    hyperparameters = solution_hyperparameters(config)
    _progress(version.pk, "reading interactions and metadata")
    training = training_data_build(dataset_group=solution.dataset_group, solution_config=config)
    minimum_data_check(training)
    tuned: dict[str, Any] = {}
    if solution.perform_hpo:
        _progress(version.pk, "tuning hyperparameters on a validation split")
        hyperparameters, tuned = _tune(cls, training, hyperparameters, hpo_training_jobs(config))
    _progress(version.pk, "computing offline metrics on the holdout")
    metrics = offline_metrics(cls, hyperparameters, training)
    _progress(version.pk, "training on all data")
    recipe = cls(hyperparameters, seed=TRAINING_SEED)
    recipe.fit(training.data)
    _progress(version.pk, "saving the model")
    manifest = {"solution_config": config, "hyperparameters": recipe.hyperparameters}
    artifact = artifact_save(version_id=version.pk, recipe=recipe, training=training, manifest=manifest)
    return {
        "artifact": artifact,
        "metrics": metrics,
        "tuned_hpo_params": tuned,
        "training_seconds": round(time.perf_counter() - started, 3),
        "interactions_count": training.interactions_count,
        "users_count": training.users_count,
        "items_count": training.items_count,
    }


def _tune(
    cls: type[Recipe], training: TrainingData, hyperparameters: dict[str, str], budget: int
) -> tuple[dict[str, str], dict[str, Any]]:
    """Hyperparameters tuned on the holdout's training users only (never the metric's test users)."""
    tune = getattr(cls, "tune", None)
    if tune is None or not getattr(cls, "hpo_grid", None):
        return hyperparameters, {}
    train = holdout_split(training.data, seed=TRAINING_SEED, user_ids=training.user_ids).train
    chosen = tune(train, budget, seed=TRAINING_SEED, base=hyperparameters)
    return dict(chosen), {"algorithmHyperParameters": dict(chosen)}


class _RelatedItemsAsRecommender(Recipe):
    """Scores a related-items recipe on the holdout: items related to the user's newest event."""

    name = "related-items-evaluation"

    def __init__(self, inner: Recipe) -> None:
        super().__init__()
        self.inner = inner

    def fit(self, data: InteractionData) -> None:
        """Fit the wrapped recipe."""
        self.inner.fit(data)

    def recommend(
        self, history: History, *, n: int, candidates: np.ndarray | None = None, now: int | None = None
    ) -> Recommendation:
        """Items related to the newest event (popular items for an empty history)."""
        newest = int(history.item[-1]) if len(history.item) else -1
        return self.inner.similar(newest, n=n, candidates=candidates, now=now)

    def _save(self, folder: Path) -> dict[str, Any]:  # pragma: no cover - never saved
        raise NotImplementedError

    def _load(self, folder: Path, state: dict[str, Any], *, mmap: bool) -> None:  # pragma: no cover
        raise NotImplementedError


def offline_metrics(
    cls: type[Recipe], hyperparameters: dict[str, str], training: TrainingData
) -> dict[str, float]:
    """Personalize's metrics on the protocol's holdout ({} for segment recipes, which answer no lists)."""
    if cls.recommend is not Recipe.recommend:

        def factory() -> Recipe:
            return cls(hyperparameters, seed=TRAINING_SEED)

    elif cls.similar is not Recipe.similar:

        def factory() -> Recipe:
            return _RelatedItemsAsRecommender(cls(hyperparameters, seed=TRAINING_SEED))

    else:
        return {}
    metrics = evaluate(factory, training.data, seed=TRAINING_SEED, user_ids=training.user_ids)
    return {name: round(float(value), 6) for name, value in metrics.items()}


def _fail(version: SolutionVersion, reason: str) -> None:
    SolutionVersion.objects.filter(pk=version.pk).update(
        status=SolutionVersionStatus.FAILED, failure_reason=reason, progress="", finished_at=timezone.now()
    )


def _finish(version: SolutionVersion, outcome: dict[str, Any]) -> str:
    from recommendations.services import campaigns_follow_version

    with transaction.atomic():
        current = SolutionVersion.objects.select_for_update().get(pk=version.pk)
        if current.is_finished or current.started_at != version.started_at:
            return current.status  # another delivery took over and recorded its own result
        for name, value in outcome.items():
            setattr(current, name, value)
        current.status = SolutionVersionStatus.ACTIVE
        current.failure_reason = ""
        current.progress = ""
        current.finished_at = timezone.now()
        current.save()
        campaigns_follow_version(version=current)
    return current.status


@shared_task(acks_late=True)
def auto_retrain_task() -> list[int]:
    """Retrain each auto-training solution whose newest version is older than its interval (beat).

    A local solution gets a new AUTOMATIC version trained by the local engine. A solution that
    lives on Amazon Personalize (it has a `personalize_arn`: CreateSolution ran there) is never
    trained locally: `personalize_jobs.personalize_auto_training` leaves it to Personalize's own
    automatic training when the solution has it on (what CreateSolution asks for, and what
    Personalize users expect: one schedule, one training bill) and records the versions Personalize
    started; otherwise it runs CreateSolutionVersion when due. Only solutions with an ARN lead to
    AWS calls, so a machine with nothing on Personalize (and no AWS settings) makes none. An AWS
    error is logged and the solution is looked at again on the next run.
    """
    from recommendations.errors import PersonalizeError
    from recommendations.personalize_jobs import personalize_auto_training
    from recommendations.services import solution_version_create

    now = timezone.now()
    created: list[int] = []
    solutions = Solution.objects.filter(perform_auto_training=True).annotate(
        newest=Max("versions__created_at")
    )
    for solution in solutions:
        busy = solution.versions.filter(
            status__in=(SolutionVersionStatus.PENDING, SolutionVersionStatus.IN_PROGRESS)
        ).exists()
        due = not solution.newest or now - solution.newest >= timedelta(days=solution.auto_training_days)
        if busy or not due:
            continue
        if solution.personalize_arn:
            try:
                with transaction.atomic():
                    created += personalize_auto_training(solution=solution, due=due)
            except (PersonalizeError, RecommendationError) as error:
                logger.warning("auto training of %s on Personalize skipped: %s", solution.name, error)
            continue
        with transaction.atomic():
            version = solution_version_create(solution=solution, training_type=TrainingType.AUTOMATIC)
        created.append(version.pk)
    return created


# --- The outbox to Amazon Personalize (issue 5; logic in recommendations/outbox.py) -------------------

OUTBOX_IN_PROCESS_RETRIES = 2
"""Without a broker a retry runs at once, in the request: only this many, then the rows wait for the
next flush of the group (or the sweep, where a worker runs)."""


@shared_task(bind=True, acks_late=True, max_retries=None)
def outbox_forward_task(self: Any, dataset_group_id: int, retry: bool = True) -> Any:
    """Forward the group's pending events, items and users to Personalize; retry throttling with backoff.

    `retry=False` (the sweep's runs) leaves a transient failure to the next sweep instead.
    """
    from recommendations.errors import PersonalizeRetryableError
    from recommendations.outbox import outbox_forward, outbox_retry_countdown

    try:
        report = outbox_forward(dataset_group_id=dataset_group_id)
    except (PersonalizeRetryableError, *TRANSIENT_ERRORS) as error:
        limit = (
            OUTBOX_IN_PROCESS_RETRIES
            if self.request.is_eager
            else getattr(settings, "RECSITE_OUTBOX_MAX_RETRIES", 8)
        )
        if not retry or self.request.retries >= limit:
            logger.warning("outbox of group %s left pending: %r", dataset_group_id, error)
            return {"left_pending": True, "error": str(error)}
        countdown = outbox_retry_countdown(self.request.retries)
        if self.request.is_eager:
            # In-process there is no worker to wait for: Celery replays the returned retry at once.
            return self.retry(exc=error, countdown=countdown, throw=False)
        raise self.retry(exc=error, countdown=countdown) from error
    if report.more and not self.request.is_eager:
        transaction.on_commit(lambda: outbox_forward_task.delay(dataset_group_id, retry=retry))
    return report.as_dict()


@shared_task(acks_late=True)
def outbox_sweep_task() -> list[int]:
    """Re-enqueue the outbox of every group on Personalize with unsent rows (beat, every minute)."""
    from recommendations.outbox import outbox_groups_pending

    groups = outbox_groups_pending()
    for group_id in groups:
        # The sweep is itself the slow retry loop: its runs do not start retry chains of their own.
        transaction.on_commit(_outbox_sweep_run(group_id), robust=True)
    return groups


def _outbox_sweep_run(group_id: int) -> Callable[[], None]:
    def enqueue_sweep_run() -> None:
        outbox_forward_task.delay(group_id, retry=False)

    return enqueue_sweep_run


# Amazon Personalize jobs and batch jobs live in their own module; imported here so the worker registers them.
from recommendations import personalize_tasks as personalize_tasks  # noqa: E402
