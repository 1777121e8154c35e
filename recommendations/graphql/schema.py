"""The recommendations app's GraphQL fields: the four recommendation queries and the lifecycle mutations.

Resolvers only convert arguments and call `recommendations.serving` (reads) or
`recommendations.services` (writes). `Mutation` is the app's root mutation: the lifecycle
mutations here merged with the filter and event-tracking mutations.
"""

from typing import Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.tools import merge_types
from strawberry.types import Info

from catalog.models import DEFAULT_DATASET_GROUP
from catalog.selectors import dataset_group_get
from recommendations import services, serving
from recommendations.graphql.data_deletion import DataDeletionMutation
from recommendations.graphql.filters import FilterMutation
from recommendations.graphql.inputs import FilterValueInput, PromotionInput, filter_values_map
from recommendations.graphql.tracking import TrackingMutation
from recommendations.graphql.types import (
    CampaignType,
    RecommendationListType,
    SolutionType,
    SolutionVersionType,
    UserSegmentType,
)
from recommendations.models import SolutionVersion
from recommendations.selectors import campaign_get, solution_get, solution_version_latest

__all__ = ["LifecycleMutation", "Mutation", "Query"]

CampaignArgument = Annotated[
    str | None,
    strawberry.argument(
        description="The campaign (by name); the deployment's default of its kind when omitted."
    ),
]
FilterArgument = Annotated[
    str | None, strawberry.argument(name="filter", description="A filter (by name) applied before the top-N.")
]
FilterValuesArgument = Annotated[
    list[FilterValueInput] | None,
    strawberry.argument(description="Values of the filter's placeholders (names without `$`)."),
]
ContextArgument = Annotated[
    JSON | None,
    strawberry.argument(
        description='Personalize\'s contextual metadata (e.g. {DEVICE: "mobile"}); checked, not used by '
        "the local engine."
    ),
]


def _promotion(promotion: PromotionInput | None) -> serving.PromotionSpec | None:
    if promotion is None:
        return None
    return serving.PromotionSpec(
        name=promotion.name,
        percent_promoted_items=promotion.percent_promoted_items,
        filter_name=promotion.filter,
        filter_values=filter_values_map(promotion.filter_values),
    )


@strawberry.type
class Query:
    """Recommendation reads (Personalize's runtime API)."""

    @strawberry.field(description="Top items for a user or an anonymous session (GetRecommendations).")
    def recommendations(
        self,
        info: Info,
        user_id: str | None = None,
        session_id: str | None = None,
        num_results: int = 25,
        campaign: CampaignArgument = None,
        filter_name: FilterArgument = None,
        filter_values: FilterValuesArgument = None,
        context: ContextArgument = None,
        promotion: PromotionInput | None = None,
        exclude_item_ids: Annotated[
            list[str] | None, strawberry.argument(description="Item ids never to return (at most 500).")
        ] = None,
    ) -> RecommendationListType:
        """Recommendations for a user or session."""
        served = serving.recommendation_list(
            campaign_name=campaign,
            user_id=user_id,
            session_id=session_id,
            num_results=num_results,
            filter_name=filter_name,
            filter_values=filter_values_map(filter_values),
            context=context,
            promotion=_promotion(promotion),
            exclude_item_ids=exclude_item_ids,
        )
        return RecommendationListType.from_served(served, info)

    @strawberry.field(description="Items related to an item (SIMS / similar-items campaigns).")
    def related_items(
        self,
        info: Info,
        item_id: str,
        user_id: str | None = None,
        num_results: int = 25,
        campaign: CampaignArgument = None,
        filter_name: FilterArgument = None,
        filter_values: FilterValuesArgument = None,
    ) -> RecommendationListType:
        """Related items; an item the model does not know gets popular items."""
        served = serving.related_item_list(
            item_id=item_id,
            user_id=user_id,
            campaign_name=campaign,
            num_results=num_results,
            filter_name=filter_name,
            filter_values=filter_values_map(filter_values),
        )
        return RecommendationListType.from_served(served, info)

    @strawberry.field(description="The given items re-ordered for a user (GetPersonalizedRanking).")
    def personalized_ranking(
        self,
        info: Info,
        item_ids: list[str],
        user_id: str | None = None,
        campaign: CampaignArgument = None,
        filter_name: FilterArgument = None,
        filter_values: FilterValuesArgument = None,
        context: ContextArgument = None,
        session_id: str | None = None,
    ) -> RecommendationListType:
        """At most 500 items ranked for a user; unknown items last, without score."""
        served = serving.personalized_ranking(
            user_id=user_id,
            item_ids=item_ids,
            campaign_name=campaign,
            filter_name=filter_name,
            filter_values=filter_values_map(filter_values),
            context=context,
            session_id=session_id,
        )
        return RecommendationListType.from_served(served, info)

    # Not a public operation: recsite/graphql_access.py lets only `manage` callers through.
    @strawberry.field(description="Users most likely to interact with an item or items matching attributes.")
    def user_segment(
        self,
        item_id: str | None = None,
        item_attributes: Annotated[
            str | None,
            strawberry.argument(
                description='A condition such as ITEMS.GENRES = "Comedy" AND ITEMS.PRICE < 50.'
            ),
        ] = None,
        num_results: int = 25,
        campaign: CampaignArgument = None,
        filter_name: FilterArgument = None,
        filter_values: FilterValuesArgument = None,
    ) -> UserSegmentType:
        """A user segment (Personalize's batch segment, answered at once)."""
        result = serving.user_segment(
            item_id=item_id,
            item_attributes=item_attributes,
            num_results=num_results,
            campaign_name=campaign,
            filter_name=filter_name,
            filter_values=filter_values_map(filter_values),
        )
        return UserSegmentType.from_result(result)


