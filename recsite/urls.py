"""URL routes: the admin, the GraphQL endpoint, the Personalize-compatible endpoint, the demo storefront."""

from django.contrib import admin
from django.urls import include, path

from recsite.graphql_view import RecsiteGraphQLView
from recsite.schema import schema

urlpatterns = [
    path("admin/", admin.site.urls),
    path("graphql/", RecsiteGraphQLView.as_view(schema=schema), name="graphql"),
    path("personalize/", include("recommendations.compat.urls")),
    path("demo/", include("recommendations.storefront.urls")),  # answers 404 unless debug is on
]
