"""SigV4 credentials on the Personalize-compatible endpoint: real boto3 clients signing with Recsite API keys.

The access key id names an API key and the server recomputes the signature with the key's
secret; botocore's own signer makes every request here (through boto3, or directly for
requests boto3 would never send: a tampered body, an old timestamp).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from access.services import IssuedApiKey, api_key_create, api_key_revoke
from catalog.models import DatasetGroup, Interaction, Item
from recommendations.tracking import event_tracker_create
from tests.auth import wrong_secret
from tests.recommendations.compat.conftest import PREFIX, _close, campaign_arn, dataset_arn

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def keys_checked(settings: Any) -> None:
    """Credentials are checked (as in production), unlike the other endpoint tests."""
    settings.RECSITE_COMPAT_ACCEPT_ANY_CREDENTIALS = False


@pytest.fixture
def client_for(live_server: Any) -> Iterator[Any]:
    """client_for(service, key_id, secret): a boto3 client signing with these credentials."""
    made: list[BaseClient] = []

    def make(service: str, key_id: str, secret: str) -> BaseClient:
        client = boto3.client(
            service,
            endpoint_url=live_server.url + PREFIX,
            region_name="eu-west-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}),
        )
        made.append(client)
        return client

    yield make
    for client in made:
        _close(client)


def key(*scopes: str) -> IssuedApiKey:
    return api_key_create(name="server", scopes=scopes)


def error_code(call: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


def put_one_event(events: BaseClient, tracking_id: str) -> dict[str, Any]:
    return events.put_events(
        trackingId=tracking_id,
        userId="u1",
        sessionId="s1",
        eventList=[{"eventType": "click", "itemId": "i1", "sentAt": datetime.now(UTC)}],
    )


def test_a_key_with_the_track_scope_puts_events(default_group: DatasetGroup, client_for: Any) -> None:
    # Given an event tracker and a key with the track scope
    tracker = event_tracker_create(dataset_group=default_group, name="web")
    issued = key("track")
    events = client_for("personalize-events", issued.api_key.key_id, issued.secret)
    # When boto3 sends PutEvents signed with it, then the event is stored
    put_one_event(events, tracker.tracking_id)
    assert Interaction.objects.filter(dataset_group=default_group, event_type="click").count() == 1


def test_a_key_with_the_recommend_scope_reaches_the_runtime(
    default_group: DatasetGroup, client_for: Any
) -> None:
    # Given a recommend key, when it asks for an unknown campaign, then the answer is about the campaign
    issued = key("recommend")
    runtime = client_for("personalize-runtime", issued.api_key.key_id, issued.secret)
    call = lambda: runtime.get_recommendations(campaignArn=campaign_arn("none"), userId="u1")  # noqa: E731
    assert error_code(call) == "ResourceNotFoundException"


def test_a_wrong_secret_is_an_invalid_signature(default_group: DatasetGroup, client_for: Any) -> None:
    issued = key("recommend")
    runtime = client_for("personalize-runtime", issued.api_key.key_id, wrong_secret(issued.secret))
    call = lambda: runtime.get_recommendations(campaignArn=campaign_arn("c"), userId="u1")  # noqa: E731
    assert error_code(call) == "InvalidSignatureException"


def test_an_unknown_or_revoked_key_is_unrecognized(default_group: DatasetGroup, client_for: Any) -> None:
    # Given a key id that does not exist, and a key that has been revoked
    revoked = key("manage")
    api_key_revoke(key_id=revoked.api_key.key_id)
    for key_id, secret in (("RSKNOSUCHKEY7777777A", "whatever"), (revoked.api_key.key_id, revoked.secret)):
        runtime = client_for("personalize-runtime", key_id, secret)
        # When either signs a request, then it is UnrecognizedClientException
        call = lambda runtime=runtime: runtime.get_recommendations(campaignArn=campaign_arn("c"), userId="u")  # noqa: E731
        assert error_code(call) == "UnrecognizedClientException"


def test_a_key_without_the_scope_is_denied(default_group: DatasetGroup, client_for: Any) -> None:
    # Given a key that may only track
    issued = key("track")
    events = client_for("personalize-events", issued.api_key.key_id, issued.secret)
    runtime = client_for("personalize-runtime", issued.api_key.key_id, issued.secret)
    # When it writes items or reads recommendations, then access is denied and nothing is written
    put_items = lambda: events.put_items(  # noqa: E731
        datasetArn=dataset_arn("default", "ITEMS"), items=[{"itemId": "new-item"}]
    )
    assert error_code(put_items) == "AccessDeniedException"
    recommend = lambda: runtime.get_recommendations(campaignArn=campaign_arn("c"), userId="u1")  # noqa: E731
    assert error_code(recommend) == "AccessDeniedException"
    assert not Item.objects.filter(item_id="new-item").exists()
    # and a manage key gets past the scope check (to the dataset's own answer: no schema yet)
    manager = key("manage")
    manager_events = client_for("personalize-events", manager.api_key.key_id, manager.secret)
    write = lambda: manager_events.put_items(  # noqa: E731
        datasetArn=dataset_arn("default", "ITEMS"), items=[{"itemId": "new-item"}]
    )
    assert error_code(write) == "InvalidInputException"


def test_without_checks_any_credentials_pass(
    default_group: DatasetGroup, client_for: Any, settings: Any
) -> None:
    # Given the development switch on, when made-up credentials sign, then the request is served
    settings.RECSITE_COMPAT_ACCEPT_ANY_CREDENTIALS = True
    runtime = client_for("personalize-runtime", "dev", "dev")
    call = lambda: runtime.get_recommendations(campaignArn=campaign_arn("none"), userId="u1")  # noqa: E731
    assert error_code(call) == "ResourceNotFoundException"


def test_a_key_is_rate_limited_with_throttling(
    default_group: DatasetGroup, client_for: Any, settings: Any
) -> None:
    # Given 2 requests per minute per key
    settings.RECSITE_RATE_LIMIT_PER_KEY = 2
    issued = key("recommend")
    runtime = client_for("personalize-runtime", issued.api_key.key_id, issued.secret)
    call = lambda: runtime.get_recommendations(campaignArn=campaign_arn("none"), userId="u1")  # noqa: E731
    # When it sends 3, then the third is throttled as Personalize does
    assert [error_code(call) for _ in range(3)] == [
        "ResourceNotFoundException",
        "ResourceNotFoundException",
        "ThrottlingException",
    ]


def signed(live_server: Any, issued: IssuedApiKey, body: bytes, *, now: datetime | None = None) -> AWSRequest:
    """A GetRecommendations request signed by botocore's SigV4 signer (optionally at another time)."""
    request = AWSRequest(
        method="POST",
        url=f"{live_server.url}{PREFIX}/recommendations",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    signer = SigV4Auth(Credentials(issued.api_key.key_id, issued.secret), "personalize", "eu-west-1")
    if now is None:
        signer.add_auth(request)
    else:
        import botocore.auth

        original = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda: now.replace(tzinfo=None)
        try:
            signer.add_auth(request)
        finally:
            botocore.auth.get_current_datetime = original
    return request


def send(request: AWSRequest, body: bytes | None = None) -> tuple[int, str]:
    """Send a prepared request (optionally with another body); the status and Personalize's error code."""
    prepared = request.prepare()
    raw = urllib.request.Request(
        prepared.url,
        data=body if body is not None else prepared.body,
        headers=dict(prepared.headers),
        method="POST",
    )
    try:
        with urllib.request.urlopen(raw, timeout=10) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())["__type"]


