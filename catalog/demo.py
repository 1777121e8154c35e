"""A deterministic, realistic demo shop: items, users and their events as Personalize CSVs.

Pure generation (numpy, no Django): `demo_catalog_generate` returns the three datasets
as CSV-ready tables, `demo_csv_write` writes them in Amazon Personalize's format. The
`seed_demo` command loads the files through the ordinary importer, so the demo takes
the same validated write path as any customer's data.

What makes it realistic:
- a two-level category tree written as Personalize recommends for hierarchies
  (`CATEGORY_L1`, `CATEGORY_L2` categorical fields) plus a `|` multi-valued `TAGS` field;
  brands, lognormal prices by category, a textual `PRODUCT_DESCRIPTION` that starts
  with a readable product name, creation dates spread over two years (some items new in
  the last days, and those are trending);
- users with `AGE_GROUP`, `COUNTRY`, `MEMBERSHIP`; each prefers 1-3 sub-categories
  (steered by age group) and most sessions are about one of them;
- power-law item popularity; sessions of views with a view → cart → purchase funnel
  (a purchase always follows a view of the same item by the same user in the session;
  `EVENT_VALUE` is the price on purchases, empty otherwise); a `DEVICE` per session;
- timestamps over several weeks ending at a fixed date, with daily and weekly rhythm.

Same seed and sizes give byte-identical CSVs.
"""

import csv
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

__all__ = [
    "DEMO_END",
    "DemoCatalog",
    "DemoFiles",
    "DemoTable",
    "demo_catalog_generate",
    "demo_csv_write",
]

DEMO_END = datetime(2026, 11, 1, tzinfo=UTC)
"""The end of the demo's event period (fixed so that generation is deterministic)."""

DAY = 86_400

