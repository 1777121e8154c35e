"""Signed user tokens: proof, from the deployment's own backend, that a browser speaks for one user.

When RECSITE_USER_TOKEN_SECRET is set, a public operation called without an API key that names a
`userId` must carry `X-Recsite-User-Token: <hex HMAC-SHA256 of the userId under that secret>`.
The shop's backend, which knows who is signed in, computes it when it renders the page (the
secret never reaches the browser), so a visitor cannot read or write another user's
recommendations by changing the id. The same idea as Intercom's identity verification.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings

__all__ = ["USER_TOKEN_HEADER", "user_token", "user_token_valid", "user_tokens_required"]

USER_TOKEN_HEADER = "X-Recsite-User-Token"


def user_tokens_required() -> bool:
    """Whether anonymous callers naming a userId must prove it (RECSITE_USER_TOKEN_SECRET is set)."""
    return bool(getattr(settings, "RECSITE_USER_TOKEN_SECRET", ""))


def user_token(user_id: str, secret: str | None = None) -> str:
    """The token of `user_id`: hex HMAC-SHA256 under `secret` (default RECSITE_USER_TOKEN_SECRET)."""
    key = (secret if secret is not None else settings.RECSITE_USER_TOKEN_SECRET).encode("utf-8")
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def user_token_valid(user_id: str, token: str | None) -> bool:
    """Whether `token` is `user_id`'s token, compared in constant time."""
    return bool(token) and hmac.compare_digest(user_token(user_id), str(token).strip().lower())
