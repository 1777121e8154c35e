"""The outbox to Amazon Personalize: events, items and users reach Personalize once (botocore Stubber).

Only AWS is faked: the `personalize-events` (and `personalize`) clients the adapter builds are
wrapped in botocore's Stubber, which checks every request against boto3's service model.
"""

import copy
import io
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.utils import timezone

from catalog.models import DatasetGroup, EndUser, ForwardState, Interaction, Item
from catalog.schemas import FieldKind, FieldSpec
from catalog.services import item_upsert
from recommendations import outbox
from recommendations.backends import aws
from recommendations.errors import PersonalizeRetryableError
from recommendations.models import CampaignBackend, EventTracker, PersonalizeDatasetGroup
from recommendations.tasks import outbox_forward_task, outbox_sweep_task
from recommendations.tracking import (
    TrackedEvent,
    TrackedRecord,
    event_tracker_create,
    put_events,
    put_items,
    put_users,
)
from recsite.celery import app as celery_app
from tests.factories import save_schemas

pytestmark = pytest.mark.django_db

NOW = 1_790_000_000.0
TRACKING_ID = "0f1e2d3c-personalize-tracking-id"
TRACKER_ARN = "arn:aws:personalize:us-east-1:123456789012:event-tracker/0f1e2d3c"
GROUP_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset-group/recsite-default"
ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/recsite-default/ITEMS"
USERS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/recsite-default/USERS"
PUT_ITEMS_PARAMETERS = "before-parameter-build.personalize-events.PutItems"


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fake_aws(aws_sandbox: None) -> None:
    """Fake AWS (aws_sandbox) and fresh outbox caches."""
    outbox._dataset_arns.clear()
    outbox._flush_due.clear()


@pytest.fixture
def schemas(default_group: DatasetGroup) -> DatasetGroup:
    """The default group with interactions (DEVICE), items (GENRE, UNIT_PRICE), users (AGE_GROUP) schemas."""
    return save_schemas(
        default_group,
        interactions=[FieldSpec("DEVICE", FieldKind.CATEGORICAL, "string")],
        items=[
            FieldSpec("GENRE", FieldKind.CATEGORICAL, "string"),
            FieldSpec("UNIT_PRICE", FieldKind.NUMERICAL, "double"),
        ],
        users=[FieldSpec("AGE_GROUP", FieldKind.CATEGORICAL, "string")],
    )


def tracker_on_personalize(group: DatasetGroup, *, tracking_id: str = TRACKING_ID) -> EventTracker:
    tracker = event_tracker_create(dataset_group=group, name=f"web-{group.name}")
    EventTracker.objects.filter(pk=tracker.pk).update(
        backend=CampaignBackend.PERSONALIZE, personalize_arn=TRACKER_ARN, personalize_tracking_id=tracking_id
    )
    tracker.refresh_from_db()
    return tracker


@pytest.fixture
def tracker(schemas: DatasetGroup) -> EventTracker:
    """The default group's event tracker, on Personalize with the trackingId Personalize issued."""
    return tracker_on_personalize(schemas)


class AcceptedCalls:
    """Records the parameters of each call the (stubbed) AWS accepted, on one client."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("before-parameter-build.personalize-events", self._remember)
        client.meta.events.register("after-call.personalize-events", self._accepted)

    def _remember(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["outbox_test_params"] = copy.deepcopy(params)

    def _accepted(self, http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code < 300:
            self.calls.append((model.name, context["outbox_test_params"]))

    def event_ids(self) -> list[str]:
        return [
            e["eventId"] for name, params in self.calls if name == "PutEvents" for e in params["eventList"]
        ]

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


@pytest.fixture
def events_api() -> Iterator[tuple[Stubber, AcceptedCalls]]:
    """The adapter's personalize-events client, stubbed, and what it accepted."""
    client = aws.personalize_events_client()
    accepted = AcceptedCalls(client)
    with Stubber(client) as stubber:
        yield stubber, accepted


