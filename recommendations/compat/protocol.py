"""Amazon Personalize's JSON protocol (restJson1): request bodies, ARNs, credentials and error shapes.

Everything here is about the wire, nothing about recommendations: `read_body` turns any request
body into a JSON object or an `InvalidInputException`; `Fields` reads typed members from it with
the request path in every message; `error_response` answers in the shape boto3 parses into
`ClientError` (`x-amzn-ErrorType` header, `{"__type", "message"}` body); `domain_error` maps the
recommendations app's exceptions to Personalize's error codes. `credentials_check` verifies the
SigV4 signature boto3 puts on every request: the access key id names a Recsite API key
(access app) and the signature is recomputed with its secret by botocore's own signer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.utils.encoding import escape_uri_path

from access.authentication import anonymous_principal
from access.crypto import SecretUnreadableError, decrypt_secret
from access.models import MANAGE, RECOMMEND, TRACK, ApiKey
from access.rate_limits import rate_limit_hit, rate_limit_principal
from catalog.errors import CatalogError, DatasetGroupNotFoundError
from recommendations.errors import (
    CampaignNotFoundError,
    FilterNotFoundError,
    RecommendationError,
)

__all__ = [
    "ACCESS_DENIED",
    "INVALID_INPUT",
    "INVALID_SIGNATURE",
    "OPERATION_SCOPES",
    "RESOURCE_NOT_FOUND",
    "THROTTLING",
    "UNKNOWN_OPERATION",
    "UNRECOGNIZED_CLIENT",
    "CompatError",
    "Fields",
    "access_key_id",
    "credentials_check",
    "dataset_arn_group",
    "domain_error",
    "error_response",
    "filter_values",
    "invalid",
    "json_response",
    "read_body",
    "resource_name",
]

logger = logging.getLogger(__name__)

INVALID_INPUT = "InvalidInputException"
RESOURCE_NOT_FOUND = "ResourceNotFoundException"
UNRECOGNIZED_CLIENT = "UnrecognizedClientException"
UNKNOWN_OPERATION = "UnknownOperationException"
INVALID_SIGNATURE = "InvalidSignatureException"
ACCESS_DENIED = "AccessDeniedException"
THROTTLING = "ThrottlingException"
INTERNAL_FAILURE = "InternalFailure"
STATUS = {
    INVALID_INPUT: 400,
    RESOURCE_NOT_FOUND: 404,
    UNRECOGNIZED_CLIENT: 403,
    INVALID_SIGNATURE: 403,
    ACCESS_DENIED: 403,
    THROTTLING: 400,
    UNKNOWN_OPERATION: 404,
}
# The API key scope each operation needs (keys with `manage` hold them all).
OPERATION_SCOPES: Mapping[str, str] = {
    "GetRecommendations": RECOMMEND,
    "GetPersonalizedRanking": RECOMMEND,
    "PutEvents": TRACK,
    "PutItems": MANAGE,
    "PutUsers": MANAGE,
}
_SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<key_id>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/"
    r"(?P<service>[^/,\s]+)/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9;\-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_INVALID_TOKEN = "The security token included in the request is invalid."
MAX_CLOCK_SKEW = timedelta(minutes=15)  # as AWS: a signature older or newer than this is refused

ARN = re.compile(r"^arn:[a-z\d-]+:personalize:[^:]*:[^:]*:(?P<kind>[a-z-]+)/(?P<name>.+)$")
FILTER_VALUE_NAME = re.compile(r"^[A-Za-z0-9_]{1,50}$")
MAX_FILTER_VALUE_LENGTH = 1000
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


class CompatError(Exception):
    """A request refused with one of Personalize's error codes; the message is shown to the caller."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS.get(code, 400)


def invalid(message: str) -> CompatError:
    """An InvalidInputException (HTTP 400)."""
    return CompatError(INVALID_INPUT, message)


# --- responses -----------------------------------------------------------------------------------


