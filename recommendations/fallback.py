"""Answers from the popular list when a campaign's engine cannot answer.

Used when Amazon Personalize cannot be reached (a retryable AWS error) and when a local campaign's
model artifact cannot be loaded. The dataset group's popular list comes from our database
(`backends.local.popular_item_pks`, Personalize's popularity-count rule), the request's filter is
evaluated locally (same expression, same meaning), and every reason says that personalized
recommendations are temporarily unavailable. Answers are recorded like any other, so events can
still name their recommendationId.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence

import numpy as np

from catalog.models import EndUser, Item
from catalog.selectors import item_pks_by_id
from recommendations.backends.local import popular_item_pks
from recommendations.models import Campaign
from recommendations.reasons import Explanation, ReasonKind
from recommendations.serving import ServedItem, ServedList, campaign_filter_get, recommendation_record

__all__ = [
    "FALLBACK_NOTE",
    "FallbackServedList",
    "fallback_list",
    "popular_fallback",
    "popular_order",
]

logger = logging.getLogger(__name__)

FALLBACK_NOTE = "personalized recommendations are temporarily unavailable"


class FallbackServedList(ServedList):
    """A popular list served in the engine's place: every reason says personalization is unavailable."""

    def reasons(self) -> list[str | None]:
        """The popular items' sentences, each noting that personalized recommendations are unavailable."""
        if self._reasons is None:
            plain = super().reasons()
            self._reasons = [f"{text or 'Popular right now'} ({FALLBACK_NOTE})" for text in plain]
        return self._reasons


def _filter_mask(
    campaign: Campaign,
    pks: np.ndarray,
    filter_name: str | None,
    filter_values: Mapping[str, Sequence[str]] | None,
    user_id: str | None,
    session_id: str | None,
    current_item: Item | None = None,
) -> np.ndarray:
    """The request's filter over `pks`, evaluated locally."""
    from recommendations.filtering import filter_item_mask, filter_uses_user

    if filter_name is None or not len(pks):
        return np.ones(len(pks), dtype=bool)
    found = campaign_filter_get(name=filter_name, campaign=campaign)
    user = None
    if user_id and filter_uses_user(filter=found):
        user = EndUser.objects.filter(dataset_group_id=campaign.dataset_group_id, user_id=user_id).first()
    mask = filter_item_mask(
        filter=found,
        filter_values={name: list(values) for name, values in (filter_values or {}).items()},
        item_pks=pks,
        user=user,
        session_id=session_id or user_id,
        current_item=current_item,
    )
    return np.asarray(mask, dtype=bool)


def fallback_list(
    *,
    campaign: Campaign,
    cause: str,
    pks: Sequence[int],
    user_id: str | None,
    session_id: str | None,
) -> ServedList:
    """The items of `pks` (in order) as a popular list, logged with its cause and recorded."""
    logger.warning("campaign %s cannot answer (%s); answering from the popular list", campaign.name, cause)
    ids = dict(Item.objects.filter(pk__in=list(pks)).values_list("pk", "item_id"))
    explanation = Explanation(ReasonKind.POPULAR)
    items = [ServedItem(ids[pk], None, explanation, pk) for pk in pks if pk in ids]
    served = FallbackServedList(uuid.uuid4().hex, items, campaign.dataset_group_id)
    recommendation_record(campaign=campaign, served=served, user_id=user_id, session_id=session_id)
    return served


def popular_fallback(
    campaign: Campaign,
    num_results: int,
    *,
    cause: str,
    filter_name: str | None,
    filter_values: Mapping[str, Sequence[str]] | None,
    user_id: str | None,
    session_id: str | None,
    exclude_item_ids: Sequence[str] = (),
    current_item: Item | None = None,
) -> ServedList:
    """The group's most popular items that pass the request's filter and exclusions, as a fallback list."""
    pks = popular_item_pks(dataset_group_id=campaign.dataset_group_id)
    keep = _filter_mask(campaign, pks, filter_name, filter_values, user_id, session_id, current_item)
    if exclude_item_ids:
        excluded = Item.objects.filter(
            dataset_group_id=campaign.dataset_group_id, item_id__in=list(exclude_item_ids)
        ).values_list("pk", flat=True)
        keep &= ~np.isin(pks, np.fromiter(excluded, dtype=np.int64))
    best = [int(pk) for pk in pks[keep][:num_results]]
    return fallback_list(campaign=campaign, cause=cause, pks=best, user_id=user_id, session_id=session_id)


def popular_order(
    campaign: Campaign,
    wanted: Sequence[str],
    filter_name: str | None,
    filter_values: Mapping[str, Sequence[str]] | None,
    user_id: str | None,
    session_id: str | None,
) -> list[int]:
    """The wanted items that pass the filter, most popular first (the rest in the order given)."""
    pks_by_id = item_pks_by_id(dataset_group_id=campaign.dataset_group_id, item_ids=wanted)
    pks = np.asarray([pks_by_id[item_id] for item_id in wanted if item_id in pks_by_id], dtype=np.int64)
    keep = _filter_mask(campaign, pks, filter_name, filter_values, user_id, session_id)
    popular = popular_item_pks(dataset_group_id=campaign.dataset_group_id)
    rank = {int(pk): position for position, pk in enumerate(popular)}
    kept = [int(pk) for pk in pks[keep]]
    given = {pk: position for position, pk in enumerate(kept)}
    return sorted(kept, key=lambda pk: (rank.get(pk, len(rank)), given[pk]))
