"""Fixed-window rate limits counted in Django's cache (Redis in production, so all processes share them).

One `incr` per request (an `add` opens each window); on Redis one pipelined INCR + EXPIRE. If the
cache cannot be reached the request is let through and a warning logged: the limit protects
capacity, it is not worth an outage.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisCache

from access.authentication import Principal

__all__ = ["RateLimitExceeded", "rate_limit_hit", "rate_limit_principal"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateLimitExceeded:
    """A refused request: the limit it exceeded and how long until the window ends."""

    limit: int
    window_seconds: int
    retry_after: int
    subject: str

    @property
    def message(self) -> str:
        """What the caller is told."""
        return (
            f"Rate limit exceeded: at most {self.limit} requests per {self.window_seconds} seconds "
            f"for {self.subject}; retry after {self.retry_after} seconds."
        )


def rate_limit_hit(*, bucket: str, limit: int, window_seconds: int, subject: str) -> RateLimitExceeded | None:
    """Count one request in `bucket`; the refusal when it is over `limit` this window (limit 0: no limit)."""
    if limit <= 0 or window_seconds <= 0:
        return None
    now = time.time()
    window = int(now // window_seconds)
    key = f"recsite:ratelimit:{bucket}:{window}"
    cache = caches[getattr(settings, "RECSITE_RATE_LIMIT_CACHE", "default")]
    try:
        count = _count(cache, key, window_seconds + 1)
    except Exception as error:  # the cache is down: serve rather than refuse everyone
        logger.warning("rate limiting skipped, the cache failed: %r", error)
        return None
    if count <= limit:
        return None
    retry_after = max(1, math.ceil((window + 1) * window_seconds - now))
    return RateLimitExceeded(
        limit=limit, window_seconds=window_seconds, retry_after=retry_after, subject=subject
    )


def _redis_client(cache: RedisCache) -> Any:
    """The cache's write client, kept on it: Django builds a new client object on every call (0.06 ms)."""
    backend = cache._cache
    client = getattr(backend, "recsite_write_client", None)
    if client is None:
        client = backend.get_client(write=True)  # writes always go to the first server
        backend.recsite_write_client = client
    return client


def _count(cache: BaseCache, key: str, timeout: int) -> int:
    """Add one to the counter under `key` (created with `timeout`); its new value."""
    if isinstance(cache, RedisCache):  # one round trip: INCR and EXPIRE pipelined (Django's incr makes two)
        full_key = cache.make_and_validate_key(key)
        pipeline = _redis_client(cache).pipeline(transaction=False)
        pipeline.incr(full_key)
        pipeline.expire(full_key, timeout)
        return int(pipeline.execute()[0])
    try:
        return cache.incr(key)
    except ValueError:  # first request of the window
        return 1 if cache.add(key, 1, timeout=timeout) else cache.incr(key)


def rate_limit_principal(principal: Principal) -> RateLimitExceeded | None:
    """Count a request of this caller: per API key or staff user, else per client address."""
    window: int = settings.RECSITE_RATE_LIMIT_WINDOW_SECONDS
    if principal.is_anonymous:
        return rate_limit_hit(
            bucket=principal.rate_bucket,
            limit=settings.RECSITE_RATE_LIMIT_PER_IP,
            window_seconds=window,
            subject="this client address",
        )
    return rate_limit_hit(
        bucket=principal.rate_bucket,
        limit=settings.RECSITE_RATE_LIMIT_PER_KEY,
        window_seconds=window,
        subject="this API key" if principal.key_id else "this user",
    )
