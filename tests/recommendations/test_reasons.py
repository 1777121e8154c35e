"""Reasons: which history item explains a score, and the sentences a shop owner reads."""

import numpy as np
import pytest

from catalog.models import DatasetGroup, DatasetSchema
from catalog.schemas import DatasetType
from recommendations.engine.base import History, InteractionData
from recommendations.engine.user_personalization import UserPersonalization
from recommendations.reasons import (
    Explanation,
    ReasonKind,
    item_label_fields,
    item_title,
    label_cache_clear,
    reason_text,
    reason_texts,
)
from tests.factories import ItemFactory


@pytest.fixture(autouse=True)
def _fresh_label_fields() -> None:
    """No label fields remembered from another test's schema."""
    label_cache_clear()


def two_taste_model(sequence_weight: str = "0") -> UserPersonalization:
    """Items 0-4 are always used together, items 5-9 together; 60 users each."""
    rng = np.random.default_rng(0)
    users, items, times = [], [], []
    for user in range(120):
        group = range(0, 5) if user < 60 else range(5, 10)
        picks = rng.choice(list(group), size=4, replace=False)
        for position, item in enumerate(picks):
            users.append(user)
            items.append(item)
            times.append(1_000 + user * 10 + position)
    data = InteractionData(
        user=np.array(users, dtype=np.int32),
        item=np.array(items, dtype=np.int32),
        timestamp=np.array(times, dtype=np.int64),
        n_users=120,
        n_items=10,
    )
    recipe = UserPersonalization({"hidden_dimension": "4", "sequence_weight": sequence_weight})
    recipe.fit(data)
    return recipe


@pytest.mark.parametrize("sequence_weight", ["0", "0.5"])
def test_explain_names_the_history_item_of_the_same_taste(sequence_weight: str) -> None:
    # Given a model of two tastes and a history with one item of each
    recipe = two_taste_model(sequence_weight)
    history = History(np.array([1, 7], dtype=np.int32), np.array([10, 20], dtype=np.int64))
    # When items of each taste are explained (with and without the scales from scoring)
    _, scales = recipe.scored(history)
    targets = np.array([0, 2, 6, 9, 1], dtype=np.int64)
    given = recipe.explain(history, targets, scales=scales)
    computed = recipe.explain(history, targets)
    # Then each is explained by the history item of its taste, and a history item not by itself
    assert given.tolist()[:4] == [1, 1, 7, 7]
    assert given[4] != 1
    assert given.tolist() == computed.tolist()


def test_explain_without_history_or_for_unknown_items_is_minus_one() -> None:
    # Given a model
    recipe = two_taste_model()
    # When there is no history, or the item is unknown
    empty = recipe.explain(History.empty(), np.array([0, 1]))
    unknown = recipe.explain(History(np.array([1], dtype=np.int32), np.array([1])), np.array([-1, 99]))
    # Then nothing is named
    assert empty.tolist() == [-1, -1] and unknown.tolist() == [-1, -1]


def test_recommend_reports_the_score_scales_it_used() -> None:
    # Given a model and a history
    recipe = two_taste_model("0.5")
    history = History(np.array([1, 2], dtype=np.int32), np.array([10, 20], dtype=np.int64))
    # When it recommends
    result = recipe.recommend(history, n=3)
    # Then the scales equal those of scoring, and scores are unchanged by the refactor
    assert result.extras["score_scales"] == recipe.scored(history)[1]
    np.testing.assert_allclose(recipe.scores(history)[result.index], result.score)


@pytest.mark.parametrize(
    ("value", "is_text", "expected"),
    [
        ("Toy Story", False, "Toy Story"),
        ("Lumière Gentle Sunscreen SPF 50. A light texture.", True, "Lumière Gentle Sunscreen SPF 50"),
        ("", True, "item-7"),
        (None, False, "item-7"),
        ("word " * 30, True, " ".join(["word"] * 11) + "…"),  # at most 60 characters, whole words
    ],
)
def test_item_title(value: object, is_text: bool, expected: str) -> None:
    # Given a title-like value; when it is shortened; then it reads as a name
    assert item_title(value, "item-7", is_text=is_text) == expected


