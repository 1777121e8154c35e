"""The recommendation API's reads: lists with reasons, promotions, filters and a stored recommendationId.

A layer above `selectors` (which serve one campaign's model): it resolves the campaign (by name,
or the deployment's default for the kind of query), turns a filter and `excludeItemIds` into the
candidate mask the engine applies *before* its top-N (so lists stay full), mixes in promoted
items as Personalize does, explains every item (`reasons`) and records the answer as a
`RecommendationRecord` so events can point back to it.

Promotions follow Personalize's documented behaviour: `percentPromotedItems` of `numResults`
(rounded down, at least one) come from the items passing the promotion's filter, ranked by the
same campaign; the request's filter does not apply to them; they are sorted among themselves
and placed at pseudo-random positions among the other items. The positions are drawn from a
generator seeded by the campaign, user/session and promotion name, so the same request gives the
same list. If fewer items pass the promotion filter, the rest of the list is ordinary items.

`context` (Personalize's contextual metadata, e.g. DEVICE) is validated as Personalize does and
otherwise ignored by the local engine: its recipes do not train on contextual metadata.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import FloatField, Q
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from catalog.models import DEFAULT_DATASET_GROUP, DatasetSchema, EndUser, Item
from catalog.schemas import DatasetType, fields_from_json
from catalog.selectors import categorical_value_q
from recommendations.artifacts import LoadedModel
from recommendations.errors import ModelUnavailableError, RecommendationError
from recommendations.models import (
    Campaign,
    CampaignBackend,
    CampaignStatus,
    Filter,
    RecommendationRecord,
    SolutionVersion,
    exploration_settings,
)
from recommendations.reasons import Explanation, ReasonKind, reason_texts
from recommendations.row_cache import cached_row
from recommendations.selectors import (
    MAX_NUM_RESULTS,
    NewItems,
    RecommendationResult,
    campaign_get,
    campaign_model,
    campaign_rank,
    campaign_recommend,
    campaign_related,
    campaign_segment,
    new_items,
    recipe_explores,
)

__all__ = [
    "MAX_EXCLUDED_ITEMS",
    "MAX_ID_LENGTH",
    "DefaultCampaignNotFoundError",
    "PromotionSpec",
    "SegmentResult",
    "ServedItem",
    "ServedList",
    "campaign_default",
    "campaign_filter_get",
    "campaign_recipe",
    "item_attribute_pks",
    "item_attribute_q",
    "personalized_ranking",
    "recommendation_list",
    "recommendation_record",
    "related_item_list",
    "user_segment",
]

MAX_ID_LENGTH = 256
MAX_EXCLUDED_ITEMS = 500
MAX_CONTEXT_ENTRIES = 150
MAX_FILTER_VALUES = 25
CONTEXT_KEY = re.compile(r"^[A-Za-z\d_]{1,150}$")
PROMOTION_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,62}$")

USER_RECIPES = ("aws-user-personalization",)
RELATED_RECIPES = ("aws-sims", "aws-similar-items")
RANKING_RECIPES = ("aws-personalized-ranking",)
ITEM_SEGMENT_RECIPES = ("aws-item-affinity",)
ATTRIBUTE_SEGMENT_RECIPES = ("aws-item-attribute-affinity",)
EXPLAINED_RECIPES = ("aws-user-personalization", "aws-personalized-ranking")


class DefaultCampaignNotFoundError(RecommendationError):
    """No campaign was named and the deployment has none of the kind the query needs."""

    def __init__(self, recipes: Sequence[str]) -> None:
        super().__init__(
            f"no campaign given and no ACTIVE {' or '.join(recipes)} campaign is deployed in the "
            f"{DEFAULT_DATASET_GROUP!r} dataset group; pass `campaign` or deploy one"
        )


@dataclass(frozen=True)
class PromotionSpec:
    """A promotion as GetRecommendations takes it (`promotions[0]`)."""

    name: str
    percent_promoted_items: int
    filter_name: str
    filter_values: Mapping[str, Sequence[str]] | None = None


@dataclass(frozen=True)
class ServedItem:
    """One item of an answer: id, score (None when unscored), promotion and reason kind."""

    item_id: str
    score: float | None
    explanation: Explanation
    item_pk: int | None = None

    @property
    def promotion_name(self) -> str | None:
        """The promotion that placed this item, or None."""
        return self.explanation.promotion_name


@dataclass
class ServedList:
    """An answered request; reason sentences are built on first use (one query for all of them)."""

    recommendation_id: str
    items: list[ServedItem]
    dataset_group_id: int
    _reasons: list[str | None] | None = field(default=None, repr=False)

    def reasons(self) -> list[str | None]:
        """One sentence per item, in order."""
        if self._reasons is None:
            self._reasons = reason_texts(
                dataset_group_id=self.dataset_group_id,
                item_pks=[item.item_pk for item in self.items],
                explanations=[item.explanation for item in self.items],
            )
        return self._reasons


@dataclass(frozen=True)
class SegmentResult:
    """Users most likely to interact with an item or an attribute match, best first."""

    user_ids: list[str]
    scores: list[float]


# --- checks ------------------------------------------------------------------------------------


def _check_id(name: str, value: str | None) -> None:
    if value is not None and not 1 <= len(value) <= MAX_ID_LENGTH:
        raise RecommendationError(f"{name} must be 1 to {MAX_ID_LENGTH} characters long")


def _check_num_results(num_results: int) -> None:
    if not 1 <= num_results <= MAX_NUM_RESULTS:
        raise RecommendationError(f"numResults must be between 1 and {MAX_NUM_RESULTS}, got {num_results}")


def _check_context(context: Mapping[str, Any] | None) -> None:
    """Personalize's context map: ≤150 entries, keys [A-Za-z0-9_] ≤150 chars, string values ≤1000."""
    if context is None:
        return
    if not isinstance(context, Mapping):
        raise RecommendationError("context must be an object of string values")
    if len(context) > MAX_CONTEXT_ENTRIES:
        raise RecommendationError(f"context has {len(context)} entries; at most {MAX_CONTEXT_ENTRIES}")
    for key, value in context.items():
        if not CONTEXT_KEY.match(str(key)):
            raise RecommendationError(f"context key {key!r} must be letters, digits and _ (≤150)")
        if not isinstance(value, str | int | float | bool) or len(str(value)) > 1000:
            raise RecommendationError(f"context[{key!r}] must be a string of at most 1000 characters")


