"""Whatever the body, the compatible endpoint answers 4xx in Personalize's error shape, never 500."""

import json
import random
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from django.test import Client

from catalog.models import DatasetGroup
from recommendations.tracking import event_tracker_create
from tests.recommendations.compat.conftest import PREFIX, campaign_arn, dataset_arn, filter_arn

OPERATIONS = ("recommendations", "personalize-ranking", "events", "items", "users")
GOOD_BODIES: dict[str, dict[str, Any]] = {
    "recommendations": {
        "campaignArn": campaign_arn("c"),
        "userId": "u",
        "numResults": 5,
        "filterArn": filter_arn("f"),
        "filterValues": {"CAT": '"a","b"'},
        "context": {"DEVICE": "mobile"},
        "promotions": [{"name": "p", "percentPromotedItems": 10, "filterArn": filter_arn("f")}],
        "metadataColumns": {"ITEMS": ["BRAND"]},
    },
    "personalize-ranking": {"campaignArn": campaign_arn("c"), "userId": "u", "inputList": ["a", "b"]},
    "events": {
        "trackingId": "t",
        "sessionId": "s",
        "eventList": [{"eventType": "view", "sentAt": 1.7e9, "itemId": "i", "impression": ["a"]}],
    },
    "items": {"datasetArn": dataset_arn("default", "ITEMS"), "items": [{"itemId": "i", "properties": "{}"}]},
    "users": {"datasetArn": dataset_arn("default", "USERS"), "users": [{"userId": "u", "properties": "{}"}]},
}
GARBAGE = [
    b"",
    b"not json",
    b"\xff\xfe\x00garbage",
    b"[1, 2]",
    b'"a string"',
    b"null",
    b"1e999999",
    b"{" * 50_000,
    b"[" * 50_000 + b"]" * 50_000,
    b'{"numResults": NaN}',
    json.dumps({"x": "9" * 5000}).encode(),
    json.dumps({"trackingId": "t\u0000", "campaignArn": campaign_arn("c\u0000")}).encode(),  # PostgreSQL
]


def assert_personalize_error(response: Any, where: str) -> str:
    assert 400 <= response.status_code < 500, (where, response.status_code, response.content[:300])
    body = json.loads(response.content)
    assert body["__type"] == response["x-amzn-ErrorType"] and body["message"], where
    return str(body["__type"])


def _mutations(value: Any, rng: random.Random) -> Any:
    """`value` with one member somewhere replaced by a value of another JSON type."""
    odd = rng.choice([None, True, -1, 1.5, 1e308, "", "x" * 300, [], [1], {}, {"a": 1}, "\u0000", [None]])
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        return {**value, key: _mutations(value[key], rng) if rng.random() < 0.6 else odd}
    if isinstance(value, list) and value:
        index = rng.randrange(len(value))
        return [
            *value[:index],
            _mutations(value[index], rng) if rng.random() < 0.6 else odd,
            *value[index + 1 :],
        ]
    return odd


@pytest.fixture(autouse=True)
def _tracker(default_group: DatasetGroup) -> None:
    tracker = event_tracker_create(dataset_group=default_group, name="web")
    GOOD_BODIES["events"]["trackingId"] = tracker.tracking_id


@pytest.mark.django_db
@pytest.mark.parametrize("operation", OPERATIONS)
def test_garbage_bodies_get_a_4xx_personalize_error(operation: str, settings: Any) -> None:
    # Given a small upload limit, so an oversized body is cheap to send
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    client = Client()
    bodies = [*GARBAGE, b'{"x": "' + b"y" * 200_000 + b'"}']
    # When each is POSTed (as JSON and as boto3's content type), Then a coded 4xx, never a 500
    for body in bodies:
        for content_type in ("application/json", "application/x-amz-json-1.1"):
            response = client.post(f"{PREFIX}/{operation}", body, content_type=content_type)
            code = assert_personalize_error(response, f"{operation} {body[:40]!r}")
            assert code == "InvalidInputException"


@pytest.mark.django_db
@pytest.mark.parametrize("operation", OPERATIONS)
def test_mutated_bodies_never_get_a_500(operation: str) -> None:
    # Given a well-formed body of the operation (naming resources that do not exist)
    client = Client()
    rng = random.Random(operation)
    # When 150 variants with one member of the wrong type or an odd value are POSTed
    for _ in range(150):
        body = _mutations(GOOD_BODIES[operation], rng)
        response = client.post(f"{PREFIX}/{operation}", json.dumps(body), content_type="application/json")
        # Then each is refused in Personalize's shape (or, for a harmless change, answered)
        if response.status_code != 200:
            assert_personalize_error(response, f"{operation} {body!r:.200}")


@pytest.mark.django_db
def test_other_paths_and_methods_are_unknown_operations() -> None:
    client = Client()
    for response in (
        client.get(f"{PREFIX}/recommendations"),
        client.post(f"{PREFIX}/action-recommendations", "{}", content_type="application/json"),
        client.delete(f"{PREFIX}/"),
    ):
        assert (
            assert_personalize_error(response, response.request["PATH_INFO"]) == "UnknownOperationException"
        )


@pytest.mark.django_db
def test_credentials_are_refused_when_any_credentials_is_off(settings: Any, runtime: BaseClient) -> None:
    # Given the setting off (the default without debug): no API keys exist yet
    settings.RECSITE_COMPAT_ACCEPT_ANY_CREDENTIALS = False
    # When boto3 signs a request (for a campaign that does not even exist)
    with pytest.raises(ClientError) as error:
        runtime.get_recommendations(campaignArn=campaign_arn("nope"), userId="u")
    # Then it is refused before its content is looked at, as Personalize refuses unknown credentials
    assert error.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # And a garbage body learns nothing more
    response = Client().post(f"{PREFIX}/events", b"\xff", content_type="application/json")
    assert response.status_code == 403 and response["x-amzn-ErrorType"] == "UnrecognizedClientException"
