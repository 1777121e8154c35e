"""putEvents throughput: events per second, 10 events per call, on a real WSGI server.

Fresh database (PostgreSQL or SQLite, `fresh_database` of import_speed.py), debug off, a catalog
of --items items and --users users, and one event tracker. Each call carries 10 click events of
one user and session, each with an eventId, mostly naming known items and now and then a new one
(a bare record is created).

Default mode `server`, as production runs it: gunicorn (--workers processes, --worker-class,
--threads) on a loopback port with persistent database connections, driven by 1, 4 and 8
concurrent clients (--clients; forked processes, each one keep-alive HTTP/1.1 connection, at
most --calls calls or --seconds seconds per measurement, best of --rounds rounds). Baselines in
the same run: the single-client rate for the concurrent ones, and the service call alone
(`recommendations.tracking.put_events` in this process, one client) for the HTTP path.

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
    os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")  # plain HTTP on loopback
    os.environ.setdefault("RECSITE_RATE_LIMIT_PER_IP", "0")  # every request comes from one address
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
    _analyze()

    shape = {"users": args.users, "items": args.items}
    if args.mode == "test-client":
        recorded = _test_client_mode(args, tracker.tracking_id, shape)
    else:
        recorded = _server_mode(args, tracker.tracking_id, shape)
    assert Interaction.objects.count() == recorded, (Interaction.objects.count(), recorded)


def _analyze() -> None:
    """Planner statistics, as a live database has them (PostgreSQL); again once events are stored.

    Analyzed while it was empty, the events table keeps statistics saying so until autovacuum
    comes by, and the planner then reads every event of the group to look up ten eventIds.
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def _service(tracking_id: str, shape: dict[str, int], calls: int) -> None:
    """The baseline: the service call alone, in this process, one client."""
    work = _calls(calls, **shape, seed=10, prefix="service")
    started = time.perf_counter()
    latencies = _run_chunk(("service", tracking_id, work))
    rate = len(work) * 10 / (time.perf_counter() - started)
    print(
        f"service put_events (in-process, 1 client, {calls} calls): {rate:,.0f} events/s "
        f"(p50 {_p(latencies, 50):.2f} ms, p99 {_p(latencies, 99):.2f} ms per call)"
    )


def _server_mode(args: argparse.Namespace, tracking_id: str, shape: dict[str, int]) -> int:
    from django.db import connections

    clients = [int(c) for c in args.clients.split(",")]
    service_calls = min(args.calls, 500)
    _service(tracking_id, shape, service_calls)
    _analyze()
    recorded = service_calls * 10
    connections.close_all()  # the clients are forked; the server has its own connections
    url = os.environ["DATABASE_URL"]
    # persistent connections, as a deployment configures them (django-environ reads the option)
    server_env = {**os.environ, "DATABASE_URL": url + ("&" if "?" in url else "?") + "conn_max_age=600"}
    print(
        f"server: gunicorn {args.workers} workers ({args.worker_class}, {args.threads} threads), "
        f"127.0.0.1, keep-alive clients, at most {args.calls} calls / {args.seconds:.0f} s per measurement, "
        f"best of {args.rounds} rounds"
    )
    best: dict[int, tuple[float, list[float], float]] = {}
    with _Server(args, server_env) as port:
        warm = _calls(100, **shape, seed=1, prefix="warm")
        recorded += 10 * sum(len(x) for x in _drive(port, tracking_id, warm, args.workers * 2, 30.0))
        for round_ in range(args.rounds):
            for n, count in enumerate(clients):
                work = _calls(args.calls, **shape, seed=100 + n, prefix=f"{count}-{round_}")
                started = time.perf_counter()
                chunks = _drive(port, tracking_id, work, count, args.seconds)
                seconds = time.perf_counter() - started
                latencies = [latency for chunk in chunks for latency in chunk]
                recorded += 10 * len(latencies)
                rate = len(latencies) * 10 / seconds
                if rate > best.get(count, (0.0,))[0]:
                    best[count] = (rate, latencies, seconds)
    base = best[clients[0]][0]
    for count in clients:
        rate, latencies, seconds = best[count]
        print(
            f"putEvents over HTTP ({count} client(s), {len(latencies)} calls in {seconds:.1f} s): "
            f"{rate:,.0f} events/s ({rate / 10:,.0f} calls/s; p50 {_p(latencies, 50):.2f} ms, "
            f"p99 {_p(latencies, 99):.2f} ms per call; {rate / base:.2f}x {clients[0]} client(s))"
        )
    return recorded


class _Server:
    """gunicorn on a free loopback port, serving recsite.wsgi; stopped on exit."""

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
            "recsite.wsgi:application",
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
    _analyze()

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
