"""Settings come from the environment with safe defaults (each case in a fresh interpreter)."""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Variables the settings read; every test starts without them.
SETTINGS_VARIABLES = (
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "DJANGO_SETTINGS_MODULE",
    "RECSITE_DB_PREPARED_STATEMENTS",
)

PROBE = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
from django.conf import settings
from recsite.celery import app
db = settings.DATABASES["default"]
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "ENGINE": db["ENGINE"],
    "NAME": str(db["NAME"]),
    "HOST": db.get("HOST", ""),
    "OPTIONS": db.get("OPTIONS", {}),
    "CELERY_TASK_ALWAYS_EAGER": settings.CELERY_TASK_ALWAYS_EAGER,
    "app_always_eager": app.conf.task_always_eager,
    "app_broker_url": app.conf.broker_url,
}))
"""


@functools.cache
def _run_settings_cached(variables: frozenset[tuple[str, str]]) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS_VARIABLES}
    env.update(variables)
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _run_settings(**variables: str) -> subprocess.CompletedProcess[str]:
    """Load the settings in a new interpreter with only these settings variables set."""
    return _run_settings_cached(frozenset(variables.items()))


def _settings(**variables: str) -> dict[str, Any]:
    result = _run_settings(**variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_debug_is_off_unless_django_debug_is_set() -> None:
    # given a secret key and no DJANGO_DEBUG
    # when the settings load
    loaded = _settings(DJANGO_SECRET_KEY="k")
    # then debug is off and no host is allowed by default
    assert loaded["DEBUG"] is False
    assert loaded["ALLOWED_HOSTS"] == []


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("0", False), ("false", False)])
def test_django_debug_switches_debug(value: str, expected: bool) -> None:
    # given DJANGO_DEBUG set to a true or false word
    # when the settings load
    loaded = _settings(DJANGO_SECRET_KEY="k", DJANGO_DEBUG=value)
    # then debug follows it
    assert loaded["DEBUG"] is expected


def test_debug_needs_no_secret_key_and_allows_local_hosts() -> None:
    # given debug on and no secret key
    # when the settings load
    loaded = _settings(DJANGO_DEBUG="1")
    # then they load, serving the local host names
    assert loaded["DEBUG"] is True
    assert set(loaded["ALLOWED_HOSTS"]) == {"localhost", "127.0.0.1", "testserver"}


def test_without_debug_a_missing_secret_key_is_refused_by_name() -> None:
    # given debug off and no DJANGO_SECRET_KEY
    # when the settings are imported
    result = _run_settings()
    # then the import fails, naming the variable to set
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_sqlite_file_in_the_project_root_by_default() -> None:
    # given no DATABASE_URL
    # when the settings load
    loaded = _settings(DJANGO_SECRET_KEY="k")
    # then the database is db.sqlite3 beside manage.py
    assert loaded["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(loaded["NAME"]) == PROJECT_ROOT / "db.sqlite3"


def test_database_url_selects_the_engine() -> None:
    # given a PostgreSQL DATABASE_URL
    # when the settings load
    loaded = _settings(DJANGO_SECRET_KEY="k", DATABASE_URL="postgres://someone@db.example:5433/shop")
    # then Django uses PostgreSQL with that database
    assert loaded["ENGINE"] == "django.db.backends.postgresql"
    assert loaded["NAME"] == "shop"
    assert loaded["HOST"] == "db.example"


def test_postgresql_prepares_statements_unless_switched_off() -> None:
    # given a PostgreSQL DATABASE_URL, with and without RECSITE_DB_PREPARED_STATEMENTS=0
    url = "postgres://someone@db.example:5433/shop"
    # when the settings load
    default = _settings(DJANGO_SECRET_KEY="k", DATABASE_URL=url)["OPTIONS"]
    off = _settings(DJANGO_SECRET_KEY="k", DATABASE_URL=url, RECSITE_DB_PREPARED_STATEMENTS="0")["OPTIONS"]
    # then parameters are bound by the server and statements prepared after 5 uses, unless switched off
    assert default == {"server_side_binding": True, "prepare_threshold": 5}
    assert "server_side_binding" not in off and "prepare_threshold" not in off


def test_without_a_broker_tasks_run_in_process() -> None:
    # given no CELERY_BROKER_URL
    # when the settings and the Celery app load
    loaded = _settings(DJANGO_SECRET_KEY="k")
    # then tasks run eagerly, with Celery's in-memory transport standing in for a broker
    assert loaded["CELERY_TASK_ALWAYS_EAGER"] is True
    assert loaded["app_always_eager"] is True
    assert loaded["app_broker_url"].startswith("memory://")


def test_with_a_broker_tasks_go_to_the_broker() -> None:
    # given a CELERY_BROKER_URL
    # when the settings and the Celery app load
    loaded = _settings(DJANGO_SECRET_KEY="k", CELERY_BROKER_URL="redis://127.0.0.1:6379/9")
    # then tasks are sent to that broker instead of running eagerly
    assert loaded["CELERY_TASK_ALWAYS_EAGER"] is False
    assert loaded["app_always_eager"] is False
    assert loaded["app_broker_url"] == "redis://127.0.0.1:6379/9"
