"""Added latency of the Personalize-compatible endpoint against the GraphQL `recommendations` query.

Same request both ways, on one gunicorn server on loopback (debug off, persistent database
connections), from one keep-alive HTTP/1.1 client, the kinds interleaved request by request so
both see the same machine state:

- `GraphQL`: `recommendations(userId, numResults: 25, campaign, filter, filterValues)` selecting
  `recommendationId` and `itemId score reason promotionName` (what GetRecommendations returns);
- `compat`: POST /personalize/recommendations with `campaignArn`, `userId`, `numResults`,
  `filterArn` and `filterValues` in Personalize's JSON-quoted form (a SigV4-shaped header; the
  signature is not checked yet, so its cost is not part of the figure);
- the same pair with three item fields (`item { metadata }` against `metadataColumns`);
- `boto3`: the compat request through a real `boto3.client("personalize-runtime")`, client-side
  signing and parsing included (what an application sees).

The data and campaign are api_latency.py's (seed_demo shop, a user-personalization campaign and
a category filter), in their own SQLite file (`var/bench-compat.sqlite3`, or `DATABASE_URL`);
gunicorn is put_events.py's.

    .venv/bin/python benchmarks/compat_latency.py [--requests 1000] [--items 100000 --events 1000000]
"""

import argparse
import http.client
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_DEBUG"] = "0"
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")  # plain HTTP on loopback
os.environ.setdefault("RECSITE_RATE_LIMIT_PER_IP", "0")  # every request comes from one address
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key")
os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,127.0.0.1"
os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'var' / 'bench-compat.sqlite3'}")

from benchmarks.api_latency import CAMPAIGN, FILTER, _percentile, _prepare  # noqa: E402  (sets up Django)
from benchmarks.put_events import _Server  # noqa: E402

__all__ = ["main"]

ARN = "arn:aws:personalize:us-east-1:000000000000"
GRAPHQL = """query Bench($user: String!, $cat: String!) {
  recommendations(userId: $user, numResults: 25, campaign: "%s",
                  filter: "%s", filterValues: [{name: "CAT", values: [$cat]}]) {
    recommendationId
    items { itemId score reason promotionName%s }
  }
}"""
COLUMNS = ("CATEGORY_L1", "BRAND", "PRICE")
AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=bench/20261128/us-east-1/personalize/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, Signature=" + "0" * 64
)


class _Client:
    """One keep-alive HTTP/1.1 connection to the server; POSTs JSON and returns the decoded answer."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        self.conn.request("POST", path, json.dumps(body), {"Host": "127.0.0.1", **headers})
        response = self.conn.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        return answer


def _requests(client: _Client, port: int) -> dict[str, Callable[[str, str], list[str]]]:
    """The request kinds: each takes (user, category) and returns the item ids it got."""
    import boto3

    graphql_headers = {"Content-Type": "application/json"}
    compat_headers = {"Content-Type": "application/x-amz-json-1.1", "Authorization": AUTHORIZATION}
    plain = GRAPHQL % (CAMPAIGN, FILTER, "")
    with_metadata = GRAPHQL % (CAMPAIGN, FILTER, " item { metadata }")
    runtime = boto3.client(
        "personalize-runtime",
        endpoint_url=f"http://127.0.0.1:{port}/personalize",
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )

    def compat_body(user: str, category: str) -> dict[str, Any]:
        return {
            "campaignArn": f"{ARN}:campaign/{CAMPAIGN}",
            "userId": user,
            "numResults": 25,
            "filterArn": f"{ARN}:filter/{FILTER}",
            "filterValues": {"CAT": json.dumps(category)},
        }

    def graphql(query: str) -> Callable[[str, str], list[str]]:
        def call(user: str, category: str) -> list[str]:
            body = {"query": query, "variables": {"user": user, "cat": category}}
            answer = client.post("/graphql/", body, graphql_headers)
            assert "errors" not in answer, answer
            return [item["itemId"] for item in answer["data"]["recommendations"]["items"]]

        return call

    def compat(columns: tuple[str, ...]) -> Callable[[str, str], list[str]]:
        def call(user: str, category: str) -> list[str]:
            body = compat_body(user, category)
            if columns:
                body["metadataColumns"] = {"ITEMS": list(columns)}
            answer = client.post("/personalize/recommendations", body, compat_headers)
            return [item["itemId"] for item in answer["itemList"]]

        return call

    def through_boto3(user: str, category: str) -> list[str]:
        answer = runtime.get_recommendations(**compat_body(user, category))
        return [item["itemId"] for item in answer["itemList"]]

    return {
        "GraphQL recommendations": graphql(plain),
        "compat GetRecommendations": compat(()),
        "GraphQL + item { metadata }": graphql(with_metadata),
        "compat + metadataColumns (3)": compat(COLUMNS),
        "compat through boto3 (client side incl.)": through_boto3,
    }


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=1000, help="requests of each kind")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    parser.add_argument("--worker-class", default="gthread", help="gthread keeps connections alive")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from django.conf import settings
    from django.db import connection, connections

    assert not settings.DEBUG, "debug must be off"
    campaign, user_ids, categories = _prepare(args.items, args.users, args.events)
    connections.close_all()
    url = os.environ["DATABASE_URL"]
    env = {
        **os.environ,
        "DATABASE_URL": url + ("&" if "?" in url else "?") + "conn_max_age=600",
        "RECSITE_COMPAT_ACCEPT_ANY_CREDENTIALS": "1",
    }
    rng = random.Random(11)
    order = [
        (rng.choice(user_ids), categories[n % len(categories)]) for n in range(args.requests + args.warmup)
    ]
    times: dict[str, list[float]] = {}
    with _Server(args, env) as port:
        client = _Client(port)
        kinds = _requests(client, port)
        user, category = order[0]
        answers = {name: call(user, category) for name, call in kinds.items()}
        assert len({tuple(ids) for ids in answers.values()}) == 1, answers  # the same list every way
        for n, (user, category) in enumerate(order):
            for name, call in kinds.items():
                started = time.perf_counter()
                call(user, category)
                if n >= args.warmup:
                    times.setdefault(name, []).append((time.perf_counter() - started) * 1000)

    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{connection.vendor}; gunicorn {args.workers} {args.worker_class} worker(s) on 127.0.0.1, one "
        f"keep-alive client; {campaign.name}, 25 items with a category filter; {args.requests} requests "
        "of each kind, interleaved"
    )
    print(f"{'':44} {'p50 ms':>8} {'p99 ms':>8}")
    for name, values in times.items():
        print(f"{name:44} {_percentile(values, 0.5):8.2f} {_percentile(values, 0.99):8.2f}")
    for compat, graphql in (
        ("compat GetRecommendations", "GraphQL recommendations"),
        ("compat + metadataColumns (3)", "GraphQL + item { metadata }"),
    ):
        ratios = [_percentile(times[compat], q) / _percentile(times[graphql], q) for q in (0.5, 0.99)]
        added = _percentile(times[compat], 0.5) - _percentile(times[graphql], 0.5)
        print(
            f"{compat} / {graphql}: p50 {ratios[0]:.2f}x, p99 {ratios[1]:.2f}x "
            f"(added at p50: {added:+.2f} ms)"
        )


if __name__ == "__main__":
    main()