def _check_filter_values(filter_values: Mapping[str, Sequence[str]] | None) -> None:
    if filter_values and len(filter_values) > MAX_FILTER_VALUES:
        raise RecommendationError(f"filterValues has {len(filter_values)} names; at most {MAX_FILTER_VALUES}")


# --- campaigns ---------------------------------------------------------------------------------


def campaign_default(*, recipes: Sequence[str]) -> Campaign:
    """The deployment's default campaign for recipes of this kind.

    For user recommendations `RECSITE_DEFAULT_CAMPAIGN` names it when set; otherwise (and for
    the other kinds) it is the newest ACTIVE campaign of the `default` group serving one of the
    recipes.
    """
    configured = getattr(settings, "RECSITE_DEFAULT_CAMPAIGN", "") or ""
    if configured and tuple(recipes) == USER_RECIPES:
        return campaign_get(name=configured)
    campaign = (
        Campaign.objects.select_related("dataset_group")
        .filter(
            dataset_group__name=DEFAULT_DATASET_GROUP,
            status=CampaignStatus.ACTIVE,
            solution_version__solution__recipe__in=list(recipes),
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if campaign is None:
        raise DefaultCampaignNotFoundError(recipes)
    return campaign


def _backend(campaign: Campaign) -> Any:
    """The backend answering a campaign that is not local (Amazon Personalize)."""
    from recommendations.backends.base import campaign_backend

    return campaign_backend(campaign)


def _campaign(name: str | None, recipes: Sequence[str]) -> Campaign:
    """The campaign to serve (this process's copy, at most RECSITE_SERVING_CACHE_SECONDS old)."""
    if name is None:
        return cached_row(("default-campaign", tuple(recipes)), lambda: campaign_default(recipes=recipes))
    _check_id("campaign", name)
    return cached_row(("campaign", name), lambda: campaign_get(name=name))


# --- candidate masks ---------------------------------------------------------------------------


def campaign_filter_get(*, name: str, campaign: Campaign) -> Filter:
    """The named filter for a campaign's request: this process's copy, of the campaign's group."""
    from recommendations.filtering import filter_get

    _check_id("filter", name)
    found = cached_row(("filter", name), lambda: filter_get(name=name))
    if found.dataset_group_id != campaign.dataset_group_id:
        raise RecommendationError(
            f"filter {name!r} belongs to another dataset group than campaign {campaign.name!r}"
        )
    return found


def _end_user(campaign: Campaign, user_id: str | None) -> EndUser | None:
    if not user_id:
        return None
    return EndUser.objects.filter(dataset_group_id=campaign.dataset_group_id, user_id=user_id).first()


def _filter_mask(
    *,
    campaign: Campaign,
    model: LoadedModel,
    filter_name: str,
    filter_values: Mapping[str, Sequence[str]] | None,
    user_id: str | None,
    session_id: str | None,
    current_item: Item | None = None,
    item_pks: np.ndarray | None = None,
) -> np.ndarray:
    """The filter's item mask over the model's items, or over `item_pks` (True = may be returned)."""
    from recommendations.filtering import filter_item_mask, filter_uses_user

    _check_filter_values(filter_values)
    found = campaign_filter_get(name=filter_name, campaign=campaign)
    mask = filter_item_mask(
        filter=found,
        filter_values={name: list(values) for name, values in (filter_values or {}).items()},
        # the model's own array (or the cached new items'): read-only, so its fingerprint is remembered
        item_pks=model.arrays["item_pks"] if item_pks is None else item_pks,
        user=_end_user(campaign, user_id) if filter_uses_user(filter=found) else None,
        session_id=session_id or (user_id if user_id else None),
        current_item=current_item,
    )
    return np.asarray(mask, dtype=bool)


def _exclusion(model: LoadedModel, exclude_item_ids: Sequence[str] | None) -> np.ndarray | None:
    if not exclude_item_ids:
        return None
    if len(exclude_item_ids) > MAX_EXCLUDED_ITEMS:
        raise RecommendationError(f"excludeItemIds may hold at most {MAX_EXCLUDED_ITEMS} ids")
    for item_id in exclude_item_ids:
        _check_id("excludeItemIds entry", item_id)
    index = model.item_index([str(item_id) for item_id in exclude_item_ids])
    return index[index >= 0]


def _and(mask: np.ndarray | None, other: np.ndarray | None) -> np.ndarray | None:
    if other is None:
        return mask
    return other if mask is None else mask & other


def _without(mask: np.ndarray | None, n_items: int, index: np.ndarray | None) -> np.ndarray | None:
    if index is None or len(index) == 0:
        return mask
    mask = np.ones(n_items, dtype=bool) if mask is None else mask.copy()
    mask[index] = False
    return mask


# --- explanations ------------------------------------------------------------------------------


def _item_pks(model: LoadedModel, index: np.ndarray) -> list[int | None]:
    pks = np.asarray(model.arrays["item_pks"])
    return [int(pks[i]) if i >= 0 else None for i in np.asarray(index, dtype=np.int64)]


def _explain_personal(
    campaign: Campaign, model: LoadedModel, result: RecommendationResult
) -> list[Explanation]:
    """Reasons of a user-facing answer (recommendations, ranking)."""
    recipe_name = campaign_recipe(campaign, model)
    if recipe_name == "aws-trending-now":
        return [Explanation(ReasonKind.TRENDING)] * len(result.items)
    if recipe_name == "aws-popularity-count":
        return [Explanation(ReasonKind.POPULAR)] * len(result.items)
    history = result.history
    has_history = history is not None and len(history.item) > 0
    index = result.index
    subjects = np.full(len(index), -1, dtype=np.int64)
    explain = getattr(model.recipe, "explain", None)
    if has_history and explain is not None and recipe_name in EXPLAINED_RECIPES and len(index):
        subjects = explain(history, index, scales=result.details.get("score_scales"))
    pks = np.asarray(model.arrays["item_pks"])
    explanations = []
    for position, item in enumerate(result.items):
        extras = item.extras
        if index[position] < 0:
            explanations.append(Explanation(ReasonKind.UNRANKED))
        elif extras.get("exploration"):
            explanations.append(Explanation(ReasonKind.NEW))
        elif extras.get("popular_fallback") or not has_history:
            explanations.append(Explanation(ReasonKind.POPULAR))
        elif subjects[position] >= 0:
            explanations.append(Explanation(ReasonKind.VIEWED, subject_pk=int(pks[subjects[position]])))
        else:
            explanations.append(Explanation(ReasonKind.FOR_YOU))
    return explanations


def campaign_recipe(campaign: Campaign, model: LoadedModel) -> str:
    """The recipe name of the model a campaign serves."""
    return str(model.manifest.get("recipe") or model.recipe.name)


# --- recommendations ---------------------------------------------------------------------------


def _promotion_positions(total: int, promoted: int, seed_text: str) -> np.ndarray:
    """Sorted positions (0-based) of the promoted items among `total`, drawn from a seeded generator."""
    seed = int.from_bytes(hashlib.blake2b(seed_text.encode(), digest_size=8).digest(), "big")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=promoted, replace=False))


