"""putEvents throughput: events per second, 10 events per call, on a real WSGI server.

Fresh database (PostgreSQL or SQLite, `fresh_database` of import_speed.py), debug off, a catalog
of --items items and --users users, and one event tracker. Each call carries 10 click events of
one user and session, each with an eventId, mostly naming known items and now and then a new one
(a bare record is created).

Default mode `server`, as production runs it: gunicorn (--workers processes, --worker-class,
--threads) on a loopback port with persistent database connections, driven by 1, 4 and 8
concurrent clients (--clients; forked processes, each one keep-alive HTTP/1.1 connection, at
most --calls calls or --seconds seconds per measurement). Each measurement is run twice in the
same run: with the previous ORM implementation of `put_events` (kept below as `legacy_put_events`,
swapped in by the server module for comparison only) and with `recommendations.tracking.put_events`.
The single-client rate is the baseline of the concurrent ones; the service call alone
(in-process, one client) is timed for both implementations too.

Mode `test-client` is the earlier measurement: Django's test client in --processes forked
processes, and the service call straight, in one process each.

    .venv/bin/python benchmarks/put_events.py --database-url postgres://postgres@127.0.0.1:5432/recsite_bench_put_events
"""

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.import_speed import fresh_database  # noqa: E402

__all__ = ["legacy_put_events", "main"]

PUT_EVENTS = (
    "mutation Put($trackingId: String!, $sessionId: String!, $userId: String, $events: [EventInput!]!) "
    "{ putEvents(trackingId: $trackingId, sessionId: $sessionId, userId: $userId, events: $events) "
    "{ eventsRecorded duplicatesIgnored } }"
)
IMPLEMENTATION_ENV = "RECSITE_BENCH_PUT_EVENTS"
"""Set (to `legacy` or `current`) only in the benchmark's gunicorn server: picks put_events."""


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


# --- the previous implementation, for the same-run before/after ratio ------------------------


