"""`manage.py check --deploy` is clean with production settings: only the environment a deployment sets."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


def production_env(**overrides: str) -> dict[str, str]:
    """The machine's environment without any Django/Recsite setting, plus what production sets."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "RECSITE_", "CACHE_URL", "CELERY_", "DATABASE_URL"))
    }
    env.update(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="recs.example.com",
        DATABASE_URL="sqlite:///:memory:",
    )
    env.update(overrides)
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_with_production_settings() -> None:
    # Given only a secret key and the allowed hosts (debug off by default)
    result = check_deploy(production_env())
    # Then Django's deployment checks find nothing: HTTPS redirect, HSTS, secure cookies, no debug
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_catches_an_insecure_setting() -> None:
    # Given production settings with secure cookies turned off, then the check fails naming it
    result = check_deploy(production_env(DJANGO_SESSION_COOKIE_SECURE="0"))
    assert result.returncode != 0
    assert "SESSION_COOKIE_SECURE" in result.stdout + result.stderr


PROBE = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
from django.conf import settings as s
print(json.dumps({name: getattr(s, name) for name in (
    "RECSITE_RATE_LIMIT_PER_IP", "RECSITE_RATE_LIMIT_PER_KEY", "RECSITE_PUBLIC_OPERATIONS",
    "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
    "DATA_UPLOAD_MAX_MEMORY_SIZE",
    "RECSITE_COMPAT_ACCEPT_ANY_CREDENTIALS", "CORS_ALLOW_CREDENTIALS")}))
print(s.CACHES["default"]["BACKEND"])
"""


def probe(env: dict[str, str]) -> tuple[dict[str, object], str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    values, backend = result.stdout.strip().splitlines()[-2:]
    return json.loads(values), backend


def test_production_defaults_limit_and_protect() -> None:
    # Given only what production must set, then the limits and protections are on
    values, backend = probe(production_env())
    assert values == {
        "RECSITE_RATE_LIMIT_PER_IP": 600,
        "RECSITE_RATE_LIMIT_PER_KEY": 6000,
        "RECSITE_PUBLIC_OPERATIONS": ["recommendations", "relatedItems", "personalizedRanking", "putEvents"],
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "DATA_UPLOAD_MAX_MEMORY_SIZE": 1_048_576,
        "RECSITE_COMPAT_ACCEPT_ANY_CREDENTIALS": False,
        "CORS_ALLOW_CREDENTIALS": False,
    }
    assert backend.endswith("LocMemCache")
    # and CACHE_URL puts the counters in Redis
    _, redis_backend = probe(production_env(CACHE_URL="redis://127.0.0.1:6379/1"))
    assert redis_backend.endswith("RedisCache")
