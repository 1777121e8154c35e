"""Batch inference and batch segment jobs in Personalize's JSON-lines formats, on either backend.

A `BatchJob` row names a solution version, an input and an output. On Personalize both are S3
paths and `personalize_jobs.batch_job_personalize_step` runs CreateBatchInferenceJob /
CreateBatchSegmentJob. On the local backend the input is a file in Django's default storage and
`batch_job_local_run` answers it line by line with the same selectors the API serves with
(`campaign_recommend`, `campaign_rank`, `campaign_related`, `campaign_segment`), writing
Personalize's output format:

    input   {"userId": "u1"}  |  {"itemId": "i1"}  |  {"userId": "u1", "itemList": ["i1", "i2"]}
            (optional "filterValues": {"GENRE": "\\"comedy\\",\\"drama\\""}, as Personalize)
    output  {"input": {...}, "output": {"recommendedItems": [...], "scores": [...]}, "error": null}

    segment input   {"itemId": "i1"}  |  {"itemAttributes": "ITEMS.GENRE = \\"Comedy\\""}
    segment output  {"input": {...}, "output": {"recommendedUsers": [...]}, "error": null}

A line that cannot be answered gets `"output": null` and the reason in `"error"`; the job still
finishes (ACTIVE) and counts such lines in `errors`, as Personalize's jobs do.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from catalog.models import EndUser, Item
from recommendations.artifacts import LoadedModel, model_load
from recommendations.errors import RecommendationError
from recommendations.models import (
    BatchJob,
    BatchJobKind,
    Campaign,
    CampaignBackend,
    Filter,
    PersonalizeStatus,
    SolutionVersion,
    SolutionVersionStatus,
    campaign_config_clean,
)
from recommendations.personalize_jobs import PersonalizeJobError, Step
from recommendations.selectors import campaign_rank, campaign_recommend, campaign_related, campaign_segment

__all__ = [
    "MAX_BATCH_RESULTS",
    "MAX_SEGMENT_RESULTS",
    "batch_job_create",
    "batch_job_fail",
    "batch_job_local_run",
    "batch_line_answer",
    "filter_values_parse",
]

MAX_BATCH_RESULTS = 500
MAX_SEGMENT_RESULTS = 5_000_000
MAX_ID_LENGTH = 256
JOB_CONFIG_KEYS = ("itemExplorationConfig", "rankingInfluence")


def batch_job_create(
    *,
    kind: str,
    name: str,
    solution_version: SolutionVersion,
    input_path: str,
    output_path: str = "",
    backend: str | None = None,
    filter: Filter | None = None,
    num_results: int = 25,
    job_config: Mapping[str, Any] | None = None,
) -> BatchJob:
    """Record a batch job (CREATE PENDING) and enqueue it once the transaction commits."""
    from recommendations.personalize_tasks import batch_job_task

    if kind not in BatchJobKind.values:
        raise PersonalizeJobError(f"kind must be one of {', '.join(BatchJobKind.values)}")
    if backend is None:
        backend = CampaignBackend.PERSONALIZE if solution_version.personalize_arn else CampaignBackend.LOCAL
    limit = MAX_BATCH_RESULTS if kind == BatchJobKind.INFERENCE else MAX_SEGMENT_RESULTS
    if not 1 <= num_results <= limit:
        raise PersonalizeJobError(f"numResults must be between 1 and {limit}, got {num_results}")
    config = dict(job_config or {})
    unknown = sorted(set(config) - set(JOB_CONFIG_KEYS))
    if unknown:
        raise PersonalizeJobError(f"batchInferenceJobConfig has unknown key {unknown[0]!r}")
    if "itemExplorationConfig" in config:
        config["itemExplorationConfig"] = campaign_config_clean(
            {"itemExplorationConfig": config["itemExplorationConfig"]}
        )["itemExplorationConfig"]
    if solution_version.status != SolutionVersionStatus.ACTIVE:
        raise PersonalizeJobError(
            f"solution version {solution_version.pk} is {solution_version.status}, not ACTIVE"
        )
    if filter is not None and filter.dataset_group_id != solution_version.solution.dataset_group_id:
        raise PersonalizeJobError(f"filter {filter.name!r} belongs to another dataset group")
    if backend == CampaignBackend.PERSONALIZE:
        if not (input_path.startswith("s3://") and output_path.startswith("s3://")):
            raise PersonalizeJobError("a Personalize batch job reads and writes s3:// paths")
        if posixpath.dirname(input_path.rstrip("/")) == output_path.rstrip("/"):
            raise PersonalizeJobError("the output folder must differ from the input's folder")
    else:
        if not solution_version.artifact:
            raise PersonalizeJobError(f"solution version {solution_version.pk} has no local model")
        if not default_storage.exists(input_path):
            raise PersonalizeJobError(f"input file {input_path!r} does not exist in storage")
        output_path = output_path or f"batch/{name}/{posixpath.basename(input_path)}.out"
    job = BatchJob(
        kind=kind,
        backend=backend,
        name=name,
        solution_version=solution_version,
        filter=filter,
        num_results=num_results,
        job_config=config,
        input_path=input_path,
        output_path=output_path,
    )
    try:
        job.full_clean()
    except ValidationError as error:
        raise PersonalizeJobError(
            "; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
        ) from None
    job.save()
    transaction.on_commit(lambda: batch_job_task.delay(job.pk))
    return job


def batch_job_fail(*, batch_job_id: int, reason: str) -> None:
    """Record that a batch job failed, with the reason."""
    BatchJob.objects.filter(pk=batch_job_id).update(
        status=PersonalizeStatus.FAILED, failure_reason=reason, finished_at=timezone.now()
    )


def filter_values_parse(raw: Any) -> dict[str, list[str]]:
    """Personalize's filterValues (`{"GENRE": "\\"comedy\\",\\"drama\\""}`) as lists of plain values."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise RecommendationError("filterValues must be an object of JSON-quoted, comma-separated values")
    parsed: dict[str, list[str]] = {}
    for name, text in raw.items():
        try:
            values = json.loads(f"[{text}]")
        except (TypeError, ValueError):
            raise RecommendationError(
                f'filterValues.{name} must be JSON-quoted values joined by commas, e.g. \'"a","b"\''
            ) from None
        parsed[str(name)] = [str(value) for value in values]
    return parsed


