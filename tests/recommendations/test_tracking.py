"""Event tracking services: trackers, PutEvents limits and dedup, session merge, PutItems, freshness."""

import io
import math
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import Count, Max

from catalog.models import DatasetGroup, EndUser, Interaction, Item, RecordSource
from catalog.schemas import FieldKind, FieldSpec
from catalog.services import dataset_group_create
from recommendations.errors import (
    EventTrackerExistsError,
    EventTrackerNotFoundError,
    RecommendationError,
    TrackingInputError,
)
from recommendations.models import EventTracker
from recommendations.selectors import campaign_recommend, model_cache_clear
from recommendations.tracking import (
    TrackedEvent,
    TrackedRecord,
    event_tracker_create,
    event_tracker_get,
    property_field_name,
    put_events,
    put_items,
    put_users,
)
from tests.factories import save_schemas
from tests.recommendations.test_serving import category_of, deployed

pytestmark = pytest.mark.django_db

NOW = 1_790_000_000.0


@pytest.fixture
def schemas(default_group: DatasetGroup) -> DatasetGroup:
    """The default group with interactions (DEVICE, NUMBER_OF_RATINGS), items and users schemas."""
    return save_schemas(
        default_group,
        interactions=[
            FieldSpec("DEVICE", FieldKind.CATEGORICAL, "string"),
            FieldSpec("NUMBER_OF_RATINGS", FieldKind.NUMERICAL, "int"),
        ],
        items=[
            FieldSpec("GENRE", FieldKind.CATEGORICAL, "string"),
            FieldSpec("PRICE", FieldKind.NUMERICAL, "double"),
        ],
        users=[FieldSpec("AGE_GROUP", FieldKind.CATEGORICAL, "string")],
    )


@pytest.fixture
def tracker(schemas: DatasetGroup) -> EventTracker:
    return event_tracker_create(dataset_group=schemas, name="web")


def view(item_id: str | None = "i1", offset: float = 0, **fields: object) -> TrackedEvent:
    return TrackedEvent(event_type="view", sent_at=NOW + offset, item_id=item_id, **fields)  # type: ignore[arg-type]


def refused(tracker: EventTracker, events: list[TrackedEvent], **call: object) -> TrackingInputError:
    """The error a put_events call raises, after checking that it wrote nothing at all."""
    before = (Interaction.objects.count(), Item.objects.count(), EndUser.objects.count())
    with pytest.raises(TrackingInputError) as caught:
        put_events(
            tracking_id=tracker.tracking_id,
            session_id=call.pop("session_id", "s1"),  # type: ignore[arg-type]
            user_id=call.pop("user_id", "u1"),  # type: ignore[arg-type]
            events=events,
        )
    assert (Interaction.objects.count(), Item.objects.count(), EndUser.objects.count()) == before
    return caught.value


# --- trackers -----------------------------------------------------------------------------------


def test_a_group_has_one_tracker_and_a_tracking_id_finds_it(default_group: DatasetGroup) -> None:
    # Given a tracker of the default group
    tracker = event_tracker_create(dataset_group=default_group, name="web")
    # When a second one is created for the group, and another group reuses the name
    other = dataset_group_create(name="other")
    with pytest.raises(EventTrackerExistsError, match="already has the event tracker 'web'"):
        event_tracker_create(dataset_group=default_group, name="app")
    with pytest.raises(EventTrackerExistsError, match="named 'web' already exists"):
        event_tracker_create(dataset_group=other, name="web")
    # Then the tracking id finds the first; an unknown id is a not-found error
    assert event_tracker_get(tracking_id=tracker.tracking_id) == tracker
    with pytest.raises(EventTrackerNotFoundError):
        event_tracker_get(tracking_id="nope")


def test_an_unknown_tracking_id_is_not_found_and_writes_nothing(tracker: EventTracker) -> None:
    with pytest.raises(EventTrackerNotFoundError, match="no event tracker has trackingId 'missing'"):
        put_events(tracking_id="missing", session_id="s1", events=[view()])
    assert not Interaction.objects.exists()