def _promoted_count(promotion: PromotionSpec, num_results: int) -> int:
    if not PROMOTION_NAME.match(promotion.name or ""):
        raise RecommendationError(
            "promotion name must be 1-63 letters, digits, - or _, starting with a letter or digit"
        )
    if not 1 <= promotion.percent_promoted_items <= 100:
        raise RecommendationError("promotion percentPromotedItems must be between 1 and 100")
    return max(1, num_results * promotion.percent_promoted_items // 100)


def _db_value(field: str, value: Any) -> Any:
    return RecommendationRecord._meta.get_field(field).get_db_prep_save(value, connection)


def recommendation_record(
    *, campaign: Campaign, served: ServedList, user_id: str | None, session_id: str | None
) -> None:
    """Store an answer so events can name it by recommendationId (one plain INSERT).

    An id recorded already keeps its first record: ids from Amazon Personalize are not ours to
    vouch for, and an endpoint that answered through our own compatible API recorded it first.
    Written on its own (not inside a caller's transaction) on PostgreSQL, the record commits
    without waiting for its write-ahead log to reach the disk (`synchronous_commit` off for this
    statement's transaction alone): a database crash may lose the records of the last fraction of a
    second, never an event, and a recommendation request no longer waits for a disk flush (whose
    latency spikes were the load test's tail).
    """
    table = connection.ops.quote_name(RecommendationRecord._meta.db_table)
    columns = "recommendation_id, campaign_id, user_id, session_id, item_ids, created_at"
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        sql = (
            f"INSERT INTO {table} ({columns}) SELECT %s, %s::bigint, %s, %s, %s::jsonb, %s::timestamptz "
            "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous_commit "
            "ON CONFLICT (recommendation_id) DO NOTHING"
        )
    else:
        sql = (
            f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (recommendation_id) DO NOTHING"
        )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                served.recommendation_id,
                campaign.pk,
                user_id or "",
                session_id or "",
                _db_value("item_ids", [item.item_id for item in served.items]),
                _db_value("created_at", timezone.now()),
            ],
        )


