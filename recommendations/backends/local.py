"""The local backend: the embedded engine, served by `recommendations.serving` over `selectors`.

`LocalBackend` is the protocol's face of the existing local path (`serving.recommendation_list`,
`related_item_list`, `personalized_ranking`, `user_segment`, which run the campaign's model through
`selectors.campaign_recommend` / `campaign_rank` / `campaign_related` / `campaign_segment` with the
filters of `recommendations.filtering` as candidate masks). Local filters need nothing beyond their
row, so creating and deleting them on this backend does nothing.

`popular_item_pks` is the group's popular list read from the database (no model needed): the
Personalize backend answers from it while Amazon Personalize is unreachable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from django.db.models import Count

from catalog.models import Interaction, Item
from recommendations import serving
from recommendations.models import Campaign, CampaignBackend, Filter
from recommendations.serving import PromotionSpec, SegmentResult, ServedList

__all__ = [
    "POPULAR_CACHE_SECONDS",
    "POPULAR_LIMIT",
    "LocalBackend",
    "popular_cache_clear",
    "popular_item_pks",
]

POPULAR_LIMIT = 1000  # items kept in the popular list (enough for numResults 500 after a filter)
POPULAR_CACHE_SECONDS = 60.0  # how long a process trusts its popular list

_lock = threading.Lock()
_popular: dict[int, tuple[float, np.ndarray]] = {}


class LocalBackend:
    """The embedded engine (`serving` + `selectors`); `serving` hands other backends' campaigns on."""

    name = CampaignBackend.LOCAL.value

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
        """Top items for a user or session from the campaign's local model."""
        return serving.recommendation_list(
            campaign_name=campaign.name,
            user_id=user_id,
            session_id=session_id,
            num_results=num_results,
            filter_name=filter_name,
            filter_values=filter_values,
            context=context,
            promotion=promotion,
            exclude_item_ids=exclude_item_ids,
        )

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
        """Items related to one item from the campaign's local model."""
        return serving.related_item_list(
            item_id=item_id,
            user_id=user_id,
            campaign_name=campaign.name,
            num_results=num_results,
            filter_name=filter_name,
            filter_values=filter_values,
        )

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
        """The given items re-ordered by the campaign's local model."""
        return serving.personalized_ranking(
            user_id=user_id,
            item_ids=item_ids,
            campaign_name=campaign.name,
            filter_name=filter_name,
            filter_values=filter_values,
            context=context,
            session_id=session_id,
        )

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
        """Users most likely to interact with an item or an attribute match, from the local model."""
        return serving.user_segment(
            item_id=item_id,
            item_attributes=item_attributes,
            num_results=num_results,
            campaign_name=campaign.name,
            filter_name=filter_name,
            filter_values=filter_values,
        )

    def filter_create(self, *, filter: Filter) -> Filter:
        """Nothing to do: a local filter is evaluated from its row."""
        return filter

    def filter_delete(self, *, filter: Filter) -> None:
        """Nothing to do: deleting the row removes a local filter."""


def popular_cache_clear() -> None:
    """Forget the popular lists remembered per dataset group (tests; after a bulk import)."""
    with _lock:
        _popular.clear()


def popular_item_pks(*, dataset_group_id: int) -> np.ndarray:
    """Item primary keys of the group's most popular items, best first (read-only; cached per process).

    Popularity is Personalize's popularity-count rule (distinct users who interacted, then events),
    over the whole interactions dataset; the first `POPULAR_LIMIT` items are kept for
    `POPULAR_CACHE_SECONDS`. A group without interactions lists its newest items.
    """
    now = time.monotonic()
    cached = _popular.get(dataset_group_id)
    if cached is not None and now - cached[0] < POPULAR_CACHE_SECONDS:
        return cached[1]
    pks = list(
        Interaction.objects.filter(dataset_group_id=dataset_group_id, item__isnull=False)
        .values("item")
        .annotate(users=Count("user", distinct=True), events=Count("id"))
        .order_by("-users", "-events", "item")
        .values_list("item", flat=True)[:POPULAR_LIMIT]
    )
    if not pks:
        pks = list(
            Item.objects.filter(dataset_group_id=dataset_group_id)
            .order_by("-pk")
            .values_list("pk", flat=True)[:POPULAR_LIMIT]
        )
    found = np.asarray(pks, dtype=np.int64)
    found.flags.writeable = False  # shared by requests; lets the filter cache remember its key
    with _lock:
        _popular[dataset_group_id] = (now, found)
    return found
