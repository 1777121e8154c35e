"""Filters against the real database: create/delete, serving masks, cache invalidation, top-N stays full."""

import io
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import strawberry
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import DatasetGroup, Interaction, Item
from catalog.schemas import DatasetType, FieldKind, FieldSpec
from catalog.services import dataset_schema_save
from recommendations import services
from recommendations.admin import FilterAdminForm
from recommendations.errors import FilterError, FilterNotFoundError, FilterSyntaxError
from recommendations.filtering import (
    filter_cache_clear,
    filter_create,
    filter_delete,
    filter_get,
    filter_item_mask,
    filter_user_mask,
    filter_uses_user,
)
from recommendations.graphql.filters import FilterMutation
from recommendations.models import Filter, FilterStatus
from recommendations.selectors import campaign_model, campaign_recommend, model_cache_clear
from tests.factories import EndUserFactory, InteractionFactory, ItemFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    """No mask cached by another test."""
    filter_cache_clear()


@pytest.fixture
def shop(default_group: DatasetGroup) -> DatasetGroup:
    """Schemas and six items: GENRE (categorical, multi-valued), PRICE (numerical), TITLE (textual)."""
    dataset_schema_save(
        dataset_group=default_group,
        dataset_type=DatasetType.ITEMS,
        fields=[
            FieldSpec("ITEM_ID", FieldKind.ID, "string", False),
            FieldSpec("GENRE", FieldKind.CATEGORICAL),
            FieldSpec("PRICE", FieldKind.NUMERICAL, "double"),
            FieldSpec("TITLE", FieldKind.TEXTUAL),
        ],
    )
    dataset_schema_save(
        dataset_group=default_group,
        dataset_type=DatasetType.USERS,
        fields=[
            FieldSpec("USER_ID", FieldKind.ID, "string", False),
            FieldSpec("AGE", FieldKind.NUMERICAL, "int"),
            FieldSpec("MEMBERSHIP", FieldKind.CATEGORICAL),
        ],
    )
    catalog = [
        ("i0", {"GENRE": "Comedy", "PRICE": 10}),
        ("i1", {"GENRE": "Action|Comedy", "PRICE": 30}),
        ("i2", {"GENRE": "Drama", "PRICE": 5}),
        ("i3", {"PRICE": 50}),
        ("i4", {"GENRE": "Comedy Drama", "PRICE": 20}),
        ("i5", {"GENRE": "Comedy", "PRICE": 60}),
    ]
    for item_id, metadata in catalog:
        ItemFactory(dataset_group=default_group, item_id=item_id, metadata=metadata)
    return default_group


def pks(*item_ids: str) -> np.ndarray:
    """Item pks in the given (model index) order."""
    by_id = dict(Item.objects.values_list("item_id", "pk"))
    return np.array([by_id[item_id] for item_id in item_ids], dtype=np.int64)


ORDER = ("i5", "i3", "i0", "i4", "i2", "i1")  # a model's item index is not pk order


def passing(mask: np.ndarray) -> list[str]:
    return sorted(ORDER[i] for i in np.flatnonzero(mask))


def test_filter_create_checks_and_stores_an_active_filter(shop: DatasetGroup) -> None:
    # Given a valid documented-style expression / When created
    created = filter_create(
        dataset_group=shop, name="comedy-unseen", expression="INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)"
    )
    # Then it is stored ACTIVE and can be fetched by name
    assert filter_get(name="comedy-unseen") == created
    assert created.status == FilterStatus.ACTIVE


@pytest.mark.parametrize(
    ("expression", "error", "message"),
    [
        ('INCLUDE ItemID WHERE Items.GENRE IS ("x")', FilterSyntaxError, "position 34"),
        (
            'INCLUDE ItemID WHERE Items.COLOUR IN ("x")',
            FilterError,
            "known Items fields: CREATION_TIMESTAMP, GENRE",
        ),
        ('INCLUDE ItemID WHERE Items.TITLE IN ("x")', FilterError, "textual fields cannot be filtered"),
        ("INCLUDE ItemID WHERE Items.GENRE NOT IN ($G)", FilterSyntaxError, "not allowed with NOT IN"),
    ],
)
def test_filter_create_refuses_invalid_expressions_and_writes_nothing(
    shop: DatasetGroup, expression: str, error: type[Exception], message: str
) -> None:
    # Given an invalid expression / When creating / Then the error names the position or field, no row
    with pytest.raises(error, match=message):
        filter_create(dataset_group=shop, name="bad", expression=expression)
    assert not Filter.objects.exists()


