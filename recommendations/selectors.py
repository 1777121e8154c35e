"""Reads of the recommendations app, and serving: recommend / rank / related / segment for a campaign.

Model cache: each process keeps the models it has loaded in `_models`, keyed by solution version
id (campaigns on the same version share one), and remembers per campaign which version it serves.
Every request reads the campaign's current `solution_version_id` (one primary-key query; with
`RECSITE_CAMPAIGN_CHECK_SECONDS` > 0 at most once per that many seconds); when it differs from the
remembered one the new version is loaded (memory-mapped, so processes share the pages) and the old
one dropped once no campaign of this process uses it. No restart is needed after `campaign_update`.

A user's history is read from the database on every request (newest `RECSITE_HISTORY_LENGTH`
events, weighted by the solution's event options; items the model does not know are skipped), so
an event counts on the very next request. Anonymous visitors are served by `session_id`; a
`user_id` never seen before that equals a session id gets that session's events.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection

from catalog.models import DatasetGroup, EndUser, Interaction
from recommendations.artifacts import LoadedModel, model_load
from recommendations.engine.base import History, Recipe, RecipeError, Recommendation
from recommendations.engine.events import event_weights
from recommendations.errors import (
    CampaignNotFoundError,
    ModelUnavailableError,
    RecommendationError,
    SolutionNotFoundError,
)
from recommendations.models import (
    Campaign,
    Solution,
    SolutionVersion,
    SolutionVersionStatus,
    exploration_settings,
)
from recommendations.training_data import epoch_sql, solution_event_selection

__all__ = [
    "MAX_NUM_RESULTS",
    "RecommendationResult",
    "ScoredItem",
    "UserSegment",
    "campaign_get",
    "campaign_model",
    "campaign_rank",
    "campaign_recommend",
    "campaign_related",
    "campaign_segment",
    "model_cache_clear",
    "new_items",
    "recipe_explores",
    "solution_get",
    "solution_version_latest",
    "user_history",
]

logger = logging.getLogger(__name__)

MAX_NUM_RESULTS = 500
MAX_RANK_ITEMS = 500

_lock = threading.Lock()
_models: dict[int, LoadedModel] = {}
_campaign_versions: dict[int, tuple[int, float]] = {}  # campaign id -> (version id, checked at)
_new_items: dict[tuple[int, int], tuple[tuple, NewItems]] = {}
_failed: dict[int, tuple[float, str]] = {}  # version id -> (when its model failed to load, why)

MODEL_RETRY_SECONDS = 60.0  # a version whose model failed to load is tried again after this long
MODEL_SUBSTITUTES_TRIED = 3  # earlier versions tried in its place
UNLOADABLE_NOTE = "The model of solution version"  # (group, newest model pk) -> (catalog, items)


@dataclass(frozen=True)
class ScoredItem:
    """One recommended item: external id, score (None when the model cannot score it) and extras."""

    item_id: str
    score: float | None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecommendationResult:
    """A ranked list as GetRecommendations / GetPersonalizedRanking return it.

    `index` holds the items' model indices, `history` the user's history the answer was computed
    from and `details` the recipe's extras that are not per item (e.g. `score_scales`), so the
    caller can explain the answer without recomputing it.
    """

    recommendation_id: str
    items: list[ScoredItem]
    solution_version_id: int
    index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64), repr=False)
    history: History | None = field(default=None, repr=False)
    details: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class UserSegment:
    """Users most likely to interact with an item or attribute, best first."""

    user_ids: list[str]
    scores: list[float]


# --- plain reads -------------------------------------------------------------------------------


def campaign_get(*, name: str) -> Campaign:
    """The named campaign (names are unique across dataset groups)."""
    try:
        return Campaign.objects.select_related("dataset_group").get(name=name)
    except Campaign.DoesNotExist:
        raise CampaignNotFoundError(name) from None


def solution_get(*, name: str) -> Solution:
    """The named solution (names are unique across dataset groups)."""
    try:
        return Solution.objects.select_related("dataset_group").get(name=name)
    except Solution.DoesNotExist:
        raise SolutionNotFoundError(name) from None


def solution_version_latest(*, solution: Solution, active: bool = True) -> SolutionVersion | None:
    """The newest (ACTIVE, by default) version of a solution."""
    versions = solution.versions.all()
    if active:
        versions = versions.filter(status=SolutionVersionStatus.ACTIVE)
    return versions.order_by("-created_at", "-id").first()


# --- the model cache ---------------------------------------------------------------------------


def model_cache_clear() -> None:
    """Forget every loaded model of this process (tests; memory pressure)."""
    with _lock:
        _models.clear()
        _campaign_versions.clear()
        _new_items.clear()
        _failed.clear()


def _current_version_id(campaign: Campaign) -> int:
    ttl = float(getattr(settings, "RECSITE_CAMPAIGN_CHECK_SECONDS", 0.0))
    now = time.monotonic()
    remembered = _campaign_versions.get(campaign.pk)
    if ttl > 0 and remembered is not None and now - remembered[1] < ttl:
        return remembered[0]
    version_id = Campaign.objects.filter(pk=campaign.pk).values_list("solution_version_id", flat=True).first()
    if version_id is None:
        raise CampaignNotFoundError(campaign.name)
    return version_id


def campaign_model(*, campaign: Campaign, fresh: bool = False) -> LoadedModel:
    """The loaded model of the version the campaign serves now (loaded lazily, swapped on change).

    `fresh` says the campaign row was read in this request, so its version needs no second read.
    """
    version_id = campaign.solution_version_id if fresh else _current_version_id(campaign)
    with _lock:
        failed = _failed.get(version_id)
        if failed is not None and time.monotonic() - failed[0] >= MODEL_RETRY_SECONDS:
            _models.pop(version_id, None)  # a substitute's time is up: try the version's own model again
            failed = None
        model = _models.get(version_id)
        if model is None:
            if failed is not None:
                raise ModelUnavailableError(_unloadable(campaign, version_id, failed[1]))
            model = _load_for(campaign, version_id)
            _models[version_id] = model
        previous = _campaign_versions.get(campaign.pk)
        _campaign_versions[campaign.pk] = (version_id, time.monotonic())
        if previous is not None and previous[0] != version_id:
            still_used = {used for used, _ in _campaign_versions.values()}
            if previous[0] not in still_used:
                _models.pop(previous[0], None)
    return model


def _load_for(campaign: Campaign, version_id: int) -> LoadedModel:
    """The version's model; if its artifact is missing or corrupt, the newest earlier one that loads.

    The failure is logged with its traceback and noted on the campaign's `failure_reason` (the
    admin lists it); the version's own model is tried again after MODEL_RETRY_SECONDS. Raises
    ModelUnavailableError when no model of the solution loads (serving then answers popular items).
    """
    version = (
        SolutionVersion.objects.filter(pk=version_id).values("artifact", "status", "solution_id").first()
    )
    if not version or version["status"] != SolutionVersionStatus.ACTIVE or not version["artifact"]:
        raise RecommendationError(f"campaign {campaign.name!r} has no ACTIVE model to serve")
    try:
        model = model_load(name=version["artifact"], version_id=version_id)
    except Exception as error:  # whatever the files' fault, this artifact cannot serve
        why = f"{type(error).__name__}: {error}"
        logger.error(
            "campaign %s: the model of solution version %s cannot be loaded (%s)",
            campaign.name,
            version_id,
            why,
            exc_info=True,
        )
        _failed[version_id] = (time.monotonic(), why)
        substitute = _earlier_model(version["solution_id"], version_id)
        serving = f"version {substitute.version_id}" if substitute else "the popular list"
        Campaign.objects.filter(pk=campaign.pk).update(
            failure_reason=f"{UNLOADABLE_NOTE} {version_id} cannot be loaded ({why}); serving {serving}"
        )
        if substitute is None:
            raise ModelUnavailableError(_unloadable(campaign, version_id, why)) from None
        return substitute
    if _failed.pop(version_id, None) is not None:
        Campaign.objects.filter(pk=campaign.pk, failure_reason__startswith=UNLOADABLE_NOTE).update(
            failure_reason=""
        )
    return model


def _earlier_model(solution_id: int, broken_id: int) -> LoadedModel | None:
    """The newest other ACTIVE version of the solution whose model loads (a few are tried), or None."""
    earlier = (
        SolutionVersion.objects.filter(solution_id=solution_id, status=SolutionVersionStatus.ACTIVE)
        .exclude(pk=broken_id)
        .exclude(artifact="")
        .order_by("-created_at", "-id")
        .values_list("pk", "artifact")[:MODEL_SUBSTITUTES_TRIED]
    )
    for pk, artifact in earlier:
        if pk in _failed:
            continue
        try:
            model = model_load(name=artifact, version_id=pk)
        except Exception as error:  # as above
            logger.error(
                "solution version %s cannot stand in either (%s: %s)", pk, type(error).__name__, error
            )
            _failed[pk] = (time.monotonic(), f"{type(error).__name__}: {error}")
            continue
        logger.warning("serving solution version %s in place of version %s", pk, broken_id)
        return model
    return None


def _unloadable(campaign: Campaign, version_id: int, why: str) -> str:
    return f"campaign {campaign.name!r}: the model of solution version {version_id} cannot be loaded ({why})"


# --- items the model does not know -----------------------------------------------------------


@dataclass(frozen=True)
class NewItems:
    """The group's items created after a model was trained (pk above its newest item), pk order.

    `created` is each item's creationTimestamp in epoch seconds, or -1 when it has none (a bare
    record from putEvents): such a row is as young as the model's answer to it.
    """

    pks: np.ndarray
    item_ids: np.ndarray
    created: np.ndarray
    noises: dict[int, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    """Serving's exploration noise per solution version id, computed once per cached answer."""


