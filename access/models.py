"""API keys: a public key id, a hashed secret (Bearer checks), the same secret encrypted (SigV4), scopes."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models

__all__ = ["MANAGE", "RECOMMEND", "SCOPES", "SCOPE_DESCRIPTIONS", "TRACK", "ApiKey", "expand_scopes"]

RECOMMEND = "recommend"
TRACK = "track"
MANAGE = "manage"
SCOPES: tuple[str, ...] = (RECOMMEND, TRACK, MANAGE)
SCOPE_DESCRIPTIONS = {
    RECOMMEND: "recommend: read recommendations (recommendations, relatedItems, personalizedRanking)",
    TRACK: "track: record events (putEvents)",
    MANAGE: "manage: everything else (catalog, filters, solutions, campaigns, segments); includes the others",
}


class ApiKey(models.Model):
    """A server-to-server credential: `Authorization: Bearer <key id>.<secret>`, or SigV4 with the pair.

    The secret is never stored in clear: `secret_hash` (SHA-256; the secret is 240 random bits,
    so a fast hash is the right one) checks Bearer tokens, and `secret_encrypted` (Fernet, with a
    key derived from SECRET_KEY) lets the Personalize-compatible endpoint recompute SigV4
    signatures, which need the secret itself.
    """

    name = models.CharField(max_length=100, help_text="What uses this key, e.g. shop-backend.")
    key_id = models.CharField(
        "key id", max_length=20, unique=True, editable=False, help_text="Public; the SigV4 access key id."
    )
    secret_hash = models.CharField(max_length=64, editable=False)
    secret_encrypted = models.TextField(editable=False)
    scopes = models.CharField(
        max_length=64, help_text="Comma-separated: recommend, track, manage (manage includes the others)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.name} ({self.key_id})"

    @property
    def scope_set(self) -> frozenset[str]:
        """The scopes this key holds, `manage` expanded to all."""
        return expand_scopes(self.scopes.split(","))

    @property
    def is_active(self) -> bool:
        """Whether the key is not revoked."""
        return self.revoked_at is None


def expand_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The given scope names, `manage` implying `recommend` and `track`."""
    names = frozenset(scope.strip() for scope in scopes if scope.strip())
    return frozenset(SCOPES) if MANAGE in names else names
