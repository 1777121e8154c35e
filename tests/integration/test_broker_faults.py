"""Faults around the broker and the worker, with real processes: a Redis server of the test's own
(killed and restarted; the machine's shared Redis is never touched) and a real Celery worker,
on PostgreSQL, forwarding the outbox to the local PutEvents stub.

- Broker down: putEvents still answers and commits its events; when Redis comes back (empty: it
  kept nothing), the worker reconnects by itself and the sweep (beat) has every event forwarded,
  each exactly once.
- Worker killed mid-task (SIGKILL while it waits for PutEvents' answer): the task's message was
  never acknowledged (acks_late), so Redis hands it to the restarted worker after the visibility
  timeout, which completes it; PostgreSQL rolled back the dead worker's claim, so no event is lost
  and no row is marked twice. The call in flight may have reached AWS: it is resent with the same
  eventIds, which Personalize does not count twice.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import Client, override_settings

from catalog.models import DatasetGroup, ForwardState, Interaction
from recommendations import outbox
from recommendations.models import CampaignBackend, EventTracker
from recommendations.tasks import outbox_sweep_task
from recommendations.tracking import event_tracker_create
from recsite.celery import app
from tests.conftest import REQUIRE_SERVICES
from tests.integration.conftest import CeleryWorker, worker_start, worker_stop
from tests.integration.personalize_events_stub import PersonalizeEventsStub

DEADLINE = 60.0
TRACKING_ID = "broker-faults-tracking-id"
VISIBILITY_TIMEOUT_SECONDS = 3
PUT_EVENTS = (
    "mutation($t: String!, $s: String!, $u: String, $e: [EventInput!]!) "
    "{ putEvents(trackingId: $t, sessionId: $s, userId: $u, events: $e) { eventsRecorded } }"
)

pytestmark = [pytest.mark.postgres, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


class RedisServer:
    """A redis-server subprocess on a free port, keeping nothing on disk; killed and restarted at will."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server on its port and wait until it answers PING."""
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
        ]  # fmt: skip
        with (self.workdir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        if not _wait_until(lambda: _answers(client), 15):
            pytest.fail(f"redis-server did not start:\n{(self.workdir / 'redis.log').read_text()}")

    def kill(self) -> None:
        """SIGKILL: a crash, queued messages lost with it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@pytest.fixture
def redis_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A Redis of this test's own; the test process's Celery app sends to it meanwhile."""
    if shutil.which("redis-server") is None:
        message = "needs redis-server (Debian's redis-server package)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(tmp_path)
    server.start()
    conf = app.conf
    saved = (conf.broker_url, conf.task_always_eager, conf.task_default_queue, app._pool)
    saved_producers = app.amqp._producer_pool
    conf.broker_url, conf.task_always_eager = server.url, False
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)  # Celery reads the variable before its conf
    app._pool = app.amqp._producer_pool = None
    try:
        yield server
    finally:
        if app._pool is not None:
            app._pool.force_close_all()
        conf.broker_url, conf.task_always_eager, conf.task_default_queue, app._pool = saved
        app.amqp._producer_pool = saved_producers
        server.kill()


@pytest.fixture
def start_worker(
    redis_server: RedisServer, tmp_path: Path, personalize_events_stub: PersonalizeEventsStub, settings: Any
) -> Iterator[Callable[[], CeleryWorker]]:
    """Start a worker on the test's Redis (each call a new process on the same queue); all stopped after."""
    # The default queue, as in production: tasks the worker itself sends (the sweep's) come back to it.
    queue = "celery"
    app.conf.task_default_queue = queue
    started: list[CeleryWorker] = []

    def start() -> CeleryWorker:
        worker = worker_start(
            broker_url=redis_server.url,
            queue=queue,
            workdir=tmp_path,
            stub=personalize_events_stub,
            log_name=f"worker-{len(started) + 1}.log",
            extra_env={
                # Redis gives an unacknowledged message to another worker after this long (default 1 h).
                "CELERY_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT_SECONDS),
                "CELERY_UNACKED_RESTORE_INTERVAL_SECONDS": "1",
                "CELERY_UNACKED_RESTORE_THROTTLE": "1",
            },
        )
        started.append(worker)
        settings.MEDIA_ROOT = str(worker.media_root)
        return worker

    try:
        yield start
    finally:
        personalize_events_stub.release()
        for worker in started:
            if worker.process.poll() is None:
                worker_stop(worker)


@pytest.fixture
def tracker(default_group: DatasetGroup, personalize_events_stub: PersonalizeEventsStub) -> EventTracker:
    """The default group's tracker on Personalize; the stub and this process's flush memory fresh."""
    personalize_events_stub.reset()
    outbox._flush_due.clear()
    tracker = event_tracker_create(dataset_group=default_group, name="faults-web")
    EventTracker.objects.filter(pk=tracker.pk).update(
        backend=CampaignBackend.PERSONALIZE, personalize_tracking_id=TRACKING_ID
    )
    return tracker


def put_events(tracker: EventTracker, session: str, user: str | None, count: int, start: int = 0) -> Any:
    """A frontend's putEvents call through /graphql/ (public), `count` view events."""
    events = [
        {"eventType": "view", "sentAt": 1_790_000_000.0 + start + n, "itemId": f"i{start + n}"}
        for n in range(count)
    ]
    variables = {"t": tracker.tracking_id, "s": session, "u": user, "e": events}
    return Client().post(
        "/graphql/", {"query": PUT_EVENTS, "variables": variables}, content_type="application/json"
    )