def new_items(*, model: LoadedModel, dataset_group_id: int) -> NewItems:
    """Items of the group the model has no index for because they came after it: one query, cached.

    Items get dense model indices for every catalog item at training time, so the unknown ones are
    those with a primary key above the model's newest. The answer is kept per process and re-read
    only when the group's item catalog changes (the filter module's catalog version, itself read at
    most every `RECSITE_FILTER_CATALOG_CHECK_SECONDS`).
    """
    from catalog.models import Item
    from recommendations.filtering import _catalog_version

    pks = np.asarray(model.arrays["item_pks"])
    newest = int(pks[-1]) if len(pks) else 0
    key = (dataset_group_id, newest)
    version = _catalog_version(dataset_group_id, Item)
    cached = _new_items.get(key)
    if cached is not None and cached[0] == version:
        return cached[1]
    rows = list(
        Item.objects.filter(dataset_group_id=dataset_group_id, pk__gt=newest)
        .order_by("pk")
        .values_list("pk", "item_id", "creation_timestamp")
    )
    found = NewItems(
        pks=np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)),
        item_ids=np.array([row[1] for row in rows], dtype=object),
        created=np.fromiter(
            (-1 if row[2] is None else int(row[2].timestamp()) for row in rows),
            dtype=np.int64,
            count=len(rows),
        ),
    )
    for array in (found.pks, found.item_ids, found.created):
        array.flags.writeable = False  # shared by requests; lets the filter cache remember its key
    with _lock:
        if len(_new_items) > 64:
            _new_items.clear()
        _new_items[key] = (version, found)
    return found


