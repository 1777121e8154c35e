"""personalize-runtime through a real boto3 client against the live server: the same answers as GraphQL."""

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import DatasetGroup, EndUser, Item
from catalog.schemas import format_value
from recommendations.filtering import filter_create
from recommendations.models import Campaign, RecommendationRecord
from tests.recommendations.compat.conftest import campaign_arn, filter_arn

CATEGORY_FILTER = "INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ($CAT)"


def gql(query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """POST a GraphQL query to /graphql/; its data (no errors)."""
    body = (
        Client()
        .post("/graphql/", {"query": query, "variables": variables}, content_type="application/json")
        .json()
    )
    assert "errors" not in body, body
    return body["data"]


def active_user(group: DatasetGroup, minimum: int = 8) -> str:
    user = (
        EndUser.objects.filter(dataset_group=group)
        .annotate(n=Count("interactions"))
        .filter(n__gte=minimum)
        .order_by("user_id")
        .first()
    )
    assert user is not None
    return user.user_id


def categories(group: DatasetGroup, count: int = 2) -> list[str]:
    counted = Counter(
        Item.objects.filter(dataset_group=group).values_list("metadata__CATEGORY_L1", flat=True)
    )
    return [name for name, _ in counted.most_common(count)]


def category_of(item_ids: list[str]) -> set[str]:
    return set(Item.objects.filter(item_id__in=item_ids).values_list("metadata__CATEGORY_L1", flat=True))


def error_code(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_recommendations_equal_the_graphql_answer_with_a_filter_by_arn(
    deploy: Callable[..., Campaign], demo: DatasetGroup, runtime: BaseClient
) -> None:
    # Given a user-personalization campaign, a user with history and a filter with a placeholder
    deploy("aws-user-personalization")
    user = active_user(demo)
    first, second = categories(demo)
    filter_create(dataset_group=demo, name="by-category", expression=CATEGORY_FILTER)
    # When boto3 asks for 20 items of two categories, in Personalize's JSON-quoted filterValues form
    answer = runtime.get_recommendations(
        campaignArn=campaign_arn("aws-user-personalization"),
        userId=user,
        numResults=20,
        filterArn=filter_arn("by-category"),
        filterValues={"CAT": f"{json.dumps(first)},{json.dumps(second)}"},
    )
    # And GraphQL is asked the same
    graphql = gql(
        """query($u: String, $a: String!, $b: String!) { recommendations(userId: $u, numResults: 20,
        campaign: "aws-user-personalization", filter: "by-category",
        filterValues: [{name: "CAT", values: [$a, $b]}]) { items { itemId score reason } } }""",
        {"u": user, "a": first, "b": second},
    )["recommendations"]["items"]
    # Then the lists are the same items, scores and reasons, all of the two categories
    items = answer["itemList"]
    assert [i["itemId"] for i in items] == [g["itemId"] for g in graphql]
    assert [i["score"] for i in items] == pytest.approx([g["score"] for g in graphql])
    assert [i["reason"] for i in items] == [[g["reason"]] for g in graphql]
    assert len(items) == 20 and category_of([i["itemId"] for i in items]) <= {first, second}
    # And the recommendationId was recorded for this user, so events can point back to it
    record = RecommendationRecord.objects.get(recommendation_id=answer["recommendationId"])
    assert record.user_id == user and record.item_ids == [i["itemId"] for i in items]


def test_item_id_on_a_sims_campaign_returns_the_related_items_graphql_returns(
    deploy: Callable[..., Campaign], demo: DatasetGroup, runtime: BaseClient
) -> None:
    # Given a SIMS campaign and a popular item
    deploy("aws-sims")
    item_id = (
        Item.objects.filter(dataset_group=demo).annotate(n=Count("interactions")).order_by("-n")[0].item_id
    )
    # When boto3 asks GetRecommendations with itemId
    answer = runtime.get_recommendations(campaignArn=campaign_arn("aws-sims"), itemId=item_id, numResults=10)
    graphql = gql(
        'query($i: String!) { relatedItems(itemId: $i, numResults: 10, campaign: "aws-sims") '
        "{ items { itemId reason } } }",
        {"i": item_id},
    )["relatedItems"]["items"]
    # Then it gets the related items, explained as similar, never the item itself
    ids = [i["itemId"] for i in answer["itemList"]]
    assert ids == [g["itemId"] for g in graphql] and len(ids) == 10 and item_id not in ids
    assert all(i["reason"][0].startswith("Similar to") for i in answer["itemList"])


def test_personalized_ranking_orders_the_input_as_graphql_and_puts_unknown_items_last(
    deploy: Callable[..., Campaign], demo: DatasetGroup, runtime: BaseClient
) -> None:
    # Given a ranking campaign, a user and twelve catalog items plus one the model never saw
    deploy("aws-personalized-ranking")
    user = active_user(demo)
    inputs = list(
        Item.objects.filter(dataset_group=demo).order_by("-item_id").values_list("item_id", flat=True)[:12]
    )
    inputs.append("never-seen")
    # When boto3 asks for the ranking
    answer = runtime.get_personalized_ranking(
        campaignArn=campaign_arn("aws-personalized-ranking"), userId=user, inputList=inputs
    )
    graphql = gql(
        "query($u: String, $i: [String!]!) { personalizedRanking(userId: $u, itemIds: $i, "
        'campaign: "aws-personalized-ranking") { items { itemId score } } }',
        {"u": user, "i": inputs},
    )["personalizedRanking"]["items"]
    # Then every input comes back once, in GraphQL's order, best score first, the unknown one last unscored
    ranked = answer["personalizedRanking"]
    assert [r["itemId"] for r in ranked] == [g["itemId"] for g in graphql]
    assert sorted(r["itemId"] for r in ranked) == sorted(inputs)
    scores = [r["score"] for r in ranked[:-1]]
    assert scores == sorted(scores, reverse=True)
    assert ranked[-1]["itemId"] == "never-seen" and "score" not in ranked[-1]


def test_promotions_mix_in_flagged_items_from_the_promotion_filter(
    deploy: Callable[..., Campaign], demo: DatasetGroup, runtime: BaseClient
) -> None:
    # Given a request filter on one category and a promotion filter on another
    deploy("aws-user-personalization")
    user = active_user(demo)
    first, second = categories(demo)
    filter_create(dataset_group=demo, name="main", expression=CATEGORY_FILTER)
    filter_create(dataset_group=demo, name="promo", expression=CATEGORY_FILTER)
    # When boto3 asks for 10 items with a 30% promotion
    items = runtime.get_recommendations(
        campaignArn=campaign_arn("aws-user-personalization"),
        userId=user,
        numResults=10,
        filterArn=filter_arn("main"),
        filterValues={"CAT": json.dumps(first)},
        promotions=[
            {
                "name": "spring-sale",
                "percentPromotedItems": 30,
                "filterArn": filter_arn("promo"),
                "filterValues": {"CAT": json.dumps(second)},
            }
        ],
    )["itemList"]
    # Then three items carry the promotion's name and come from its filter; the rest pass the request's
    promoted = [i["itemId"] for i in items if i.get("promotionName") == "spring-sale"]
    ordinary = [i["itemId"] for i in items if "promotionName" not in i]
    assert len(items) == 10 and len(promoted) == 3
    assert category_of(promoted) == {second} and category_of(ordinary) == {first}


def test_metadata_columns_join_catalog_fields_in_one_query(
    deploy: Callable[..., Campaign], demo: DatasetGroup, runtime: BaseClient
) -> None:
    # Given a campaign
    deploy("aws-user-personalization")
    user = active_user(demo)
    # When boto3 asks for two Items columns (any case) and the creation timestamp
    items = runtime.get_recommendations(
        campaignArn=campaign_arn("aws-user-personalization"),
        userId=user,
        numResults=10,
        metadataColumns={"ITEMS": ["CATEGORY_L1", "price", "CREATION_TIMESTAMP"]},
    )["itemList"]
    # Then each item carries them as Personalize's strings, under the names asked for
    rows = {item.item_id: item for item in Item.objects.filter(item_id__in=[i["itemId"] for i in items])}
    for entry in items:
        row = rows[entry["itemId"]]
        assert entry["metadata"] == {
            "CATEGORY_L1": row.metadata["CATEGORY_L1"],
            "price": format_value(row.metadata["PRICE"]),
            "CREATION_TIMESTAMP": str(int(row.creation_timestamp.timestamp())),
        }
    # And the metadata costs the same number of queries for 5 items as for 40 (no query per item)
    body = {
        "campaignArn": campaign_arn("aws-user-personalization"),
        "userId": user,
        "metadataColumns": {"ITEMS": ["CATEGORY_L1", "BRAND"]},
    }
    counts = []
    for num_results in (5, 40):
        with CaptureQueriesContext(connection) as queries:
            response = Client().post(
                "/personalize/recommendations",
                {**body, "numResults": num_results},
                content_type="application/json",
            )
        assert response.status_code == 200 and len(response.json()["itemList"]) == num_results
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_runtime_errors_carry_personalize_codes(
    deploy: Callable[..., Campaign], demo: DatasetGroup, runtime: BaseClient, unchecked_runtime: BaseClient
) -> None:
    # Given a campaign
    deploy("aws-user-personalization")
    arn = campaign_arn("aws-user-personalization")
    # When a campaign or filter does not exist, Then ResourceNotFoundException (404)
    with pytest.raises(ClientError) as unknown_campaign:
        runtime.get_recommendations(campaignArn=campaign_arn("nope"), userId="u")
    with pytest.raises(ClientError) as unknown_filter:
        runtime.get_recommendations(campaignArn=arn, userId="u", filterArn=filter_arn("nope"))
    assert error_code(unknown_campaign) == ("ResourceNotFoundException", 404)
    assert "'nope'" in unknown_campaign.value.response["Error"]["Message"]
    assert error_code(unknown_filter) == ("ResourceNotFoundException", 404)
    # When numResults is out of Personalize's range (500, or 50 with metadata), Then InvalidInputException
    for kwargs in (
        {"numResults": 0},
        {"numResults": 501},
        {"numResults": 51, "metadataColumns": {"ITEMS": ["BRAND"]}},
        {"metadataColumns": {"ITEMS": ["NO_SUCH_COLUMN"]}},
        {"filterArn": filter_arn("x"), "filterValues": {"CAT": "Comedy"}},  # not JSON-quoted
    ):
        with pytest.raises(ClientError) as bad:
            runtime.get_recommendations(campaignArn=arn, userId="u", **kwargs)
        assert error_code(bad) == ("InvalidInputException", 400), kwargs
    # When the ARN is not a campaign ARN, or numResults is not a number (boto3's checks off)
    with pytest.raises(ClientError) as not_a_campaign:
        runtime.get_recommendations(campaignArn=filter_arn("aws-user-personalization"), userId="u")
    with pytest.raises(ClientError) as not_a_number:
        unchecked_runtime.get_recommendations(campaignArn=arn, userId="u", numResults="ten")
    assert error_code(not_a_campaign) == error_code(not_a_number) == ("InvalidInputException", 400)
    # And nothing was recorded for the refused requests
    assert not RecommendationRecord.objects.exists()


def test_an_operation_recsite_does_not_serve_is_an_unknown_operation(runtime: BaseClient) -> None:
    # When boto3 calls an operation of the service model that Recsite does not serve
    with pytest.raises(ClientError) as error:
        runtime.get_action_recommendations(campaignArn=campaign_arn("c"), userId="u")
    # Then it is Personalize's UnknownOperationException
    assert error_code(error) == ("UnknownOperationException", 404)
