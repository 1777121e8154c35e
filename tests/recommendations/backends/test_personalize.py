"""The Personalize backend, call by call, against Stubbers on the adapter's boto3 clients.

Every AWS call the backend makes is stubbed with its exact request (validated by boto3's service
model): GetRecommendations (user lists and related items), GetPersonalizedRanking, CreateFilter
and DeleteFilter, with their throttling, not-found and invalid-input answers.
"""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count

from catalog.models import DatasetGroup, Interaction
from recommendations import services, serving, tracking
from recommendations.backends.base import default_backend_name
from recommendations.backends.local import popular_item_pks
from recommendations.backends.personalize import (
    PersonalizeBackend,
    filter_values_from_personalize,
    filter_values_to_personalize,
)
from recommendations.errors import BackendUnavailableError, RecommendationError
from recommendations.fallback import FALLBACK_NOTE
from recommendations.filtering import filter_create, filter_delete
from recommendations.models import Campaign, Filter, RecommendationRecord, SolutionVersion
from recommendations.personalize_tasks import personalize_filter_task
from recsite.graphql_view import ERROR_CODES
from tests.factories import EndUserFactory, InteractionFactory, ItemFactory
from tests.recommendations.backends.conftest import (
    ACCOUNT,
    GROUP_ARN,
    active_user,
    biggest_category,
    categories_of,
    codes,
    filter_arn,
    gql,
    item_ids,
)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CATEGORY_FILTER = "INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ($CAT)"
LIST_FIELDS = "recommendationId items { itemId score reason promotionName item { itemId } }"


def personalize_filter(control_stub: Stubber, group: DatasetGroup, name: str, expression: str) -> Filter:
    """A filter created on Personalize and ACTIVE there (CreateFilter stubbed with its exact request)."""
    control_stub.add_response(
        "create_filter",
        {"filterArn": filter_arn(name)},
        {"name": name, "datasetGroupArn": GROUP_ARN, "filterExpression": expression},
    )
    created = filter_create(dataset_group=group, name=name, expression=expression, backend="personalize")
    control_stub.add_response(
        "describe_filter", {"filter": {"status": "ACTIVE"}}, {"filterArn": filter_arn(name)}
    )
    personalize_filter_task.delay(created.pk)  # what the commit enqueues
    created.refresh_from_db()
    return created


def popular_ids(group: DatasetGroup) -> list[str]:
    """The group's item ids by distinct users, then events (the fallback's order), ties by pk."""
    rows = (
        Interaction.objects.filter(dataset_group=group, item__isnull=False)
        .values("item", "item__item_id")
        .annotate(users=Count("user", distinct=True), events=Count("id"))
        .order_by("-users", "-events", "item")
    )
    return [row["item__item_id"] for row in rows]


# --- filterValues ---------------------------------------------------------------------------------


def test_filter_values_become_personalizes_json_quoted_strings() -> None:
    # Given filter values as the GraphQL API takes them, one with a quote and one empty
    values = {"GENRE": ["Comedy", "Drama"], "TITLE": ['Say "hi"'], "UNUSED": []}
    # When converted for Personalize
    converted = filter_values_to_personalize(values)
    # Then each list is JSON-quoted values joined by commas, and an empty one is left out
    assert converted == {"GENRE": '"Comedy","Drama"', "TITLE": '"Say \\"hi\\""'}
    assert filter_values_from_personalize(converted) == {"GENRE": ["Comedy", "Drama"], "TITLE": ['Say "hi"']}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"$GENRE": ["Comedy"]}, "without $"),
        ({"GENRE": ["x" * 999]}, "at most 1000"),
        ({f"P{i}": ["a"] for i in range(26)}, "at most 25"),
    ],
)
def test_filter_values_personalize_would_refuse_are_refused_with_the_reason(
    values: dict[str, list[str]], message: str
) -> None:
    # Given filter values Personalize's limits refuse / When converted / Then the error says why
    with pytest.raises(RecommendationError, match=message.replace("$", r"\$")):
        filter_values_to_personalize(values)