# Category tree: L1 -> {L2: (product nouns, median price, price sigma)}.
CATEGORY_TREE: dict[str, dict[str, tuple[tuple[str, ...], float, float]]] = {
    "Clothing": {
        "T-Shirts": (("Crew Tee", "V-Neck Tee", "Pocket Tee", "Henley", "Long Sleeve Tee"), 19.0, 0.35),
        "Sweaters": (("Crewneck Sweater", "Cardigan", "Hoodie", "Quarter-Zip Pullover"), 49.0, 0.4),
        "Jackets": (("Rain Jacket", "Puffer Jacket", "Denim Jacket", "Fleece Jacket", "Parka"), 99.0, 0.45),
        "Jeans": (("Slim Jeans", "Straight Jeans", "Relaxed Jeans", "Chinos"), 59.0, 0.35),
        "Dresses": (("Wrap Dress", "Shirt Dress", "Midi Dress", "Sundress"), 69.0, 0.4),
    },
    "Shoes": {
        "Running Shoes": (("Road Runner", "Trail Runner", "Racing Flat", "Stability Trainer"), 119.0, 0.3),
        "Sneakers": (("Court Sneaker", "Canvas Low-Top", "High-Top Sneaker", "Slip-On"), 79.0, 0.35),
        "Boots": (("Chelsea Boot", "Hiking Boot", "Winter Boot", "Work Boot"), 139.0, 0.35),
        "Sandals": (("Slide Sandal", "Sport Sandal", "Flip-Flop"), 39.0, 0.4),
    },
    "Electronics": {
        "Headphones": (("Wireless Earbuds", "Over-Ear Headphones", "Noise-Cancelling Headset"), 129.0, 0.6),
        "Smartphones": (("Smartphone", "Phone Case", "Fast Charger", "Screen Protector"), 89.0, 1.0),
        "Laptops": (("Ultrabook", "Laptop Stand", "Laptop Sleeve", "USB-C Dock"), 249.0, 1.1),
        "Smart Home": (("Smart Speaker", "Smart Plug", "Video Doorbell", "Smart Bulb"), 49.0, 0.7),
        "Cameras": (("Action Camera", "Mirrorless Camera", "Tripod", "Camera Bag"), 199.0, 0.9),
    },
    "Home & Kitchen": {
        "Cookware": (("Skillet", "Dutch Oven", "Saucepan Set", "Chef's Knife", "Cutting Board"), 59.0, 0.6),
        "Coffee & Tea": (("Pour-Over Kettle", "French Press", "Espresso Machine", "Tea Tin"), 45.0, 0.8),
        "Bedding": (("Duvet Cover", "Pillow", "Sheet Set", "Throw Blanket"), 69.0, 0.45),
        "Lighting": (("Desk Lamp", "Floor Lamp", "String Lights", "Pendant Light"), 55.0, 0.55),
        "Storage": (
            ("Storage Basket", "Shelf Organizer", "Food Container Set", "Drawer Divider"),
            24.0,
            0.45,
        ),
    },
    "Sports & Outdoors": {
        "Camping": (("Tent", "Sleeping Bag", "Camp Stove", "Headlamp", "Backpack"), 89.0, 0.7),
        "Cycling": (("Bike Helmet", "Bike Light Set", "Cycling Jersey", "Bike Lock"), 59.0, 0.6),
        "Fitness": (
            ("Dumbbell Set", "Kettlebell", "Resistance Bands", "Jump Rope", "Foam Roller"),
            35.0,
            0.6,
        ),
        "Yoga": (("Yoga Mat", "Yoga Block", "Yoga Strap", "Meditation Cushion"), 29.0, 0.45),
    },
    "Beauty": {
        "Skincare": (("Face Serum", "Moisturizer", "Cleanser", "Sunscreen SPF 50"), 28.0, 0.5),
        "Fragrance": (("Eau de Parfum", "Eau de Toilette", "Body Mist"), 65.0, 0.5),
        "Hair Care": (("Shampoo", "Conditioner", "Hair Oil", "Hair Dryer"), 18.0, 0.7),
        "Makeup": (("Lipstick", "Mascara", "Foundation", "Eyeshadow Palette"), 22.0, 0.45),
    },
    "Books": {
        "Fiction": (("Novel", "Thriller", "Mystery", "Short Stories"), 16.0, 0.3),
        "Cookbooks": (("Cookbook", "Baking Book", "Vegetarian Cookbook"), 27.0, 0.3),
        "Science": (("Popular Science Book", "Field Guide", "Astronomy Atlas"), 22.0, 0.35),
        "Children's Books": (("Picture Book", "Bedtime Stories", "Activity Book"), 11.0, 0.35),
    },
    "Toys & Games": {
        "Board Games": (("Strategy Game", "Party Game", "Cooperative Game", "Card Game"), 34.0, 0.45),
        "Puzzles": (("Jigsaw Puzzle", "3D Puzzle", "Brain Teaser Set"), 19.0, 0.4),
        "Building Sets": (("Building Set", "Marble Run", "Robot Kit"), 49.0, 0.6),
        "Plush Toys": (("Teddy Bear", "Plush Fox", "Plush Whale", "Sleepy Sloth"), 21.0, 0.35),
    },
}

BRANDS: dict[str, tuple[str, ...]] = {
    "Clothing": ("Northwind", "Harbor & Pine", "Loomcraft", "Urbanic", "Fjellwear", "Basics Co."),
    "Shoes": ("Stridex", "Northwind", "Cobbleton", "Trailhawk", "Pacer"),
    "Electronics": ("Voltaic", "Nimbus", "Auralis", "Pixelworks", "Kestrel Labs"),
    "Home & Kitchen": ("Hearthstone", "Copper & Ash", "Nordhaus", "Brewline", "Basics Co."),
    "Sports & Outdoors": ("Trailhawk", "Summit Gear", "Veloce", "Fjellwear", "Ironclad"),
    "Beauty": ("Lumière", "Botanica", "Velvet Rose", "Pure Dew"),
    "Books": ("Lantern Press", "Greywood Books", "Quill & Ink", "Starling House"),
    "Toys & Games": ("Tinker Town", "Playforge", "Meeple & Co.", "Cuddle Club"),
}