# --- histories ---------------------------------------------------------------------------------


def user_history(
    *, model: LoadedModel, dataset_group: DatasetGroup | int, user_id: str | None, session_id: str | None
) -> History:
    """The user's (and/or session's) newest events from the database, oldest first, as model indices."""
    limit = int(getattr(settings, "RECSITE_HISTORY_LENGTH", 500))
    group_id = dataset_group if isinstance(dataset_group, int) else dataset_group.pk
    rows: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        if user_id:
            # The user's primary key first (the unique (group, user_id) index), then their events by
            # the (user, -timestamp) index: one join would let a planner without statistics walk the group.
            cursor.execute(_history_sql("user"), [group_id, user_id])
            found = cursor.fetchone()
            if found is None:
                session_id = session_id or user_id  # Personalize: a new userId equal to a sessionId
            else:
                cursor.execute(_history_sql("user_events"), [found[0], limit])
                rows = cursor.fetchall()
        if session_id:
            cursor.execute(_history_sql("session_events"), [group_id, session_id, limit])
            rows += cursor.fetchall()
            rows.sort(key=lambda row: row[1], reverse=True)
            rows = rows[:limit]
    if not rows:
        return History.empty()
    rows.reverse()  # oldest first
    index = model.item_index_of_pks(np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)))
    timestamp = np.fromiter((row[1] for row in rows), dtype=np.int64, count=len(rows))
    weight = _history_weights(model, rows)
    keep = index >= 0
    if weight is not None:
        keep &= weight > 0
    return History(
        item=index[keep].astype(np.int32),
        timestamp=timestamp[keep],
        weight=None if weight is None else weight[keep],
    )


_HISTORY_SQL: dict[str, str] = {}