def _id(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value):
        raise RecommendationError(f"{key} must be a non-empty string")
    if len(str(value)) > MAX_ID_LENGTH:
        raise RecommendationError(f"{key} is longer than {MAX_ID_LENGTH} characters")
    return str(value)


def _item_mask(
    job: BatchJob,
    campaign: Campaign,
    model: LoadedModel,
    obj: Mapping[str, Any],
    user_id: str | None,
    item_id: str | None,
) -> np.ndarray | None:
    if job.filter is None:
        return None
    from recommendations.filtering import filter_item_mask, filter_uses_user

    user = None
    if user_id and filter_uses_user(filter=job.filter):
        user = EndUser.objects.filter(dataset_group_id=campaign.dataset_group_id, user_id=user_id).first()
    current = None
    if item_id is not None:
        current = Item.objects.filter(dataset_group_id=campaign.dataset_group_id, item_id=item_id).first()
    mask = filter_item_mask(
        filter=job.filter,
        filter_values=filter_values_parse(obj.get("filterValues")),
        item_pks=model.arrays["item_pks"],
        user=user,
        session_id=user_id,
        current_item=current,
    )
    return np.asarray(mask, dtype=bool)


def batch_line_answer(job: BatchJob, campaign: Campaign, model: LoadedModel, obj: Any) -> dict[str, Any]:
    """The `output` object for one input line (raises RecommendationError for a line it cannot answer)."""
    if not isinstance(obj, Mapping):
        raise RecommendationError("each line must be a JSON object")
    if job.kind == BatchJobKind.SEGMENT:
        return _segment_answer(job, campaign, model, obj)
    user_id, item_id = _id(obj, "userId"), _id(obj, "itemId")
    if "itemList" in obj:
        items = obj["itemList"]
        if user_id is None or not isinstance(items, Sequence) or isinstance(items, str):
            raise RecommendationError("a ranking line needs userId and an itemList array")
        if len(items) > MAX_BATCH_RESULTS:
            raise RecommendationError(f"itemList may hold at most {MAX_BATCH_RESULTS} ids")
        wanted = [str(item) for item in items]
        mask = _item_mask(job, campaign, model, obj, user_id, None)
        if mask is not None:
            index = model.item_index(wanted)
            wanted = [item for item, i in zip(wanted, index, strict=True) if i < 0 or mask[i]]
        if not wanted:
            return {"recommendedItems": [], "scores": []}
        result = campaign_rank(campaign=campaign, user_id=user_id, item_ids=wanted, model=model)
    elif user_id is not None:
        mask = _item_mask(job, campaign, model, obj, user_id, None)
        result = campaign_recommend(
            campaign=campaign, user_id=user_id, num_results=job.num_results, candidates=mask, model=model
        )
    elif item_id is not None:
        mask = _item_mask(job, campaign, model, obj, None, item_id)
        result = campaign_related(
            campaign=campaign, item_id=item_id, num_results=job.num_results, candidates=mask, model=model
        )
    else:
        raise RecommendationError('a line needs "userId", "itemId", or "userId" with "itemList"')
    return {
        "recommendedItems": [item.item_id for item in result.items],
        "scores": [None if item.score is None else round(float(item.score), 7) for item in result.items],
    }


