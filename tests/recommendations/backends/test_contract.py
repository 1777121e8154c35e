"""One contract over both backends: the same requests give answers of the same shape.

`local` runs campaigns trained for real on the demo shop; `personalize` runs campaigns deployed on
Amazon Personalize, answered by a Stubber on the adapter's personalize-runtime client (so each
request is checked against boto3's service model). Each test asks through `serving` (the path
the GraphQL API takes), which hands Personalize campaigns to their backend.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.stub import Stubber
from django.db.models import Count

from catalog.models import DatasetGroup, EndUser, Item
from recommendations import serving
from recommendations.backends import aws
from recommendations.backends.base import RecommendationBackend, backend_get, campaign_backend
from recommendations.errors import BackendUnavailableError
from recommendations.filtering import filter_create
from recommendations.models import Campaign, Filter, RecommendationRecord
from recommendations.personalize_tasks import personalize_filter_task
from tests.recommendations.backends.conftest import (
    GROUP_ARN,
    active_user,
    biggest_category,
    categories_of,
    filter_arn,
    item_ids,
)

pytestmark = pytest.mark.django_db

RECIPES = {
    "segment": "aws-item-affinity",
    "user": "aws-user-personalization",
    "related": "aws-sims",
    "ranking": "aws-personalized-ranking",
}


@dataclass
class Served:
    """The backend under test, its campaigns, and (Personalize) the stubbed runtime client."""

    backend: str
    group: DatasetGroup
    make_campaign: Callable[[str], Campaign]
    stubber: Stubber | None = None
    control: Stubber | None = None
    campaigns: dict[str, Campaign] = field(default_factory=dict)

    def campaign(self, kind: str) -> Campaign:
        """The campaign of this kind (user, related, ranking), created on first use."""
        if kind not in self.campaigns:
            self.campaigns[kind] = self.make_campaign(RECIPES[kind])
        return self.campaigns[kind]

    def expect(self, operation: str, params: dict[str, Any], response: dict[str, Any]) -> None:
        """On Personalize: the exact request the backend must send and the answer it gets."""
        if self.stubber is not None:
            self.stubber.add_response(operation, response, params)

    def filter(self, name: str, expression: str) -> Filter:
        """A filter on this backend (on Personalize: CreateFilter answered with its ARN, then ACTIVE)."""
        if self.control is not None:
            self.control.add_response(
                "create_filter",
                {"filterArn": filter_arn(name)},
                {"name": name, "datasetGroupArn": GROUP_ARN, "filterExpression": expression},
            )
        created = filter_create(
            dataset_group=self.group, name=name, expression=expression, backend=self.backend
        )
        if self.control is not None:
            self.control.add_response(
                "describe_filter", {"filter": {"status": "ACTIVE"}}, {"filterArn": filter_arn(name)}
            )
            personalize_filter_task.delay(created.pk)  # what the commit enqueues
            created.refresh_from_db()
        return created


def predicted(ids: list[str], *, scored: int | None = None) -> list[dict[str, Any]]:
    """PredictedItems for these ids, best first (the last len(ids) - scored without a score)."""
    scored = len(ids) if scored is None else scored
    return [
        {"itemId": item_id, "score": round(0.9 - 0.01 * position, 4)}
        if position < scored
        else {"itemId": item_id}
        for position, item_id in enumerate(ids)
    ]


@pytest.fixture(params=["local", "personalize"])
def served(
    request: pytest.FixtureRequest,
    demo: DatasetGroup,
    deploy: Callable[..., Campaign],
    personalize_campaign: Callable[..., Campaign],
) -> Iterator[Served]:
    """Each backend in turn, with campaigns of its own."""
    if request.param == "local":
        yield Served("local", demo, deploy)
        return
    request.getfixturevalue("provisioned")
    with (
        Stubber(aws.personalize_runtime_client()) as stubber,
        Stubber(aws.personalize_client()) as control,
    ):
        yield Served("personalize", demo, personalize_campaign, stubber, control)
        stubber.assert_no_pending_responses()
        control.assert_no_pending_responses()


def assert_catalog_list(served_list: serving.ServedList, group: DatasetGroup, n: int) -> None:
    """n distinct catalog items, each with its row's pk, a float score and a plain-words reason."""
    ids = [item.item_id for item in served_list.items]
    assert len(ids) == n == len(set(ids))
    pks = dict(Item.objects.filter(dataset_group=group, item_id__in=ids).values_list("item_id", "pk"))
    assert [item.item_pk for item in served_list.items] == [pks[item_id] for item_id in ids]
    assert all(isinstance(item.score, float) for item in served_list.items)
    reasons = served_list.reasons()
    assert len(reasons) == n and all(isinstance(text, str) and text for text in reasons)