def legacy_put_events(
    *, tracking_id: str, session_id: str, user_id: str | None = None, events: Sequence[Any]
) -> Any:
    """recommendations.tracking.put_events as it was before the plain-SQL rewrite (ORM, 6 queries)."""
    from django.db import connection, transaction

    from catalog.models import EndUser, Interaction, Item, RecordSource
    from catalog.schemas import DatasetType
    from recommendations.tracking import (
        MAX_EVENTS_PER_CALL,
        PutEventsResult,
        TrackingInputError,
        _check_event,
        _id,
        _specs,
        event_tracker_get,
    )

    def known(group_id: int, *, user_id: str | None, item_ids: set[str], event_ids: set[str]) -> tuple:
        parts: list[str] = []
        params: list[Any] = []

        def part(kind: str, table: str, column: str, pk: str, values: Sequence[str]) -> None:
            marks = ", ".join(["%s"] * len(values))
            parts.append(
                f"SELECT '{kind}', {column}, {pk} FROM {table} WHERE dataset_group_id = %s AND {column} IN ({marks})"  # noqa: E501
            )
            params.extend([group_id, *values])

        if user_id is not None:
            part("u", EndUser._meta.db_table, "user_id", "id", [user_id])
        if item_ids:
            part("i", Item._meta.db_table, "item_id", "id", sorted(item_ids))
        if event_ids:
            part("e", Interaction._meta.db_table, "event_id", "0", sorted(event_ids))
        users: dict[str, int] = {}
        items: dict[str, int] = {}
        stored: set[str] = set()
        if parts:
            with connection.cursor() as cursor:
                cursor.execute(" UNION ALL ".join(parts), params)
                for kind, external_id, pk in cursor.fetchall():
                    if kind == "u":
                        users[external_id] = pk
                    elif kind == "i":
                        items[external_id] = pk
                    else:
                        stored.add(external_id)
        return users, items, stored

    def bare(model: Any, group: Any, missing: set[str]) -> dict[str, int]:
        id_field = "item_id" if model is Item else "user_id"
        model.objects.bulk_create(
            [
                model(dataset_group=group, source=RecordSource.IMPLICIT, **{id_field: value})
                for value in sorted(missing)
            ],
            ignore_conflicts=True,
        )
        rows = model.objects.filter(dataset_group=group, **{f"{id_field}__in": missing}).order_by()
        return dict(rows.values_list(id_field, "pk"))

    tracker = event_tracker_get(tracking_id=tracking_id)
    group = tracker.dataset_group
    session = _id("sessionId", session_id, required=True) or ""
    user = _id("userId", user_id, required=False)
    events = list(events)
    if not 1 <= len(events) <= MAX_EVENTS_PER_CALL:
        raise TrackingInputError("events", f"must hold 1 to {MAX_EVENTS_PER_CALL} events, got {len(events)}")
    specs = _specs(group, DatasetType.INTERACTIONS) if any(e.properties for e in events) else None
    checked = [_check_event(index, event, specs) for index, event in enumerate(events)]
    with transaction.atomic():
        unique = []
        seen: set[str] = set()
        for event in checked:
            if event.event_id is not None:
                if event.event_id in seen:
                    continue
                seen.add(event.event_id)
            unique.append(event)
        users, items, stored = known(
            group.pk,
            user_id=user,
            item_ids={e.item_id for e in unique if e.item_id is not None},
            event_ids=seen,
        )
        if stored:
            unique = [event for event in unique if event.event_id is None or event.event_id not in stored]
        duplicates = len(checked) - len(unique)
        user_pk = None
        user_created = False
        if user is not None:
            if user not in users:
                users.update(bare(EndUser, group, {user}))
                user_created = True
            user_pk = users[user]
        missing_items = {e.item_id for e in unique if e.item_id is not None} - set(items)
        if missing_items:
            items.update(bare(Item, group, missing_items))
        rows = [
            Interaction(
                dataset_group=group,
                user_id=user_pk,
                session_id=session,
                item_id=items[event.item_id] if event.item_id is not None else None,
                event_type=event.event_type,
                event_value=event.event_value,
                timestamp=event.timestamp,
                event_id=event.event_id,
                impression=event.impression,
                recommendation_id=event.recommendation_id,
                properties=event.properties,
                source=RecordSource.PUT,
            )
            for event in unique
        ]
        if rows:
            Interaction.objects.bulk_create(rows, ignore_conflicts=any(e.event_id for e in unique))
        attributed = 0
        if user_pk is not None:
            attributed = Interaction.objects.filter(
                dataset_group=group, user__isnull=True, session_id=session
            ).update(user_id=user_pk)
    return PutEventsResult(
        events_recorded=len(rows),
        duplicates_ignored=duplicates,
        session_events_attributed=attributed,
        items_created=len(missing_items),
        user_created=user_created,
    )


def _use(implementation: str) -> None:
    """Make the GraphQL resolvers (which call `tracking.put_events`) use one implementation."""
    from recommendations import tracking

    if not hasattr(tracking, "_current_put_events"):
        tracking._current_put_events = tracking.put_events  # type: ignore[attr-defined]
    tracking.put_events = (  # type: ignore[assignment]
        legacy_put_events if implementation == "legacy" else tracking._current_put_events  # type: ignore[attr-defined]
    )


if os.environ.get(IMPLEMENTATION_ENV):  # imported by gunicorn as the benchmark's server module
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    _use(os.environ[IMPLEMENTATION_ENV])


# --- running ---------------------------------------------------------------------------------


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else values[0] * 1000