# --- limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "call", "message"),
    [
        ([view(offset=n) for n in range(11)], {}, "events: must hold 1 to 10 events, got 11"),
        ([], {}, "events: must hold 1 to 10 events, got 0"),
        ([view()], {"session_id": ""}, "sessionId: must be 1 to 256 characters long, got 0"),
        ([view()], {"session_id": "s" * 257}, "sessionId: must be 1 to 256 characters long, got 257"),
        ([view()], {"user_id": "u" * 257}, "userId: must be 1 to 256 characters long, got 257"),
        ([view(), view("i" * 257)], {}, "events[1].itemId: must be 1 to 256 characters long, got 257"),
        ([view(event_id="e" * 257)], {}, "events[0].eventId: must be 1 to 256"),
        ([TrackedEvent(event_type="", sent_at=NOW)], {}, "events[0].eventType: must be 1 to 256"),
        ([view(recommendation_id="r" * 41)], {}, "events[0].recommendationId: must be 1 to 40 characters"),
        ([view(impression=[f"i{n}" for n in range(26)])], {}, "events[0].impression: must list 1 to 25"),
        ([view(impression=[])], {}, "events[0].impression: must list 1 to 25 item ids, got 0"),
        ([view(impression=["ok", "x" * 257])], {}, "events[0].impression[1]: must be 1 to 256"),
        ([view(), view(), view(), TrackedEvent("view", math.nan)], {}, "events[3].sentAt: must be a finite"),
        ([TrackedEvent("view", math.inf)], {}, "events[0].sentAt: must be a finite number"),
        ([TrackedEvent("view", -5.0)], {}, "events[0].sentAt: -5 is before 1970"),
        ([view(event_value=math.nan)], {}, "events[0].eventValue: must be a finite number"),
        ([view(properties={"device": "x" * 1100})], {}, "events[0].properties: is 1113 characters of JSON"),
        ([view(properties="{" + " " * 1100 + "}")], {}, "events[0].properties: is 1102 characters of JSON"),
        ([view(properties="[1]")], {}, "events[0].properties: must be a JSON object"),
        (
            [view(properties={"colour": "red"})],
            {},
            "events[0].properties.colour: maps to COLOUR, which is not",
        ),
        ([view(properties={"userId": "u2"})], {}, "events[0].properties.userId: userId is an event field"),
        (
            [view(properties={"numberOfRatings": "many"})],
            {},
            "events[0].properties.numberOfRatings: NUMBER_OF",
        ),
        ([view(properties={"device": {"a": 1}})], {}, "events[0].properties.device: must be a string"),
    ],
)
def test_a_call_over_a_limit_is_refused_naming_field_and_index_and_writes_nothing(
    tracker: EventTracker, events: list[TrackedEvent], call: dict[str, object], message: str
) -> None:
    # Given a tracker; When a call breaks one of PutEvents' limits (the other events being fine)
    error = refused(tracker, events, **call)
    # Then it is refused with the field path and index, and nothing is written (checked by `refused`)
    assert str(error).startswith(message), str(error)
    assert isinstance(error, RecommendationError)


def test_a_millisecond_timestamp_is_refused_saying_personalize_wants_seconds(tracker: EventTracker) -> None:
    error = refused(tracker, [view(), view(), view(), TrackedEvent("view", 1_700_000_000_000)])
    assert str(error) == (
        "events[3].sentAt: 1700000000000 looks like milliseconds; Personalize wants seconds"
    )


def test_a_rejected_event_late_in_the_call_keeps_earlier_valid_events_out(tracker: EventTracker) -> None:
    # Given a call whose first events are valid and name new items and a new user
    events = [
        view("new-1", event_id="a"),
        view("new-2", 1, event_id="b"),
        view("new-3", 2, event_value=math.inf),
    ]
    # When it is rejected for its last event
    refused(tracker, events, user_id="brand-new-user")
    # Then no item, user or event exists
    assert not Item.objects.filter(item_id__startswith="new-").exists()
    assert not EndUser.objects.filter(user_id="brand-new-user").exists()


