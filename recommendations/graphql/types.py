"""GraphQL output types of the recommendation API and the recommendations lifecycle.

A `RecommendationList` is built whole by its query's resolver: when the query selects the items'
`reason`, all sentences are built at once (one query for the names they mention); when it selects
`item { ... }`, one query loads the catalog rows of the whole list. Every field of the list is then
a plain attribute, so strawberry resolves none of them through a resolver (25 items x 6 fields).
"""

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from catalog.graphql.types import ItemType, epoch_seconds
from catalog.selectors import catalog_rows_by_id
from recommendations.graphql.selection import selected_paths
from recommendations.models import Campaign, Solution, SolutionVersion
from recommendations.serving import SegmentResult, ServedList

__all__ = [
    "CampaignType",
    "RecommendationListType",
    "RecommendedItemType",
    "SolutionType",
    "SolutionVersionType",
    "UserSegmentType",
]


@strawberry.type(name="RecommendedItem", description="One item of a recommendation list.")
class RecommendedItemType:
    """An item with its score, the reason it is there and its promotion (if any)."""

    item_id: str = strawberry.field(description="The item's external id.")
    score: float | None = strawberry.field(
        description="The model's score (null when the model cannot score the item)."
    )
    promotion_name: str | None = strawberry.field(description="The promotion that placed it, or null.")
    reason: str | None = strawberry.field(
        description="Why the item is recommended, in one sentence a shop owner understands."
    )
    item: ItemType | None = strawberry.field(
        description="The catalog item (null if it was deleted since training)."
    )


@strawberry.type(name="RecommendationList", description="A ranked list and the id events can refer to.")
class RecommendationListType:
    """Personalize's GetRecommendations / GetPersonalizedRanking answer."""

    recommendation_id: str = strawberry.field(
        description="Pass it as `recommendationId` in putEvents (implicit impressions)."
    )
    items: list[RecommendedItemType]

    @classmethod
    def from_served(cls, served: ServedList, info: Info) -> "RecommendationListType":
        """The GraphQL view of a served list, with the reasons and catalog rows the query selects."""
        selected = selected_paths(info)
        count = len(served.items)
        reasons = served.reasons() if "items.reason" in selected else [None] * count
        rows = (
            catalog_rows_by_id(
                dataset_group_id=served.dataset_group_id,
                item_ids=[item.item_id for item in served.items],
                interaction_count="items.item.interactionCount" in selected,
            )
            if "items.item" in selected
            else {}
        )
        return cls(
            recommendation_id=served.recommendation_id,
            items=[
                RecommendedItemType(
                    item_id=item.item_id,
                    score=item.score,
                    promotion_name=item.promotion_name,
                    reason=reason,
                    item=strawberry.cast(ItemType, rows.get(item.item_id)),
                )
                for item, reason in zip(served.items, reasons, strict=True)
            ],
        )


@strawberry.type(name="UserSegment", description="Users most likely to interact with an item or attribute.")
class UserSegmentType:
    """A user segment, best first."""

    user_ids: list[str]
    scores: list[float]

    @classmethod
    def from_result(cls, result: SegmentResult) -> "UserSegmentType":
        """The GraphQL view of a segment."""
        return cls(user_ids=result.user_ids, scores=result.scores)


@strawberry.type(name="Solution", description="A recipe and its training configuration (CreateSolution).")
class SolutionType:
    """A solution."""

    instance: strawberry.Private[Solution]

    @strawberry.field
    def name(self) -> str:
        """The solution's name."""
        return self.instance.name

    @strawberry.field
    def recipe(self) -> str:
        """Personalize's recipe name."""
        return self.instance.recipe

    @strawberry.field
    def dataset_group(self) -> str:
        """The dataset group's name."""
        return self.instance.dataset_group.name

    @strawberry.field
    def solution_config(self) -> JSON:
        """Personalize's solutionConfig."""
        return self.instance.solution_config

    @strawberry.field
    def perform_hpo(self) -> bool:
        """Whether training tunes hyperparameters."""
        return self.instance.perform_hpo

    @strawberry.field
    def perform_auto_training(self) -> bool:
        """Whether new versions are trained on a schedule."""
        return self.instance.perform_auto_training

    @strawberry.field
    def created_at(self) -> float | None:
        """Creation time in epoch seconds."""
        return epoch_seconds(self.instance.created_at)


@strawberry.type(name="SolutionVersion", description="One training run of a solution.")
class SolutionVersionType:
    """A solution version: status, metrics and failure reason."""

    instance: strawberry.Private[SolutionVersion]

    @strawberry.field(description="The version's id (pass it to createCampaign / updateCampaign).")
    def solution_version_id(self) -> str:
        """The version's id as a string."""
        return str(self.instance.pk)

    @strawberry.field
    def solution(self) -> str:
        """The solution's name."""
        return self.instance.solution.name

    @strawberry.field
    def status(self) -> str:
        """CREATE PENDING, CREATE IN_PROGRESS, ACTIVE or CREATE FAILED."""
        return self.instance.status

    @strawberry.field
    def failure_reason(self) -> str | None:
        """Why training failed, or null."""
        return self.instance.failure_reason or None

    @strawberry.field
    def training_mode(self) -> str:
        """FULL or UPDATE."""
        return self.instance.training_mode

    @strawberry.field
    def metrics(self) -> JSON:
        """Personalize's offline metrics of the holdout fit."""
        return self.instance.metrics

    @strawberry.field
    def created_at(self) -> float | None:
        """Creation time in epoch seconds."""
        return epoch_seconds(self.instance.created_at)


@strawberry.type(name="Campaign", description="A real-time endpoint serving one solution version.")
class CampaignType:
    """A campaign."""

    instance: strawberry.Private[Campaign]

    @strawberry.field
    def name(self) -> str:
        """The campaign's name (pass it as `campaign`)."""
        return self.instance.name

    @strawberry.field
    def status(self) -> str:
        """Personalize's campaign status."""
        return self.instance.status

    @strawberry.field
    def solution_version_id(self) -> str:
        """The id of the version it serves."""
        return str(self.instance.solution_version_id)

    @strawberry.field
    def recipe(self) -> str:
        """The recipe of the version it serves."""
        return self.instance.solution_version.solution.recipe

    @strawberry.field
    def dataset_group(self) -> str:
        """The dataset group's name."""
        return self.instance.dataset_group.name

    @strawberry.field
    def campaign_config(self) -> JSON:
        """Personalize's campaignConfig."""
        return self.instance.campaign_config

    @strawberry.field
    def sync_with_latest_solution_version(self) -> bool:
        """Whether each new ACTIVE version of the solution is deployed."""
        return self.instance.follows_latest
