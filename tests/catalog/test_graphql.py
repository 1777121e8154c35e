"""The catalog GraphQL API at /graphql/, exercised through Django's test client."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import DatasetGroup
from recsite.schema import build_schema, schema
from tests.auth import manage_client
from tests.factories import DatasetGroupFactory, EndUserFactory, InteractionFactory, ItemFactory

pytestmark = pytest.mark.django_db


def at(seconds: float) -> datetime:
    """An aware datetime from epoch seconds."""
    return datetime.fromtimestamp(seconds, UTC)


def gql(client: Client, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST one operation as JSON and return the decoded body (asserting HTTP 200)."""
    response = client.post(
        "/graphql/",
        json.dumps({"query": query, "variables": variables or {}}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def data(client: Client, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `data` of a successful operation (asserting there are no errors)."""
    body = gql(client, query, variables)
    assert "errors" not in body, body["errors"]
    return body["data"]


def error_codes(body: dict[str, Any]) -> list[str]:
    """The extensions.code of each error of a response."""
    return [error["extensions"]["code"] for error in body["errors"]]


def item_ids(client: Client, arguments: str) -> list[str]:
    """The itemIds that `items(<arguments>)` returns, in order."""
    return [row["itemId"] for row in data(client, f"{{ items{arguments} {{ itemId }} }}")["items"]]


@pytest.fixture
def client(db: None) -> Client:
    """Catalog reads need the manage scope: these tests call with a manage-scoped API key."""
    return manage_client()


@pytest.fixture
def other_group(db: None) -> DatasetGroup:
    """A second dataset group, `other`."""
    return DatasetGroupFactory(name="other")


# --- single records ----------------------------------------------------------------------------------


def test_item_returns_its_fields_with_epoch_seconds(client: Client, default_group: DatasetGroup) -> None:
    # given an item with a creation time and metadata
    ItemFactory(
        item_id="42", creation_timestamp=at(1_700_000_123), metadata={"GENRES": "Comedy", "PRICE": 9.5}
    )

    # when it is asked for by its string id
    item = data(client, '{ item(itemId: "42") { itemId creationTimestamp metadata } }')["item"]

    # then its external id, epoch-seconds creation time and metadata come back
    assert item == {
        "itemId": "42",
        "creationTimestamp": 1_700_000_123.0,
        "metadata": {"GENRES": "Comedy", "PRICE": 9.5},
    }


def test_item_without_creation_time_has_null_timestamp(client: Client, default_group: DatasetGroup) -> None:
    # given an item without a creation time
    ItemFactory(item_id="a", creation_timestamp=None)

    # when it is read, then creationTimestamp is null
    assert data(client, '{ item(itemId: "a") { creationTimestamp } }')["item"] == {"creationTimestamp": None}


def test_unknown_item_and_user_are_null_not_errors(client: Client, default_group: DatasetGroup) -> None:
    # given an empty catalog, when unknown ids are asked for, then both are null without errors
    result = data(client, '{ item(itemId: "nope") { itemId } user(userId: "nobody") { userId } }')
    assert result == {"item": None, "user": None}


def test_user_returns_its_id_and_metadata(client: Client, default_group: DatasetGroup) -> None:
    # given a user with metadata
    EndUserFactory(user_id="u1", metadata={"AGE": 30, "GENDER": "F"})

    # when it is read by id, then its id and metadata come back
    user = data(client, '{ user(userId: "u1") { userId metadata } }')["user"]
    assert user == {"userId": "u1", "metadata": {"AGE": 30, "GENDER": "F"}}


def test_item_interaction_count_counts_its_events(client: Client, default_group: DatasetGroup) -> None:
    # given an item with two events and another with none
    popular = ItemFactory(item_id="popular")
    ItemFactory(item_id="quiet")
    InteractionFactory.create_batch(2, item=popular)

    # when items are listed with interactionCount, then each count is right
    rows = data(client, "{ items(ordering: [{itemId: ASC}]) { itemId interactionCount } }")["items"]
    assert rows == [{"itemId": "popular", "interactionCount": 2}, {"itemId": "quiet", "interactionCount": 0}]


def test_no_database_key_is_exposed() -> None:
    # given the schema, when its types are rendered, then no type has an `id` or `pk` field
    sdl = schema.as_str()
    for type_name in ("Item", "User", "Interaction"):
        block = sdl.split(f"type {type_name} {{", 1)[1].split("}", 1)[0]
        fields = {line.strip().split(":")[0] for line in block.splitlines() if ":" in line}
        assert not fields & {"id", "pk", "datasetGroup"}, (type_name, fields)


# --- dataset groups ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        '{ item(itemId: "x", datasetGroup: "missing") { itemId } }',
        '{ items(datasetGroup: "missing") { itemId } }',
        '{ user(userId: "x", datasetGroup: "missing") { userId } }',
        '{ users(datasetGroup: "missing") { userId } }',
        '{ interactions(datasetGroup: "missing") { eventType } }',
    ],
)
def test_unknown_dataset_group_is_not_found(client: Client, default_group: DatasetGroup, query: str) -> None:
    # given no group named `missing`, when a field names it
    body = gql(client, query)

    # then the error says NOT_FOUND and names the group
    assert error_codes(body) == ["NOT_FOUND"]
    assert "missing" in body["errors"][0]["message"]


def test_nothing_crosses_dataset_groups(
    client: Client, default_group: DatasetGroup, other_group: DatasetGroup
) -> None:
    # given the same item and user ids in two groups, each with one event
    ItemFactory(item_id="shared", metadata={"GENRES": "Comedy"})
    ItemFactory(item_id="shared", dataset_group=other_group, metadata={"GENRES": "Horror"})
    ItemFactory(item_id="only-other", dataset_group=other_group)
    InteractionFactory(
        event_type="default-event",
        user=EndUserFactory(user_id="u"),
        item=ItemFactory(item_id="default-only"),
    )
    InteractionFactory(
        dataset_group=other_group,
        event_type="other-event",
        user=EndUserFactory(user_id="u", dataset_group=other_group),
        item=ItemFactory(item_id="other-only", dataset_group=other_group),
    )

    # when each group is read
    default_item = data(client, '{ item(itemId: "shared") { metadata } }')["item"]
    other_item = data(client, '{ item(itemId: "shared", datasetGroup: "other") { metadata } }')["item"]
    default_items = item_ids(client, "(ordering: [{itemId: ASC}])")
    other_items = item_ids(client, '(datasetGroup: "other", ordering: [{itemId: ASC}])')
    default_events = data(client, '{ interactions(userId: "u") { eventType itemId } }')["interactions"]
    other_events = data(client, '{ interactions(userId: "u", datasetGroup: "other") { eventType itemId } }')

    # then every answer comes from that group only
    assert default_item == {"metadata": {"GENRES": "Comedy"}}
    assert other_item == {"metadata": {"GENRES": "Horror"}}
    assert default_items == ["default-only", "shared"]
    assert other_items == ["only-other", "other-only", "shared"]
    assert default_events == [{"eventType": "default-event", "itemId": "default-only"}]
    assert other_events["interactions"] == [{"eventType": "other-event", "itemId": "other-only"}]
    assert data(client, '{ item(itemId: "only-other") { itemId } }') == {"item": None}


# --- filters -----------------------------------------------------------------------------------------


def test_items_filter_by_item_id(client: Client, default_group: DatasetGroup) -> None:
    # given items with related ids
    for item_id in ("a1", "a2", "b1", "A3"):
        ItemFactory(item_id=item_id)
    order = "ordering: [{itemId: ASC}]"

    # when filtered exactly, by list and by (case-sensitive) prefix, then only matches return
    assert item_ids(client, f'(filters: {{itemId: {{exact: "a2"}}}}, {order})') == ["a2"]
    assert item_ids(client, f'(filters: {{itemId: {{inList: ["b1", "a1", "zz"]}}}}, {order})') == ["a1", "b1"]
    assert item_ids(client, f'(filters: {{itemId: {{startsWith: "a"}}}}, {order})') == ["a1", "a2"]


def test_items_filter_by_creation_time_range(client: Client, default_group: DatasetGroup) -> None:
    # given items created at 100, 200 and 300 seconds and one without a time
    for seconds in (100, 200, 300):
        ItemFactory(item_id=f"t{seconds}", creation_timestamp=at(seconds))
    ItemFactory(item_id="undated", creation_timestamp=None)

    # when filtered by an epoch-seconds range, then the bounds are honoured
    closed = item_ids(
        client, "(filters: {creationTimestamp: {gte: 150, lte: 300}}, ordering: [{itemId: ASC}])"
    )
    open_ = item_ids(client, "(filters: {creationTimestamp: {gt: 100.5, lt: 300}})")
    assert closed == ["t200", "t300"]
    assert open_ == ["t200"]


def test_metadata_filter_matches_whole_categorical_values_only(
    client: Client, default_group: DatasetGroup
) -> None:
    # given items whose GENRES hold `|`-joined values, and look-alikes
    ItemFactory(item_id="multi", metadata={"GENRES": "Action|Comedy"})
    ItemFactory(item_id="single", metadata={"GENRES": "Comedy"})
    ItemFactory(item_id="first", metadata={"GENRES": "Comedy|Drama"})
    ItemFactory(item_id="phrase", metadata={"GENRES": "Comedy Drama"})
    ItemFactory(item_id="longer", metadata={"GENRES": "Dark Comedy|Romance"})
    ItemFactory(item_id="lower", metadata={"GENRES": "comedy"})
    ItemFactory(item_id="wildcard", metadata={"GENRES": "Com%dy"})
    ItemFactory(item_id="other-field", metadata={"MOOD": "Comedy"})
    ItemFactory(item_id="no-metadata")
    order = "ordering: [{itemId: ASC}]"

    # when filtered by one categorical value
    comedy = item_ids(client, f'(filters: {{metadata: {{field: "GENRES", value: "Comedy"}}}}, {order})')
    drama = item_ids(client, f'(filters: {{metadata: {{field: "GENRES", value: "Drama"}}}}, {order})')
    pattern = item_ids(client, f'(filters: {{metadata: {{field: "GENRES", value: "Com%dy"}}}}, {order})')

    # then exactly the items having that whole value (case-sensitive, no wildcards) match
    assert comedy == ["first", "multi", "single"]
    assert drama == ["first"]
    assert pattern == ["wildcard"]


def test_metadata_filter_list_means_all_conditions(client: Client, default_group: DatasetGroup) -> None:
    # given items with two categorical fields
    ItemFactory(item_id="both", metadata={"GENRES": "Action|Comedy", "LANG": "en"})
    ItemFactory(item_id="genre-only", metadata={"GENRES": "Comedy", "LANG": "fr"})

    # when filtered by a list of conditions, then an item must meet all of them
    found = item_ids(
        client,
        '(filters: {metadata: [{field: "GENRES", value: "Comedy"}, {field: "LANG", value: "en"}]})',
    )
    assert found == ["both"]


def test_users_filter_by_metadata_and_id(client: Client, default_group: DatasetGroup) -> None:
    # given users with categorical metadata
    EndUserFactory(user_id="u1", metadata={"TIER": "gold|early"})
    EndUserFactory(user_id="u2", metadata={"TIER": "golden"})
    EndUserFactory(user_id="x3", metadata={"TIER": "gold"})

    # when filtered, then only whole-value matches with the id prefix remain
    query = (
        '{ users(filters: {metadata: {field: "TIER", value: "gold"}, userId: {startsWith: "u"}}) { userId } }'
    )
    assert data(client, query)["users"] == [{"userId": "u1"}]


@pytest.mark.parametrize(
    "condition",
    [
        '{field: "GENRES", value: "Action|Comedy"}',
        '{field: "GENRES", value: ""}',
        '{field: "bad name", value: "Comedy"}',
        '{field: "a\\"b", value: "Comedy"}',
    ],
)
def test_malformed_metadata_filter_is_bad_user_input(
    client: Client, default_group: DatasetGroup, condition: str
) -> None:
    # given a metadata condition that is not one categorical value of one field name
    body = gql(client, f"{{ items(filters: {{metadata: {condition}}}) {{ itemId }} }}")

    # then it is refused as BAD_USER_INPUT
    assert error_codes(body) == ["BAD_USER_INPUT"]


def test_out_of_range_timestamp_is_bad_user_input(client: Client, default_group: DatasetGroup) -> None:
    # given a bound far outside any calendar, when used, then it is BAD_USER_INPUT
    body = gql(client, "{ interactions(filters: {timestamp: {gte: 1e300}}) { eventType } }")
    assert error_codes(body) == ["BAD_USER_INPUT"]


def test_interactions_filters(client: Client, default_group: DatasetGroup) -> None:
    # given events of several types, times and items
    shoe = ItemFactory(item_id="shoe")
    hat = ItemFactory(item_id="hat")
    InteractionFactory(event_type="click", item=shoe, timestamp=at(1_000))
    InteractionFactory(event_type="purchase", item=shoe, timestamp=at(2_000))
    InteractionFactory(event_type="click", item=hat, timestamp=at(3_000))

    def events(filters: str) -> list[tuple[str, str, float]]:
        rows = data(client, f"{{ interactions(filters: {filters}) {{ eventType itemId timestamp }} }}")
        return [(row["eventType"], row["itemId"], row["timestamp"]) for row in rows["interactions"]]

    # when filtered by event type, time range and item id, then only matching events return
    assert events('{eventType: {exact: "click"}}') == [("click", "hat", 3000.0), ("click", "shoe", 1000.0)]
    assert events("{timestamp: {gte: 1500, lt: 3000}}") == [("purchase", "shoe", 2000.0)]
    assert events('{itemId: {exact: "shoe"}, eventType: {inList: ["click"]}}') == [("click", "shoe", 1000.0)]


# --- interactions ------------------------------------------------------------------------------------


def test_interaction_fields_use_external_ids_and_epoch_seconds(
    client: Client, default_group: DatasetGroup
) -> None:
    # given an event with every optional field set
    InteractionFactory(
        user=EndUserFactory(user_id="007"),
        item=ItemFactory(item_id="123"),
        session_id="s-1",
        event_type="watch",
        event_value=4.5,
        timestamp=at(1_700_000_000),
        event_id="e-1",
        impression=["123", "456"],
        recommendation_id="rec-9",
        properties={"device": "tv"},
    )

    # when interactions are listed
    query = """{ interactions { userId sessionId itemId eventType eventValue timestamp eventId impression
                 recommendationId properties item { itemId } user { userId } } }"""
    rows = data(client, query)["interactions"]

    # then ids are the external strings and the time is epoch seconds
    assert rows == [
        {
            "userId": "007",
            "sessionId": "s-1",
            "itemId": "123",
            "eventType": "watch",
            "eventValue": 4.5,
            "timestamp": 1_700_000_000.0,
            "eventId": "e-1",
            "impression": ["123", "456"],
            "recommendationId": "rec-9",
            "properties": {"device": "tv"},
            "item": {"itemId": "123"},
            "user": {"userId": "007"},
        }
    ]


def test_anonymous_event_has_null_user(client: Client, default_group: DatasetGroup) -> None:
    # given an event of a session without a user
    InteractionFactory(user=None, session_id="anon-1")

    # when listed, then userId and user are null and the session is kept
    row = data(client, "{ interactions { userId user { userId } sessionId recommendationId } }")[
        "interactions"
    ][0]
    assert row == {"userId": None, "user": None, "sessionId": "anon-1", "recommendationId": None}


def test_interactions_of_one_user_newest_first(client: Client, default_group: DatasetGroup) -> None:
    # given two users' events at different times
    alice = EndUserFactory(user_id="alice")
    InteractionFactory(user=alice, event_type="old", timestamp=at(100))
    InteractionFactory(user=alice, event_type="new", timestamp=at(300))
    InteractionFactory(user=EndUserFactory(user_id="bob"), event_type="bob", timestamp=at(200))

    # when one user's events are listed without ordering, then they are that user's, newest first
    rows = data(client, '{ interactions(userId: "alice") { eventType } }')["interactions"]
    assert [row["eventType"] for row in rows] == ["new", "old"]


# --- ordering ----------------------------------------------------------------------------------------


def test_items_ordering(client: Client, default_group: DatasetGroup) -> None:
    # given items whose id order differs from their creation order
    ItemFactory(item_id="b", creation_timestamp=at(100))
    ItemFactory(item_id="c", creation_timestamp=at(300))
    ItemFactory(item_id="a", creation_timestamp=at(200))

    # when ordered by id or creation time, then the order follows the request
    assert item_ids(client, "(ordering: [{itemId: DESC}])") == ["c", "b", "a"]
    assert item_ids(client, "(ordering: [{creationTimestamp: ASC}])") == ["b", "a", "c"]
    assert item_ids(client, "(ordering: [{creationTimestamp: DESC}])") == ["c", "a", "b"]


def test_interactions_ordering_by_time_then_item(client: Client, default_group: DatasetGroup) -> None:
    # given events where two share a time
    InteractionFactory(item=ItemFactory(item_id="z"), timestamp=at(100))
    InteractionFactory(item=ItemFactory(item_id="y"), timestamp=at(100))
    InteractionFactory(item=ItemFactory(item_id="x"), timestamp=at(50))

    # when ordered by timestamp ascending then item id, then ties are broken by item id
    query = "{ interactions(ordering: [{timestamp: ASC}, {itemId: ASC}]) { itemId } }"
    assert [row["itemId"] for row in data(client, query)["interactions"]] == ["x", "y", "z"]

    # and item id descending alone orders by the external id, not the database key
    query = "{ interactions(ordering: [{itemId: DESC}]) { itemId } }"
    assert [row["itemId"] for row in data(client, query)["interactions"]] == ["z", "y", "x"]


def test_users_ordering(client: Client, default_group: DatasetGroup) -> None:
    # given users, when ordered by id descending, then they come back in that order
    for user_id in ("m", "z", "a"):
        EndUserFactory(user_id=user_id)
    rows = data(client, "{ users(ordering: [{userId: DESC}]) { userId } }")["users"]
    assert [row["userId"] for row in rows] == ["z", "m", "a"]


# --- pagination --------------------------------------------------------------------------------------


def test_default_page_size_and_offset(client: Client, default_group: DatasetGroup, settings: Any) -> None:
    # given five items and a default page size of 2
    settings.RECSITE_GRAPHQL_DEFAULT_PAGE_SIZE = 2
    for index in range(5):
        ItemFactory(item_id=f"i{index}")
    order = "ordering: [{itemId: ASC}]"

    # when listed without a limit, then one default-sized page comes back
    assert item_ids(client, f"({order})") == ["i0", "i1"]

    # and offset/limit select the requested window
    assert item_ids(client, f"({order}, pagination: {{offset: 3, limit: 5}})") == ["i3", "i4"]
    assert item_ids(client, f"({order}, pagination: {{offset: 1}})") == ["i1", "i2"]


def test_limit_above_the_cap_is_refused_naming_it(
    client: Client, default_group: DatasetGroup, settings: Any
) -> None:
    # given a maximum page size of 3
    settings.RECSITE_GRAPHQL_MAX_PAGE_SIZE = 3
    ItemFactory.create_batch(4)

    # when a page of 3 is asked for, then it is served
    assert len(item_ids(client, "(pagination: {limit: 3})")) == 3

    # when a page of 4 is asked for, then it is BAD_USER_INPUT naming the cap (not clamped)
    body = gql(client, "{ items(pagination: {limit: 4}) { itemId } }")
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "3" in body["errors"][0]["message"]
    assert body["data"] is None


@pytest.mark.parametrize("pagination", ["{limit: -1}", "{offset: -5}"])
def test_negative_paging_is_bad_user_input(
    client: Client, default_group: DatasetGroup, pagination: str
) -> None:
    # given a negative limit or offset, when used, then it is BAD_USER_INPUT
    body = gql(client, f"{{ interactions(pagination: {pagination}) {{ eventType }} }}")
    assert error_codes(body) == ["BAD_USER_INPUT"]


def test_pages_are_stable_when_sort_keys_tie(client: Client, default_group: DatasetGroup) -> None:
    # given ten items with the same creation time
    for index in range(10):
        ItemFactory(item_id=f"tie{index}", creation_timestamp=at(100))

    # when paged by the tied key, then the pages partition the items
    pages = [
        item_ids(
            client, f"(ordering: [{{creationTimestamp: ASC}}], pagination: {{offset: {offset}, limit: 3}})"
        )
        for offset in (0, 3, 6, 9)
    ]
    seen = [item_id for page in pages for item_id in page]
    assert sorted(seen) == sorted(f"tie{index}" for index in range(10))


# --- query count -------------------------------------------------------------------------------------


def count_queries(client: Client) -> tuple[int, int]:
    """The number of SQL queries and of rows for a nested interactions listing."""
    query = """{ interactions(pagination: {limit: 100}) { userId itemId timestamp
                 item { itemId metadata creationTimestamp } user { userId metadata } } }"""
    with CaptureQueriesContext(connection) as captured:
        rows = data(client, query)["interactions"]
    return len(catalog_queries(captured)), len(rows)


def catalog_queries(captured: CaptureQueriesContext) -> list[dict[str, str]]:
    """The captured queries, less the API key lookup every authenticated request makes."""
    return [query for query in captured.captured_queries if "access_apikey" not in query["sql"]]


def test_listing_interactions_with_item_and_user_takes_constant_queries(
    client: Client, default_group: DatasetGroup
) -> None:
    # given 3 events, when listed with their item and user
    InteractionFactory.create_batch(3)
    few_queries, few_rows = count_queries(client)

    # and given 30 events, when listed the same way
    InteractionFactory.create_batch(27)
    many_queries, many_rows = count_queries(client)

    # then the query count does not grow with the rows, and stays small
    assert (few_rows, many_rows) == (3, 30)
    assert few_queries == many_queries
    assert many_queries <= 3


def test_items_with_interaction_count_take_constant_queries(
    client: Client, default_group: DatasetGroup
) -> None:
    # given interactions whose items are listed with their counts, at two sizes
    def queries() -> int:
        query = "{ interactions(pagination: {limit: 100}) { item { itemId interactionCount } } }"
        with CaptureQueriesContext(connection) as captured:
            data(client, query)
        return len(catalog_queries(captured))

    InteractionFactory.create_batch(3)
    few = queries()
    InteractionFactory.create_batch(27)

    # then the count is the same
    assert queries() == few


# --- schema limits -----------------------------------------------------------------------------------


def test_introspection_is_off_without_debug(client: Client, default_group: DatasetGroup) -> None:
    # given the test settings (DEBUG off), when the schema is introspected, then it is refused with a code
    body = gql(client, "{ __schema { types { name } } }")
    assert body["data"] is None
    assert set(error_codes(body)) == {"BAD_USER_INPUT"}


def test_introspection_is_on_with_debug() -> None:
    # given a schema built for debug, when introspected, then the types are listed
    result = build_schema(debug=True).execute_sync("{ __schema { queryType { name } } }")
    assert result.errors is None
    assert result.data == {"__schema": {"queryType": {"name": "Query"}}}


def test_too_many_aliases_are_refused(client: Client, default_group: DatasetGroup) -> None:
    # given more aliases than the limit, when sent, then the request is refused with a code
    aliases = " ".join(f'a{index}: item(itemId: "{index}") {{ itemId }}' for index in range(40))
    body = gql(client, f"{{ {aliases} }}")
    assert error_codes(body)
    assert set(error_codes(body)) == {"BAD_USER_INPUT"}
