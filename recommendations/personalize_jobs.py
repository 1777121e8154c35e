"""Amazon Personalize's long-running work as idempotent steps: provision, export + import, train, deploy.

Each `*_step` function takes a row id, makes only the AWS calls still missing and records what it
learnt on the row: an ARN already recorded is reused, and a resource that already exists on
Personalize under our deterministic name (a previous run died between the call and the save) is
looked up by name instead of created twice. It then reads the resource's status and returns a
`Step`: finished (ACTIVE or CREATE FAILED, recorded with Personalize's `failureReason`) or still
waiting, in which case the Celery task (`personalize_tasks.py`) runs the same step again later
with a countdown — no worker sleeps in a loop.

AWS errors come from `backends/aws.py` as domain errors: `PersonalizeRetryableError` propagates so
the task retries with backoff; any other `PersonalizeError` (not found, invalid input, limit,
configuration) and refusals of our own are recorded on the row by the matching `*_fail` function.

The export writes Personalize's CSV with `catalog.exporting` and uploads it with server-side
encryption (SSE-S3, or SSE-KMS with `PERSONALIZE_KMS_KEY_ARN`). A FULL import carries every item
and user, and every interaction the outbox has not streamed (`forward_state` NONE): Personalize
keeps events recorded through PutEvents apart from bulk data (a FULL import replaces only the bulk
data, "not data you imported individually, including events recorded in real time"), so an event
that is both streamed and imported would count twice there. An INCREMENTAL import carries items
and users updated since the previous import of the dataset and the bulk-imported interactions
added since (never streamed ones either).
"""

from __future__ import annotations

import hashlib
import secrets
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Max
from django.utils import timezone

from catalog.exporting import ExportScope, dataset_csv_write, dataset_fields
from catalog.models import DatasetGroup, EndUser, ForwardState, Interaction, Item, RecordSource
from catalog.schemas import DatasetType, avro_schema_json
from recommendations.backends.aws import aws_call, personalize_client, s3_client, s3_server_side_encryption
from recommendations.errors import (
    PersonalizeAlreadyExistsError,
    PersonalizeConfigError,
    RecommendationError,
)
from recommendations.models import (
    BatchJob,
    Campaign,
    CampaignBackend,
    CampaignStatus,
    EventTracker,
    Filter,
    FilterStatus,
    PersonalizeDatasetGroup,
    PersonalizeImportJob,
    PersonalizeImportMode,
    PersonalizeStatus,
    Solution,
    SolutionVersion,
    SolutionVersionStatus,
    TrainingMode,
    TrainingType,
    campaign_config_clean,
)

__all__ = [
    "DATASET_TYPE_NAMES",
    "MAX_NAME_LENGTH",
    "PersonalizeJobError",
    "Step",
    "batch_job_personalize_step",
    "campaign_deploy_step",
    "campaign_fail",
    "dataset_group_fail",
    "dataset_group_provision_step",
    "filter_fail",
    "filter_status_step",
    "import_job_fail",
    "import_job_step",
    "incremental_import_candidates",
    "personalize_auto_training",
    "personalize_campaign_create",
    "personalize_campaign_update",
    "personalize_import_start",
    "personalize_provision_start",
    "personalize_solution_version_create",
    "personalize_status",
    "recipe_arn",
    "solution_create_params",
    "solution_version_fail",
    "solution_version_step",
]

MAX_NAME_LENGTH = 63
# Personalize's datasetType for each of our dataset types.
DATASET_TYPE_NAMES = {
    DatasetType.INTERACTIONS: "Interactions",
    DatasetType.ITEMS: "Items",
    DatasetType.USERS: "Users",
}


class PersonalizeJobError(RecommendationError):
    """A Personalize job Recsite refuses to start or continue (the message says why)."""


@dataclass(frozen=True)
class Step:
    """What one run of a step found: the row's status now, and whether to look again later."""

    status: str
    waiting: bool = False
    detail: str = ""


def personalize_status(raw: str | None) -> str:
    """Personalize's status word as one of PersonalizeStatus (UPDATE/DELETE states included)."""
    value = (raw or "").upper()
    if value == "ACTIVE":
        return PersonalizeStatus.ACTIVE
    if value.endswith("FAILED") or value.startswith("DELETE"):
        return PersonalizeStatus.FAILED
    if "IN_PROGRESS" in value or "IN PROGRESS" in value:
        return PersonalizeStatus.IN_PROGRESS
    return PersonalizeStatus.PENDING


def recipe_arn(recipe: str) -> str:
    """A Personalize recipe's ARN from its name: `aws-sims` → `arn:aws:personalize:::recipe/aws-sims`."""
    return f"arn:aws:personalize:::recipe/{recipe}"


def _name(base: str, *suffix: str) -> str:
    """`base-suffix...` within Personalize's 63 characters (the base is shortened, never the suffix)."""
    tail = "-".join(part for part in suffix if part)
    room = MAX_NAME_LENGTH - (len(tail) + 1 if tail else 0)
    return f"{base[:room]}-{tail}" if tail else base[:MAX_NAME_LENGTH]


def _setting(name: str) -> str:
    value = (getattr(settings, name, "") or "").strip()
    if not value:
        raise PersonalizeConfigError(name, "is not set; the Personalize backend needs it")
    return value


def _kms_key() -> str:
    return (getattr(settings, "PERSONALIZE_KMS_KEY_ARN", "") or "").strip()


def _s3_prefix() -> str:
    return (getattr(settings, "PERSONALIZE_S3_PREFIX", "recsite") or "").strip("/")


def _find(operation: str, key: str, match: Callable[[dict[str, Any]], bool], **params: Any) -> dict | None:
    """The first entry of a paginated List* call that `match`es, or None."""
    client = personalize_client()
    token: str | None = None
    while True:
        page = aws_call(client, operation, **params, **({"nextToken": token} if token else {}))
        for entry in page.get(key) or []:
            if match(entry):
                return entry
        token = page.get("nextToken")
        if not token:
            return None