def test_filter_names_are_unique_and_validated(shop: DatasetGroup) -> None:
    # Given an existing filter / When the name is reused or malformed / Then refused
    filter_create(dataset_group=shop, name="f", expression='EXCLUDE ItemID WHERE Items.GENRE IN ("x")')
    with pytest.raises(FilterError, match="already exists"):
        filter_create(dataset_group=shop, name="f", expression='EXCLUDE ItemID WHERE Items.GENRE IN ("y")')
    with pytest.raises(FilterError, match="name"):
        filter_create(
            dataset_group=shop, name="no spaces", expression='EXCLUDE ItemID WHERE Items.GENRE IN ("y")'
        )
    assert Filter.objects.count() == 1


def test_filter_delete_and_get_of_an_unknown_name(shop: DatasetGroup) -> None:
    # Given a filter / When deleted / Then it is gone and getting it is NOT_FOUND's error
    filter_create(dataset_group=shop, name="gone", expression='EXCLUDE ItemID WHERE Items.GENRE IN ("x")')
    deleted = filter_delete(name="gone")
    assert deleted.name == "gone" and not Filter.objects.exists()
    with pytest.raises(FilterNotFoundError):
        filter_get(name="gone")
    with pytest.raises(FilterNotFoundError):
        filter_delete(name="gone")


def test_item_fields_multi_values_and_placeholders_over_the_model_index(shop: DatasetGroup) -> None:
    # Given the genre filter with a placeholder
    genre = filter_create(
        dataset_group=shop, name="g", expression="INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)"
    )
    # When served for Comedy and for Drama|Action
    comedy = filter_item_mask(filter=genre, filter_values={"GENRE": ["Comedy"]}, item_pks=pks(*ORDER))
    other = filter_item_mask(filter=genre, filter_values={"GENRE": ["Drama", "Action"]}, item_pks=pks(*ORDER))
    # Then exact per-value matches, aligned with the model's item order
    assert passing(comedy) == ["i0", "i1", "i5"]
    assert passing(other) == ["i1", "i2"]
    with pytest.raises(FilterError, match=r"\$GENRE is required"):
        filter_item_mask(filter=genre, filter_values=None, item_pks=pks(*ORDER))


def test_documented_include_genre_minus_clicked_or_streamed(shop: DatasetGroup) -> None:
    # Given the documented two-part filter and a user who clicked i0 and STREAMED i5 (and viewed i1)
    expression = (
        "INCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | "
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")'
    )
    rule = filter_create(dataset_group=shop, name="fresh-genre", expression=expression)
    user = EndUserFactory(dataset_group=shop, user_id="u1")
    items = {item.item_id: item for item in Item.objects.all()}
    for offset, (item_id, kind) in enumerate([("i0", "click"), ("i5", "STREAM"), ("i1", "view")]):
        InteractionFactory(
            dataset_group=shop,
            user=user,
            item=items[item_id],
            event_type=kind,
            timestamp=T0 + timedelta(minutes=offset),
        )
    # When served for that user, for an anonymous user, and without the genre value
    mask = filter_item_mask(filter=rule, filter_values={"GENRE": ["Comedy"]}, item_pks=pks(*ORDER), user=user)
    anonymous = filter_item_mask(filter=rule, filter_values={"GENRE": ["Comedy"]}, item_pks=pks(*ORDER))
    # Then Comedy items the user has not clicked or streamed; an anonymous user keeps them all
    assert passing(mask) == ["i1"]
    assert passing(anonymous) == ["i0", "i1", "i5"]


def test_interaction_filters_count_session_events_and_only_the_newest_per_event_type(
    shop: DatasetGroup, settings: pytest.FixtureRequest
) -> None:
    # Given an exclusion of viewed items, a limit of 2 per event type and three views in a session
    settings.MAX_FILTER_INTERACTIONS = 2
    rule = filter_create(
        dataset_group=shop,
        name="unseen",
        expression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("VIEW")',
    )
    items = {item.item_id: item for item in Item.objects.all()}
    for offset, item_id in enumerate(["i0", "i1", "i2"]):  # i2 newest
        Interaction.objects.create(
            dataset_group=shop,
            session_id="s1",
            item=items[item_id],
            event_type="view",
            timestamp=T0 + timedelta(minutes=offset),
        )
    # When served for the session
    mask = filter_item_mask(filter=rule, filter_values=None, item_pks=pks(*ORDER), session_id="s1")
    # Then the two newest views are excluded; the oldest is beyond the window
    assert passing(mask) == ["i0", "i3", "i4", "i5"]