# --- GetRecommendations -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_recommendations_send_filter_context_and_promotion_and_explain_the_answer(
    demo: DatasetGroup,
    provisioned: object,
    personalize_campaign: Callable[..., Campaign],
    runtime_stub: Stubber,
    control_stub: Stubber,
) -> None:
    # Given a Personalize campaign, a category filter and a promotion filter created on Personalize
    campaign = personalize_campaign("aws-user-personalization")
    personalize_filter(control_stub, demo, "by-category", CATEGORY_FILTER)
    personalize_filter(control_stub, demo, "on-sale", "INCLUDE ItemID WHERE Items.PRICE < 20")
    user = active_user(demo)
    ids = item_ids(demo, 4)
    # ... and Personalize answering with a promoted item, an exploration item and two ordinary ones
    runtime_stub.add_response(
        "get_recommendations",
        {
            "itemList": [
                {"itemId": ids[0], "score": 0.5},
                {"itemId": ids[1], "score": 0.4, "promotionName": "sale"},
                {"itemId": ids[2], "score": 0.3, "reason": ["Exploration"]},
                {"itemId": ids[3], "score": 0.2},
            ],
            "recommendationId": "RID-1234-abcd",
        },
        {
            "campaignArn": campaign.personalize_arn,
            "numResults": 4,
            "userId": user.user_id,
            "filterArn": filter_arn("by-category"),
            "filterValues": {"CAT": '"Shoes","Books"'},
            "context": {"DEVICE": "mobile", "VISITS": "3"},
            "promotions": [{"name": "sale", "percentPromotedItems": 25, "filterArn": filter_arn("on-sale")}],
        },
    )
    # When recommendations are asked through GraphQL with all of them
    body = gql(
        """query($user: String) { recommendations(userId: $user, campaign: "p-aws-user-personalization",
        numResults: 4, filter: "by-category", filterValues: [{name: "CAT", values: ["Shoes", "Books"]}],
        context: {DEVICE: "mobile", VISITS: 3},
        promotion: {name: "sale", percentPromotedItems: 25, filter: "on-sale"}) { """
        + LIST_FIELDS
        + " } }",
        {"user": user.user_id},
    )
    # Then Personalize's items come back in its order, joined with the catalog, each explained
    assert "errors" not in body, body
    answer = body["data"]["recommendations"]
    assert [item["itemId"] for item in answer["items"]] == ids
    assert [item["item"]["itemId"] for item in answer["items"]] == ids
    assert [item["score"] for item in answer["items"]] == [0.5, 0.4, 0.3, 0.2]
    reasons = [item["reason"] for item in answer["items"]]
    assert reasons[0] == reasons[3] == "Picked for you from your recent activity"
    assert reasons[1] == "Promoted: sale" and answer["items"][1]["promotionName"] == "sale"
    assert reasons[2].startswith("New item")
    # ... and the answer is recorded under Personalize's recommendationId, for putEvents
    assert answer["recommendationId"] == "RID-1234-abcd"
    record = RecommendationRecord.objects.get(recommendation_id="RID-1234-abcd")
    assert record.campaign == campaign and record.item_ids == ids


@pytest.mark.django_db
def test_an_anonymous_session_is_sent_as_the_user_id_and_gets_popular_reasons(
    demo: DatasetGroup, personalize_campaign: Callable[..., Campaign], runtime_stub: Stubber
) -> None:
    # Given a Personalize campaign and a session with no events yet
    campaign = personalize_campaign("aws-user-personalization")
    ids = item_ids(demo, 3)
    runtime_stub.add_response(
        "get_recommendations",
        {"itemList": [{"itemId": item_id, "score": 0.1} for item_id in ids], "recommendationId": "RID-s"},
        {"campaignArn": campaign.personalize_arn, "numResults": 3, "userId": "session-42"},
    )
    # When recommendations are asked for the session
    answer = serving.recommendation_list(campaign_name=campaign.name, session_id="session-42", num_results=3)
    # Then the session id went as userId (Personalize's advice) and the items are called popular
    assert [item.item_id for item in answer.items] == ids
    assert all(text.startswith("Popular") for text in answer.reasons())
    assert RecommendationRecord.objects.get(recommendation_id="RID-s").session_id == "session-42"


