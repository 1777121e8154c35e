"""What authentication and rate limiting add to a request.

Prints p50 / p99 (ms) of, in one process, each over fresh requests:

- `bearer`: `principal_for_request` with a valid `Authorization: Bearer` key (an indexed lookup, a SHA-256);
- `bearer + rate limit`: the same and the per-key counter (`rate_limit_principal`, Django's cache);
- `anonymous + rate limit`: no credentials, the per-address counter;
- `sigv4`: the compatible endpoint's signature check of a botocore-signed request (lookup, Fernet
  decryption of the secret, botocore's canonical request and HMACs);
- `{ __typename }` and a `putEvents` that reads the database (unknown trackingId) through Django's
  test client, anonymous and with a Bearer key (interleaved), and their differences: the whole cost
  of auth at the view. (`{ __typename }` touches no table anonymously, so with the key it also pays
  the connection's per-request health check, CONN_HEALTH_CHECKS; a real request pays that anyway.)

The database is a fresh SQLite file (`var/bench-auth.sqlite3`) unless DATABASE_URL is set; the
cache is locmem unless CACHE_URL is set (e.g. redis://127.0.0.1:6379/1).

    .venv/bin/python benchmarks/auth_overhead.py [--requests 5000]
"""

import argparse
import os
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
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'var' / 'bench-auth.sqlite3'}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")

import django  # noqa: E402

django.setup()

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import HttpRequest  # noqa: E402
from django.test import Client, RequestFactory  # noqa: E402

from access.authentication import principal_for_request  # noqa: E402
from access.rate_limits import rate_limit_principal  # noqa: E402
from access.services import api_key_create  # noqa: E402
from recommendations.compat.protocol import signature_check  # noqa: E402

__all__ = ["main"]


def percentiles(samples: list[float]) -> str:
    """p50 / p99 in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1e3:7.3f} ms   p99 {p99 * 1e3:7.3f} ms"


def timed(make: Callable[[], HttpRequest], work: Callable[[HttpRequest], object], count: int) -> list[float]:
    """Run `work` on `count` fresh requests from `make` (not timed); the durations."""
    samples = []
    for _ in range(count):
        request = make()
        start = time.perf_counter()
        work(request)
        samples.append(time.perf_counter() - start)
    return samples


def signed_request(factory: RequestFactory, key_id: str, secret: str) -> HttpRequest:
    """A GetRecommendations request signed by botocore, as the compatible endpoint receives it."""
    body = b'{"campaignArn": "arn:aws:personalize:us-east-1:1:campaign/c", "userId": "u1"}'
    aws = AWSRequest(
        method="POST",
        url="http://testserver/personalize/recommendations",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(Credentials(key_id, secret), "personalize", "us-east-1").add_auth(aws)
    headers = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in aws.headers.items()}
    headers.pop("HTTP_CONTENT_TYPE", None)
    return factory.post(
        "/personalize/recommendations",
        body,
        content_type="application/json",
        HTTP_HOST="testserver",
        **headers,
    )


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    if connection.vendor == "sqlite":
        Path(settings.DATABASES["default"]["NAME"]).unlink(missing_ok=True)
    call_command("migrate", verbosity=0)
    settings.RECSITE_RATE_LIMIT_PER_KEY = settings.RECSITE_RATE_LIMIT_PER_IP = 10**9
    issued = api_key_create(name="bench", scopes="manage")
    factory = RequestFactory()
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {issued.token}"}
    count = args.requests

    def with_key() -> HttpRequest:
        return factory.post("/graphql/", **bearer)

    rows = {
        "bearer": timed(with_key, principal_for_request, count),
        "bearer + rate limit": timed(
            with_key, lambda r: rate_limit_principal(principal_for_request(r)), count
        ),
        "anonymous + rate limit": timed(
            lambda: factory.post("/graphql/"), lambda r: rate_limit_principal(principal_for_request(r)), count
        ),
        "sigv4 (compatible endpoint)": timed(
            lambda: signed_request(factory, issued.api_key.key_id, issued.secret), signature_check, count
        ),
    }
    differences = {}
    for label, query in (("{ __typename }", "{ __typename }"), ("putEvents (DB)", PUT_EVENTS)):
        anonymous, keyed = through_the_view(query, bearer, count)
        rows[f"{label} anonymous"] = anonymous
        rows[f"{label} with a Bearer key"] = keyed
        differences[label] = statistics.median(keyed) - statistics.median(anonymous)
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(f"{connection.vendor}, cache {cache}, {count} requests each")
    for name, samples in rows.items():
        print(f"  {name:36s} {percentiles(samples)}")
    for label, difference in differences.items():
        print(f"  {label + ': key minus anonymous':36s} p50 {difference * 1e3:7.3f} ms")


# A public operation that reads the database either way (the tracker lookup; NOT_FOUND), so the
# connection's per-request health check is paid by both and the difference is the key alone.
PUT_EVENTS = (
    'mutation { putEvents(trackingId: "none", sessionId: "s", '
    'events: [{eventType: "click", itemId: "i", sentAt: 1700000000}]) { eventsRecorded } }'
)


def through_the_view(query: str, bearer: dict[str, str], count: int) -> tuple[list[float], list[float]]:
    """Durations of `query` through the test client, anonymous and with the key, interleaved."""
    anonymous_client, key_client = Client(), Client(**bearer)
    anonymous: list[float] = []
    keyed: list[float] = []
    for _ in range(count):
        for client, samples in ((anonymous_client, anonymous), (key_client, keyed)):
            start = time.perf_counter()
            response = client.post("/graphql/", {"query": query}, content_type="application/json")
            samples.append(time.perf_counter() - start)
            assert response.status_code == 200, response.content
    return anonymous, keyed


if __name__ == "__main__":
    main()