def test_if_current_user_gates_the_documented_watch_rule(shop: DatasetGroup) -> None:
    # Given an INCLUDE applying only to adults
    rule = filter_create(
        dataset_group=shop,
        name="adults",
        expression="INCLUDE ItemID WHERE Items.PRICE >= 30 IF CurrentUser.AGE > 18",
    )
    adult = EndUserFactory(dataset_group=shop, metadata={"AGE": 30})
    minor = EndUserFactory(dataset_group=shop, metadata={"AGE": 12})
    # When served for each
    for_adult = filter_item_mask(filter=rule, filter_values=None, item_pks=pks(*ORDER), user=adult)
    for_minor = filter_item_mask(filter=rule, filter_values=None, item_pks=pks(*ORDER), user=minor)
    # Then only the adult's list is limited
    assert passing(for_adult) == ["i1", "i3", "i5"]
    assert passing(for_minor) == sorted(ORDER)


def test_current_item_rules_for_related_items(shop: DatasetGroup) -> None:
    # Given "not the same genre as the current item" and "cheaper, same genre"
    other = filter_create(
        dataset_group=shop,
        name="other-genre",
        expression="EXCLUDE ItemID WHERE Items.GENRE IN CurrentItem.GENRE",
    )
    cheaper = filter_create(
        dataset_group=shop,
        name="cheaper",
        expression=(
            "INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE"
        ),
    )
    current = Item.objects.get(item_id="i1")  # Action|Comedy, 30
    # When served for related items of i1
    not_same = filter_item_mask(filter=other, filter_values=None, item_pks=pks(*ORDER), current_item=current)
    cheap = filter_item_mask(filter=cheaper, filter_values=None, item_pks=pks(*ORDER), current_item=current)
    # Then genres are compared value by value, prices numerically
    assert passing(not_same) == ["i2", "i3", "i4"]
    assert passing(cheap) == ["i0"]
    with pytest.raises(FilterError, match="needs a current item"):
        filter_item_mask(filter=other, filter_values=None, item_pks=pks(*ORDER))


def test_item_masks_are_cached_and_invalidated_when_an_item_changes(
    shop: DatasetGroup, settings: Any
) -> None:
    # Given a filter served once, and processes that check the catalog on every request
    settings.RECSITE_FILTER_CATALOG_CHECK_SECONDS = 0
    rule = filter_create(
        dataset_group=shop, name="drama", expression='INCLUDE ItemID WHERE Items.GENRE IN ("Drama")'
    )
    first = filter_item_mask(filter=rule, filter_values=None, item_pks=pks(*ORDER))
    # When served again, the catalog unchanged
    index = pks(*ORDER)
    with CaptureQueriesContext(connection) as queries:
        again = filter_item_mask(filter=rule, filter_values=None, item_pks=index)
    # Then one query (the catalog version) answers it
    assert len(queries) == 1 and passing(again) == passing(first) == ["i2"]
    # And when an item becomes Drama the next request sees it
    item = Item.objects.get(item_id="i3")
    item.metadata = {"GENRE": "Drama", "PRICE": 50}
    item.save()
    assert passing(filter_item_mask(filter=rule, filter_values=None, item_pks=pks(*ORDER))) == ["i2", "i3"]
    # And a deleted item is gone too
    Item.objects.filter(item_id="i2").delete()
    assert passing(filter_item_mask(filter=rule, filter_values=None, item_pks=pks("i5", "i3"))) == ["i3"]