@pytest.mark.django_db
def test_related_items_send_the_item_id_and_the_user_for_the_filter(
    demo: DatasetGroup,
    provisioned: object,
    personalize_campaign: Callable[..., Campaign],
    runtime_stub: Stubber,
    control_stub: Stubber,
) -> None:
    # Given a related-items campaign on Personalize and a filter on the user's purchases
    campaign = personalize_campaign("aws-sims")
    expression = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
    personalize_filter(control_stub, demo, "not-bought", expression)
    anchor, *others = item_ids(demo, 4)
    runtime_stub.add_response(
        "get_recommendations",
        {"itemList": [{"itemId": item_id, "score": 0.3} for item_id in others], "recommendationId": "RID-r"},
        {
            "campaignArn": campaign.personalize_arn,
            "itemId": anchor,
            "numResults": 3,
            "userId": "u-1",
            "filterArn": filter_arn("not-bought"),
        },
    )
    # When related items are asked for the user
    answer = serving.related_item_list(
        campaign_name=campaign.name, item_id=anchor, user_id="u-1", num_results=3, filter_name="not-bought"
    )
    # Then Personalize's items come back, each "Similar to" the anchor
    assert [item.item_id for item in answer.items] == others
    assert all(text.startswith("Similar to ") for text in answer.reasons())


# --- unreachable Personalize: the popular list ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("code", "status"), [("ThrottlingException", 400), ("InternalServerError", 500), ("", 503)]
)
def test_when_personalize_is_unreachable_the_api_answers_popular_items_saying_so(
    demo: DatasetGroup,
    personalize_campaign: Callable[..., Campaign],
    runtime_stub: Stubber,
    code: str,
    status: int,
) -> None:
    # Given a Personalize campaign and Personalize failing with a retryable error
    campaign = personalize_campaign("aws-user-personalization")
    runtime_stub.add_client_error(
        "get_recommendations",
        service_error_code=code,
        service_message="Rate exceeded",
        http_status_code=status,
        expected_params={"campaignArn": campaign.personalize_arn, "numResults": 5, "userId": "u-1"},
    )
    # When recommendations are asked through GraphQL
    query = f'recommendations(userId: "u-1", campaign: "{campaign.name}", numResults: 5)'
    body = gql(f"{{ {query} {{ {LIST_FIELDS} }} }}")
    # Then there is no error: the group's five most popular items, each reason saying why
    assert "errors" not in body, body
    answer = body["data"]["recommendations"]
    assert [item["itemId"] for item in answer["items"]] == popular_ids(demo)[:5]
    assert [item["item"]["itemId"] for item in answer["items"]] == popular_ids(demo)[:5]
    assert all(item["reason"].startswith("Popular") for item in answer["items"])
    assert all(item["reason"].endswith(f"({FALLBACK_NOTE})") for item in answer["items"])
    assert RecommendationRecord.objects.filter(recommendation_id=answer["recommendationId"]).exists()


@pytest.mark.django_db
def test_the_popular_fallback_keeps_the_requests_filter_and_exclusions(
    demo: DatasetGroup,
    provisioned: object,
    personalize_campaign: Callable[..., Campaign],
    runtime_stub: Stubber,
    control_stub: Stubber,
) -> None:
    # Given a category filter on Personalize and Personalize throttling
    campaign = personalize_campaign("aws-user-personalization")
    personalize_filter(control_stub, demo, "by-category", CATEGORY_FILTER)
    category = biggest_category(demo)
    in_category = [i for i in popular_ids(demo) if categories_of([i]) == {category}]
    runtime_stub.add_client_error("get_recommendations", service_error_code="ThrottlingException")
    # When 6 items of the category are asked, without its most popular one
    answer = serving.recommendation_list(
        campaign_name=campaign.name,
        user_id="u-1",
        num_results=6,
        filter_name="by-category",
        filter_values={"CAT": [category]},
        exclude_item_ids=in_category[:1],
    )
    # Then the fallback evaluates the same filter locally: the next six popular items of the category
    assert [item.item_id for item in answer.items] == in_category[1:7]
    assert all(FALLBACK_NOTE in text for text in answer.reasons())


