"""The recommendation API through the real /graphql/ view: queries, reasons, promotions, errors, lifecycle."""

import io
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from catalog.graphql.types import ItemType
from catalog.models import DatasetGroup, EndUser, Interaction, Item
from recommendations import services
from recommendations.filtering import filter_create
from recommendations.models import Campaign, RecommendationRecord, Solution
from recommendations.reasons import label_cache_clear
from recommendations.selectors import model_cache_clear
from recsite.schema import schema
from tests.auth import manage_client

pytestmark = pytest.mark.django_db

LIST_FIELDS = "recommendationId items { itemId score reason promotionName }"


@pytest.fixture(autouse=True)
def isolated_artifacts(settings: Any, tmp_path: Any) -> None:
    """Artifacts in a temporary media root; no model cached from another test."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RECSITE_ARTIFACT_CACHE = tmp_path / "cache"
    settings.RECSITE_DEFAULT_CAMPAIGN = ""
    model_cache_clear()
    label_cache_clear()


@pytest.fixture
def demo(default_group: DatasetGroup) -> DatasetGroup:
    """The small demo shop in the default group."""
    call_command("seed_demo", "--items", "200", "--users", "120", "--events", "4000", stdout=io.StringIO())
    return default_group


@pytest.fixture
def deploy(demo: DatasetGroup, django_capture_on_commit_callbacks: Any) -> Callable[..., Campaign]:
    """deploy(recipe, name=None, config=None): a campaign serving a freshly trained version."""

    def _deploy(recipe: str, name: str | None = None, config: dict | None = None) -> Campaign:
        solution = Solution.objects.filter(name=recipe).first() or services.solution_create(
            dataset_group=demo, name=recipe, recipe=recipe
        )
        with django_capture_on_commit_callbacks(execute=True):
            version = services.solution_version_create(solution=solution)
        version.refresh_from_db()
        assert version.status == "ACTIVE", version.failure_reason
        return services.campaign_create(name=name or recipe, solution_version=version, campaign_config=config)

    return _deploy


def gql(query: str, variables: dict | None = None) -> dict:
    """POST a GraphQL document to /graphql/ as JSON; the decoded body (never an HTTP 500)."""
    response = manage_client().post(  # as a manage-scoped API key: every operation
        "/graphql/", {"query": query, "variables": variables or {}}, content_type="application/json"
    )
    assert response.status_code in (200, 400), response.content
    return response.json()


def codes(body: dict) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


def active_user(group: DatasetGroup, minimum: int = 8) -> EndUser:
    return (
        EndUser.objects.filter(dataset_group=group)
        .annotate(n=Count("interactions"))
        .filter(n__gte=minimum)
        .order_by("user_id")
        .first()
    )


def metadata_of(item_ids: list[str], field: str) -> list[Any]:
    values = dict(Item.objects.filter(item_id__in=item_ids).values_list("item_id", f"metadata__{field}"))
    return [values[item_id] for item_id in item_ids]


def biggest_category(group: DatasetGroup) -> str:
    counts = Counter(Item.objects.filter(dataset_group=group).values_list("metadata__CATEGORY_L1", flat=True))
    return counts.most_common(1)[0][0]


# --- recommendations ---------------------------------------------------------------------------


def test_recommendations_default_campaign_returns_25_items_and_stores_the_recommendation_id(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given a deployed user-personalization campaign and a user with history
    campaign = deploy("aws-user-personalization")
    user = active_user(demo)
    # When recommendations are asked without naming a campaign
    body = gql(f'{{ recommendations(userId: "{user.user_id}") {{ {LIST_FIELDS} }} }}')
    # Then the default campaign answers 25 scored items and the answer is recorded
    answer = body["data"]["recommendations"]
    ids = [item["itemId"] for item in answer["items"]]
    assert len(ids) == 25 == len(set(ids))
    assert all(item["score"] is not None and item["reason"] for item in answer["items"])
    record = RecommendationRecord.objects.get(recommendation_id=answer["recommendationId"])
    assert len(answer["recommendationId"]) <= 40
    assert record.campaign == campaign and record.user_id == user.user_id and record.item_ids == ids


def test_the_default_campaign_setting_wins(deploy: Callable[..., Campaign], settings: Any) -> None:
    # Given two campaigns and RECSITE_DEFAULT_CAMPAIGN naming the older, a popularity one
    deploy("aws-popularity-count", name="popular")
    deploy("aws-user-personalization")
    settings.RECSITE_DEFAULT_CAMPAIGN = "popular"
    # When recommendations are asked without a campaign
    body = gql(f"{{ recommendations(numResults: 3) {{ {LIST_FIELDS} }} }}")
    record = RecommendationRecord.objects.get(
        recommendation_id=body["data"]["recommendations"]["recommendationId"]
    )
    # Then the configured campaign answered
    assert record.campaign.name == "popular"


@pytest.mark.parametrize("num_results", [0, -1, 501, 10_000])
def test_num_results_outside_1_to_500_is_bad_user_input(
    deploy: Callable[..., Campaign], num_results: int
) -> None:
    # Given a campaign
    deploy("aws-user-personalization")
    # When asked for too few or too many results
    body = gql(f'{{ recommendations(userId: "x", numResults: {num_results}) {{ recommendationId }} }}')
    # Then the request is refused as the caller's mistake, and nothing is recorded
    assert codes(body) == ["BAD_USER_INPUT"] and "numResults" in body["errors"][0]["message"]
    assert not RecommendationRecord.objects.exists()


def test_500_results_are_allowed(deploy: Callable[..., Campaign]) -> None:
    # Given a campaign over 200 items
    deploy("aws-user-personalization")
    # When asked for the maximum
    body = gql('{ recommendations(userId: "x", numResults: 500) { items { itemId } } }')
    # Then every item comes back
    assert len(body["data"]["recommendations"]["items"]) == 200


def test_unknown_campaign_filter_and_missing_default_are_not_found(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given no campaign at all
    body = gql('{ recommendations(userId: "u") { recommendationId } }')
    assert codes(body) == ["NOT_FOUND"] and "deploy" in body["errors"][0]["message"]
    # Given a campaign, when naming a campaign or a filter that does not exist
    deploy("aws-user-personalization")
    unknown_campaign = gql('{ recommendations(userId: "u", campaign: "nope") { recommendationId } }')
    unknown_filter = gql('{ recommendations(userId: "u", filter: "nope") { recommendationId } }')
    unknown_related = gql('{ relatedItems(itemId: "i", campaign: "nope") { recommendationId } }')
    # Then each is NOT_FOUND naming what is missing
    assert codes(unknown_campaign) == ["NOT_FOUND"] and "'nope'" in unknown_campaign["errors"][0]["message"]
    assert codes(unknown_filter) == ["NOT_FOUND"] and "filter" in unknown_filter["errors"][0]["message"]
    assert codes(unknown_related) == ["NOT_FOUND"]


def test_filter_applies_before_top_n_so_the_list_stays_full(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given a campaign, a user, and a filter on a category placeholder
    deploy("aws-user-personalization")
    user = active_user(demo)
    category = biggest_category(demo)
    filter_create(
        dataset_group=demo, name="by-category", expression="INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ($CAT)"
    )
    # When asking for 20 items of that category
    body = gql(
        """query($user: String, $cat: String!) { recommendations(userId: $user, numResults: 20,
        filter: "by-category", filterValues: [{name: "CAT", values: [$cat]}]) { items { itemId } } }""",
        {"user": user.user_id, "cat": category},
    )
    ids = [item["itemId"] for item in body["data"]["recommendations"]["items"]]
    # Then all 20 are of the category (the list is full, not a post-filtered top 20)
    assert len(ids) == 20
    assert set(metadata_of(ids, "CATEGORY_L1")) == {category}


def test_a_missing_include_placeholder_is_bad_user_input(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given a filter with an INCLUDE placeholder
    deploy("aws-user-personalization")
    filter_create(
        dataset_group=demo, name="by-category", expression="INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ($CAT)"
    )
    # When no value is given for it
    body = gql('{ recommendations(userId: "u", filter: "by-category") { recommendationId } }')
    # Then it is the caller's mistake
    assert codes(body) == ["BAD_USER_INPUT"]


def test_exclude_item_ids_removes_them_and_keeps_the_list_full(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given a campaign and a user's first answer
    deploy("aws-user-personalization")
    user = active_user(demo)
    query = (
        "query($u: String, $x: [String!]) { recommendations(userId: $u, numResults: 10, "
        "excludeItemIds: $x) { items { itemId } } }"
    )
    first = [i["itemId"] for i in gql(query, {"u": user.user_id})["data"]["recommendations"]["items"]]
    # When the first three (and an unknown id) are excluded
    excluded = [*first[:3], "not-an-item"]
    second = [
        i["itemId"]
        for i in gql(query, {"u": user.user_id, "x": excluded})["data"]["recommendations"]["items"]
    ]
    # Then none of them comes back, the rest move up, and the list is still full
    assert len(second) == 10 and not set(second) & set(excluded)
    assert second[:7] == first[3:]


def test_promotion_mixes_in_flagged_items_from_its_filter_deterministically(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given a request filter on one category and a promotion filter on another
    deploy("aws-user-personalization")
    user = active_user(demo)
    categories = [
        c
        for c, _ in Counter(
            Item.objects.filter(dataset_group=demo).values_list("metadata__CATEGORY_L1", flat=True)
        ).most_common(2)
    ]
    filter_create(
        dataset_group=demo, name="main", expression="INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ($CAT)"
    )
    filter_create(
        dataset_group=demo, name="promo", expression="INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ($CAT)"
    )
    query = """query($u: String, $a: String!, $b: String!) { recommendations(userId: $u, numResults: 10,
      filter: "main", filterValues: [{name: "CAT", values: [$a]}],
      promotion: {name: "spring-sale", percentPromotedItems: 30, filter: "promo",
                  filterValues: [{name: "CAT", values: [$b]}]}) {
        items { itemId score reason promotionName } } }"""
    variables = {"u": user.user_id, "a": categories[0], "b": categories[1]}
    # When recommendations with a 30% promotion are asked twice
    items = gql(query, variables)["data"]["recommendations"]["items"]
    again = gql(query, variables)["data"]["recommendations"]["items"]
    # Then 3 of 10 items are promoted, from the promotion's filter (the request filter does not apply
    # to them), sorted among themselves, flagged and explained; the rest pass the request filter
    promoted = [item for item in items if item["promotionName"]]
    ordinary = [item for item in items if not item["promotionName"]]
    assert len(items) == 10 and len(promoted) == 3
    assert {p["promotionName"] for p in promoted} == {"spring-sale"}
    assert all(p["reason"] == "Promoted: spring-sale" for p in promoted)
    assert set(metadata_of([p["itemId"] for p in promoted], "CATEGORY_L1")) == {categories[1]}
    assert set(metadata_of([o["itemId"] for o in ordinary], "CATEGORY_L1")) == {categories[0]}
    scores = [p["score"] for p in promoted]
    assert scores == sorted(scores, reverse=True)
    assert [i["itemId"] for i in again] == [i["itemId"] for i in items]


def test_promotion_input_is_checked(deploy: Callable[..., Campaign], demo: DatasetGroup) -> None:
    # Given a campaign and a filter
    deploy("aws-user-personalization")
    filter_create(dataset_group=demo, name="promo", expression="INCLUDE ItemID WHERE Items.PRICE < 20")
    # When the percentage is out of range
    body = gql(
        '{ recommendations(userId: "u", promotion: {name: "p", percentPromotedItems: 0, filter: "promo"}) '
        "{ recommendationId } }"
    )
    # Then BAD_USER_INPUT
    assert codes(body) == ["BAD_USER_INPUT"]


def test_reasons_name_the_viewed_item_for_a_known_user_and_the_category_for_a_new_one(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given a campaign, a user with history, and a visitor nobody has seen
    deploy("aws-user-personalization")
    user = active_user(demo)
    history_titles = {
        description.split(". ")[0]
        for description in Item.objects.filter(interactions__user=user).values_list(
            "metadata__PRODUCT_DESCRIPTION", flat=True
        )
    }
    query = "query($u: String) { recommendations(userId: $u, numResults: 10) { items { itemId reason } } }"
    # When both ask for recommendations
    known = gql(query, {"u": user.user_id})["data"]["recommendations"]["items"]
    new = gql(query, {"u": "never-seen-before"})["data"]["recommendations"]["items"]
    # Then the known user's reasons name items from their own history by title
    viewed = [item["reason"] for item in known if item["reason"].startswith("Because you viewed ")]
    assert len(viewed) >= 5
    assert {reason.removeprefix("Because you viewed ") for reason in viewed} <= history_titles
    # And the new visitor's reasons name each item's top category
    categories = metadata_of([item["itemId"] for item in new], "CATEGORY_L1")
    # (exploration may place a young item: "New item in <category>")
    for item, category in zip(new, categories, strict=True):
        assert item["reason"] in (f"Popular in {category}", f"New item in {category}")
    assert sum(item["reason"].startswith("Popular in ") for item in new) >= 5


def test_trending_and_popular_campaigns_explain_themselves(deploy: Callable[..., Campaign]) -> None:
    # Given trending and popularity campaigns
    deploy("aws-trending-now", name="trending")
    deploy("aws-popularity-count", name="popular")
    # When each is asked by name
    trending = gql('{ recommendations(campaign: "trending", numResults: 3) { items { reason } } }')
    popular = gql('{ recommendations(campaign: "popular", numResults: 3) { items { itemId reason } } }')
    # Then their reasons say so
    assert all(i["reason"].startswith("Trending now") for i in trending["data"]["recommendations"]["items"])
    items = popular["data"]["recommendations"]["items"]
    assert [i["reason"] for i in items] == [
        f"Popular in {c}" for c in metadata_of([i["itemId"] for i in items], "CATEGORY_L1")
    ]


def test_item_fields_cost_the_same_number_of_queries_for_5_and_25_results(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given a campaign, a user and a filter
    deploy("aws-user-personalization")
    user = active_user(demo)
    filter_create(dataset_group=demo, name="cheap", expression="INCLUDE ItemID WHERE Items.PRICE < 500")
    query = """query($u: String, $n: Int!) { recommendations(userId: $u, numResults: $n, filter: "cheap") {
      recommendationId items { itemId score reason item { itemId metadata creationTimestamp } } } }"""
    gql(query, {"u": user.user_id, "n": 5})  # warm the per-process caches
    # When 5 and then 25 results with catalog fields and reasons are asked
    counts = []
    for n in (5, 25):
        with CaptureQueriesContext(connection) as captured:
            body = gql(query, {"u": user.user_id, "n": n})
        items = body["data"]["recommendations"]["items"]
        assert len(items) == n and all(item["item"]["itemId"] == item["itemId"] for item in items)
        counts.append(len(captured))
    # Then the number of queries does not grow with the list
    assert counts[0] == counts[1], counts


def test_reasons_and_catalog_rows_are_loaded_only_when_selected_fragments_included(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given a campaign and a user
    deploy("aws-user-personalization")
    user = active_user(demo)
    plain = """query($u: String) { recommendations(userId: $u, numResults: 10) {
      items { itemId reason item { itemId metadata interactionCount } } } }"""
    through_fragments = """query($u: String) { recommendations(userId: $u, numResults: 10) { ...List } }
      fragment List on RecommendationList { items { itemId ... on RecommendedItem { why: reason }
        ...Row } }
      fragment Row on RecommendedItem { product: item { itemId ... { metadata interactionCount } } }"""
    bare = """query($u: String) { recommendations(userId: $u, numResults: 10) { items { itemId score } } }"""
    gql(plain, {"u": user.user_id})  # warm the per-process caches (the label fields' schema)
    # When the same list is asked plainly, through fragments and aliases, and without reason and item
    with CaptureQueriesContext(connection) as captured:
        expected = gql(plain, {"u": user.user_id})["data"]["recommendations"]["items"]
    plain_queries = [query["sql"] for query in captured.captured_queries]
    fragmented = gql(through_fragments, {"u": user.user_id})["data"]["recommendations"]["items"]
    with CaptureQueriesContext(connection) as captured:
        gql(bare, {"u": user.user_id})
    bare_queries = [query["sql"] for query in captured.captured_queries]
    # Then fragments and aliases get the same reasons and catalog rows (counts included)
    assert [(row["itemId"], row["why"], row["product"]) for row in fragmented] == [
        (row["itemId"], row["reason"], row["item"]) for row in expected
    ]
    counts = Counter(
        Interaction.objects.filter(item__item_id__in=[row["itemId"] for row in expected]).values_list(
            "item__item_id", flat=True
        )
    )
    assert [row["item"]["interactionCount"] for row in expected] == [
        counts[row["itemId"]] for row in expected
    ]
    assert all(row["reason"] and row["item"]["itemId"] == row["itemId"] for row in expected)
    # And a list without them reads neither the reasons' names nor the catalog rows
    catalog = Item._meta.db_table
    assert sum(catalog in sql for sql in plain_queries) == 2  # the reasons' names, the catalog rows
    assert not any(catalog in sql for sql in bare_queries)
    assert len(bare_queries) == len(plain_queries) - 2


def test_a_lists_catalog_items_answer_every_item_field_as_the_catalog_query_does(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given a campaign, a user, and every field of the GraphQL Item type
    deploy("aws-user-personalization")
    user = active_user(demo)
    Item.objects.filter(item_id__in=Item.objects.values_list("item_id", flat=True)[:50]).update(
        creation_timestamp=datetime(2026, 5, 4, 3, 2, 1, 500_000, tzinfo=UTC)  # a fraction of a second too
    )
    fields = " ".join(
        schema.config.name_converter.get_graphql_name(field)
        for field in ItemType.__strawberry_definition__.fields  # type: ignore[attr-defined]
    )
    # When a list's items are asked with all of them, and each item through the catalog query
    query = "query($u: String) { recommendations(userId: $u, numResults: 50) { items { item { FIELDS } } } }"
    listed = gql(query.replace("FIELDS", fields), {"u": user.user_id})["data"]["recommendations"]["items"]
    # Then each field of each item is what the catalog query answers for it
    for row in listed:
        catalog = gql(
            f"query($i: String!) {{ item(itemId: $i) {{ {fields} }} }}", {"i": row["item"]["itemId"]}
        )
        assert row["item"] == catalog["data"]["item"]
    assert len(fields.split()) >= 4 and len(listed) == 50
    assert any(row["item"]["creationTimestamp"] == 1777863721.5 for row in listed)


def test_context_is_accepted_and_checked(deploy: Callable[..., Campaign]) -> None:
    # Given a campaign
    deploy("aws-user-personalization")
    # When a context map is passed, and when it is not a map of short strings
    ok = gql(
        '{ recommendations(userId: "u", numResults: 2, context: {DEVICE: "mobile"}) { items { itemId } } }'
    )
    bad = gql('{ recommendations(userId: "u", context: ["x"]) { items { itemId } } }')
    bad_key = gql('{ recommendations(userId: "u", context: {"bad key": "x"}) { items { itemId } } }')
    # Then the first is answered and the others are refused
    assert len(ok["data"]["recommendations"]["items"]) == 2
    assert codes(bad) == ["BAD_USER_INPUT"] and codes(bad_key) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    "arguments",
    [
        'userId: "' + "u" * 257 + '"',
        'userId: ""',
        "excludeItemIds: [" + ", ".join(['"x"'] * 501) + "]",
        'filterValues: [{name: "A", values: ["x"]}, {name: "A", values: ["y"]}]',
        'campaign: "' + "c" * 300 + '"',
        "numResults: 99999999999",
    ],
)
def test_bad_arguments_are_bad_user_input_never_a_server_error(
    deploy: Callable[..., Campaign], arguments: str
) -> None:
    # Given a campaign
    deploy("aws-user-personalization")
    # When a malformed argument is passed
    body = gql(f"{{ recommendations({arguments}) {{ recommendationId }} }}")
    # Then it is refused as the caller's mistake
    assert codes(body) == ["BAD_USER_INPUT"], body


# --- related items, ranking, segments ----------------------------------------------------------


def test_related_items_are_similar_to_the_item_and_unknown_items_get_popular_ones(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given a SIMS campaign (the default related-items campaign) and a popular item
    deploy("aws-sims")
    item = Item.objects.filter(dataset_group=demo).annotate(n=Count("interactions")).order_by("-n").first()
    title = item.metadata["PRODUCT_DESCRIPTION"].split(". ")[0]
    # When related items of it, and of an unknown item, are asked
    known = gql(f'{{ relatedItems(itemId: "{item.item_id}", numResults: 5) {{ {LIST_FIELDS} }} }}')
    unknown = gql(f'{{ relatedItems(itemId: "no-such-item", numResults: 5) {{ {LIST_FIELDS} }} }}')
    # Then the first are "Similar to <title>" and never the item itself; the second are popular items
    items = known["data"]["relatedItems"]["items"]
    assert len(items) == 5 and item.item_id not in {i["itemId"] for i in items}
    assert items[0]["reason"] == f"Similar to {title}"
    fallback = unknown["data"]["relatedItems"]["items"]
    popular = (
        Interaction.objects.filter(dataset_group=demo, user__isnull=False)
        .values("item__item_id")
        .annotate(users=Count("user", distinct=True))
        .order_by("-users")
    )
    top = {row["item__item_id"] for row in popular if row["users"] >= popular[4]["users"]}
    assert len(fallback) == 5 and {i["itemId"] for i in fallback} <= top
    assert all(i["reason"].startswith("Popular in ") for i in fallback)


def test_related_items_with_a_current_item_filter(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given a SIMS campaign and a filter keeping the current item's category
    deploy("aws-sims", name="sims")
    filter_create(
        dataset_group=demo,
        name="same-category",
        expression="INCLUDE ItemID WHERE Items.CATEGORY_L1 IN CurrentItem.CATEGORY_L1",
    )
    item = Item.objects.filter(dataset_group=demo).annotate(n=Count("interactions")).order_by("-n").first()
    # When related items are asked with it
    body = gql(
        f'{{ relatedItems(itemId: "{item.item_id}", campaign: "sims", numResults: 8, filter: "same-category")'
        " { items { itemId } } }"
    )
    ids = [i["itemId"] for i in body["data"]["relatedItems"]["items"]]
    # Then all are of the item's category
    assert len(ids) == 8 and set(metadata_of(ids, "CATEGORY_L1")) == {item.metadata["CATEGORY_L1"]}


def test_personalized_ranking_puts_unknown_ids_last_without_score(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given a ranking campaign and a user
    deploy("aws-personalized-ranking")
    user = active_user(demo)
    item_ids = list(Item.objects.filter(dataset_group=demo).values_list("item_id", flat=True)[:8])
    # When ranking known items with two unknown ids mixed in
    body = gql(
        "query($u: String, $ids: [String!]!) { personalizedRanking(userId: $u, itemIds: $ids) "
        f"{{ {LIST_FIELDS} }} }}",
        {"u": user.user_id, "ids": ["ghost-1", *item_ids[:4], "ghost-2", *item_ids[4:]]},
    )
    items = body["data"]["personalizedRanking"]["items"]
    # Then the known items come first, best first, and the unknown ones last, unscored, in input order
    assert [i["itemId"] for i in items[-2:]] == ["ghost-1", "ghost-2"]
    assert all(i["score"] is None for i in items[-2:])
    scores = [i["score"] for i in items[:-2]]
    assert sorted(i["itemId"] for i in items[:-2]) == sorted(item_ids) and scores == sorted(
        scores, reverse=True
    )
    assert RecommendationRecord.objects.filter(
        recommendation_id=body["data"]["personalizedRanking"]["recommendationId"]
    ).exists()


def test_personalized_ranking_refuses_more_than_500_ids(deploy: Callable[..., Campaign]) -> None:
    # Given a ranking campaign
    deploy("aws-personalized-ranking")
    # When 501 ids are given
    body = gql(
        'query($ids: [String!]!) { personalizedRanking(userId: "u", itemIds: $ids) { recommendationId } }',
        {"ids": [f"i{n}" for n in range(501)]},
    )
    # Then BAD_USER_INPUT
    assert codes(body) == ["BAD_USER_INPUT"]


def test_user_segment_finds_the_planted_fans_of_an_attribute(
    demo: DatasetGroup, deploy: Callable[..., Campaign]
) -> None:
    # Given a planted category of items that only five users interact with, heavily
    planted = [
        Item.objects.create(
            dataset_group=demo, item_id=f"planted-{n}", metadata={"CATEGORY_L1": "Planted", "PRICE": 10.0 + n}
        )
        for n in range(6)
    ]
    fans = list(EndUser.objects.filter(dataset_group=demo).order_by("user_id")[:5])
    newest = Interaction.objects.filter(dataset_group=demo).order_by("-timestamp").first().timestamp
    for fan in fans:
        for item in planted:
            for _ in range(3):
                Interaction.objects.create(
                    dataset_group=demo, user=fan, item=item, event_type="view", timestamp=newest
                )
    deploy("aws-item-attribute-affinity")
    deploy("aws-item-affinity")
    # When segments are asked for the attribute and for one planted item
    by_attribute = gql(
        '{ userSegment(itemAttributes: "ITEMS.CATEGORY_L1 = \\"Planted\\" AND ITEMS.PRICE < 100", '
        "numResults: 5) { userIds scores } }"
    )
    by_item = gql('{ userSegment(itemId: "planted-0", numResults: 5) { userIds } }')
    # Then the planted fans are the segment
    expected = {fan.user_id for fan in fans}
    assert set(by_attribute["data"]["userSegment"]["userIds"]) == expected
    assert set(by_item["data"]["userSegment"]["userIds"]) == expected


def test_user_segment_input_errors(deploy: Callable[..., Campaign]) -> None:
    # Given an attribute-affinity campaign
    deploy("aws-item-attribute-affinity")
    # When both or neither target is given, or the condition is malformed or names an unknown field
    both = gql('{ userSegment(itemId: "a", itemAttributes: "ITEMS.PRICE < 3") { userIds } }')
    neither = gql("{ userSegment { userIds } }")
    malformed = gql('{ userSegment(itemAttributes: "ITEMS.PRICE <") { userIds } }')
    unknown = gql('{ userSegment(itemAttributes: "ITEMS.COLOUR = \\"red\\"") { userIds } }')
    # Then each is BAD_USER_INPUT
    for body in (both, neither, malformed, unknown):
        assert codes(body) == ["BAD_USER_INPUT"], body


# --- lifecycle mutations -----------------------------------------------------------------------


def test_lifecycle_mutations_create_train_deploy_and_update(
    demo: DatasetGroup, django_capture_on_commit_callbacks: Any
) -> None:
    # Given the demo data
    # When a solution is created, trained, deployed, and the campaign updated to a second version
    solution = gql(
        'mutation { createSolution(name: "up", recipe: "aws-user-personalization", '
        'solutionConfig: {algorithmHyperParameters: {hidden_dimension: "16"}}) '
        "{ __typename name recipe datasetGroup solutionConfig } }"
    )
    with django_capture_on_commit_callbacks(execute=True):
        version = gql(
            'mutation { createSolutionVersion(solution: "up") { __typename solutionVersionId status } }'
        )
    campaign = gql(
        'mutation { createCampaign(name: "shop", solution: "up") '
        "{ __typename name status solutionVersionId recipe } }"
    )
    with django_capture_on_commit_callbacks(execute=True):
        second = gql('mutation { createSolutionVersion(solution: "up") { solutionVersionId } }')
    second_id = second["data"]["createSolutionVersion"]["solutionVersionId"]
    updated = gql(
        f'mutation {{ updateCampaign(name: "shop", solutionVersionId: "{second_id}", '
        'campaignConfig: {itemExplorationConfig: {explorationWeight: "0.1"}}) '
        "{ __typename solutionVersionId campaignConfig } }"
    )
    # Then each returns its object type and the campaign serves the second version
    assert solution["data"]["createSolution"] == {
        "__typename": "Solution",
        "name": "up",
        "recipe": "aws-user-personalization",
        "datasetGroup": "default",
        "solutionConfig": {"algorithmHyperParameters": {"hidden_dimension": "16"}},
    }
    assert version["data"]["createSolutionVersion"]["__typename"] == "SolutionVersion"
    first_id = version["data"]["createSolutionVersion"]["solutionVersionId"]
    assert campaign["data"]["createCampaign"] == {
        "__typename": "Campaign",
        "name": "shop",
        "status": "ACTIVE",
        "solutionVersionId": first_id,
        "recipe": "aws-user-personalization",
    }
    assert updated["data"]["updateCampaign"]["solutionVersionId"] == second_id != first_id
    assert updated["data"]["updateCampaign"]["campaignConfig"] == {
        "itemExplorationConfig": {"explorationWeight": "0.1"}
    }
    assert (
        len(
            gql('{ recommendations(campaign: "shop", numResults: 4) { items { itemId } } }')["data"][
                "recommendations"
            ]["items"]
        )
        == 4
    )


def test_lifecycle_mutation_errors(demo: DatasetGroup) -> None:
    # Given the demo data
    # When a solution names an unknown recipe, a version an unknown solution, a campaign an unknown version
    bad_recipe = gql('mutation { createSolution(name: "x", recipe: "aws-nope") { name } }')
    no_solution = gql('mutation { createSolutionVersion(solution: "nope") { status } }')
    no_version = gql('mutation { createCampaign(name: "c", solutionVersionId: "987654") { name } }')
    no_campaign = gql('mutation { updateCampaign(name: "nope") { name } }')
    no_group = gql(
        'mutation { createSolution(name: "x", recipe: "aws-sims", datasetGroup: "nope") { name } }'
    )
    # Then the caller learns which and why
    assert codes(bad_recipe) == ["BAD_USER_INPUT"] and "aws-nope" in bad_recipe["errors"][0]["message"]
    assert codes(no_solution) == ["NOT_FOUND"]
    assert codes(no_version) == ["NOT_FOUND"] and "987654" in no_version["errors"][0]["message"]
    assert codes(no_campaign) == ["NOT_FOUND"]
    assert codes(no_group) == ["NOT_FOUND"]
    assert not Solution.objects.exists()


# --- real-time adaptation ----------------------------------------------------------------------


def test_put_events_changes_the_very_next_recommendations(
    deploy: Callable[..., Campaign], demo: DatasetGroup
) -> None:
    # Given a campaign, an event tracker and a user who never touched the least-served category
    deploy("aws-user-personalization")
    user = active_user(demo)
    tracking_id = gql('mutation { createEventTracker(name: "web") { trackingId } }')["data"][
        "createEventTracker"
    ]["trackingId"]
    query = "query($u: String) { recommendations(userId: $u, numResults: 10) { items { itemId reason } } }"
    before = gql(query, {"u": user.user_id})["data"]["recommendations"]["items"]
    seen = set(Item.objects.filter(interactions__user=user).values_list("metadata__CATEGORY_L2", flat=True))
    counts = Counter(Item.objects.filter(dataset_group=demo).values_list("metadata__CATEGORY_L2", flat=True))
    target = next(c for c, n in counts.most_common() if c not in seen and n >= 8)
    viewed = (
        Item.objects.filter(dataset_group=demo, metadata__CATEGORY_L2=target)
        .annotate(n=Count("interactions"))
        .order_by("-n")[:5]
    )
    newest = (
        Interaction.objects.filter(dataset_group=demo).order_by("-timestamp").first().timestamp.timestamp()
    )
    events = [
        {"eventType": "view", "sentAt": newest + 60 * (offset + 1), "itemId": item.item_id}
        for offset, item in enumerate(viewed)
    ]
    # When the user's views of five items of that category are put through putEvents
    put = gql(
        'mutation($t: String!, $u: String, $e: [EventInput!]!) { putEvents(trackingId: $t, sessionId: "s1", '
        "userId: $u, events: $e) { __typename } }",
        {"t": tracking_id, "u": user.user_id, "e": events},
    )
    assert "errors" not in put, put
    after = gql(query, {"u": user.user_id})["data"]["recommendations"]["items"]
    # Then the very next answer leans to that category and says why, naming a viewed item
    ids_before, ids_after = [i["itemId"] for i in before], [i["itemId"] for i in after]
    assert ids_after != ids_before
    assert metadata_of(ids_after, "CATEGORY_L2").count(target) > metadata_of(ids_before, "CATEGORY_L2").count(
        target
    )
    titles = {item.metadata["PRODUCT_DESCRIPTION"].split(". ")[0] for item in viewed}
    assert any(i["reason"].removeprefix("Because you viewed ") in titles for i in after)


# --- GraphiQL examples -------------------------------------------------------------------------


def test_the_graphiql_examples_are_valid_operations_of_the_schema() -> None:
    # Given the example document GraphiQL opens with
    from graphql import parse, validate

    from recsite.graphql_view import graphiql_examples
    from recsite.schema import schema

    document = parse(graphiql_examples())
    # When it is validated against the schema
    errors = validate(schema._schema, document)
    # Then every operation is valid, and each Personalize API has one
    assert errors == []
    names = {definition.name.value for definition in document.definitions}
    assert {"Recommendations", "RelatedItems", "PersonalizedRanking", "UserSegment", "PutEvents"} <= names


def test_graphiql_opens_with_the_examples(settings: Any) -> None:
    # Given a view serving GraphiQL
    from recsite.graphql_view import RecsiteGraphQLView
    from recsite.schema import schema

    view = RecsiteGraphQLView(schema=schema, graphql_ide="graphiql")
    # When its page is rendered
    html = view.graphql_ide_html
    # Then the examples are its default document
    assert "query Recommendations" in html and "parameters.q || EXAMPLE_QUERY" not in html