def send(tracking_id: str, session: str, user: str | None, *items: str, start: int = 0) -> None:
    """putEvents of views of `items` (sentAt NOW + start, +1, ...)."""
    put_events(
        tracking_id=tracking_id,
        session_id=session,
        user_id=user,
        events=[
            TrackedEvent(event_type="view", sent_at=NOW + start + n, item_id=item)
            for n, item in enumerate(items)
        ],
    )


def state_counts(model: type[Any] = Interaction) -> Counter[int]:
    return Counter(model.objects.values_list("forward_state", flat=True))


def throttle(stubber: Stubber, operation: str = "put_events", times: int = 1) -> None:
    for _ in range(times):
        stubber.add_client_error(
            operation,
            service_error_code="ThrottlingException",
            service_message="Rate exceeded",
            http_status_code=400,
        )


def accept(stubber: Stubber, operation: str = "put_events", times: int = 1) -> None:
    for _ in range(times):
        stubber.add_response(operation, {})


# --- which rows become pending -------------------------------------------------------------------------


def test_events_of_a_local_tracker_never_become_pending(
    schemas: DatasetGroup, django_capture_on_commit_callbacks: Any
) -> None:
    # given a group whose tracker is on the local engine
    local = event_tracker_create(dataset_group=schemas, name="local-web")
    assert local.backend == CampaignBackend.LOCAL
    # when events, items and users are written through the put APIs and the admin's service
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        send(local.tracking_id, "s1", "u1", "i1", "i2")
        put_items(dataset_group=schemas, items=[TrackedRecord("i9", {"genre": "Comedy"})])
        put_users(dataset_group=schemas, users=[TrackedRecord("u9", {"ageGroup": "adult"})])
        item_upsert(dataset_group=schemas, item_id="i10", metadata={})
    # then nothing is pending, nothing was enqueued and the sweep finds nothing to do
    assert callbacks == []
    assert set(state_counts()) == {ForwardState.NONE}
    assert set(state_counts(Item)) == {ForwardState.NONE}
    assert set(state_counts(EndUser)) == {ForwardState.NONE}
    assert outbox.outbox_groups_pending() == []


def test_bulk_imported_events_stay_out_of_the_outbox(tracker: EventTracker, tmp_path: Path) -> None:
    # given a group on Personalize (bulk data reaches Personalize through dataset import jobs)
    csv = tmp_path / "interactions.csv"
    csv.write_text("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu1,i1,1700000000,view\nu2,i2,1700000060,view\n")
    # when a CSV is imported
    call_command("import_dataset", "--interactions", str(csv), stdout=io.StringIO())
    # then its rows (events, and the items and users they named) are not pending
    assert state_counts() == {ForwardState.NONE: 2}
    assert set(state_counts(Item)) == {ForwardState.NONE}
    assert set(state_counts(EndUser)) == {ForwardState.NONE}


def test_put_events_on_personalize_stores_pending_events_and_flushes_after_commit(
    tracker: EventTracker, events_api: tuple[Stubber, AcceptedCalls], django_capture_on_commit_callbacks: Any
) -> None:
    stubber, accepted = events_api
    # given a tracker on Personalize; when a putEvents call commits
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        send(tracker.tracking_id, "s1", "u1", "i1", "i2")
    # then its events are stored PENDING and one flush waits for the commit
    assert state_counts() == {ForwardState.PENDING: 2}
    assert len(callbacks) == 1
    assert outbox.outbox_groups_pending() == [tracker.dataset_group_id]
    # when the transaction commits (the task runs in-process here)
    accept(stubber)
    callbacks[0]()
    # then Personalize got both events in one call, and they are SENT
    stubber.assert_no_pending_responses()
    assert len(accepted.of("PutEvents")) == 1
    assert state_counts() == {ForwardState.SENT: 2}
    assert outbox.outbox_groups_pending() == []


# --- the PutEvents requests ----------------------------------------------------------------------------


