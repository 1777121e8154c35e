"""Route of the demo storefront, included by recsite.urls under `demo/`."""

from django.urls import path

from recommendations.storefront.views import storefront

__all__ = ["urlpatterns"]

app_name = "storefront"
urlpatterns = [path("", storefront, name="storefront")]