def recommendation_list(
    *,
    campaign_name: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    num_results: int = 25,
    filter_name: str | None = None,
    filter_values: Mapping[str, Sequence[str]] | None = None,
    context: Mapping[str, Any] | None = None,
    promotion: PromotionSpec | None = None,
    exclude_item_ids: Sequence[str] | None = None,
) -> ServedList:
    """Top items for a user or session (GetRecommendations), explained and recorded."""
    _check_num_results(num_results)
    _check_id("userId", user_id)
    _check_id("sessionId", session_id)
    _check_context(context)
    campaign = _campaign(campaign_name, USER_RECIPES)
    if campaign.backend != CampaignBackend.LOCAL:
        return _backend(campaign).recommend(
            campaign=campaign,
            user_id=user_id,
            session_id=session_id,
            num_results=num_results,
            filter_name=filter_name,
            filter_values=filter_values,
            context=context,
            promotion=promotion,
            exclude_item_ids=exclude_item_ids,
        )
    try:
        model = campaign_model(campaign=campaign, fresh=True)
    except ModelUnavailableError as error:
        from recommendations.fallback import popular_fallback

        return popular_fallback(
            campaign,
            num_results,
            cause=str(error),
            filter_name=filter_name,
            filter_values=filter_values,
            user_id=user_id,
            session_id=session_id,
            exclude_item_ids=exclude_item_ids or (),
        )
    excluded = _exclusion(model, exclude_item_ids)
    mask = None
    if filter_name is not None:
        mask = _filter_mask(
            campaign=campaign,
            model=model,
            filter_name=filter_name,
            filter_values=filter_values,
            user_id=user_id,
            session_id=session_id,
        )
    mask = _without(mask, model.n_items, excluded)

    promoted: list[ServedItem] = []
    promoted_index = np.empty(0, dtype=np.int64)
    if promotion is not None:
        wanted = _promoted_count(promotion, num_results)
        promotion_mask = _filter_mask(
            campaign=campaign,
            model=model,
            filter_name=promotion.filter_name,
            filter_values=promotion.filter_values,
            user_id=user_id,
            session_id=session_id,
        )
        promotion_mask = _without(promotion_mask, model.n_items, excluded)
        picked = campaign_recommend(
            campaign=campaign,
            user_id=user_id,
            session_id=session_id,
            num_results=wanted,
            candidates=promotion_mask,
            model=model,
        )
        promoted_index = picked.index
        explanation = Explanation(ReasonKind.PROMOTED, promotion_name=promotion.name)
        promoted = [
            ServedItem(item.item_id, item.score, explanation, pk)
            for item, pk in zip(picked.items, _item_pks(model, picked.index), strict=True)
        ]
        mask = _without(mask, model.n_items, promoted_index)

    rest = num_results - len(promoted)
    items: list[ServedItem] = []
    result_id = None
    if rest > 0 or not promoted:
        result = campaign_recommend(
            campaign=campaign,
            user_id=user_id,
            session_id=session_id,
            num_results=max(rest, 1),
            candidates=mask,
            model=model,
        )
        result_id = result.recommendation_id
        explanations = _explain_personal(campaign, model, result)
        items = [
            ServedItem(item.item_id, item.score, explanation, pk)
            for item, explanation, pk in zip(
                result.items, explanations, _item_pks(model, result.index), strict=True
            )
        ][: max(rest, 0) if promoted else None]
        exploration = _exploration(campaign, model)
        if exploration is not None and rest > 0:
            weight, cut_off = exploration
            new = _new_item_candidates(
                campaign=campaign,
                model=model,
                weight=weight,
                cut_off=cut_off,
                filter_name=filter_name,
                filter_values=filter_values,
                user_id=user_id,
                session_id=session_id,
                exclude_item_ids=exclude_item_ids,
                limit=rest,
            )
            items = _with_new_items(items, new, rest, weight)
    if promoted:
        total = len(items) + len(promoted)
        positions = set(
            _promotion_positions(
                total,
                len(promoted),
                f"{campaign.name}|{user_id}|{session_id}|{promotion.name}",  # type: ignore[union-attr]
            ).tolist()
        )
        ordinary, special = iter(items), iter(promoted)
        items = [next(special) if position in positions else next(ordinary) for position in range(total)]
    served = ServedList(result_id or _new_id(), items, campaign.dataset_group_id)
    recommendation_record(campaign=campaign, served=served, user_id=user_id, session_id=session_id)
    return served


