"""Who a request is: an API key (`Authorization: Bearer <key id>.<secret>`), a staff session, or anonymous.

`principal_for_request` decides once per request and remembers the answer on the request.
A Bearer header that does not name an active key is an error (InvalidCredentialsError), never a
silent fall back to anonymous. Other `Authorization` schemes (a proxy's Basic auth, SigV4 on the
compatible endpoint) are not ours and are ignored here. A staff session holds every scope, but
only with a valid CSRF token on unsafe methods: without it the request counts as anonymous, so a
page on another site cannot borrow an operator's login.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from access.crypto import KEY_ID_PREFIX, secret_matches
from access.models import SCOPES, ApiKey, expand_scopes

__all__ = [
    "ANONYMOUS_KIND",
    "API_KEY_KIND",
    "SESSION_KIND",
    "AuthenticatedKey",
    "InvalidCredentialsError",
    "Principal",
    "anonymous_principal",
    "api_key_authenticate",
    "client_ip",
    "principal_for_request",
]

ANONYMOUS_KIND = "anonymous"
API_KEY_KIND = "api_key"
SESSION_KIND = "session"
_KEY_ID_LENGTH = 20
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class InvalidCredentialsError(Exception):
    """Credentials were sent but name no active API key (unknown, wrong secret, revoked, malformed)."""


@dataclass(frozen=True)
class Principal:
    """The caller of one request: its kind, scopes, the bucket its rate limit counts in, and notes."""

    kind: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    rate_bucket: str = ""
    key_id: str = ""
    note: str = field(default="", compare=False)

    @property
    def is_anonymous(self) -> bool:
        """Whether the caller sent no usable credentials."""
        return self.kind == ANONYMOUS_KIND

    def has_scope(self, scope: str) -> bool:
        """Whether the caller holds `scope`."""
        return scope in self.scopes


def client_ip(request: HttpRequest) -> str:
    """The caller's address: REMOTE_ADDR, or the X-Forwarded-For entry RECSITE_TRUSTED_PROXY_COUNT hops back.

    With N trusted proxies in front, the last N entries of X-Forwarded-For were written by them;
    the one they received the request from is the N-th from the end. Entries further left are
    the client's own claims and are never trusted.
    """
    proxies: int = getattr(settings, "RECSITE_TRUSTED_PROXY_COUNT", 0)
    if proxies > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def anonymous_principal(request: HttpRequest | None, note: str = "") -> Principal:
    """An anonymous caller, rate-limited by its address."""
    address = client_ip(request) if request is not None else "local"
    return Principal(kind=ANONYMOUS_KIND, rate_bucket=f"ip:{address}", note=note)


@dataclass(frozen=True)
class AuthenticatedKey:
    """The parts of an active API key a request needs."""

    key_id: str
    scopes: frozenset[str]


_LOOKUP_SQL = ""
_touched: dict[str, float] = {}  # key id -> when this process last wrote its last_used_at (monotonic)


def _lookup_sql() -> str:
    global _LOOKUP_SQL
    if not _LOOKUP_SQL:
        table = connection.ops.quote_name(ApiKey._meta.db_table)
        _LOOKUP_SQL = f"SELECT secret_hash, scopes, revoked_at IS NULL FROM {table} WHERE key_id = %s"
    return _LOOKUP_SQL


def api_key_authenticate(*, token: str) -> AuthenticatedKey:
    """The active key a Bearer token names; raises InvalidCredentialsError otherwise.

    One indexed lookup by key id in plain SQL (the ORM's query building costs more than the
    query) and one SHA-256; each process writes a key's `last_used_at` at most once per
    RECSITE_API_KEY_TOUCH_SECONDS.
    """
    key_id, dot, secret = token.strip().partition(".")
    if not dot or not secret or len(key_id) != _KEY_ID_LENGTH or not key_id.startswith(KEY_ID_PREFIX):
        raise InvalidCredentialsError(
            "The API key is malformed: send `Authorization: Bearer <key id>.<secret>`."
        )
    with connection.cursor() as cursor:
        cursor.execute(_lookup_sql(), [key_id])
        row = cursor.fetchone()
    if row is None or not secret_matches(secret, row[0]):
        raise InvalidCredentialsError("The API key is not valid.")
    if not row[2]:
        raise InvalidCredentialsError("The API key has been revoked.")
    _touch(key_id)
    return AuthenticatedKey(key_id=key_id, scopes=expand_scopes(row[1].split(",")))


def _touch(key_id: str) -> None:
    now = time.monotonic()
    last = _touched.get(key_id)
    if last is not None and now - last < getattr(settings, "RECSITE_API_KEY_TOUCH_SECONDS", 60):
        return
    if len(_touched) > 10_000:
        _touched.clear()
    _touched[key_id] = now
    ApiKey.objects.filter(key_id=key_id).update(last_used_at=timezone.now())


class _CsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check, answering the reason of a refusal instead of a 403 page."""

    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def _csrf_refusal(request: HttpRequest) -> str | None:
    check = _CsrfCheck(lambda _request: None)  # type: ignore[arg-type, return-value]
    check.process_request(request)
    return check.process_view(request, None, (), {})  # type: ignore[arg-type, return-value]


def _session_principal(request: HttpRequest) -> Principal | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not (user.is_active and user.is_staff):
        return None
    if request.method not in _SAFE_METHODS:
        reason = _csrf_refusal(request)
        if reason is not None:
            return anonymous_principal(
                request,
                note=f"a signed-in session counts only with its CSRF token (X-CSRFToken header): {reason}",
            )
    return Principal(kind=SESSION_KIND, scopes=frozenset(SCOPES), rate_bucket=f"user:{user.pk}")


def principal_for_request(request: HttpRequest) -> Principal:
    """Who the request is (remembered on it); raises InvalidCredentialsError for a bad Bearer token."""
    remembered = getattr(request, "recsite_principal", None)
    if isinstance(remembered, Principal):
        return remembered
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        api_key = api_key_authenticate(token=credentials)
        principal = Principal(
            kind=API_KEY_KIND,
            scopes=api_key.scopes,
            rate_bucket=f"key:{api_key.key_id}",
            key_id=api_key.key_id,
        )
    else:
        principal = _session_principal(request) or anonymous_principal(request)
    request.recsite_principal = principal  # type: ignore[attr-defined]
    return principal
