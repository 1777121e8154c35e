"""A real Celery worker, in a subprocess, for the `broker` integration tests.

The worker uses the same broker as the tests (CELERY_BROKER_URL) and the pytest test
database, so tests that use it must be `@pytest.mark.django_db(transaction=True)` (the
worker only sees committed rows) and marked `postgres` and `broker` (a subprocess
cannot see SQLite's in-memory test database).

Each test session gets its own queue and worker name, so two CI runs sharing one
broker never take each other's tasks.

The worker's `personalize-events` client (the outbox's PutEvents / PutItems / PutUsers) talks to a
local HTTP stub, `personalize_events_stub`, started for the session with fake AWS credentials.
"""

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from recsite.celery import app
from tests.integration.personalize_events_stub import PersonalizeEventsStub

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORKER_START_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 20.0


@dataclass
class CeleryWorker:
    """A running worker subprocess: its node name, queue, media root and log file."""

    process: subprocess.Popen[bytes]
    hostname: str
    queue: str
    media_root: Path
    log_path: Path

    def log(self, last_lines: int = 80) -> str:
        """The end of the worker's output, for assertion messages."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-last_lines:])

    def assert_alive(self) -> None:
        """Fail with the worker's output if it has exited."""
        if self.process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {self.process.returncode}:\n{self.log()}")

    def task_end_line(self, task_id: str, timeout: float = 60.0) -> str:
        """Wait until the worker logs the end of this task (succeeded, raised, retry); that log line."""
        pattern = re.compile(rf"Task \S+\[{re.escape(task_id)}\] (succeeded|raised|retry)\S*.*")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pattern.search(self.log_path.read_text(errors="replace"))
            if found:
                return found.group(0)
            self.assert_alive()
            time.sleep(0.2)
        pytest.fail(f"task {task_id} did not finish in {timeout:.0f}s; worker log:\n{self.log()}")


def _database_url(settings_dict: dict[str, Any]) -> str:
    """A postgres:// URL for the database Django is connected to (the test database in tests)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or "5432"
    return f"postgres://{credentials}{host}:{port}/{quote(settings_dict['NAME'], safe='')}"


def _wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def worker_start(
    *,
    broker_url: str,
    queue: str,
    workdir: Path,
    stub: PersonalizeEventsStub,
    extra_env: dict[str, str] | None = None,
    log_name: str = "worker.log",
) -> CeleryWorker:
    """Start a worker subprocess on the test database consuming `queue`; return once it answers a ping.

    The caller's Celery app must be sending to the same broker (for the ping). `workdir` holds its
    media root (shared with the tests through MEDIA_ROOT) and its log.
    """
    run_id = uuid.uuid4().hex[:10]
    hostname = f"{queue}-{run_id}@localhost"
    media_root = workdir / "media"
    media_root.mkdir(exist_ok=True)
    log_path = workdir / log_name
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(connection.settings_dict),
        "CELERY_BROKER_URL": broker_url,
        "RECSITE_MEDIA_ROOT": str(media_root),
        "DJANGO_SETTINGS_MODULE": "recsite.settings",
        "PYTHONUNBUFFERED": "1",
        **_worker_aws_env(stub, workdir),
        **(extra_env or {}),
    }
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    command = [
        sys.executable, "-m", "celery", "-A", "recsite", "worker",
        "--pool=solo", "--concurrency=1", "--loglevel=INFO",
        "--queues", queue, "--hostname", hostname,
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    worker = CeleryWorker(process, hostname, queue, media_root, log_path)

    def answers_ping() -> bool:
        worker.assert_alive()
        return bool(app.control.ping(destination=[hostname], timeout=1.0))

    if not _wait_until(answers_ping, WORKER_START_TIMEOUT):
        worker_stop(worker)
        waited = f"{WORKER_START_TIMEOUT:.0f}s"
        pytest.fail(f"the Celery worker did not answer a ping in {waited}:\n{worker.log()}")
    return worker


def worker_stop(worker: CeleryWorker) -> None:
    """Warm shutdown (the current task finishes), killed if it takes too long."""
    _stop(worker.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # warm shutdown: finish the current task, then exit
    try:
        process.wait(timeout=WORKER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=WORKER_STOP_TIMEOUT)


def _purge(queue_name: str) -> None:
    with app.connection_for_write() as conn:
        queue = app.amqp.queues[queue_name](conn.default_channel)
        queue.declare()
        queue.purge()


@pytest.fixture(scope="session")
def personalize_events_stub() -> Iterator[PersonalizeEventsStub]:
    """A local PutEvents / PutItems / PutUsers endpoint for the session, used by the worker."""
    stub = PersonalizeEventsStub().start()
    try:
        yield stub
    finally:
        stub.stop()


# What the worker needs to reach the stub: a region, fake credentials, no shared AWS config, quick retries.
def _worker_aws_env(stub: PersonalizeEventsStub, workdir: Path) -> dict[str, str]:
    return {
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDTESTTESTTESTTEST",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PERSONALIZE_EVENTS_ENDPOINT_URL": stub.url,
        "RECSITE_OUTBOX_RETRY_BASE_SECONDS": "0.5",
    }


@pytest.fixture(scope="session")
def celery_worker_process(
    django_db_setup: None,
    tmp_path_factory: pytest.TempPathFactory,
    personalize_events_stub: PersonalizeEventsStub,
) -> Iterator[CeleryWorker | None]:
    """Start one worker for the session on the test database; None when the services are missing.

    Skipping (or failing under REQUIRE_SERVICES=1) is left to the `postgres`/`broker`
    markers, checked by the autouse fixture in tests/conftest.py before this runs.
    """
    if connection.vendor != "postgresql" or settings.CELERY_TASK_ALWAYS_EAGER:
        yield None
        return

    queue = f"recsite-test-{uuid.uuid4().hex[:10]}"
    previous_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue  # tasks sent by the tests go to this worker only
    _purge(queue)
    worker = None
    try:
        worker = worker_start(
            broker_url=settings.CELERY_BROKER_URL,
            queue=queue,
            workdir=tmp_path_factory.mktemp("celery-worker"),
            stub=personalize_events_stub,
        )
        yield worker
    finally:
        if worker is not None:
            worker_stop(worker)
        app.conf.task_default_queue = previous_queue


@pytest.fixture
def celery_worker(celery_worker_process: CeleryWorker | None, settings: Any) -> Iterator[CeleryWorker]:
    """A real worker for this test, tasks sent to the broker, files shared through MEDIA_ROOT."""
    if celery_worker_process is None:  # pragma: no cover - the service markers skip first
        pytest.skip("needs PostgreSQL and a Celery broker")
    celery_worker_process.assert_alive()
    settings.MEDIA_ROOT = str(celery_worker_process.media_root)
    previous_eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield celery_worker_process
    finally:
        app.conf.task_always_eager = previous_eager
