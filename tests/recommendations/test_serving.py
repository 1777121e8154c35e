"""Serving a campaign: request-time histories, model swap, anonymous sessions, related/rank/segment."""

import io
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import Count, Max

from catalog.models import DatasetGroup, EndUser, Interaction, Item
from recommendations import selectors, services
from recommendations.models import Campaign, Solution, SolutionVersion
from recommendations.selectors import (
    campaign_rank,
    campaign_recommend,
    campaign_related,
    campaign_segment,
)

pytestmark = pytest.mark.django_db


def deployed(group: DatasetGroup, recipe: str, capture: object, name: str | None = None) -> Campaign:
    """A campaign serving a freshly trained version of `recipe`."""
    solution = Solution.objects.filter(name=recipe).first() or services.solution_create(
        dataset_group=group, name=recipe, recipe=recipe
    )
    with capture(execute=True):
        version = services.solution_version_create(solution=solution)
    version.refresh_from_db()
    assert version.status == "ACTIVE", version.failure_reason
    return services.campaign_create(name=name or recipe, solution_version=version)


def category_of(item_ids: list[str]) -> list[str]:
    categories = dict(
        Item.objects.filter(item_id__in=item_ids).values_list("item_id", "metadata__CATEGORY_L2")
    )
    return [categories[item_id] for item_id in item_ids]


def test_an_event_written_after_training_changes_the_next_recommendation(
    demo: DatasetGroup, django_capture_on_commit_callbacks: object
) -> None:
    # Given a user-personalization campaign and a user who never touched one category
    campaign = deployed(demo, "aws-user-personalization", django_capture_on_commit_callbacks)
    user = (
        EndUser.objects.filter(dataset_group=demo).annotate(n=Count("interactions")).filter(n__gte=5).first()
    )
    seen = set(category_of(list(user.interactions.values_list("item__item_id", flat=True))))
    by_category = Counter(
        Item.objects.filter(dataset_group=demo).values_list("metadata__CATEGORY_L2", flat=True)
    )
    target = next(category for category, n in by_category.most_common() if category not in seen and n >= 8)
    before = campaign_recommend(campaign=campaign, user_id=user.user_id, num_results=10)
    # When the user views five items of that category now (after training)
    newest = Interaction.objects.filter(dataset_group=demo).aggregate(t=Max("timestamp"))["t"]
    items = (
        Item.objects.filter(dataset_group=demo, metadata__CATEGORY_L2=target)
        .annotate(n=Count("interactions"))
        .order_by("-n")[:5]
    )
    for offset, item in enumerate(items):
        Interaction.objects.create(
            dataset_group=demo,
            user=user,
            item=item,
            event_type="view",
            timestamp=newest + timedelta(minutes=offset + 1),
        )
    after = campaign_recommend(campaign=campaign, user_id=user.user_id, num_results=10)
    # Then the very next answer changes towards that category
    ids_before = [item.item_id for item in before.items]
    ids_after = [item.item_id for item in after.items]
    assert ids_after != ids_before
    assert category_of(ids_after).count(target) > category_of(ids_before).count(target)


def test_campaign_update_swaps_the_model_in_the_same_process(
    demo: DatasetGroup, django_capture_on_commit_callbacks: object
) -> None:
    # Given a campaign that has served a personalization model
    campaign = deployed(demo, "aws-user-personalization", django_capture_on_commit_callbacks)
    user_id = (
        EndUser.objects.filter(dataset_group=demo)
        .annotate(n=Count("interactions"))
        .filter(n__gte=5)[0]
        .user_id
    )
    first = campaign_recommend(campaign=campaign, user_id=user_id, num_results=10)
    popularity = deployed(demo, "aws-popularity-count", django_capture_on_commit_callbacks)
    # When the campaign is updated to a popularity version (the caller's campaign object is stale)
    services.campaign_update(
        campaign=Campaign.objects.get(pk=campaign.pk), solution_version=popularity.solution_version
    )
    second = campaign_recommend(campaign=campaign, user_id=user_id, num_results=10)
    # Then the next request is answered by the new version, the old model is dropped
    expected = campaign_recommend(campaign=popularity, user_id=user_id, num_results=10)
    assert first.solution_version_id != second.solution_version_id == popularity.solution_version_id
    assert [i.item_id for i in second.items] == [i.item_id for i in expected.items]
    assert first.solution_version_id not in selectors._models


