"""Outbox throughput: events per second the outbox forwards to a local HTTP PutEvents endpoint.

Fresh database (PostgreSQL or SQLite, `fresh_database` of import_speed.py), debug off. --events
events are stored through `put_events` (10 per call, each call one user and session, no eventId,
so the outbox derives `recsite-<row id>`), then marked PENDING for a tracker on Personalize. The
endpoint is `PersonalizeEventsStub` (tests/integration/personalize_events_stub.py) serving in its
own process on loopback, so boto3 does its real work: SigV4 signing, JSON serialisation, HTTP
keep-alive, response parsing.

Measured: `outbox_forward` draining the outbox (claim a chunk, group by user/session, PutEvents of
10, mark SENT) with 1 sender, and on PostgreSQL with --senders processes at once (SKIP LOCKED
splits the rows). Baseline in the same run: the same number of PutEvents calls of 10 events made
straight with the adapter's boto3 client (`aws_call`), no database, to the same endpoint. The
stub's counts check that every event arrived exactly once.

    .venv/bin/python benchmarks/outbox_throughput.py --database-url postgres://postgres@127.0.0.1:5432/recsite_bench_outbox
"""

import argparse
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.import_speed import fresh_database  # noqa: E402

__all__ = ["main"]

TRACKING_ID = "bench-personalize-tracking-id"


def _serve_stub(queue: Any) -> None:
    """Child process: run the PutEvents stub and report its URL."""
    from tests.integration.personalize_events_stub import PersonalizeEventsStub

    stub = PersonalizeEventsStub().start()
    queue.put(stub.url)
    while True:
        time.sleep(3600)


def _stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/_stats", timeout=10) as response:
        return json.loads(response.read())


def _aws_environment(url: str) -> None:
    os.environ.update(
        {
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "AKIDBENCHBENCHBENCH0",
            "AWS_SECRET_ACCESS_KEY": "benchmark-secret",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.path.join(tempfile.gettempdir(), "recsite-bench-no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(tempfile.gettempdir(), "recsite-bench-no-aws-creds"),
            "PERSONALIZE_EVENTS_ENDPOINT_URL": url,
        }
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)


def _store_events(count: int, users: int) -> int:
    """Store `count` events with put_events (local tracker), then make them a Personalize tracker's outbox."""
    from catalog.models import ForwardState, Interaction
    from catalog.selectors import dataset_group_get
    from recommendations.models import CampaignBackend, EventTracker
    from recommendations.tracking import TrackedEvent, event_tracker_create, put_events

    group = dataset_group_get()
    tracker = event_tracker_create(dataset_group=group, name="bench")
    start = 1_790_000_000.0
    for call in range(count // 10):
        user = call % users
        put_events(
            tracking_id=tracker.tracking_id,
            session_id=f"session-{user}",
            user_id=f"user-{user}",
            events=[
                TrackedEvent(
                    event_type="click", sent_at=start + call * 10 + k, item_id=f"item-{(call * 7 + k) % 5000}"
                )
                for k in range(10)
            ],
        )
    EventTracker.objects.filter(pk=tracker.pk).update(
        backend=CampaignBackend.PERSONALIZE, personalize_tracking_id=TRACKING_ID
    )
    Interaction.objects.update(forward_state=ForwardState.PENDING)
    return group.pk


def _reset_outbox() -> None:
    from catalog.models import ForwardState, Interaction

    Interaction.objects.update(forward_state=ForwardState.PENDING)


def _drain(group_id: int) -> tuple[int, int]:
    """Forward until the outbox is empty; (events sent, calls)."""
    from recommendations.outbox import outbox_forward

    sent = calls = 0
    while True:
        report = outbox_forward(dataset_group_id=group_id, max_rows=1_000_000)
        sent += report.events_sent
        calls += report.calls
        if not report.more:
            return sent, calls


def _sender(group_id: int, queue: Any) -> None:
    from django.db import connections

    from recommendations.backends.aws import clear_client_cache

    connections.close_all()
    clear_client_cache()  # never share the parent's keep-alive sockets
    queue.put(_drain(group_id))


def _outbox_run(group_id: int, senders: int) -> tuple[float, int, int]:
    """Seconds to drain the outbox with `senders` processes; (seconds, events, calls)."""
    from django.db import connections

    if senders == 1:
        started = time.perf_counter()
        sent, calls = _drain(group_id)
        return time.perf_counter() - started, sent, calls
    connections.close_all()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [context.Process(target=_sender, args=(group_id, queue)) for _ in range(senders)]
    started = time.perf_counter()
    for process in processes:
        process.start()
    results = [queue.get() for _ in processes]
    seconds = time.perf_counter() - started
    for process in processes:
        process.join()
    return seconds, sum(r[0] for r in results), sum(r[1] for r in results)


def _raw_boto3_run(calls: int, users: int) -> float:
    """Seconds for `calls` PutEvents calls of 10 events straight through the adapter's client."""
    from recommendations.backends.aws import aws_call, personalize_events_client

    client = personalize_events_client()
    sent_at = datetime.fromtimestamp(1_790_000_000, UTC)
    payloads = [
        {
            "trackingId": TRACKING_ID,
            "sessionId": f"session-{n % users}",
            "userId": f"user-{n % users}",
            "eventList": [
                {"eventId": f"raw-{n}-{k}", "eventType": "click", "sentAt": sent_at, "itemId": f"item-{k}"}
                for k in range(10)
            ],
        }
        for n in range(calls)
    ]
    aws_call(client, "put_events", **payloads[0])  # connection and credentials set up
    started = time.perf_counter()
    for payload in payloads[1:]:
        aws_call(client, "put_events", **payload)
    return (time.perf_counter() - started) * calls / (calls - 1)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="sqlite")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--senders", type=int, default=4, help="parallel senders on PostgreSQL")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    stub_process = context.Process(target=_serve_stub, args=(queue,), daemon=True)
    stub_process.start()
    url = queue.get(timeout=30)
    _aws_environment(url)

    os.environ["DATABASE_URL"] = fresh_database(args.database_url)
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    os.environ.pop("CELERY_BROKER_URL", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"database: {connection.vendor}, events: {args.events} ({args.users} users, 10 per putEvents call)"
    )
    group_id = _store_events(args.events, args.users)

    sender_counts = [1] + ([args.senders] if connection.vendor == "postgresql" and args.senders > 1 else [])
    results: dict[str, float] = {}
    for senders in sender_counts:
        best = None
        for _ in range(args.rounds):
            _reset_outbox()
            before = _stats(url)
            seconds, sent, calls = _outbox_run(group_id, senders)
            after = _stats(url)
            arrived = after["events"] - before["events"]
            assert sent == arrived == args.events, (sent, arrived)
            assert after["distinct_events"] - before["distinct_events"] in (args.events, 0)
            rate = sent / seconds
            best = rate if best is None else max(best, rate)
            print(
                f"outbox, {senders} sender(s): {sent} events, {calls} calls, {seconds:.2f} s, {rate:,.0f}/s"
            )
        results[f"outbox x{senders}"] = best or 0.0

    calls = args.events // 10
    raw = max(calls * 10 / _raw_boto3_run(calls, args.users) for _ in range(args.rounds))
    print(f"baseline, boto3 PutEvents alone (1 client, 10 events per call): {raw:,.0f} events/s")
    for name, rate in results.items():
        print(f"{name}: best {rate:,.0f} events/s = {rate / raw:.2f}x the boto3 baseline")
    stub_process.terminate()


if __name__ == "__main__":
    main()
