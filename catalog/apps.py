"""App configuration for the catalog."""

from django.apps import AppConfig

__all__ = ["CatalogConfig"]


class CatalogConfig(AppConfig):
    """The catalog app: Personalize's three datasets per dataset group."""

    name = "catalog"
    verbose_name = "Catalog"
    default_auto_field = "django.db.models.BigAutoField"