# --- writing ------------------------------------------------------------------------------------


def test_events_are_stored_with_their_fields_and_properties_mapped_to_schema_fields(
    tracker: EventTracker,
) -> None:
    # Given a tracker; When an event with every field is put
    result = put_events(
        tracking_id=tracker.tracking_id,
        session_id="s1",
        user_id="u1",
        events=[
            TrackedEvent(
                event_type="purchase",
                sent_at=NOW + 0.5,
                item_id="i1",
                event_value=19.5,
                event_id="evt-1",
                impression=["i1", "i2"],
                recommendation_id="rec-1",
                properties={"device": "mobile", "numberOfRatings": 12},
            )
        ],
    )
    # Then it is stored as given, properties under their SCREAMING_SNAKE schema names
    assert (result.events_recorded, result.duplicates_ignored) == (1, 0)
    event = Interaction.objects.get()
    assert (event.user.user_id, event.session_id, event.item.item_id) == ("u1", "s1", "i1")
    assert (event.event_type, event.event_value, event.event_id) == ("purchase", 19.5, "evt-1")
    assert event.timestamp.timestamp() == NOW + 0.5
    assert (event.impression, event.recommendation_id) == (["i1", "i2"], "rec-1")
    assert event.properties == {"DEVICE": "mobile", "NUMBER_OF_RATINGS": 12}
    assert event.source == RecordSource.PUT


def test_property_keys_map_from_camel_case_as_personalize_maps_them() -> None:
    assert property_field_name("numberOfRatings") == "NUMBER_OF_RATINGS"
    assert property_field_name("device") == "DEVICE"
    assert property_field_name("categoryL2") == "CATEGORY_L2"


def test_unknown_items_and_users_get_bare_records(tracker: EventTracker) -> None:
    # Given an existing item and nothing else
    Item.objects.create(dataset_group=tracker.dataset_group, item_id="known", metadata={"GENRE": "Drama"})
    # When events name it, two new items and a new user
    result = put_events(
        tracking_id=tracker.tracking_id,
        session_id="s1",
        user_id="newcomer",
        events=[view("known"), view("fresh-1", 1), view("fresh-2", 2), view("fresh-1", 3), view(None, 4)],
    )
    # Then the new ids exist as bare IMPLICIT records; the known item is untouched
    assert (result.events_recorded, result.items_created, result.user_created) == (5, 2, True)
    fresh = Item.objects.filter(item_id__startswith="fresh-")
    assert sorted(fresh.values_list("item_id", "source", "metadata")) == [
        ("fresh-1", "implicit", {}),
        ("fresh-2", "implicit", {}),
    ]
    assert EndUser.objects.get(user_id="newcomer").source == RecordSource.IMPLICIT
    assert Item.objects.get(item_id="known").metadata == {"GENRE": "Drama"}
    assert Interaction.objects.filter(item__isnull=True).count() == 1


def test_duplicate_event_ids_within_a_call_and_across_calls_are_ignored_and_counted(
    tracker: EventTracker,
) -> None:
    # Given a first call with an id repeated inside it
    first = put_events(
        tracking_id=tracker.tracking_id,
        session_id="s1",
        events=[
            view(event_id="a"),
            view(offset=1, event_id="a"),
            view(offset=2, event_id="b"),
            view(offset=3),
        ],
    )
    # When a second call repeats "b" and adds "c"
    second = put_events(
        tracking_id=tracker.tracking_id,
        session_id="s1",
        events=[view(offset=4, event_id="b"), view(offset=5, event_id="c")],
    )
    # Then each id is stored once (the first occurrence) and the duplicates are counted
    assert (first.events_recorded, first.duplicates_ignored) == (3, 1)
    assert (second.events_recorded, second.duplicates_ignored) == (1, 1)
    stored = Interaction.objects.order_by("timestamp").values_list("event_id", "timestamp")
    assert [(event_id, t.timestamp() - NOW) for event_id, t in stored] == [
        ("a", 0),
        ("b", 2),
        (None, 3),
        ("c", 5),
    ]


