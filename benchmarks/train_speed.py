"""End-to-end training time and peak memory: `manage.py train` on a seed_demo catalogue.

Loads a demo shop of --events interactions into a fresh database, then trains each
--recipe through the same task `manage.py train` runs (read the data from the
database, holdout fit and metrics, fit on all data, save the artifact) and prints
wall seconds, the version's recorded training seconds and the process's peak RSS.
The baseline in the same run is aws-popularity-count, the cheapest recipe.

    .venv/bin/python benchmarks/train_speed.py --events 1000000
    .venv/bin/python benchmarks/train_speed.py --events 1000000 --database-url postgres://postgres@127.0.0.1:5432/recsite_bench
"""

import argparse
import io
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from import_speed import fresh_database  # noqa: E402 - the scripts share the database helper


def main() -> None:
    """Seed, train each recipe, print one line per recipe."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="sqlite")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument(
        "--recipe",
        action="append",
        default=None,
        help="repeatable; default: popularity and user-personalization",
    )
    args = parser.parse_args()
    recipes = args.recipe or ["aws-popularity-count", "aws-user-personalization"]

    os.environ["DATABASE_URL"] = fresh_database(args.database_url)
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    os.environ["RECSITE_MEDIA_ROOT"] = tempfile.mkdtemp(prefix="recsite-bench-media-")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from recommendations.models import SolutionVersion

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    call_command(
        "seed_demo",
        "--events",
        str(args.events),
        "--users",
        str(args.users),
        "--items",
        str(args.items),
        stdout=io.StringIO(),
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"database: {connection.vendor}; seeded {args.events} events, {args.users} users, {args.items} items "
        f"in {time.perf_counter() - started:.1f} s"
    )
    for recipe in recipes:
        started = time.perf_counter()
        call_command("train", "--recipe", recipe, stdout=io.StringIO())
        wall = time.perf_counter() - started
        version = SolutionVersion.objects.filter(solution__name=recipe).latest("pk")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ndcg = version.metrics.get("normalized_discounted_cumulative_gain_at_10")
        print(
            f"{recipe}: {version.status}, wall {wall:.1f} s, "
            f"training_seconds {version.training_seconds:.1f}, "
            f"peak RSS so far {peak_mb:.0f} MB, NDCG@10 {ndcg if ndcg is None else round(ndcg, 4)}"
        )


if __name__ == "__main__":
    main()