DAY = 86_400
NEW_ITEM_NOISE = 0.05  # the engine's exploration noise: up to 5% of the bonus


def _exploration(campaign: Campaign, model: LoadedModel) -> tuple[float, float] | None:
    """(explorationWeight, explorationItemAgeCutOff) when the recipe explores and the weight is > 0."""
    if not recipe_explores(model.recipe):
        return None
    weight, cut_off = exploration_settings(campaign.campaign_config)
    return (weight, cut_off) if weight > 0 else None


def _new_item_noise(version_id: int, item_id: str) -> float:
    digest = hashlib.blake2b(f"{version_id}|{item_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 * NEW_ITEM_NOISE


def _new_item_noises(found: NewItems, version_id: int) -> np.ndarray:
    """Each new item's noise for this version (hashed once per cached list of new items)."""
    noise = found.noises.get(version_id)
    if noise is None:
        noise = np.fromiter(
            (_new_item_noise(version_id, str(item_id)) for item_id in found.item_ids),
            dtype=np.float64,
            count=len(found.item_ids),
        )
        found.noises[version_id] = noise
    return noise


def _new_item_candidates(
    *,
    campaign: Campaign,
    model: LoadedModel,
    weight: float,
    cut_off: float,
    filter_name: str | None,
    filter_values: Mapping[str, Sequence[str]] | None,
    user_id: str | None,
    session_id: str | None,
    exclude_item_ids: Sequence[str] | None,
    limit: int,
) -> list[ServedItem]:
    """The `limit` best young items created after training that the request may return, best first.

    The engine's rule for an explored item without evidence: it starts from 0 and gets
    `explorationWeight * (1 / (1 + interactions) + noise)`; a new item had no interaction at
    training time, so its score is `weight * (1 + noise)`, the noise fixed per version and item.
    Items without a creationTimestamp came after the version, so they count as young.
    """
    found = new_items(model=model, dataset_group_id=campaign.dataset_group_id)
    if not len(found.pks):
        return []
    oldest = time.time() - cut_off * DAY
    keep = (found.created < 0) | (found.created >= oldest)
    if exclude_item_ids and keep.any():
        keep &= ~np.isin(found.item_ids, [str(item_id) for item_id in exclude_item_ids])
    if filter_name is not None and keep.any():
        keep &= _filter_mask(
            campaign=campaign,
            model=model,
            filter_name=filter_name,
            filter_values=filter_values,
            user_id=user_id,
            session_id=session_id,
            item_pks=found.pks,
        )
    chosen = np.flatnonzero(keep)
    scores = weight * (1.0 + _new_item_noises(found, model.version_id)[chosen])
    best = np.lexsort((-found.pks[chosen], -scores))[:limit]  # by score, then newest first
    explanation = Explanation(ReasonKind.NEW)
    return [
        ServedItem(str(found.item_ids[i]), float(score), explanation, int(found.pks[i]))
        for i, score in zip(chosen[best], scores[best], strict=True)
    ]


def _with_new_items(
    items: list[ServedItem], new: list[ServedItem], slots: int, weight: float
) -> list[ServedItem]:
    """`slots` answers, `explorationWeight` of them (at least one) new items, merged by score.

    The new items take the lowest-ranked slots' places (more when the model ran out of items) and
    sit where their exploration score ranks them among the model's scores, as the engine's boosted
    items do; an unscored model item ranks below them.
    """
    if not new or slots <= 0:
        return items
    share = max(1, math.floor(weight * slots))
    kept = items[: max(0, slots - share)]
    new = new[: slots - len(kept)]
    kept += items[len(kept) : slots - len(new)]  # none unless fewer new items than their share
    merged: list[ServedItem] = []
    ordinary, explored = 0, 0
    while ordinary < len(kept) or explored < len(new):
        take_new = explored < len(new) and (
            ordinary >= len(kept)
            or kept[ordinary].score is None
            or kept[ordinary].score < new[explored].score  # type: ignore[operator]
        )
        if take_new:
            merged.append(new[explored])
            explored += 1
        else:
            merged.append(kept[ordinary])
            ordinary += 1
    return merged


def _new_id() -> str:
    return uuid.uuid4().hex


def related_item_list(
    *,
    item_id: str,
    user_id: str | None = None,
    campaign_name: str | None = None,
    num_results: int = 25,
    filter_name: str | None = None,
    filter_values: Mapping[str, Sequence[str]] | None = None,
) -> ServedList:
    """Items related to one item (a SIMS / similar-items campaign); unknown items get popular ones."""
    _check_num_results(num_results)
    _check_id("itemId", item_id)
    _check_id("userId", user_id)
    campaign = _campaign(campaign_name, RELATED_RECIPES)
    if campaign.backend != CampaignBackend.LOCAL:
        return _backend(campaign).related(
            campaign=campaign,
            item_id=item_id,
            user_id=user_id,
            num_results=num_results,
            filter_name=filter_name,
            filter_values=filter_values,
        )
    try:
        model = campaign_model(campaign=campaign, fresh=True)
    except ModelUnavailableError as error:
        from recommendations.fallback import popular_fallback

        anchor = Item.objects.filter(dataset_group_id=campaign.dataset_group_id, item_id=item_id).first()
        return popular_fallback(
            campaign,
            num_results,
            cause=str(error),
            filter_name=filter_name,
            filter_values=filter_values,
            user_id=user_id,
            session_id=None,
            exclude_item_ids=[item_id],
            current_item=anchor,
        )
    mask = None
    if filter_name is not None:
        current = Item.objects.filter(dataset_group_id=campaign.dataset_group_id, item_id=item_id).first()
        mask = _filter_mask(
            campaign=campaign,
            model=model,
            filter_name=filter_name,
            filter_values=filter_values,
            user_id=user_id,
            session_id=None,
            current_item=current,
        )
    result = campaign_related(
        campaign=campaign, item_id=item_id, num_results=num_results, candidates=mask, model=model
    )
    anchor = int(result.details.get("anchor", -1))
    pks = np.asarray(model.arrays["item_pks"])
    explanations = [
        Explanation(ReasonKind.POPULAR)
        if anchor < 0 or item.extras.get("popular_fallback")
        else Explanation(ReasonKind.SIMILAR, subject_pk=int(pks[anchor]))
        for item in result.items
    ]
    items = [
        ServedItem(item.item_id, item.score, explanation, pk)
        for item, explanation, pk in zip(
            result.items, explanations, _item_pks(model, result.index), strict=True
        )
    ]
    served = ServedList(result.recommendation_id, items, campaign.dataset_group_id)
    recommendation_record(campaign=campaign, served=served, user_id=user_id, session_id=None)
    return served


def personalized_ranking(
    *,
    user_id: str | None,
    item_ids: Sequence[str],
    campaign_name: str | None = None,
    filter_name: str | None = None,
    filter_values: Mapping[str, Sequence[str]] | None = None,
    context: Mapping[str, Any] | None = None,
    session_id: str | None = None,
) -> ServedList:
    """The given items re-ordered for a user (GetPersonalizedRanking); unknown items last, unscored.

    A filter removes the items it does not pass, as Personalize's ranking filters do.
    """
    _check_id("userId", user_id)
    _check_id("sessionId", session_id)
    _check_context(context)
    if len(item_ids) > MAX_NUM_RESULTS:
        raise RecommendationError(f"itemIds may hold at most {MAX_NUM_RESULTS} ids, got {len(item_ids)}")
    for item_id in item_ids:
        _check_id("itemIds entry", item_id)
    campaign = _campaign(campaign_name, RANKING_RECIPES)
    if campaign.backend != CampaignBackend.LOCAL:
        return _backend(campaign).rank(
            campaign=campaign,
            user_id=user_id,
            item_ids=item_ids,
            session_id=session_id,
            filter_name=filter_name,
            filter_values=filter_values,
            context=context,
        )
    try:
        model = campaign_model(campaign=campaign, fresh=True)
    except ModelUnavailableError as error:
        from recommendations.fallback import fallback_list, popular_order

        pks = popular_order(campaign, list(item_ids), filter_name, filter_values, user_id, session_id)
        return fallback_list(
            campaign=campaign, cause=str(error), pks=pks, user_id=user_id, session_id=session_id
        )
    wanted = list(item_ids)
    if filter_name is not None:
        mask = _filter_mask(
            campaign=campaign,
            model=model,
            filter_name=filter_name,
            filter_values=filter_values,
            user_id=user_id,
            session_id=session_id,
        )
        index = model.item_index(wanted)
        wanted = [item_id for item_id, i in zip(wanted, index, strict=True) if i < 0 or mask[i]]
    if not wanted:
        served = ServedList(_new_id(), [], campaign.dataset_group_id)
    else:
        result = campaign_rank(
            campaign=campaign, user_id=user_id, item_ids=wanted, session_id=session_id, model=model
        )
        explanations = _explain_personal(campaign, model, result)
        items = [
            ServedItem(item.item_id, item.score, explanation, pk)
            for item, explanation, pk in zip(
                result.items, explanations, _item_pks(model, result.index), strict=True
            )
        ]
        served = ServedList(result.recommendation_id, items, campaign.dataset_group_id)
    recommendation_record(campaign=campaign, served=served, user_id=user_id, session_id=session_id)
    return served


def user_segment(
    *,
    item_id: str | None = None,
    item_attributes: str | None = None,
    num_results: int = 25,
    campaign_name: str | None = None,
    filter_name: str | None = None,
    filter_values: Mapping[str, Sequence[str]] | None = None,
) -> SegmentResult:
    """Users most likely to interact with one item or with items matching an attribute condition."""
    # Management permission (`manage`) is declared on the GraphQL field with the auth issue.
    if (item_id is None) == (item_attributes is None):
        raise RecommendationError("give exactly one of itemId and itemAttributes")
    if not 1 <= num_results <= 5_000_000:
        raise RecommendationError("numResults must be between 1 and 5000000")
    _check_id("itemId", item_id)
    recipes = ITEM_SEGMENT_RECIPES if item_id is not None else ATTRIBUTE_SEGMENT_RECIPES
    campaign = _campaign(campaign_name, recipes)
    if campaign.backend != CampaignBackend.LOCAL:
        return _backend(campaign).segment(
            campaign=campaign,
            item_id=item_id,
            item_attributes=item_attributes,
            num_results=num_results,
            filter_name=filter_name,
            filter_values=filter_values,
        )
    model = campaign_model(campaign=campaign, fresh=True)
    user_mask = None
    if filter_name is not None:
        from recommendations.filtering import filter_user_mask

        _check_filter_values(filter_values)
        user_mask = np.asarray(
            filter_user_mask(
                filter=campaign_filter_get(name=filter_name, campaign=campaign),
                filter_values={name: list(values) for name, values in (filter_values or {}).items()},
                user_pks=np.asarray(model.arrays["user_pks"]),
            ),
            dtype=bool,
        )
    n_users = len(model.arrays["user_pks"])
    deleted = _users_deleted_after_training(model, campaign.dataset_group_id)
    asked = num_results + len(deleted) if user_mask is None else max(n_users, 1)
    if item_id is not None:
        if model.item_index([item_id])[0] < 0:
            return SegmentResult([], [])
        segment = campaign_segment(campaign=campaign, item_ids=[item_id], num_results=asked, model=model)
    else:
        pks = item_attribute_pks(dataset_group_id=campaign.dataset_group_id, condition=item_attributes or "")
        item_mask = np.zeros(model.n_items, dtype=bool)
        index = model.item_index_of_pks(np.asarray(pks, dtype=np.int64))
        item_mask[index[index >= 0]] = True
        segment = campaign_segment(campaign=campaign, item_mask=item_mask, num_results=asked, model=model)
    user_ids, scores = segment.user_ids, segment.scores
    if deleted:  # the model still knows them; their data is gone (deleteUserData)
        keep = [position for position, user in enumerate(user_ids) if user not in deleted]
        keep = keep if user_mask is not None else keep[:num_results]  # the mask below cuts its own
        user_ids, scores = [user_ids[p] for p in keep], [scores[p] for p in keep]
    if user_mask is not None:
        index = model.user_index(user_ids)
        keep = [position for position, i in enumerate(index) if i >= 0 and user_mask[i]][:num_results]
        user_ids, scores = [user_ids[p] for p in keep], [scores[p] for p in keep]
    return SegmentResult(list(user_ids), list(scores))


def _users_deleted_after_training(model: LoadedModel, dataset_group_id: int) -> set[str]:
    """Users whose data was deleted since the model's training read it (one small query)."""
    from recommendations.data_deletion import user_ids_deleted_since

    trained = (
        SolutionVersion.objects.filter(pk=model.version_id).values_list("started_at", "created_at").first()
    )
    since = None if trained is None else (trained[0] or trained[1])
    return user_ids_deleted_since(dataset_group_id=dataset_group_id, since=since)


# --- itemAttributes (batch segment input) ------------------------------------------------------

_ATTRIBUTE_TOKEN = re.compile(
    r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"""
    r"""|(?P<op><=|>=|!=|=|<|>|\(|\)|,)|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"""
)
_COMPARISONS = {"=": "exact", "!=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def _attribute_tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _ATTRIBUTE_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise RecommendationError(f"itemAttributes: unexpected text at position {position + 1}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
        position = match.end()
    return tokens


def item_attribute_q(*, condition: str, field_kinds: Mapping[str, str]) -> tuple[Q, dict[str, Any]]:
    """A Q over Items for a batch segment `itemAttributes` condition.

    The form Personalize's batch segment input uses: `ITEMS.FIELD op value` conditions
    (`=`, `!=`, `<`, `<=`, `>`, `>=`, `IN ("a", "b")`, `NOT IN (...)`) joined by AND / OR (AND binds
    tighter), e.g. `ITEMS.GENRES = "Comedy" AND ITEMS.PRICE < 50`. Categorical fields match one
    value of a `|` multi-value exactly; numeric comparisons need a numerical field.
    """
    tokens = _attribute_tokens(condition)
    if not tokens:
        raise RecommendationError("itemAttributes must not be empty")
    position = 0

    def take(kind: str | None = None, value: str | None = None) -> str:
        nonlocal position
        if position >= len(tokens):
            raise RecommendationError(f"itemAttributes: expected {value or kind} at the end")
        got_kind, got = tokens[position]
        if (kind and got_kind != kind) or (value and got.upper() != value):
            raise RecommendationError(f"itemAttributes: expected {value or kind}, found {got!r}")
        position += 1
        return got

    def peek() -> str:
        return tokens[position][1].upper() if position < len(tokens) else ""

    def literal() -> str:
        kind, value = tokens[position] if position < len(tokens) else ("", "")
        if kind not in ("string", "number"):
            raise RecommendationError(f"itemAttributes: expected a value, found {value!r}")
        take()
        return value

    def condition_q() -> Q:
        name = take("word")
        dataset, _, field_name = name.partition(".")
        if dataset.upper() != "ITEMS" or not field_name:
            raise RecommendationError(f"itemAttributes: {name!r} must be ITEMS.<field>")
        kinds = {key.upper(): (key, kind) for key, kind in field_kinds.items()}
        if field_name.upper() not in kinds:
            raise RecommendationError(f"itemAttributes: the Items schema has no field {field_name!r}")
        field_name, kind = kinds[field_name.upper()]
        negate = False
        if peek() == "NOT":
            take()
            negate = True
            take("word", "IN")
            operator = "IN"
        elif peek() == "IN":
            take()
            operator = "IN"
        else:
            operator = take("op")
            if operator not in _COMPARISONS:
                raise RecommendationError(f"itemAttributes: unknown operator {operator!r}")
        if operator == "IN":
            take("op", "(")
            values = [literal()]
            while peek() == ",":
                take()
                values.append(literal())
            take("op", ")")
        else:
            values = [literal()]
        if kind == "textual":
            raise RecommendationError(f"itemAttributes: textual field {field_name} cannot be matched")
        if kind == "numerical" and operator != "IN":
            try:
                number = float(values[0])
            except ValueError:
                raise RecommendationError(
                    f"itemAttributes: {field_name} is numerical; {values[0]!r} is not"
                ) from None
            column = Cast(KT(f"metadata__{field_name}"), FloatField())
            lookup = Q(**{f"attribute_{field_name}__{_COMPARISONS[operator]}": number})
            return (~lookup if operator == "!=" else lookup), (f"attribute_{field_name}", column)
        if operator not in ("=", "!=", "IN"):
            raise RecommendationError(
                f"itemAttributes: {operator} needs a numerical field; {field_name} is {kind}"
            )
        if kind == "categorical":
            match = Q()
            for value in values:
                match |= categorical_value_q(field=field_name, value=value)
        else:
            match = Q(**{f"metadata__{field_name}__in": values})
        return (~match if negate or operator == "!=" else match), None

    annotations: dict[str, Any] = {}

    def conjunction() -> Q:
        q, annotation = condition_q()
        if annotation:
            annotations[annotation[0]] = annotation[1]
        while peek() == "AND":
            take()
            more, annotation = condition_q()
            if annotation:
                annotations[annotation[0]] = annotation[1]
            q &= more
        return q

    q = conjunction()
    while peek() == "OR":
        take()
        q |= conjunction()
    if position != len(tokens):
        raise RecommendationError(f"itemAttributes: unexpected {tokens[position][1]!r}")
    return q, annotations


def item_attribute_pks(*, dataset_group_id: int, condition: str) -> list[int]:
    """Primary keys of the group's items matching an `itemAttributes` condition."""
    raw = (
        DatasetSchema.objects.filter(dataset_group_id=dataset_group_id, dataset_type=DatasetType.ITEMS)
        .values_list("fields", flat=True)
        .first()
    )
    kinds = {spec.name: str(spec.kind) for spec in fields_from_json(raw or []) if spec.is_metadata}
    q, annotations = item_attribute_q(condition=condition, field_kinds=kinds)
    return list(
        Item.objects.filter(dataset_group_id=dataset_group_id)
        .annotate(**annotations)
        .filter(q)
        .values_list("pk", flat=True)
    )