def wait_until_all_sent(worker: CeleryWorker) -> None:
    def all_sent() -> bool:
        worker.assert_alive()
        return not Interaction.objects.exclude(forward_state=ForwardState.SENT).exists()

    if not _wait_until(all_sent, DEADLINE):
        states = list(Interaction.objects.values_list("forward_state", flat=True))
        pytest.fail(f"events not all sent after {DEADLINE:.0f}s ({states}); worker log:\n{worker.log()}")


def expected_ids() -> set[str]:
    return {f"recsite-{pk}" for pk in Interaction.objects.values_list("pk", flat=True)}


def test_broker_down_put_events_commits_and_forwarding_catches_up_when_it_returns(
    redis_server: RedisServer,
    start_worker: Callable[[], CeleryWorker],
    tracker: EventTracker,
    personalize_events_stub: PersonalizeEventsStub,
) -> None:
    stub = personalize_events_stub
    worker = start_worker()
    # given events forwarded while the broker is up
    assert put_events(tracker, "s1", "u1", 3).json()["data"]["putEvents"]["eventsRecorded"] == 3
    wait_until_all_sent(worker)
    # when Redis crashes (its queue lost with it) and putEvents calls keep coming
    redis_server.kill()
    started = time.monotonic()
    answers = [
        put_events(tracker, "s2", None, 4, start=10),
        put_events(tracker, "s1", "u1", 10, start=20),
        put_events(tracker, "s1", "u1", 2, start=30),
    ]
    took = time.monotonic() - started
    # then each call still answers and commits its events, without waiting on the broker
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [answer.json()["data"]["putEvents"]["eventsRecorded"] for answer in answers] == [4, 10, 2]
    assert took < 10, f"putEvents waited {took:.1f}s for the missing broker"
    assert Interaction.objects.filter(forward_state=ForwardState.PENDING).count() == 16
    time.sleep(2)  # the worker meanwhile loses its connection and keeps trying to reconnect
    worker.assert_alive()
    # when Redis is back, empty, and beat's sweep runs
    redis_server.start()
    outbox._flush_due.clear()
    swept = _wait_until(lambda: _sent_sweep(), 30)
    assert swept, f"the sweep could not be enqueued after Redis came back:\n{worker.log()}"
    # then the same worker, reconnected by itself, forwards everything: each event exactly once
    wait_until_all_sent(worker)
    counts = stub.event_id_counts()
    assert set(counts) == expected_ids()
    assert set(counts.values()) == {1}
    assert all(len(call["eventList"]) <= 10 for call in stub.calls("PutEvents"))


def _sent_sweep() -> bool:
    try:
        outbox_sweep_task.apply_async(retry=False)
    except Exception:  # the test process's own connection to Redis is reconnecting too
        return False
    return True


def test_a_worker_killed_mid_task_is_replaced_and_the_task_completes_without_loss(
    start_worker: Callable[[], CeleryWorker],
    tracker: EventTracker,
    personalize_events_stub: PersonalizeEventsStub,
) -> None:
    stub = personalize_events_stub
    first = start_worker()
    # given AWS is slow to answer, and 25 events committed (3 PutEvents calls' worth in one session)
    stub.hold()
    with override_settings(RECSITE_OUTBOX_FLUSH_DELAY_SECONDS=3.0):  # one flush for the three commits
        recorded = [
            put_events(tracker, "s1", "u1", count, start=10 * n) for n, count in enumerate((10, 10, 5))
        ]
    assert [answer.json()["data"]["putEvents"]["eventsRecorded"] for answer in recorded] == [10, 10, 5]
    # when the worker is killed (SIGKILL) while its flush task waits for the first call's answer
    assert _wait_until(lambda: stub.held >= 1, DEADLINE), first.log()
    task_id = _received_task_id(first)
    first.process.kill()
    first.process.wait(timeout=10)
    in_flight = set(stub.event_ids())
    stub.release()
    # then the dead worker's claim was rolled back: nothing is marked sent
    assert Interaction.objects.filter(forward_state=ForwardState.PENDING).count() == 25
    # and when a new worker starts, Redis hands it the unacknowledged task after the visibility timeout
    second = start_worker()
    wait_until_all_sent(second)
    # which completes it: the same task id, once, no event lost, no other task involved (no sweep ran)
    finished = re.findall(r"Task (\S+)\[([^\]]+)\] succeeded", second.log(400))
    assert finished == [("recommendations.tasks.outbox_forward_task", task_id)], second.log()
    counts = stub.event_id_counts()
    assert set(counts) == expected_ids()
    # only the call in flight when the worker died arrived twice, with the same eventIds
    assert len(in_flight) == 10
    assert {event_id for event_id, seen in counts.items() if seen > 1} <= in_flight
    assert set(counts.values()) <= {1, 2}


def _received_task_id(worker: CeleryWorker) -> str:
    found = re.search(r"Task recommendations\.tasks\.outbox_forward_task\[([^\]]+)\] received", worker.log())
    assert found, worker.log()
    return found.group(1)