ADJECTIVES: dict[str, tuple[str, ...]] = {
    "Clothing": ("Classic", "Essential", "Organic Cotton", "Merino", "Vintage Wash", "Relaxed", "Everyday"),
    "Shoes": ("Lightweight", "Waterproof", "Cushioned", "Leather", "Breathable", "All-Terrain"),
    "Electronics": ("Pro", "Mini", "Ultra", "Wireless", "Compact", "Max", "Lite"),
    "Home & Kitchen": ("Cast Iron", "Stainless", "Bamboo", "Ceramic", "Linen", "Nordic", "Handmade"),
    "Sports & Outdoors": ("Ultralight", "Expedition", "Trail", "Pro", "Packable", "Insulated"),
    "Beauty": ("Hydrating", "Vitamin C", "Night", "Gentle", "Radiance", "Matte", "Fragrance-Free"),
    "Books": ("The Silent", "The Last", "A Quiet", "The Hidden", "The Salt", "The Winter", "A Little"),
    "Toys & Games": ("Deluxe", "Family", "Junior", "Classic", "Giant", "Travel"),
}

BOOK_NOUNS = ("Harbor", "Garden", "Orchard", "Lighthouse", "Kitchen", "Map", "River", "Forest", "Comet")

COLORS = (
    "Black",
    "Navy",
    "Olive",
    "Sand",
    "Charcoal",
    "White",
    "Rust",
    "Forest Green",
    "Sky Blue",
    "Burgundy",
)
COLORED_L1 = frozenset({"Clothing", "Shoes", "Sports & Outdoors", "Home & Kitchen"})

PITCHES: dict[str, tuple[str, ...]] = {
    "Clothing": (
        "Soft, breathable fabric that keeps its shape wash after wash.",
        "A relaxed fit for everyday wear, in or out of the office.",
        "Made from responsibly sourced fibres.",
        "Machine washable; tumble dry low.",
    ),
    "Shoes": (
        "A cushioned midsole and grippy outsole for long days on your feet.",
        "True to size with a roomy toe box.",
        "Recycled materials in the upper and laces.",
        "Built to handle wet pavements and gravel paths alike.",
    ),
    "Electronics": (
        "All-day battery life and fast USB-C charging.",
        "Pairs in seconds with phones, tablets and laptops.",
        "A two-year warranty and free firmware updates.",
        "Compact enough to take anywhere.",
    ),
    "Home & Kitchen": (
        "Designed to be used every day and to last for years.",
        "Easy to clean and dishwasher safe.",
        "A simple, timeless look that suits any home.",
        "Thoughtful details make everyday routines easier.",
    ),
    "Sports & Outdoors": (
        "Tested on long trails and in bad weather.",
        "Packs down small and weighs next to nothing.",
        "Durable materials with a lifetime repair promise.",
        "Ideal for beginners and seasoned athletes alike.",
    ),
    "Beauty": (
        "Dermatologist tested and suitable for sensitive skin.",
        "Cruelty-free and vegan formula.",
        "A light texture that absorbs quickly.",
        "Free from parabens and synthetic dyes.",
    ),
    "Books": (
        "A moving story readers cannot put down.",
        "Beautifully illustrated throughout.",
        "Winner of several readers' choice awards.",
        "The perfect gift for curious minds.",
    ),
    "Toys & Games": (
        "Hours of fun for the whole family.",
        "Encourages creativity and problem solving.",
        "Made from safe, non-toxic materials.",
        "Quick to learn, endlessly replayable.",
    ),
}

TAGS = ("bestseller", "eco-friendly", "gift idea", "limited edition", "sale", "staff pick")
TAG_PROBABILITIES = np.array([0.08, 0.12, 0.10, 0.04, 0.10, 0.05])

AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_GROUP_SHARE = np.array([0.14, 0.27, 0.23, 0.17, 0.12, 0.07])
# How much each age group favours each L1 category (rows: AGE_GROUPS, columns: CATEGORY_TREE order).
AGE_AFFINITY = np.array(
    [
        # Cloth Shoes Elec  Home  Sport Beauty Books Toys
        [2.0, 1.8, 1.8, 0.5, 1.2, 1.6, 0.7, 0.4],
        [1.4, 1.4, 1.5, 1.0, 1.4, 1.2, 0.8, 0.9],
        [1.0, 1.0, 1.1, 1.4, 1.1, 1.0, 0.9, 2.0],
        [0.9, 0.9, 0.9, 1.6, 1.0, 0.9, 1.2, 1.2],
        [0.7, 0.8, 0.7, 1.7, 0.8, 0.8, 1.7, 0.9],
        [0.6, 0.7, 0.5, 1.6, 0.5, 0.7, 2.2, 1.1],
    ]
)
COUNTRIES = ("US", "GB", "DE", "FR", "CA", "ES", "IT", "NL", "AU", "JP")
COUNTRY_SHARE = np.array([0.38, 0.12, 0.11, 0.08, 0.07, 0.06, 0.05, 0.05, 0.04, 0.04])
MEMBERSHIPS = ("basic", "plus", "premium")
MEMBERSHIP_SHARE = np.array([0.70, 0.22, 0.08])
MEMBERSHIP_ACTIVITY = np.array([1.0, 1.6, 2.5])
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_SHARE = np.array([0.60, 0.33, 0.07])
# Sessions start more often in the evening (UTC hours), and a little more at weekends.
HOUR_WEIGHTS = np.array(
    [2, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 6, 7, 6, 6, 6, 7, 8, 10, 11, 11, 9, 6, 4], dtype=float
)

VIEW, CART, PURCHASE = 0, 1, 2
EVENT_TYPES = ("view", "cart", "purchase")
SESSION_INTENT = 0.85  # share of sessions about one of the user's preferred categories
EXPLORATION = 0.10  # share of views of any item (popularity-weighted), whatever the session is about
CART_RATE = 0.11  # of views, before price sensitivity
PURCHASE_AFTER_CART = 0.45
BUY_NOW_RATE = 0.015  # of views without a cart: purchased straight away
POPULARITY_EXPONENT = 1.05
TRENDING_DAYS = 14
TRENDING_BOOST = 4.0

ITEMS_HEADER = (
    "ITEM_ID",
    "CREATION_TIMESTAMP",
    "CATEGORY_L1",
    "CATEGORY_L2",
    "BRAND",
    "PRICE",
    "TAGS",
    "PRODUCT_DESCRIPTION",
)
USERS_HEADER = ("USER_ID", "AGE_GROUP", "COUNTRY", "MEMBERSHIP")
INTERACTIONS_HEADER = ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "DEVICE")


@dataclass(frozen=True)
class DemoTable:
    """One dataset as CSV text cells: a header and its rows."""

    header: tuple[str, ...]
    rows: list[tuple[str, ...]]

    def column(self, name: str) -> list[str]:
        """All cells of one column, in row order."""
        index = self.header.index(name)
        return [row[index] for row in self.rows]


@dataclass(frozen=True)
class DemoCatalog:
    """The generated shop: its three datasets and, for checks, each user's preferred categories."""

    interactions: DemoTable
    items: DemoTable
    users: DemoTable
    user_tastes: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoFiles:
    """Paths of the written Personalize CSVs."""

    interactions: Path
    items: Path
    users: Path


@dataclass(frozen=True)
class _Items:
    ids: list[str]
    l2: np.ndarray  # index into the flat L2 list
    created: np.ndarray  # epoch seconds
    price_text: list[str]
    price: np.ndarray
    weight: np.ndarray  # popularity


@dataclass(frozen=True)
class _Users:
    ids: list[str]
    age: np.ndarray
    membership: np.ndarray
    activity: np.ndarray
    device: np.ndarray
    tastes: np.ndarray  # (users, 3) L2 indexes, -1 when unused
    taste_weights: np.ndarray  # (users, 3), rows sum to 1