def test_events_are_grouped_by_user_and_session_in_calls_of_at_most_ten(
    tracker: EventTracker, events_api: tuple[Stubber, AcceptedCalls]
) -> None:
    stubber, _ = events_api
    # given 12 events of u1 in s1, 3 anonymous events in s2 and 1 of u2 in s3, interleaved
    tid = tracker.tracking_id
    send(tid, "s1", "u1", *[f"i{n}" for n in range(10)])
    send(tid, "s2", None, "i1", "i2", start=100)
    send(tid, "s3", "u2", "i7", start=200)
    send(tid, "s1", "u1", "i3", "i4", start=300)
    send(tid, "s2", None, "i5", start=400)
    rows = list(Interaction.objects.order_by("id").select_related("user", "item"))

    def events(session: str, count_from: int, count: int) -> list[dict[str, Any]]:
        chosen = [row for row in rows if row.session_id == session][count_from : count_from + count]
        return [
            {
                "eventId": f"recsite-{row.pk}",
                "eventType": "view",
                "sentAt": row.timestamp,
                "itemId": row.item.item_id,
            }
            for row in chosen
        ]

    # then the outbox makes exactly these calls, in the order the sessions first appear
    stubber.add_response(
        "put_events",
        {},
        {"trackingId": TRACKING_ID, "sessionId": "s1", "userId": "u1", "eventList": events("s1", 0, 10)},
    )
    stubber.add_response(
        "put_events",
        {},
        {"trackingId": TRACKING_ID, "sessionId": "s1", "userId": "u1", "eventList": events("s1", 10, 2)},
    )
    stubber.add_response(
        "put_events", {}, {"trackingId": TRACKING_ID, "sessionId": "s2", "eventList": events("s2", 0, 3)}
    )
    stubber.add_response(
        "put_events",
        {},
        {"trackingId": TRACKING_ID, "sessionId": "s3", "userId": "u2", "eventList": events("s3", 0, 1)},
    )
    # when the outbox is forwarded
    report = outbox.outbox_forward(dataset_group_id=tracker.dataset_group_id)
    # then every event went out once and is SENT
    stubber.assert_no_pending_responses()
    assert (report.events_sent, report.calls) == (16, 4)
    assert state_counts() == {ForwardState.SENT: 16}


def test_every_stored_field_goes_out_as_putevents_has_it(
    tracker: EventTracker, events_api: tuple[Stubber, AcceptedCalls]
) -> None:
    stubber, _ = events_api
    # given an event with every optional field, and its user identified later (the anonymous event merged)
    put_events(
        tracking_id=tracker.tracking_id,
        session_id="s1",
        events=[
            TrackedEvent(
                event_type="click",
                sent_at=NOW,
                item_id="i1",
                event_value=4.5,
                event_id="client-event-1",
                impression=["i1", "i2", "i3"],
                recommendation_id="rid-1",
                properties={"device": "mobile"},
            )
        ],
    )
    send(tracker.tracking_id, "s1", "u1", "i2", start=5)
    second = Interaction.objects.order_by("id")[1]
    # then the client's eventId, value, impression, recommendationId and properties (camelCase JSON) are sent,
    # under the user the session was attributed to
    stubber.add_response(
        "put_events",
        {},
        {
            "trackingId": TRACKING_ID,
            "sessionId": "s1",
            "userId": "u1",
            "eventList": [
                {
                    "eventId": "client-event-1",
                    "eventType": "click",
                    "sentAt": datetime.fromtimestamp(NOW, UTC),
                    "itemId": "i1",
                    "eventValue": 4.5,
                    "impression": ["i1", "i2", "i3"],
                    "recommendationId": "rid-1",
                    "properties": '{"device":"mobile"}',
                },
                {
                    "eventId": f"recsite-{second.pk}",
                    "eventType": "view",
                    "sentAt": datetime.fromtimestamp(NOW + 5, UTC),
                    "itemId": "i2",
                },
            ],
        },
    )
    outbox.outbox_forward(dataset_group_id=tracker.dataset_group_id)
    stubber.assert_no_pending_responses()
    assert state_counts() == {ForwardState.SENT: 2}


