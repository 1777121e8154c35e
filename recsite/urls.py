"""URL routes: the admin and the GraphQL endpoint."""

from django.contrib import admin
from django.urls import path

from recsite.graphql_view import RecsiteGraphQLView
from recsite.schema import schema

urlpatterns = [
    path("admin/", admin.site.urls),
    path("graphql/", RecsiteGraphQLView.as_view(schema=schema), name="graphql"),
]
