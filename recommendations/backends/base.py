"""The backend boundary: what the recommendation API needs from an engine, and which engine serves what.

Every `Campaign`, `Filter` and `EventTracker` records the backend it lives on (`local` or
`personalize`); `RECSITE_BACKEND` is the default for new ones. `recommendations.serving` answers
local campaigns itself and hands a campaign on another backend to `campaign_backend(campaign)`.

Both backends answer in the same shapes (`ServedList` / `SegmentResult` of `serving`), with
external item ids whose catalog fields the GraphQL layer joins from our database, so a client
cannot tell which engine answered. One shared contract test runs over both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from recommendations.models import CampaignBackend

if TYPE_CHECKING:
    from recommendations.models import Campaign, Filter
    from recommendations.serving import PromotionSpec, SegmentResult, ServedList

__all__ = [
    "BACKEND_NAMES",
    "RecommendationBackend",
    "backend_get",
    "campaign_backend",
    "default_backend_name",
]

BACKEND_NAMES: tuple[str, ...] = tuple(CampaignBackend.values)


@runtime_checkable
class RecommendationBackend(Protocol):
    """The operations the recommendation API needs from an engine (keyword-only, typed)."""

    name: str

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
        """Top items for a user or session (GetRecommendations), explained and recorded."""
        ...

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
        """Items related to one item (GetRecommendations with itemId), explained and recorded."""
        ...

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
        """The given items re-ordered for a user (GetPersonalizedRanking), explained and recorded."""
        ...

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
        """Users most likely to interact with an item or an attribute match."""
        ...

    def filter_create(self, *, filter: Filter) -> Filter:
        """Make a saved filter usable on this backend (Personalize: CreateFilter, ARN stored)."""
        ...

    def filter_delete(self, *, filter: Filter) -> None:
        """Remove a filter from this backend before its row is deleted (Personalize: DeleteFilter)."""
        ...


def default_backend_name() -> str:
    """The backend new campaigns, filters and event trackers live on (`RECSITE_BACKEND`, default `local`)."""
    name = str(getattr(settings, "RECSITE_BACKEND", "") or CampaignBackend.LOCAL).strip().lower()
    if name not in BACKEND_NAMES:
        raise ImproperlyConfigured(f"RECSITE_BACKEND is {name!r}; expected one of {', '.join(BACKEND_NAMES)}")
    return name


def backend_get(name: str) -> RecommendationBackend:
    """The backend called `name` (`local` or `personalize`)."""
    if name == CampaignBackend.LOCAL:
        from recommendations.backends.local import LocalBackend

        return LocalBackend()
    if name == CampaignBackend.PERSONALIZE:
        from recommendations.backends.personalize import PersonalizeBackend

        return PersonalizeBackend()
    raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKEND_NAMES)}")


def campaign_backend(campaign: Campaign) -> RecommendationBackend:
    """The backend that answers a campaign's requests."""
    return backend_get(campaign.backend)