def test_event_ids_are_unique_per_group_not_across_groups(tracker: EventTracker) -> None:
    other = event_tracker_create(dataset_group=dataset_group_create(name="other"), name="other-web")
    put_events(tracking_id=tracker.tracking_id, session_id="s1", events=[view(event_id="same")])
    result = put_events(tracking_id=other.tracking_id, session_id="s1", events=[view(event_id="same")])
    assert result.events_recorded == 1
    assert Interaction.objects.filter(event_id="same").count() == 2


def test_anonymous_events_are_stored_by_session_and_merged_when_the_user_signs_in(
    tracker: EventTracker,
) -> None:
    # Given an anonymous session's events, another session's, and the user's own older event
    put_events(tracking_id=tracker.tracking_id, session_id="anon", events=[view("a1"), view("a2", 1)])
    put_events(tracking_id=tracker.tracking_id, session_id="someone-else", events=[view("z1", 2)])
    assert set(Interaction.objects.values_list("user", "session_id")) == {
        (None, "anon"),
        (None, "someone-else"),
    }
    # When an event carries the same session and a user id
    result = put_events(
        tracking_id=tracker.tracking_id, session_id="anon", user_id="alice", events=[view("a3", 3)]
    )
    # Then the session's earlier events belong to the user at once; the other session's do not
    assert result.session_events_attributed == 2
    alice = EndUser.objects.get(user_id="alice")
    assert sorted(alice.interactions.values_list("item__item_id", flat=True)) == ["a1", "a2", "a3"]
    assert Interaction.objects.get(session_id="someone-else").user is None


def test_the_session_merge_stays_inside_the_dataset_group(tracker: EventTracker) -> None:
    other = event_tracker_create(dataset_group=dataset_group_create(name="other"), name="other-web")
    put_events(tracking_id=other.tracking_id, session_id="anon", events=[view("x")])
    result = put_events(
        tracking_id=tracker.tracking_id, session_id="anon", user_id="alice", events=[view("y")]
    )
    assert result.session_events_attributed == 0
    assert Interaction.objects.get(dataset_group__name="other").user is None


# --- PutItems / PutUsers ------------------------------------------------------------------------


def test_put_items_checks_every_record_against_the_items_schema_and_writes_all_or_nothing(
    schemas: DatasetGroup,
) -> None:
    # Given an existing item
    put_items(dataset_group=schemas, items=[TrackedRecord("old", {"genre": "Drama", "price": 5})])
    # When a call's second record has a value that does not fit the schema
    with pytest.raises(
        TrackingInputError, match=r"^items\[1\]\.properties\.price: PRICE 'cheap' is not a number"
    ):
        put_items(
            dataset_group=schemas,
            items=[TrackedRecord("new", {"genre": "Comedy"}), TrackedRecord("old", {"price": "cheap"})],
        )
    # Then neither record changed
    assert not Item.objects.filter(item_id="new").exists()
    assert Item.objects.get(item_id="old").metadata == {"GENRE": "Drama", "PRICE": 5.0}


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "items: must hold 1 to 10 records, got 0"),
        ([TrackedRecord(f"i{n}") for n in range(11)], "items: must hold 1 to 10 records, got 11"),
        ([TrackedRecord("x" * 257)], "items[0].itemId: must be 1 to 256 characters long"),
        ([TrackedRecord("a", {"colour": "red"})], "items[0].properties.colour: maps to COLOUR, which is not"),
        ([TrackedRecord("a", "not json")], "items[0].properties: is not valid JSON"),
        ([TrackedRecord("a", {"genre": "x" * 32_000})], "items[0].properties: is 32012 characters of JSON"),
    ],
)
def test_put_items_limits(schemas: DatasetGroup, records: list[TrackedRecord], message: str) -> None:
    with pytest.raises(TrackingInputError) as caught:
        put_items(dataset_group=schemas, items=records)
    assert str(caught.value).startswith(message), str(caught.value)
    assert not Item.objects.exists()


