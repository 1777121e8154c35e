"""Fixtures for the backend tests: fake AWS credentials, Stubbers on the adapter's clients, campaigns.

Only AWS is mocked: `botocore.stub.Stubber` on the very clients `recommendations.backends.aws`
builds, so every request is checked against boto3's service model. Local campaigns are trained
for real on the small demo shop.
"""

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.stub import Stubber
from django.db.models import Count

from catalog.models import DatasetGroup, EndUser, Item
from recommendations import services
from recommendations.backends import aws
from recommendations.backends.local import popular_cache_clear
from recommendations.models import (
    Campaign,
    PersonalizeDatasetGroup,
    PersonalizeStatus,
    Solution,
    SolutionVersion,
    SolutionVersionStatus,
)
from recommendations.reasons import label_cache_clear
from tests.auth import manage_client

ACCOUNT = "arn:aws:personalize:us-east-1:123456789012"
GROUP_ARN = f"{ACCOUNT}:dataset-group/default"


def campaign_arn(name: str) -> str:
    """The ARN Personalize gives a campaign of this name."""
    return f"{ACCOUNT}:campaign/{name}"


def filter_arn(name: str) -> str:
    """The ARN Personalize gives a filter of this name."""
    return f"{ACCOUNT}:filter/{name}"


@pytest.fixture(autouse=True)
def fake_aws(aws_sandbox: None, settings: Any) -> Iterator[None]:
    """Fake AWS (aws_sandbox), the local backend by default, no default campaign; fresh caches."""
    settings.RECSITE_BACKEND = "local"
    settings.RECSITE_DEFAULT_CAMPAIGN = ""
    popular_cache_clear()
    label_cache_clear()
    yield
    popular_cache_clear()


@pytest.fixture
def runtime_stub() -> Iterator[Stubber]:
    """A Stubber on the adapter's personalize-runtime client; every queued response must be used."""
    with Stubber(aws.personalize_runtime_client()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def control_stub() -> Iterator[Stubber]:
    """A Stubber on the adapter's personalize (control plane) client; every queued response must be used."""
    with Stubber(aws.personalize_client()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def provisioned(demo: DatasetGroup) -> PersonalizeDatasetGroup:
    """The demo group as provisioning leaves it on Personalize: ACTIVE, with its dataset group ARN."""
    return PersonalizeDatasetGroup.objects.create(
        dataset_group=demo, name=demo.name, dataset_group_arn=GROUP_ARN, status=PersonalizeStatus.ACTIVE
    )


@pytest.fixture
def personalize_campaign(demo: DatasetGroup) -> Callable[..., Campaign]:
    """personalize_campaign(recipe, name=None): a campaign deployed on Amazon Personalize (ARN set)."""

    def _create(recipe: str, name: str | None = None) -> Campaign:
        name = name or f"p-{recipe}"
        solution = services.solution_create(dataset_group=demo, name=name, recipe=recipe)
        version = SolutionVersion.objects.create(
            solution=solution,
            status=SolutionVersionStatus.ACTIVE,
            personalize_arn=f"{ACCOUNT}:solution/{name}/1",
        )
        campaign = services.campaign_create(name=name, solution_version=version, backend="personalize")
        campaign.personalize_arn = campaign_arn(name)
        campaign.save(update_fields=["personalize_arn"])
        return campaign

    return _create


@pytest.fixture
def deploy(demo: DatasetGroup, django_capture_on_commit_callbacks: Any) -> Callable[..., Campaign]:
    """deploy(recipe, name=None): a local campaign serving a freshly trained version."""

    def _deploy(recipe: str, name: str | None = None) -> Campaign:
        solution = Solution.objects.filter(name=recipe).first() or services.solution_create(
            dataset_group=demo, name=recipe, recipe=recipe
        )
        with django_capture_on_commit_callbacks(execute=True):
            version = services.solution_version_create(solution=solution)
        version.refresh_from_db()
        assert version.status == "ACTIVE", version.failure_reason
        return services.campaign_create(name=name or recipe, solution_version=version, backend="local")

    return _deploy


def active_user(group: DatasetGroup, minimum: int = 8) -> EndUser:
    """A user with at least `minimum` events."""
    return (
        EndUser.objects.filter(dataset_group=group)
        .annotate(n=Count("interactions"))
        .filter(n__gte=minimum)
        .order_by("user_id")
        .first()
    )


def biggest_category(group: DatasetGroup) -> str:
    """The CATEGORY_L1 value with the most items."""
    counts = Counter(Item.objects.filter(dataset_group=group).values_list("metadata__CATEGORY_L1", flat=True))
    return counts.most_common(1)[0][0]


def item_ids(group: DatasetGroup, n: int, *, category: str | None = None, offset: int = 0) -> list[str]:
    """n catalog item ids (of one CATEGORY_L1 when given), in id order."""
    items = Item.objects.filter(dataset_group=group)
    if category is not None:
        items = items.filter(metadata__CATEGORY_L1=category)
    return list(items.order_by("item_id").values_list("item_id", flat=True)[offset : offset + n])


def categories_of(ids: list[str]) -> set[str]:
    """The CATEGORY_L1 values of these items."""
    return set(Item.objects.filter(item_id__in=ids).values_list("metadata__CATEGORY_L1", flat=True))


def gql(query: str, variables: dict | None = None) -> dict:
    """POST a GraphQL document to /graphql/ as JSON; the decoded body (never an HTTP 500)."""
    response = manage_client().post(  # as a manage-scoped API key: every operation
        "/graphql/", {"query": query, "variables": variables or {}}, content_type="application/json"
    )
    assert response.status_code in (200, 400), response.content
    return response.json()


def codes(body: dict) -> list[str]:
    """The extensions.code of each GraphQL error."""
    return [error["extensions"]["code"] for error in body.get("errors", [])]
