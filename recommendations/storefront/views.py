"""The demo storefront: one HTML page, served only with debug on, that is a frontend like any other.

The page asks `/graphql/` for a visitor's recommendations (and for items related to the one last
clicked), records what it showed with `recsite.impressions`, and sends each click with
`recsite.track` (the snippet every shop page can load). Nothing here is a second API: the server
only hands the page the GraphQL documents below and the dataset group's `trackingId`.
"""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from catalog.models import DEFAULT_DATASET_GROUP
from recommendations.models import EventTracker

__all__ = ["RECOMMENDATIONS_QUERY", "RELATED_ITEMS_QUERY", "storefront"]

ITEM_FIELDS = "itemId reason item { metadata }"

# The visitor's feed: a signed-in user by userId, anyone else by the snippet's sessionId.
RECOMMENDATIONS_QUERY = (
    "query StorefrontRecommendations($userId: String, $sessionId: String) { "
    "recommendations(userId: $userId, sessionId: $sessionId, numResults: 12) "
    f"{{ recommendationId items {{ {ITEM_FIELDS} }} }} }}"
)
# "Customers who viewed this also viewed", for the item clicked last.
RELATED_ITEMS_QUERY = (
    "query StorefrontRelatedItems($itemId: String!, $userId: String) { "
    "relatedItems(itemId: $itemId, userId: $userId, numResults: 6) "
    f"{{ recommendationId items {{ {ITEM_FIELDS} }} }} }}"
)
DEMO_USERS = ["user-00001", "user-00002", "user-00003"]


def storefront(request: HttpRequest) -> HttpResponse:
    """The demo shop page (404 unless debug is on)."""
    if not settings.DEBUG:
        raise Http404("The demo storefront is served only with DJANGO_DEBUG=1.")
    tracker = (
        EventTracker.objects.filter(dataset_group__name=DEFAULT_DATASET_GROUP).only("tracking_id").first()
    )
    config = {
        "endpoint": request.build_absolute_uri(reverse("graphql")),
        "trackingId": tracker.tracking_id if tracker else None,
        "recommendationsQuery": RECOMMENDATIONS_QUERY,
        "relatedItemsQuery": RELATED_ITEMS_QUERY,
        "demoUsers": DEMO_USERS,
    }
    return render(request, "recommendations/storefront.html", {"config": config})