def main() -> None:
    """Run the benchmark and print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="sqlite")
    parser.add_argument("--mode", choices=["server", "test-client"], default="server")
    parser.add_argument("--calls", type=int, default=2000, help="at most this many calls per measurement")
    parser.add_argument("--seconds", type=float, default=15.0, help="at most this long per measurement")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--clients", default="1,4,8", help="server mode: concurrent clients, comma-separated")
    parser.add_argument("--workers", type=int, default=4, help="server mode: gunicorn worker processes")
    parser.add_argument("--worker-class", default="gthread", help="server mode: sync or gthread")
    parser.add_argument("--threads", type=int, default=2, help="server mode: threads per gthread worker")
    parser.add_argument("--rounds", type=int, default=2, help="server mode: alternating rounds, best counts")
    parser.add_argument("--processes", type=int, default=1, help="test-client mode: forked processes")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = fresh_database(args.database_url)
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,127.0.0.1"
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

    shape = {"users": args.users, "items": args.items}
    if args.mode == "test-client":
        recorded = _test_client_mode(args, tracker.tracking_id, shape)
    else:
        recorded = _server_mode(args, tracker.tracking_id, shape)
    assert Interaction.objects.count() == recorded, (Interaction.objects.count(), recorded)


def _service(tracking_id: str, shape: dict[str, int], calls: int) -> None:
    """The service call alone, in this process, one client: previous vs current implementation."""
    rates = {}
    for seed, implementation in enumerate(["legacy", "current", "legacy", "current"], start=10):
        _use(implementation)
        work = _calls(calls, **shape, seed=seed, prefix=f"service-{seed}")
        started = time.perf_counter()
        latencies = _run_chunk(("service", tracking_id, work))
        seconds = time.perf_counter() - started
        rates[implementation] = (len(work) * 10 / seconds, latencies)  # the second round counts
    _use("current")
    for implementation, (rate, latencies) in rates.items():
        print(
            f"service put_events ({implementation}, in-process, 1 client, {calls} calls): "
            f"{rate:,.0f} events/s (p50 {_p(latencies, 50):.2f} ms, p99 {_p(latencies, 99):.2f} ms per call)"
        )
    print(f"service: current / legacy = {rates['current'][0] / rates['legacy'][0]:.2f}x")


def _server_mode(args: argparse.Namespace, tracking_id: str, shape: dict[str, int]) -> int:
    from django.db import connections

    clients = [int(c) for c in args.clients.split(",")]
    recorded = 0
    rates: dict[tuple[str, int], float] = {}
    service_calls = min(args.calls, 500)
    _service(tracking_id, shape, service_calls)
    recorded += 4 * service_calls * 10
    connections.close_all()  # the clients are forked; the server has its own connections
    url = os.environ["DATABASE_URL"]
    server_env = {
        **os.environ,
        IMPLEMENTATION_ENV: "",
        # persistent connections, as a deployment configures them (django-environ reads the option)
        "DATABASE_URL": url + ("&" if "?" in url else "?") + "conn_max_age=600",
    }
    print(
        f"server: gunicorn {args.workers} workers ({args.worker_class}, {args.threads} threads), "
        f"127.0.0.1, keep-alive clients, at most {args.calls} calls / {args.seconds:.0f} s per measurement, "
        f"best of {args.rounds} rounds"
    )
    servers = {}
    for implementation in ["legacy", "current"]:
        server_env[IMPLEMENTATION_ENV] = implementation
        servers[implementation] = _Server(args, dict(server_env))
    try:
        ports = {implementation: server.__enter__() for implementation, server in servers.items()}
        for implementation, port in ports.items():
            warm = _calls(100, **shape, seed=1, prefix=f"warm-{implementation}")
            recorded += 10 * sum(len(x) for x in _drive(port, tracking_id, warm, args.workers * 2, 30.0))
        # Both servers run side by side; measurements alternate between them, --rounds times,
        # so background load on the machine falls on both alike. The best round counts.
        best: dict[tuple[str, int], tuple[float, list[float], float]] = {}
        for round_ in range(args.rounds):
            for n, count in enumerate(clients):
                for implementation, port in ports.items():
                    work = _calls(
                        args.calls, **shape, seed=100 + n, prefix=f"{implementation}-{count}-{round_}"
                    )
                    started = time.perf_counter()
                    chunks = _drive(port, tracking_id, work, count, args.seconds)
                    seconds = time.perf_counter() - started
                    latencies = [latency for chunk in chunks for latency in chunk]
                    recorded += 10 * len(latencies)
                    rate = len(latencies) * 10 / seconds
                    if rate > best.get((implementation, count), (0.0,))[0]:
                        best[implementation, count] = (rate, latencies, seconds)
    finally:
        for server in servers.values():
            server.__exit__()
    for implementation in ports:
        for count in clients:
            rate, latencies, seconds = best[implementation, count]
            rates[implementation, count] = rate
            base = rates[implementation, clients[0]]
            print(
                f"putEvents over HTTP ({implementation}, {count} client(s), {len(latencies)} calls in "
                f"{seconds:.1f} s): {rate:,.0f} events/s ({rate / 10:,.0f} calls/s; p50 "
                f"{_p(latencies, 50):.2f} ms, p99 {_p(latencies, 99):.2f} ms per call; "
                f"{rate / base:.2f}x {clients[0]} client(s))"
            )
    for count in clients:
        print(
            f"{count} client(s): current / legacy = {rates['current', count] / rates['legacy', count]:.2f}x"
        )
    return recorded


class _Server:
    """gunicorn on a free loopback port, serving this module's `application`; stopped on exit."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.args, self.env = args, env

    def __enter__(self) -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "benchmarks.put_events:application",
            f"--bind=127.0.0.1:{self.port}",
            f"--workers={self.args.workers}",
            f"--worker-class={self.args.worker_class}",
            f"--threads={self.args.threads}",
            "--keep-alive=30",
            "--log-level=warning",
            f"--chdir={ROOT}",
        ]
        self.process = subprocess.Popen(command, env=self.env, cwd=ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self.port
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("gunicorn exited") from None
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def __exit__(self, *exc: object) -> None:
        if not hasattr(self, "process"):
            return
        self.process.terminate()
        self.process.wait(timeout=30)


def _drive(port: int, tracking_id: str, calls: list[dict[str, Any]], clients: int, seconds: float) -> list:
    """Latencies of `calls` split over `clients` forked keep-alive clients, each stopping at the deadline."""
    deadline = time.perf_counter() + seconds
    jobs = [(port, tracking_id, calls[n::clients], deadline) for n in range(clients)]
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        return pool.map(_client, jobs)


def _client(job: tuple[int, str, list[dict[str, Any]], float]) -> list[float]:
    """One HTTP/1.1 keep-alive client: POST each call to /graphql/ until done or the deadline."""
    port, tracking_id, calls, deadline = job
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "Host": "127.0.0.1"}
    latencies = []
    for variables in calls:
        if time.perf_counter() >= deadline:
            break
        body = json.dumps({"query": PUT_EVENTS, "variables": {"trackingId": tracking_id, **variables}})
        begin = time.perf_counter()
        conn.request("POST", "/graphql/", body, headers)
        response = conn.getresponse()
        answer = json.loads(response.read())
        latencies.append(time.perf_counter() - begin)
        assert response.status == 200 and "errors" not in answer, answer
        assert answer["data"]["putEvents"]["eventsRecorded"] == 10, answer
    conn.close()
    return latencies


