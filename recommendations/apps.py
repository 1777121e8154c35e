"""App configuration for recommendations."""

from django.apps import AppConfig

__all__ = ["RecommendationsConfig"]


class RecommendationsConfig(AppConfig):
    """Solutions, campaigns, filters and event trackers (models arrive with the engine)."""

    name = "recommendations"
    verbose_name = "Recommendations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Forget cached serving rows whenever a campaign, version or filter changes in this process;
        have items and users changed in groups on Personalize forwarded by the outbox; link the
        dashboard from the admin index."""
        from django.contrib import admin
        from django.db.models.signals import post_delete, post_save

        from recommendations.models import Campaign, Filter, SolutionVersion
        from recommendations.outbox import connect_signals
        from recommendations.row_cache import row_cache_clear

        connect_signals()

        for model in (Campaign, Filter, SolutionVersion):
            for signal in (post_save, post_delete):
                signal.connect(row_cache_clear, sender=model, dispatch_uid=f"row-cache-{model.__name__}")

        admin.site.index_template = "admin/recsite_index.html"