# --- failures -----------------------------------------------------------------------------------------


def test_a_failure_mid_way_leaves_the_rest_pending(
    tracker: EventTracker, events_api: tuple[Stubber, AcceptedCalls]
) -> None:
    stubber, accepted = events_api
    # given events of three sessions
    for n, session in enumerate(("s1", "s2", "s3")):
        send(tracker.tracking_id, session, None, "i1", "i2", start=10 * n)
    # when AWS accepts the first call and throttles the second
    accept(stubber)
    throttle(stubber)
    with pytest.raises(PersonalizeRetryableError):
        outbox.outbox_forward(dataset_group_id=tracker.dataset_group_id)
    # then only the accepted call's events are SENT; the others wait, PENDING
    stubber.assert_no_pending_responses()
    sent = set(
        Interaction.objects.filter(forward_state=ForwardState.SENT).values_list("session_id", flat=True)
    )
    assert sent == {"s1"}
    assert state_counts() == {ForwardState.SENT: 2, ForwardState.PENDING: 4}
    assert len(accepted.event_ids()) == 2


def test_throttling_is_retried_then_each_event_arrives_once(
    tracker: EventTracker, events_api: tuple[Stubber, AcceptedCalls], django_capture_on_commit_callbacks: Any
) -> None:
    stubber, accepted = events_api
    # given AWS throttles twice, then accepts (in-process, Celery replays the task's retries at once;
    # a worker waits outbox_retry_countdown between them: see the broker test)
    throttle(stubber, times=2)
    accept(stubber)
    # when a putEvents call commits and its flush runs
    with django_capture_on_commit_callbacks(execute=True):
        send(tracker.tracking_id, "s1", "u1", "i1", "i2", "i3")
    # then the third attempt delivered every event, exactly once
    stubber.assert_no_pending_responses()
    ids = accepted.event_ids()
    assert sorted(ids) == sorted(f"recsite-{pk}" for pk in Interaction.objects.values_list("pk", flat=True))
    assert len(ids) == len(set(ids)) == 3
    assert state_counts() == {ForwardState.SENT: 3}


def test_the_backoff_grows_exponentially_to_its_cap(settings: Any) -> None:
    settings.RECSITE_OUTBOX_RETRY_BASE_SECONDS = 2.0
    settings.RECSITE_OUTBOX_RETRY_MAX_SECONDS = 60.0
    for retries, ceiling in [(0, 2), (1, 4), (2, 8), (4, 32), (5, 60), (12, 60)]:
        waits = [outbox.outbox_retry_countdown(retries) for _ in range(50)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits), (retries, min(waits), max(waits))


def test_an_event_refused_as_invalid_is_isolated_and_the_others_are_sent(
    tracker: EventTracker, events_api: tuple[Stubber, AcceptedCalls]
) -> None:
    stubber, accepted = events_api
    # given three events of one session
    send(tracker.tracking_id, "s1", "u1", "i1", "i2", "i3")
    bad = Interaction.objects.order_by("id")[1]
    # when Personalize refuses the call as invalid, then accepts the 1st and 3rd alone and refuses the 2nd
    stubber.add_client_error("put_events", service_error_code="InvalidInputException", http_status_code=400)
    accept(stubber)
    stubber.add_client_error("put_events", service_error_code="InvalidInputException", http_status_code=400)
    accept(stubber)
    report = outbox.outbox_forward(dataset_group_id=tracker.dataset_group_id)
    # then the refused event is REFUSED (never retried), the others SENT
    stubber.assert_no_pending_responses()
    assert (report.events_sent, report.refused) == (2, 1)
    bad.refresh_from_db()
    assert bad.forward_state == ForwardState.REFUSED
    assert accepted.event_ids() == [
        f"recsite-{pk}"
        for pk in Interaction.objects.exclude(pk=bad.pk).values_list("pk", flat=True).order_by("pk")
    ]
    # and a later run has nothing left to send
    assert outbox.outbox_forward(dataset_group_id=tracker.dataset_group_id).calls == 0


