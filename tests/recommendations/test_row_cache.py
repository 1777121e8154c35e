"""The serving row cache: rows are reused for a bounded time and forgotten when they change here."""

import pytest

from catalog.models import DatasetGroup, Item
from recommendations import row_cache
from recommendations.filtering import filter_create
from recommendations.models import Filter
from recommendations.serving import recommendation_list
from tests.recommendations.test_serving import deployed

pytestmark = pytest.mark.django_db


class Clock:
    """A stand-in for time.monotonic that the test moves forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(row_cache.time, "monotonic", fake)
    return fake


def test_a_row_is_read_once_per_lifetime(settings: object, clock: Clock) -> None:
    # Given a one-second cache and a loader that counts its reads
    settings.RECSITE_SERVING_CACHE_SECONDS = 1.0
    reads = []

    def load() -> int:
        reads.append(clock.now)
        return len(reads)

    # When the row is asked for three times within the second, then after it
    first = row_cache.cached_row(("k",), load)
    clock.now += 0.5
    second = row_cache.cached_row(("k",), load)
    clock.now += 0.6
    third = row_cache.cached_row(("k",), load)
    # Then it was read at the start and again once the second had passed
    assert (first, second, third) == (1, 1, 2)
    assert reads == [1000.0, 1001.1]


def test_zero_seconds_reads_every_time(settings: object, clock: Clock) -> None:
    settings.RECSITE_SERVING_CACHE_SECONDS = 0
    values = iter(range(10))
    assert [row_cache.cached_row(("k",), lambda: next(values)) for _ in range(3)] == [0, 1, 2]


def test_a_change_in_another_process_is_seen_after_the_lifetime_one_here_at_once(
    demo: DatasetGroup, django_capture_on_commit_callbacks: object, settings: object, clock: Clock
) -> None:
    # Given a campaign served through a filter that excludes nothing
    settings.RECSITE_SERVING_CACHE_SECONDS = 1.0
    deployed(demo, "aws-user-personalization", django_capture_on_commit_callbacks, name="feed")
    rule = filter_create(
        dataset_group=demo, name="rule", expression='EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("none")'
    )

    def top() -> str:
        served = recommendation_list(campaign_name="feed", user_id="nobody", filter_name="rule")
        return served.items[0].item_id

    first = top()
    top_category = Item.objects.get(dataset_group=demo, item_id=first).metadata["CATEGORY_L1"]
    excluding = f'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("{top_category}")'
    # When another process changes the filter (an UPDATE this process gets no signal of)
    Filter.objects.filter(pk=rule.pk).update(expression=excluding)
    # Then this process serves its copy until the lifetime has passed, then the new rule
    assert top() == first
    clock.now += 1.5
    changed = top()
    assert changed != first
    assert Item.objects.get(dataset_group=demo, item_id=changed).metadata["CATEGORY_L1"] != top_category
    # And a change saved in this process counts on the very next request
    rule.refresh_from_db()
    rule.expression = 'EXCLUDE ItemID WHERE Items.CATEGORY_L1 IN ("none")'
    rule.save()
    assert top() == first
