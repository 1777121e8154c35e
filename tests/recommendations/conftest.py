"""Fixtures shared by the recommendations tests: a private artifact store and a small demo shop."""

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from catalog.models import DatasetGroup


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
