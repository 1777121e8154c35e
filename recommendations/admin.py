"""The operators' admin: solutions, versions (read-only, with metrics), campaigns, filters, and the
Amazon Personalize side (dataset groups, import jobs, batch jobs), read-only with their status,
failure reasons and ARNs."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from recommendations import services
from recommendations.errors import FilterError, RecommendationError
from recommendations.filtering import filter_expression_check
from recommendations.models import (
    BatchJob,
    Campaign,
    Filter,
    PersonalizeDatasetGroup,
    PersonalizeImportJob,
    Solution,
    SolutionVersion,
    UserDataDeletion,
)
from recommendations.selectors import solution_version_latest

__all__ = [
    "BatchJobAdmin",
    "CampaignAdmin",
    "FilterAdmin",
    "FilterAdminForm",
    "PersonalizeDatasetGroupAdmin",
    "PersonalizeImportJobAdmin",
    "ReadOnlyJobAdmin",
    "SolutionAdmin",
    "SolutionVersionAdmin",
    "SolutionVersionInline",
    "UserDataDeletionAdmin",
]

SUMMARY_METRICS = ("normalized_discounted_cumulative_gain_at_10", "precision_at_10", "coverage")
SHORT_NAMES = {
    "normalized_discounted_cumulative_gain_at_10": "NDCG@10",
    "precision_at_10": "P@10",
    "coverage": "coverage",
}


def metrics_summary(version: SolutionVersion) -> str:
    """NDCG@10, P@10 and coverage in one line ("—" when there are none)."""
    parts = [
        f"{SHORT_NAMES[name]} {version.metrics[name]:.3f}"
        for name in SUMMARY_METRICS
        if name in version.metrics
    ]
    return ", ".join(parts) or "—"


class SolutionVersionInline(admin.TabularInline):
    """A solution's versions, newest first, read-only."""

    model = SolutionVersion
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("status", "training_mode", "training_type", "training_seconds", "metrics_line", "created_at")
    readonly_fields = fields
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Versions are created by training, not by hand."""
        return False

    @admin.display(description="metrics")
    def metrics_line(self, version: SolutionVersion) -> str:
        """Summary of the offline metrics."""
        return metrics_summary(version)


@admin.register(Solution)
class SolutionAdmin(admin.ModelAdmin):
    """Solutions with their versions; an action trains a new version."""

    list_display = (
        "name",
        "dataset_group",
        "recipe",
        "perform_hpo",
        "perform_auto_training",
        "auto_training_days",
    )
    list_filter = ("dataset_group", "recipe", "perform_auto_training")
    search_fields = ("name",)
    inlines = (SolutionVersionInline,)
    actions = ("create_solution_version",)

    def get_readonly_fields(self, request: HttpRequest, obj: Solution | None = None) -> tuple[str, ...]:
        """Recipe and group are fixed once created (as in Personalize)."""
        return ("dataset_group", "recipe") if obj else ()

    @admin.action(description="Create a new solution version (train)")
    def create_solution_version(self, request: HttpRequest, queryset: QuerySet[Solution]) -> None:
        """Enqueue a training run for each selected solution."""
        for solution in queryset:
            with transaction.atomic():
                version = services.solution_version_create(solution=solution)
            self.message_user(
                request, f"{solution.name}: version {version.pk} is training.", messages.SUCCESS
            )


@admin.register(SolutionVersion)
class SolutionVersionAdmin(admin.ModelAdmin):
    """Read-only versions with their metrics table."""

    list_display = ("__str__", "status", "training_mode", "training_seconds", "metrics_line", "created_at")
    list_filter = ("status", "solution__dataset_group", "solution")
    exclude = ("metrics",)
    readonly_fields = (
        "solution",
        "status",
        "progress",
        "failure_reason",
        "training_mode",
        "training_type",
        "metrics_table",
        "training_seconds",
        "interactions_count",
        "users_count",
        "items_count",
        "solution_config",
        "tuned_hpo_params",
        "artifact",
        "created_at",
        "started_at",
        "finished_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Versions come from training."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Versions are records of a training run."""
        return False

    @admin.display(description="metrics")
    def metrics_line(self, version: SolutionVersion) -> str:
        """Summary of the offline metrics."""
        return metrics_summary(version)

    @admin.display(description="offline metrics")
    def metrics_table(self, version: SolutionVersion) -> SafeString:
        """Every metric as Personalize names it."""
        if not version.metrics:
            return format_html("<em>{}</em>", "none (segment recipes answer no per-user lists)")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td></tr>",
            ((k, f"{v:.4f}") for k, v in sorted(version.metrics.items())),
        )
        return format_html("<table>{}</table>", rows)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    """Campaigns: the version they serve and their config; an action deploys the latest ACTIVE version."""

    list_display = (
        "name",
        "dataset_group",
        "solution_version",
        "follows_latest",
        "backend",
        "status",
        "updated_at",
    )
    list_filter = ("dataset_group", "status", "backend")
    search_fields = ("name",)
    raw_id_fields = ("solution_version",)
    actions = ("deploy_latest_active_version",)

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        """Campaigns take their dataset group from the version they serve."""
        obj.dataset_group_id = obj.solution_version.solution.dataset_group_id
        super().save_model(request, obj, form, change)

    def get_exclude(self, request: HttpRequest, obj: Campaign | None = None) -> tuple[str, ...]:
        """The group follows from the version."""
        return ("dataset_group",)

    @admin.action(description="Deploy latest active version")
    def deploy_latest_active_version(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        """Point each selected campaign at its solution's newest ACTIVE version."""
        for campaign in queryset.select_related("solution_version__solution"):
            latest = solution_version_latest(solution=campaign.solution_version.solution)
            if latest is None or latest == campaign.solution_version:
                self.message_user(
                    request, f"{campaign.name}: already serves the latest version.", messages.INFO
                )
                continue
            try:
                services.campaign_update(campaign=campaign, solution_version=latest)
            except RecommendationError as error:
                self.message_user(request, f"{campaign.name}: {error}", messages.ERROR)
                continue
            self.message_user(request, f"{campaign.name}: now serves version {latest.pk}.", messages.SUCCESS)


class FilterAdminForm(forms.ModelForm):
    """The filter form: the expression is parsed and checked against the group's schemas on save."""

    class Meta:
        model = Filter
        fields = ("dataset_group", "name", "expression")

    def clean(self) -> dict[str, Any]:
        """Refuse an invalid expression on the expression field, with the position and what was expected."""
        cleaned = super().clean()
        group, expression = cleaned.get("dataset_group"), cleaned.get("expression")
        if group is not None and expression:
            try:
                filter_expression_check(dataset_group=group, expression=expression)
            except FilterError as error:
                self.add_error("expression", str(error))
        return cleaned


@admin.register(Filter)
class FilterAdmin(admin.ModelAdmin):
    """Filters: the expression is validated when saved; status is set by the service rules."""

    form = FilterAdminForm
    list_display = ("name", "dataset_group", "status", "expression", "updated_at")
    list_filter = ("dataset_group", "status")
    search_fields = ("name", "expression")
    readonly_fields = ("status", "failure_reason", "created_at", "updated_at")


class ReadOnlyJobAdmin(admin.ModelAdmin):
    """A record of work Celery does (on Personalize or locally): shown, never added or edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Rows come from the commands and tasks that start the work."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The status, reason and ARNs are what Personalize reported."""
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        """Every field (a view-only page)."""
        return [field.name for field in self.model._meta.fields]


@admin.register(PersonalizeDatasetGroup)
class PersonalizeDatasetGroupAdmin(ReadOnlyJobAdmin):
    """Dataset groups provisioned on Personalize: status, what provisioning waits for, ARNs."""

    list_display = ("name", "dataset_group", "status", "progress", "failure_reason", "updated_at")
    list_filter = ("status",)
    search_fields = ("name", "dataset_group_arn")


@admin.register(PersonalizeImportJob)
class PersonalizeImportJobAdmin(ReadOnlyJobAdmin):
    """Exports to S3 and their dataset import jobs: rows carried, window, status, reason, ARN."""

    list_display = (
        "job_name",
        "personalize_group",
        "dataset_type",
        "import_mode",
        "rows",
        "status",
        "failure_reason",
        "created_at",
    )
    list_filter = ("status", "import_mode", "dataset_type", "personalize_group")
    search_fields = ("job_name", "personalize_arn", "s3_path")
    date_hierarchy = "created_at"


@admin.register(BatchJob)
class BatchJobAdmin(ReadOnlyJobAdmin):
    """Batch inference and segment jobs on either backend: paths, status, reason, ARN."""

    list_display = (
        "name",
        "kind",
        "backend",
        "solution_version",
        "status",
        "failure_reason",
        "records",
        "errors",
        "created_at",
    )
    list_filter = ("status", "kind", "backend")
    search_fields = ("name", "personalize_arn", "input_path", "output_path")
    date_hierarchy = "created_at"


@admin.register(UserDataDeletion)
class UserDataDeletionAdmin(ReadOnlyJobAdmin):
    """The audit log of user-data deletions: who asked, when, what was removed, Personalize's job.

    Never deleted from the admin either: it is the record that the deletion happened.
    """

    list_display = (
        "requested_at",
        "user_id",
        "dataset_group_name",
        "requested_by",
        "requested_via",
        "interactions_deleted",
        "profile_deleted",
        "personalize_status",
        "failure_reason",
    )
    list_filter = ("personalize_status", "requested_via", "dataset_group_name")
    search_fields = ("user_id", "requested_by", "personalize_arn")
    date_hierarchy = "requested_at"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """An audit record stays."""
        return False
