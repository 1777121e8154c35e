"""Fixtures shared by the recommendations tests: a private artifact store and a small demo shop."""

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from catalog.models import DatasetGroup
from recommendations.backends import aws


@pytest.fixture(autouse=True)
def isolated_artifacts(settings: Any, tmp_path: Path) -> None:
    """Artifacts in a temporary media root (model caches are cleared by the root conftest)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RECSITE_ARTIFACT_CACHE = tmp_path / "cache"


@pytest.fixture
def demo(default_group: DatasetGroup) -> DatasetGroup:
    """The small demo shop in the default group."""
    call_command("seed_demo", "--items", "200", "--users", "120", "--events", "4000", stdout=io.StringIO())
    return default_group


@pytest.fixture
def aws_sandbox(settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Fake AWS credentials, no shared config or instance metadata, us-east-1, AWS's own endpoints, no
    KMS key, and boto3 clients built afresh (only AWS is faked: Stubbers go on these clients)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTTESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings.AWS_REGION = "us-east-1"
    settings.PERSONALIZE_KMS_KEY_ARN = ""
    for setting in aws.ENDPOINT_SETTINGS.values():
        setattr(settings, setting, "")
    aws.clear_client_cache()
    yield
    aws.clear_client_cache()
