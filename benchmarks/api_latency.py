"""Latency of `recommendations` through Django's request stack, against the bare engine call.

Prints p50 / p99 of, in the same run and process:

- `engine`: `selectors.campaign_recommend` (history query + model scoring, no filter, no GraphQL);
- `serving`: `serving.recommendation_list` with the filter (engine, filter mask, new-item
  exploration, the recommendationId record), no GraphQL;
- `trivial`: `{ __typename }` through the test client (the GraphQL stack's own floor);
- `recommendations`: 25 items with an Items filter (placeholder value), `score`, `reason` and the
  item's catalog fields (`itemId`, `creationTimestamp`, `metadata`: the shop's five or six catalog
  columns CATEGORY_L1, CATEGORY_L2, BRAND, PRICE, PRODUCT_DESCRIPTION, TAGS) through
  `django.test.Client` POSTing JSON to /graphql/, debug off;
- the same with `interactionCount` (a COUNT over each item's events: its cost grows with the items'
  popularity), and without the filter;

and the ratios of `recommendations` to the engine, serving and trivial rows. The data (seed_demo:
100k items, 50k users, 1M events by default) is loaded into its own SQLite file once
(`var/bench-api.sqlite3`, or `DATABASE_URL`) and a user-personalization campaign is trained and
deployed unless present.

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
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")  # plain HTTP on loopback
os.environ.setdefault("RECSITE_RATE_LIMIT_PER_IP", "0")  # every request comes from one address
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
from recommendations.serving import recommendation_list  # noqa: E402

__all__ = ["main"]

CAMPAIGN = "bench-user-personalization"
FILTER = "bench-category"
QUERY = """query Bench($user: String!, $cat: String!) {
  recommendations(userId: $user, numResults: 25, campaign: "bench-user-personalization",
                  filter: "bench-category", filterValues: [{name: "CAT", values: [$cat]}]) {
    recommendationId
    items { itemId score reason item { itemId creationTimestamp metadata } }
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

    def serving(n: int) -> None:
        recommendation_list(
            campaign_name=CAMPAIGN,
            user_id=order[n],
            num_results=25,
            filter_name=FILTER,
            filter_values={"CAT": [categories[n % len(categories)]]},
        )

    def graphql(query: str, *, filtered: bool = True) -> Callable[[int], None]:
        def call(n: int) -> None:
            variables = {"user": order[n]}
            if filtered:
                variables["cat"] = categories[n % len(categories)]
            response = client.post(
                "/graphql/", {"query": query, "variables": variables}, content_type="application/json"
            )
            body = response.json()
            assert "errors" not in body and len(body["data"]["recommendations"]["items"]) == 25, body

        return call

    recommendations = graphql(QUERY)
    unfiltered = QUERY.replace(", $cat: String!", "").replace(
        ',\n                  filter: "bench-category", filterValues: [{name: "CAT", values: [$cat]}]', ""
    )
    headline = "recommendations (filter, reasons, item catalog fields)"
    runs = {
        "engine (campaign_recommend)": engine,
        "serving (recommendation_list, filter)": serving,
        "trivial GraphQL ({ __typename })": trivial,
        headline: recommendations,
        "  same + interactionCount": graphql(QUERY.replace("metadata }", "metadata interactionCount }")),
        "  same, no filter": graphql(unfiltered, filtered=False),
    }
    results = {name: _time(call, args.requests, args.warmup) for name, call in runs.items()}
    print(
        f"\n{Item.objects.count()} items, {EndUser.objects.count()} users, {args.requests} requests, "
        f"debug {'on' if settings.DEBUG else 'off'}, {connection.vendor}"
    )
    print(f"{'':56} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, times in results.items():
        p50, p99 = _percentile(times, 0.5), _percentile(times, 0.99)
        print(f"{name:56} {p50:8.2f} {p99:8.2f} {statistics.fmean(times):8.2f}")
    api = _percentile(results[headline], 0.5)
    for name in list(runs)[:3]:
        print(f"recommendations / {name}: p50 {api / _percentile(results[name], 0.5):.2f}x")

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
