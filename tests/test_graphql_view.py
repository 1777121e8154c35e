"""The /graphql/ endpoint never answers HTTP 500, and every error carries extensions.code."""

import json
import random
from typing import Any

import pytest
from django.test import Client

from catalog.models import DatasetGroup
from tests.auth import bearer, manage_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(db: None) -> Client:
    """A manage-scoped API-key client, so the bodies reach parsing and validation of any operation."""
    return manage_client()


VALID_BODY = json.dumps(
    {
        "query": "query Q($id: String!, $page: PaginationInput) { item(itemId: $id) { itemId } "
        "items(pagination: $page) { itemId metadata } }",
        "variables": {"id": "1", "page": {"limit": 2}},
        "operationName": "Q",
    }
)


def assert_graphql_error_response(response: Any) -> dict[str, Any]:
    """Check a response is not a 500 and, if it has errors, that each carries a code."""
    assert response.status_code != 500, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response.content[:300]
    body = response.json()
    assert isinstance(body, dict)
    for error in body.get("errors", []):
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["extensions"]["code"], str), error
    if response.status_code != 200:
        assert body["errors"], body
    return body


def post(client: Client, body: bytes | str, content_type: str = "application/json") -> Any:
    """POST a raw body to the endpoint."""
    return client.post("/graphql/", body, content_type=content_type)


def random_bodies(seed: int, count: int) -> list[bytes]:
    """Reproducible junk: random bytes, truncated and mangled JSON, JSON of the wrong shape."""
    rng = random.Random(seed)
    bodies: list[bytes] = []
    for _ in range(count):
        kind = rng.randrange(6)
        if kind == 0:  # random bytes, often not UTF-8
            bodies.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))))
        elif kind == 1:  # the valid body cut short
            bodies.append(VALID_BODY[: rng.randrange(len(VALID_BODY))].encode())
        elif kind == 2:  # the valid body with one byte replaced
            raw = bytearray(VALID_BODY.encode())
            raw[rng.randrange(len(raw))] = rng.randrange(256)
            bodies.append(bytes(raw))
        elif kind == 3:  # JSON values that are not a request object
            value = rng.choice(
                [0, -1.5, "query", None, True, [], [1, 2], [{"query": "{ items { itemId } }"}], {}]
            )
            bodies.append(json.dumps(value).encode())
        elif kind == 4:  # request objects with fields of the wrong types
            field = rng.choice(["query", "variables", "operationName", "extensions"])
            value = rng.choice([1, 2.5, True, None, [], ["x"], {"a": 1}, "", "{", "x" * 50])
            request: dict[str, Any] = {"query": "{ items { itemId } }", field: value}
            bodies.append(json.dumps(request).encode())
        else:  # variables whose values do not fit their declared types
            value = rng.choice(
                [1, 2.5, True, None, [], ["x"], {"limit": "ten"}, {"limit": 2**40}, "s", {"x": 1}]
            )
            request = {
                "query": "query Q($id: String!, $page: PaginationInput) { item(itemId: $id) { itemId } "
                "items(pagination: $page) { itemId } }",
                "variables": {rng.choice(["id", "page"]): value},
            }
            bodies.append(json.dumps(request).encode())
    return bodies


def test_hundreds_of_malformed_bodies_never_get_a_500(client: Client, default_group: DatasetGroup) -> None:
    # given 400 reproducible malformed bodies
    bodies = random_bodies(seed=20261128, count=400)

    # when each is POSTed as JSON, then none gets a 500 and every error has a code
    statuses = {assert_graphql_error_response(post(client, body)) is not None and 0 for body in bodies}
    assert statuses == {0}


def test_every_prefix_of_a_valid_body_is_handled(client: Client, default_group: DatasetGroup) -> None:
    # given every truncation of a valid request, when POSTed, then each is answered without a 500
    for end in range(0, len(VALID_BODY), 3):
        response = post(client, VALID_BODY[:end])
        body = assert_graphql_error_response(response)
        assert response.status_code == 400 and body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00garbage",
        b'{"query": "{ items { itemId } }", "x": "\xe9"}',
        b"",
        b"null",
        b"42",
        b'"{ items { itemId } }"',
        b"[]",
        b'[{"query": "{ items { itemId } }"}]',
        b"{}",
        b'{"query": null}',
        b'{"query": 5}',
        b'{"query": ""}',
        b'{"query": "{ items { itemId } }", "variables": [1]}',
        b'{"query": "{ items { itemId } }", "variables": "x"}',
        b'{"query": "{ items { itemId } }", "operationName": 7}',
        b'{"query": "{ items { itemId } }", "extensions": 3}',
        b"[" * 100_000,
    ],
)
def test_malformed_body_is_a_400_with_bad_user_input(
    client: Client, default_group: DatasetGroup, raw: bytes
) -> None:
    # given a body that is not a JSON object with a string query, when POSTed as JSON
    response = post(client, raw)

    # then it is refused with HTTP 400 and a GraphQL-style BAD_USER_INPUT error
    body = assert_graphql_error_response(response)
    assert response.status_code == 400
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "",
    ],
)
def test_wrong_content_type_is_a_400(client: Client, default_group: DatasetGroup, content_type: str) -> None:
    # given a valid query sent with a content type other than JSON, when POSTed, then it is a 400 with a code
    response = post(client, VALID_BODY, content_type=content_type)
    body = assert_graphql_error_response(response)
    assert response.status_code == 400
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "query",
    [
        "{ items { itemId }",  # syntax error
        "{ nope }",  # unknown field
        "{" * 3000 + "}" * 3000,  # deep nesting
        "{ " + "items { itemId } " * 2000 + "}",  # too many tokens
        "mutation { items { itemId } }",  # no mutation type
        "subscription { items { itemId } }",
    ],
)
def test_bad_documents_are_answered_with_codes(
    client: Client, default_group: DatasetGroup, query: str
) -> None:
    # given a document that cannot run, when POSTed, then the answer has coded errors and is not a 500
    body = assert_graphql_error_response(post(client, json.dumps({"query": query})))
    assert body["errors"]


