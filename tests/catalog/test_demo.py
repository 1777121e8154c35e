"""The demo shop: deterministic, realistic generation and the once-only `seed_demo` command."""

from collections import Counter, defaultdict
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog.demo import DEMO_END, DemoCatalog, demo_catalog_generate, demo_csv_write
from catalog.models import DatasetGroup, DatasetSchema, EndUser, Interaction, Item
from catalog.schemas import FieldKind

SMALL = {"items": 200, "users": 100, "events": 3000}


@pytest.fixture(scope="module")
def shop() -> DemoCatalog:
    """The demo at its default size (what `make run` loads)."""
    return demo_catalog_generate()


def _events(shop: DemoCatalog) -> list[dict[str, str]]:
    header = shop.interactions.header
    return [dict(zip(header, row, strict=True)) for row in shop.interactions.rows]


def _item_field(shop: DemoCatalog, name: str) -> dict[str, str]:
    return dict(zip(shop.items.column("ITEM_ID"), shop.items.column(name), strict=True))


def test_same_seed_and_sizes_give_byte_identical_csvs(tmp_path: Path) -> None:
    # given two generations with the same seed and sizes, and one with another seed
    first = demo_csv_write(demo_catalog_generate(**SMALL, seed=11), tmp_path / "first")
    second = demo_csv_write(demo_catalog_generate(**SMALL, seed=11), tmp_path / "second")
    other = demo_csv_write(demo_catalog_generate(**SMALL, seed=12), tmp_path / "other")
    # when the files are compared byte for byte
    # then the same seed reproduces every file and another seed does not
    for name in ("interactions", "items", "users"):
        assert getattr(first, name).read_bytes() == getattr(second, name).read_bytes()
    assert first.interactions.read_bytes() != other.interactions.read_bytes()


def test_sizes_are_exact_and_events_end_before_the_fixed_date(shop: DemoCatalog) -> None:
    # given the default demo
    # when its tables and timestamps are inspected
    timestamps = [int(value) for value in shop.interactions.column("TIMESTAMP")]
    created = _item_field(shop, "CREATION_TIMESTAMP")
    # then the sizes are exactly the requested ones, ids unique, events span weeks before DEMO_END
    assert (len(shop.items.rows), len(shop.users.rows), len(shop.interactions.rows)) == (2000, 1000, 50_000)
    assert len(set(shop.items.column("ITEM_ID"))) == 2000
    assert len(set(shop.users.column("USER_ID"))) == 1000
    assert max(timestamps) < DEMO_END.timestamp()
    assert max(timestamps) - min(timestamps) > 4 * 7 * 86_400
    # and nobody interacts with an item before it exists, while some items are brand new
    assert all(int(created[e["ITEM_ID"]]) <= int(e["TIMESTAMP"]) for e in _events(shop))
    assert sum(int(c) > DEMO_END.timestamp() - 7 * 86_400 for c in created.values()) >= 20


def test_funnel_views_outnumber_carts_outnumber_purchases(shop: DemoCatalog) -> None:
    # given the default demo's events
    events = _events(shop)
    prices = _item_field(shop, "PRICE")
    # when they are counted by type
    counts = Counter(event["EVENT_TYPE"] for event in events)
    # then views >> carts > purchases, and purchases (only they) carry the item's price
    assert set(counts) == {"view", "cart", "purchase"}
    assert counts["view"] > 5 * counts["cart"]
    assert counts["cart"] > counts["purchase"] > 0
    for event in events:
        expected = prices[event["ITEM_ID"]] if event["EVENT_TYPE"] == "purchase" else ""
        assert event["EVENT_VALUE"] == expected


def test_purchases_are_preceded_by_a_view_of_the_item_by_the_same_user(shop: DemoCatalog) -> None:
    # given the first view time of each (user, item) pair
    first_view: dict[tuple[str, str], int] = {}
    events = _events(shop)
    for event in events:
        if event["EVENT_TYPE"] == "view":
            key = (event["USER_ID"], event["ITEM_ID"])
            first_view[key] = min(first_view.get(key, 2**62), int(event["TIMESTAMP"]))
    # when each purchase is checked against them
    purchases = [event for event in events if event["EVENT_TYPE"] == "purchase"]
    preceded = sum(
        first_view.get((p["USER_ID"], p["ITEM_ID"]), 2**62) < int(p["TIMESTAMP"]) for p in purchases
    )
    # then at least 90% of purchases follow such a view
    assert preceded >= 0.9 * len(purchases)