def test_the_catalog_check_is_skipped_within_its_interval(
    shop: DatasetGroup, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a process that trusts its view of the catalog for 60 s, and a filter served once
    settings.RECSITE_FILTER_CATALOG_CHECK_SECONDS = 60
    rule = filter_create(
        dataset_group=shop, name="drama", expression='INCLUDE ItemID WHERE Items.GENRE IN ("Drama")'
    )
    assert passing(filter_item_mask(filter=rule, filter_values=None, item_pks=pks(*ORDER))) == ["i2"]
    # When an item becomes Drama and the filter is served again within the interval
    item = Item.objects.get(item_id="i3")
    item.metadata = {"GENRE": "Drama", "PRICE": 50}
    item.save()
    index = pks(*ORDER)
    with CaptureQueriesContext(connection) as queries:
        cached = filter_item_mask(filter=rule, filter_values=None, item_pks=index)
    # Then no query is made and the cached mask answers
    assert len(queries) == 0 and passing(cached) == ["i2"]
    # And once the interval has passed the change is seen
    later = time.monotonic() + 61
    monkeypatch.setattr("recommendations.filtering.time.monotonic", lambda: later)
    assert passing(filter_item_mask(filter=rule, filter_values=None, item_pks=index)) == ["i2", "i3"]


def test_a_user_segment_filter_masks_users(shop: DatasetGroup) -> None:
    # Given users with memberships and ages, one of whom purchased something
    gold = EndUserFactory(dataset_group=shop, user_id="gold", metadata={"MEMBERSHIP": "gold", "AGE": 40})
    silver = EndUserFactory(
        dataset_group=shop, user_id="silver", metadata={"MEMBERSHIP": "silver", "AGE": 17}
    )
    plain = EndUserFactory(dataset_group=shop, user_id="plain", metadata={})
    InteractionFactory(
        dataset_group=shop, user=plain, item=Item.objects.get(item_id="i0"), event_type="Purchase"
    )
    members = filter_create(
        dataset_group=shop,
        name="members",
        expression="INCLUDE UserID WHERE Users.MEMBERSHIP IN ($MEMBERSHIP)",
    )
    adults = filter_create(
        dataset_group=shop, name="adults", expression="EXCLUDE UserID WHERE Users.AGE < $AGE"
    )
    buyers = filter_create(
        dataset_group=shop,
        name="buyers",
        expression='INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("purchase")',
    )
    user_pks = np.array([plain.pk, silver.pk, gold.pk])
    # When masks are computed over a segment model's users
    member_mask = filter_user_mask(filter=members, filter_values={"MEMBERSHIP": ["gold"]}, user_pks=user_pks)
    adult_mask = filter_user_mask(filter=adults, filter_values={"AGE": ["18"]}, user_pks=user_pks)
    buyer_mask = filter_user_mask(filter=buyers, filter_values=None, user_pks=user_pks)
    # Then gold members; everyone but the minor (unknown age is not < 18); the buyer
    assert member_mask.tolist() == [False, False, True]
    assert adult_mask.tolist() == [True, False, True]
    assert buyer_mask.tolist() == [True, False, False]
    with pytest.raises(FilterError, match="use it for user segments"):
        filter_item_mask(filter=members, filter_values=None, item_pks=pks(*ORDER))


def test_a_filter_applies_before_top_n_so_the_list_stays_full(
    default_group: DatasetGroup,
    settings: pytest.FixtureRequest,
    tmp_path: object,
    django_capture_on_commit_callbacks: object,
) -> None:
    # Given a trained popularity campaign on the demo shop and a filter keeping one L1 category
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RECSITE_ARTIFACT_CACHE = tmp_path / "cache"
    model_cache_clear()
    call_command("seed_demo", "--items", "200", "--users", "120", "--events", "4000", stdout=io.StringIO())
    solution = services.solution_create(
        dataset_group=default_group, name="pop", recipe="aws-popularity-count"
    )
    with django_capture_on_commit_callbacks(execute=True):
        version = services.solution_version_create(solution=solution)
    version.refresh_from_db()
    assert version.status == "ACTIVE", version.failure_reason
    campaign = services.campaign_create(name="pop", solution_version=version)
    model = campaign_model(campaign=campaign)
    unfiltered = campaign_recommend(campaign=campaign, num_results=10)
    top_categories = Item.objects.filter(item_id__in=[i.item_id for i in unfiltered.items]).values_list(
        "metadata__CATEGORY_L1", flat=True
    )
    sizes = Counter(Item.objects.values_list("metadata__CATEGORY_L1", flat=True))
    rare = min((c for c, n in sizes.items() if n >= 15), key=list(top_categories).count)
    rule = filter_create(
        dataset_group=default_group,
        name="one-category",
        expression="INCLUDE ItemID WHERE Items.CATEGORY_L1 IN ($CATEGORY)",
    )
    # When recommendations are asked with the filter's mask as candidates
    mask = filter_item_mask(
        filter=rule, filter_values={"CATEGORY": [rare]}, item_pks=model.arrays["item_pks"]
    )
    filtered = campaign_recommend(campaign=campaign, num_results=10, candidates=mask)
    # Then the list is full and every item is of that category
    categories = Item.objects.filter(item_id__in=[i.item_id for i in filtered.items]).values_list(
        "metadata__CATEGORY_L1", flat=True
    )
    assert set(top_categories) != {rare} and mask.sum() >= 10
    assert len(filtered.items) == 10
    assert set(categories) == {rare}


def test_create_filter_command_prints_the_filter_or_exits_with_the_position(shop: DatasetGroup) -> None:
    # Given the command / When run with a valid expression
    out = io.StringIO()
    call_command(
        "create_filter",
        "--name",
        "cmd",
        "--expression",
        "INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)",
        stdout=out,
    )
    # Then it prints the filter and its placeholders
    assert "Filter cmd (ACTIVE)" in out.getvalue() and "$GENRE" in out.getvalue()
    # And an invalid expression exits non-zero with the position and expectation
    with pytest.raises(CommandError, match=r"position 33 .*expected IN, NOT IN"):
        call_command("create_filter", "--name", "bad", "--expression", "INCLUDE ItemID WHERE Items.GENRE")


def test_admin_form_puts_expression_errors_on_the_expression_field(shop: DatasetGroup) -> None:
    # Given the admin form with an invalid and with a valid expression
    bad = FilterAdminForm(
        data={"dataset_group": shop.pk, "name": "adm", "expression": "EXCLUDE ItemID WHERE"}
    )
    good = FilterAdminForm(
        data={
            "dataset_group": shop.pk,
            "name": "adm",
            "expression": 'EXCLUDE ItemID WHERE Items.GENRE IN ("x")',
        }
    )
    # When validated / Then the error is on the expression field; the valid one saves
    assert not bad.is_valid() and "position 21" in bad.errors["expression"][0]
    assert good.is_valid(), good.errors
    good.save()
    assert Filter.objects.get().name == "adm"


def test_graphql_create_and_delete_filter(shop: DatasetGroup) -> None:
    # Given a schema with the filter mutations
    @strawberry.type
    class Query:
        ok: bool = True

    schema = strawberry.Schema(query=Query, mutation=FilterMutation)
    create = (
        'mutation { createFilter(name: "g", expression: "INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)") '
        "{ __typename name expression status datasetGroup placeholders } }"
    )
    # When a filter is created and deleted, and an invalid one refused
    created = schema.execute_sync(create)
    deleted = schema.execute_sync('mutation { deleteFilter(name: "g") { __typename name status } }')
    refused = schema.execute_sync(
        'mutation { createFilter(name: "h", expression: "INCLUDE ItemID") { name } }'
    )
    # Then the shapes are Personalize's, and the error carries the position
    assert created.errors is None and created.data["createFilter"] == {
        "__typename": "Filter",
        "name": "g",
        "expression": "INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)",
        "status": "ACTIVE",
        "datasetGroup": "default",
        "placeholders": ["GENRE"],
    }
    assert deleted.data["deleteFilter"]["name"] == "g"
    assert "position 15" in refused.errors[0].message
    assert isinstance(refused.errors[0].original_error, FilterSyntaxError)


def test_only_interaction_and_current_user_filters_read_the_user(shop: DatasetGroup) -> None:
    # Given filters on item fields only, on interactions and gated on the current user
    def uses_user(name: str, expression: str) -> bool:
        return filter_uses_user(filter=filter_create(dataset_group=shop, name=name, expression=expression))

    # Then only the last two need the requesting user loaded
    assert not uses_user("items", 'INCLUDE ItemID WHERE Items.GENRE IN ("Drama")')
    assert uses_user("seen", 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")')
    assert uses_user("adults", "INCLUDE ItemID WHERE Items.PRICE >= 30 IF CurrentUser.AGE > 18")


def test_a_read_only_pk_array_is_fingerprinted_once_and_a_changed_one_again(shop: DatasetGroup) -> None:
    # Given a filter and a read-only item index (as a loaded model's memory-mapped array is)
    rule = filter_create(
        dataset_group=shop, name="drama", expression='INCLUDE ItemID WHERE Items.GENRE IN ("Drama")'
    )
    frozen = pks(*ORDER)
    frozen.setflags(write=False)
    assert passing(filter_item_mask(filter=rule, filter_values=None, item_pks=frozen)) == ["i2"]
    # When served again from the same array, and from a writable array in another order
    assert passing(filter_item_mask(filter=rule, filter_values=None, item_pks=frozen)) == ["i2"]
    reordered = pks(*reversed(ORDER))
    mask = filter_item_mask(filter=rule, filter_values=None, item_pks=reordered)
    # Then each answer matches its own index
    assert [item_id for item_id, keep in zip(reversed(ORDER), mask, strict=True) if keep] == ["i2"]
