"""Middleware of the whole site: a database outage answers 503 UNAVAILABLE, never 500.

GraphQL resolvers that hit a refused or lost database connection already answer a GraphQL error
with `extensions.code` UNAVAILABLE (recsite.graphql_view.ERROR_CODES). This middleware covers what
runs before the schema executes — the API key look-up, a staff session — and every other view:
Django's `OperationalError` / `InterfaceError` (connection refused, connection lost) becomes HTTP
503 with a Retry-After header; on /graphql/ the body is a GraphQL-style error with that code. The
connection is dropped by Django at the end of the request (and checked at the start of the next,
CONN_HEALTH_CHECKS), so service resumes without a restart once the database is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

__all__ = ["DATABASE_RETRY_AFTER_SECONDS", "DatabaseUnavailableMiddleware", "database_unavailable_response"]

logger = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 5
_MESSAGE = "The database is unavailable; try again shortly."
_GRAPHQL_PATH = "/graphql"


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """HTTP 503 for a request the database could not serve: GraphQL-style JSON on /graphql/, else text."""
    if request.path.rstrip("/") == _GRAPHQL_PATH:
        response: HttpResponse = JsonResponse(
            {"errors": [{"message": _MESSAGE, "extensions": {"code": "UNAVAILABLE"}}]}, status=503
        )
    else:
        response = HttpResponse(_MESSAGE, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """Turn a database connection failure raised by a view into 503 UNAVAILABLE (logged once)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Pass the request on."""
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A 503 for OperationalError / InterfaceError; None (Django's handling) for anything else."""
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.error("database unavailable for %s %s: %s", request.method, request.path, exception)
        return database_unavailable_response(request)