def _history_sql(name: str) -> str:
    """The plain SQL of the history reads (the ORM's query building cost more than the queries)."""
    if not _HISTORY_SQL:
        quote = connection.ops.quote_name
        users, events = quote(EndUser._meta.db_table), quote(Interaction._meta.db_table)
        columns = f"item_id, {epoch_sql('timestamp')}, event_type, event_value"
        newest = "ORDER BY timestamp DESC, id DESC LIMIT %s"
        _HISTORY_SQL.update(
            user=f"SELECT id FROM {users} WHERE dataset_group_id = %s AND user_id = %s",
            user_events=f"SELECT {columns} FROM {events} WHERE user_id = %s AND item_id IS NOT NULL {newest}",
            # `NOT session_id = ''` restates the session index's condition so that a prepared
            # statement's generic plan can use that index too.
            session_events=(
                f"SELECT {columns} FROM {events} WHERE dataset_group_id = %s AND user_id IS NULL "
                f"AND session_id = %s AND NOT session_id = '' AND item_id IS NOT NULL {newest}"
            ),
        )
    return _HISTORY_SQL[name]


def _history_weights(model: LoadedModel, rows: list[tuple[Any, ...]]) -> np.ndarray | None:
    """The solution's event weights for request-time events (None when every event counts as 1)."""
    selection = solution_event_selection(model.manifest.get("solution_config"))
    if selection.is_trivial:
        return None
    types = sorted({row[2] for row in rows})
    codes = np.array([types.index(row[2]) for row in rows], dtype=np.int16)
    values = np.array([np.nan if row[3] is None else row[3] for row in rows], dtype=np.float64)
    return event_weights(
        selection, event_type=codes, event_types=types, event_value=values, n_events=len(rows)
    )


# --- serving -----------------------------------------------------------------------------------


def _check_count(name: str, value: int, maximum: int) -> None:
    if not 1 <= value <= maximum:
        raise RecommendationError(f"{name} must be between 1 and {maximum}, got {value}")


def _candidate_mask(model: LoadedModel, candidates: np.ndarray | Collection[str] | None) -> np.ndarray | None:
    if candidates is None:
        return None
    if isinstance(candidates, np.ndarray) and candidates.dtype == bool:
        if candidates.shape != (model.n_items,):
            raise RecommendationError(
                f"a candidate mask must have one entry per model item ({model.n_items})"
            )
        return candidates
    mask = np.zeros(model.n_items, dtype=bool)
    index = model.item_index(list(candidates))
    mask[index[index >= 0]] = True
    return mask


def _items(model: LoadedModel, result: Recommendation) -> list[ScoredItem]:
    index = np.asarray(result.index)
    ids = model.item_ids(index)
    extras = {name: np.asarray(values) for name, values in result.extras.items() if np.ndim(values) == 1}
    items = []
    for position, item_id in enumerate(ids):
        score = float(result.score[position])
        item_extras = {
            name: values[position].item() for name, values in extras.items() if len(values) == len(ids)
        }
        items.append(ScoredItem(item_id, score if np.isfinite(score) else None, item_extras))
    return items


def _details(result: Recommendation) -> dict[str, Any]:
    """The recipe's extras that are not one value per returned item."""
    return {
        name: value
        for name, value in result.extras.items()
        if np.ndim(value) != 1 or len(value) != len(result.index)
    }


def _with_recent_events(recipe: Recipe, model: LoadedModel, group_id: int, now: int) -> Recipe:
    """Trending-style recipes count the events recorded since training (read from the database).

    The recipe works in whole seconds (`now` and the timestamps truncated), so the bounds are whole
    seconds too: an event sent in the request's own second (at now + 0.4, say) counts on this request.
    Events are weighted by the solution's event options, as the training events were.
    """
    since = recipe.recent_events_since(now)  # type: ignore[attr-defined]
    rows = list(
        Interaction.objects.filter(
            dataset_group_id=group_id,
            item__isnull=False,
            timestamp__gte=_datetime(since + 1),
            timestamp__lt=_datetime(now + 1),
        ).values_list("item_id", "timestamp", "event_type", "event_value")
    )
    if not rows:
        return recipe
    index = model.item_index_of_pks(np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)))
    timestamps = np.fromiter((int(row[1].timestamp()) for row in rows), dtype=np.int64, count=len(rows))
    weights = _history_weights(model, rows)
    return recipe.with_recent_events(index, timestamps, weights)  # type: ignore[attr-defined]


def _datetime(epoch: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)


def recipe_explores(recipe: Recipe) -> bool:
    """Whether the recipe takes Personalize's exploration settings (explorationWeight, age cut-off)."""
    return _explores(type(recipe))


@functools.cache
def _explores(recipe_class: type) -> bool:
    recommend = getattr(recipe_class, "recommend", None)
    return recommend is not None and "exploration_weight" in inspect.signature(recommend).parameters


def _query(campaign: Campaign, call: Any) -> Any:
    try:
        return call()
    except RecipeError as error:
        raise RecommendationError(f"campaign {campaign.name!r}: {error}") from None


