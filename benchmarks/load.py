"""Load test: mixed GraphQL traffic at a fixed rate against gunicorn, then rate steps to saturation.

Set-up (this process, Django): a fresh PostgreSQL database (`fresh_database` of import_speed.py),
a seed_demo shop (--items, --users, --events), three campaigns trained and deployed
(aws-user-personalization, aws-sims, aws-personalized-ranking), a category filter and an event
tracker. The server is put_events.py's `_Server`: gunicorn on recsite.wsgi, --workers (2) sync
workers (or gthread with --threads), BLAS pinned to --blas-threads (1) per process, on loopback,
debug off, persistent database connections, Redis as the cache (rate-limit counters: the limit is
set high, so every request still pays its Redis round trip) and as the Celery broker.

Traffic (locust as a library, headless, FastHttpUser, open loop: Poisson arrivals per user, enough
users that latency does not slow the offered rate), all operations anonymous as a browser frontend
calls them:

- 80% `recommendations` (25 items, the category filter with a random category, score, reason and
  the item's catalog fields) for users with history;
- 15% `putEvents` (one click event with a fresh eventId, sentAt now);
- 2.5% `relatedItems` (sims campaign), 2.5% `personalizedRanking` (25 item ids).

A request counts as an error unless it is HTTP 200 with no GraphQL errors. Runs: a warm-up, the
headline (--rate for --seconds), then --steps rates for --step-seconds each until the achieved rate
falls below 95% of the offered one or errors appear (the saturation point is the highest clean
step). Same-run baselines: the machine's idle CPU before starting (it is shared) and the
saturated rate of a trivial query (`{ __typename }`, closed loop) on the same server. Each run
also reports the load generator's and the server's CPU, so the client is seen not to be the
bottleneck. The load generator runs in separate processes (--drivers per 400 requests/s).

    .venv/bin/python benchmarks/load.py --database-url postgres://postgres@127.0.0.1:5432/recsite_load
"""

import sys

if __name__ == "__main__" and "--drive" in sys.argv:  # a load-generator process: gevent first
    from gevent import monkey

    monkey.patch_all()

import argparse
import gc
import json
import math
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

__all__ = ["main"]

CAMPAIGNS = {
    "aws-user-personalization": "load-user-personalization",
    "aws-sims": "load-sims",
    "aws-personalized-ranking": "load-ranking",
}
FILTER = "load-category"
TRACKER = "load"
RECOMMENDATIONS = """query Recs($user: String!, $cat: String!) {
  recommendations(userId: $user, numResults: 25, campaign: "load-user-personalization",
                  filter: "load-category", filterValues: [{name: "CAT", values: [$cat]}]) {
    recommendationId
    items { itemId score reason item { itemId creationTimestamp metadata } }
  }
}"""
RELATED = """query Related($item: String!) {
  relatedItems(itemId: $item, numResults: 25, campaign: "load-sims") {
    recommendationId items { itemId score }
  }
}"""
RANKING = """query Rank($user: String!, $items: [String!]!) {
  personalizedRanking(userId: $user, itemIds: $items, campaign: "load-ranking") { items { itemId score } }
}"""
PUT_EVENTS = """mutation Put($trackingId: String!, $sessionId: String!, $userId: String,
                              $events: [EventInput!]!) {
  putEvents(trackingId: $trackingId, sessionId: $sessionId, userId: $userId, events: $events) {
    eventsRecorded
  }
}"""
TRIVIAL = "{ __typename }"
MIX = {"recommendations": 160, "putEvents": 30, "relatedItems": 5, "personalizedRanking": 5}
"""Weights out of 200: 80% / 15% / 2.5% / 2.5%."""


# --- set-up (Django) -------------------------------------------------------------------------