def test_both_backends_implement_the_protocol() -> None:
    # Given the two backends by name / When they are looked up / Then each implements the protocol
    for name in ("local", "personalize"):
        backend = backend_get(name)
        assert isinstance(backend, RecommendationBackend)
        assert backend.name == name


def test_recommendations_are_catalog_items_recorded_under_their_id(served: Served) -> None:
    # Given a user-personalization campaign and a user with history
    campaign = served.campaign("user")
    user = active_user(served.group)
    served.expect(
        "get_recommendations",
        {"campaignArn": campaign.personalize_arn, "numResults": 10, "userId": user.user_id},
        {"itemList": predicted(item_ids(served.group, 10)), "recommendationId": "RID-contract-1"},
    )
    # When 10 recommendations are asked through serving
    answer = serving.recommendation_list(campaign_name=campaign.name, user_id=user.user_id, num_results=10)
    # Then they are 10 explained catalog items, recorded for the user under the answer's id
    assert campaign_backend(campaign).name == served.backend
    assert_catalog_list(answer, served.group, 10)
    record = RecommendationRecord.objects.get(recommendation_id=answer.recommendation_id)
    assert record.campaign == campaign and record.user_id == user.user_id
    assert record.item_ids == [item.item_id for item in answer.items]


def test_a_filter_with_values_limits_recommendations_to_its_items(served: Served) -> None:
    # Given a filter keeping one category, on the campaign's backend
    campaign = served.campaign("user")
    category = biggest_category(served.group)
    served.filter("by-category", "INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ($CAT)")
    user = active_user(served.group)
    served.expect(
        "get_recommendations",
        {
            "campaignArn": campaign.personalize_arn,
            "numResults": 8,
            "userId": user.user_id,
            "filterArn": filter_arn("by-category"),
            "filterValues": {"CAT": f'"{category}"'},
        },
        {"itemList": predicted(item_ids(served.group, 8, category=category)), "recommendationId": "RID-f"},
    )
    # When recommendations are asked with the filter and a value for $CAT
    answer = serving.recommendation_list(
        campaign_name=campaign.name,
        user_id=user.user_id,
        num_results=8,
        filter_name="by-category",
        filter_values={"CAT": [category]},
    )
    # Then a full list of that category comes back
    assert_catalog_list(answer, served.group, 8)
    assert categories_of([item.item_id for item in answer.items]) == {category}


def test_excluded_items_never_come_back(served: Served) -> None:
    # Given a user and two items the page already shows
    campaign = served.campaign("user")
    user = active_user(served.group)
    shown = item_ids(served.group, 2)
    # (Personalize has no exclusion list: the backend asks for two more and drops them)
    served.expect(
        "get_recommendations",
        {"campaignArn": campaign.personalize_arn, "numResults": 7, "userId": user.user_id},
        {"itemList": predicted(shown + item_ids(served.group, 5, offset=2)), "recommendationId": "RID-x"},
    )
    # When the campaign's backend is asked for 5 recommendations excluding them
    answer = campaign_backend(campaign).recommend(
        campaign=campaign, user_id=user.user_id, num_results=5, exclude_item_ids=shown
    )
    # Then 5 items come back and none of them is excluded
    assert_catalog_list(answer, served.group, 5)
    assert not {item.item_id for item in answer.items} & set(shown)


