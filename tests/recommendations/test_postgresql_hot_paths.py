"""PostgreSQL specifics of the hot paths: generic plans of prepared statements, asynchronous record commits.

PostgreSQL prepares frequent statements (RECSITE_DB_PREPARED_STATEMENTS), and after five runs a
prepared statement may use a generic plan, made without the parameters' values. The session reads
must still use the session index then; without `NOT session_id = ''` restating its condition they
scanned the group's whole `user_id IS NULL` range (3.4 ms instead of 0.3 ms per putEvents call on a
134k-event table)."""

import re

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from catalog.models import DatasetGroup
from recommendations import tracking
from recommendations.models import Campaign, RecommendationRecord, Solution, SolutionVersion
from recommendations.reasons import Explanation, ReasonKind
from recommendations.selectors import _history_sql
from recommendations.serving import ServedItem, ServedList, recommendation_record
from recommendations.tracking import TrackedEvent, event_tracker_create

pytestmark = pytest.mark.postgres

SESSION_INDEX = "interaction_session_newest"


def _generic_plan(sql: str, params: list[object]) -> str:
    """EXPLAIN of the statement prepared and run with a generic plan, index scans preferred."""
    numbered = iter(range(1, len(params) + 1))
    prepared = re.sub(r"%s", lambda _: f"${next(numbered)}", sql)
    literals = ", ".join(str(value) if isinstance(value, int) else f"'{value}'" for value in params)
    raw = connection.connection
    raw.execute("SET plan_cache_mode = force_generic_plan")
    raw.execute("SET enable_seqscan = off")  # a test-sized table would be scanned whatever the plan
    try:
        raw.execute(f"PREPARE generic_probe AS {prepared}")
        rows = raw.execute(f"EXPLAIN EXECUTE generic_probe({literals})").fetchall()
    finally:
        raw.execute("DEALLOCATE ALL")
        raw.execute("RESET plan_cache_mode")
        raw.execute("RESET enable_seqscan")
    return "\n".join(row[0] for row in rows)


def test_put_events_read_uses_the_session_index_under_a_generic_plan(default_group: DatasetGroup) -> None:
    # Given a tracker and an anonymous session's events, and the read a call with a userId makes
    tracker = event_tracker_create(dataset_group=default_group, name="web")
    events = [TrackedEvent(event_type="click", sent_at=1_700_000_000 + n, item_id=f"i{n}") for n in range(3)]
    tracking.put_events(tracking_id=tracker.tracking_id, session_id="s1", events=events)
    captured: list[tuple[str, list[object]]] = []

    def capture(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        captured.append((sql, list(params or [])))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        tracking.put_events(tracking_id=tracker.tracking_id, session_id="s2", user_id="u1", events=events)
    read_sql, read_params = next((sql, params) for sql, params in captured if "UNION ALL" in sql)
    # When PostgreSQL plans it without the parameters' values
    plan = _generic_plan(read_sql, read_params)
    # Then the session's anonymous events are counted through the session index
    assert SESSION_INDEX in plan, plan


def test_session_history_uses_the_session_index_under_a_generic_plan(default_group: DatasetGroup) -> None:
    # Given the history read of an anonymous session
    sql = _history_sql("session_events")
    # When PostgreSQL plans it without the parameters' values
    plan = _generic_plan(sql, [default_group.pk, "s1", 500])
    # Then it reads through the session index
    assert SESSION_INDEX in plan, plan


def _record(default_group: DatasetGroup, recommendation_id: str) -> None:
    solution, _ = Solution.objects.get_or_create(
        dataset_group=default_group, name="records", defaults={"recipe": "aws-popularity-count"}
    )
    version = SolutionVersion.objects.filter(solution=solution).first() or SolutionVersion.objects.create(
        solution=solution
    )
    campaign, _ = Campaign.objects.get_or_create(
        dataset_group=default_group, name="records", defaults={"solution_version": version}
    )
    served = ServedList(
        recommendation_id, [ServedItem("a", None, Explanation(ReasonKind.POPULAR))], default_group.pk
    )
    recommendation_record(campaign=campaign, served=served, user_id="u1", session_id=None)


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_recommendation_record_on_its_own_commits_without_waiting_for_the_disk(
    default_group: DatasetGroup,
) -> None:
    # Given a recommendation record written on its own (autocommit, as serving writes it)
    with CaptureQueriesContext(connection) as captured:
        _record(default_group, "r-alone")
    record_sql = [
        query["sql"] for query in captured.captured_queries if "recommendationrecord" in query["sql"]
    ]
    # Then its statement turns synchronous commit off for its own transaction only
    assert any("set_config('synchronous_commit', 'off', true)" in sql for sql in record_sql), record_sql
    assert _synchronous_commit() == "on"
    assert RecommendationRecord.objects.get(recommendation_id="r-alone").item_ids == ["a"]


def test_a_recommendation_record_inside_a_transaction_leaves_its_commit_synchronous(
    default_group: DatasetGroup,
) -> None:
    # Given a caller's transaction, which may hold writes that must be durable
    with transaction.atomic():
        # When a record is written inside it
        _record(default_group, "r-inside")
        # Then that transaction still commits synchronously
        assert _synchronous_commit() == "on"
    assert RecommendationRecord.objects.filter(recommendation_id="r-inside").exists()
