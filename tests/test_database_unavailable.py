"""A database that refuses or drops connections: the API answers UNAVAILABLE, never 500, and recovers.

The first tests raise the driver's errors where the database is used (any database); the
PostgreSQL tests make the real server refuse the connection (the database's address pointed at a
closed port) and drop it (pg_terminate_backend from a second connection), and call the site
through Django's WSGI handler as a server would, so the per-request connection handling
(CONN_HEALTH_CHECKS, closing unusable connections after a request) is the real one.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import psycopg
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import InterfaceError, OperationalError, connection
from django.test import Client

from catalog.models import DatasetGroup, Interaction
from recommendations.tracking import event_tracker_create
from recsite.middleware import DATABASE_RETRY_AFTER_SECONDS

ITEMS_QUERY = {"query": 'query { recommendations(userId: "u1", numResults: 3) { items { itemId } } }'}
PUT_EVENTS = (
    "mutation($t: String!, $e: [EventInput!]!) "
    '{ putEvents(trackingId: $t, sessionId: "s1", userId: "u1", events: $e) { eventsRecorded } }'
)


def graphql(client: Client, body: dict[str, Any]) -> Any:
    return client.post("/graphql/", json.dumps(body), content_type="application/json")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "error",
    [
        OperationalError('connection to server at "10.0.0.7", port 5432 failed: Connection refused'),
        InterfaceError("connection already closed"),
    ],
)
def test_a_resolver_losing_the_database_answers_unavailable_without_the_drivers_text(
    error: Exception, default_group: DatasetGroup
) -> None:
    # given the database fails while a resolver reads it
    with mock.patch("recommendations.serving.recommendation_list", side_effect=error):
        # when a frontend asks for recommendations
        response = graphql(Client(), ITEMS_QUERY)
    # then it gets a GraphQL error coded UNAVAILABLE (HTTP 200, as every GraphQL error), no host or port
    assert response.status_code == 200
    (found,) = response.json()["errors"]
    assert found["extensions"]["code"] == "UNAVAILABLE"
    assert "10.0.0.7" not in found["message"] and "closed" not in found["message"]
    assert "unavailable" in found["message"].lower()


@pytest.mark.django_db
def test_a_view_losing_the_database_before_graphql_runs_answers_503_unavailable(
    default_group: DatasetGroup,
) -> None:
    # given the database refuses connections while the view itself (authentication, say) reads it
    refused = OperationalError("connection refused")
    with mock.patch("recsite.graphql_view.RecsiteGraphQLView.run", side_effect=refused):
        # when a client calls /graphql/
        response = graphql(Client(), ITEMS_QUERY)
    # then the answer is 503 with a GraphQL-style UNAVAILABLE error and a Retry-After, not a 500
    assert response.status_code == 503
    assert response["Retry-After"] == str(DATABASE_RETRY_AFTER_SECONDS)
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAVAILABLE"


@pytest.mark.django_db
def test_other_pages_losing_the_database_answer_503_and_other_errors_are_left_alone(
    admin_client: Client,
) -> None:
    with mock.patch("django.contrib.admin.sites.AdminSite.each_context", side_effect=InterfaceError("gone")):
        response = admin_client.get("/admin/")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/plain")
    admin_client.raise_request_exception = True
    with (
        mock.patch("django.contrib.admin.sites.AdminSite.each_context", side_effect=ValueError("a bug")),
        pytest.raises(ValueError),
    ):
        admin_client.get("/admin/")


# --- PostgreSQL: a real refused / dropped connection ------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nobody listens once the probe closes


def serve(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST /graphql/ through Django's WSGI handler as a server does (request signals included)."""
    data = json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/graphql/",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    status: list[str] = []
    response = WSGIHandler()(environ, lambda given, headers, exc_info=None: status.append(given))
    try:
        content = b"".join(response)
    finally:
        response.close()  # request_finished: Django closes an unusable or obsolete connection here
    return int(status[0].split()[0]), json.loads(content)


@contextmanager
def database_refusing_connections() -> Iterator[None]:
    """New connections go to a closed port (PostgreSQL down) until the block ends; the current one dies."""
    settings_dict = connection.settings_dict
    saved = settings_dict["PORT"]
    backend = connection.cursor().connection.info.backend_pid
    _terminate(backend)
    settings_dict["PORT"] = str(_closed_port())
    try:
        yield
    finally:
        settings_dict["PORT"] = saved
        connection.close()


def _terminate(pid: int) -> None:
    """End a server backend from a second connection, as a database restart or failover would."""
    settings_dict = connection.settings_dict
    with psycopg.connect(
        host=settings_dict["HOST"] or "127.0.0.1",
        port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"] or "postgres",
        password=settings_dict["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.fixture
def tracking_id(default_group: DatasetGroup) -> str:
    return event_tracker_create(dataset_group=default_group, name="shop").tracking_id


def put_event(tracking_id: str, item_id: str) -> dict[str, Any]:
    """A frontend's putEvents call (public), through the WSGI handler."""
    event = {"eventType": "view", "sentAt": 1_790_000_000.0, "itemId": item_id}
    return {"query": PUT_EVENTS, "variables": {"t": tracking_id, "e": [event]}}


def recorded(body: dict[str, Any]) -> int:
    assert "errors" not in body, body
    return body["data"]["putEvents"]["eventsRecorded"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgresql_down_answers_unavailable_and_service_resumes_without_restart(tracking_id: str) -> None:
    # given the API serves
    status, body = serve(put_event(tracking_id, "i1"))
    assert status == 200 and recorded(body) == 1
    # when PostgreSQL drops the connection and refuses new ones
    with database_refusing_connections():
        status, body = serve(put_event(tracking_id, "i2"))
        # then the API answers UNAVAILABLE, not a 500 (and twice in a row: nothing got stuck)
        assert status in (200, 503), body
        assert [error["extensions"]["code"] for error in body["errors"]] == ["UNAVAILABLE"]
        status, body = serve(put_event(tracking_id, "i3"))
        assert status in (200, 503), body
        assert [error["extensions"]["code"] for error in body["errors"]] == ["UNAVAILABLE"]
    # and once it is back, the same process serves again (no restart); the refused events were not stored
    status, body = serve(put_event(tracking_id, "i4"))
    assert status == 200 and recorded(body) == 1
    assert sorted(Interaction.objects.values_list("item__item_id", flat=True)) == ["i1", "i4"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_dropped_between_requests_is_replaced_by_the_health_check(tracking_id: str) -> None:
    status, body = serve(put_event(tracking_id, "i1"))
    assert status == 200
    # given the kept-alive connection (CONN_MAX_AGE) is ended by the server between two requests
    old_backend = connection.cursor().connection.info.backend_pid
    _terminate(old_backend)
    # when the next request arrives
    status, body = serve(put_event(tracking_id, "i2"))
    # then it is answered normally on a new connection (CONN_HEALTH_CHECKS found the dead one)
    assert status == 200 and recorded(body) == 1
    assert connection.cursor().connection.info.backend_pid != old_backend
