"""Time to serve the admin dashboard (/admin/dashboard/) on the 1M-event benchmark database.

Prints, through Django's test client with debug off and a signed-in superuser: the median and
slowest of `--runs` requests with every chart drawn (the per-process chart cache emptied first, as
on a shop whose events keep coming), the same with the charts cached (a shop whose data did not
change), the queries one page makes, and the time of each panel's selector and chart on its own.

The database is api_latency.py's (`var/bench-api.sqlite3`: seed_demo with 100k items, 50k users,
1M events over six weeks; build it with `benchmarks/api_latency.py`), or `DATABASE_URL`. It is
migrated in place; the login this script needs (`bench-dashboard`) is created once.

    .venv/bin/python benchmarks/dashboard_render.py [--runs 7] [--days 7]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_DEBUG"] = "0"
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("RECSITE_RATE_LIMIT_PER_IP", "0")
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'var' / 'bench-api.sqlite3'}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from catalog.models import Interaction  # noqa: E402
from catalog.selectors import dataset_group_get  # noqa: E402
from recommendations.dashboard import charts, selectors  # noqa: E402


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.0f} ms"


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--days", type=int, default=7)
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    events = Interaction.objects.count()
    if not events:
        sys.exit("The database has no events: build it with benchmarks/api_latency.py first.")
    users = get_user_model().objects
    user = users.filter(username="bench-dashboard").first() or users.create_superuser(
        "bench-dashboard", "bench@localhost", None
    )
    client = Client()
    client.force_login(user)
    url = f"/admin/dashboard/?days={options.days}"
    assert client.get(url).status_code == 200  # imports, connections, warm caches

    drawn, cached = [], []
    for _ in range(options.runs):
        charts.chart_cache_clear()
        started = time.perf_counter()
        client.get(url)
        drawn.append(time.perf_counter() - started)
        started = time.perf_counter()
        client.get(url)
        cached.append(time.perf_counter() - started)
    with CaptureQueriesContext(connection) as queries:
        client.get(url)

    group = dataset_group_get()
    window = selectors.dashboard_window(dataset_group=group, days=options.days)
    in_window = Interaction.objects.filter(timestamp__gte=window.start, timestamp__lt=window.end).count()
    print(f"{connection.vendor}, {events:,} events, {in_window:,} in the {options.days}-day window")
    print(f"page, charts drawn   median {_ms(statistics.median(drawn))}  max {_ms(max(drawn))}")
    print(f"page, charts cached  median {_ms(statistics.median(cached))}  max {_ms(max(cached))}")
    print(f"queries per page     {len(queries.captured_queries)}")

    parts = {
        "events_per_hour": lambda: selectors.events_per_hour(dataset_group=group, window=window),
        "top_items": lambda: selectors.top_items(dataset_group=group, window=window),
        "trending_items": lambda: selectors.trending_items(dataset_group=group, window=window),
        "solution_rows": lambda: selectors.solution_rows(dataset_group=group),
        "campaign_rows": lambda: selectors.campaign_rows(dataset_group=group),
        "outbox_backlog": selectors.outbox_backlog,
        "failed_jobs": selectors.failed_jobs,
    }
    results = {}
    for name, read in parts.items():
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            results[name] = read()
            timings.append(time.perf_counter() - started)
        print(f"  selector {name:20s} {_ms(min(timings))}")
    drawings = {
        "events_chart": lambda: charts.events_chart(results["events_per_hour"]),
        "top_items_chart": lambda: charts.top_items_chart(results["top_items"], window.days),
        "trending_items_chart": lambda: charts.trending_items_chart(results["trending_items"]),
        "metrics_chart": lambda: charts.metrics_chart(results["solution_rows"]),
    }
    for name, draw in drawings.items():
        timings = []
        for _ in range(3):
            charts.chart_cache_clear()
            started = time.perf_counter()
            draw()
            timings.append(time.perf_counter() - started)
        print(f"  chart    {name:20s} {_ms(min(timings))}")


if __name__ == "__main__":
    main()
