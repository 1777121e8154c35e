"""Latency of `recommendations` through Django's request stack, against the bare engine call.

Prints p50 / p99 of, in the same run and process:

- `engine`: `selectors.campaign_recommend` (history query + model scoring, no filter, no GraphQL);
- `trivial`: `{ __typename }` through the test client (the GraphQL stack's own floor);
- `recommendations`: 25 items with an Items filter (placeholder value), `reason`, `score` and five
  catalog fields per item (`itemId`, `creationTimestamp`, `metadata`, `interactionCount` and the
  list's `itemId`) through `django.test.Client` POSTing JSON to /graphql/, debug off;

and the ratios of `recommendations` to the two others. The data (seed_demo: 100k items, 50k users,
1M events by default) is loaded into its own SQLite file once (`var/bench-api.sqlite3`, or
`DATABASE_URL`) and a user-personalization campaign is trained and deployed unless present.

    .venv/bin/python benchmarks/api_latency.py [--requests 2000] [--profile [--sort tottime]]
"""

import argparse
import cProfile
import io
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_DEBUG"] = "0"
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'var' / 'bench-api.sqlite3'}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from catalog.models import EndUser, Item  # noqa: E402
from catalog.selectors import dataset_group_get  # noqa: E402
from recommendations.filtering import filter_create  # noqa: E402
from recommendations.models import Campaign, Filter  # noqa: E402
from recommendations.selectors import campaign_recommend  # noqa: E402

__all__ = ["main"]

CAMPAIGN = "bench-user-personalization"
FILTER = "bench-category"
QUERY = """query Bench($user: String!, $cat: String!) {
  recommendations(userId: $user, numResults: 25, campaign: "bench-user-personalization",
                  filter: "bench-category", filterValues: [{name: "CAT", values: [$cat]}]) {
    recommendationId
    items { itemId score reason item { itemId creationTimestamp metadata interactionCount } }
  }
}"""


def _prepare(items: int, users: int, events: int) -> tuple[Campaign, list[str], list[str]]:
    """Load the data and deploy the campaign unless present; users with history and categories."""
    call_command("migrate", verbosity=0)
    group = dataset_group_get()
    if Item.objects.filter(dataset_group=group).count() < items:
        started = time.perf_counter()
        call_command(
            "seed_demo", "--items", str(items), "--users", str(users), "--events", str(events), "--force"
        )
        print(f"seeded in {time.perf_counter() - started:.1f} s", flush=True)
    campaign = Campaign.objects.filter(name=CAMPAIGN).first()
    if campaign is None:
        started = time.perf_counter()
        call_command(
            "train",
            "--recipe",
            "aws-user-personalization",
            "--solution",
            CAMPAIGN,
            "--deploy",
            "--campaign",
            CAMPAIGN,
        )
        print(f"trained and deployed in {time.perf_counter() - started:.1f} s", flush=True)
        campaign = Campaign.objects.get(name=CAMPAIGN)
    if not Filter.objects.filter(name=FILTER).exists():
        filter_create(
            dataset_group=group, name=FILTER, expression="INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ($CAT)"
        )
    with connection.cursor() as cursor:  # planner statistics after a bulk load (SQLite has none until then)
        cursor.execute("ANALYZE")
    user_ids = list(
        EndUser.objects.filter(dataset_group=group, interactions__isnull=False)
        .values_list("user_id", flat=True)
        .distinct()[:5000]
    )
    categories = sorted(
        {value for value in Item.objects.values_list("metadata__CATEGORY_L1", flat=True)[:5000] if value}
    )
    return campaign, user_ids, categories


def _time(call: Callable[[int], None], requests: int, warmup: int) -> list[float]:
    for n in range(warmup):
        call(n)
    times = []
    for n in range(requests):
        started = time.perf_counter()
        call(n)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--profile", action="store_true", help="print the top functions of the GraphQL run")
    parser.add_argument(
        "--sort", default="cumulative", help="the profile's order (a pstats key: cumulative, tottime, ...)"
    )
    args = parser.parse_args()
    assert not settings.DEBUG, "debug must be off"

    campaign, user_ids, categories = _prepare(args.items, args.users, args.events)
    rng = random.Random(7)
    order = [rng.choice(user_ids) for _ in range(args.requests + args.warmup)]
    client = Client()

    def engine(n: int) -> None:
        campaign_recommend(campaign=campaign, user_id=order[n], num_results=25)

    def trivial(n: int) -> None:
        response = client.post("/graphql/", {"query": "{ __typename }"}, content_type="application/json")
        assert response.status_code == 200

    def recommendations(n: int) -> None:
        variables = {"user": order[n], "cat": categories[n % len(categories)]}
        response = client.post(
            "/graphql/", {"query": QUERY, "variables": variables}, content_type="application/json"
        )
        body = response.json()
        assert "errors" not in body and len(body["data"]["recommendations"]["items"]) == 25, body

    light = (
        QUERY.replace(", $cat: String!", "")
        .replace(
            ',\n                  filter: "bench-category", filterValues: [{name: "CAT", values: [$cat]}]', ""
        )
        .replace(" interactionCount", "")
    )

    def recommendations_light(n: int) -> None:
        response = client.post(
            "/graphql/", {"query": light, "variables": {"user": order[n]}}, content_type="application/json"
        )
        body = response.json()
        assert "errors" not in body and len(body["data"]["recommendations"]["items"]) == 25, body

    results = {
        "engine (campaign_recommend)": _time(engine, args.requests, args.warmup),
        "trivial GraphQL ({ __typename })": _time(trivial, args.requests, args.warmup),
        "recommendations (filter, reasons, 5 item fields)": _time(
            recommendations, args.requests, args.warmup
        ),
        "  same, no filter, no interactionCount": _time(recommendations_light, args.requests, args.warmup),
    }
    print(
        f"\n{Item.objects.count()} items, {EndUser.objects.count()} users, {args.requests} requests, "
        f"debug {'on' if settings.DEBUG else 'off'}, {connection.vendor}"
    )
    print(f"{'':52} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, times in results.items():
        p50, p99 = _percentile(times, 0.5), _percentile(times, 0.99)
        print(f"{name:52} {p50:8.2f} {p99:8.2f} {statistics.fmean(times):8.2f}")
    api = results["recommendations (filter, reasons, 5 item fields)"]
    light_times = results["  same, no filter, no interactionCount"]
    for name in ("engine (campaign_recommend)", "trivial GraphQL ({ __typename })"):
        base = _percentile(results[name], 0.5)
        print(
            f"recommendations / {name}: p50 {_percentile(api, 0.5) / base:.2f}x "
            f"(no filter, no interactionCount: {_percentile(light_times, 0.5) / base:.2f}x)"
        )

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for n in range(min(args.requests, 500)):
            recommendations(n)
        profiler.disable()
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats(args.sort).print_stats(45)
        print(stream.getvalue())


if __name__ == "__main__":
    main()