def _version(solution_version_id: str | None, solution: str | None) -> SolutionVersion:
    if solution_version_id is not None:
        version = (
            SolutionVersion.objects.select_related("solution").filter(pk=int(solution_version_id)).first()
            if solution_version_id.isdigit()
            else None
        )
        if version is None:
            raise SolutionVersion.DoesNotExist(f"solution version {solution_version_id!r} does not exist")
        return version
    if solution is None:
        raise serving.RecommendationError("give solutionVersionId or solution")
    latest = solution_version_latest(solution=solution_get(name=solution))
    if latest is None:
        raise serving.RecommendationError(f"solution {solution!r} has no ACTIVE version yet")
    return latest


# Access: the `manage` permission is declared on these mutations with the auth issue.
@strawberry.type
class LifecycleMutation:
    """Solutions, versions and campaigns (Personalize's CreateSolution ... UpdateCampaign)."""

    @strawberry.mutation(description="Create a solution: a recipe and its training configuration.")
    def create_solution(
        self,
        name: str,
        recipe: str,
        dataset_group: str = DEFAULT_DATASET_GROUP,
        solution_config: JSON | None = None,
        perform_hpo: bool = False,
        perform_auto_training: bool = True,
    ) -> SolutionType:
        """CreateSolution."""
        solution = services.solution_create(
            dataset_group=dataset_group_get(name=dataset_group),
            name=name,
            recipe=recipe,
            solution_config=solution_config,
            perform_hpo=perform_hpo,
            perform_auto_training=perform_auto_training,
        )
        return SolutionType(instance=solution)

    @strawberry.mutation(description="Train a new version of a solution (queued; poll its status).")
    def create_solution_version(self, solution: str, training_mode: str = "FULL") -> SolutionVersionType:
        """CreateSolutionVersion."""
        version = services.solution_version_create(
            solution=solution_get(name=solution), training_mode=training_mode
        )
        return SolutionVersionType(instance=version)

    @strawberry.mutation(
        description="Deploy a solution version (by id, or the newest ACTIVE version of `solution`)."
    )
    def create_campaign(
        self,
        name: str,
        solution_version_id: str | None = None,
        solution: str | None = None,
        campaign_config: JSON | None = None,
    ) -> CampaignType:
        """CreateCampaign."""
        campaign = services.campaign_create(
            name=name,
            solution_version=_version(solution_version_id, solution),
            campaign_config=campaign_config,
        )
        return CampaignType(instance=campaign)

    @strawberry.mutation(description="Deploy another version and/or change a campaign's config.")
    def update_campaign(
        self,
        name: str,
        solution_version_id: str | None = None,
        solution: str | None = None,
        campaign_config: JSON | None = None,
    ) -> CampaignType:
        """UpdateCampaign."""
        campaign = campaign_get(name=name)
        version = (
            _version(solution_version_id, solution)
            if solution_version_id is not None or solution is not None
            else None
        )
        campaign = services.campaign_update(
            campaign=campaign, solution_version=version, campaign_config=campaign_config
        )
        return CampaignType(instance=campaign)


Mutation = merge_types(
    "Mutation", (LifecycleMutation, FilterMutation, TrackingMutation, DataDeletionMutation)
)
