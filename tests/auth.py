"""Credentials for tests: API keys with scopes and test clients that send them.

Operations other than the public ones need an API key (recsite/graphql_access.py); tests that
exercise those operations call with a key of the scope they need instead of anonymously.
"""

from __future__ import annotations

from django.test import Client

from access.services import IssuedApiKey, api_key_create

__all__ = ["bearer", "issue_key", "manage_client", "scoped_client", "wrong_secret"]


def issue_key(*scopes: str, name: str = "test") -> IssuedApiKey:
    """A new API key with these scopes (default manage)."""
    return api_key_create(name=name, scopes=scopes or ("manage",))


def bearer(*scopes: str) -> dict[str, str]:
    """Client request headers (as META keys) carrying a new key with these scopes."""
    return {"HTTP_AUTHORIZATION": f"Bearer {issue_key(*scopes).token}"}


def scoped_client(*scopes: str, **defaults: object) -> Client:
    """A test client sending a new API key with these scopes on every request."""
    return Client(**bearer(*scopes), **defaults)


def manage_client() -> Client:
    """A test client sending a manage-scoped API key (every operation) on every request."""
    return scoped_client("manage")


def wrong_secret(secret: str) -> str:
    """The secret with its last character changed (to one it is not, whatever it was)."""
    return secret[:-1] + ("y" if secret.endswith("x") else "x")