def _create_or_find(
    create: Callable[[], dict[str, Any]], find: Callable[[], dict[str, Any] | None], what: str
) -> dict[str, Any]:
    """Call `create`; when the name already exists on Personalize, the existing resource from `find`."""
    try:
        return create()
    except PersonalizeAlreadyExistsError as error:
        found = find()
        if found is None:
            raise PersonalizeJobError(
                f"{what} already exists on Personalize but was not found by name"
            ) from error
        return found


def _update(instance: Any, **fields: Any) -> None:
    """Set and save only these fields (other fields may be changed by other processes)."""
    for name, value in fields.items():
        setattr(instance, name, value)
    type(instance).objects.filter(pk=instance.pk).update(**fields)


# --- provisioning ---------------------------------------------------------------------------------


def personalize_provision_start(
    *, dataset_group: DatasetGroup, name: str | None = None
) -> PersonalizeDatasetGroup:
    """Record the group's Personalize side (or restart a failed one) and enqueue its provisioning."""
    from recommendations.personalize_tasks import personalize_provision_task

    group, _ = PersonalizeDatasetGroup.objects.get_or_create(
        dataset_group=dataset_group, defaults={"name": name or dataset_group.name}
    )
    if group.status == PersonalizeStatus.FAILED:
        _update(group, status=PersonalizeStatus.PENDING, failure_reason="", progress="")
    transaction.on_commit(lambda: personalize_provision_task.delay(group.pk))
    return group


def _provisioned_types(group: DatasetGroup) -> list[tuple[DatasetType, str]]:
    """(dataset type, Avro schema JSON) of each dataset Personalize can hold for this group.

    Interactions always; items and users when their schema has a metadata field (Personalize
    refuses an items or users schema with the id alone).
    """
    found = []
    for dataset_type in DatasetType:
        fields = dataset_fields(group=group, dataset_type=dataset_type)
        if fields is None:
            continue
        if dataset_type is not DatasetType.INTERACTIONS and not any(spec.is_metadata for spec in fields):
            continue
        found.append((dataset_type, avro_schema_json(dataset_type, fields)))
    return found


def dataset_group_provision_step(*, personalize_group_id: int) -> Step:
    """Create (or find) the dataset group, schemas, datasets and event tracker; wait until all are ACTIVE."""
    row = PersonalizeDatasetGroup.objects.select_related("dataset_group").get(pk=personalize_group_id)
    if row.is_finished:
        return Step(row.status)
    client = personalize_client()

    if not row.dataset_group_arn:
        params: dict[str, Any] = {"name": row.name}
        if _kms_key():
            params.update(kmsKeyArn=_kms_key(), roleArn=_setting("PERSONALIZE_ROLE_ARN"))
        response = _create_or_find(
            lambda: aws_call(client, "create_dataset_group", **params),
            lambda: _find("list_dataset_groups", "datasetGroups", lambda e: e.get("name") == row.name),
            f"dataset group {row.name!r}",
        )
        _update(row, dataset_group_arn=response["datasetGroupArn"])
    described = aws_call(client, "describe_dataset_group", datasetGroupArn=row.dataset_group_arn)[
        "datasetGroup"
    ]
    status = personalize_status(described.get("status"))
    if status == PersonalizeStatus.FAILED:
        return _group_failed(
            row, described.get("failureReason") or f"dataset group is {described.get('status')}"
        )
    if status != PersonalizeStatus.ACTIVE:
        return _group_waiting(row, status, "the dataset group")

    schema_arns, dataset_arns = dict(row.schema_arns), dict(row.dataset_arns)
    for dataset_type, schema in _provisioned_types(row.dataset_group):
        key = dataset_type.value
        if key not in schema_arns:
            # Schemas are immutable: the name carries the content's hash, so an existing name is this schema.
            schema_name = _name(row.name, key, hashlib.sha256(schema.encode()).hexdigest()[:10])
            response = _create_or_find(
                lambda schema_name=schema_name, schema=schema: aws_call(
                    client, "create_schema", name=schema_name, schema=schema
                ),
                lambda schema_name=schema_name: _find(
                    "list_schemas", "schemas", lambda e: e.get("name") == schema_name
                ),
                f"schema {schema_name!r}",
            )
            schema_arns[key] = response["schemaArn"]
            _update(row, schema_arns=schema_arns)
        if key not in dataset_arns:
            type_name = DATASET_TYPE_NAMES[dataset_type]
            response = _create_or_find(
                lambda key=key, type_name=type_name: aws_call(
                    client,
                    "create_dataset",
                    name=_name(row.name, key),
                    schemaArn=schema_arns[key],
                    datasetGroupArn=row.dataset_group_arn,
                    datasetType=type_name,
                ),
                lambda type_name=type_name: _find(
                    "list_datasets",
                    "datasets",
                    lambda e: str(e.get("datasetType", "")).lower() == type_name.lower(),
                    datasetGroupArn=row.dataset_group_arn,
                ),
                f"{type_name} dataset of {row.name!r}",
            )
            dataset_arns[key] = response["datasetArn"]
            _update(row, dataset_arns=dataset_arns)
    for key, arn in dataset_arns.items():
        described = aws_call(client, "describe_dataset", datasetArn=arn)["dataset"]
        status = personalize_status(described.get("status"))
        if status == PersonalizeStatus.FAILED:
            return _group_failed(row, f"the {key} dataset is {described.get('status')}")
        if status != PersonalizeStatus.ACTIVE:
            return _group_waiting(row, status, f"the {key} dataset")

    tracker = _event_tracker(row)
    described = aws_call(client, "describe_event_tracker", eventTrackerArn=tracker.personalize_arn)[
        "eventTracker"
    ]
    status = personalize_status(described.get("status"))
    if status == PersonalizeStatus.FAILED:
        _update(tracker, status=CampaignStatus.FAILED)
        return _group_failed(row, f"the event tracker is {described.get('status')}")
    if status != PersonalizeStatus.ACTIVE:
        return _group_waiting(row, status, "the event tracker")
    _update(tracker, status=CampaignStatus.ACTIVE)
    _update(row, status=PersonalizeStatus.ACTIVE, failure_reason="", progress="")
    return Step(PersonalizeStatus.ACTIVE)


