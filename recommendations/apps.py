"""App configuration for recommendations."""

from django.apps import AppConfig

__all__ = ["RecommendationsConfig"]


class RecommendationsConfig(AppConfig):
    """Solutions, campaigns, filters and event trackers (models arrive with the engine)."""

    name = "recommendations"
    verbose_name = "Recommendations"
    default_auto_field = "django.db.models.BigAutoField"