def test_a_resend_after_a_crash_carries_the_same_event_ids(
    tracker: EventTracker, events_api: tuple[Stubber, AcceptedCalls]
) -> None:
    stubber, accepted = events_api
    # given events forwarded once
    send(tracker.tracking_id, "s1", "u1", "i1", "i2")
    accept(stubber)
    outbox.outbox_forward(dataset_group_id=tracker.dataset_group_id)
    first = accepted.event_ids()
    # when a crash before the marks committed leaves them pending again, and they are forwarded again
    Interaction.objects.update(forward_state=ForwardState.PENDING)
    accept(stubber)
    outbox.outbox_forward(dataset_group_id=tracker.dataset_group_id)
    # then the resend carries the same eventIds, which Personalize does not count twice
    assert accepted.event_ids() == first + first
    assert len(set(first)) == 2


def test_forwarding_twice_sends_nothing_twice(
    tracker: EventTracker, events_api: tuple[Stubber, AcceptedCalls]
) -> None:
    stubber, accepted = events_api
    send(tracker.tracking_id, "s1", "u1", "i1", "i2")
    accept(stubber)
    # when the task is delivered twice (a redelivery after acks_late, a sweep meanwhile)
    first = outbox_forward_task.delay(tracker.dataset_group_id).get()
    second = outbox_forward_task.delay(tracker.dataset_group_id).get()
    # then the second run finds nothing to send (the Stubber would fail on an unexpected call)
    assert (first["events_sent"], second["events_sent"], second["calls"]) == (2, 0, 0)
    assert len(accepted.event_ids()) == 2


def test_events_wait_while_the_tracker_has_no_personalize_tracking_id(
    schemas: DatasetGroup, events_api: tuple[Stubber, AcceptedCalls]
) -> None:
    # given a tracker switched to Personalize whose provisioning has not issued a trackingId yet
    tracker = tracker_on_personalize(schemas, tracking_id="")
    send(tracker.tracking_id, "s1", "u1", "i1")
    # when the outbox runs, then it makes no call and the events stay pending for a later run
    report = outbox.outbox_forward(dataset_group_id=tracker.dataset_group_id)
    assert report.calls == 0
    assert "trackingId" in report.skipped[0]
    assert state_counts() == {ForwardState.PENDING: 1}


# --- the sweep, and the outbox test of the issue --------------------------------------------------------


def test_the_sweep_re_enqueues_groups_with_unsent_rows(
    tracker: EventTracker, events_api: tuple[Stubber, AcceptedCalls], django_capture_on_commit_callbacks: Any
) -> None:
    stubber, accepted = events_api
    # given pending events whose flush never ran (lost with the broker), and a local group with its own events
    with django_capture_on_commit_callbacks(execute=False):
        send(tracker.tracking_id, "s1", "u1", "i1", "i2")
    other = DatasetGroup.objects.create(name="other")
    local = event_tracker_create(dataset_group=other, name="other-web")
    send(local.tracking_id, "s9", "u9", "i9")
    # when beat runs the sweep
    accept(stubber)
    with django_capture_on_commit_callbacks(execute=True):
        swept = outbox_sweep_task.delay().get()
    # then it enqueued the Personalize group only, whose events are now sent
    assert swept == [tracker.dataset_group_id]
    stubber.assert_no_pending_responses()
    assert len(accepted.event_ids()) == 2
    assert (
        Interaction.objects.filter(dataset_group=tracker.dataset_group).get(item__item_id="i1").forward_state
        == 2
    )
    assert Interaction.objects.get(dataset_group=other).forward_state == ForwardState.NONE
    assert outbox.outbox_groups_pending() == []


