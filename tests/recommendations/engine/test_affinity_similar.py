"""aws-similar-items, aws-item-affinity and aws-item-attribute-affinity on planted structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommendations.engine.affinity import ItemAffinity, ItemAttributeAffinity
from recommendations.engine.base import InteractionData, RecipeError
from recommendations.engine.similar_items import SimilarItems

from .conftest import ITEMS_PER_GENRE, N_GENRES, genre_of


def fit(cls, data: InteractionData):
    recipe = cls(seed=5)
    recipe.fit(data)
    return recipe


def test_a_new_item_gets_neighbours_from_its_category(planted_data):
    # Given item 41: no interactions, metadata genre 1
    recipe = fit(SimilarItems, planted_data)
    # When its related items are asked for
    result = recipe.similar(41, n=5)
    # Then they are genre-1 items
    assert [genre_of(int(i)) for i in result.index] == [1] * 5


def test_a_known_item_gets_neighbours_from_its_cluster(planted_data):
    # Given a popular genre-3 item / When its related items are asked for
    result = fit(SimilarItems, planted_data).similar(30, n=5)
    # Then most of them are genre-3 items and never the item itself
    assert 30 not in result.index
    assert sum(genre_of(int(i)) == 3 for i in result.index if i < 40) >= 4


def test_an_unknown_item_gets_popular_items(planted_data):
    # Given a fitted model / When an index it does not know is asked for
    recipe = fit(SimilarItems, planted_data)
    result = recipe.similar(10_000, n=3)
    # Then the most popular items come back
    assert result.index.tolist() == np.argsort(-np.asarray(recipe.popularity), kind="stable")[:3].tolist()


def test_similar_items_round_trip(planted_data, tmp_path: Path):
    # Given a fitted model saved and loaded memory-mapped / When asked the same / Then the same answer
    recipe = fit(SimilarItems, planted_data)
    recipe.save(tmp_path / "m")
    loaded = SimilarItems.load(tmp_path / "m")
    for item in (3, 41):
        assert np.array_equal(recipe.similar(item, n=6).index, loaded.similar(item, n=6).index)


@pytest.mark.parametrize("genre", range(N_GENRES))
def test_item_affinity_ranks_the_genres_users_first(planted_data, genre):
    # Given the most popular item of a genre
    recipe = fit(ItemAffinity, planted_data)
    mask = np.zeros(planted_data.n_items, dtype=bool)
    mask[genre * ITEMS_PER_GENRE] = True
    # When a 10-user segment is built (20 users belong to each genre)
    segment = recipe.segment(mask, n=10)
    # Then every member mostly watches that genre, best first
    assert [int(u) % N_GENRES for u in segment.index] == [genre] * 10
    assert np.all(np.diff(segment.score) <= 0)


def test_attribute_affinity_segments_users_of_the_matching_items(planted_data):
    # Given every item whose metadata says genre 2 (as ITEMS.GENRES = "g2" would select)
    recipe = fit(ItemAttributeAffinity, planted_data)
    mask = np.asarray(planted_data.item_features[:, 2].todense()).ravel() > 0
    # When a 15-user segment is built
    segment = recipe.segment(mask, n=15)
    # Then every member is a genre-2 user
    assert [int(u) % N_GENRES for u in segment.index] == [2] * 15


def test_item_affinity_takes_one_item(planted_data):
    # Given a mask of two items / When an item-affinity segment is asked for / Then it is refused
    mask = np.zeros(planted_data.n_items, dtype=bool)
    mask[[1, 2]] = True
    with pytest.raises(RecipeError, match="one item"):
        fit(ItemAffinity, planted_data).segment(mask, n=5)