def _event_tracker(row: PersonalizeDatasetGroup) -> EventTracker:
    """The group's tracker, created on Personalize (ARN and trackingId recorded) if it is not yet."""
    from recommendations.tracking import event_tracker_create

    tracker = EventTracker.objects.filter(dataset_group_id=row.dataset_group_id).first()
    if tracker is None:
        tracker = event_tracker_create(
            dataset_group=row.dataset_group, name=_name(row.dataset_group.name, "events")
        )
    if tracker.personalize_arn:
        return tracker
    client = personalize_client()

    def find() -> dict[str, Any] | None:
        entry = _find(
            "list_event_trackers",
            "eventTrackers",
            lambda e: e.get("name") == tracker.name,
            datasetGroupArn=row.dataset_group_arn,
        )
        if entry is None:
            return None
        described = aws_call(client, "describe_event_tracker", eventTrackerArn=entry["eventTrackerArn"])
        return described["eventTracker"]

    response = _create_or_find(
        lambda: aws_call(
            client, "create_event_tracker", name=tracker.name, datasetGroupArn=row.dataset_group_arn
        ),
        find,
        f"event tracker {tracker.name!r}",
    )
    _update(
        tracker,
        personalize_arn=response["eventTrackerArn"],
        personalize_tracking_id=response["trackingId"],
        backend=CampaignBackend.PERSONALIZE,
        status=CampaignStatus.PENDING,
    )
    return tracker


def _group_waiting(row: PersonalizeDatasetGroup, status: str, what: str) -> Step:
    progress = f"waiting for {what} ({status})"
    _update(row, status=PersonalizeStatus.IN_PROGRESS, progress=progress)
    return Step(PersonalizeStatus.IN_PROGRESS, waiting=True, detail=progress)


def _group_failed(row: PersonalizeDatasetGroup, reason: str) -> Step:
    dataset_group_fail(personalize_group_id=row.pk, reason=reason)
    return Step(PersonalizeStatus.FAILED, detail=reason)


def dataset_group_fail(*, personalize_group_id: int, reason: str) -> None:
    """Record that provisioning failed, with the reason."""
    PersonalizeDatasetGroup.objects.filter(pk=personalize_group_id).update(
        status=PersonalizeStatus.FAILED, failure_reason=reason, progress="", updated_at=timezone.now()
    )


# --- export + import ------------------------------------------------------------------------------


def _active_group(dataset_group: DatasetGroup) -> PersonalizeDatasetGroup:
    row = PersonalizeDatasetGroup.objects.filter(dataset_group=dataset_group).first()
    if row is None or not row.dataset_group_arn:
        raise PersonalizeJobError(
            f"dataset group {dataset_group.name!r} is not provisioned on Personalize "
            "(run manage.py personalize_provision)"
        )
    return row


def personalize_import_start(
    *,
    dataset_group: DatasetGroup,
    mode: str = PersonalizeImportMode.FULL,
    dataset_types: list[str] | None = None,
) -> list[PersonalizeImportJob]:
    """One import job per dataset of the group on Personalize (all, or those named); enqueued on commit."""
    from recommendations.personalize_tasks import personalize_import_task

    if mode not in PersonalizeImportMode.values:
        raise PersonalizeJobError(f"importMode must be one of {', '.join(PersonalizeImportMode.values)}")
    group = _active_group(dataset_group)
    wanted = list(dataset_types or group.dataset_arns)
    unknown = [name for name in wanted if name not in group.dataset_arns]
    if unknown:
        raise PersonalizeJobError(
            f"dataset group {dataset_group.name!r} has no {unknown[0]} dataset on Personalize "
            f"(it has: {', '.join(sorted(group.dataset_arns)) or 'none yet'})"
        )
    jobs = []
    stamp = timezone.now().strftime("%Y%m%d%H%M%S")
    for dataset_type in wanted:
        job = PersonalizeImportJob.objects.create(
            personalize_group=group,
            dataset_type=dataset_type,
            import_mode=mode,
            job_name=_name(group.name, dataset_type, mode.lower()[:4], stamp, secrets.token_hex(3)),
        )
        transaction.on_commit(lambda job=job: personalize_import_task.delay(job.pk))
        jobs.append(job)
    return jobs


def _previous_import(job: PersonalizeImportJob) -> PersonalizeImportJob | None:
    return (
        PersonalizeImportJob.objects.filter(
            personalize_group_id=job.personalize_group_id,
            dataset_type=job.dataset_type,
            status=PersonalizeStatus.ACTIVE,
            exported_at__isnull=False,
        )
        .exclude(pk=job.pk)
        .order_by("-exported_at", "-id")
        .first()
    )


def _export_scope(job: PersonalizeImportJob, group: DatasetGroup) -> tuple[ExportScope, dict[str, Any]]:
    """The rows this job carries, and the fields recording that window on the job."""
    through = Interaction.objects.filter(dataset_group=group).aggregate(top=Max("pk"))["top"] or 0
    # Events the outbox sent (or will send, or Personalize refused) are Personalize's individual
    # records already; bulk data carries only those it never saw.
    not_streamed = (ForwardState.NONE.value,)
    if job.import_mode == PersonalizeImportMode.FULL:
        scope = ExportScope(interactions_through_id=through, interaction_forward_states=not_streamed)
        return scope, {"interactions_through_id": through}
    previous = _previous_import(job)
    if previous is None:
        raise PersonalizeJobError(
            f"the first import of the {job.dataset_type} dataset must be FULL (Personalize's rule)"
        )
    after = previous.interactions_through_id or 0
    scope = ExportScope(
        changed_since=previous.exported_at,
        interactions_after_id=after,
        interactions_through_id=max(through, after),
        interaction_sources=(RecordSource.IMPORT.value,),
        interaction_forward_states=not_streamed,
    )
    recorded = {
        "changed_since": previous.exported_at,
        "interactions_after_id": after,
        "interactions_through_id": max(through, after),
    }
    return scope, recorded