@contextmanager
def broker_unreachable() -> Iterator[None]:
    """Tasks go to a broker that refuses connections (as during a broker outage), then back to in-process."""
    conf = celery_app.conf
    saved = (conf.broker_url, conf.task_always_eager, celery_app._pool, celery_app.amqp._producer_pool)
    conf.broker_url, conf.task_always_eager = "redis://127.0.0.1:9/0", False
    celery_app._pool = celery_app.amqp._producer_pool = None
    try:
        yield
    finally:
        conf.broker_url, conf.task_always_eager, celery_app._pool, celery_app.amqp._producer_pool = saved


def test_throttling_then_a_brokerless_window_lose_nothing_and_send_nothing_twice(
    tracker: EventTracker, events_api: tuple[Stubber, AcceptedCalls], django_capture_on_commit_callbacks: Any
) -> None:
    stubber, accepted = events_api
    tid = tracker.tracking_id
    # given AWS throttles every attempt of a flush (the first try and both in-process retries)
    throttle(stubber, times=3)
    with django_capture_on_commit_callbacks(execute=True):
        send(tid, "s1", "u1", "i1", "i2", "i3")
    stubber.assert_no_pending_responses()
    assert state_counts() == {ForwardState.PENDING: 3}
    # and then the broker is down while more events arrive: their flush cannot even be enqueued
    with broker_unreachable(), django_capture_on_commit_callbacks(execute=True):
        send(tid, "s2", None, "i4", "i5", start=10)
        send(tid, "s1", "u1", *[f"i{n}" for n in range(6, 16)], start=20)
    assert state_counts() == {ForwardState.PENDING: 15}
    assert accepted.event_ids() == []
    # when delivery is back and the sweep runs (s1/u1: 10 + 3 events; s2: 2)
    accept(stubber, times=3)
    with django_capture_on_commit_callbacks(execute=True):
        outbox_sweep_task.delay()
    # then every event arrived, exactly once
    stubber.assert_no_pending_responses()
    counts = Counter(accepted.event_ids())
    assert set(counts) == {f"recsite-{pk}" for pk in Interaction.objects.values_list("pk", flat=True)}
    assert set(counts.values()) == {1}
    assert state_counts() == {ForwardState.SENT: 15}
    assert all(len(call["eventList"]) <= 10 for call in accepted.of("PutEvents"))


# --- items and users ----------------------------------------------------------------------------------


@pytest.fixture
def provisioned(tracker: EventTracker) -> PersonalizeDatasetGroup:
    """The group's Personalize datasets as provisioning recorded them."""
    return PersonalizeDatasetGroup.objects.create(
        dataset_group=tracker.dataset_group,
        name="recsite-default",
        dataset_group_arn=GROUP_ARN,
        dataset_arns={
            "interactions": ITEMS_ARN.replace("ITEMS", "INTERACTIONS"),
            "items": ITEMS_ARN,
            "users": USERS_ARN,
        },
    )


def test_put_items_and_put_users_are_forwarded_to_their_datasets(
    provisioned: PersonalizeDatasetGroup,
    events_api: tuple[Stubber, AcceptedCalls],
    django_capture_on_commit_callbacks: Any,
) -> None:
    stubber, _ = events_api
    group = provisioned.dataset_group
    created = NOW - 86_400
    # then PutItems carries the metadata as camelCase JSON (categorical values joined by |, creationTimestamp)
    stubber.add_response(
        "put_items",
        {},
        {
            "datasetArn": ITEMS_ARN,
            "items": [
                {
                    "itemId": "i1",
                    "properties": '{"genre":"Comedy|Drama","unitPrice":9.5,'
                    f'"creationTimestamp":{int(created)}}}',
                },
                {"itemId": "i2", "properties": f'{{"genre":"Horror","creationTimestamp":{int(created)}}}'},
            ],
        },
    )
    stubber.add_response(
        "put_users",
        {},
        {"datasetArn": USERS_ARN, "users": [{"userId": "u1", "properties": '{"ageGroup":"adult"}'}]},
    )
    # when items and a user are put and the transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        put_items(
            dataset_group=group,
            items=[
                TrackedRecord(
                    "i1", {"genre": "Comedy|Drama", "unitPrice": 9.5, "creationTimestamp": created}
                ),
                TrackedRecord("i2", {"genre": "Horror", "creationTimestamp": created}),
            ],
        )
        put_users(dataset_group=group, users=[TrackedRecord("u1", {"ageGroup": "adult"})])
    stubber.assert_no_pending_responses()
    assert state_counts(Item) == {ForwardState.SENT: 2}
    assert state_counts(EndUser) == {ForwardState.SENT: 1}


