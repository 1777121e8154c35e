"""The primitives of API keys: random ids and secrets, SHA-256 hashes, Fernet encryption under SECRET_KEY.

No Django models here. The encryption key is derived from SECRET_KEY with HKDF (a purpose
label keeps it distinct from every other use of the secret key); SECRET_KEY_FALLBACKS still
decrypt, so rotating the secret key keeps existing API keys working (re-save them to move them
to the new key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

__all__ = [
    "KEY_ID_PREFIX",
    "SecretUnreadableError",
    "decrypt_secret",
    "encrypt_secret",
    "hash_secret",
    "new_key_id",
    "new_secret",
    "secret_matches",
]

KEY_ID_PREFIX = "RSK"
_KEY_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_PURPOSE = b"recsite.access.api-key-secret"


class SecretUnreadableError(Exception):
    """An encrypted secret that no current or fallback SECRET_KEY decrypts."""


def new_key_id() -> str:
    """A public key id shaped like an AWS access key id: `RSK` + 17 base32 characters (85 random bits)."""
    return KEY_ID_PREFIX + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(17))


def new_secret() -> str:
    """A secret of 240 random bits, 40 URL-safe characters (no `.`, which separates it in tokens)."""
    return secrets.token_urlsafe(30)


def hash_secret(secret: str) -> str:
    """The stored form of a secret (hex SHA-256)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Whether `secret` hashes to `stored_hash`, compared in constant time."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


@lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(
        secret_key.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _multi_fernet() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
    return MultiFernet([_fernet(key) for key in keys])


def encrypt_secret(secret: str) -> str:
    """The secret encrypted (Fernet: AES-128-CBC + HMAC-SHA256) under the current SECRET_KEY."""
    return _fernet(settings.SECRET_KEY).encrypt(secret.encode("utf-8")).decode("ascii")


def decrypt_secret(token: str) -> str:
    """The secret back; raises SecretUnreadableError when no current or fallback SECRET_KEY opens it."""
    try:
        return _multi_fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError) as error:
        raise SecretUnreadableError("the API key's secret was encrypted under another SECRET_KEY") from error