def demo_catalog_generate(
    *,
    items: int = 2000,
    users: int = 1000,
    events: int = 50_000,
    seed: int = 7,
    weeks: int = 6,
    end: datetime = DEMO_END,
) -> DemoCatalog:
    """Generate the demo shop: `items` items, `users` users and exactly `events` events."""
    if items < 1 or users < 1 or events < 0 or weeks < 1:
        raise ValueError("items, users and weeks must be positive and events not negative")
    rng = np.random.default_rng(seed)
    t_end = int(end.timestamp())
    t_start = t_end - weeks * 7 * DAY
    l1_names = list(CATEGORY_TREE)
    l2_names = [l2 for tree in CATEGORY_TREE.values() for l2 in tree]
    l2_parent = np.array([l1_names.index(l1) for l1, tree in CATEGORY_TREE.items() for _ in tree])

    item_data, item_rows = _generate_items(rng, items, l1_names, l2_names, l2_parent, t_start, t_end)
    user_data = _generate_users(rng, users, item_data, l2_parent)
    interaction_rows = _generate_interactions(rng, events, item_data, user_data, t_start, t_end)

    user_rows = [
        (user_id, AGE_GROUPS[age], COUNTRIES[country], MEMBERSHIPS[membership])
        for user_id, age, country, membership in zip(
            user_data.ids,
            user_data.age.tolist(),
            rng.choice(len(COUNTRIES), size=users, p=COUNTRY_SHARE).tolist(),
            user_data.membership.tolist(),
            strict=True,
        )
    ]
    tastes = {
        user_id: tuple(l2_names[c] for c in row if c >= 0)
        for user_id, row in zip(user_data.ids, user_data.tastes.tolist(), strict=True)
    }
    return DemoCatalog(
        interactions=DemoTable(INTERACTIONS_HEADER, interaction_rows),
        items=DemoTable(ITEMS_HEADER, item_rows),
        users=DemoTable(USERS_HEADER, user_rows),
        user_tastes=tastes,
    )