def test_an_admin_change_to_a_sent_item_is_forwarded_again(
    provisioned: PersonalizeDatasetGroup, events_api: tuple[Stubber, AcceptedCalls]
) -> None:
    stubber, accepted = events_api
    group = provisioned.dataset_group
    # given an item already sent
    put_items(dataset_group=group, items=[TrackedRecord("i1", {"genre": "Comedy"})])
    accept(stubber, "put_items")
    outbox.outbox_forward(dataset_group_id=group.pk)
    assert Item.objects.get(item_id="i1").forward_state == ForwardState.SENT
    # when the admin changes it (the admin saves through item_upsert)
    item_upsert(dataset_group=group, item_id="i1", metadata={"GENRE": "Drama"})
    # then it is pending again, and the next run sends the new metadata
    assert Item.objects.get(item_id="i1").forward_state == ForwardState.PENDING
    accept(stubber, "put_items")
    outbox.outbox_forward(dataset_group_id=group.pk)
    assert [json.loads(call["items"][0]["properties"])["genre"] for call in accepted.of("PutItems")] == [
        "Comedy",
        "Drama",
    ]
    assert Item.objects.get(item_id="i1").forward_state == ForwardState.SENT


def test_an_item_changed_while_its_call_is_in_flight_stays_pending(
    provisioned: PersonalizeDatasetGroup, events_api: tuple[Stubber, AcceptedCalls]
) -> None:
    stubber, accepted = events_api
    group = provisioned.dataset_group
    put_items(dataset_group=group, items=[TrackedRecord("i1", {"genre": "Comedy"})])
    client = aws.personalize_events_client()

    def edit_during_the_call(**_: Any) -> None:
        client.meta.events.unregister(PUT_ITEMS_PARAMETERS, edit_during_the_call)
        item_upsert(dataset_group=group, item_id="i1", metadata={"GENRE": "Drama"})

    # given an edit that lands while PutItems (with the old metadata) is on its way
    client.meta.events.register(PUT_ITEMS_PARAMETERS, edit_during_the_call)
    accept(stubber, "put_items", times=2)
    outbox.outbox_forward(dataset_group_id=group.pk, max_rows=1)
    # then the item is still pending (the accepted call carried the old version)
    assert Item.objects.get(item_id="i1").forward_state == ForwardState.PENDING
    # and the next run sends the new version
    outbox.outbox_forward(dataset_group_id=group.pk)
    assert [json.loads(call["items"][0]["properties"])["genre"] for call in accepted.of("PutItems")] == [
        "Comedy",
        "Drama",
    ]
    assert Item.objects.get(item_id="i1").forward_state == ForwardState.SENT


