"""The one place boto3 clients are built and AWS errors become domain errors (never at import time)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from django.conf import settings

from recommendations.errors import (
    PersonalizeAlreadyExistsError,
    PersonalizeConfigError,
    PersonalizeError,
    PersonalizeInvalidInputError,
    PersonalizeLimitExceededError,
    PersonalizeNotFoundError,
    PersonalizeRetryableError,
)

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "ENDPOINT_SETTINGS",
    "MAX_ATTEMPTS",
    "READ_TIMEOUT_SECONDS",
    "aws_call",
    "aws_errors",
    "aws_region",
    "clear_client_cache",
    "client_config",
    "domain_error",
    "get_client",
    "personalize_client",
    "personalize_events_client",
    "personalize_runtime_client",
    "s3_client",
    "s3_server_side_encryption",
]

# Attempts in total (first try included) in botocore's "standard" retry mode, and socket timeouts.
MAX_ATTEMPTS = 5
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0

# Service name → the setting holding its optional endpoint URL.
ENDPOINT_SETTINGS: dict[str, str] = {
    "personalize": "PERSONALIZE_ENDPOINT_URL",
    "personalize-runtime": "PERSONALIZE_RUNTIME_ENDPOINT_URL",
    "personalize-events": "PERSONALIZE_EVENTS_ENDPOINT_URL",
    "s3": "S3_ENDPOINT_URL",
}

_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerError",
        "InternalServerException",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "SlowDown",
    }
)
_ERROR_CLASSES: dict[str, type[PersonalizeError]] = {
    "ResourceNotFoundException": PersonalizeNotFoundError,
    "NoSuchKey": PersonalizeNotFoundError,
    "NoSuchBucket": PersonalizeNotFoundError,
    "InvalidInputException": PersonalizeInvalidInputError,
    "ValidationException": PersonalizeInvalidInputError,
    "LimitExceededException": PersonalizeLimitExceededError,
    "ResourceAlreadyExistsException": PersonalizeAlreadyExistsError,
}
_TRANSIENT_BOTOCORE_ERRORS = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)


def aws_region() -> str:
    """The AWS_REGION setting; PersonalizeConfigError naming the setting when it is empty."""
    region = (getattr(settings, "AWS_REGION", "") or "").strip()
    if not region:
        raise PersonalizeConfigError(
            "AWS_REGION", "is not set; the Personalize backend needs it (e.g. AWS_REGION=us-east-1)"
        )
    return region


def client_config() -> Config:
    """The botocore Config every client gets: standard retry mode, bounded connect/read timeouts."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )


@functools.lru_cache(maxsize=32)
def _cached_client(service: str, region: str, endpoint_url: str) -> Any:
    """One client per (service, region, endpoint) per process, from its own boto3 Session (thread-safe)."""
    session = boto3.session.Session()
    return session.client(
        service, region_name=region, endpoint_url=endpoint_url or None, config=client_config()
    )


def get_client(service: str) -> Any:
    """The cached boto3 client for `service` (one of ENDPOINT_SETTINGS), built from settings on first use."""
    if service not in ENDPOINT_SETTINGS:
        raise ValueError(f"unknown AWS service {service!r}; expected one of {sorted(ENDPOINT_SETTINGS)}")
    region = aws_region()
    endpoint_url = (getattr(settings, ENDPOINT_SETTINGS[service], "") or "").strip()
    try:
        return _cached_client(service, region, endpoint_url)
    except ValueError as error:  # botocore refuses a malformed endpoint URL with a ValueError
        raise PersonalizeConfigError(ENDPOINT_SETTINGS[service], str(error)) from error


def personalize_client() -> Any:
    """The boto3 `personalize` client (control plane: dataset groups, solutions, campaigns, filters)."""
    return get_client("personalize")


def personalize_runtime_client() -> Any:
    """The boto3 `personalize-runtime` client (GetRecommendations, GetPersonalizedRanking)."""
    return get_client("personalize-runtime")


def personalize_events_client() -> Any:
    """The boto3 `personalize-events` client (PutEvents, PutItems, PutUsers)."""
    return get_client("personalize-events")


def s3_client() -> Any:
    """The boto3 `s3` client (dataset exports, batch job input and output)."""
    return get_client("s3")


def clear_client_cache() -> None:
    """Forget every cached client (tests, or after settings change)."""
    _cached_client.cache_clear()


def s3_server_side_encryption() -> dict[str, str]:
    """put_object ExtraArgs: SSE-KMS with PERSONALIZE_KMS_KEY_ARN when it is set, else SSE-S3 (AES256)."""
    key = (getattr(settings, "PERSONALIZE_KMS_KEY_ARN", "") or "").strip()
    if key:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key}
    return {"ServerSideEncryption": "AES256"}


def domain_error(error: Exception, operation: str) -> PersonalizeError:
    """The domain error for a botocore exception raised by `operation` (code and message kept)."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {}) or {}
        code = str(details.get("Code", "") or "")
        message = str(details.get("Message", "") or "") or str(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        operation = error.operation_name or operation
        if code in _RETRYABLE_CODES or (isinstance(status, int) and status >= 500):
            error_class: type[PersonalizeError] = PersonalizeRetryableError
        else:
            error_class = _ERROR_CLASSES.get(code, PersonalizeError)
        return error_class(message, code=code, operation=operation, http_status=status)
    if isinstance(error, ParamValidationError):
        # The request does not match the service model: boto3 refused it before sending.
        return PersonalizeInvalidInputError(str(error), code="ParamValidationError", operation=operation)
    if isinstance(error, _TRANSIENT_BOTOCORE_ERRORS):
        return PersonalizeRetryableError(str(error), code=type(error).__name__, operation=operation)
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        config_error = PersonalizeConfigError(
            "AWS credentials", f"{error} (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or a role)"
        )
        config_error.operation = operation
        return config_error
    return PersonalizeError(str(error), code=type(error).__name__, operation=operation)


def _api_name(client: Any, operation: str) -> str:
    """`describe_campaign` → `DescribeCampaign` (the name AWS documents), as the client's model says."""
    mapping = getattr(getattr(client, "meta", None), "method_to_api_mapping", None) or {}
    return mapping.get(operation, operation)


@contextmanager
def aws_errors(operation: str) -> Iterator[None]:
    """Context manager turning botocore errors raised inside it into domain errors naming `operation`."""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise domain_error(error, operation) from error


def aws_call(client: Any, operation: str, **params: Any) -> dict[str, Any]:
    """Call `client.<operation>(**params)` (snake_case) and return its response; failures as domain errors."""
    method = getattr(client, operation, None)
    if method is None:
        raise ValueError(f"{type(client).__name__} has no operation {operation!r}")
    with aws_errors(_api_name(client, operation)):
        return method(**params)