def _prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Fresh database, demo shop, three campaigns, a filter and a tracker; the plan the drivers need."""
    from benchmarks.import_speed import fresh_database

    os.environ["DATABASE_URL"] = fresh_database(args.database_url)
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ["DJANGO_SECURE_SSL_REDIRECT"] = "0"  # plain HTTP on loopback
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,127.0.0.1"
    os.environ["DJANGO_SETTINGS_MODULE"] = "recsite.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from catalog.models import EndUser, Item
    from catalog.selectors import dataset_group_get
    from recommendations.filtering import filter_create
    from recommendations.tracking import event_tracker_create

    assert not settings.DEBUG
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    call_command(
        "seed_demo", "--items", str(args.items), "--users", str(args.users), "--events", str(args.events)
    )
    print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
    for recipe, name in CAMPAIGNS.items():
        started = time.perf_counter()
        call_command("train", "--recipe", recipe, "--solution", name, "--deploy", "--campaign", name)
        print(f"{recipe} trained and deployed in {time.perf_counter() - started:.0f} s", flush=True)
    group = dataset_group_get()
    filter_create(
        dataset_group=group, name=FILTER, expression="INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ($CAT)"
    )
    tracker = event_tracker_create(dataset_group=group, name=TRACKER)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    users = list(
        EndUser.objects.filter(dataset_group=group, interactions__isnull=False)
        .values_list("user_id", flat=True)
        .distinct()[:5000]
    )
    items = list(Item.objects.filter(dataset_group=group).values_list("item_id", flat=True)[:20000])
    categories = sorted({v for v in Item.objects.values_list("metadata__CATEGORY_L1", flat=True) if v})
    print(
        f"data: {Item.objects.count()} items, {EndUser.objects.count()} users, {args.events} events, "
        f"{len(categories)} categories; database {connection.vendor}",
        flush=True,
    )
    connection.close()
    return {"tracking_id": tracker.tracking_id, "users": users, "items": items, "categories": categories}


# --- the load generator (a separate process, gevent + locust) --------------------------------


def _drive(args: argparse.Namespace) -> None:
    """Run one load generator: offered rate, or closed loop for the trivial query; print JSON."""
    import gevent
    from locust import FastHttpUser, constant, task
    from locust.env import Environment

    plan = json.loads(Path(args.plan).read_text())
    rng = random.Random(os.getpid())
    latencies: list[float] = []
    by_name: dict[str, list[float]] = {}
    errors: list[str] = []

    def post(user: FastHttpUser, name: str, query: str, variables: dict[str, Any]) -> None:
        body = json.dumps({"query": query, "variables": variables})
        started = time.perf_counter()
        headers = {"Content-Type": "application/json"}
        with user.client.post(
            "/graphql/", data=body, name=name, headers=headers, catch_response=True
        ) as response:
            elapsed = (time.perf_counter() - started) * 1000
            try:
                answer = json.loads(response.content or b"null")
            except ValueError:
                answer = None
            if response.status_code != 200 or not isinstance(answer, dict) or answer.get("errors"):
                message = f"{name}: HTTP {response.status_code} {str(response.content)[:200]}"
                errors.append(message)
                response.failure(message)
            else:
                latencies.append(elapsed)
                by_name.setdefault(name, []).append(elapsed)
                response.success()

    class Shopper(FastHttpUser):
        host = f"http://127.0.0.1:{args.port}"
        next_at = 0.0

        def wait_time(self) -> float:
            """Poisson arrivals at rate/users per user (open loop): a fixed pace would send every
            user's request at the same instant, a burst real traffic never makes."""
            now = time.monotonic()
            self.next_at = (self.next_at or now) + rng.expovariate(args.rate / args.users)
            return max(0.0, self.next_at - now)

        @task(MIX["recommendations"])
        def recommendations(self) -> None:
            variables = {"user": rng.choice(plan["users"]), "cat": rng.choice(plan["categories"])}
            post(self, "recommendations", RECOMMENDATIONS, variables)

        @task(MIX["putEvents"])
        def put_events(self) -> None:
            user = rng.choice(plan["users"])
            event = {
                "eventType": "click",
                "sentAt": time.time(),
                "itemId": rng.choice(plan["items"]),
                "eventId": uuid.uuid4().hex,
            }
            variables = {
                "trackingId": plan["tracking_id"],
                "sessionId": f"session-{user}",
                "userId": user,
                "events": [event],
            }
            post(self, "putEvents", PUT_EVENTS, variables)

        @task(MIX["relatedItems"])
        def related_items(self) -> None:
            post(self, "relatedItems", RELATED, {"item": rng.choice(plan["items"])})

        @task(MIX["personalizedRanking"])
        def personalized_ranking(self) -> None:
            variables = {"user": rng.choice(plan["users"]), "items": rng.sample(plan["items"], 25)}
            post(self, "personalizedRanking", RANKING, variables)

    class Trivial(FastHttpUser):
        host = f"http://127.0.0.1:{args.port}"
        wait_time = constant(0)

        @task
        def trivial(self) -> None:
            post(self, "trivial", TRIVIAL, {})

    user_class = Trivial if args.trivial else Shopper
    env = Environment(user_classes=[user_class])
    gc.freeze()  # the generator's own full collections would show up as the server's latency
    gc.disable()
    runner = env.create_local_runner()
    runner.start(args.users, spawn_rate=min(args.users, 100))
    started = time.perf_counter()
    gevent.sleep(args.seconds)
    runner.quit()
    seconds = time.perf_counter() - started
    result = {
        "latencies": latencies,
        "by_name": by_name,
        "errors": len(errors),
        "samples": errors[:3],
        "seconds": seconds,
    }
    Path(args.out).write_text(json.dumps(result))  # a file, not stdout: a full pipe would block the driver