def test_dataset_arns_are_found_from_the_tracker_when_provisioning_recorded_none(
    tracker: EventTracker, events_api: tuple[Stubber, AcceptedCalls]
) -> None:
    events_stubber, _ = events_api
    # given a tracker entered by hand (no provisioning record): the ARNs come from Personalize itself
    put_users(dataset_group=tracker.dataset_group, users=[TrackedRecord("u1", {"ageGroup": "teen"})])
    control = aws.personalize_client()
    with Stubber(control) as stubber:
        stubber.add_response(
            "describe_event_tracker",
            {
                "eventTracker": {
                    "eventTrackerArn": TRACKER_ARN,
                    "datasetGroupArn": GROUP_ARN,
                    "status": "ACTIVE",
                }
            },
            {"eventTrackerArn": TRACKER_ARN},
        )
        stubber.add_response(
            "list_datasets",
            {"datasets": [{"datasetArn": ITEMS_ARN, "datasetType": "Items"}], "nextToken": "page-2"},
            {"datasetGroupArn": GROUP_ARN},
        )
        stubber.add_response(
            "list_datasets",
            {"datasets": [{"datasetArn": USERS_ARN, "datasetType": "Users"}]},
            {"datasetGroupArn": GROUP_ARN, "nextToken": "page-2"},
        )
        events_stubber.add_response(
            "put_users",
            {},
            {"datasetArn": USERS_ARN, "users": [{"userId": "u1", "properties": '{"ageGroup":"teen"}'}]},
        )
        outbox.outbox_forward(dataset_group_id=tracker.dataset_group_id)
        stubber.assert_no_pending_responses()
    events_stubber.assert_no_pending_responses()
    assert state_counts(EndUser) == {ForwardState.SENT: 1}


# --- claims: two senders never send the same row ------------------------------------------------------


@pytest.mark.skipif("connection.vendor == 'postgresql'", reason="PostgreSQL claims rows with SKIP LOCKED")
def test_without_row_locks_one_sender_holds_the_group_until_its_lease_expires(
    tracker: EventTracker, events_api: tuple[Stubber, AcceptedCalls]
) -> None:
    stubber, _ = events_api
    group_id = tracker.dataset_group_id
    send(tracker.tracking_id, "s1", "u1", "i1")
    # given another sender holds the group's lease
    token = outbox._lease_acquire(group_id)
    assert token is not None
    # when a second run starts, then it sends nothing and says the group is busy
    report = outbox.outbox_forward(dataset_group_id=group_id)
    assert (report.busy, report.calls) == (True, 0)
    # when the holder dies and its lease expires, then the next run takes the group over and sends
    DatasetGroup.objects.filter(pk=group_id).update(
        outbox_lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    accept(stubber)
    report = outbox.outbox_forward(dataset_group_id=group_id)
    assert (report.busy, report.events_sent) == (False, 1)
    # and the lease is released for the next sender
    assert DatasetGroup.objects.get(pk=group_id).outbox_lease_token == ""
    # and a sender whose lease was taken over stops before its next call
    token = outbox._lease_acquire(group_id)
    DatasetGroup.objects.filter(pk=group_id).update(outbox_lease_token="someone-else")
    with pytest.raises(outbox._LeaseLostError):
        outbox._lease_renew(group_id, token)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_rows_another_sender_holds_are_skipped(
    default_group: DatasetGroup, events_api: tuple[Stubber, AcceptedCalls]
) -> None:
    stubber, accepted = events_api
    tracker = tracker_on_personalize(default_group)
    send(tracker.tracking_id, "s1", "u1", "i1", "i2")
    send(tracker.tracking_id, "s2", "u2", "i3")
    held = list(Interaction.objects.filter(session_id="s1").values_list("pk", flat=True))
    locked, release = threading.Event(), threading.Event()

    def other_sender() -> None:
        # another worker has claimed s1's rows and is waiting for AWS
        try:
            with transaction.atomic():
                list(Interaction.objects.filter(pk__in=held).select_for_update())
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_sender)
    thread.start()
    try:
        assert locked.wait(10)
        # when this worker forwards the outbox meanwhile
        accept(stubber)
        report = outbox.outbox_forward(dataset_group_id=tracker.dataset_group_id)
    finally:
        release.set()
        thread.join()
    # then it sent only the rows nobody held; s1's stay pending for their holder
    assert report.events_sent == 1
    assert [call["sessionId"] for call in accepted.of("PutEvents")] == ["s2"]
    assert set(Interaction.objects.filter(pk__in=held).values_list("forward_state", flat=True)) == {1}
    assert connection.vendor == "postgresql"
