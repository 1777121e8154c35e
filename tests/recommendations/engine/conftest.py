"""Engine test fixtures: every recipe module imported (so all recipes register) and planted data.

Planted structure (`planted_data`): 4 genres of 10 items (items 0-9 genre 0, 10-19 genre 1, ...);
user u belongs to genre u % 4 and interacts mostly with that genre's items, lower item numbers
more often (so within a genre popularity falls with the index); items 40 and 41 have no
interactions (new items). Events are "click" or "purchase" with values 0-20, over ten days.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
import scipy.sparse as sp

import recommendations.engine
from recommendations.engine.base import InteractionData
from recommendations.engine.registry import RECIPES

N_GENRES = 4
ITEMS_PER_GENRE = 10
N_ITEMS = N_GENRES * ITEMS_PER_GENRE + 2  # two items nobody interacted with
N_USERS = 80
START = 1_700_000_000
DAY = 86_400


def load_all_recipes() -> dict[str, type]:
    """Import every module of recommendations.engine so each recipe registers itself."""
    for module in pkgutil.iter_modules(recommendations.engine.__path__):
        importlib.import_module(f"recommendations.engine.{module.name}")
    return RECIPES


load_all_recipes()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parameterise `recipe_name` over every registered recipe."""
    if "recipe_name" in metafunc.fixturenames:
        metafunc.parametrize("recipe_name", sorted(load_all_recipes()))


def genre_of(item: int) -> int:
    """The planted genre of an interacted item."""
    return item // ITEMS_PER_GENRE


def make_planted_data(seed: int = 0) -> InteractionData:
    """Deterministic users-who-like-one-genre data with item and user metadata."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    within = np.arange(ITEMS_PER_GENRE)
    p = 1.0 / (within + 1.0) ** 1.5
    p /= p.sum()
    for u in range(N_USERS):
        genre = u % N_GENRES
        n_events = 4 + u % 4
        picks = rng.choice(within, size=n_events, replace=False, p=p) + genre * ITEMS_PER_GENRE
        stray = rng.integers(0, N_GENRES * ITEMS_PER_GENRE)  # one item from anywhere
        chosen = rng.permutation(np.append(picks, stray))  # the stray item at a random time
        t0 = START + int(rng.integers(0, 5 * DAY))
        users.extend([u] * len(chosen))
        items.extend(chosen.tolist())
        times.extend((t0 + np.sort(rng.integers(0, 5 * DAY, size=len(chosen)))).tolist())
    n = len(users)
    event_type = (rng.random(n) < 0.3).astype(np.int16)  # 1 = purchase
    genre_features = sp.csr_matrix(
        (
            np.ones(N_ITEMS - 2, np.float32),
            (np.arange(N_ITEMS - 2), np.arange(N_ITEMS - 2) // ITEMS_PER_GENRE),
        ),
        shape=(N_ITEMS, N_GENRES),
    )
    genre_features = sp.csr_matrix(genre_features.toarray() + np.eye(N_ITEMS, N_GENRES, k=-(N_ITEMS - 2)))
    user_features = sp.csr_matrix(np.eye(2, dtype=np.float32)[np.arange(N_USERS) % 2])
    return InteractionData(
        user=np.asarray(users, dtype=np.int32),
        item=np.asarray(items, dtype=np.int32),
        timestamp=np.asarray(times, dtype=np.int64),
        n_users=N_USERS,
        n_items=N_ITEMS,
        event_type=event_type,
        event_types=("click", "purchase"),
        item_features=genre_features.astype(np.float32),
        item_feature_names=tuple(f"GENRES=g{g}" for g in range(N_GENRES)),
        user_features=user_features,
        user_feature_names=("GENDER=f", "GENDER=m"),
        item_creation=np.concatenate(
            [START - 30 * DAY + np.arange(N_ITEMS - 2) * 3600, [START + 9 * DAY, START + 9 * DAY]]
        ).astype(np.int64),
    )


@pytest.fixture(scope="session")
def planted_data() -> InteractionData:
    """The planted dataset (built once; treat as read-only)."""
    return make_planted_data()
