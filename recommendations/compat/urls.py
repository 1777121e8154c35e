"""Routes of the Personalize-compatible endpoint, at the paths boto3 appends to `endpoint_url`.

botocore keeps the path of `endpoint_url`, so both clients work under one prefix:
`boto3.client("personalize-runtime", endpoint_url="http://127.0.0.1:8000/personalize")`.
"""

from django.urls import path, re_path

from recommendations.compat import views

__all__ = ["urlpatterns"]

app_name = "personalize_compat"

urlpatterns = [
    # personalize-runtime
    path("recommendations", views.get_recommendations, name="get-recommendations"),
    path("personalize-ranking", views.get_personalized_ranking, name="get-personalized-ranking"),
    # personalize-events
    path("events", views.put_events, name="put-events"),
    path("items", views.put_items, name="put-items"),
    path("users", views.put_users, name="put-users"),
    re_path(r"^(?P<path>.*)$", views.unknown_operation, name="unknown-operation"),
]
