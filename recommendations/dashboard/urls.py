"""Routes of the dashboard, included by recsite.urls under `admin/dashboard/` (before the admin's own).

The HTML views go through `admin.site.admin_view` (staff login, CSRF, no caching); the JSON check
answers 403 itself rather than redirecting a script to the login page.
"""

from django.contrib import admin
from django.urls import path

from recommendations.dashboard import views

__all__ = ["urlpatterns"]

app_name = "recsite_dashboard"
urlpatterns = [
    path("", admin.site.admin_view(views.dashboard), name="index"),
    path("solutions/<int:pk>/train/", admin.site.admin_view(views.solution_train), name="solution-train"),
    path("campaigns/<int:pk>/deploy/", admin.site.admin_view(views.campaign_deploy), name="campaign-deploy"),
    path("filters/new/", admin.site.admin_view(views.filter_create_page), name="filter-create"),
    path("filters/check/", views.filter_check, name="filter-check"),
]