@pytest.mark.django_db
def test_related_items_fall_back_to_popular_items_other_than_the_item(
    demo: DatasetGroup, personalize_campaign: Callable[..., Campaign], runtime_stub: Stubber
) -> None:
    # Given a related-items campaign on Personalize, which throttles
    campaign = personalize_campaign("aws-sims")
    top = popular_ids(demo)
    runtime_stub.add_client_error("get_recommendations", service_error_code="ThrottlingException")
    # When items related to the most popular item are asked
    answer = serving.related_item_list(campaign_name=campaign.name, item_id=top[0], num_results=4)
    # Then the next four popular items come back, said to be a fallback
    assert [item.item_id for item in answer.items] == top[1:5]
    assert all(text.endswith(f"({FALLBACK_NOTE})") for text in answer.reasons())


@pytest.mark.django_db
def test_ranking_falls_back_to_the_given_items_by_popularity(
    demo: DatasetGroup, personalize_campaign: Callable[..., Campaign], runtime_stub: Stubber
) -> None:
    # Given a ranking campaign on Personalize, which throttles, and items given least popular first
    campaign = personalize_campaign("aws-personalized-ranking")
    wanted = list(reversed(popular_ids(demo)[:5]))
    runtime_stub.add_client_error(
        "get_personalized_ranking",
        service_error_code="ThrottlingException",
        expected_params={"campaignArn": campaign.personalize_arn, "userId": "u-1", "inputList": wanted},
    )
    # When they are ranked for a user
    answer = serving.personalized_ranking(campaign_name=campaign.name, user_id="u-1", item_ids=wanted)
    # Then they come back most popular first, unscored, said to be a fallback
    assert [item.item_id for item in answer.items] == list(reversed(wanted))
    assert all(item.score is None for item in answer.items)
    assert all(text.endswith(f"({FALLBACK_NOTE})") for text in answer.reasons())


# --- errors Personalize means -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_filter_still_being_created_on_personalize_is_looked_at_again_when_a_request_uses_it(
    demo: DatasetGroup,
    provisioned: object,
    personalize_campaign: Callable[..., Campaign],
    runtime_stub: Stubber,
    control_stub: Stubber,
) -> None:
    # Given a Personalize campaign and a filter CreateFilter accepted, still CREATE PENDING here
    # (no worker polled it: tasks run in-process after commit, which a test transaction never does)
    campaign = personalize_campaign("aws-user-personalization")
    control_stub.add_response(
        "create_filter",
        {"filterArn": filter_arn("by-category")},
        {"name": "by-category", "datasetGroupArn": GROUP_ARN, "filterExpression": CATEGORY_FILTER},
    )
    filter_create(dataset_group=demo, name="by-category", expression=CATEGORY_FILTER, backend="personalize")
    user = active_user(demo)
    backend = PersonalizeBackend()
    ask = {"campaign": campaign, "user_id": user.user_id, "num_results": 2, "filter_name": "by-category"}

    # When a request uses it while Personalize is still creating it
    control_stub.add_response(
        "describe_filter",
        {"filter": {"status": "CREATE IN_PROGRESS"}},
        {"filterArn": filter_arn("by-category")},
    )
    with pytest.raises(BackendUnavailableError, match="CREATE IN_PROGRESS on Amazon Personalize"):
        backend.recommend(**ask)
    # Then the caller is told it is not usable yet, and GetRecommendations was not called

    # When Personalize has it ACTIVE by the next request
    control_stub.add_response(
        "describe_filter", {"filter": {"status": "ACTIVE"}}, {"filterArn": filter_arn("by-category")}
    )
    ids = item_ids(demo, 2)
    runtime_stub.add_response(
        "get_recommendations",
        {"itemList": [{"itemId": ids[0], "score": 0.5}, {"itemId": ids[1], "score": 0.4}]},
        {
            "campaignArn": campaign.personalize_arn,
            "numResults": 2,
            "userId": user.user_id,
            "filterArn": filter_arn("by-category"),
        },
    )
    served = backend.recommend(**ask)

    # Then the row is ACTIVE and the request went to Personalize with the filter's ARN
    assert [item.item_id for item in served.items] == ids
    assert Filter.objects.get(name="by-category").status == "ACTIVE"