# --- orchestration ---------------------------------------------------------------------------


def _cpu_busy() -> tuple[float, float]:
    """Busy and total CPU jiffies of the whole machine (every core), from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else (values or [math.nan])[0]


def _run(
    plan_path: str, port: int, server_pid: int, *, rate: float, seconds: float, trivial: bool = False
) -> dict[str, Any]:
    """Offer `rate` requests/s (0: closed loop) for `seconds` from enough driver processes; figures."""
    import psutil

    drivers = max(1, math.ceil(rate / 400)) if rate else 2
    users_each = max(10, math.ceil(rate / drivers / 4)) if rate else 8
    command = [sys.executable, __file__, "--drive", "--plan", plan_path, "--port", str(port)]
    server = psutil.Process(server_pid)
    server_processes = [server, *server.children(recursive=True)]
    server_cpu = sum(sum(p.cpu_times()[:2]) for p in server_processes)
    busy, total = _cpu_busy()
    outs = [f"{plan_path}.{n}.out.json" for n in range(drivers)]
    processes = [
        subprocess.Popen(
            [
                *command,
                "--out",
                outs[n],
                "--rate",
                str(rate / drivers),
                "--users",
                str(users_each),
                "--seconds",
                str(seconds),
                *(["--trivial"] if trivial else []),
            ]
        )
        for n in range(drivers)
    ]
    watched = [psutil.Process(p.pid) for p in processes]
    driver_cpu = dict.fromkeys(range(drivers), 0.0)
    outputs = []
    for n, (process, watch) in enumerate(zip(processes, watched, strict=True)):
        while process.poll() is None:
            try:
                driver_cpu[n] = sum(watch.cpu_times()[:2])
            except psutil.NoSuchProcess:
                break
            time.sleep(0.5)
        if process.wait() != 0:
            raise RuntimeError(f"load generator {n} failed (exit {process.returncode})")
        outputs.append(json.loads(Path(outs[n]).read_text()))
        os.unlink(outs[n])
    busy_after, total_after = _cpu_busy()
    server_cpu = sum(sum(p.cpu_times()[:2]) for p in server_processes if p.is_running()) - server_cpu
    wall = max(o["seconds"] for o in outputs)
    latencies = [latency for o in outputs for latency in o["latencies"]]
    errors = sum(o["errors"] for o in outputs)
    by_name: dict[str, list[float]] = {}
    for output in outputs:
        for name, values in output["by_name"].items():
            by_name.setdefault(name, []).extend(values)
    return {
        "operations": {
            name: (len(values), _percentile(values, 50), _percentile(values, 99))
            for name, values in sorted(by_name.items())
        },
        "offered": rate,
        "achieved": (len(latencies) + errors) / wall,
        "requests": len(latencies) + errors,
        "errors": errors,
        "samples": [s for o in outputs for s in o["samples"]][:3],
        "p50": _percentile(latencies, 50),
        "p99": _percentile(latencies, 99),
        "max": max(latencies, default=math.nan),
        "driver_cpu": max(driver_cpu.values()) / wall * 100,
        "drivers": drivers,
        "server_cpu": server_cpu / wall * 100,
        "machine_busy": (busy_after - busy) / (total_after - total) * 100,
    }


def _line(label: str, r: dict[str, Any]) -> str:
    operations = "; ".join(
        f"{name} {n} p50 {p50:.1f} p99 {p99:.1f} ms" for name, (n, p50, p99) in r["operations"].items()
    )
    return (
        f"{label:<26} offered {r['offered']:>5.0f}/s  achieved {r['achieved']:>6.1f}/s  "
        f"{r['requests']:>6} requests  errors {r['errors']:>3}  p50 {r['p50']:6.1f} ms  "
        f"p99 {r['p99']:6.1f} ms  max {r['max']:6.0f} ms  | CPU: server {r['server_cpu']:.0f}%, "
        f"busiest driver {r['driver_cpu']:.0f}% of a core ({r['drivers']} drivers), "
        f"machine {r['machine_busy']:.0f}% of all cores\n    by operation: {operations}"
    )


def main() -> None:
    """Set up, serve, and print the headline run, the trivial baseline and the saturation steps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/recsite_load")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5", help="cache and Celery broker")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=200.0, help="headline offered rate, requests/s")
    parser.add_argument("--seconds", type=float, default=60.0, help="headline duration")
    parser.add_argument("--steps", default="50,100,125,150,175,200,250", help="saturation search rates")
    parser.add_argument("--step-seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="sync", help="sync, or gthread with --threads")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--blas-threads", type=int, default=1, help="OPENBLAS/OMP/MKL_NUM_THREADS for the server (0: unset)"
    )
    # driver mode (internal)
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--trivial", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.drive:
        args.users = int(args.users)
        _drive(args)
        return

    from benchmarks.put_events import _Server

    idle_busy, idle_total = _cpu_busy()
    load_before = os.getloadavg()
    time.sleep(5)
    busy, total = _cpu_busy()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"before starting: load average {load_before[0]:.2f}, "
        f"{(busy - idle_busy) / (total - idle_total) * 100:.0f}% of all cores busy (other sessions)",
        flush=True,
    )
    plan = _prepare(args)
    plan_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115 - removed below
    json.dump(plan, plan_file)
    plan_file.close()
    url = os.environ["DATABASE_URL"]
    server_env = {
        **os.environ,
        "DATABASE_URL": url + ("&" if "?" in url else "?") + "conn_max_age=600",
        "CACHE_URL": args.redis_url,
        "CELERY_BROKER_URL": args.redis_url,
        "RECSITE_RATE_LIMIT_PER_IP": "1000000000",  # counted in Redis, never reached
    }
    if args.blas_threads:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            server_env[name] = str(args.blas_threads)
    print(
        f"server: gunicorn {args.workers} workers ({args.worker_class}, {args.threads} threads), "
        f"BLAS threads {args.blas_threads or 'unset'}, 127.0.0.1, Redis cache and broker {args.redis_url}; "
        f"mix {MIX} (of 200)",
        flush=True,
    )
    try:
        server = _Server(args, server_env)
        with server as port:
            server_pid = server.process.pid
            _run(plan_file.name, port, server_pid, rate=100, seconds=10)  # warm-up: models mapped, caches
            headline = _run(plan_file.name, port, server_pid, rate=args.rate, seconds=args.seconds)
            print(_line(f"headline {args.seconds:.0f} s", headline), flush=True)
            for sample in headline["samples"]:
                print(f"  error: {sample}")
            trivial = _run(plan_file.name, port, server_pid, rate=0, seconds=15, trivial=True)
            print(_line("baseline { __typename }", trivial), flush=True)
            saturation = within_target = None
            for rate in [float(r) for r in args.steps.split(",") if r]:
                step = _run(plan_file.name, port, server_pid, rate=rate, seconds=args.step_seconds)
                print(_line(f"step {args.step_seconds:.0f} s", step), flush=True)
                if step["errors"] or step["achieved"] < 0.95 * rate:
                    break
                saturation = step
                if step["p99"] <= 50:
                    within_target = step
    finally:
        os.unlink(plan_file.name)
    kept_up = f"{saturation['offered']:.0f}/s (p99 {saturation['p99']:.1f} ms)" if saturation else "none"
    fast = within_target and f"{within_target['offered']:.0f}/s (p99 {within_target['p99']:.1f} ms)"
    print(
        f"saturation: highest step served in full without errors {kept_up}; highest with p99 <= 50 ms "
        f"{fast or 'none'}; the trivial query saturated at {trivial['achieved']:.0f}/s on the same server"
    )


if __name__ == "__main__":
    main()
