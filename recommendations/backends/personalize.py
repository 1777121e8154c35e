"""The Amazon Personalize backend: real-time answers from Personalize, in the local backend's shapes.

Serving calls `GetRecommendations` (user lists, and related items with `itemId`) and
`GetPersonalizedRanking` on the campaign's ARN through the adapter in `backends.aws`, with the
filter's ARN, `filterValues` in Personalize's JSON-quoted form, `context` and `promotions`. The
answer's external item ids are explained (`reasons`), recorded as a `RecommendationRecord` under
Personalize's `recommendationId` and returned as a `ServedList`, whose catalog fields the GraphQL
layer joins from our database exactly as for the local backend (so `metadataColumns` is not asked
for: it costs extra on Personalize and our database already holds the items).

When Personalize cannot be reached (a `PersonalizeRetryableError`: throttling after botocore's
retries, 5xx, timeouts, no connection) the request is answered from the dataset group's popular
list in our database (`local.popular_item_pks`), with the request's filter evaluated locally (same
expression language) and every reason saying personalized recommendations are temporarily
unavailable. Any other AWS error (not found, invalid input, missing configuration) is raised as
the domain error, which the GraphQL view turns into a coded error.

Personalize has no real-time user segments (only batch segment jobs), so `segment` refuses.
Filters used with a Personalize campaign must exist there: `filter_create` calls `CreateFilter`
with the same expression text and stores the ARN; `filter_delete` calls `DeleteFilter`.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from catalog.models import Interaction, Item
from catalog.selectors import item_pks_by_id
from recommendations.backends.aws import aws_call, personalize_client, personalize_runtime_client
from recommendations.errors import (
    BackendUnavailableError,
    PersonalizeNotFoundError,
    PersonalizeRetryableError,
    RecommendationError,
)
from recommendations.fallback import fallback_list, popular_fallback, popular_order
from recommendations.models import (
    Campaign,
    CampaignBackend,
    Filter,
    FilterStatus,
    PersonalizeDatasetGroup,
    Solution,
)
from recommendations.reasons import Explanation, ReasonKind
from recommendations.selectors import MAX_NUM_RESULTS
from recommendations.serving import (
    MAX_EXCLUDED_ITEMS,
    MAX_ID_LENGTH,
    PromotionSpec,
    SegmentResult,
    ServedItem,
    ServedList,
    campaign_filter_get,
    recommendation_record,
)

__all__ = [
    "MAX_FILTER_VALUE_LENGTH",
    "PersonalizeBackend",
    "filter_values_from_personalize",
    "filter_values_to_personalize",
    "personalize_dataset_group_arn",
]

logger = logging.getLogger(__name__)

MAX_FILTER_VALUES = 25  # entries of Personalize's filterValues map
MAX_FILTER_VALUE_LENGTH = 1000  # characters of one entry, quotes and commas included
FILTER_VALUE_NAME = re.compile(r"^[A-Za-z0-9_]{1,50}$")
MAX_RECORDED_ID_LENGTH = 40  # RecommendationRecord.recommendation_id, PutEvents' recommendationId

# Personalize's PredictedItem.reason values (User-Personalization-v2) → our reason kinds.
_PERSONALIZE_REASONS = {
    "Exploration": ReasonKind.NEW,
    "Popular item": ReasonKind.POPULAR,
}


# --- filterValues --------------------------------------------------------------------------------


def filter_values_to_personalize(filter_values: Mapping[str, Sequence[str]] | None) -> dict[str, str]:
    """`{"GENRE": ["Comedy", "Drama"]}` → `{"GENRE": '"Comedy","Drama"'}` (Personalize's JSON-quoted form).

    Names carry no `$`. A name with no values is left out, as Personalize drops an EXCLUDE part
    whose placeholder has no value. Raises RecommendationError for what Personalize would refuse.
    """
    if not filter_values:
        return {}
    if len(filter_values) > MAX_FILTER_VALUES:
        raise RecommendationError(f"filterValues has {len(filter_values)} names; at most {MAX_FILTER_VALUES}")
    converted: dict[str, str] = {}
    for name, values in filter_values.items():
        if not FILTER_VALUE_NAME.match(str(name)):
            raise RecommendationError(
                f"filterValues name {name!r} must be 1-50 letters, digits or _ (the placeholder without $)"
            )
        listed = [values] if isinstance(values, str) else list(values)
        if not listed:
            continue
        text = ",".join(json.dumps(str(value), ensure_ascii=False) for value in listed)
        if len(text) > MAX_FILTER_VALUE_LENGTH:
            raise RecommendationError(
                f"filterValues {name}: {len(text)} characters once quoted; Personalize takes at most "
                f"{MAX_FILTER_VALUE_LENGTH}"
            )
        converted[str(name)] = text
    return converted


def filter_values_from_personalize(filter_values: Mapping[str, str] | None) -> dict[str, list[str]]:
    """Personalize's `{"GENRE": '"Comedy","Drama"'}` → `{"GENRE": ["Comedy", "Drama"]}`."""
    parsed: dict[str, list[str]] = {}
    for name, text in (filter_values or {}).items():
        try:
            values = json.loads(f"[{text}]")
        except (TypeError, ValueError):
            raise RecommendationError(
                f'filterValues {name}: {text!r} is not a list of JSON-quoted values such as "\\"a\\",\\"b\\""'
            ) from None
        parsed[str(name)] = [value if isinstance(value, str) else json.dumps(value) for value in values]
    return parsed


# --- resources on Personalize ---------------------------------------------------------------------


def personalize_dataset_group_arn(*, dataset_group_id: int) -> str:
    """The ARN of the group's dataset group on Personalize, as provisioning recorded it."""
    arn = (
        PersonalizeDatasetGroup.objects.filter(dataset_group_id=dataset_group_id)
        .values_list("dataset_group_arn", flat=True)
        .first()
    )
    if not arn:
        raise BackendUnavailableError(
            "the dataset group is not provisioned on Amazon Personalize yet (no dataset group ARN); "
            "provision it before creating filters there"
        )
    return str(arn)


def _campaign_arn(campaign: Campaign) -> str:
    if not campaign.personalize_arn:
        raise BackendUnavailableError(
            f"campaign {campaign.name!r} is not deployed on Amazon Personalize yet "
            f"(no campaign ARN; status {campaign.status})"
        )
    return campaign.personalize_arn


def _filter_arn(campaign: Campaign, found: Filter) -> str:
    """The filter's ARN once Personalize has it ACTIVE.

    A filter still being created is looked at once more (DescribeFilter) when a request uses it, so
    it becomes usable even where no worker polls it (tasks in-process); until then, UNAVAILABLE.
    """
    from recommendations.personalize_jobs import filter_status_step

    if found.backend != CampaignBackend.PERSONALIZE or not found.personalize_arn:
        raise BackendUnavailableError(
            f"filter {found.name!r} is not created on Amazon Personalize, so campaign {campaign.name!r} "
            "cannot use it; create the filter with RECSITE_BACKEND=personalize"
        )
    if found.status in (FilterStatus.PENDING, FilterStatus.IN_PROGRESS):
        filter_status_step(filter_id=found.pk)
        found.refresh_from_db(fields=["status", "failure_reason"])
    if found.status != FilterStatus.ACTIVE:
        reason = f": {found.failure_reason}" if found.failure_reason else ""
        raise BackendUnavailableError(
            f"filter {found.name!r} is {found.status} on Amazon Personalize{reason}; "
            "it can be used once ACTIVE"
        )
    return found.personalize_arn


def _filter_params(
    campaign: Campaign, filter_name: str | None, filter_values: Mapping[str, Sequence[str]] | None
) -> dict[str, Any]:
    if filter_name is None:
        return {}
    found = campaign_filter_get(name=filter_name, campaign=campaign)
    params: dict[str, Any] = {"filterArn": _filter_arn(campaign, found)}
    converted = filter_values_to_personalize(filter_values)
    if converted:
        params["filterValues"] = converted
    return params


def _context(context: Mapping[str, Any] | None) -> dict[str, str]:
    """Personalize's context map takes strings: other JSON values are sent as their JSON text."""
    return {
        str(key): value if isinstance(value, str) else json.dumps(value)
        for key, value in (context or {}).items()
    }


def _promotion(campaign: Campaign, promotion: PromotionSpec) -> dict[str, Any]:
    found = campaign_filter_get(name=promotion.filter_name, campaign=campaign)
    spec: dict[str, Any] = {
        "name": promotion.name,
        "percentPromotedItems": promotion.percent_promoted_items,
        "filterArn": _filter_arn(campaign, found),
    }
    converted = filter_values_to_personalize(promotion.filter_values)
    if converted:
        spec["filterValues"] = converted
    return spec


# --- explaining and recording an answer -----------------------------------------------------------


def _recipe(campaign: Campaign) -> str:
    return (
        Solution.objects.filter(versions__pk=campaign.solution_version_id)
        .values_list("recipe", flat=True)
        .first()
        or ""
    )


def _has_events(group_id: int, user_id: str | None, session_id: str | None) -> bool:
    """Whether our database holds this user's or session's events (newcomers get popular items)."""
    events = Interaction.objects.filter(dataset_group_id=group_id)
    if user_id and events.filter(user__user_id=user_id).exists():
        return True
    session = session_id or user_id
    return bool(session) and events.filter(session_id=session).exists()


def _personal_kind(campaign: Campaign, user_id: str | None, session_id: str | None) -> ReasonKind:
    """The reason kind of an ordinary item of a user-facing answer."""
    recipe = _recipe(campaign)
    if recipe == "aws-popularity-count":
        return ReasonKind.POPULAR
    if recipe == "aws-trending-now":
        return ReasonKind.TRENDING
    if not _has_events(campaign.dataset_group_id, user_id, session_id):
        return ReasonKind.POPULAR
    return ReasonKind.FOR_YOU


def _explanation(entry: Mapping[str, Any], ordinary: Explanation) -> Explanation:
    if entry.get("promotionName"):
        return Explanation(ReasonKind.PROMOTED, promotion_name=str(entry["promotionName"]))
    for reason in entry.get("reason") or ():
        if reason in _PERSONALIZE_REASONS:
            return Explanation(_PERSONALIZE_REASONS[reason])
    return ordinary


def _record(campaign: Campaign, served: ServedList, user_id: str | None, session_id: str | None) -> None:
    if len(served.recommendation_id) > MAX_RECORDED_ID_LENGTH:
        return  # events cannot name it either (PutEvents' recommendationId is at most 40 characters)
    recommendation_record(campaign=campaign, served=served, user_id=user_id, session_id=session_id)


def _served(
    campaign: Campaign,
    recommendation_id: str | None,
    entries: Sequence[Mapping[str, Any]],
    explain: Callable[[Mapping[str, Any]], Explanation],
) -> ServedList:
    pks = item_pks_by_id(
        dataset_group_id=campaign.dataset_group_id, item_ids=[str(entry["itemId"]) for entry in entries]
    )
    items = [
        ServedItem(
            str(entry["itemId"]),
            float(entry["score"]) if entry.get("score") is not None else None,
            explain(entry),
            pks.get(str(entry["itemId"])),
        )
        for entry in entries
    ]
    return ServedList(recommendation_id or uuid.uuid4().hex, items, campaign.dataset_group_id)


def _unreachable(error: PersonalizeRetryableError) -> str:
    return f"Amazon Personalize unreachable: {error}"


# --- the backend ---------------------------------------------------------------------------------


class PersonalizeBackend:
    """Amazon Personalize through boto3 (`backends.aws`); the popular list when Personalize is unreachable."""

    name = CampaignBackend.PERSONALIZE.value

    def recommend(
        self,
        *,
        campaign: Campaign,
        user_id: str | None = None,
        session_id: str | None = None,
        num_results: int = 25,
        filter_name: str | None = None,
        filter_values: Mapping[str, Sequence[str]] | None = None,
        context: Mapping[str, Any] | None = None,
        promotion: PromotionSpec | None = None,
        exclude_item_ids: Sequence[str] | None = None,
    ) -> ServedList:
        """GetRecommendations for a user (or a session, sent as the userId, as Personalize advises)."""
        excluded = _exclusions(exclude_item_ids)
        params: dict[str, Any] = {
            "campaignArn": _campaign_arn(campaign),
            # Personalize has no exclusion list: ask for more and drop the excluded ones.
            "numResults": min(MAX_NUM_RESULTS, num_results + len(excluded)),
        }
        if user_id or session_id:
            params["userId"] = user_id or session_id
        params.update(_filter_params(campaign, filter_name, filter_values))
        if context:
            params["context"] = _context(context)
        if promotion is not None:
            params["promotions"] = [_promotion(campaign, promotion)]
        try:
            response = aws_call(personalize_runtime_client(), "get_recommendations", **params)
        except PersonalizeRetryableError as error:
            return popular_fallback(
                campaign,
                num_results,
                cause=_unreachable(error),
                filter_name=filter_name,
                filter_values=filter_values,
                user_id=user_id,
                session_id=session_id,
                exclude_item_ids=sorted(excluded),
            )
        entries = [entry for entry in response.get("itemList") or () if entry["itemId"] not in excluded]
        ordinary = Explanation(_personal_kind(campaign, user_id, session_id))
        served = _served(
            campaign,
            response.get("recommendationId"),
            entries[:num_results],
            lambda entry: _explanation(entry, ordinary),
        )
        _record(campaign, served, user_id, session_id)
        return served

    def related(
        self,
        *,
        campaign: Campaign,
        item_id: str,
        user_id: str | None = None,
        num_results: int = 25,
        filter_name: str | None = None,
        filter_values: Mapping[str, Sequence[str]] | None = None,
    ) -> ServedList:
        """GetRecommendations with itemId (a related-items campaign); userId when a filter reads the user."""
        params: dict[str, Any] = {
            "campaignArn": _campaign_arn(campaign),
            "itemId": item_id,
            "numResults": num_results,
        }
        if user_id:
            params["userId"] = user_id
        params.update(_filter_params(campaign, filter_name, filter_values))
        anchor = Item.objects.filter(dataset_group_id=campaign.dataset_group_id, item_id=item_id).first()
        try:
            response = aws_call(personalize_runtime_client(), "get_recommendations", **params)
        except PersonalizeRetryableError as error:
            return popular_fallback(
                campaign,
                num_results,
                cause=_unreachable(error),
                filter_name=filter_name,
                filter_values=filter_values,
                user_id=user_id,
                session_id=None,
                exclude_item_ids=[item_id],
                current_item=anchor,
            )
        # Personalize answers an item it does not know with popular items; so do we name them.
        ordinary = (
            Explanation(ReasonKind.SIMILAR, subject_pk=anchor.pk)
            if anchor is not None
            else Explanation(ReasonKind.POPULAR)
        )
        served = _served(
            campaign,
            response.get("recommendationId"),
            list(response.get("itemList") or ())[:num_results],
            lambda entry: _explanation(entry, ordinary),
        )
        _record(campaign, served, user_id, None)
        return served

    def rank(
        self,
        *,
        campaign: Campaign,
        user_id: str | None,
        item_ids: Sequence[str],
        session_id: str | None = None,
        filter_name: str | None = None,
        filter_values: Mapping[str, Sequence[str]] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> ServedList:
        """GetPersonalizedRanking; items Personalize cannot score come last, unscored ("not ranked yet")."""
        wanted = list(dict.fromkeys(str(item_id) for item_id in item_ids))
        requester = user_id or session_id
        if not requester:
            raise RecommendationError("personalizedRanking on Amazon Personalize needs userId or sessionId")
        params: dict[str, Any] = {
            "campaignArn": _campaign_arn(campaign),
            "userId": requester,
            "inputList": wanted,
        }
        params.update(_filter_params(campaign, filter_name, filter_values))
        if context:
            params["context"] = _context(context)
        if not wanted:
            served = ServedList(uuid.uuid4().hex, [], campaign.dataset_group_id)
            _record(campaign, served, user_id, session_id)
            return served
        try:
            response = aws_call(personalize_runtime_client(), "get_personalized_ranking", **params)
        except PersonalizeRetryableError as error:
            return fallback_list(
                campaign=campaign,
                cause=_unreachable(error),
                pks=popular_order(campaign, wanted, filter_name, filter_values, user_id, session_id),
                user_id=user_id,
                session_id=session_id,
            )
        ordinary = Explanation(_personal_kind(campaign, user_id, session_id))
        unranked = Explanation(ReasonKind.UNRANKED)
        served = _served(
            campaign,
            response.get("recommendationId"),
            list(response.get("personalizedRanking") or ()),
            lambda entry: _explanation(entry, ordinary if entry.get("score") is not None else unranked),
        )
        _record(campaign, served, user_id, session_id)
        return served

    def segment(
        self,
        *,
        campaign: Campaign,
        item_id: str | None = None,
        item_attributes: str | None = None,
        num_results: int = 25,
        filter_name: str | None = None,
        filter_values: Mapping[str, Sequence[str]] | None = None,
    ) -> SegmentResult:
        """Refused: Amazon Personalize makes user segments only in batch segment jobs."""
        raise BackendUnavailableError(
            f"userSegment is not supported on Amazon Personalize (batch segment jobs only): campaign "
            f"{campaign.name!r} is on Personalize; run a batch segment job or use a local campaign"
        )

    def filter_create(self, *, filter: Filter) -> Filter:
        """CreateFilter with the same expression text in the group's dataset group; stores the ARN."""
        group_arn = personalize_dataset_group_arn(dataset_group_id=filter.dataset_group_id)
        response = aws_call(
            personalize_client(),
            "create_filter",
            name=filter.name,
            datasetGroupArn=group_arn,
            filterExpression=filter.expression,
        )
        filter.backend = CampaignBackend.PERSONALIZE
        filter.personalize_arn = str(response["filterArn"])
        if filter.pk is not None:
            filter.save(update_fields=["backend", "personalize_arn", "updated_at"])
        return filter

    def filter_delete(self, *, filter: Filter) -> None:
        """DeleteFilter; a filter Personalize no longer has counts as deleted."""
        if not filter.personalize_arn:
            return
        try:
            aws_call(personalize_client(), "delete_filter", filterArn=filter.personalize_arn)
        except PersonalizeNotFoundError:
            logger.info("filter %s was already gone from Amazon Personalize", filter.name)


def _exclusions(exclude_item_ids: Sequence[str] | None) -> set[str]:
    if not exclude_item_ids:
        return set()
    if len(exclude_item_ids) > MAX_EXCLUDED_ITEMS:
        raise RecommendationError(f"excludeItemIds may hold at most {MAX_EXCLUDED_ITEMS} ids")
    for item_id in exclude_item_ids:
        if not 1 <= len(item_id) <= MAX_ID_LENGTH:
            raise RecommendationError(f"excludeItemIds entry must be 1 to {MAX_ID_LENGTH} characters long")
    return {str(item_id) for item_id in exclude_item_ids}