@pytest.mark.django_db
def test_a_filter_personalize_failed_to_create_is_unavailable_with_the_reason(
    demo: DatasetGroup,
    provisioned: object,
    personalize_campaign: Callable[..., Campaign],
    runtime_stub: Stubber,
    control_stub: Stubber,
) -> None:
    # Given a Personalize filter whose creation failed there
    campaign = personalize_campaign("aws-user-personalization")
    Filter.objects.create(
        dataset_group=demo,
        name="broken",
        expression=CATEGORY_FILTER,
        backend="personalize",
        personalize_arn=filter_arn("broken"),
        status="CREATE FAILED",
        failure_reason="Too many filters in the dataset group",
    )
    # When a request uses it, then it is refused with Personalize's reason and no call is made
    with pytest.raises(BackendUnavailableError, match="Too many filters in the dataset group"):
        PersonalizeBackend().recommend(campaign=campaign, user_id="u", filter_name="broken")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("aws_code", "graphql_code"),
    [("ResourceNotFoundException", "NOT_FOUND"), ("InvalidInputException", "BAD_USER_INPUT")],
)
def test_personalize_refusals_become_coded_graphql_errors(
    demo: DatasetGroup,
    personalize_campaign: Callable[..., Campaign],
    runtime_stub: Stubber,
    aws_code: str,
    graphql_code: str,
) -> None:
    # Given Personalize refusing the request for good (no such campaign / bad input)
    campaign = personalize_campaign("aws-personalized-ranking")
    runtime_stub.add_client_error(
        "get_personalized_ranking", service_error_code=aws_code, service_message="Refused by Personalize"
    )
    # When a ranking is asked
    body = gql(
        f'{{ personalizedRanking(userId: "u-1", campaign: "{campaign.name}", itemIds: ["a", "b"]) '
        "{ recommendationId } }"
    )
    # Then it is a GraphQL error with the fitting code and Personalize's words, not a fallback
    assert codes(body) == [graphql_code]
    assert aws_code in body["errors"][0]["message"]
    assert "Refused by Personalize" in body["errors"][0]["message"]
    assert not RecommendationRecord.objects.exists()


@pytest.mark.django_db
def test_what_personalize_cannot_serve_is_unavailable(
    demo: DatasetGroup, personalize_campaign: Callable[..., Campaign], runtime_stub: Stubber
) -> None:
    # Given an item-affinity campaign on Personalize, a campaign without its ARN yet and a local filter
    personalize_campaign("aws-item-affinity", name="affinity")
    undeployed = personalize_campaign("aws-user-personalization", name="undeployed")
    Campaign.objects.filter(pk=undeployed.pk).update(personalize_arn="")
    personalize_campaign("aws-user-personalization", name="deployed")
    filter_create(dataset_group=demo, name="local-only", expression=CATEGORY_FILTER, backend="local")
    # When a segment, recommendations of the undeployed one, and the local filter on Personalize are asked
    segment = gql('{ userSegment(itemId: "x", campaign: "affinity") { userIds } }')
    undeployed_body = gql('{ recommendations(userId: "u", campaign: "undeployed") { recommendationId } }')
    local_filter = gql(
        '{ recommendations(userId: "u", campaign: "deployed", filter: "local-only", '
        'filterValues: [{name: "CAT", values: ["x"]}]) { recommendationId } }'
    )
    # Then each is UNAVAILABLE with the reason, and nothing was sent to Personalize
    assert codes(segment) == codes(undeployed_body) == codes(local_filter) == ["UNAVAILABLE"]
    assert "batch segment jobs only" in segment["errors"][0]["message"]
    assert "not deployed on Amazon Personalize" in undeployed_body["errors"][0]["message"]
    assert "not created on Amazon Personalize" in local_filter["errors"][0]["message"]