def test_put_items_without_an_items_schema_is_refused(default_group: DatasetGroup) -> None:
    with pytest.raises(TrackingInputError, match="the items dataset has no schema yet"):
        put_items(dataset_group=default_group, items=[TrackedRecord("a")])


def test_put_items_creates_and_replaces_items_and_stamps_new_ones_for_exploration(
    schemas: DatasetGroup,
) -> None:
    # Given a bare item named by an event
    Item.objects.create(dataset_group=schemas, item_id="bare", source=RecordSource.IMPLICIT)
    # When PutItems sends it with metadata, plus a new item with an explicit creation time
    result = put_items(
        dataset_group=schemas,
        items=[
            TrackedRecord("bare", {"genre": "Horror|Action", "price": 9.5}),
            TrackedRecord("dated", '{"GENRE": "Drama", "creationTimestamp": 1700000000}'),
        ],
    )
    # Then both are stored typed, as PUT records; the bare one now has a creation time (now)
    assert (result.records_written, result.records_created) == (2, 1)
    bare, dated = Item.objects.get(item_id="bare"), Item.objects.get(item_id="dated")
    assert (bare.metadata, bare.source) == ({"GENRE": "Horror|Action", "PRICE": 9.5}, RecordSource.PUT)
    assert bare.creation_timestamp is not None
    assert dated.creation_timestamp.timestamp() == 1_700_000_000
    assert dated.metadata == {"GENRE": "Drama"}


def test_put_items_makes_a_new_item_visible_to_item_queries_at_once(schemas: DatasetGroup) -> None:
    # Given no item of genre Western; When one is put
    put_items(dataset_group=schemas, items=[TrackedRecord("w1", {"genre": "Western|Drama"})])
    # Then the catalog's categorical match (what filters use) finds it on the next read
    from catalog.selectors import categorical_value_q, item_list

    found = item_list(dataset_group=schemas).filter(categorical_value_q(field="GENRE", value="Western"))
    assert list(found.values_list("item_id", flat=True)) == ["w1"]


def test_put_users_validates_against_the_users_schema(schemas: DatasetGroup) -> None:
    # Given a user; When PutUsers updates it and adds one
    put_users(dataset_group=schemas, users=[TrackedRecord("u1", {"ageGroup": "18-24"})])
    result = put_users(
        dataset_group=schemas,
        users=[TrackedRecord("u1", {"ageGroup": "25-34"}), TrackedRecord("u2", {"AGE_GROUP": "35-44"})],
    )
    # Then both are stored; an unknown field is refused with its path and nothing changes
    assert (result.records_written, result.records_created) == (2, 1)
    assert dict(EndUser.objects.values_list("user_id", "metadata__AGE_GROUP")) == {
        "u1": "25-34",
        "u2": "35-44",
    }
    with pytest.raises(TrackingInputError, match=r"^users\[1\]\.properties\.country: maps to COUNTRY"):
        put_users(
            dataset_group=schemas,
            users=[TrackedRecord("u3", {"ageGroup": "18-24"}), TrackedRecord("u1", {"country": "DE"})],
        )
    assert not EndUser.objects.filter(user_id="u3").exists()


# --- freshness ----------------------------------------------------------------------------------