def campaign_recommend(
    *,
    campaign: Campaign,
    user_id: str | None = None,
    session_id: str | None = None,
    num_results: int = 25,
    candidates: np.ndarray | Collection[str] | None = None,
    model: LoadedModel | None = None,
) -> RecommendationResult:
    """Top items for a user or session (GetRecommendations); `candidates` limits what may be returned."""
    _check_count("numResults", num_results, MAX_NUM_RESULTS)
    model = model or campaign_model(campaign=campaign)
    recipe = model.recipe
    history = user_history(
        model=model, dataset_group=campaign.dataset_group_id, user_id=user_id, session_id=session_id
    )
    now = int(time.time())
    options: dict[str, Any] = {}
    if recipe_explores(recipe):
        weight, cut_off = exploration_settings(campaign.campaign_config)
        options = {"exploration_weight": weight, "exploration_item_age_cutoff_days": cut_off}
    if hasattr(recipe, "with_recent_events"):
        recipe = _with_recent_events(recipe, model, campaign.dataset_group_id, now)
    mask = _candidate_mask(model, candidates)
    result = _query(
        campaign, lambda: recipe.recommend(history, n=num_results, candidates=mask, now=now, **options)
    )
    return RecommendationResult(
        uuid.uuid4().hex,
        _items(model, result),
        model.version_id,
        index=np.asarray(result.index, dtype=np.int64),
        history=history,
        details=_details(result),
    )


def campaign_rank(
    *,
    campaign: Campaign,
    user_id: str | None,
    item_ids: Iterable[str],
    session_id: str | None = None,
    model: LoadedModel | None = None,
) -> RecommendationResult:
    """The given items re-ordered for a user (GetPersonalizedRanking); unknown items last, unscored."""
    wanted = list(dict.fromkeys(str(item_id) for item_id in item_ids))
    _check_count("the number of items to rank", len(wanted), MAX_RANK_ITEMS)
    model = model or campaign_model(campaign=campaign)
    history = user_history(
        model=model, dataset_group=campaign.dataset_group_id, user_id=user_id, session_id=session_id
    )
    index = model.item_index(wanted)
    result = _query(campaign, lambda: model.recipe.rank(history, index, now=int(time.time())))
    ranked = np.asarray(result.index)
    known = ranked >= 0
    items = [
        ScoredItem(item_id, float(score) if np.isfinite(score) else None)
        for item_id, score in zip(model.item_ids(ranked[known]), np.asarray(result.score)[known], strict=True)
    ]
    items += [ScoredItem(item_id, None) for item_id, i in zip(wanted, index, strict=True) if i < 0]
    return RecommendationResult(
        uuid.uuid4().hex,
        items,
        model.version_id,
        index=np.concatenate((ranked[known], index[index < 0])).astype(np.int64),
        history=history,
        details=_details(result),
    )


def campaign_related(
    *,
    campaign: Campaign,
    item_id: str,
    num_results: int = 25,
    candidates: np.ndarray | Collection[str] | None = None,
    model: LoadedModel | None = None,
) -> RecommendationResult:
    """Items related to one item; an item the model does not know gets popular items."""
    _check_count("numResults", num_results, MAX_NUM_RESULTS)
    model = model or campaign_model(campaign=campaign)
    index = int(model.item_index([str(item_id)])[0])
    mask = _candidate_mask(model, candidates)
    result = _query(
        campaign, lambda: model.recipe.similar(index, n=num_results, candidates=mask, now=int(time.time()))
    )
    return RecommendationResult(
        uuid.uuid4().hex,
        _items(model, result),
        model.version_id,
        index=np.asarray(result.index, dtype=np.int64),
        details={**_details(result), "anchor": index},
    )


def campaign_segment(
    *,
    campaign: Campaign,
    item_ids: Iterable[str] | None = None,
    item_mask: np.ndarray | None = None,
    num_results: int = 25,
    model: LoadedModel | None = None,
) -> UserSegment:
    """Users most likely to interact with the items (one item, or an attribute match as a mask)."""
    if (item_ids is None) == (item_mask is None):
        raise RecommendationError("give either item ids or an item mask")
    if num_results < 1:
        raise RecommendationError(f"numResults must be at least 1, got {num_results}")
    model = model or campaign_model(campaign=campaign)
    mask = _candidate_mask(model, item_mask if item_mask is not None else list(item_ids or ()))
    result = _query(campaign, lambda: model.recipe.segment(mask, n=num_results))
    scores = [float(score) for score in np.asarray(result.score)]
    return UserSegment(model.user_ids(np.asarray(result.index)), scores)