def _request_id_headers(response: HttpResponse) -> HttpResponse:
    response["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


def json_response(payload: Mapping[str, Any]) -> HttpResponse:
    """A 200 answer with a JSON body."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return _request_id_headers(HttpResponse(body, content_type="application/json"))


def error_response(error: CompatError) -> HttpResponse:
    """Personalize's error shape: boto3 raises ClientError with `error.code` as Error.Code."""
    body = json.dumps({"__type": error.code, "message": error.message}, ensure_ascii=False)
    response = HttpResponse(body, status=error.status, content_type="application/x-amz-json-1.1")
    response["x-amzn-ErrorType"] = error.code
    return _request_id_headers(response)


def domain_error(error: Exception) -> CompatError:
    """Personalize's code for an exception of our services (unknown ones are an internal failure)."""
    if isinstance(error, CompatError):
        return error
    not_found = (CampaignNotFoundError, FilterNotFoundError, DatasetGroupNotFoundError, ObjectDoesNotExist)
    if isinstance(error, not_found):  # ObjectDoesNotExist covers EventTrackerNotFoundError
        return CompatError(RESOURCE_NOT_FOUND, str(error))
    if isinstance(error, RecommendationError | CatalogError):
        return invalid(str(error))
    logger.exception("Personalize-compatible endpoint: unexpected error", exc_info=error)
    return CompatError(INTERNAL_FAILURE, "An internal error occurred.", status=500)


# --- credentials ---------------------------------------------------------------------------------


def access_key_id(request: HttpRequest) -> str | None:
    """The access key id of a SigV4 `Authorization` header, or None when the request is unsigned."""
    match = _CREDENTIAL.search(request.headers.get("Authorization", ""))
    return match.group(1) if match else None


def credentials_check(request: HttpRequest, operation: str | None = None) -> None:
    """Accept the request's SigV4 signature, the key's scope for `operation` and its rate limit, or raise.

    UnrecognizedClientException (403): unsigned, or the access key id names no active API key;
    InvalidSignatureException (403): the signature does not match, or is over 15 minutes off;
    AccessDeniedException (403): the key lacks the operation's scope; ThrottlingException (400):
    the key's rate limit. With RECSITE_COMPAT_ACCEPT_ANY_CREDENTIALS (default: DEBUG) any
    credentials, or none, are accepted unchecked, and the client address is rate-limited.
    """
    if getattr(settings, "RECSITE_COMPAT_ACCEPT_ANY_CREDENTIALS", False):
        _throttle(rate_limit_principal(anonymous_principal(request)))
        return
    api_key = signature_check(request)
    scope = OPERATION_SCOPES.get(operation or "")
    if scope is not None and scope not in api_key.scope_set:
        raise CompatError(
            ACCESS_DENIED, f"The API key {api_key.key_id} lacks the `{scope}` scope {operation} needs."
        )
    _throttle(
        rate_limit_hit(
            bucket=f"key:{api_key.key_id}",
            limit=settings.RECSITE_RATE_LIMIT_PER_KEY,
            window_seconds=settings.RECSITE_RATE_LIMIT_WINDOW_SECONDS,
            subject="this API key",
        )
    )


def _throttle(exceeded: Any) -> None:
    if exceeded is not None:
        raise CompatError(THROTTLING, f"Rate exceeded. {exceeded.message}")


def signature_check(request: HttpRequest) -> ApiKey:
    """The active API key whose secret signed this request (SigV4, recomputed with botocore's signer)."""
    match = _SIGV4.match(request.headers.get("Authorization", "").strip())
    if match is None:
        raise CompatError(
            UNRECOGNIZED_CLIENT, "The request is not signed with AWS Signature Version 4 (an API key)."
        )
    api_key = ApiKey.objects.filter(key_id=match["key_id"], revoked_at__isnull=True).first()
    if api_key is None:
        raise CompatError(UNRECOGNIZED_CLIENT, _INVALID_TOKEN)
    signed = match["headers"].split(";")
    amz_date = request.headers.get("X-Amz-Date", "")
    try:
        signed_at = datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise CompatError(INVALID_SIGNATURE, "X-Amz-Date is missing or malformed.") from None
    if "host" not in signed or "x-amz-date" not in signed or not amz_date.startswith(match["date"]):
        raise CompatError(INVALID_SIGNATURE, "The signature must cover the host and x-amz-date headers.")
    if abs(datetime.now(UTC) - signed_at) > MAX_CLOCK_SKEW:
        raise CompatError(INVALID_SIGNATURE, "Signature expired: the request time is over 15 minutes off.")
    try:
        secret = decrypt_secret(api_key.secret_encrypted)
    except SecretUnreadableError:
        logger.error("API key %s was encrypted under another SECRET_KEY; create a new key", api_key.key_id)
        raise CompatError(UNRECOGNIZED_CLIENT, _INVALID_TOKEN) from None
    expected = _signature(request, signed, amz_date, match, secret)
    if expected is None or not hmac.compare_digest(expected, match["signature"]):
        raise CompatError(
            INVALID_SIGNATURE,
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return api_key


class _SignedHeaders(SigV4Auth):
    """botocore's SigV4 signer over exactly the headers the client signed (verification, not signing)."""

    def __init__(self, credentials: Credentials, service: str, region: str, signed: list[str]) -> None:
        super().__init__(credentials, service, region)
        self.signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        """The signed headers, with the values received."""
        headers = HTTPHeaders()
        for name in self.signed:
            headers[name] = request.headers[name]
        return headers


def _signature(
    request: HttpRequest, signed: list[str], amz_date: str, match: re.Match[str], secret: str
) -> str | None:
    """The signature of the received request under `secret`; None when a signed header is absent."""
    headers = {}
    for name in signed:
        value = request.headers.get(name)
        if value is None:
            return None
        headers[name] = value
    try:
        body = request.body
    except RequestDataTooBig:
        raise invalid(
            f"the request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"
        ) from None
    declared_hash = headers.get("x-amz-content-sha256")
    if declared_hash is not None and declared_hash != hashlib.sha256(body).hexdigest():
        return None  # the signature would cover a hash, not this body
    query = request.META.get("QUERY_STRING", "")
    url = f"https://{headers['host']}{escape_uri_path(request.path)}" + (f"?{query}" if query else "")
    received = AWSRequest(method=request.method, url=url, headers=headers, data=body)
    received.context["timestamp"] = amz_date
    signer = _SignedHeaders(Credentials(match["key_id"], secret), match["service"], match["region"], signed)
    canonical = signer.canonical_request(received)
    return signer.signature(signer.string_to_sign(received, canonical), received)


# --- request bodies ------------------------------------------------------------------------------


def read_body(request: HttpRequest) -> Fields:
    """The request's JSON object; anything else (too big, not UTF-8, not JSON, not an object) is refused."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise invalid(
            f"the request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"
        ) from None
    if not raw.strip():
        return Fields({}, "")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("the request body is not UTF-8") from None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise invalid("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    if "\\u0000" in text:  # no Personalize field holds one, and PostgreSQL text cannot store it
        raise invalid("the request body holds a NUL character (\\u0000)")
    return Fields(body, "")


@dataclass(frozen=True)
class Fields:
    """Typed reads of a JSON object's members; a wrong type names the member's path."""

    data: Mapping[str, Any]
    path: str

    def where(self, name: str) -> str:
        """The member's path in the request, e.g. `promotions[0].filterArn`."""
        return f"{self.path}.{name}" if self.path else name

    def _get(self, name: str, required: bool) -> Any:
        value = self.data.get(name)
        if value is None and required:
            raise invalid(f"{self.where(name)} is required")
        return value

    def string(self, name: str, *, required: bool = False, max_length: int = 256) -> str | None:
        """A string member of 1 to `max_length` characters."""
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid(f"{self.where(name)} must be a string")
        if not 1 <= len(value) <= max_length:
            raise invalid(f"{self.where(name)} must be 1 to {max_length} characters long")
        return value

    def integer(self, name: str, *, required: bool = False) -> int | None:
        """A whole-number member."""
        value = self._get(name, required)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(f"{self.where(name)} must be an integer")
        return value

    def number(self, name: str, *, required: bool = False) -> float | None:
        """A numeric member (the service checks its range)."""
        value = self._get(name, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(f"{self.where(name)} must be a number")
        return float(value)

    def strings(self, name: str, *, required: bool = False, max_items: int | None = None) -> list[str] | None:
        """A list of strings."""
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise invalid(f"{self.where(name)} must be a list of strings")
        if max_items is not None and len(value) > max_items:
            raise invalid(f"{self.where(name)} may hold at most {max_items} entries, got {len(value)}")
        return value

    def string_map(self, name: str) -> dict[str, str] | None:
        """An object whose values are all strings."""
        value = self._get(name, False)
        if value is None:
            return None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise invalid(f"{self.where(name)} must be an object of string values")
        return value

    def objects(self, name: str, *, required: bool = False, max_items: int | None = None) -> list[Fields]:
        """A list of objects, each readable as Fields."""
        value = self._get(name, required)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise invalid(f"{self.where(name)} must be a list of objects")
        if max_items is not None and len(value) > max_items:
            raise invalid(f"{self.where(name)} may hold at most {max_items} entries, got {len(value)}")
        return [Fields(item, f"{self.where(name)}[{n}]") for n, item in enumerate(value)]

    def object(self, name: str) -> Fields | None:
        """A nested object."""
        value = self._get(name, False)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise invalid(f"{self.where(name)} must be an object")
        return Fields(value, self.where(name))

    def json_text(self, name: str, *, max_length: int) -> str | dict[str, Any] | None:
        """A JSON-object member sent as text (boto3's `properties`) or, leniently, as an object."""
        value = self._get(name, False)
        if value is None or isinstance(value, dict):
            return value
        if not isinstance(value, str):
            raise invalid(f"{self.where(name)} must be a string holding a JSON object")
        if not 1 <= len(value) <= max_length:
            raise invalid(f"{self.where(name)} must be 1 to {max_length} characters long")
        return value


# --- ARNs and filter values ----------------------------------------------------------------------


def resource_name(arn: str, kind: str, member: str) -> str:
    """The Recsite name in `arn:aws:personalize:<region>:<account>:<kind>/<name>`."""
    match = ARN.match(arn)
    if match is None or match.group("kind") != kind or "/" in match.group("name"):
        raise invalid(
            f"{member} {arn!r} is not a {kind} ARN (arn:aws:personalize:<region>:<account>:{kind}/<name>)"
        )
    return match.group("name")


def dataset_arn_group(arn: str, dataset_type: str, member: str = "datasetArn") -> str:
    """The dataset group name in `arn:aws:personalize:<region>:<account>:dataset/<group>/<ITEMS|USERS>`."""
    match = ARN.match(arn)
    group, _, kind = match.group("name").rpartition("/") if match else ("", "", "")
    if match is None or match.group("kind") != "dataset" or not group or "/" in group:
        raise invalid(
            f"{member} {arn!r} is not a dataset ARN "
            f"(arn:aws:personalize:<region>:<account>:dataset/<dataset group>/{dataset_type})"
        )
    if kind.upper() != dataset_type:
        raise invalid(f"{member} names the {kind} dataset; this operation writes the {dataset_type} dataset")
    return group


def _filter_value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(value)
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def filter_values(raw: Mapping[str, str] | None, member: str = "filterValues") -> dict[str, list[str]] | None:
    """Personalize's JSON-quoted form, `{"GENRE": "\\"Comedy\\",\\"Drama\\""}`, as `{"GENRE": [...]}`."""
    if not raw:
        return None
    parsed: dict[str, list[str]] = {}
    for name, text in raw.items():
        if not FILTER_VALUE_NAME.match(name):
            raise invalid(f"{member} key {name!r} must be 1 to 50 letters, digits or _")
        if len(text) > MAX_FILTER_VALUE_LENGTH:
            raise invalid(f"{member}[{name!r}] may be at most {MAX_FILTER_VALUE_LENGTH} characters long")
        try:
            values = json.loads(f"[{text}]")
            parsed[name] = [_filter_value_text(value) for value in values]
        except (ValueError, RecursionError):
            raise invalid(
                f"{member}[{name!r}] must be JSON-quoted values separated by commas, "
                f'e.g. "\\"Comedy\\",\\"Drama\\""'
            ) from None
        if not parsed[name]:
            raise invalid(f"{member}[{name!r}] holds no value")
    return parsed
