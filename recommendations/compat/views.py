"""Django views of the Personalize-compatible endpoint: one per operation, plus unknown operations.

Every view checks credentials first (so a refused caller learns nothing about names or
shapes), then reads the JSON body, calls its operation and answers JSON; every failure is
answered in Personalize's error shape, never as a Django error page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from recommendations.compat import events, runtime
from recommendations.compat.protocol import (
    UNKNOWN_OPERATION,
    CompatError,
    Fields,
    credentials_check,
    domain_error,
    error_response,
    json_response,
    read_body,
)

__all__ = [
    "get_personalized_ranking",
    "get_recommendations",
    "put_events",
    "put_items",
    "put_users",
    "unknown_operation",
]

Operation = Callable[[Fields], Mapping[str, Any]]


def operation_view(operation: Operation, name: str) -> Callable[[HttpRequest], HttpResponse]:
    """A CSRF-exempt POST view answering `operation` in Personalize's protocol."""

    @csrf_exempt
    def view(request: HttpRequest) -> HttpResponse:
        try:
            credentials_check(request, name)
            if request.method != "POST":
                raise CompatError(UNKNOWN_OPERATION, f"{name} takes POST, not {request.method}")
            return json_response(operation(read_body(request)))
        except Exception as error:  # every failure gets Personalize's error shape
            return error_response(domain_error(error))

    view.__name__ = view.__qualname__ = name
    view.__doc__ = operation.__doc__
    return view


get_recommendations = operation_view(runtime.get_recommendations, "GetRecommendations")
get_personalized_ranking = operation_view(runtime.get_personalized_ranking, "GetPersonalizedRanking")
put_events = operation_view(events.put_events, "PutEvents")
put_items = operation_view(events.put_items, "PutItems")
put_users = operation_view(events.put_users, "PutUsers")


@csrf_exempt
def unknown_operation(request: HttpRequest, path: str = "") -> HttpResponse:
    """Any other path under the prefix: UnknownOperationException (after the credentials check)."""
    try:
        credentials_check(request)
    except CompatError as error:
        return error_response(error)
    return error_response(
        CompatError(UNKNOWN_OPERATION, f"{request.method} /{path} is not an operation Recsite serves")
    )
