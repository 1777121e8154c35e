"""The `/graphql/` endpoint: strawberry's Django view with a request guard and error codes.

Two things live here and nowhere else:

- `annotate_errors` gives every GraphQL error an `extensions.code` (the mapping from
  our exceptions to codes is `ERROR_CODES`) and hides unexpected exceptions' messages
  unless debug is on; the schema calls it for every error (recsite.schema).
- `RecsiteGraphQLView` never answers HTTP 500 to a malformed request: bodies that are
  not a JSON object with a string `query` get HTTP 400 and a GraphQL-style JSON error.
  Its GraphiQL page opens with the example documents of `docs/graphql-examples.graphql`.
  Before any parsing it decides who the caller is (access.authentication: a bad API key is
  a 401), counts the request against the caller's rate limit (429, RATE_LIMITED) and refuses
  bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (413). Which operations the caller may run is the
  schema's AccessControl extension (recsite/graphql_access.py).
"""

import json
import logging
import re
from functools import cache
from pathlib import Path
from typing import Any

from cross_web import HTTPException
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from graphql import GraphQLError
from strawberry.django.views import GraphQLView
from strawberry.http import GraphQLRequestData

from access.authentication import InvalidCredentialsError, anonymous_principal, principal_for_request
from access.rate_limits import RateLimitExceeded, rate_limit_principal
from catalog.errors import CatalogError, DatasetGroupNotFoundError
from recommendations.errors import (
    BackendUnavailableError,
    CampaignNotFoundError,
    FilterNotFoundError,
    PersonalizeAlreadyExistsError,
    PersonalizeError,
    PersonalizeInvalidInputError,
    PersonalizeNotFoundError,
    RecommendationError,
    SolutionNotFoundError,
)
from recommendations.serving import DefaultCampaignNotFoundError

__all__ = [
    "BAD_USER_INPUT",
    "ERROR_CODES",
    "FORBIDDEN",
    "INTERNAL_SERVER_ERROR",
    "NOT_FOUND",
    "RATE_LIMITED",
    "UNAUTHENTICATED",
    "UNAVAILABLE",
    "RecsiteGraphQLView",
    "annotate_errors",
    "error_code",
    "error_response",
    "graphiql_examples",
]

logger = logging.getLogger(__name__)

BAD_USER_INPUT = "BAD_USER_INPUT"
NOT_FOUND = "NOT_FOUND"
UNAUTHENTICATED = "UNAUTHENTICATED"  # no usable credentials for what was asked
FORBIDDEN = "FORBIDDEN"  # credentials without the scope
RATE_LIMITED = "RATE_LIMITED"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
UNAVAILABLE = "UNAVAILABLE"  # what cannot be served now: a backend that is unreachable or lacks the resource
UNEXPECTED_ERROR_MESSAGE = "Unexpected error."
DATABASE_UNAVAILABLE_MESSAGE = "The database is unavailable; try again shortly."

# Most specific first: the first class the original exception is an instance of wins.
ERROR_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (DatasetGroupNotFoundError, NOT_FOUND),
    (CatalogError, BAD_USER_INPUT),
    (ObjectDoesNotExist, NOT_FOUND),  # also EventTrackerNotFoundError
    (CampaignNotFoundError, NOT_FOUND),
    (DefaultCampaignNotFoundError, NOT_FOUND),
    (FilterNotFoundError, NOT_FOUND),
    (SolutionNotFoundError, NOT_FOUND),
    (BackendUnavailableError, UNAVAILABLE),
    (RecommendationError, BAD_USER_INPUT),
    # Amazon Personalize: its answer about the request, else it cannot serve (unreachable, quota, config).
    (PersonalizeNotFoundError, NOT_FOUND),
    (PersonalizeInvalidInputError, BAD_USER_INPUT),
    (PersonalizeAlreadyExistsError, BAD_USER_INPUT),
    (PersonalizeError, UNAVAILABLE),
    (PermissionDenied, FORBIDDEN),
    # The database refused or lost the connection (restarting, failing over): try again shortly.
    # The next request reconnects (CONN_HEALTH_CHECKS), so no restart is needed.
    (OperationalError, UNAVAILABLE),
    (InterfaceError, UNAVAILABLE),
)


def error_code(error: GraphQLError) -> str:
    """The `extensions.code` of a GraphQL error.

    A code set by whoever raised the error is kept. Errors without a path happened
    before any resolver ran (syntax, validation, variable coercion, limits): the
    request is at fault. Resolver errors are looked up in ERROR_CODES; anything else
    is an unexpected failure.
    """
    given = (error.extensions or {}).get("code")
    if isinstance(given, str):
        return given
    original = error.original_error
    if original is not None and not isinstance(original, GraphQLError):
        for exception_class, code in ERROR_CODES:
            if isinstance(original, exception_class):
                return code
    if error.path is None:
        return BAD_USER_INPUT
    if isinstance(original, GraphQLError):
        return error_code(original)
    return INTERNAL_SERVER_ERROR


def annotate_errors(errors: list[GraphQLError]) -> None:
    """Set `extensions.code` on each error; hide unexpected errors' messages unless DEBUG."""
    for error in errors:
        code = error_code(error)
        error.extensions = {**(error.extensions or {}), "code": code}
        if code == INTERNAL_SERVER_ERROR and not settings.DEBUG:
            error.message = UNEXPECTED_ERROR_MESSAGE
        elif isinstance(error.original_error, OperationalError | InterfaceError) and not settings.DEBUG:
            error.message = DATABASE_UNAVAILABLE_MESSAGE  # the driver's text names hosts and ports