def test_a_tampered_body_breaks_the_signature(default_group: DatasetGroup, live_server: Any) -> None:
    # Given a request signed over one body
    issued = key("recommend")
    body = json.dumps({"campaignArn": campaign_arn("none"), "userId": "alice"}).encode()
    request = signed(live_server, issued, body)
    # Then as signed it is accepted (past the signature: the campaign is unknown)
    assert send(request) == (404, "ResourceNotFoundException")
    # and with the body changed after signing it is refused
    tampered = body.replace(b"alice", b"mallory")
    assert send(request, tampered) == (403, "InvalidSignatureException")


def test_a_signature_over_15_minutes_old_is_refused(default_group: DatasetGroup, live_server: Any) -> None:
    issued = key("recommend")
    body = json.dumps({"campaignArn": campaign_arn("none"), "userId": "alice"}).encode()
    old = signed(live_server, issued, body, now=datetime.now(UTC) - timedelta(minutes=20))
    assert send(old) == (403, "InvalidSignatureException")
    recent = signed(live_server, issued, body, now=datetime.now(UTC) - timedelta(minutes=5))
    assert send(recent) == (404, "ResourceNotFoundException")


def test_unsigned_requests_are_unrecognized(default_group: DatasetGroup, live_server: Any) -> None:
    raw = urllib.request.Request(
        f"{live_server.url}{PREFIX}/recommendations",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(raw, timeout=10)
    with raised.value as error:
        assert error.code == 403
        assert json.loads(error.read())["__type"] == "UnrecognizedClientException"