@pytest.fixture
def demo(default_group: DatasetGroup, settings: pytest.FixtureRequest, tmp_path: object) -> DatasetGroup:
    """The small demo shop, with artifacts in a temporary media root and no cached model."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RECSITE_ARTIFACT_CACHE = tmp_path / "cache"
    model_cache_clear()
    call_command("seed_demo", "--items", "200", "--users", "120", "--events", "4000", stdout=io.StringIO())
    return default_group


def unseen_category(demo: DatasetGroup, user: EndUser) -> str:
    seen = set(category_of(list(user.interactions.values_list("item__item_id", flat=True))))
    sizes = Counter(Item.objects.filter(dataset_group=demo).values_list("metadata__CATEGORY_L2", flat=True))
    return next(category for category, n in sizes.most_common() if category not in seen and n >= 8)


def popular_items_of(demo: DatasetGroup, category: str, n: int) -> list[str]:
    items = (
        Item.objects.filter(dataset_group=demo, metadata__CATEGORY_L2=category)
        .annotate(n=Count("interactions"))
        .order_by("-n", "item_id")[:n]
    )
    return [item.item_id for item in items]


def test_put_events_changes_the_users_very_next_recommendations(
    demo: DatasetGroup, django_capture_on_commit_callbacks: object
) -> None:
    # Given a user-personalization campaign and a user who never touched one category
    campaign = deployed(demo, "aws-user-personalization", django_capture_on_commit_callbacks)
    tracker = event_tracker_create(dataset_group=demo, name="shop")
    user = (
        EndUser.objects.filter(dataset_group=demo).annotate(n=Count("interactions")).filter(n__gte=5).first()
    )
    target = unseen_category(demo, user)
    before = campaign_recommend(campaign=campaign, user_id=user.user_id, num_results=10)
    newest = Interaction.objects.filter(dataset_group=demo).aggregate(t=Max("timestamp"))["t"].timestamp()
    # When the user clicks five items of that category through putEvents
    put_events(
        tracking_id=tracker.tracking_id,
        session_id="web-1",
        user_id=user.user_id,
        events=[
            TrackedEvent("view", newest + 60 * (n + 1), item_id=item_id)
            for n, item_id in enumerate(popular_items_of(demo, target, 5))
        ],
    )
    after = campaign_recommend(campaign=campaign, user_id=user.user_id, num_results=10)
    # Then the very next answer moves towards that category
    ids_before, ids_after = [i.item_id for i in before.items], [i.item_id for i in after.items]
    assert ids_after != ids_before
    assert category_of(ids_after).count(target) > category_of(ids_before).count(target)


def test_a_session_only_visitor_and_then_the_signed_in_user_get_the_sessions_taste(
    demo: DatasetGroup, django_capture_on_commit_callbacks: object
) -> None:
    # Given a campaign, and what it gives someone with no history
    campaign = deployed(demo, "aws-user-personalization", django_capture_on_commit_callbacks)
    tracker = event_tracker_create(dataset_group=demo, name="shop")
    nobody = campaign_recommend(campaign=campaign, session_id="fresh-session", num_results=10)
    target = Counter(category_of([i.item_id for i in nobody.items])).most_common()[-1][0]
    newest = Interaction.objects.filter(dataset_group=demo).aggregate(t=Max("timestamp"))["t"]
    # When an anonymous session views four items of a category rare in that answer
    put_events(
        tracking_id=tracker.tracking_id,
        session_id="anon-42",
        events=[
            TrackedEvent("view", (newest + timedelta(minutes=n + 1)).timestamp(), item_id=item_id)
            for n, item_id in enumerate(popular_items_of(demo, target, 4))
        ],
    )
    by_session = campaign_recommend(campaign=campaign, session_id="anon-42", num_results=10)
    # Then the session's next recommendations lean to it
    assert category_of([i.item_id for i in by_session.items]).count(target) > category_of(
        [i.item_id for i in nobody.items]
    ).count(target)
    # When the visitor signs in as an existing user (a new sessionless request by user id)
    user = (
        EndUser.objects.filter(dataset_group=demo).annotate(n=Count("interactions")).filter(n__gte=5).first()
    )
    signed_out = campaign_recommend(campaign=campaign, user_id=user.user_id, num_results=10)
    later = (newest + timedelta(minutes=10)).timestamp()
    result = put_events(
        tracking_id=tracker.tracking_id,
        session_id="anon-42",
        user_id=user.user_id,
        events=[TrackedEvent("view", later, item_id=popular_items_of(demo, target, 5)[-1])],
    )
    signed_in = campaign_recommend(campaign=campaign, user_id=user.user_id, num_results=10)
    # Then the session's events are the user's at once and their recommendations move to the category
    assert result.session_events_attributed == 4
    assert category_of([i.item_id for i in signed_in.items]).count(target) > category_of(
        [i.item_id for i in signed_out.items]
    ).count(target)