def graphiql_examples() -> str:
    """The example documents GraphiQL opens with (empty when the file is missing)."""
    return _examples(str(Path(settings.BASE_DIR) / "docs" / "graphql-examples.graphql"))


@cache
def _examples(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def error_response(message: str, *, status: int = 400, code: str = BAD_USER_INPUT) -> JsonResponse:
    """A GraphQL-style JSON error body with an HTTP status."""
    return JsonResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status=status)


# NUL itself, or a GraphQL string escape of it inside the query text.
_NUL = re.compile(r"\x00|\\u(?:0000|\{0+\})")


def _holds_nul(value: object) -> bool:
    """Whether a decoded JSON value holds NUL in any string (PostgreSQL's text cannot store it)."""
    if isinstance(value, str):
        return _NUL.search(value) is not None
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _rate_limited(exceeded: RateLimitExceeded) -> JsonResponse:
    response = error_response(exceeded.message, status=429, code=RATE_LIMITED)
    response["Retry-After"] = str(exceeded.retry_after)
    return response


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def request_refusal(request: HttpRequest) -> JsonResponse | None:
    """The answer to a request refused before parsing: bad API key (401), rate limit (429), too big (413).

    A bad key counts against the client address's limit, so guessing keys is rate-limited too.
    """
    try:
        principal = principal_for_request(request)
    except InvalidCredentialsError as error:
        exceeded = rate_limit_principal(anonymous_principal(request))
        if exceeded is not None:
            return _rate_limited(exceeded)
        response = error_response(str(error), status=401, code=UNAUTHENTICATED)
        response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    exceeded = rate_limit_principal(principal)
    if exceeded is not None:
        return _rate_limited(exceeded)
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is not None and _content_length(request) > limit:
        return _too_large(limit)
    return None


def _too_large(limit: int) -> JsonResponse:
    return error_response(
        f"The request body is larger than {limit} bytes (RECSITE_MAX_REQUEST_BYTES).", status=413
    )


# CSRF: the middleware's check is off for this view: anonymous and API-key callers carry no cookie
# of ours to ride on. A staff session is the one credential a browser sends by itself, and
# access.authentication counts it only with a valid CSRF token on unsafe methods.
@method_decorator(csrf_exempt, name="dispatch")
class RecsiteGraphQLView(GraphQLView):
    """strawberry's Django view that answers malformed requests with HTTP 400, never 500.

    GraphiQL is served only when settings.DEBUG is on (decided per request).
    """

    def __init__(self, **kwargs: Any) -> None:
        """Build the view; GraphiQL follows settings.DEBUG unless given explicitly."""
        kwargs.setdefault("graphql_ide", "graphiql" if settings.DEBUG else None)
        super().__init__(**kwargs)

    @property
    def graphql_ide_html(self) -> str:
        """strawberry's GraphiQL page, opening with our example documents instead of its welcome text."""
        html = super().graphql_ide_html
        examples = graphiql_examples()
        if not examples:
            return html
        literal = json.dumps(examples).replace("</", "<\\/")  # a JS string that cannot end the script
        return html.replace("parameters.q || EXAMPLE_QUERY", f"parameters.q || {literal}", 1)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """Authenticate and rate-limit, run the request; turn HTTP-level refusals into JSON errors."""
        refusal = request_refusal(request)
        if refusal is not None:
            return refusal
        try:
            return self.run(request=request)
        except HTTPException as exception:
            response = error_response(str(exception.reason), status=exception.status_code)
            if exception.status_code == 405:
                response["Allow"] = "GET, POST"
            return response

    def decode_json(self, data: str | bytes) -> object:
        """Decode a JSON body or parameter: UTF-8, no NUL in any string. Raises HTTPException 400."""
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else data
            decoded = json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError) as exception:
            raise HTTPException(400, "Unable to parse request body as JSON (UTF-8)") from exception
        # Without a raw NUL or any `\u` in the text, no decoded string can hold NUL or its escape.
        if ("\x00" in text or "\\u" in text) and _holds_nul(decoded):
            raise HTTPException(400, "Strings may not contain the NUL character (U+0000)")
        return decoded

    def parse_http_body(self, request: Any) -> GraphQLRequestData:
        """Parse the request into one operation; anything but a JSON object with a query is a 400."""
        try:
            data = super().parse_http_body(request)
        except HTTPException:
            raise
        except RequestDataTooBig as exception:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            raise HTTPException(413, f"The request body is larger than {limit} bytes") from exception
        except Exception as exception:  # e.g. JSON that is not an object: any failure here is the body's
            logger.info("refused a malformed GraphQL request: %r", exception)
            raise HTTPException(400, "The request body must be a JSON object with a `query`") from exception
        if isinstance(data, list):
            raise HTTPException(400, "Batched requests are not supported")
        if not isinstance(data.query, str) or not data.query.strip():
            raise HTTPException(400, "No GraphQL query found in the request")
        if not isinstance(data.operation_name, (str, type(None))):
            raise HTTPException(400, "The GraphQL operation's `operationName` must be a string or null")
        return data