def _segment_answer(
    job: BatchJob, campaign: Campaign, model: LoadedModel, obj: Mapping[str, Any]
) -> dict[str, Any]:
    from recommendations.serving import item_attribute_pks

    item_id = _id(obj, "itemId")
    attributes = obj.get("itemAttributes")
    if (item_id is None) == (attributes is None):
        raise RecommendationError('a segment line needs exactly one of "itemId" and "itemAttributes"')
    user_mask = None
    if job.filter is not None:
        from recommendations.filtering import filter_user_mask

        user_mask = np.asarray(
            filter_user_mask(
                filter=job.filter,
                filter_values=filter_values_parse(obj.get("filterValues")),
                user_pks=np.asarray(model.arrays["user_pks"]),
            ),
            dtype=bool,
        )
    asked = job.num_results if user_mask is None else max(len(model.arrays["user_pks"]), 1)
    if item_id is not None:
        if model.item_index([item_id])[0] < 0:
            return {"recommendedUsers": []}
        segment = campaign_segment(campaign=campaign, item_ids=[item_id], num_results=asked, model=model)
    else:
        if not isinstance(attributes, str):
            raise RecommendationError("itemAttributes must be a string")
        pks = item_attribute_pks(dataset_group_id=campaign.dataset_group_id, condition=attributes)
        item_mask = np.zeros(model.n_items, dtype=bool)
        index = model.item_index_of_pks(np.asarray(pks, dtype=np.int64))
        item_mask[index[index >= 0]] = True
        segment = campaign_segment(campaign=campaign, item_mask=item_mask, num_results=asked, model=model)
    users = list(segment.user_ids)
    if user_mask is not None:
        index = model.user_index(users)
        users = [user for user, i in zip(users, index, strict=True) if i >= 0 and user_mask[i]][
            : job.num_results
        ]
    return {"recommendedUsers": users}


def batch_job_local_run(*, batch_job_id: int) -> Step:
    """Answer every line of a local batch job's input and write the output file (replacing a partial one)."""
    job = BatchJob.objects.select_related("solution_version__solution", "filter").get(pk=batch_job_id)
    if job.is_finished:
        return Step(job.status)
    version = job.solution_version
    if version.status != SolutionVersionStatus.ACTIVE or not version.artifact:
        raise PersonalizeJobError(f"solution version {version.pk} has no ACTIVE local model")
    BatchJob.objects.filter(pk=job.pk).update(status=PersonalizeStatus.IN_PROGRESS)
    model = model_load(name=version.artifact, version_id=version.pk)
    config = (
        {"itemExplorationConfig": job.job_config["itemExplorationConfig"]}
        if "itemExplorationConfig" in (job.job_config or {})
        else {}
    )
    # An unsaved campaign bound to the version: the selectors read its group, version and config.
    campaign = Campaign(
        name=job.name,
        dataset_group_id=version.solution.dataset_group_id,
        solution_version=version,
        campaign_config=config,
    )
    records = errors = 0
    with tempfile.TemporaryDirectory(prefix="recsite-batch-") as folder:
        out_path = Path(folder) / "output.jsonl"
        with (
            default_storage.open(job.input_path, "rb") as source,
            out_path.open("w", encoding="utf-8") as out,
        ):
            for raw in source:
                text = raw.decode("utf-8").strip()
                if not text:
                    continue
                records += 1
                try:
                    obj: Any = json.loads(text)
                except ValueError as error:
                    obj, output, message = text, None, f"not a JSON object: {error}"
                else:
                    try:
                        output, message = batch_line_answer(job, campaign, model, obj), None
                    except RecommendationError as error:
                        output, message = None, str(error)
                if message is not None:
                    errors += 1
                out.write(json.dumps({"input": obj, "output": output, "error": message}) + "\n")
        if default_storage.exists(job.output_path):
            default_storage.delete(job.output_path)
        with out_path.open("rb") as handle:
            saved = default_storage.save(job.output_path, File(handle))
    BatchJob.objects.filter(pk=job.pk).update(
        status=PersonalizeStatus.ACTIVE,
        failure_reason="",
        output_path=saved,
        records=records,
        errors=errors,
        finished_at=timezone.now(),
    )
    return Step(PersonalizeStatus.ACTIVE)
