"""Import speed: Personalize CSV interactions per second on SQLite or PostgreSQL.

Converts MovieLens-100K (../shared/datasets/ml-100k, RecBole atomic files) to
Personalize CSV, writes a synthetic file of --rows interactions, and imports each
into a fresh database with `catalog.importing.dataset_import`. As a baseline measured
in the same run, the same rows go through Django's `bulk_create` (what a plain ORM
import would do) on a slice of the synthetic file; the script prints both and the ratio.

    .venv/bin/python benchmarks/import_speed.py                       # SQLite file
    .venv/bin/python benchmarks/import_speed.py --database-url postgres://postgres@127.0.0.1:5432/recsite_bench
"""

import argparse
import csv
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ML_100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
DATA = ROOT / "benchmarks" / "data"


def convert_movielens(out: Path) -> Path:
    """Write ml-100k.inter as Personalize interactions.csv (rating as EVENT_VALUE)."""
    target = out / "ml-100k-interactions.csv"
    with (ML_100K / "ml-100k.inter").open(encoding="utf-8") as source, target.open("w", newline="") as sink:
        rows = csv.reader(source, delimiter="\t")
        next(rows)
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"])
        for user, item, rating, timestamp in rows:
            writer.writerow([user, item, int(float(timestamp)), "rating", rating])
    return target


def synthetic_interactions(out: Path, rows: int) -> Path:
    """A deterministic shop-like file: 50k users, 20k items, three event types."""
    target = out / f"synthetic-{rows}.csv"
    if target.exists():
        return target
    rng = random.Random(7)
    events = ["view"] * 8 + ["cart", "purchase"]
    with target.open("w", newline="") as sink:
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"])
        start = 1_690_000_000
        for n in range(rows):
            event = rng.choice(events)
            value = f"{rng.uniform(5, 200):.2f}" if event == "purchase" else ""
            item = int(rng.paretovariate(1.2)) % 20_000
            writer.writerow([f"user-{rng.randrange(50_000)}", f"item-{item}", start + n * 3, event, value])
    return target


def fresh_database(url: str) -> str:
    """Drop and recreate a PostgreSQL database, or make a new SQLite file; return its URL."""
    if url.startswith("postgres"):
        import psycopg

        base, name = url.rsplit("/", 1)
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
        return url
    return f"sqlite:///{tempfile.mkdtemp(prefix='recsite-bench-')}/bench.sqlite3"


def main() -> None:
    """Run the benchmark and print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    args = parser.parse_args()

    DATA.mkdir(parents=True, exist_ok=True)
    movielens = convert_movielens(DATA)
    synthetic = synthetic_interactions(DATA, args.rows)

    os.environ["DATABASE_URL"] = fresh_database(args.database_url)
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from catalog.importing import dataset_import
    from catalog.models import EndUser, Interaction, Item, RecordSource
    from catalog.selectors import dataset_group_get

    call_command("migrate", verbosity=0)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"database: {connection.vendor}"
    )

    def timed_import(path: Path, rows: int) -> float:
        started = time.perf_counter()
        report = dataset_import(interactions=path, mode="full")
        elapsed = time.perf_counter() - started
        assert report.interactions == rows, report.summary()
        return elapsed

    movielens_seconds = timed_import(movielens, 100_000)
    print(f"ml-100k: 100000 rows in {movielens_seconds:.2f} s = {100_000 / movielens_seconds:,.0f} rows/s")
    synthetic_seconds = timed_import(synthetic, args.rows)
    rate = args.rows / synthetic_seconds
    print(f"synthetic: {args.rows} rows in {synthetic_seconds:.2f} s = {rate:,.0f} rows/s")

    # Baseline: the ORM path (parse with csv, bulk_create Interaction objects) on a slice.
    group = dataset_group_get()
    Interaction.objects.all().delete()
    users = dict(EndUser.objects.values_list("user_id", "pk"))
    items = dict(Item.objects.values_list("item_id", "pk"))
    started = time.perf_counter()
    with synthetic.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        objects = []
        for count, (user, item, timestamp, event, value) in enumerate(reader):
            if count == args.baseline_rows:
                break
            objects.append(
                Interaction(
                    dataset_group=group,
                    user_id=users[user],
                    item_id=items[item],
                    event_type=event,
                    event_value=float(value) if value else None,
                    timestamp=datetime.fromtimestamp(int(timestamp), UTC),
                    source=RecordSource.IMPORT,
                )
            )
        Interaction.objects.bulk_create(objects, batch_size=5000)
    baseline = args.baseline_rows / (time.perf_counter() - started)
    print(f"baseline ORM bulk_create: {baseline:,.0f} rows/s; dataset_import is {rate / baseline:.1f}x")


if __name__ == "__main__":
    main()
