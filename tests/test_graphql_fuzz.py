"""schemathesis in GraphQL mode against the served schema: no generated request gets a 500.

The schema is the one /graphql/ serves (`recsite.schema.schema`, printed as SDL: introspection is
off with debug off, so it is not fetched over HTTP). schemathesis generates, for every query and
mutation, documents with valid and invalid arguments; each is POSTed through the real view twice:
anonymously (public operations answer, others refuse) and with a manage-scoped API key (every
operation reaches its resolver). Every answer must be JSON, never a 500, and every error must carry
one of the contract's `extensions.code` values (DESIGN.md §3).

Examples per operation: `RECSITE_FUZZ_EXAMPLES` (tests/fuzzing.py), default 15.
"""

import json
from typing import Any

import pytest
import schemathesis
from django.test import Client

from catalog.models import DatasetGroup
from recommendations.tracking import event_tracker_create
from recsite.schema import schema as served_schema
from tests.auth import bearer
from tests.fuzzing import fuzz_settings

pytestmark = pytest.mark.django_db

SCHEMA = schemathesis.graphql.from_file(str(served_schema))
CODES = {
    "BAD_USER_INPUT",
    "NOT_FOUND",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "UNAVAILABLE",
    "RATE_LIMITED",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "PAYLOAD_TOO_LARGE",
}


def assert_clean_answer(response: Any, document: str) -> dict[str, Any]:
    """Not a 500; a JSON object; every error has a message and a known code."""
    assert response.status_code != 500, (document, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), (document, response.content[:300])
    body = response.json()
    assert isinstance(body, dict), body
    for error in body.get("errors") or []:
        assert isinstance(error.get("message"), str) and error["message"], (document, error)
        assert error.get("extensions", {}).get("code") in CODES, (document, error)
    if response.status_code != 200:
        assert body.get("errors"), (document, body)
    return body


@pytest.fixture
def callers(default_group: DatasetGroup) -> list[Client]:
    """An anonymous client and a manage-scoped one; a tracker exists so putEvents can get far."""
    event_tracker_create(dataset_group=default_group, name="fuzz")
    return [Client(), Client(**bearer("manage"))]


@SCHEMA.parametrize()
@fuzz_settings(15)
def test_generated_operations_never_get_a_500(case: Any, callers: list[Client]) -> None:
    # given a document schemathesis generated for one operation of the served schema
    document = case.body if isinstance(case.body, str) else json.dumps(case.body)
    request = json.dumps({"query": document})
    for client in callers:
        # when it is POSTed anonymously and with a manage key
        response = client.post("/graphql/", request, content_type="application/json")
        # then the answer is JSON with coded errors, never a 500
        assert_clean_answer(response, document)