def _test_client_mode(args: argparse.Namespace, tracking_id: str, shape: dict[str, int]) -> int:
    warm = _calls(50, **shape, seed=1, prefix="warm")
    over_http = _calls(args.calls, **shape, seed=2, prefix="http")
    direct = _calls(args.calls, **shape, seed=3, prefix="direct")
    _run_chunk(("http", tracking_id, warm))

    http_seconds, latencies = _timed(args.processes, "http", tracking_id, over_http)
    service_seconds, service_latencies = _timed(args.processes, "service", tracking_id, direct)
    events = args.calls * 10
    http_rate, service_rate = events / http_seconds, events / service_seconds
    print(
        f"putEvents through /graphql/ (test client, 10 events/call, {args.calls} calls, "
        f"{args.processes} process(es)): {http_rate:,.0f} events/s "
        f"({args.calls / http_seconds:,.0f} calls/s; "
        f"p50 {_p(latencies, 50):.2f} ms, p99 {_p(latencies, 99):.2f} ms per call)"
    )
    print(
        f"baseline tracking.put_events (same shape, same run, same processes): {service_rate:,.0f} events/s "
        f"(p50 {_p(service_latencies, 50):.2f} ms, p99 {_p(service_latencies, 99):.2f} ms per call)"
    )
    print(f"GraphQL + request stack overhead: {http_seconds / service_seconds:.2f}x the service call")
    return (len(warm) + 2 * args.calls) * 10


def _run_chunk(job: tuple[str, str, list[dict[str, Any]]]) -> list[float]:
    """Run one process's share of calls ("http" through the test client or "service"); latencies."""
    from django.test import Client

    from recommendations import tracking

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
                tracking.TrackedEvent(
                    event_type=e["eventType"], sent_at=e["sentAt"], item_id=e["itemId"], event_id=e["eventId"]
                )
                for e in variables["events"]
            ]
            result = tracking.put_events(
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