def _s3_key(job: PersonalizeImportJob, group_name: str) -> str:
    parts = [_s3_prefix(), group_name, "imports", job.job_name, f"{job.dataset_type}.csv"]
    return "/".join(part for part in parts if part)


def _export(job: PersonalizeImportJob) -> int:
    """Write the job's CSV and upload it to S3 with server-side encryption; returns its rows."""
    bucket = _setting("PERSONALIZE_S3_BUCKET")
    personalize_group = job.personalize_group
    group = personalize_group.dataset_group
    exported_at = timezone.now()
    scope, recorded = _export_scope(job, group)
    key = _s3_key(job, personalize_group.name)
    with tempfile.TemporaryDirectory(prefix="recsite-export-") as folder:
        path = Path(folder) / f"{job.dataset_type}.csv"
        rows = dataset_csv_write(
            group=group, dataset_type=DatasetType(job.dataset_type), path=path, scope=scope
        )
        if rows is None:
            raise PersonalizeJobError(f"dataset group {group.name!r} has no {job.dataset_type} schema")
        if rows:
            with path.open("rb") as body:
                aws_call(
                    s3_client(),
                    "put_object",
                    Bucket=bucket,
                    Key=key,
                    Body=body,
                    ContentType="text/csv",
                    **s3_server_side_encryption(),
                )
    _update(
        job, s3_path=f"s3://{bucket}/{key}" if rows else "", rows=rows, exported_at=exported_at, **recorded
    )
    return rows


def import_job_step(*, import_job_id: int) -> Step:
    """Export the dataset to S3 (once), start CreateDatasetImportJob (once), record its outcome."""
    job = PersonalizeImportJob.objects.select_related("personalize_group__dataset_group").get(
        pk=import_job_id
    )
    if job.is_finished:
        return Step(job.status)
    group = job.personalize_group
    if group.status != PersonalizeStatus.ACTIVE:
        if group.status == PersonalizeStatus.FAILED:
            raise PersonalizeJobError(f"provisioning of {group.name!r} failed: {group.failure_reason}")
        return Step(job.status, waiting=True, detail=f"waiting for dataset group {group.name!r} to be ACTIVE")
    dataset_arn = group.dataset_arns.get(job.dataset_type)
    if not dataset_arn:
        raise PersonalizeJobError(f"{group.name!r} has no {job.dataset_type} dataset on Personalize")
    if job.rows is None:
        rows = _export(job)
        if rows == 0:
            if job.import_mode == PersonalizeImportMode.FULL:
                raise PersonalizeJobError(f"nothing to import: the {job.dataset_type} dataset has no rows")
            _update(job, status=PersonalizeStatus.ACTIVE, finished_at=timezone.now())
            return Step(PersonalizeStatus.ACTIVE, detail="no rows changed since the previous import")
    if job.rows == 0:  # an INCREMENTAL job with nothing to carry was already finished above
        return Step(PersonalizeStatus.ACTIVE)
    client = personalize_client()
    if not job.personalize_arn:
        role = _setting("PERSONALIZE_ROLE_ARN")
        response = _create_or_find(
            lambda: aws_call(
                client,
                "create_dataset_import_job",
                jobName=job.job_name,
                datasetArn=dataset_arn,
                dataSource={"dataLocation": job.s3_path},
                roleArn=role,
                importMode=job.import_mode,
            ),
            lambda: _find(
                "list_dataset_import_jobs",
                "datasetImportJobs",
                lambda e: e.get("jobName") == job.job_name,
                datasetArn=dataset_arn,
            ),
            f"import job {job.job_name!r}",
        )
        _update(job, personalize_arn=response["datasetImportJobArn"])
    described = aws_call(client, "describe_dataset_import_job", datasetImportJobArn=job.personalize_arn)
    return _job_outcome(job, described["datasetImportJob"])


def _job_outcome(job: PersonalizeImportJob | BatchJob, described: Mapping[str, Any]) -> Step:
    status = personalize_status(described.get("status"))
    if status == PersonalizeStatus.FAILED:
        reason = described.get("failureReason") or f"Personalize reports {described.get('status')}"
        _update(job, status=status, failure_reason=reason, finished_at=timezone.now())
        return Step(status, detail=reason)
    if status == PersonalizeStatus.ACTIVE:
        _update(job, status=status, failure_reason="", finished_at=timezone.now())
        return Step(status)
    _update(job, status=status)
    return Step(status, waiting=True, detail=f"Personalize reports {described.get('status')}")


def import_job_fail(*, import_job_id: int, reason: str) -> None:
    """Record that an import job failed, with the reason."""
    PersonalizeImportJob.objects.filter(pk=import_job_id).update(
        status=PersonalizeStatus.FAILED, failure_reason=reason, finished_at=timezone.now()
    )


def incremental_import_candidates() -> list[tuple[DatasetGroup, list[str]]]:
    """(group, dataset types) with rows changed since their last ACTIVE import and no import running."""
    found = []
    for group in PersonalizeDatasetGroup.objects.filter(status=PersonalizeStatus.ACTIVE).select_related(
        "dataset_group"
    ):
        types = []
        for dataset_type in sorted(group.dataset_arns):
            jobs = group.import_jobs.filter(dataset_type=dataset_type)
            if jobs.exclude(status__in=(PersonalizeStatus.ACTIVE, PersonalizeStatus.FAILED)).exists():
                continue
            previous = (
                jobs.filter(status=PersonalizeStatus.ACTIVE, exported_at__isnull=False)
                .order_by("-exported_at", "-id")
                .first()
            )
            if previous is not None and _changed_since(group.dataset_group, dataset_type, previous):
                types.append(dataset_type)
        if types:
            found.append((group.dataset_group, types))
    return found