def test_wrong_variable_types_are_bad_user_input(client: Client, default_group: DatasetGroup) -> None:
    # given variables that do not fit the declared types
    request = {
        "query": "query Q($id: String!, $page: PaginationInput) { item(itemId: $id) { itemId } "
        "items(pagination: $page) { itemId } }",
        "variables": {"id": 5, "page": {"limit": "ten"}},
    }

    # when POSTed, then each problem is an error with BAD_USER_INPUT
    body = assert_graphql_error_response(post(client, json.dumps(request)))
    assert {error["extensions"]["code"] for error in body["errors"]} == {"BAD_USER_INPUT"}


def test_get_with_malformed_variables_is_a_400(client: Client, default_group: DatasetGroup) -> None:
    # given a GET whose variables are not JSON, then it is a 400 with a code
    response = client.get("/graphql/", {"query": "{ items { itemId } }", "variables": "{bad"})
    assert_graphql_error_response(response)
    assert response.status_code == 400


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_other_methods_are_refused_with_json(
    client: Client, default_group: DatasetGroup, method: str
) -> None:
    # given a method other than GET/POST, when used, then it is a 405 with a coded JSON error
    response = getattr(client, method)("/graphql/", VALID_BODY, content_type="application/json")
    assert_graphql_error_response(response)
    assert response.status_code == 405


def test_valid_request_works_without_a_csrf_token(default_group: DatasetGroup) -> None:
    # given an API-key client that enforces CSRF like a browser-less API caller would meet it
    client = Client(enforce_csrf_checks=True, **bearer("manage"))

    # when it POSTs a query without any CSRF token, then the query runs
    response = post(client, json.dumps({"query": "{ items { itemId } }"}))
    assert response.status_code == 200
    assert response.json() == {"data": {"items": []}}


def test_graphiql_only_in_debug(client: Client, default_group: DatasetGroup, settings: Any) -> None:
    # given debug off, when a browser asks for the page, then there is no GraphiQL (404 with a code)
    settings.DEBUG = False
    response = client.get("/graphql/", HTTP_ACCEPT="text/html")
    assert_graphql_error_response(response)
    assert response.status_code == 404

    # given debug on, when a browser asks for the page, then GraphiQL is served
    settings.DEBUG = True
    response = client.get("/graphql/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"graphiql" in response.content.lower()


@pytest.mark.parametrize(
    "raw",
    [
        # in a variable (PostgreSQL's text cannot store NUL: this was a 500 there)
        json.dumps(
            {
                "query": 'mutation P($t: String!) { putEvents(trackingId: $t, sessionId: "s", '
                'events: [{eventType: "click", sentAt: 1}]) { eventsRecorded } }',
                "variables": {"t": "tracker\u0000"},
            }
        ),
        # as a GraphQL string escape in the query text, and in a key
        json.dumps({"query": '{ recommendations(userId: "a\\u0000") { recommendationId } }'}),
        json.dumps({"query": "{ __typename }", "variables": {"x\u0000": 1}}),
        # as GraphQL's braced escape, and as a GraphQL escape whose backslash is itself a JSON escape
        json.dumps({"query": '{ recommendations(userId: "a\\u{0}") { recommendationId } }'}),
        '{"query": "{ recommendations(userId: \\"a\\u005cu0000\\") { recommendationId } }"}',
    ],
)
def test_nul_anywhere_in_the_request_is_a_400(client: Client, default_group: DatasetGroup, raw: str) -> None:
    # given a request holding the NUL character in a string
    response = post(client, raw)
    # then it is refused as the caller's mistake, naming the character
    body = assert_graphql_error_response(response)
    assert response.status_code == 400
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "NUL" in body["errors"][0]["message"]
