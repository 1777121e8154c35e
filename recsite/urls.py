"""URL routes: the admin (with the operators' dashboard), the GraphQL endpoint, the Personalize-compatible
endpoint, the demo storefront."""

from django.contrib import admin
from django.urls import include, path

from recsite.graphql_view import RecsiteGraphQLView
from recsite.schema import schema

urlpatterns = [
    # Before the admin's own routes, which would take "dashboard" for an app label.
    path("admin/dashboard/", include("recommendations.dashboard.urls")),
    path("admin/", admin.site.urls),
    path("graphql/", RecsiteGraphQLView.as_view(schema=schema), name="graphql"),
    path("personalize/", include("recommendations.compat.urls")),
    path("demo/", include("recommendations.storefront.urls")),  # answers 404 unless debug is on
]