def _changed_since(group: DatasetGroup, dataset_type: str, previous: PersonalizeImportJob) -> bool:
    if dataset_type == DatasetType.INTERACTIONS:
        return Interaction.objects.filter(
            dataset_group=group, pk__gt=previous.interactions_through_id or 0, source=RecordSource.IMPORT
        ).exists()
    model = Item if dataset_type == DatasetType.ITEMS else EndUser
    return (
        model.objects.filter(dataset_group=group, updated_at__gt=previous.exported_at)
        .exclude(source=RecordSource.IMPLICIT)
        .exists()
    )


# --- training ---------------------------------------------------------------------------------------


def solution_create_params(*, solution: Solution, dataset_group_arn: str) -> dict[str, Any]:
    """CreateSolution's request for a solution: recipe ARN, performHPO, eventType, solutionConfig."""
    config = dict(solution.solution_config or {})
    params: dict[str, Any] = {
        "name": solution.name,
        "datasetGroupArn": dataset_group_arn,
        "recipeArn": recipe_arn(solution.recipe),
        "performHPO": bool(solution.perform_hpo),
        "performAutoTraining": bool(solution.perform_auto_training),
    }
    event_type = config.pop("eventType", None)  # a top-level parameter of CreateSolution
    if event_type:
        params["eventType"] = str(event_type)
    if solution.perform_auto_training:
        config["autoTrainingConfig"] = {"schedulingExpression": solution.scheduling_expression}
    else:
        config.pop("autoTrainingConfig", None)
    if "eventValueThreshold" in config:
        config["eventValueThreshold"] = str(config["eventValueThreshold"])
    hpo = config.get("hpoConfig")
    if isinstance(hpo, Mapping) and isinstance(hpo.get("hpoResourceConfig"), Mapping):
        resources = {key: str(value) for key, value in hpo["hpoResourceConfig"].items()}
        config["hpoConfig"] = {**hpo, "hpoResourceConfig": resources}
    if config:
        params["solutionConfig"] = config
    return params


def personalize_solution_version_create(
    *,
    solution: Solution,
    training_mode: str = TrainingMode.FULL,
    training_type: str = TrainingType.MANUAL,
) -> SolutionVersion:
    """A version to train on Personalize (CREATE PENDING); its task is enqueued on commit."""
    from recommendations.personalize_tasks import personalize_solution_version_task

    if training_mode not in TrainingMode.values:
        raise PersonalizeJobError(f"trainingMode must be one of {', '.join(TrainingMode.values)}")
    _active_group(solution.dataset_group)
    version = SolutionVersion.objects.create(
        solution=solution,
        training_mode=training_mode,
        training_type=training_type,
        solution_config=solution.solution_config,
    )
    transaction.on_commit(lambda: personalize_solution_version_task.delay(version.pk))
    return version


def _choice(value: Any, choices: type[models.TextChoices], default: str) -> str:
    return value if value in choices.values else default


def personalize_auto_training(*, solution: Solution, due: bool) -> list[int]:
    """Weekly retraining of a solution that lives on Personalize; ids of the versions recorded.

    Personalize users expect Personalize's own automatic training: CreateSolution sends
    `performAutoTraining` with `autoTrainingConfig.schedulingExpression` `rate(N days)`, and
    Personalize then trains the solution on its schedule, only when new interactions arrived, and
    bills each run. Recsite starting versions as well would train (and bill) the solution twice. So
    when DescribeSolution says `performAutoTraining` is on, the versions Personalize started
    (ListSolutionVersions) that Recsite does not know yet are recorded as AUTOMATIC versions, and
    their task polls them to ACTIVE with their metrics (moving campaigns that follow the solution)
    or CREATE FAILED with the reason. When Personalize's automatic training is off for the solution
    (created so, or linked by ARN), Recsite keeps the schedule itself: when `due`, one
    CreateSolutionVersion (FULL, AUTOMATIC) through `personalize_solution_version_create`.
    """
    from recommendations.personalize_tasks import personalize_solution_version_task

    client = personalize_client()
    described = aws_call(client, "describe_solution", solutionArn=solution.personalize_arn)["solution"]
    if not described.get("performAutoTraining"):
        if not due:
            return []
        version = personalize_solution_version_create(solution=solution, training_type=TrainingType.AUTOMATIC)
        return [version.pk]
    known = set(
        SolutionVersion.objects.filter(solution=solution)
        .exclude(personalize_arn="")
        .values_list("personalize_arn", flat=True)
    )
    newest = solution.versions.aggregate(newest=Max("created_at"))["newest"]
    recorded: list[int] = []
    token: str | None = None
    while True:
        page = aws_call(
            client,
            "list_solution_versions",
            solutionArn=solution.personalize_arn,
            **({"nextToken": token} if token else {}),
        )
        for entry in page.get("solutionVersions") or []:
            arn = entry["solutionVersionArn"]
            started = entry.get("creationDateTime")
            if arn in known or (newest is not None and started is not None and started <= newest):
                continue
            version = SolutionVersion.objects.create(
                solution=solution,
                personalize_arn=arn,
                # Personalize's AUTOTRAIN mode retrains on all the data, as FULL does
                training_mode=_choice(entry.get("trainingMode"), TrainingMode, TrainingMode.FULL),
                training_type=_choice(entry.get("trainingType"), TrainingType, TrainingType.AUTOMATIC),
                solution_config=solution.solution_config,
                progress="trained by Personalize's automatic training",
            )
            transaction.on_commit(lambda pk=version.pk: personalize_solution_version_task.delay(pk))
            recorded.append(version.pk)
        token = page.get("nextToken")
        if not token:
            return recorded