def test_anonymous_session_events_personalize_and_a_new_user_id_equal_to_the_session_gets_them(
    demo: DatasetGroup, django_capture_on_commit_callbacks: object
) -> None:
    # Given a campaign and an anonymous session that viewed items of one category
    campaign = deployed(demo, "aws-user-personalization", django_capture_on_commit_callbacks)
    nobody = campaign_recommend(campaign=campaign, user_id="never-seen", num_results=10)
    target = Counter(category_of([i.item_id for i in nobody.items])).most_common()[-1][0]
    newest = Interaction.objects.filter(dataset_group=demo).aggregate(t=Max("timestamp"))["t"]
    for offset, item in enumerate(Item.objects.filter(dataset_group=demo, metadata__CATEGORY_L2=target)[:4]):
        Interaction.objects.create(
            dataset_group=demo,
            user=None,
            session_id="sess-1",
            item=item,
            timestamp=newest + timedelta(minutes=offset),
        )
    # When asked by session id, and by a user id nobody has that equals the session id
    by_session = campaign_recommend(campaign=campaign, session_id="sess-1", num_results=10)
    by_user_id = campaign_recommend(campaign=campaign, user_id="sess-1", num_results=10)
    # Then both use the session's events
    assert [i.item_id for i in by_session.items] == [i.item_id for i in by_user_id.items]
    assert category_of([i.item_id for i in by_session.items]).count(target) > category_of(
        [i.item_id for i in nobody.items]
    ).count(target)


def test_related_items_of_an_unknown_item_are_the_popular_items(
    demo: DatasetGroup, django_capture_on_commit_callbacks: object
) -> None:
    # Given a SIMS campaign
    campaign = deployed(demo, "aws-sims", django_capture_on_commit_callbacks)
    known = campaign_related(campaign=campaign, item_id=Item.objects.filter(dataset_group=demo)[0].item_id)
    # When asked for an item the model does not know
    result = campaign_related(campaign=campaign, item_id="no-such-item", num_results=5)
    # Then the most popular items (distinct users) come back
    popular = (
        Interaction.objects.filter(dataset_group=demo, user__isnull=False)
        .values("item__item_id")
        .annotate(users=Count("user", distinct=True))
        .order_by("-users")
    )
    top_count = popular[4]["users"]
    allowed = {row["item__item_id"] for row in popular if row["users"] >= top_count}
    assert len(result.items) == 5 and {i.item_id for i in result.items} <= allowed
    assert len(known.items) == 25


def test_rank_puts_unknown_items_last_and_segments_return_group_users(
    demo: DatasetGroup, django_capture_on_commit_callbacks: object
) -> None:
    # Given ranking and item-affinity campaigns
    ranking = deployed(demo, "aws-personalized-ranking", django_capture_on_commit_callbacks)
    affinity = deployed(demo, "aws-item-affinity", django_capture_on_commit_callbacks)
    user = EndUser.objects.filter(dataset_group=demo).annotate(n=Count("interactions")).filter(n__gte=2)[0]
    item_ids = list(Item.objects.filter(dataset_group=demo).values_list("item_id", flat=True)[:6])
    # When ranking with an unknown id, and segmenting one item
    ranked = campaign_rank(campaign=ranking, user_id=user.user_id, item_ids=["ghost", *item_ids])
    segment = campaign_segment(campaign=affinity, item_ids=[item_ids[0]], num_results=10)
    # Then the unknown id is last and unscored; the segment holds users of the group
    assert [i.item_id for i in ranked.items][-1] == "ghost" and ranked.items[-1].score is None
    assert sorted(i.item_id for i in ranked.items[:-1]) == sorted(item_ids)
    assert len(segment.user_ids) == 10
    assert set(segment.user_ids) <= set(
        EndUser.objects.filter(dataset_group=demo).values_list("user_id", flat=True)
    )


def test_campaigns_serve_only_their_own_group(
    demo: DatasetGroup, django_capture_on_commit_callbacks: object
) -> None:
    # Given a second group with its own demo (same ids, other seed) and a campaign in each
    call_command(
        "seed_demo",
        "--items",
        "150",
        "--users",
        "100",
        "--events",
        "3000",
        "--seed",
        "3",
        "--dataset-group",
        "other",
        stdout=io.StringIO(),
    )
    other = DatasetGroup.objects.get(name="other")
    mine = deployed(demo, "aws-user-personalization", django_capture_on_commit_callbacks)
    solution = services.solution_create(
        dataset_group=other, name="other-up", recipe="aws-user-personalization"
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.solution_version_create(solution=solution)
    theirs = services.campaign_create(
        name="other-up", solution_version=SolutionVersion.objects.get(solution=solution)
    )
    user_id = (
        EndUser.objects.filter(dataset_group=other)
        .annotate(n=Count("interactions"))
        .filter(n__gte=3)[0]
        .user_id
    )
    # When the same user id asks both campaigns
    result = campaign_recommend(campaign=theirs, user_id=user_id, num_results=25)
    # Then each answers from its own catalog and history
    other_items = set(Item.objects.filter(dataset_group=other).values_list("item_id", flat=True))
    assert {i.item_id for i in result.items} <= other_items
    assert SolutionVersion.objects.get(solution=solution).items_count <= 150
    assert mine.dataset_group == demo and theirs.dataset_group == other