def demo_csv_write(catalog: DemoCatalog, directory: Path) -> DemoFiles:
    """Write the catalog as `interactions.csv`, `items.csv` and `users.csv` in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    files = DemoFiles(
        interactions=directory / "interactions.csv",
        items=directory / "items.csv",
        users=directory / "users.csv",
    )
    for path, table in (
        (files.interactions, catalog.interactions),
        (files.items, catalog.items),
        (files.users, catalog.users),
    ):
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(table.header)
            writer.writerows(table.rows)
    return files


def _id_width(count: int) -> int:
    return max(5, len(str(count)))


def _generate_items(
    rng: np.random.Generator,
    count: int,
    l1_names: list[str],
    l2_names: list[str],
    l2_parent: np.ndarray,
    t_start: int,
    t_end: int,
) -> tuple[_Items, list[tuple[str, ...]]]:
    l2_specs = [spec for tree in CATEGORY_TREE.values() for spec in tree.values()]
    # Category sizes vary; every category gets an item first when there are enough items.
    category_share = rng.gamma(3.0, size=len(l2_names))
    category_share /= category_share.sum()
    if count >= len(l2_names):
        extra = rng.choice(len(l2_names), size=count - len(l2_names), p=category_share)
        l2 = np.concatenate([np.arange(len(l2_names)), extra])
        rng.shuffle(l2)
    else:
        l2 = rng.choice(len(l2_names), size=count, p=category_share)
    l1 = l2_parent[l2]

    # Creation dates: most before the event period, some during it, a few in the last week.
    period = rng.random(count)
    created = np.where(
        period < 0.80,
        rng.integers(t_start - 730 * DAY, t_start, size=count),
        np.where(
            period < 0.94,
            rng.integers(t_start, t_end - 7 * DAY, size=count),
            rng.integers(t_end - 7 * DAY, t_end - 3600, size=count),
        ),
    )

    # Brands: a few per L1 category, themselves Zipf-popular; some brands are premium.
    brand_rank = rng.random(count)
    brand_index = np.empty(count, dtype=np.int64)
    for index, name in enumerate(l1_names):
        mask = l1 == index
        weights = 1.0 / np.arange(1, len(BRANDS[name]) + 1)
        brand_index[mask] = np.searchsorted(np.cumsum(weights) / weights.sum(), brand_rank[mask])
    brand_premium = 1.0 + 0.5 * (brand_index % 3 == 1)

    medians = np.array([spec[1] for spec in l2_specs])
    sigmas = np.array([spec[2] for spec in l2_specs])
    raw_price = np.exp(np.log(medians[l2]) + sigmas[l2] * rng.standard_normal(count)) * brand_premium
    price = (
        np.where(raw_price < 100, np.maximum(np.round(raw_price), 2.0), np.round(raw_price / 5) * 5) - 0.01
    )
    price_text = [f"{value:.2f}" for value in price.tolist()]

    # Popularity: a power law over a random order; new items are trending.
    rank = rng.permutation(count)
    weight = (rank + 1.0) ** -POPULARITY_EXPONENT
    weight = np.where(created >= t_end - TRENDING_DAYS * DAY, weight * TRENDING_BOOST, weight)

    tag_draws = rng.random((count, len(TAGS))) < TAG_PROBABILITIES
    noun_pick = rng.integers(0, 1 << 30, size=count)
    adjective_pick = rng.integers(0, 1 << 30, size=count)
    color_pick = rng.integers(0, len(COLORS), size=count)
    pitch_pick = rng.integers(0, 1 << 30, size=(count, 2))
    width = _id_width(count)
    ids = [f"item-{index + 1:0{width}d}" for index in range(count)]
    rows = []
    for index in range(count):
        l1_name = l1_names[l1[index]]
        nouns = l2_specs[l2[index]][0]
        brand = BRANDS[l1_name][brand_index[index]]
        adjectives = ADJECTIVES[l1_name]
        adjective = adjectives[adjective_pick[index] % len(adjectives)]
        noun = nouns[noun_pick[index] % len(nouns)]
        if l1_name == "Books":
            title = f"{adjective} {BOOK_NOUNS[noun_pick[index] // len(nouns) % len(BOOK_NOUNS)]}"
            name = f"{title} ({noun}, {brand})"
        else:
            name = f"{brand} {adjective} {noun}"
            if l1_name in COLORED_L1:
                name += f" in {COLORS[color_pick[index]]}"
        pitches = PITCHES[l1_name]
        first = pitch_pick[index, 0] % len(pitches)
        second = (first + 1 + pitch_pick[index, 1] % (len(pitches) - 1)) % len(pitches)
        description = f"{name}. {pitches[first]} {pitches[second]}"
        tags = "|".join(tag for tag, chosen in zip(TAGS, tag_draws[index].tolist(), strict=True) if chosen)
        rows.append(
            (
                ids[index],
                str(created[index]),
                l1_name,
                l2_names[l2[index]],
                brand,
                price_text[index],
                tags,
                description,
            )
        )
    return _Items(ids=ids, l2=l2, created=created, price_text=price_text, price=price, weight=weight), rows


def _generate_users(rng: np.random.Generator, count: int, item_data: _Items, l2_parent: np.ndarray) -> _Users:
    age = rng.choice(len(AGE_GROUPS), size=count, p=AGE_GROUP_SHARE)
    membership = rng.choice(len(MEMBERSHIPS), size=count, p=MEMBERSHIP_SHARE)
    activity = rng.lognormal(0.0, 1.0, size=count) * MEMBERSHIP_ACTIVITY[membership]
    device = rng.choice(len(DEVICES), size=count, p=DEVICE_SHARE)

    # Tastes: 1-3 distinct sub-categories, drawn by catalogue presence and age affinity
    # (Gumbel top-k sampling without replacement, vectorised).
    n_l2 = len(l2_parent)
    presence = np.bincount(item_data.l2, minlength=n_l2).astype(float)
    appeal = np.sqrt(presence) * AGE_AFFINITY[age][:, l2_parent]  # (users, n_l2)
    with np.errstate(divide="ignore"):
        keys = np.log(appeal) + rng.gumbel(size=(count, n_l2))
    order = np.argsort(-keys, axis=1, kind="stable")[:, :3]
    how_many = rng.choice(3, size=count, p=[0.35, 0.40, 0.25]) + 1
    used = np.arange(3)[None, :] < how_many[:, None]
    available = np.count_nonzero(presence)
    used &= np.arange(3)[None, :] < available
    tastes = np.where(used, order, -1)
    taste_weights = np.where(used, rng.gamma(2.0, size=(count, 3)) * np.array([2.0, 1.0, 0.7]), 0.0)
    taste_weights /= taste_weights.sum(axis=1, keepdims=True)
    width = _id_width(count)
    ids = [f"user-{index + 1:0{width}d}" for index in range(count)]
    return _Users(
        ids=ids,
        age=age,
        membership=membership,
        activity=activity,
        device=device,
        tastes=tastes,
        taste_weights=taste_weights,
    )


def _generate_interactions(
    rng: np.random.Generator, count: int, item_data: _Items, user_data: _Users, t_start: int, t_end: int
) -> list[tuple[str, ...]]:
    if count == 0:
        return []
    n_items = len(item_data.ids)
    n_users = len(user_data.ids)

    # Sessions of 1 + geometric views, enough of them to produce `count` views (and more rows).
    mean_views = 4.0
    n_sessions = int(count / mean_views * 1.2) + 16
    views_per_session = np.minimum(rng.geometric(1.0 / mean_views, size=n_sessions), 40)
    while views_per_session.sum() < count:
        more = np.minimum(rng.geometric(1.0 / mean_views, size=n_sessions), 40)
        views_per_session = np.concatenate([views_per_session, more])
    n_sessions = int(np.searchsorted(np.cumsum(views_per_session), count) + 1)
    views_per_session = views_per_session[:n_sessions]

    session_user = rng.choice(n_users, size=n_sessions, p=user_data.activity / user_data.activity.sum())
    session_device = np.where(
        rng.random(n_sessions) < 0.8,
        user_data.device[session_user],
        rng.choice(len(DEVICES), size=n_sessions, p=DEVICE_SHARE),
    )
    # Session intent: mostly one of the user's preferred sub-categories, else any by popularity.
    category_popularity = np.bincount(
        item_data.l2, weights=item_data.weight, minlength=int(item_data.l2.max()) + 1
    )
    taste_cdf = np.cumsum(user_data.taste_weights[session_user], axis=1)
    taste_column = np.minimum((rng.random(n_sessions)[:, None] > taste_cdf).sum(axis=1), 2)
    preferred = user_data.tastes[session_user, taste_column]
    anywhere = rng.choice(
        len(category_popularity), size=n_sessions, p=category_popularity / category_popularity.sum()
    )
    session_category = np.where(
        (rng.random(n_sessions) < SESSION_INTENT) & (preferred >= 0), preferred, anywhere
    )

    # Session start: a day (slowly growing traffic, busier weekends) and an hour (evenings).
    n_days = (t_end - t_start) // DAY
    day_index = np.arange(n_days)
    weekday = (np.floor((t_start + day_index * DAY) / DAY).astype(np.int64) + 3) % 7  # 0 = Monday
    day_weights = (1.0 + 0.5 * day_index / n_days) * np.where(weekday >= 5, 1.25, 1.0)
    session_start = (
        t_start
        + rng.choice(n_days, size=n_sessions, p=day_weights / day_weights.sum()) * DAY
        + rng.choice(24, size=n_sessions, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum()) * 3600
        + rng.integers(0, 3600, size=n_sessions)
    )

    # Views: items of the session's category, popularity-weighted; some exploration anywhere.
    view_session = np.repeat(np.arange(n_sessions), views_per_session)
    n_views = view_session.size
    view_item = _sample_items(rng, session_category[view_session], item_data)
    explore = rng.random(n_views) < EXPLORATION
    view_item[explore] = rng.choice(
        n_items, size=int(explore.sum()), p=item_data.weight / item_data.weight.sum()
    )
    view_item = _respect_creation(
        rng, view_item, session_start[view_session], session_category[view_session], item_data
    )

    # Funnel per view: cart (cheaper items more often), purchase after cart, or a straight buy.
    price = item_data.price[view_item]
    price_factor = np.clip((np.median(item_data.price) / price) ** 0.3, 0.5, 1.6)
    carted = rng.random(n_views) < CART_RATE * price_factor
    bought = np.where(carted, rng.random(n_views) < PURCHASE_AFTER_CART, rng.random(n_views) < BUY_NOW_RATE)
    rows_per_view = 1 + carted.astype(np.int64) + bought.astype(np.int64)
    row_view = np.repeat(np.arange(n_views), rows_per_view)
    first_row_of_view = np.cumsum(rows_per_view) - rows_per_view
    stage = np.arange(row_view.size) - first_row_of_view[row_view]
    event_type = np.where(stage == 0, VIEW, np.where((stage == 1) & carted[row_view], CART, PURCHASE))
    row_view, event_type = row_view[:count], event_type[:count]
    row_session = view_session[row_view]
    row_item = view_item[row_view]

    # Time: gaps of whole seconds between a session's events, the first at the session start.
    gap_mean = np.array([55.0, 25.0, 90.0])[event_type]
    gap_floor = np.array([3, 2, 10])[event_type]
    gaps = np.minimum(rng.exponential(gap_mean), 1200).astype(np.int64) + gap_floor
    first_row_of_session = np.r_[True, row_session[1:] != row_session[:-1]]
    gaps[first_row_of_session] = 0
    elapsed = np.cumsum(gaps)
    session_first = np.flatnonzero(first_row_of_session)
    session_base = np.repeat(elapsed[session_first], np.diff(np.r_[session_first, row_session.size]))
    offset = elapsed - session_base
    duration = np.zeros(n_sessions, dtype=np.int64)
    np.maximum.at(duration, row_session, offset)
    session_start = np.minimum(session_start, t_end - 1 - duration)
    timestamp = session_start[row_session] + offset

    # An item created after a (shifted) session began is swapped for an older one of its category.
    too_early = item_data.created[row_item] > timestamp
    if too_early.any():
        views_to_fix = np.unique(row_view[too_early])
        fallback = _oldest_popular(item_data)
        view_item[views_to_fix] = fallback[item_data.l2[view_item[views_to_fix]]]
        row_item = view_item[row_view]

    user = session_user[row_session]
    order = np.lexsort((event_type, row_item, user, timestamp))
    value = np.where(event_type == PURCHASE, row_item, -1)
    item_ids, user_ids, prices = item_data.ids, user_data.ids, item_data.price_text
    device = session_device[row_session]
    return [
        (user_ids[u], item_ids[i], str(t), EVENT_TYPES[e], prices[v] if v >= 0 else "", DEVICES[d])
        for u, i, t, e, v, d in zip(
            user[order].tolist(),
            row_item[order].tolist(),
            timestamp[order].tolist(),
            event_type[order].tolist(),
            value[order].tolist(),
            device[order].tolist(),
            strict=True,
        )
    ]


def _sample_items(rng: np.random.Generator, categories: np.ndarray, item_data: _Items) -> np.ndarray:
    """One popularity-weighted item of each given category (any item if a category is empty)."""
    chosen = np.empty(categories.size, dtype=np.int64)
    uniform = rng.random(categories.size)
    global_cdf = np.cumsum(item_data.weight) / item_data.weight.sum()
    for category in np.unique(categories).tolist():
        where = categories == category
        members = np.flatnonzero(item_data.l2 == category)
        if members.size == 0:
            chosen[where] = np.minimum(np.searchsorted(global_cdf, uniform[where]), global_cdf.size - 1)
            continue
        cdf = np.cumsum(item_data.weight[members]) / item_data.weight[members].sum()
        chosen[where] = members[np.minimum(np.searchsorted(cdf, uniform[where]), members.size - 1)]
    return chosen


def _respect_creation(
    rng: np.random.Generator,
    view_item: np.ndarray,
    view_start: np.ndarray,
    view_category: np.ndarray,
    item_data: _Items,
) -> np.ndarray:
    """Redraw views of items not yet created at the session start; then fall back to old items."""
    for _ in range(8):
        bad = np.flatnonzero(item_data.created[view_item] > view_start)
        if bad.size == 0:
            return view_item
        view_item[bad] = _sample_items(rng, view_category[bad], item_data)
    bad = item_data.created[view_item] > view_start
    view_item[bad] = _oldest_popular(item_data)[item_data.l2[view_item[bad]]]
    return view_item


def _oldest_popular(item_data: _Items) -> np.ndarray:
    """Per category, its most popular item among the oldest half of the catalogue."""
    n_categories = int(item_data.l2.max()) + 1
    old = item_data.created <= np.median(item_data.created)
    old_members = np.flatnonzero(old)
    fallback = np.full(n_categories, old_members[np.argmax(item_data.weight[old])], dtype=np.int64)
    for category in range(n_categories):
        members = np.flatnonzero(old & (item_data.l2 == category))
        if members.size:
            fallback[category] = members[np.argmax(item_data.weight[members])]
    return fallback