def _solution_arn(solution: Solution) -> str:
    """The solution's ARN, creating it on Personalize (or finding it by name) the first time."""
    if solution.personalize_arn:
        return solution.personalize_arn
    group = _active_group(solution.dataset_group)
    if group.status != PersonalizeStatus.ACTIVE:
        raise PersonalizeJobError(
            f"dataset group {group.name!r} is {group.status} on Personalize, not ACTIVE"
        )
    client = personalize_client()
    params = solution_create_params(solution=solution, dataset_group_arn=group.dataset_group_arn)
    response = _create_or_find(
        lambda: aws_call(client, "create_solution", **params),
        lambda: _find(
            "list_solutions",
            "solutions",
            lambda e: e.get("name") == solution.name,
            datasetGroupArn=group.dataset_group_arn,
        ),
        f"solution {solution.name!r}",
    )
    _update(solution, personalize_arn=response["solutionArn"])
    return solution.personalize_arn


def solution_version_step(*, version_id: int) -> Step:
    """Create the solution and version on Personalize (once each), then record the version's outcome."""
    version = SolutionVersion.objects.select_related("solution__dataset_group").get(pk=version_id)
    if version.is_finished:
        return Step(version.status)
    client = personalize_client()
    solution_arn = _solution_arn(version.solution)
    if not version.personalize_arn:
        described = aws_call(client, "describe_solution", solutionArn=solution_arn)["solution"]
        status = personalize_status(described.get("status"))
        if status == PersonalizeStatus.FAILED:
            reason = f"solution {version.solution.name!r} is {described.get('status')} on Personalize"
            solution_version_fail(version_id=version.pk, reason=reason)
            return Step(SolutionVersionStatus.FAILED, detail=reason)
        if status != PersonalizeStatus.ACTIVE:
            _update(version, progress=f"waiting for the solution ({described.get('status')})")
            return Step(version.status, waiting=True, detail=version.progress)
        name = _name(version.solution.name, f"v{version.pk}")

        def find() -> dict[str, Any] | None:
            token: str | None = None
            while True:
                page = aws_call(
                    client,
                    "list_solution_versions",
                    solutionArn=solution_arn,
                    **({"nextToken": token} if token else {}),
                )
                for entry in page.get("solutionVersions") or []:
                    arn = entry["solutionVersionArn"]
                    found = aws_call(client, "describe_solution_version", solutionVersionArn=arn)[
                        "solutionVersion"
                    ]
                    if found.get("name") == name:
                        return found
                token = page.get("nextToken")
                if not token:
                    return None

        response = _create_or_find(
            lambda: aws_call(
                client,
                "create_solution_version",
                name=name,
                solutionArn=solution_arn,
                trainingMode=version.training_mode,
            ),
            find,
            f"solution version {name!r}",
        )
        _update(
            version,
            personalize_arn=response["solutionVersionArn"],
            status=SolutionVersionStatus.IN_PROGRESS,
            started_at=timezone.now(),
            progress="training on Amazon Personalize",
        )
    described = aws_call(client, "describe_solution_version", solutionVersionArn=version.personalize_arn)
    return _version_outcome(version, described["solutionVersion"])


def _version_outcome(version: SolutionVersion, described: Mapping[str, Any]) -> Step:
    status = personalize_status(described.get("status"))
    if status == PersonalizeStatus.FAILED:
        reason = described.get("failureReason") or f"Personalize reports {described.get('status')}"
        solution_version_fail(version_id=version.pk, reason=reason)
        return Step(SolutionVersionStatus.FAILED, detail=reason)
    if status != PersonalizeStatus.ACTIVE:
        mapped = (
            SolutionVersionStatus.IN_PROGRESS if status == PersonalizeStatus.IN_PROGRESS else version.status
        )
        _update(version, status=mapped, progress=f"Personalize reports {described.get('status')}")
        return Step(mapped, waiting=True, detail=version.progress)
    metrics = aws_call(
        personalize_client(), "get_solution_metrics", solutionVersionArn=version.personalize_arn
    )
    tuned = (described.get("tunedHPOParams") or {}).get("algorithmHyperParameters") or {}
    hours = described.get("trainingHours")
    with transaction.atomic():
        _update(
            version,
            status=SolutionVersionStatus.ACTIVE,
            failure_reason="",
            progress="",
            metrics={name: float(value) for name, value in (metrics.get("metrics") or {}).items()},
            tuned_hpo_params={"algorithmHyperParameters": dict(tuned)} if tuned else {},
            training_seconds=None if hours is None else round(float(hours) * 3600, 3),
            finished_at=timezone.now(),
        )
        # Personalize campaigns that follow the solution (syncWithLatestSolutionVersion) move by themselves.
        Campaign.objects.filter(
            backend=CampaignBackend.PERSONALIZE,
            follows_latest=True,
            solution_version__solution_id=version.solution_id,
            solution_version_id__lt=version.pk,
        ).update(solution_version=version, updated_at=timezone.now())
    return Step(SolutionVersionStatus.ACTIVE)


def solution_version_fail(*, version_id: int, reason: str) -> None:
    """Record that a version failed (CREATE FAILED), with the reason."""
    SolutionVersion.objects.filter(pk=version_id).update(
        status=SolutionVersionStatus.FAILED, failure_reason=reason, progress="", finished_at=timezone.now()
    )


# --- campaigns -------------------------------------------------------------------------------------


