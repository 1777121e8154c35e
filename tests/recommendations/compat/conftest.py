"""Fixtures of the Personalize-compatible endpoint tests: real boto3 clients against a live server."""

import gc
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config

from catalog.models import DatasetGroup
from recommendations import services
from recommendations.models import Campaign, Solution
from recommendations.reasons import label_cache_clear

PREFIX = "/personalize"
ARN_PREFIX = "arn:aws:personalize:eu-west-1:123456789012"


def campaign_arn(name: str) -> str:
    """A campaign ARN as an app written for Amazon Personalize holds it (any region and account)."""
    return f"{ARN_PREFIX}:campaign/{name}"


def filter_arn(name: str) -> str:
    """A filter ARN (any region and account)."""
    return f"{ARN_PREFIX}:filter/{name}"


def dataset_arn(group: str, dataset_type: str) -> str:
    """A dataset ARN: `dataset/<dataset group>/<ITEMS|USERS|INTERACTIONS>`."""
    return f"{ARN_PREFIX}:dataset/{group}/{dataset_type}"


@pytest.fixture(autouse=True)
def compat_settings(settings: Any) -> None:
    """Any credentials accepted (as with debug on), no default campaign, no label cached across tests."""
    settings.RECSITE_COMPAT_ACCEPT_ANY_CREDENTIALS = True
    settings.RECSITE_DEFAULT_CAMPAIGN = ""
    label_cache_clear()


def _client(service: str, url: str, **config: Any) -> BaseClient:
    return boto3.client(
        service,
        endpoint_url=url + PREFIX,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"max_attempts": 1}, **config),
    )


def _close(client: BaseClient) -> None:
    """Close the client's connections, so the server's keep-alive threads end while the test DB is shared.

    botocore does not return a connection to its pool after an error response; collecting the
    garbage closes those sockets too.
    """
    client.close()
    gc.collect()


@pytest.fixture
def runtime(live_server: Any) -> Iterator[BaseClient]:
    """boto3's personalize-runtime client pointed at the live server."""
    client = _client("personalize-runtime", live_server.url)
    yield client
    _close(client)


@pytest.fixture
def events(live_server: Any) -> Iterator[BaseClient]:
    """boto3's personalize-events client pointed at the live server."""
    client = _client("personalize-events", live_server.url)
    yield client
    _close(client)


@pytest.fixture
def unchecked_events(live_server: Any) -> Iterator[BaseClient]:
    """personalize-events without boto3's own parameter checks, so the server's are reached."""
    client = _client("personalize-events", live_server.url, parameter_validation=False)
    yield client
    _close(client)


@pytest.fixture
def unchecked_runtime(live_server: Any) -> Iterator[BaseClient]:
    """personalize-runtime without boto3's own parameter checks."""
    client = _client("personalize-runtime", live_server.url, parameter_validation=False)
    yield client
    _close(client)


@pytest.fixture
def deploy(demo: DatasetGroup) -> Callable[..., Campaign]:
    """deploy(recipe, name=None): a campaign (named after the recipe) serving a freshly trained version."""

    def _deploy(recipe: str, name: str | None = None) -> Campaign:
        solution = Solution.objects.filter(name=recipe).first() or services.solution_create(
            dataset_group=demo, name=recipe, recipe=recipe
        )
        version = services.solution_version_create(solution=solution)
        version.refresh_from_db()
        assert version.status == "ACTIVE", version.failure_reason
        return services.campaign_create(name=name or recipe, solution_version=version)

    return _deploy
