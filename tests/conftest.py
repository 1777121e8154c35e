"""Shared fixtures and the service markers.

Tests marked `postgres` or `broker` need real services, and those marked `browser` need Debian's
Chromium and ChromeDriver (`make browser-test` installs them). On a bare machine they skip;
with REQUIRE_SERVICES=1 (set by .ci/run) a missing service fails them instead.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from catalog.models import DatasetGroup
from catalog.selectors import dataset_group_get
from recsite.celery import app as celery_app

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _missing_service(marker: str) -> str | None:
    if marker == "postgres" and connection.vendor != "postgresql":
        return "needs PostgreSQL: set DATABASE_URL=postgres://..."
    if marker == "broker" and settings.CELERY_TASK_ALWAYS_EAGER:
        return "needs a Celery broker and worker: set CELERY_BROKER_URL"
    if marker == "browser" and not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        return f"needs {CHROMIUM} and {CHROMEDRIVER}: `make browser-test` installs them (apt)"
    return None


@pytest.fixture(autouse=True)
def _require_services(request: pytest.FixtureRequest) -> None:
    for marker in ("postgres", "broker", "browser"):
        if request.node.get_closest_marker(marker) is None:
            continue
        reason = _missing_service(marker)
        if reason and REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 but this test {reason}")
        if reason:
            pytest.skip(reason)


@pytest.fixture(autouse=True)
def _tasks_in_process_unless_broker(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run Celery tasks in-process in every test not marked `broker`, even with CELERY_BROKER_URL set."""
    if request.node.get_closest_marker("broker") is not None:
        yield
        return
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> None:
    """Forget per-process serving caches: primary keys are reused once a test's rows roll back."""
    from recommendations.filtering import filter_cache_clear
    from recommendations.row_cache import row_cache_clear
    from recommendations.selectors import model_cache_clear

    filter_cache_clear()
    model_cache_clear()
    row_cache_clear()


@pytest.fixture
def default_group(db: None) -> DatasetGroup:
    """The `default` dataset group."""
    return dataset_group_get()