@pytest.mark.django_db
def test_a_personalize_campaign_without_aws_settings_is_unavailable_naming_the_setting(
    demo: DatasetGroup, personalize_campaign: Callable[..., Campaign], settings: Any
) -> None:
    # Given a Personalize campaign and no AWS_REGION configured
    campaign = personalize_campaign("aws-user-personalization")
    settings.AWS_REGION = ""
    # When recommendations are asked
    body = gql(f'{{ recommendations(userId: "u", campaign: "{campaign.name}") {{ recommendationId }} }}')
    # Then the operator's mistake is named, not hidden behind a fallback
    assert codes(body) == ["UNAVAILABLE"]
    assert "AWS_REGION" in body["errors"][0]["message"]


# --- filters on Personalize ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_filter_on_personalize_stores_the_arn_and_delete_removes_it_there(
    demo: DatasetGroup, provisioned: object, control_stub: Stubber, settings: Any
) -> None:
    # Given RECSITE_BACKEND=personalize and CreateFilter answering with an ARN
    settings.RECSITE_BACKEND = "personalize"
    control_stub.add_response(
        "create_filter",
        {"filterArn": filter_arn("by-category")},
        {"name": "by-category", "datasetGroupArn": GROUP_ARN, "filterExpression": CATEGORY_FILTER},
    )
    # When createFilter is called through GraphQL
    created = gql(
        'mutation($e: String!) { createFilter(name: "by-category", expression: $e) { name status } }',
        {"e": CATEGORY_FILTER},
    )
    # Then the filter lives on Personalize with the same expression, its ARN stored
    assert "errors" not in created, created
    row = Filter.objects.get(name="by-category")
    assert (row.backend, row.personalize_arn, row.expression) == (
        "personalize",
        filter_arn("by-category"),
        CATEGORY_FILTER,
    )
    # When it is deleted, DeleteFilter is called with its ARN and the row goes
    control_stub.add_response("delete_filter", {}, {"filterArn": filter_arn("by-category")})
    deleted = gql('mutation { deleteFilter(name: "by-category") { name } }')
    assert deleted["data"]["deleteFilter"]["name"] == "by-category"
    assert not Filter.objects.filter(name="by-category").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("aws_code", "graphql_code"),
    [
        ("LimitExceededException", "UNAVAILABLE"),
        ("InvalidInputException", "BAD_USER_INPUT"),
        ("ResourceAlreadyExistsException", "BAD_USER_INPUT"),
        ("ThrottlingException", "UNAVAILABLE"),
    ],
)
def test_a_filter_personalize_refuses_is_not_written(
    demo: DatasetGroup, provisioned: object, control_stub: Stubber, aws_code: str, graphql_code: str
) -> None:
    # Given CreateFilter refusing the filter
    control_stub.add_client_error("create_filter", service_error_code=aws_code, service_message="No.")
    # When the filter is created on Personalize
    with pytest.raises(Exception) as raised:
        filter_create(dataset_group=demo, name="refused", expression=CATEGORY_FILTER, backend="personalize")
    # Then nothing is written and the error maps to its GraphQL code
    assert not Filter.objects.filter(name="refused").exists()
    assert next(code for cls, code in ERROR_CODES if isinstance(raised.value, cls)) == graphql_code


@pytest.mark.django_db
def test_a_filter_needs_the_group_provisioned_on_personalize(
    demo: DatasetGroup, control_stub: Stubber
) -> None:
    # Given a group not provisioned on Personalize / When a Personalize filter is created
    with pytest.raises(BackendUnavailableError, match="not provisioned on Amazon Personalize"):
        filter_create(dataset_group=demo, name="early", expression=CATEGORY_FILTER, backend="personalize")
    # Then nothing is written (and no call was made: the Stubber has nothing queued)
    assert not Filter.objects.filter(name="early").exists()


