"""putEvents throughput: events per second through the GraphQL view, 10 events per call.

Fresh database (PostgreSQL or SQLite, `fresh_database` of import_speed.py), debug off, a catalog
of --items items and --users users, and one event tracker. Each call is one HTTP POST through
Django's full request stack (test client: middleware, the guarded view, the schema with its
parser/validation caches) carrying 10 click events of one user and session, each with an
eventId, mostly naming known items and now and then a new one (a bare record is created). As
the same-run baseline, the same calls go straight to `recommendations.tracking.put_events`.

    .venv/bin/python benchmarks/put_events.py --database-url postgres://postgres@127.0.0.1:5432/recsite_bench
"""

import argparse
import json
import multiprocessing
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.import_speed import fresh_database  # noqa: E402

__all__ = ["main"]

PUT_EVENTS = (
    "mutation Put($trackingId: String!, $sessionId: String!, $userId: String, $events: [EventInput!]!) "
    "{ putEvents(trackingId: $trackingId, sessionId: $sessionId, userId: $userId, events: $events) "
    "{ eventsRecorded duplicatesIgnored } }"
)


def _calls(count: int, *, users: int, items: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    """`count` putEvents argument sets: 10 click events each, unique eventIds, 1% new items."""
    rng = random.Random(seed)
    start = 1_790_000_000.0
    calls = []
    for n in range(count):
        user = rng.randrange(users)
        events = []
        for k in range(10):
            item = (
                f"new-{prefix}-{n}-{k}"
                if rng.random() < 0.01
                else f"item-{int(rng.paretovariate(1.2)) % items}"
            )
            events.append(
                {
                    "eventType": "click",
                    "sentAt": start + n * 10 + k,
                    "itemId": item,
                    "eventId": f"{prefix}-{n}-{k}",
                }
            )
        calls.append({"sessionId": f"session-{user}", "userId": f"user-{user}", "events": events})
    return calls


def main() -> None:
    """Run the benchmark and print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="sqlite")
    parser.add_argument("--calls", type=int, default=3000, help="putEvents calls per measurement")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--processes", type=int, default=1, help="web processes (forked), each a client")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = fresh_database(args.database_url)
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from catalog.models import EndUser, Interaction, Item, RecordSource
    from catalog.selectors import dataset_group_get
    from recommendations.tracking import event_tracker_create

    call_command("migrate", verbosity=0)
    assert not settings.DEBUG
    group = dataset_group_get()
    Item.objects.bulk_create(
        [
            Item(dataset_group=group, item_id=f"item-{n}", source=RecordSource.IMPORT)
            for n in range(args.items)
        ],
        batch_size=5000,
    )
    EndUser.objects.bulk_create(
        [
            EndUser(dataset_group=group, user_id=f"user-{n}", source=RecordSource.IMPORT)
            for n in range(args.users)
        ],
        batch_size=5000,
    )
    tracker = event_tracker_create(dataset_group=group, name="bench")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"database: {connection.vendor}, debug: {settings.DEBUG}, urlconf: {settings.ROOT_URLCONF}"
    )

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")  # fresh tables: plan with real statistics, as a live database has
    warm = _calls(50, users=args.users, items=args.items, seed=1, prefix="warm")
    over_http = _calls(args.calls, users=args.users, items=args.items, seed=2, prefix="http")
    direct = _calls(args.calls, users=args.users, items=args.items, seed=3, prefix="direct")
    _run_chunk(("http", tracker.tracking_id, warm))

    http_seconds, latencies = _timed(args.processes, "http", tracker.tracking_id, over_http)
    service_seconds, service_latencies = _timed(args.processes, "service", tracker.tracking_id, direct)

    events = args.calls * 10
    expected = (len(warm) + 2 * args.calls) * 10
    assert Interaction.objects.count() == expected, (Interaction.objects.count(), expected)
    http_rate, service_rate = events / http_seconds, events / service_seconds

    def p(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1] * 1000

    print(
        f"putEvents through /graphql/ (test client, 10 events/call, {args.calls} calls, "
        f"{args.processes} process(es)): {http_rate:,.0f} events/s "
        f"({args.calls / http_seconds:,.0f} calls/s; "
        f"p50 {p(latencies, 50):.2f} ms, p99 {p(latencies, 99):.2f} ms per call)"
    )
    print(
        f"baseline tracking.put_events (same shape, same run, same processes): {service_rate:,.0f} events/s "
        f"(p50 {p(service_latencies, 50):.2f} ms, p99 {p(service_latencies, 99):.2f} ms per call)"
    )
    print(f"GraphQL + request stack overhead: {http_seconds / service_seconds:.2f}x the service call")


def _run_chunk(job: tuple[str, str, list[dict[str, Any]]]) -> list[float]:
    """Run one process's share of calls ("http" through the test client or "service"); latencies."""
    from django.test import Client

    from recommendations.tracking import TrackedEvent, put_events

    mode, tracking_id, calls = job
    client = Client()
    latencies = []
    for variables in calls:
        begin = time.perf_counter()
        if mode == "http":
            body = json.dumps({"query": PUT_EVENTS, "variables": {"trackingId": tracking_id, **variables}})
            response = client.post("/graphql/", body, content_type="application/json")
            answer = response.json()
            assert response.status_code == 200 and "errors" not in answer, answer
            assert answer["data"]["putEvents"]["eventsRecorded"] == 10, answer
        else:
            events = [
                TrackedEvent(
                    event_type=e["eventType"], sent_at=e["sentAt"], item_id=e["itemId"], event_id=e["eventId"]
                )
                for e in variables["events"]
            ]
            result = put_events(
                tracking_id=tracking_id,
                session_id=variables["sessionId"],
                user_id=variables["userId"],
                events=events,
            )
            assert result.events_recorded == 10
        latencies.append(time.perf_counter() - begin)
    return latencies


def _timed(
    processes: int, mode: str, tracking_id: str, calls: list[dict[str, Any]]
) -> tuple[float, list[float]]:
    """Wall seconds and per-call latencies of `calls` split over `processes` forked processes."""
    from django.db import connections

    if processes == 1:
        started = time.perf_counter()
        latencies = _run_chunk((mode, tracking_id, calls))
        return time.perf_counter() - started, latencies
    connections.close_all()  # each forked process opens its own connection
    chunks = [(mode, tracking_id, calls[n::processes]) for n in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        started = time.perf_counter()
        results = pool.map(_run_chunk, chunks)
        seconds = time.perf_counter() - started
    return seconds, [latency for chunk in results for latency in chunk]


if __name__ == "__main__":
    main()