@pytest.mark.parametrize(
    ("explanation", "title", "category", "expected"),
    [
        (Explanation(ReasonKind.VIEWED, 1), "Toy Story", "Animation", "Because you viewed Toy Story"),
        (Explanation(ReasonKind.SIMILAR, 1), "Toy Story", None, "Similar to Toy Story"),
        (Explanation(ReasonKind.POPULAR), None, "Books", "Popular in Books"),
        (Explanation(ReasonKind.POPULAR), None, None, "Popular right now"),
        (Explanation(ReasonKind.NEW), None, "Books", "New item in Books"),
        (Explanation(ReasonKind.NEW), None, None, "New item"),
        (Explanation(ReasonKind.PROMOTED, promotion_name="sale"), None, "Books", "Promoted: sale"),
        (Explanation(ReasonKind.TRENDING), None, None, "Trending now"),
        (Explanation(ReasonKind.FOR_YOU), None, None, "Picked for you from your recent activity"),
    ],
)
def test_reason_sentences(
    explanation: Explanation, title: str | None, category: str | None, expected: str
) -> None:
    # Given an explanation and the names it needs; when worded; then one plain sentence
    assert reason_text(explanation, title=title, category=category) == expected


def schema(group: DatasetGroup, fields: list[tuple[str, str]]) -> None:
    DatasetSchema.objects.create(
        dataset_group=group,
        dataset_type=DatasetType.ITEMS,
        fields=[{"name": "ITEM_ID", "kind": "id", "avro_type": "string", "nullable": False}]
        + [{"name": name, "kind": kind, "avro_type": "string", "nullable": True} for name, kind in fields],
    )


@pytest.mark.django_db
def test_label_fields_prefer_a_title_field_then_a_text_field(default_group: DatasetGroup) -> None:
    # Given a MovieLens-like schema (TITLE, GENRES)
    schema(default_group, [("TITLE", "string"), ("GENRES", "categorical"), ("YEAR", "numerical")])
    # When the label fields are chosen
    labels = item_label_fields(dataset_group_id=default_group.pk)
    # Then TITLE names items and GENRES is the category
    assert (labels.title, labels.title_is_text, labels.category) == ("TITLE", False, "GENRES")


@pytest.mark.django_db
def test_reason_texts_use_titles_of_history_items_and_the_first_category_value(
    default_group: DatasetGroup, django_assert_max_num_queries: object
) -> None:
    # Given a shop schema whose only name is in a textual description, and three items
    schema(
        default_group,
        [("BRAND", "categorical"), ("CATEGORY_L1", "categorical"), ("PRODUCT_DESCRIPTION", "textual")],
    )
    viewed = ItemFactory(
        metadata={"PRODUCT_DESCRIPTION": "Trail Runner 2. Light and fast.", "CATEGORY_L1": "Shoes"}
    )
    shown = ItemFactory(metadata={"CATEGORY_L1": "Sports|Outdoor", "BRAND": "Acme"})
    bare = ItemFactory(metadata={})
    explanations = [
        Explanation(ReasonKind.VIEWED, viewed.pk),
        Explanation(ReasonKind.POPULAR),
        Explanation(ReasonKind.POPULAR),
        Explanation(ReasonKind.SIMILAR, bare.pk),
    ]
    # When the sentences are built
    with django_assert_max_num_queries(2):  # type: ignore[operator]
        texts = reason_texts(
            dataset_group_id=default_group.pk,
            item_pks=[shown.pk, shown.pk, bare.pk, viewed.pk],
            explanations=explanations,
        )
    # Then they name the product, the first category value, and fall back to the id
    assert texts == [
        "Because you viewed Trail Runner 2",
        "Popular in Sports",
        "Popular right now",
        f"Similar to {bare.item_id}",
    ]
