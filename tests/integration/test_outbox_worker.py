"""The outbox forwarded by a real Celery worker, through a real broker, on PostgreSQL.

The worker is another process, so it cannot share a botocore Stubber: its `personalize-events`
client is pointed (PERSONALIZE_EVENTS_ENDPOINT_URL) at `PersonalizeEventsStub`, a local HTTP server
that answers PutEvents as Personalize does and records every eventId it accepted.
"""

import re
import time
from collections.abc import Callable

import pytest

from catalog.models import DatasetGroup, ForwardState, Interaction
from recommendations import outbox
from recommendations.models import CampaignBackend, EventTracker
from recommendations.tasks import outbox_forward_task
from recommendations.tracking import TrackedEvent, event_tracker_create, put_events
from tests.integration.conftest import CeleryWorker
from tests.integration.personalize_events_stub import PersonalizeEventsStub

DEADLINE = 60.0
NOW = 1_790_000_000.0
TRACKING_ID = "worker-test-tracking-id"


def with_real_worker(test: Callable[..., None]) -> Callable[..., None]:
    """Needs PostgreSQL, a broker and committed rows (the worker is another process)."""
    for mark in (pytest.mark.postgres, pytest.mark.broker, pytest.mark.django_db(transaction=True)):
        test = mark(test)
    return test


@pytest.fixture
def tracker(default_group: DatasetGroup, personalize_events_stub: PersonalizeEventsStub) -> EventTracker:
    """The default group's tracker on Personalize; the stub and this process's flush memory fresh."""
    personalize_events_stub.reset()
    outbox._flush_due.clear()
    tracker = event_tracker_create(dataset_group=default_group, name="worker-web")
    EventTracker.objects.filter(pk=tracker.pk).update(
        backend=CampaignBackend.PERSONALIZE, personalize_tracking_id=TRACKING_ID
    )
    return tracker


def send(tracker: EventTracker, session: str, user: str | None, count: int, start: int = 0) -> None:
    put_events(
        tracking_id=tracker.tracking_id,
        session_id=session,
        user_id=user,
        events=[
            TrackedEvent(event_type="view", sent_at=NOW + start + n, item_id=f"i{n}") for n in range(count)
        ],
    )


def wait_until_all_sent(worker: CeleryWorker) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if not Interaction.objects.exclude(forward_state=ForwardState.SENT).exists():
            return
        worker.assert_alive()
        time.sleep(0.2)
    states = list(Interaction.objects.values_list("forward_state", flat=True))
    pytest.fail(f"events not all sent after {DEADLINE:.0f}s ({states}); worker log:\n{worker.log()}")


def expected_ids() -> set[str]:
    return {f"recsite-{pk}" for pk in Interaction.objects.values_list("pk", flat=True)}


@with_real_worker
def test_a_real_worker_forwards_committed_events_exactly_once(
    celery_worker: CeleryWorker, tracker: EventTracker, personalize_events_stub: PersonalizeEventsStub
) -> None:
    stub = personalize_events_stub
    # given three putEvents calls committed on a tracker on Personalize (two sessions)
    send(tracker, "s1", "u1", 10)
    send(tracker, "s2", None, 3, start=100)
    send(tracker, "s1", "u1", 2, start=200)
    # when the worker runs the flush their commits enqueued
    wait_until_all_sent(celery_worker)
    # then the endpoint received every event exactly once, at most 10 per call, one session per call
    counts = stub.event_id_counts()
    assert set(counts) == expected_ids()
    assert set(counts.values()) == {1}
    calls = stub.calls("PutEvents")
    assert all(1 <= len(call["eventList"]) <= 10 for call in calls)
    assert sorted((call["sessionId"], call.get("userId"), len(call["eventList"])) for call in calls) == [
        ("s1", "u1", 2),
        ("s1", "u1", 10),
        ("s2", None, 3),
    ]
    assert {call["trackingId"] for call in calls} == {TRACKING_ID}
    # and when the task is delivered again (a redelivery), nothing is sent twice
    line = celery_worker.task_end_line(outbox_forward_task.delay(tracker.dataset_group_id).id, DEADLINE)
    assert "succeeded" in line, line
    assert "'calls': 0" in line, line
    assert stub.event_id_counts() == counts


@with_real_worker
def test_a_throttled_worker_retries_with_backoff_and_sends_each_event_once(
    celery_worker: CeleryWorker, tracker: EventTracker, personalize_events_stub: PersonalizeEventsStub
) -> None:
    stub = personalize_events_stub
    # given Personalize throttles the next 5 requests (all of botocore's own attempts of the first call)
    stub.throttle_next(5)
    # when events are committed
    send(tracker, "s1", "u1", 4)
    # then the worker's task retries after a countdown, and every event arrives exactly once
    wait_until_all_sent(celery_worker)
    assert stub.throttled == 5
    counts = stub.event_id_counts()
    assert set(counts) == expected_ids()
    assert set(counts.values()) == {1}
    retries = re.findall(r"outbox_forward_task\[[^\]]+\] retry: Retry in ([0-9.]+)s", celery_worker.log(400))
    assert retries, celery_worker.log()
    assert 0.25 <= float(retries[-1]) <= 0.5  # RECSITE_OUTBOX_RETRY_BASE_SECONDS=0.5, half jittered
