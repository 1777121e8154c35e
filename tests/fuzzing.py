"""Hypothesis settings shared by the fuzz tests: a bounded example count, set from the environment.

Every fuzz test runs in CI twice (SQLite and PostgreSQL), so each has a small default number of
examples. `RECSITE_FUZZ_EXAMPLES=2000 make test PYTEST_ARGS="-k fuzz"` runs them all longer on
one machine; `RECSITE_FUZZ_EXAMPLES=0` keeps each test's own default.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["FUZZ_EXAMPLES_ENV", "fuzz_examples", "fuzz_settings"]

FUZZ_EXAMPLES_ENV = "RECSITE_FUZZ_EXAMPLES"


def fuzz_examples(default: int) -> int:
    """The example count for a fuzz test: `RECSITE_FUZZ_EXAMPLES` when set and positive, else `default`."""
    raw = os.environ.get(FUZZ_EXAMPLES_ENV, "").strip()
    try:
        chosen = int(raw) if raw else 0
    except ValueError:
        raise RuntimeError(f"{FUZZ_EXAMPLES_ENV} must be a whole number, got {raw!r}") from None
    return chosen if chosen > 0 else default


def fuzz_settings(default: int) -> settings:
    """Hypothesis settings for a fuzz test that touches the database or the request stack.

    No deadline (a database round trip is slow now and then on a busy machine), no example
    database (the suite runs with `-p no:cacheprovider` in a fresh clone), and no health check
    on slow generation or function-scoped fixtures (each example cleans up after itself).
    """
    return settings(
        max_examples=fuzz_examples(default),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