@pytest.mark.django_db
def test_deleting_a_filter_personalize_no_longer_has_deletes_the_row(
    demo: DatasetGroup, provisioned: object, control_stub: Stubber
) -> None:
    # Given a Personalize filter that is already gone there
    personalize_filter(control_stub, demo, "gone", CATEGORY_FILTER)
    control_stub.add_client_error("delete_filter", service_error_code="ResourceNotFoundException")
    # When it is deleted / Then its row goes too
    filter_delete(name="gone")
    assert not Filter.objects.filter(name="gone").exists()


@pytest.mark.django_db
def test_a_filter_personalize_cannot_delete_now_is_kept(
    demo: DatasetGroup, provisioned: object, control_stub: Stubber
) -> None:
    # Given a Personalize filter and DeleteFilter throttled
    personalize_filter(control_stub, demo, "kept", CATEGORY_FILTER)
    control_stub.add_client_error("delete_filter", service_error_code="ThrottlingException")
    # When it is deleted through GraphQL
    body = gql('mutation { deleteFilter(name: "kept") { name } }')
    # Then the caller learns it is unavailable and the filter is still there to retry
    assert codes(body) == ["UNAVAILABLE"]
    assert Filter.objects.filter(name="kept").exists()


# --- RECSITE_BACKEND --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_recsite_backend_is_the_default_of_new_campaigns_filters_and_trackers(
    demo: DatasetGroup, settings: Any
) -> None:
    # Given RECSITE_BACKEND=personalize
    settings.RECSITE_BACKEND = "personalize"
    solution = services.solution_create(dataset_group=demo, name="s", recipe="aws-user-personalization")
    version = SolutionVersion.objects.create(
        solution=solution, status="ACTIVE", personalize_arn=f"{ACCOUNT}:solution/s/1"
    )
    # When a campaign and an event tracker are created without naming a backend
    campaign = services.campaign_create(name="c", solution_version=version)
    tracker = tracking.event_tracker_create(dataset_group=demo, name="t")
    # Then both live on Personalize (the campaign waits for CreateCampaign); a campaign created
    # with backend="local" stays local
    assert campaign.backend == tracker.backend == "personalize"
    assert campaign.status == "CREATE PENDING"
    assert services.campaign_create(name="c2", solution_version=version, backend="local").backend == "local"


def test_default_backend_refuses_an_unknown_name(settings: Any) -> None:
    # Given a misspelt backend / When the default is read / Then the setting is named in the error
    settings.RECSITE_BACKEND = "personalise"
    with pytest.raises(ImproperlyConfigured, match="RECSITE_BACKEND"):
        default_backend_name()
    settings.RECSITE_BACKEND = "Personalize"
    assert default_backend_name() == "personalize"


def test_the_settings_refuse_an_unknown_recsite_backend_at_startup() -> None:
    # Given RECSITE_BACKEND=bogus in the environment
    env = {**os.environ, "RECSITE_BACKEND": "bogus", "DJANGO_SETTINGS_MODULE": "recsite.settings"}
    probe = "from django.conf import settings; print(settings.RECSITE_BACKEND)"
    # When the settings load in a fresh interpreter
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    # Then startup fails naming the setting and the allowed values
    assert result.returncode != 0
    assert "RECSITE_BACKEND must be local or personalize" in result.stderr


# --- the popular list ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_popular_list_counts_distinct_users_then_events(default_group: DatasetGroup) -> None:
    # Given item a viewed 5 times by one user and item b once each by two users, c never
    a, b, c = (ItemFactory(dataset_group=default_group, item_id=name) for name in "abc")
    first, second = EndUserFactory(dataset_group=default_group), EndUserFactory(dataset_group=default_group)
    for _ in range(5):
        InteractionFactory(dataset_group=default_group, user=first, item=a)
    InteractionFactory(dataset_group=default_group, user=first, item=b)
    InteractionFactory(dataset_group=default_group, user=second, item=b)
    # When the popular list is read
    pks = popular_item_pks(dataset_group_id=default_group.pk)
    # Then b (two users) comes before a (one user, more events); c has no events
    assert list(pks) == [b.pk, a.pk]
    assert not pks.flags.writeable and c.pk not in pks
