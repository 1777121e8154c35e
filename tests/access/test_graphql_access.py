"""Who may run which GraphQL operation: every root field of the schema, walked from the schema itself.

The lists are not written by hand: each root field of `recsite.schema.schema` (queries and
mutations) that RECSITE_PUBLIC_OPERATIONS does not name is restricted, and each is called
anonymously, with a key lacking its scope and with a key holding it. The documents carry no
arguments, so a caller who gets past permission meets validation (BAD_USER_INPUT): a refused
caller never does, which shows permission is checked first.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from graphql import GraphQLField, GraphQLInterfaceType, GraphQLObjectType, GraphQLUnionType, get_named_type

from access.services import api_key_revoke
from access.user_tokens import user_token
from catalog.models import DatasetGroup
from recommendations.models import Filter
from recommendations.tracking import event_tracker_create
from recsite.graphql_access import OPERATION_SCOPES, required_scope
from recsite.schema import build_schema, schema
from tests.auth import bearer, issue_key, scoped_client

pytestmark = pytest.mark.django_db

REFUSALS = {"UNAUTHENTICATED", "FORBIDDEN"}
CREATE_FILTER = "mutation($n: String!, $e: String!) { createFilter(name: $n, expression: $e) { name } }"


def filter_named(name: str) -> dict[str, str]:
    """createFilter's variables for a valid filter called `name`."""
    return {"n": name, "e": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'}


def root_fields() -> list[tuple[str, str, GraphQLField]]:
    """(operation type, field name, field) of every root field of the served schema."""
    graphql_schema = schema._schema
    roots = [("query", graphql_schema.query_type), ("mutation", graphql_schema.mutation_type)]
    return [
        (kind, name, field) for kind, root in roots if root is not None for name, field in root.fields.items()
    ]


def document(kind: str, name: str, field: GraphQLField) -> str:
    """The field called with no arguments, selecting __typename when it returns an object."""
    composite = (GraphQLObjectType, GraphQLInterfaceType, GraphQLUnionType)
    selection = " { __typename }" if isinstance(get_named_type(field.type), composite) else ""
    return f"{kind} {{ {name}{selection} }}"


PUBLIC = set(settings.RECSITE_PUBLIC_OPERATIONS)
RESTRICTED = [(kind, name, field) for kind, name, field in root_fields() if name not in PUBLIC]
PUBLIC_FIELDS = [(kind, name, field) for kind, name, field in root_fields() if name in PUBLIC]


def post(
    client: Client, query: str, variables: dict[str, Any] | None = None, **headers: Any
) -> dict[str, Any]:
    """POST one operation; the decoded body (HTTP 200: refusals are GraphQL errors)."""
    body = {"query": query, "variables": variables or {}}
    response = client.post("/graphql/", json.dumps(body), content_type="application/json", **headers)
    assert response.status_code == 200, response.content
    return response.json()


def codes(body: dict[str, Any]) -> set[str]:
    return {error["extensions"]["code"] for error in body.get("errors", [])}


def lacking(scope: str) -> tuple[str, ...]:
    """Every scope but `scope` (and never manage, which holds them all)."""
    return tuple(other for other in ("recommend", "track") if other != scope) or ("recommend",)


def test_the_walk_covers_the_schema_and_the_defaults() -> None:
    # Given the served schema, then the walk sees every mutation and the restricted reads
    names = {name for _, name, _ in RESTRICTED}
    assert {"createFilter", "deleteFilter", "createEventTracker", "putItems", "putUsers"} <= names
    assert {"createSolution", "createSolutionVersion", "createCampaign", "updateCampaign"} <= names
    assert {"item", "items", "user", "users", "interactions", "userSegment"} <= names
    # and the public ones are exactly the issue's defaults
    assert {name for _, name, _ in PUBLIC_FIELDS} == {
        "recommendations",
        "relatedItems",
        "personalizedRanking",
        "putEvents",
    }
    # and only those four need less than manage
    assert {name for _, name, _ in root_fields() if required_scope(name) != "manage"} == set(OPERATION_SCOPES)


@pytest.mark.parametrize(("kind", "name", "field"), RESTRICTED, ids=[name for _, name, _ in RESTRICTED])
def test_every_restricted_operation_refuses_anonymous_callers_before_validation(
    kind: str, name: str, field: GraphQLField, default_group: DatasetGroup
) -> None:
    # When called without credentials and without its required arguments
    body = post(Client(), document(kind, name, field))
    # Then it is UNAUTHENTICATED, not a validation error about the arguments
    assert codes(body) == {"UNAUTHENTICATED"}, body
    assert body["data"] is None
    assert "argument" not in body["errors"][0]["message"].lower()


@pytest.mark.parametrize(("kind", "name", "field"), RESTRICTED, ids=[name for _, name, _ in RESTRICTED])
def test_every_restricted_operation_refuses_a_key_without_its_scope(
    kind: str, name: str, field: GraphQLField, default_group: DatasetGroup
) -> None:
    # Given a key holding every scope but the one the field needs
    client = scoped_client(*lacking(required_scope(name)))
    # When the field is called, then it is FORBIDDEN
    body = post(client, document(kind, name, field))
    assert codes(body) == {"FORBIDDEN"}, body
    assert body["data"] is None


@pytest.mark.parametrize(("kind", "name", "field"), RESTRICTED, ids=[name for _, name, _ in RESTRICTED])
def test_every_restricted_operation_lets_a_key_with_its_scope_through(
    kind: str, name: str, field: GraphQLField, default_group: DatasetGroup
) -> None:
    # Given a key with the field's scope, when the field is called (still without arguments)
    body = post(scoped_client(required_scope(name)), document(kind, name, field))
    # Then permission passes: what comes back, if anything, is about the request itself
    assert not codes(body) & REFUSALS, body


@pytest.mark.parametrize(("kind", "name", "field"), RESTRICTED, ids=[name for _, name, _ in RESTRICTED])
def test_every_restricted_operation_refuses_a_revoked_key(
    kind: str, name: str, field: GraphQLField, default_group: DatasetGroup
) -> None:
    # Given a manage key that has been revoked
    issued = issue_key("manage")
    api_key_revoke(key_id=issued.api_key.key_id)
    # When it is used, then the request is refused as unauthenticated (HTTP 401)
    response = Client().post(
        "/graphql/",
        json.dumps({"query": document(kind, name, field)}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {issued.token}",
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert codes(response.json()) == {"UNAUTHENTICATED"}
    assert "revoked" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(("kind", "name", "field"), PUBLIC_FIELDS, ids=[name for _, name, _ in PUBLIC_FIELDS])
def test_public_operations_are_open_by_default_and_need_their_scope_once_closed(
    kind: str, name: str, field: GraphQLField, default_group: DatasetGroup, settings: Any
) -> None:
    query = document(kind, name, field)
    # Given the default settings, an anonymous caller passes permission
    assert not codes(post(Client(), query)) & REFUSALS
    # When the deployment takes the operation out of the public list
    settings.RECSITE_PUBLIC_OPERATIONS = [
        other for other in settings.RECSITE_PUBLIC_OPERATIONS if other != name
    ]
    # Then anonymous callers are UNAUTHENTICATED, keys without its scope FORBIDDEN, keys with it pass
    assert codes(post(Client(), query)) == {"UNAUTHENTICATED"}
    assert codes(post(scoped_client(*lacking(required_scope(name))), query)) == {"FORBIDDEN"}
    assert not codes(post(scoped_client(required_scope(name)), query)) & REFUSALS


@pytest.mark.parametrize(
    "token",
    ["RSKAAAAAAAAAAAAAAAAA.not-the-secret", "nonsense", ""],
    ids=["unknown-key", "malformed", "empty"],
)
def test_bad_bearer_tokens_are_refused_even_for_public_operations(
    token: str, default_group: DatasetGroup
) -> None:
    # When a public operation is called with a Bearer token that names no key
    response = Client().post(
        "/graphql/",
        json.dumps({"query": "{ __typename }"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    # Then it is refused (HTTP 401), not served as anonymous
    assert response.status_code == 401
    assert codes(response.json()) == {"UNAUTHENTICATED"}


def test_a_wrong_secret_for_a_real_key_id_is_refused(default_group: DatasetGroup) -> None:
    # Given a real key id with another secret
    issued = issue_key("manage")
    forged = f"{issued.api_key.key_id}.{'x' * len(issued.secret)}"
    # When used, then the request is refused
    response = Client().post(
        "/graphql/",
        {"query": "{ __typename }"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {forged}",
    )
    assert response.status_code == 401


def test_other_authorization_schemes_are_not_ours_and_count_as_anonymous(default_group: DatasetGroup) -> None:
    # Given a proxy's Basic auth header, when a public and a restricted operation are called
    headers = {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"}
    public = post(Client(), '{ recommendations(sessionId: "s") { recommendationId } }', **headers)
    restricted = post(Client(), "{ users { userId } }", **headers)
    # Then the public one passes permission and the restricted one is UNAUTHENTICATED
    assert not codes(public) & REFUSALS
    assert codes(restricted) == {"UNAUTHENTICATED"}


@pytest.mark.parametrize(
    "query",
    [
        "{ notAField { x } }",
        "mutation { dropEverything(now: true) { ok } }",
        "query { ...F } fragment F on Query { users { userId } }",
        "{ ... on Query { interactions { eventType } } }",
        '{ recommendations(sessionId: "s") { recommendationId } users { userId } }',
        'mutation { createFilter(nme: 5, expresion: "?") { name } }',
    ],
    ids=["unknown-field", "unknown-mutation", "fragment", "inline-fragment", "mixed", "wrong-arguments"],
)
def test_anonymous_callers_learn_nothing_about_names_or_shapes(
    query: str, default_group: DatasetGroup
) -> None:
    # When an anonymous caller sends fields that don't exist, hide in fragments or have wrong arguments
    body = post(Client(), query)
    # Then the answer is UNAUTHENTICATED, without a word about what exists or is wrong
    assert codes(body) == {"UNAUTHENTICATED"}, body
    message = body["errors"][0]["message"]
    assert (
        "Cannot query" not in message and "Unknown argument" not in message and "Did you mean" not in message
    )


def test_a_manage_key_meets_validation_for_unknown_fields(default_group: DatasetGroup) -> None:
    # Given a manage key, when it names a field that does not exist, then validation answers
    assert codes(post(scoped_client("manage"), "{ notAField }")) == {"BAD_USER_INPUT"}


def test_only_the_chosen_operation_of_a_document_is_checked(default_group: DatasetGroup) -> None:
    # Given a document (as GraphiQL sends) with a public and a restricted operation
    query = "query Open { __typename } query Closed { users { userId } }"
    # When the public one is run anonymously, then it runs; when the restricted one is, it is refused
    response = Client().post(
        "/graphql/", {"query": query, "operationName": "Open"}, content_type="application/json"
    )
    assert response.json() == {"data": {"__typename": "Query"}}
    response = Client().post(
        "/graphql/", {"query": query, "operationName": "Closed"}, content_type="application/json"
    )
    assert codes(response.json()) == {"UNAUTHENTICATED"}


def test_a_key_with_the_scope_really_runs_the_mutation(default_group: DatasetGroup) -> None:
    # Given a manage key, when it creates a filter, then the filter exists
    body = post(scoped_client("manage"), CREATE_FILTER, filter_named("f"))
    assert body == {"data": {"createFilter": {"name": "f"}}}
    assert Filter.objects.filter(name="f").exists()
    # and an anonymous caller creates nothing
    post(Client(), CREATE_FILTER, filter_named("g"))
    assert not Filter.objects.filter(name="g").exists()


def test_put_events_is_public_with_a_valid_tracking_id_only(default_group: DatasetGroup) -> None:
    # Given an event tracker, and a browser without credentials
    tracker = event_tracker_create(dataset_group=default_group, name="web")
    query = """mutation($t: String!) { putEvents(trackingId: $t, sessionId: "s1",
        events: [{eventType: "click", itemId: "i1", sentAt: 1700000000}]) { eventsRecorded } }"""
    # When it sends events with the tracker's id, then they are recorded
    assert post(Client(), query, {"t": tracker.tracking_id}) == {"data": {"putEvents": {"eventsRecorded": 1}}}
    # and with an unknown trackingId they are refused as NOT_FOUND
    assert codes(post(Client(), query, {"t": "no-such-tracker"})) == {"NOT_FOUND"}


# --- staff sessions and CSRF ------------------------------------------------------------------------


def signed_in_browser(*, staff: bool) -> Client:
    """A browser (CSRF enforced) signed in to the admin, holding the CSRF cookie."""
    user = get_user_model().objects.create_user(username="op", password="pw", is_staff=staff)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    browser.get("/admin/" if staff else "/admin/login/")  # a form on the page sets the csrftoken cookie
    return browser


def test_a_staff_session_holds_manage_with_its_csrf_token(default_group: DatasetGroup) -> None:
    # Given a signed-in operator's browser
    browser = signed_in_browser(staff=True)
    # When it creates a filter carrying the CSRF token (as GraphiQL does), then it works
    token = browser.cookies["csrftoken"].value
    assert post(browser, CREATE_FILTER, filter_named("s"), HTTP_X_CSRFTOKEN=token) == {
        "data": {"createFilter": {"name": "s"}}
    }


def test_a_staff_session_without_csrf_token_counts_as_anonymous(default_group: DatasetGroup) -> None:
    # Given a signed-in operator's browser, when a page (say, another site's) posts without the token
    body = post(signed_in_browser(staff=True), CREATE_FILTER, filter_named("s"))
    # Then the session is not used: UNAUTHENTICATED, saying why, and nothing is created
    assert codes(body) == {"UNAUTHENTICATED"}
    assert "CSRF" in body["errors"][0]["message"]
    assert not Filter.objects.filter(name="s").exists()


def test_a_non_staff_session_holds_nothing(default_group: DatasetGroup) -> None:
    # Given a signed-in user who is not staff, with a CSRF token
    browser = signed_in_browser(staff=False)
    token = browser.cookies["csrftoken"].value
    # When they create a filter, then they are anonymous to the API
    assert codes(post(browser, CREATE_FILTER, filter_named("s"), HTTP_X_CSRFTOKEN=token)) == {
        "UNAUTHENTICATED"
    }


def test_anonymous_browsers_need_no_csrf_token_for_public_operations(default_group: DatasetGroup) -> None:
    # Given a browser that enforces CSRF and has no token
    browser = Client(enforce_csrf_checks=True)
    # When it asks for recommendations, then permission passes (no campaign yet: NOT_FOUND)
    body = post(browser, '{ recommendations(sessionId: "s") { recommendationId } }')
    assert codes(body) == {"NOT_FOUND"}


def test_api_keys_need_no_csrf_token(default_group: DatasetGroup) -> None:
    # Given a CSRF-enforcing client with a manage key and no cookie, when it creates a filter, then it works
    client = Client(enforce_csrf_checks=True, **bearer("manage"))
    assert post(client, CREATE_FILTER, filter_named("s")) == {"data": {"createFilter": {"name": "s"}}}


# --- signed user tokens -----------------------------------------------------------------------------


RECOMMEND_FOR_USER = '{ recommendations(userId: "alice") { recommendationId } }'


def test_user_tokens_are_not_needed_unless_configured(default_group: DatasetGroup) -> None:
    # Given no RECSITE_USER_TOKEN_SECRET, an anonymous caller may name any user
    assert codes(post(Client(), RECOMMEND_FOR_USER)) == {"NOT_FOUND"}  # no campaign: past permission


def test_with_user_tokens_on_a_browser_may_only_ask_for_its_own_user(
    default_group: DatasetGroup, settings: Any
) -> None:
    # Given a deployment that requires signed user tokens
    settings.RECSITE_USER_TOKEN_SECRET = "shop-shared-secret"
    alice = user_token("alice")
    # When a browser names alice without a token, or with bob's, then it is FORBIDDEN
    assert codes(post(Client(), RECOMMEND_FOR_USER)) == {"FORBIDDEN"}
    assert codes(post(Client(), RECOMMEND_FOR_USER, HTTP_X_RECSITE_USER_TOKEN=user_token("bob"))) == {
        "FORBIDDEN"
    }
    # and with alice's token it passes permission
    assert codes(post(Client(), RECOMMEND_FOR_USER, HTTP_X_RECSITE_USER_TOKEN=alice)) == {"NOT_FOUND"}
    # and the id is found in variables and in variable defaults too
    by_variable = "query($u: String) { recommendations(userId: $u) { recommendationId } }"
    assert codes(post(Client(), by_variable, {"u": "alice"})) == {"FORBIDDEN"}
    assert codes(post(Client(), by_variable, {"u": "alice"}, HTTP_X_RECSITE_USER_TOKEN=alice)) == {
        "NOT_FOUND"
    }
    by_default = 'query($u: String = "alice") { recommendations(userId: $u) { recommendationId } }'
    assert codes(post(Client(), by_default)) == {"FORBIDDEN"}
    # and an anonymous session needs no token
    assert codes(post(Client(), '{ recommendations(sessionId: "s") { recommendationId } }')) == {"NOT_FOUND"}
    # and a server with a recommend key needs none either
    assert codes(post(scoped_client("recommend"), RECOMMEND_FOR_USER)) == {"NOT_FOUND"}


def test_with_user_tokens_on_put_events_for_a_user_needs_the_token(
    default_group: DatasetGroup, settings: Any
) -> None:
    # Given required user tokens and an event tracker
    settings.RECSITE_USER_TOKEN_SECRET = "shop-shared-secret"
    tracker = event_tracker_create(dataset_group=default_group, name="web")
    query = """mutation($t: String!) { putEvents(trackingId: $t, sessionId: "s1", userId: "alice",
        events: [{eventType: "click", itemId: "i1", sentAt: 1700000000}]) { eventsRecorded } }"""
    # When a browser writes events as alice without her token, then it is FORBIDDEN
    assert codes(post(Client(), query, {"t": tracker.tracking_id})) == {"FORBIDDEN"}
    # and with it they are recorded
    body = post(Client(), query, {"t": tracker.tracking_id}, HTTP_X_RECSITE_USER_TOKEN=user_token("alice"))
    assert body == {"data": {"putEvents": {"eventsRecorded": 1}}}


# --- browser frontends on another origin -------------------------------------------------------------


def test_allowed_origins_may_call_from_the_browser_without_cookies(
    default_group: DatasetGroup, settings: Any
) -> None:
    # Given a shop frontend's origin allowed
    settings.CORS_ALLOWED_ORIGINS = ["https://shop.example.com"]
    preflight = {
        "HTTP_ORIGIN": "https://shop.example.com",
        "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST",
        "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "content-type, x-recsite-user-token",
    }
    # When its browser asks before POSTing, then it may, with the user-token header, and without cookies
    answer = Client().options("/graphql/", **preflight)
    assert answer["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "x-recsite-user-token" in answer["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in answer
    # and another origin is not allowed
    other = Client().options("/graphql/", **{**preflight, "HTTP_ORIGIN": "https://evil.example.net"})
    assert "Access-Control-Allow-Origin" not in other


def test_a_misspelt_public_operation_stops_startup(settings: Any) -> None:
    # Given a field the schema does not have in the public list, when the schema is built, then it refuses
    settings.RECSITE_PUBLIC_OPERATIONS = ["recommendation", "putEvents"]
    with pytest.raises(ImproperlyConfigured, match="recommendation"):
        build_schema(debug=False)
