"""Fixtures of the access tests: no request counted before each test, whatever ran before it."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    """Forget every rate-limit counter (they live in the cache, shared by the whole test process)."""
    cache.clear()
