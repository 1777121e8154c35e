"""Writes of API keys: create (the secret is returned once, never stored in clear) and revoke."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from access.crypto import encrypt_secret, hash_secret, new_key_id, new_secret
from access.models import SCOPES, ApiKey

__all__ = ["ApiKeyError", "IssuedApiKey", "api_key_create", "api_key_revoke", "parse_scopes"]


class ApiKeyError(ValueError):
    """A refused API key operation (unknown scope, empty name, unknown key)."""


@dataclass(frozen=True)
class IssuedApiKey:
    """A new key and its secret, which exists only here: show it once."""

    api_key: ApiKey
    secret: str

    @property
    def token(self) -> str:
        """The Bearer token: `<key id>.<secret>`."""
        return f"{self.api_key.key_id}.{self.secret}"


def parse_scopes(scopes: Iterable[str] | str) -> list[str]:
    """Scope names from a list or a comma-separated string, checked and sorted; at least one."""
    names = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    cleaned = sorted({name.strip().lower() for name in names if name.strip()})
    unknown = [name for name in cleaned if name not in SCOPES]
    if unknown:
        raise ApiKeyError(f"unknown scope(s) {', '.join(unknown)}; the scopes are {', '.join(SCOPES)}")
    if not cleaned:
        raise ApiKeyError(f"give at least one scope of {', '.join(SCOPES)}")
    return cleaned


def api_key_create(*, name: str, scopes: Iterable[str] | str) -> IssuedApiKey:
    """Create an API key; the returned secret is the only clear copy there will ever be."""
    name = name.strip()
    if not name:
        raise ApiKeyError("an API key needs a name (what uses it)")
    if len(name) > ApiKey._meta.get_field("name").max_length:  # type: ignore[operator]
        raise ApiKeyError("an API key's name is at most 100 characters")
    secret = new_secret()
    api_key = ApiKey.objects.create(
        name=name,
        key_id=new_key_id(),
        secret_hash=hash_secret(secret),
        secret_encrypted=encrypt_secret(secret),
        scopes=",".join(parse_scopes(scopes)),
    )
    return IssuedApiKey(api_key=api_key, secret=secret)


@transaction.atomic
def api_key_revoke(*, key_id: str) -> ApiKey:
    """Revoke a key at once (every later request with it is refused); revoking twice keeps the first time."""
    api_key = ApiKey.objects.select_for_update().filter(key_id=key_id.strip()).first()
    if api_key is None:
        raise ApiKeyError(f"no API key has the id {key_id!r}")
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key
