"""Request limits: rate limits per address and per key, body size, query shape, list sizes, introspection."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import pytest
from django.test import Client

from catalog.models import DatasetGroup
from recommendations.tracking import event_tracker_create
from recsite.schema import build_schema
from tests.auth import bearer, issue_key, manage_client

pytestmark = pytest.mark.django_db

TYPENAME = json.dumps({"query": "{ __typename }"})


def ask(client: Client, body: str = TYPENAME, **headers: Any) -> Any:
    """POST a body to /graphql/; the response."""
    return client.post("/graphql/", body, content_type="application/json", **headers)


def codes(response: Any) -> set[str]:
    return {error["extensions"]["code"] for error in response.json().get("errors", [])}


# --- rate limits ------------------------------------------------------------------------------------


def test_anonymous_callers_are_limited_per_address(settings: Any, default_group: DatasetGroup) -> None:
    # Given 3 requests per minute per address
    settings.RECSITE_RATE_LIMIT_PER_IP = 3
    statuses = [ask(Client()).status_code for _ in range(3)]
    # When a fourth comes within the minute
    refused = ask(Client())
    # Then it is refused with 429, RATE_LIMITED and when to retry
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert codes(refused) == {"RATE_LIMITED"}
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "3 requests per 60 seconds" in refused.json()["errors"][0]["message"]
    # and another address is still served
    assert ask(Client(REMOTE_ADDR="10.0.0.9")).status_code == 200


def test_keys_are_limited_each_on_their_own(settings: Any, default_group: DatasetGroup) -> None:
    # Given 2 requests per minute per key
    settings.RECSITE_RATE_LIMIT_PER_KEY = 2
    first, second = Client(**bearer("recommend")), Client(**bearer("recommend"))
    # When the first key sends 3
    statuses = [ask(first).status_code for _ in range(3)]
    # Then its third is refused, while the other key and anonymous callers from the same address are not
    assert statuses == [200, 200, 429]
    assert ask(second).status_code == 200
    assert ask(Client()).status_code == 200


def test_guessing_keys_counts_against_the_address(settings: Any, default_group: DatasetGroup) -> None:
    # Given 2 requests per minute per address
    settings.RECSITE_RATE_LIMIT_PER_IP = 2
    # When keys are guessed, then after two refusals the address is rate-limited
    guesses = [
        ask(Client(), HTTP_AUTHORIZATION=f"Bearer RSKAAAAAAAAAAAAAAAA{n}.guess").status_code for n in range(3)
    ]
    assert guesses == [401, 401, 429]


def test_forwarded_addresses_count_only_behind_trusted_proxies(
    settings: Any, default_group: DatasetGroup
) -> None:
    settings.RECSITE_RATE_LIMIT_PER_IP = 1
    # Given no trusted proxy, a client cannot escape its limit by claiming other addresses
    assert ask(Client(), HTTP_X_FORWARDED_FOR="1.1.1.1").status_code == 200
    assert ask(Client(), HTTP_X_FORWARDED_FOR="2.2.2.2").status_code == 429
    # Given one trusted proxy (which appends the address it saw), each client counts on its own
    settings.RECSITE_TRUSTED_PROXY_COUNT = 1
    assert ask(Client(), HTTP_X_FORWARDED_FOR="spoofed, 3.3.3.3").status_code == 200
    assert ask(Client(), HTTP_X_FORWARDED_FOR="spoofed, 4.4.4.4").status_code == 200
    assert ask(Client(), HTTP_X_FORWARDED_FOR="other-claim, 3.3.3.3").status_code == 429


def test_a_limit_of_zero_turns_limiting_off(settings: Any, default_group: DatasetGroup) -> None:
    settings.RECSITE_RATE_LIMIT_PER_IP = 0
    assert {ask(Client()).status_code for _ in range(5)} == {200}


def test_when_the_cache_is_down_requests_are_served_and_it_is_logged(
    settings: Any, default_group: DatasetGroup, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a rate-limit cache that cannot be reached
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    settings.RECSITE_RATE_LIMIT_PER_IP = 1
    # When requests come, then they are served (availability first) and the failure is logged
    with caplog.at_level(logging.WARNING, logger="access.rate_limits"):
        assert [ask(Client()).status_code for _ in range(2)] == [200, 200]
    assert "rate limiting skipped" in caplog.text


def _redis_url() -> str | None:
    import redis

    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.exceptions.RedisError:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("REQUIRE_SERVICES=1 but Redis is not reachable on 127.0.0.1:6379")
        return None
    return url


def test_limits_are_shared_through_redis(settings: Any, default_group: DatasetGroup) -> None:
    # Given the counters in Redis, as in production (CACHE_URL=redis://...)
    url = _redis_url()
    if url is None:
        pytest.skip("needs Redis on 127.0.0.1:6379")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}
    from django.core.cache import cache

    cache.clear()
    settings.RECSITE_RATE_LIMIT_PER_IP = 2
    # When three requests come, then the third is refused, and the counter lives in Redis
    assert [ask(Client()).status_code for _ in range(3)] == [200, 200, 429]
    import redis

    keys = redis.Redis.from_url(url).keys("*recsite:ratelimit:ip:127.0.0.1:*")
    assert keys
    cache.clear()


# --- body size ---------------------------------------------------------------------------------------


def test_bodies_over_the_limit_are_refused_with_413(settings: Any, default_group: DatasetGroup) -> None:
    # Given a 2,000-byte limit
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    padded = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * 3000}})
    # When a larger body is sent, then it is refused before parsing with a clear JSON error
    response = ask(Client(), padded)
    assert response.status_code == 413
    assert codes(response) == {"BAD_USER_INPUT"}
    assert "2000 bytes" in response.json()["errors"][0]["message"]
    # and a body within the limit is served
    assert ask(Client()).status_code == 200


def test_the_compatible_endpoint_refuses_big_bodies_too(settings: Any, default_group: DatasetGroup) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    settings.RECSITE_COMPAT_ACCEPT_ANY_CREDENTIALS = True
    response = Client().post(
        "/personalize/recommendations", json.dumps({"userId": "x" * 3000}), content_type="application/json"
    )
    assert response.status_code == 400
    assert response["x-amzn-ErrorType"] == "InvalidInputException"


# --- query shape, list sizes, introspection ----------------------------------------------------------


def test_introspection_is_off_in_production_for_everyone(default_group: DatasetGroup) -> None:
    # Given the test settings (debug off), when anonymous and manage callers introspect
    query = json.dumps({"query": "{ __schema { queryType { name } } }"})
    for client in (Client(), manage_client()):
        response = ask(client, query)
        # Then it is refused
        assert response.json()["data"] is None and codes(response) == {"BAD_USER_INPUT"}
    # and a debug schema answers it
    assert build_schema(debug=True).execute_sync("{ __schema { queryType { name } } }").errors is None


def test_depth_and_token_limits_come_from_settings(settings: Any) -> None:
    deep = '{ recommendations(sessionId: "s") { items { item { itemId } } } }'
    settings.RECSITE_GRAPHQL_MAX_DEPTH = 2
    assert "exceeds maximum operation depth" in str(build_schema(debug=False).execute_sync(deep).errors)
    settings.RECSITE_GRAPHQL_MAX_DEPTH = 10
    settings.RECSITE_GRAPHQL_MAX_TOKENS = 10
    tokens = build_schema(debug=False).execute_sync(deep + " " * 10 + "#").errors
    assert tokens and "token" in str(tokens).lower()


def test_too_many_tokens_through_the_endpoint_are_refused(default_group: DatasetGroup) -> None:
    # Given a public query with thousands of tokens (the default limit is 2000)
    query = "{ " + " ".join(f"a{n}: __typename" for n in range(1200)) + " }"
    response = ask(Client(), json.dumps({"query": query}))
    assert codes(response) == {"BAD_USER_INPUT"}


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (
            'query($n: Int!) { recommendations(sessionId: "s", numResults: $n) { recommendationId } }',
            {"n": 501},
        ),
        (
            'query($x: [String!]!) { personalizedRanking(userId: "u", itemIds: $x) { recommendationId } }',
            {"x": [f"i{n}" for n in range(501)]},
        ),
        ('query($n: Int!) { relatedItems(itemId: "i", numResults: $n) { recommendationId } }', {"n": 0}),
    ],
    ids=["numResults", "itemIds", "relatedItems-numResults"],
)
def test_public_list_sizes_are_capped(
    query: str, variables: dict[str, Any], default_group: DatasetGroup
) -> None:
    # When a public operation asks for more than Personalize's caps, then it is BAD_USER_INPUT
    response = ask(Client(), json.dumps({"query": query, "variables": variables}))
    assert codes(response) == {"BAD_USER_INPUT"}, response.json()


def test_events_and_records_per_call_are_capped(default_group: DatasetGroup) -> None:
    tracker = event_tracker_create(dataset_group=default_group, name="web")
    events = [{"eventType": "click", "itemId": "i", "sentAt": 1_700_000_000}] * 11
    put_events = (
        "mutation($t: String!, $e: [EventInput!]!) "
        '{ putEvents(trackingId: $t, sessionId: "s", events: $e) { eventsRecorded } }'
    )
    response = ask(
        Client(), json.dumps({"query": put_events, "variables": {"t": tracker.tracking_id, "e": events}})
    )
    assert codes(response) == {"BAD_USER_INPUT"}
    put_items = "mutation($i: [ItemInput!]!) { putItems(items: $i) { itemsWritten } }"
    items = [{"itemId": f"i{n}"} for n in range(11)]
    response = ask(manage_client(), json.dumps({"query": put_items, "variables": {"i": items}}))
    assert codes(response) == {"BAD_USER_INPUT"}
    pages = "{ items(pagination: {limit: 501}) { itemId } }"
    assert codes(ask(manage_client(), json.dumps({"query": pages}))) == {"BAD_USER_INPUT"}


def test_keys_are_counted_by_key_not_by_address(settings: Any, default_group: DatasetGroup) -> None:
    # Given a tight per-address limit and a loose per-key one
    settings.RECSITE_RATE_LIMIT_PER_IP = 1
    settings.RECSITE_RATE_LIMIT_PER_KEY = 100
    token = issue_key("recommend").token
    # When one server sends many requests with its key, then none is refused
    statuses = {ask(Client(), HTTP_AUTHORIZATION=f"Bearer {token}").status_code for _ in range(5)}
    assert statuses == {200}