def test_related_items_leave_out_the_item_and_name_it_in_their_reasons(served: Served) -> None:
    # Given a related-items campaign and the item with the most interactions
    campaign = served.campaign("related")
    anchor = (
        Item.objects.filter(dataset_group=served.group)
        .annotate(n=Count("interactions"))
        .order_by("-n", "item_id")
        .first()
    )
    served.expect(
        "get_recommendations",
        {"campaignArn": campaign.personalize_arn, "itemId": anchor.item_id, "numResults": 6},
        {
            "itemList": predicted([i for i in item_ids(served.group, 7) if i != anchor.item_id][:6]),
            "recommendationId": "RID-related",
        },
    )
    # When the campaign's backend is asked for related items
    answer = campaign_backend(campaign).related(campaign=campaign, item_id=anchor.item_id, num_results=6)
    # Then 6 other catalog items come back, each "Similar to" the item
    assert_catalog_list(answer, served.group, 6)
    assert anchor.item_id not in {item.item_id for item in answer.items}
    assert all(text.startswith("Similar to ") for text in answer.reasons())
    assert RecommendationRecord.objects.filter(recommendation_id=answer.recommendation_id).exists()


def test_ranking_returns_the_given_items_with_unknown_ones_last_and_unscored(served: Served) -> None:
    # Given a ranking campaign, a user and five catalog items plus one nobody knows
    campaign = served.campaign("ranking")
    user = active_user(served.group)
    known = item_ids(served.group, 5, offset=10)
    wanted = [*known, "not-in-the-catalog"]
    served.expect(
        "get_personalized_ranking",
        {"campaignArn": campaign.personalize_arn, "userId": user.user_id, "inputList": wanted},
        {"personalizedRanking": predicted([*reversed(known), "not-in-the-catalog"], scored=5)},
    )
    # When the campaign's backend ranks them for the user
    answer = campaign_backend(campaign).rank(campaign=campaign, user_id=user.user_id, item_ids=wanted)
    # Then the same six come back, the unknown one last, unscored and said to be not ranked yet
    ids = [item.item_id for item in answer.items]
    assert sorted(ids) == sorted(wanted) and ids[-1] == "not-in-the-catalog"
    assert all(isinstance(item.score, float) for item in answer.items[:-1])
    assert answer.items[-1].score is None and answer.items[-1].item_pk is None
    reasons = answer.reasons()
    assert all(isinstance(text, str) and text for text in reasons)
    assert reasons[-1] == "New since the last training, so not ranked yet"
    assert RecommendationRecord.objects.get(recommendation_id=answer.recommendation_id).item_ids == ids


def test_segments_are_answered_locally_and_refused_on_personalize(served: Served) -> None:
    # Given an item-affinity campaign and the most interacted item
    campaign = served.campaign("segment")
    item = (
        Item.objects.filter(dataset_group=served.group)
        .annotate(n=Count("interactions"))
        .order_by("-n", "item_id")
        .first()
    )
    backend = campaign_backend(campaign)
    if served.backend == "personalize":
        # When a segment is asked of Personalize / Then it says it has batch segment jobs only
        with pytest.raises(BackendUnavailableError, match="batch segment jobs only"):
            backend.segment(campaign=campaign, item_id=item.item_id, num_results=5)
        return
    # When a segment is asked of the local engine / Then 5 known users come back, best first
    segment = backend.segment(campaign=campaign, item_id=item.item_id, num_results=5)
    assert len(segment.user_ids) == 5 == len(set(segment.user_ids))
    assert EndUser.objects.filter(dataset_group=served.group, user_id__in=segment.user_ids).count() == 5
    assert segment.scores == sorted(segment.scores, reverse=True)