def test_users_events_concentrate_on_their_preferred_categories(shop: DemoCatalog) -> None:
    # given each active user's events by sub-category (CATEGORY_L2)
    category_of = _item_field(shop, "CATEGORY_L2")
    by_user: dict[str, Counter[str]] = defaultdict(Counter)
    for event in _events(shop):
        by_user[event["USER_ID"]][category_of[event["ITEM_ID"]]] += 1
    active = {user: counts for user, counts in by_user.items() if counts.total() >= 20}
    n_categories = len(set(category_of.values()))
    # when we measure the share of their top category and of their stated tastes
    top_share = sum(max(c.values()) / c.total() for c in active.values()) / len(active)
    taste_share = sum(
        sum(c[category] for category in shop.user_tastes[user]) / c.total() for user, c in active.items()
    ) / len(active)
    # then both are far above what uniform browsing would give
    assert len(active) >= 200
    assert min(len(tastes) for tastes in shop.user_tastes.values()) >= 1
    assert max(len(tastes) for tastes in shop.user_tastes.values()) == 3
    assert top_share > 5 / n_categories
    assert taste_share > 0.6


def test_item_popularity_is_skewed(shop: DemoCatalog) -> None:
    # given the number of events per item (items without events count as zero)
    per_item = Counter(shop.interactions.column("ITEM_ID"))
    counts = sorted((per_item.get(item_id, 0) for item_id in shop.items.column("ITEM_ID")), reverse=True)
    # when the top 10% of items are taken
    top_share = sum(counts[: len(counts) // 10]) / sum(counts)
    # then they get a large share of all events (a long tail, not uniform)
    assert top_share > 0.4


def test_item_metadata_is_hierarchical_and_readable(shop: DemoCatalog) -> None:
    # given the default demo's items
    l1 = shop.items.column("CATEGORY_L1")
    l2 = shop.items.column("CATEGORY_L2")
    # when the category pairs, prices and descriptions are inspected
    parents = defaultdict(set)
    for parent, child in zip(l1, l2, strict=True):
        parents[child].add(parent)
    prices = [float(value) for value in shop.items.column("PRICE")]
    descriptions = shop.items.column("PRODUCT_DESCRIPTION")
    # then each sub-category has one parent, prices are positive, descriptions mostly distinct text
    assert all(len(p) == 1 for p in parents.values())
    assert len(set(l1)) >= 6
    assert len(set(l2)) >= 20
    assert min(prices) > 0
    assert len(set(descriptions)) > 0.8 * len(descriptions)
    assert any("|" in tags for tags in shop.items.column("TAGS"))


@pytest.mark.django_db
def test_seed_demo_loads_once_and_force_reloads() -> None:
    # given an empty database
    sizes = ["--items", "200", "--users", "100", "--events", "3000"]
    # when seed_demo runs with small sizes
    out = StringIO()
    call_command("seed_demo", *sizes, stdout=out)
    # then the default group holds exactly the generated rows, typed as the demo means them
    group = DatasetGroup.objects.get(name="default")
    assert Interaction.objects.filter(dataset_group=group).count() == 3000
    assert Item.objects.filter(dataset_group=group).count() == 200
    assert EndUser.objects.filter(dataset_group=group).count() == 100
    items_schema = DatasetSchema.objects.get(dataset_group=group, dataset_type="items")
    kinds = {spec.name: spec.kind for spec in items_schema.field_specs}
    assert kinds["PRICE"] is FieldKind.NUMERICAL
    assert kinds["CATEGORY_L1"] is FieldKind.CATEGORICAL
    assert kinds["TAGS"] is FieldKind.CATEGORICAL
    assert kinds["PRODUCT_DESCRIPTION"] is FieldKind.TEXTUAL
    purchase = Interaction.objects.filter(dataset_group=group, event_type="purchase").first()
    assert purchase is not None
    assert purchase.event_value == float(purchase.item.metadata["PRICE"])
    assert purchase.properties["DEVICE"] in {"mobile", "desktop", "tablet"}

    # when it runs again without --force, even with other sizes
    again = StringIO()
    call_command("seed_demo", "--items", "50", "--users", "20", "--events", "100", stdout=again)
    # then nothing changes and it says why
    assert Interaction.objects.filter(dataset_group=group).count() == 3000
    assert Item.objects.filter(dataset_group=group).count() == 200
    assert "already has 3000 interactions" in again.getvalue()

    # when it runs with --force and other sizes
    call_command(
        "seed_demo", "--items", "50", "--users", "20", "--events", "100", "--force", stdout=StringIO()
    )
    # then the imported datasets are replaced
    assert Interaction.objects.filter(dataset_group=group).count() == 100
    assert Item.objects.filter(dataset_group=group).count() == 50
    assert EndUser.objects.filter(dataset_group=group).count() == 20


@pytest.mark.django_db
def test_seed_demo_creates_a_named_group_and_refuses_bad_sizes() -> None:
    # given no group named "demo"
    # when seed_demo targets it
    call_command(
        "seed_demo",
        "--items",
        "30",
        "--users",
        "10",
        "--events",
        "200",
        "--dataset-group",
        "demo",
        stdout=StringIO(),
    )
    # then the group is created and loaded, and the default group stays empty
    assert Interaction.objects.filter(dataset_group__name="demo").count() == 200
    assert not Interaction.objects.filter(dataset_group__name="default").exists()
    # and a size below one is refused with a clear message
    with pytest.raises(CommandError, match="--events must be at least 1"):
        call_command("seed_demo", "--events", "0", "--dataset-group", "other", stdout=StringIO())