def personalize_campaign_create(
    *,
    name: str,
    solution_version: SolutionVersion,
    campaign_config: Mapping[str, Any] | None = None,
    min_provisioned_tps: int = 1,
) -> Campaign:
    """A campaign on Personalize (CREATE PENDING until Personalize deploys it); enqueued on commit."""
    from recommendations.services import campaign_create

    if not solution_version.personalize_arn:
        raise PersonalizeJobError(f"solution version {solution_version.pk} was not trained on Personalize")
    if min_provisioned_tps < 1:
        raise PersonalizeJobError("minProvisionedTPS must be at least 1")
    return campaign_create(
        name=name,
        solution_version=solution_version,
        campaign_config=campaign_config,
        backend=CampaignBackend.PERSONALIZE,
        min_provisioned_tps=min_provisioned_tps,
    )


def personalize_campaign_update(
    *,
    campaign: Campaign,
    solution_version: SolutionVersion | None = None,
    campaign_config: Mapping[str, Any] | None = None,
    min_provisioned_tps: int | None = None,
) -> Campaign:
    """Deploy another version and/or config (UpdateCampaign); the row changes once Personalize is done."""
    from recommendations.personalize_tasks import personalize_campaign_task

    if campaign.backend != CampaignBackend.PERSONALIZE or not campaign.personalize_arn:
        raise PersonalizeJobError(f"campaign {campaign.name!r} is not deployed on Personalize")
    if solution_version is not None:
        if solution_version.status != SolutionVersionStatus.ACTIVE or not solution_version.personalize_arn:
            raise PersonalizeJobError(f"solution version {solution_version.pk} is not ACTIVE on Personalize")
        if solution_version.solution.dataset_group_id != campaign.dataset_group_id:
            raise PersonalizeJobError("the version belongs to another dataset group")
    config = None if campaign_config is None else campaign_config_clean(campaign_config)
    if min_provisioned_tps is not None and min_provisioned_tps < 1:
        raise PersonalizeJobError("minProvisionedTPS must be at least 1")
    version_id = None if solution_version is None else solution_version.pk
    transaction.on_commit(
        lambda: personalize_campaign_task.delay(
            campaign.pk,
            solution_version_id=version_id,
            campaign_config=config,
            min_provisioned_tps=min_provisioned_tps,
        )
    )
    return campaign


def _config_differs(wanted: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    for key, value in wanted.items():
        if key == "itemExplorationConfig":
            now = {k: str(v) for k, v in (current.get(key) or {}).items()}
            if {k: str(v) for k, v in (value or {}).items()} != now:
                return True
        elif current.get(key) != value:
            return True
    return False


def campaign_deploy_step(
    *,
    campaign_id: int,
    solution_version_id: int | None = None,
    campaign_config: Mapping[str, Any] | None = None,
    min_provisioned_tps: int | None = None,
) -> Step:
    """CreateCampaign (once) or UpdateCampaign (when Personalize differs from what is wanted); record it."""
    campaign = Campaign.objects.select_related("solution_version").get(pk=campaign_id)
    version = (
        campaign.solution_version
        if solution_version_id is None
        else SolutionVersion.objects.get(pk=solution_version_id)
    )
    config = dict(campaign.campaign_config if campaign_config is None else campaign_config)
    client = personalize_client()
    if not version.personalize_arn:
        raise PersonalizeJobError(f"solution version {version.pk} was not trained on Personalize")
    # syncWithLatestSolutionVersion takes the solution's ARN as `SolutionArn/$LATEST` (Personalize's rule).
    follows = bool(config.get("syncWithLatestSolutionVersion"))
    wanted_arn = f"{_solution_arn(version.solution)}/$LATEST" if follows else version.personalize_arn
    if not campaign.personalize_arn:
        params: dict[str, Any] = {
            "name": campaign.name,
            "solutionVersionArn": wanted_arn,
            "minProvisionedTPS": min_provisioned_tps or 1,
        }
        if config:
            params["campaignConfig"] = config
        response = _create_or_find(
            lambda: aws_call(client, "create_campaign", **params),
            lambda: _find(
                "list_campaigns",
                "campaigns",
                lambda e: e.get("name") == campaign.name,
                solutionArn=version.solution.personalize_arn,
            ),
            f"campaign {campaign.name!r}",
        )
        _update(campaign, personalize_arn=response["campaignArn"], backend=CampaignBackend.PERSONALIZE)
    described = aws_call(client, "describe_campaign", campaignArn=campaign.personalize_arn)["campaign"]
    status = personalize_status(described.get("status"))
    if status == PersonalizeStatus.FAILED:
        reason = described.get("failureReason") or f"Personalize reports {described.get('status')}"
        campaign_fail(campaign_id=campaign.pk, reason=reason)
        return Step(CampaignStatus.FAILED, detail=reason)
    if status != PersonalizeStatus.ACTIVE:
        mapped = (
            CampaignStatus.IN_PROGRESS if status == PersonalizeStatus.IN_PROGRESS else CampaignStatus.PENDING
        )
        _update(campaign, status=mapped)
        return Step(mapped, waiting=True, detail=f"Personalize reports {described.get('status')}")

    update = described.get("latestCampaignUpdate") or {}
    update_status = personalize_status(update.get("status")) if update else PersonalizeStatus.ACTIVE
    if update and update_status in (PersonalizeStatus.PENDING, PersonalizeStatus.IN_PROGRESS):
        return Step(campaign.status, waiting=True, detail=f"update {update.get('status')}")
    deployed_version = described.get("solutionVersionArn")
    deployed_config = described.get("campaignConfig") or {}
    wanted_tps = min_provisioned_tps
    differs = (
        # a following campaign serves whichever version Personalize trained last
        (not follows and deployed_version != version.personalize_arn)
        or _config_differs(config, deployed_config)
        or (wanted_tps is not None and described.get("minProvisionedTPS") != wanted_tps)
    )
    if differs:
        if update_status == PersonalizeStatus.FAILED and update.get("solutionVersionArn") in (
            version.personalize_arn,
            wanted_arn,
        ):
            reason = update.get("failureReason") or "the campaign update failed on Personalize"
            campaign_fail(campaign_id=campaign.pk, reason=reason)
            return Step(CampaignStatus.ACTIVE, detail=reason)
        params = {"campaignArn": campaign.personalize_arn, "solutionVersionArn": wanted_arn}
        if config:
            params["campaignConfig"] = config
        if wanted_tps is not None:
            params["minProvisionedTPS"] = wanted_tps
        aws_call(client, "update_campaign", **params)
        return Step(campaign.status, waiting=True, detail="update started")
    _update(
        campaign,
        solution_version=version,
        campaign_config=config,
        follows_latest=bool(config.get("syncWithLatestSolutionVersion", campaign.follows_latest)),
        status=CampaignStatus.ACTIVE,
        failure_reason="",
        updated_at=timezone.now(),
    )
    return Step(CampaignStatus.ACTIVE)


def campaign_fail(*, campaign_id: int, reason: str) -> None:
    """Record a failed deployment: a new campaign is CREATE FAILED; an ACTIVE one keeps serving."""
    Campaign.objects.filter(pk=campaign_id).exclude(status=CampaignStatus.ACTIVE).update(
        status=CampaignStatus.FAILED
    )
    Campaign.objects.filter(pk=campaign_id).update(failure_reason=reason, updated_at=timezone.now())


# --- filters ----------------------------------------------------------------------------------------


def filter_status_step(*, filter_id: int) -> Step:
    """DescribeFilter on a filter CreateFilter made; record ACTIVE, or CREATE FAILED with the reason."""
    found = Filter.objects.filter(pk=filter_id).first()
    if found is None:
        return Step(FilterStatus.DELETE_PENDING)  # deleted meanwhile: nothing left to watch
    if found.status in (FilterStatus.ACTIVE, FilterStatus.FAILED, FilterStatus.DELETE_PENDING):
        return Step(found.status)
    if not found.personalize_arn:
        raise PersonalizeJobError(f"filter {found.name!r} was not created on Personalize (no ARN)")
    described = aws_call(personalize_client(), "describe_filter", filterArn=found.personalize_arn)["filter"]
    status = personalize_status(described.get("status"))
    if status == PersonalizeStatus.FAILED:
        reason = described.get("failureReason") or f"Personalize reports {described.get('status')}"
        filter_fail(filter_id=found.pk, reason=reason)
        return Step(FilterStatus.FAILED, detail=reason)
    if status == PersonalizeStatus.ACTIVE:
        found.status, found.failure_reason = FilterStatus.ACTIVE, ""
        found.save(update_fields=["status", "failure_reason", "updated_at"])  # clears the serving caches
        return Step(FilterStatus.ACTIVE)
    mapped = FilterStatus.IN_PROGRESS if status == PersonalizeStatus.IN_PROGRESS else FilterStatus.PENDING
    if mapped != found.status:
        found.status = mapped
        found.save(update_fields=["status", "updated_at"])
    return Step(mapped, waiting=True, detail=f"Personalize reports {described.get('status')}")


def filter_fail(*, filter_id: int, reason: str) -> None:
    """Record that a filter could not be created on Personalize (CREATE FAILED), with the reason."""
    found = Filter.objects.filter(pk=filter_id).first()
    if found is not None and found.status != FilterStatus.ACTIVE:
        found.status, found.failure_reason = FilterStatus.FAILED, reason
        found.save(update_fields=["status", "failure_reason", "updated_at"])


# --- batch jobs on Personalize -------------------------------------------------------------------------


def batch_job_personalize_step(*, batch_job_id: int) -> Step:
    """CreateBatchInferenceJob / CreateBatchSegmentJob (once), then record the job's outcome."""
    from recommendations.models import BatchJobKind

    job = BatchJob.objects.select_related("solution_version", "filter").get(pk=batch_job_id)
    if job.is_finished:
        return Step(job.status)
    version_arn = job.solution_version.personalize_arn
    if not version_arn:
        raise PersonalizeJobError(
            f"solution version {job.solution_version_id} was not trained on Personalize"
        )
    inference = job.kind == BatchJobKind.INFERENCE
    noun = "batch_inference_job" if inference else "batch_segment_job"
    list_key = "batchInferenceJobs" if inference else "batchSegmentJobs"
    arn_key = "batchInferenceJobArn" if inference else "batchSegmentJobArn"
    client = personalize_client()
    if not job.personalize_arn:
        source: dict[str, Any] = {"path": job.input_path}
        destination: dict[str, Any] = {"path": job.output_path}
        if _kms_key():
            source["kmsKeyArn"] = _kms_key()
            destination["kmsKeyArn"] = _kms_key()
        params: dict[str, Any] = {
            "jobName": job.name,
            "solutionVersionArn": version_arn,
            "numResults": job.num_results,
            "jobInput": {"s3DataSource": source},
            "jobOutput": {"s3DataDestination": destination},
            "roleArn": _setting("PERSONALIZE_ROLE_ARN"),
        }
        if job.filter is not None:
            if not job.filter.personalize_arn:
                raise PersonalizeJobError(f"filter {job.filter.name!r} does not exist on Personalize")
            params["filterArn"] = job.filter.personalize_arn
        if inference and job.job_config:
            params["batchInferenceJobConfig"] = dict(job.job_config)
        response = _create_or_find(
            lambda: aws_call(client, f"create_{noun}", **params),
            lambda: _find(
                f"list_{noun}s",
                list_key,
                lambda e: e.get("jobName") == job.name,
                solutionVersionArn=version_arn,
            ),
            f"batch job {job.name!r}",
        )
        _update(job, personalize_arn=response[arn_key])
    described = aws_call(client, f"describe_{noun}", **{arn_key: job.personalize_arn})
    return _job_outcome(job, described["batchInferenceJob" if inference else "batchSegmentJob"])
